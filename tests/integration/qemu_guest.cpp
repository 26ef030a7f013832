// Integration tests: the QEMU driver with a tiny real guest OS (tests/guest/build-tiny-guest):
// guest-initiated shutdown, reboot and <on_poweroff>restart</on_poweroff>, under TCG.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace covirt::test_support;

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using covirt::diagnostics;
using covirt::domain_state;
using covirt::event_type;
using covirt::test_support::run_coro;
namespace reason = covirt::reason;
namespace detail_ = covirt::event_detail;

constexpr auto tuple = asio::as_tuple(asio::use_awaitable);
const std::string up_line = "covirt-tiny-guest: up";
const std::string off_line = "covirt-tiny-guest: powering off";

// The tiny guest, built (or found in the cache) once per process. Fails loudly: no silent skip.
struct tiny_guest {
  fs::path kernel, initrd;
};

const tiny_guest& guest_image() {
  static std::optional<tiny_guest> built;
  static std::string failure;
  if (!built && failure.empty()) {
    const char* root = std::getenv("COVIRT_SOURCE_ROOT");
    const char* cache = std::getenv("COVIRT_GUEST_CACHE");
    fs::path out = cache && *cache ? fs::path(cache) : fs::path("/var/cache/covirt/tiny-guest");
    if (!root || !*root) {
      failure = "COVIRT_SOURCE_ROOT is not set (it must name the covirt source tree)";
    } else {
      fs::path script = fs::path(root) / "tests" / "guest" / "build-tiny-guest";
      std::string cmd = "'" + script.string() + "' '" + out.string() + "' >/dev/null";
      auto t0 = std::chrono::steady_clock::now();
      int rc = std::system(cmd.c_str());
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "[qemu_guest] build-tiny-guest: status %d, %lld ms\n", rc, static_cast<long long>(ms));
      tiny_guest g{out / "vmlinuz", out / "initrd.img"};
      if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        failure = "'" + cmd + "' failed (status " + std::to_string(rc) + "); see its stderr above";
      else if (!fs::exists(g.kernel) || !fs::exists(g.initrd))
        failure = "build-tiny-guest succeeded but " + g.kernel.string() + " or " + g.initrd.string() + " is missing";
      else
        built = g;
    }
  }
  if (!built) FAIL("cannot build the tiny guest: " << failure);
  return *built;
}


std::string tiny_xml(const std::string& name, const guest_dir& dir, const std::string& on_poweroff = "") {
  const auto& g = guest_image();
  std::string lifecycle = on_poweroff.empty() ? "" : "<on_poweroff>" + on_poweroff + "</on_poweroff>";
  return "<domain type='qemu'><name>" + name +
         "</name><memory unit='MiB'>128</memory>"
         "<os><type arch='x86_64' machine='q35'>hvm</type><kernel>" +
         g.kernel.string() + "</kernel><initrd>" + g.initrd.string() +
         "</initrd><cmdline>console=ttyS0 quiet</cmdline></os>"
         "<features><acpi/></features>" +
         lifecycle +
         "<devices><serial type='file'><source path='" + dir.serial_log().string() +
         "'/><target port='0'/></serial></devices></domain>";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t count_of(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}


long long ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}


// Polls the serial log every 50 ms until it holds at least `n` "up" lines; false after `limit`.
asio::awaitable<bool> wait_up(const guest_dir& dir, std::size_t n, std::chrono::milliseconds limit = 30s) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (count_of(slurp(dir.serial_log()), up_line) >= n) co_return true;
    if (std::chrono::steady_clock::now() > end) co_return false;
    t.expires_after(50ms);
    co_await t.async_wait(asio::use_awaitable);
  }
}

// Every event until one of type `t` (included), within `limit`; the last is not `t` on timeout.
asio::awaitable<std::vector<covirt::domain_event>> events_until(covirt::event_stream& st, event_type t,
                                                                std::chrono::milliseconds limit) {
  auto ex = co_await asio::this_coro::executor;
  covirt::op_timeout deadline{ex, limit};
  std::vector<covirt::domain_event> out;
  for (;;) {
    auto [ec, ev] = co_await st.async_next(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) co_return out;
    out.push_back(ev);
    if (ev.type == t) co_return out;
  }
}

std::string describe(const std::vector<covirt::domain_event>& evs) {
  std::string s;
  for (auto& e : evs) s += "(" + std::to_string(static_cast<int>(e.type)) + "," + std::to_string(e.detail) + ") ";
  return s;
}

}  // namespace

TEST_CASE("qemu guest: the guest powers off on shutdown", "[qemu_guest]") {
  guest_image();
  guest_dir dir{"covirt-guest"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string xml = tiny_xml("tg1", dir);
        co_await conn.async_define_xml(xml);
        auto t0 = std::chrono::steady_clock::now();
        co_await conn.async_create("tg1");
        auto recs = dir.records();
        REQUIRE(recs.size() == 1);
        pid_t pid = recs[0].pid;
        bool up = co_await wait_up(dir, 1);
        INFO("serial log:\n" << slurp(dir.serial_log()));
        REQUIRE(up);
        std::fprintf(stderr, "[qemu_guest] shutdown: start -> up %lld ms\n", ms_since(t0));

        auto events = conn.subscribe("tg1");
        auto t1 = std::chrono::steady_clock::now();
        co_await conn.async_shutdown("tg1");
        auto evs = co_await events_until(events, event_type::stopped, 15s);
        std::fprintf(stderr, "[qemu_guest] shutdown: async_shutdown -> stopped event %lld ms\n", ms_since(t1));
        INFO("events (type,detail): " << describe(evs));
        REQUIRE(!evs.empty());
        REQUIRE(evs.back().type == event_type::stopped);
        CHECK(evs.back().detail == detail_::stopped_shutdown);
        // libvirt's order: SHUTDOWN_FINISHED, then STOPPED_SHUTDOWN; nothing else in between.
        REQUIRE(evs.size() == 2);
        CHECK(evs[0].type == event_type::shutdown);
        CHECK(evs[0].detail == detail_::shutdown_finished);

        auto st = co_await conn.async_get_state("tg1");
        CHECK(st.state == domain_state::shutoff);
        CHECK(st.reason == reason::shutdown);
        CHECK_FALSE(co_await conn.async_is_active("tg1"));
        CHECK_FALSE(alive(pid));
        CHECK(dir.records().empty());
        CHECK(qemu_pids_with(dir.path.string()).empty());
        std::string log = slurp(dir.serial_log());
        INFO("serial log:\n" << log);
        CHECK(log.find(off_line) != std::string::npos);
      },
      90s);
}

TEST_CASE("qemu guest: reboot resets the guest, which comes back under the same id", "[qemu_guest]") {
  guest_image();
  guest_dir dir{"covirt-guest"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string xml = tiny_xml("tg2", dir);
        co_await conn.async_define_xml(xml);
        co_await conn.async_create("tg2");
        auto ref = co_await conn.async_lookup_by_name("tg2");
        REQUIRE(ref.id >= 1);
        auto recs = dir.records();
        REQUIRE(recs.size() == 1);
        pid_t pid = recs[0].pid;
        bool up = co_await wait_up(dir, 1);
        INFO("serial log:\n" << slurp(dir.serial_log()));
        REQUIRE(up);

        auto events = conn.subscribe("tg2");
        auto t1 = std::chrono::steady_clock::now();
        co_await conn.async_reboot("tg2");
        bool again = co_await wait_up(dir, 2);
        std::fprintf(stderr, "[qemu_guest] reboot: async_reboot -> second up %lld ms\n", ms_since(t1));
        INFO("serial log:\n" << slurp(dir.serial_log()));
        CHECK(again);

        auto st = co_await conn.async_get_state("tg2");
        CHECK(st.state == domain_state::running);
        auto ref2 = co_await conn.async_lookup_by_name("tg2");
        CHECK(ref2.id == ref.id);
        CHECK(alive(pid));
        recs = dir.records();
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].pid == pid);
        CHECK(recs[0].id == ref.id);
        // A reboot is no stop.
        std::vector<covirt::domain_event> seen;
        while (events.pending() > 0) {
          auto evs = co_await events_until(events, event_type::stopped, 100ms);
          seen.insert(seen.end(), evs.begin(), evs.end());
        }
        INFO("events (type,detail): " << describe(seen));
        for (auto& e : seen) CHECK(e.type != event_type::stopped);

        co_await conn.async_destroy("tg2");
        CHECK_FALSE(alive(pid));
        CHECK(dir.records().empty());
      },
      90s);
}

TEST_CASE("qemu guest: on_poweroff restart brings the guest back after a shutdown", "[qemu_guest]") {
  guest_image();
  guest_dir dir{"covirt-guest"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string policy = "restart";
        std::string xml = tiny_xml("tg3", dir, policy);
        co_await conn.async_define_xml(xml);
        co_await conn.async_create("tg3");
        auto ref = co_await conn.async_lookup_by_name("tg3");
        auto recs = dir.records();
        REQUIRE(recs.size() == 1);
        pid_t pid = recs[0].pid;
        bool up = co_await wait_up(dir, 1);
        INFO("serial log:\n" << slurp(dir.serial_log()));
        REQUIRE(up);

        auto events = conn.subscribe("tg3");
        auto t1 = std::chrono::steady_clock::now();
        co_await conn.async_shutdown("tg3");
        bool again = co_await wait_up(dir, 2);
        std::fprintf(stderr, "[qemu_guest] on_poweroff=restart: async_shutdown -> second up %lld ms\n", ms_since(t1));
        std::string log = slurp(dir.serial_log());
        INFO("serial log:\n" << log);
        CHECK(log.find(off_line) != std::string::npos);
        CHECK(again);

        auto st = co_await conn.async_get_state("tg3");
        CHECK(st.state == domain_state::running);
        auto ref2 = co_await conn.async_lookup_by_name("tg3");
        CHECK(ref2.id == ref.id);
        CHECK(alive(pid));
        CHECK(dir.records().size() == 1);
        std::vector<covirt::domain_event> seen;
        while (events.pending() > 0) {
          auto evs = co_await events_until(events, event_type::stopped, 100ms);
          seen.insert(seen.end(), evs.begin(), evs.end());
        }
        INFO("events (type,detail): " << describe(seen));
        for (auto& e : seen) CHECK(e.type != event_type::stopped);

        // And it powers off for good once the policy is not asked: destroy.
        co_await conn.async_destroy("tg3");
        CHECK_FALSE(alive(pid));
        CHECK(dir.records().empty());
      },
      90s);
}
