// covirt: launching and watching hypervisor processes.
#include <covirt/qemu/process.hpp>
#include <covirt/detail/spawn.hpp>

#include "../detail/shell_quote.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace covirt::qemu {

namespace {

constexpr idtype_t p_pidfd = static_cast<idtype_t>(3);  // P_PIDFD (linux/wait.h; glibc 2.36 lacks it)

std::string errno_text(int e) { return std::strerror(e); }

// Raw system calls: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its wrappers do not link from C++.
int pidfd_open(pid_t pid, unsigned flags) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags)); }
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

// A descriptor closed on scope exit.
struct unique_fd {
  int fd = -1;
  unique_fd() = default;
  explicit unique_fd(int f) : fd(f) {}
  unique_fd(unique_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset(std::exchange(o.fd, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset(int f = -1) {
    if (fd >= 0) ::close(fd);
    fd = f;
  }
  int release() { return std::exchange(fd, -1); }
  explicit operator bool() const { return fd >= 0; }
};

// Keeps fds 0..2 free for the child's stdio, so dup2 never lands a descriptor on itself.
bool move_above_stdio(unique_fd& f) {
  if (f.fd > 2) return true;
  int n = ::fcntl(f.fd, F_DUPFD_CLOEXEC, 3);
  if (n < 0) return false;
  f.reset(n);
  return true;
}

// Shell-like quoting for the log's "starting" line (people read it, nothing parses it).
std::string quote_arg(const std::string& a) {
  if (!a.empty() && a.find_first_of(" \t\n'\"\\$`*?[]{}()<>|&;#~") == std::string::npos) return a;
  return covirt::detail::shell_quote(a);
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Resolves a bare program name in PATH before fork: execvp may allocate, which is not
// allowed between fork and exec in a threaded program.
std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    struct stat st{};
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return std::nullopt;
}

// Fields of /proc/PID/stat after "(comm)": index 0 is field 3 (state).
std::vector<std::string> stat_fields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // comm may itself hold spaces and parentheses
  if (close == std::string::npos) return {};
  std::istringstream rest(text.substr(close + 1));
  std::vector<std::string> f;
  for (std::string w; rest >> w;) f.push_back(w);
  return f;
}

pid_t parent_of(pid_t pid) {
  auto f = stat_fields(pid);
  if (f.size() < 2) return 0;
  try {
    return static_cast<pid_t>(std::stol(f[1]));
  } catch (...) {
    return 0;
  }
}

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

// Is `marker` one of the arguments, or one option of a comma-separated argument
// ("guest=NAME" in "guest=NAME,debug-threads=on"; QEMU escapes a comma in a value as ",,")?
bool cmdline_has(const std::vector<std::string>& args, std::string_view marker) {
  for (const auto& a : args) {
    if (a == marker) return true;
    std::string raw, plain;
    for (std::size_t i = 0; i <= a.size(); ++i) {
      if (i == a.size() || (a[i] == ',' && !(i + 1 < a.size() && a[i + 1] == ','))) {
        if (raw == marker || plain == marker) return true;
        raw.clear();
        plain.clear();
      } else if (a[i] == ',') {  // ",," : an escaped comma
        raw += ",,";
        plain += ',';
        ++i;
      } else {
        raw += a[i];
        plain += a[i];
      }
    }
  }
  return false;
}

// What the child reports through the pipe when it cannot exec.
struct child_failure {
  int stage;
  int err;
};
enum : int { stage_setsid = 1, stage_stdio, stage_fds, stage_chdir, stage_exec, stage_identity };

const char* stage_text(int s) {
  switch (s) {
    case stage_setsid: return "create a session for";
    case stage_stdio: return "redirect the output of";
    case stage_fds: return "pass descriptors to";
    case stage_chdir: return "change to the working directory for";
    case stage_identity: return "take the user and group (DAC label) of";
    default: return "execute";
  }
}

}  // namespace

struct process::impl {
  asio::posix::stream_descriptor pidfd;
  pid_t pid;
  bool child;
  std::uint64_t start_ticks = 0;
  std::uint64_t log_offset = 0;
  std::optional<int> status;

  impl(asio::any_io_executor ex, int fd, pid_t p, bool c) : pidfd(std::move(ex), fd), pid(p), child(c) {}

  // Called once the pidfd is readable (the process has exited): reaps it if it is our child.
  // waitid(P_PIDFD) cannot hit a recycled pid, and returns at once: ECHILD when not our child.
  void note_exit() {
    if (status) return;
    siginfo_t si{};
    int r;
    do r = ::waitid(p_pidfd, static_cast<id_t>(pidfd.native_handle()), &si, WEXITED);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno == EAGAIN) return;  // Asio made the pidfd non-blocking: not exited yet
    if (r < 0 || si.si_pid == 0) {
      status = unknown_status;
    } else if (si.si_code == CLD_EXITED) {
      status = (si.si_status & 0xff) << 8;
    } else if (si.si_code == CLD_DUMPED) {
      status = (si.si_status & 0x7f) | 0x80;
    } else {
      status = si.si_status & 0x7f;
    }
  }

  bool poll_exit() {
    if (status) return true;
    if (!pidfd.is_open()) return true;
    if (!fd_readable(pidfd.native_handle())) return false;
    note_exit();
    return status.has_value();
  }

  bool send(int sig) {
    if (status || !pidfd.is_open()) return false;
    return pidfd_send_signal(pidfd.native_handle(), sig) == 0;
  }
};

process::process(process&&) noexcept = default;
process& process::operator=(process&& o) noexcept {
  if (this != &o) {
    process old(std::move(*this));  // its destructor releases what this held
    impl_ = std::move(o.impl_);
  }
  return *this;
}

process::~process() {
  if (!impl_) return;
  // Like any Asio I/O object, destruction aborts pending waits; an exited child is reaped.
  error_code ignored;
  impl_->pidfd.cancel(ignored);
  impl_->poll_exit();
}

pid_t process::pid() const noexcept { return impl_ ? impl_->pid : -1; }
bool process::is_child() const noexcept { return impl_ && impl_->child; }
std::uint64_t process::start_ticks() const noexcept { return impl_ ? impl_->start_ticks : 0; }
std::uint64_t process::log_offset() const noexcept { return impl_ ? impl_->log_offset : 0; }
std::optional<int> process::exit_status() const noexcept { return impl_ ? impl_->status : std::nullopt; }
bool process::has_exited() { return !impl_ || impl_->poll_exit(); }
bool process::signal(int sig) { return impl_ && impl_->send(sig); }

result<process> process::spawn(asio::any_io_executor ex, const spawn_options& opts, diagnostics& diag) {
  if (opts.argv.empty() || opts.argv[0].empty()) return fail(diag, errc::invalid_arg, "no program to start");
  for (int fd : opts.pass_fds)
    if (fd < 3 || ::fcntl(fd, F_GETFD) < 0)
      return fail(diag, errc::invalid_arg, "cannot pass descriptor " + std::to_string(fd) + " to the process");
  const std::string& prog = opts.argv[0];
  auto path = find_program(prog);
  if (!path) return fail(diag, errc::system_error, "cannot execute '" + prog + "': not found in PATH");

  // Everything the child needs is built here: between fork and exec only async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;  // not an environment entry
    auto key = kv.substr(0, eq + 1);
    bool overridden = std::any_of(opts.env.begin(), opts.env.end(),
                                  [&](const std::string& x) { return std::string_view(x).starts_with(key); });
    if (!overridden) env_store.emplace_back(kv);
  }
  for (const auto& e : opts.env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string log = opts.log_path.empty() ? std::string("/dev/null") : opts.log_path;
  unique_fd logfd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600));
  if (!logfd) return fail(diag, errc::system_error, "cannot open log file '" + log + "': " + errno_text(errno));
  unique_fd nullfd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!nullfd) return fail(diag, errc::system_error, "cannot open /dev/null: " + errno_text(errno));
  if (!move_above_stdio(logfd) || !move_above_stdio(nullfd))
    return fail(diag, errc::system_error, std::string("cannot duplicate a descriptor: ") + errno_text(errno));

  std::uint64_t log_offset = 0;
  if (!opts.log_path.empty()) {
    std::string head = "covirt: " + now_text() + ": starting:";
    for (const auto& a : opts.argv) head += " " + quote_arg(a);
    head += "\n";
    (void)!::write(logfd.fd, head.data(), head.size());
    struct stat st{};
    if (::fstat(logfd.fd, &st) == 0) log_offset = static_cast<std::uint64_t>(st.st_size);
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0)
    return fail(diag, errc::system_error, std::string("cannot create a pipe: ") + errno_text(errno));
  unique_fd err_r(pipefd[0]), err_w(pipefd[1]);
  if (!move_above_stdio(err_r) || !move_above_stdio(err_w))
    return fail(diag, errc::system_error, std::string("cannot duplicate a descriptor: ") + errno_text(errno));

  rlimit rl{};
  int max_fd = (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                   ? static_cast<int>(std::min<rlim_t>(rl.rlim_cur, 1 << 20)) : 65536;
  const char* exe = path->c_str();
  const char* wd = opts.working_dir.empty() ? nullptr : opts.working_dir.c_str();
  const int* keep = opts.pass_fds.data();
  const std::size_t nkeep = opts.pass_fds.size();
  const bool change_id = opts.run_as.has_value();
  const uid_t run_uid = change_id ? opts.run_as->first : 0;
  const gid_t run_gid = change_id ? opts.run_as->second : 0;

  pid_t pid = ::fork();
  if (pid < 0) return fail(diag, errc::system_error, "cannot fork to start '" + prog + "': " + errno_text(errno));
  if (pid == 0) {
    // The child. Async-signal-safe calls only, then exec or _exit.
    auto die = [&](int stage) {
      child_failure f{stage, errno};
      (void)!::write(err_w.fd, &f, sizeof f);
      ::_exit(127);
    };
    if (::setsid() < 0) die(stage_setsid);
    if (::dup2(nullfd.fd, 0) < 0 || ::dup2(logfd.fd, 1) < 0 || ::dup2(logfd.fd, 2) < 0) die(stage_stdio);
    // Whatever else the program had open (sockets, other guests' files) must not leak into the guest.
    if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) < 0)
      for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (std::size_t i = 0; i < nkeep; ++i)
      if (::fcntl(keep[i], F_SETFD, 0) < 0) die(stage_fds);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Ignored signals survive exec (a program often ignores SIGPIPE); the guest gets defaults.
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
    if (wd && ::chdir(wd) < 0) die(stage_chdir);
    // The group first (setuid drops the right to change it), the supplementary groups with it.
    if (change_id && (::setgroups(1, &run_gid) < 0 || ::setgid(run_gid) < 0 || ::setuid(run_uid) < 0))
      die(stage_identity);
    ::execve(exe, argv.data(), envp.data());
    die(stage_exec);
  }

  err_w.reset();
  child_failure f{};
  std::size_t got = 0;
  while (got < sizeof f) {
    ssize_t n = ::read(err_r.fd, reinterpret_cast<char*>(&f) + got, sizeof f - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > 0) {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    std::string msg = std::string("cannot ") + stage_text(f.stage) + " '" + prog + "'";
    if (f.stage == stage_chdir) msg += " ('" + opts.working_dir + "')";
    return fail(diag, errc::system_error, msg + ": " + errno_text(f.err));
  }

  int pfd = pidfd_open(pid, 0);
  if (pfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return fail(diag, errc::system_error, "cannot watch process " + std::to_string(pid) + ": " + errno_text(e));
  }
  auto p = std::make_shared<impl>(std::move(ex), pfd, pid, true);
  p->start_ticks = process_start_ticks(pid);
  p->log_offset = log_offset;
  return process(std::move(p));
}

result<process> process::attach(asio::any_io_executor ex, pid_t pid, std::string_view marker, diagnostics& diag,
                                std::uint64_t expected_start_ticks) {
  const std::string who = "process " + std::to_string(pid);
  if (pid <= 0) return fail(diag, errc::invalid_arg, "invalid process id " + std::to_string(pid));
  if (marker.empty()) return fail(diag, errc::invalid_arg, "attaching to " + who + " needs a marker to recognise it");
  unique_fd fd(pidfd_open(pid, 0));
  if (!fd) {
    if (errno == ESRCH) return fail(diag, errc::no_domain, who + " does not exist");
    return fail(diag, errc::system_error, "cannot watch " + who + ": " + errno_text(errno));
  }
  // Read what identifies the process, then confirm through the pidfd that the process we
  // opened is still alive: then the pid was not recycled while we were reading.
  auto args = process_cmdline(pid);
  auto ticks = process_start_ticks(pid);
  pid_t ppid = parent_of(pid);
  if (fd_readable(fd.fd)) return fail(diag, errc::no_domain, who + " has exited");
  if (!cmdline_has(args, marker)) {
    std::string cmd;
    for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
    if (cmd.size() > 200) cmd = cmd.substr(0, 200) + "...";
    return fail(diag, errc::operation_failed,
                who + " is not the expected one: its command line '" + cmd + "' lacks '" + std::string(marker) + "'");
  }
  if (expected_start_ticks != 0 && ticks != expected_start_ticks)
    return fail(diag, errc::operation_failed,
                who + " started at another time than recorded (" + std::to_string(ticks) +
                    " != " + std::to_string(expected_start_ticks) + " ticks): the pid was reused");
  auto p = std::make_shared<impl>(std::move(ex), fd.release(), pid, ppid == ::getpid());
  p->start_ticks = ticks;
  return process(std::move(p));
}

namespace {

asio::awaitable<result<int>> wait_exit_co(std::shared_ptr<process::impl> s) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  if (s->poll_exit()) co_return *s->status;
  // The reactor may report a readiness that is not this process's exit (a recycled descriptor
  // number's stale event): only a pidfd that polls readable means the process is gone.
  for (;;) {
    auto [ec] = co_await s->pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                                             asio::as_tuple(asio::use_awaitable));
    if (ec) co_return ec;
    if (s->poll_exit()) co_return *s->status;
  }
}

asio::awaitable<result<int>> terminate_co(std::shared_ptr<process::impl> s, std::chrono::milliseconds grace) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  if (s->poll_exit()) co_return *s->status;
  s->send(SIGTERM);
  asio::steady_timer timer(s->pidfd.get_executor(), grace);
  timer.async_wait([s](error_code ec) {
    if (!ec) s->send(SIGKILL);  // the grace is over and the pidfd has not fired
  });
  for (;;) {
    auto [ec] = co_await s->pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                                             asio::as_tuple(asio::use_awaitable));
    if (ec) {
      timer.cancel();
      co_return ec;
    }
    if (s->poll_exit()) break;  // as in wait_exit_co: a stale readiness waits again
  }
  timer.cancel();
  co_return *s->status;
}

void complete(asio::any_io_executor ex, asio::awaitable<result<int>> op,
              asio::any_completion_handler<void(error_code, int)> h) {
  covirt::detail::spawn_result<int>(ex, std::move(op), std::move(h), process::unknown_status);
}

// A moved-from process: nothing to wait for (a precondition broken; this may complete inline).
void complete_invalid(asio::any_completion_handler<void(error_code, int)> h) {
  auto ex = asio::get_associated_executor(h);
  asio::dispatch(ex, [h = std::move(h)]() mutable {
    std::move(h)(make_error_code(errc::invalid_arg), process::unknown_status);
  });
}

}  // namespace

void process::wait_exit_erased(asio::any_completion_handler<void(error_code, int)> h) {
  if (!impl_) {
    complete_invalid(std::move(h));
    return;
  }
  complete(impl_->pidfd.get_executor(), wait_exit_co(impl_), std::move(h));
}

void process::terminate_erased(std::chrono::milliseconds grace,
                               asio::any_completion_handler<void(error_code, int)> h) {
  if (!impl_) {
    complete_invalid(std::move(h));
    return;
  }
  complete(impl_->pidfd.get_executor(), terminate_co(impl_, grace), std::move(h));
}

std::string tail_of_log(const std::string& path, std::size_t max_lines, std::uint64_t from_offset) {
  constexpr std::uint64_t window = 64 * 1024;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return {};
  struct stat st{};
  if (::fstat(fd.fd, &st) < 0) return {};
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (from_offset >= size || max_lines == 0) return {};
  std::uint64_t start = std::max(from_offset, size > window ? size - window : 0);
  std::string buf(size - start, '\0');
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd.fd, buf.data() + got, buf.size() - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  if (start > from_offset) {  // cut inside a line: drop its end
    auto nl = buf.find('\n');
    buf.erase(0, nl == std::string::npos ? buf.size() : nl + 1);
  }
  while (!buf.empty() && (buf.back() == '\n' || buf.back() == '\r')) buf.pop_back();
  std::size_t pos = buf.size(), lines = 0;
  while (pos > 0) {
    auto nl = buf.rfind('\n', pos - 1);
    ++lines;
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    if (lines == max_lines) {
      pos = nl + 1;
      break;
    }
    pos = nl;
  }
  return buf.substr(pos);
}

std::string describe_exit(int status) {
  if (status == process::unknown_status) return "exited (status unknown: not our child)";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    std::string out = "killed by signal " + std::to_string(sig);
    if (abbrev) out += std::string(" (SIG") + abbrev + ")";
    if (WCOREDUMP(status)) out += ", core dumped";
    return out;
  }
  return "ended with status " + std::to_string(status);
}

std::uint64_t process_start_ticks(pid_t pid) {
  auto f = stat_fields(pid);
  if (f.size() < 20) return 0;
  try {
    return std::stoull(f[19]);
  } catch (...) {
    return 0;
  }
}

std::vector<std::string> process_cmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace covirt::qemu
