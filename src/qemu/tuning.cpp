// The QEMU driver: a guest's resource tuning at start. <cputune>, <memtune>, <blkiotune> and
// <numatune> (strict nodesets) go into the guest's cgroups (cgroup.hpp), <vcpu cpuset>,
// <vcpupin> and <emulatorpin> also into the threads' affinity, as libvirt's qemuProcessSetup*
// do. The memory backend (<memoryBacking>, <numatune> modes) is on the command line (argv.cpp).
// The live calls (schedinfo, memtune, ...) are in tuning_live.cpp.
#include "driver_state.hpp"

#include <boost/asio/post.hpp>

#include <fstream>

#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace covirt::qemu {

namespace impl {

unsigned host_cpu_count() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

std::vector<unsigned> host_numa_nodes() {
  std::string online = read_text("/sys/devices/system/node/online");
  while (!online.empty() && (online.back() == '\n' || online.back() == ' ')) online.pop_back();
  diagnostics ignore;
  auto r = parse_bitmap(online, 4096, ignore);
  if (!r || r->empty()) return {0};
  return *r;
}

result<std::vector<unsigned>> cpumap_members(std::string_view map, diagnostics& diag) {
  bool yn = !map.empty() && map.find_first_not_of("y-") == std::string_view::npos;
  std::vector<unsigned> out;
  if (yn) {
    for (std::size_t i = 0; i < map.size(); ++i)
      if (map[i] == 'y') out.push_back(static_cast<unsigned>(i));
  } else {
    auto r = parse_bitmap(map, 4096, diag);
    if (!r) return r.error();
    out = std::move(*r);
  }
  if (out.empty()) return fail(diag, errc::invalid_arg, "Empty cpu list for pinning");
  unsigned n = host_cpu_count();
  if (out.back() >= n)
    return fail(diag, errc::invalid_arg,
                "CPU " + std::to_string(out.back()) + " is not on this host (it has " + std::to_string(n) + " CPUs)");
  return out;
}

std::string members_map(const std::vector<unsigned>& cpus) {
  std::string m(host_cpu_count(), '-');
  for (unsigned c : cpus)
    if (c < m.size()) m[c] = 'y';
  return m;
}

namespace {

std::vector<unsigned> all_cpus() {
  std::vector<unsigned> v(host_cpu_count());
  for (unsigned i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

std::vector<unsigned> members_of(const std::string& list) {
  diagnostics ignore;
  auto r = parse_bitmap(list, 4096, ignore);
  return r ? *r : std::vector<unsigned>{};
}

result<void> check_cpuset(std::string_view what, const std::string& list, diagnostics& diag) {
  if (list.empty()) return {};
  auto m = members_of(list);
  unsigned n = host_cpu_count();
  if (m.empty()) return fail(diag, errc::invalid_arg, std::string(what) + " cpuset '" + list + "' is empty");
  if (m.back() >= n)
    return fail(diag, errc::invalid_arg,
                std::string(what) + " cpuset '" + list + "' names CPU " + std::to_string(m.back()) +
                    ", which this host lacks (it has " + std::to_string(n) + " CPUs: 0-" + std::to_string(n - 1) + ")");
  return {};
}

// /proc/meminfo's Hugepagesize, in KiB.
unsigned long long default_hugepage_kib() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Hugepagesize:", 0) == 0) return std::strtoull(line.c_str() + 13, nullptr, 10);
  return 0;
}

// The hugetlbfs mount serving pages of `kib` KiB (its pagesize= option, else the default size).
std::optional<std::string> hugetlbfs_for(unsigned long long kib) {
  unsigned long long dflt = default_hugepage_kib();
  std::ifstream in("/proc/mounts");
  std::string src, mnt, type, opts, a, b;
  while (in >> src >> mnt >> type >> opts >> a >> b) {
    if (type != "hugetlbfs") continue;
    unsigned long long size = dflt;
    auto p = opts.find("pagesize=");
    if (p != std::string::npos) {
      std::string v = opts.substr(p + 9, opts.find(',', p) - p - 9);
      unsigned long long n = std::strtoull(v.c_str(), nullptr, 10);
      char u = v.empty() ? 'K' : v.back();
      size = u == 'G' ? n << 20 : u == 'M' ? n << 10 : u == 'K' || u == 'k' ? n : n >> 10;
    }
    if (size == kib) return mnt;
  }
  return std::nullopt;
}

}  // namespace

std::vector<unsigned> vcpu_cpus(const domain_config& d, unsigned i) {
  if (d.cputune)
    for (auto& p : d.cputune->vcpupins)
      if (p.vcpu == i) return members_of(p.cpuset);
  if (!d.vcpu_cpuset.empty()) return members_of(d.vcpu_cpuset);
  return all_cpus();
}

std::vector<unsigned> emulator_cpus(const domain_config& d) {
  if (d.cputune && d.cputune->emulatorpin) return members_of(*d.cputune->emulatorpin);
  if (!d.vcpu_cpuset.empty()) return members_of(d.vcpu_cpuset);
  return all_cpus();
}

result<void> set_affinity(pid_t tid, const std::vector<unsigned>& cpus, diagnostics& diag) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c : cpus)
    if (c < CPU_SETSIZE) CPU_SET(c, &set);
  if (::sched_setaffinity(tid, sizeof set, &set) < 0)
    return fail(diag, errc::system_error, "cannot set CPU affinity on thread " + std::to_string(tid) + ": " +
                                              std::strerror(errno));
  return {};
}

std::vector<std::string_view> needed_controllers(const domain_config& d) {
  namespace c = cgroup_controllers;
  std::vector<std::string_view> need;
  if (d.cputune && (d.cputune->shares || d.cputune->period || d.cputune->quota || d.cputune->global_period ||
                    d.cputune->global_quota || d.cputune->emulator_period || d.cputune->emulator_quota))
    need.push_back(c::cpu);
  if (d.memtune && !(*d.memtune == memtune_def{})) need.push_back(c::memory);
  if (d.blkiotune && !(*d.blkiotune == blkiotune_def{})) need.push_back(c::blkio);
  if (d.numatune && d.numatune->has_memory && !d.numatune->nodeset.empty() &&
      (d.numatune->mode.empty() || d.numatune->mode == "strict" || d.numatune->mode == "restrictive"))
    need.push_back(c::cpuset);
  return need;
}

result<void> check_tuning(const domain_config& d, std::string* hugepage_dir, diagnostics& diag) {
  if (auto r = check_cpuset("<vcpu>", d.vcpu_cpuset, diag); !r) return r;
  unsigned vcpus = d.vcpus ? d.vcpus : 1;
  if (d.cputune) {
    const auto& t = *d.cputune;
    for (auto& p : t.vcpupins) {
      if (p.vcpu >= vcpus)
        return fail(diag, errc::invalid_arg, "<vcpupin vcpu='" + std::to_string(p.vcpu) + "'>: the domain has " +
                                                 std::to_string(vcpus) + " vCPUs");
      if (auto r = check_cpuset("<vcpupin>", p.cpuset, diag); !r) return r;
    }
    if (t.emulatorpin)
      if (auto r = check_cpuset("<emulatorpin>", *t.emulatorpin, diag); !r) return r;
    if (t.iothread_period || t.iothread_quota)
      return fail(diag, errc::config_unsupported, "<iothread_period>/<iothread_quota>: the domain has no <iothreads>");
    for (auto& e : t.extra)
      return fail(diag, errc::config_unsupported, "<cputune><" + e.name + "> is not supported by covirt's qemu driver");
  }
  if (d.memtune) {
    const auto& m = *d.memtune;
    if (m.min_guarantee_kib) return fail(diag, errc::config_unsupported, "Parameter 'min_guarantee' not supported by QEMU.");
    if (m.hard_limit_kib && m.swap_hard_limit_kib && *m.hard_limit_kib > *m.swap_hard_limit_kib)
      return fail(diag, errc::invalid_arg, "memory hard_limit tuning value must be less than or equal to swap_hard_limit");
  }
  if (d.blkiotune)
    for (auto& dev : d.blkiotune->devices) {
      struct stat sb {};
      if (::stat(dev.path.c_str(), &sb) < 0)
        return fail(diag, errc::invalid_arg, "<blkiotune> device '" + dev.path + "': " + std::strerror(errno));
      if (!S_ISBLK(sb.st_mode))
        return fail(diag, errc::invalid_arg, "<blkiotune> device '" + dev.path + "' must be a block device");
    }
  if (d.numatune) {
    const auto& n = *d.numatune;
    if (n.placement == "auto") return fail(diag, errc::config_unsupported, "<numatune> placement='auto' (needs numad)");
    if (!n.memnodes.empty())
      return fail(diag, errc::config_unsupported, "<numatune><memnode> (needs guest NUMA cells in <cpu><numa>)");
    auto host = host_numa_nodes();
    for (unsigned node : members_of(n.nodeset))
      if (std::find(host.begin(), host.end(), node) == host.end())
        return fail(diag, errc::invalid_arg, "NUMA node " + std::to_string(node) + " is unavailable");
  }
  if (d.memory_backing && d.memory_backing->hugepages) {
    const auto& mb = *d.memory_backing;
    unsigned long long size = default_hugepage_kib();
    if (mb.pages.size() > 1)
      return fail(diag, errc::config_unsupported, "<hugepages> with more than one <page> (needs guest NUMA cells)");
    if (!mb.pages.empty()) {
      if (!mb.pages[0].nodeset.empty())
        return fail(diag, errc::config_unsupported, "<page nodeset=...> (needs guest NUMA cells)");
      size = mb.pages[0].size_kib;
    }
    std::error_code ec;
    if (!fs::exists("/sys/kernel/mm/hugepages/hugepages-" + std::to_string(size) + "kB", ec))
      return fail(diag, errc::config_unsupported,
                  "hugepage size " + std::to_string(size) + " KiB is not supported by this host");
    auto mnt = hugetlbfs_for(size);
    if (!mnt)
      return fail(diag, errc::config_unsupported,
                  "Unable to find any usable hugetlbfs mount for " + std::to_string(size) + " KiB");
    if (d.memory_kib % size)
      return fail(diag, errc::config_unsupported, "<memory> (" + std::to_string(d.memory_kib) +
                                                      " KiB) is not a multiple of the hugepage size (" +
                                                      std::to_string(size) + " KiB)");
    if (hugepage_dir) *hugepage_dir = *mnt;
  }
  return {};
}

}  // namespace impl

result<void> impl::pin_emulator_threads(pid_t pid, const std::vector<pid_t>& vcpus, const std::vector<unsigned>& cpus,
                                        diagnostics& diag) {
  std::error_code ec;
  for (auto& ent : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    pid_t tid = static_cast<pid_t>(std::atoi(ent.path().filename().c_str()));
    if (std::find(vcpus.begin(), vcpus.end(), tid) != vcpus.end()) continue;
    if (auto r = set_affinity(tid, cpus, diag); !r) return r;
  }
  return {};
}

asio::awaitable<result<std::vector<pid_t>>> driver::state::vcpu_threads(std::shared_ptr<runtime> rt,
                                                                        diagnostics& diag) {
  if (!rt->vcpu_tids.empty()) co_return rt->vcpu_tids;
  std::string cmd = "query-cpus-fast";
  auto r = co_await call(rt, cmd, {}, diag, 10s);
  if (!r) co_return r.error();
  std::vector<pid_t> tids;
  if (r->is_array())
    for (auto& e : r->as_array()) {
      if (!e.is_object()) continue;
      auto* idx = e.as_object().if_contains("cpu-index");
      auto* tid = e.as_object().if_contains("thread-id");
      if (!idx || !tid || !idx->is_int64() || !tid->is_int64()) continue;
      auto i = static_cast<std::size_t>(idx->as_int64());
      if (i > 4096) continue;
      if (tids.size() <= i) tids.resize(i + 1, 0);
      tids[i] = static_cast<pid_t>(tid->as_int64());
    }
  if (tids.empty()) co_return fail(diag, errc::internal_error, "query-cpus-fast gave no vCPU threads");
  rt->vcpu_tids = tids;
  co_return tids;
}

asio::awaitable<result<void>> driver::state::apply_tuning(dom_ptr d, std::shared_ptr<runtime> rt, diagnostics& diag) {
  const domain_config& def = d->def;
  auto need = needed_controllers(def);
  unsigned vcpus = def.vcpus ? def.vcpus : 1;
  auto cg = guest_cgroup::create(cgroups, dirs.cgroup_root, def.name, vcpus, need, diag);
  if (!cg) co_return cg.error();
  rt->cg = std::move(*cg);
  const guest_cgroup& g = rt->cg;
  if (!g.empty())
    if (auto r = rt->cg.add_process(rt->proc.pid(), diag); !r) co_return r.error();
  // The vCPU threads: needed for per-vCPU bandwidth and pinning; otherwise a QEMU that cannot
  // tell them (a stand-in) leaves them with the emulator's.
  const bool per_vcpu = !def.vcpu_cpuset.empty() ||
                        (def.cputune && (def.cputune->period || def.cputune->quota || !def.cputune->vcpupins.empty()));
  diagnostics tdiag;
  auto tids = co_await vcpu_threads(rt, tdiag);
  if (!tids && per_vcpu) {
    diag.assign(std::string(tdiag.message()));
    co_return tids.error();
  }
  if (!tids) tids = std::vector<pid_t>{};
  for (unsigned i = 0; i < tids->size(); ++i)
    if ((*tids)[i] && !g.empty())
      if (auto r = rt->cg.add_vcpu_thread(i, (*tids)[i], diag); !r) co_return r.error();

  if (def.cputune) {
    const auto& t = *def.cputune;
    if (t.shares)
      if (auto r = g.set_shares(*t.shares, diag); !r) co_return r.error();
    if (t.global_period || t.global_quota)
      if (auto r = g.set_bandwidth("", t.global_period, t.global_quota, diag); !r) co_return r.error();
    if (t.period || t.quota)
      for (unsigned i = 0; i < vcpus; ++i)
        if (auto r = g.set_bandwidth("vcpu" + std::to_string(i), t.period, t.quota, diag); !r) co_return r.error();
    if (t.emulator_period || t.emulator_quota)
      if (auto r = g.set_bandwidth("emulator", t.emulator_period, t.emulator_quota, diag); !r) co_return r.error();
  }
  if (def.memtune) {
    using m = guest_cgroup::mem_limit;
    const auto& mt = *def.memtune;
    // v1 keeps memory+swap at or above memory: the limits start unlimited, so memory goes first.
    if (mt.hard_limit_kib)
      if (auto r = g.set_memory_limit(m::hard, *mt.hard_limit_kib, diag); !r) co_return r.error();
    if (mt.soft_limit_kib)
      if (auto r = g.set_memory_limit(m::soft, *mt.soft_limit_kib, diag); !r) co_return r.error();
    if (mt.swap_hard_limit_kib)
      if (auto r = g.set_memory_limit(m::swap, *mt.swap_hard_limit_kib, diag); !r) co_return r.error();
  }
  if (def.blkiotune) {
    using io = guest_cgroup::io_value;
    const auto& b = *def.blkiotune;
    if (b.weight)
      if (auto r = g.set_io_weight(*b.weight, diag); !r) co_return r.error();
    for (auto& dev : b.devices) {
      struct stat sb {};
      if (::stat(dev.path.c_str(), &sb) < 0 || !S_ISBLK(sb.st_mode))
        co_return fail(diag, errc::invalid_arg, "<blkiotune> device '" + dev.path + "' must be a block device");
      std::string mm = std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev));
      std::pair<io, const std::optional<unsigned long long>*> vals[] = {
          {io::read_bps, &dev.read_bytes_sec}, {io::write_bps, &dev.write_bytes_sec},
          {io::read_iops, &dev.read_iops_sec}, {io::write_iops, &dev.write_iops_sec}};
      if (dev.weight)
        if (auto r = g.set_device_io(io::weight, mm, *dev.weight, diag); !r) co_return r.error();
      for (auto& [k, v] : vals)
        if (*v)
          if (auto r = g.set_device_io(k, mm, **v, diag); !r) co_return r.error();
    }
  }
  if (def.numatune && g.has("cpuset") && !def.numatune->nodeset.empty() &&
      (def.numatune->mode.empty() || def.numatune->mode == "strict" || def.numatune->mode == "restrictive"))
    if (auto r = g.set_mems("", def.numatune->nodeset, diag); !r) co_return r.error();

  // Affinity: the cpuset of each child where there is one, and the threads themselves.
  auto emu = emulator_cpus(def);
  if (g.has("cpuset") && (!def.vcpu_cpuset.empty() || (def.cputune && def.cputune->emulatorpin)))
    if (auto r = g.set_cpus("emulator", format_bitmap(emu), diag); !r) co_return r.error();
  if (auto r = pin_emulator_threads(rt->proc.pid(), *tids, emu, diag); !r) co_return r.error();
  for (unsigned i = 0; i < tids->size(); ++i) {
    if (!(*tids)[i]) continue;
    auto cpus = vcpu_cpus(def, i);
    bool pinned = !def.vcpu_cpuset.empty() ||
                  (def.cputune && std::any_of(def.cputune->vcpupins.begin(), def.cputune->vcpupins.end(),
                                              [&](const cputune_def::vcpupin_t& p) { return p.vcpu == i; }));
    if (pinned && g.has("cpuset"))
      if (auto r = g.set_cpus("vcpu" + std::to_string(i), format_bitmap(cpus), diag); !r) co_return r.error();
    if (auto r = set_affinity((*tids)[i], cpus, diag); !r) co_return r.error();
  }
  co_return result<void>{};
}

void driver::state::remove_cgroup(const std::shared_ptr<runtime>& rt) {
  if (rt->cg.empty() || rt->cg.remove()) return;
  // The exit is seen before the kernel has let go of every thread: try again for a while.
  auto timer = std::make_shared<asio::steady_timer>(ex);
  auto tries = std::make_shared<int>(0);
  auto again = std::make_shared<std::function<void()>>();
  *again = [rt, timer, tries, again] {
    timer->expires_after(20ms);
    timer->async_wait([rt, timer, tries, again](error_code ec) {
      if (ec || rt->cg.remove() || ++*tries >= 100) {
        *again = nullptr;  // ends the cycle of shared pointers
        return;
      }
      (*again)();
    });
  };
  (*again)();
}

void driver::state::live_def_changed(const dom_ptr& d) {
  if (!d->rt) return;
  domain_format_options fo;
  fo.id = d->id;
  d->rt->rec.live_xml = format_domain_xml(d->def, fo);
  persist(*d);
}

}  // namespace covirt::qemu
