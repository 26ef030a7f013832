// The QEMU driver's insides, shared by the files of src/qemu/: what it knows of each domain (dom),
// of each running QEMU (runtime), of a long job (long_job), and driver::state, which holds them.
// Each member is defined in the file of its concern (lifecycle, monitor_events, jobs, hotplug,
// save_dump, migration, settings, driver); this header only declares them.
#pragma once
#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/qmp.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include "../common/domain_list.hpp"
#include "cgroup.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <tuple>
#include <variant>

#include <unistd.h>

namespace covirt::qemu {

// Private to the driver: named (not anonymous) because several files share it.
namespace impl {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr unsigned start_paused_flag = 1;  // VIR_DOMAIN_START_PAUSED
constexpr int crashed_panicked = 1;        // VIR_DOMAIN_CRASHED_PANICKED
constexpr auto qmp_command_limit = 30s;    // a QMP command that takes longer means QEMU is stuck
constexpr auto start_limit = 10s;          // from spawn to an open QMP socket

inline std::string q(std::string_view s) { return "'" + std::string(s) + "'"; }

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// How the running guest is expected to stop (set before we ask it to).
struct stop_intent {
  int reason = reason::shutoff_unknown;
  int detail = event_detail::stopped_shutdown;
};

// A running QEMU: its process, its monitor, its record.
struct runtime {
  runtime(asio::any_io_executor ex) : mon(ex) {}
  process proc;
  qmp mon;
  runtime_record rec;
  std::optional<stop_intent> intent;  // set by destroy, guest shutdown, panic
  bool expect_stop = false;           // a suspend job has sent `stop`
  bool fake_reboot = false;           // reboot asked the guest to power off: reset it when it does
  bool finished = false;              // the stop has been recorded
  asio::cancellation_signal cancel_exit;
  asio::cancellation_signal cancel_lost;  // ends monitor_lost's grace wait once the stop is recorded
  // device_del sent, DEVICE_DELETED not yet seen: device id -> the detach call waiting for it
  std::map<std::string, std::shared_ptr<asio::steady_timer>> unplugs;
  // The balloon's size as QEMU last said (query-balloon, then BALLOON_CHANGE events): get_info
  // answers from it, as libvirt does, instead of asking QEMU every time.
  std::optional<std::uint64_t> balloon_kib;
  guest_cgroup cg;                 // its control groups (empty where the host gives none)
  std::vector<pid_t> vcpu_tids;    // vCPU i's thread, from query-cpus-fast (tuning.cpp)
};

// The long job running on a domain (save, restore, dump, migration), for get_job_info/abort_job.
struct long_job {
  std::string operation;  // job_info::operation
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::shared_ptr<runtime> rt;  // whose query-migrate tells the progress
  bool outgoing = false;        // save, migration out: query-migrate's ram figures
  std::uint64_t fed = 0, feed_total = 0;  // restore: bytes of the file given to QEMU
  bool abort_requested = false;
  asio::cancellation_signal abort;  // restore: stops the feed
};


struct dom : covirt::detail::domain_obj {
  std::shared_ptr<runtime> rt;
  std::shared_ptr<long_job> job_now;  // while a long job runs
  bool migration_held = false;  // an outgoing migration was performed: its job stays taken until confirm
};

using dom_ptr = std::shared_ptr<dom>;

// The thread that does the driver's durable file writes (fsync can take milliseconds).
asio::any_io_executor file_thread();

// A long job for the time of a scope: get_job_info and abort_job see it.
struct job_scope {
  dom_ptr d;
  job_scope(dom_ptr dp, std::string operation, std::shared_ptr<runtime> rt, bool outgoing) : d(std::move(dp)) {
    auto j = std::make_shared<long_job>();
    j->operation = std::move(operation);
    j->rt = std::move(rt);
    j->outgoing = outgoing;
    d->job_now = std::move(j);
  }
  job_scope(const job_scope&) = delete;
  job_scope& operator=(const job_scope&) = delete;
  ~job_scope() { d->job_now.reset(); }
};

// /proc/PID/stat (or /proc/PID/task/TID/stat): CPU ticks in user and kernel mode, resident
// pages, the CPU it last ran on (stats.cpp).
struct proc_stat {
  unsigned long long utime = 0, stime = 0, rss_pages = 0;
  int cpu = -1;
};
std::optional<proc_stat> read_proc_stat(pid_t pid, pid_t tid = 0);
unsigned long long ticks_to_ns(unsigned long long ticks);
// The state name libvirt's qemuMonitorJSONGetStatus gives each QEMU run state.
domain_state_info map_status(std::string_view st);

int suspended_detail(int paused_reason);

std::optional<std::string> find_in_path(const std::string& name);

std::string host_arch();


// ------------------------------------------------------------------ tuning (tuning.cpp)

// The host's CPUs (online, as node_get_info counts them) and NUMA nodes.
unsigned host_cpu_count();
std::vector<unsigned> host_numa_nodes();
// A cpumap argument ('y'/'-' per host CPU, or a list "0-3,^2") as the CPUs it names.
result<std::vector<unsigned>> cpumap_members(std::string_view map, diagnostics& diag);
// Members as a 'y'/'-' map of the host's CPUs.
std::string members_map(const std::vector<unsigned>& cpus);
// What the guest's tuning asks of the host, checked before QEMU is spawned: cpusets and nodesets
// the host has, a hugepage size it has a hugetlbfs mount for (its path in `hugepage_dir`),
// block devices that exist, values libvirt's QEMU driver takes. Errors name the element.
result<void> check_tuning(const domain_config& d, std::string* hugepage_dir, diagnostics& diag);
// What the devices need from the host (host_checks.cpp): an executable ethernet <script>, the
// <hostdev>'s PCI device bound to vfio-pci, an X display for SDL (into opt.display), a free port
// for SPICE autoport (written into `d`, the live definition).
result<void> prepare_host_devices(domain_config& d, argv_options& opt, diagnostics& diag);
// The controllers the guest's settings need.
std::vector<std::string_view> needed_controllers(const domain_config& d);
// Where vCPU `i` may run (its <vcpupin>, else <vcpu cpuset>, else every CPU) and the emulator.
std::vector<unsigned> vcpu_cpus(const domain_config& d, unsigned i);
std::vector<unsigned> emulator_cpus(const domain_config& d);
// Sets a thread's CPU affinity. Errors name the thread.
result<void> set_affinity(pid_t tid, const std::vector<unsigned>& cpus, diagnostics& diag);
// Every thread of QEMU `pid` but its vCPU threads (`vcpus`) to `cpus`: the emulator's pin.
result<void> pin_emulator_threads(pid_t pid, const std::vector<pid_t>& vcpus, const std::vector<unsigned>& cpus,
                                  diagnostics& diag);
// Where a change with modify::live / config / current goes for a domain, as libvirt's
// virDomainObjGetDefs: `query` (a Get) refuses live and config together. Errors in libvirt's words.
struct impact {
  bool live = false, config = false;
};
result<impact> impact_of(const covirt::detail::domain_obj& d, unsigned flags, bool query, diagnostics& diag);

// ------------------------------------------------------------------ DAC labels (security.cpp)
// What libvirt's DAC driver does for a starting guest: the user and group QEMU runs as, and
// whether its images are given to them.
struct dac_plan {
  bool labelled = false;  // the DAC model applies (the driver runs as root) and the domain is not type='none'
  uid_t uid = 0;
  gid_t gid = 0;
  bool relabel = false;
  std::string label;  // "+UID:+GID", what virDomainGetSecurityLabel says
};
bool dac_privileged();
result<dac_plan> dac_plan_for(const domain_config& d, diagnostics& diag);
// The image owners changed for a starting guest: given back when this goes unless kept (the
// start succeeded and record() put them in the runtime record, for restore_image_labels).
struct image_labels {
  std::vector<std::tuple<std::string, uid_t, gid_t>> changed;  // path, its owner before
  image_labels() = default;
  image_labels(const image_labels&) = delete;
  image_labels& operator=(const image_labels&) = delete;
  ~image_labels() { restore(); }
  void restore();
  void record(runtime_record& rec) const;
  void keep() { changed.clear(); }
};
result<void> relabel_images(const domain_config& d, const dac_plan& p, image_labels& out, diagnostics& diag);
// At stop: the owners the runtime record remembers, given back.
void restore_image_labels(runtime_record& rec);
// A listening unix socket bound at `path` (close-on-exec; spawn_options::pass_fds hands it over).
result<int> listen_unix(const std::string& path, diagnostics& diag);
// libvirt's defaults at define time that the QEMU driver needs to be explicit about.
void apply_defaults(domain_config& d);
// A definition this driver takes (define, create, restore, an incoming migration): parsed, its
// name fit for a file name, the defaults applied, of type qemu or kvm.
result<domain_config> parse_definition(std::string_view xml, diagnostics& diag);

inline bool has_balloon(const domain_config& d) {
  return d.devices.memballoon && d.devices.memballoon->model != "none";
}

std::string marker_for(const domain_config& d);

// The ids build_argv gives devices, as <alias> in the live definition: "net<i>" for the i-th
// interface, "virtio-disk<index>" for virtio disks. Hotplug and unplug address devices by them.
void set_aliases(domain_config& d);

// The block node of each disk as build_argv names it (disk i of n: libvirt-<n-i>-format), kept in
// the runtime record so that block_stats finds it after hotplugs and re-attaches.
void record_device_names(const domain_config& d, runtime_record& rec);

using device_variant = device_def;

// Where a starting QEMU takes the guest's state from instead of booting it.
struct incoming_plan {
  std::string uri;                 // migration: migrate-incoming's URI (tcp:HOST:PORT)
  bool migration = false;          // prepare: return once QEMU listens; finish runs it
  std::shared_ptr<long_job> job;   // restore: the job whose feed pushes the file in
  std::string feed_path;           // restore: the saved file
  std::uint64_t feed_offset = 0;   //          and where QEMU's stream starts in it
};

}  // namespace impl

using namespace impl;

struct driver::state : std::enable_shared_from_this<driver::state> {
  asio::any_io_executor ex;
  paths dirs;
  bool is_open = false;
  cgroup_host cgroups;  // the host's cgroup mounts, read at open
  bool closed = false;
  event_hub events;
  covirt::detail::domain_list<dom> doms{events};  // by name: lists come sorted
  std::function<bool()> kvm_probe = [] { return ::access("/dev/kvm", R_OK | W_OK) == 0; };
  std::optional<std::uint64_t> version;
  std::string caps_xml;

  dom_ptr find(std::string_view name) { return doms.find(name); }
  dom_ptr find_uuid(std::string_view uuid) { return doms.find_uuid(uuid); }
  result<dom_ptr> get(const domain_key& key, diagnostics& diag) { return doms.get(key, diag); }
  void erase(const dom_ptr& d) { doms.erase(*d); }
  void emit(const dom& d, event_type t, int detail) { doms.emit(d, t, detail); }

  result<dom_ptr> admit(const domain_config& def, bool live, diagnostics& diag) { return doms.admit(def, live, diag); }

  // ------------------------------------------------------------------ jobs

  using job_guard = covirt::detail::job_guard<dom_ptr>;

  // A domain's job, held until this goes out of scope (libvirt's BeginJob ... EndJob): the state
  // (kept alive while the job runs: the job may outlive the driver object), the domain and, when
  // the job needs a running guest, its runtime.
  struct held_job {
    std::shared_ptr<state> s;
    job_guard guard;
    std::shared_ptr<runtime> rt;
    std::tuple<std::shared_ptr<state>, dom_ptr, std::shared_ptr<runtime>> parts() const { return {s, guard.d, rt}; }
  };
  enum class need { defined, running };
  // Looks the domain up and takes its job; need::running: fails "domain is not running" unless it runs.
  static asio::awaitable<result<held_job>> begin_job(std::shared_ptr<state> s, const domain_key& key,
                                                     diagnostics& diag, need n = need::defined);

  // ------------------------------------------------------------------ QMP

  asio::awaitable<result<json::value>> call(std::shared_ptr<runtime> rt, std::string cmd, json::object args,
                                            diagnostics& diag, std::chrono::steady_clock::duration limit = qmp_command_limit);

  // A running domain's job that is one QMP command with no arguments (system_powerdown, system_reset).
  // reboot: the command is the power button, and the guest's power-off becomes a reset.
  op<void> simple_command(const domain_key& key, std::string cmd, diagnostics& diag, bool reboot = false);

  // After a failed command: a guest that went away is "not running", anything else is QEMU's error.
  failure command_failed(const dom_ptr& d, const std::shared_ptr<runtime>& rt, error_code ec, diagnostics& diag);

  // ------------------------------------------------------------------ records

  void persist(const dom& d);

  void set_state(dom& d, domain_state st, int r);

  // The guest is gone: record it once, whoever noticed first (exit watcher, destroy, failed start).
  void finish_stop(const dom_ptr& d, const std::shared_ptr<runtime>& rt, std::optional<int> status);

  // ------------------------------------------------------------------ watchers

  void watch(const dom_ptr& d, const std::shared_ptr<runtime>& rt);

  static asio::awaitable<void> exit_watch(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt);

  static asio::awaitable<void> event_pump(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt);

  // Stops QEMU because the guest powered off (or crashed) and the domain's policy says destroy.
  static asio::awaitable<void> stop_guest(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt);

  // Asks QEMU to quit, then SIGTERM/SIGKILL; returns when it is gone and recorded.
  asio::awaitable<void> kill(dom_ptr d, std::shared_ptr<runtime> rt);

  asio::awaitable<void> on_event(dom_ptr d, std::shared_ptr<runtime> rt, qmp_event ev);

  // ------------------------------------------------------------------ migration

  // Polls query-migrate until the migration (outgoing or incoming) completes, fails, or `limit`
  // passes. The poll's pause is where a cancellation of the caller lands: an outgoing
  // migration is then cancelled in QEMU (migrate_cancel) and the result, like after abort_job,
  // is errc::operation_aborted once QEMU says "cancelled"; an incoming one returns at once (the
  // caller kills that QEMU). Run it with throw_if_cancelled(false) (see cleanup_on_cancel).
  asio::awaitable<result<json::value>> wait_migration(std::shared_ptr<runtime> rt, diagnostics& diag,
                                                      std::chrono::steady_clock::duration limit,
                                                      std::string_view what, bool outgoing);
  // Sends the guest's state to `uri` (QMP migrate) and waits for it as above. On failure the code
  // is operation_aborted for a cancellation, else what command_failed makes of QEMU's error.
  asio::awaitable<result<void>> migrate_out(const dom_ptr& d, std::shared_ptr<runtime> rt, std::string uri,
                                            std::chrono::steady_clock::duration limit, std::string_view what,
                                            diagnostics& diag);

  // Definitions are written durably (fsync): on the file thread, while the io_context goes on.
  struct file_outcome {
    error_code ec;
    std::string msg;
  };
  static asio::awaitable<file_outcome> definition_io(paths p, std::string name, std::optional<std::string> xml);
  asio::awaitable<result<void>> store_definition(std::string name, std::optional<std::string> xml, diagnostics& diag);
  // A --config change: `def`, a changed copy of d's persistent definition, written durably and
  // then put in place; on error the domain keeps the definition it had.
  asio::awaitable<result<void>> commit_definition(dom_ptr d, domain_config def, diagnostics& diag);

  // The migration stream's cap in MiB/s (QEMU's own default is 128); 0: none to speak of.
  asio::awaitable<void> set_max_bandwidth(std::shared_ptr<runtime> rt, std::uint64_t mib);

  // Long jobs (save, restore, migration) undo what they started when their caller is cancelled:
  // the cancellation must reach them as an error at a wait, not as an exception thrown at their
  // next co_await (Asio's default), which would skip the undo.
  template <class T, class Body>
  static op<T> cleanup_on_cancel(Body body) {
    const bool before = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    result<T> r = co_await body();
    co_await asio::this_coro::throw_if_cancelled(before);
    co_return r;
  }

  static asio::awaitable<bool> caller_cancelled();

  static asio::awaitable<std::size_t> read_chunk(std::ifstream& in, std::vector<char>& buf);

  // restore: pushes the saved state from `path` (from `offset`) into QEMU's incoming socket.
  asio::awaitable<result<void>> feed_state(std::shared_ptr<long_job> job, std::string sock_path,
                                           std::string path, std::uint64_t offset, diagnostics& diag);

  // ------------------------------------------------------------------ start

  // create_xml and restore: `def` runs once, as a new transient domain or in place of a
  // persistent one that is not running; on failure everything is as it was.
  op<domain_ref> start_live(domain_config def, bool paused, std::optional<incoming_plan> incoming, const char* what,
                            diagnostics& diag);
  op<void> save_job(const domain_key& key, std::string path, diagnostics& diag);
  op<void> dump_job(const domain_key& key, std::string path, unsigned flags, diagnostics& diag);
  // attach/detach: the device from its XML, the domain with its job taken, and where the change goes.
  struct device_change {
    held_job job;
    device_variant dev;
    bool live = false, config = false;
  };
  asio::awaitable<result<device_change>> begin_device_job(const domain_key& key, std::string_view xml, unsigned flags,
                                                          diagnostics& diag);
  op<void> attach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag);
  op<void> detach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag);
  op<std::string> prepare_job(std::string_view xml, std::string_view uri, unsigned flags, diagnostics& diag);
  op<void> perform_job(const domain_key& key, std::string_view uri, migrate_options opt, diagnostics& diag);
  op<domain_ref> finish_job(const domain_key& key, unsigned flags, bool ok, diagnostics& diag);
  op<void> confirm_job(const domain_key& key, unsigned flags, bool ok, diagnostics& diag);
  asio::awaitable<result<void>> hotplug(dom_ptr d, std::shared_ptr<runtime> rt, device_variant dev, diagnostics& diag);
  asio::awaitable<void> remove_backend(dom_ptr d, std::shared_ptr<runtime> rt, std::string id);
  static asio::awaitable<void> monitor_lost(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt);

  // Starts `d` from d->def; the caller holds the job. On failure nothing is left running.
  // `incoming`: where the guest's state comes from (restore, migration) instead of a boot.
  asio::awaitable<result<void>> start(dom_ptr d, bool paused, diagnostics& diag, std::optional<incoming_plan> incoming = std::nullopt);

  // ------------------------------------------------------------------ tuning (tuning.cpp)

  // After spawn, QEMU paused: the guest's cgroups, its threads placed in them, the limits of
  // <cputune>/<memtune>/<blkiotune>/<numatune> written, the vCPU and emulator threads pinned.
  asio::awaitable<result<void>> apply_tuning(dom_ptr d, std::shared_ptr<runtime> rt, diagnostics& diag);
  // vCPU i's thread id (query-cpus-fast), asked once per run.
  asio::awaitable<result<std::vector<pid_t>>> vcpu_threads(std::shared_ptr<runtime> rt, diagnostics& diag);
  // The guest's cgroups go, now or, while the kernel still counts a thread in them, soon.
  void remove_cgroup(const std::shared_ptr<runtime>& rt);
  // A live setting changed d->def: the runtime record keeps the live XML for a re-attach.
  void live_def_changed(const dom_ptr& d);

  // ------------------------------------------------------------------ re-attach

  asio::awaitable<void> reattach(runtime_record rec);

  void close_all();
};

}  // namespace covirt::qemu
