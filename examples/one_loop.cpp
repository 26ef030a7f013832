// One io_context, every kind of peer: a Xen host (xend's HTTP calls, xenstore watches), a QEMU
// host (monitor sockets) and a libvirtd (libvirt's RPC), driven at the same time by one thread.
// A coroutine per connection prints its events as they come; another runs a guest through its
// lifecycle there (start, pause, resume, stop) when a domain XML file is given for it.
//
//   one_loop [--xml FILE] URI ... [--seconds N]
//   one_loop --xml web1.xml xen:/// --xml vm1.xml qemu:///session 'test+unix:///default?socket=/run/libvirt/libvirt-sock'
//
// Each line it prints names the connection ("[1] started web1 (Booted)"); it ends when every
// lifecycle it ran is done and its events have been seen (or after --seconds, default 60).
#include <covirt/connection.hpp>
#include <covirt/timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct peer {
  int n = 0;
  std::string uri, xml;
  std::string guest;     // the name of the guest the lifecycle runs, from its XML
  unsigned stops_seen = 0;
  bool lifecycle_done = false;
};

int pending = 0;  // peers still running a lifecycle or waiting for its last event

void done_with(peer& p, asio::steady_timer& all) {
  if (--pending == 0) all.cancel();
}

asio::awaitable<void> print_events(std::shared_ptr<peer> p, covirt::event_stream events, asio::steady_timer& all) {
  for (;;) {
    auto [ec, ev] = co_await events.async_next(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::cout << "[" << p->n << "] " << covirt::to_string(ev.type) << " " << ev.domain.name << " ("
              << covirt::detail_string(ev.type, ev.detail) << ")" << std::endl;
    if (ev.type == covirt::event_type::stopped && ev.domain.name == p->guest && ++p->stops_seen == 1 &&
        p->lifecycle_done)
      done_with(*p, all);
  }
}

asio::awaitable<void> lifecycle(std::shared_ptr<peer> p, covirt::connection& c, asio::steady_timer& all) {
  try {
    auto ref = co_await c.async_create_xml(p->xml, 0);
    p->guest = ref.name;
    std::cout << "[" << p->n << "] " << ref.name << " runs with id " << ref.id << std::endl;
    co_await c.async_suspend(ref);
    co_await c.async_resume(ref);
    co_await c.async_destroy(ref);
  } catch (const covirt::error& e) {
    std::cout << "[" << p->n << "] error: " << e.what() << std::endl;
    p->stops_seen = 1;  // nothing more to wait for
  }
  p->lifecycle_done = true;
  if (p->stops_seen >= 1) done_with(*p, all);
}

asio::awaitable<void> run(std::vector<std::shared_ptr<peer>> peers, std::chrono::seconds limit) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer all(ex, limit);
  std::vector<std::unique_ptr<covirt::connection>> conns;
  for (auto& p : peers) {
    auto c = std::make_unique<covirt::connection>(co_await covirt::async_open(ex, p->uri));
    auto listed = co_await c->async_list_domains(0);
    std::cout << "[" << p->n << "] " << p->uri << ": " << c->type() << ", " << listed.size() << " domains" << std::endl;
    asio::co_spawn(ex, print_events(p, c->subscribe(), all), asio::detached);
    conns.push_back(std::move(c));
  }
  for (std::size_t i = 0; i < peers.size(); ++i)
    if (!peers[i]->xml.empty()) {
      ++pending;
      asio::co_spawn(ex, lifecycle(peers[i], *conns[i], all), asio::detached);
    }
  if (pending > 0) co_await all.async_wait(asio::as_tuple(asio::use_awaitable));
  for (auto& c : conns) co_await c->async_close();
  if (pending > 0) throw std::runtime_error("not every lifecycle finished within the time limit");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::shared_ptr<peer>> peers;
  std::chrono::seconds limit = 60s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      limit = std::chrono::seconds(std::stoi(argv[++i]));
      continue;
    }
    auto p = std::make_shared<peer>();
    p->n = static_cast<int>(peers.size()) + 1;
    if (a == "--xml" && i + 2 < argc) {  // --xml FILE URI: a guest's lifecycle on that URI
      std::ifstream f(argv[++i]);
      std::ostringstream s;
      s << f.rdbuf();
      p->xml = s.str();
      a = argv[++i];
    }
    p->uri = a;
    peers.push_back(p);
  }
  if (peers.empty()) {
    std::cerr << "usage: one_loop [--xml FILE] URI ... [--seconds N]\n";
    return 2;
  }
  asio::io_context ioc;  // one thread, every peer
  int rc = 0;
  asio::co_spawn(ioc, run(peers, limit), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << "one_loop: " << x.what() << "\n";
      rc = 1;
    }
  });
  ioc.run();
  return rc;
}
