// covirt benchmark: the QEMU driver against libvirt's QEMU driver (through libvirtd) and a
// minimal blocking raw QMP client, in one run, on real QEMU processes (TCG).
//
//   bench_qemu_driver --libvirt-uri URI [--libvirtd-pid PID] [--iterations N] [--samples N]
//                     [--rounds N] [--guests N] [--bursts K] [--rss-guests N] [--no-sequential]
//                     [--max-seconds S]
//
// Columns (every cell is a median over its samples, in milliseconds):
//   raw      a blocking C client: fork+exec qemu-system-x86_64 (the argv covirt would build for
//            the same XML, from covirt::qemu::build_argv), connect(2) to its QMP socket,
//            write(2) a command, read(2) until the reply line. The limit for any manager.
//   libvirt  libvirt's C API through libvirtd (qemu+unix://...), libvirt-qemu.h for monitor
//            commands. One connection; the concurrent row gives every thread its own.
//   covirt   covirt::connection from async_open(ex, "qemu:///session?config_dir=..&state_dir=..")
//            in one coroutine on one io_context (the QMP row also: covirt::qemu::qmp alone).
// The guest: a 64 MiB diskless q35 TCG guest with a virtio balloon (libvirt adds its own
// default devices). Everything this program starts carries a unique marker (its temp dir
// name, /tmp/cvbq-XXXXXX) in its command line and is killed at exit whatever happened.
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>
#include <covirt/qemu/qmp.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using bclock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Options, marker, cleanup

std::string g_lv_uri;
pid_t g_libvirtd_pid = 0;
int g_iterations = 10;   // start/destroy pairs per side
int g_samples = 150;     // fast operations per side per round
int g_rounds = 10;
int g_guests = 20;
int g_bursts = 3;
int g_rss_guests = 10;
bool g_sequential = true;
double g_max_seconds = 900;

std::string g_tmp;  // /tmp/cvbq-XXXXXX: in every socket path, log path and guest name
std::string g_tag;  // cvbq-XXXXXX

double ms_since(bclock::time_point t0) {
  return std::chrono::duration<double, std::milli>(bclock::now() - t0).count();
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<pid_t> pids_with(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const char* n = e->d_name;
    if (!*n || std::strspn(n, "0123456789") != std::strlen(n)) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(n));
    if (pid == ::getpid()) continue;
    std::string cl = read_file(std::string("/proc/") + n + "/cmdline");
    std::replace(cl.begin(), cl.end(), '\0', ' ');
    if (cl.find(needle) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// Gone: no such process, or a zombie nobody reaped yet (libvirt's QEMU is not our child).
bool gone(pid_t pid) {
  int st;
  ::waitpid(pid, &st, WNOHANG);
  if (::kill(pid, 0) != 0) return true;
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto p = s.rfind(')');
  if (p == std::string::npos || p + 2 >= s.size()) return true;
  return s[p + 2] == 'Z' || s[p + 2] == 'X';
}

void wait_gone(pid_t pid, double limit_s = 10) {
  auto t0 = bclock::now();
  while (!gone(pid)) {
    if (ms_since(t0) > limit_s * 1000) throw std::runtime_error("process " + std::to_string(pid) + " did not exit");
    ::usleep(200);
  }
}

pid_t find_guest_pid(const std::string& name) {
  auto t0 = bclock::now();
  for (;;) {
    auto v = pids_with("guest=" + name + ",");
    if (!v.empty()) return v.front();
    if (ms_since(t0) > 5000) throw std::runtime_error("no QEMU process for guest " + name);
    ::usleep(1000);
  }
}

void kill_marked() {
  if (g_tag.empty()) return;
  for (pid_t p : pids_with(g_tag)) ::kill(p, SIGKILL);
  for (pid_t p : pids_with(g_tag)) {
    int st;
    ::waitpid(p, &st, 0);
  }
}

long rss_kib(pid_t pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  auto p = s.find("VmRSS:");
  if (p == std::string::npos) return -1;
  return std::atol(s.c_str() + p + 6);
}

std::string guest_xml(const std::string& name) {
  return "<domain type='qemu'><name>" + name +
         "</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='q35'>hvm</type></os>"
         "<features><acpi/></features><devices><memballoon model='virtio'/></devices></domain>";
}

std::string gname(const char* side, int i) { return g_tag + "-" + side + "-" + std::to_string(i); }

// ---------------------------------------------------------------------------------------------
// Results

struct cell {
  std::vector<double> v;
  double median() const {
    if (v.empty()) return NAN;
    auto c = v;
    std::sort(c.begin(), c.end());
    std::size_t n = c.size();
    return n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
  }
  double pct(double q) const {
    if (v.empty()) return NAN;
    auto c = v;
    std::sort(c.begin(), c.end());
    return c[std::min(c.size() - 1, static_cast<std::size_t>(q * (c.size() - 1) + 0.5))];
  }
};

enum col { c_raw, c_lv, c_cv, n_cols };
struct row {
  std::string key, name, unit;
  cell c[n_cols];
};
std::vector<row> g_rows;
row& R(const std::string& key) {
  for (auto& r : g_rows)
    if (r.key == key) return r;
  throw std::logic_error("no row " + key);
}
void declare_rows() {
  auto add = [](std::string k, std::string n, std::string u = "ms") { g_rows.push_back({k, n, u, {}}); };
  add("qmp", "QMP query-status round trip [1]");
  add("qmpconn", "QMP query-status via monitor_command [2]");
  add("start", "define+start -> running");
  add("destroy", "destroy -> process gone");
  add("suspend", "suspend+resume pair");
  add("suspendshm", "suspend+resume, tmpfs state [extra] [5]");
  add("info", "get_info (running guest)");
  add("start20", "start N at once -> all running [3]");
  add("destroy20", "destroy N at once -> all gone [3]");
  add("start20seq", "start N one after another [extra]");
  add("destroy20seq", "destroy N one after another [extra]");
  add("rss", "manager RSS per running guest [4]", "KiB");
}

// ---------------------------------------------------------------------------------------------
// The raw side: a minimal blocking QMP client

std::vector<std::string> g_raw_argv_template;  // argv with placeholders @SOCK@ and @NAME@

std::vector<std::string> raw_argv(const std::string& name, const std::string& sock) {
  covirt::diagnostics diag;
  auto def = covirt::parse_domain_xml(guest_xml(name), diag);
  if (!def) throw std::runtime_error("parse_domain_xml: " + std::string(diag.message()));
  covirt::qemu::argv_options opt;
  opt.qmp_socket = sock;
  opt.start_paused = true;
  auto a = covirt::qemu::build_argv(*def, opt, diag);
  if (!a) throw std::runtime_error("build_argv: " + std::string(diag.message()));
  return *a;
}

struct raw_guest {
  pid_t pid = -1;
  int fd = -1;
  std::string buf;
  std::string name;
};

pid_t raw_spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::setsid();
    int n = ::open("/dev/null", O_RDONLY);
    int l = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (n >= 0) ::dup2(n, 0);
    if (l >= 0) { ::dup2(l, 1); ::dup2(l, 2); }
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  return pid;
}

std::string raw_line(raw_guest& g) {
  for (;;) {
    auto p = g.buf.find('\n');
    if (p != std::string::npos) {
      std::string l = g.buf.substr(0, p);
      g.buf.erase(0, p + 1);
      return l;
    }
    char b[4096];
    ssize_t n = ::read(g.fd, b, sizeof b);
    if (n <= 0) throw std::runtime_error("raw QMP: connection closed or timed out");
    g.buf.append(b, static_cast<std::size_t>(n));
  }
}

// Sends one command and reads until its reply (events are skipped).
std::string raw_cmd(raw_guest& g, const char* cmd) {
  std::size_t len = std::strlen(cmd);
  if (::write(g.fd, cmd, len) != static_cast<ssize_t>(len)) throw std::runtime_error("raw QMP: write failed");
  for (;;) {
    std::string l = raw_line(g);
    if (l.find("\"event\"") != std::string::npos) continue;
    if (l.find("\"error\"") != std::string::npos) throw std::runtime_error("raw QMP error: " + l);
    return l;
  }
}

// fork+exec QEMU -S (the first half of a start).
raw_guest raw_spawn_guest(const std::string& name) {
  raw_guest g;
  g.name = name;
  std::string sock = g_tmp + "/raw/" + name + ".qmp";
  ::unlink(sock.c_str());
  g.pid = raw_spawn(raw_argv(name, sock), g_tmp + "/raw/" + name + ".log");
  return g;
}

// Connect (retrying every millisecond until QEMU listens), greeting, qmp_capabilities, cont.
void raw_finish_start(raw_guest& g, bool cont = true) {
  std::string sock = g_tmp + "/raw/" + g.name + ".qmp";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  auto t0 = bclock::now();
  for (;;) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      g.fd = fd;
      break;
    }
    ::close(fd);
    int st;
    if (::waitpid(g.pid, &st, WNOHANG) == g.pid) throw std::runtime_error("raw: QEMU exited at start: " + g.name);
    if (ms_since(t0) > 10000) throw std::runtime_error("raw: QEMU did not open its QMP socket");
    ::usleep(1000);
  }
  timeval tv{10, 0};
  ::setsockopt(g.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string greet = raw_line(g);
  if (greet.find("\"QMP\"") == std::string::npos) throw std::runtime_error("raw: not a QMP greeting: " + greet);
  raw_cmd(g, "{\"execute\":\"qmp_capabilities\"}\n");
  if (cont) raw_cmd(g, "{\"execute\":\"cont\"}\n");
}

// fork+exec QEMU -S with QMP, connect, greeting, qmp_capabilities, cont: running.
raw_guest raw_start(const std::string& name, bool cont = true) {
  raw_guest g = raw_spawn_guest(name);
  raw_finish_start(g, cont);
  return g;
}

// QMP quit, its reply, then the process exit.
void raw_destroy(raw_guest& g) {
  raw_cmd(g, "{\"execute\":\"quit\"}\n");
  int st;
  while (::waitpid(g.pid, &st, 0) < 0 && errno == EINTR) {
  }
  ::close(g.fd);
  g.fd = -1;
  g.pid = -1;
}

// ---------------------------------------------------------------------------------------------
// The libvirt side

[[noreturn]] void lv_fail(const char* what) {
  const char* m = virGetLastErrorMessage();
  throw std::runtime_error(std::string("libvirt ") + what + ": " + (m ? m : "?"));
}

virConnectPtr lv_open() {
  virConnectPtr c = virConnectOpen(g_lv_uri.c_str());
  if (!c) lv_fail("virConnectOpen");
  return c;
}

virDomainPtr lv_define_start(virConnectPtr c, const std::string& name) {
  virDomainPtr d = virDomainDefineXML(c, guest_xml(name).c_str());
  if (!d) lv_fail("virDomainDefineXML");
  if (virDomainCreate(d) < 0) lv_fail("virDomainCreate");
  return d;
}

void lv_cleanup(virConnectPtr c) {
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(c, &doms, 0);
  for (int i = 0; i < n; ++i) {
    const char* nm = virDomainGetName(doms[i]);
    if (nm && std::strncmp(nm, g_tag.c_str(), g_tag.size()) == 0) {
      if (virDomainIsActive(doms[i]) == 1) virDomainDestroy(doms[i]);
      if (virDomainIsPersistent(doms[i]) == 1) virDomainUndefine(doms[i]);
    }
    virDomainFree(doms[i]);
  }
  free(doms);
}

// ---------------------------------------------------------------------------------------------
// covirt helpers

// Runs f(0..n-1) as n coroutines at once on this executor; returns when all are done.
asio::awaitable<void> parallel(int n, std::function<asio::awaitable<void>(int)> f) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer done(ex, asio::steady_timer::time_point::max());
  int left = n;
  std::exception_ptr err;
  for (int i = 0; i < n; ++i)
    asio::co_spawn(ex, f(i), [&](std::exception_ptr e) {
      if (e && !err) err = e;
      if (--left == 0) done.cancel();
    });
  while (left > 0) co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
  if (err) std::rethrow_exception(err);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// ---------------------------------------------------------------------------------------------
// The benchmark, one coroutine; raw and libvirt calls block it while they run (nothing of
// covirt's is being measured then).

asio::awaitable<void> bench(virConnectPtr lv) {
  auto ex = co_await asio::this_coro::executor;
  const std::string cv_uri = "qemu:///session?config_dir=" + g_tmp + "/c&state_dir=" + g_tmp + "/s";
  covirt::connection conn = co_await covirt::async_open(ex, cv_uri);
  const std::chrono::milliseconds settle(300);

  // Warm-up: one start/destroy per side (libvirt probes QEMU's capabilities on first use).
  std::printf("warming up...\n");
  std::fflush(stdout);
  {
    raw_guest g = raw_start(gname("raw", 999));
    raw_destroy(g);
    virDomainPtr d = virDomainCreateXML(lv, guest_xml(gname("lv", 999)).c_str(), 0);
    if (!d) lv_fail("virDomainCreateXML");
    if (virDomainDestroy(d) < 0) lv_fail("virDomainDestroy");
    virDomainFree(d);
    co_await conn.async_create_xml(guest_xml(gname("cv", 999)), 0);
    co_await conn.async_destroy(gname("cv", 999));
  }

  // --- row 7 (first, before the bigger rows grow the heaps): RSS of the managing process per
  // running guest
  const int M = g_rss_guests;
  std::printf("RSS with 0 and %d guests...\n", M);
  std::fflush(stdout);
  {
    co_await sleep_for(500ms);
    long self0 = rss_kib(::getpid());
    std::vector<std::string> names;
    for (int i = 0; i < M; ++i) {
      names.push_back(gname("cvr", i));
      co_await conn.async_create_xml(guest_xml(names.back()), 0);
    }
    co_await sleep_for(1500ms);
    for (auto& n : names) (void)co_await conn.async_get_info(n);
    long self1 = rss_kib(::getpid());
    R("rss").c[c_cv].v.push_back(double(self1 - self0) / M);
    std::printf("  covirt (this process): %ld KiB with 0, %ld KiB with %d guests\n", self0, self1, M);
    for (auto& n : names) co_await conn.async_destroy(n);
  }
  if (g_libvirtd_pid > 0) {
    co_await sleep_for(500ms);
    long d0 = rss_kib(g_libvirtd_pid);
    std::vector<virDomainPtr> doms;
    for (int i = 0; i < M; ++i) {
      virDomainPtr d = virDomainCreateXML(lv, guest_xml(gname("lvr", i)).c_str(), 0);
      if (!d) lv_fail("virDomainCreateXML");
      doms.push_back(d);
    }
    co_await sleep_for(1500ms);
    for (auto d : doms) {
      virDomainInfo info;
      virDomainGetInfo(d, &info);
    }
    long d1 = rss_kib(g_libvirtd_pid);
    R("rss").c[c_lv].v.push_back(double(d1 - d0) / M);
    std::printf("  libvirtd (pid %d): %ld KiB with 0, %ld KiB with %d guests\n", int(g_libvirtd_pid), d0, d1, M);
    for (auto d : doms) {
      virDomainDestroy(d);
      virDomainFree(d);
    }
  } else {
    std::printf("  libvirtd: no --libvirtd-pid, skipped\n");
  }
  // --- rows 2 and 3: define+start, destroy; the three sides take turns every iteration
  std::printf("start/destroy: %d iterations per side...\n", g_iterations);
  std::fflush(stdout);
  for (int i = 0; i < g_iterations; ++i) {
    {
      std::string n = gname("raw", i);
      auto t0 = bclock::now();
      raw_guest g = raw_start(n);
      R("start").c[c_raw].v.push_back(ms_since(t0));
      co_await sleep_for(settle);
      t0 = bclock::now();
      raw_destroy(g);
      R("destroy").c[c_raw].v.push_back(ms_since(t0));
    }
    {
      std::string n = gname("lv", i);
      auto t0 = bclock::now();
      virDomainPtr d = lv_define_start(lv, n);
      R("start").c[c_lv].v.push_back(ms_since(t0));
      pid_t pid = find_guest_pid(n);
      co_await sleep_for(settle);
      t0 = bclock::now();
      if (virDomainDestroy(d) < 0) lv_fail("virDomainDestroy");
      wait_gone(pid);
      R("destroy").c[c_lv].v.push_back(ms_since(t0));
      if (virDomainUndefine(d) < 0) lv_fail("virDomainUndefine");
      virDomainFree(d);
    }
    {
      std::string n = gname("cv", i);
      auto t0 = bclock::now();
      co_await conn.async_define_xml(guest_xml(n));
      co_await conn.async_create(n);
      R("start").c[c_cv].v.push_back(ms_since(t0));
      pid_t pid = find_guest_pid(n);
      co_await sleep_for(settle);
      t0 = bclock::now();
      co_await conn.async_destroy(n);
      wait_gone(pid);
      R("destroy").c[c_cv].v.push_back(ms_since(t0));
      co_await conn.async_undefine(n);
    }
  }

  // --- rows 1, 4, 5 on one running guest per side; every round runs the sides in a
  // different order (raw, libvirt, covirt rotated), so that drift in the machine's load is
  // shared out
  std::printf("round trips, suspend/resume, get_info: %d rounds x %d samples per side...\n", g_rounds, g_samples);
  std::fflush(stdout);
  raw_guest rg = raw_start(gname("raw", 100));
  raw_guest rg2 = raw_start(gname("raw", 101), true);  // the covirt::qemu::qmp client's QEMU
  ::close(rg2.fd);  // hand its socket over (QEMU serves one client at a time)
  rg2.fd = -1;
  covirt::qemu::qmp q(ex);
  co_await q.async_connect(g_tmp + "/raw/" + rg2.name + ".qmp");
  std::string lvn = gname("lv", 100), cvn = gname("cv", 100), shmn = gname("cvshm", 100);
  virDomainPtr ld = virDomainCreateXML(lv, guest_xml(lvn).c_str(), 0);
  if (!ld) lv_fail("virDomainCreateXML");
  co_await conn.async_create_xml(guest_xml(cvn), 0);
  // [extra] a second covirt connection whose state_dir is on tmpfs: what the fsync'd runtime
  // record costs in suspend/resume (/tmp is a disk here; /run/covirt is tmpfs on most hosts)
  const std::string shm = "/dev/shm/" + g_tag;
  covirt::connection conn_shm =
      co_await covirt::async_open(ex, "qemu:///session?config_dir=" + shm + "/c&state_dir=" + shm + "/s");
  co_await conn_shm.async_create_xml(guest_xml(shmn), 0);
  co_await sleep_for(1500ms);  // let the guests' firmware settle (TCG)

  const char* qs = "{\"execute\":\"query-status\"}\n";
  const std::string qs_cmd = "{\"execute\":\"query-status\"}";
  const int warm = std::max(5, g_samples / 10);
  auto side_raw = [&]() {
    for (int i = 0; i < warm; ++i) raw_cmd(rg, qs);
    for (int i = 0; i < g_samples; ++i) {
      auto t0 = bclock::now();
      std::string r = raw_cmd(rg, qs);
      double t = ms_since(t0);
      if (r.find("running") == std::string::npos) throw std::runtime_error("raw: unexpected " + r);
      R("qmp").c[c_raw].v.push_back(t);
      R("qmpconn").c[c_raw].v.push_back(t);
    }
    for (int i = 0; i < g_samples; ++i) {
      auto t0 = bclock::now();
      raw_cmd(rg, "{\"execute\":\"stop\"}\n");
      raw_cmd(rg, "{\"execute\":\"cont\"}\n");
      R("suspend").c[c_raw].v.push_back(ms_since(t0));
      R("suspendshm").c[c_raw].v.push_back(ms_since(t0));
    }
  };
  auto side_lv = [&]() {
    for (int i = 0; i < warm + g_samples; ++i) {
      char* out = nullptr;
      auto t0 = bclock::now();
      if (virDomainQemuMonitorCommand(ld, qs_cmd.c_str(), &out, 0) < 0) lv_fail("virDomainQemuMonitorCommand");
      free(out);
      double t = ms_since(t0);
      if (i >= warm) {
        R("qmp").c[c_lv].v.push_back(t);
        R("qmpconn").c[c_lv].v.push_back(t);
      }
    }
    for (int i = 0; i < g_samples; ++i) {
      auto t0 = bclock::now();
      if (virDomainSuspend(ld) < 0) lv_fail("virDomainSuspend");
      if (virDomainResume(ld) < 0) lv_fail("virDomainResume");
      R("suspend").c[c_lv].v.push_back(ms_since(t0));
    }
    for (int i = 0; i < warm + g_samples; ++i) {
      virDomainInfo info;
      auto t0 = bclock::now();
      if (virDomainGetInfo(ld, &info) < 0) lv_fail("virDomainGetInfo");
      double t = ms_since(t0);
      if (info.state != VIR_DOMAIN_RUNNING) throw std::runtime_error("libvirt: guest not running");
      if (i >= warm) R("info").c[c_lv].v.push_back(t);
    }
  };
  auto side_cv = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < warm + g_samples; ++i) {
      auto t0 = bclock::now();
      auto r = co_await q.async_execute("query-status");
      double t = ms_since(t0);
      if (i >= warm) R("qmp").c[c_cv].v.push_back(t);
      if (!r.is_object() || !r.as_object().contains("status")) throw std::runtime_error("covirt qmp: bad reply");
    }
    for (int i = 0; i < warm + g_samples; ++i) {
      auto t0 = bclock::now();
      std::string r = co_await conn.async_qemu_monitor_command(cvn, qs_cmd);
      double t = ms_since(t0);
      if (i >= warm) R("qmpconn").c[c_cv].v.push_back(t);
      if (r.find("running") == std::string::npos) throw std::runtime_error("covirt: unexpected " + r);
    }
    for (int i = 0; i < g_samples; ++i) {
      auto t0 = bclock::now();
      co_await conn.async_suspend(cvn);
      co_await conn.async_resume(cvn);
      R("suspend").c[c_cv].v.push_back(ms_since(t0));
    }
    for (int i = 0; i < g_samples; ++i) {
      auto t0 = bclock::now();
      co_await conn_shm.async_suspend(shmn);
      co_await conn_shm.async_resume(shmn);
      R("suspendshm").c[c_cv].v.push_back(ms_since(t0));
    }
    for (int i = 0; i < warm + g_samples; ++i) {
      auto t0 = bclock::now();
      auto info = co_await conn.async_get_info(cvn);
      double t = ms_since(t0);
      if (info.state != covirt::domain_state::running) throw std::runtime_error("covirt: guest not running");
      if (i >= warm) R("info").c[c_cv].v.push_back(t);
    }
  };
  for (int round = 0; round < g_rounds; ++round) {
    for (int k = 0; k < 3; ++k) {
      switch ((round + k) % 3) {
        case 0: side_raw(); break;
        case 1: side_lv(); break;
        case 2: co_await side_cv(); break;
      }
    }
  }
  q.close();
  raw_destroy(rg);
  {
    int st;
    ::kill(rg2.pid, SIGTERM);
    ::waitpid(rg2.pid, &st, 0);
  }
  if (virDomainDestroy(ld) < 0) lv_fail("virDomainDestroy");
  virDomainFree(ld);
  co_await conn.async_destroy(cvn);
  co_await conn_shm.async_destroy(shmn);
  co_await conn_shm.async_close();
  {
    std::error_code ec;
    fs::remove_all(shm, ec);
  }

  // --- row 6: N at once
  const int N = g_guests;
  // Each burst is one sample per side; --bursts K takes K of them (sides in turn) and the table
  // shows medians, so one unlucky burst does not decide the ratio.
  for (int burst = 0; burst < g_bursts; ++burst) {
  std::printf("%d guests at once (burst %d of %d)...\n", N, burst + 1, g_bursts);
  std::fflush(stdout);
  {
    // libvirt: N threads, each with its own connection (libvirtd serves at most
    // max_client_requests = 5 calls of one connection at a time), released together.
    std::vector<virConnectPtr> conns;
    for (int i = 0; i < N; ++i) conns.push_back(lv_open());
    std::vector<virDomainPtr> doms(N, nullptr);
    auto run_threads = [&](std::function<void(int)> f) {
      std::mutex m;
      std::condition_variable cv;
      bool go = false;
      std::atomic<int> failures{0};
      std::vector<std::thread> th;
      for (int i = 0; i < N; ++i)
        th.emplace_back([&, i] {
          {
            std::unique_lock l(m);
            cv.wait(l, [&] { return go; });
          }
          try {
            f(i);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "libvirt thread %d: %s\n", i, e.what());
            ++failures;
          }
        });
      ::usleep(50000);  // every thread waiting
      auto t0 = bclock::now();
      {
        std::lock_guard l(m);
        go = true;
      }
      cv.notify_all();
      for (auto& t : th) t.join();
      double t = ms_since(t0);
      if (failures) throw std::runtime_error("libvirt: concurrent calls failed");
      return t;
    };
    double t = run_threads([&](int i) {
      doms[i] = virDomainCreateXML(conns[i], guest_xml(gname("lvn", i)).c_str(), 0);
      if (!doms[i]) lv_fail("virDomainCreateXML");
    });
    R("start20").c[c_lv].v.push_back(t);
    std::vector<pid_t> pids;
    for (int i = 0; i < N; ++i) pids.push_back(find_guest_pid(gname("lvn", i)));
    co_await sleep_for(2000ms);
    t = run_threads([&](int i) {
      if (virDomainDestroy(doms[i]) < 0) lv_fail("virDomainDestroy");
      wait_gone(pids[i]);
    });
    R("destroy20").c[c_lv].v.push_back(t);
    for (auto d : doms) virDomainFree(d);
    for (auto c : conns) virConnectClose(c);

    if (g_sequential && burst == 0) {  // once: these take long
      std::printf("%d guests one after another (libvirt)...\n", N);
      std::fflush(stdout);
      auto t0 = bclock::now();
      for (int i = 0; i < N; ++i) {
        doms[i] = virDomainCreateXML(lv, guest_xml(gname("lvs", i)).c_str(), 0);
        if (!doms[i]) lv_fail("virDomainCreateXML");
      }
      R("start20seq").c[c_lv].v.push_back(ms_since(t0));
      pids.clear();
      for (int i = 0; i < N; ++i) pids.push_back(find_guest_pid(gname("lvs", i)));
      co_await sleep_for(2000ms);
      t0 = bclock::now();
      for (int i = 0; i < N; ++i) {
        if (virDomainDestroy(doms[i]) < 0) lv_fail("virDomainDestroy");
        wait_gone(pids[i]);
      }
      R("destroy20seq").c[c_lv].v.push_back(ms_since(t0));
      for (auto d : doms) virDomainFree(d);
    }
  }
  {
    // covirt: N coroutines on this one io_context
    auto t0 = bclock::now();
    co_await parallel(N, [&](int i) -> asio::awaitable<void> {
      co_await conn.async_create_xml(guest_xml(gname("cvn", i)), 0);
    });
    R("start20").c[c_cv].v.push_back(ms_since(t0));
    std::vector<pid_t> pids;
    for (int i = 0; i < N; ++i) pids.push_back(find_guest_pid(gname("cvn", i)));
    co_await sleep_for(2000ms);
    t0 = bclock::now();
    co_await parallel(N, [&](int i) -> asio::awaitable<void> {
      co_await conn.async_destroy(gname("cvn", i));
      while (!gone(pids[i])) co_await sleep_for(1ms);  // (already gone: destroy waits for the exit)
    });
    R("destroy20").c[c_cv].v.push_back(ms_since(t0));

    if (g_sequential && burst == 0) {  // once: these take long
      t0 = bclock::now();
      for (int i = 0; i < N; ++i) co_await conn.async_create_xml(guest_xml(gname("cvs", i)), 0);
      R("start20seq").c[c_cv].v.push_back(ms_since(t0));
      pids.clear();
      for (int i = 0; i < N; ++i) pids.push_back(find_guest_pid(gname("cvs", i)));
      co_await sleep_for(2000ms);
      t0 = bclock::now();
      for (int i = 0; i < N; ++i) {
        co_await conn.async_destroy(gname("cvs", i));
        wait_gone(pids[i]);
      }
      R("destroy20seq").c[c_cv].v.push_back(ms_since(t0));
    }
  }
  {
    // raw, N at once from one blocking thread: fork+exec all N, then connect/negotiate/cont
    // each in turn (the QEMUs initialise in parallel meanwhile); then quit all N, then reap all.
    std::vector<raw_guest> gs;
    auto t0 = bclock::now();
    for (int i = 0; i < N; ++i) gs.push_back(raw_spawn_guest(gname("rawn", i)));
    for (auto& g : gs) raw_finish_start(g);
    R("start20").c[c_raw].v.push_back(ms_since(t0));
    co_await sleep_for(2000ms);
    t0 = bclock::now();
    for (auto& g : gs) {
      std::size_t len = std::strlen("{\"execute\":\"quit\"}\n");
      if (::write(g.fd, "{\"execute\":\"quit\"}\n", len) != static_cast<ssize_t>(len))
        throw std::runtime_error("raw: write failed");
    }
    for (auto& g : gs) {
      for (;;) {
        std::string l = raw_line(g);
        if (l.find("\"return\"") != std::string::npos) break;
      }
      int st;
      while (::waitpid(g.pid, &st, 0) < 0 && errno == EINTR) {
      }
      ::close(g.fd);
    }
    R("destroy20").c[c_raw].v.push_back(ms_since(t0));
  }
  {
    // raw: N blocking starts and destroys one after another (the sequential limit)
    if (g_sequential && burst == 0) {  // once: these take long
      std::vector<raw_guest> gs;
      auto t0 = bclock::now();
      for (int i = 0; i < N; ++i) gs.push_back(raw_start(gname("raws", i)));
      R("start20seq").c[c_raw].v.push_back(ms_since(t0));
      co_await sleep_for(2000ms);
      t0 = bclock::now();
      for (auto& g : gs) raw_destroy(g);
      R("destroy20seq").c[c_raw].v.push_back(ms_since(t0));
    }
  }

  }  // bursts

  co_await conn.async_close();
}

// ---------------------------------------------------------------------------------------------
// Output

std::string fmt(double v, const std::string& unit) {
  if (std::isnan(v)) return "-";
  char b[32];
  if (unit == "KiB") std::snprintf(b, sizeof b, "%.0f", v);
  else if (v < 10) std::snprintf(b, sizeof b, "%.3f", v);
  else if (v < 1000) std::snprintf(b, sizeof b, "%.1f", v);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}
std::string fmt_x(double a, double b) {
  if (std::isnan(a) || std::isnan(b) || b == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", a / b);
  return buf;
}

void print_table() {
  std::printf("\nMedians (ms unless said). covirt/raw: time ratio (1.00x = as fast as the raw client);"
              " libvirt/covirt: how many times faster covirt is.\n\n");
  std::printf("%-42s | %9s | %9s | %9s | %10s | %14s | %s\n", "operation", "raw QMP", "libvirt", "covirt",
              "covirt/raw", "libvirt/covirt", "n");
  std::printf("%s\n", std::string(112, '-').c_str());
  for (auto& r : g_rows) {
    double raw = r.c[c_raw].median(), lv = r.c[c_lv].median(), cv = r.c[c_cv].median();
    if (std::isnan(lv) && std::isnan(cv)) continue;
    std::string name = r.name;
    if (auto at = name.find(" N "); at != std::string::npos) name.replace(at + 1, 1, std::to_string(g_guests));
    if (r.unit != "ms") name += " (" + r.unit + ")";
    std::printf("%-42s | %9s | %9s | %9s | %10s | %14s | %zu\n", name.c_str(), fmt(raw, r.unit).c_str(),
                fmt(lv, r.unit).c_str(), fmt(cv, r.unit).c_str(), fmt_x(cv, raw).c_str(), fmt_x(lv, cv).c_str(),
                std::max({r.c[c_raw].v.size(), r.c[c_lv].v.size(), r.c[c_cv].v.size()}));
  }
  std::printf("\n[1] raw: blocking client; libvirt: virDomainQemuMonitorCommand; covirt: covirt::qemu::qmp alone\n"
              "[2] covirt: connection::async_qemu_monitor_command (driver + connection layers)\n"
              "[3] raw: fork+exec all, then each connect+cont in turn; libvirt: %d threads, one connection each;\n    covirt: %d coroutines on one io_context\n"
              "[4] (VmRSS with %d running guests - VmRSS with none) / %d; libvirt: libvirtd's, covirt: this process's\n"
              "[5] covirt on a second connection whose state_dir is on tmpfs (/dev/shm): without the fsync of its\n"
              "    runtime record on disk (/tmp here); raw column repeated\n",
              g_guests, g_guests, g_rss_guests, g_rss_guests);

  std::printf("\nSpread (p10 / p90, ms):\n");
  for (auto& r : g_rows) {
    if (r.unit != "ms" || r.c[c_cv].v.size() < 3) continue;
    std::printf("  %-40s", r.name.c_str());
    const char* names[] = {"raw", "libvirt", "covirt"};
    for (int k = 0; k < n_cols; ++k)
      if (!r.c[k].v.empty())
        std::printf("  %s %s/%s", names[k], fmt(r.c[k].pct(0.1), "ms").c_str(), fmt(r.c[k].pct(0.9), "ms").c_str());
    std::printf("\n");
  }

  std::printf("\nTargets:\n");
  int met = 0, total = 0;
  auto target = [&](const char* what, double v, bool ok, const char* goal) {
    ++total;
    if (std::isnan(v)) {
      std::printf("  %-58s %-10s (%s)\n", what, "not measured", goal);
      return;
    }
    met += ok;
    std::printf("  %-58s %6.2fx  %-6s (%s)\n", what, v, ok ? "MET" : "MISSED", goal);
  };
  auto ratio = [](const char* k, int a, int b) { return R(k).c[a].median() / R(k).c[b].median(); };
  double v;
  v = ratio("qmp", c_cv, c_raw);
  target("QMP round trip, covirt::qemu::qmp / raw", v, v <= 1.2, "<= 1.2x");
  v = ratio("qmpconn", c_cv, c_raw);
  target("QMP round trip, connection monitor_command / raw", v, v <= 1.2, "<= 1.2x");
  v = ratio("suspend", c_cv, c_raw);
  target("suspend+resume, covirt / raw", v, v <= 1.2, "<= 1.2x");
  v = ratio("start", c_cv, c_raw);
  target("define+start, covirt / raw QEMU start", v, v <= 1.5, "<= 1.5x");
  v = ratio("destroy", c_lv, c_cv);
  target("destroy, libvirt / covirt", v, v >= 10, ">= 10x faster");
  v = ratio("start20", c_lv, c_cv);
  target("N concurrent starts, libvirt / covirt", v, v >= 5, ">= 5x faster");
  std::printf("Met %d of %d targets.\n", met, total);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&](double lo) {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      double v = std::atof(argv[++i]);
      if (!(v >= lo)) { std::fprintf(stderr, "%s: bad value\n", a.c_str()); std::exit(2); }
      return v;
    };
    if (a == "--libvirt-uri" && i + 1 < argc) g_lv_uri = argv[++i];
    else if (a == "--libvirtd-pid") g_libvirtd_pid = static_cast<pid_t>(num(1));
    else if (a == "--iterations") g_iterations = static_cast<int>(num(1));
    else if (a == "--samples") g_samples = static_cast<int>(num(1));
    else if (a == "--rounds") g_rounds = static_cast<int>(num(1));
    else if (a == "--guests") g_guests = static_cast<int>(num(1));
    else if (a == "--bursts") g_bursts = static_cast<int>(num(1));
    else if (a == "--rss-guests") g_rss_guests = static_cast<int>(num(1));
    else if (a == "--max-seconds") g_max_seconds = num(1);
    else if (a == "--no-sequential") g_sequential = false;
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: %s --libvirt-uri URI [--libvirtd-pid PID] [options]\n"
          "  --libvirt-uri URI   libvirtd to compare with, e.g. qemu+unix:///system?socket=/tmp/X/libvirt-sock\n"
          "  --libvirtd-pid PID  libvirtd's pid, for its RSS (row skipped without it)\n"
          "  --iterations N      start/destroy iterations per side (default 10)\n"
          "  --samples N         fast operations per side per round (default 150)\n"
          "  --rounds N          rounds of the fast operations, sides in rotating order (default 10)\n"
          "  --guests N          guests started at once (default 20)\n"
          "  --bursts K          how many times to start and destroy them at once (default 3; medians)\n"
          "  --rss-guests N      running guests for the RSS row (default 10)\n"
          "  --no-sequential     skip the one-after-another N-guest rows\n"
          "  --max-seconds S     watchdog: kill everything and fail after S seconds (default 900)\n",
          argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  if (g_lv_uri.empty()) {
    std::fprintf(stderr, "--libvirt-uri is required (try --help)\n");
    return 2;
  }

  char tmpl[] = "/tmp/cvbq-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  g_tmp = tmpl;
  g_tag = fs::path(g_tmp).filename().string();
  fs::create_directories(g_tmp + "/raw");

  // Watchdog: whatever hangs, nothing stays behind.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::duration<double>(g_max_seconds));
    std::fprintf(stderr, "benchmark: watchdog after %.0f s, killing guests\n", g_max_seconds);
    kill_marked();
    ::_exit(3);
  }).detach();

  declare_rows();
  int rc = 0;
  virConnectPtr lv = nullptr;
  try {
    lv = lv_open();
    unsigned long lib = 0, hv = 0;
    virGetVersion(&lib, nullptr, nullptr);
    virConnectGetVersion(lv, &hv);
    std::printf("covirt QEMU driver vs libvirt %lu.%lu.%lu (libvirtd, %s) vs raw QMP client; QEMU %lu.%lu.%lu, TCG,\n"
                "64 MiB diskless q35 guest; %d start/destroy iterations, %d x %d fast samples, %d guests at once;"
                " marker %s\n",
                lib / 1000000, lib / 1000 % 1000, lib % 1000, g_lv_uri.c_str(), hv / 1000000, hv / 1000 % 1000,
                hv % 1000, g_iterations, g_rounds, g_samples, g_guests, g_tmp.c_str());
    std::fflush(stdout);
    asio::io_context ioc(1);
    std::exception_ptr failure;
    asio::co_spawn(ioc, bench(lv), [&](std::exception_ptr e) { failure = e; });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    print_table();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "benchmark failed: %s\n", e.what());
    rc = 1;
  }
  if (lv) {
    lv_cleanup(lv);
    virConnectClose(lv);
  }
  kill_marked();
  std::error_code ec;
  fs::remove_all(g_tmp, ec);
  fs::remove_all("/dev/shm/" + g_tag, ec);
  return rc;
}
