// covirt benchmark: the remote driver against libvirt's C client (libvirt-dev's remote driver),
// on the same private libvirtd, in one run. benchmarks/run-remote starts the daemons and calls
// this twice: once for the calls, once per side for the fleet (separate processes, so that each
// side's memory is its own).
//
//   bench_remote_driver calls --uri URI [--seconds S]
//   bench_remote_driver fleet --uri URI --side covirt|libvirt [--conns N] [--threads T]
//
// calls: latency of one call in flight (p50, µs) for get_info and lookup by name; list all with
// the daemon's domains (run-remote defines 1000); get_info throughput with 1, 8 and 64 calls in
// flight on one connection (covirt: coroutines on one thread; libvirt: threads sharing one
// connection, and threads with a connection each).
// fleet: N connections; on each, list every domain and get_info each; wall time, and the
// process's resident memory growth divided by N (connections still open when it is read).
#include <covirt/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using bench_clock = std::chrono::steady_clock;

namespace {

std::string g_uri;
double g_seconds = 1.0;

double us_since(bench_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(bench_clock::now() - t0).count();
}
double p50(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
long rss_kib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
void die(const char* what) {
  virErrorPtr e = virGetLastError();
  std::fprintf(stderr, "bench_remote_driver: %s: %s\n", what, e && e->message ? e->message : "?");
  std::exit(1);
}

// ---- calls

// This process's CPU time (all threads), µs.
double cpu_us() { return std::clock() * 1e6 / CLOCKS_PER_SEC; }
double g_last_cpu_per_call = 0;  // of the last throughput run

// libvirt: `threads` threads on one shared connection (shared=true) or one each; get_info calls/s.
double libvirt_throughput(int threads, bool shared) {
  virConnectPtr one = shared ? virConnectOpen(g_uri.c_str()) : nullptr;
  if (shared && !one) die("virConnectOpen");
  std::atomic<long> total{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  const double cpu0 = cpu_us();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      virConnectPtr c = shared ? one : virConnectOpen(g_uri.c_str());
      if (!c) die("virConnectOpen");
      virDomainPtr d = virDomainLookupByName(c, "test");
      if (!d) die("virDomainLookupByName");
      long n = 0;
      virDomainInfo info;
      while (!stop.load(std::memory_order_relaxed)) {
        if (virDomainGetInfo(d, &info) < 0) die("virDomainGetInfo");
        ++n;
      }
      virDomainFree(d);
      if (!shared) virConnectClose(c);
      total += n;
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(g_seconds));
  stop = true;
  for (auto& t : pool) t.join();
  g_last_cpu_per_call = (cpu_us() - cpu0) / std::max<long>(1, total);
  if (one) virConnectClose(one);
  return total / g_seconds;
}

asio::awaitable<void> covirt_calls(asio::io_context& ioc) {
  auto ex = ioc.get_executor();
  auto conn = co_await covirt::async_open(ex, g_uri);
  virConnectPtr lv = virConnectOpen(g_uri.c_str());
  if (!lv) die("virConnectOpen");
  virDomainPtr ld = virDomainLookupByName(lv, "test");
  if (!ld) die("virDomainLookupByName");
  const int n = 2000;
  std::vector<double> c_info, l_info, c_lookup, l_lookup, c_list, l_list;
  virDomainInfo info;
  for (int i = 0; i < n; ++i) {
    auto t0 = bench_clock::now();
    co_await conn.async_get_info("test");
    c_info.push_back(us_since(t0));
    t0 = bench_clock::now();
    if (virDomainGetInfo(ld, &info) < 0) die("virDomainGetInfo");
    l_info.push_back(us_since(t0));
    t0 = bench_clock::now();
    co_await conn.async_lookup_by_name("test");
    c_lookup.push_back(us_since(t0));
    t0 = bench_clock::now();
    virDomainPtr x = virDomainLookupByName(lv, "test");
    if (!x) die("virDomainLookupByName");
    l_lookup.push_back(us_since(t0));
    virDomainFree(x);
  }
  std::size_t count = 0;
  for (int i = 0; i < 200; ++i) {
    auto t0 = bench_clock::now();
    count = (co_await conn.async_list_domains(0)).size();
    c_list.push_back(us_since(t0));
    t0 = bench_clock::now();
    virDomainPtr* doms = nullptr;
    int k = virConnectListAllDomains(lv, &doms, 0);
    if (k < 0) die("virConnectListAllDomains");
    for (int j = 0; j < k; ++j) virDomainFree(doms[j]);
    free(doms);
    l_list.push_back(us_since(t0));
  }
  std::printf("| row | libvirt 9.0 C client | covirt remote driver | libvirt / covirt |\n|---|---|---|---|\n");
  auto row = [](const char* what, double l, double c) { std::printf("| %s | %.1f µs | %.1f µs | %.2fx |\n", what, l, c, l / c); };
  row("get_info, one call in flight (p50)", p50(l_info), p50(c_info));
  row("lookup by name, one call in flight (p50)", p50(l_lookup), p50(c_lookup));
  char label[96];
  std::snprintf(label, sizeof label, "list all, %zu domains (p50)", count);
  row(label, p50(l_list), p50(c_list));

  for (int inflight : {1, 8, 64}) {
    long done = 0;
    bool stop = false;
    int running = inflight;
    const double cpu0 = cpu_us();
    for (int k = 0; k < inflight; ++k)
      asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
        while (!stop) {
          co_await conn.async_get_info("test");
          ++done;
        }
        --running;
      }, asio::detached);
    asio::steady_timer t(ex, std::chrono::duration_cast<bench_clock::duration>(std::chrono::duration<double>(g_seconds)));
    co_await t.async_wait(asio::use_awaitable);
    const double covirt_rate = done / g_seconds;
    const double covirt_cpu = (cpu_us() - cpu0) / std::max<long>(1, done);
    stop = true;
    while (running > 0) {
      asio::steady_timer w(ex, std::chrono::milliseconds(1));
      co_await w.async_wait(asio::use_awaitable);
    }
    const double shared = libvirt_throughput(inflight, true);
    const double shared_cpu = g_last_cpu_per_call;
    const double own = libvirt_throughput(inflight, false);
    const double own_cpu = g_last_cpu_per_call;
    std::printf("| get_info, %d in flight: calls/s (client CPU per call) | shared connection %.0f (%.1f µs); a "
                "connection per thread %.0f (%.1f µs) | %.0f (%.1f µs) | %.2fx of libvirt's best |\n",
                inflight, shared, shared_cpu, own, own_cpu, covirt_rate, covirt_cpu, covirt_rate / std::max(shared, own));
  }
  virDomainFree(ld);
  virConnectClose(lv);
  co_await conn.async_close();
}

// ---- fleet

int fleet_covirt(int conns) {
  asio::io_context ioc;
  const long rss0 = rss_kib();
  std::vector<covirt::connection> open(conns);
  long calls = 0;
  int done = 0;
  const auto t0 = bench_clock::now();
  for (int i = 0; i < conns; ++i)
    asio::co_spawn(ioc, [&, i]() -> asio::awaitable<void> {
      open[i] = co_await covirt::async_open(ioc.get_executor(), g_uri, covirt::open_flags::read_only);
      for (const auto& d : co_await open[i].async_list_domains(0)) {
        co_await open[i].async_get_info(d);
        ++calls;
      }
      ++done;
    }, [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  while (done < conns) ioc.run_one();
  const double wall = us_since(t0) / 1e6;
  const long rss1 = rss_kib();
  std::printf("| covirt, one thread | %d | %ld | %.2f s | %.1f KiB |\n", conns, calls, wall, double(rss1 - rss0) / conns);
  return 0;
}

int fleet_libvirt(int conns, int threads) {
  const long rss0 = rss_kib();
  std::vector<virConnectPtr> open(conns, nullptr);
  std::atomic<long> calls{0};
  std::atomic<int> next{0};
  const auto t0 = bench_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i; (i = next++) < conns;) {
        open[i] = virConnectOpenReadOnly(g_uri.c_str());
        if (!open[i]) die("virConnectOpenReadOnly");
        virDomainPtr* doms = nullptr;
        int k = virConnectListAllDomains(open[i], &doms, 0);
        if (k < 0) die("virConnectListAllDomains");
        virDomainInfo info;
        for (int j = 0; j < k; ++j) {
          if (virDomainGetInfo(doms[j], &info) < 0) die("virDomainGetInfo");
          ++calls;
          virDomainFree(doms[j]);
        }
        free(doms);
      }
    });
  for (auto& t : pool) t.join();
  const double wall = us_since(t0) / 1e6;
  const long rss1 = rss_kib();
  std::printf("| libvirt, %d threads | %d | %ld | %.2f s | %.1f KiB |\n", threads, conns, calls.load(), wall,
              double(rss1 - rss0) / conns);
  for (auto* c : open) virConnectClose(c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_remote_driver calls|fleet --uri URI [...]\n");
    return 2;
  }
  const std::string mode = argv[1];
  std::string side = "covirt";
  int conns = 1000, threads = 16;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--uri") g_uri = v;
    else if (a == "--seconds") g_seconds = std::atof(v.c_str());
    else if (a == "--side") side = v;
    else if (a == "--conns") conns = std::atoi(v.c_str());
    else if (a == "--threads") threads = std::atoi(v.c_str());
  }
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});  // libvirt prints every error to stderr otherwise
  if (mode == "fleet") return side == "covirt" ? fleet_covirt(conns) : fleet_libvirt(conns, threads);
  asio::io_context ioc;
  asio::co_spawn(ioc, covirt_calls(ioc), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
}
