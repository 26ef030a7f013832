// tests/common: run one coroutine to completion on a fresh io_context, with a deadline.
#pragma once

#include <catch2/catch.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <covirt/error.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace covirt::test_support {

namespace asio = boost::asio;

/// Runs `f(executor)` (a callable returning asio::awaitable<void>) under `ioc.run_for(limit)`.
/// Rethrows what the coroutine threw (so REQUIRE inside it works) and fails if it did not finish.
template <class F>
void run_coro(F f, std::chrono::steady_clock::duration limit = std::chrono::seconds(30)) {
  asio::io_context ioc;
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(ioc, f(ioc.get_executor()), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  ioc.run_for(limit);
  if (error) std::rethrow_exception(error);
  if (!done) FAIL("the coroutine did not finish within the time limit");
}

/// A file's whole contents ("" if it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// What a failed awaitable threw (threw false: it did not): the code, the driver's words, and what().
struct thrown {
  bool threw = false;
  covirt::error_code ec;
  std::string message;
  std::string what;
};

template <class T>
asio::awaitable<thrown> catch_error(asio::awaitable<T> a) {
  thrown t;
  try {
    co_await std::move(a);
  } catch (const covirt::error& e) {
    t = thrown{true, e.code(), e.message(), e.what()};
  }
  co_return t;
}

}  // namespace covirt::test_support
