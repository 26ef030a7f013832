// The QEMU driver: real qemu-system-* processes, each controlled over its QMP socket.
#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/qmp.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include "../common/domain_list.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <variant>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace covirt::qemu {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr unsigned start_paused_flag = 1;  // VIR_DOMAIN_START_PAUSED
constexpr int crashed_panicked = 1;        // VIR_DOMAIN_CRASHED_PANICKED
constexpr auto qmp_command_limit = 30s;    // a QMP command that takes longer means QEMU is stuck
constexpr auto start_limit = 10s;          // from spawn to an open QMP socket

std::string q(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// An async mutex: one job at a time on a domain. Waiters queue in order.
struct job_waiter {
  explicit job_waiter(asio::any_io_executor ex) : timer(std::move(ex), asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  bool granted = false;
};

struct job_mutex {
  bool held = false;
  std::deque<std::shared_ptr<job_waiter>> waiters;
  void release() {
    if (!waiters.empty()) {
      auto w = std::move(waiters.front());
      waiters.pop_front();
      w->granted = true;  // ownership passes on; `held` stays true
      w->timer.cancel();
      return;
    }
    held = false;
  }
};

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


struct dom {
  domain_config def;                  // the running definition, or the only one
  std::optional<domain_config> next;  // the persistent definition while running
  domain_state state = domain_state::shutoff;
  int reason = reason::shutoff_unknown;
  int id = -1;
  bool persistent = true;
  bool autostart = false;
  bool starting = false;
  std::shared_ptr<runtime> rt;
  job_mutex job;
  std::shared_ptr<long_job> job_now;          // while a long job runs
  bool migration_held = false;  // an outgoing migration was performed: its job stays taken until confirm

  bool active() const noexcept { return id >= 0; }
  domain_ref ref() const { return {def.name, def.uuid, id}; }
  const domain_config& persistent_def() const { return next ? *next : def; }
  domain_config& persistent_def_mut() { return next ? *next : def; }
};

using dom_ptr = std::shared_ptr<dom>;

// The thread that does the driver's durable file writes (fsync can take milliseconds).
asio::any_io_executor file_thread() {
  static asio::thread_pool pool(1);
  return pool.get_executor();
}

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

// The state name libvirt's qemuMonitorJSONGetStatus gives each QEMU run state.
domain_state_info map_status(std::string_view st) {
  using S = domain_state;
  if (st == "running") return {S::running, reason::running_unknown};
  if (st == "internal-error") return {S::paused, reason::paused_crashed};
  if (st == "io-error") return {S::paused, reason::paused_ioerror};
  if (st == "watchdog") return {S::paused, reason::paused_watchdog};
  if (st == "guest-panicked") return {S::crashed, crashed_panicked};
  if (st == "shutdown") return {S::paused, reason::paused_shutting_down};
  if (st == "suspended") return {S::pmsuspended, 0};
  if (st == "inmigrate" || st == "postmigrate" || st == "finish-migrate") return {S::paused, reason::paused_migration};
  if (st == "save-vm") return {S::paused, reason::paused_save};
  if (st == "paused" || st == "prelaunch") return {S::paused, reason::user};
  return {S::paused, reason::paused_unknown};
}

int suspended_detail(int paused_reason) {
  switch (paused_reason) {
    case reason::paused_ioerror: return event_detail::suspended_ioerror;
    case reason::paused_watchdog: return event_detail::suspended_watchdog;
    case reason::paused_migration: return event_detail::suspended_migrated;
    default: return event_detail::suspended_paused;
  }
}

std::optional<std::string> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path cand = fs::path(dir) / name;
    if (::access(cand.c_str(), X_OK) == 0) return cand.string();
  }
  return std::nullopt;
}

std::string host_arch() {
  struct utsname u{};
  if (::uname(&u) == 0) return u.machine;
  return "x86_64";
}


// libvirt's defaults at define time that the QEMU driver needs to be explicit about.
void apply_defaults(domain_config& d) {
  if (d.uuid.empty()) d.uuid = generate_uuid();
  if (d.current_memory_kib == 0 || d.current_memory_kib > d.memory_kib) d.current_memory_kib = d.memory_kib;
  if (d.vcpus == 0) d.vcpus = 1;
  if (d.vcpu_placement.empty()) d.vcpu_placement = "static";
  if (d.os.arch.empty()) d.os.arch = host_arch() == "i686" ? "i686" : "x86_64";
  if (d.on_poweroff.empty()) d.on_poweroff = "destroy";
  if (d.on_reboot.empty()) d.on_reboot = "restart";
  if (d.on_crash.empty()) d.on_crash = "destroy";
  for (auto& n : d.devices.interfaces)
    if (n.mac.empty()) n.mac = random_mac();
  d.has_devices = true;
}

bool has_balloon(const domain_config& d) {
  return d.devices.memballoon && d.devices.memballoon->model != "none";
}

std::string marker_for(const domain_config& d) {
  // A comma in the name is doubled on QEMU's command line; the uuid is always plain.
  if (d.name.find(',') != std::string::npos) return d.uuid;
  return "guest=" + d.name;
}

// The ids build_argv gives devices, as <alias> in the live definition: "net<i>" for the i-th
// interface, "virtio-disk<index>" for virtio disks. Hotplug and unplug address devices by them.
void set_aliases(domain_config& d) {
  for (std::size_t i = 0; i < d.devices.interfaces.size(); ++i) d.devices.interfaces[i].alias = "net" + std::to_string(i);
  for (auto& x : d.devices.disks) {
    std::string bus = x.target_bus.empty() && x.target_dev.rfind("vd", 0) == 0 ? "virtio" : x.target_bus;
    auto idx = disk_target_index(x.target_dev);
    if (bus == "virtio" && idx) x.alias = "virtio-disk" + std::to_string(*idx);
  }
}

// The block node of each disk as build_argv names it (disk i of n: libvirt-<n-i>-format), kept in
// the runtime record so that block_stats finds it after hotplugs and re-attaches.
void record_device_names(const domain_config& d, runtime_record& rec) {
  for (auto it = rec.extra.begin(); it != rec.extra.end();)
    it = it->first.rfind("node:", 0) == 0 ? rec.extra.erase(it) : std::next(it);
  const auto& disks = d.devices.disks;
  for (std::size_t i = 0; i < disks.size(); ++i)
    rec.extra["node:" + disks[i].target_dev] = "libvirt-" + std::to_string(disks.size() - i) + "-format";
}

using device_variant = std::variant<disk_def, interface_def>;

// Where a starting QEMU takes the guest's state from instead of booting it.
struct incoming_plan {
  std::string uri;                 // migration: migrate-incoming's URI (tcp:HOST:PORT)
  bool migration = false;          // prepare: return once QEMU listens; finish runs it
  std::shared_ptr<long_job> job;   // restore: the job whose feed pushes the file in
  std::string feed_path;           // restore: the saved file
  std::uint64_t feed_offset = 0;   //          and where QEMU's stream starts in it
};

}  // namespace

struct driver::state : std::enable_shared_from_this<driver::state> {
  asio::any_io_executor ex;
  paths dirs;
  bool is_open = false;
  bool closed = false;
  covirt::detail::domain_list<dom> doms;  // by name: lists come sorted
  int next_id = 1;
  event_hub events;
  std::function<bool()> kvm_probe = [] { return ::access("/dev/kvm", R_OK | W_OK) == 0; };
  std::optional<std::uint64_t> version;
  std::string caps_xml;

  dom_ptr find(std::string_view name) { return doms.find(name); }
  dom_ptr find_uuid(std::string_view uuid) { return doms.find_uuid(uuid); }
  result<dom_ptr> get(const domain_key& key, diagnostics& diag) { return doms.get(key, diag); }
  void erase(const dom_ptr& d) { doms.erase(*d); }
  void emit(const dom& d, event_type t, int detail) {
    if (events.has_subscribers()) events.publish(domain_event{d.ref(), t, detail});
  }

  result<dom_ptr> admit(const domain_config& def, bool live, diagnostics& diag) { return doms.admit(def, live, diag); }

  // ------------------------------------------------------------------ jobs

  // Waits for the domain's job; false when the wait was cancelled.
  asio::awaitable<bool> acquire(dom_ptr d) {
    if (!d->job.held) {
      d->job.held = true;
      co_return true;
    }
    auto w = std::make_shared<job_waiter>(ex);
    d->job.waiters.push_back(w);
    co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (w->granted) co_return true;
    auto& q = d->job.waiters;
    q.erase(std::remove(q.begin(), q.end(), w), q.end());
    co_return false;
  }

  struct job_guard {
    dom_ptr d;
    job_guard() = default;
    explicit job_guard(dom_ptr p) : d(std::move(p)) {}
    job_guard(job_guard&& o) noexcept : d(std::move(o.d)) {}
    job_guard& operator=(job_guard&&) = delete;
    ~job_guard() {
      if (d) d->job.release();
    }
  };

  // Looks the domain up and takes its job.
  asio::awaitable<result<dom_ptr>> begin_job(const domain_key& key, diagnostics& diag, job_guard& g) {
    auto d = get(key, diag);
    if (!d) co_return d;
    dom_ptr p = *d;
    if (!co_await acquire(p)) co_return fail(diag, errc::operation_aborted, "waiting for a job on domain " + q(p->def.name) + " was cancelled");
    g.d = p;
    co_return p;
  }

  // ------------------------------------------------------------------ QMP

  asio::awaitable<result<json::value>> call(std::shared_ptr<runtime> rt, std::string cmd, json::object args,
                                            diagnostics& diag, std::chrono::steady_clock::duration limit = qmp_command_limit) {
    // Bound by its own deadline and by the caller's cancellation, whichever comes first.
    op_timeout deadline{ex, limit};
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    deadline.follow(cs.slot());
    auto [ec, v] = co_await rt->mon.async_execute(cmd, std::move(args), diag,
                                                  asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) {
      if (deadline.expired())
        co_return fail(diag, errc::operation_timeout, "QEMU did not answer " + q(cmd) + " in time");
      if (ec == asio::error::operation_aborted)
      {
        diag.assign("QMP command " + q(cmd) + " was cancelled");
        co_return failure(error_code(asio::error::operation_aborted));
      }
      co_return failure(ec);
    }
    co_return std::move(v);
  }

  // After a failed command: a guest that went away is "not running", anything else is QEMU's error.
  // A running domain's job that is one QMP command with no arguments (system_powerdown, system_reset).
  // reboot: the command is the power button, and the guest's power-off becomes a reset.
  op<void> simple_command(const domain_key& key, std::string cmd, diagnostics& diag, bool reboot = false);

  failure command_failed(const dom_ptr& d, const std::shared_ptr<runtime>& rt, error_code ec, diagnostics& diag) {
    if (d->rt != rt || rt->finished) return fail(diag, errc::operation_invalid, "domain is not running");
    if (!rt->mon.is_open() && ec != errc::rpc && ec != errc::operation_timeout)
      return fail(diag, errc::operation_invalid, "domain is not running");
    return ec;  // QEMU's own error, a corrupt monitor (errc::rpc, the guest is then stopped), a timeout
  }

  // ------------------------------------------------------------------ records

  void persist(const dom& d) {
    if (!d.rt) return;
    auto& rec = d.rt->rec;
    rec.extra["state"] = std::to_string(static_cast<int>(d.state));
    rec.extra["reason"] = std::to_string(d.reason);
    save_runtime_later(dirs, rec);  // a state change must not wait for the disk
  }

  void set_state(dom& d, domain_state st, int r) {
    d.state = st;
    d.reason = r;
    persist(d);
  }

  // The guest is gone: record it once, whoever noticed first (exit watcher, destroy, failed start).
  void finish_stop(const dom_ptr& d, const std::shared_ptr<runtime>& rt, std::optional<int> status) {
    if (rt->finished) return;
    rt->finished = true;
    rt->mon.close();
    rt->cancel_exit.emit(asio::cancellation_type::terminal);
    rt->cancel_lost.emit(asio::cancellation_type::terminal);
    diagnostics ignore;
    (void)remove_runtime(dirs, d->def.name, ignore);
    std::error_code fec;
    if (!rt->rec.qmp_socket.empty()) fs::remove(rt->rec.qmp_socket, fec);
    if (d->rt != rt) return;
    stop_intent how = rt->intent.value_or(stop_intent{reason::crashed, event_detail::stopped_crashed});
    (void)status;
    d->rt.reset();
    d->id = -1;
    d->state = domain_state::shutoff;
    d->reason = how.reason;
    if (d->next) {
      d->def = std::move(*d->next);
      d->next.reset();
    }
    emit(*d, event_type::stopped, how.detail);
    if (!d->persistent) erase(d);
  }

  // ------------------------------------------------------------------ watchers

  void watch(const dom_ptr& d, const std::shared_ptr<runtime>& rt) {
    auto self = shared_from_this();
    asio::co_spawn(ex, event_pump(self, d, rt), asio::detached);
    asio::co_spawn(ex, exit_watch(self, d, rt), asio::detached);
  }

  static asio::awaitable<void> exit_watch(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
    auto [ec, status] = co_await rt->proc.async_wait_exit(
        asio::as_tuple(asio::bind_cancellation_slot(rt->cancel_exit.slot(), asio::use_awaitable)));
    if (ec || s->closed) co_return;
    s->finish_stop(d, rt, status);
  }

  static asio::awaitable<void> event_pump(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
    for (;;) {
      auto [ec, ev] = co_await rt->mon.async_next_event(asio::as_tuple(asio::use_awaitable));
      if (s->closed || rt->finished) co_return;
      if (ec) co_return co_await monitor_lost(s, d, rt);
      co_await s->on_event(d, rt, std::move(ev));
    }
  }

  // Stops QEMU because the guest powered off (or crashed) and the domain's policy says destroy.
  static asio::awaitable<void> stop_guest(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
    job_guard g;
    if (!co_await s->acquire(d)) co_return;
    g.d = d;
    if (d->rt != rt || rt->finished) co_return;
    co_await s->kill(d, rt);
  }

  // Asks QEMU to quit, then SIGTERM/SIGKILL; returns when it is gone and recorded.
  asio::awaitable<void> kill(dom_ptr d, std::shared_ptr<runtime> rt) {
    bool asked = false;
    if (rt->mon.is_open()) {
      diagnostics ignore;
      std::string cmd = "quit";
      asked = (co_await call(rt, cmd, {}, ignore, 1s)).has_value();
    }
    std::optional<int> status;
    if (asked) {
      op_timeout deadline{ex, 2s};
      auto [ec, st] = co_await rt->proc.async_wait_exit(asio::as_tuple(deadline.bind(asio::use_awaitable)));
      if (!ec) status = st;
    }
    if (!status) {
      auto [ec, st] = co_await rt->proc.async_terminate(1000ms, asio::as_tuple(asio::use_awaitable));
      if (!ec) status = st;
    }
    finish_stop(d, rt, status);
  }

  asio::awaitable<void> on_event(dom_ptr d, std::shared_ptr<runtime> rt, qmp_event ev) {
    if (d->rt != rt) co_return;
    const std::string& n = ev.name;
    if (n == "STOP") {
      if (rt->intent || d->state == domain_state::paused || d->state == domain_state::crashed) co_return;
      if (rt->expect_stop) {
        set_state(*d, domain_state::paused, reason::user);
        emit(*d, event_type::suspended, event_detail::suspended_paused);
        co_return;
      }
      diagnostics ignore;
      std::string cmd = "query-status";
      auto st = co_await call(rt, cmd, {}, ignore, 5s);
      if (d->rt != rt || rt->finished || rt->intent) co_return;
      domain_state_info m{domain_state::paused, reason::paused_unknown};
      if (st && st->is_object())
        if (auto* s = st->as_object().if_contains("status"); s && s->is_string()) m = map_status(s->as_string());
      if (m.state == domain_state::running) co_return;  // resumed meanwhile
      if (d->state == m.state && d->reason == m.reason) co_return;
      set_state(*d, m.state, m.reason);
      if (m.state == domain_state::crashed) emit(*d, event_type::crashed, event_detail::crashed_panicked);
      else if (m.state == domain_state::paused) emit(*d, event_type::suspended, suspended_detail(m.reason));
    } else if (n == "RESUME") {
      if (rt->intent || d->state == domain_state::running) co_return;
      set_state(*d, domain_state::running, reason::unpaused);
      emit(*d, event_type::resumed, event_detail::resumed_unpaused);
    } else if (n == "SHUTDOWN") {
      if (rt->intent) co_return;
      bool guest = false;
      std::string why;
      if (auto* g = ev.data.if_contains("guest"); g && g->is_bool()) guest = g->as_bool();
      if (auto* r = ev.data.if_contains("reason"); r && r->is_string()) why = r->as_string();
      bool panic = why == "guest-panic";
      if (guest && !panic && rt->fake_reboot) {
        rt->fake_reboot = false;
        diagnostics ignore;
        std::string reset = "system_reset", cont = "cont";
        (void)co_await call(rt, reset, {}, ignore, 5s);
        (void)co_await call(rt, cont, {}, ignore, 5s);
        co_return;
      }
      const std::string& action = panic ? d->def.on_crash : d->def.on_poweroff;
      emit(*d, event_type::shutdown, event_detail::shutdown_finished);
      if (!guest) {
        // host-signal, host-ui: QEMU exits by itself even with -no-shutdown.
        rt->intent = stop_intent{reason::shutdown, event_detail::stopped_shutdown};
        co_return;
      }
      if (action == "restart" || action == "rename-restart") {
        diagnostics ignore;
        std::string reset = "system_reset", cont = "cont";
        (void)co_await call(rt, reset, {}, ignore, 5s);
        (void)co_await call(rt, cont, {}, ignore, 5s);
        co_return;
      }
      if (action == "preserve" || action == "coredump-restart" || action == "coredump-destroy") {
        if (action == "preserve") {
          set_state(*d, panic ? domain_state::crashed : domain_state::shutdown, panic ? crashed_panicked : 0);
          co_return;
        }
      }
      rt->intent = panic ? stop_intent{reason::crashed, event_detail::stopped_crashed}
                         : stop_intent{reason::shutdown, event_detail::stopped_shutdown};
      asio::co_spawn(ex, stop_guest(shared_from_this(), d, rt), asio::detached);
    } else if (n == "GUEST_PANICKED") {
      std::string action;
      if (auto* a = ev.data.if_contains("action"); a && a->is_string()) action = a->as_string();
      if (action == "pause") set_state(*d, domain_state::crashed, crashed_panicked);
      emit(*d, event_type::crashed, event_detail::crashed_panicked);
    } else if (n == "SUSPEND") {
      set_state(*d, domain_state::pmsuspended, 0);
      emit(*d, event_type::pmsuspended, event_detail::pmsuspended_memory);
    } else if (n == "SUSPEND_DISK") {
      rt->intent = stop_intent{reason::saved, event_detail::stopped_saved};
      emit(*d, event_type::pmsuspended, event_detail::pmsuspended_disk);
    } else if (n == "BALLOON_CHANGE") {
      if (auto* a = ev.data.if_contains("actual"); a && a->is_int64() && a->as_int64() >= 0)
        rt->balloon_kib = static_cast<std::uint64_t>(a->as_int64()) / 1024;
    } else if (n == "DEVICE_DELETED") {
      // A hot-unplug the guest completed (maybe long after detach_device returned).
      std::string id;
      if (auto* dv = ev.data.if_contains("device"); dv && dv->is_string()) id = dv->as_string();
      if (id.empty()) co_return;  // a backend-less child (its path only)
      co_await remove_backend(d, rt, id);
      if (auto w = rt->unplugs.find(id); w != rt->unplugs.end()) {
        w->second->cancel();  // the detach call returns once the device and its backend are gone
        rt->unplugs.erase(w);
      }
    } else if (n == "WAKEUP") {
      if (d->state == domain_state::pmsuspended) {
        set_state(*d, domain_state::running, reason::running_wakeup);
        emit(*d, event_type::started, event_detail::started_wakeup);
      }
    }
  }

  // ------------------------------------------------------------------ migration

  // Polls query-migrate until the migration (outgoing or incoming) completes, fails, or `limit`
  // passes. The poll's pause is where a cancellation of the caller lands: an outgoing
  // migration is then cancelled in QEMU (migrate_cancel) and the result, like after abort_job,
  // is errc::operation_aborted once QEMU says "cancelled"; an incoming one returns at once (the
  // caller kills that QEMU). Run it with throw_if_cancelled(false) (see cleanup_on_cancel).
  asio::awaitable<result<json::value>> wait_migration(std::shared_ptr<runtime> rt, diagnostics& diag,
                                                      std::chrono::steady_clock::duration limit,
                                                      std::string_view what, bool outgoing) {
    auto until = std::chrono::steady_clock::now() + limit;
    asio::steady_timer pause(ex);
    bool cancelling = false;
    auto aborted = [&] {
      return fail(diag, errc::operation_aborted, std::string(what) + " job: canceled by client");
    };
    auto cancel = [&]() -> asio::awaitable<void> {
      cancelling = true;
      diagnostics ignore;
      std::string cmd = "migrate_cancel";
      (void)co_await call(rt, cmd, {}, ignore, 5s);
    };
    for (;;) {
      std::string cmd = "query-migrate";
      auto r = co_await call(rt, cmd, {}, diag, 10s);
      if (!r && r.error() == asio::error::operation_aborted && !cancelling) {  // the caller, mid-command
        if (!outgoing) co_return aborted();
        co_await cancel();
        continue;
      }
      if (!r) co_return r;
      std::string status;
      if (r->is_object())
        if (auto* st = r->as_object().if_contains("status"); st && st->is_string()) status = st->as_string();
      if (status == "completed") co_return r;
      if (status == "cancelled") co_return aborted();
      if (status == "failed") {
        std::string why;
        if (auto* e = r->as_object().if_contains("error-desc"); e && e->is_string()) why = e->as_string();
        co_return fail(diag, errc::operation_failed, std::string(what) + " failed" + (why.empty() ? "" : ": " + why));
      }
      if (std::chrono::steady_clock::now() > until && !cancelling) {
        if (outgoing) co_await cancel();
        co_return fail(diag, errc::operation_timeout, std::string(what) + " did not complete in time (status " + q(status) + ")");
      }
      pause.expires_after(cancelling ? 10ms : 50ms);
      auto [ec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      // A cancellation that came while a QMP command was out (those run under their own
      // deadline) is only in the coroutine's cancellation state: look there too.
      if ((ec || co_await caller_cancelled()) && !cancelling) {
        if (!outgoing) co_return aborted();
        co_await cancel();
      }
    }
  }

  // Definitions are written durably (fsync): on the file thread, while the io_context goes on.
  struct file_outcome {
    error_code ec;
    std::string msg;
  };
  static asio::awaitable<file_outcome> definition_io(paths p, std::string name, std::optional<std::string> xml) {
    diagnostics d;
    result<void> r = xml ? save_definition(p, name, *xml, d) : remove_definition(p, name, d);
    co_return file_outcome{r ? error_code() : r.error(), std::string(d.message())};
  }
  asio::awaitable<result<void>> store_definition(std::string name, std::optional<std::string> xml, diagnostics& diag) {
    auto out = co_await asio::co_spawn(file_thread(), definition_io(dirs, std::move(name), std::move(xml)),
                                       asio::use_awaitable);
    if (!out.ec) co_return result<void>{};
    diag.assign(std::move(out.msg));
    co_return failure(out.ec);
  }

  // The migration stream's cap in MiB/s (QEMU's own default is 128); 0: none to speak of.
  asio::awaitable<void> set_max_bandwidth(std::shared_ptr<runtime> rt, std::uint64_t mib) {
    json::object p;
    p["max-bandwidth"] = mib ? static_cast<std::int64_t>(std::min<std::uint64_t>(mib, 1u << 20) << 20) : std::int64_t{1} << 40;
    diagnostics ignore;
    std::string cmd = "migrate-set-parameters";
    (void)co_await call(std::move(rt), cmd, std::move(p), ignore, 5s);
  }

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

  static asio::awaitable<bool> caller_cancelled() {
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    co_return cs.cancelled() != asio::cancellation_type::none;
  }

  static asio::awaitable<std::size_t> read_chunk(std::ifstream& in, std::vector<char>& buf) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    co_return static_cast<std::size_t>(in.gcount());
  }

  // restore: pushes the saved state from `path` (from `offset`) into QEMU's incoming socket.
  asio::awaitable<result<void>> feed_state(std::shared_ptr<long_job> job, std::string sock_path, std::string path,
                                           std::uint64_t offset, diagnostics& diag) {
    asio::local::stream_protocol::socket sock(ex);
    {
      op_timeout deadline{ex, 10s};
      auto [ec] = co_await sock.async_connect(asio::local::stream_protocol::endpoint(sock_path),
                                              asio::as_tuple(deadline.bind(asio::use_awaitable)));
      if (ec) co_return fail(diag, errc::operation_failed, "cannot connect to QEMU's incoming socket: " + ec.message());
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) co_return fail(diag, errc::operation_failed, "cannot open saved state file " + q(path));
    in.seekg(static_cast<std::streamoff>(offset));
    std::vector<char> buf(1 << 20);
    for (;;) {
      if (job->abort_requested || co_await caller_cancelled())
        co_return fail(diag, errc::operation_aborted, "restore job: canceled by client");
      // The read happens on the file thread (a cold disk can take milliseconds), the write here.
      auto n = co_await asio::co_spawn(file_thread(), read_chunk(in, buf), asio::use_awaitable);
      if (n == 0) break;
      op_timeout deadline{ex, 30s};
      auto [ec, w] = co_await asio::async_write(sock, asio::buffer(buf.data(), n),
                                                asio::as_tuple(deadline.bind(asio::use_awaitable)));
      if (ec) {
        if (job->abort_requested) co_return fail(diag, errc::operation_aborted, "restore job: canceled by client");
        co_return fail(diag, errc::operation_failed,
                       deadline.expired() ? std::string("QEMU stopped reading the saved state")
                                          : "QEMU stopped reading the saved state: " + ec.message());
      }
      job->fed += w;
    }
    if (in.bad()) co_return fail(diag, errc::operation_failed, "cannot read saved state file " + q(path));
    error_code sec;
    sock.shutdown(asio::socket_base::shutdown_send, sec);
    co_return result<void>{};
  }

  // ------------------------------------------------------------------ start

  // create_xml and restore: `def` runs once, as a new transient domain or in place of a
  // persistent one that is not running; on failure everything is as it was.
  op<domain_ref> start_live(domain_config def, bool paused, std::optional<incoming_plan> incoming, const char* what,
                            diagnostics& diag);
  op<void> save_job(const domain_key& key, std::string path, diagnostics& diag);
  op<void> dump_job(const domain_key& key, std::string path, unsigned flags, diagnostics& diag);
  // attach/detach: the device from its XML, the domain with its job taken, and where the change goes.
  struct device_change {
    device_variant dev;
    dom_ptr d;
    bool live = false, config = false;
  };
  asio::awaitable<result<device_change>> begin_device_job(const domain_key& key, std::string_view xml, unsigned flags,
                                                          diagnostics& diag, job_guard& g);
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
  asio::awaitable<result<void>> start(dom_ptr d, bool paused, diagnostics& diag,
                                      std::optional<incoming_plan> incoming = std::nullopt) {
    const domain_config& def = d->def;
    auto files = files_for(dirs, def.name, diag);
    if (!files) co_return files.error();
    argv_options opt;
    opt.qmp_socket = files->qmp_socket.string();
    opt.kvm_available = kvm_probe();
    opt.start_paused = true;
    if (incoming) opt.incoming = "defer";
    auto argv = build_argv(def, opt, diag);
    if (!argv) co_return argv.error();
    std::error_code fec;
    fs::remove(files->qmp_socket, fec);
    fs::create_directories(files->log.parent_path(), fec);

    spawn_options so;
    so.argv = *argv;
    so.log_path = files->log.string();
    auto proc = process::spawn(ex, so, diag);
    if (!proc) co_return proc.error();

    auto rt = std::make_shared<runtime>(ex);
    rt->proc = std::move(*proc);
    auto log_from = rt->proc.log_offset();
    auto gone = [&](std::string what) -> failure {
      std::string tail = tail_of_log(files->log.string(), 10, log_from);
      while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
      std::string msg = "QEMU " + what + " while starting domain " + q(def.name);
      if (!tail.empty()) msg += ": " + tail;
      return fail(diag, errc::operation_failed, msg);
    };
    auto abandon = [&]() -> asio::awaitable<void> {
      co_await rt->proc.async_terminate(1000ms, asio::as_tuple(asio::use_awaitable));
      fs::remove(files->qmp_socket, fec);
    };

    // Wait for the monitor: QEMU creates its socket early, but a start error makes it exit first.
    auto until = std::chrono::steady_clock::now() + start_limit;
    asio::steady_timer pause(ex);
    std::chrono::steady_clock::duration poll_every = 2ms;
    bool connected = false;
    for (;;) {
      if (rt->proc.has_exited()) {
        auto st = rt->proc.exit_status();
        co_return gone(st ? describe_exit(*st) : std::string("exited"));
      }
      if (fs::exists(files->qmp_socket, fec)) {
        qmp m(ex);
        diagnostics cd;
        op_timeout deadline{ex, 2s};
        auto [ec] = co_await m.async_connect(files->qmp_socket.string(), cd,
                                             asio::as_tuple(deadline.bind(asio::use_awaitable)));
        if (!ec) {
          rt->mon = std::move(m);
          connected = true;
          break;
        }
      }
      if (std::chrono::steady_clock::now() > until) break;
      // QEMU makes its socket within tens of milliseconds of exec: look often at first.
      pause.expires_after(poll_every);
      poll_every = std::min<std::chrono::steady_clock::duration>(poll_every * 2, 20ms);
      auto [pec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      if (pec || co_await caller_cancelled()) {
        co_await abandon();
        co_return fail(diag, errc::operation_aborted, "starting domain " + q(def.name) + " was cancelled");
      }
    }
    if (!connected) {
      if (rt->proc.has_exited()) {
        auto st = rt->proc.exit_status();
        co_return gone(st ? describe_exit(*st) : std::string("exited"));
      }
      co_await abandon();
      co_return gone("did not open its monitor socket in time");
    }

    std::string status_cmd = "query-status";
    auto st = co_await call(rt, status_cmd, {}, diag, 10s);
    if (!st) {
      co_await abandon();
      co_return gone("failed its first monitor command (" + std::string(diag.message()) + ")");
    }
    const bool migration = incoming && incoming->migration;
    if (incoming) {
      std::string uri = incoming->uri;
      if (incoming->job) {
        // restore: QEMU listens on a unix socket next to its monitor, and we feed it the file.
        std::string sock_path = files->qmp_socket.string() + ".in";
        fs::remove(sock_path, fec);
        uri = "unix:" + sock_path;
        incoming->job->rt = rt;
        d->job_now = incoming->job;
        json::object a;
        a["uri"] = uri;
        std::string mi = "migrate-incoming";
        auto r = co_await call(rt, mi, std::move(a), diag, 10s);
        if (r) {
          auto fr = co_await feed_state(incoming->job, sock_path, incoming->feed_path, incoming->feed_offset, diag);
          if (fr) r = co_await wait_migration(rt, diag, 300s, "restore", false);
          else r = failure(fr.error());
        }
        fs::remove(sock_path, fec);
        d->job_now.reset();
        if (!r) {
          std::string why(diag.message());
          error_code ec = r.error();
          co_await abandon();
          if (ec == errc::operation_aborted) co_return fail(diag, errc::operation_aborted, why);
          co_return gone("could not load the saved state (" + why + ")");
        }
      } else {
        // migration: QEMU listens for the source's stream; finish waits for it to complete.
        json::object a;
        a["uri"] = uri;
        std::string mi = "migrate-incoming";
        if (auto r = co_await call(rt, mi, std::move(a), diag, 10s); !r) {
          std::string why(diag.message());
          co_await abandon();
          co_return gone("refused to listen for the migration on " + q(uri) + " (" + why + ")");
        }
      }
    }
    if (!incoming && has_balloon(def) && def.current_memory_kib && def.current_memory_kib < def.memory_kib) {
      json::object a;
      a["value"] = static_cast<std::int64_t>(def.current_memory_kib * 1024);
      diagnostics ignore;
      std::string balloon = "balloon";
      (void)co_await call(rt, balloon, std::move(a), ignore, 5s);
    }

    int id = next_id++;
    auto& rec = rt->rec;
    rec.name = def.name;
    rec.uuid = def.uuid;
    rec.id = id;
    rec.pid = rt->proc.pid();
    rec.pid_start_ticks = rt->proc.start_ticks();
    rec.boot_id = current_boot_id();
    rec.qmp_socket = files->qmp_socket.string();
    rec.log_path = files->log.string();
    rec.started_unix = static_cast<std::int64_t>(std::time(nullptr));
    rec.emulator = (*argv)[0];
    rec.marker = marker_for(def);
    domain_format_options fo;
    fo.id = id;
    set_aliases(d->def);
    rec.live_xml = format_domain_xml(def, fo);
    rec.extra["persistent"] = d->persistent ? "1" : "0";
    if (migration) paused = true;
    int run_reason = incoming ? int(reason::running_restored) : int(reason::booted);
    int paused_reason = migration ? int(reason::paused_migration) : int(reason::user);
    rec.extra["state"] = std::to_string(static_cast<int>(paused ? domain_state::paused : domain_state::running));
    rec.extra["reason"] = std::to_string(paused ? paused_reason : run_reason);
    record_device_names(d->def, rec);
    if (auto r = save_runtime(dirs, rec, diag); !r) {
      co_await abandon();
      co_return r.error();
    }
    if (!paused) {
      std::string cont = "cont";
      if (auto r = co_await call(rt, cont, {}, diag, 10s); !r) {
        co_await abandon();
        diagnostics ignore;
        (void)remove_runtime(dirs, def.name, ignore);
        co_return gone("refused to run (" + std::string(diag.message()) + ")");
      }
    }
    d->rt = rt;
    d->id = id;
    d->state = paused ? domain_state::paused : domain_state::running;
    d->reason = paused ? paused_reason : run_reason;
    emit(*d, event_type::started,
         migration ? event_detail::started_migrated : incoming ? event_detail::started_restored : event_detail::started_booted);
    if (paused && !migration) emit(*d, event_type::suspended, event_detail::suspended_paused);
    watch(d, rt);
    co_return result<void>{};
  }

  // ------------------------------------------------------------------ re-attach

  asio::awaitable<void> reattach(runtime_record rec) {
    diagnostics diag;
    dom_ptr d = find(rec.name);
    std::optional<domain_config> live;
    if (!rec.live_xml.empty())
      if (auto p = parse_domain_xml(rec.live_xml, diag)) live = std::move(*p);
    auto stale = [&] {
      diagnostics ignore;
      (void)remove_runtime(dirs, rec.name, ignore);
      std::error_code fec;
      if (!rec.qmp_socket.empty()) fs::remove(rec.qmp_socket, fec);
      if (d) {
        d->state = domain_state::shutoff;
        d->reason = reason::shutoff_unknown;
      }
    };
    if (!d && !live) co_return stale();
    if (!rec.boot_id.empty() && rec.boot_id != current_boot_id()) co_return stale();
    auto p = process::attach(ex, rec.pid, rec.marker, diag, rec.pid_start_ticks);
    if (!p) co_return stale();
    if (!d) {
      d = std::make_shared<dom>();
      d->def = *live;
      d->persistent = false;
      doms.insert(d);
    } else if (live) {
      d->next = std::move(d->def);
      d->def = std::move(*live);
    }
    auto rt = std::make_shared<runtime>(ex);
    rt->proc = std::move(*p);
    rt->rec = rec;
    d->rt = rt;
    d->id = rec.id;
    next_id = std::max(next_id, rec.id + 1);
    d->state = domain_state::running;
    d->reason = reason::running_unknown;
    {
      qmp m(ex);
      op_timeout deadline{ex, 5s};
      auto [ec] = co_await m.async_connect(rec.qmp_socket, diag, asio::as_tuple(deadline.bind(asio::use_awaitable)));
      if (!ec) rt->mon = std::move(m);
    }
    if (rt->mon.is_open()) {
      std::string cmd = "query-status";
      auto st = co_await call(rt, cmd, {}, diag, 5s);
      if (st && st->is_object())
        if (auto* s = st->as_object().if_contains("status"); s && s->is_string()) {
          auto m = map_status(s->as_string());
          int saved_state = -1, saved_reason = 0;
          if (auto it = rec.extra.find("state"); it != rec.extra.end()) saved_state = std::atoi(it->second.c_str());
          if (auto it = rec.extra.find("reason"); it != rec.extra.end()) saved_reason = std::atoi(it->second.c_str());
          if (saved_state == static_cast<int>(m.state) &&
              (m.reason == reason::running_unknown || m.reason == reason::user))
            m.reason = saved_reason;
          d->state = m.state;
          d->reason = m.reason;
        }
    }
    if (d->rt == rt) watch(d, rt);
  }

  void close_all() {
    if (closed) return;
    closed = true;
    for (auto& [n, d] : doms)
      if (d->rt) {
        d->rt->mon.close();
        d->rt->cancel_exit.emit(asio::cancellation_type::terminal);
        d->rt->cancel_lost.emit(asio::cancellation_type::terminal);
      }
    events.close_all();
  }
};

driver::driver(asio::any_io_executor ex) : s_(std::make_shared<state>()) { s_->ex = std::move(ex); }
namespace {

// The state every connection to one set of directories shares in this program. The last
// connection to let go closes the QMP connections (the guests keep running) and the lock.
struct driver_share {
  std::shared_ptr<driver::state> s;
  int lock_fd = -1;
  std::string key;
  ~driver_share();
};

struct share_registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<driver_share>> by_dirs;
};

share_registry& shares() {
  static share_registry r;
  return r;
}

// An advisory lock on the state directory, held while this program manages its guests: a second
// program would fight this one for each QEMU's single monitor connection.
result<int> lock_state_dir(const paths& p, diagnostics& diag) {
  fs::path lock = p.state_dir / "driver.lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(diag, errc::system_error, "cannot open " + q(lock.string()) + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\r')) pid.pop_back();
    std::string who = pid.empty() ? "" : " (pid " + pid + ")";
    if (e == EWOULDBLOCK)
      return fail(diag, errc::resource_busy,
                  "the guests of " + q(p.state_dir.string()) + " are managed by another program" + who +
                      "; QEMU's monitor serves one client at a time, so use that program (or its connection)");
    return fail(diag, errc::system_error, "cannot lock " + q(lock.string()) + ": " + std::strerror(e));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

driver_share::~driver_share() {
  if (s) s->close_all();
  if (lock_fd >= 0) ::close(lock_fd);
  auto& r = shares();
  std::lock_guard lk(r.mu);
  if (auto it = r.by_dirs.find(key); it != r.by_dirs.end() && it->second.expired()) r.by_dirs.erase(it);
}

}  // namespace

driver::driver(driver&&) noexcept = default;
driver& driver::operator=(driver&& o) noexcept {
  if (this != &o) {
    if (s_ && !share_) s_->close_all();
    share_ = std::move(o.share_);
    s_ = std::move(o.s_);
  }
  return *this;
}
driver::~driver() {
  if (s_ && !share_) s_->close_all();  // never opened; an opened one closes with its share
}

asio::any_io_executor driver::get_executor() const noexcept { return s_->ex; }

void driver::set_kvm_probe(std::function<bool()> probe) { s_->kvm_probe = std::move(probe); }

op<void> driver::open(const uri& u, unsigned, diagnostics& diag) {
  auto s = s_;
  if (u.path == "/system" && ::geteuid() != 0)
    co_return fail(diag, errc::operation_denied,
                   "qemu:///system needs root; use qemu:///session to manage this user's own guests");
  auto p = resolve_paths(u, diag);
  if (!p) co_return p.error();
  // Another connection of this program to the same directories: share its state.
  std::error_code fec;
  fs::create_directories(p->state_dir, fec);
  std::string key = fs::weakly_canonical(p->state_dir, fec).string() + "\n" + fs::weakly_canonical(p->config_dir, fec).string();
  {
    auto& r = shares();
    std::lock_guard lk(r.mu);
    if (auto it = r.by_dirs.find(key); it != r.by_dirs.end())
      if (auto sh = it->second.lock()) {
        if (sh->s->ex != s->ex)
          co_return fail(diag, errc::resource_busy,
                         "the guests of " + q(p->state_dir.string()) +
                             " are managed by a connection on another executor of this program; open this one on that executor");
        s_ = sh->s;
        share_ = sh;
        co_return result<void>{};
      }
  }
  auto lock = lock_state_dir(*p, diag);
  if (!lock) co_return lock.error();
  auto share = std::make_shared<driver_share>();
  share->lock_fd = *lock;
  share->key = key;
  s->dirs = std::move(*p);
  auto names = list_definitions(s->dirs, diag);
  if (!names) co_return names.error();
  for (const auto& n : *names) {
    diagnostics ld;
    auto xml = load_definition(s->dirs, n, ld);
    if (!xml || !*xml) continue;
    auto def = parse_domain_xml(**xml, ld);
    if (!def || def->name != n) continue;  // a broken file never stops the driver
    apply_defaults(*def);
    if (s->find_uuid(def->uuid)) continue;
    auto d = std::make_shared<dom>();
    d->def = std::move(*def);
    d->autostart = qemu::get_autostart(s->dirs, n);
    s->doms.insert(d);
  }
  diagnostics rd;
  auto recs = list_runtime(s->dirs, rd);
  if (recs)
    for (auto& r : *recs) co_await s->reattach(std::move(r));
  s->is_open = true;
  share->s = s;
  share_ = share;
  {
    auto& r = shares();
    std::lock_guard lk(r.mu);
    r.by_dirs[key] = share;
  }
  for (auto& d : s->doms.snapshot()) {
    if (!d->autostart || d->active() || !d->persistent) continue;
    state::job_guard g;
    if (!co_await s->acquire(d)) continue;
    g.d = d;
    diagnostics ad;
    if (!d->active()) {
      if (d->persistent && !d->next) d->next = d->def;
      auto r = co_await s->start(d, false, ad);
      if (!r) d->next.reset();
    }
  }
  diag.clear();
  co_return result<void>{};
}

op<void> driver::close(diagnostics&) {
  if (!share_) s_->close_all();
  share_.reset();  // the last connection to these directories closes their state
  co_return result<void>{};
}

op<std::string> driver::get_hostname(diagnostics& diag) {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) co_return fail(diag, errc::system_error, "gethostname failed");
  co_return std::string(buf);
}

op<std::uint64_t> driver::get_version(diagnostics& diag) {
  auto s = s_;
  if (s->version) co_return *s->version;
  auto emu = find_in_path("qemu-system-" + std::string(host_arch() == "i686" ? "i386" : "x86_64"));
  if (!emu) co_return fail(diag, errc::operation_failed, "no qemu-system binary found in PATH");
  fs::path log = s->dirs.state_dir / (".version-" + std::to_string(::getpid()) + ".log");
  std::error_code fec;
  fs::remove(log, fec);
  spawn_options so;
  so.argv = {*emu, "--version"};
  so.log_path = log.string();
  auto p = process::spawn(s->ex, so, diag);
  if (!p) co_return p.error();
  std::string exit_text;
  {
    op_timeout deadline{s->ex, 10s};
    auto [ec, st] = co_await p->async_wait_exit(asio::as_tuple(deadline.bind(asio::use_awaitable)));
    exit_text = describe_exit(st);
    if (ec) {
      p->signal(SIGKILL);
      fs::remove(log, fec);
      co_return fail(diag, errc::operation_failed, "'" + *emu + " --version' did not finish");
    }
  }
  std::string text = read_text(log);
  fs::remove(log, fec);
  auto at = text.find("QEMU emulator version ");
  unsigned a = 0, b = 0, c = 0;
  if (at == std::string::npos ||
      std::sscanf(text.c_str() + at + 22, "%u.%u.%u", &a, &b, &c) < 2)
    co_return fail(diag, errc::operation_failed, "cannot read the version of '" + *emu + "': " + exit_text + ": " + text);
  s->version = std::uint64_t(a) * 1000000 + b * 1000 + c;
  co_return *s->version;
}

op<std::string> driver::get_capabilities(diagnostics&) {
  auto s = s_;
  if (!s->caps_xml.empty()) co_return s->caps_xml;
  capabilities c;
  c.host.cpu.arch = host_arch();
  {
    std::string id = read_text("/sys/class/dmi/id/product_uuid");
    diagnostics ignore;
    if (auto u = parse_uuid(id.substr(0, id.find('\n')), ignore)) c.host.uuid = *u;
    else {
      std::string mid = read_text("/etc/machine-id");
      mid = mid.substr(0, mid.find('\n'));
      if (auto u2 = parse_uuid(mid, ignore)) c.host.uuid = *u2;
    }
  }
  c.host.power_management = false;
  bool kvm = s->kvm_probe();
  struct arch_t { const char* arch; const char* bin; unsigned word; };
  for (arch_t a : {arch_t{"i686", "qemu-system-i386", 32}, arch_t{"x86_64", "qemu-system-x86_64", 64}}) {
    auto emu = find_in_path(a.bin);
    if (!emu) continue;
    capabilities::guest g;
    g.os_type = "hvm";
    g.arch = a.arch;
    g.wordsize = a.word;
    g.emulator = *emu;
    g.machines.push_back({"pc", "", 255u});
    g.machines.push_back({"q35", "", 288u});
    g.domains.push_back({"qemu", "", {}});
    if (kvm && (std::string(a.arch) == c.host.cpu.arch || (c.host.cpu.arch == "x86_64" && a.word == 32)))
      g.domains.push_back({"kvm", "", {}});
    c.guests.push_back(std::move(g));
  }
  s->caps_xml = format_capabilities_xml(c);
  co_return s->caps_xml;
}

op<node_info> driver::node_get_info(diagnostics&) {
  node_info ni;
  ni.model = host_arch();
  ni.nodes = 1;
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  ni.cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  {
    std::ifstream in("/proc/meminfo");
    std::string key;
    unsigned long long v = 0;
    std::string unit;
    while (in >> key >> v >> unit)
      if (key == "MemTotal:") {
        ni.memory_kib = v;
        break;
      }
  }
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    std::set<std::string> physical;
    unsigned cores = 0, siblings = 0;
    double mhz = 0;
    while (std::getline(in, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string k = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
      std::string v = line.substr(colon + 1);
      if (!v.empty() && v[0] == ' ') v.erase(0, 1);
      if (k == "physical id") physical.insert(v);
      else if (k == "cpu cores" && !cores) cores = static_cast<unsigned>(std::atoi(v.c_str()));
      else if (k == "siblings" && !siblings) siblings = static_cast<unsigned>(std::atoi(v.c_str()));
      else if (k == "cpu MHz" && mhz == 0) mhz = std::atof(v.c_str());
    }
    ni.mhz = static_cast<unsigned>(mhz);
    ni.sockets = physical.empty() ? 1 : static_cast<unsigned>(physical.size());
    ni.cores = cores ? cores : ni.cpus / ni.sockets;
    ni.threads = (cores && siblings >= cores) ? siblings / cores : 1;
    if (ni.cores == 0) ni.cores = 1;
    // libvirt's rule: sockets*cores*threads must cover the online cpus, else report one flat socket.
    if (ni.sockets * ni.cores * ni.threads != ni.cpus) {
      ni.sockets = 1;
      ni.cores = ni.cpus;
      ni.threads = 1;
    }
  }
  co_return ni;
}

op<int> driver::get_max_vcpus(std::string_view, diagnostics&) { co_return 255; }

op<std::vector<domain_ref>> driver::list_domains(unsigned flags, diagnostics&) { co_return s_->doms.list(flags); }

op<domain_ref> driver::lookup_by_name(std::string_view name, diagnostics& diag) {
  co_return s_->doms.lookup_by_name(name, diag);
}

op<domain_ref> driver::lookup_by_uuid(std::string_view text, diagnostics& diag) {
  co_return s_->doms.lookup_by_uuid(text, diag);
}

op<domain_ref> driver::lookup_by_id(int id, diagnostics& diag) { co_return s_->doms.lookup_by_id(id, diag); }

op<domain_ref> driver::define_xml(std::string_view xml, diagnostics& diag) {
  auto s = s_;
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return def.error();
  if (auto r = check_name_for_file(def->name, diag); !r) co_return r.error();
  if (auto r = files_for(s->dirs, def->name, diag); !r) co_return r.error();
  apply_defaults(*def);
  if (def->type != "qemu" && def->type != "kvm")
    co_return fail(diag, errc::config_unsupported, "emulator type " + q(def->type) + " is not supported by the QEMU driver");
  auto at = s->admit(*def, false, diag);
  if (!at) co_return at.error();
  std::string text = format_domain_xml(*def);
  if (dom_ptr d = *at) {
    state::job_guard g;
    if (!co_await s->acquire(d)) co_return fail(diag, errc::operation_aborted, "define was cancelled");
    g.d = d;
    if (auto r = co_await s->store_definition(def->name, text, diag); !r) co_return r.error();
    if (d->active()) d->next = std::move(*def);
    else d->def = std::move(*def);
    d->persistent = true;
    if (d->rt) {
      d->rt->rec.extra["persistent"] = "1";
      s->persist(*d);
    }
    s->emit(*d, event_type::defined, event_detail::defined_updated);
    co_return d->ref();
  }
  // Known (and its job taken) while its file is written, so that a concurrent define of the
  // same name waits for this one instead of racing it.
  auto d = std::make_shared<dom>();
  d->def = std::move(*def);
  d->job.held = true;
  state::job_guard g(d);
  s->doms.insert(d);
  if (auto r = co_await s->store_definition(d->def.name, text, diag); !r) {
    s->erase(d);
    co_return r.error();
  }
  s->emit(*d, event_type::defined, event_detail::defined_added);
  co_return d->ref();
}

op<void> driver::undefine(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->persistent) co_return fail(diag, errc::operation_invalid, "cannot undefine transient domain");
  if (auto rr = co_await s->store_definition(d->def.name, std::nullopt, diag); !rr) co_return rr.error();
  domain_ref ref = d->ref();
  d->autostart = false;
  if (d->active()) {
    d->persistent = false;
    d->next.reset();
    if (d->rt) {
      d->rt->rec.extra["persistent"] = "0";
      s->persist(*d);
    }
  } else {
    s->erase(d);
  }
  s->events.publish(ref, event_type::undefined, event_detail::undefined_removed);
  co_return result<void>{};
}

op<void> driver::create(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (d->active()) co_return fail(diag, errc::operation_invalid, "domain is already running");
  if (s->find(d->def.name) != d) co_return fail(diag, errc::no_domain, "no domain with matching name " + q(d->def.name));
  d->next = d->def;  // the live copy may change; the definition stays
  d->starting = true;
  auto sr = co_await state::cleanup_on_cancel<void>([&] { return s->start(d, false, diag); });
  d->starting = false;
  if (!sr) {
    d->next.reset();
    co_return sr.error();
  }
  co_return result<void>{};
}

op<domain_ref> driver::state::start_live(domain_config def, bool paused, std::optional<incoming_plan> incoming,
                                         const char* what, diagnostics& diag) {
  auto s = shared_from_this();
  auto at = s->admit(def, true, diag);
  if (!at) co_return at.error();
  dom_ptr d = *at;
  state::job_guard g;
  bool fresh = !d;
  if (fresh) {
    d = std::make_shared<dom>();
    d->def = std::move(def);
    d->persistent = false;
    d->job.held = true;  // uncontended: nobody knows it yet
    g.d = d;
    s->doms.insert(d);
  } else {
    if (!co_await s->acquire(d)) co_return fail(diag, errc::operation_aborted, std::string(what) + " was cancelled");
    g.d = d;
    if (d->active()) co_return fail(diag, errc::operation_invalid, "domain " + q(d->def.name) + " is already active");
    d->next = std::move(d->def);
    d->def = std::move(def);
  }
  d->starting = true;
  auto r = co_await s->start(d, paused, diag, std::move(incoming));
  d->starting = false;
  if (!r) {
    if (fresh) s->erase(d);
    else {
      d->def = std::move(*d->next);
      d->next.reset();
    }
    co_return failure(r.error());
  }
  co_return d->ref();
}

op<domain_ref> driver::create_xml(std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return def.error();
  if (auto r = check_name_for_file(def->name, diag); !r) co_return r.error();
  apply_defaults(*def);
  if (def->type != "qemu" && def->type != "kvm")
    co_return fail(diag, errc::config_unsupported, "emulator type " + q(def->type) + " is not supported by the QEMU driver");
  co_return co_await state::cleanup_on_cancel<domain_ref>([&] {
    return s->start_live(std::move(*def), (flags & start_paused_flag) != 0, std::nullopt, "create", diag);
  });
}

op<void> driver::destroy(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  rt->intent = stop_intent{reason::destroyed, event_detail::stopped_destroyed};
  co_await s->kill(d, rt);
  co_return result<void>{};
}

op<void> driver::state::simple_command(const domain_key& key, std::string cmd, diagnostics& diag, bool reboot) {
  auto s = shared_from_this();  // the job may outlive the driver object
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  if (reboot) rt->fake_reboot = true;
  auto res = co_await s->call(rt, cmd, {}, diag);
  if (!res) {
    rt->fake_reboot = false;
    co_return s->command_failed(d, rt, res.error(), diag);
  }
  co_return result<void>{};
}

// Asks the guest (ACPI power button); returns once asked, like libvirt.
op<void> driver::shutdown(const domain_key& key, diagnostics& diag) {
  return s_->simple_command(key, "system_powerdown", diag);
}

// libvirt's reboot without a guest agent: the ACPI power button, and when the guest has shut
// down, a reset and cont instead of a stop (its "fake reboot"): the guest's OS reboots cleanly,
// the process and id stay. A guest that ignores the button does not reboot (as with libvirt).
op<void> driver::reboot(const domain_key& key, diagnostics& diag) {
  return s_->simple_command(key, "system_powerdown", diag, true);
}

op<void> driver::suspend(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (d->state == domain_state::paused) co_return result<void>{};  // libvirt: nothing to do
  if (d->state == domain_state::pmsuspended)
    co_return fail(diag, errc::operation_invalid, "domain is pmsuspended");
  auto rt = d->rt;
  rt->expect_stop = true;
  std::string cmd = "stop";
  auto res = co_await s->call(rt, cmd, {}, diag);
  rt->expect_stop = false;
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  if (d->rt == rt && d->state != domain_state::paused) {
    s->set_state(*d, domain_state::paused, reason::user);
    s->emit(*d, event_type::suspended, event_detail::suspended_paused);
  }
  co_return result<void>{};
}

op<void> driver::resume(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (d->state == domain_state::pmsuspended)
    co_return fail(diag, errc::operation_invalid, "domain is pmsuspended");
  if (d->state != domain_state::paused && d->state != domain_state::crashed)
    co_return fail(diag, errc::operation_invalid, "domain is not paused");
  auto rt = d->rt;
  std::string cmd = "cont";
  auto res = co_await s->call(rt, cmd, {}, diag);
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  if (d->rt == rt && d->state != domain_state::running) {
    s->set_state(*d, domain_state::running, reason::unpaused);
    s->emit(*d, event_type::resumed, event_detail::resumed_unpaused);
  }
  co_return result<void>{};
}

op<domain_info> driver::get_info(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  const auto& def = d->def;
  domain_info info{d->state, def.memory_kib, def.current_memory_kib ? def.current_memory_kib : def.memory_kib,
                   def.vcpu_current.value_or(def.vcpus), 0};
  if (!d->active() || !d->rt) co_return info;
  auto rt = d->rt;
  {
    // utime + stime of every thread, as libvirt's qemuGetProcessInfo reads them.
    std::string text = read_text("/proc/" + std::to_string(rt->rec.pid) + "/stat");
    auto close = text.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(text.substr(close + 2));
      std::string f;
      unsigned long long ut = 0, st = 0;
      for (int i = 3; i <= 15 && rest >> f; ++i) {
        if (i == 14) ut = std::strtoull(f.c_str(), nullptr, 10);
        if (i == 15) st = std::strtoull(f.c_str(), nullptr, 10);
      }
      long hz = ::sysconf(_SC_CLK_TCK);
      if (hz <= 0) hz = 100;
      info.cpu_time_ns = (ut + st) * (1000000000ull / static_cast<unsigned long long>(hz));
    }
  }
  if (has_balloon(def) && rt->balloon_kib) {
    info.memory_kib = *rt->balloon_kib;
  } else if (has_balloon(def) && rt->mon.is_open() && d->state == domain_state::running) {
    diagnostics ignore;
    std::string cmd = "query-balloon";
    auto b = co_await s->call(rt, cmd, {}, ignore, 5s);
    if (b && b->is_object())
      if (auto* a = b->as_object().if_contains("actual"); a && a->is_int64()) {
        info.memory_kib = static_cast<std::uint64_t>(a->as_int64()) / 1024;
        rt->balloon_kib = info.memory_kib;
      }
  }
  info.state = d->state;
  co_return info;
}

op<std::string> driver::get_os_type(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->def.os.type.empty() ? std::string("hvm") : (*d)->def.os.type;
}

op<domain_state_info> driver::get_state(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return domain_state_info{(*d)->state, (*d)->reason};
}

op<std::string> driver::get_xml(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  dom& x = **d;
  domain_format_options opt;
  opt.secure = (flags & xml_flags::secure) != 0;
  if ((flags & xml_flags::inactive) || !x.active()) co_return format_domain_xml(x.persistent_def(), opt);
  opt.id = x.id;
  co_return format_domain_xml(x.def, opt);
}

op<bool> driver::is_active(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->active();
}

op<bool> driver::is_persistent(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->persistent;
}

event_stream driver::subscribe(std::string domain) { return s_->events.subscribe(s_->ex, std::move(domain)); }

op<void> driver::set_max_memory(const domain_key& key, std::uint64_t kib, diagnostics& diag) {
  return set_memory(key, kib, modify::mem_maximum, diag);
}

op<void> driver::set_memory(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  bool live = flags & modify::live, config = flags & modify::config;
  if (!live && !config) (d->active() ? live : config) = true;
  if (live && !d->active()) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (config && !d->persistent)
    co_return fail(diag, errc::operation_invalid, "transient domains do not have any persistent config");
  if (kib == 0) co_return fail(diag, errc::invalid_arg, "memory size must be greater than zero");
  if (flags & modify::mem_maximum) {
    if (live) co_return fail(diag, errc::operation_invalid, "cannot resize the maximum memory on an active domain");
    domain_config def = d->persistent_def();
    def.memory_kib = kib;
    if (def.current_memory_kib > kib) def.current_memory_kib = kib;
    if (auto w = co_await s->store_definition(def.name, format_domain_xml(def), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(def);
    co_return result<void>{};
  }
  if (live && kib > d->def.memory_kib) co_return fail(diag, errc::invalid_arg, "cannot set memory higher than max memory");
  if (config && kib > d->persistent_def().memory_kib)
    co_return fail(diag, errc::invalid_arg, "cannot set memory higher than max memory");
  if (live) {
    if (!has_balloon(d->def))
      co_return fail(diag, errc::operation_invalid, "Unable to change memory of active domain without the balloon device");
    auto rt = d->rt;
    json::object a;
    a["value"] = static_cast<std::int64_t>(kib * 1024);
    std::string cmd = "balloon";
    rt->balloon_kib.reset();  // the guest moves it now; the next get_info asks again
    auto res = co_await s->call(rt, cmd, std::move(a), diag);
    if (!res) co_return s->command_failed(d, rt, res.error(), diag);
    if (d->rt == rt) d->def.current_memory_kib = kib;
  }
  if (config) {
    domain_config def = d->persistent_def();
    def.current_memory_kib = kib;
    if (auto w = co_await s->store_definition(def.name, format_domain_xml(def), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(def);
  }
  co_return result<void>{};
}

op<bool> driver::get_autostart(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->autostart;
}

op<void> driver::set_autostart(const domain_key& key, bool on, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->persistent) co_return fail(diag, errc::operation_invalid, "cannot set autostart for transient domain");
  if (auto w = qemu::set_autostart(s->dirs, d->def.name, on, diag); !w) co_return w.error();
  d->autostart = on;
  co_return result<void>{};
}

// ------------------------------------------------------------------ save / restore, dumps, stats, monitor

namespace {

// A save file: one header line "covirt-save 1 <xml bytes> <state offset>\n", the domain XML,
// zero padding up to the offset (a multiple of 4096), then QEMU's migration stream.
constexpr std::string_view save_magic = "covirt-save 1 ";

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

struct save_header {
  std::string xml;
  std::uint64_t offset = 0;
};

result<save_header> read_save_header(const std::string& path, diagnostics& diag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(diag, errc::operation_failed, "cannot open saved state file " + q(path));
  std::string line;
  std::getline(in, line);
  unsigned long long xml_len = 0, offset = 0;
  if (line.compare(0, save_magic.size(), save_magic) != 0 ||
      std::sscanf(line.c_str() + save_magic.size(), "%llu %llu", &xml_len, &offset) != 2 ||
      xml_len > (64u << 20) || offset < line.size() + 1 + xml_len)
    return fail(diag, errc::invalid_arg, "file " + q(path) + " is not a covirt saved state file");
  save_header h;
  h.xml.resize(xml_len);
  in.read(h.xml.data(), static_cast<std::streamsize>(xml_len));
  if (static_cast<unsigned long long>(in.gcount()) != xml_len)
    return fail(diag, errc::invalid_arg, "saved state file " + q(path) + " is truncated");
  h.offset = offset;
  return h;
}

// QEMU runs in its own working directory: paths given to it are made absolute here.
std::string absolute_path(std::string_view p) {
  if (p.empty()) return {};
  std::error_code ec;
  auto a = fs::absolute(fs::path(p), ec);
  return ec ? std::string(p) : a.lexically_normal().string();
}

}  // namespace

op<void> driver::save(const domain_key& key, std::string_view path, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, path = absolute_path(path), &diag] {
    return s->save_job(key, path, diag);
  });
}

op<void> driver::state::save_job(const domain_key& key, std::string path, diagnostics& diag) {
  auto s = shared_from_this();
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to save to");
  auto rt = d->rt;
  bool was_running = d->state == domain_state::running;
  job_scope job(d, "save", rt, true);

  // The header: the live definition, so restore knows the guest.
  std::string xml = format_domain_xml(d->def);
  std::string line = std::string(save_magic) + std::to_string(xml.size()) + " ";
  std::uint64_t offset = line.size() + 32 + xml.size();  // room for the offset's digits and '\n'
  offset = (offset + 4095) / 4096 * 4096;
  line += std::to_string(offset) + "\n";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) co_return fail(diag, errc::operation_failed, "cannot create " + q(path) + ": " + std::strerror(errno));
    std::string head = line + xml;
    head.resize(offset, '\0');
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.flush();
    if (!out) co_return fail(diag, errc::operation_failed, "cannot write " + q(path));
  }
  std::error_code fec;

  // The guest stops for good: the STOP event and the exit are the save's, not news.
  rt->intent = stop_intent{reason::saved, event_detail::stopped_saved};
  auto undo = [&]() -> asio::awaitable<void> {
    fs::remove(path, fec);
    if (d->rt != rt || rt->finished) co_return;
    rt->intent.reset();
    if (was_running) {
      bool was_paused = d->state == domain_state::paused;
      s->set_state(*d, domain_state::running, reason::running_save_canceled);  // before cont: RESUME is no news
      diagnostics ignore;
      std::string cont = "cont";
      (void)co_await s->call(rt, cont, {}, ignore, 5s);
      if (was_paused) s->emit(*d, event_type::resumed, event_detail::resumed_unpaused);
    }
  };
  if (was_running) {
    std::string stop = "stop";
    auto sr = co_await s->call(rt, stop, {}, diag);
    if (!sr) {
      co_await undo();
      co_return s->command_failed(d, rt, sr.error(), diag);
    }
    if (d->rt == rt) s->set_state(*d, domain_state::paused, reason::paused_save);
  }
  // QEMU's default cap on the stream is 128 MiB/s; a save to a local file goes as fast as it can.
  co_await s->set_max_bandwidth(rt, 0);
  json::object a;
  // Appends to the header written above, and never creates the file: a cancelled save removes
  // it, and a writer that starts late must not bring it back (cat >> would).
  a["uri"] = "exec:dd of=" + shell_quote(path) + " oflag=append conv=notrunc,nocreat bs=1M status=none";
  std::string migrate = "migrate";
  auto mr = co_await s->call(rt, migrate, std::move(a), diag);
  if (mr) mr = co_await s->wait_migration(rt, diag, 300s, "save", true);
  if (!mr) {
    error_code ec = mr.error() == errc::operation_aborted ? mr.error() : s->command_failed(d, rt, mr.error(), diag).ec;
    co_await undo();
    co_return failure(ec);
  }
  co_await s->kill(d, rt);
  co_return result<void>{};
}

op<domain_ref> driver::restore(std::string_view path_in, diagnostics& diag) {
  auto s = s_;
  std::string path = absolute_path(path_in);
  auto h = read_save_header(path, diag);
  if (!h) co_return failure(h.error());
  auto def = parse_domain_xml(h->xml, diag);
  if (!def) co_return def.error();
  if (auto r = check_name_for_file(def->name, diag); !r) co_return r.error();
  apply_defaults(*def);
  incoming_plan plan;
  plan.job = std::make_shared<long_job>();
  plan.job->operation = "restore";
  plan.feed_path = path;
  plan.feed_offset = h->offset;
  std::error_code fec;
  auto size = fs::file_size(path, fec);
  plan.job->feed_total = !fec && size > h->offset ? size - h->offset : 0;
  co_return co_await state::cleanup_on_cancel<domain_ref>([&] {
    return s->start_live(std::move(*def), false, std::move(plan), "restore", diag);
  });
}

op<void> driver::core_dump(const domain_key& key, std::string_view path, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, path = absolute_path(path), flags, &diag] {
    return s->dump_job(key, path, flags, diag);
  });
}

// virDomainCoreDumpWithFormat: always an ELF of the guest's memory (dump-guest-memory), the
// format crash(8) and gdb read; without dump_flags::live the guest is paused meanwhile (reason
// dump), crash destroys it afterwards (shut off, crashed), reset resets it.
op<void> driver::state::dump_job(const domain_key& key, std::string path, unsigned flags, diagnostics& diag) {
  auto s = shared_from_this();
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to dump to");
  if ((flags & dump_flags::crash) && (flags & dump_flags::live))
    co_return fail(diag, errc::invalid_arg, "dump flags crash and live are mutually exclusive");
  if ((flags & dump_flags::crash) && (flags & dump_flags::reset))
    co_return fail(diag, errc::invalid_arg, "dump flags crash and reset are mutually exclusive");
  auto rt = d->rt;
  job_scope job(d, "dump", rt, false);
  bool paused_here = false;
  if (!(flags & dump_flags::live) && d->state == domain_state::running) {
    rt->expect_stop = true;
    std::string stop = "stop";
    auto sr = co_await s->call(rt, stop, {}, diag);
    rt->expect_stop = false;
    if (!sr) co_return s->command_failed(d, rt, sr.error(), diag);
    paused_here = true;
    if (d->rt == rt) s->set_state(*d, domain_state::paused, reason::paused_dump);
  }
  json::object a;
  a["paging"] = false;
  a["protocol"] = "file:" + path;
  std::string cmd = "dump-guest-memory";
  auto res = co_await s->call(rt, cmd, std::move(a), diag, 300s);
  if (!res) {
    auto f = s->command_failed(d, rt, res.error(), diag);
    std::error_code fec;
    fs::remove(path, fec);
    if (paused_here && d->rt == rt && !rt->finished) {
      diagnostics ignore;
      std::string cont = "cont";
      (void)co_await s->call(rt, cont, {}, ignore, 5s);
    }
    co_return f;
  }
  if (flags & dump_flags::crash) {
    rt->intent = stop_intent{reason::crashed, event_detail::stopped_crashed};
    co_await s->kill(d, rt);
    co_return result<void>{};
  }
  if (flags & dump_flags::reset) {
    diagnostics ignore;
    std::string reset = "system_reset";
    (void)co_await s->call(rt, reset, {}, ignore, 5s);
  }
  if (paused_here && d->rt == rt && !rt->finished) {
    std::string cont = "cont";
    if (auto cr = co_await s->call(rt, cont, {}, diag); !cr) co_return s->command_failed(d, rt, cr.error(), diag);
    if (d->rt == rt && d->state != domain_state::running) s->set_state(*d, domain_state::running, reason::unpaused);
  }
  co_return result<void>{};
}

op<covirt::block_stats> driver::block_stats(const domain_key& key, std::string_view disk, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  const auto& disks = d->def.devices.disks;
  auto known = std::find_if(disks.begin(), disks.end(), [&](const disk_def& x) { return x.target_dev == disk; });
  auto rec_node = rt->rec.extra.find("node:" + std::string(disk));
  if (known == disks.end() || rec_node == rt->rec.extra.end())
    co_return fail(diag, errc::invalid_arg, "invalid path: " + std::string(disk));
  std::string node = rec_node->second;
  std::string cmd = "query-blockstats";
  auto res = co_await s->call(rt, cmd, {}, diag);
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  if (!res->is_array()) co_return fail(diag, errc::internal_error, "query-blockstats: unexpected reply");
  for (auto& e : res->as_array()) {
    if (!e.is_object()) continue;
    auto& o = e.as_object();
    auto* nn = o.if_contains("node-name");
    if (!nn || !nn->is_string() || nn->as_string() != node) continue;
    auto* st = o.if_contains("stats");
    if (!st || !st->is_object()) break;
    auto num = [&](const char* k) -> std::int64_t {
      auto* v = st->as_object().if_contains(k);
      if (v && v->is_int64()) return v->as_int64();
      if (v && v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
      return -1;
    };
    covirt::block_stats out;
    out.rd_req = num("rd_operations");
    out.rd_bytes = num("rd_bytes");
    out.wr_req = num("wr_operations");
    out.wr_bytes = num("wr_bytes");
    out.errs = -1;
    co_return out;
  }
  co_return fail(diag, errc::invalid_arg, "disk " + q(disk) + " has no statistics (no medium?)");
}

op<std::string> driver::qemu_monitor_command(const domain_key& key, std::string_view command, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt || !d->rt->mon.is_open()) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  op_timeout deadline{s->ex, qmp_command_limit};
  asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
  deadline.follow(cs.slot());
  auto [ec, reply] = co_await rt->mon.async_execute_raw(std::string(command), diag,
                                                        asio::as_tuple(deadline.bind(asio::use_awaitable)));
  if (ec) {
    if (deadline.expired()) co_return fail(diag, errc::operation_timeout, "QEMU did not answer in time");
    if (ec == errc::invalid_arg) co_return failure(ec);
    co_return s->command_failed(d, rt, ec, diag);
  }
  co_return std::move(reply);
}

}  // namespace covirt::qemu


// ------------------------------------------------------------------ devices, jobs, migration

namespace covirt::qemu {

namespace {

// One <disk> or <interface> element, as virDomainAttachDevice takes it.
result<device_variant> parse_device_xml(std::string_view xml, diagnostics& diag) {
  if (xml.size() > (1u << 20)) return fail(diag, errc::xml_error, "device XML is larger than 1 MiB");
  pugi::xml_document doc;
  auto pr = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default);
  if (!pr) return fail(diag, errc::xml_error, std::string("malformed device XML: ") + pr.description());
  pugi::xml_node el;
  int elements = 0;
  for (auto c : doc.children())
    if (c.type() == pugi::node_element) {
      el = c;
      ++elements;
    }
  if (elements != 1) return fail(diag, errc::xml_error, "device XML must be exactly one element");
  std::string_view kind = el.name();
  if (kind != "disk" && kind != "interface")
    return fail(diag, errc::config_unsupported,
                "device <" + std::string(kind) + "> cannot be attached or detached by covirt's qemu driver (<disk> and <interface> can)");
  std::ostringstream one;
  el.print(one, "", pugi::format_raw);
  std::string wrapped = "<domain type='qemu'><name>device</name><memory>1024</memory><devices>" + one.str() +
                        "</devices></domain>";
  auto def = parse_domain_xml(wrapped, diag);
  if (!def) return def.error();
  auto& dv = def->devices;
  if (kind == "disk" && dv.disks.size() == 1) return device_variant(std::move(dv.disks[0]));
  if (kind == "interface" && dv.interfaces.size() == 1) return device_variant(std::move(dv.interfaces[0]));
  return fail(diag, errc::xml_error, "device XML could not be read as one <" + std::string(kind) + ">");
}

std::string disk_bus(const disk_def& x) {
  if (!x.target_bus.empty()) return x.target_bus;
  auto p = x.target_dev.substr(0, 2);
  return p == "vd" ? "virtio" : p == "sd" ? "scsi" : p == "hd" ? "ide" : p == "fd" ? "fdc" : "xen";
}

// libvirt's matching for detach: a disk by its target, an interface by its MAC (or the only one).
result<std::size_t> find_device(const domain_config& def, const device_variant& dev, diagnostics& diag) {
  if (auto* x = std::get_if<disk_def>(&dev)) {
    const auto& v = def.devices.disks;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i].target_dev == x->target_dev) return i;
    return fail(diag, errc::device_missing, "disk " + x->target_dev + " not found");
  }
  const auto& n = std::get<interface_def>(dev);
  const auto& v = def.devices.interfaces;
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!n.mac.empty() ? v[i].mac == n.mac : v[i].type == n.type) {
      if (found) return fail(diag, errc::operation_failed, "multiple devices matching MAC address " + n.mac + " found");
      found = i;
    }
  }
  if (!found)
    return fail(diag, errc::device_missing,
                n.mac.empty() ? "no interface of type " + q(n.type) + " found" : "no device matching MAC address " + n.mac + " found");
  return *found;
}

result<void> check_new_device(const domain_config& def, const device_variant& dev, diagnostics& diag) {
  if (auto* x = std::get_if<disk_def>(&dev)) {
    for (auto& e : def.devices.disks)
      if (e.target_dev == x->target_dev) return fail(diag, errc::operation_failed, "target " + x->target_dev + " already exists");
    return {};
  }
  auto& n = std::get<interface_def>(dev);
  for (auto& e : def.devices.interfaces)
    if (e.mac == n.mac) return fail(diag, errc::operation_failed, "a device with MAC address " + n.mac + " already exists");
  return {};
}

void add_device(domain_config& def, device_variant dev) {
  if (auto* x = std::get_if<disk_def>(&dev)) def.devices.disks.push_back(std::move(*x));
  else def.devices.interfaces.push_back(std::move(std::get<interface_def>(dev)));
  def.has_devices = true;
}

// virDomainModificationImpact: current means live when running, the definition otherwise.
result<std::pair<bool, bool>> impact(unsigned flags, bool active, bool persistent, diagnostics& diag) {
  bool live = flags & device_modify::live, config = flags & device_modify::config;
  if (!live && !config) (active ? live : config) = true;
  if (live && !active) return fail(diag, errc::operation_invalid, "domain is not running");
  if (config && !persistent) return fail(diag, errc::operation_invalid, "transient domains do not have any persistent config");
  return std::pair{live, config};
}

// The block node layer names of a disk: its format node "...-format" sits on "...-storage".
std::string storage_node(const std::string& format_node) {
  auto at = format_node.rfind("-format");
  return at == std::string::npos ? format_node + "-storage" : format_node.substr(0, at) + "-storage";
}

std::string hex_bus(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

}  // namespace

// Adds the device to the running QEMU (backend, then the PCI device) and to the live definition.
asio::awaitable<result<void>> driver::state::hotplug(dom_ptr d, std::shared_ptr<runtime> rt, device_variant dev,
                                                     diagnostics& diag) {
  domain_config& def = d->def;
  // Whatever the command line would refuse (a comma-free path is no check here: values go in JSON).
  {
    domain_config probe = def;
    add_device(probe, dev);
    argv_options opt;
    opt.kvm_available = true;
    if (auto a = build_argv(probe, opt, diag); !a) co_return a.error();
  }
  const bool q35 = def.os.machine == "q35" || def.os.machine.rfind("pc-q35", 0) == 0;
  json::object placement;
  std::optional<device_address> addr;
  if (q35) {
    // PCIe's root bus takes no hotplug: the device goes on an empty root port.
    std::set<unsigned> used;
    auto note = [&](const device_common& c) {
      if (c.address && c.address->type == "pci" && !c.address->get("bus").empty())
        used.insert(static_cast<unsigned>(std::strtoul(std::string(c.address->get("bus")).c_str(), nullptr, 0)));
    };
    for (auto& x : def.devices.disks) note(x);
    for (auto& x : def.devices.interfaces) note(x);
    for (auto& x : def.devices.controllers) note(x);
    std::optional<unsigned> port;
    for (auto& c : def.devices.controllers)
      if (c.type == "pci" && c.model == "pcie-root-port" && c.index && !used.count(*c.index)) {
        port = *c.index;
        break;
      }
    if (!port)
      co_return fail(diag, errc::operation_failed,
                     "no free PCIe root port to hotplug into (a q35 machine's pcie.0 takes no hotplug): define the domain with "
                     "spare <controller type='pci' index='N' model='pcie-root-port'/>");
    placement["bus"] = "pci." + std::to_string(*port);
    placement["addr"] = "0x0";
    addr = device_address{"pci", {}};
    addr->set("domain", "0x0000");
    addr->set("bus", hex_bus(*port));
    addr->set("slot", "0x00");
    addr->set("function", "0x0");
  }

  auto run = [&](const char* cmd, json::object args) -> asio::awaitable<result<json::value>> {
    std::string c = cmd;
    co_return co_await call(rt, c, std::move(args), diag);
  };
  auto undo = [&](const char* cmd, const char* key, std::string value) -> asio::awaitable<void> {
    json::object a;
    a[key] = value;
    diagnostics ignore;
    std::string c = cmd;
    (void)co_await call(rt, c, std::move(a), ignore, 5s);
  };

  std::string id;
  std::string format_node;
  if (auto* x = std::get_if<disk_def>(&dev)) {
    if (x->device != "disk")
      co_return fail(diag, errc::config_unsupported, "hotplug of a disk with device " + q(x->device) + " (covirt hotplugs device='disk' on bus 'virtio')");
    if (disk_bus(*x) != "virtio")
      co_return fail(diag, errc::config_unsupported, "hotplug of a disk on bus " + q(disk_bus(*x)) + " (covirt hotplugs virtio disks)");
    std::string path = x->source ? (x->type == "block" ? x->source->dev : x->source->file) : std::string();
    if (path.empty()) co_return fail(diag, errc::invalid_arg, "disk " + x->target_dev + " has no source to attach");
    auto idx = disk_target_index(x->target_dev);
    id = "virtio-disk" + std::to_string(idx.value_or(0));
    format_node = "hp-" + id + "-format";
    json::object st;
    st["driver"] = x->type == "block" ? "host_device" : "file";
    st["filename"] = path;
    st["node-name"] = storage_node(format_node);
    st["auto-read-only"] = true;
    json::object cache;
    std::string cm = x->driver ? x->driver->cache : std::string();
    bool has_cache = !cm.empty() && cm != "default";
    if (has_cache) {
      cache["direct"] = cm == "none" || cm == "directsync";
      cache["no-flush"] = cm == "unsafe";
      st["cache"] = cache;
    }
    if (x->driver && !x->driver->io.empty()) st["aio"] = x->driver->io;
    if (x->driver && !x->driver->discard.empty()) st["discard"] = x->driver->discard;
    if (auto r = co_await run("blockdev-add", std::move(st)); !r) co_return command_failed(d, rt, r.error(), diag);
    json::object fm;
    fm["node-name"] = format_node;
    fm["read-only"] = x->readonly;
    fm["driver"] = x->driver && !x->driver->type.empty() ? x->driver->type : std::string("raw");
    fm["file"] = storage_node(format_node);
    if (has_cache) fm["cache"] = cache;
    if (auto r = co_await run("blockdev-add", std::move(fm)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("blockdev-del", "node-name", storage_node(format_node));
      co_return f;
    }
    json::object dv = placement;
    dv["driver"] = "virtio-blk-pci";
    dv["drive"] = format_node;
    dv["id"] = id;
    if (has_cache) dv["write-cache"] = cm == "writethrough" || cm == "directsync" ? "off" : "on";
    if (auto r = co_await run("device_add", std::move(dv)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("blockdev-del", "node-name", format_node);
      co_await undo("blockdev-del", "node-name", storage_node(format_node));
      co_return f;
    }
  } else {
    auto& n = std::get<interface_def>(dev);
    std::set<std::string> taken;
    for (auto& e : def.devices.interfaces) taken.insert(e.alias);
    for (int k = 0;; ++k)
      if (!taken.count("net" + std::to_string(k))) {
        id = "net" + std::to_string(k);
        break;
      }
    json::object nd;
    nd["id"] = "host" + id;
    if (n.type == "user") nd["type"] = "user";
    else if (n.type == "bridge") {
      nd["type"] = "bridge";
      nd["br"] = n.source ? n.source->bridge : std::string();
    } else if (n.type == "ethernet") {
      nd["type"] = "tap";
      if (n.target_dev) nd["ifname"] = *n.target_dev;
      nd["script"] = "no";
      nd["downscript"] = "no";
    } else {
      co_return fail(diag, errc::config_unsupported, "hotplug of interface type " + q(n.type));
    }
    if (auto r = co_await run("netdev_add", std::move(nd)); !r) co_return command_failed(d, rt, r.error(), diag);
    static const std::map<std::string, std::string, std::less<>> models = {
        {"virtio", "virtio-net-pci"}, {"e1000", "e1000"}, {"e1000e", "e1000e"}, {"rtl8139", "rtl8139"},
        {"ne2k_pci", "ne2k_pci"},    {"pcnet", "pcnet"}, {"vmxnet3", "vmxnet3"}};
    auto model = models.find(n.model_type.empty() ? std::string("rtl8139") : n.model_type);
    json::object dv = placement;
    dv["driver"] = model->second;  // build_argv above refused unknown models
    dv["netdev"] = "host" + id;
    dv["id"] = id;
    dv["mac"] = n.mac;
    if (auto r = co_await run("device_add", std::move(dv)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("netdev_del", "id", "host" + id);
      co_return f;
    }
  }

  if (!addr) {
    // i440fx: QEMU chose the slot; record it so that a migration recreates the same machine.
    diagnostics ignore;
    if (auto r = co_await run("query-pci", {}); r && r->is_array())
      for (auto& bus : r->as_array()) {
        auto* devs = bus.is_object() ? bus.as_object().if_contains("devices") : nullptr;
        if (!devs || !devs->is_array()) continue;
        for (auto& e : devs->as_array()) {
          if (!e.is_object()) continue;
          auto& o = e.as_object();
          auto* qid = o.if_contains("qdev_id");
          if (!qid || !qid->is_string() || qid->as_string() != id) continue;
          auto num = [&](const char* k) { auto* v = o.if_contains(k); return v && v->is_int64() ? unsigned(v->as_int64()) : 0u; };
          addr = device_address{"pci", {}};
          addr->set("domain", "0x0000");
          addr->set("bus", hex_bus(num("bus")));
          addr->set("slot", hex_bus(num("slot")));
          addr->set("function", "0x" + std::to_string(num("function")));
        }
      }
  }
  std::visit([&](auto& x) {
    x.alias = id;
    x.address = addr;
  }, dev);
  if (auto* x = std::get_if<disk_def>(&dev)) rt->rec.extra["node:" + x->target_dev] = format_node;
  add_device(def, std::move(dev));
  domain_format_options fo;
  fo.id = d->id;
  rt->rec.live_xml = format_domain_xml(def, fo);
  persist(*d);
  co_return result<void>{};
}

// After QEMU removed the device `id`: its backend goes too, and it leaves the live definition.
asio::awaitable<void> driver::state::remove_backend(dom_ptr d, std::shared_ptr<runtime> rt, std::string id) {
  auto& disks = d->def.devices.disks;
  auto& nets = d->def.devices.interfaces;
  diagnostics ignore;
  if (auto it = std::find_if(disks.begin(), disks.end(), [&](auto& x) { return x.alias == id; }); it != disks.end()) {
    std::string key = "node:" + it->target_dev;
    if (auto nn = rt->rec.extra.find(key); nn != rt->rec.extra.end()) {
      std::string fmt = nn->second;
      rt->rec.extra.erase(nn);
      for (std::string node : {fmt, storage_node(fmt)}) {
        json::object a;
        a["node-name"] = node;
        std::string c = "blockdev-del";
        (void)co_await call(rt, c, std::move(a), ignore, 5s);
      }
    }
    // The loop above may have let another event in: look again before erasing.
    std::erase_if(disks, [&](auto& x) { return x.alias == id; });
  } else if (std::any_of(nets.begin(), nets.end(), [&](auto& x) { return x.alias == id; })) {
    json::object a;
    a["id"] = "host" + id;
    std::string c = "netdev_del";
    (void)co_await call(rt, c, std::move(a), ignore, 5s);
    std::erase_if(nets, [&](auto& x) { return x.alias == id; });
  } else {
    co_return;
  }
  if (d->rt != rt || rt->finished) co_return;
  domain_format_options fo;
  fo.id = d->id;
  rt->rec.live_xml = format_domain_xml(d->def, fo);
  persist(*d);
}

op<void> driver::attach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  return s_->attach_job(key, xml, flags, diag);
}

asio::awaitable<result<driver::state::device_change>> driver::state::begin_device_job(
    const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag, job_guard& g) {
  auto dev = parse_device_xml(xml, diag);
  if (!dev) co_return dev.error();
  auto r = co_await begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  auto how = impact(flags, d->active() && d->rt, d->persistent, diag);
  if (!how) co_return how.error();
  co_return device_change{std::move(*dev), d, how->first, how->second};
}

op<void> driver::state::attach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = shared_from_this();
  job_guard g;
  auto c = co_await s->begin_device_job(key, xml, flags, diag, g);
  if (!c) co_return failure(c.error());
  device_variant& dev = c->dev;
  dom_ptr d = c->d;
  const bool live = c->live, config = c->config;
  if (auto* n = std::get_if<interface_def>(&dev); n && n->mac.empty()) n->mac = random_mac();
  if (config)
    if (auto ok = check_new_device(d->persistent_def(), dev, diag); !ok) co_return ok.error();
  if (live) {
    if (auto ok = check_new_device(d->def, dev, diag); !ok) co_return ok.error();
    if (auto h = co_await s->hotplug(d, d->rt, dev, diag); !h) co_return h.error();
  }
  if (config) {
    domain_config next = d->persistent_def();
    add_device(next, std::move(dev));
    argv_options opt;
    opt.kvm_available = true;
    if (!live)
      if (auto a = build_argv(next, opt, diag); !a) co_return a.error();
    if (auto w = co_await s->store_definition(next.name, format_domain_xml(next), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(next);
  }
  co_return result<void>{};
}

op<void> driver::detach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, xml = std::string(xml), flags, &diag] {
    return s->detach_job(key, xml, flags, diag);
  });
}

op<void> driver::state::detach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = shared_from_this();
  job_guard g;
  auto c = co_await s->begin_device_job(key, xml, flags, diag, g);
  if (!c) co_return failure(c.error());
  device_variant& dev = c->dev;
  dom_ptr d = c->d;
  const bool live = c->live, config = c->config;
  std::optional<std::size_t> in_config;
  if (config) {
    auto at = find_device(d->persistent_def(), dev, diag);
    if (!at) co_return at.error();
    in_config = *at;
  }
  if (live) {
    auto at = find_device(d->def, dev, diag);
    if (!at) co_return at.error();
    std::string id;
    if (std::holds_alternative<disk_def>(dev)) {
      const auto& x = d->def.devices.disks[*at];
      if (disk_bus(x) != "virtio" || x.alias.empty())
        co_return fail(diag, errc::operation_unsupported, "hot unplug of a disk on bus " + q(disk_bus(x)) + " is not supported");
      id = x.alias;
    } else {
      id = d->def.devices.interfaces[*at].alias;
      if (id.empty()) co_return fail(diag, errc::operation_unsupported, "this interface has no device alias to unplug");
    }
    auto rt = d->rt;
    auto wait = std::make_shared<asio::steady_timer>(s->ex, 5s);
    rt->unplugs[id] = wait;
    json::object a;
    a["id"] = id;
    std::string c = "device_del";
    if (auto rr = co_await s->call(rt, c, std::move(a), diag); !rr) {
      rt->unplugs.erase(id);
      co_return s->command_failed(d, rt, rr.error(), diag);
    }
    // The guest must let go of the device (ACPI or PCIe hotplug); like libvirt, wait a while for
    // DEVICE_DELETED, and past that leave the removal to the event handler.
    (void)co_await wait->async_wait(asio::as_tuple(asio::use_awaitable));
    if (auto it = rt->unplugs.find(id); it != rt->unplugs.end() && it->second == wait && co_await caller_cancelled())
      co_return fail(diag, errc::operation_aborted, "detaching device " + q(id) + " was cancelled; the guest may still release it");
  }
  if (config) {
    domain_config next = d->persistent_def();
    if (std::holds_alternative<disk_def>(dev)) next.devices.disks.erase(next.devices.disks.begin() + static_cast<long>(*in_config));
    else next.devices.interfaces.erase(next.devices.interfaces.begin() + static_cast<long>(*in_config));
    if (auto w = co_await s->store_definition(next.name, format_domain_xml(next), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(next);
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ jobs

op<job_info> driver::get_job_info(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  auto job = (*r)->job_now;
  job_info info;
  if (!job) co_return info;
  info.type = job_type::unbounded;
  info.operation = job->operation;
  info.time_elapsed_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - job->started).count());
  if (job->outgoing && job->rt && job->rt->mon.is_open()) {
    diagnostics ignore;
    std::string cmd = "query-migrate";
    auto q = co_await s->call(job->rt, cmd, {}, ignore, 5s);
    if (q && q->is_object())
      if (auto* ram = q->as_object().if_contains("ram"); ram && ram->is_object()) {
        auto num = [&](const char* k) -> std::uint64_t {
          auto* v = ram->as_object().if_contains(k);
          if (v && v->is_int64()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v->as_int64()));
          if (v && v->is_uint64()) return v->as_uint64();
          return 0;
        };
        info.mem_total = num("total");
        info.mem_remaining = num("remaining");
        info.mem_processed = num("transferred");
        info.data_total = info.mem_total;
        info.data_remaining = info.mem_remaining;
        info.data_processed = info.mem_processed;
      }
  } else if (job->feed_total) {
    info.type = job_type::bounded;
    info.data_total = job->feed_total;
    info.data_processed = std::min(job->fed, job->feed_total);
    info.data_remaining = job->feed_total - info.data_processed;
  }
  co_return info;
}

op<void> driver::abort_job(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  auto job = (*r)->job_now;
  if (!job) co_return fail(diag, errc::operation_invalid, "no job is active on the domain");
  if (job->operation == "restore") {
    job->abort_requested = true;
    co_return result<void>{};
  }
  if (!job->outgoing)
    co_return fail(diag, errc::operation_invalid, "cannot abort " + job->operation + " job" +
                                                      (job->operation == "migration in" ? "; use virDomainDestroy instead" : ""));
  job->abort_requested = true;
  std::string cmd = "migrate_cancel";
  if (auto c = co_await s->call(job->rt, cmd, {}, diag, 5s); !c) co_return c.error();
  co_return result<void>{};
}

// ------------------------------------------------------------------ migration

op<std::string> driver::migrate_begin(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (flags & (migrate_flags::non_shared_disk | migrate_flags::non_shared_inc))
    co_return fail(diag, errc::argument_unsupported, "migration of non-shared storage is not supported (both hosts must see the disks)");
  if (d->job_now) co_return fail(diag, errc::operation_invalid, "domain has a " + d->job_now->operation + " job running");
  if (d->state != domain_state::running && d->state != domain_state::paused)
    co_return fail(diag, errc::operation_invalid, "domain is " + std::string(to_string(d->state)));
  co_return format_domain_xml(d->def);
}

op<std::string> driver::migrate_prepare(std::string_view xml, std::string_view uri, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<std::string>([s = s_, xml = std::string(xml), uri = std::string(uri), flags, &diag] {
    return s->prepare_job(xml, uri, flags, diag);
  });
}

op<std::string> driver::state::prepare_job(std::string_view xml, std::string_view uri_in, unsigned, diagnostics& diag) {
  auto s = shared_from_this();
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return def.error();
  if (auto r = check_name_for_file(def->name, diag); !r) co_return r.error();
  apply_defaults(*def);
  if (def->type != "qemu" && def->type != "kvm")
    co_return fail(diag, errc::config_unsupported, "emulator type " + q(def->type) + " is not supported by the QEMU driver");
  // tcp://HOST[:PORT] (virsh --migrateuri) or QEMU's tcp:HOST:PORT; the default host is loopback.
  std::string host = "127.0.0.1", port;
  std::string_view u = uri_in;
  if (!u.empty()) {
    if (u.rfind("tcp://", 0) == 0) u.remove_prefix(6);
    else if (u.rfind("tcp:", 0) == 0) u.remove_prefix(4);
    else co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " is not tcp://HOST[:PORT]");
    while (!u.empty() && u.back() == '/') u.remove_suffix(1);
    std::string_view rest;
    if (!u.empty() && u.front() == '[') {  // [IPv6]:PORT
      auto close = u.find(']');
      if (close == std::string_view::npos) co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " has a bad host");
      host = std::string(u.substr(1, close - 1));
      rest = u.substr(close + 1);
    } else {
      auto colon = u.find(':');
      if (colon == std::string_view::npos) colon = u.size();
      if (colon > 0) host = std::string(u.substr(0, colon));
      rest = u.substr(colon);
    }
    if (!rest.empty()) {
      if (rest.front() != ':') co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " has a bad host");
      port = std::string(rest.substr(1));
    }
    if (host.find_first_of(",; \t\n'\"") != std::string::npos)
      co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " has a bad host");
    if (!port.empty() && (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535))
      co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " has a bad port");
  }
  if (port.empty()) {
    // A free port now; QEMU binds it a moment later (libvirt picks from a range the same way).
    boost::system::error_code ec;
    asio::ip::tcp::acceptor probe(ex);
    auto addr = asio::ip::make_address(host, ec);
    if (ec) addr = asio::ip::address_v4::any();
    probe.open(addr.is_v6() ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), ec);
    if (!ec) probe.bind({addr, 0}, ec);
    if (ec) co_return fail(diag, errc::operation_failed, "cannot find a free port for the migration on " + host + ": " + ec.message());
    port = std::to_string(probe.local_endpoint().port());
  }
  std::string qemu_uri = "tcp:" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  incoming_plan plan;
  plan.uri = qemu_uri;
  plan.migration = true;
  auto r = co_await s->start_live(std::move(*def), true, std::move(plan), "migration", diag);
  if (!r) co_return failure(r.error());
  if (auto d = s->find(r->name)) {
    auto job = std::make_shared<long_job>();
    job->operation = "migration in";
    job->rt = d->rt;
    d->job_now = job;
  }
  co_return qemu_uri;
}

op<void> driver::migrate_perform(const domain_key& key, std::string_view uri, const migrate_options& opt, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, uri = std::string(uri), opt, &diag] {
    return s->perform_job(key, uri, opt, diag);
  });
}

op<void> driver::state::perform_job(const domain_key& key, std::string_view uri, migrate_options opt, diagnostics& diag) {
  const unsigned flags = opt.flags;
  auto s = shared_from_this();
  job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  bool was_running = d->state == domain_state::running;
  job_scope job(d, "migration out", rt, true);
  auto resume = [&]() -> asio::awaitable<void> {
    if (!was_running || d->rt != rt || rt->finished) co_return;
    d->state = domain_state::running;  // before cont: the RESUME event is then no news
    s->set_state(*d, domain_state::running, reason::running_migration_canceled);
    diagnostics ignore;
    std::string cont = "cont";
    (void)co_await s->call(rt, cont, {}, ignore, 5s);
    s->emit(*d, event_type::resumed, event_detail::resumed_migrated);
  };
  co_await s->set_max_bandwidth(rt, opt.bandwidth_mib);  // libvirt lifts QEMU's 128 MiB/s unless asked for a cap
  if (!(flags & migrate_flags::live) && was_running) {
    rt->expect_stop = true;
    std::string stop = "stop";
    auto sr = co_await s->call(rt, stop, {}, diag);
    rt->expect_stop = false;
    if (!sr) co_return s->command_failed(d, rt, sr.error(), diag);
    if (d->rt == rt) {
      s->set_state(*d, domain_state::paused, reason::paused_migration);
      s->emit(*d, event_type::suspended, event_detail::suspended_migrated);
    }
  }
  json::object a;
  a["uri"] = std::string(uri);
  std::string migrate = "migrate";
  auto mr = co_await s->call(rt, migrate, std::move(a), diag);
  if (mr) mr = co_await s->wait_migration(rt, diag, 600s, "migration out", true);
  if (!mr) {
    error_code ec = mr.error() == errc::operation_aborted ? mr.error() : s->command_failed(d, rt, mr.error(), diag).ec;
    co_await resume();
    co_return failure(ec);
  }
  if (d->rt == rt && d->state != domain_state::paused) {
    s->set_state(*d, domain_state::paused, reason::paused_migration);
    s->emit(*d, event_type::suspended, event_detail::suspended_migrated);
  }
  // The guest now lives at the destination: keep the job until confirm says what becomes of this copy.
  g.d.reset();
  d->migration_held = true;
  d->job_now.reset();
  co_return result<void>{};
}

op<domain_ref> driver::migrate_finish(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  return state::cleanup_on_cancel<domain_ref>([s = s_, key = key, flags, ok, &diag] {
    return s->finish_job(key, flags, ok, diag);
  });
}

op<domain_ref> driver::state::finish_job(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  auto s = shared_from_this();
  job_guard g;
  auto r = co_await s->begin_job(key, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  d->job_now.reset();
  if (!d->active() || !d->rt || d->reason != reason::paused_migration)
    co_return fail(diag, errc::operation_invalid, "domain " + q(key.name) + " is not waiting for an incoming migration");
  auto rt = d->rt;
  auto drop = [&](std::string why) -> asio::awaitable<failure> {
    rt->intent = stop_intent{reason::failed, event_detail::stopped_failed};
    co_await s->kill(d, rt);
    co_return fail(diag, errc::operation_failed, std::move(why));
  };
  if (!ok) co_return co_await drop("migration of domain " + q(key.name) + " did not complete at the source");
  auto w = co_await s->wait_migration(rt, diag, 60s, "migration in", false);
  if (!w) co_return co_await drop("incoming migration failed: " + std::string(diag.message()));
  if (flags & migrate_flags::paused) {
    s->set_state(*d, domain_state::paused, reason::paused_migration);
  } else {
    d->state = domain_state::running;  // before cont: the RESUME event is then no news
    s->set_state(*d, domain_state::running, reason::running_migrated);
    std::string cont = "cont";
    if (auto c = co_await s->call(rt, cont, {}, diag); !c) co_return co_await drop("the migrated guest did not run: " + std::string(diag.message()));
    s->emit(*d, event_type::resumed, event_detail::resumed_migrated);
  }
  if ((flags & migrate_flags::persist_dest) && !d->persistent) {
    domain_config def = d->def;
    for (auto& x : def.devices.interfaces) x.alias.clear();
    for (auto& x : def.devices.disks) x.alias.clear();
    if (auto sv = co_await s->store_definition(def.name, format_domain_xml(def), diag); !sv) co_return sv.error();
    d->next = std::move(def);
    d->persistent = true;
    rt->rec.extra["persistent"] = "1";
    s->persist(*d);
    s->emit(*d, event_type::defined, event_detail::defined_added);
  }
  co_return d->ref();
}

op<void> driver::migrate_confirm(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, flags, ok, &diag] {
    return s->confirm_job(key, flags, ok, diag);
  });
}

op<void> driver::state::confirm_job(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  auto s = shared_from_this();
  dom_ptr d = s->doms.find_key(key);
  if (!d || !d->migration_held) co_return result<void>{};  // perform failed and already resumed the guest
  d->migration_held = false;
  job_guard g(d);  // perform's job, released here
  auto rt = d->rt;
  if (!rt || rt->finished) co_return result<void>{};
  if (!ok) {
    d->state = domain_state::running;
    s->set_state(*d, domain_state::running, reason::running_migration_canceled);
    std::string cont = "cont";
    auto c = co_await s->call(rt, cont, {}, diag);
    if (!c) co_return s->command_failed(d, rt, c.error(), diag);
    s->emit(*d, event_type::resumed, event_detail::resumed_migrated);
    co_return result<void>{};
  }
  rt->intent = stop_intent{reason::migrated, event_detail::stopped_migrated};
  co_await s->kill(d, rt);
  if ((flags & migrate_flags::undefine_source) && d->persistent && !d->active()) {
    diagnostics ignore;
    (void)co_await s->store_definition(d->def.name, std::nullopt, ignore);
    domain_ref ref = d->ref();
    s->erase(d);
    s->events.publish(ref, event_type::undefined, event_detail::undefined_removed);
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ a monitor that broke

// The QMP connection ended while QEMU may still run: normally QEMU is exiting (the exit watcher
// records that); if it still runs a moment later, its monitor is unusable (corrupt reply, closed
// socket) and the guest can no longer be controlled: stop it, as libvirt does (shut off, failed).
asio::awaitable<void> driver::state::monitor_lost(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
  asio::steady_timer t(s->ex, 1s);
  (void)co_await t.async_wait(asio::as_tuple(asio::bind_cancellation_slot(rt->cancel_lost.slot(), asio::use_awaitable)));
  if (s->closed || rt->finished || d->rt != rt) co_return;
  if (!rt->intent) rt->intent = stop_intent{reason::failed, event_detail::stopped_failed};
  co_await stop_guest(s, d, rt);
}

}  // namespace covirt::qemu
