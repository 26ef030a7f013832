// Integration tests: the QEMU driver with a tiny real guest OS (tests/guest/build-tiny-guest):
// guest-initiated shutdown, reboot and <on_poweroff>restart</on_poweroff>, under TCG.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include "common/qemu_guests.hpp"
#include "common/tiny_guest.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

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

long long ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}


// Polls the serial log every 50 ms until it holds at least `n` "up" lines; false after `limit`.

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
