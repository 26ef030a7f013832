// The QEMU driver: a domain's lifecycle. Define and undefine (definitions written durably),
// start (spawn QEMU, connect its monitor, run it), the ways it stops (destroy, shutdown, reboot,
// the exit watcher), suspend and resume, and re-attaching to the QEMUs a previous driver left.
#include "driver_state.hpp"

#include <boost/asio/thread_pool.hpp>

namespace covirt::qemu {

namespace impl {

asio::any_io_executor file_thread() {
  static asio::thread_pool pool(1);
  return pool.get_executor();
}

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

result<domain_config> parse_definition(std::string_view xml, diagnostics& diag) {
  auto def = parse_domain_xml(xml, diag);
  if (!def) return def.error();
  if (auto r = check_name_for_file(def->name, diag); !r) return r.error();
  apply_defaults(*def);
  if (def->type != "qemu" && def->type != "kvm")
    return fail(diag, errc::config_unsupported, "emulator type " + q(def->type) + " is not supported by the QEMU driver");
  return def;
}

std::string marker_for(const domain_config& d) {
  // A comma in the name is doubled on QEMU's command line; the uuid is always plain.
  if (d.name.find(',') != std::string::npos) return d.uuid;
  return "guest=" + d.name;
}

void set_aliases(domain_config& d) {
  for (std::size_t i = 0; i < d.devices.interfaces.size(); ++i) d.devices.interfaces[i].alias = "net" + std::to_string(i);
  for (auto& x : d.devices.disks) {
    std::string bus = x.target_bus.empty() && x.target_dev.rfind("vd", 0) == 0 ? "virtio" : x.target_bus;
    auto idx = disk_target_index(x.target_dev);
    if (bus == "virtio" && idx) x.alias = "virtio-disk" + std::to_string(*idx);
  }
}

void record_device_names(const domain_config& d, runtime_record& rec) {
  for (auto it = rec.extra.begin(); it != rec.extra.end();)
    it = it->first.rfind("node:", 0) == 0 ? rec.extra.erase(it) : std::next(it);
  const auto& disks = d.devices.disks;
  for (std::size_t i = 0; i < disks.size(); ++i)
    rec.extra["node:" + disks[i].target_dev] = "libvirt-" + std::to_string(disks.size() - i) + "-format";
}

}  // namespace impl

void driver::state::persist(const dom& d) {
  if (!d.rt) return;
  auto& rec = d.rt->rec;
  rec.extra["state"] = std::to_string(static_cast<int>(d.state));
  rec.extra["reason"] = std::to_string(d.reason);
  save_runtime_later(dirs, rec);  // a state change must not wait for the disk
}

void driver::state::set_state(dom& d, domain_state st, int r) {
  d.state = st;
  d.reason = r;
  persist(d);
}

void driver::state::finish_stop(const dom_ptr& d, const std::shared_ptr<runtime>& rt, std::optional<int> status) {
  if (rt->finished) return;
  rt->finished = true;
  rt->mon.close();
  rt->cancel_exit.emit(asio::cancellation_type::terminal);
  rt->cancel_lost.emit(asio::cancellation_type::terminal);
  diagnostics ignore;
  (void)remove_runtime(dirs, d->def.name, ignore);
  std::error_code fec;
  if (!rt->rec.qmp_socket.empty()) fs::remove(rt->rec.qmp_socket, fec);
  restore_image_labels(rt->rec);
  remove_cgroup(rt);
  if (d->rt != rt) return;
  stop_intent how = rt->intent.value_or(stop_intent{reason::crashed, event_detail::stopped_crashed});
  (void)status;
  d->rt.reset();
  doms.stopped(*d, how.reason, how.detail);
}

void driver::state::watch(const dom_ptr& d, const std::shared_ptr<runtime>& rt) {
  auto self = shared_from_this();
  asio::co_spawn(ex, event_pump(self, d, rt), asio::detached);
  asio::co_spawn(ex, exit_watch(self, d, rt), asio::detached);
}

asio::awaitable<void> driver::state::exit_watch(std::shared_ptr<state> s, dom_ptr d, std::shared_ptr<runtime> rt) {
  auto [ec, status] = co_await rt->proc.async_wait_exit(
      asio::as_tuple(asio::bind_cancellation_slot(rt->cancel_exit.slot(), asio::use_awaitable)));
  if (ec || s->closed) co_return;
  s->finish_stop(d, rt, status);
}

asio::awaitable<void> driver::state::kill(dom_ptr d, std::shared_ptr<runtime> rt) {
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

asio::awaitable<driver::state::file_outcome> driver::state::definition_io(paths p, std::string name, std::optional<std::string> xml) {
  diagnostics d;
  result<void> r = xml ? save_definition(p, name, *xml, d) : remove_definition(p, name, d);
  co_return file_outcome{r ? error_code() : r.error(), std::string(d.message())};
}

asio::awaitable<result<void>> driver::state::store_definition(std::string name, std::optional<std::string> xml, diagnostics& diag) {
  auto out = co_await asio::co_spawn(file_thread(), definition_io(dirs, std::move(name), std::move(xml)),
                                     asio::use_awaitable);
  if (!out.ec) co_return result<void>{};
  diag.assign(std::move(out.msg));
  co_return failure(out.ec);
}

asio::awaitable<result<void>> driver::state::commit_definition(dom_ptr d, domain_config def, diagnostics& diag) {
  std::string name = def.name;
  std::optional<std::string> xml = format_domain_xml(def);
  if (auto w = co_await store_definition(name, xml, diag); !w) co_return w;
  d->persistent_def_mut() = std::move(def);
  co_return result<void>{};
}

asio::awaitable<result<void>> driver::state::start(dom_ptr d, bool paused, diagnostics& diag, std::optional<incoming_plan> incoming) {
  const domain_config& def = d->def;
  auto files = files_for(dirs, def.name, diag);
  if (!files) co_return files.error();
  argv_options opt;
  opt.qmp_socket = files->qmp_socket.string();
  opt.kvm_available = kvm_probe();
  opt.start_paused = true;
  if (incoming) opt.incoming = "defer";
  if (auto r = check_tuning(def, &opt.hugepage_dir, diag); !r) co_return r.error();
  if (auto r = prepare_host_devices(d->def, opt, diag); !r) co_return r.error();
  auto dac = dac_plan_for(def, diag);
  if (!dac) co_return dac.error();
  std::error_code fec;
  fs::remove(files->qmp_socket, fec);
  // A QEMU that runs as another user cannot make its monitor socket in our state folder: it is
  // bound here and QEMU inherits it (libvirt hands its monitor over the same way).
  const bool other_user = dac->labelled && (dac->uid != ::geteuid() || dac->gid != ::getegid());
  struct fd_closer {
    int fd = -1;
    ~fd_closer() {
      if (fd >= 0) ::close(fd);
    }
  } monitor_fd;
  if (other_user) {
    auto fd = listen_unix(files->qmp_socket.string(), diag);
    if (!fd) co_return fd.error();
    monitor_fd.fd = opt.qmp_fd = *fd;
  }
  auto argv = build_argv(def, opt, diag);
  if (!argv) co_return argv.error();
  image_labels labels;  // given back on every way out of here but success
  if (auto r = relabel_images(def, *dac, labels, diag); !r) co_return r.error();
  fs::create_directories(files->log.parent_path(), fec);

  spawn_options so;
  so.argv = *argv;
  so.log_path = files->log.string();
  // SDL draws on the X display its <graphics> names (else the $DISPLAY prepare_host_devices
  // read), with its Xauthority file: QEMU finds both in its environment.
  for (const auto& g : def.devices.graphics)
    if (g.type == "sdl") {
      const std::string& shown = g.display.empty() ? opt.display : g.display;
      if (!shown.empty()) so.env.push_back("DISPLAY=" + shown);
      if (!g.xauth.empty()) so.env.push_back("XAUTHORITY=" + g.xauth);
    }
  if (other_user) {
    so.run_as = std::pair{dac->uid, dac->gid};
    so.pass_fds.push_back(monitor_fd.fd);
  }
  auto proc = process::spawn(ex, so, diag);
  if (!proc) co_return proc.error();
  if (monitor_fd.fd >= 0) ::close(std::exchange(monitor_fd.fd, -1));  // QEMU has it now

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
    remove_cgroup(rt);
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
  if (auto r = co_await apply_tuning(d, rt, diag); !r) {
    std::string why(diag.message());
    error_code ec = r.error();
    co_await abandon();
    diag.assign("cannot apply the tuning of domain " + q(def.name) + ": " + why);
    co_return failure(ec);
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

  int id = doms.take_id();
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
  rec.extra["dac-label"] = dac->labelled ? dac->label : std::string();
  labels.record(rec);
  if (auto r = save_runtime(dirs, rec, diag); !r) {
    co_await abandon();
    co_return r.error();
  }
  labels.keep();  // the runtime record has them: finish_stop gives them back
  // Graphics passwords go over the monitor, never on the command line.
  for (auto& g : def.devices.graphics)
    if (!g.passwd.empty() && (g.type == "vnc" || g.type == "spice")) {
      json::object a;
      a["protocol"] = g.type;
      a["password"] = g.passwd;
      std::string sp = "set_password";
      if (auto r = co_await call(rt, sp, std::move(a), diag, 10s); !r) {
        std::string why(diag.message());
        co_await abandon();
        diagnostics ignore;
        (void)remove_runtime(dirs, def.name, ignore);
        co_return gone("refused the " + g.type + " password (" + why + ")");
      }
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

asio::awaitable<void> driver::state::reattach(runtime_record rec) {
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
  if (!d) d = doms.add(*live, false);
  else if (live) doms.run_instead(*d, std::move(*live));
  auto rt = std::make_shared<runtime>(ex);
  rt->proc = std::move(*p);
  rt->rec = rec;
  rt->cg = guest_cgroup::attach(cgroups, dirs.cgroup_root, rec.name);
  d->rt = rt;
  d->id = rec.id;
  doms.saw_id(rec.id);
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

void driver::state::close_all() {
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

op<domain_ref> driver::define_xml(std::string_view xml, diagnostics& diag) {
  auto s = s_;
  auto def = parse_definition(xml, diag);
  if (!def) co_return def.error();
  if (auto r = files_for(s->dirs, def->name, diag); !r) co_return r.error();
  auto at = s->admit(*def, false, diag);
  if (!at) co_return at.error();
  std::string text = format_domain_xml(*def);
  if (dom_ptr d = *at) {
    state::job_guard g;
    if (!co_await d->job.acquire()) co_return fail(diag, errc::operation_aborted, "define was cancelled");
    g.d = d;
    if (auto r = co_await s->store_definition(def->name, text, diag); !r) co_return r.error();
    if (d->rt) {
      d->rt->rec.extra["persistent"] = "1";
      s->persist(*d);
    }
    s->doms.redefine(*d, std::move(*def));
    co_return d->ref();
  }
  // Known (and its job taken) while its file is written, so that a concurrent define of the
  // same name waits for this one instead of racing it.
  auto d = s->doms.add(std::move(*def), true, true);
  state::job_guard g(d);
  if (auto r = co_await s->store_definition(d->def.name, text, diag); !r) {
    s->erase(d);
    co_return r.error();
  }
  s->emit(*d, event_type::defined, event_detail::defined_added);
  co_return d->ref();
}

op<void> driver::undefine(const domain_key& key, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  if (!d->persistent) co_return fail(diag, errc::operation_invalid, "cannot undefine transient domain");
  if (auto rr = co_await s->store_definition(d->def.name, std::nullopt, diag); !rr) co_return rr.error();
  d->autostart = false;  // its link went with the definition
  if (d->rt) {
    d->rt->rec.extra["persistent"] = "0";
    s->persist(*d);
  }
  s->doms.undefine(*d);
  co_return result<void>{};
}

op<void> driver::create(const domain_key& key, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto s = j->s;  // locals, not a structured binding: the lambda below captures them (clang 14)
  dom_ptr d = j->guard.d;
  if (d->active()) co_return fail(diag, errc::operation_invalid, "domain is already running");
  if (s->find(d->def.name) != d) co_return fail(diag, errc::no_domain, "no domain with matching name " + q(d->def.name));
  s->doms.begin_run(*d);  // the live copy may change; the definition stays
  d->starting = true;
  auto sr = co_await state::cleanup_on_cancel<void>([&] { return s->start(d, false, diag); });
  d->starting = false;
  if (!sr) {
    s->doms.abandon_run(*d, false);
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
    d = s->doms.add(std::move(def), false, true);  // its job uncontended: nobody knows it yet
    g.d = d;
  } else {
    if (!co_await d->job.acquire()) co_return fail(diag, errc::operation_aborted, std::string(what) + " was cancelled");
    g.d = d;
    if (d->active()) co_return fail(diag, errc::operation_invalid, "domain " + q(d->def.name) + " is already active");
    s->doms.run_instead(*d, std::move(def));
  }
  d->starting = true;
  auto r = co_await s->start(d, paused, diag, std::move(incoming));
  d->starting = false;
  if (!r) {
    s->doms.abandon_run(*d, fresh);
    co_return failure(r.error());
  }
  co_return d->ref();
}

op<domain_ref> driver::create_xml(std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto def = parse_definition(xml, diag);
  if (!def) co_return def.error();
  co_return co_await state::cleanup_on_cancel<domain_ref>([&] {
    return s->start_live(std::move(*def), (flags & start_paused_flag) != 0, std::nullopt, "create", diag);
  });
}

op<void> driver::destroy(const domain_key& key, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  rt->intent = stop_intent{reason::destroyed, event_detail::stopped_destroyed};
  co_await s->kill(d, rt);
  co_return result<void>{};
}

op<void> driver::state::simple_command(const domain_key& key, std::string cmd, diagnostics& diag, bool reboot) {
  auto j = co_await state::begin_job(shared_from_this(), key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
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
  auto j = co_await state::begin_job(s_, key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  if (d->state == domain_state::paused) co_return result<void>{};  // libvirt: nothing to do
  if (d->state == domain_state::pmsuspended)
    co_return fail(diag, errc::operation_invalid, "domain is pmsuspended");
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
  auto j = co_await state::begin_job(s_, key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  if (d->state == domain_state::pmsuspended)
    co_return fail(diag, errc::operation_invalid, "domain is pmsuspended");
  if (d->state != domain_state::paused && d->state != domain_state::crashed)
    co_return fail(diag, errc::operation_invalid, "domain is not paused");
  std::string cmd = "cont";
  auto res = co_await s->call(rt, cmd, {}, diag);
  if (!res) co_return s->command_failed(d, rt, res.error(), diag);
  if (d->rt == rt && d->state != domain_state::running) {
    s->set_state(*d, domain_state::running, reason::unpaused);
    s->emit(*d, event_type::resumed, event_detail::resumed_unpaused);
  }
  co_return result<void>{};
}

}  // namespace covirt::qemu
