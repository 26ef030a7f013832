// covirt: the remote client's transports. Every one ends as a connected stream socket: a unix
// socket, a TCP connection, or for ssh one end of a socketpair whose other end is the stdin and
// stdout of the system's ssh client (Boost.Process), which runs the remote helper on the host.
// Boost.Process v2 on std::filesystem (Debian has no Boost.Filesystem 1.81 library); in 1.81 that
// mode forgets the Boost headers its own names come from, so they are included first.
#define BOOST_PROCESS_USE_STD_FS 1
#include <boost/io/quoted.hpp>
#include <boost/optional.hpp>
#include <boost/type_traits.hpp>

#include "client_state.hpp"

#include "../detail/shell_quote.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/connect_pipe.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/writable_pipe.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/stdio.hpp>

#include <charconv>
#include <cstdlib>

#include <unistd.h>

namespace covirt::remote {

namespace bp = boost::process::v2;

namespace {

constexpr auto tuple_token = asio::as_tuple(asio::use_awaitable);
constexpr const char* default_socket = "/var/run/libvirt/libvirt-sock";
constexpr const char* default_socket_ro = "/var/run/libvirt/libvirt-sock-ro";
constexpr unsigned short default_tcp_port = 16509;

std::optional<unsigned> number_param(const uri& u, std::string_view key, diagnostics& diag, bool& bad) {
  auto v = u.param(key);
  if (!v) return std::nullopt;
  unsigned n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size() || n > 3600) {
    bad = true;
    fail(diag, errc::invalid_arg, "URI parameter " + std::string(key) + "='" + *v + "' is not a number of 0..3600");
  }
  return n;
}

// `name` itself if it has a '/', else the first executable of that name in PATH; "" if none.
// (Boost.Process's environment::find_executable does not compile with std::filesystem in 1.81.)
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/bin:/bin";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// The ssh client and what it reports on stderr (kept short), alive as long as the connection.
struct ssh_child {
  asio::readable_pipe err;
  std::string said;
  bp::process proc;
  ssh_child(asio::readable_pipe err_r, const std::string& exe, const std::vector<std::string>& args,
            asio::local::stream_protocol::socket& peer_end, asio::writable_pipe& err_w)
      : err(std::move(err_r)), proc(err.get_executor(), exe, args, bp::process_stdio{peer_end, peer_end, err_w}) {}
};

asio::awaitable<void> collect_stderr(std::shared_ptr<ssh_child> c) {
  char buf[512];
  for (;;) {
    auto [ec, n] = co_await c->err.async_read_some(asio::buffer(buf), tuple_token);
    if (ec) co_return;
    if (c->said.size() < 2048) c->said.append(buf, std::min<std::size_t>(n, 2048 - c->said.size()));
  }
}

}  // namespace

asio::awaitable<result<void>> client::connect(const uri& u, bool read_only, diagnostics& diag) {
  auto self = s_;
  if (!self) co_return fail(diag, errc::invalid_conn, "the remote client was moved from");
  auto& s = *self;
  if (s.open || s.closed) co_return fail(diag, errc::operation_invalid, "this remote client was already connected; use a new one");

  bool bad = false;
  if (auto n = number_param(u, "keepalive_interval", diag, bad)) s.opts.keepalive_interval = std::chrono::seconds(*n);
  if (auto n = number_param(u, "keepalive_count", diag, bad)) s.opts.keepalive_count = *n;
  if (bad) co_return failure(make_error_code(errc::invalid_arg));

  std::string transport = u.transport;
  if (transport.empty()) transport = u.host.empty() ? "unix" : "tls";
  const std::string sock_path = u.param("socket").value_or(read_only ? default_socket_ro : default_socket);

  if (transport == "unix") {
    if (!u.host.empty())
      co_return fail(diag, errc::invalid_arg, "the unix transport takes no host: '" + u.original + "'");
    s.peer = sock_path;
    asio::local::stream_protocol::endpoint ep;
    try {
      ep = asio::local::stream_protocol::endpoint(sock_path);
    } catch (const std::exception& e) {
      co_return fail(diag, errc::invalid_arg, "invalid libvirtd socket path '" + sock_path + "': " + e.what());
    }
    auto [ec] = co_await s.sock.async_connect(asio::generic::stream_protocol::endpoint(ep), tuple_token);
    if (ec) co_return fail(diag, errc::no_connect, "cannot connect to libvirtd socket '" + sock_path + "': " + ec.message());
  } else if (transport == "tcp") {
    const std::string host = u.host.empty() ? "localhost" : u.host;
    const unsigned short port = u.port.value_or(default_tcp_port);
    s.peer = host + ":" + std::to_string(port);
    asio::ip::tcp::resolver res(s.ex);
    auto [rec, eps] = co_await res.async_resolve(host, std::to_string(port), tuple_token);
    if (rec) co_return fail(diag, errc::no_connect, "cannot resolve libvirtd host '" + host + "': " + rec.message());
    error_code last = asio::error::host_not_found;
    for (const auto& e : eps) {
      error_code ignore;
      s.sock.close(ignore);
      auto [cec] = co_await s.sock.async_connect(asio::generic::stream_protocol::endpoint(e.endpoint()), tuple_token);
      last = cec;
      if (!cec) break;
    }
    if (last) co_return fail(diag, errc::no_connect, "cannot connect to libvirtd at " + s.peer + ": " + last.message());
    error_code ignore;
    s.sock.set_option(asio::ip::tcp::no_delay(true), ignore);
  } else if (transport == "ssh") {
    if (u.host.empty()) co_return fail(diag, errc::invalid_arg, "the ssh transport needs a host: '" + u.original + "'");
    std::vector<std::string> args;
    if (u.port) args.insert(args.end(), {"-p", std::to_string(*u.port)});
    if (!u.user.empty()) args.insert(args.end(), {"-l", u.user});
    if (auto k = u.param("keyfile")) args.insert(args.end(), {"-i", *k});
    if (u.param("no_verify").value_or("0") != "0") args.insert(args.end(), {"-o", "StrictHostKeyChecking=no"});
    if (auto k = u.param("known_hosts")) args.insert(args.end(), {"-o", "UserKnownHostsFile=" + *k});
    // No prompt can be answered from here: fail instead of waiting for a password.
    args.insert(args.end(), {"-T", "-e", "none", "-o", "BatchMode=yes", "--", u.host});
    using covirt::detail::shell_quote;
    std::string remote;
    if (auto nc = u.param("netcat")) {
      remote = shell_quote(*nc) + " -U " + shell_quote(sock_path);
    } else {
      // libvirt's "auto" proxy: virt-ssh-helper where the host has it, else nc on the socket.
      const std::string name = u.without_transport();
      remote = "sh -c " + shell_quote("if which virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper " +
                                      std::string(read_only ? "-r " : "") + shell_quote(name) + "; else exec nc -U " +
                                      shell_quote(sock_path) + "; fi");
    }
    args.push_back(remote);
    const std::string ssh = u.param("command").value_or("ssh");
    const std::string exe = find_program(ssh);
    if (exe.empty()) co_return fail(diag, errc::no_connect, "cannot run '" + ssh + "': not found in PATH");
    s.peer = "ssh " + (u.user.empty() ? "" : u.user + "@") + u.host;
    asio::local::stream_protocol::socket mine(s.ex), theirs(s.ex);
    asio::readable_pipe err_r(s.ex);
    asio::writable_pipe err_w(s.ex);
    std::shared_ptr<ssh_child> child;
    try {
      asio::local::connect_pair(mine, theirs);
      asio::connect_pipe(err_r, err_w);
      child = std::make_shared<ssh_child>(std::move(err_r), exe, args, theirs, err_w);
    } catch (const std::exception& e) {
      co_return fail(diag, errc::no_connect, "cannot start '" + exe + "': " + e.what());
    }
    theirs.close();
    err_w.close();
    asio::co_spawn(s.ex, collect_stderr(child), asio::detached);
    s.sock.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), mine.release());
    s.keep = child;
    s.stderr_of_transport = [w = std::weak_ptr<ssh_child>(child)] {
      auto c = w.lock();
      return c ? c->said : std::string();
    };
  } else if (transport == "tls") {
    co_return fail(diag, errc::no_connect, "the TLS transport is not supported (use +tcp, +unix or +ssh): '" +
                                               u.original + "'");
  } else {
    co_return fail(diag, errc::no_connect, "transport '" + transport + "' is not supported (use tcp, unix or ssh): '" +
                                               u.original + "'");
  }
  s.start();
  co_return result<void>();
}

}  // namespace covirt::remote
