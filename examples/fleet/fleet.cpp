// fleet: one thread, one io_context, N libvirtd hosts. Opens every URI given, lists every domain
// on every host at once, subscribes to all their events and keeps a live table: a line per
// domain, reprinted when an event changes it.
//
//   fleet [--once] [--events N] URI...     e.g. fleet qemu+tcp://h1/system qemu+ssh://root@h2/system
//
// --once: print the table after the first listing and exit. --events N: exit after N events.
#include <covirt/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace asio = boost::asio;

struct row {
  std::string state;
  std::uint64_t memory_kib = 0;
  unsigned vcpus = 0;
};

struct fleet {
  std::vector<std::string> uris;
  std::map<std::pair<int, std::string>, row> table;  // (host, domain) -> row
  std::vector<covirt::connection> conns;
  int hosts_listed = 0, hosts = 0, events_left = -1;
  bool once = false;

  std::string label(int host) const { return std::to_string(host + 1) + " " + uris[host]; }

  void print() const {
    std::printf("%-40s %-24s %-12s %10s %5s\n", "HOST", "DOMAIN", "STATE", "MEM (KiB)", "CPUS");
    for (const auto& [key, r] : table)
      std::printf("%-40s %-24s %-12s %10llu %5u\n", label(key.first).c_str(), key.second.c_str(), r.state.c_str(),
                  static_cast<unsigned long long>(r.memory_kib), r.vcpus);
    std::printf("\n");
    std::fflush(stdout);
  }

  // One domain's row from its host (a domain just undefined has none).
  asio::awaitable<void> refresh(covirt::connection& c, int host, const std::string& name) {
    auto [ec, info] = co_await c.async_get_info(name, asio::as_tuple(asio::use_awaitable));
    if (ec) table.erase({host, name});
    else table[{host, name}] = {std::string(covirt::to_string(info.state)), info.memory_kib, info.nr_virt_cpu};
  }

  asio::awaitable<void> watch(int host) {
    auto ex = co_await asio::this_coro::executor;
    const std::string& uri = uris[host];
    covirt::diagnostics diag;
    auto [ec, c] = co_await covirt::async_open(ex, uri, covirt::open_flags::read_only, diag,
                                               asio::as_tuple(asio::use_awaitable));
    if (ec) {
      std::fprintf(stderr, "fleet: %s: %s\n", uri.c_str(), covirt::error(ec, std::string(diag.message())).what());
      if (++hosts_listed == hosts && once) std::exit(1);
      co_return;
    }
    conns.push_back(std::move(c));
    covirt::connection& conn = conns.back();
    auto events = conn.subscribe();  // before listing: nothing that happens after the list is missed
    for (const auto& d : co_await conn.async_list_domains(covirt::list_flags::all)) co_await refresh(conn, host, d.name);
    if (++hosts_listed == hosts) {
      print();
      if (once) std::exit(0);
    }
    for (;;) {
      auto [eec, ev] = co_await events.async_next(asio::as_tuple(asio::use_awaitable));
      if (eec) {  // the host went away: its rows say so
        for (auto& [key, r] : table)
          if (key.first == host) r.state = "unreachable";
        print();
        co_return;
      }
      std::printf("%s: %s %s\n", label(host).c_str(), ev.domain.name.c_str(), std::string(covirt::to_string(ev.type)).c_str());
      co_await refresh(conn, host, ev.domain.name);
      print();
      if (events_left > 0 && --events_left == 0) std::exit(0);
    }
  }
};

int main(int argc, char** argv) {
  fleet f;
  auto& uris = f.uris;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--once") f.once = true;
    else if (a == "--events" && i + 1 < argc) f.events_left = std::atoi(argv[++i]);
    else uris.push_back(a);
  }
  if (uris.empty()) {
    std::fprintf(stderr, "usage: fleet [--once] [--events N] URI...\n");
    return 2;
  }
  f.hosts = static_cast<int>(uris.size());
  f.conns.reserve(uris.size());  // the coroutines hold references into it
  asio::io_context ioc;          // one thread for every host
  for (int i = 0; i < f.hosts; ++i) asio::co_spawn(ioc, f.watch(i), asio::detached);
  ioc.run();
}
