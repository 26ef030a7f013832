// Unit tests of the core: errors, URIs, open(), events, read-only connections, completion tokens,
// and the domain list and job queue below the drivers.

#include <covirt/connection.hpp>
#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/test/driver.hpp>
#include <covirt/timeout.hpp>
#include <covirt/types.hpp>
#include <covirt/uri.hpp>

#include "common/print.hpp"
#include "common/run.hpp"
#include "../src/common/domain_list.hpp"
#include "../src/common/host_port.hpp"
#include "../src/qemu/cgroup.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

// libvirt's own numbers, to compare against (the test only; the library never includes it).
#define VIR_ENUM_SENTINELS  // for VIR_ERR_NUMBER_LAST
#include <libvirt/virterror.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
using covirt::errc;
using covirt::error_code;
using covirt::test_support::run_coro;
using covirt::test_support::catch_error;
using covirt::test_support::thrown;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using namespace std::chrono_literals;

namespace {

covirt::uri parse_ok(std::string_view text) {
  covirt::diagnostics diag;
  auto r = covirt::parse_uri(text, diag);
  INFO("uri: " << text << " diag: " << diag.message());
  REQUIRE(r.has_value());
  CHECK(r->original == text);
  return *r;
}

// Parses text that must be refused; returns the message.
std::string parse_bad(std::string_view text) {
  covirt::diagnostics diag;
  auto r = covirt::parse_uri(text, diag);
  INFO("uri: " << text);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::invalid_arg);
  CHECK_FALSE(diag.message().empty());
  return std::string(diag.message());
}

// A fresh temporary directory, removed at scope exit.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "covirt-core-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    std::ofstream(p) << text;
    return p.string();
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// errc, category, covirt::error

TEST_CASE("errc values are libvirt's virErrorNumber", "[core][errc]") {
  CHECK(static_cast<int>(errc::ok) == VIR_ERR_OK);
  CHECK(static_cast<int>(errc::internal_error) == VIR_ERR_INTERNAL_ERROR);
  CHECK(static_cast<int>(errc::no_memory) == VIR_ERR_NO_MEMORY);
  CHECK(static_cast<int>(errc::no_support) == VIR_ERR_NO_SUPPORT);
  CHECK(static_cast<int>(errc::no_connect) == VIR_ERR_NO_CONNECT);
  CHECK(static_cast<int>(errc::invalid_conn) == VIR_ERR_INVALID_CONN);
  CHECK(static_cast<int>(errc::invalid_domain) == VIR_ERR_INVALID_DOMAIN);
  CHECK(static_cast<int>(errc::invalid_arg) == VIR_ERR_INVALID_ARG);
  CHECK(static_cast<int>(errc::operation_failed) == VIR_ERR_OPERATION_FAILED);
  CHECK(static_cast<int>(errc::xml_error) == VIR_ERR_XML_ERROR);
  CHECK(static_cast<int>(errc::dom_exist) == VIR_ERR_DOM_EXIST);
  CHECK(static_cast<int>(errc::operation_denied) == VIR_ERR_OPERATION_DENIED);
  CHECK(static_cast<int>(errc::open_failed) == VIR_ERR_OPEN_FAILED);
  CHECK(static_cast<int>(errc::xml_detail) == VIR_ERR_XML_DETAIL);
  CHECK(static_cast<int>(errc::invalid_network) == VIR_ERR_INVALID_NETWORK);
  CHECK(static_cast<int>(errc::network_exist) == VIR_ERR_NETWORK_EXIST);
  CHECK(static_cast<int>(errc::system_error) == VIR_ERR_SYSTEM_ERROR);
  CHECK(static_cast<int>(errc::rpc) == VIR_ERR_RPC);
  CHECK(static_cast<int>(errc::war_no_network) == VIR_WAR_NO_NETWORK);
  CHECK(static_cast<int>(errc::no_domain) == VIR_ERR_NO_DOMAIN);
  CHECK(static_cast<int>(errc::no_network) == VIR_ERR_NO_NETWORK);
  CHECK(static_cast<int>(errc::auth_failed) == VIR_ERR_AUTH_FAILED);
  CHECK(static_cast<int>(errc::operation_invalid) == VIR_ERR_OPERATION_INVALID);
  CHECK(static_cast<int>(errc::config_unsupported) == VIR_ERR_CONFIG_UNSUPPORTED);
  CHECK(static_cast<int>(errc::operation_timeout) == VIR_ERR_OPERATION_TIMEOUT);
  CHECK(static_cast<int>(errc::argument_unsupported) == VIR_ERR_ARGUMENT_UNSUPPORTED);
  CHECK(static_cast<int>(errc::operation_aborted) == VIR_ERR_OPERATION_ABORTED);
  CHECK(static_cast<int>(errc::overflow) == VIR_ERR_OVERFLOW);
  CHECK(static_cast<int>(errc::operation_unsupported) == VIR_ERR_OPERATION_UNSUPPORTED);
  CHECK(static_cast<int>(errc::ssh) == VIR_ERR_SSH);
  CHECK(static_cast<int>(errc::resource_busy) == VIR_ERR_RESOURCE_BUSY);
  CHECK(static_cast<int>(errc::access_denied) == VIR_ERR_ACCESS_DENIED);
  CHECK(static_cast<int>(errc::agent_unsynced) == VIR_ERR_AGENT_UNSYNCED);
  CHECK(static_cast<int>(errc::device_missing) == VIR_ERR_DEVICE_MISSING);
  CHECK(static_cast<int>(errc::no_hostname) == VIR_ERR_NO_HOSTNAME);
  CHECK(static_cast<int>(errc::checkpoint_inconsistent) == VIR_ERR_CHECKPOINT_INCONSISTENT);
  CHECK(static_cast<int>(errc::multiple_domains) == VIR_ERR_MULTIPLE_DOMAINS);
}

TEST_CASE("errc_symbol names every libvirt 9.0 code and nothing else", "[core][errc]") {
  CHECK(covirt::errc_symbol(VIR_ERR_OK) == "VIR_ERR_OK");
  CHECK(covirt::errc_symbol(VIR_ERR_NO_DOMAIN) == "VIR_ERR_NO_DOMAIN");
  CHECK(covirt::errc_symbol(VIR_ERR_OPERATION_INVALID) == "VIR_ERR_OPERATION_INVALID");
  CHECK(covirt::errc_symbol(VIR_WAR_NO_NETWORK) == "VIR_WAR_NO_NETWORK");
  CHECK(covirt::errc_symbol(VIR_ERR_MULTIPLE_DOMAINS) == "VIR_ERR_MULTIPLE_DOMAINS");
  for (int v = 0; v < VIR_ERR_NUMBER_LAST; ++v) {
    INFO("value " << v);
    auto sym = covirt::errc_symbol(v);
    CHECK((sym.substr(0, 8) == "VIR_ERR_" || sym.substr(0, 8) == "VIR_WAR_"));
  }
  CHECK(covirt::errc_symbol(VIR_ERR_NUMBER_LAST).empty());
  CHECK(covirt::errc_symbol(-1).empty());
  CHECK(covirt::errc_symbol(100000).empty());
}

TEST_CASE("error category: name and libvirt's generic messages", "[core][errc]") {
  const auto& cat = covirt::error_category();
  CHECK(std::string(cat.name()) == "covirt");
  error_code ec = errc::no_domain;  // is_error_code_enum makes this implicit
  CHECK(&ec.category() == &cat);
  CHECK(ec.value() == VIR_ERR_NO_DOMAIN);
  CHECK(ec == errc::no_domain);
  CHECK(ec != errc::no_network);
  CHECK(ec.message() == "Domain not found");
  CHECK(covirt::make_error_code(errc::no_network).message() == "Network not found");
  CHECK(covirt::make_error_code(errc::operation_invalid).message() == "Requested operation is not valid");
  CHECK(covirt::make_error_code(errc::operation_denied).message() == "operation forbidden");
  CHECK(covirt::make_error_code(errc::internal_error).message() == "internal error");
  CHECK(covirt::make_error_code(errc::invalid_arg).message() == "invalid argument");
  CHECK(covirt::make_error_code(errc::operation_failed).message() == "operation failed");
  CHECK(covirt::make_error_code(errc::no_support).message() ==
        "this function is not supported by the connection driver");
  // Every known code has some text, and an unknown one says which number it was.
  for (int v = 1; v < VIR_ERR_NUMBER_LAST; ++v) CHECK_FALSE(error_code(v, cat).message().empty());
  CHECK_THAT(error_code(4242, cat).message(), Contains("4242"));
  // A covirt code is not a generic/system one with the same number.
  CHECK(covirt::make_error_code(errc::invalid_arg) != error_code(8, boost::system::generic_category()));
}

TEST_CASE("covirt::error carries the code, the driver's words and libvirt's what()", "[core][errc]") {
  covirt::error e(errc::no_domain, "no domain with matching name 'web1'");
  CHECK(e.code() == errc::no_domain);
  CHECK(e.message() == "no domain with matching name 'web1'");
  CHECK(std::string(e.what()) == "Domain not found: no domain with matching name 'web1'");

  covirt::error bare(errc::operation_invalid, "");
  CHECK(std::string(bare.what()) == "Requested operation is not valid");
  CHECK(bare.message().empty());

  covirt::diagnostics diag("domain 'x' is not running");
  bool caught = false;
  try {
    covirt::throw_error(covirt::make_error_code(errc::operation_invalid), diag);
  } catch (const boost::system::system_error& se) {  // catchable as its base
    caught = true;
    CHECK(se.code() == errc::operation_invalid);
    auto* ce = dynamic_cast<const covirt::error*>(&se);
    REQUIRE(ce != nullptr);
    CHECK(ce->message() == "domain 'x' is not running");
    CHECK(std::string(ce->what()) == "Requested operation is not valid: domain 'x' is not running");
  }
  CHECK(caught);
}

TEST_CASE("fail() fills diagnostics and converts to any result", "[core][errc]") {
  covirt::diagnostics diag;
  covirt::result<int> r = covirt::fail(diag, errc::invalid_arg, "bad thing");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::invalid_arg);
  CHECK(diag.message() == "bad thing");
  covirt::result<bool> rb = covirt::fail(diag, errc::no_domain, "gone");
  REQUIRE_FALSE(rb.has_value());
  CHECK(rb.error() == errc::no_domain);
  CHECK(diag.message() == "gone");
  diag.clear();
  CHECK(diag.message().empty());
}

TEST_CASE("domain_key: by name, or by a ref's canonical UUID kept inline", "[core][key]") {
  covirt::domain_key by_name = std::string("web1");
  CHECK(by_name.name == "web1");
  CHECK_FALSE(by_name.by_uuid());
  CHECK(by_name.uuid().empty());
  const covirt::domain_ref r{"web1", "c7a5fdbd-cdaf-9455-926a-d65c16db1809", 3};
  covirt::domain_key from_ref = r;
  CHECK(from_ref.by_uuid());
  CHECK(from_ref.uuid() == r.uuid);
  CHECK(from_ref.name == "web1");
  CHECK(from_ref.id == 3);
  covirt::domain_key moved = std::move(from_ref);
  CHECK(moved.uuid() == r.uuid);
  CHECK(moved == covirt::domain_key(r));
  CHECK_FALSE(moved == by_name);
  // Anything but 36 characters is no UUID to look up by: the key falls back to the name.
  covirt::domain_key odd = covirt::domain_ref{"web1", "c7a5fdbdcdaf9455926ad65c16db1809", 3};
  CHECK_FALSE(odd.by_uuid());
  CHECK(odd.name == "web1");
}

// ---------------------------------------------------------------------------------------------
// URIs

TEST_CASE("URI: the local forms libvirt accepts", "[core][uri]") {
  SECTION("test:///default") {
    auto u = parse_ok("test:///default");
    CHECK(u.driver == "test");
    CHECK(u.transport.empty());
    CHECK(u.user.empty());
    CHECK(u.host.empty());
    CHECK_FALSE(u.port.has_value());
    CHECK(u.path == "/default");
    CHECK(u.params.empty());
    CHECK(u.is_local());
    CHECK(u.str() == "test:///default");
  }
  SECTION("test:///abs/path.xml") {
    auto u = parse_ok("test:///abs/path/node.xml");
    CHECK(u.driver == "test");
    CHECK(u.path == "/abs/path/node.xml");
    CHECK(u.is_local());
  }
  SECTION("qemu:///system and qemu:///session") {
    auto s = parse_ok("qemu:///system");
    CHECK(s.driver == "qemu");
    CHECK(s.path == "/system");
    CHECK(s.is_local());
    auto se = parse_ok("qemu:///session");
    CHECK(se.path == "/session");
    CHECK(se.str() == "qemu:///session");
  }
  SECTION("xen:///") {
    auto u = parse_ok("xen:///");
    CHECK(u.driver == "xen");
    CHECK(u.host.empty());
    CHECK((u.path == "/" || u.path.empty()));
    CHECK(u.is_local());
    CHECK(u.str() == "xen:///");
  }
  SECTION("the driver name is case-insensitive, as libvirt's") {
    auto u = parse_ok("QEMU:///system");
    CHECK(u.driver == "qemu");
  }
}

TEST_CASE("URI: remote forms with transport, user, host, port and parameters", "[core][uri]") {
  SECTION("qemu+unix:///system?socket=/x") {
    auto u = parse_ok("qemu+unix:///system?socket=/x");
    CHECK(u.driver == "qemu");
    CHECK(u.transport == "unix");
    CHECK(u.host.empty());
    CHECK(u.path == "/system");
    CHECK(u.param("socket") == std::optional<std::string>("/x"));
    CHECK_FALSE(u.param("keyfile").has_value());
    CHECK_FALSE(u.is_local());  // a transport means the remote driver
    CHECK(u.without_transport() == "qemu:///system");
    CHECK(u.str() == "qemu+unix:///system?socket=/x");
  }
  SECTION("qemu+tcp://host:16509/system") {
    auto u = parse_ok("qemu+tcp://host:16509/system");
    CHECK(u.transport == "tcp");
    CHECK(u.host == "host");
    REQUIRE(u.port.has_value());
    CHECK(*u.port == 16509);
    CHECK(u.path == "/system");
    CHECK_FALSE(u.is_local());
    CHECK(u.str() == "qemu+tcp://host:16509/system");
  }
  SECTION("qemu+ssh://user@host/system?keyfile=...") {
    auto u = parse_ok("qemu+ssh://admin@kvm1.example.org/system?keyfile=/home/admin/.ssh/id_ed25519&no_verify=1");
    CHECK(u.transport == "ssh");
    CHECK(u.user == "admin");
    CHECK(u.host == "kvm1.example.org");
    CHECK_FALSE(u.port.has_value());
    CHECK(u.path == "/system");
    REQUIRE(u.params.size() == 2);
    CHECK(u.params[0] == std::pair<std::string, std::string>("keyfile", "/home/admin/.ssh/id_ed25519"));
    CHECK(u.params[1] == std::pair<std::string, std::string>("no_verify", "1"));
    CHECK(u.str() == "qemu+ssh://admin@kvm1.example.org/system?keyfile=/home/admin/.ssh/id_ed25519&no_verify=1");
  }
  SECTION("a host with no transport is still remote") {
    auto u = parse_ok("qemu://host/system");
    CHECK(u.transport.empty());
    CHECK(u.host == "host");
    CHECK_FALSE(u.is_local());
  }
  SECTION("IPv6 literal host") {
    auto u = parse_ok("qemu+tcp://[::1]:16509/system");
    CHECK(u.host == "::1");
    REQUIRE(u.port.has_value());
    CHECK(*u.port == 16509);
    CHECK(u.str() == "qemu+tcp://[::1]:16509/system");
    auto v = parse_ok("test+tcp://[fe80::1]/default");
    CHECK(v.host == "fe80::1");
    CHECK_FALSE(v.port.has_value());
  }
  SECTION("percent-encoded query values are decoded") {
    auto u = parse_ok("qemu+unix:///system?socket=%2Frun%2Fmy%20dir%2Flibvirt-sock&mode=a%26b");
    CHECK(u.param("socket") == std::optional<std::string>("/run/my dir/libvirt-sock"));
    CHECK(u.param("mode") == std::optional<std::string>("a&b"));
    REQUIRE(u.params.size() == 2);
    CHECK(u.params[0].first == "socket");
    CHECK(u.params[1].first == "mode");
  }
}

// uri::str() is "the canonical text form": parsing it again must give the same URI back.
TEST_CASE("URI: str() re-encodes decoded query values so it parses back the same", "[core][uri]") {
  auto u = parse_ok("qemu+unix:///system?socket=%2Frun%2Fmy%20dir%2Fsock&mode=a%26b");
  covirt::diagnostics diag;
  auto again = covirt::parse_uri(u.str(), diag);
  INFO("str(): " << u.str() << " diag: " << diag.message());
  REQUIRE(again.has_value());
  CHECK(again->params == u.params);
}

// libvirt's remote driver sends libvirtd the URI without transport, user, host and port.
TEST_CASE("URI: without_transport() is the name libvirtd is asked for", "[core][uri]") {
  CHECK(parse_ok("qemu+tcp://host:16509/system").without_transport() == "qemu:///system");
  CHECK(parse_ok("qemu+ssh://user@host/session").without_transport() == "qemu:///session");
}

TEST_CASE("URI: malformed ones give invalid_arg with a message naming the problem", "[core][uri]") {
  SECTION("empty") { CHECK_THAT(parse_bad(""), Contains("empty")); }
  SECTION("no scheme") {
    CHECK_THAT(parse_bad("default"), Contains("scheme"));
    CHECK_THAT(parse_bad("/var/run/libvirt/libvirt-sock"), Contains("scheme"));
  }
  SECTION("scheme without '//'") {
    auto m = parse_bad("qemu:/system");
    CHECK_THAT(m, Contains("qemu:/system"));
    CHECK_THAT(m, Contains("qemu://"));
  }
  SECTION("bad port") {
    auto m = parse_bad("qemu+tcp://host:99999/system");
    CHECK_THAT(m, Contains("99999"));
    CHECK_THAT(m, Contains("port"));
    CHECK_THAT(parse_bad("qemu+tcp://host:0/system"), Contains("port"));
  }
  SECTION("unknown transport") {
    auto m = parse_bad("qemu+bogus://host/system");
    CHECK_THAT(m, Contains("bogus"));
    CHECK_THAT(m, Contains("transport"));
  }
  SECTION("fragment") { CHECK_THAT(parse_bad("test:///default#frag"), Contains("fragment")); }
  SECTION("password in userinfo") { CHECK_THAT(parse_bad("qemu+ssh://root:hunter2@host/system"), Contains("password")); }
}

// A refused URI must not copy the password it refuses into a message that ends up in logs.
TEST_CASE("URI: the message for a password in userinfo does not repeat the password", "[core][uri]") {
  auto m = parse_bad("qemu+ssh://root:hunter2@host/system");
  CHECK_THAT(m, Contains("password"));
  CHECK_FALSE(m.find("hunter2") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// open()

TEST_CASE("open: unknown driver is no_connect naming it", "[core][open]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::diagnostics diag;
    auto [ec, conn] = co_await covirt::async_open(ex, "bogusdrv:///x", 0, diag, asio::as_tuple(asio::use_awaitable));
    CHECK(ec == errc::no_connect);
    CHECK_THAT(std::string(diag.message()), Contains("bogusdrv"));
    CHECK_FALSE(conn.is_open());
    // The throwing form carries the same code and message.
    auto t = co_await catch_error(covirt::async_open(ex, "bogusdrv:///x"));
    CHECK(t.threw);
    CHECK(t.ec == errc::no_connect);
    CHECK_THAT(t.message, Contains("bogusdrv"));
    // libvirt's own words: "no connection driver available for URI".
    CHECK_THAT(t.what, StartsWith("no connection driver available for bogusdrv:///x"));
  });
}

TEST_CASE("open: test:/// without a path and malformed URIs are invalid_arg", "[core][open]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::diagnostics diag;
    auto [ec, conn] = co_await covirt::async_open(ex, "test:///", 0, diag, asio::as_tuple(asio::use_awaitable));
    CHECK(ec == errc::invalid_arg);  // libvirt: "testOpen: supply a path or use test:///default"
    CHECK_THAT(std::string(diag.message()), Contains("path"));
    CHECK_FALSE(conn.is_open());

    diag.clear();
    auto [ec2, conn2] = co_await covirt::async_open(ex, "qemu:/system", 0, diag, asio::as_tuple(asio::use_awaitable));
    CHECK(ec2 == errc::invalid_arg);
    CHECK_THAT(std::string(diag.message()), Contains("qemu:/system"));

    auto t = co_await catch_error(covirt::async_open(ex, ""));
    CHECK(t.threw);
    CHECK(t.ec == errc::invalid_arg);
  });
}

TEST_CASE("open: a missing or broken node file is an error, not a crash", "[core][open]") {
  temp_dir dir;
  std::string missing = (dir.path / "nonexistent.xml").string();
  std::string broken = dir.write("broken.xml", "<node><domain type='test'><name>x</name>");
  std::string wrong_root = dir.write("wrong.xml", "<domain type='test'><name>x</name></domain>");
  std::string bad_domain = dir.write("baddom.xml", "<node><domain type='test'><memory>1</memory></domain></node>");
  std::string empty = dir.write("empty.xml", "");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (const std::string& path : {missing, broken, wrong_root, bad_domain, empty}) {
      INFO("file: " << path);
      covirt::diagnostics diag;
      auto [ec, conn] =
          co_await covirt::async_open(ex, "test://" + path, 0, diag, asio::as_tuple(asio::use_awaitable));
      CHECK(ec);
      CHECK(ec.category() == covirt::error_category());
      CHECK_FALSE(conn.is_open());
      CHECK_FALSE(diag.message().empty());
      if (path == missing || path == wrong_root) CHECK_THAT(std::string(diag.message()), Contains(path));
    }
  });
}

TEST_CASE("open: a custom node file is loaded as libvirt's test driver does", "[core][open]") {
  temp_dir dir;
  dir.write("gamma.xml", R"(<domain type='test'>
  <name>gamma</name>
  <uuid>0a0b0c0d-0000-4000-8000-00000000000c</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>
)");
  std::string node = dir.write("node.xml", R"(<node>
  <cpu>
    <mhz>2500</mhz>
    <model>x86_64</model>
    <active>4</active>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>2</cores>
    <threads>2</threads>
  </cpu>
  <memory>4194304</memory>
  <domain type='test'>
    <name>alpha</name>
    <uuid>12345678-1234-1234-1234-123456789abc</uuid>
    <memory unit='KiB'>524288</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>beta</name>
    <memory unit='KiB'>262144</memory>
    <currentMemory unit='KiB'>131072</currentMemory>
    <vcpu>3</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <domain file='gamma.xml'/>
  <network>
    <name>lan</name>
    <uuid>87654321-4321-4321-4321-cba987654321</uuid>
    <bridge name='br-lan'/>
  </network>
</node>
)");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test://" + node);
    CHECK(conn.type() == "TEST");
    CHECK(conn.uri().path == node);

    auto ni = co_await conn.async_node_get_info();
    CHECK(ni == covirt::node_info{.model = "x86_64", .memory_kib = 4194304, .cpus = 4, .mhz = 2500,
                                  .nodes = 1, .sockets = 1, .cores = 2, .threads = 2});

    // Only the file's domains, all running, ids in file order (virsh list: 1 alpha, 2 beta).
    auto all = co_await conn.async_list_domains(covirt::list_flags::all);
    REQUIRE(all.size() == 3);
    auto alpha = co_await conn.async_lookup_by_name("alpha");
    auto beta = co_await conn.async_lookup_by_name("beta");
    auto gamma = co_await conn.async_lookup_by_name("gamma");
    CHECK(alpha.id == 1);
    CHECK(beta.id == 2);
    CHECK(gamma.id == 3);
    CHECK(alpha.uuid == "12345678-1234-1234-1234-123456789abc");
    CHECK(gamma.uuid == "0a0b0c0d-0000-4000-8000-00000000000c");
    CHECK(beta.uuid.size() == 36);  // generated, like libvirt does for a domain without <uuid>
    CHECK(beta.uuid != alpha.uuid);
    auto t = co_await catch_error(conn.async_lookup_by_name("test"));
    CHECK(t.ec == errc::no_domain);  // not the default node

    auto ai = co_await conn.async_get_info("alpha");
    CHECK(ai.state == covirt::domain_state::running);
    CHECK(ai.max_mem_kib == 524288);
    CHECK(ai.memory_kib == 524288);  // no <currentMemory>: equal to <memory>
    CHECK(ai.nr_virt_cpu == 1);
    auto bi = co_await conn.async_get_info("beta");
    CHECK(bi.max_mem_kib == 262144);
    CHECK(bi.memory_kib == 131072);
    CHECK(bi.nr_virt_cpu == 3);
    CHECK(co_await conn.async_is_persistent("beta"));
    CHECK(co_await conn.async_is_active("gamma"));

    auto nets = co_await conn.async_list_networks(0);
    REQUIRE(nets.size() == 1);
    CHECK(nets[0].name == "lan");
    CHECK(nets[0].uuid == "87654321-4321-4321-4321-cba987654321");
    CHECK(nets[0].active);
    CHECK(nets[0].persistent);
    CHECK(co_await conn.async_get_network_bridge_name("lan") == "br-lan");

    // The next domain started gets the next id.
    auto d = co_await conn.async_create_xml(R"(<domain type='test'><name>delta</name><memory>1024</memory>
      <vcpu>1</vcpu><os><type>hvm</type></os></domain>)", 0);
    CHECK(d.id == 4);
  });
}

// libvirt: `virsh -c test:///PATH/node.xml domstate alpha --reason` says "running (unknown)" for the
// domains a node file starts; only a start through the API is "booted".
TEST_CASE("open: domains a node file starts are running for an unknown reason", "[core][open]") {
  temp_dir dir;
  std::string node = dir.write("node.xml", R"(<node>
  <domain type='test'><name>alpha</name><memory>524288</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>
</node>
)");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test://" + node);
    auto st = co_await conn.async_get_state("alpha");
    CHECK(st.state == covirt::domain_state::running);
    CHECK(st.reason == covirt::reason::running_unknown);
  });
}

// ---------------------------------------------------------------------------------------------
// Events

namespace {

covirt::domain_ref ref_of(std::string name) { return {std::move(name), "00000000-0000-0000-0000-000000000000", -1}; }

}  // namespace

TEST_CASE("events: a subscription sees the connection's events in order", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    auto all = conn.subscribe();
    auto only_test = conn.subscribe("test");
    CHECK(all.is_open());
    CHECK(all.pending() == 0);

    co_await conn.async_define_xml(R"(<domain type='test'><name>ev1</name><memory>1024</memory>
      <vcpu>1</vcpu><os><type>hvm</type></os></domain>)");
    co_await conn.async_create("ev1");
    co_await conn.async_suspend("test");
    co_await conn.async_resume("test");
    co_await conn.async_destroy("ev1");

    using covirt::event_type;
    namespace det = covirt::event_detail;
    struct want { std::string name; event_type type; int detail; };
    std::vector<want> expected = {
        {"ev1", event_type::defined, det::defined_added},     {"ev1", event_type::started, det::started_booted},
        {"test", event_type::suspended, det::suspended_paused}, {"test", event_type::resumed, det::resumed_unpaused},
        {"ev1", event_type::stopped, det::stopped_destroyed},
    };
    CHECK(all.pending() == expected.size());
    for (const auto& w : expected) {
      auto ev = co_await all.async_next();
      CHECK(ev.domain.name == w.name);
      CHECK(ev.type == w.type);
      CHECK(ev.detail == w.detail);
    }
    CHECK(all.pending() == 0);

    // Filtered by domain: only "test"'s two.
    CHECK(only_test.pending() == 2);
    auto e1 = co_await only_test.async_next();
    auto e2 = co_await only_test.async_next();
    CHECK(e1.domain.name == "test");
    CHECK(e1.type == event_type::suspended);
    CHECK(e1.domain.id == 1);
    CHECK(e1.domain.uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f");
    CHECK(e2.type == event_type::resumed);
    CHECK(only_test.pending() == 0);
    CHECK(only_test.dropped() == 0);
  });
}

TEST_CASE("events: a waiting reader is woken by a later event", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::event_hub hub;
    auto s = hub.subscribe(ex);
    asio::steady_timer t(ex, 10ms);
    t.async_wait([&](error_code) { hub.publish(ref_of("late"), covirt::event_type::started, 0); });
    auto ev = co_await s.async_next();
    CHECK(ev.domain.name == "late");
    CHECK(ev.type == covirt::event_type::started);
  });
}

TEST_CASE("events: close() ends a pending async_next with eof", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::event_hub hub;
    auto s = hub.subscribe(ex);
    hub.publish(ref_of("queued"), covirt::event_type::defined, 0);
    auto first = co_await s.async_next();
    CHECK(first.domain.name == "queued");

    asio::steady_timer t(ex, 10ms);
    t.async_wait([&](error_code) { s.close(); });
    auto [ec, ev] = co_await s.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == asio::error::eof);
    CHECK_FALSE(s.is_open());
    // And every later call too; publishing after close delivers nothing.
    hub.publish(ref_of("after"), covirt::event_type::defined, 0);
    auto [ec2, ev2] = co_await s.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(ec2 == asio::error::eof);
    CHECK(s.pending() == 0);
  });
}

TEST_CASE("events: closing the connection ends its streams with eof", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    auto s = conn.subscribe();
    asio::steady_timer t(ex, 10ms);
    t.async_wait([&](error_code) {
      conn.async_close([](error_code ec) { CHECK_FALSE(ec); });
    });
    auto [ec, ev] = co_await s.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == asio::error::eof);
  });
}

TEST_CASE("events: a default-constructed stream gives eof at once", "[core][events]") {
  run_coro([](asio::any_io_executor) -> asio::awaitable<void> {
    covirt::event_stream s;
    CHECK_FALSE(s.is_open());
    auto [ec, ev] = co_await s.async_next(asio::as_tuple(asio::use_awaitable));
    CHECK(ec == asio::error::eof);
  });
}

TEST_CASE("events: a pending async_next is cancelled by || with a timer and loses nothing", "[core][events]") {
  using namespace asio::experimental::awaitable_operators;
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::event_hub hub;
    auto s = hub.subscribe(ex);
    asio::steady_timer timer(ex, 20ms);
    auto r = co_await (s.async_next() || timer.async_wait(asio::use_awaitable));
    CHECK(r.index() == 1);  // the timer won; nothing was published
    // The stream is still usable, and an event published now is the next one read.
    hub.publish(ref_of("after-cancel"), covirt::event_type::started, 0);
    CHECK(s.pending() == 1);
    auto ev = co_await s.async_next();
    CHECK(ev.domain.name == "after-cancel");
  });
}

TEST_CASE("events: a pending async_next is cancelled through a cancellation slot", "[core][events]") {
  asio::io_context ioc;
  covirt::event_hub hub;
  auto s = hub.subscribe(ioc.get_executor());
  asio::cancellation_signal sig;
  int calls = 0;
  error_code got;
  s.async_next(asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, covirt::domain_event) {
    ++calls;
    got = ec;
  }));
  ioc.poll();
  CHECK(calls == 0);  // still waiting
  sig.emit(asio::cancellation_type::terminal);
  ioc.restart();
  ioc.run_for(5s);
  CHECK(calls == 1);
  CHECK(got == asio::error::operation_aborted);
  // A later event is not delivered to the cancelled handler; it waits in the queue.
  hub.publish(ref_of("x"), covirt::event_type::defined, 0);
  ioc.restart();
  ioc.run_for(100ms);
  CHECK(calls == 1);
  CHECK(s.pending() == 1);
}

TEST_CASE("events: one reader at a time", "[core][events]") {
  asio::io_context ioc;
  covirt::event_hub hub;
  auto s = hub.subscribe(ioc.get_executor());
  std::vector<error_code> results;
  s.async_next([&](error_code ec, covirt::domain_event) { results.push_back(ec); });
  s.async_next([&](error_code ec, covirt::domain_event) { results.push_back(ec); });
  ioc.poll();
  REQUIRE(results.size() == 1);
  CHECK(results[0] == asio::error::in_progress);
  hub.publish(ref_of("x"), covirt::event_type::defined, 0);
  ioc.restart();
  ioc.poll();
  REQUIRE(results.size() == 2);
  CHECK_FALSE(results[1]);
}

TEST_CASE("events: overflow drops the oldest and counts them", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::event_hub hub;
    auto s = hub.subscribe(ex, "", 3);
    for (int i = 0; i < 5; ++i) hub.publish(ref_of("d" + std::to_string(i)), covirt::event_type::defined, i);
    CHECK(s.pending() == 3);
    CHECK(s.dropped() == 2);
    for (int i = 2; i < 5; ++i) {
      auto ev = co_await s.async_next();
      CHECK(ev.domain.name == "d" + std::to_string(i));
      CHECK(ev.detail == i);
    }
    CHECK(s.pending() == 0);
    CHECK(s.dropped() == 2);
  });
}

TEST_CASE("events: a domain filter on the hub", "[core][events]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::event_hub hub;
    auto web = hub.subscribe(ex, "web");
    auto every = hub.subscribe(ex);
    hub.publish(ref_of("db"), covirt::event_type::started, 0);
    hub.publish(ref_of("web"), covirt::event_type::started, 0);
    hub.publish(ref_of("web2"), covirt::event_type::started, 0);
    CHECK(web.pending() == 1);
    CHECK(every.pending() == 3);
    auto ev = co_await web.async_next();
    CHECK(ev.domain.name == "web");
  });
}

// ---------------------------------------------------------------------------------------------
// Read-only connections

TEST_CASE("read-only: every mutating operation is operation_denied and changes nothing", "[core][readonly]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default", covirt::open_flags::read_only);
    CHECK(conn.is_read_only());
    auto events = conn.subscribe();
    const std::string xml = R"(<domain type='test'><name>ro1</name><memory>1024</memory>
      <vcpu>1</vcpu><os><type>hvm</type></os></domain>)";
    const std::string net_xml = "<network><name>ronet</name><bridge name='virbr9'/></network>";
    auto as_tuple = asio::as_tuple(asio::use_awaitable);

    // Takes what as_tuple gave: (ec) or (ec, value).
    auto denied = [](const auto& answer, const covirt::diagnostics& diag, const char* api) {
      INFO(api);
      CHECK(std::get<0>(answer) == errc::operation_denied);
      CHECK(diag.message() == std::string("read only access prevents ") + api);
    };
    covirt::diagnostics d;
    denied(co_await conn.async_define_xml(xml, d, as_tuple), d, "virDomainDefineXML");
    denied(co_await conn.async_undefine("test", d, as_tuple), d, "virDomainUndefine");
    denied(co_await conn.async_create("test", d, as_tuple), d, "virDomainCreate");
    denied(co_await conn.async_create_xml(xml, 0, d, as_tuple), d, "virDomainCreateXML");
    denied(co_await conn.async_destroy("test", d, as_tuple), d, "virDomainDestroy");
    denied(co_await conn.async_shutdown("test", d, as_tuple), d, "virDomainShutdown");
    denied(co_await conn.async_reboot("test", d, as_tuple), d, "virDomainReboot");
    denied(co_await conn.async_suspend("test", d, as_tuple), d, "virDomainSuspend");
    denied(co_await conn.async_resume("test", d, as_tuple), d, "virDomainResume");
    denied(co_await conn.async_set_memory("test", 1024, 0, d, as_tuple), d, "virDomainSetMemoryFlags");
    denied(co_await conn.async_set_max_memory("test", 1024, d, as_tuple), d, "virDomainSetMaxMemory");
    denied(co_await conn.async_set_vcpus("test", 1, 0, d, as_tuple), d, "virDomainSetVcpusFlags");
    denied(co_await conn.async_set_autostart("test", true, d, as_tuple), d, "virDomainSetAutostart");
    denied(co_await conn.async_define_network(net_xml, d, as_tuple), d, "virNetworkDefineXML");
    denied(co_await conn.async_undefine_network("default", d, as_tuple), d, "virNetworkUndefine");
    denied(co_await conn.async_create_network("default", d, as_tuple), d, "virNetworkCreate");
    denied(co_await conn.async_destroy_network("default", d, as_tuple), d, "virNetworkDestroy");
    denied(co_await conn.async_set_network_autostart("default", true, d, as_tuple), d, "virNetworkSetAutostart");
    // The throwing form reads like virsh -r: "operation forbidden: read only access prevents virDomainDestroy".
    auto t = co_await catch_error(conn.async_destroy("test"));
    CHECK(t.threw);
    CHECK(t.ec == errc::operation_denied);
    CHECK(t.what == "operation forbidden: read only access prevents virDomainDestroy");
    // Refused before the driver: even for a domain that does not exist.
    auto t2 = co_await catch_error(conn.async_destroy("no-such-domain"));
    CHECK(t2.ec == errc::operation_denied);

    // Nothing changed, and read operations work.
    auto doms = co_await conn.async_list_domains(0);
    REQUIRE(doms.size() == 1);
    CHECK(doms[0].name == "test");
    CHECK(doms[0].id == 1);
    auto info = co_await conn.async_get_info("test");
    CHECK(info.state == covirt::domain_state::running);
    CHECK(info.memory_kib == 2097152);
    CHECK(info.max_mem_kib == 8388608);
    CHECK(info.nr_virt_cpu == 2);
    CHECK_FALSE(co_await conn.async_get_autostart("test"));
    CHECK(co_await conn.async_is_persistent("test"));
    auto nets = co_await conn.async_list_networks(0);
    REQUIRE(nets.size() == 1);
    CHECK(nets[0].name == "default");
    CHECK(nets[0].active);
    CHECK(nets[0].persistent);
    CHECK_FALSE(nets[0].autostart);
    auto byid = co_await conn.async_lookup_by_id(1);
    CHECK(byid.name == "test");
    auto xmltext = co_await conn.async_get_xml("test", 0);
    CHECK_THAT(xmltext, Contains("<name>test</name>"));
    auto ni = co_await conn.async_node_get_info();
    CHECK(ni.cpus == 16);
    CHECK(co_await conn.async_get_network_bridge_name("default") == "virbr0");
    CHECK(events.pending() == 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Completion tokens other than use_awaitable

TEST_CASE("tokens: plain callbacks get error_code and diagnostics", "[core][tokens]") {
  asio::io_context ioc;
  covirt::diagnostics open_diag;
  std::optional<covirt::connection> conn;
  int opened = 0;
  covirt::async_open(ioc.get_executor(), "test:///default", 0, open_diag,
                     [&](error_code ec, covirt::connection c) {
                       ++opened;
                       CHECK_FALSE(ec);
                       conn.emplace(std::move(c));
                     });
  ioc.run_for(5s);
  REQUIRE(opened == 1);
  REQUIRE(conn->is_open());

  covirt::diagnostics diag;
  int calls = 0;
  error_code got;
  covirt::domain_ref ref;
  conn->async_lookup_by_name("nope", diag, [&](error_code ec, covirt::domain_ref r) {
    ++calls;
    got = ec;
    ref = r;
  });
  ioc.restart();
  ioc.run_for(5s);
  CHECK(calls == 1);
  CHECK(got == errc::no_domain);
  CHECK_THAT(std::string(diag.message()), Contains("nope"));
  CHECK(ref.name.empty());

  // Success, and a void-valued operation.
  calls = 0;
  conn->async_lookup_by_name("test", [&](error_code ec, covirt::domain_ref r) {
    ++calls;
    CHECK_FALSE(ec);
    CHECK(r.id == 1);
  });
  error_code susp_ec = errc::internal_error;
  conn->async_suspend("test", [&](error_code ec) {
    ++calls;
    susp_ec = ec;
  });
  ioc.restart();
  ioc.run_for(5s);
  CHECK(calls == 2);
  CHECK_FALSE(susp_ec);

  // Without diagnostics the code still arrives.
  error_code no_diag_ec;
  conn->async_destroy("nope", [&](error_code ec) { no_diag_ec = ec; });
  // And an open() failure with a callback and no diagnostics.
  error_code open_ec;
  covirt::async_open(ioc.get_executor(), "bogusdrv:///", 0, [&](error_code ec, covirt::connection) { open_ec = ec; });
  ioc.restart();
  ioc.run_for(5s);
  CHECK(no_diag_ec == errc::no_domain);
  CHECK(open_ec == errc::no_connect);
}

TEST_CASE("tokens: as_tuple(use_awaitable) and deferred", "[core][tokens]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    covirt::diagnostics diag;
    auto [ec, info] = co_await conn.async_get_info("missing", diag, asio::as_tuple(asio::use_awaitable));
    CHECK(ec == errc::no_domain);
    CHECK_THAT(std::string(diag.message()), Contains("missing"));
    CHECK(info.max_mem_kib == 0);

    auto [ec2, info2] = co_await conn.async_get_info("test", asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(ec2);
    CHECK(info2.max_mem_kib == 8388608);

    // deferred: nothing happens until the deferred operation is launched.
    auto events = conn.subscribe("test");
    auto op = conn.async_suspend("test", diag, asio::deferred);
    co_await asio::post(ex, asio::use_awaitable);
    auto st = co_await conn.async_get_state("test");
    CHECK(st.state == covirt::domain_state::running);
    auto [ec3] = co_await std::move(op)(asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(ec3);
    st = co_await conn.async_get_state("test");
    CHECK(st.state == covirt::domain_state::paused);
    CHECK(events.pending() == 1);

    covirt::diagnostics d2;
    auto op2 = conn.async_lookup_by_id(77, d2, asio::deferred);
    auto [ec4, ref] = co_await std::move(op2)(asio::as_tuple(asio::use_awaitable));
    CHECK(ec4 == errc::no_domain);
    CHECK_THAT(std::string(d2.message()), Contains("77"));

    // open() with as_tuple and deferred.
    auto [oec, c2] = co_await covirt::async_open(ex, "test:///default", covirt::open_flags::read_only,
                                                 asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(oec);
    CHECK(c2.is_read_only());
    auto oop = covirt::async_open(ex, "test:///default", 0, asio::deferred);
    auto [oec2, c3] = co_await std::move(oop)(asio::as_tuple(asio::use_awaitable));
    CHECK_FALSE(oec2);
    CHECK(c3.is_open());
  });
}

TEST_CASE("tokens: cancelling an operation through its slot does not crash", "[core][tokens]") {
  asio::io_context ioc;
  std::optional<covirt::connection> conn;
  covirt::async_open(ioc.get_executor(), "test:///default", 0,
                     [&](error_code ec, covirt::connection c) { conn.emplace(std::move(c)); });
  ioc.run_for(5s);
  REQUIRE(conn);
  REQUIRE(conn->is_open());

  // Cancelled before it could run, and again right after it started: exactly one completion,
  // either success or operation_aborted, never internal_error.
  for (int when = 0; when < 2; ++when) {
    asio::cancellation_signal sig;
    covirt::diagnostics diag;
    int calls = 0;
    error_code got;
    conn->async_get_info("test", diag, asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, covirt::domain_info) {
      ++calls;
      got = ec;
    }));
    if (when == 0) sig.emit(asio::cancellation_type::terminal);
    else asio::post(ioc, [&] { sig.emit(asio::cancellation_type::terminal); });
    ioc.restart();
    ioc.run_for(5s);
    INFO("when " << when << " ec " << got.message());
    CHECK(calls == 1);
    CHECK((!got || got == asio::error::operation_aborted || got == errc::operation_aborted));
  }
  // The connection is still usable after that.
  int calls = 0;
  conn->async_get_state("test", [&](error_code ec, covirt::domain_state_info st) {
    ++calls;
    CHECK_FALSE(ec);
    CHECK(st.state == covirt::domain_state::running);
  });
  ioc.restart();
  ioc.run_for(5s);
  CHECK(calls == 1);
}

TEST_CASE("tokens: an operation raced against a timer with ||", "[core][tokens]") {
  using namespace asio::experimental::awaitable_operators;
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    asio::steady_timer timer(ex, 5s);
    auto r = co_await (conn.async_get_info("test") || timer.async_wait(asio::use_awaitable));
    REQUIRE(r.index() == 0);
    CHECK(std::get<0>(r).max_mem_kib == 8388608);
  });
}

TEST_CASE("connection: a default-constructed connection is not open", "[core][connection]") {
  run_coro([](asio::any_io_executor) -> asio::awaitable<void> {
    covirt::connection c;
    CHECK_FALSE(c.is_open());
    covirt::diagnostics diag;
    auto [ec, ref] = co_await c.async_lookup_by_name("test", diag, asio::as_tuple(asio::use_awaitable));
    CHECK(ec == errc::invalid_conn);
  });
}

TEST_CASE("op_timeout: a wait that outlives its deadline ends as operation_timeout", "[core][timeout]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    covirt::event_stream ev = conn.subscribe("nobody");  // nothing will ever come
    auto started = std::chrono::steady_clock::now();
    covirt::op_timeout deadline{ex, 50ms};
    auto [ec, event] = co_await ev.async_next(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    CHECK(deadline.expired());
    CHECK(ec == asio::error::operation_aborted);
    CHECK(deadline.translate(ec) == errc::operation_timeout);
    CHECK(std::chrono::steady_clock::now() - started >= 50ms);
    // The stream is still usable: an event after the timeout is delivered.
    co_await conn.async_suspend("test");
    CHECK(ev.pending() == 0);  // filtered: not for "nobody"
  });
}

TEST_CASE("op_timeout: an operation that finishes in time is not touched", "[core][timeout]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await covirt::async_open(ex, "test:///default");
    covirt::op_timeout deadline{ex, 5s};
    auto [ec, info] = co_await conn.async_get_info("test", asio::as_tuple(deadline.bind(asio::use_awaitable)));
    CHECK_FALSE(ec);
    CHECK_FALSE(deadline.expired());
    CHECK(deadline.translate(ec) == error_code{});
    CHECK(info.nr_virt_cpu == 2);
  });
}

TEST_CASE("job_queue: one holder, waiters served in order, a cancelled waiter leaves the queue", "[core][jobs]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::detail::job_queue job;
    bool first = co_await job.acquire();
    CHECK(first);  // free: taken at once
    CHECK(job.held());
    CHECK_FALSE(job.try_take());
    std::vector<std::string> order;
    asio::cancellation_signal cancel_b;
    auto waiter = [&](std::string name) -> asio::awaitable<void> {
      bool got = co_await job.acquire();
      order.push_back(name + (got ? " got it" : " gave up"));
      if (got) job.release();
    };
    int done = 0;
    auto count = [&](std::exception_ptr) { ++done; };
    asio::co_spawn(ex, waiter("b"), asio::bind_cancellation_slot(cancel_b.slot(), count));
    asio::co_spawn(ex, waiter("c"), count);
    asio::co_spawn(ex, waiter("d"), count);
    auto settle = [&]() -> asio::awaitable<void> {  // lets the spawned waiters reach their wait
      for (int i = 0; i < 4; ++i) co_await asio::post(ex, asio::use_awaitable);
    };
    co_await settle();
    CHECK(order.empty());  // all three wait for the holder
    cancel_b.emit(asio::cancellation_type::terminal);
    co_await settle();
    REQUIRE(order == std::vector<std::string>{"b gave up"});
    job.release();  // to c, which passes it to d
    co_await settle();
    CHECK(order == std::vector<std::string>{"b gave up", "c got it", "d got it"});
    CHECK(done == 3);
    CHECK_FALSE(job.held());  // d released it and nobody waits
  });
}

// co_await cannot stand inside Catch's assertion macros.
#define CHECK_AWAIT(expr)          \
  do {                             \
    bool ok_ = co_await (expr);    \
    CHECK(ok_);                    \
  } while (0)

namespace {
struct list_dom : covirt::detail::domain_obj {
  int changes = 0;
  void changed() { ++changes; }
};
covirt::domain_config named(std::string name, std::string uuid, int vcpus = 1) {
  covirt::domain_config d;
  d.name = std::move(name);
  d.uuid = std::move(uuid);
  d.vcpus = vcpus;
  return d;
}
}  // namespace

TEST_CASE("domain_list: define, run, redefine, undefine and stop follow libvirt's rules and events", "[core][domlist]") {
  run_coro([](asio::any_io_executor ex) -> asio::awaitable<void> {
    using covirt::event_type;
    namespace ed = covirt::event_detail;
    covirt::event_hub hub;
    auto ev = hub.subscribe(ex);
    covirt::detail::domain_list<list_dom> doms(hub);
    // The next event is (type, detail): events are queued when published, so one is pending.
    auto next_event_is = [&](std::pair<event_type, int> want) -> asio::awaitable<bool> {
      if (ev.pending() == 0) co_return false;
      auto e = co_await ev.async_next(asio::use_awaitable);
      co_return std::pair{e.type, e.detail} == want;
    };
    const std::string u1 = "11111111-2222-3333-4444-555555555555";

    auto d = doms.add(named("a", u1), true);
    CHECK(doms.find("a") == d);
    CHECK(doms.find_uuid(u1) == d);
    CHECK(ev.pending() == 0);  // add emits nothing: the driver says when the domain is there

    // A run keeps the persistent definition aside; a redefine while running is for the next boot.
    doms.begin_run(*d);
    d->id = doms.take_id();
    d->state = covirt::domain_state::running;
    CHECK(d->id == 1);
    doms.redefine(*d, named("a", u1, 4));
    CHECK(d->def.vcpus == 1);
    CHECK(d->persistent_def().vcpus == 4);
    CHECK_AWAIT(next_event_is(std::pair{event_type::defined, int(ed::defined_updated)}));
    doms.stopped(*d, covirt::reason::destroyed, ed::stopped_destroyed);
    CHECK(d->def.vcpus == 4);
    CHECK_FALSE(d->next);
    CHECK(d->id == -1);
    CHECK(d->reason == covirt::reason::destroyed);
    CHECK_AWAIT(next_event_is(std::pair{event_type::stopped, int(ed::stopped_destroyed)}));
    CHECK(doms.find("a") == d);  // persistent: still listed

    // run_instead, then a failed start: all as it was.
    doms.run_instead(*d, named("a", u1, 8));
    CHECK(d->def.vcpus == 8);
    doms.abandon_run(*d, false);
    CHECK(d->def.vcpus == 4);
    CHECK_FALSE(d->next);

    // Undefined while running: transient, and gone when it stops.
    doms.begin_run(*d);
    d->id = doms.take_id();
    CHECK(d->id == 2);  // ids only grow
    doms.undefine(*d);
    CHECK_FALSE(d->persistent);
    CHECK(doms.find("a") == d);
    CHECK_AWAIT(next_event_is(std::pair{event_type::undefined, int(ed::undefined_removed)}));
    doms.stopped(*d, covirt::reason::shutdown, ed::stopped_shutdown);
    CHECK_AWAIT(next_event_is(std::pair{event_type::stopped, int(ed::stopped_shutdown)}));
    CHECK(doms.find("a") == nullptr);
    CHECK(doms.find_uuid(u1) == nullptr);
    CHECK(d->changes >= 3);  // the driver's caches were told each time

    // Undefined while shut off: gone at once. A failed first start of a new one: gone too.
    auto b = doms.add(named("b", "21111111-2222-3333-4444-555555555555"), true);
    doms.undefine(*b);
    CHECK(doms.size() == 0);
    auto c = doms.add(named("c", "31111111-2222-3333-4444-555555555555"), false, true);
    CHECK(c->job.held());
    doms.abandon_run(*c, true);
    CHECK(doms.size() == 0);
    doms.saw_id(41);
    CHECK(doms.take_id() == 42);
  });
}

TEST_CASE("split_host_port: a migration URI's HOST[:PORT], IPv6 in brackets, bad ports and hosts named", "[core][uri]") {
  using covirt::detail::split_host_port;
  covirt::diagnostics diag;
  auto a = split_host_port("host.example:49152", "tcp://host.example:49152", diag);
  REQUIRE(a.has_value());
  CHECK(a->host == "host.example");
  CHECK(a->port == "49152");
  CHECK_FALSE(a->empty_port);
  auto b = split_host_port("[fd00::1]:8002", "xenmigr://[fd00::1]:8002", diag);
  REQUIRE(b.has_value());
  CHECK(b->host == "fd00::1");
  CHECK(b->port == "8002");
  auto c = split_host_port("h", "h", diag);
  REQUIRE(c.has_value());
  CHECK(c->host == "h");
  CHECK(c->port.empty());
  auto d = split_host_port("h:", "h:", diag);
  REQUIRE(d.has_value());
  CHECK(d->empty_port);
  auto e = split_host_port(":7", ":7", diag);
  REQUIRE(e.has_value());
  CHECK(e->host.empty());
  CHECK(e->port == "7");
  for (const char* bad : {"h:65536", "h:12x", "h:123456"}) {
    auto r = split_host_port(bad, bad, diag);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == covirt::errc::invalid_arg);
    CHECK(std::string(diag.message()) == "migration URI '" + std::string(bad) + "' has a bad port");
  }
  for (const char* bad : {"[fd00::1", "[fd00::1]x"}) {
    auto r = split_host_port(bad, bad, diag);
    REQUIRE_FALSE(r.has_value());
    CHECK(std::string(diag.message()) == "migration URI '" + std::string(bad) + "' has a bad host");
  }
}

// The QEMU driver's cgroup layer over a cgroup v2 hierarchy of its own (a folder with the
// files cgroupfs would have): which file each setting goes to, in v2's syntax. This host's
// controllers are v1; the real v1 files are tested in tests/integration/qemu_tuning.cpp.
TEST_CASE("qemu cgroups: v2 settings go to v2's files in v2's syntax", "[cgroup]") {
  namespace fs = std::filesystem;
  using covirt::qemu::cgroup_host;
  using covirt::qemu::guest_cgroup;
  using covirt::test_support::slurp;
  std::string t = (fs::temp_directory_path() / "covirt-cg2-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  fs::path root = t;
  cgroup_host h;
  h.v2 = root;
  h.v2_controllers = {"cpu", "cpuset", "memory", "io"};
  CHECK(h.version_of("cpu") == 2);
  CHECK(h.version_of("cpuacct") == 2);
  CHECK(h.version_of("blkio") == 2);
  CHECK(h.version_of("hugetlb") == 0);
  covirt::diagnostics diag;
  auto g = guest_cgroup::create(h, "/machine/x", "vm", 2, {"cpu", "memory", "blkio"}, diag);
  INFO(diag.message());
  REQUIRE(g.has_value());
  CHECK(g->version() == 2);
  fs::path dir = root / "machine" / "x" / "vm.covirt-qemu";
  CHECK(g->dir("memory") == dir);
  CHECK(g->dir("cpu", "vcpu1") == dir / "vcpu1");
  CHECK(fs::is_directory(dir / "emulator"));
  CHECK(fs::is_directory(dir / "vcpu1"));
  auto put = [](const fs::path& p, const std::string& v) { std::ofstream(p) << v; };
  for (const char* f : {"cpu.weight", "memory.max", "memory.high", "memory.swap.max", "io.max", "cgroup.procs"}) put(dir / f, "");
  put(dir / "io.weight", "default 100\n");
  put(dir / "vcpu0" / "cpu.max", "max 100000\n");
  put(dir / "vcpu0" / "cgroup.threads", "");
  put(dir / "emulator" / "cgroup.procs", "");
  CHECK(g->set_shares(500, diag).has_value());
  CHECK(slurp(dir / "cpu.weight") == "500");
  CHECK(g->set_bandwidth("vcpu0", std::nullopt, 50000, diag).has_value());
  CHECK(slurp(dir / "vcpu0" / "cpu.max") == "50000 100000");
  auto bw = g->bandwidth("vcpu0", diag);
  REQUIRE(bw.has_value());
  CHECK(bw->period == 100000);
  CHECK(bw->quota == 50000);
  CHECK(g->set_bandwidth("vcpu0", 20000, -1, diag).has_value());
  CHECK(slurp(dir / "vcpu0" / "cpu.max") == "max 20000");
  using m = guest_cgroup::mem_limit;
  CHECK(g->set_memory_limit(m::hard, 262144, diag).has_value());
  CHECK(slurp(dir / "memory.max") == std::to_string(256ull << 20));
  CHECK(g->set_memory_limit(m::soft, covirt::memory_unlimited_kib, diag).has_value());
  CHECK(slurp(dir / "memory.high") == "max");
  auto soft = g->memory_limit(m::soft, diag);
  REQUIRE(soft.has_value());
  CHECK(*soft == covirt::memory_unlimited_kib);
  CHECK(g->set_io_weight(300, diag).has_value());
  CHECK(slurp(dir / "io.weight") == "default 300");
  using io = guest_cgroup::io_value;
  CHECK(g->set_device_io(io::read_bps, "7:0", 1048576, diag).has_value());
  CHECK(slurp(dir / "io.max") == "7:0 rbps=1048576");
  put(dir / "io.max", "7:0 rbps=1048576 wbps=max riops=max wiops=300\n");
  auto wiops = g->device_io(io::write_iops, diag);
  REQUIRE(wiops.has_value());
  CHECK(wiops->at("7:0") == 300);
  CHECK(g->add_process(4242, diag).has_value());
  CHECK(slurp(dir / "emulator" / "cgroup.procs") == "4242");
  CHECK(g->add_vcpu_thread(0, 4243, diag).has_value());
  CHECK(slurp(dir / "vcpu0" / "cgroup.threads") == "4243");
  // A file the kernel would not have: the error names it.
  auto no = g->set_cpus("vcpu1", "0", diag);
  REQUIRE_FALSE(no.has_value());
  CHECK(std::string(diag.message()).find((dir / "vcpu1" / "cpuset.cpus").string()) != std::string::npos);

  // A controller the host lacks, needed by the guest's tuning: named; not needed: skipped.
  cgroup_host bare;
  bare.v2 = root;
  auto missing = guest_cgroup::create(bare, "/machine/y", "vm", 1, {"memory"}, diag);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error() == covirt::errc::config_unsupported);
  CHECK(std::string(diag.message()) == "the host has no cgroup controller 'memory', which this domain's tuning needs");
  auto skipped = guest_cgroup::create(bare, "/machine/y", "vm", 1, {}, diag);
  REQUIRE(skipped.has_value());
  CHECK(skipped->empty());
  std::error_code ec;
  fs::remove_all(root, ec);
}
