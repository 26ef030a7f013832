// covirt: everything public.
#pragma once

#include <covirt/config.hpp>
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>
#include <covirt/driver.hpp>
#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/test/driver.hpp>
#include <covirt/timeout.hpp>
#include <covirt/types.hpp>
#include <covirt/uri.hpp>
