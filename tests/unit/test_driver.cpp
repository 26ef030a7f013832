// Unit tests of the test driver through covirt::connection on test:///default.
// Expected values come from libvirt 9.0's own test driver (virsh -c test:///default, and the
// C API for error codes and lifecycle events).

#include <covirt/connection.hpp>
#include <covirt/test/driver.hpp>

#include "common/print.hpp"
#include "common/run.hpp"

#include <catch2/catch.hpp>

#include "common/data.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <tuple>
#include <string>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
using covirt::domain_state;
using covirt::errc;
using covirt::error_code;
using covirt::event_type;
using covirt::test_support::catch_error;
using covirt::test_support::run_coro;
using Catch::Matchers::Contains;
namespace det = covirt::event_detail;
namespace rsn = covirt::reason;

namespace {

constexpr const char* test_uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";

// `virsh -c test:///default dumpxml test` and `net-dumpxml default` (libvirt 9.0), as recorded
// in tests/data/xml.
const std::string& default_live_xml() {
  static const std::string text = covirt_test::read_data("libvirt_test_domain.xml");
  return text;
}
const std::string& default_network_xml() {
  static const std::string text = covirt_test::read_data("libvirt_test_network.xml");
  return text;
}

constexpr const char* vm1_uuid = "11111111-2222-3333-4444-555555555555";

std::string vm_xml(const std::string& name = "vm1", const std::string& uuid = vm1_uuid,
                   const std::string& memory = "1048576", const std::string& current = "524288",
                   const std::string& vcpus = "2") {
  return "<domain type='test'>\n  <name>" + name + "</name>\n  <uuid>" + uuid +
         "</uuid>\n  <memory unit='KiB'>" + memory + "</memory>\n  <currentMemory unit='KiB'>" + current +
         "</currentMemory>\n  <vcpu>" + vcpus + "</vcpu>\n  <os><type arch='x86_64'>hvm</type></os>\n</domain>\n";
}

// `virsh dumpxml vm1` after `define` of vm_xml() (libvirt fills in the defaults), recorded.
const std::string& vm1_defined_xml() {
  static const std::string text = covirt_test::read_data("libvirt_test_vm1_defined.xml");
  return text;
}

std::string net_xml(const std::string& name, const std::string& uuid, const std::string& bridge = "") {
  std::string s = "<network>\n  <name>" + name + "</name>\n  <uuid>" + uuid + "</uuid>\n";
  if (!bridge.empty()) s += "  <bridge name='" + bridge + "'/>\n";
  return s + "</network>\n";
}

struct want {
  std::string name;
  event_type type;
  int detail;
};

// Reads every queued event and compares them with `expected`, in order.
asio::awaitable<void> expect_events(covirt::event_stream& s, const std::vector<want>& expected) {
  std::vector<covirt::domain_event> got;
  while (s.pending() > 0) got.push_back(co_await s.async_next());
  INFO("events received: " << got.size());
  for (std::size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    INFO("event #" << i << ": " << got[i].domain.name << " " << covirt::to_string(got[i].type) << " " << got[i].detail);
    CHECK(got[i].domain.name == expected[i].name);
    CHECK(got[i].type == expected[i].type);
    CHECK(got[i].detail == expected[i].detail);
  }
  CHECK(got.size() == expected.size());
}

std::vector<std::string> names(const std::vector<covirt::domain_ref>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> names(const std::vector<covirt::network_ref>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.name);
  std::sort(out.begin(), out.end());
  return out;
}

using strings = std::vector<std::string>;

// Runs `body(conn)` on a fresh test:///default connection.
template <class F>
void with_default(F body) {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    co_await body(conn);
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The default node

TEST_CASE("test driver: the default state is libvirt's", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    CHECK(c.type() == "TEST");
    CHECK(c.is_open());
    CHECK_FALSE(c.is_read_only());
    CHECK(co_await c.async_get_version() == 2);  // "Running hypervisor: TEST 0.0.2"
    CHECK(co_await c.async_get_max_vcpus("test") == 32);
    CHECK(co_await c.async_get_max_vcpus("") == 32);
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    CHECK(co_await c.async_get_hostname() == std::string(host));

    auto ni = co_await c.async_node_get_info();
    CHECK(ni == covirt::node_info{.model = "i686", .memory_kib = 3145728, .cpus = 16, .mhz = 1400,
                                  .nodes = 2, .sockets = 2, .cores = 2, .threads = 2});

    auto caps = co_await c.async_get_capabilities();
    CHECK_THAT(caps, Contains("<capabilities>"));
    CHECK_THAT(caps, Contains("<host>"));
    CHECK_THAT(caps, Contains("<guest>"));

    auto doms = co_await c.async_list_domains(0);
    REQUIRE(doms.size() == 1);
    CHECK(doms[0] == covirt::domain_ref{"test", test_uuid, 1});

    auto info = co_await c.async_get_info("test");
    CHECK(info.state == domain_state::running);
    CHECK(info.max_mem_kib == 8388608);
    CHECK(info.memory_kib == 2097152);
    CHECK(info.nr_virt_cpu == 2);
    CHECK(info.cpu_time_ns > 0);
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::running);
    CHECK(co_await c.async_is_active("test"));
    CHECK(co_await c.async_is_persistent("test"));
    CHECK_FALSE(co_await c.async_get_autostart("test"));

    CHECK(co_await c.async_get_xml("test", 0) == default_live_xml());

    auto nets = co_await c.async_list_networks(0);
    REQUIRE(nets.size() == 1);
    CHECK(nets[0] == covirt::network_ref{"default", "dd8fe884-6c02-601e-7551-cca97df1c5df", true, true, false});
    CHECK(co_await c.async_get_network_bridge_name("default") == "virbr0");
    CHECK_FALSE(co_await c.async_get_network_autostart("default"));
    CHECK(co_await c.async_get_network_xml("default", 0) == default_network_xml());
  });
}

TEST_CASE("test driver: the inactive XML of the default domain has no id", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    std::string expected(default_live_xml());
    expected.replace(expected.find(" id='1'"), 7, "");
    CHECK(co_await c.async_get_xml("test", covirt::xml_flags::inactive) == expected);
  });
}

// libvirt: `virsh -c test:///default domstate test --reason` says "running (unknown)";
// only a domain started later through the API is "running (booted)".
TEST_CASE("test driver: the default domain's running reason is unknown, as libvirt's", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::running_unknown);
  });
}

// ---------------------------------------------------------------------------------------------
// Lookup

TEST_CASE("test driver: lookup by name, uuid and id", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    const covirt::domain_ref t{"test", test_uuid, 1};
    CHECK(co_await c.async_lookup_by_name("test") == t);
    CHECK(co_await c.async_lookup_by_uuid(test_uuid) == t);
    CHECK(co_await c.async_lookup_by_uuid("6695eb01f6a4830479aa97f2502e193f") == t);  // without dashes
    CHECK(co_await c.async_lookup_by_uuid("6695EB01-F6A4-8304-79AA-97F2502E193F") == t);  // upper case
    CHECK(co_await c.async_lookup_by_id(1) == t);

    auto o = co_await catch_error(c.async_lookup_by_name("nope"));
    CHECK(o.ec == errc::no_domain);
    CHECK_THAT(o.message, Contains("'nope'"));
    o = co_await catch_error(c.async_lookup_by_uuid("11111111-2222-3333-4444-000000000000"));
    CHECK(o.ec == errc::no_domain);
    o = co_await catch_error(c.async_lookup_by_uuid("zz"));
    CHECK(o.ec);  // the exact code: see "a malformed uuid is invalid_arg" below
    o = co_await catch_error(c.async_lookup_by_id(99));
    CHECK(o.ec == errc::no_domain);
    CHECK_THAT(o.message, Contains("99"));
    o = co_await catch_error(c.async_lookup_by_id(-1));
    CHECK(o.ec == errc::no_domain);

    // An inactive domain has no id to be found by.
    co_await c.async_define_xml(vm_xml());
    auto r = co_await c.async_lookup_by_name("vm1");
    CHECK(r == covirt::domain_ref{"vm1", vm1_uuid, -1});
    CHECK(co_await c.async_lookup_by_uuid(vm1_uuid) == r);
    o = co_await catch_error(c.async_lookup_by_id(-1));
    CHECK(o.ec == errc::no_domain);
  });
}

// A domain_key made from a ref finds the domain by its UUID, as libvirt's protocol does: after an
// undefine and a define of the same name (a new UUID), the old ref reaches nothing, never the new
// domain; the name alone reaches the new one.
TEST_CASE("test driver: a domain_ref names its domain by UUID, a name by name", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    covirt::domain_ref old = co_await c.async_define_xml(vm_xml());
    CHECK((co_await c.async_get_info(old)).state == domain_state::shutoff);
    co_await c.async_undefine(old);
    const std::string other = "11111111-2222-3333-4444-666666666666";
    covirt::domain_ref now = co_await c.async_define_xml(vm_xml("vm1", other));
    REQUIRE(now.uuid == other);
    auto o = co_await catch_error(c.async_create(old));  // the old ref: not the new vm1
    CHECK(o.ec == errc::no_domain);
    CHECK_THAT(o.message, Contains(old.uuid) && Contains("vm1"));
    CHECK_FALSE(co_await c.async_is_active("vm1"));
    co_await c.async_create(now);  // the new ref, and the name, reach the new one
    CHECK(co_await c.async_is_active("vm1"));
    CHECK((co_await c.async_lookup_by_name("vm1")).uuid == other);
    co_await c.async_destroy("vm1");
  });
}

// The table of operations: a read-only connection refuses each mutating row in the name of its
// libvirt API before the driver sees it; a driver without a row answers no_support in that name.
TEST_CASE("connection: read-only refusals and no_support answers are named after the table's row", "[core]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto ro = co_await covirt::async_open(ex, "test:///default", covirt::open_flags::read_only);
    auto o = co_await catch_error(ro.async_set_max_memory("test", 1024));
    CHECK(o.ec == errc::operation_denied);
    CHECK_THAT(o.message, Contains("virDomainSetMaxMemory"));
    o = co_await catch_error(ro.async_suspend("test"));
    CHECK(o.ec == errc::operation_denied);
    CHECK_THAT(o.message, Contains("virDomainSuspend"));
    CHECK((co_await ro.async_get_info("test")).state == domain_state::running);  // reads still work
    auto rw = co_await covirt::async_open(ex, "test:///default");
    o = co_await catch_error(rw.async_save("test", "/nonexistent/x"));  // the test driver has no save
    CHECK(o.ec == errc::no_support);
    CHECK_THAT(o.message, Contains("virDomainSave"));
    o = co_await catch_error(rw.async_core_dump("test", "/nonexistent/x", 0u));  // nor core dumps
    CHECK(o.ec == errc::no_support);
    CHECK_THAT(o.message, Contains("virDomainCoreDumpWithFormat"));
  });
}

// libvirt: virDomainLookupByUUIDString(conn, "zz") fails with VIR_ERR_INVALID_ARG ("Invalid UUID").
TEST_CASE("test driver: lookup by a malformed uuid is invalid_arg", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    for (const char* bad : {"zz", "6695eb01-f6a4-8304-79aa", "6695eb01-f6a4-8304-79aa-97f2502e193fff"}) {
      INFO(bad);
      auto o = co_await catch_error(c.async_lookup_by_uuid(bad));
      CHECK(o.ec == errc::invalid_arg);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Define / undefine

TEST_CASE("test driver: define adds, redefining updates, conflicts are operation_failed", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    auto r = co_await c.async_define_xml(vm_xml());
    CHECK(r == covirt::domain_ref{"vm1", vm1_uuid, -1});
    CHECK_FALSE(co_await c.async_is_active("vm1"));
    CHECK(co_await c.async_is_persistent("vm1"));
    auto st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == rsn::shutoff_unknown);
    CHECK(co_await c.async_get_xml("vm1", 0) == vm1_defined_xml());
    auto info = co_await c.async_get_info("vm1");
    CHECK(info.state == domain_state::shutoff);
    CHECK(info.max_mem_kib == 1048576);
    CHECK(info.memory_kib == 524288);
    CHECK(info.nr_virt_cpu == 2);

    // Same name and uuid: an update, with new values.
    auto r2 = co_await c.async_define_xml(vm_xml("vm1", vm1_uuid, "2097152", "1048576", "4"));
    CHECK(r2 == r);
    info = co_await c.async_get_info("vm1");
    CHECK(info.max_mem_kib == 2097152);
    CHECK(info.memory_kib == 1048576);
    CHECK(info.nr_virt_cpu == 4);

    // Same name, another uuid (libvirt's exact words).
    auto o = co_await catch_error(c.async_define_xml(vm_xml("vm1", "99999999-2222-3333-4444-555555555555")));
    CHECK(o.ec == errc::operation_failed);
    CHECK(o.message == "domain 'vm1' already exists with uuid 11111111-2222-3333-4444-555555555555");
    // Same uuid, another name.
    o = co_await catch_error(c.async_define_xml(vm_xml("vm2")));
    CHECK(o.ec == errc::operation_failed);
    CHECK(o.message == "domain 'vm1' is already defined with uuid 11111111-2222-3333-4444-555555555555");
    // The default domain's uuid under another name.
    o = co_await catch_error(c.async_define_xml(vm_xml("other", test_uuid)));
    CHECK(o.ec == errc::operation_failed);
    CHECK_THAT(o.message, Contains("'test'"));
    // Not XML at all, and XML without a name.
    o = co_await catch_error(c.async_define_xml("this is not xml"));
    CHECK(o.ec);
    o = co_await catch_error(c.async_define_xml("<domain type='test'><memory>1024</memory></domain>"));
    CHECK(o.ec);

    // The failures changed nothing.
    {
      auto got_ = names(co_await c.async_list_domains(0));
      CHECK(got_ == strings{"test", "vm1"});
    }
    info = co_await c.async_get_info("vm1");
    CHECK(info.max_mem_kib == 2097152);
    {
      std::vector<want> exp_ = {{"vm1", event_type::defined, det::defined_added},
                                {"vm1", event_type::defined, det::defined_updated}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: redefining a running domain changes the next boot only", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    std::string xml(default_live_xml());
    xml.replace(xml.find(" id='1'"), 7, "");
    xml.replace(xml.find("2097152"), 7, "1048576");
    co_await c.async_define_xml(xml);
    auto info = co_await c.async_get_info("test");
    CHECK(info.memory_kib == 2097152);
    CHECK_THAT(co_await c.async_get_xml("test", 0), Contains("<currentMemory unit='KiB'>2097152</currentMemory>"));
    CHECK_THAT(co_await c.async_get_xml("test", covirt::xml_flags::inactive),
               Contains("<currentMemory unit='KiB'>1048576</currentMemory>"));
    co_await c.async_destroy("test");
    info = co_await c.async_get_info("test");
    CHECK(info.memory_kib == 1048576);
    {
      std::vector<want> exp_ = {{"test", event_type::defined, det::defined_updated},
                                {"test", event_type::stopped, det::stopped_destroyed}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: undefine", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    SECTION("an inactive domain is removed") {
      co_await c.async_define_xml(vm_xml());
      co_await c.async_undefine("vm1");
      auto o = co_await catch_error(c.async_lookup_by_name("vm1"));
      CHECK(o.ec == errc::no_domain);
      {
      std::vector<want> exp_ = {{"vm1", event_type::defined, det::defined_added},
                                  {"vm1", event_type::undefined, det::undefined_removed}};
      co_await expect_events(ev, exp_);
    }
    }
    SECTION("a running domain becomes transient; destroy then removes it") {
      co_await c.async_undefine("test");
      CHECK(co_await c.async_is_active("test"));
      CHECK_FALSE(co_await c.async_is_persistent("test"));
      auto st = co_await c.async_get_state("test");
      CHECK(st.state == domain_state::running);
      {
        auto got_ = names(co_await c.async_list_domains(covirt::list_flags::transient));
        CHECK(got_ == strings{"test"});
      }
      co_await c.async_destroy("test");
      auto o = co_await catch_error(c.async_lookup_by_name("test"));
      CHECK(o.ec == errc::no_domain);
      CHECK((co_await c.async_list_domains(0)).empty());
      {
      std::vector<want> exp_ = {{"test", event_type::undefined, det::undefined_removed},
                                  {"test", event_type::stopped, det::stopped_destroyed}};
      co_await expect_events(ev, exp_);
    }
    }
    SECTION("a transient domain that shuts down is gone too") {
      co_await c.async_undefine("test");
      co_await c.async_shutdown("test");
      auto o = co_await catch_error(c.async_get_info("test"));
      CHECK(o.ec == errc::no_domain);
    }
    SECTION("an unknown domain") {
      auto o = co_await catch_error(c.async_undefine("nope"));
      CHECK(o.ec == errc::no_domain);
      CHECK(ev.pending() == 0);
    }
  });
}

// libvirt 9.0's testDomainUndefineFlags accepts a running transient domain: it stays running and
// transient, and another VIR_DOMAIN_EVENT_UNDEFINED_REMOVED is emitted (checked with the C API).
TEST_CASE("test driver: undefine of a running transient domain succeeds, as libvirt's", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    co_await c.async_create_xml(vm_xml(), 0);
    auto ev = c.subscribe();
    auto o = co_await catch_error(c.async_undefine("vm1"));
    CHECK_FALSE(o.ec);
    CHECK(co_await c.async_is_active("vm1"));
    CHECK_FALSE(co_await c.async_is_persistent("vm1"));
    {
      std::vector<want> exp_ = {{"vm1", event_type::undefined, det::undefined_removed}};
      co_await expect_events(ev, exp_);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

TEST_CASE("test driver: create (start) a defined domain", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_define_xml(vm_xml());
    co_await c.async_create("vm1");
    auto r = co_await c.async_lookup_by_name("vm1");
    CHECK(r.id == 2);
    CHECK(co_await c.async_lookup_by_id(2) == r);
    CHECK(co_await c.async_is_active("vm1"));
    CHECK(co_await c.async_is_persistent("vm1"));
    auto st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::booted);
    auto live = co_await c.async_get_xml("vm1", 0);
    CHECK_THAT(live, Contains("<domain type='test' id='2'>"));
    auto inactive = co_await c.async_get_xml("vm1", covirt::xml_flags::inactive);
    CHECK(inactive == vm1_defined_xml());

    // Already running: refused, nothing changes (libvirt's test driver: internal error).
    auto o = co_await catch_error(c.async_create("vm1"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "Domain 'vm1' is already running");
    CHECK((co_await c.async_lookup_by_name("vm1")).id == 2);
    o = co_await catch_error(c.async_create("test"));
    CHECK(o.ec == errc::internal_error);
    o = co_await catch_error(c.async_create("nope"));
    CHECK(o.ec == errc::no_domain);

    // Each start takes a new id.
    co_await c.async_destroy("vm1");
    CHECK((co_await c.async_lookup_by_name("vm1")).id == -1);
    co_await c.async_create("vm1");
    CHECK((co_await c.async_lookup_by_name("vm1")).id == 3);
    {
      std::vector<want> exp_ = {{"vm1", event_type::defined, det::defined_added},
                                {"vm1", event_type::started, det::started_booted},
                                {"vm1", event_type::stopped, det::stopped_destroyed},
                                {"vm1", event_type::started, det::started_booted}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: create_xml starts a transient domain", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    auto r = co_await c.async_create_xml(vm_xml(), 0);
    CHECK(r == covirt::domain_ref{"vm1", vm1_uuid, 2});
    CHECK(co_await c.async_is_active("vm1"));
    CHECK_FALSE(co_await c.async_is_persistent("vm1"));
    auto st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::booted);

    // The id keeps increasing.
    auto r2 = co_await c.async_create_xml(vm_xml("vm2", "22222222-2222-3333-4444-555555555555"), 0);
    CHECK(r2.id == 3);

    // Same name while running: operation_invalid (libvirt's words); same uuid other name: operation_failed.
    auto o = co_await catch_error(c.async_create_xml(vm_xml(), 0));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "domain 'vm1' is already active");
    o = co_await catch_error(c.async_create_xml(vm_xml("vm3"), 0));
    CHECK(o.ec == errc::operation_failed);
    CHECK(o.message == "domain 'vm1' is already defined with uuid 11111111-2222-3333-4444-555555555555");

    // Shut down, a transient domain is gone.
    co_await c.async_shutdown("vm1");
    o = co_await catch_error(c.async_lookup_by_name("vm1"));
    CHECK(o.ec == errc::no_domain);

    {
      std::vector<want> exp_ = {{"vm1", event_type::started, det::started_booted},
                                {"vm2", event_type::started, det::started_booted},
                                {"vm1", event_type::stopped, det::stopped_shutdown}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: create_xml with flag 1 (start paused)", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    auto r = co_await c.async_create_xml(vm_xml(), 1);
    CHECK(r.id == 2);
    auto st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::paused);
    CHECK(st.reason == rsn::user);
    {
      auto got_ = names(co_await c.async_list_domains(covirt::list_flags::paused));
      CHECK(got_ == strings{"vm1"});
    }
    co_await c.async_resume("vm1");
    st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::unpaused);
    {
      std::vector<want> exp_ = {{"vm1", event_type::started, det::started_booted},
                                {"vm1", event_type::suspended, det::suspended_paused},
                                {"vm1", event_type::resumed, det::resumed_unpaused}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: create_xml of a defined, inactive domain runs it and keeps it persistent", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    co_await c.async_define_xml(vm_xml());
    auto r = co_await c.async_create_xml(vm_xml("vm1", vm1_uuid, "1048576", "262144"), 0);
    CHECK(r.id == 2);
    CHECK(co_await c.async_is_persistent("vm1"));
    CHECK((co_await c.async_get_info("vm1")).memory_kib == 262144);
    co_await c.async_destroy("vm1");
    CHECK(co_await c.async_is_persistent("vm1"));
    CHECK((co_await c.async_get_info("vm1")).memory_kib == 524288);  // back to the definition
  });
}

TEST_CASE("test driver: destroy", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_destroy("test");
    CHECK_FALSE(co_await c.async_is_active("test"));
    CHECK(co_await c.async_is_persistent("test"));
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == rsn::destroyed);
    CHECK((co_await c.async_lookup_by_name("test")).id == -1);
    auto o = co_await catch_error(c.async_lookup_by_id(1));
    CHECK(o.ec == errc::no_domain);
    CHECK_THAT(co_await c.async_get_xml("test", 0), !Contains("id='1'"));

    o = co_await catch_error(c.async_destroy("test"));
    CHECK(o.ec == errc::operation_invalid);  // libvirt: "domain is not running"
    CHECK_THAT(o.message, Contains("not running"));
    o = co_await catch_error(c.async_destroy("nope"));
    CHECK(o.ec == errc::no_domain);
    {
      std::vector<want> exp_ = {{"test", event_type::stopped, det::stopped_destroyed}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: shutdown", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_shutdown("test");
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == rsn::shutdown);
    CHECK(co_await c.async_is_persistent("test"));

    auto o = co_await catch_error(c.async_shutdown("test"));
    CHECK(o.ec);
    CHECK_THAT(o.message, Contains("not running"));
    o = co_await catch_error(c.async_shutdown("nope"));
    CHECK(o.ec == errc::no_domain);

    // A paused domain is refused with libvirt's words.
    co_await c.async_create("test");
    co_await c.async_suspend("test");
    o = co_await catch_error(c.async_shutdown("test"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "domain 'test' not running");
    CHECK((co_await c.async_get_state("test")).state == domain_state::paused);
    {
      std::vector<want> exp_ = {{"test", event_type::stopped, det::stopped_shutdown},
                                {"test", event_type::started, det::started_booted},
                                {"test", event_type::suspended, det::suspended_paused}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: reboot keeps the domain running without an event", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    co_await c.async_suspend("test");
    co_await c.async_resume("test");
    auto ev = c.subscribe();
    co_await c.async_reboot("test");
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::booted);
    CHECK((co_await c.async_lookup_by_name("test")).id == 1);
    CHECK(ev.pending() == 0);

    co_await c.async_destroy("test");
    auto o = co_await catch_error(c.async_reboot("test"));
    CHECK(o.ec == errc::operation_invalid);  // libvirt: "domain is not running"
    o = co_await catch_error(c.async_reboot("nope"));
    CHECK(o.ec == errc::no_domain);
  });
}

TEST_CASE("test driver: a domain whose on_reboot is destroy stops on reboot", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    std::string xml = vm_xml();
    xml.insert(xml.find("</domain>"), "  <on_reboot>destroy</on_reboot>\n");
    co_await c.async_define_xml(xml);
    co_await c.async_create("vm1");
    auto ev = c.subscribe();
    co_await c.async_reboot("vm1");
    auto st = co_await c.async_get_state("vm1");
    CHECK(st.state == domain_state::shutoff);
    CHECK(st.reason == rsn::shutdown);
    {
      std::vector<want> exp_ = {{"vm1", event_type::stopped, det::stopped_shutdown}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: suspend and resume", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_suspend("test");
    auto st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::paused);
    CHECK(st.reason == rsn::user);
    CHECK((co_await c.async_get_info("test")).state == domain_state::paused);
    CHECK(co_await c.async_is_active("test"));

    // Twice: libvirt's internal error, word for word.
    auto o = co_await catch_error(c.async_suspend("test"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "domain 'test' not running");

    co_await c.async_resume("test");
    st = co_await c.async_get_state("test");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == rsn::unpaused);
    o = co_await catch_error(c.async_resume("test"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "domain 'test' not paused");

    // Shut off: neither makes sense; libvirt's test driver checks the state alone.
    co_await c.async_destroy("test");
    o = co_await catch_error(c.async_suspend("test"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "domain 'test' not running");
    o = co_await catch_error(c.async_resume("test"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "domain 'test' not paused");
    CHECK((co_await c.async_get_state("test")).state == domain_state::shutoff);
    o = co_await catch_error(c.async_suspend("nope"));
    CHECK(o.ec == errc::no_domain);
    o = co_await catch_error(c.async_resume("nope"));
    CHECK(o.ec == errc::no_domain);

    {
      std::vector<want> exp_ = {{"test", event_type::suspended, det::suspended_paused},
                                {"test", event_type::resumed, det::resumed_unpaused},
                                {"test", event_type::stopped, det::stopped_destroyed}};
      co_await expect_events(ev, exp_);
    }
  });
}

TEST_CASE("test driver: every query on an unknown domain is no_domain", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    CHECK((co_await catch_error(c.async_get_info("nope"))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_get_state("nope"))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_get_xml("nope", 0))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_is_active("nope"))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_is_persistent("nope"))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_get_autostart("nope"))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_set_autostart("nope", true))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_set_memory("nope", 1024, 0))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_set_max_memory("nope", 1024))).ec == errc::no_domain);
    CHECK((co_await catch_error(c.async_set_vcpus("nope", 1, 0))).ec == errc::no_domain);
    auto o = co_await catch_error(c.async_get_info("nope"));
    CHECK_THAT(o.message, Contains("'nope'"));
  });
}

// ---------------------------------------------------------------------------------------------
// Listing

TEST_CASE("test driver: list_domains with each flag", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace lf = covirt::list_flags;
    // test: running persistent; vm1: shut off persistent autostart; tr: running transient; tp: paused transient.
    co_await c.async_define_xml(vm_xml());
    co_await c.async_set_autostart("vm1", true);
    co_await c.async_create_xml(vm_xml("tr", "22222222-2222-3333-4444-555555555555"), 0);
    co_await c.async_create_xml(vm_xml("tp", "33333333-2222-3333-4444-555555555555"), 1);

    auto L = [&](unsigned flags) { return c.async_list_domains(flags); };
    {
      auto got_ = names(co_await L(lf::all));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }
    {
      auto got_ = names(co_await L(lf::active));
      CHECK(got_ == strings{"test", "tp", "tr"});
    }
    {
      auto got_ = names(co_await L(lf::inactive));
      CHECK(got_ == strings{"vm1"});
    }
    {
      auto got_ = names(co_await L(lf::active | lf::inactive));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }
    {
      auto got_ = names(co_await L(lf::persistent));
      CHECK(got_ == strings{"test", "vm1"});
    }
    {
      auto got_ = names(co_await L(lf::transient));
      CHECK(got_ == strings{"tp", "tr"});
    }
    {
      auto got_ = names(co_await L(lf::persistent | lf::transient));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }
    {
      auto got_ = names(co_await L(lf::running));
      CHECK(got_ == strings{"test", "tr"});
    }
    {
      auto got_ = names(co_await L(lf::paused));
      CHECK(got_ == strings{"tp"});
    }
    {
      auto got_ = names(co_await L(lf::shutoff));
      CHECK(got_ == strings{"vm1"});
    }
    {
      auto got_ = names(co_await L(lf::running | lf::paused));
      CHECK(got_ == strings{"test", "tp", "tr"});
    }
    CHECK((co_await L(lf::other)).empty());
    {
      auto got_ = names(co_await L(lf::autostart));
      CHECK(got_ == strings{"vm1"});
    }
    {
      auto got_ = names(co_await L(lf::no_autostart));
      CHECK(got_ == strings{"test", "tp", "tr"});
    }
    {
      auto got_ = names(co_await L(lf::active | lf::persistent));
      CHECK(got_ == strings{"test"});
    }
    {
      auto got_ = names(co_await L(lf::active | lf::transient | lf::running));
      CHECK(got_ == strings{"tr"});
    }
    CHECK((co_await L(lf::inactive | lf::transient)).empty());
    {
      auto got_ = names(co_await L(lf::inactive | lf::autostart));
      CHECK(got_ == strings{"vm1"});
    }
    CHECK((co_await L(lf::managedsave)).empty());
    {
      auto got_ = names(co_await L(lf::no_managedsave));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }
    CHECK((co_await L(lf::has_snapshot)).empty());
    {
      auto got_ = names(co_await L(lf::no_snapshot));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }
    CHECK((co_await L(lf::has_checkpoint)).empty());
    {
      auto got_ = names(co_await L(lf::no_checkpoint));
      CHECK(got_ == strings{"test", "tp", "tr", "vm1"});
    }

    // The refs carry ids: -1 for the inactive one.
    for (const auto& r : co_await L(lf::all)) {
      INFO(r.name);
      CHECK((r.name == "vm1") == (r.id == -1));
      CHECK(r.uuid.size() == 36);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Memory, vcpus, autostart

TEST_CASE("test driver: set_memory and set_max_memory", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto ev = c.subscribe();
    // Above the maximum: libvirt's words.
    auto o = co_await catch_error(c.async_set_memory("test", 9000000, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "cannot set memory higher than max memory");
    // The maximum of a running domain, live: operation_invalid.
    o = co_await catch_error(c.async_set_max_memory("test", 4194304));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "cannot resize the maximum memory on an active domain");
    o = co_await catch_error(c.async_set_memory("test", 4194304, m::mem_maximum | m::live));
    CHECK(o.ec == errc::operation_invalid);
    auto info = co_await c.async_get_info("test");
    CHECK(info.max_mem_kib == 8388608);
    CHECK(info.memory_kib == 2097152);

    // Live: the running domain only.
    co_await c.async_set_memory("test", 1048576, m::live);
    info = co_await c.async_get_info("test");
    CHECK(info.memory_kib == 1048576);
    CHECK_THAT(co_await c.async_get_xml("test", 0), Contains("<currentMemory unit='KiB'>1048576</currentMemory>"));
    // "current" on a running domain is live.
    co_await c.async_set_memory("test", 1572864, m::current);
    CHECK((co_await c.async_get_info("test")).memory_kib == 1572864);
    // Config: the next boot only.
    co_await c.async_set_memory("test", 3145728, m::config);
    CHECK((co_await c.async_get_info("test")).memory_kib == 1572864);
    CHECK_THAT(co_await c.async_get_xml("test", covirt::xml_flags::inactive),
               Contains("<currentMemory unit='KiB'>3145728</currentMemory>"));
    // The maximum in the config of a running domain.
    co_await c.async_set_memory("test", 4194304, m::mem_maximum | m::config);
    CHECK((co_await c.async_get_info("test")).max_mem_kib == 8388608);
    CHECK_THAT(co_await c.async_get_xml("test", covirt::xml_flags::inactive),
               Contains("<memory unit='KiB'>4194304</memory>"));
    // Above the config maximum, for the config.
    o = co_await catch_error(c.async_set_memory("test", 5000000, m::config));
    CHECK(o.ec == errc::invalid_arg);

    // After a shutdown the config is what runs next: libvirt shows max 4194304, used 3145728.
    co_await c.async_shutdown("test");
    info = co_await c.async_get_info("test");
    CHECK(info.max_mem_kib == 4194304);
    CHECK(info.memory_kib == 3145728);
    // Shut off: live is refused; the maximum may change; current shrinks with it.
    o = co_await catch_error(c.async_set_memory("test", 1048576, m::live));
    CHECK(o.ec == errc::operation_invalid);
    co_await c.async_set_max_memory("test", 2097152);
    info = co_await c.async_get_info("test");
    CHECK(info.max_mem_kib == 2097152);
    CHECK(info.memory_kib == 2097152);
    co_await c.async_set_memory("test", 1048576, 0);
    CHECK((co_await c.async_get_info("test")).memory_kib == 1048576);

    // Transient domains have no config.
    co_await c.async_create_xml(vm_xml(), 0);
    o = co_await catch_error(c.async_set_memory("vm1", 262144, m::config));
    CHECK(o.ec == errc::operation_invalid);

    // No lifecycle events for any of it, beyond the shutdown and the start.
    {
      std::vector<want> exp_ = {{"test", event_type::stopped, det::stopped_shutdown},
                                {"vm1", event_type::started, det::started_booted}};
      co_await expect_events(ev, exp_);
    }
  });
}

// libvirt keeps a running persistent domain's live and persistent definitions apart:
// `setmem test 1048576 --live; setvcpus test 1 --live; dumpxml --inactive test` still shows
// currentMemory 2097152 and `<vcpu placement='static'>2</vcpu>`, and so does the next boot.
TEST_CASE("test driver: live changes leave the persistent config alone", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    co_await c.async_set_memory("test", 1048576, m::live);
    co_await c.async_set_vcpus("test", 1, m::live);
    auto inactive = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    CHECK_THAT(inactive, Contains("<currentMemory unit='KiB'>2097152</currentMemory>"));
    CHECK_THAT(inactive, Contains("<vcpu placement='static'>2</vcpu>"));
    co_await c.async_destroy("test");
    auto info = co_await c.async_get_info("test");
    CHECK(info.memory_kib == 2097152);
    CHECK(info.nr_virt_cpu == 2);
  });
}

// libvirt: virDomainSetMemoryFlags(dom, 0, 0) fails with VIR_ERR_INVALID_ARG
// ("memory in virDomainSetMemoryFlags must not be zero").
TEST_CASE("test driver: set_memory to zero is invalid_arg", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto o = co_await catch_error(c.async_set_memory("test", 0, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK((co_await c.async_get_info("test")).memory_kib == 2097152);
  });
}

TEST_CASE("test driver: set_vcpus", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto o = co_await catch_error(c.async_set_vcpus("test", 64, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "requested cpu amount exceeds maximum supported amount (64 > 32)");
    o = co_await catch_error(c.async_set_vcpus("test", 3, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "requested cpu amount exceeds maximum (3 > 2)");
    o = co_await catch_error(c.async_set_vcpus("test", 0, 0));
    CHECK(o.ec == errc::invalid_arg);
    o = co_await catch_error(c.async_set_vcpus("test", 4, m::vcpu_maximum | m::live));
    CHECK(o.ec == errc::invalid_arg);
    CHECK((co_await c.async_get_info("test")).nr_virt_cpu == 2);

    co_await c.async_set_vcpus("test", 1, 0);
    CHECK((co_await c.async_get_info("test")).nr_virt_cpu == 1);
    CHECK_THAT(co_await c.async_get_xml("test", 0), Contains("<vcpu placement='static' current='1'>2</vcpu>"));
    co_await c.async_set_vcpus("test", 2, m::live);
    CHECK((co_await c.async_get_info("test")).nr_virt_cpu == 2);
    CHECK_THAT(co_await c.async_get_xml("test", 0), Contains("<vcpu placement='static'>2</vcpu>"));

    // Config of a shut-off domain; the maximum may grow there.
    co_await c.async_destroy("test");
    co_await c.async_set_vcpus("test", 8, m::vcpu_maximum | m::config);
    co_await c.async_set_vcpus("test", 6, m::config);
    CHECK((co_await c.async_get_info("test")).nr_virt_cpu == 6);
    CHECK_THAT(co_await c.async_get_xml("test", 0), Contains("<vcpu placement='static' current='6'>8</vcpu>"));
    o = co_await catch_error(c.async_set_vcpus("test", 9, m::config));
    CHECK(o.ec == errc::invalid_arg);
    o = co_await catch_error(c.async_set_vcpus("test", 33, m::vcpu_maximum | m::config));
    CHECK(o.ec == errc::invalid_arg);
    o = co_await catch_error(c.async_set_vcpus("test", 1, m::live));
    CHECK(o.ec == errc::operation_invalid);
  });
}

// libvirt: raising the maximum (VIR_DOMAIN_VCPU_MAXIMUM | AFFECT_CONFIG) to 4 on the default domain
// leaves the current count at 2: `<vcpu placement='static' current='2'>4</vcpu>`, and the domain
// boots next time with 2 vcpus.
TEST_CASE("test driver: raising the vcpu maximum keeps the current count", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    co_await c.async_set_vcpus("test", 4, m::vcpu_maximum | m::config);
    CHECK_THAT(co_await c.async_get_xml("test", covirt::xml_flags::inactive),
               Contains("<vcpu placement='static' current='2'>4</vcpu>"));
    co_await c.async_destroy("test");
    CHECK((co_await c.async_get_info("test")).nr_virt_cpu == 2);
  });
}

TEST_CASE("test driver: domain autostart", "[test_driver]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    CHECK_FALSE(co_await c.async_get_autostart("test"));
    co_await c.async_set_autostart("test", true);
    CHECK(co_await c.async_get_autostart("test"));
    {
      auto got_ = names(co_await c.async_list_domains(covirt::list_flags::autostart));
      CHECK(got_ == strings{"test"});
    }
    co_await c.async_set_autostart("test", false);
    CHECK_FALSE(co_await c.async_get_autostart("test"));
    CHECK((co_await c.async_list_domains(covirt::list_flags::autostart)).empty());
  });
}

// ---------------------------------------------------------------------------------------------
// Networks

TEST_CASE("test driver: networks", "[test_driver][network]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace nf = covirt::network_list_flags;
    const std::string uuid1 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    auto ev = c.subscribe();

    // Lookup by name and by uuid.
    auto def = co_await c.async_lookup_network("default");
    CHECK(def.uuid == "dd8fe884-6c02-601e-7551-cca97df1c5df");
    CHECK(co_await c.async_lookup_network("dd8fe884-6c02-601e-7551-cca97df1c5df") == def);
    auto o = co_await catch_error(c.async_lookup_network("nope"));
    CHECK(o.ec == errc::no_network);
    CHECK(o.message == "no network with matching name 'nope'");

    // Define: inactive and persistent.
    auto n1 = co_await c.async_define_network(net_xml("net1", uuid1, "virbr5"));
    CHECK(n1 == covirt::network_ref{"net1", uuid1, false, true, false});
    CHECK(co_await c.async_lookup_network("net1") == n1);
    CHECK(co_await c.async_get_network_bridge_name("net1") == "virbr5");
    CHECK_THAT(co_await c.async_get_network_xml("net1", 0), Contains("<name>net1</name>"));
    CHECK_THAT(co_await c.async_get_network_xml("net1", 0), Contains("<bridge name='virbr5'"));
    // The same again: fine. Conflicts: libvirt's words.
    CHECK(co_await c.async_define_network(net_xml("net1", uuid1, "virbr5")) == n1);
    o = co_await catch_error(c.async_define_network(net_xml("net1", "abababab-bbbb-cccc-dddd-eeeeeeeeeeee")));
    CHECK(o.ec == errc::operation_failed);
    CHECK(o.message == "network 'net1' already exists with uuid " + uuid1);
    o = co_await catch_error(c.async_define_network(net_xml("net2", uuid1)));
    CHECK(o.ec == errc::operation_failed);
    CHECK(o.message == "network 'net1' is already defined with uuid " + uuid1);
    o = co_await catch_error(c.async_define_network("<network>"));
    CHECK(o.ec);

    // Listing with flags.
    {
      auto got_ = names(co_await c.async_list_networks(0));
      CHECK(got_ == strings{"default", "net1"});
    }
    {
      auto got_ = names(co_await c.async_list_networks(nf::active));
      CHECK(got_ == strings{"default"});
    }
    {
      auto got_ = names(co_await c.async_list_networks(nf::inactive));
      CHECK(got_ == strings{"net1"});
    }
    {
      auto got_ = names(co_await c.async_list_networks(nf::persistent));
      CHECK(got_ == strings{"default", "net1"});
    }
    CHECK((co_await c.async_list_networks(nf::transient)).empty());

    // Create (start) and destroy (stop).
    co_await c.async_create_network("net1");
    CHECK((co_await c.async_lookup_network("net1")).active);
    o = co_await catch_error(c.async_create_network("net1"));
    CHECK(o.ec == errc::operation_invalid);  // libvirt: "Network 'net1' is already running"
    CHECK_THAT(o.message, Contains("net1"));
    co_await c.async_destroy_network("net1");
    CHECK_FALSE((co_await c.async_lookup_network("net1")).active);
    {
      auto got_ = names(co_await c.async_list_networks(nf::active));
      CHECK(got_ == strings{"default"});
    }

    // Autostart.
    CHECK_FALSE(co_await c.async_get_network_autostart("default"));
    co_await c.async_set_network_autostart("default", true);
    CHECK(co_await c.async_get_network_autostart("default"));
    {
      auto got_ = names(co_await c.async_list_networks(nf::autostart));
      CHECK(got_ == strings{"default"});
    }
    {
      auto got_ = names(co_await c.async_list_networks(nf::no_autostart));
      CHECK(got_ == strings{"net1"});
    }
    CHECK((co_await c.async_lookup_network("default")).autostart);

    // Undefine an inactive network: gone.
    co_await c.async_undefine_network("net1");
    o = co_await catch_error(c.async_lookup_network("net1"));
    CHECK(o.ec == errc::no_network);
    {
      auto got_ = names(co_await c.async_list_networks(0));
      CHECK(got_ == strings{"default"});
    }

    // A network without a bridge: libvirt's internal error, word for word.
    co_await c.async_define_network(net_xml("net3", "aaaaaaaa-bbbb-cccc-dddd-333333333333"));
    o = co_await catch_error(c.async_get_network_bridge_name("net3"));
    CHECK(o.ec == errc::internal_error);
    CHECK(o.message == "network 'net3' does not have a bridge name.");

    // Unknown networks.
    CHECK((co_await catch_error(c.async_create_network("nope"))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_destroy_network("nope"))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_undefine_network("nope"))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_get_network_xml("nope", 0))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_get_network_bridge_name("nope"))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_get_network_autostart("nope"))).ec == errc::no_network);
    CHECK((co_await catch_error(c.async_set_network_autostart("nope", true))).ec == errc::no_network);

    // Networks make no domain lifecycle events.
    CHECK(ev.pending() == 0);
  });
}

// libvirt 9.0's testNetworkUndefine refuses an active network:
// VIR_ERR_OPERATION_INVALID "Network 'default' is still running", and the network stays persistent.
TEST_CASE("test driver: undefine of an active network is operation_invalid", "[test_driver][network]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto o = co_await catch_error(c.async_undefine_network("default"));
    CHECK(o.ec == errc::operation_invalid);
    CHECK_THAT(o.message, Contains("still running"));
    auto n = co_await c.async_lookup_network("default");
    CHECK(n.persistent);
    CHECK(n.active);
  });
}

// ---------------------------------------------------------------------------------------------
// Events: one long scenario, in libvirt's order with libvirt's details

TEST_CASE("test driver: events for every change, in order", "[test_driver][events]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    auto vm1_only = c.subscribe("vm1");
    co_await c.async_define_xml(vm_xml());                   // defined/added
    co_await c.async_define_xml(vm_xml());                   // defined/updated
    co_await c.async_create("vm1");                          // started/booted
    co_await c.async_suspend("vm1");                         // suspended/paused
    co_await c.async_resume("vm1");                          // resumed/unpaused
    co_await c.async_reboot("vm1");                          // nothing
    co_await c.async_set_memory("vm1", 262144, 0);           // nothing
    co_await c.async_set_autostart("vm1", true);             // nothing
    co_await c.async_shutdown("vm1");                        // stopped/shutdown
    co_await c.async_create("vm1");                          // started/booted
    co_await c.async_undefine("vm1");                        // undefined/removed
    co_await c.async_destroy("vm1");                         // stopped/destroyed, gone
    co_await c.async_create_xml(vm_xml("tr", "22222222-2222-3333-4444-555555555555"), 0);  // started/booted
    co_await c.async_destroy("tr");                          // stopped/destroyed
    co_await c.async_destroy("test");                        // stopped/destroyed
    co_await c.async_undefine("test");                       // undefined/removed
    // Refused operations make no events.
    (void)co_await catch_error(c.async_destroy("nope"));
    (void)co_await catch_error(c.async_define_xml("<domain type='test'><name>bad"));
    (void)co_await catch_error(c.async_suspend("nope"));

    std::vector<want> expected = {
        {"vm1", event_type::defined, det::defined_added},
        {"vm1", event_type::defined, det::defined_updated},
        {"vm1", event_type::started, det::started_booted},
        {"vm1", event_type::suspended, det::suspended_paused},
        {"vm1", event_type::resumed, det::resumed_unpaused},
        {"vm1", event_type::stopped, det::stopped_shutdown},
        {"vm1", event_type::started, det::started_booted},
        {"vm1", event_type::undefined, det::undefined_removed},
        {"vm1", event_type::stopped, det::stopped_destroyed},
        {"tr", event_type::started, det::started_booted},
        {"tr", event_type::stopped, det::stopped_destroyed},
        {"test", event_type::stopped, det::stopped_destroyed},
        {"test", event_type::undefined, det::undefined_removed},
    };
    co_await expect_events(ev, expected);
    std::vector<want> vm1_expected;
    for (const auto& w : expected)
      if (w.name == "vm1") vm1_expected.push_back(w);
    co_await expect_events(vm1_only, vm1_expected);
    CHECK(ev.dropped() == 0);
    CHECK((co_await c.async_list_domains(0)).empty());
  });
}

TEST_CASE("test driver: events carry the domain's identity at the time", "[test_driver][events]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_define_xml(vm_xml());
    co_await c.async_create("vm1");
    co_await c.async_destroy("vm1");
    auto defined = co_await ev.async_next();
    CHECK(defined.domain == covirt::domain_ref{"vm1", vm1_uuid, -1});
    auto started = co_await ev.async_next();
    CHECK(started.domain == covirt::domain_ref{"vm1", vm1_uuid, 2});  // libvirt: id 2 in the event
    auto stopped = co_await ev.async_next();
    CHECK(stopped.domain.name == "vm1");
    CHECK(stopped.domain.uuid == vm1_uuid);
    CHECK(stopped.domain.id == -1);  // libvirt: id -1 once stopped
  });
}

TEST_CASE("test driver: close ends the subscriptions: queued events drain, then eof", "[test_driver][events]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto ev = c.subscribe();
    co_await c.async_suspend("test");
    co_await c.async_close();
    CHECK_FALSE(ev.is_open());
    auto [ec, e] = co_await ev.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(ec);
    CHECK(e.domain.name == "test");
    CHECK(e.type == event_type::suspended);
    auto [ec2, e2] = co_await ev.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(ec2 == asio::error::eof);
  });
}

// Hostile and malformed definitions: each is refused with a clear error, and the driver's
// state afterwards is exactly what it was (no half-added domain, no event).
TEST_CASE("test driver: bad definitions change nothing", "[test_driver][hostile]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto events = c.subscribe();
    auto refs_before = co_await c.async_list_domains(0);
    auto xml_before = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    std::string huge = "<domain type='test'><name>big</name><memory>1</memory><description>";
    huge.append(50u << 20, 'x');
    huge += "</description><os><type>hvm</type></os></domain>";
    std::string deep = "<domain type='test'><name>deep</name><memory>1</memory><metadata>";
    for (int i = 0; i < 100000; ++i) deep += "<a>";
    for (int i = 0; i < 100000; ++i) deep += "</a>";
    deep += "</metadata><os><type>hvm</type></os></domain>";
    struct bad_case {
      std::string what, xml;
      errc code;
      std::string says;
    };
    const std::vector<bad_case> cases = {
        {"unclosed tag", "<domain type='test'><name>x</name><memory>1024</memory>", errc::xml_detail, ""},
        {"not XML at all", "this is not XML", errc::xml_detail, ""},
        {"50 MB", huge, errc::xml_error, "limit"},
        {"deep nesting", deep, errc::xml_error, "deeper"},
        {"DOCTYPE with entities",
         "<!DOCTYPE d [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
         "<domain type='test'><name>&b;</name><memory>1</memory><os><type>hvm</type></os></domain>",
         errc::xml_error, "DOCTYPE"},
        {"unknown unit", "<domain type='test'><name>u</name><memory unit='KiX'>1</memory><os><type>hvm</type></os></domain>",
         errc::invalid_arg, "KiX"},
        {"negative memory", "<domain type='test'><name>n</name><memory>-5</memory><os><type>hvm</type></os></domain>",
         errc::invalid_arg, "-5"},
        {"name with /", "<domain type='test'><name>a/b</name><memory>1024</memory><os><type>hvm</type></os></domain>",
         errc::xml_error, "a/b"},
        {"name ..", "<domain type='test'><name>..</name><memory>1024</memory><os><type>hvm</type></os></domain>",
         errc::xml_error, ".."},
        {"redefining test with another uuid",
         "<domain type='test'><name>test</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
         "<memory>1024</memory><os><type>hvm</type></os></domain>",
         errc::operation_failed, "already exists with uuid"},
    };
    for (const auto& bc : cases) {
      INFO(bc.what);
      for (int transient = 0; transient < 2; ++transient) {
        covirt::diagnostics diag;
        error_code ec;
        // (Not a ?: of two co_awaits: g++ 12 miscompiles that.)
        if (transient) std::tie(ec, std::ignore) = co_await c.async_create_xml(bc.xml, 0, diag, asio::as_tuple(asio::use_awaitable));
        else std::tie(ec, std::ignore) = co_await c.async_define_xml(bc.xml, diag, asio::as_tuple(asio::use_awaitable));
        REQUIRE(ec);
        // The code is the family the case belongs to; XML detail errors count as XML errors.
        if (bc.code == errc::xml_error) CHECK((ec == errc::xml_error || ec == errc::xml_detail));
        else if (bc.code == errc::invalid_arg) CHECK((ec == errc::invalid_arg || ec == errc::xml_detail || ec == errc::xml_error));
        else CHECK(ec == bc.code);
        CHECK_FALSE(diag.message().empty());
        if (!bc.says.empty()) CHECK_THAT(std::string(diag.message()), Contains(bc.says));
      }
    }
    CHECK(co_await c.async_list_domains(0) == refs_before);
    CHECK(co_await c.async_get_xml("test", covirt::xml_flags::inactive) == xml_before);
    CHECK(events.pending() == 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Tuning and affinity (libvirt 9.0's test driver: virsh schedinfo, memtune, blkiotune, numatune,
// vcpupin, emulatorpin on test:///default)

namespace {

using covirt::typed_param;
using covirt::typed_params;
constexpr unsigned string_okay = 1u << 2;  // VIR_TYPED_PARAM_STRING_OKAY, which libvirt's getters add
constexpr const char* both_flags =
    "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive";

// The value of `field` in `ps` (REQUIREs that it is there, with that type).
template <class T>
T param(const typed_params& ps, const std::string& field) {
  auto it = std::find_if(ps.begin(), ps.end(), [&](const typed_param& p) { return p.field == field; });
  REQUIRE(it != ps.end());
  REQUIRE(std::holds_alternative<T>(it->value));
  return std::get<T>(it->value);
}

std::vector<std::string> fields(const typed_params& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps) out.push_back(p.field);
  return out;
}

// `define` of a shut-off persistent domain with this <vcpu> and extra elements.
std::string tuned_xml(const std::string& name, const std::string& vcpu, const std::string& extra = "") {
  return "<domain type='test'><name>" + name + "</name><memory unit='KiB'>1048576</memory>" + vcpu + extra +
         "<os><type>hvm</type></os></domain>";
}

}  // namespace

// testDomainGetSchedulerType, testDomainGet/SetSchedulerParametersFlags: "fair", a weight of 50
// that a set validates and forgets, and no flags at all (libvirt's ...Flags entry point adds
// VIR_TYPED_PARAM_STRING_OKAY, so `virsh schedinfo --current test` fails with 0x4).
TEST_CASE("test driver: the scheduler is fair with a weight of 50 that nothing changes", "[test_driver][tuning]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    auto type = co_await c.async_get_scheduler_type("test");
    CHECK(type == "fair");
    auto params = co_await c.async_get_scheduler_parameters("test", 0);
    CHECK(params == typed_params{{"weight", 50u}});

    auto o = co_await catch_error(c.async_get_scheduler_parameters("test", covirt::modify::live));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "unsupported flags (0x5) in function testDomainGetSchedulerParametersFlags");
    o = co_await catch_error(c.async_get_scheduler_parameters("test", string_okay));
    CHECK(o.message == "unsupported flags (0x4) in function testDomainGetSchedulerParametersFlags");
    o = co_await catch_error(c.async_get_scheduler_parameters("test", covirt::modify::live | covirt::modify::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == both_flags);
    o = co_await catch_error(c.async_get_scheduler_parameters("nosuch", 0));
    CHECK(o.ec == errc::no_domain);

    typed_params w{{"weight", 100u}};
    co_await c.async_set_scheduler_parameters("test", w, 0);
    params = co_await c.async_get_scheduler_parameters("test", 0);
    CHECK(param<unsigned>(params, "weight") == 50);
    o = co_await catch_error(c.async_set_scheduler_parameters("test", w, covirt::modify::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "unsupported flags (0x2) in function testDomainSetSchedulerParametersFlags");

    // virTypedParamsValidate's words
    typed_params cap{{"cap", 5u}};
    o = co_await catch_error(c.async_set_scheduler_parameters("test", cap, 0));
    CHECK(o.ec == errc::argument_unsupported);
    CHECK(o.what == "argument unsupported: parameter 'cap' not supported");
    typed_params wrong{{"weight", 5}};
    o = co_await catch_error(c.async_set_scheduler_parameters("test", wrong, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "invalid type 'int' for parameter 'weight', expected 'uint'");
    typed_params twice{{"weight", 1u}, {"weight", 2u}};
    o = co_await catch_error(c.async_set_scheduler_parameters("test", twice, 0));
    CHECK(o.message == "parameter 'weight' occurs multiple times");
    typed_params long_name{{std::string(90, 'w'), 1u}};
    o = co_await catch_error(c.async_set_scheduler_parameters("test", long_name, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "string parameter name '" + std::string(80, 'w') + "' too long");
    o = co_await catch_error(c.async_set_scheduler_parameters("nosuch", w, 0));
    CHECK(o.ec == errc::no_domain);
  });
}

// testDomainGet/SetMemoryParameters: three limits, "unlimited" (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED)
// unless set, in the definition the flags choose; `memtune test --hard-limit 1G` shows in
// dumpxml as <memtune><hard_limit unit='KiB'>1048576</hard_limit></memtune>.
TEST_CASE("test driver: memory parameters, live and in the definition", "[test_driver][tuning]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    const auto unlimited = covirt::memory_unlimited_kib;
    auto params = co_await c.async_get_memory_parameters("test", 0);
    CHECK(params == typed_params{{"hard_limit", unlimited}, {"soft_limit", unlimited}, {"swap_hard_limit", unlimited}});

    typed_params hard{{"hard_limit", 1048576ull}};
    co_await c.async_set_memory_parameters("test", hard, 0);
    params = co_await c.async_get_memory_parameters("test", m::live);
    CHECK(param<unsigned long long>(params, "hard_limit") == 1048576);
    auto live_xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(live_xml, Contains("  <currentMemory unit='KiB'>2097152</currentMemory>\n"
                                  "  <memtune>\n    <hard_limit unit='KiB'>1048576</hard_limit>\n  </memtune>\n"
                                  "  <vcpu placement='static'>2</vcpu>\n"));
    params = co_await c.async_get_memory_parameters("test", m::config);
    CHECK(param<unsigned long long>(params, "hard_limit") == unlimited);

    typed_params config{{"soft_limit", 100ull}, {"swap_hard_limit", 3145728ull}, {"hard_limit", 0ull}};
    co_await c.async_set_memory_parameters("test", config, m::config);
    params = co_await c.async_get_memory_parameters("test", m::config);
    CHECK(params == typed_params{{"hard_limit", 0ull}, {"soft_limit", 100ull}, {"swap_hard_limit", 3145728ull}});
    auto inactive = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    CHECK_THAT(inactive, Contains("  <memtune>\n    <hard_limit unit='KiB'>0</hard_limit>\n"
                                  "    <soft_limit unit='KiB'>100</soft_limit>\n"
                                  "    <swap_hard_limit unit='KiB'>3145728</swap_hard_limit>\n  </memtune>\n"));
    // Unlimited again: nothing left to print.
    typed_params clear{{"hard_limit", unlimited}};
    co_await c.async_set_memory_parameters("test", clear, 0);
    live_xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(live_xml, !Contains("memtune"));

    // The hard limit is checked against the running definition's swap limit, whatever the flags.
    typed_params above{{"hard_limit", 4194304ull}, {"swap_hard_limit", 1048576ull}};
    auto o = co_await catch_error(c.async_set_memory_parameters("test", above, m::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "memory hard_limit tunable value must be lower than or equal to swap_hard_limit");
    typed_params more{{"hard_limit", 4194304ull}};
    co_await c.async_set_memory_parameters("test", more, m::config);  // the live swap limit is unlimited

    typed_params guarantee{{"min_guarantee", 1ull}};
    o = co_await catch_error(c.async_set_memory_parameters("test", guarantee, 0));
    CHECK(o.ec == errc::argument_unsupported);
    CHECK(o.message == "parameter 'min_guarantee' not supported");
    typed_params typed_wrong{{"hard_limit", 5u}};
    o = co_await catch_error(c.async_set_memory_parameters("test", typed_wrong, 0));
    CHECK(o.message == "invalid type 'uint' for parameter 'hard_limit', expected 'ullong'");
    o = co_await catch_error(c.async_set_memory_parameters("test", hard, 8));
    CHECK(o.message == "unsupported flags (0x8) in function testDomainSetMemoryParameters");
    o = co_await catch_error(c.async_set_memory_parameters("test", hard, m::live | m::config));
    CHECK(o.message == both_flags);
    o = co_await catch_error(c.async_get_memory_parameters("test", m::live | m::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == both_flags);
    o = co_await catch_error(c.async_get_memory_parameters("test", 8));
    CHECK(o.message == "unsupported flags (0x8) in function testDomainGetMemoryParameters");
    params = co_await c.async_get_memory_parameters("test", string_okay);  // what libvirt passes on
    CHECK(fields(params) == strings{"hard_limit", "soft_limit", "swap_hard_limit"});

    co_await c.async_destroy("test");
    o = co_await catch_error(c.async_get_memory_parameters("test", m::live));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "domain is not running");
    params = co_await c.async_get_memory_parameters("test", 0);  // the definition, once stopped
    CHECK(param<unsigned long long>(params, "hard_limit") == 4194304);
    co_await c.async_create_xml(vm_xml(), 0);
    o = co_await catch_error(c.async_set_memory_parameters("vm1", hard, m::config));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "transient domains do not have any persistent config");
  });
}

// testDomainGet/SetBlkioParameters (virDomainDriverSetupPersistentDefBlkioParams): the weight
// and five "path,value,..." lists; a known path takes the new value (0 clears it), a new one is
// added; an unreadable list fails the call after the others took effect.
TEST_CASE("test driver: blkio parameters, with the per-device lists", "[test_driver][tuning]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto params = co_await c.async_get_blkio_parameters("test", 0);
    CHECK(params == typed_params{{"weight", 0u},
                                 {"device_weight", std::string()},
                                 {"device_read_iops_sec", std::string()},
                                 {"device_write_iops_sec", std::string()},
                                 {"device_read_bytes_sec", std::string()},
                                 {"device_write_bytes_sec", std::string()}});

    typed_params set{{"weight", 500u}, {"device_weight", std::string("/dev/sda,500,/dev/sdb,300")}};
    co_await c.async_set_blkio_parameters("test", set, 0);
    typed_params iops{{"device_read_iops_sec", std::string("/dev/sdb,10")}};
    co_await c.async_set_blkio_parameters("test", iops, 0);
    typed_params zero{{"device_weight", std::string("/dev/sda,0")}};
    co_await c.async_set_blkio_parameters("test", zero, 0);
    params = co_await c.async_get_blkio_parameters("test", 0);
    CHECK(param<unsigned>(params, "weight") == 500);
    CHECK(param<std::string>(params, "device_weight") == "/dev/sdb,300");
    CHECK(param<std::string>(params, "device_read_iops_sec") == "/dev/sdb,10");
    auto live_xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(live_xml, Contains("  <blkiotune>\n    <weight>500</weight>\n    <device>\n      <path>/dev/sdb</path>\n"
                                  "      <weight>300</weight>\n      <read_iops_sec>10</read_iops_sec>\n"
                                  "    </device>\n  </blkiotune>\n"));
    // /dev/sda keeps its place though nothing of it is printed
    typed_params again{{"device_weight", std::string("/dev/sda,7")}};
    co_await c.async_set_blkio_parameters("test", again, 0);
    params = co_await c.async_get_blkio_parameters("test", 0);
    CHECK(param<std::string>(params, "device_weight") == "/dev/sda,7,/dev/sdb,300");
    auto config = co_await c.async_get_blkio_parameters("test", m::config);
    CHECK(param<unsigned>(config, "weight") == 0);

    // libvirt's words; the weight given beside a bad list is still set
    typed_params bad{{"device_weight", std::string("/dev/sda,5,/dev/sdb,x")}, {"weight", 7u}};
    auto o = co_await catch_error(c.async_set_blkio_parameters("test", bad, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "invalid value 'x' for parameter 'device_weight' of device '/dev/sdb'");
    params = co_await c.async_get_blkio_parameters("test", 0);
    CHECK(param<unsigned>(params, "weight") == 7);
    CHECK(param<std::string>(params, "device_weight") == "/dev/sda,7,/dev/sdb,300");
    typed_params odd{{"device_write_bytes_sec", std::string("/dev/sda")}};
    o = co_await catch_error(c.async_set_blkio_parameters("test", odd, 0));
    CHECK(o.message == "unable to parse blkio device 'device_write_bytes_sec' '/dev/sda'");
    typed_params negative{{"device_weight", std::string("/dev/sda,-1")}};
    o = co_await catch_error(c.async_set_blkio_parameters("test", negative, 0));
    CHECK(o.message == "invalid value '-1' for parameter 'device_weight' of device '/dev/sda'");
    typed_params wide{{"device_read_bytes_sec", std::string("/dev/sda,99999999999999")}};
    co_await c.async_set_blkio_parameters("test", wide, 0);
    typed_params narrow{{"device_read_iops_sec", std::string("/dev/sda,4294967296")}};
    o = co_await catch_error(c.async_set_blkio_parameters("test", narrow, 0));
    CHECK(o.message == "invalid value '4294967296' for parameter 'device_read_iops_sec' of device '/dev/sda'");
    typed_params unknown{{"device_total_iops_sec", std::string("")}};
    o = co_await catch_error(c.async_set_blkio_parameters("test", unknown, 0));
    CHECK(o.ec == errc::argument_unsupported);
    o = co_await catch_error(c.async_get_blkio_parameters("test", m::live | m::config));
    CHECK(o.message == both_flags);
    o = co_await catch_error(c.async_set_blkio_parameters("test", set, 16));
    CHECK(o.message == "unsupported flags (0x10) in function testDomainSetBlkioParameters");

    // The next boot's definition, apart from the running one.
    typed_params next{{"weight", 100u}};
    co_await c.async_set_blkio_parameters("test", next, m::config);
    auto inactive = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    CHECK_THAT(inactive, Contains("  <blkiotune>\n    <weight>100</weight>\n  </blkiotune>\n"));
    params = co_await c.async_get_blkio_parameters("test", 0);
    CHECK(param<unsigned>(params, "weight") == 7);
  });
}

// testDomainGet/SetNumaParameters and virDomainNumatuneSet: numa_mode (an int, strict unless set)
// and numa_nodeset; a mode alone needs a nodeset while the vCPUs are placed statically; a running
// domain keeps its mode once it has one.
TEST_CASE("test driver: NUMA parameters follow virDomainNumatuneSet", "[test_driver][tuning]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto params = co_await c.async_get_numa_parameters("test", 0);
    CHECK(params == typed_params{{"numa_mode", 0}, {"numa_nodeset", std::string()}});

    typed_params mode_only{{"numa_mode", 2}};
    auto o = co_await catch_error(c.async_set_numa_parameters("test", mode_only, 0));
    CHECK(o.ec == errc::config_unsupported);
    CHECK(o.message == "nodeset for NUMA memory tuning must be set if 'placement' is 'static'");
    auto xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(xml, !Contains("numatune"));

    typed_params nodes{{"numa_nodeset", std::string("0,1,3-5,^4")}};
    co_await c.async_set_numa_parameters("test", nodes, 0);
    params = co_await c.async_get_numa_parameters("test", 0);
    CHECK(params == typed_params{{"numa_mode", 0}, {"numa_nodeset", std::string("0-1,3,5")}});
    xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(xml, Contains("  <vcpu placement='static'>2</vcpu>\n"
                             "  <numatune>\n    <memory mode='strict' nodeset='0-1,3,5'/>\n  </numatune>\n"));
    o = co_await catch_error(c.async_set_numa_parameters("test", mode_only, 0));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "can't change numatune mode for running domain");
    typed_params same{{"numa_mode", 0}, {"numa_nodeset", std::string("1")}};
    co_await c.async_set_numa_parameters("test", same, m::live);

    // The definition: any mode.
    typed_params next{{"numa_nodeset", std::string("0")}, {"numa_mode", 3}};
    co_await c.async_set_numa_parameters("test", next, m::config);
    params = co_await c.async_get_numa_parameters("test", m::config);
    CHECK(params == typed_params{{"numa_mode", 3}, {"numa_nodeset", std::string("0")}});
    auto inactive = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    CHECK_THAT(inactive, Contains("<memory mode='restrictive' nodeset='0'/>"));
    params = co_await c.async_get_numa_parameters("test", m::live);
    CHECK(param<std::string>(params, "numa_nodeset") == "1");

    typed_params bad_mode{{"numa_mode", 7}};
    o = co_await catch_error(c.async_set_numa_parameters("test", bad_mode, m::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "unsupported numatune mode: '7'");
    typed_params bad_nodes{{"numa_nodeset", std::string("abc")}};
    o = co_await catch_error(c.async_set_numa_parameters("test", bad_nodes, 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "Failed to parse bitmap 'abc'");
    typed_params no_nodes{{"numa_nodeset", std::string("^0")}};
    o = co_await catch_error(c.async_set_numa_parameters("test", no_nodes, 0));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "Invalid nodeset of 'numatune': ^0");
    typed_params too_far{{"numa_nodeset", std::string("16384")}};
    o = co_await catch_error(c.async_set_numa_parameters("test", too_far, 0));
    CHECK(o.message == "Failed to parse bitmap '16384'");
    typed_params mode_text{{"numa_mode", std::string("strict")}};
    o = co_await catch_error(c.async_set_numa_parameters("test", mode_text, 0));
    CHECK(o.message == "invalid type 'string' for parameter 'numa_mode', expected 'int'");
    o = co_await catch_error(c.async_get_numa_parameters("test", m::live | m::config));
    CHECK(o.message == both_flags);

    // vCPUs placed 'auto': a mode alone places the memory automatically too.
    co_await c.async_define_xml(tuned_xml("auto1", "<vcpu placement='auto'>2</vcpu>"));
    typed_params interleave{{"numa_mode", 2}};
    co_await c.async_set_numa_parameters("auto1", interleave, 0);
    params = co_await c.async_get_numa_parameters("auto1", 0);
    CHECK(params == typed_params{{"numa_mode", 2}, {"numa_nodeset", std::string()}});
    auto auto_xml = co_await c.async_get_xml("auto1", 0);
    CHECK_THAT(auto_xml, Contains("<memory mode='interleave' placement='auto'/>"));
  });
}

// testDomainPinVcpuFlags (the running domain only, no flags) and testDomainGetVcpuPinInfo (any
// definition; a pin, else <vcpu cpuset>, else every CPU): maps of the test node's 8 CPUs.
// `vcpupin test 0 1` shows in dumpxml as <cputune><vcpupin vcpu='0' cpuset='1'/></cputune>.
TEST_CASE("test driver: vCPU pins of the running domain", "[test_driver][affinity]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto maps = co_await c.async_get_vcpu_pin_info("test", 0);
    CHECK(maps == strings{"yyyyyyyy", "yyyyyyyy"});

    co_await c.async_pin_vcpu_flags("test", 0, "-y------", 0);
    maps = co_await c.async_get_vcpu_pin_info("test", m::live);
    CHECK(maps == strings{"-y------", "yyyyyyyy"});
    auto xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(xml, Contains("  <vcpu placement='static'>2</vcpu>\n"
                             "  <cputune>\n    <vcpupin vcpu='0' cpuset='1'/>\n  </cputune>\n"));
    maps = co_await c.async_get_vcpu_pin_info("test", m::config);
    CHECK(maps == strings{"yyyyyyyy", "yyyyyyyy"});
    co_await c.async_pin_vcpu_flags("test", 1, "0-3,^2", 0);  // a list does too
    maps = co_await c.async_get_vcpu_pin_info("test", 0);
    CHECK(maps == strings{"-y------", "yy-y----"});

    auto o = co_await catch_error(c.async_pin_vcpu_flags("test", 0, "y", m::config));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "unsupported flags (0x2) in function testDomainPinVcpuFlags");
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 0, "y", m::live));
    CHECK(o.message == "unsupported flags (0x1) in function testDomainPinVcpuFlags");
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 5, "y", 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "requested vcpu '5' is not present in the domain");
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 0, "", 0));
    CHECK(o.ec == errc::invalid_arg);
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 0, "x", 0));
    CHECK(o.message == "Failed to parse bitmap 'x'");
    o = co_await catch_error(c.async_get_vcpu_pin_info("test", m::live | m::config));
    CHECK(o.message == both_flags);
    // An offline vCPU is not present either.
    co_await c.async_set_vcpus("test", 1, m::live);
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 1, "y", 0));
    CHECK(o.message == "requested vcpu '1' is not present in the domain");
    maps = co_await c.async_get_vcpu_pin_info("test", 0);
    CHECK(maps.size() == 2);  // up to the maximum

    co_await c.async_destroy("test");
    o = co_await catch_error(c.async_pin_vcpu_flags("test", 0, "y", 0));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "cannot pin vcpus on an inactive domain");
    o = co_await catch_error(c.async_get_vcpu_pin_info("test", m::live));
    CHECK(o.message == "domain is not running");

    // <vcpu cpuset> answers for unpinned vCPUs; CPUs past the map's 8 are cut.
    co_await c.async_define_xml(tuned_xml("pinned", "<vcpu cpuset='1-3,9'>3</vcpu>",
                                          "<cputune><vcpupin vcpu='2' cpuset='0'/></cputune>"));
    maps = co_await c.async_get_vcpu_pin_info("pinned", 0);
    CHECK(maps == strings{"-yyy----", "-yyy----", "y-------"});
  });
}

// testDomainPinEmulator / testDomainGetEmulatorPinInfo: live or in the definition.
TEST_CASE("test driver: the emulator pin, live and in the definition", "[test_driver][affinity]") {
  with_default([](covirt::connection& c) -> asio::awaitable<void> {
    namespace m = covirt::modify;
    auto map = co_await c.async_get_emulator_pin_info("test", 0);
    CHECK(map == "yyyyyyyy");
    co_await c.async_pin_emulator("test", "-yy", 0);
    map = co_await c.async_get_emulator_pin_info("test", m::live);
    CHECK(map == "-yy-----");
    auto xml = co_await c.async_get_xml("test", 0);
    CHECK_THAT(xml, Contains("  <cputune>\n    <emulatorpin cpuset='1-2'/>\n  </cputune>\n"));
    co_await c.async_pin_emulator("test", "5", m::config);
    map = co_await c.async_get_emulator_pin_info("test", m::config);
    CHECK(map == "-----y--");
    auto inactive = co_await c.async_get_xml("test", covirt::xml_flags::inactive);
    CHECK_THAT(inactive, Contains("<emulatorpin cpuset='5'/>"));
    map = co_await c.async_get_emulator_pin_info("test", 0);
    CHECK(map == "-yy-----");

    auto o = co_await catch_error(c.async_pin_emulator("test", "--", 0));
    CHECK(o.ec == errc::invalid_arg);
    CHECK(o.message == "Empty cpu list for pinning");
    o = co_await catch_error(c.async_pin_emulator("test", "y", m::live | m::config));
    CHECK(o.message == both_flags);
    o = co_await catch_error(c.async_pin_emulator("test", "y", 4));
    CHECK(o.message == "unsupported flags (0x4) in function testDomainPinEmulator");
    o = co_await catch_error(c.async_get_emulator_pin_info("test", 4));
    CHECK(o.message == "unsupported flags (0x4) in function testDomainGetEmulatorPinInfo");
    co_await c.async_destroy("test");
    o = co_await catch_error(c.async_pin_emulator("test", "y", m::live));
    CHECK(o.ec == errc::operation_invalid);
    CHECK(o.message == "domain is not running");
    map = co_await c.async_get_emulator_pin_info("test", 0);
    CHECK(map == "-----y--");
  });
}
