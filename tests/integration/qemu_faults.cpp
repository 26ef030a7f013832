// Integration tests: faults of the QEMU driver that a real QEMU cannot be made to commit on
// demand (a corrupt or endless QMP reply, a monitor that closes or hangs, QEMU exiting in the
// middle of a command), played by tests/fixtures/fake_qemu (COVIRT_FAKE_QEMU, started through
// <emulator> in the domain XML, misbehaving as COVIRT_FAKE_QEMU_FAULT says); and a driver
// restart in the middle of a load on real QEMU guests.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/timeout.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace {

std::string fake_qemu() {
  const char* p = std::getenv("COVIRT_FAKE_QEMU");
  INFO("COVIRT_FAKE_QEMU must name the fake_qemu fixture");
  REQUIRE(p != nullptr);
  REQUIRE(fs::exists(p));
  return p;
}

/// A guest whose emulator is the fake QEMU.
std::string fake_xml(const std::string& name) {
  return guest_xml(name, "qemu", "<emulator>" + fake_qemu() + "</emulator>");
}

/// The fault the next fake QEMU started will commit (the driver passes its environment on).
struct fault_env {
  explicit fault_env(const char* spec) { ::setenv("COVIRT_FAKE_QEMU_FAULT", spec, 1); }
  ~fault_env() { ::unsetenv("COVIRT_FAKE_QEMU_FAULT"); }
  fault_env(const fault_env&) = delete;
  fault_env& operator=(const fault_env&) = delete;
};

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

/// Defines and starts `name` on the fake QEMU; returns the fake's pid.
asio::awaitable<pid_t> start_fake(covirt::connection& conn, guest_dir& dir, const std::string& name) {
  std::string xml = fake_xml(name);
  co_await conn.async_define_xml(xml);
  co_await conn.async_create(name);
  auto recs = dir.records();
  REQUIRE(recs.size() == 1);
  pid_t pid = recs[0].pid;
  REQUIRE(alive(pid));
  auto pids = qemu_pids_with(dir.path.string());
  CHECK(std::find(pids.begin(), pids.end(), pid) != pids.end());
  auto st = co_await conn.async_get_state(name);
  CHECK(st.state == domain_state::running);
  co_return pid;
}

/// After a fault: the fake is gone, nothing runs under the test's dir, no runtime record.
asio::awaitable<void> check_nothing_left(guest_dir& dir, pid_t pid) {
  bool gone = co_await eventually([&] { return !alive(pid); }, 3s);
  CHECK(gone);
  CHECK(qemu_pids_with(dir.path.string()).empty());
  CHECK(dir.records().empty());
}

/// A call made under the caller's own deadline, timed: what the fault tests look at.
struct timed_call {
  error_code ec;
  bool expired = false;  // the deadline, not the driver, ended it
  double took = 0;       // seconds
};

/// `start(token)` starts the call (say `conn.async_suspend(name, diag, token)`) under a deadline of `limit`.
template <class Start>
asio::awaitable<timed_call> within(clock_type::duration limit, Start start) {
  timed_call out;
  auto t0 = clock_type::now();
  auto ex = co_await asio::this_coro::executor;
  covirt::op_timeout deadline{ex, limit};
  auto [e] = co_await start(asio::as_tuple(deadline.bind(asio::use_awaitable)));
  out.ec = e;
  out.expired = deadline.expired();
  out.took = seconds_since(t0);
  co_return out;
}

/// The domain is shut off for `why`, still defined, and starts again on a well-behaved fake.
asio::awaitable<void> check_shut_off_and_restartable(covirt::connection& conn, guest_dir& dir, const std::string& name,
                                                     int why) {
  auto st = co_await conn.async_get_state(name);
  CHECK(st.state == domain_state::shutoff);
  CHECK(st.reason == why);
  bool active = co_await conn.async_is_active(name);
  CHECK_FALSE(active);
  bool persistent = co_await conn.async_is_persistent(name);
  CHECK(persistent);
  auto info = co_await conn.async_get_info(name);
  CHECK(info.state == domain_state::shutoff);
  // The fault was for the first fake only (the variable is unset by then): a new one behaves.
  ::unsetenv("COVIRT_FAKE_QEMU_FAULT");
  co_await conn.async_create(name);
  auto recs = dir.records();
  REQUIRE(recs.size() == 1);
  pid_t pid = recs[0].pid;
  co_await conn.async_suspend(name);
  auto ps = co_await conn.async_get_state(name);
  CHECK(ps.state == domain_state::paused);
  co_await conn.async_destroy(name);
  CHECK_FALSE(alive(pid));
  CHECK(qemu_pids_with(dir.path.string()).empty());
  CHECK(dir.records().empty());
}

/// The monitor breaks under a pending `stop` (`spec` says how): the call fails at once with
/// `want` (and a message containing `msg`), and within ~3 s the driver stops the fake, which
/// still runs, as failed (libvirt's VIR_DOMAIN_SHUTOFF_FAILED, event stopped/failed).
void broken_monitor_case(const char* spec, errc want, const char* msg) {
  guest_dir dir("covirt-fault");
  fault_env fe(spec);
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string name = "f1";
        auto events = conn.subscribe(name);
        pid_t pid = co_await start_fake(conn, dir, name);

        diagnostics diag;
        auto t0 = clock_type::now();
        auto call = co_await within(10s, [&](auto token) { return conn.async_suspend(name, diag, token); });
        error_code ec = call.ec;
        double took = call.took;
        INFO(spec << ": " << ec.message() << ": " << diag.message() << " after " << took << " s");
        CHECK(ec == want);
        CHECK(contains(diag.message(), msg));
        CHECK(took < 2.5);

        auto ev = co_await wait_event(events, event_type::stopped, 6s);
        double stopped_after = seconds_since(t0);
        INFO("stopped after " << stopped_after << " s");
        REQUIRE(ev);
        CHECK(ev->detail == detail_::stopped_failed);
        CHECK(ev->domain.name == name);
        CHECK(stopped_after < 4.0);  // the driver gives QEMU 1 s to exit by itself
        CHECK_FALSE(alive(pid));  // the event comes once the process is gone
        co_await check_nothing_left(dir, pid);
        co_await check_shut_off_and_restartable(conn, dir, name, reason::failed);
      },
      30s);
}

/// query-status through the monitor passthrough: QEMU's own idea of the run state.
asio::awaitable<std::string> qemu_status(covirt::connection& conn, const std::string& name) {
  std::string cmd = R"({"execute":"query-status"})";
  std::string reply = co_await conn.async_qemu_monitor_command(name, cmd);
  boost::json::value v = boost::json::parse(reply);
  std::string out;
  if (auto* r = v.as_object().if_contains("return"))
    if (auto* s = r->as_object().if_contains("status"); s && s->is_string()) out = std::string(s->get_string());
  co_return out;
}

}  // namespace

TEST_CASE("qemu faults: the fake QEMU works as a guest", "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string name = "ok";
    auto events = conn.subscribe(name);
    pid_t pid = co_await start_fake(conn, dir, name);
    auto started = co_await wait_event(events, event_type::started, 2s);
    REQUIRE(started);
    CHECK(started->detail == detail_::started_booted);
    co_await conn.async_suspend(name);
    auto ev = co_await wait_event(events, event_type::suspended, 2s);
    REQUIRE(ev);
    std::string s1 = co_await qemu_status(conn, name);
    CHECK(s1 == "paused");
    co_await conn.async_resume(name);
    std::string s2 = co_await qemu_status(conn, name);
    CHECK(s2 == "running");
    auto info = co_await conn.async_get_info(name);
    CHECK(info.state == domain_state::running);
    CHECK(info.memory_kib == 65536);
    co_await conn.async_reboot(name);  // the ACPI button too: the fake never powers off
    co_await conn.async_shutdown(name);  // a POWERDOWN nobody acts on
    std::string unknown = R"({"execute":"no-such-command"})";
    std::string reply = co_await conn.async_qemu_monitor_command(name, unknown);
    CHECK(contains(reply, "CommandNotFound"));
    auto t0 = clock_type::now();
    co_await conn.async_destroy(name);  // `quit` answered: no signal needed
    CHECK(seconds_since(t0) < 1.5);
    ev = co_await wait_event(events, event_type::stopped, 2s);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::stopped_destroyed);
    co_await check_nothing_left(dir, pid);
  });
}

TEST_CASE("qemu faults: a reply that is not JSON stops the guest as failed", "[qemu_faults]") {
  broken_monitor_case("garbage:stop", errc::rpc, "malformed QMP message");
}

TEST_CASE("qemu faults: an endless reply line stops the guest as failed", "[qemu_faults]") {
  broken_monitor_case("oversize:stop", errc::rpc, "exceeds the limit");
}

TEST_CASE("qemu faults: the monitor closed under a pending command stops the guest as failed", "[qemu_faults]") {
  // The process still runs with its monitor gone: the command fails at once (the driver calls
  // the guest "not running", as libvirt does once its monitor reached EOF), then it is stopped.
  broken_monitor_case("close:stop", errc::operation_invalid, "not running");
}

TEST_CASE("qemu faults: a command never answered ends at the caller's deadline; destroy still works",
          "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  fault_env fe("hang:stop");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string name = "h1";
        auto events = conn.subscribe(name);
        pid_t pid = co_await start_fake(conn, dir, name);

        diagnostics diag;
        auto call = co_await within(1500ms, [&](auto token) { return conn.async_suspend(name, diag, token); });
        error_code ec = call.ec;
        bool expired = call.expired;
        double took = call.took;
        INFO("suspend: " << ec.message() << ": " << diag.message() << " after " << took << " s");
        CHECK(expired);
        CHECK(ec == asio::error::operation_aborted);
        CHECK(took < 2.5);
        CHECK(alive(pid));

        // `stop` was never acknowledged: still running as far as anyone knows.
        auto st = co_await conn.async_get_state(name);
        CHECK(st.state == domain_state::running);

        // The monitor is wedged (the fake reads and never answers): destroy asks `quit` for 1 s,
        // then SIGTERM.
        diagnostics ddiag;
        auto dcall = co_await within(20s, [&](auto token) { return conn.async_destroy(name, ddiag, token); });
        error_code dec = dcall.ec;
        double dtook = dcall.took;
        INFO("destroy: " << dec.message() << ": " << ddiag.message() << " after " << dtook << " s");
        CHECK(!dec);
        CHECK(dtook < 4.0);
        CHECK_FALSE(alive(pid));
        auto ev = co_await wait_event(events, event_type::stopped, 2s);
        REQUIRE(ev);
        CHECK(ev->detail == detail_::stopped_destroyed);
        co_await check_nothing_left(dir, pid);
        auto after = co_await conn.async_get_state(name);
        CHECK(after.state == domain_state::shutoff);
        CHECK(after.reason == reason::destroyed);
      },
      60s);
}

TEST_CASE("qemu faults: a reply with a wrong id is dropped; the monitor goes on working", "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  fault_env fe("badid:stop");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string name = "b1";
        pid_t pid = co_await start_fake(conn, dir, name);
        diagnostics diag;
        auto call = co_await within(1500ms, [&](auto token) { return conn.async_suspend(name, diag, token); });
        error_code ec = call.ec;
        double took = call.took;
        INFO("suspend: " << ec.message() << ": " << diag.message() << " after " << took << " s");
        CHECK(ec == asio::error::operation_aborted);
        CHECK(took < 2.5);
        // Nothing broke: the next commands are answered.
        std::string s1 = co_await qemu_status(conn, name);
        CHECK(s1 == "running");
        auto st = co_await conn.async_get_state(name);
        CHECK(st.state == domain_state::running);
        co_await conn.async_suspend(name);
        std::string s2 = co_await qemu_status(conn, name);
        CHECK(s2 == "paused");
        co_await conn.async_destroy(name);
        co_await check_nothing_left(dir, pid);
      },
      60s);
}

TEST_CASE("qemu faults: QEMU exiting in the middle of a command is a crash", "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  fault_env fe("exit:stop");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string name = "x1";
        auto events = conn.subscribe(name);
        pid_t pid = co_await start_fake(conn, dir, name);

        diagnostics diag;
        auto t0 = clock_type::now();
        auto call = co_await within(10s, [&](auto token) { return conn.async_suspend(name, diag, token); });
        error_code ec = call.ec;
        double took = call.took;
        INFO("suspend: " << ec.message() << ": " << diag.message() << " after " << took << " s");
        CHECK(ec == errc::operation_invalid);
        CHECK(diag.message() == "domain is not running");
        CHECK(took < 2.0);

        auto ev = co_await wait_event(events, event_type::stopped, 3s);
        REQUIRE(ev);
        CHECK(ev->detail == detail_::stopped_crashed);
        CHECK(seconds_since(t0) < 2.0);
        // Only one stop: the broken monitor does not stop it a second time as failed.
        auto again = co_await wait_event(events, event_type::stopped, 1500ms);
        CHECK_FALSE(again);
        co_await check_nothing_left(dir, pid);
        co_await check_shut_off_and_restartable(conn, dir, name, reason::crashed);
      },
      30s);
}

TEST_CASE("qemu faults: a start whose first monitor command gets garbage fails cleanly", "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  fault_env fe("garbage:query-status");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string name = "s1";
        auto events = conn.subscribe(name);
        std::string xml = fake_xml(name);
        co_await conn.async_define_xml(xml);

        diagnostics diag;
        auto t0 = clock_type::now();
        error_code ec;
        {
          covirt::op_timeout deadline{ex, 15s};
          auto [e] = co_await conn.async_create(name, diag, asio::as_tuple(deadline.bind(asio::use_awaitable)));
          ec = e;
        }
        double took = seconds_since(t0);
        INFO("create: " << ec.message() << ": " << diag.message() << " after " << took << " s");
        CHECK(ec == errc::operation_failed);
        CHECK(contains(diag.message(), "first monitor command"));
        CHECK(contains(diag.message(), "malformed QMP message"));
        CHECK(contains(diag.message(), "'s1'"));
        CHECK(took < 3.0);

        CHECK(qemu_pids_with(dir.path.string()).empty());
        CHECK(dir.records().empty());
        CHECK_FALSE(fs::exists(dir.path / "s" / "s1.qmp"));
        bool active = co_await conn.async_is_active(name);
        CHECK_FALSE(active);
        bool persistent = co_await conn.async_is_persistent(name);
        CHECK(persistent);
        auto st = co_await conn.async_get_state(name);
        CHECK(st.state == domain_state::shutoff);
        auto doms = co_await conn.async_list_domains(covirt::list_flags::all);
        REQUIRE(doms.size() == 1);
        CHECK(doms[0].id == -1);
        // Neither started nor stopped.
        auto started = co_await wait_event(events, event_type::started, 300ms);
        CHECK_FALSE(started);
        auto stopped = co_await wait_event(events, event_type::stopped, 100ms);
        CHECK_FALSE(stopped);

        // The transient form is forgotten.
        ::setenv("COVIRT_FAKE_QEMU_FAULT", "garbage:query-status", 1);
        std::string t_name = "s2";
        std::string t_xml = fake_xml(t_name);
        auto [tec, tref] = co_await conn.async_create_xml(t_xml, 0u, diag, tuple);
        CHECK(tec == errc::operation_failed);
        auto [lec, lref] = co_await conn.async_lookup_by_name(t_name, diag, tuple);
        CHECK(lec == errc::no_domain);
        CHECK(qemu_pids_with(dir.path.string()).empty());
        CHECK(dir.records().empty());

        // And the defined one starts once the monitor behaves.
        ::unsetenv("COVIRT_FAKE_QEMU_FAULT");
        co_await conn.async_create(name);
        auto ref = co_await conn.async_lookup_by_name(name);
        CHECK(ref.id >= 1);
        co_await conn.async_destroy(name);
        CHECK(qemu_pids_with(dir.path.string()).empty());
      },
      30s);
}

TEST_CASE("qemu faults: the driver restarts under load and re-attaches to every guest", "[qemu_faults]") {
  guest_dir dir("covirt-fault");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        const std::vector<std::string> names{"l1", "l2", "l3", "l4"};
        std::map<std::string, int> ids;
        std::map<std::string, pid_t> pids;
        int ops_ok = 0, ops_failed = 0, in_flight = 0, in_flight_at_close = 0, workers = 0;
        bool stopping = false;
        {
          auto conn = co_await open_connection(ex, dir.uri());
          for (const auto& n : names) {
            std::string xml = guest_xml(n);
            co_await conn.async_define_xml(xml);
            co_await conn.async_create(n);
            auto ref = co_await conn.async_lookup_by_name(n);
            ids[n] = ref.id;
          }
          for (const auto& r : dir.records()) pids[r.name] = r.pid;
          REQUIRE(pids.size() == names.size());

          // One worker per guest: suspend, info, resume, info, ... until the connection closes.
          auto worker = [&](std::string n) -> asio::awaitable<void> {
            ++workers;
            diagnostics diag;
            // `stopping` is set by another coroutine between iterations (clang's loop analysis cannot see that).
            for (int i = 0;; ++i) {
              if (stopping) break;
              ++in_flight;
              error_code ec;
              if (i % 4 == 0) {
                auto [e] = co_await conn.async_suspend(n, diag, tuple);
                ec = e;
              } else if (i % 4 == 2) {
                auto [e] = co_await conn.async_resume(n, diag, tuple);
                ec = e;
              } else {
                auto [e, info] = co_await conn.async_get_info(n, diag, tuple);
                ec = e;
              }
              --in_flight;
              if (ec) ++ops_failed;
              else ++ops_ok;
            }
            --workers;
          };
          for (const auto& n : names) asio::co_spawn(ex, worker(n), asio::detached);

          bool busy = co_await eventually([&] { return ops_ok >= 200; }, 30s);
          CHECK(busy);
          // One more command per guest, started just before the close (initiations run in
          // order: each of these reaches QEMU, or waits for the guest's job, when the close
          // comes), on top of whatever the workers have in flight.
          int extra_done = 0, extra_failed = 0;
          std::vector<diagnostics> extra_diag(names.size());
          for (std::size_t i = 0; i < names.size(); ++i) {
            std::string qs = R"({"execute":"stop"})";
            conn.async_qemu_monitor_command(names[i], qs, extra_diag[i], [&](error_code ec, std::string) {
              ++extra_done;
              if (ec) ++extra_failed;
            });
          }
          in_flight_at_close = in_flight + static_cast<int>(names.size());
          stopping = true;
          co_await conn.async_close();  // mid-flight: the calls in flight end now
          bool drained = co_await eventually([&] { return workers == 0 && extra_done == int(names.size()); }, 10s);
          REQUIRE(drained);
          INFO("extra commands failed: " << extra_failed << " (" << extra_diag[0].message() << ")");
          CHECK(extra_failed > 0);
        }  // the old connection is gone; the guests are not
        INFO("ops ok " << ops_ok << ", failed " << ops_failed << ", in flight at close " << in_flight_at_close);
        CHECK(in_flight_at_close > 0);
        for (const auto& [n, pid] : pids) CHECK(alive(pid));

        auto conn = co_await open_connection(ex, dir.uri());
        auto active = co_await conn.async_list_domains(covirt::list_flags::active);
        CHECK(active.size() == names.size());
        for (const auto& n : names) {
          INFO("guest " << n);
          auto ref = co_await conn.async_lookup_by_name(n);
          CHECK(ref.id == ids[n]);
          bool is_active = co_await conn.async_is_active(n);
          CHECK(is_active);
          auto st = co_await conn.async_get_state(n);
          std::string q = co_await qemu_status(conn, n);
          INFO("QEMU says " << q << ", covirt says " << covirt::to_string(st.state) << " reason " << st.reason);
          if (q == "running") CHECK(st.state == domain_state::running);
          else if (q == "paused") CHECK(st.state == domain_state::paused);
          else FAIL("unexpected QEMU status " << q);

          // Operations work, from whichever state it was left in.
          if (st.state == domain_state::paused) co_await conn.async_resume(n);
          co_await conn.async_suspend(n);
          std::string q1 = co_await qemu_status(conn, n);
          CHECK(q1 == "paused");
          auto s1 = co_await conn.async_get_state(n);
          CHECK(s1.state == domain_state::paused);
          co_await conn.async_resume(n);
          std::string q2 = co_await qemu_status(conn, n);
          CHECK(q2 == "running");
          auto s2 = co_await conn.async_get_state(n);
          CHECK(s2.state == domain_state::running);
        }
        auto recs = dir.records();
        CHECK(recs.size() == names.size());
        for (const auto& r : recs) CHECK(r.pid == pids[r.name]);

        for (const auto& n : names) co_await conn.async_destroy(n);
        for (const auto& [n, pid] : pids) CHECK_FALSE(alive(pid));
        CHECK(qemu_pids_with(dir.path.string()).empty());
        CHECK(dir.records().empty());
        auto left = co_await conn.async_list_domains(covirt::list_flags::active);
        CHECK(left.empty());
      },
      120s);
}
