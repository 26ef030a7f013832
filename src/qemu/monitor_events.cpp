// The QEMU driver: the monitor. One QMP command under a deadline, the event pump, and what each
// QMP event (STOP, RESUME, SHUTDOWN, GUEST_PANICKED, ...) does to the domain; a monitor that breaks.
#include "driver_state.hpp"

namespace covirt::qemu {

namespace impl {

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

}  // namespace impl

asio::awaitable<result<json::value>> driver::state::call(std::shared_ptr<runtime> rt, std::string cmd,
                                                         json::object args, diagnostics& diag,
                                                         std::chrono::steady_clock::duration limit) {
  // Bound by its own deadline (the monitor's one timer keeps it: no timer of ours per command)
  // and by the caller's cancellation (this coroutine's slot reaches the command), whichever
  // comes first.
  auto [ec, v] = co_await rt->mon.async_execute(cmd, std::move(args), limit, diag,
                                                asio::as_tuple(asio::use_awaitable));
  if (ec) {
    if (ec == errc::operation_timeout)
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

failure driver::state::command_failed(const dom_ptr& d, const std::shared_ptr<runtime>& rt, error_code ec, diagnostics& diag) {
  if (d->rt != rt || rt->finished) return fail(diag, errc::operation_invalid, "domain is not running");
  if (!rt->mon.is_open() && ec != errc::rpc && ec != errc::operation_timeout)
    return fail(diag, errc::operation_invalid, "domain is not running");
  return ec;  // QEMU's own error, a corrupt monitor (errc::rpc, the guest is then stopped), a timeout
}

asio::awaitable<void> driver::state::event_pump(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
  for (;;) {
    auto [ec, ev] = co_await rt->mon.async_next_event(asio::as_tuple(asio::use_awaitable));
    if (s->closed || rt->finished) co_return;
    if (ec) co_return co_await monitor_lost(s, d, rt);
    co_await s->on_event(d, rt, std::move(ev));
  }
}

asio::awaitable<void> driver::state::stop_guest(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
  job_guard g;
  if (!co_await d->job.acquire()) co_return;
  g.d = d;
  if (d->rt != rt || rt->finished) co_return;
  co_await s->kill(d, rt);
}

asio::awaitable<void> driver::state::on_event(dom_ptr d, std::shared_ptr<runtime> rt, qmp_event ev) {
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
