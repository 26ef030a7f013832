// The QEMU driver: live and persistent settings (memory, max memory, autostart), block
// statistics and the monitor passthrough (virDomainQemuMonitorCommand).
#include "driver_state.hpp"

namespace covirt::qemu {

op<void> driver::set_max_memory(const domain_key& key, std::uint64_t kib, diagnostics& diag) {
  return set_memory(key, kib, modify::mem_maximum, diag);
}

op<void> driver::set_memory(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags & ~modify::mem_maximum, false, diag);
  if (!how) co_return how.error();
  const bool live = how->live, config = how->config;
  if (kib == 0) co_return fail(diag, errc::invalid_arg, "memory size must be greater than zero");
  if (flags & modify::mem_maximum) {
    if (live) co_return fail(diag, errc::operation_invalid, "cannot resize the maximum memory on an active domain");
    domain_config def = d->persistent_def();
    def.memory_kib = kib;
    if (def.current_memory_kib > kib) def.current_memory_kib = kib;
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
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
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
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
  auto j = co_await state::begin_job(s_, key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  if (!rt->mon.is_open()) co_return fail(diag, errc::operation_invalid, "domain is not running");
  auto [ec, reply] = co_await rt->mon.async_execute_raw(std::string(command), qmp_command_limit, diag,
                                                        asio::as_tuple(asio::use_awaitable));
  if (ec) {
    if (ec == errc::operation_timeout) co_return fail(diag, errc::operation_timeout, "QEMU did not answer in time");
    if (ec == errc::invalid_arg) co_return failure(ec);
    co_return s->command_failed(d, rt, ec, diag);
  }
  co_return std::move(reply);
}

}  // namespace covirt::qemu
