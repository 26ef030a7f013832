// The xend HTTP client against the tests' fake xend (tests/fixtures/fake_xend.cpp), which writes
// its domains' nodes into a real xenstored of the test's own (scripts/private-xenstored).
#include "common/prelude.hpp"
#include "common/fake_xend.hpp"
#include "common/xenstored.hpp"

#include <covirt/timeout.hpp>
#include <covirt/xen/sexpr.hpp>
#include <covirt/xen/xend.hpp>
#include <covirt/xen/xenstore.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <string>
#include <utility>
#include <vector>

namespace {

using covirt::xen::find_all;
using covirt::xen::format_sexpr;
using covirt::xen::sexpr;
using covirt::xen::value;
using covirt::xen::xend;
using covirt::xen::xend_endpoint;
using covirt::xen::xend_options;
using covirt::xen::xenstore;
using form_t = std::vector<std::pair<std::string, std::string>>;
namespace se = boost::system::errc;

// A private xenstored and a fake xend writing into it.
struct xen_host {
  private_xenstored xs{xenstored_kind::c};
  fake_xend_process fx;
  explicit xen_host(bool tcp = false) : fx(xs.socket(), tcp) {}
  xend_endpoint unix_ep() const { return {fx.unix_path(), "", ""}; }
  xend_endpoint tcp_ep() const { return {"", "127.0.0.1", std::to_string(fx.port())}; }
};

template <class T>
T must(covirt::result<T> r, const diagnostics& d) {
  if (!r) FAIL("xend call failed: " << r.error().message() << ": " << d.message());
  return std::move(*r);
}
inline void must(covirt::result<void> r, const diagnostics& d) {
  if (!r) FAIL("call failed: " << r.error().message() << ": " << d.message());
}

form_t form1(std::string k, std::string v) {
  form_t f;
  f.emplace_back(std::move(k), std::move(v));
  return f;
}
form_t form2(std::string k1, std::string v1, std::string k2, std::string v2) {
  form_t f = form1(std::move(k1), std::move(v1));
  f.emplace_back(std::move(k2), std::move(v2));
  return f;
}

// Arms one of the fixture's faults for its next request.
asio::awaitable<void> arm(xend& x, std::string what) {
  diagnostics d;
  const form_t f = form1("next", std::move(what));
  auto r = co_await x.post("/covirt/fault", f, d);
  if (!r) FAIL("cannot arm the fault: " << d.message());
}

const std::string web1_description = "a & b + c = 100% \"quoted\" and 'single' / ok?";

std::string web1_config() {
  return "(vm (name web1)(memory 256)(maxmem 512)(vcpus 2)(uuid 4f77abd2-3019-58e8-3bab-6fbf2118f880)"
         "(description " +
         covirt::xen::format_atom(web1_description) +
         ")(on_poweroff destroy)(on_reboot restart)(on_crash destroy)"
         "(image (linux (kernel /boot/vmlinuz)(args 'console=hvc0 ro')))"
         "(device (vbd (dev xvda)(uname phy:/dev/vg0/web1)(mode w)))"
         "(device (vif (mac 00:16:3e:12:34:56)(bridge xenbr0)(script vif-bridge))))";
}

bool has_atom(const sexpr& list, std::string_view a) {
  for (const auto& e : list.list)
    if (!e.is_list && e.atom == a) return true;
  return false;
}

TEST_CASE("xend: node, domain list, detail and 404 over the unix socket", "[xend]") {
  xen_host h;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.unix_ep());
    diagnostics diag;
    CHECK(x.endpoint().unix_path == h.fx.unix_path());

    auto node = must(co_await x.get("/xend/node/", diag), diag);
    CHECK(node.head() == "node");
    CHECK(value(node, "node/xend_config_format") == std::optional<std::string_view>("4"));
    CHECK(value(node, "node/nr_cpus") == std::optional<std::string_view>("4"));
    CHECK(value(node, "node/xen_scheduler") == std::optional<std::string_view>("credit"));

    auto names = must(co_await x.get("/xend/domain", diag), diag);
    CHECK(names.is_list);
    CHECK(has_atom(names, "Domain-0"));

    auto all = must(co_await x.get("/xend/domain?detail=1", diag), diag);
    REQUIRE(all.list.size() == 1);
    CHECK(all.list[0].head() == "domain");
    CHECK(value(all.list[0], "domain/domid") == std::optional<std::string_view>("0"));
    CHECK(value(all.list[0], "domain/name") == std::optional<std::string_view>("Domain-0"));

    std::vector<std::string> targets;  // (no initializer lists in coroutines: g++ 12)
    targets.push_back("/xend/domain/Domain-0?detail=1");
    targets.push_back("/xend/domain/0?detail=1");
    targets.push_back("/xend/domain/00000000-0000-0000-0000-000000000000?detail=1");
    for (const auto& target : targets) {
      auto d0 = co_await x.get(target, diag);
      REQUIRE(d0.has_value());
      CHECK(value(*d0, "domain/name") == std::optional<std::string_view>("Domain-0"));
    }

    auto halted = must(co_await x.get("/xend/domain?state=halted", diag), diag);
    CHECK(halted.is_list);
    CHECK(halted.list.empty());

    auto missing = co_await x.get("/xend/domain/nosuch?detail=1", diag);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error() == errc::no_domain);
    CHECK(std::string(diag.message()) == "Domain 'nosuch' does not exist.");
  });
}

TEST_CASE("xend: create through POST, its nodes in the real xenstored, pause, unpause, destroy", "[xend]") {
  xen_host h;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.unix_ep());
    xenstore xs(ex);
    diagnostics diag;
    {
      auto c = co_await xs.connect(h.xs.socket(), diag);
      if (!c) FAIL("xenstore: " << diag.message());
    }

    const form_t create = form2("op", "create", "config", web1_config());
    auto created = must(co_await x.post("/xend/domain/", create, diag), diag);
    CHECK(created.head() == "domain");
    CHECK(value(created, "domain/domid") == std::optional<std::string_view>("1"));

    // The description went through URL encoding and back unchanged.
    auto web1 = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    CHECK(value(web1, "domain/description") == std::optional<std::string_view>(web1_description));
    CHECK(value(web1, "domain/state") == std::optional<std::string_view>("r-----"));
    CHECK(value(web1, "domain/memory") == std::optional<std::string_view>("256"));
    CHECK(find_all(web1, "domain/device").size() == 2);
    auto by_uuid = must(co_await x.get("/xend/domain/4f77abd2301958e83bab6fbf2118f880?detail=1", diag), diag);
    CHECK(value(by_uuid, "domain/name") == std::optional<std::string_view>("web1"));

    auto names = must(co_await x.get("/xend/domain", diag), diag);
    CHECK(has_atom(names, "web1"));

    // What xend wrote into xenstored.
    auto name = must(co_await xs.read("/local/domain/1/name", diag), diag);
    CHECK(name == "web1");
    auto vm = must(co_await xs.read("/local/domain/1/vm", diag), diag);
    CHECK(vm == "/vm/4f77abd2-3019-58e8-3bab-6fbf2118f880");
    auto target = must(co_await xs.read("/local/domain/1/memory/target", diag), diag);
    CHECK(target == "262144");
    auto smax = must(co_await xs.read("/local/domain/1/memory/static-max", diag), diag);
    CHECK(smax == "524288");
    auto cpu1 = must(co_await xs.read("/local/domain/1/cpu/1/availability", diag), diag);
    CHECK(cpu1 == "online");
    auto tty = must(co_await xs.read("/local/domain/1/console/tty", diag), diag);
    CHECK(tty.rfind("/dev/pts/", 0) == 0);
    auto vmname = must(co_await xs.read("/vm/4f77abd2-3019-58e8-3bab-6fbf2118f880/name", diag), diag);
    CHECK(vmname == "web1");
    auto dev = must(co_await xs.read("/local/domain/0/backend/vbd/1/51712/dev", diag), diag);
    CHECK(dev == "xvda");
    auto mac = must(co_await xs.read("/local/domain/0/backend/vif/1/0/mac", diag), diag);
    CHECK(mac == "00:16:3e:12:34:56");
    auto st = must(co_await xs.read("/local/domain/1/control/covirt-state", diag), diag);
    CHECK(st == "running");

    // pause / unpause: the state string and the node.
    const form_t pause = form1("op", "pause");
    auto p = must(co_await x.post("/xend/domain/web1", pause, diag), diag);
    CHECK(p.is_list);
    CHECK(p.list.empty());
    auto paused = must(co_await x.get("/xend/domain/1?detail=1", diag), diag);
    CHECK(value(paused, "domain/state") == std::optional<std::string_view>("--p---"));
    st = must(co_await xs.read("/local/domain/1/control/covirt-state", diag), diag);
    CHECK(st == "paused");
    const form_t unpause = form1("op", "unpause");
    must(co_await x.post("/xend/domain/web1", unpause, diag), diag);
    auto resumed = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    CHECK(value(resumed, "domain/state") == std::optional<std::string_view>("r-----"));
    st = must(co_await xs.read("/local/domain/1/control/covirt-state", diag), diag);
    CHECK(st == "running");

    // Settings reach xenstored too.
    const form_t target_set = form1("op", "mem_target_set");
    form_t t2 = target_set;
    t2.emplace_back("target", "128");
    must(co_await x.post("/xend/domain/web1", t2, diag), diag);
    target = must(co_await xs.read("/local/domain/1/memory/target", diag), diag);
    CHECK(target == "131072");
    const form_t vcpus = form2("op", "set_vcpus", "vcpus", "1");
    must(co_await x.post("/xend/domain/web1", vcpus, diag), diag);
    cpu1 = must(co_await xs.read("/local/domain/1/cpu/1/availability", diag), diag);
    CHECK(cpu1 == "offline");
    auto info = must(co_await x.get("/xend/domain/web1?op=vcpuinfo", diag), diag);
    REQUIRE(info.list.size() == 2);
    CHECK(value(info.list[1], "vcpu/online") == std::optional<std::string_view>("0"));

    // destroy: the nodes go, the domain is unknown.
    const form_t destroy = form1("op", "destroy");
    must(co_await x.post("/xend/domain/web1", destroy, diag), diag);
    auto gone = co_await xs.read("/local/domain/1/name", diag);
    REQUIRE_FALSE(gone.has_value());
    CHECK(gone.error() == se::no_such_file_or_directory);
    auto gone_be = co_await xs.read("/local/domain/0/backend/vbd/1/51712/dev", diag);
    CHECK_FALSE(gone_be.has_value());
    auto after = co_await x.get("/xend/domain/web1?detail=1", diag);
    REQUIRE_FALSE(after.has_value());
    CHECK(after.error() == errc::no_domain);
  });
}

TEST_CASE("xend: shutdown through xenstore's control/shutdown, and define/start/delete", "[xend]") {
  xen_host h;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.unix_ep());
    xenstore xs(ex);
    diagnostics diag;
    {
      auto c = co_await xs.connect(h.xs.socket(), diag);
      if (!c) FAIL("xenstore: " << diag.message());
    }
    const form_t define = form2("op", "new", "config", web1_config());
    must(co_await x.post("/xend/domain/", define, diag), diag);
    auto halted = must(co_await x.get("/xend/domain?state=halted", diag), diag);
    CHECK(has_atom(halted, "web1"));
    auto inactive = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    CHECK_FALSE(value(inactive, "domain/domid").has_value());

    const form_t start = form1("op", "start");
    must(co_await x.post("/xend/domain/web1", start, diag), diag);
    auto running = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    REQUIRE(value(running, "domain/domid").has_value());
    const std::string id(*value(running, "domain/domid"));

    // The driver's way: write poweroff into the guest's control/shutdown; the "guest" goes.
    auto watch = must(co_await xs.watch("/local/domain/" + id, "gone", diag), diag);
    must(co_await xs.write("/local/domain/" + id + "/control/shutdown", "poweroff", diag), diag);
    for (;;) {
      covirt::op_timeout limit{ex, 10s};
      auto [ec, ev] = co_await watch.async_next(asio::as_tuple(limit.bind(asio::use_awaitable)));
      if (ec) FAIL("the domain did not go: " << ec.message());
      auto n = co_await xs.read("/local/domain/" + id + "/name", diag);
      if (!n) break;
    }
    auto off = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    CHECK_FALSE(value(off, "domain/domid").has_value());

    const form_t del = form1("op", "delete");
    must(co_await x.post("/xend/domain/web1", del, diag), diag);
    auto after = co_await x.get("/xend/domain/web1?detail=1", diag);
    CHECK(after.error() == errc::no_domain);
  });
}

TEST_CASE("xend: errors: xend's text, 406, 501, a 2xx xend.err, cut, HTML, no xend", "[xend]") {
  xen_host h;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.unix_ep());
    diagnostics diag;

    co_await arm(x, "500");
    auto r500 = co_await x.get("/xend/node/", diag);
    REQUIRE_FALSE(r500.has_value());
    CHECK(r500.error() == errc::get_failed);
    CHECK(std::string(diag.message()) == "injected failure (covirt fault next=500)");

    const form_t pause = form1("op", "pause");
    auto p0 = co_await x.post("/xend/domain/Domain-0", pause, diag);
    REQUIRE_FALSE(p0.has_value());
    CHECK(p0.error() == errc::post_failed);
    CHECK(std::string(diag.message()) == "Cannot pause privileged domain 0");

    // xend's quirk: 202 with xend.err in the body.
    const form_t dump = form2("op", "dump", "file", h.fx.dir() + "/core");
    auto d0 = co_await x.post("/xend/domain/0", dump, diag);
    REQUIRE_FALSE(d0.has_value());
    CHECK(d0.error() == errc::post_failed);
    CHECK(std::string(diag.message()) == "Cannot dump core for privileged domain 0");

    const form_t two_ops = form2("op", "pause", "op", "unpause");
    auto r406 = co_await x.post("/xend/domain/Domain-0", two_ops, diag);
    REQUIRE_FALSE(r406.has_value());
    CHECK(r406.error() == errc::post_failed);
    CHECK(std::string(diag.message()).rfind("HTTP/1.1 406 Not Acceptable", 0) == 0);
    const form_t no_op = form1("vcpus", "2");
    auto r406b = co_await x.post("/xend/domain/Domain-0", no_op, diag);
    REQUIRE_FALSE(r406b.has_value());
    CHECK(std::string(diag.message()).rfind("HTTP/1.1 406", 0) == 0);

    const form_t unknown = form1("op", "frobnicate");
    auto r501 = co_await x.post("/xend/domain/Domain-0", unknown, diag);
    REQUIRE_FALSE(r501.has_value());
    CHECK(r501.error() == errc::post_failed);
    CHECK(std::string(diag.message()) == "HTTP/1.1 501 Not Implemented: Operation not implemented: frobnicate");

    co_await arm(x, "cut");
    auto cut = co_await x.get("/xend/domain?detail=1", diag);
    REQUIRE_FALSE(cut.has_value());
    CHECK(cut.error() == errc::get_failed);
    CHECK(std::string(diag.message()) == "xend at '" + h.fx.unix_path() +
                                             "' closed the connection in the middle of its answer to GET "
                                             "/xend/domain?detail=1");

    co_await arm(x, "html");
    auto html = co_await x.get("/xend/node/", diag);
    REQUIRE_FALSE(html.has_value());
    CHECK(html.error() == errc::get_failed);
    CHECK(std::string(diag.message()).find("with HTML, not an S-expression") != std::string::npos);

    // A small body limit.
    xend small(ex, h.unix_ep(), xend_options{std::chrono::milliseconds(5000), 64});
    auto big = co_await small.get("/xend/node/", diag);
    REQUIRE_FALSE(big.has_value());
    CHECK(big.error() == errc::get_failed);
    CHECK(std::string(diag.message()).find("over the limit of 64 bytes") != std::string::npos);

    // The connection still works after all that.
    auto node = must(co_await x.get("/xend/node/", diag), diag);
    CHECK(node.head() == "node");

    xend nobody(ex, xend_endpoint{h.fx.dir() + "/no-such-socket", "", ""});
    auto none = co_await nobody.get("/xend/node/", diag);
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error() == errc::no_xen);
    CHECK(std::string(diag.message()).rfind("cannot connect to xend at '" + h.fx.dir() + "/no-such-socket': ", 0) == 0);
  });
}

TEST_CASE("xend: a stalled xend ends at the timeout; the caller can cancel", "[xend]") {
  xen_host h;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.unix_ep(), xend_options{std::chrono::milliseconds(500)});
    diagnostics diag;

    co_await arm(x, "stall");
    const auto t0 = clock_type::now();
    auto r = co_await x.get("/xend/node/", diag);
    const auto took = clock_type::now() - t0;
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == errc::operation_timeout);
    CHECK(std::string(diag.message()) == "xend at '" + h.fx.unix_path() + "' did not answer within 500 ms");
    CHECK(took >= 450ms);
    CHECK(took < 3s);

    // Terminal cancellation from the caller, long before the timeout.
    xend patient(ex, h.unix_ep(), xend_options{std::chrono::milliseconds(20000)});
    co_await arm(patient, "stall");
    {
      asio::cancellation_signal sig;
      asio::steady_timer t(ex, 100ms);
      t.async_wait([&](error_code) { sig.emit(asio::cancellation_type::terminal); });
      const auto c0 = clock_type::now();
      auto op = patient.get("/xend/node/", diag);
      auto tok = asio::bind_cancellation_slot(sig.slot(), asio::as_tuple(asio::use_awaitable));
      auto [ep, cr] = co_await asio::co_spawn(ex, std::move(op), tok);
      CHECK(!ep);
      REQUIRE_FALSE(cr.has_value());
      CHECK(cr.error() == asio::error::operation_aborted);
      CHECK(clock_type::now() - c0 < 5s);
    }

    // Partial cancellation, where the caller's coroutine lets it through.
    co_await arm(patient, "stall");
    {
      asio::cancellation_signal sig;
      asio::steady_timer t(ex, 100ms);
      t.async_wait([&](error_code) { sig.emit(asio::cancellation_type::partial); });
      auto wrapper = [&]() -> asio::awaitable<covirt::result<sexpr>> {
        co_await asio::this_coro::reset_cancellation_state(asio::enable_partial_cancellation());
        co_return co_await patient.get("/xend/node/", diag);
      };
      auto op = wrapper();
      auto tok = asio::bind_cancellation_slot(sig.slot(), asio::as_tuple(asio::use_awaitable));
      auto [ep, cr] = co_await asio::co_spawn(ex, std::move(op), tok);
      CHECK(!ep);
      REQUIRE_FALSE(cr.has_value());
      CHECK(cr.error() == asio::error::operation_aborted);
    }

    // And xend answers again afterwards.
    auto node = must(co_await x.get("/xend/node/", diag), diag);
    CHECK(node.head() == "node");
  });
}

TEST_CASE("xend: over TCP too", "[xend]") {
  xen_host h(true);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    xend x(ex, h.tcp_ep());
    diagnostics diag;
    auto node = must(co_await x.get("/xend/node/", diag), diag);
    CHECK(value(node, "node/xend_config_format") == std::optional<std::string_view>("4"));

    const form_t create = form2("op", "create", "config", web1_config());
    must(co_await x.post("/xend/domain/", create, diag), diag);
    auto web1 = must(co_await x.get("/xend/domain/web1?detail=1", diag), diag);
    CHECK(value(web1, "domain/description") == std::optional<std::string_view>(web1_description));

    // A host name goes through the resolver.
    xend named(ex, xend_endpoint{"", "localhost", std::to_string(h.fx.port())});
    auto names = co_await named.get("/xend/domain", diag);
    if (names) CHECK(has_atom(*names, "web1"));
    else CHECK(names.error() == errc::no_xen);  // localhost may resolve to ::1 only

    // Nobody listening on a port: no_xen.
    h.fx.stop();
    auto none = co_await x.get("/xend/node/", diag);
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error() == errc::no_xen);
  });
}

TEST_CASE("xend: form encoding", "[xend]") {
  CHECK(xend::encode_form(form2("op", "create", "config", "(vm (description 'a & b + c'))")) ==
        "op=create&config=%28vm%20%28description%20%27a%20%26%20b%20%2B%20c%27%29%29");
  CHECK(xend::encode_form({}).empty());
}

}  // namespace
