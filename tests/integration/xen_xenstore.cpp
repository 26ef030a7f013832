// The xenstore client against Debian's real xenstore daemons — the C xenstored and oxenstored
// from xen-utils-4.17, each in a folder of the test's own (scripts/private-xenstored) — and
// cross-checked with Debian's client tools (xenstore-utils) and the C library libxenstore.
#include "common/prelude.hpp"
#include "common/xenstored.hpp"

#include <covirt/timeout.hpp>
#include <covirt/xen/xenstore.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

extern "C" {
#include <xenstore.h>
}

#include <signal.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace {

using covirt::xen::transaction;
using covirt::xen::watch_event;
using covirt::xen::watch_stream;
using covirt::xen::xenstore;
namespace wire = covirt::xen::wire;
using std_errc = boost::system::errc::errc_t;
namespace se = boost::system::errc;

auto kinds() { return GENERATE(xenstored_kind::c, xenstored_kind::ocaml); }

// Words split at spaces. (Coroutine bodies here take no initializer lists: g++ 12 rejects their arrays.)
std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> v;
  while (!s.empty()) {
    auto n = s.find(' ');
    v.emplace_back(s.substr(0, n));
    if (n == std::string_view::npos) break;
    s.remove_prefix(n + 1);
  }
  return v;
}

template <class T>
T must(covirt::result<T> r, const diagnostics& d) {
  if (!r) FAIL("xenstore call failed: " << r.error().message() << ": " << d.message());
  return std::move(*r);
}
inline void must(covirt::result<void> r, const diagnostics& d) {
  if (!r) FAIL("xenstore call failed: " << r.error().message() << ": " << d.message());
}

// The next event of `w`, or FAIL after `limit` (generous: events come from a local daemon in ms).
asio::awaitable<watch_event> next_event(watch_stream& w, std::chrono::seconds limit = 10s) {
  covirt::op_timeout deadline{co_await asio::this_coro::executor, limit};
  auto [ec, ev] = co_await w.async_next(asio::as_tuple(deadline.bind(asio::use_awaitable)));
  if (ec) FAIL("no watch event: " << (deadline.expired() ? "none within the limit" : ec.message()));
  co_return ev;
}

// Events of `w` until one for `path` (a watch may deliver others first, e.g. the initial one).
asio::awaitable<watch_event> event_for(watch_stream& w, std::string path) {
  for (;;) {
    auto ev = co_await next_event(w);
    UNSCOPED_INFO("watch event " << ev.path << " token " << ev.token);
    if (ev.path == path) co_return ev;
  }
}

TEST_CASE("xenstore: every request kind against the real daemons, cross-checked with xenstore-utils",
          "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);

    // write / read, raw bytes both ways; what Debian's tools see.
    must(co_await xs.write("/covirt/a/b", "hello world", diag), diag);
    CHECK(d.tool("xenstore-read /covirt/a/b") == "hello world\n");
    d.tool("xenstore-write /covirt/from-tool 'said by xenstore-write'");
    auto v = must(co_await xs.read("/covirt/from-tool", diag), diag);
    CHECK(v == "said by xenstore-write");
    const std::string binary("\x01\x02 \x7f", 4);
    must(co_await xs.write("/covirt/bin", binary, diag), diag);
    auto b = must(co_await xs.read("/covirt/bin", diag), diag);
    CHECK(b == binary);
    must(co_await xs.write("/covirt/empty", "", diag), diag);
    auto e = must(co_await xs.read("/covirt/empty", diag), diag);
    CHECK(e.empty());

    // mkdir keeps values, makes parents; directory lists leaf names.
    must(co_await xs.mkdir("/covirt/a", diag), diag);
    auto b2 = must(co_await xs.read("/covirt/a/b", diag), diag);
    CHECK(b2 == "hello world");
    must(co_await xs.mkdir("/covirt/m/n/o", diag), diag);
    auto top = must(co_await xs.directory("/covirt", diag), diag);
    std::sort(top.begin(), top.end());
    CHECK(top == words("a bin empty from-tool m"));
    auto none = must(co_await xs.directory("/covirt/m/n/o", diag), diag);
    CHECK(none.empty());
    CHECK(d.tool("xenstore-list /covirt/m") == "n\n");

    // Errors: the daemon's errno, the path in the message.
    auto missing = co_await xs.read("/covirt/nothing-here", diag);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error() == se::no_such_file_or_directory);
    CHECK(std::string(diag.message()) == "xenstore READ /covirt/nothing-here: ENOENT");
    auto bad = co_await xs.read("relative//bad", diag);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error() == se::invalid_argument);

    // rm is recursive; a missing leaf is fine.
    must(co_await xs.rm("/covirt/m", diag), diag);
    int st = 0;
    d.tool("xenstore-exists /covirt/m/n", &st);
    CHECK(st != 0);
    must(co_await xs.rm("/covirt/m", diag), diag);

    // Permissions: what set_perms writes, get_perms and xenstore-ls -p read back.
    const auto perms_set = words("n0 r5 b7");
    must(co_await xs.set_perms("/covirt/a", perms_set, diag), diag);
    auto perms = must(co_await xs.get_perms("/covirt/a", diag), diag);
    CHECK(perms == perms_set);
    const std::string listing = d.tool("xenstore-ls -p /covirt");  // "a = "" . . . .  (n0,r5,b7)"
    CHECK(listing.find("a = \"\" ") != std::string::npos);
    CHECK(listing.find("(n0,r5,b7)\n") != std::string::npos);
    const auto bad_perms = words("x5");
    auto refused = co_await xs.set_perms("/covirt/a", bad_perms, diag);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == errc::invalid_arg);
    d.tool("xenstore-chmod /covirt/a/b n0 r3");  // the owner first: a domain that exists
    auto perms2 = must(co_await xs.get_perms("/covirt/a/b", diag), diag);
    CHECK(perms2 == words("n0 r3"));

    auto dom0 = must(co_await xs.get_domain_path(0, diag), diag);
    CHECK(dom0 == "/local/domain/0");
    auto dom7 = must(co_await xs.get_domain_path(7, diag), diag);
    CHECK(dom7 == "/local/domain/7");
    auto intro = co_await xs.is_domain_introduced(7, diag);
    CHECK((!intro || !*intro));  // no domain 7 on this host: F, or an error naming it

    // A payload past 4096 bytes is refused before it is sent; the connection stays.
    auto big = co_await xs.write("/covirt/big", std::string(5000, 'x'), diag);
    REQUIRE_FALSE(big.has_value());
    CHECK(big.error() == errc::invalid_arg);
    CHECK(std::string(diag.message()).find("4096") != std::string::npos);
    CHECK(xs.is_open());
    // 2000 bytes: within oxenstored's default entry quota (2048) too.
    must(co_await xs.write("/covirt/big", std::string(2000, 'x'), diag), diag);
    auto fits = must(co_await xs.read("/covirt/big", diag), diag);
    CHECK(fits.size() == 2000);
  });
}

TEST_CASE("xenstore: a listing too long for one reply is read in parts", "[xenstore]") {
  private_xenstored d(xenstored_kind::c);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    // 300 children of 20-odd bytes: about 7 KB of names, past one 4096-byte reply.
    std::vector<std::string> want;
    for (int i = 0; i < 300; ++i) {
      std::string name = "child-with-a-long-name-" + std::to_string(i);
      must(co_await xs.write("/many/" + name, "x", diag), diag);
      want.push_back(name);
    }
    auto got = co_await xs.directory("/many", diag);
    if (!got && got.error() == se::argument_list_too_long) FAIL("DIRECTORY_PART not used: " << diag.message());
    auto names = must(std::move(got), diag);
    std::sort(names.begin(), names.end());
    std::sort(want.begin(), want.end());
    CHECK(names == want);
  });
}

TEST_CASE("xenstore: 64 requests in flight, each answered by its req_id", "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    for (int i = 0; i < 64; ++i) must(co_await xs.write("/fan/" + std::to_string(i), "value " + std::to_string(i), diag), diag);
    int done = 0, right = 0;
    asio::steady_timer all(ex, asio::steady_timer::time_point::max());
    for (int i = 0; i < 64; ++i) {
      asio::co_spawn(ex, [&, i]() -> asio::awaitable<void> {
        diagnostics dd;
        auto r = co_await xs.read("/fan/" + std::to_string(i), dd);
        if (r && *r == "value " + std::to_string(i)) ++right;
        if (++done == 64) all.cancel();
      }, asio::detached);
    }
    CHECK(xs.pending_requests() > 0);
    co_await all.async_wait(tuple);
    CHECK(right == 64);
  });
}

TEST_CASE("xenstore: transactions, with a real EAGAIN from a second client", "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore a(ex), b(ex);
    diagnostics diag;
    must(co_await a.connect(d.socket(), diag), diag);
    must(co_await b.connect(d.socket(), diag), diag);
    must(co_await a.write("/tx/counter", "0", diag), diag);

    // A snapshot: a write inside is invisible outside until the commit.
    auto t = must(co_await a.transaction_start(diag), diag);
    must(co_await a.write("/tx/inside", "1", diag, t), diag);
    auto outside = co_await b.read("/tx/inside", diag);
    CHECK_FALSE(outside.has_value());
    must(co_await a.transaction_end(t, true, diag), diag);
    auto after = must(co_await b.read("/tx/inside", diag), diag);
    CHECK(after == "1");

    // Aborted: nothing happens.
    auto t2 = must(co_await a.transaction_start(diag), diag);
    must(co_await a.write("/tx/aborted", "1", diag, t2), diag);
    must(co_await a.transaction_end(t2, false, diag), diag);
    auto aborted = co_await b.read("/tx/aborted", diag);
    CHECK_FALSE(aborted.has_value());

    // A conflict: b writes what a's transaction read; a's commit gets the daemon's EAGAIN.
    auto t3 = must(co_await a.transaction_start(diag), diag);
    auto c0 = must(co_await a.read("/tx/counter", diag, t3), diag);
    must(co_await b.write("/tx/counter", "100", diag), diag);
    must(co_await a.write("/tx/counter", std::to_string(std::stoi(c0) + 1), diag, t3), diag);
    auto end = co_await a.transaction_end(t3, true, diag);
    REQUIRE_FALSE(end.has_value());
    CHECK(end.error() == se::resource_unavailable_try_again);
    auto kept = must(co_await a.read("/tx/counter", diag), diag);
    CHECK(kept == "100");

    // transact() runs the body again after EAGAIN: the second client interferes once.
    int attempts = 0;
    auto r = co_await a.transact(
        [&](transaction tx) -> asio::awaitable<covirt::result<int>> {
          ++attempts;
          diagnostics dd;
          auto cur = co_await a.read("/tx/counter", dd, tx);
          if (!cur) co_return covirt::failure(cur.error());
          if (attempts == 1) {
            auto w = co_await b.write("/tx/counter", "200", dd);
            if (!w) co_return covirt::failure(w.error());
          }
          int next = std::stoi(*cur) + 1;
          auto w = co_await a.write("/tx/counter", std::to_string(next), dd, tx);
          if (!w) co_return covirt::failure(w.error());
          co_return next;
        },
        diag);
    REQUIRE(r);
    CHECK(attempts == 2);
    CHECK(*r == 201);
    auto final_value = must(co_await b.read("/tx/counter", diag), diag);
    CHECK(final_value == "201");
    CHECK(d.tool("xenstore-read /tx/counter") == "201\n");

    // A transaction id the daemon never gave: ENOENT from the C daemon, EIO from oxenstored.
    auto ghost = co_await a.read("/tx/counter", diag, transaction{987654});
    REQUIRE_FALSE(ghost.has_value());
    CHECK(ghost.error() == (kind == xenstored_kind::c ? se::no_such_file_or_directory : se::io_error));
  });
}

TEST_CASE("xenstore: watches — the initial event, changes below, tokens, EEXIST, unwatch", "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex), other(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    must(co_await other.connect(d.socket(), diag), diag);
    must(co_await other.mkdir("/w/dom", diag), diag);

    auto w = must(co_await xs.watch("/w/dom", "tok-1", diag), diag);
    auto first = co_await next_event(w);
    CHECK(first.path == "/w/dom");
    CHECK(first.token == "tok-1");

    must(co_await other.write("/w/dom/7/name", "guest", diag), diag);
    auto ev = co_await event_for(w, "/w/dom/7/name");
    CHECK(ev.token == "tok-1");
    d.tool("xenstore-write /w/dom/8 x");
    auto got1 = co_await event_for(w, "/w/dom/8");
    CHECK(got1.token == "tok-1");
    d.tool("xenstore-rm /w/dom/7");
    auto got2 = co_await event_for(w, "/w/dom/7");
    CHECK(got2.token == "tok-1");

    // The same path, another token: both get the event; the same pair twice: EEXIST.
    auto w2 = must(co_await xs.watch("/w/dom", "tok-2", diag), diag);
    auto got3 = co_await next_event(w2);
    CHECK(got3.path == "/w/dom");
    auto dup = co_await xs.watch("/w/dom", "tok-1", diag);
    REQUIRE_FALSE(dup.has_value());
    CHECK(dup.error() == se::file_exists);
    must(co_await other.write("/w/dom/9", "y", diag), diag);
    auto got4 = co_await event_for(w, "/w/dom/9");
    CHECK(got4.token == "tok-1");
    auto got5 = co_await event_for(w2, "/w/dom/9");
    CHECK(got5.token == "tok-2");

    // The special paths: registered, with their initial event.
    auto intro = must(co_await xs.watch("@introduceDomain", "intro", diag), diag);
    auto got6 = co_await next_event(intro);
    CHECK(got6.path == "@introduceDomain");
    auto rel = must(co_await xs.watch("@releaseDomain", "release", diag), diag);
    auto got7 = co_await next_event(rel);
    CHECK(got7.path == "@releaseDomain");

    // Unwatch: the stream ends; the other watch still works.
    must(co_await xs.unwatch("/w/dom", "tok-2", diag), diag);
    for (;;) {
      auto [ec, e2] = co_await w2.async_next(tuple);
      if (ec) {
        CHECK(ec == asio::error::eof);
        break;
      }
    }
    must(co_await other.write("/w/dom/10", "z", diag), diag);
    auto got8 = co_await event_for(w, "/w/dom/10");
    CHECK(got8.token == "tok-1");
    auto gone = co_await xs.unwatch("/w/dom", "no-such-token", diag);
    CHECK_FALSE(gone.has_value());
  });
}

// Quotas: oxenstored holds dom0 to its node-size quota (2048 bytes): E2BIG, and the connection
// stays. The C xenstored exempts dom0 (every socket client) from all of them, as its source says;
// there the test reads and sets them through XS_CONTROL, as xenstore-control does.
TEST_CASE("xenstore: quotas — oxenstored's node size; the C daemon's through XS_CONTROL", "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    if (kind == xenstored_kind::ocaml) {
      auto over = co_await xs.write("/q/big", std::string(3000, 'x'), diag);
      REQUIRE_FALSE(over.has_value());
      CHECK(over.error() == se::argument_list_too_long);
      CHECK(std::string(diag.message()) == "xenstore WRITE /q/big: E2BIG");
      CHECK(xs.is_open());
      must(co_await xs.write("/q/big", std::string(2000, 'x'), diag), diag);
      co_return;
    }
    auto text = must(co_await xs.request(wire::msg_type::control, wire::join("quota"), {}, diag), diag);
    CHECK(text.find("node-size        :     2048") != std::string::npos);
    must(co_await xs.request(wire::msg_type::control, wire::join("quota", "set", "node-size", "100"), {}, diag), diag);
    auto after = must(co_await xs.request(wire::msg_type::control, wire::join("quota"), {}, diag), diag);
    CHECK(after.find("node-size        :      100") != std::string::npos);
    // What Debian's xenstore-control prints is what the client read.
    const std::string control = "/var/cache/covirt/xen-utils-4.17/usr/lib/xen-4.17/bin/xenstore-control";
    if (fs::exists(control)) CHECK(d.tool(control + " quota").find("node-size        :      100") != std::string::npos);
    must(co_await xs.write("/q/big", std::string(300, 'x'), diag), diag);  // dom0 is exempt
    auto bad = co_await xs.request(wire::msg_type::control, wire::join("quota", "set", "no-such-quota", "1"), {}, diag);
    CHECK_FALSE(bad.has_value());
  });
}

TEST_CASE("xenstore: interoperates with libxenstore (xs_open, xs_read, xs_write, xs_watch, transactions)",
          "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  ::setenv("XENSTORED_PATH", d.socket().c_str(), 1);
  struct xs_handle* h = xs_open(0);
  REQUIRE(h);
  std::unique_ptr<struct xs_handle, void (*)(struct xs_handle*)> guard(h, xs_close);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);

    // covirt writes, libxenstore reads; and back.
    must(co_await xs.write("/interop/from-covirt", "covirt's value", diag), diag);
    unsigned len = 0;
    char* v = static_cast<char*>(xs_read(h, XBT_NULL, "/interop/from-covirt", &len));
    REQUIRE(v);
    CHECK(std::string(v, len) == "covirt's value");
    std::free(v);
    REQUIRE(xs_write(h, XBT_NULL, "/interop/from-c", "C's value", 9));
    auto back = must(co_await xs.read("/interop/from-c", diag), diag);
    CHECK(back == "C's value");

    // A libxenstore transaction's write fires covirt's watch when it commits.
    auto w = must(co_await xs.watch("/interop", "covirt", diag), diag);
    auto got9 = co_await next_event(w);
    CHECK(got9.path == "/interop");
    xs_transaction_t t = xs_transaction_start(h);
    REQUIRE(t != XBT_NULL);
    REQUIRE(xs_write(h, t, "/interop/tx", "committed", 9));
    REQUIRE(xs_transaction_end(h, t, false));
    auto got10 = co_await event_for(w, "/interop/tx");
    CHECK(got10.token == "covirt");
    auto committed = must(co_await xs.read("/interop/tx", diag), diag);
    CHECK(committed == "committed");

    // libxenstore's watch sees covirt's write.
    REQUIRE(xs_watch(h, "/interop/for-c", "c-token"));
    unsigned n = 0;
    char** first = xs_read_watch(h, &n);  // its initial event
    REQUIRE(first);
    std::free(first);
    must(co_await xs.write("/interop/for-c", "ping", diag), diag);
    char** ev = xs_read_watch(h, &n);
    REQUIRE(ev);
    CHECK(std::string(ev[XS_WATCH_PATH]) == "/interop/for-c");
    CHECK(std::string(ev[XS_WATCH_TOKEN]) == "c-token");
    std::free(ev);

    unsigned count = 0;
    char** names = xs_directory(h, XBT_NULL, "/interop", &count);
    REQUIRE(names);
    auto ours = must(co_await xs.directory("/interop", diag), diag);
    std::vector<std::string> theirs(names, names + count);
    std::free(names);
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    CHECK(ours == theirs);
  });
  ::unsetenv("XENSTORED_PATH");
}

TEST_CASE("xenstore: the daemon killed under a watch and restarted; reconnect registers the watch again",
          "[xenstore]") {
  const auto kind = kinds();
  private_xenstored d(kind);
  INFO(name_of(kind));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    auto w = must(co_await xs.watch("/local/domain", "domains", diag), diag);
    auto got11 = co_await next_event(w);
    CHECK(got11.path == "/local/domain");

    d.stop(SIGKILL);
    // The watch stream gets the loss once; later requests fail at once with it.
    auto [ec, ev] = co_await w.async_next(tuple);
    CHECK(ec == errc::no_xenstore);
    CHECK_FALSE(xs.is_open());
    auto r = co_await xs.read("/local", diag);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == errc::no_xenstore);
    CHECK(std::string(diag.message()).find("end of file") != std::string::npos);

    d.start();  // same folder, same socket; a fresh (empty) store
    must(co_await xs.reconnect(diag), diag);
    auto again = co_await next_event(w);  // the daemon's initial event again
    CHECK(again.path == "/local/domain");
    d.tool("xenstore-write /local/domain/3/name after-restart");
    auto got12 = co_await event_for(w, "/local/domain/3/name");
    CHECK(got12.token == "domains");
  });
}

TEST_CASE("xenstore: a stopped daemon — a request times out, its late reply is dropped, the next works",
          "[xenstore]") {
  private_xenstored d(xenstored_kind::c);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xenstore xs(ex);
    diagnostics diag;
    must(co_await xs.connect(d.socket(), diag), diag);
    must(co_await xs.write("/late", "v", diag), diag);
    ::kill(d.pid(), SIGSTOP);
    {
      covirt::op_timeout deadline{ex, 300ms};
      auto [ep, v] = co_await asio::co_spawn(ex, xs.read("/late", diag), asio::as_tuple(deadline.bind(asio::use_awaitable)));
      REQUIRE_FALSE(v.has_value());
      CHECK(v.error() == asio::error::operation_aborted);
      CHECK(deadline.expired());
      CHECK(xs.pending_requests() == 0);
    }
    {
      covirt::op_timeout deadline{ex, 300ms};  // a transaction id that comes late is ended at once
      auto [ep, t] = co_await asio::co_spawn(ex, xs.transaction_start(diag), asio::as_tuple(deadline.bind(asio::use_awaitable)));
      REQUIRE_FALSE(t.has_value());
      CHECK(t.error() == asio::error::operation_aborted);
    }
    ::kill(d.pid(), SIGCONT);
    auto v = must(co_await xs.read("/late", diag), diag);
    CHECK(v == "v");
    CHECK(xs.is_open());
  });
}

// A peer that is not a real daemon: for what no real daemon would send.
asio::awaitable<void> serve_once(asio::local::stream_protocol::acceptor& acc, std::string reply) {
  auto [ec, sock] = co_await acc.async_accept(tuple);
  if (ec) co_return;
  char buf[64];
  co_await sock.async_read_some(asio::buffer(buf), tuple);  // the request
  co_await asio::async_write(sock, asio::buffer(reply), tuple);
  asio::steady_timer hold(sock.get_executor(), 2s);
  co_await hold.async_wait(tuple);
}

std::string frame(std::uint32_t type, std::uint32_t req, std::uint32_t len, std::string_view body) {
  std::string s(16, '\0');
  std::uint32_t w[4] = {type, req, 0, len};
  std::memcpy(s.data(), w, 16);
  s.append(body);
  return s;
}

TEST_CASE("xenstore: a peer that lies about a length, or answers what was not asked, ends the connection",
          "[xenstore]") {
  struct row {
    const char* what;
    std::string reply;
    const char* says;
  };
  const row rows[] = {
      {"a length over 4096", frame(2, 1, 1u << 31, ""), "over the protocol's limit"},
      {"a reply to an unsent req_id", frame(2, 99, 2, "ok"), "never sent"},
      {"a reply of another type", frame(11, 1, 3, std::string("OK\0", 3)), "answered a READ request with a WRITE"},
      {"a watch event without a token", frame(15, 0, 3, std::string("/x\0", 3)), "WATCH_EVENT"},
  };
  for (auto& r : rows) {
    SECTION(r.what) {
      fs::path dir = fs::temp_directory_path() / ("covirt-xs-fake-" + std::to_string(::getpid()));
      fs::create_directories(dir);
      const std::string path = (dir / "socket").string();
      fs::remove(path);
      run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        asio::local::stream_protocol::acceptor acc(ex, asio::local::stream_protocol::endpoint(path));
        asio::co_spawn(ex, serve_once(acc, r.reply), asio::detached);
        xenstore xs(ex);
        diagnostics diag;
        must(co_await xs.connect(path, diag), diag);
        auto got = co_await xs.read("/x", diag);
        REQUIRE_FALSE(got.has_value());
        CHECK((got.error() == errc::internal_error || got.error() == errc::no_xenstore));
        CHECK(std::string(diag.message()).find(r.says) != std::string::npos);
        CHECK_FALSE(xs.is_open());
        acc.close();
      });
      fs::remove_all(dir);
    }
  }
}

}  // namespace
