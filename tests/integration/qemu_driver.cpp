// Integration tests: the QEMU driver (qemu:///session) with real QEMU 7.2 guests under TCG.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/state.hpp>
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

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

}  // namespace

TEST_CASE("qemu driver: define, start, suspend, resume, dumpxml, destroy, undefine", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    CHECK(conn.type() == "QEMU");
    auto events = conn.subscribe("g1");

    auto ref = co_await conn.async_define_xml(guest_xml("g1"));
    CHECK(ref.name == "g1");
    CHECK(ref.id == -1);
    CHECK(ref.uuid.size() == 36);
    CHECK(fs::exists(dir.path / "c" / "g1.xml"));
    auto ev = co_await wait_event(events, event_type::defined);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::defined_added);

    co_await conn.async_create("g1");
    ev = co_await wait_event(events, event_type::started);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::started_booted);
    CHECK(ev->domain.id == 1);

    auto all = co_await conn.async_list_domains(covirt::list_flags::active);
    REQUIRE(all.size() == 1);
    CHECK(all[0].name == "g1");
    CHECK(all[0].id == 1);
    auto by_id = co_await conn.async_lookup_by_id(1);
    CHECK(by_id.name == "g1");

    auto recs = dir.records();
    REQUIRE(recs.size() == 1);
    pid_t pid = recs[0].pid;
    CHECK(alive(pid));
    CHECK(recs[0].id == 1);

    auto info = co_await conn.async_get_info("g1");
    CHECK(info.state == domain_state::running);
    CHECK(info.max_mem_kib == 65536);
    CHECK(info.memory_kib == 65536);
    CHECK(info.nr_virt_cpu == 1);
    auto st = co_await conn.async_get_state("g1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == reason::booted);
    CHECK(co_await conn.async_is_active("g1"));
    CHECK(co_await conn.async_is_persistent("g1"));
    CHECK(co_await conn.async_get_os_type("g1") == "hvm");

    co_await conn.async_suspend("g1");
    co_await expect_transition(conn, events, "g1", domain_state::paused, reason::user, event_type::suspended, detail_::suspended_paused);
    // Only one event for one suspend (QMP's STOP and the command's reply both said so).
    asio::steady_timer settle(ex, 200ms);
    co_await settle.async_wait(asio::use_awaitable);
    CHECK(events.pending() == 0);

    co_await conn.async_resume("g1");
    co_await expect_transition(conn, events, "g1", domain_state::running, reason::unpaused, event_type::resumed, detail_::resumed_unpaused);

    diagnostics diag;
    auto [rec] = co_await conn.async_resume("g1", diag, tuple);
    CHECK(rec == errc::operation_invalid);

    auto xml = co_await conn.async_get_xml("g1", 0u);
    CHECK(xml.find("<domain type='qemu' id='1'>") != std::string::npos);
    auto inactive = co_await conn.async_get_xml("g1", covirt::xml_flags::inactive);
    CHECK(inactive.find("id='1'") == std::string::npos);

    co_await conn.async_destroy("g1");
    ev = co_await wait_event(events, event_type::stopped);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::stopped_destroyed);
    st = co_await conn.async_get_state("g1");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == reason::destroyed);
    CHECK_FALSE(alive(pid));
    CHECK(dir.records().empty());
    CHECK_FALSE(fs::exists(dir.path / "s" / "g1.qmp"));

    auto [dec] = co_await conn.async_destroy("g1", diag, tuple);
    CHECK(dec == errc::operation_invalid);
    CHECK(diag.message() == "domain is not running");

    co_await conn.async_undefine("g1");
    ev = co_await wait_event(events, event_type::undefined);
    REQUIRE(ev);
    CHECK_FALSE(fs::exists(dir.path / "c" / "g1.xml"));
    auto [lec, lref] = co_await conn.async_lookup_by_name("g1", diag, tuple);
    CHECK(lec == errc::no_domain);
    CHECK(diag.message() == "no domain with matching name 'g1'");
  });
}

TEST_CASE("qemu driver: transient domains, start paused, ids count up", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    auto t1 = co_await conn.async_create_xml(guest_xml("t1"), 0u);
    CHECK(t1.id == 1);
    CHECK_FALSE(co_await conn.async_is_persistent("t1"));
    CHECK_FALSE(fs::exists(dir.path / "c" / "t1.xml"));
    auto t2 = co_await conn.async_create_xml(guest_xml("t2"), 1u);  // VIR_DOMAIN_START_PAUSED
    CHECK(t2.id == 2);
    auto st = co_await conn.async_get_state("t2");
    CHECK(st.state == domain_state::paused);
    CHECK(st.reason == reason::user);

    diagnostics diag;
    auto [ec, r] = co_await conn.async_create_xml(guest_xml("t1"), 0u, diag, tuple);
    CHECK(ec == errc::operation_failed);  // same name, another uuid
    CHECK(diag.message().find("already exists") != std::string::npos);

    co_await conn.async_destroy("t1");
    auto [lec, l] = co_await conn.async_lookup_by_name("t1", diag, tuple);
    CHECK(lec == errc::no_domain);
    co_await conn.async_resume("t2");
    co_await conn.async_destroy("t2");
    CHECK((co_await conn.async_list_domains(0u)).empty());
    CHECK(dir.records().empty());
  });
}

TEST_CASE("qemu driver: a start that fails says why and leaves nothing behind", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string disk =
        "<disk type='file' device='disk'><source file='/nonexistent.qcow2'/><target dev='vda' bus='virtio'/></disk>";
    co_await conn.async_define_xml(guest_xml("bad", "qemu", disk));
    diagnostics diag;
    auto [ec] = co_await conn.async_create("bad", diag, tuple);
    CHECK(ec == errc::operation_failed);
    INFO(diag.message());
    CHECK(diag.message().find("/nonexistent.qcow2") != std::string::npos);
    CHECK(diag.message().find("No such file or directory") != std::string::npos);
    CHECK_FALSE(co_await conn.async_is_active("bad"));
    CHECK(dir.records().empty());
    CHECK(qemu_pids_with(dir.path.string()).empty());

    // The transient form is forgotten at once.
    auto [ec2, r2] = co_await conn.async_create_xml(guest_xml("bad2", "qemu", disk), 0u, diag, tuple);
    CHECK(ec2 == errc::operation_failed);
    auto [lec, l] = co_await conn.async_lookup_by_name("bad2", diag, tuple);
    CHECK(lec == errc::no_domain);

    // type='kvm' where /dev/kvm is not usable: refused before anything runs.
    auto* drv = conn.driver_as<covirt::qemu::driver>();
    REQUIRE(drv != nullptr);
    drv->set_kvm_probe([] { return false; });
    co_await conn.async_define_xml(guest_xml("k1", "kvm"));
    auto [kec] = co_await conn.async_create("k1", diag, tuple);
    CHECK(kec == errc::config_unsupported);
    CHECK(diag.message().find("/dev/kvm") != std::string::npos);
    CHECK(qemu_pids_with(dir.path.string()).empty());
  });
}

TEST_CASE("qemu driver: QEMU killed with SIGKILL is a crash", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    auto events = conn.subscribe();
    co_await conn.async_define_xml(guest_xml("c1"));
    co_await conn.async_create("c1");
    auto recs = dir.records();
    REQUIRE(recs.size() == 1);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(::kill(recs[0].pid, SIGKILL) == 0);
    auto ev = co_await wait_event(events, event_type::stopped, 5s);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::stopped_crashed);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    auto st = co_await conn.async_get_state("c1");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == reason::crashed);
    CHECK(dir.records().empty());
    // It can start again.
    co_await conn.async_create("c1");
    CHECK(co_await conn.async_is_active("c1"));
    co_await conn.async_destroy("c1");
  });
}

TEST_CASE("qemu driver: guests outlive the connection and are re-attached", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    pid_t pid = 0;
    {
      auto conn = co_await open_connection(ex, dir.uri());
      co_await conn.async_define_xml(guest_xml("r1"));
      co_await conn.async_create("r1");
      co_await conn.async_create_xml(guest_xml("r2"), 0u);
      co_await conn.async_suspend("r2");
      pid = dir.records().at(0).pid;
    }  // the connection is gone; the guests are not
    CHECK(alive(pid));
    auto conn = co_await open_connection(ex, dir.uri());
    auto doms = co_await conn.async_list_domains(covirt::list_flags::active);
    REQUIRE(doms.size() == 2);
    CHECK(doms[0].name == "r1");
    CHECK(doms[0].id == 1);
    CHECK(doms[1].name == "r2");
    CHECK(doms[1].id == 2);
    CHECK(co_await conn.async_is_persistent("r1"));
    CHECK_FALSE(co_await conn.async_is_persistent("r2"));
    auto st = co_await conn.async_get_state("r2");
    CHECK(st.state == domain_state::paused);
    CHECK(st.reason == reason::user);
    st = co_await conn.async_get_state("r1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == reason::booted);

    co_await conn.async_suspend("r1");
    CHECK((co_await conn.async_get_state("r1")).state == domain_state::paused);
    co_await conn.async_resume("r1");
    CHECK((co_await conn.async_get_state("r1")).state == domain_state::running);
    auto xml = co_await conn.async_get_xml("r1", 0u);
    CHECK(xml.find("id='1'") != std::string::npos);

    // A new guest gets the next id.
    auto r3 = co_await conn.async_create_xml(guest_xml("r3"), 0u);
    CHECK(r3.id == 3);

    auto events = conn.subscribe("r1");
    co_await conn.async_destroy("r1");
    auto ev = co_await wait_event(events, event_type::stopped);
    REQUIRE(ev);
    CHECK(ev->detail == detail_::stopped_destroyed);
    CHECK_FALSE(alive(pid));
    co_await conn.async_destroy("r2");
    co_await conn.async_destroy("r3");
    CHECK(dir.records().empty());
    CHECK((co_await conn.async_list_domains(0u)).size() == 1);
  });
}

TEST_CASE("qemu driver: a stale runtime record is dropped at open", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    {
      auto conn = co_await open_connection(ex, dir.uri());
      co_await conn.async_define_xml(guest_xml("s1"));
    }
    // A pid that existed and is gone.
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int wst;
    ::waitpid(child, &wst, 0);
    covirt::qemu::runtime_record rec;
    rec.name = "s1";
    rec.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
    rec.id = 7;
    rec.pid = child;
    rec.marker = "guest=s1";
    rec.qmp_socket = (dir.path / "s" / "s1.qmp").string();
    rec.boot_id = covirt::qemu::current_boot_id();
    diagnostics diag;
    REQUIRE(covirt::qemu::save_runtime(dir.dirs(), rec, diag));
    // And a record of a transient guest that is gone too.
    rec.name = "s2";
    rec.uuid = "6695eb01-f6a4-8304-79aa-97f2502e1940";
    rec.live_xml = guest_xml("s2");
    REQUIRE(covirt::qemu::save_runtime(dir.dirs(), rec, diag));

    auto conn = co_await open_connection(ex, dir.uri());
    CHECK_FALSE(co_await conn.async_is_active("s1"));
    auto st = co_await conn.async_get_state("s1");
    CHECK(st.state == domain_state::shutoff);
    auto [ec, r] = co_await conn.async_lookup_by_name("s2", diag, tuple);
    CHECK(ec == errc::no_domain);
    CHECK(dir.records().empty());
  });
}

TEST_CASE("qemu driver: concurrent destroy and suspend on one guest", "[qemu_driver]") {
  guest_dir dir;
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        co_await conn.async_define_xml(guest_xml("k"));
        for (int round = 0; round < 3; ++round) {
          co_await conn.async_create("k");
          diagnostics d1, d2, d3;
          int done = 0;
          error_code e1, e2, e3;
          auto run = [&](auto f, error_code& out) -> asio::awaitable<void> {
            out = co_await f();
            ++done;
          };
          asio::co_spawn(ex, run([&]() -> asio::awaitable<error_code> {
                               auto [ec] = co_await conn.async_suspend("k", d1, tuple);
                               co_return ec;
                             }, e1), asio::detached);
          asio::co_spawn(ex, run([&]() -> asio::awaitable<error_code> {
                               auto [ec] = co_await conn.async_destroy("k", d2, tuple);
                               co_return ec;
                             }, e2), asio::detached);
          asio::co_spawn(ex, run([&]() -> asio::awaitable<error_code> {
                               auto [ec] = co_await conn.async_destroy("k", d3, tuple);
                               co_return ec;
                             }, e3), asio::detached);
          CHECK(co_await eventually([&] { return done == 3; }, 15s));
          CHECK(!e2);  // the first destroy wins
          if (e1) CHECK(e1 == errc::operation_invalid);
          CHECK(e3 == errc::operation_invalid);
          CHECK(d3.message() == "domain is not running");
          CHECK_FALSE(co_await conn.async_is_active("k"));
          CHECK(dir.records().empty());
        }
        CHECK(qemu_pids_with(dir.path.string()).empty());
      },
      60s);
}

TEST_CASE("qemu driver: read-only connections, unsafe names, node facts", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    diagnostics diag;
    auto [e1, r1] = co_await conn.async_define_xml(guest_xml(".hidden"), diag, tuple);
    CHECK(e1);
    CHECK(diag.message().find(".hidden") != std::string::npos);
    auto [e2, r2] = co_await conn.async_define_xml(guest_xml("../x"), diag, tuple);
    CHECK(e2);
    CHECK(fs::is_empty(dir.path / "c"));

    co_await conn.async_define_xml(guest_xml("ro"));
    // (Opened before the guest starts: QEMU serves one QMP client, and `conn` is it.)
    auto ro = co_await open_connection(ex, dir.uri(), covirt::open_flags::read_only);
    co_await conn.async_create("ro");
    auto [e3] = co_await ro.async_destroy("ro", diag, tuple);
    CHECK(e3 == errc::operation_denied);
    auto [e5] = co_await ro.async_create("ro", diag, tuple);
    CHECK(e5 == errc::operation_denied);
    CHECK((co_await ro.async_list_domains(0u)).size() == 1);
    CHECK((co_await conn.async_get_state("ro")).state == domain_state::running);
    co_await conn.async_destroy("ro");

    auto ni = co_await conn.async_node_get_info();
    CHECK(ni.cpus >= 1);
    CHECK(ni.memory_kib > 0);
    CHECK(ni.nodes == 1);
    CHECK(ni.sockets * ni.cores * ni.threads == ni.cpus);
    auto ver = co_await conn.async_get_version();
    CHECK(ver >= 7000000);
    auto caps = co_await conn.async_get_capabilities();
    CHECK(caps.find("<arch>x86_64</arch>") != std::string::npos);
    CHECK(caps.find("qemu-system-x86_64") != std::string::npos);
    CHECK(!(co_await conn.async_get_hostname()).empty());
    CHECK(co_await conn.async_get_max_vcpus("kvm") == 255);

    auto [e4, c4] = co_await covirt::async_open(ex, "qemu:///nowhere", 0u, diag, tuple);
    CHECK(e4 == errc::invalid_arg);
  });
}

TEST_CASE("qemu driver: balloon and autostart", "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    {
      auto conn = co_await open_connection(ex, dir.uri());
      co_await conn.async_define_xml(guest_xml("a1"));
      co_await conn.async_set_autostart("a1", true);
      CHECK(co_await conn.async_get_autostart("a1"));
      co_await conn.async_set_memory("a1", 32768u, covirt::modify::config);
      auto inactive = co_await conn.async_get_xml("a1", covirt::xml_flags::inactive);
      CHECK(inactive.find("<currentMemory unit='KiB'>32768</currentMemory>") != std::string::npos);
    }
    // A new driver starts autostart domains that are not running.
    auto conn = co_await open_connection(ex, dir.uri());
    CHECK(co_await conn.async_is_active("a1"));
    co_await conn.async_set_memory("a1", 49152u, covirt::modify::live);
    auto info = co_await conn.async_get_info("a1");
    CHECK(info.max_mem_kib == 65536);
    diagnostics diag;
    auto [ec] = co_await conn.async_set_memory("a1", 1u << 30, covirt::modify::live, diag, tuple);
    CHECK(ec == errc::invalid_arg);
    co_await conn.async_destroy("a1");
  });
}

TEST_CASE("qemu driver: connections to the same directories share one state; another program is refused",
          "[qemu_driver]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto rw = co_await open_connection(ex, dir.uri());
    co_await rw.async_define_xml(guest_xml("sh1"));
    co_await rw.async_create("sh1");

    // A second connection (read-only here) opens at once and sees the same guests and events:
    // it does not wait for QEMU's single monitor connection, which the first one holds.
    auto t0 = std::chrono::steady_clock::now();
    auto ro = co_await open_connection(ex, dir.uri(), covirt::open_flags::read_only);
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    auto events = ro.subscribe("sh1");
    co_await rw.async_suspend("sh1");
    auto ev = co_await wait_event(events, event_type::suspended, 5000ms);
    CHECK(ev.has_value());
    auto st = co_await ro.async_get_state("sh1");
    CHECK(st.state == domain_state::paused);
    std::string status_cmd = R"({"execute":"query-status"})";
    diagnostics diag;
    auto [e0, r0] = co_await ro.async_qemu_monitor_command("sh1", status_cmd, diag, tuple);
    CHECK(e0 == errc::operation_denied);  // read-only, whatever it shares

    // Closing one leaves the other working.
    co_await ro.async_close();
    co_await rw.async_resume("sh1");
    std::string status = co_await rw.async_qemu_monitor_command("sh1", status_cmd);
    CHECK(status.find("\"running\"") != std::string::npos);

    // Another program on the same directories is told who has them (here covirt-sh).
    const char* sh = std::getenv("COVIRT_SH");
    REQUIRE(sh);
    fs::path out = dir.path / "sh.out";
    std::string cmd = std::string("'") + sh + "' -c '" + dir.uri() + "' list > '" + out.string() + "' 2>&1";
    int rc = std::system(cmd.c_str());
    CHECK(WIFEXITED(rc));
    CHECK(WEXITSTATUS(rc) == 1);
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(text);
    CHECK(text.find("managed by another program (pid " + std::to_string(::getpid()) + ")") != std::string::npos);
    CHECK(co_await rw.async_is_active("sh1"));
    co_await rw.async_destroy("sh1");
  });
  // Once this program let go, another one may take them.
  const char* sh = std::getenv("COVIRT_SH");
  std::string cmd = std::string("'") + sh + "' -c '" + dir.uri() + "' list > /dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  CHECK(WEXITSTATUS(rc) == 0);
}
