// tests/common: what the remote driver's test files share (and, from connection_helpers.hpp,
// the code an awaitable threw and waiting for events with a bound).
#pragma once

#include "common/connection_helpers.hpp"
#include "common/libvirtd.hpp"

#include <covirt/connection.hpp>
#include <covirt/timeout.hpp>

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

namespace {

using covirt::connection;
using covirt::domain_ref;
namespace remote = covirt::remote;


[[maybe_unused]] std::string vm1_xml() { return slurp(source_root() + "/tests/data/sh/vm1.xml"); }

}  // namespace
