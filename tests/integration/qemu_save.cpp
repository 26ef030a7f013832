// Integration tests: save/restore, core dumps, block stats and monitor passthrough of the QEMU driver.
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
#include <fstream>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

std::string read_head(const fs::path& p, std::size_t n) {
  std::ifstream in(p, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

}  // namespace

TEST_CASE("qemu save/restore: state to a file and back", "[qemu_save]") {
  guest_dir dir{"covirt-save"};
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    auto st = conn.subscribe("sv");
    co_await conn.async_define_xml(guest_xml("sv"));
    co_await conn.async_create("sv");
    auto before = co_await conn.async_lookup_by_name("sv");
    auto started = co_await wait_event(st, event_type::started);
    REQUIRE(started);
    pid_t pid = dir.records().at(0).pid;

    // A read-only connection may not save.
    auto ro = co_await open_connection(ex, dir.uri(), covirt::open_flags::read_only);
    diagnostics diag;
    fs::path file = dir.path / "it's saved.img";
    auto [e0] = co_await ro.async_save("sv", file.string(), diag, tuple);
    CHECK(e0 == errc::operation_denied);

    co_await conn.async_save("sv", file.string());
    CHECK(fs::exists(file));
    CHECK(fs::file_size(file) > 4096);
    co_await expect_transition(conn, st, "sv", domain_state::shutoff, reason::saved, event_type::stopped, detail_::stopped_saved);
    CHECK(co_await eventually([&] { return !alive(pid); }));
    CHECK(dir.records().empty());

    auto ref = co_await conn.async_restore(file.string());
    CHECK(ref.name == before.name);
    CHECK(ref.uuid == before.uuid);
    co_await expect_transition(conn, st, "sv", domain_state::running, reason::running_restored, event_type::started, detail_::started_restored);
    CHECK(co_await conn.async_is_persistent("sv"));

    // Not a save file.
    fs::path junk = dir.path / "junk";
    { std::ofstream(junk) << "hello"; }
    auto [e1, r1] = co_await conn.async_restore(junk.string(), diag, tuple);
    CHECK(e1 == errc::invalid_arg);

    co_await conn.async_destroy("sv");
  });
}

TEST_CASE("qemu core dump, block stats, monitor command", "[qemu_save]") {
  guest_dir dir{"covirt-save"};
  fs::path disk = dir.path / "d.qcow2";
  std::string cmd = "qemu-img create -f qcow2 '" + disk.string() + "' 16M >/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string devs = "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" +
                       disk.string() + "'/><target dev='vda' bus='virtio'/></disk>";
    co_await conn.async_define_xml(guest_xml("cd", "qemu", devs));
    co_await conn.async_create("cd");

    fs::path core = dir.path / "core.elf";
    co_await conn.async_core_dump("cd", core.string(), covirt::dump_flags::memory_only);
    CHECK(fs::exists(core));
    std::string elf = "\x7f" "ELF";
    CHECK(read_head(core, 4) == elf);
    CHECK((co_await conn.async_get_state("cd")).state == domain_state::running);

    auto bs = co_await conn.async_block_stats("cd", "vda");
    CHECK(bs.rd_req >= 0);
    CHECK(bs.rd_bytes >= 0);
    CHECK(bs.wr_req >= 0);
    CHECK(bs.wr_bytes >= 0);
    CHECK(bs.errs == -1);
    diagnostics diag;
    auto [e1, b1] = co_await conn.async_block_stats("cd", "vdz", diag, tuple);
    CHECK(e1 == errc::invalid_arg);

    std::string q = R"({"execute":"query-status"})";
    auto reply = co_await conn.async_qemu_monitor_command("cd", q);
    CHECK(reply.find("\"return\"") != std::string::npos);
    auto ro = co_await open_connection(ex, dir.uri(), covirt::open_flags::read_only);
    auto [e2, r2] = co_await ro.async_qemu_monitor_command("cd", q, diag, tuple);
    CHECK(e2 == errc::operation_denied);

    co_await conn.async_destroy("cd");
  });
}

TEST_CASE("test driver: no save/restore or core dump support", "[qemu_save]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, "test:///default");
    diagnostics diag;
    auto [e1] = co_await conn.async_save("test", "/tmp/never", diag, tuple);
    CHECK(e1 == errc::no_support);
    auto [e2] = co_await conn.async_core_dump("test", "/tmp/never", 0u, diag, tuple);
    CHECK(e2 == errc::no_support);
  });
}
