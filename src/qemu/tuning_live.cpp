// The QEMU driver: the tuning calls (virsh schedinfo, memtune, blkiotune, numatune, vcpupin,
// emulatorpin, vcpuinfo), live through the guest's cgroups and threads, or in its definition,
// with libvirt's QEMU driver's field names, types, ranges and messages.
#include "driver_state.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <sched.h>

namespace covirt::qemu {

namespace impl {

// modify::live / config / current for a domain, as libvirt's virDomainObjGetDefs.
result<impact> impact_of(const covirt::detail::domain_obj& d, unsigned flags, bool query, diagnostics& diag) {
  impact i{(flags & modify::live) != 0, (flags & modify::config) != 0};
  if (flags & ~(modify::live | modify::config)) {
    char buf[80];
    std::snprintf(buf, sizeof buf, "unsupported flags (0x%x)", flags & ~(modify::live | modify::config));
    return fail(diag, errc::invalid_arg, buf);
  }
  if (query && i.live && i.config)
    return fail(diag, errc::invalid_arg,
                "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive");
  if (!i.live && !i.config) (d.active() ? i.live : i.config) = true;
  if (i.live && !d.active()) return fail(diag, errc::operation_invalid, "domain is not running");
  if (i.config && !d.persistent)
    return fail(diag, errc::operation_invalid, "transient domains do not have any persistent config");
  return i;
}

}  // namespace impl

namespace {


typed_param ull(std::string f, unsigned long long v) { return {std::move(f), v}; }
typed_param ll(std::string f, long long v) { return {std::move(f), v}; }

// A typed parameter's number, whatever integer type the caller used.
std::optional<long double> number_of(const typed_param& p) {
  return std::visit(
      [](const auto& v) -> std::optional<long double> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool> || std::is_same_v<T, double>)
          return std::nullopt;
        else
          return static_cast<long double>(v);
      },
      p.value);
}

const char* type_name(const typed_param& p) {
  static constexpr const char* names[] = {"int", "uint", "llong", "ullong", "double", "boolean", "string"};
  return names[p.value.index()];
}

// Each parameter must be one of `known` (libvirt's virTypedParamsValidate).
result<void> check_fields(const typed_params& params, std::initializer_list<std::pair<std::string_view, bool>> known,
                          diagnostics& diag) {
  for (auto& p : params) {
    auto it = std::find_if(known.begin(), known.end(), [&](auto& k) { return k.first == p.field; });
    if (it == known.end())
      return fail(diag, errc::argument_unsupported, "parameter '" + p.field + "' not supported");
    bool is_string = std::holds_alternative<std::string>(p.value);
    if (it->second != is_string || (!is_string && !number_of(p)))
      return fail(diag, errc::invalid_arg,
                  "invalid type '" + std::string(type_name(p)) + "' for parameter '" + p.field + "', expected '" +
                      (it->second ? "string" : "number") + "'");
  }
  return {};
}

result<void> in_range(const typed_param& p, long double lo, long double hi, diagnostics& diag, bool minus_one = false) {
  long double v = *number_of(p);
  if (minus_one && v == -1) return {};
  if (v < lo || v > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "value of '%s' is out of range [%lld, %lld]", p.field.c_str(),
                  static_cast<long long>(lo), static_cast<long long>(hi));
    return fail(diag, errc::invalid_arg, buf);
  }
  return {};
}

constexpr long long max_quota = 17592186044415LL;

// "MAJ:MIN" of a block device path.
result<std::string> dev_numbers(const std::string& path, diagnostics& diag) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) < 0 || !S_ISBLK(sb.st_mode))
    return fail(diag, errc::invalid_arg, "path '" + path + "' must be a block device");
  return std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev));
}

}  // namespace

// ------------------------------------------------------------------ schedinfo

op<std::string> driver::get_scheduler_type(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  if ((*d)->rt && !(*d)->rt->cg.has("cpu"))
    co_return fail(diag, errc::operation_invalid, "cgroup CPU controller is not mounted");
  co_return std::string("posix");
}

op<typed_params> driver::get_scheduler_parameters(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, true, diag);
  if (!how) co_return how.error();
  typed_params out;
  if (how->config) {
    const domain_config& def = d->persistent_def();
    cputune_def t = def.cputune.value_or(cputune_def{});
    out = {ull("cpu_shares", t.shares.value_or(0)),          ull("vcpu_period", t.period.value_or(0)),
           ll("vcpu_quota", t.quota.value_or(0)),            ull("emulator_period", t.emulator_period.value_or(0)),
           ll("emulator_quota", t.emulator_quota.value_or(0)), ull("global_period", t.global_period.value_or(0)),
           ll("global_quota", t.global_quota.value_or(0)),   ull("iothread_period", t.iothread_period.value_or(0)),
           ll("iothread_quota", t.iothread_quota.value_or(0))};
    co_return out;
  }
  const guest_cgroup& g = d->rt->cg;
  if (!g.has("cpu")) co_return fail(diag, errc::operation_invalid, "cgroup CPU controller is not mounted");
  auto shares = g.shares(diag);
  if (!shares) co_return shares.error();
  auto vcpu = g.bandwidth("vcpu0", diag);
  if (!vcpu) co_return vcpu.error();
  auto emu = g.bandwidth("emulator", diag);
  if (!emu) co_return emu.error();
  auto glob = g.bandwidth("", diag);
  if (!glob) co_return glob.error();
  // No <iothreads>: libvirtd 9.0's QEMU driver then reports a bandwidth nobody limited (the
  // kernel's 100000/-1, seen beside it on this host); the guest group's is that one.
  out = {ull("cpu_shares", *shares),         ull("vcpu_period", vcpu->period), ll("vcpu_quota", vcpu->quota),
         ull("emulator_period", emu->period), ll("emulator_quota", emu->quota), ull("global_period", glob->period),
         ll("global_quota", glob->quota),     ull("iothread_period", glob->period), ll("iothread_quota", glob->quota)};
  co_return out;
}

op<void> driver::set_scheduler_parameters(const domain_key& key, const typed_params& params, unsigned flags,
                                          diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  if (auto r = check_fields(params, {{"cpu_shares", false}, {"vcpu_period", false}, {"vcpu_quota", false},
                                     {"emulator_period", false}, {"emulator_quota", false}, {"global_period", false},
                                     {"global_quota", false}, {"iothread_period", false}, {"iothread_quota", false}},
                            diag);
      !r)
    co_return r.error();
  for (auto& p : params) {
    bool quota = p.field.find("quota") != std::string::npos;
    if (p.field.find("iothread") == 0)
      co_return fail(diag, errc::config_unsupported, "parameter '" + p.field + "': the domain has no <iothreads>");
    if (p.field == "cpu_shares") {
      if (auto r = in_range(p, 0, 262144, diag); !r) co_return r.error();
    } else if (quota) {
      if (auto r = in_range(p, 1000, max_quota, diag, true); !r) co_return r.error();
    } else if (auto r = in_range(p, 1000, 1000000, diag); !r) {
      co_return r.error();
    }
  }
  auto apply = [&](cputune_def& t) {
    for (auto& p : params) {
      long double v = *number_of(p);
      auto u = static_cast<unsigned long long>(v);
      auto q = static_cast<long long>(v);
      if (p.field == "cpu_shares") t.shares = u;
      else if (p.field == "vcpu_period") t.period = u;
      else if (p.field == "vcpu_quota") t.quota = q;
      else if (p.field == "emulator_period") t.emulator_period = u;
      else if (p.field == "emulator_quota") t.emulator_quota = q;
      else if (p.field == "global_period") t.global_period = u;
      else if (p.field == "global_quota") t.global_quota = q;
    }
  };
  if (how->live) {
    const guest_cgroup& g = d->rt->cg;
    if (!g.has("cpu")) co_return fail(diag, errc::operation_invalid, "cgroup CPU controller is not mounted");
    unsigned vcpus = d->def.vcpus ? d->def.vcpus : 1;
    for (auto& p : params) {
      long double v = *number_of(p);
      auto u = static_cast<unsigned long long>(v);
      auto q = static_cast<long long>(v);
      result<void> r;
      if (p.field == "cpu_shares") r = g.set_shares(u, diag);
      else if (p.field == "vcpu_period" || p.field == "vcpu_quota")
        for (unsigned i = 0; i < vcpus && r; ++i)
          r = p.field == "vcpu_period" ? g.set_bandwidth("vcpu" + std::to_string(i), u, std::nullopt, diag)
                                       : g.set_bandwidth("vcpu" + std::to_string(i), std::nullopt, q, diag);
      else if (p.field == "emulator_period") r = g.set_bandwidth("emulator", u, std::nullopt, diag);
      else if (p.field == "emulator_quota") r = g.set_bandwidth("emulator", std::nullopt, q, diag);
      else if (p.field == "global_period") r = g.set_bandwidth("", u, std::nullopt, diag);
      else if (p.field == "global_quota") r = g.set_bandwidth("", std::nullopt, q, diag);
      if (!r) co_return r.error();
    }
    cputune_def t = d->def.cputune.value_or(cputune_def{});
    apply(t);
    // The kernel's word for the shares (it may round them), as libvirt reads them back.
    if (auto sh = g.shares(diag); sh && t.shares) t.shares = *sh;
    d->def.cputune = t;
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    cputune_def t = def.cputune.value_or(cputune_def{});
    apply(t);
    def.cputune = t;
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ memtune

op<typed_params> driver::get_memory_parameters(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, true, diag);
  if (!how) co_return how.error();
  typed_params out;
  if (how->config) {
    memtune_def m = d->persistent_def().memtune.value_or(memtune_def{});
    out = {ull("hard_limit", m.hard_limit_kib.value_or(memory_unlimited_kib)),
           ull("soft_limit", m.soft_limit_kib.value_or(memory_unlimited_kib)),
           ull("swap_hard_limit", m.swap_hard_limit_kib.value_or(memory_unlimited_kib))};
    co_return out;
  }
  const guest_cgroup& g = d->rt->cg;
  if (!g.has("memory")) co_return fail(diag, errc::operation_invalid, "cgroup memory controller is not mounted");
  using m = guest_cgroup::mem_limit;
  for (auto [f, w] : {std::pair{"hard_limit", m::hard}, {"soft_limit", m::soft}, {"swap_hard_limit", m::swap}}) {
    auto v = g.memory_limit(w, diag);
    if (!v) co_return v.error();
    out.push_back(ull(f, *v));
  }
  co_return out;
}

op<void> driver::set_memory_parameters(const domain_key& key, const typed_params& params, unsigned flags,
                                       diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  if (auto r = check_fields(params, {{"hard_limit", false}, {"soft_limit", false}, {"swap_hard_limit", false},
                                     {"min_guarantee", false}},
                            diag);
      !r)
    co_return r.error();
  for (auto& p : params) {
    if (p.field == "min_guarantee")
      co_return fail(diag, errc::config_unsupported, "Parameter 'min_guarantee' not supported by QEMU.");
    if (*number_of(p) < 0) co_return fail(diag, errc::invalid_arg, "value of '" + p.field + "' must not be negative");
  }
  auto apply = [&](memtune_def& mt) {
    for (auto& p : params) {
      auto v = std::min(static_cast<unsigned long long>(*number_of(p)), memory_unlimited_kib);
      auto& slot = p.field == "hard_limit" ? mt.hard_limit_kib : p.field == "soft_limit" ? mt.soft_limit_kib
                                                                                          : mt.swap_hard_limit_kib;
      if (v >= memory_unlimited_kib) slot.reset();
      else slot = v;
    }
  };
  auto check = [&](const memtune_def& mt) -> result<void> {
    if (mt.hard_limit_kib.value_or(memory_unlimited_kib) > mt.swap_hard_limit_kib.value_or(memory_unlimited_kib))
      return fail(diag, errc::invalid_arg, "memory hard_limit tuning value must be less than or equal to swap_hard_limit");
    return {};
  };
  if (how->live) {
    const guest_cgroup& g = d->rt->cg;
    if (!g.has("memory")) co_return fail(diag, errc::operation_invalid, "cgroup memory controller is not mounted");
    memtune_def mt = d->def.memtune.value_or(memtune_def{});
    apply(mt);
    if (auto r = check(mt); !r) co_return r.error();
    using m = guest_cgroup::mem_limit;
    auto hard = mt.hard_limit_kib.value_or(memory_unlimited_kib), swap = mt.swap_hard_limit_kib.value_or(memory_unlimited_kib);
    // v1 keeps memory+swap at or above memory: raise the pair's upper one first, lower it last.
    auto now_swap = g.memory_limit(m::swap, diag);
    bool swap_first = now_swap && hard > *now_swap;
    if (swap_first)
      if (auto r = g.set_memory_limit(m::swap, swap, diag); !r) co_return r.error();
    if (auto r = g.set_memory_limit(m::hard, hard, diag); !r) co_return r.error();
    if (auto r = g.set_memory_limit(m::soft, mt.soft_limit_kib.value_or(memory_unlimited_kib), diag); !r) co_return r.error();
    if (!swap_first && g.has("memory"))
      if (auto r = g.set_memory_limit(m::swap, swap, diag); !r) co_return r.error();
    d->def.memtune = mt;
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    memtune_def mt = def.memtune.value_or(memtune_def{});
    apply(mt);
    if (auto r = check(mt); !r) co_return r.error();
    if (mt == memtune_def{}) def.memtune.reset();
    else def.memtune = mt;
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ blkiotune

namespace {

// "path,value,path,value" of one per-device field, as libvirt's blkio parameters carry them.
std::string device_list(const blkiotune_def& b, std::string_view field) {
  std::string out;
  for (auto& dev : b.devices) {
    std::optional<unsigned long long> v;
    if (field == "device_weight") {
      if (dev.weight) v = *dev.weight;
    } else if (field == "device_read_iops_sec") v = dev.read_iops_sec;
    else if (field == "device_write_iops_sec") v = dev.write_iops_sec;
    else if (field == "device_read_bytes_sec") v = dev.read_bytes_sec;
    else if (field == "device_write_bytes_sec") v = dev.write_bytes_sec;
    if (!v || !*v) continue;
    if (!out.empty()) out += ',';
    out += dev.path + "," + std::to_string(*v);
  }
  return out;
}

typed_params blkio_params(const blkiotune_def& b, unsigned weight) {
  typed_params out{{"weight", weight}};
  for (const char* f : {"device_weight", "device_read_iops_sec", "device_write_iops_sec", "device_read_bytes_sec",
                        "device_write_bytes_sec"})
    out.push_back({f, device_list(b, f)});
  return out;
}

// Parses "path,value,..." into the devices' field; a value of 0 removes it.
result<void> merge_devices(blkiotune_def& b, const typed_param& p, diagnostics& diag) {
  const std::string& s = std::get<std::string>(p.value);
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!s.empty()) parts.push_back(cur);
  if (parts.size() % 2)
    return fail(diag, errc::invalid_arg, "unable to parse blkio device '" + s + "' '" + p.field + "'");
  for (std::size_t i = 0; i < parts.size(); i += 2) {
    const std::string& path = parts[i];
    char* end = nullptr;
    unsigned long long v = std::strtoull(parts[i + 1].c_str(), &end, 10);
    if (path.empty() || parts[i + 1].empty() || *end || parts[i + 1][0] == '-')
      return fail(diag, errc::invalid_arg, "invalid value '" + parts[i + 1] + "' for parameter '" + p.field + "'");
    if (p.field == "device_weight" && v > 1000)
      return fail(diag, errc::invalid_arg, "device weight " + parts[i + 1] + " of '" + path + "' is out of range [100, 1000]");
    if (auto r = dev_numbers(path, diag); !r) return r.error();
    auto it = std::find_if(b.devices.begin(), b.devices.end(), [&](auto& d) { return d.path == path; });
    if (it == b.devices.end()) {
      b.devices.push_back({});
      it = std::prev(b.devices.end());
      it->path = path;
    }
    auto val = v ? std::optional<unsigned long long>(v) : std::nullopt;
    if (p.field == "device_weight") it->weight = v ? std::optional<unsigned>(static_cast<unsigned>(v)) : std::nullopt;
    else if (p.field == "device_read_iops_sec") it->read_iops_sec = val;
    else if (p.field == "device_write_iops_sec") it->write_iops_sec = val;
    else if (p.field == "device_read_bytes_sec") it->read_bytes_sec = val;
    else it->write_bytes_sec = val;
  }
  std::erase_if(b.devices, [](const blkiotune_def::device_t& d) {
    return !d.weight && !d.read_iops_sec && !d.write_iops_sec && !d.read_bytes_sec && !d.write_bytes_sec;
  });
  return {};
}

}  // namespace

op<typed_params> driver::get_blkio_parameters(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, true, diag);
  if (!how) co_return how.error();
  if (how->config) {
    blkiotune_def b = d->persistent_def().blkiotune.value_or(blkiotune_def{});
    co_return blkio_params(b, b.weight.value_or(0));
  }
  const guest_cgroup& g = d->rt->cg;
  if (!g.has("blkio")) co_return fail(diag, errc::operation_invalid, "blkio cgroup isn't mounted");
  auto w = g.io_weight(diag);
  if (!w) co_return w.error();
  co_return blkio_params(d->def.blkiotune.value_or(blkiotune_def{}), *w);
}

op<void> driver::set_blkio_parameters(const domain_key& key, const typed_params& params, unsigned flags,
                                      diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  if (auto r = check_fields(params, {{"weight", false}, {"device_weight", true}, {"device_read_iops_sec", true},
                                     {"device_write_iops_sec", true}, {"device_read_bytes_sec", true},
                                     {"device_write_bytes_sec", true}},
                            diag);
      !r)
    co_return r.error();
  for (auto& p : params)
    if (p.field == "weight")
      if (auto r = in_range(p, 100, 1000, diag); !r) co_return r.error();
  auto apply = [&](blkiotune_def& b) -> result<void> {
    for (auto& p : params) {
      if (p.field == "weight") b.weight = static_cast<unsigned>(*number_of(p));
      else if (auto r = merge_devices(b, p, diag); !r) return r;
    }
    return {};
  };
  if (how->live) {
    const guest_cgroup& g = d->rt->cg;
    if (!g.has("blkio")) co_return fail(diag, errc::operation_invalid, "blkio cgroup isn't mounted");
    blkiotune_def before = d->def.blkiotune.value_or(blkiotune_def{}), b = before;
    if (auto r = apply(b); !r) co_return r.error();
    using io = guest_cgroup::io_value;
    for (auto& p : params)
      if (p.field == "weight")
        if (auto r = g.set_io_weight(*b.weight, diag); !r) co_return r.error();
    // Every device either side of the change gets its values written (0 clears one).
    std::vector<std::string> paths;
    for (auto* set : {&before, &b})
      for (auto& dev : set->devices)
        if (std::find(paths.begin(), paths.end(), dev.path) == paths.end()) paths.push_back(dev.path);
    for (auto& path : paths) {
      auto now = std::find_if(b.devices.begin(), b.devices.end(), [&](auto& x) { return x.path == path; });
      blkiotune_def::device_t none;
      const auto& dv = now == b.devices.end() ? none : *now;
      auto mm = dev_numbers(path, diag);
      if (!mm) co_return mm.error();
      for (auto& p : params) {
        result<void> r;
        if (p.field == "device_weight") r = g.set_device_io(io::weight, *mm, dv.weight.value_or(0), diag);
        else if (p.field == "device_read_iops_sec") r = g.set_device_io(io::read_iops, *mm, dv.read_iops_sec.value_or(0), diag);
        else if (p.field == "device_write_iops_sec") r = g.set_device_io(io::write_iops, *mm, dv.write_iops_sec.value_or(0), diag);
        else if (p.field == "device_read_bytes_sec") r = g.set_device_io(io::read_bps, *mm, dv.read_bytes_sec.value_or(0), diag);
        else if (p.field == "device_write_bytes_sec") r = g.set_device_io(io::write_bps, *mm, dv.write_bytes_sec.value_or(0), diag);
        if (!r) co_return r.error();
      }
    }
    d->def.blkiotune = b;
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    blkiotune_def b = def.blkiotune.value_or(blkiotune_def{});
    if (auto r = apply(b); !r) co_return r.error();
    def.blkiotune = b;
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ numatune

namespace {
constexpr std::string_view numa_modes[] = {"strict", "preferred", "interleave", "restrictive"};
}

op<typed_params> driver::get_numa_parameters(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, true, diag);
  if (!how) co_return how.error();
  const domain_config& def = how->config ? d->persistent_def() : d->def;
  numatune_def n = def.numatune.value_or(numatune_def{});
  int mode = 0;
  for (int i = 0; i < 4; ++i)
    if (n.mode == numa_modes[i]) mode = i;
  std::string nodeset = n.nodeset;
  if (how->live && d->rt->cg.has("cpuset") && !nodeset.empty())
    if (auto m = d->rt->cg.mems("", diag)) nodeset = *m;
  co_return typed_params{{"numa_mode", mode}, {"numa_nodeset", nodeset}};
}

op<void> driver::set_numa_parameters(const domain_key& key, const typed_params& params, unsigned flags,
                                     diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  if (auto r = check_fields(params, {{"numa_mode", false}, {"numa_nodeset", true}}, diag); !r) co_return r.error();
  std::optional<std::string> mode, nodeset;
  for (auto& p : params) {
    if (p.field == "numa_mode") {
      auto v = *number_of(p);
      if (v < 0 || v > 3) co_return fail(diag, errc::invalid_arg, "unsupported numatune mode: '" + std::to_string(static_cast<long long>(v)) + "'");
      mode = std::string(numa_modes[static_cast<int>(v)]);
    } else {
      auto m = parse_bitmap(std::get<std::string>(p.value), 4096, diag);
      if (!m) co_return m.error();
      auto host = host_numa_nodes();
      for (unsigned node : *m)
        if (std::find(host.begin(), host.end(), node) == host.end())
          co_return fail(diag, errc::invalid_arg, "NUMA node " + std::to_string(node) + " is unavailable");
      nodeset = format_bitmap(*m);
    }
  }
  auto apply = [&](numatune_def& n) {
    n.has_memory = true;
    if (mode) n.mode = *mode;
    if (n.mode.empty()) n.mode = "strict";
    if (nodeset) n.nodeset = *nodeset;
  };
  if (how->live) {
    numatune_def n = d->def.numatune.value_or(numatune_def{});
    std::string was = n.mode.empty() ? "strict" : n.mode;
    if (mode && *mode != was) co_return fail(diag, errc::operation_invalid, "can't change numatune mode for running domain");
    if (was != "strict" && was != "restrictive")
      co_return fail(diag, errc::operation_invalid, "change of nodeset for running domain requires strict numa mode");
    if (!d->rt->cg.has("cpuset")) co_return fail(diag, errc::operation_invalid, "cgroup cpuset controller is not mounted");
    apply(n);
    if (nodeset)
      if (auto r = d->rt->cg.set_mems("", *nodeset, diag); !r) co_return r.error();
    d->def.numatune = n;
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    numatune_def n = def.numatune.value_or(numatune_def{});
    apply(n);
    def.numatune = n;
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

// ------------------------------------------------------------------ vcpupin, emulatorpin, vcpuinfo

namespace {
void set_vcpupin(domain_config& def, unsigned vcpu, const std::vector<unsigned>& cpus) {
  cputune_def t = def.cputune.value_or(cputune_def{});
  std::erase_if(t.vcpupins, [&](auto& p) { return p.vcpu == vcpu; });
  cputune_def::vcpupin_t p;
  p.vcpu = vcpu;
  p.cpuset = format_bitmap(cpus);
  auto at = std::find_if(t.vcpupins.begin(), t.vcpupins.end(), [&](auto& x) { return x.vcpu > vcpu; });
  t.vcpupins.insert(at, p);
  def.cputune = t;
}
}  // namespace

op<void> driver::pin_vcpu_flags(const domain_key& key, unsigned vcpu, std::string_view cpumap, unsigned flags,
                                diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  auto cpus = cpumap_members(cpumap, diag);
  if (!cpus) co_return cpus.error();
  auto check_vcpu = [&](const domain_config& def) -> result<void> {
    unsigned n = def.vcpu_current.value_or(def.vcpus ? def.vcpus : 1);
    if (vcpu >= n)
      return fail(diag, errc::invalid_arg, "vcpu " + std::to_string(vcpu) + " is out of range of live cpu count " +
                                               std::to_string(n));
    return {};
  };
  if (how->live) {
    if (auto r = check_vcpu(d->def); !r) co_return r.error();
    auto live_rt = d->rt;
    auto tids = co_await s->vcpu_threads(live_rt, diag);
    if (!tids) co_return s->command_failed(d, live_rt, tids.error(), diag);
    if (vcpu >= tids->size() || !(*tids)[vcpu])
      co_return fail(diag, errc::operation_invalid, "vCPU " + std::to_string(vcpu) + " has no thread");
    if (live_rt->cg.has("cpuset"))
      if (auto r = live_rt->cg.set_cpus("vcpu" + std::to_string(vcpu), format_bitmap(*cpus), diag); !r) co_return r.error();
    if (auto r = set_affinity((*tids)[vcpu], *cpus, diag); !r) co_return r.error();
    set_vcpupin(d->def, vcpu, *cpus);
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    if (auto r = check_vcpu(def); !r) co_return r.error();
    set_vcpupin(def, vcpu, *cpus);
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

op<std::vector<std::string>> driver::get_vcpu_pin_info(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  auto how = impact_of(**d, flags, true, diag);
  if (!how) co_return how.error();
  const domain_config& def = how->config ? (*d)->persistent_def() : (*d)->def;
  unsigned n = def.vcpu_current.value_or(def.vcpus ? def.vcpus : 1);
  std::vector<std::string> maps;
  for (unsigned i = 0; i < n; ++i) maps.push_back(members_map(vcpu_cpus(def, i)));
  co_return maps;
}

op<void> driver::pin_emulator(const domain_key& key, std::string_view cpumap, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto how = impact_of(*d, flags, false, diag);
  if (!how) co_return how.error();
  auto cpus = cpumap_members(cpumap, diag);
  if (!cpus) co_return cpus.error();
  auto set = [&](domain_config& def) {
    cputune_def t = def.cputune.value_or(cputune_def{});
    t.emulatorpin = format_bitmap(*cpus);
    def.cputune = t;
  };
  if (how->live) {
    auto live_rt = d->rt;
    auto tids = co_await s->vcpu_threads(live_rt, diag);
    if (!tids) co_return s->command_failed(d, live_rt, tids.error(), diag);
    if (live_rt->cg.has("cpuset"))
      if (auto r = live_rt->cg.set_cpus("emulator", format_bitmap(*cpus), diag); !r) co_return r.error();
    if (auto r = pin_emulator_threads(live_rt->proc.pid(), *tids, *cpus, diag); !r) co_return r.error();
    set(d->def);
    s->live_def_changed(d);
  }
  if (how->config) {
    domain_config def = d->persistent_def();
    set(def);
    if (auto w = co_await s->commit_definition(d, std::move(def), diag); !w) co_return w.error();
  }
  co_return result<void>{};
}

op<std::string> driver::get_emulator_pin_info(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  auto how = impact_of(**d, flags, true, diag);
  if (!how) co_return how.error();
  const domain_config& def = how->config ? (*d)->persistent_def() : (*d)->def;
  co_return members_map(emulator_cpus(def));
}

op<void> driver::pin_vcpu(const domain_key& key, unsigned vcpu, std::string_view cpumap, diagnostics& diag) {
  return pin_vcpu_flags(key, vcpu, cpumap, modify::live, diag);
}

op<std::vector<vcpu_info>> driver::get_vcpus(const domain_key& key, diagnostics& diag) {
  auto j = co_await state::begin_job(s_, key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  auto tids = co_await s->vcpu_threads(rt, diag);
  if (!tids) co_return s->command_failed(d, rt, tids.error(), diag);
  std::vector<vcpu_info> out;
  for (unsigned i = 0; i < tids->size(); ++i) {
    vcpu_info v;
    v.number = i;
    v.state = 1;  // VIR_VCPU_RUNNING, as libvirt reports every vCPU of a running guest
    pid_t tid = (*tids)[i];
    if (auto st = read_proc_stat(rt->proc.pid(), tid)) {
      v.cpu_time_ns = ticks_to_ns(st->utime + st->stime);
      v.cpu = st->cpu;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<unsigned> cpus;
    if (tid && ::sched_getaffinity(tid, sizeof set, &set) == 0) {
      for (unsigned c = 0; c < host_cpu_count() && c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    v.affinity = members_map(cpus);
    out.push_back(std::move(v));
  }
  co_return out;
}

}  // namespace covirt::qemu
