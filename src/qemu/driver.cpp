// The QEMU driver: real qemu-system-* processes, each controlled over its QMP socket.
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/qemu/process.hpp>
#include <covirt/qemu/qmp.hpp>
#include <covirt/qemu/state.hpp>
#include <covirt/timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

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
#include <optional>
#include <set>
#include <sstream>

#include <sys/utsname.h>
#include <unistd.h>

namespace covirt::detail {
template class driver_model<qemu::driver>;
}

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
  bool finished = false;              // the stop has been recorded
  asio::cancellation_signal cancel_exit;
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

  bool active() const noexcept { return id >= 0; }
  domain_ref ref() const { return {def.name, def.uuid, id}; }
  const domain_config& persistent_def() const { return next ? *next : def; }
  domain_config& persistent_def_mut() { return next ? *next : def; }
};

using dom_ptr = std::shared_ptr<dom>;

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

}  // namespace

struct driver::state : std::enable_shared_from_this<driver::state> {
  asio::any_io_executor ex;
  paths dirs;
  bool is_open = false;
  bool closed = false;
  std::map<std::string, dom_ptr, std::less<>> doms;  // by name: lists come sorted
  int next_id = 1;
  event_hub events;
  std::function<bool()> kvm_probe = [] { return ::access("/dev/kvm", R_OK | W_OK) == 0; };
  std::optional<std::uint64_t> version;
  std::string caps_xml;

  dom_ptr find(std::string_view name) {
    auto it = doms.find(name);
    return it == doms.end() ? nullptr : it->second;
  }
  dom_ptr find_uuid(std::string_view uuid) {
    for (auto& [n, d] : doms)
      if (d->def.uuid == uuid) return d;
    return nullptr;
  }
  result<dom_ptr> get(std::string_view name, diagnostics& diag) {
    if (auto d = find(name)) return d;
    return fail(diag, errc::no_domain, "no domain with matching name " + q(name));
  }
  void erase(const dom_ptr& d) {
    auto it = doms.find(d->def.name);
    if (it != doms.end() && it->second == d) doms.erase(it);
  }
  void emit(const dom& d, event_type t, int detail) {
    if (events.has_subscribers()) events.publish(domain_event{d.ref(), t, detail});
  }

  // virDomainObjListAdd's checks: a name and a uuid name one domain, or none.
  result<dom_ptr> admit(const domain_config& def, bool live, diagnostics& diag) {
    if (auto by_uuid = find_uuid(def.uuid)) {
      if (by_uuid->def.name != def.name)
        return fail(diag, errc::operation_failed,
                    "domain " + q(by_uuid->def.name) + " is already defined with uuid " + def.uuid);
      if (live && (by_uuid->active() || by_uuid->starting))
        return fail(diag, errc::operation_invalid, "domain " + q(def.name) + " is already active");
      return by_uuid;
    }
    if (auto by_name = find(def.name))
      return fail(diag, errc::operation_failed,
                  "domain " + q(def.name) + " already exists with uuid " + by_name->def.uuid);
    return dom_ptr{};
  }

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
  asio::awaitable<result<dom_ptr>> begin_job(std::string_view name, diagnostics& diag, job_guard& g) {
    auto d = get(name, diag);
    if (!d) co_return d;
    dom_ptr p = *d;
    if (!co_await acquire(p)) co_return fail(diag, errc::operation_aborted, "waiting for a job on domain " + q(p->def.name) + " was cancelled");
    g.d = p;
    co_return p;
  }

  // ------------------------------------------------------------------ QMP

  asio::awaitable<result<json::value>> call(std::shared_ptr<runtime> rt, std::string cmd, json::object args,
                                            diagnostics& diag, std::chrono::steady_clock::duration limit = qmp_command_limit) {
    op_timeout deadline{ex, limit};
    auto [ec, v] = co_await rt->mon.async_execute(cmd, std::move(args), diag,
                                                  asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) {
      if (deadline.expired())
        co_return fail(diag, errc::operation_timeout, "QEMU did not answer " + q(cmd) + " in time");
      co_return failure(ec);
    }
    co_return std::move(v);
  }

  // After a failed command: a guest that went away is "not running", anything else is QEMU's error.
  // A running domain's job that is one QMP command with no arguments (system_powerdown, system_reset).
  op<void> simple_command(std::string_view name, std::string cmd, diagnostics& diag);

  failure command_failed(const dom_ptr& d, const std::shared_ptr<runtime>& rt, error_code ec, diagnostics& diag) {
    if (d->rt != rt || rt->finished || !rt->mon.is_open())
      return fail(diag, errc::operation_invalid, "domain is not running");
    return ec;
  }

  // ------------------------------------------------------------------ records

  void persist(const dom& d) {
    if (!d.rt) return;
    auto& rec = d.rt->rec;
    rec.extra["state"] = std::to_string(static_cast<int>(d.state));
    rec.extra["reason"] = std::to_string(d.reason);
    diagnostics ignore;
    (void)save_runtime(dirs, rec, ignore);
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
      if (ec || s->closed || rt->finished) co_return;
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
    if (rt->mon.is_open()) {
      diagnostics ignore;
      std::string cmd = "quit";
      (void)co_await call(rt, cmd, {}, ignore, 1s);
    }
    std::optional<int> status;
    {
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
    } else if (n == "WAKEUP") {
      if (d->state == domain_state::pmsuspended) {
        set_state(*d, domain_state::running, reason::running_wakeup);
        emit(*d, event_type::started, event_detail::started_wakeup);
      }
    }
  }

  // ------------------------------------------------------------------ migration

  // Polls query-migrate until the migration (outgoing or incoming) completes, fails, or `limit` passes.
  asio::awaitable<result<json::value>> wait_migration(std::shared_ptr<runtime> rt, diagnostics& diag,
                                                      std::chrono::steady_clock::duration limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    asio::steady_timer pause(ex);
    for (;;) {
      std::string cmd = "query-migrate";
      auto r = co_await call(rt, cmd, {}, diag, 10s);
      if (!r) co_return r;
      std::string status;
      if (r->is_object())
        if (auto* st = r->as_object().if_contains("status"); st && st->is_string()) status = st->as_string();
      if (status == "completed") co_return r;
      if (status == "failed" || status == "cancelled") {
        std::string why;
        if (auto* e = r->as_object().if_contains("error-desc"); e && e->is_string()) why = e->as_string();
        co_return fail(diag, errc::operation_failed, "migration " + status + (why.empty() ? "" : ": " + why));
      }
      if (std::chrono::steady_clock::now() > until)
        co_return fail(diag, errc::operation_timeout, "migration did not complete in time (status " + q(status) + ")");
      pause.expires_after(50ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // ------------------------------------------------------------------ start

  // create_xml and restore: `def` runs once, as a new transient domain or in place of a
  // persistent one that is not running; on failure everything is as it was.
  op<domain_ref> start_live(domain_config def, bool paused, std::optional<std::string> incoming, const char* what,
                            diagnostics& diag);

  // Starts `d` from d->def; the caller holds the job. On failure nothing is left running.
  // `incoming`: a migrate-incoming URI to load the guest's state from (restore) before it runs.
  asio::awaitable<result<void>> start(dom_ptr d, bool paused, diagnostics& diag,
                                      std::optional<std::string> incoming = std::nullopt) {
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
      std::string msg = "internal error: QEMU " + what + " while starting domain " + q(def.name);
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
      pause.expires_after(20ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
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
    if (incoming) {
      json::object a;
      a["uri"] = *incoming;
      std::string mi = "migrate-incoming";
      auto r = co_await call(rt, mi, std::move(a), diag, 10s);
      if (r) r = co_await wait_migration(rt, diag, 120s);
      if (!r) {
        std::string why(diag.message());
        co_await abandon();
        co_return gone("could not load the saved state (" + why + ")");
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
    rec.live_xml = format_domain_xml(def, fo);
    rec.extra["persistent"] = d->persistent ? "1" : "0";
    rec.extra["state"] = std::to_string(static_cast<int>(paused ? domain_state::paused : domain_state::running));
    int run_reason = incoming ? int(reason::running_restored) : int(reason::booted);
    rec.extra["reason"] = std::to_string(paused ? int(reason::user) : run_reason);
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
    d->reason = paused ? int(reason::user) : run_reason;
    emit(*d, event_type::started, incoming ? event_detail::started_restored : event_detail::started_booted);
    if (paused) emit(*d, event_type::suspended, event_detail::suspended_paused);
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
      doms.emplace(d->def.name, d);
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
      }
    events.close_all();
  }
};

driver::driver(asio::any_io_executor ex) : s_(std::make_shared<state>()) { s_->ex = std::move(ex); }
driver::driver(driver&&) noexcept = default;
driver& driver::operator=(driver&& o) noexcept {
  if (this != &o) {
    if (s_) s_->close_all();
    s_ = std::move(o.s_);
  }
  return *this;
}
driver::~driver() {
  if (s_) s_->close_all();
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
    s->doms.emplace(n, d);
  }
  diagnostics rd;
  auto recs = list_runtime(s->dirs, rd);
  if (recs)
    for (auto& r : *recs) co_await s->reattach(std::move(r));
  s->is_open = true;
  for (auto& [n, d] : std::map(s->doms)) {
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

op<void> driver::close() {
  s_->close_all();
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

op<std::vector<domain_ref>> driver::list_domains(unsigned flags, diagnostics&) {
  std::vector<domain_ref> out;
  out.reserve(s_->doms.size());
  for (auto& [n, dp] : s_->doms) {
    const dom& d = *dp;
    if (list_flags_match(flags, {d.active(), d.persistent, d.autostart, d.state})) out.push_back(d.ref());
  }
  co_return out;
}

op<domain_ref> driver::lookup_by_name(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->ref();
}

op<domain_ref> driver::lookup_by_uuid(std::string_view text, diagnostics& diag) {
  auto uuid = parse_uuid(text, diag);
  if (!uuid) co_return fail(diag, errc::invalid_arg, "Invalid UUID " + q(text));
  if (auto d = s_->find_uuid(*uuid)) co_return d->ref();
  co_return fail(diag, errc::no_domain, "no domain with matching uuid " + q(*uuid));
}

op<domain_ref> driver::lookup_by_id(int id, diagnostics& diag) {
  if (id >= 0)
    for (auto& [n, d] : s_->doms)
      if (d->id == id) co_return d->ref();
  co_return fail(diag, errc::no_domain, "no domain with matching id " + std::to_string(id));
}

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
    if (auto r = save_definition(s->dirs, def->name, text, diag); !r) co_return r.error();
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
  if (auto r = save_definition(s->dirs, def->name, text, diag); !r) co_return r.error();
  auto d = std::make_shared<dom>();
  d->def = std::move(*def);
  s->doms.emplace(d->def.name, d);
  s->emit(*d, event_type::defined, event_detail::defined_added);
  co_return d->ref();
}

op<void> driver::undefine(std::string_view name, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->persistent) co_return fail(diag, errc::operation_invalid, "cannot undefine transient domain");
  if (auto rr = remove_definition(s->dirs, d->def.name, diag); !rr) co_return rr.error();
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

op<void> driver::create(std::string_view name, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (d->active()) co_return fail(diag, errc::operation_invalid, "domain is already running");
  if (s->find(d->def.name) != d) co_return fail(diag, errc::no_domain, "no domain with matching name " + q(d->def.name));
  d->next = d->def;  // the live copy may change; the definition stays
  d->starting = true;
  auto sr = co_await s->start(d, false, diag);
  d->starting = false;
  if (!sr) {
    d->next.reset();
    co_return sr.error();
  }
  co_return result<void>{};
}

op<domain_ref> driver::state::start_live(domain_config def, bool paused, std::optional<std::string> incoming,
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
    s->doms.emplace(d->def.name, d);
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
  co_return co_await s->start_live(std::move(*def), (flags & start_paused_flag) != 0, std::nullopt, "create", diag);
}

op<void> driver::destroy(std::string_view name, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  rt->intent = stop_intent{reason::destroyed, event_detail::stopped_destroyed};
  co_await s->kill(d, rt);
  co_return result<void>{};
}

op<void> driver::state::simple_command(std::string_view name, std::string cmd, diagnostics& diag) {
  auto s = shared_from_this();  // the job may outlive the driver object
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  auto res = co_await s->call(rt, cmd, {}, diag);
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  co_return result<void>{};
}

// Asks the guest (ACPI power button); returns once asked, like libvirt.
op<void> driver::shutdown(std::string_view name, diagnostics& diag) {
  return s_->simple_command(name, "system_powerdown", diag);
}

// Without a guest agent or ACPI cooperation, a reset is the reboot that always works.
op<void> driver::reboot(std::string_view name, diagnostics& diag) {
  return s_->simple_command(name, "system_reset", diag);
}

op<void> driver::suspend(std::string_view name, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
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

op<void> driver::resume(std::string_view name, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
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

op<domain_info> driver::get_info(std::string_view name, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(name, diag);
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
  if (has_balloon(def) && rt->mon.is_open() && d->state == domain_state::running) {
    diagnostics ignore;
    std::string cmd = "query-balloon";
    auto b = co_await s->call(rt, cmd, {}, ignore, 5s);
    if (b && b->is_object())
      if (auto* a = b->as_object().if_contains("actual"); a && a->is_int64())
        info.memory_kib = static_cast<std::uint64_t>(a->as_int64()) / 1024;
  }
  info.state = d->state;
  co_return info;
}

op<std::string> driver::get_os_type(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->def.os.type.empty() ? std::string("hvm") : (*d)->def.os.type;
}

op<domain_state_info> driver::get_state(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return domain_state_info{(*d)->state, (*d)->reason};
}

op<std::string> driver::get_xml(std::string_view name, unsigned flags, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  dom& x = **d;
  domain_format_options opt;
  opt.secure = (flags & xml_flags::secure) != 0;
  if ((flags & xml_flags::inactive) || !x.active()) co_return format_domain_xml(x.persistent_def(), opt);
  opt.id = x.id;
  co_return format_domain_xml(x.def, opt);
}

op<bool> driver::is_active(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->active();
}

op<bool> driver::is_persistent(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->persistent;
}

event_stream driver::subscribe(std::string domain) { return s_->events.subscribe(s_->ex, std::move(domain)); }

op<void> driver::set_memory(std::string_view name, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
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
    if (auto w = save_definition(s->dirs, def.name, format_domain_xml(def), diag); !w) co_return w.error();
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
    auto res = co_await s->call(rt, cmd, std::move(a), diag);
    if (!res) co_return s->command_failed(d, rt, res.error(), diag);
    if (d->rt == rt) d->def.current_memory_kib = kib;
  }
  if (config) {
    domain_config def = d->persistent_def();
    def.current_memory_kib = kib;
    if (auto w = save_definition(s->dirs, def.name, format_domain_xml(def), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(def);
  }
  co_return result<void>{};
}

op<bool> driver::get_autostart(std::string_view name, diagnostics& diag) {
  auto d = s_->get(name, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->autostart;
}

op<void> driver::set_autostart(std::string_view name, bool on, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(name, diag);
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

op<void> driver::save(std::string_view name, std::string_view path_in, diagnostics& diag) {
  auto s = s_;
  std::string path = absolute_path(path_in);
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to save to");
  auto rt = d->rt;
  bool was_running = d->state == domain_state::running;

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
      diagnostics ignore;
      std::string cont = "cont";
      (void)co_await s->call(rt, cont, {}, ignore, 5s);
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
  json::object a;
  a["uri"] = "exec:cat >> " + shell_quote(path);
  std::string migrate = "migrate";
  auto mr = co_await s->call(rt, migrate, std::move(a), diag);
  if (mr) mr = co_await s->wait_migration(rt, diag, 300s);
  if (!mr) {
    error_code ec = s->command_failed(d, rt, mr.error(), diag).ec;
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
  std::string uri = "exec:tail -c +" + std::to_string(h->offset + 1) + " " + shell_quote(path);
  co_return co_await s->start_live(std::move(*def), false, std::move(uri), "restore", diag);
}

op<void> driver::core_dump(std::string_view name, std::string_view path, unsigned, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to dump to");
  auto rt = d->rt;
  json::object a;
  a["paging"] = false;
  a["protocol"] = "file:" + absolute_path(path);
  std::string cmd = "dump-guest-memory";
  auto res = co_await s->call(rt, cmd, std::move(a), diag, 300s);
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  co_return result<void>{};
}

op<covirt::block_stats> driver::block_stats(std::string_view name, std::string_view disk, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(name, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt) co_return fail(diag, errc::operation_invalid, "domain is not running");
  // The argv builder names disk i of n "libvirt-<n-i>-format".
  const auto& disks = d->def.devices.disks;
  std::optional<std::size_t> at;
  for (std::size_t i = 0; i < disks.size(); ++i)
    if (disks[i].target_dev == disk) at = i;
  if (!at) co_return fail(diag, errc::invalid_arg, "invalid path: " + std::string(disk));
  std::string node = "libvirt-" + std::to_string(disks.size() - *at) + "-format";
  auto rt = d->rt;
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

op<std::string> driver::qemu_monitor_command(std::string_view name, std::string_view command, diagnostics& diag) {
  auto s = s_;
  state::job_guard g;
  auto r = co_await s->begin_job(name, diag, g);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt || !d->rt->mon.is_open()) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto rt = d->rt;
  op_timeout deadline{s->ex, qmp_command_limit};
  auto [ec, reply] = co_await rt->mon.async_execute_raw(std::string(command), diag,
                                                        asio::as_tuple(deadline.bind(asio::use_awaitable)));
  if (ec) {
    if (deadline.expired()) co_return fail(diag, errc::operation_timeout, "QEMU did not answer in time");
    if (ec == errc::invalid_arg) co_return failure(ec);
    co_return s->command_failed(d, rt, ec, diag);
  }
  co_return std::move(reply);
}

op<std::unique_ptr<covirt::detail::erased_driver>> open_driver(asio::any_io_executor ex, const uri& u, unsigned flags,
                                                       diagnostics& diag) {
  auto m = std::make_unique<covirt::detail::driver_model<driver>>(ex);
  if (auto r = co_await m->get().open(u, flags, diag); !r) co_return r.error();
  co_return std::unique_ptr<covirt::detail::erased_driver>(std::move(m));
}

}  // namespace covirt::qemu

// ------------------------------------------------------------------ (work in progress)
namespace covirt::qemu {
op<void> driver::attach_device(std::string_view, std::string_view, unsigned, diagnostics& diag) {
  co_return fail(diag, errc::no_support, "attach_device: not yet");
}
op<void> driver::detach_device(std::string_view, std::string_view, unsigned, diagnostics& diag) {
  co_return fail(diag, errc::no_support, "detach_device: not yet");
}
op<job_info> driver::get_job_info(std::string_view, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<void> driver::abort_job(std::string_view, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<std::string> driver::migrate_begin(std::string_view, unsigned, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<std::string> driver::migrate_prepare(std::string_view, std::string_view, unsigned, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<void> driver::migrate_perform(std::string_view, std::string_view, unsigned, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<domain_ref> driver::migrate_finish(std::string_view, unsigned, bool, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
op<void> driver::migrate_confirm(std::string_view, unsigned, bool, diagnostics& diag) { co_return fail(diag, errc::no_support, "not yet"); }
}  // namespace covirt::qemu
