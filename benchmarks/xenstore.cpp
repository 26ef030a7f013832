// covirt benchmark: covirt::xen::xenstore against libxenstore (libxen-dev's C client), on the same
// real xenstored, in one run. benchmarks/run-xenstore starts the daemon (C xenstored, then
// oxenstored) under the tests' shim and calls this once per daemon.
//
//   bench_xenstore --socket PATH [--seconds S] [--events N] [--daemon-pid PID] [--daemon NAME]
//
// Rows, each run by both clients one after the other on the same daemon:
//  1. sequential reads: one request at a time (covirt: co_await xs.read in a loop; libxenstore:
//     xs_read + free in a loop);
//  2. sequential writes (xs.write / xs_write of a 16-byte value to the same node);
//  3. 64 reads in flight: covirt, 64 coroutines on one thread sharing one connection; libxenstore,
//     64 threads with an xs_handle each, and 64 threads sharing one xs_handle;
//  4. watch-event latency: a writer thread of its own (a libxenstore handle, the same writer for
//     both sides) writes the watched node; the time from just before its xs_write to the event
//     reaching the watcher (covirt: watch_stream::async_next; libxenstore: xs_read_watch). One
//     write at a time: the next goes when the watcher has its event.
// Each cell: a warm-up (a fifth of --seconds), then --seconds of requests (row 4: --events
// events). Per cell: operations per second, latency p50/p99 of each request, the client's CPU
// (getrusage, all threads, user+system) per operation, and with --daemon-pid the daemon's CPU
// (/proc/PID/stat utime+stime, 10 ms ticks) per operation and its busy share of the wall time:
// near 100% the daemon, which is single-threaded, is what bounds the row.
#include <covirt/xen/xenstore.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

extern "C" {  // xenstore.h has no extern "C" of its own
#include <xenstore.h>
}

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace xen = covirt::xen;
using bench_clock = std::chrono::steady_clock;

namespace {

std::string g_socket;
double g_seconds = 1.0;
int g_events = 2000;
long g_daemon_pid = 0;
std::string g_daemon = "xenstored";
constexpr int inflight = 64;
const char* const read_path = "/bench/read";
const char* const write_path = "/bench/write";
const char* const watch_path = "/bench/watch";
const std::string value16 = "0123456789abcdef";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_xenstore: %s\n", what.c_str());
  std::exit(1);
}

double us_between(bench_clock::time_point a, bench_clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}
auto seconds_of(double s) { return std::chrono::duration_cast<bench_clock::duration>(std::chrono::duration<double>(s)); }

// This process's CPU time, all threads, user + system, µs.
double cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}
// The daemon's CPU time (utime + stime from /proc/PID/stat), µs; 0 without --daemon-pid.
double daemon_cpu_us() {
  if (!g_daemon_pid) return 0;
  std::ifstream in("/proc/" + std::to_string(g_daemon_pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), {});
  auto rp = all.rfind(')');
  if (rp == std::string::npos) die("cannot read /proc/" + std::to_string(g_daemon_pid) + "/stat");
  std::istringstream rest(all.substr(rp + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  for (int field = 3; field <= 15 && rest >> f; ++field) {
    if (field == 14) utime = std::stoull(f);
    if (field == 15) stime = std::stoull(f);
  }
  return double(utime + stime) * 1e6 / double(sysconf(_SC_CLK_TCK));
}

struct cell {
  long ops = 0;
  double wall_us = 0, cpu_us = 0, daemon_us = 0;
  std::vector<double> lat;  // µs, one per operation
  double rate() const { return ops / (wall_us / 1e6); }
  double pct(double p) {
    if (lat.empty()) return 0;
    std::sort(lat.begin(), lat.end());
    return lat[std::min(lat.size() - 1, std::size_t(p * double(lat.size())))];
  }
};

// Brackets a measured window: wall, own CPU and daemon CPU.
struct window {
  bench_clock::time_point t0 = bench_clock::now();
  double c0 = cpu_us(), d0 = daemon_cpu_us();
  void end(cell& c) {
    c.wall_us = us_between(t0, bench_clock::now());
    c.cpu_us = cpu_us() - c0;
    c.daemon_us = daemon_cpu_us() - d0;
  }
};

// ---- libxenstore

xs_handle* lx_open() {
  xs_handle* h = xs_open(XS_OPEN_SOCKETONLY);
  if (!h) die(std::string("xs_open: ") + std::strerror(errno));
  return h;
}
void lx_read(xs_handle* h) {
  unsigned len = 0;
  void* v = xs_read(h, XBT_NULL, read_path, &len);
  if (!v) die(std::string("xs_read: ") + std::strerror(errno));
  free(v);
}
void lx_write(xs_handle* h) {
  if (!xs_write(h, XBT_NULL, write_path, value16.data(), unsigned(value16.size())))
    die(std::string("xs_write: ") + std::strerror(errno));
}

// One thread, one request at a time.
cell lx_sequential(void (*op)(xs_handle*)) {
  xs_handle* h = lx_open();
  for (auto end = bench_clock::now() + seconds_of(g_seconds / 5); bench_clock::now() < end;) op(h);
  cell c;
  c.lat.reserve(200000);
  window w;
  const auto deadline = w.t0 + seconds_of(g_seconds);
  for (auto now = w.t0; now < deadline;) {
    op(h);
    auto t1 = bench_clock::now();
    c.lat.push_back(us_between(now, t1));
    now = t1;
    ++c.ops;
  }
  w.end(c);
  xs_close(h);
  return c;
}

// `inflight` threads, each with its own handle or all sharing one; reads.
cell lx_parallel(bool shared) {
  xs_handle* one = shared ? lx_open() : nullptr;
  std::vector<xs_handle*> hs(inflight);
  for (auto& h : hs) h = shared ? one : lx_open();
  std::atomic<int> go{0};
  std::vector<std::vector<double>> lats(inflight);
  bench_clock::time_point warm_end, deadline;
  std::vector<std::thread> pool;
  for (int t = 0; t < inflight; ++t)
    pool.emplace_back([&, t] {
      go.wait(0);
      xs_handle* h = hs[t];
      while (bench_clock::now() < warm_end) lx_read(h);
      go.wait(1);  // the main thread starts the window once every thread is warm
      auto& lat = lats[t];
      lat.reserve(20000);
      for (auto now = bench_clock::now(); now < deadline;) {
        lx_read(h);
        auto t1 = bench_clock::now();
        lat.push_back(us_between(now, t1));
        now = t1;
      }
    });
  warm_end = bench_clock::now() + seconds_of(g_seconds / 5);
  go = 1;
  go.notify_all();
  std::this_thread::sleep_until(warm_end + std::chrono::milliseconds(20));
  cell c;
  window w;
  deadline = w.t0 + seconds_of(g_seconds);
  go = 2;
  go.notify_all();
  for (auto& t : pool) t.join();
  w.end(c);
  for (auto& l : lats) {
    c.ops += long(l.size());
    c.lat.insert(c.lat.end(), l.begin(), l.end());
  }
  if (shared) xs_close(one);
  else
    for (auto* h : hs) xs_close(h);
  return c;
}

// The writer of the watch row: writes the watched node each time `want` moves past what it did,
// taking the time just before.
struct watch_writer {
  std::atomic<unsigned> want{0};
  std::atomic<long long> t0_ns{0};
  std::atomic<bool> quit{false};
  std::thread th;
  watch_writer() {
    th = std::thread([this] {
      xs_handle* h = lx_open();
      unsigned done = 0;
      for (;;) {
        want.wait(done);
        if (quit) break;
        done = want.load();
        t0_ns = bench_clock::now().time_since_epoch().count();
        const std::string v = std::to_string(done);
        if (!xs_write(h, XBT_NULL, watch_path, v.data(), unsigned(v.size())))
          die(std::string("xs_write (watch writer): ") + std::strerror(errno));
      }
      xs_close(h);
    });
  }
  void trigger() {
    ++want;
    want.notify_one();
  }
  double since_t0_us() const {
    return double(bench_clock::now().time_since_epoch().count() - t0_ns.load()) *
           double(bench_clock::period::num) / double(bench_clock::period::den) * 1e6;
  }
  ~watch_writer() {
    quit = true;
    ++want;
    want.notify_one();
    th.join();
  }
};

cell lx_watch() {
  xs_handle* h = lx_open();
  if (!xs_watch(h, watch_path, "bench")) die(std::string("xs_watch: ") + std::strerror(errno));
  unsigned num = 0;
  free(xs_read_watch(h, &num));  // the initial event
  watch_writer wr;
  auto one = [&] {
    wr.trigger();
    char** ev = xs_read_watch(h, &num);
    if (!ev) die(std::string("xs_read_watch: ") + std::strerror(errno));
    double us = wr.since_t0_us();
    free(ev);
    return us;
  };
  for (int i = 0; i < g_events / 10; ++i) one();
  cell c;
  window w;
  for (int i = 0; i < g_events; ++i) c.lat.push_back(one());
  c.ops = g_events;
  w.end(c);
  xs_close(h);
  return c;
}

// ---- covirt

template <class T>
T check(covirt::result<T> r, const covirt::diagnostics& d, const char* what) {
  if (!r) die(std::string(what) + ": " + std::string(d.message()));
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

asio::awaitable<xen::xenstore> cv_open() {
  xen::xenstore xs(co_await asio::this_coro::executor);
  covirt::diagnostics d;
  check(co_await xs.connect(g_socket, d), d, "connect");
  co_return xs;
}

asio::awaitable<void> cv_read(xen::xenstore& xs) {
  covirt::diagnostics d;
  check(co_await xs.read(read_path, d), d, "read");
}
asio::awaitable<void> cv_write(xen::xenstore& xs) {
  covirt::diagnostics d;
  check(co_await xs.write(write_path, value16, d), d, "write");
}

template <class Op>
asio::awaitable<cell> cv_sequential(Op op) {
  auto xs = co_await cv_open();
  for (auto end = bench_clock::now() + seconds_of(g_seconds / 5); bench_clock::now() < end;) co_await op(xs);
  cell c;
  c.lat.reserve(200000);
  window w;
  const auto deadline = w.t0 + seconds_of(g_seconds);
  for (auto now = w.t0; now < deadline;) {
    co_await op(xs);
    auto t1 = bench_clock::now();
    c.lat.push_back(us_between(now, t1));
    now = t1;
    ++c.ops;
  }
  w.end(c);
  co_return c;
}

// `inflight` coroutines on this thread, one connection.
asio::awaitable<cell> cv_parallel() {
  auto ex = co_await asio::this_coro::executor;
  auto xs = co_await cv_open();
  cell c;
  c.lat.reserve(400000);
  int running = 0;
  asio::steady_timer all_done(ex);  // cancelled by the last coroutine of a batch
  auto batch = [&](bench_clock::time_point deadline, bool record) {
    running = inflight;
    for (int k = 0; k < inflight; ++k)
      asio::co_spawn(ex, [&, deadline, record]() -> asio::awaitable<void> {
        for (auto now = bench_clock::now(); now < deadline;) {
          co_await cv_read(xs);
          auto t1 = bench_clock::now();
          if (record) c.lat.push_back(us_between(now, t1));
          now = t1;
        }
        if (--running == 0) all_done.cancel();
      }, asio::detached);
  };
  auto drain = [&]() -> asio::awaitable<void> {
    all_done.expires_at(bench_clock::time_point::max());
    if (running > 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
  };
  batch(bench_clock::now() + seconds_of(g_seconds / 5), false);
  co_await drain();
  window w;
  batch(w.t0 + seconds_of(g_seconds), true);
  co_await drain();
  w.end(c);
  c.ops = long(c.lat.size());
  co_return c;
}

asio::awaitable<cell> cv_watch() {
  auto xs = co_await cv_open();
  covirt::diagnostics d;
  auto ws = check(co_await xs.watch(watch_path, "bench", d), d, "watch");
  co_await ws.async_next();  // the initial event
  watch_writer wr;
  auto one = [&]() -> asio::awaitable<double> {
    wr.trigger();
    co_await ws.async_next();
    co_return wr.since_t0_us();
  };
  for (int i = 0; i < g_events / 10; ++i) co_await one();
  cell c;
  window w;
  for (int i = 0; i < g_events; ++i) c.lat.push_back(co_await one());
  c.ops = g_events;
  w.end(c);
  co_return c;
}

// ---- output

void print_cell(const char* row, const char* client, cell& c, const std::string& ratio, bool throughput) {
  char daemon[64] = "–", busy[32] = "–";
  if (g_daemon_pid) {
    std::snprintf(daemon, sizeof daemon, "%.1f", c.daemon_us / double(c.ops));
    std::snprintf(busy, sizeof busy, "%.0f%%", 100.0 * c.daemon_us / c.wall_us);
  }
  char rate[32] = "–", cpu[32] = "–";
  if (throughput) {
    std::snprintf(rate, sizeof rate, "%.0f", c.rate());
    std::snprintf(cpu, sizeof cpu, "%.1f", c.cpu_us / double(c.ops));
  }
  std::printf("| %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s |\n", row, client, rate, c.pct(0.50), c.pct(0.99), cpu,
              daemon, busy, ratio.c_str());
}

std::string fmt(const char* f, double a) {
  char b[96];
  std::snprintf(b, sizeof b, f, a);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--socket") g_socket = v;
    else if (a == "--seconds") g_seconds = std::atof(v.c_str());
    else if (a == "--events") g_events = std::atoi(v.c_str());
    else if (a == "--daemon-pid") g_daemon_pid = std::atol(v.c_str());
    else if (a == "--daemon") g_daemon = v;
    else die("unknown option " + a);
  }
  if (g_socket.empty()) die("usage: bench_xenstore --socket PATH [--seconds S] [--events N] [--daemon-pid PID]");
  setenv("XENSTORED_PATH", g_socket.c_str(), 1);  // libxenstore's socket (read at xs_open)

  {  // the nodes the rows use
    xs_handle* h = lx_open();
    if (!xs_write(h, XBT_NULL, read_path, value16.data(), unsigned(value16.size())) ||
        !xs_write(h, XBT_NULL, write_path, "", 0) || !xs_write(h, XBT_NULL, watch_path, "", 0))
      die(std::string("xs_write (setup): ") + std::strerror(errno));
    xs_close(h);
  }

  asio::io_context ioc(1);
  auto run = [&](asio::awaitable<cell> a) {
    cell out;
    asio::co_spawn(ioc, std::move(a), [&](std::exception_ptr e, cell c) {
      if (e) std::rethrow_exception(e);
      out = std::move(c);
    });
    ioc.restart();
    ioc.run();
    return out;
  };

  std::printf("| row | client | ops/s | p50 µs | p99 µs | client CPU µs/op | daemon CPU µs/op | daemon busy | covirt / libxenstore |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");

  cell lr = lx_sequential(lx_read);
  cell cr = run(cv_sequential(cv_read));
  print_cell("sequential reads", "libxenstore", lr, "", true);
  print_cell("sequential reads", "covirt", cr, fmt("%.2fx ops/s", cr.rate() / lr.rate()), true);

  cell lw = lx_sequential(lx_write);
  cell cw = run(cv_sequential(cv_write));
  print_cell("sequential writes", "libxenstore", lw, "", true);
  print_cell("sequential writes", "covirt", cw, fmt("%.2fx ops/s", cw.rate() / lw.rate()), true);

  cell lp = lx_parallel(false);
  cell ls = lx_parallel(true);
  cell cp = run(cv_parallel());
  print_cell("64 reads in flight", "libxenstore, 64 threads, a handle each", lp, "", true);
  print_cell("64 reads in flight", "libxenstore, 64 threads, one shared handle", ls, "", true);
  const double best = std::max(lp.rate(), ls.rate());
  print_cell("64 reads in flight", "covirt, 64 coroutines, one thread, one connection", cp,
             fmt("%.2fx ops/s of a handle each, ", cp.rate() / lp.rate()) +
                 fmt("%.2fx of one shared handle", cp.rate() / ls.rate()),
             true);

  cell lv = lx_watch();
  cell cv = run(cv_watch());
  print_cell("watch event after another connection's write", "libxenstore", lv, "", false);
  print_cell("watch event after another connection's write", "covirt", cv,
             fmt("%.2fx p50 latency (lower is better)", cv.pct(0.5) / lv.pct(0.5)), false);

  std::printf("\n");
  std::printf("target: covirt sequential reads >= libxenstore: %s (%.2fx)\n",
              cr.rate() >= lr.rate() ? "met" : "MISSED", cr.rate() / lr.rate());
  std::printf("target: covirt 64 reads in flight >= 5x libxenstore's best (%s): %s (%.2fx)\n",
              lp.rate() >= ls.rate() ? "a handle per thread" : "one shared handle",
              cp.rate() >= 5 * best ? "met" : "MISSED", cp.rate() / best);
  if (g_daemon_pid) {
    const cell& b = lp.rate() >= ls.rate() ? lp : ls;
    const double lx_d = b.daemon_us / double(b.ops), cv_d = cp.daemon_us / double(cp.ops);
    const double lx_c = b.cpu_us / double(b.ops), cv_c = cp.cpu_us / double(cp.ops);
    std::printf("bound, 64 in flight: CPU per read, client + daemon: libxenstore's best %.1f + %.1f µs, covirt %.1f + "
                "%.1f µs. On a machine whose cores are all busy, throughput follows the total: covirt / libxenstore "
                "<= %.2fx; with only the (single-threaded) daemon saturated, <= %.2fx. Daemon busy %.0f%% / %.0f%% "
                "of the wall time.\n",
                lx_c, lx_d, cv_c, cv_d, (lx_c + lx_d) / (cv_c + cv_d), lx_d / cv_d, 100.0 * b.daemon_us / b.wall_us,
                100.0 * cp.daemon_us / cp.wall_us);
  }
}
