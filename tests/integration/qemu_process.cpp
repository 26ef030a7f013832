// Integration tests: hypervisor processes (real QEMU, TCG) and the QEMU driver's state on disk.
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>
#include <covirt/uri.hpp>

#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using covirt::qemu::process;

// A fresh directory, removed with everything in it at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string t = (fs::temp_directory_path() / "covirt-proc-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
};

// Kills a pid when the test ends, whatever happened (and reaps it if it is our child).
struct pid_guard {
  pid_t pid = 0;
  ~pid_guard() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);  // ECHILD at once when it is not ours
    }
  }
};

std::string link_of(pid_t pid, int fd) {
  std::error_code ec;
  return fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec).string();
}

// Waits (bounded, on the io_context) until `cond` holds.
template <class Cond>
asio::awaitable<bool> eventually(asio::any_io_executor ex, Cond cond, std::chrono::milliseconds limit = 5s) {
  asio::steady_timer t(ex);
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    t.expires_after(10ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

std::vector<std::string> qemu_argv(const fs::path& dir, std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"qemu-system-x86_64", "-machine", "none", "-accel", "tcg", "-nodefaults",
                                "-display", "none", "-S", "-qmp",
                                "unix:" + (dir / "q.sock").string() + ",server=on,wait=off"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Connects to QEMU's QMP socket, reads its greeting and negotiates: QEMU is then in its main loop, with its
// signal handlers installed (a SIGTERM before that kills it without a word).
asio::awaitable<bool> qmp_greeting(asio::any_io_executor ex, const fs::path& sock) {
  asio::local::stream_protocol::socket s(ex);
  bool connected = co_await eventually(ex, [&] {
    error_code ec;
    s.close(ec);
    s.connect(asio::local::stream_protocol::endpoint(sock.string()), ec);
    return !ec;
  });
  if (!connected) co_return false;
  std::string buf;
  covirt::op_timeout deadline{ex, 5s};
  auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\n",
                                                 asio::as_tuple(deadline.bind(asio::use_awaitable)));
  if (ec || buf.find("\"QMP\"") == std::string::npos) co_return false;
  // The greeting comes from QEMU's monitor thread; a reply to a command comes from its main loop.
  buf.clear();
  std::string cmd = "{\"execute\": \"qmp_capabilities\"}\n";
  auto [wec, w] = co_await asio::async_write(s, asio::buffer(cmd), asio::as_tuple(deadline.bind(asio::use_awaitable)));
  if (wec) co_return false;
  auto [rec, r] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\n",
                                                   asio::as_tuple(deadline.bind(asio::use_awaitable)));
  co_return !rec && buf.find("\"return\"") != std::string::npos;
}

covirt::qemu::spawn_options opts(std::vector<std::string> argv, std::string log, std::string wd) {
  covirt::qemu::spawn_options o;
  o.argv = std::move(argv);
  o.log_path = std::move(log);
  o.working_dir = std::move(wd);
  return o;
}

// No child of ours is left as a zombie.
bool no_zombie_children() {
  siginfo_t si{};
  int r = ::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
  return r < 0 || si.si_pid == 0;
}

}  // namespace

TEST_CASE("process: QEMU runs in its own session, stdio to its log, nothing leaked", "[process]") {
  temp_dir dir;
  auto log = dir.path / "vm.log";
  int leak = ::open("/dev/zero", O_RDONLY);  // deliberately not close-on-exec
  REQUIRE(leak >= 0);
  pid_guard guard;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    auto p = process::spawn(ex, opts(qemu_argv(dir.path, {"-name", "guest=vm-a,debug-threads=on"}), log.string(), ""), diag);
    REQUIRE(p.has_value());
    guard.pid = p->pid();
    CHECK(p->is_child());
    CHECK(::getsid(p->pid()) == p->pid());
    CHECK(p->start_ticks() != 0);
    CHECK(co_await qmp_greeting(ex, dir.path / "q.sock"));
    CHECK(link_of(p->pid(), 0) == "/dev/null");
    CHECK(link_of(p->pid(), 1) == log.string());
    CHECK(link_of(p->pid(), 2) == log.string());
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(p->pid()) + "/fd")) {
      std::error_code ec;
      CHECK(fs::read_symlink(e.path(), ec) != "/dev/zero");
    }
    CHECK(!p->has_exited());
    CHECK(slurp(log).find("covirt: ") == 0);
    // QEMU says on stderr that it got SIGTERM: that line must land in the log.
    auto t0 = std::chrono::steady_clock::now();
    auto status = co_await p->async_terminate(5s);
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    CHECK(WIFEXITED(status));
    CHECK(p->exit_status() == status);
    CHECK(covirt::qemu::tail_of_log(log.string(), 5, p->log_offset()).find("terminating on signal 15") !=
          std::string::npos);
    CHECK(no_zombie_children());
  });
  ::close(leak);
}

TEST_CASE("process: a missing binary or a bad working dir fails at once, with no zombie", "[process]") {
  temp_dir dir;
  asio::io_context ioc;
  diagnostics diag;
  auto t0 = std::chrono::steady_clock::now();
  auto p = process::spawn(ioc.get_executor(), opts({"/nonexistent/qemu-system-x86_64", "-S"}, (dir.path / "l").string(), ""), diag);
  REQUIRE(!p);
  CHECK(p.error() == errc::system_error);
  CHECK(std::string(diag.message()).find("cannot execute '/nonexistent/qemu-system-x86_64'") != std::string::npos);
  CHECK(std::string(diag.message()).find("No such file or directory") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK(no_zombie_children());

  p = process::spawn(ioc.get_executor(), opts({"qemu-system-nosuch-arch"}, "", ""), diag);
  REQUIRE(!p);
  CHECK(std::string(diag.message()).find("not found in PATH") != std::string::npos);

  // Not executable: exec itself fails in the child and the errno comes back through the pipe.
  std::ofstream(dir.path / "script") << "#!/bin/sh\n";
  p = process::spawn(ioc.get_executor(), opts({(dir.path / "script").string()}, "", ""), diag);
  REQUIRE(!p);
  CHECK(std::string(diag.message()).find("Permission denied") != std::string::npos);

  p = process::spawn(ioc.get_executor(), opts({"/bin/true"}, "", (dir.path / "nope").string()), diag);
  REQUIRE(!p);
  CHECK(std::string(diag.message()).find("working directory") != std::string::npos);
  CHECK(no_zombie_children());

  p = process::spawn(ioc.get_executor(), opts({}, "", ""), diag);
  REQUIRE(!p);
  CHECK(p.error() == errc::invalid_arg);
  p = process::spawn(ioc.get_executor(), opts({"/bin/true"}, (dir.path / "no" / "such" / "log").string(), ""), diag);
  REQUIRE(!p);
  CHECK(std::string(diag.message()).find("cannot open log file") != std::string::npos);
}

TEST_CASE("process: QEMU refusing its options exits; the log's tail says why", "[process]") {
  temp_dir dir;
  auto log = dir.path / "vm.log";
  pid_guard guard;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    {
      auto argv = qemu_argv(dir.path);
      argv[2] = "nosuchmachine";
      auto p = process::spawn(ex, opts(argv, log.string(), ""), diag);
      REQUIRE(p.has_value());  // exec worked; QEMU itself complains
      guard.pid = p->pid();
      covirt::op_timeout deadline{ex, 10s};
      auto [ec, status] = co_await p->async_wait_exit(asio::as_tuple(deadline.bind(asio::use_awaitable)));
      REQUIRE(!ec);
      guard.pid = 0;
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 1);
      CHECK(covirt::qemu::describe_exit(status) == "exited with status 1");
      auto tail = covirt::qemu::tail_of_log(log.string(), 10, p->log_offset());
      CHECK(tail.find("unsupported machine type") != std::string::npos);
      CHECK(tail.find("covirt: ") == std::string::npos);  // only this run's output
    }
    {
      // A bad disk path, in the same log: the tail of the second run names the disk.
      auto p = process::spawn(ex, opts(qemu_argv(dir.path, {"-drive", "file=/nonexistent/disk.img,format=raw,if=none,id=d0"}),
                                   log.string(), ""), diag);
      REQUIRE(p.has_value());
      guard.pid = p->pid();
      int status = co_await p->async_wait_exit();
      guard.pid = 0;
      CHECK(WEXITSTATUS(status) == 1);
      auto tail = covirt::qemu::tail_of_log(log.string(), 3, p->log_offset());
      CHECK(tail.find("Could not open '/nonexistent/disk.img'") != std::string::npos);
      CHECK(tail.find("unsupported machine type") == std::string::npos);
      // A second wait after the exit completes at once with the same status.
      CHECK(co_await p->async_wait_exit() == status);
    }
    CHECK(no_zombie_children());
  });
}

TEST_CASE("process: a process ignoring SIGTERM gets SIGKILL after the grace", "[process]") {
  temp_dir dir;
  pid_guard guard;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    auto p = process::spawn(ex, opts({"bash", "-c", "trap '' TERM; exec sleep 100"}, (dir.path / "log").string(), ""), diag);
    REQUIRE(p.has_value());
    guard.pid = p->pid();
    // Once it is `sleep`, the trap is in place (an ignored signal survives exec).
    auto comm = [&] { return slurp("/proc/" + std::to_string(p->pid()) + "/comm"); };
    REQUIRE(co_await eventually(ex, [&] { return comm() == "sleep\n"; }));
    auto t0 = std::chrono::steady_clock::now();
    int status = co_await p->async_terminate(300ms);
    auto took = std::chrono::steady_clock::now() - t0;
    guard.pid = 0;
    CHECK(took >= 300ms);
    CHECK(took < 3s);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(covirt::qemu::describe_exit(status) == "killed by signal 9 (SIGKILL)");
    CHECK(!p->signal(SIGTERM));  // gone
    CHECK(no_zombie_children());
  });
}

TEST_CASE("process: waits can be cancelled and run side by side", "[process]") {
  temp_dir dir;
  pid_guard guard;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    auto p = process::spawn(ex, opts({"sleep", "100"}, "", ""), diag);
    REQUIRE(p.has_value());
    guard.pid = p->pid();
    {
      covirt::op_timeout deadline{ex, 100ms};
      auto [ec, status] = co_await p->async_wait_exit(asio::as_tuple(deadline.bind(asio::use_awaitable)));
      CHECK(ec == asio::error::operation_aborted);
      CHECK(deadline.expired());
      CHECK(status == process::unknown_status);
    }
    CHECK(!p->has_exited());
    // Two waiters and a signal: both see the same status.
    std::optional<int> a, b;
    p->async_wait_exit([&](error_code ec, int s) { if (!ec) a = s; });
    p->async_wait_exit([&](error_code ec, int s) { if (!ec) b = s; });
    CHECK(p->signal(SIGKILL));
    REQUIRE(co_await eventually(ex, [&] { return a && b; }));
    guard.pid = 0;
    CHECK(WTERMSIG(*a) == SIGKILL);
    CHECK(*a == *b);
    // Destroying the object aborts its waits and leaves the process alone.
    auto q = process::spawn(ex, opts({"sleep", "100"}, "", ""), diag);
    REQUIRE(q.has_value());
    pid_guard qguard{q->pid()};
    std::optional<error_code> aborted;
    q->async_wait_exit([&](error_code ec, int) { aborted = ec; });
    { auto gone = std::move(*q); }
    REQUIRE(co_await eventually(ex, [&] { return aborted.has_value(); }));
    CHECK(*aborted == asio::error::operation_aborted);
    CHECK(::kill(qguard.pid, 0) == 0);
    // Terminating what is already gone completes at once.
    CHECK(co_await p->async_terminate(1s) == *a);
    CHECK(no_zombie_children());
  });
}

TEST_CASE("process: extra environment and passed descriptors reach the child", "[process]") {
  temp_dir dir;
  auto log = dir.path / "log";
  int keep = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  REQUIRE(keep >= 3);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    auto o = opts({"sh", "-c", "echo \"x=$COVIRT_T\"; readlink /proc/self/fd/" + std::to_string(keep) + "; pwd"},
                  log.string(), dir.path.string());
    o.env = {"COVIRT_T=hello"};
    o.pass_fds = {keep};
    auto p = process::spawn(ex, o, diag);
    REQUIRE(p.has_value());
    pid_guard guard{p->pid()};
    int status = co_await p->async_wait_exit();
    guard.pid = 0;
    CHECK(status == 0);
    CHECK(covirt::qemu::tail_of_log(log.string(), 3, p->log_offset()) ==
          "x=hello\n/dev/zero\n" + dir.path.string());
    o.pass_fds = {1};
    CHECK(process::spawn(ex, o, diag).error() == errc::invalid_arg);
  });
  ::close(keep);
}

TEST_CASE("process: attach to a guest that is not our child; its exit is seen through the pidfd", "[process]") {
  pid_guard guard;
  std::string marker = "29." + std::to_string(::getpid());
  // The shell exits at once, so `sleep` is orphaned: reparented away from us.
  std::string cmd = "bash -c 'sleep " + marker + " </dev/null >/dev/null 2>&1 & echo $!'";
  FILE* f = ::popen(cmd.c_str(), "r");
  REQUIRE(f);
  char buf[64] = {};
  REQUIRE(std::fgets(buf, sizeof buf, f));
  ::pclose(f);
  pid_t pid = std::atoi(buf);
  REQUIRE(pid > 0);
  guard.pid = pid;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    REQUIRE(co_await eventually(ex, [&] { return covirt::qemu::process_cmdline(pid).size() == 2; }));

    auto wrong = process::attach(ex, pid, "guest=someone-else", diag);
    REQUIRE(!wrong);
    CHECK(wrong.error() == errc::operation_failed);
    CHECK(std::string(diag.message()).find("lacks 'guest=someone-else'") != std::string::npos);
    CHECK(process::attach(ex, pid, "29", diag).error() == errc::operation_failed);  // whole arguments only
    CHECK(process::attach(ex, pid, "", diag).error() == errc::invalid_arg);
    auto reused = process::attach(ex, pid, marker, diag, covirt::qemu::process_start_ticks(pid) + 1);
    REQUIRE(!reused);
    CHECK(std::string(diag.message()).find("pid was reused") != std::string::npos);

    auto p = process::attach(ex, pid, marker, diag, covirt::qemu::process_start_ticks(pid));
    REQUIRE(p.has_value());
    CHECK(!p->is_child());
    CHECK(!p->has_exited());
    ::kill(pid, SIGKILL);
    auto t0 = std::chrono::steady_clock::now();
    covirt::op_timeout deadline{ex, 5s};
    auto [ec, status] = co_await p->async_wait_exit(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(!ec);
    CHECK(status == process::unknown_status);
    CHECK(took < 1s);  // PID 1 reaps orphans ~2 s late here; the pidfd does not wait for that
    guard.pid = 0;
  });
}

TEST_CASE("process: a guest outlives its process object and is re-attached by marker", "[process]") {
  temp_dir dir;
  pid_guard guard;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    pid_t pid;
    std::uint64_t ticks;
    {
      auto p = process::spawn(ex, opts(qemu_argv(dir.path, {"-name", "guest=vm-b,debug-threads=on", "-uuid",
                                                         "c7a5fdbd-cdaf-9455-926a-d65c16db1809"}),
                                   (dir.path / "log").string(), ""), diag);
      REQUIRE(p.has_value());
      pid = guard.pid = p->pid();
      ticks = p->start_ticks();
    }  // the object is gone, the guest is not
    CHECK(co_await qmp_greeting(ex, dir.path / "q.sock"));
    CHECK(::kill(pid, 0) == 0);
    CHECK(process::attach(ex, pid, "guest=vm", diag).error() == errc::operation_failed);  // a prefix is not a match
    auto by_uuid = process::attach(ex, pid, "c7a5fdbd-cdaf-9455-926a-d65c16db1809", diag, ticks);
    CHECK(by_uuid.has_value());
    auto p = process::attach(ex, pid, "guest=vm-b", diag, ticks);
    REQUIRE(p.has_value());
    CHECK(p->is_child());  // still ours: this program never restarted
    int status = co_await p->async_terminate(5s);
    guard.pid = 0;
    CHECK(WIFEXITED(status));  // reaped through the pidfd: no zombie
    CHECK(no_zombie_children());
    CHECK(process::attach(ex, pid, "guest=vm-b", diag).error() == errc::no_domain);
  });
}

TEST_CASE("process: tail_of_log", "[process]") {
  temp_dir dir;
  auto log = (dir.path / "l").string();
  CHECK(covirt::qemu::tail_of_log(log) == "");
  {
    std::ofstream out(log);
    for (int i = 1; i <= 30; ++i) out << "line " << i << "\n";
  }
  CHECK(covirt::qemu::tail_of_log(log, 2) == "line 29\nline 30");
  CHECK(covirt::qemu::tail_of_log(log, 100).find("line 1\n") == 0);
  auto off = fs::file_size(log);
  std::ofstream(log, std::ios::app) << "fresh\n";
  CHECK(covirt::qemu::tail_of_log(log, 10, off) == "fresh");
  // A huge log: only the end is read, and no partial first line is returned.
  {
    std::ofstream out(log, std::ios::app);
    for (int i = 0; i < 20000; ++i) out << "filler " << i << "\n";
  }
  auto t = covirt::qemu::tail_of_log(log, 100000);
  CHECK(t.size() <= 64 * 1024);
  CHECK(t.find("filler") == 0);
  CHECK(t.substr(t.size() - 12) == "filler 19999");
}

// ---------------------------------------------------------------- state

TEST_CASE("state: names that are not safe file names are refused", "[state]") {
  diagnostics diag;
  for (std::string bad : {std::string("../x"), std::string("a/b"), std::string(".hidden"), std::string(""),
                          std::string("."), std::string(".."), std::string("a\nb"), std::string("a\0b", 3),
                          std::string("tab\there"), std::string(201, 'x'), std::string("\xff\xfe"),
                          std::string("/abs")}) {
    auto r = covirt::qemu::check_name_for_file(bad, diag);
    CHECK(!r);
    if (!r) CHECK(r.error() == errc::invalid_arg);
    CHECK(std::string(diag.message()).find("domain name") != std::string::npos);
  }
  for (std::string good : {std::string("vm1"), std::string("web-1_a.b"), std::string("a..b"), std::string("caf\xc3\xa9"),
                           std::string("with space"), std::string(200, 'y')})
    CHECK(covirt::qemu::check_name_for_file(good, diag).has_value());
}

TEST_CASE("state: atomic writes replace whole files and leave no temporaries", "[state]") {
  temp_dir dir;
  diagnostics diag;
  auto f = dir.path / "vm.xml";
  REQUIRE(covirt::qemu::write_file_atomic(f, "old definition\n", diag));
  CHECK(slurp(f) == "old definition\n");
  CHECK((fs::status(f).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  REQUIRE(covirt::qemu::write_file_atomic(f, "new definition\n", diag));
  CHECK(slurp(f) == "new definition\n");
  auto entries = [&] {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(dir.path)) s.insert(e.path().filename().string());
    return s;
  };
  CHECK(entries() == std::set<std::string>{"vm.xml"});

  SECTION("a write that fails midway (file size limit) keeps the old content") {
    // RLIMIT_FSIZE binds root too: the write fails with EFBIG after the first kilobyte.
    auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit saved{};
    ::getrlimit(RLIMIT_FSIZE, &saved);
    rlimit small = saved;
    small.rlim_cur = 1024;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto r = covirt::qemu::write_file_atomic(f, std::string(100000, 'z'), diag);
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::signal(SIGXFSZ, old_handler);
    REQUIRE(!r);
    CHECK(r.error() == errc::write_failed);
    CHECK(std::string(diag.message()).find("File too large") != std::string::npos);
    CHECK(slurp(f) == "new definition\n");
    CHECK(entries() == std::set<std::string>{"vm.xml"});
  }
  SECTION("a parent directory that does not exist") {
    auto r = covirt::qemu::write_file_atomic(dir.path / "no" / "vm.xml", "x", diag);
    REQUIRE(!r);
    CHECK(r.error() == errc::write_failed);
    CHECK(entries() == std::set<std::string>{"vm.xml"});
  }
  SECTION("reads are bounded") {
    CHECK(covirt::qemu::read_file(f, 1000, diag).value() == "new definition\n");
    auto r = covirt::qemu::read_file(f, 4, diag);
    REQUIRE(!r);
    CHECK(r.error() == errc::read_failed);
    CHECK(std::string(diag.message()).find("larger than 4 bytes") != std::string::npos);
    CHECK(!covirt::qemu::read_file(dir.path / "missing", 10, diag));
    CHECK(covirt::qemu::read_file_if_exists(dir.path / "missing", 10, diag).value() == std::nullopt);
    CHECK(!covirt::qemu::read_file(dir.path, 10, diag));  // a directory
  }
}

TEST_CASE("state: a define that crashes midway never loses the previous definition", "[state]") {
  temp_dir dir;
  diagnostics diag;
  covirt::qemu::paths p{dir.path / "etc", dir.path / "run", dir.path / "log"};
  fs::create_directories(p.config_dir);
  REQUIRE(covirt::qemu::save_definition(p, "vm1", "<domain>old</domain>", diag));
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The writer dies of SIGXFSZ in the middle of the write: a real crash, not a returned error.
    rlimit small{4096, 4096}, no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::setrlimit(RLIMIT_FSIZE, &small);
    diagnostics d;
    (void)covirt::qemu::save_definition(p, "vm1", "<domain>" + std::string(1 << 20, 'n') + "</domain>", d);
    ::_exit(0);
  }
  int st;
  REQUIRE(::waitpid(child, &st, 0) == child);
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGXFSZ);
  CHECK(covirt::qemu::load_definition(p, "vm1", diag).value() == std::optional<std::string>("<domain>old</domain>"));
  CHECK(covirt::qemu::list_definitions(p, diag).value() == std::vector<std::string>{"vm1"});  // the torn temp is ignored
  std::size_t temps = 0;
  for (const auto& e : fs::directory_iterator(p.config_dir)) temps += e.path().filename().string().starts_with(".");
  CHECK(temps == 1);
}

TEST_CASE("state: definitions and autostart", "[state]") {
  temp_dir dir;
  diagnostics diag;
  covirt::qemu::paths p{dir.path / "etc", dir.path / "run", dir.path / "log"};
  fs::create_directories(p.config_dir);
  CHECK(covirt::qemu::list_definitions(p, diag).value().empty());
  REQUIRE(covirt::qemu::save_definition(p, "b", "<domain>b</domain>", diag));
  REQUIRE(covirt::qemu::save_definition(p, "a", "<domain>a</domain>", diag));
  CHECK(!covirt::qemu::save_definition(p, "../evil", "x", diag));
  CHECK(covirt::qemu::list_definitions(p, diag).value() == std::vector<std::string>{"a", "b"});
  CHECK(covirt::qemu::load_definition(p, "nope", diag).value() == std::nullopt);
  CHECK(!covirt::qemu::get_autostart(p, "a"));
  REQUIRE(covirt::qemu::set_autostart(p, "a", true, diag));
  CHECK(covirt::qemu::get_autostart(p, "a"));
  CHECK(fs::read_symlink(p.config_dir / "autostart" / "a.xml") == "../a.xml");
  CHECK(slurp(p.config_dir / "autostart" / "a.xml") == "<domain>a</domain>");
  auto r = covirt::qemu::set_autostart(p, "ghost", true, diag);
  REQUIRE(!r);
  CHECK(r.error() == errc::no_domain);
  REQUIRE(covirt::qemu::remove_definition(p, "a", diag));
  CHECK(!covirt::qemu::get_autostart(p, "a"));
  CHECK(covirt::qemu::list_definitions(p, diag).value() == std::vector<std::string>{"b"});
  REQUIRE(covirt::qemu::remove_definition(p, "a", diag));  // already gone: fine
}

TEST_CASE("state: runtime records round trip; corrupt ones are reported and skipped", "[state]") {
  temp_dir dir;
  diagnostics diag;
  covirt::qemu::paths p{dir.path / "etc", dir.path / "run", dir.path / "log"};
  fs::create_directories(p.state_dir);
  covirt::qemu::runtime_record r;
  r.name = "web1";
  r.uuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";
  r.id = 7;
  r.pid = 4242;
  r.pid_start_ticks = 123456789012ULL;
  r.boot_id = covirt::qemu::current_boot_id();
  r.qmp_socket = (p.state_dir / "web1.qmp").string();
  r.log_path = (p.log_dir / "web1.log").string();
  r.started_unix = 1700000000;
  r.emulator = "/usr/bin/qemu-system-x86_64";
  r.marker = "guest=web1";
  r.live_xml = "<domain type='qemu'><name>web1</name><description>\"quoted\" \xc3\xa9\n</description></domain>";
  r.extra = {{"vnc_port", "5901"}, {"reason", "booted"}};
  CHECK(r.boot_id.size() == 36);
  REQUIRE(covirt::qemu::save_runtime(p, r, diag));
  auto back = covirt::qemu::load_runtime(p, "web1", diag);
  REQUIRE(back.has_value());
  REQUIRE(back->has_value());
  CHECK(**back == r);  // every field, extra included
  CHECK(covirt::qemu::load_runtime(p, "absent", diag).value() == std::nullopt);

  auto r2 = r;
  r2.name = "db";
  r2.pid = 99;
  REQUIRE(covirt::qemu::save_runtime(p, r2, diag));
  std::ofstream(p.state_dir / "broken.json") << "{\"name\": \"broken\", \"pid\": ";
  std::ofstream(p.state_dir / "wrongtype.json") << R"({"name": "wrongtype", "pid": "12", "qmp_socket": "/x"})";
  std::ofstream(p.state_dir / "liar.json") << R"({"name": "someone", "pid": 12, "qmp_socket": "/x"})";
  std::ofstream(p.state_dir / ".web1.json.tmp-abc123") << "{";  // a writer's leftover
  std::ofstream(p.state_dir / "notes.txt") << "ignored";
  std::vector<std::string> problems;
  auto all = covirt::qemu::list_runtime(p, diag, &problems);
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].name == "db");
  CHECK((*all)[1].name == "web1");
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].find("broken.json") != std::string::npos);
  CHECK(problems[1].find("liar.json") != std::string::npos);
  CHECK(problems[2].find("wrongtype.json") != std::string::npos);
  CHECK(std::string(diag.message()).find("broken.json") != std::string::npos);
  auto bad = covirt::qemu::load_runtime(p, "broken", diag);
  REQUIRE(!bad);
  CHECK(bad.error() == errc::parse_failed);

  REQUIRE(covirt::qemu::remove_runtime(p, "web1", diag));
  REQUIRE(covirt::qemu::remove_runtime(p, "web1", diag));
  CHECK(covirt::qemu::load_runtime(p, "web1", diag).value() == std::nullopt);
  auto evil = r;
  evil.name = "a/b";
  CHECK(!covirt::qemu::save_runtime(p, evil, diag));
}

TEST_CASE("state: queued runtime records: latest wins, readers see them, removals are final", "[state]") {
  temp_dir dir;
  covirt::qemu::paths p{dir.path / "etc", dir.path / "run", dir.path / "log"};
  fs::create_directories(p.state_dir);
  diagnostics diag;
  covirt::qemu::runtime_record r;
  r.name = "q1";
  r.uuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";
  r.pid = 1;
  r.qmp_socket = (p.state_dir / "q1.qmp").string();
  // A burst of state changes: the reader (list_runtime drains the queue) sees the last one.
  for (int i = 0; i < 50; ++i) {
    r.extra["state"] = std::to_string(i);
    covirt::qemu::save_runtime_later(p, r);
  }
  auto all = covirt::qemu::list_runtime(p, diag);
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 1);
  CHECK(all->at(0).extra.at("state") == "49");
  // A queued write never brings back a record removed after it...
  r.extra["state"] = "stale";
  covirt::qemu::save_runtime_later(p, r);
  REQUIRE(covirt::qemu::remove_runtime(p, "q1", diag));
  covirt::qemu::flush_runtime_writes();
  CHECK(covirt::qemu::load_runtime(p, "q1", diag).value() == std::nullopt);
  // ... nor overwrites a record written synchronously after it.
  covirt::qemu::save_runtime_later(p, r);
  r.extra["state"] = "fresh";
  REQUIRE(covirt::qemu::save_runtime(p, r, diag));
  covirt::qemu::flush_runtime_writes();
  auto back = covirt::qemu::load_runtime(p, "q1", diag);
  REQUIRE(back.has_value());
  REQUIRE(back->has_value());
  CHECK((*back)->extra.at("state") == "fresh");
  // No temporary files are left behind.
  std::size_t files = 0;
  for (auto& e : fs::directory_iterator(p.state_dir)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 1);
}

TEST_CASE("state: resolve_paths honours the URI query and the XDG variables", "[state]") {
  temp_dir dir;
  diagnostics diag;
  auto parse = [&](const std::string& s) {
    auto u = covirt::parse_uri(s, diag);
    REQUIRE(u.has_value());
    return *u;
  };
  auto mode_of = [](const fs::path& d) { return fs::status(d).permissions() & fs::perms::all; };
  {
    auto c = dir.path / "cfg", s = dir.path / "st";
    auto r = covirt::qemu::resolve_paths(parse("qemu:///session?config_dir=" + c.string() + "&state_dir=" + s.string()), diag);
    REQUIRE(r.has_value());
    CHECK(r->config_dir == c);
    CHECK(r->state_dir == s);
    CHECK(r->log_dir == s / "log");
    CHECK(!r->privileged);
    CHECK(fs::is_directory(c));
    CHECK(fs::is_directory(s / "log"));
    CHECK(mode_of(c) == fs::perms::owner_all);
    CHECK(mode_of(s) == fs::perms::owner_all);
  }
  {
    auto r = covirt::qemu::resolve_paths(parse("qemu:///system?config_dir=" + (dir.path / "sc").string() + "&state_dir=" +
                                               (dir.path / "ss").string() + "&log_dir=" + (dir.path / "sl").string()),
                                         diag);
    REQUIRE(r.has_value());
    CHECK(r->privileged);
    CHECK(r->log_dir == dir.path / "sl");
    CHECK(mode_of(dir.path / "sc") == (fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                       fs::perms::others_read | fs::perms::others_exec));
  }
  {
    // XDG variables for the session (saved and restored around the check).
    struct env_restore {
      std::vector<std::pair<std::string, std::optional<std::string>>> saved;
      void set(const char* k, const std::string& v) {
        const char* o = std::getenv(k);
        saved.emplace_back(k, o ? std::optional<std::string>(o) : std::nullopt);
        ::setenv(k, v.c_str(), 1);
      }
      ~env_restore() {
        for (auto& [k, v] : saved) {
          if (v) ::setenv(k.c_str(), v->c_str(), 1);
          else ::unsetenv(k.c_str());
        }
      }
    } env;
    env.set("XDG_CONFIG_HOME", (dir.path / "xc").string());
    env.set("XDG_RUNTIME_DIR", (dir.path / "xr").string());
    env.set("XDG_CACHE_HOME", (dir.path / "xk").string());
    auto r = covirt::qemu::resolve_paths(parse("qemu:///session"), diag);
    REQUIRE(r.has_value());
    CHECK(r->config_dir == dir.path / "xc" / "covirt" / "qemu");
    CHECK(r->state_dir == dir.path / "xr" / "covirt" / "qemu");
    CHECK(r->log_dir == dir.path / "xk" / "covirt" / "qemu" / "log");
    CHECK(fs::is_directory(r->state_dir));
    // The query still wins over the environment.
    auto q = covirt::qemu::resolve_paths(parse("qemu:///session?state_dir=" + (dir.path / "q").string()), diag);
    REQUIRE(q.has_value());
    CHECK(q->config_dir == dir.path / "xc" / "covirt" / "qemu");
    CHECK(q->state_dir == dir.path / "q");
  }
  auto rel = covirt::qemu::resolve_paths(parse("qemu:///session?config_dir=relative/dir"), diag);
  REQUIRE(!rel);
  CHECK(rel.error() == errc::invalid_arg);
  auto other = covirt::qemu::resolve_paths(parse("qemu:///elsewhere"), diag);
  REQUIRE(!other);
  CHECK(other.error() == errc::invalid_arg);
  // A state dir so deep that the QMP socket path cannot be a unix socket address.
  covirt::qemu::paths deep{dir.path, dir.path / std::string(100, 'd'), dir.path};
  auto files = covirt::qemu::files_for(deep, "vm", diag);
  REQUIRE(!files);
  CHECK(std::string(diag.message()).find("longer than 107 bytes") != std::string::npos);
  auto ok = covirt::qemu::files_for(covirt::qemu::paths{"/c", "/s", "/l"}, "vm", diag);
  REQUIRE(ok.has_value());
  CHECK(ok->qmp_socket == "/s/vm.qmp");
  CHECK(ok->autostart == "/c/autostart/vm.xml");
}
