// Shared by the QEMU driver tests: a private qemu:///session per test whose guests are
// killed at the end whatever happened, and small bounded waits.
#pragma once

#include <covirt/connection.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace covirt::test_support {

/// QEMU processes whose command line names `needle` (a test's temp dir is in every socket path).
inline std::vector<pid_t> qemu_pids_with(const std::string& needle) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string n = e.path().filename().string();
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(n.c_str()));
    for (auto& a : covirt::qemu::process_cmdline(pid))
      if (a.find(needle) != std::string::npos) {
        out.push_back(pid);
        break;
      }
  }
  return out;
}

/// A fresh config/state dir per test; every guest started under it is killed at the end.
struct guest_dir {
  std::filesystem::path path;
  explicit guest_dir(const std::string& prefix = "covirt-drv") {
    std::string t = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  guest_dir(const guest_dir&) = delete;
  guest_dir& operator=(const guest_dir&) = delete;
  ~guest_dir() {
    for (pid_t pid : qemu_pids_with(path.string())) {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);  // ECHILD at once when it is not ours
    }
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string uri() const {
    return "qemu:///session?config_dir=" + (path / "c").string() + "&state_dir=" + (path / "s").string();
  }
  std::filesystem::path serial_log() const { return path / "serial.log"; }
  covirt::qemu::paths dirs() const {
    covirt::qemu::paths p;
    p.config_dir = path / "c";
    p.state_dir = path / "s";
    p.log_dir = path / "s" / "log";
    return p;
  }
  std::vector<covirt::qemu::runtime_record> records() const {
    diagnostics d;
    auto r = covirt::qemu::list_runtime(dirs(), d);
    return r ? *r : std::vector<covirt::qemu::runtime_record>{};
  }
};

/// A 64 MiB diskless q35 guest (TCG unless `type` says otherwise), with a balloon.
inline std::string guest_xml(const std::string& name, const std::string& type = "qemu", const std::string& devices = "") {
  return "<domain type='" + type + "'><name>" + name +
         "</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='q35'>hvm</type></os>"
         "<features><acpi/></features><devices>" +
         devices + "<memballoon model='virtio'/></devices></domain>";
}

inline bool alive(pid_t pid) {
  if (pid <= 0) return false;
  int st;
  ::waitpid(pid, &st, WNOHANG);  // reap it if it is our zombie
  return ::kill(pid, 0) == 0;
}

inline boost::asio::awaitable<covirt::connection> open_connection(boost::asio::any_io_executor ex,
                                                                  const std::string& uri, unsigned flags = 0) {
  diagnostics diag;
  auto [ec, c] = co_await covirt::async_open(ex, uri, flags, diag, boost::asio::as_tuple(boost::asio::use_awaitable));
  INFO(diag.message());
  REQUIRE(!ec);
  co_return std::move(c);
}

/// The next event of type `t` (others are skipped), within `limit`.
inline boost::asio::awaitable<std::optional<covirt::domain_event>> wait_event(
    covirt::event_stream& st, event_type t, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  namespace asio = boost::asio;
  auto ex = co_await asio::this_coro::executor;
  covirt::op_timeout deadline{ex, limit};
  for (;;) {
    auto [ec, ev] = co_await st.async_next(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) co_return std::nullopt;
    if (ev.type == t) co_return ev;
  }
}

/// The domain is in `state` for `reason`, and `events` brings (within 10 s) an event `type` with `detail`.
inline boost::asio::awaitable<void> expect_transition(covirt::connection& c, covirt::event_stream& events,
                                                      const std::string& name, covirt::domain_state state, int reason,
                                                      event_type type, int detail) {
  INFO("domain " << name << ", waiting for event " << covirt::to_string(type));
  auto st = co_await c.async_get_state(name);
  CHECK(st.state == state);
  CHECK(st.reason == reason);
  auto ev = co_await wait_event(events, type);
  REQUIRE(ev);
  CHECK(ev->detail == detail);
}

/// Polls `cond` every 10 ms; false after `limit`.
template <class Cond>
boost::asio::awaitable<bool> eventually(Cond cond, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  namespace asio = boost::asio;
  asio::steady_timer t(co_await asio::this_coro::executor);
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

}  // namespace covirt::test_support
