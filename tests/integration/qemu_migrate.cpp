// Integration tests: live migration between two QEMU driver connections over TCP on loopback,
// job progress and abort (save, restore, migration), cancellation.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/timeout.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/tiny_guest.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace asio::experimental::awaitable_operators;
using covirt::job_type;
namespace mf = covirt::migrate_flags;


// Everything seen on `st` until nothing came for `quiet`.
asio::awaitable<std::vector<covirt::domain_event>> drain(covirt::event_stream& st, std::chrono::milliseconds quiet = 300ms) {
  std::vector<covirt::domain_event> out;
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    covirt::op_timeout deadline{ex, quiet};
    auto [ec, ev] = co_await st.async_next(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) co_return out;
    out.push_back(ev);
  }
}

bool has(const std::vector<covirt::domain_event>& evs, event_type t, int detail) {
  for (auto& e : evs)
    if (e.type == t && e.detail == detail) return true;
  return false;
}

// Polls get_job_info every 10 ms while `*running`; keeps the largest progress seen.
struct progress_seen {
  bool running = true;  // the watcher stops when this goes false
  int polls = 0;
  int with_total = 0;
  std::uint64_t max_total = 0, max_processed = 0;
  std::string operation;
  job_type type = job_type::none;
};

asio::awaitable<void> watch_job(covirt::connection& c, std::string name, std::shared_ptr<progress_seen> out) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (out->running) {
    diagnostics d;
    auto [ec, j] = co_await c.async_get_job_info(name, d, tuple);
    if (!ec && j.type != job_type::none) {
      ++out->polls;
      out->operation = j.operation;
      out->type = j.type;
      if (j.data_total) ++out->with_total;
      out->max_total = std::max(out->max_total, j.data_total);
      out->max_processed = std::max(out->max_processed, j.data_processed);
    }
    t.expires_after(10ms);
    co_await t.async_wait(tuple);
  }
}

// Calls abort_job once the job has moved `bytes`.
asio::awaitable<void> abort_after(covirt::connection& c, std::string name, std::shared_ptr<progress_seen> seen,
                                  std::uint64_t bytes) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (seen->running && seen->max_processed < bytes) {
    t.expires_after(20ms);
    co_await t.async_wait(tuple);
  }
  if (seen->running) co_await c.async_abort_job(name);
}

}  // namespace

TEST_CASE("qemu migrate: a live guest moves between two connections over TCP", "[qemu_migrate]") {
  guest_dir src_dir{"covirt-mig-src"}, dst_dir{"covirt-mig-dst"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto src = co_await open_connection(ex, src_dir.uri());
        auto dst = co_await open_connection(ex, dst_dir.uri());
        co_await src.async_define_xml(guest_xml("mg"));
        co_await src.async_create("mg");
        pid_t src_pid = src_dir.records().at(0).pid;
        auto src_ev = src.subscribe("mg");
        const covirt::migrate_options defaults;  // named: g++ 12 mis-destroys a braced temporary in co_await
        auto dst_ev = dst.subscribe("mg");

        // Read-only on either side refuses.
        {
          auto ro = co_await open_connection(ex, dst_dir.uri(), covirt::open_flags::read_only);
          diagnostics diag;
          auto [e1, r1] = co_await src.async_migrate("mg", ro, defaults, diag, tuple);
          CHECK(e1 == errc::operation_denied);
          auto [e2, r2] = co_await ro.async_migrate("mg", dst, defaults, diag, tuple);
          CHECK(e2 == errc::operation_denied);
          auto [e3, r3] = co_await src.async_migrate("nosuch", dst, defaults, diag, tuple);
          CHECK(e3 == errc::no_domain);
          CHECK((co_await dst.async_list_domains(0)).empty());
        }

        covirt::migrate_options opt;
        opt.flags = mf::live;
        auto t0 = std::chrono::steady_clock::now();
        auto ref = co_await src.async_migrate("mg", dst, opt);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "[qemu_migrate] 64 MiB diskless guest: %lld ms\n", static_cast<long long>(ms));
        CHECK(ref.name == "mg");
        CHECK(ref.id >= 1);

        // The destination runs it (transient there); the source's copy is shut off, reason migrated.
        auto dst_state = co_await dst.async_get_state("mg");
        CHECK(dst_state.state == domain_state::running);
        CHECK(dst_state.reason == reason::running_migrated);
        CHECK_FALSE(co_await dst.async_is_persistent("mg"));
        auto src_state = co_await src.async_get_state("mg");
        CHECK(src_state.state == domain_state::shutoff);
        CHECK(src_state.reason == reason::migrated);
        CHECK(co_await src.async_is_persistent("mg"));
        bool gone = co_await eventually([&] { return !alive(src_pid); }, 5s);
        CHECK(gone);
        CHECK(src_dir.records().empty());
        REQUIRE(dst_dir.records().size() == 1);
        std::string status_cmd = R"({"execute":"query-status"})";
        std::string status = co_await dst.async_qemu_monitor_command("mg", status_cmd);
        CHECK(status.find("\"running\"") != std::string::npos);

        auto se = co_await drain(src_ev);
        auto de = co_await drain(dst_ev);
        CHECK(has(se, event_type::stopped, detail_::stopped_migrated));
        CHECK(has(de, event_type::started, detail_::started_migrated));
        CHECK(has(de, event_type::resumed, detail_::resumed_migrated));

        // And back again, this time made persistent at the destination and undefined at the source.
        opt.flags = mf::live | mf::persist_dest | mf::undefine_source;
        auto back = co_await dst.async_migrate("mg", src, opt);
        CHECK(back.id >= 1);
        CHECK(co_await src.async_is_active("mg"));
        diagnostics diag;
        auto [e4, r4] = co_await dst.async_lookup_by_name("mg", diag, tuple);
        CHECK(e4 == errc::no_domain);  // transient there, so gone once it left
        co_await src.async_destroy("mg");
      },
      60s);
}

TEST_CASE("qemu migrate: progress, abort and cancellation keep the guest at the source", "[qemu_migrate][qemu_guest]") {
  guest_image();
  guest_dir src_dir{"covirt-mig-src"}, dst_dir{"covirt-mig-dst"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto src = co_await open_connection(ex, src_dir.uri());
        auto dst = co_await open_connection(ex, dst_dir.uri());
        std::string xml = tiny_xml("mp", src_dir);
        co_await src.async_create_xml(xml, 0);
        REQUIRE(co_await wait_up(src_dir, 1));

        // Capped at 48 MiB/s, the guest's memory takes a couple of seconds:
        // get_job_info (which does not wait for the domain's job) shows it moving.
        const covirt::migrate_options defaults;
        covirt::migrate_options slow;
        slow.bandwidth_mib = 48;
        {
          auto seen_p = std::make_shared<progress_seen>();
          auto& seen = *seen_p;
          asio::co_spawn(ex, watch_job(src, "mp", seen_p), asio::detached);
          auto ref = co_await src.async_migrate("mp", dst, slow);
          seen.running = false;
          CHECK(ref.id >= 1);
          INFO("polls " << seen.polls << " with total " << seen.with_total << " max processed " << seen.max_processed);
          CHECK(seen.operation == "migration out");
          CHECK(seen.with_total >= 3);
          CHECK(seen.max_total >= 64ull << 20);
          CHECK(seen.max_processed >= 8ull << 20);
          diagnostics dg;
          auto [le, lr] = co_await src.async_lookup_by_name("mp", dg, tuple);
          CHECK(le == errc::no_domain);  // transient: gone from the source once it left
        }
        // It runs at the destination; bring it back for the rest, uncapped.
        co_await dst.async_migrate("mp", src, defaults);
        CHECK(co_await src.async_is_active("mp"));

        // abort_job in the middle: the migration fails with operation_aborted, the guest keeps
        // running at the source, and the destination has nothing left.
        {
          auto seen_p = std::make_shared<progress_seen>();
          auto& seen = *seen_p;
          asio::co_spawn(ex, watch_job(src, "mp", seen_p), asio::detached);
          asio::co_spawn(ex, abort_after(src, "mp", seen_p, 4ull << 20), asio::detached);
          diagnostics diag;
          auto [ec, r] = co_await src.async_migrate("mp", dst, slow, diag, tuple);
          seen.running = false;
          CHECK(ec == errc::operation_aborted);
          CHECK(std::string(diag.message()).find("canceled by client") != std::string::npos);
          auto st = co_await src.async_get_state("mp");
          CHECK(st.state == domain_state::running);
          CHECK((co_await dst.async_list_domains(0)).empty());
          CHECK(dst_dir.records().empty());
          bool dst_gone = co_await eventually([&] { return qemu_pids_with(dst_dir.path.string()).empty(); }, 5s);
          CHECK(dst_gone);
        }

        // Cancelling the call itself (a timer wins the race) does the same.
        {
          asio::steady_timer t(ex, 500ms);
          auto res = co_await (src.async_migrate("mp", dst, slow, asio::as_tuple(asio::use_awaitable)) ||
                               t.async_wait(asio::use_awaitable));
          CHECK(res.index() == 1);
          auto st = co_await src.async_get_state("mp");
          CHECK(st.state == domain_state::running);
          bool dst_gone = co_await eventually([&] { return qemu_pids_with(dst_dir.path.string()).empty(); }, 5s);
          CHECK(dst_gone);
          CHECK((co_await dst.async_list_domains(0)).empty());
          auto j = co_await src.async_get_job_info("mp");
          CHECK(j.type == job_type::none);
        }
        // The guest survived all of it and still answers.
        std::string status_cmd = R"({"execute":"query-status"})";
        std::string status = co_await src.async_qemu_monitor_command("mp", status_cmd);
        CHECK(status.find("\"running\"") != std::string::npos);
        co_await src.async_destroy("mp");
      },
      120s);
}

TEST_CASE("qemu jobs: save and restore report progress; abort and cancel leave the guest as it was", "[qemu_migrate][qemu_save]") {
  guest_image();
  guest_dir dir{"covirt-job"};
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string xml = tiny_xml("jb", dir);
        co_await conn.async_define_xml(xml);
        co_await conn.async_create("jb");
        REQUIRE(co_await wait_up(dir, 1));

        diagnostics diag;
        auto [e0, none] = co_await conn.async_get_job_info("jb", diag, tuple);
        CHECK(!e0);
        CHECK(none.type == job_type::none);
        auto [e1] = co_await conn.async_abort_job("jb", diag, tuple);
        CHECK(e1 == errc::operation_invalid);

        fs::path file = dir.path / "jb.save";
        {
          auto seen_p = std::make_shared<progress_seen>();
          auto& seen = *seen_p;
          asio::co_spawn(ex, watch_job(conn, "jb", seen_p), asio::detached);
          co_await conn.async_save("jb", file.string());
          seen.running = false;
          INFO("polls " << seen.polls);
          CHECK(seen.operation == "save");
          CHECK(seen.with_total >= 1);
        }
        {
          auto seen_p = std::make_shared<progress_seen>();
          auto& seen = *seen_p;
          asio::co_spawn(ex, watch_job(conn, "jb", seen_p), asio::detached);
          co_await conn.async_restore(file.string());
          seen.running = false;
          INFO("polls " << seen.polls << " total " << seen.max_total);
          CHECK(seen.operation == "restore");
          CHECK(seen.type == job_type::bounded);
          CHECK(seen.max_total + 4096 >= fs::file_size(file) - 65536);
        }
        CHECK(co_await conn.async_is_active("jb"));

        // A cancelled save leaves the guest running and no file behind.
        {
          fs::path f2 = dir.path / "cancelled.save";
          // Caught a few milliseconds in: while stopping the guest or streaming its memory.
          asio::steady_timer t(ex, 5ms);
          auto res = co_await (conn.async_save("jb", f2.string(), asio::as_tuple(asio::use_awaitable)) ||
                               t.async_wait(asio::use_awaitable));
          CHECK(res.index() == 1);
          auto st = co_await conn.async_get_state("jb");
          CHECK(st.state == domain_state::running);
          CHECK(st.reason == reason::running_save_canceled);
          CHECK_FALSE(fs::exists(f2));
          auto j = co_await conn.async_get_job_info("jb");
          CHECK(j.type == job_type::none);
        }
        co_await conn.async_destroy("jb");
      },
      120s);
}
