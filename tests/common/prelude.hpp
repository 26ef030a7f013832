// tests/common: the names the integration test files all use, declared once.
#pragma once

#include "common/run.hpp"

#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/types.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <filesystem>

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace covirt::test_support;
using covirt::diagnostics;
using covirt::domain_state;
using covirt::errc;
using covirt::error_code;
using covirt::event_type;
namespace reason = covirt::reason;
namespace detail_ = covirt::event_detail;
using clock_type = std::chrono::steady_clock;

/// For `auto [ec, v] = co_await x.async_y(..., tuple)`.
[[maybe_unused]] constexpr auto tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace
