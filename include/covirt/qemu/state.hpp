// covirt: the QEMU driver's state on disk.
//
// Definitions (persistent domain XML) live in the config dir, runtime records of running
// guests in the state dir; every write is atomic (temp file, fsync, rename, fsync dir), so a
// crash in the middle of a define leaves the previous definition whole.
//
//   qemu:///session  $XDG_CONFIG_HOME/covirt/qemu     (default ~/.config/covirt/qemu)
//                    $XDG_RUNTIME_DIR/covirt/qemu     (default /run/user/UID, else /tmp/covirt-UID)
//                    $XDG_CACHE_HOME/covirt/qemu/log  (default ~/.cache/covirt/qemu/log)
//   qemu:///system   /etc/covirt/qemu, /run/covirt/qemu, /var/log/covirt/qemu
//   ?config_dir=ABS&state_dir=ABS&log_dir=ABS override them (log_dir defaults to STATE_DIR/log
//   when state_dir is given).
//
// Layout: CONFIG/NAME.xml, CONFIG/autostart/NAME.xml (a symlink to ../NAME.xml, as in libvirt),
// STATE/NAME.json (runtime record), STATE/NAME.qmp (QMP socket), LOG/NAME.log.
// Temporary files start with '.', which no domain name may, so they are never taken for data.
#pragma once

#include <covirt/error.hpp>
#include <covirt/uri.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace covirt::qemu {

/// Where one driver instance keeps its files.
struct paths {
  std::filesystem::path config_dir;  ///< definitions (NAME.xml) and autostart/
  std::filesystem::path state_dir;   ///< runtime records (NAME.json) and QMP sockets
  std::filesystem::path log_dir;     ///< per-domain QEMU logs (NAME.log)
  bool privileged = false;           ///< qemu:///system
  /// Where the guests' control groups go, relative to each cgroup hierarchy's mount:
  /// ?cgroup_root=/ABS, else /machine (system) or /machine/covirt-HASH (session; see src/qemu/cgroup.hpp).
  std::string cgroup_root = {};
};

/// The files of one domain.
struct domain_files {
  std::filesystem::path definition;  ///< CONFIG/NAME.xml
  std::filesystem::path autostart;   ///< CONFIG/autostart/NAME.xml
  std::filesystem::path runtime;     ///< STATE/NAME.json
  std::filesystem::path qmp_socket;  ///< STATE/NAME.qmp
  std::filesystem::path log;         ///< LOG/NAME.log
};

/// The directories for `u` (qemu:///session or qemu:///system, with optional ?config_dir=,
/// ?state_dir=, ?log_dir= overrides that must be absolute), created if missing (0700 for the
/// session and for state, 0755 for system config). Errors: `errc::invalid_arg` (another path,
/// a relative override, no home), `errc::operation_failed` (cannot create a directory).
result<paths> resolve_paths(const covirt::uri& u, diagnostics& diag);

/// Refuses a domain name that is not safe as a file name: empty, longer than 200 bytes,
/// "." or "..", a leading '.', a '/', a NUL or other control character, or invalid UTF-8.
/// Errors: `errc::invalid_arg` naming the name and the reason.
result<void> check_name_for_file(std::string_view name, diagnostics& diag);

/// The files of domain `name` (checked with check_name_for_file). Errors: `errc::invalid_arg`,
/// also when the QMP socket path would exceed the 107 bytes a unix socket address can hold.
result<domain_files> files_for(const paths& p, std::string_view name, diagnostics& diag);

/// Replaces `p` atomically: writes a temporary file in the same directory (O_EXCL, `mode`),
/// fsyncs it (when `durable`), renames it over `p`, fsyncs the directory (when `durable`). On any
/// failure the old file is intact and the temporary removed. Without `durable` the replacement is
/// still atomic for readers and against a crash of this program, not against a power loss.
/// Errors: `errc::write_failed` (with the OS's reason).
result<void> write_file_atomic(const std::filesystem::path& p, std::string_view content, diagnostics& diag,
                               unsigned mode = 0600, bool durable = true);

/// Reads a whole file of at most `max_bytes`. Errors: `errc::read_failed` (missing, unreadable,
/// or larger than `max_bytes`).
result<std::string> read_file(const std::filesystem::path& p, std::size_t max_bytes, diagnostics& diag);
/// As read_file, but a missing file is nullopt, not an error.
result<std::optional<std::string>> read_file_if_exists(const std::filesystem::path& p, std::size_t max_bytes,
                                                       diagnostics& diag);

/// What the driver must know about a running guest to find it again after a restart.
/// Stored as JSON in STATE/NAME.json.
struct runtime_record {
  std::string name;
  std::string uuid;
  int id = -1;                           ///< libvirt's domain id
  pid_t pid = 0;
  std::uint64_t pid_start_ticks = 0;     ///< process::start_ticks(): rules out a recycled pid
  std::string boot_id;                   ///< /proc/sys/kernel/random/boot_id at start: rules out a reboot
  std::string qmp_socket;
  std::string log_path;
  std::int64_t started_unix = 0;         ///< seconds since the epoch
  std::string emulator;                  ///< the binary, e.g. /usr/bin/qemu-system-x86_64
  std::string marker;                    ///< what process::attach looks for in the command line
  std::string live_xml;                  ///< the domain XML the guest was started with
  std::map<std::string, std::string> extra;  ///< anything else the driver wants to keep
  bool operator==(const runtime_record&) const = default;
};

/// This boot's id (/proc/sys/kernel/random/boot_id), "" if unavailable.
std::string current_boot_id();

/// Writes STATE/NAME.json atomically (not durably: see the comment in state.cpp). Errors: `errc::invalid_arg` (bad name), `errc::write_failed`.
result<void> save_runtime(const paths& p, const runtime_record& r, diagnostics& diag);
/// Queues the same write for a background thread (process-wide, one file at a time, only the
/// latest content of each file): for state changes that must not wait for the disk. A later
/// save_runtime or remove_runtime of the file drops it; load_runtime and list_runtime wait for
/// the queue first. Failures are not reported (the next write or a reader will see them).
void save_runtime_later(const paths& p, const runtime_record& r);
/// Waits until every queued runtime record is written.
void flush_runtime_writes();
/// Reads STATE/NAME.json; nullopt when there is none. Errors: `errc::invalid_arg` (bad name),
/// `errc::read_failed`, `errc::parse_failed` (corrupt JSON or missing fields).
result<std::optional<runtime_record>> load_runtime(const paths& p, std::string_view name, diagnostics& diag);
/// Removes STATE/NAME.json; no error when it is already gone.
result<void> remove_runtime(const paths& p, std::string_view name, diagnostics& diag);
/// Every valid runtime record, sorted by name. Corrupt or unreadable files are skipped, never
/// fatal: each is described in `problems` when given, and all of them in `diag`.
result<std::vector<runtime_record>> list_runtime(const paths& p, diagnostics& diag,
                                                 std::vector<std::string>* problems = nullptr);

/// runtime_record <-> JSON text (exposed for tests and tools).
std::string runtime_to_json(const runtime_record& r);
result<runtime_record> runtime_from_json(std::string_view text, diagnostics& diag);

/// Writes CONFIG/NAME.xml atomically (0600). Errors: `errc::invalid_arg`, `errc::write_failed`.
result<void> save_definition(const paths& p, std::string_view name, std::string_view xml, diagnostics& diag);
/// CONFIG/NAME.xml, nullopt when not defined. Errors: `errc::invalid_arg`, `errc::read_failed`.
result<std::optional<std::string>> load_definition(const paths& p, std::string_view name, diagnostics& diag);
/// Removes CONFIG/NAME.xml and its autostart link; no error when already gone.
result<void> remove_definition(const paths& p, std::string_view name, diagnostics& diag);
/// Names of every defined domain (CONFIG/*.xml with a valid name), sorted.
result<std::vector<std::string>> list_definitions(const paths& p, diagnostics& diag);
/// Creates or removes CONFIG/autostart/NAME.xml -> ../NAME.xml. Errors: `errc::invalid_arg`,
/// `errc::no_domain` (turning it on for an undefined domain), `errc::write_failed`.
result<void> set_autostart(const paths& p, std::string_view name, bool on, diagnostics& diag);
/// True when CONFIG/autostart/NAME.xml exists.
bool get_autostart(const paths& p, std::string_view name);

}  // namespace covirt::qemu
