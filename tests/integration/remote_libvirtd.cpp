// The remote driver against Debian's real libvirtd (libvirt 9.0), each test with a private
// daemon of its own (scripts/private-libvirtd): the connection API compared with covirt's
// in-process test driver, events caused by virsh, the name cache under virsh's feet, many calls
// in flight, a daemon stopped or killed mid-call, keepalive, TCP, and a real QEMU guest.
//
// No co_await inside CHECK or REQUIRE here: g++ 12 evaluates it twice there (an event taken
// from a stream twice was how it showed), so every awaited value is named first.
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>  // format_bitmap
#include <covirt/remote/driver.hpp>
#include <covirt/timeout.hpp>

#include "common/libvirtd.hpp"
#include "common/remote_helpers.hpp"
#include "common/prelude.hpp"
#include "common/run.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>
#include <sstream>
#include <variant>

namespace Catch {
template <>
struct StringMaker<covirt::domain_ref> {
  static std::string convert(const covirt::domain_ref& d) { return "{" + d.name + " " + d.uuid + " " + std::to_string(d.id) + "}"; }
};
template <>
struct StringMaker<covirt::typed_param> {
  static std::string convert(const covirt::typed_param& p) {
    return p.field + "=" + std::visit([](const auto& v) -> std::string {
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) return "'" + v + "'";
      else return std::to_string(v);
    }, p.value) + "(type " + std::to_string(p.value.index() + 1) + ")";
  }
};
}  // namespace Catch

namespace {

// The same question to both drivers; their answers must agree.
#define SAME(EXPR_LOCAL, EXPR_REMOTE)                     \
  do {                                                    \
    auto l_ = co_await (EXPR_LOCAL);                      \
    auto r_ = co_await (EXPR_REMOTE);                     \
    CHECK(l_ == r_);                                      \
  } while (0)

bool operator==(const covirt::domain_info& a, const covirt::domain_info& b) {
  return a.state == b.state && a.max_mem_kib == b.max_mem_kib && a.memory_kib == b.memory_kib &&
         a.nr_virt_cpu == b.nr_virt_cpu;  // cpu time: both test drivers derive it from the clock
}
bool operator==(const covirt::domain_state_info& a, const covirt::domain_state_info& b) {
  return a.state == b.state && a.reason == b.reason;
}

}  // namespace

namespace covirt {
using ::operator==;
}

TEST_CASE("remote: test+unix:///default answers as the in-process test driver", "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto local = co_await covirt::async_open(ex, "test:///default");
    auto rem = co_await covirt::async_open(ex, daemon.uri());
    CHECK(rem.type() == "TEST");
    CHECK(rem.driver_as<remote::driver>() != nullptr);

    // Node and connection.
    SAME(local.async_node_get_info(), rem.async_node_get_info());
    SAME(local.async_get_capabilities(), rem.async_get_capabilities());
    SAME(local.async_get_version(), rem.async_get_version());
    SAME(local.async_get_hostname(), rem.async_get_hostname());
    SAME(local.async_get_max_vcpus("test"), rem.async_get_max_vcpus("test"));

    // Domains as test:///default has them.
    SAME(local.async_list_domains(0), rem.async_list_domains(0));
    SAME(local.async_list_domains(covirt::list_flags::inactive), rem.async_list_domains(covirt::list_flags::inactive));
    SAME(local.async_lookup_by_name("test"), rem.async_lookup_by_name("test"));
    SAME(local.async_lookup_by_id(1), rem.async_lookup_by_id(1));
    SAME(local.async_lookup_by_uuid("6695eb01-f6a4-8304-79aa-97f2502e193f"),
         rem.async_lookup_by_uuid("6695eb01-f6a4-8304-79aa-97f2502e193f"));
    SAME(local.async_get_info("test"), rem.async_get_info("test"));
    SAME(local.async_get_state("test"), rem.async_get_state("test"));
    SAME(local.async_get_xml("test", 0), rem.async_get_xml("test", 0));
    SAME(local.async_get_xml("test", covirt::xml_flags::inactive), rem.async_get_xml("test", covirt::xml_flags::inactive));
    SAME(local.async_get_os_type("test"), rem.async_get_os_type("test"));
    SAME(local.async_is_active("test"), rem.async_is_active("test"));
    SAME(local.async_is_persistent("test"), rem.async_is_persistent("test"));
    SAME(local.async_get_autostart("test"), rem.async_get_autostart("test"));

    // Networks.
    SAME(local.async_list_networks(0), rem.async_list_networks(0));
    SAME(local.async_lookup_network("default"), rem.async_lookup_network("default"));
    SAME(local.async_get_network_xml("default", 0), rem.async_get_network_xml("default", 0));
    SAME(local.async_get_network_bridge_name("default"), rem.async_get_network_bridge_name("default"));
    SAME(local.async_get_network_autostart("default"), rem.async_get_network_autostart("default"));

    // The same changes on both, then the same answers.
    const std::string xml = vm1_xml();
    SAME(local.async_define_xml(xml), rem.async_define_xml(xml));
    SAME(local.async_get_xml("vm1", 0), rem.async_get_xml("vm1", 0));
    for (connection* c : {&local, &rem}) {
      co_await c->async_create("vm1");
      co_await c->async_suspend("vm1");
    }
    SAME(local.async_get_state("vm1"), rem.async_get_state("vm1"));
    for (connection* c : {&local, &rem}) {
      co_await c->async_resume("vm1");
      co_await c->async_set_memory("vm1", 200000, covirt::modify::live);
      co_await c->async_set_vcpus("vm1", 1, covirt::modify::live);
      co_await c->async_set_autostart("vm1", true);
    }
    SAME(local.async_get_info("vm1"), rem.async_get_info("vm1"));
    SAME(local.async_get_autostart("vm1"), rem.async_get_autostart("vm1"));
    SAME(local.async_get_xml("vm1", 0), rem.async_get_xml("vm1", 0));
    SAME(local.async_get_xml("test", covirt::xml_flags::inactive), rem.async_get_xml("test", covirt::xml_flags::inactive));
    {  // in any order (libvirt lists from a hash table)
      auto l = co_await local.async_list_domains(covirt::list_flags::active);
      auto r = co_await rem.async_list_domains(covirt::list_flags::active);
      auto by_name = [](const domain_ref& a, const domain_ref& b) { return a.name < b.name; };
      std::sort(l.begin(), l.end(), by_name);
      std::sort(r.begin(), r.end(), by_name);
      CHECK(l == r);
    }
    for (connection* c : {&local, &rem}) {
      co_await c->async_shutdown("vm1");
      co_await c->async_set_max_memory("vm1", 600000);
    }
    SAME(local.async_get_xml("vm1", 0), rem.async_get_xml("vm1", 0));
    for (connection* c : {&local, &rem}) co_await c->async_undefine("vm1");
    SAME(local.async_list_domains(0), rem.async_list_domains(0));
    SAME(local.async_create_xml(xml, 0), rem.async_create_xml(xml, 0));
    SAME(local.async_is_persistent("vm1"), rem.async_is_persistent("vm1"));
    for (connection* c : {&local, &rem}) {
      co_await c->async_reboot("vm1");
      co_await c->async_destroy("vm1");
    }
    SAME(local.async_list_domains(0), rem.async_list_domains(0));

    // Save and restore through the daemon (the test driver writes the file itself).
    const std::string path = daemon.dir() + "/test.save";
    co_await rem.async_save("test", path);
    {
      auto v = co_await rem.async_get_state("test");
      CHECK(v.state == domain_state::shutoff);
    }
    auto back = co_await rem.async_restore(path);
    CHECK(back.name == "test");
    CHECK(back.uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f");
    CHECK(back.id > 0);
    {
      auto v = co_await rem.async_get_state("test");
      CHECK(v.state == domain_state::running);
    }

    // Networks change alike.
    for (connection* c : {&local, &rem}) {
      co_await c->async_destroy_network("default");
      co_await c->async_set_network_autostart("default", false);
    }
    SAME(local.async_list_networks(0), rem.async_list_networks(0));
    for (connection* c : {&local, &rem}) co_await c->async_create_network("default");
    SAME(local.async_lookup_network("default"), rem.async_lookup_network("default"));

    // Errors: libvirt's codes, the daemon's words kept.
    std::string lmsg, rmsg;
    {
      auto v = co_await code_of(local.async_get_info("nosuch"), &lmsg);
      CHECK(v == errc::no_domain);
    }
    {
      auto v = co_await code_of(rem.async_get_info("nosuch"), &rmsg);
      CHECK(v == errc::no_domain);
    }
    CHECK(rmsg.empty());  // libvirt's whole message is the code's own text: what() is "Domain not found"
    {  // libvirt's test driver: "domain 'test' not paused", an internal error
      auto r = co_await code_of(rem.async_resume("test"), &rmsg);
      auto l = co_await code_of(local.async_resume("test"), &lmsg);
      CHECK(r == errc::internal_error);
      CHECK(l == r);
      CHECK(lmsg == rmsg);
    }
    {
      auto r = co_await code_of(rem.async_define_xml("<domain>"));
      auto l = co_await code_of(local.async_define_xml("<domain>"));
      CHECK(r == errc::xml_detail);
      CHECK(l == r);
    }
    {
      auto v = co_await code_of(rem.async_lookup_network("nosuch"));
      CHECK(v == errc::no_network);
    }
    {
      auto v = co_await code_of(rem.async_lookup_by_uuid("not-a-uuid"));
      CHECK(v == errc::invalid_arg);
    }
    // The test driver has no device hotplug: libvirtd's own no_support comes back.
    {
      auto v = co_await code_of(rem.async_attach_device("test", "<disk/>", 0));
      CHECK(v == errc::no_support);
    }
    co_await rem.async_close();
    {
      auto v = co_await code_of(rem.async_get_info("test"));
      CHECK(v != error_code());
    }
  });
}

TEST_CASE("remote: events caused by virsh on the same daemon reach covirt", "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri());
    auto all = c.subscribe();
    auto only_test = c.subscribe("test");
    int st = 0;
    daemon.virsh("suspend test", &st);
    REQUIRE(st == 0);
    auto e = co_await next_event(all);
    CHECK(e.domain.name == "test");
    CHECK(e.domain.uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f");
    CHECK(e.type == event_type::suspended);
    CHECK(e.detail == detail_::suspended_paused);
    auto out = daemon.virsh("resume test", &st);
    INFO(out);
    REQUIRE(st == 0);
    auto resumed = co_await next_event(all);
    CHECK(resumed.type == event_type::resumed);
    {
      auto v = co_await next_event(only_test);
      CHECK(v.type == event_type::suspended);
    }
    {
      auto v = co_await next_event(only_test);
      CHECK(v.type == event_type::resumed);
    }
    // Defined elsewhere: the event, and the name is known without a lookup.
    const std::string file = daemon.dir() + "/vm1.xml";
    std::ofstream(file) << vm1_xml();
    daemon.virsh("define " + file, &st);
    REQUIRE(st == 0);
    auto d = co_await next_event(all);
    CHECK(d.domain.name == "vm1");
    CHECK(d.type == event_type::defined);
    CHECK(c.driver_as<remote::driver>()->known_domains() >= 1);
    daemon.virsh("undefine vm1", &st);
    {
      auto v = co_await next_event(all);
      CHECK(v.type == event_type::undefined);
    }
  });
}

TEST_CASE("remote: a name undefined and defined again under covirt's feet reaches the new domain",
          "[remote][libvirtd]") {
  private_libvirtd daemon;
  const std::string file1 = daemon.dir() + "/a.xml", file2 = daemon.dir() + "/b.xml";
  std::string first = vm1_xml(), second = vm1_xml();
  const std::string old_uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", new_uuid = "0b0b0b0b-1111-2222-3333-444444444444";
  second.replace(second.find(old_uuid), old_uuid.size(), new_uuid);
  second.replace(second.find("<memory unit='KiB'>524288"), 25, "<memory unit='KiB'>786432");
  std::ofstream(file1) << first;
  std::ofstream(file2) << second;

  for (bool with_events : {true, false}) {
    DYNAMIC_SECTION((with_events ? "the undefine event drops the name" : "no events: no_domain, a fresh lookup, one retry")) {
      run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto c = co_await covirt::async_open(ex, daemon.uri());
        auto* drv = c.driver_as<remote::driver>();
        if (!with_events) {  // stop libvirtd's events to this connection: the cache goes stale
          diagnostics d;
          const remote::int_args id{0};
          auto r = co_await drv->rpc().call<void>(remote::proc::connect_domain_event_callback_deregister_any, id, d);
          REQUIRE(r);
        }
        int st = 0;
        daemon.virsh("define " + file1, &st);
        REQUIRE(st == 0);
        auto before = co_await c.async_get_info("vm1");  // looked up, then known
        CHECK(before.max_mem_kib == 524288);
        daemon.virsh("undefine vm1", &st);
        REQUIRE(st == 0);
        daemon.virsh("define " + file2, &st);
        REQUIRE(st == 0);
        // By name: the new domain, never the old.
        {
          auto v = co_await c.async_get_info("vm1");
          CHECK(v.max_mem_kib == 786432);
        }
        auto xml = co_await c.async_get_xml("vm1", 0);
        CHECK(xml.find(new_uuid) != std::string::npos);
        co_await c.async_set_autostart("vm1", true);
        CHECK(daemon.virsh("dominfo vm1").find("Autostart:      enable") != std::string::npos);
        // By the old ref: that domain is gone, and no retry finds another.
        const domain_ref old_ref{"vm1", old_uuid, -1};
        {
          auto v = co_await code_of(c.async_get_info(old_ref));
          CHECK(v == errc::no_domain);
        }
        daemon.virsh("undefine vm1");
      });
    }
  }
}

TEST_CASE("remote: 64 calls in flight on one connection, replies in any order", "[remote][libvirtd]") {
  private_libvirtd daemon("--conf 'max_client_requests = 64'");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri());
    auto* drv = c.driver_as<remote::driver>();
    int done = 0, ok = 0;
    std::size_t most = 0;
    for (int i = 0; i < 64; ++i)
      asio::co_spawn(ex, [&, i]() -> asio::awaitable<void> {
        if (i % 2) {
          auto info = co_await c.async_get_info("test");
          ok += info.state == domain_state::running;
        } else {
          auto xml = co_await c.async_get_xml("test", 0);
          ok += xml.find("<name>test</name>") != std::string::npos;
        }
        ++done;
      }, asio::detached);
    asio::steady_timer t(ex);
    while (done < 64) {  // poll the count; the run's limit bounds it
      most = std::max(most, drv->rpc().pending_calls());
      t.expires_after(1ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    CHECK(ok == 64);
    CHECK(most > 1);
    CHECK(drv->rpc().pending_calls() == 0);
  });
}

TEST_CASE("remote: a daemon killed mid-call fails every pending call at once; reconnect works",
          "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri());
    auto events = c.subscribe();
    ::kill(daemon.pid(), SIGSTOP);  // calls now wait for an answer that will not come
    int failed = 0;
    std::vector<std::string> messages;
    for (int i = 0; i < 64; ++i)
      asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
        std::string m;
        auto ec = co_await code_of(c.async_get_info("test"), &m);
        failed += ec == errc::system_error;
        messages.push_back(m);
      }, asio::detached);
    asio::steady_timer t(ex);
    // Wait until all 64 are sent (the daemon answers none while stopped); the run's limit bounds it.
    while (c.driver_as<remote::driver>()->rpc().pending_calls() < 64) {
      t.expires_after(1ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    CHECK(c.driver_as<remote::driver>()->rpc().pending_calls() == 64);
    daemon.stop(SIGKILL);
    while ((int)messages.size() < 64) {
      t.expires_after(5ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    CHECK(failed == 64);
    INFO(messages.front());
    CHECK(messages.front().starts_with("connection to libvirtd at '" + daemon.socket() + "'"));
    auto [ec, ev] = co_await events.async_next(tuple);
    CHECK(ec == asio::error::eof);  // the stream ended with the connection
    // Later calls fail the same way, at once.
    {
      auto v = co_await code_of(c.async_get_info("test"));
      CHECK(v == errc::system_error);
    }

    daemon.start();
    diagnostics d;
    auto r = co_await c.driver_as<remote::driver>()->reconnect(d);
    INFO(d.message());
    REQUIRE(r);
    {
      auto v = co_await c.async_get_info("test");
      CHECK(v.state == domain_state::running);
    }
    auto again = c.subscribe();
    co_await c.async_suspend("test");
    {
      auto v = co_await next_event(again);
      CHECK(v.type == event_type::suspended);
    }
  });
}

TEST_CASE("remote: a peer that stops answering is dropped by keepalive; a timeout cancels one call",
          "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri() + "&keepalive_interval=1&keepalive_count=2");
    auto* drv = c.driver_as<remote::driver>();
    ::kill(daemon.pid(), SIGSTOP);
    {
      covirt::op_timeout deadline(ex, 200ms);
      auto [ec, info] = co_await c.async_get_info("test", deadline.bind(tuple));
      CHECK(deadline.expired());
      CHECK(ec == asio::error::operation_aborted);
    }
    ::kill(daemon.pid(), SIGCONT);
    {
      auto v = co_await c.async_get_info("test");
      CHECK(v.state == domain_state::running);
    }
    // The cancelled call's late reply comes too, and is dropped by its serial.
    asio::steady_timer poll(ex);
    for (int i = 0; i < 1000 && drv->rpc().ignored_replies() == 0; ++i) {
      poll.expires_after(5ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
    CHECK(drv->rpc().ignored_replies() == 1);

    ::kill(daemon.pid(), SIGSTOP);
    const auto t0 = clock_type::now();
    std::string m;
    auto ec = co_await code_of(c.async_get_info("test"), &m);
    const auto waited = clock_type::now() - t0;
    CHECK(ec == errc::internal_error);
    CHECK(m.find("keepalive timeout") != std::string::npos);
    CHECK(waited < 10s);  // 1 s interval, 2 unanswered pings: about 3 s
    ::kill(daemon.pid(), SIGCONT);
  }, 60s);
}

TEST_CASE("remote: read-only connections are refused changes by covirt and by libvirtd", "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri(), covirt::open_flags::read_only);
    {
      auto v = co_await code_of(c.async_suspend("test"));
      CHECK(v == errc::operation_denied);
    }
    {
      auto v = co_await c.async_get_info("test");
      CHECK(v.state == domain_state::running);
    }
    // Past covirt's own refusal, the daemon refuses too: CONNECT_OPEN carried VIR_CONNECT_RO.
    diagnostics d;
    auto r = co_await c.driver_as<remote::driver>()->suspend("test", d);
    CHECK(r.error() == errc::operation_denied);
    CHECK(std::string(covirt::error(r.error(), std::string(d.message())).what()) ==
          "operation forbidden: read only access prevents virDomainSuspend");
  });
}

namespace {

// What virsh -q prints for typed parameters: "%-15s: %s", memtune's "unlimited", numatune's mode
// as a word (virDomainNumatuneMemMode).
std::string virsh_lines(const covirt::typed_params& ps) {
  std::string out;
  for (const auto& p : ps) {
    std::string v = std::visit([](const auto& x) -> std::string {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, std::string>) return x;
      else if constexpr (std::is_same_v<T, bool>) return x ? "yes" : "no";
      else return std::to_string(x);
    }, p.value);
    if (auto* u = std::get_if<unsigned long long>(&p.value); u && *u == covirt::memory_unlimited_kib) v = "unlimited";
    if (auto* m = std::get_if<int>(&p.value); m && p.field == "numa_mode") {
      static const char* const modes[] = {"strict", "preferred", "interleave", "restrictive"};
      v = *m >= 0 && *m < 4 ? modes[*m] : "?";
    }
    std::string name = p.field;
    if (name.size() < 15) name.resize(15, ' ');
    out += name + ": " + v + "\n";
  }
  return out;
}

// A 'y'/'-' map as virsh lists it ("0-2,5").
std::string cpu_list(const std::string& map) {
  std::vector<unsigned> on;
  for (std::size_t i = 0; i < map.size(); ++i)
    if (map[i] == 'y') on.push_back(unsigned(i));
  return covirt::format_bitmap(on);
}

// virsh -q vcpupin's " 0   0-7" lines, as the same lists from covirt's maps.
std::string vcpupin_lines(const std::vector<std::string>& maps) {
  std::string out;
  for (std::size_t i = 0; i < maps.size(); ++i) out += " " + std::to_string(i) + "   " + cpu_list(maps[i]) + "\n";
  return out;
}

// virsh's last line for a call that failed: libvirt's whole message.
std::string virsh_error(const std::string& out) {
  auto at = out.rfind("error: ");
  return at == std::string::npos ? "(no error in: " + out + ")" : out.substr(at);
}

}  // namespace

TEST_CASE("remote: tuning and affinity through libvirtd answer as virsh sees them on the same daemon",
          "[remote][libvirtd]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using covirt::typed_params;
    namespace modify = covirt::modify;
    auto c = co_await covirt::async_open(ex, daemon.uri());  // holds test:///default for virsh's runs too
    const unsigned live = modify::live, config = modify::config;

    // ---- schedinfo: the count is GET_SCHEDULER_TYPE's
    auto type = co_await c.async_get_scheduler_type("test");
    CHECK(type == "fair");
    auto sched = co_await c.async_get_scheduler_parameters("test", 0);
    CHECK(sched == typed_params{{"weight", 50u}});
    CHECK("Scheduler      : " + type + "\n" + virsh_lines(sched) == daemon.virsh("schedinfo test"));
    {
      const typed_params w{{"weight", 77u}};
      co_await c.async_set_scheduler_parameters("test", w, 0);  // libvirt's test driver checks it and keeps nothing
      auto again = co_await c.async_get_scheduler_parameters("test", 0);
      CHECK(again == sched);
      CHECK("Scheduler      : fair\n" + virsh_lines(again) == daemon.virsh("schedinfo test"));
    }
    {  // its flags are refused by libvirt's test driver, in its words (0x6: STRING_OKAY went along, as virsh's
       // does). virCheckFlags' message has no "invalid argument: " in front: what() puts covirt's there.
      auto t = co_await catch_error(c.async_get_scheduler_parameters("test", config));
      CHECK(t.ec == errc::invalid_arg);
      CHECK("error: " + t.message + "\n" == virsh_error(daemon.virsh("schedinfo test --config")));
      CHECK(t.message == "unsupported flags (0x6) in function testDomainGetSchedulerParametersFlags");
    }
    {
      const typed_params wrong{{"weight", std::string("heavy")}};
      auto t = co_await catch_error(c.async_set_scheduler_parameters("test", wrong, 0));
      INFO(t.what);
      CHECK(t.ec == errc::invalid_arg);
      CHECK(t.what == "invalid argument: invalid type 'string' for parameter 'weight', expected 'uint'");
      const typed_params unknown{{"bogus", 1u}};
      auto u = co_await catch_error(c.async_set_scheduler_parameters("test", unknown, 0));
      INFO(u.what);
      CHECK(u.ec == errc::argument_unsupported);
      CHECK(u.what == "argument unsupported: parameter 'bogus' not supported");
    }
    {  // more than REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX: refused before anything is sent, as libvirt's client does
      const typed_params many(17, covirt::typed_param{"weight", 1u});
      auto t = co_await catch_error(c.async_set_scheduler_parameters("test", many, 0));
      CHECK(t.ec == errc::rpc);
      CHECK(t.message == "too many parameters '17' for limit '16'");
    }

    // ---- memtune: two calls, the count (nparams 0), then the parameters
    auto mem = co_await c.async_get_memory_parameters("test", 0);
    CHECK(mem == typed_params{{"hard_limit", covirt::memory_unlimited_kib},
                              {"soft_limit", covirt::memory_unlimited_kib},
                              {"swap_hard_limit", covirt::memory_unlimited_kib}});
    CHECK(virsh_lines(mem) == daemon.virsh("memtune test"));
    {
      const typed_params hard{{"hard_limit", 1000000ULL}}, soft{{"soft_limit", 5000ULL}};
      co_await c.async_set_memory_parameters("test", hard, live);
      co_await c.async_set_memory_parameters("test", soft, config);
    }
    {
      auto l = co_await c.async_get_memory_parameters("test", live);
      auto k = co_await c.async_get_memory_parameters("test", config);
      CHECK(l[0] == covirt::typed_param{"hard_limit", 1000000ULL});
      CHECK(k[1] == covirt::typed_param{"soft_limit", 5000ULL});
      CHECK(virsh_lines(l) == daemon.virsh("memtune test --live"));
      CHECK(virsh_lines(k) == daemon.virsh("memtune test --config"));
      const typed_params wrong{{"hard_limit", 5u}};
      auto t = co_await catch_error(c.async_set_memory_parameters("test", wrong, live));
      INFO(t.what);
      CHECK(t.ec == errc::invalid_arg);
      CHECK(t.what == "invalid argument: invalid type 'uint' for parameter 'hard_limit', expected 'ullong'");
    }

    // ---- blkiotune: five of its six parameters are strings, which come only with STRING_OKAY
    auto blk = co_await c.async_get_blkio_parameters("test", 0);
    REQUIRE(blk.size() == 6);
    CHECK(blk[0] == covirt::typed_param{"weight", 0u});
    CHECK(blk[1] == covirt::typed_param{"device_weight", std::string()});
    CHECK(virsh_lines(blk) == daemon.virsh("blkiotune test"));
    {
      const typed_params set{{"weight", 300u}, {"device_weight", std::string("/dev/sda,200")}};
      co_await c.async_set_blkio_parameters("test", set, live);
      const typed_params cfg{{"weight", 400u}};
      co_await c.async_set_blkio_parameters("test", cfg, config);
    }
    {
      auto l = co_await c.async_get_blkio_parameters("test", live);
      auto k = co_await c.async_get_blkio_parameters("test", config);
      REQUIRE(l.size() == 6);
      CHECK(l[0] == covirt::typed_param{"weight", 300u});
      CHECK(l[1] == covirt::typed_param{"device_weight", std::string("/dev/sda,200")});
      REQUIRE(!k.empty());
      CHECK(k[0] == covirt::typed_param{"weight", 400u});
      CHECK(virsh_lines(l) == daemon.virsh("blkiotune test --live"));
      CHECK(virsh_lines(k) == daemon.virsh("blkiotune test --config"));
    }

    // ---- numatune: an int and a string
    auto numa = co_await c.async_get_numa_parameters("test", 0);
    CHECK(numa == typed_params{{"numa_mode", 0}, {"numa_nodeset", std::string()}});
    CHECK(virsh_lines(numa) == daemon.virsh("numatune test"));
    {
      const typed_params set{{"numa_mode", 2}, {"numa_nodeset", std::string("1")}};
      co_await c.async_set_numa_parameters("test", set, config);
      auto k = co_await c.async_get_numa_parameters("test", config);
      CHECK(k == set);
      CHECK(virsh_lines(k) == daemon.virsh("numatune test --config"));
      auto l = co_await c.async_get_numa_parameters("test", live);
      CHECK(l == numa);  // the live domain kept its own
      CHECK(virsh_lines(l) == daemon.virsh("numatune test --live"));
    }

    // ---- vcpupin: maps as long as the host's CPUs (NODE_GET_CPU_MAP says 8 for the test node)
    auto pins = co_await c.async_get_vcpu_pin_info("test", 0);
    CHECK(pins == std::vector<std::string>{"yyyyyyyy", "yyyyyyyy"});
    CHECK(vcpupin_lines(pins) == daemon.virsh("vcpupin test"));
    {
      const std::string list = "0-3,^1", map = "-y-y";
      co_await c.async_pin_vcpu_flags("test", 1, list, 0);
      auto p = co_await c.async_get_vcpu_pin_info("test", live);
      CHECK(p == std::vector<std::string>{"yyyyyyyy", "y-yy----"});
      CHECK(vcpupin_lines(p) == daemon.virsh("vcpupin test --live"));
      co_await c.async_pin_vcpu_flags("test", 0, map, 0);  // a map shorter than the host's: the rest are off
      auto q = co_await c.async_get_vcpu_pin_info("test", 0);
      CHECK(q == std::vector<std::string>{"-y-y----", "y-yy----"});
      CHECK(vcpupin_lines(q) == daemon.virsh("vcpupin test"));
      auto k = co_await c.async_get_vcpu_pin_info("test", config);  // the definition was not touched
      CHECK(k == pins);
      CHECK(vcpupin_lines(k) == daemon.virsh("vcpupin test --config"));
    }
    {  // libvirt's test driver pins with flags 0 only, and only vCPUs the domain has: its code and words
      const std::string cpus = "0-2";
      for (unsigned f : {live, config}) {
        auto t = co_await catch_error(c.async_pin_vcpu_flags("test", 1, cpus, f));
        CHECK(t.ec == errc::invalid_arg);
        CHECK("error: " + t.message + "\n" ==
              virsh_error(daemon.virsh(std::string("vcpupin test 1 0-2 ") + (f == live ? "--live" : "--config"))));
      }
      auto u = co_await catch_error(c.async_pin_vcpu_flags("test", 5, cpus, 0));
      CHECK(u.ec == errc::invalid_arg);
      CHECK("error: " + u.what + "\n" == virsh_error(daemon.virsh("vcpupin test 5 0-2")));
      CHECK(u.what == "invalid argument: requested vcpu '5' is not present in the domain");
      // a list past the host's CPUs is refused here, in virsh's words
      const std::string past = "0-9";
      auto v = co_await catch_error(c.async_pin_vcpu_flags("test", 0, past, 0));
      CHECK(v.ec == errc::invalid_arg);
      CHECK("error: " + v.message + "\n" == virsh_error(daemon.virsh("vcpupin test 0 0-9")));
      const std::string empty;
      auto w = co_await catch_error(c.async_pin_vcpu_flags("test", 0, empty, 0));
      INFO(w.what);
      CHECK(w.ec == errc::invalid_arg);  // an opaque of 0 bytes is NULL to libvirtd's public API
      CHECK(w.what == "invalid argument: cpumap in virDomainPinVcpuFlags must not be NULL");
    }

    // ---- emulatorpin
    auto emu = co_await c.async_get_emulator_pin_info("test", 0);
    CHECK(emu == "yyyyyyyy");
    CHECK(cpu_list(emu) + "\n" == daemon.virsh("emulatorpin test"));
    {
      const std::string three = "3", some = "1-2";
      co_await c.async_pin_emulator("test", three, config);
      co_await c.async_pin_emulator("test", some, live);
      auto k = co_await c.async_get_emulator_pin_info("test", config);
      auto l = co_await c.async_get_emulator_pin_info("test", live);
      CHECK(k == "---y----");
      CHECK(l == "-yy-----");
      CHECK(cpu_list(k) + "\n" == daemon.virsh("emulatorpin test --config"));
      CHECK(cpu_list(l) + "\n" == daemon.virsh("emulatorpin test --live"));
    }

    // ---- by ref, and on a domain libvirtd does not have
    {
      auto ref = co_await c.async_lookup_by_name("test");
      auto by_ref = co_await c.async_get_memory_parameters(ref, live);
      CHECK(by_ref[0] == covirt::typed_param{"hard_limit", 1000000ULL});
      auto t = co_await catch_error(c.async_get_blkio_parameters("nosuch", 0));
      CHECK(t.ec == errc::no_domain);
      CHECK(t.what == "Domain not found");  // (virsh says its own "failed to get domain 'nosuch'")
      auto u = co_await catch_error(c.async_get_vcpu_pin_info("nosuch", 0));
      CHECK(u.ec == errc::no_domain);
    }
    // ---- an inactive domain: no live pins, in libvirt's words
    {
      const std::string xml = vm1_xml();
      co_await c.async_define_xml(xml);
      auto t = co_await catch_error(c.async_get_vcpu_pin_info("vm1", live));
      INFO(t.what);
      CHECK(t.ec == errc::operation_invalid);  // GET_VCPUS_FLAGS (live | maximum) answers first
      CHECK(t.what == "Requested operation is not valid: domain is not running");
      auto k = co_await c.async_get_vcpu_pin_info("vm1", config);
      CHECK(vcpupin_lines(k) == daemon.virsh("vcpupin vm1 --config"));
      auto m = co_await c.async_get_memory_parameters("vm1", 0);
      CHECK(virsh_lines(m) == daemon.virsh("memtune vm1"));
      co_await c.async_undefine("vm1");
    }
  });
}

TEST_CASE("remote: test+tcp to a daemon listening on 127.0.0.1", "[remote][libvirtd]") {
  const int port = 16600 + ::getpid() % 1000;
  private_libvirtd daemon("--tcp " + std::to_string(port));
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, "test+tcp://127.0.0.1:" + std::to_string(port) + "/default");
    CHECK(c.driver_as<remote::driver>()->rpc().peer() == "127.0.0.1:" + std::to_string(port));
    auto doms = co_await c.async_list_domains(0);
    REQUIRE(doms.size() == 1);
    CHECK(doms[0].name == "test");
    std::string m;
    {
      auto v = co_await code_of(covirt::async_open(ex, "test+tcp://127.0.0.1:1/default"), &m);
      CHECK(v == errc::no_connect);
    }
    CHECK(m.find("Connection refused") != std::string::npos);
    auto no_socket = co_await code_of(covirt::async_open(ex, "test+unix:///default?socket=/nonexistent/sock"), &m);
    CHECK(no_socket == errc::no_connect);
    CHECK(m == "cannot connect to libvirtd socket '/nonexistent/sock': No such file or directory");
  });
}

TEST_CASE("remote: qemu+unix:///system runs a real diskless guest", "[remote][libvirtd][qemu]") {
  private_libvirtd daemon;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, daemon.uri("qemu", "/system"));
    CHECK(c.type() == "QEMU");
    auto events = c.subscribe("rg1");
    const std::string xml =
        "<domain type='qemu'><name>rg1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>";
    auto ref = co_await c.async_create_xml(xml, 0);
    CHECK(ref.id > 0);
    {
      auto v = co_await event_of(events, event_type::started);
      CHECK(v.domain.name == "rg1");
    }
    co_await c.async_suspend("rg1");
    {
      auto v = co_await event_of(events, event_type::suspended);
      CHECK(v.domain.name == "rg1");
    }
    {
      auto v = co_await c.async_get_state("rg1");
      CHECK(v.state == domain_state::paused);
    }
    co_await c.async_resume("rg1");
    {
      auto v = co_await event_of(events, event_type::resumed);
      CHECK(v.domain.name == "rg1");
    }
    auto reply = co_await c.async_qemu_monitor_command("rg1", R"({"execute":"query-status"})");
    CHECK(reply.find("\"running\"") != std::string::npos);
    {
      auto job = co_await c.async_get_job_info("rg1");
      CHECK(job.type == covirt::job_type::none);
      auto no_job = co_await code_of(c.async_abort_job("rg1"));
      CHECK(no_job == errc::operation_invalid);
    }
    // A memory-only dump, then save and restore through the daemon: restore learns the domain
    // from the saved image's own XML.
    const std::string dump = daemon.dir() + "/rg1.core", saved = daemon.dir() + "/rg1.save";
    co_await c.async_core_dump("rg1", dump, covirt::dump_flags::memory_only);
    CHECK(std::filesystem::file_size(dump) > 64u << 20);
    co_await c.async_save("rg1", saved);
    {
      auto saved_ev = co_await event_of(events, event_type::stopped);
      CHECK(saved_ev.detail == detail_::stopped_saved);
    }
    {
      auto back = co_await c.async_restore(saved);
      CHECK(back.name == "rg1");
      CHECK(back.uuid == ref.uuid);
      CHECK(back.id > 0);
      auto state = co_await c.async_get_state("rg1");
      CHECK(state.state == domain_state::running);
    }
    co_await c.async_destroy("rg1");
    auto stopped = co_await event_of(events, event_type::stopped);
    CHECK(stopped.detail == detail_::stopped_destroyed);
    auto gone = co_await code_of(c.async_get_info("rg1"));
    CHECK(gone == errc::no_domain);  // transient: gone
  }, 120s);
}

