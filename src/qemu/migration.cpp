// The QEMU driver: migration, libvirt's five steps (begin, prepare, perform, finish, confirm).
#include "driver_state.hpp"
#include "../common/host_port.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace covirt::qemu {

asio::awaitable<result<json::value>> driver::state::wait_migration(std::shared_ptr<runtime> rt,
                                                                   diagnostics& diag,
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

asio::awaitable<void> driver::state::set_max_bandwidth(std::shared_ptr<runtime> rt, std::uint64_t mib) {
  json::object p;
  p["max-bandwidth"] = mib ? static_cast<std::int64_t>(std::min<std::uint64_t>(mib, 1u << 20) << 20) : std::int64_t{1} << 40;
  diagnostics ignore;
  std::string cmd = "migrate-set-parameters";
  (void)co_await call(std::move(rt), cmd, std::move(p), ignore, 5s);
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

asio::awaitable<result<void>> driver::state::migrate_out(const dom_ptr& d, std::shared_ptr<runtime> rt, std::string uri,
                                                        std::chrono::steady_clock::duration limit,
                                                        std::string_view what, diagnostics& diag) {
  json::object a;
  a["uri"] = std::move(uri);
  std::string migrate = "migrate";
  auto mr = co_await call(rt, migrate, std::move(a), diag);
  if (mr) mr = co_await wait_migration(rt, diag, limit, what, true);
  if (!mr) co_return mr.error() == errc::operation_aborted ? failure(mr.error()) : command_failed(d, rt, mr.error(), diag);
  co_return result<void>{};
}

op<std::string> driver::migrate_prepare(std::string_view xml, std::string_view uri, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<std::string>([s = s_, xml = std::string(xml), uri = std::string(uri), flags, &diag] {
    return s->prepare_job(xml, uri, flags, diag);
  });
}

op<std::string> driver::state::prepare_job(std::string_view xml, std::string_view uri_in, unsigned, diagnostics& diag) {
  auto s = shared_from_this();
  auto def = parse_definition(xml, diag);
  if (!def) co_return def.error();
  // tcp://HOST[:PORT] (virsh --migrateuri) or QEMU's tcp:HOST:PORT; the default host is loopback.
  std::string host = "127.0.0.1", port;
  std::string_view u = uri_in;
  if (!u.empty()) {
    if (u.rfind("tcp://", 0) == 0) u.remove_prefix(6);
    else if (u.rfind("tcp:", 0) == 0) u.remove_prefix(4);
    else co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " is not tcp://HOST[:PORT]");
    while (!u.empty() && u.back() == '/') u.remove_suffix(1);
    auto hp = ::covirt::detail::split_host_port(u, uri_in, diag);
    if (!hp) co_return failure(hp.error());
    if (!hp->host.empty()) host = std::move(hp->host);
    port = std::move(hp->port);
    if (host.find_first_of(",; \t\n'\"") != std::string::npos)
      co_return fail(diag, errc::invalid_arg, "migration URI " + q(uri_in) + " has a bad host");
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
  auto j = co_await state::begin_job(shared_from_this(), key, diag, state::need::running);
  if (!j) co_return j.error();
  auto s = j->s;  // locals, not a structured binding: the lambdas below capture them (clang 14)
  dom_ptr d = j->guard.d;
  auto rt = j->rt;
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
  if (auto mr = co_await s->migrate_out(d, rt, std::string(uri), 600s, "migration out", diag); !mr) {
    co_await resume();
    co_return mr.error();
  }
  if (d->rt == rt && d->state != domain_state::paused) {
    s->set_state(*d, domain_state::paused, reason::paused_migration);
    s->emit(*d, event_type::suspended, event_detail::suspended_migrated);
  }
  // The guest now lives at the destination: keep the job until confirm says what becomes of this copy.
  j->guard.d.reset();
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
  auto j = co_await state::begin_job(shared_from_this(), key, diag);
  if (!j) co_return j.error();
  auto s = j->s;
  dom_ptr d = j->guard.d;
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

}  // namespace covirt::qemu
