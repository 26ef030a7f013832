// The remote driver's transports and wire, against real peers: ssh through Debian's
// openssh-server, examples/fleet on a private libvirtd, and the packets virsh and libvirtd
// exchange, recorded by a relay and checked against covirt's codec.
//
// No co_await inside CHECK or REQUIRE (see remote_libvirtd.cpp).
#include <covirt/connection.hpp>
#include <covirt/remote/driver.hpp>

#include "common/libvirtd.hpp"
#include "common/remote_helpers.hpp"
#include "common/prelude.hpp"
#include "common/run.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace {

// Debian's sshd on 127.0.0.1 for one test: its own host key, config and authorized key (made
// now), nothing of the system's sshd configuration touched.
struct private_sshd {
  std::string dir;
  int port = 0;
  int pid = -1;
  private_sshd() {
    char tmpl[] = "/tmp/covirt-sshd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    dir = tmpl;
    port = 22000 + ::getpid() % 1000;
    int st = 0;
    shell("ssh-keygen -q -t ed25519 -N '' -f " + dir + "/host_key && ssh-keygen -q -t ed25519 -N '' -f " + dir +
              "/id && cp " + dir + "/id.pub " + dir + "/authorized_keys && mkdir -p /run/sshd 2>&1",
          &st);
    REQUIRE(st == 0);
    std::ofstream(dir + "/sshd_config") << "ListenAddress 127.0.0.1\nPort " << port << "\nHostKey " << dir
                                        << "/host_key\nAuthorizedKeysFile " << dir
                                        << "/authorized_keys\nPermitRootLogin prohibit-password\n"
                                           "PasswordAuthentication no\nStrictModes no\nUsePAM no\nPidFile "
                                        << dir << "/pid\n";
    const std::string out = shell("/usr/sbin/sshd -f " + dir + "/sshd_config -E " + dir + "/log 2>&1", &st);
    INFO(out << slurp(dir + "/log"));
    REQUIRE(st == 0);  // sshd forks into the background once it listens
    // The daemon writes its pid file once it has forked; 10 s covers a loaded machine.
    for (int i = 0; i < 1000 && pid <= 0; ++i) {
      std::ifstream(dir + "/pid") >> pid;
      if (pid <= 0) std::this_thread::sleep_for(10ms);
    }
    INFO(slurp(dir + "/log"));
    REQUIRE(pid > 0);
  }
  ~private_sshd() {
    if (pid > 0) ::kill(pid, SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

TEST_CASE("remote: test+ssh through Debian's openssh to 127.0.0.1, netcat on the daemon's socket",
          "[remote][libvirtd][ssh]") {
  private_libvirtd daemon;
  private_sshd sshd;
  const std::string base = "test+ssh://root@127.0.0.1:" + std::to_string(sshd.port) + "/default?keyfile=" + sshd.dir +
                           "/id&no_verify=1&known_hosts=" + sshd.dir + "/known_hosts";
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, base + "&netcat=nc&socket=" + daemon.socket());
    CHECK(c.driver_as<remote::driver>()->rpc().peer() == "ssh root@127.0.0.1");
    auto doms = co_await c.async_list_domains(0);
    REQUIRE(doms.size() == 1);
    CHECK(doms[0].name == "test");
    auto events = c.subscribe();
    co_await c.async_suspend("test");
    auto e = co_await next_event(events);
    CHECK(e.type == event_type::suspended);
    co_await c.async_close();

    // A key the host does not know: ssh refuses, and what it said is in the error.
    std::string m;
    auto refused = co_await code_of(
        covirt::async_open(ex, "test+ssh://root@127.0.0.1:" + std::to_string(sshd.port) +
                                   "/default?keyfile=/nonexistent&no_verify=1&netcat=nc&known_hosts=" + sshd.dir +
                                   "/known_hosts&socket=" + daemon.socket()),
        &m);
    CHECK(refused == errc::system_error);
    CHECK(m.find("Permission denied") != std::string::npos);
  }, 60s);
}

namespace {
// Polls `path` until it holds `text` (the bound guards a fleet that never prints it).
bool file_shows(const std::string& path, const std::string& text, std::chrono::seconds limit = 30s) {
  const auto until = clock_type::now() + limit;
  while (clock_type::now() < until) {
    if (slurp(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}
}  // namespace

TEST_CASE("remote: examples/fleet lists every host's domains and follows their events", "[remote][libvirtd][fleet]") {
  private_libvirtd daemon;
  const char* fleet = std::getenv("COVIRT_FLEET");
  REQUIRE(fleet);
  const std::string u = "'" + daemon.uri() + "'";
  int st = 0;
  const std::string once = shell(std::string(fleet) + " --once " + u + " " + u + " " + u, &st);
  INFO(once);
  CHECK(st == 0);
  for (const char* host : {"\n1 test+unix", "\n2 test+unix", "\n3 test+unix"}) CHECK(once.find(host) != std::string::npos);

  // Live: two hosts (the same daemon twice); virsh suspends test, both rows follow.
  const std::string out = daemon.dir() + "/fleet.out";
  const std::string pid = shell(std::string(fleet) + " --events 2 " + u + " " + u + " >" + out + " 2>&1 & echo $!");
  REQUIRE(file_shows(out, "running"));
  daemon.virsh("suspend test", &st);
  REQUIRE(st == 0);
  CHECK(file_shows(out, "test Suspended"));
  CHECK(file_shows(out, "2 test+unix:///default?socket=" + daemon.socket() + " test                     paused"));
  ::kill(std::stoi(pid), SIGTERM);
}

namespace {

// What passed through a relay between virsh and libvirtd, each direction as it went.
struct recording {
  std::string to_daemon, from_daemon;
};

// Relays one connection from `listen_path` to `daemon_path` until either side closes.
asio::awaitable<void> relay(asio::local::stream_protocol::socket& from, asio::local::stream_protocol::socket& to,
                            std::string& record) {
  char buf[65536];
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), tuple);
    if (ec) break;
    record.append(buf, n);
    auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf, n), tuple);
    if (wec) break;
  }
  error_code ignore;
  to.shutdown(asio::socket_base::shutdown_send, ignore);
}

// Every packet of `bytes`, split by the client's own reader.
std::vector<std::string> packets_of(const std::string& bytes) {
  remote::packet_reader rd;
  std::vector<std::string> out;
  auto [p, room] = rd.prepare();
  std::size_t at = 0;
  while (at < bytes.size()) {
    auto [buf, n] = rd.prepare();
    const std::size_t k = std::min(n, bytes.size() - at);
    std::memcpy(buf, bytes.data() + at, k);
    rd.commit(k);
    at += k;
    remote::packet_view v;
    diagnostics d;
    while (rd.next(v, d) == remote::packet_reader::status::packet)
      out.push_back(remote::encode_packet(v.head, v.payload));
  }
  (void)p;
  (void)room;
  CHECK(rd.buffered() == 0);
  return out;
}

// Decodes `payload` as T and encodes it again: the same bytes, or the codec is wrong about T.
template <class T>
bool round_trips(std::string_view payload) {
  diagnostics d;
  auto v = remote::xdr::decode<T>(payload, "recorded message", d);
  INFO(d.message());
  return v.has_value() && remote::xdr::encode(*v) == payload;
}

}  // namespace

TEST_CASE("remote: packets recorded between virsh and libvirtd decode and re-encode byte for byte",
          "[remote][libvirtd][xdr]") {
  private_libvirtd daemon;
  const std::string proxy = daemon.dir() + "/proxy-sock";
  recording rec;
  asio::io_context ioc;
  asio::local::stream_protocol::acceptor acc(ioc, asio::local::stream_protocol::endpoint(proxy));
  asio::local::stream_protocol::socket client(ioc), server(ioc);
  int relays = 0;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    co_await acc.async_accept(client, asio::use_awaitable);
    co_await server.async_connect(asio::local::stream_protocol::endpoint(daemon.socket()), asio::use_awaitable);
    auto done = [&](std::exception_ptr) { ++relays; };
    asio::co_spawn(ioc, relay(client, server, rec.to_daemon), done);
    asio::co_spawn(ioc, relay(server, client, rec.from_daemon), done);
  }, asio::detached);
  std::thread io([&] { ioc.run_for(60s); });  // virsh blocks this thread; the relay runs on its own
  int st = 0;
  const std::string out =
      shell("virsh -q -c 'test+unix:///default?socket=" + proxy + "' 'list --all; dominfo test; domstate --reason test; "
            "suspend test; resume test; net-list --all; nodeinfo' 2>&1", &st);
  io.join();
  INFO(out);
  REQUIRE(st == 0);
  REQUIRE(relays == 2);

  // Calls: every header decodes; every argument struct covirt has for the procedure round-trips.
  std::map<std::uint32_t, std::int32_t> proc_of_serial;
  int calls_checked = 0;
  for (const auto& pkt : packets_of(rec.to_daemon)) {
    diagnostics d;
    auto v = remote::decode_body(std::string_view(pkt).substr(4), d);
    REQUIRE(v.has_value());
    if (v->head.type != remote::msg_type::call) continue;
    CHECK(v->head.prog == remote::remote_program);
    proc_of_serial[v->head.serial] = v->head.proc;
    const auto p = static_cast<remote::proc>(v->head.proc);
    bool known = true;
    switch (p) {
      case remote::proc::connect_open: {
        CHECK(round_trips<remote::connect_open_args>(v->payload));
        auto a = remote::xdr::decode<remote::connect_open_args>(v->payload, "open", d);
        CHECK(a->name == std::optional<std::string>("test:///default"));  // the URI without its transport
        break;
      }
      case remote::proc::connect_supports_feature: CHECK(round_trips<remote::int_args>(v->payload)); break;
      case remote::proc::connect_list_all_domains:
      case remote::proc::connect_list_all_networks: CHECK(round_trips<remote::list_all_args>(v->payload)); break;
      case remote::proc::domain_lookup_by_name:
      case remote::proc::network_lookup_by_name: CHECK(round_trips<remote::str_args>(v->payload)); break;
      case remote::proc::domain_get_info:
      case remote::proc::domain_suspend:
      case remote::proc::domain_resume:
      case remote::proc::domain_is_persistent:
      case remote::proc::domain_get_autostart: CHECK(round_trips<remote::dom_args>(v->payload)); break;
      case remote::proc::domain_get_state: CHECK(round_trips<remote::dom_flags_args>(v->payload)); break;
      case remote::proc::network_is_active:
      case remote::proc::network_is_persistent:
      case remote::proc::network_get_autostart: CHECK(round_trips<remote::net_args>(v->payload)); break;
      default: known = false;
    }
    calls_checked += known;
  }
  CHECK(calls_checked >= 10);

  // Replies and events from the daemon: the same, by the procedure of the call they answer.
  int replies_checked = 0;
  for (const auto& pkt : packets_of(rec.from_daemon)) {
    diagnostics d;
    auto v = remote::decode_body(std::string_view(pkt).substr(4), d);
    REQUIRE(v.has_value());
    if (v->head.type != remote::msg_type::reply || v->head.status != remote::msg_status::ok) continue;
    CHECK(proc_of_serial.count(v->head.serial) == 1);
    CHECK(proc_of_serial[v->head.serial] == v->head.proc);
    bool known = true;
    switch (static_cast<remote::proc>(v->head.proc)) {
      case remote::proc::auth_list: CHECK(round_trips<remote::auth_list_ret>(v->payload)); break;
      case remote::proc::connect_supports_feature:
      case remote::proc::domain_is_persistent:
      case remote::proc::domain_get_autostart:
      case remote::proc::network_is_active:
      case remote::proc::network_is_persistent:
      case remote::proc::network_get_autostart: CHECK(round_trips<remote::int_ret>(v->payload)); break;
      case remote::proc::connect_list_all_domains:
        CHECK(round_trips<remote::connect_list_all_domains_ret>(v->payload));
        break;
      case remote::proc::connect_list_all_networks:
        CHECK(round_trips<remote::connect_list_all_networks_ret>(v->payload));
        break;
      case remote::proc::domain_lookup_by_name: CHECK(round_trips<remote::dom_ret>(v->payload)); break;
      case remote::proc::network_lookup_by_name: CHECK(round_trips<remote::net_ret>(v->payload)); break;
      case remote::proc::domain_get_info: CHECK(round_trips<remote::domain_get_info_ret>(v->payload)); break;
      case remote::proc::domain_get_state: CHECK(round_trips<remote::domain_get_state_ret>(v->payload)); break;
      case remote::proc::node_get_info: CHECK(round_trips<remote::node_get_info_ret>(v->payload)); break;
      case remote::proc::connect_open:
      case remote::proc::domain_suspend:
      case remote::proc::domain_resume: CHECK(v->payload.empty()); break;
      default: known = false;
    }
    replies_checked += known;
  }
  CHECK(replies_checked >= 10);
}
