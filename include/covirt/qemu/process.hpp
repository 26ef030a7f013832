// covirt: launching and watching hypervisor processes (QEMU and friends).
//
// A guest runs in its own session, so it outlives the program that started it; its
// stdout/stderr go to a per-domain log file. Exit is noticed through a pidfd watched by
// the io_context (never by polling), which works for our own children and for guests
// re-attached after a restart (no longer our children; PID 1 may reap them seconds late).
#pragma once

#include <covirt/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace covirt::qemu {

namespace asio = boost::asio;

/// How to start a hypervisor process.
struct spawn_options {
  std::vector<std::string> argv;   ///< argv[0] is the program; searched in PATH when it has no '/'
  std::string log_path;            ///< stdout and stderr are appended here (created 0600); "" = /dev/null
  std::string working_dir;         ///< "" = keep the current one
  std::vector<int> pass_fds;       ///< descriptors the child keeps at the same numbers (tap, migration fd:)
  std::vector<std::string> env;    ///< extra "NAME=value" entries on top of this process's environment
  /// The user and group the program runs as (its only group), set between fork and exec; needs
  /// root. Empty: this process's.
  std::optional<std::pair<uid_t, gid_t>> run_as;
};

/// A running hypervisor process that we started (our child) or re-attached to (not our child).
/// Move-only. Destroying it does not stop the process (guests outlive their manager), aborts
/// pending waits, and reaps a child that has already exited; a child that exits later is
/// reaped by whoever attaches to it again and waits (or by init once this program ends).
/// Not thread-safe: use it from the io_context's thread (or a strand), like any Asio I/O object.
class process {
public:
  /// Sentinel status: the process is gone, but it was not our child, so its exit code is unknown.
  static constexpr int unknown_status = -1;

  process() = default;
  process(process&&) noexcept;
  process& operator=(process&&) noexcept;
  ~process();

  /// Starts `opts.argv` in a new session (setsid), stdin from /dev/null, stdout and stderr
  /// appended to `opts.log_path` (after one "covirt: starting ..." line with the command),
  /// every other descriptor closed except `opts.pass_fds`, signal mask and dispositions reset.
  /// A failure between fork and exec (missing binary, bad working dir) is reported at once:
  /// the child writes its errno through a close-on-exec pipe, and is reaped before returning.
  /// The call blocks only until the child has exec'd (microseconds to milliseconds).
  /// Errors: `errc::invalid_arg` (empty argv), `errc::system_error` (cannot open the log,
  /// fork, exec: "cannot execute 'qemu-system-foo': No such file or directory").
  static result<process> spawn(asio::any_io_executor ex, const spawn_options& opts, diagnostics& diag);

  /// Watches an existing process (a guest started before this program restarted).
  /// It must still run, and its /proc/PID/cmdline must carry `marker`: an argument equal to it,
  /// or one of an argument's comma-separated options equal to it ("guest=web1" in
  /// "-name guest=web1,debug-threads=on", or the uuid after "-uuid"). When
  /// `expected_start_ticks` is not 0 the process's start time (/proc/PID/stat field 22) must
  /// match too. Both checks are made after the pidfd is open and the process is then
  /// confirmed alive, so a recycled pid is never taken for the guest.
  /// Errors: `errc::invalid_arg` (empty marker, pid <= 0), `errc::no_domain` (no such process, or it
  /// has exited), `errc::operation_failed` (the process is someone else's).
  static result<process> attach(asio::any_io_executor ex, pid_t pid, std::string_view marker, diagnostics& diag,
                                std::uint64_t expected_start_ticks = 0);

  bool valid() const noexcept { return impl_ != nullptr; }
  pid_t pid() const noexcept;
  /// True when the process was started by us (its exit status can be known).
  bool is_child() const noexcept;
  /// The process's start time in clock ticks after boot (/proc/PID/stat field 22); 0 if unknown.
  /// Store it with the runtime record; pass it back to attach() to rule out pid reuse.
  std::uint64_t start_ticks() const noexcept;
  /// Byte offset in the log file where this run's output begins (for tail_of_log).
  std::uint64_t log_offset() const noexcept;
  /// The exit status once the exit has been seen by async_wait_exit/async_terminate
  /// (waitpid-style status, or unknown_status), else nullopt.
  std::optional<int> exit_status() const noexcept;
  /// True when the process has exited (checks the pidfd without blocking, reaps our child).
  bool has_exited();

  /// Sends `sig` through the pidfd (no pid-reuse race). False if the process is gone or on error.
  bool signal(int sig);

  /// Completes when the process exits. Handler: `void(error_code, int status)`; status is the
  /// waitpid status (use WIFEXITED/WEXITSTATUS/WTERMSIG, or describe_exit) when the process is
  /// our child, which is then reaped; `unknown_status` when it is not our child.
  /// Any number of waits may be outstanding. Errors: `asio::error::operation_aborted`.
  /// Cancellation: terminal, partial and total; the process is not affected.
  /// Lifetimes: the object may be moved while the wait is pending; destroying it aborts the wait.
  template <asio::completion_token_for<void(error_code, int)> Token = asio::use_awaitable_t<>>
  auto async_wait_exit(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, int)>(
        [this](auto h) { wait_exit_erased(std::move(h)); }, token);
  }

  /// Stops the process: SIGTERM, then SIGKILL if it is still there after `grace`; completes when
  /// it is gone. Handler: `void(error_code, int status)` as for async_wait_exit. A process that
  /// has already exited completes at once. Errors: `asio::error::operation_aborted`.
  /// Cancellation: terminal, partial and total: stops waiting (and no SIGKILL is sent later);
  /// SIGTERM has already been sent. Lifetimes: as for async_wait_exit (destruction also cancels it).
  template <asio::completion_token_for<void(error_code, int)> Token = asio::use_awaitable_t<>>
  auto async_terminate(std::chrono::milliseconds grace, Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, int)>(
        [this](auto h, std::chrono::milliseconds g) { terminate_erased(g, std::move(h)); }, token, grace);
  }

  struct impl;

private:
  explicit process(std::shared_ptr<impl> p) noexcept : impl_(std::move(p)) {}
  void wait_exit_erased(asio::any_completion_handler<void(error_code, int)> h);
  void terminate_erased(std::chrono::milliseconds grace, asio::any_completion_handler<void(error_code, int)> h);

  std::shared_ptr<impl> impl_;
};

/// The last `max_lines` lines of a log file, from byte `from_offset` on (process::log_offset()
/// gives this run's start), at most the last 64 KiB; "" when the file cannot be read.
/// For start errors: "qemu-system-x86_64: -machine nosuchmachine: unsupported machine type".
std::string tail_of_log(const std::string& path, std::size_t max_lines = 10, std::uint64_t from_offset = 0);

/// "exited with status 1", "killed by signal 9 (Killed)", "exited (status unknown: not our child)".
std::string describe_exit(int status);

/// The start time of a process in clock ticks after boot (/proc/PID/stat field 22), or 0.
std::uint64_t process_start_ticks(pid_t pid);

/// The arguments of a running process (/proc/PID/cmdline), empty if it is gone.
std::vector<std::string> process_cmdline(pid_t pid);

}  // namespace covirt::qemu
