// tests/common: for tests through a covirt::connection: the code an awaitable threw, and waiting
// for events with a bound.
#pragma once

#include "common/prelude.hpp"

#include <covirt/connection.hpp>
#include <covirt/timeout.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace {

/// The code of what `a` threw (ok if it did not), and the message in `msg`.
template <class T>
asio::awaitable<error_code> code_of(asio::awaitable<T> a, std::string* msg = nullptr) {
  auto t = co_await catch_error(std::move(a));
  if (msg) *msg = t.message;
  co_return t.threw ? t.ec : error_code();
}

/// The next event of type `t`, skipping others (libvirt's QEMU driver says resumed before started).
asio::awaitable<covirt::domain_event> event_of(covirt::event_stream& s, event_type t, std::chrono::seconds limit = 60s);

/// The next event, or fail after `limit` (it guards against an event that never comes).
[[maybe_unused]] asio::awaitable<covirt::domain_event> next_event(covirt::event_stream& s, std::chrono::seconds limit = 20s) {
  auto ex = co_await asio::this_coro::executor;
  covirt::op_timeout deadline(ex, limit);
  auto [ec, ev] = co_await s.async_next(deadline.bind(tuple));
  INFO("waiting for an event: " << ec.message());
  REQUIRE(!deadline.expired());
  REQUIRE(!ec);
  co_return ev;
}

[[maybe_unused]] asio::awaitable<covirt::domain_event> event_of(covirt::event_stream& s, event_type t, std::chrono::seconds limit) {
  for (;;) {
    auto e = co_await next_event(s, limit);
    if (e.type == t) co_return e;
  }
}

}  // namespace
