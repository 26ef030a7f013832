// The QEMU driver's statistics for monitoring agents, with libvirt 9.0's QEMU driver's field
// names, types and order: virConnectGetAllDomainStats (qemuConnectGetAllDomainStats: the groups
// state, cpu-total, balloon, vcpu, interface, block, dirtyrate, and perf, iothread, memory and
// vm, which stay empty for the guests this driver runs: no perf events, IOThreads or resctrl
// groups, and QEMU has no TCG statistics), virDomainMemoryStats, virDomainInterfaceStats and
// virDomainGetBlockInfo.
//
// Where the figures come from: the kernel for what it counts (/proc for the process and its vCPU
// threads, or the guest's cpuacct group; /sys/class/net for a tap, whose rx is the guest's tx),
// the image files for sizes, and QEMU for the rest (query-blockstats, the balloon's guest-stats,
// query-dirty-rate). The QMP commands of one domain are sent together and the domains of one
// call are asked concurrently, so a call over many guests costs about one round trip. No call
// takes the domain's job: statistics come while a save or a migration runs, as libvirt's query
// jobs do.
#include "driver_state.hpp"
#include "../common/domain_stats.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/endian/conversion.hpp>

#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>

namespace covirt::qemu {

using namespace boost::asio::experimental::awaitable_operators;

namespace impl {

std::optional<proc_stat> read_proc_stat(pid_t pid, pid_t tid) {
  std::string path = "/proc/" + std::to_string(pid) + (tid ? "/task/" + std::to_string(tid) : std::string()) + "/stat";
  std::string text = read_text(path);
  // The command name (field 2) is in parentheses and may hold spaces: fields count from after it.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return std::nullopt;
  std::vector<std::string_view> f;
  std::string_view rest(text);
  rest.remove_prefix(close + 2);
  while (!rest.empty()) {
    auto sp = rest.find(' ');
    f.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  // f[0] is field 3 (state): utime is field 14, stime 15, rss 24, processor 39.
  if (f.size() < 37) return std::nullopt;
  auto num = [&](std::size_t i) { return std::strtoull(std::string(f[i]).c_str(), nullptr, 10); };
  proc_stat s;
  s.utime = num(11);
  s.stime = num(12);
  s.rss_pages = num(21);
  s.cpu = static_cast<int>(std::strtol(std::string(f[36]).c_str(), nullptr, 10));
  return s;
}

unsigned long long ticks_to_ns(unsigned long long ticks) {
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return hz > 0 ? ticks * (1000000000ULL / static_cast<unsigned long long>(hz)) : 0;
}

}  // namespace impl

namespace {

namespace t = memory_stat_tag;
constexpr unsigned qemu_stats_groups = stats_types::state | stats_types::cpu_total | stats_types::balloon |
                                       stats_types::vcpu | stats_types::interface | stats_types::block |
                                       stats_types::perf | stats_types::iothread | stats_types::memory |
                                       stats_types::dirtyrate | stats_types::vm;

failure unsupported_flags(unsigned bad, const char* function, diagnostics& diag) {
  char text[160];
  std::snprintf(text, sizeof text, "unsupported flags (0x%x) in function %s", bad, function);
  return fail(diag, errc::invalid_arg, text);
}

/// A running domain, looked up without its job.
struct running_dom {
  dom_ptr d;
  std::shared_ptr<runtime> rt;
};
result<running_dom> get_running(driver::state& s, const domain_key& key, diagnostics& diag) {
  auto r = s.get(key, diag);
  if (!r) return failure(r.error());
  dom_ptr d = *r;
  if (!d->active() || !d->rt || !d->rt->mon.is_open()) return fail(diag, errc::operation_invalid, "domain is not running");
  return running_dom{d, d->rt};
}

// ------------------------------------------------------------------ files

/// A disk's image, as virDomainGetBlockInfo reads a file: its guest-visible size (a qcow2's
/// virtual size from its header, else the file's or the block device's size), what it takes on
/// the host and how long the file is.
struct image_sizes {
  std::uint64_t capacity = 0, allocation = 0, physical = 0;
};
result<image_sizes> read_image(const std::string& path, std::string_view format, diagnostics& diag) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(diag, errc::operation_failed, "cannot open " + q(path) + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  image_sizes z;
  z.allocation = static_cast<std::uint64_t>(st.st_blocks) * 512;
  z.physical = static_cast<std::uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    z.physical = z.allocation = end > 0 ? static_cast<std::uint64_t>(end) : 0;
  }
  z.capacity = z.physical;
  unsigned char head[32] = {};
  bool qcow2 = ::pread(fd, head, sizeof head, 0) == static_cast<ssize_t>(sizeof head) &&
               std::memcmp(head, "QFI\xfb", 4) == 0;
  ::close(fd);
  if (qcow2 && format != "raw") {
    std::uint64_t size = 0;
    std::memcpy(&size, head + 24, sizeof size);
    z.capacity = boost::endian::big_to_native(size);
  }
  return z;
}

/// virDomainDiskByName: a disk by its target or its source's path.
const disk_def* disk_by_name(const domain_config& def, std::string_view name) {
  for (const auto& d : def.devices.disks)
    if (d.target_dev == name) return &d;
  for (const auto& d : def.devices.disks)
    if (d.source && ((!d.source->file.empty() && d.source->file == name) || (!d.source->dev.empty() && d.source->dev == name)))
      return &d;
  return nullptr;
}

std::string disk_path(const disk_def& d) {
  if (!d.source) return {};
  if (!d.source->file.empty()) return d.source->file;
  return d.source->dev;
}

/// /sys/class/net/IF/statistics, turned around: what the tap receives, the guest sent.
result<covirt::interface_stats> tap_stats(const std::string& ifname, diagnostics& diag) {
  fs::path dir = fs::path("/sys/class/net") / ifname / "statistics";
  std::error_code ec;
  if (ifname.find('/') != std::string::npos || !fs::is_directory(dir, ec))
    return fail(diag, errc::operation_failed, "interface " + q(ifname) + " is not on this host");
  auto num = [&](const char* f) -> std::int64_t {
    std::string v = read_text(dir / f);
    return v.empty() ? -1 : static_cast<std::int64_t>(std::strtoll(v.c_str(), nullptr, 10));
  };
  covirt::interface_stats s;
  s.rx_bytes = num("tx_bytes");
  s.rx_packets = num("tx_packets");
  s.rx_errs = num("tx_errors");
  s.rx_drop = num("tx_dropped");
  s.tx_bytes = num("rx_bytes");
  s.tx_packets = num("rx_packets");
  s.tx_errs = num("rx_errors");
  s.tx_drop = num("rx_dropped");
  return s;
}

/// The host tap of an interface, when it has one: an ethernet interface's target.
std::optional<std::string> tap_of(const interface_def& n) {
  if (n.type == "ethernet" && n.target_dev) return *n.target_dev;
  return std::nullopt;
}

/// The guest's CPU time: its cpuacct group's figures when it has one, else its process's.
struct cpu_times {
  unsigned long long total = 0, user = 0, system = 0;
};
std::optional<cpu_times> guest_cpu(const runtime& rt) {
  diagnostics ignore;
  if (rt.cg.has(cgroup_controllers::cpuacct) && rt.cg.version() == 1) {
    auto usage = rt.cg.read(cgroup_controllers::cpuacct, {}, "cpuacct.usage", ignore);
    auto stat = rt.cg.read(cgroup_controllers::cpuacct, {}, "cpuacct.stat", ignore);
    if (usage && stat) {
      cpu_times c;
      c.total = std::strtoull(usage->c_str(), nullptr, 10);
      std::istringstream in(*stat);
      for (std::string k; in >> k;) {
        unsigned long long v = 0;
        in >> v;
        if (k == "user") c.user = ticks_to_ns(v);
        else if (k == "system") c.system = ticks_to_ns(v);
      }
      return c;
    }
  }
  if (rt.cg.has(cgroup_controllers::cpu) && rt.cg.version() == 2) {
    if (auto stat = rt.cg.read(cgroup_controllers::cpu, {}, "cpu.stat", ignore)) {
      cpu_times c;
      std::istringstream in(*stat);
      for (std::string k; in >> k;) {
        unsigned long long v = 0;
        in >> v;
        if (k == "usage_usec") c.total = v * 1000;
        else if (k == "user_usec") c.user = v * 1000;
        else if (k == "system_usec") c.system = v * 1000;
      }
      return c;
    }
  }
  auto p = read_proc_stat(rt.proc.pid());
  if (!p) return std::nullopt;
  return cpu_times{ticks_to_ns(p->utime + p->stime), ticks_to_ns(p->utime), ticks_to_ns(p->stime)};
}

/// A vCPU thread's run-queue wait (/proc/.../sched's wait_sum, zero unless the kernel keeps
/// schedstats) and delay (schedstat's second figure), in ns.
std::pair<unsigned long long, unsigned long long> vcpu_waits(pid_t pid, pid_t tid) {
  std::string base = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid);
  unsigned long long wait = 0, delay = 0;
  std::istringstream sched(read_text(base + "/sched"));
  for (std::string line; std::getline(sched, line);) {
    if (!line.starts_with("se.statistics.wait_sum") && !line.starts_with("se.wait_sum")) continue;
    auto colon = line.find(':');
    if (colon != std::string::npos) wait = static_cast<unsigned long long>(std::strtod(line.c_str() + colon + 1, nullptr) * 1e6);
  }
  std::istringstream ss(read_text(base + "/schedstat"));
  unsigned long long run = 0;
  ss >> run >> delay;
  return {wait, delay};
}

bool runs_under_kvm(pid_t pid) {
  std::string cmd = read_text("/proc/" + std::to_string(pid) + "/cmdline");
  return cmd.find(std::string("-accel\0kvm", 10)) != std::string::npos;
}

// ------------------------------------------------------------------ QMP

/// The balloon's figures as virDomainMemoryStats orders them (libvirt's
/// qemuMonitorJSONGetMemoryStats, then the process's RSS), from QEMU's guest-stats (values the
/// guest did not give are -1 there, as an unsigned 64-bit number, and left out here).
std::vector<memory_stat> memory_stats_of(const domain_config& def, const runtime& rt, const json::value* guest) {
  std::vector<memory_stat> out;
  if (has_balloon(def)) {
    out.push_back({t::actual_balloon, rt.balloon_kib.value_or(def.current_memory_kib ? def.current_memory_kib : def.memory_kib)});
    const json::object* stats = nullptr;
    const json::value* last = nullptr;
    if (guest && guest->is_object()) {
      if (auto* s = guest->as_object().if_contains("stats"); s && s->is_object()) stats = &s->as_object();
      last = guest->as_object().if_contains("last-update");
    }
    struct field {
      const char* name;
      int tag;
      std::uint64_t divisor;
    };
    static constexpr field fields[] = {{"stat-swap-in", t::swap_in, 1},           {"stat-swap-out", t::swap_out, 1},
                                       {"stat-major-faults", t::major_fault, 1},  {"stat-minor-faults", t::minor_fault, 1},
                                       {"stat-free-memory", t::unused, 1024},     {"stat-total-memory", t::available, 1024},
                                       {"stat-available-memory", t::usable, 1024}, {nullptr, t::last_update, 1},
                                       {"stat-disk-caches", t::disk_caches, 1024}, {"stat-htlb-pgalloc", t::hugetlb_pgalloc, 1},
                                       {"stat-htlb-pgfail", t::hugetlb_pgfail, 1}};
    for (const auto& f : fields) {
      const json::value* v = f.name ? (stats ? stats->if_contains(f.name) : nullptr) : last;
      if (!v) continue;
      // QEMU prints a figure the guest has not given as -1 in an unsigned 64-bit field.
      if (v->is_uint64() && v->as_uint64() != UINT64_MAX) out.push_back({f.tag, v->as_uint64() / f.divisor});
      else if (v->is_int64() && v->as_int64() >= 0) out.push_back({f.tag, static_cast<std::uint64_t>(v->as_int64()) / f.divisor});
    }
  }
  if (auto p = read_proc_stat(rt.proc.pid()))
    out.push_back({t::rss, p->rss_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) / 1024});
  return out;
}

/// What one domain's record needs from QEMU, asked together.
struct qemu_answers {
  std::optional<json::value> guest_stats, blockstats, dirty_rate, halt_poll;
};

asio::awaitable<qemu_answers> ask_qemu(std::shared_ptr<driver::state> s, std::shared_ptr<runtime> rt, bool balloon,
                                       unsigned groups, bool kvm) {
  qemu_answers a;
  // Each question is its own coroutine (its own diagnostics): an error leaves that part out of
  // the record, as libvirt leaves out what it could not get.
  auto ask = [s, rt](std::string cmd, json::object args, bool wanted) -> asio::awaitable<std::optional<json::value>> {
    if (!wanted) co_return std::nullopt;
    diagnostics diag;
    auto r = co_await s->call(rt, std::move(cmd), std::move(args), diag, 5s);
    if (!r) co_return std::nullopt;
    co_return std::move(*r);
  };
  json::object qom{{"path", "/machine/peripheral/balloon0"}, {"property", "guest-stats"}};
  json::object kvm_provider;
  kvm_provider["provider"] = "kvm";
  json::array providers;
  providers.push_back(std::move(kvm_provider));
  json::object halt;
  halt["target"] = "vcpu";
  halt["providers"] = std::move(providers);
  auto q1 = ask("qom-get", std::move(qom), balloon && (groups & stats_types::balloon));
  auto q2 = ask("query-blockstats", {}, (groups & stats_types::block) != 0);
  auto q3 = ask("query-dirty-rate", {}, (groups & stats_types::dirtyrate) != 0);
  auto q4 = ask("query-stats", std::move(halt), kvm && (groups & stats_types::cpu_total));
  auto [r1, r2, r3, r4] = co_await (std::move(q1) && std::move(q2) && std::move(q3) && std::move(q4));
  a.guest_stats = std::move(r1);
  a.blockstats = std::move(r2);
  a.dirty_rate = std::move(r3);
  a.halt_poll = std::move(r4);
  co_return a;
}

void add_u(typed_params& p, std::string f, unsigned v) { p.push_back({std::move(f), v}); }
void add_ull(typed_params& p, std::string f, unsigned long long v) { p.push_back({std::move(f), v}); }
void add_s(typed_params& p, std::string f, std::string v) { p.push_back({std::move(f), std::move(v)}); }

unsigned long long json_ull(const json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() > 0) return static_cast<unsigned long long>(v->as_int64());
  return 0;
}

/// The block group: per disk its name and path, QEMU's counters (by the disk's node name), the
/// highest offset written, and the image's sizes.
void add_block(typed_params& p, const domain_config& def, const runtime* rt, const json::value* blockstats) {
  const auto& disks = def.devices.disks;
  add_u(p, "block.count", static_cast<unsigned>(disks.size()));
  for (std::size_t i = 0; i < disks.size(); ++i) {
    const disk_def& dk = disks[i];
    std::string pre = "block." + std::to_string(i) + ".";
    add_s(p, pre + "name", dk.target_dev);
    std::string path = disk_path(dk);
    if (!path.empty()) add_s(p, pre + "path", path);
    if (rt) {
      std::string node;
      if (auto it = rt->rec.extra.find("node:" + dk.target_dev); it != rt->rec.extra.end()) node = it->second;
      // libvirt's backingIndex is the image's index in its chain: the N of libvirt-N-format.
      if (!path.empty() && node.starts_with("libvirt-"))
        add_u(p, pre + "backingIndex", static_cast<unsigned>(std::strtoul(node.c_str() + 8, nullptr, 10)));
      const json::object* st = nullptr;
      if (blockstats && blockstats->is_array() && !path.empty())
        for (const auto& e : blockstats->as_array()) {
          if (!e.is_object()) continue;
          auto* nn = e.as_object().if_contains("node-name");
          if (nn && nn->is_string() && nn->as_string() == node) {
            if (auto* s = e.as_object().if_contains("stats"); s && s->is_object()) st = &s->as_object();
            break;
          }
        }
      // A drive without a medium has had no I/O: QEMU counts zeros for it, and so do we.
      static const json::object none;
      const json::object& o = st ? *st : none;
      if (st || path.empty()) {
        add_ull(p, pre + "rd.reqs", json_ull(o, "rd_operations"));
        add_ull(p, pre + "rd.bytes", json_ull(o, "rd_bytes"));
        add_ull(p, pre + "rd.times", json_ull(o, "rd_total_time_ns"));
        add_ull(p, pre + "wr.reqs", json_ull(o, "wr_operations"));
        add_ull(p, pre + "wr.bytes", json_ull(o, "wr_bytes"));
        add_ull(p, pre + "wr.times", json_ull(o, "wr_total_time_ns"));
        add_ull(p, pre + "fl.reqs", json_ull(o, "flush_operations"));
        add_ull(p, pre + "fl.times", json_ull(o, "flush_total_time_ns"));
      }
      if (path.empty()) continue;
      diagnostics ignore;
      auto z = read_image(path, dk.driver ? std::string_view(dk.driver->type) : std::string_view(), ignore);
      add_ull(p, pre + "allocation", json_ull(o, "wr_highest_offset"));
      if (z) {
        add_ull(p, pre + "capacity", z->capacity);
        add_ull(p, pre + "physical", z->allocation);
      }
    } else if (!path.empty()) {
      // Shut off: the files alone (libvirt's qemuStorageLimitsRefresh).
      diagnostics ignore;
      if (auto z = read_image(path, dk.driver ? std::string_view(dk.driver->type) : std::string_view(), ignore)) {
        add_ull(p, pre + "allocation", z->allocation);
        add_ull(p, pre + "capacity", z->capacity);
        add_ull(p, pre + "physical", z->physical);
      }
    }
  }
}

/// One domain's record: the groups asked, from what it has.
asio::awaitable<domain_stats> one_record(std::shared_ptr<driver::state> s, dom_ptr d, unsigned groups) {
  domain_stats rec{d->ref(), {}};
  auto& p = rec.params;
  if (groups & stats_types::state) covirt::detail::add_state_stats(p, d->state, d->reason);
  std::shared_ptr<runtime> rt = d->active() && d->rt && d->rt->mon.is_open() ? d->rt : nullptr;
  const domain_config& def = d->def;
  qemu_answers qa;
  bool kvm = rt && runs_under_kvm(rt->proc.pid());
  if (rt) qa = co_await ask_qemu(s, rt, has_balloon(def), groups, kvm);
  if (rt && (groups & stats_types::vcpu) && rt->vcpu_tids.empty()) {
    diagnostics ignore;  // asked once per run (apply_tuning asks at start); without it, no per-vCPU fields
    co_await s->vcpu_threads(rt, ignore);
  }
  if ((groups & stats_types::cpu_total) && rt) {
    if (auto c = guest_cpu(*rt)) {
      add_ull(p, "cpu.time", c->total);
      add_ull(p, "cpu.user", c->user);
      add_ull(p, "cpu.system", c->system);
    }
    add_u(p, "cpu.cache.monitor.count", 0);  // no resctrl monitors: covirt makes none
    // Halt polling is KVM's: under TCG no time is spent in it (libvirt reads QEMU's empty
    // query-stats as zeros too); under KVM the vCPUs' counters are summed.
    unsigned long long success = 0, failed = 0;
    if (qa.halt_poll && qa.halt_poll->is_array())
      for (const auto& prov : qa.halt_poll->as_array()) {
        auto* stats = prov.is_object() ? prov.as_object().if_contains("stats") : nullptr;
        if (!stats || !stats->is_array()) continue;
        for (const auto& st : stats->as_array()) {
          if (!st.is_object()) continue;
          auto* n = st.as_object().if_contains("name");
          if (!n || !n->is_string()) continue;
          if (n->as_string() == "halt_poll_success_ns") success += json_ull(st.as_object(), "value");
          else if (n->as_string() == "halt_poll_fail_ns") failed += json_ull(st.as_object(), "value");
        }
      }
    add_ull(p, "cpu.haltpoll.success.time", success);
    add_ull(p, "cpu.haltpoll.fail.time", failed);
  }
  if (groups & stats_types::balloon) {
    std::uint64_t cur = def.current_memory_kib ? def.current_memory_kib : def.memory_kib;
    if (rt && rt->balloon_kib) cur = *rt->balloon_kib;
    add_ull(p, "balloon.current", cur);
    add_ull(p, "balloon.maximum", def.memory_kib);
    if (rt) {
      static constexpr std::pair<int, const char*> names[] = {
          {t::swap_in, "swap_in"},         {t::swap_out, "swap_out"},       {t::major_fault, "major_fault"},
          {t::minor_fault, "minor_fault"}, {t::unused, "unused"},           {t::available, "available"},
          {t::rss, "rss"},                 {t::last_update, "last-update"}, {t::usable, "usable"},
          {t::disk_caches, "disk_caches"}, {t::hugetlb_pgalloc, "hugetlb_pgalloc"}, {t::hugetlb_pgfail, "hugetlb_pgfail"}};
      for (const auto& m : memory_stats_of(def, *rt, qa.guest_stats ? &*qa.guest_stats : nullptr))
        for (auto [tag, name] : names)
          if (tag == m.tag) add_ull(p, std::string("balloon.") + name, m.value);
    }
  }
  if (groups & stats_types::vcpu) {
    add_u(p, "vcpu.current", def.vcpu_current.value_or(def.vcpus));
    add_u(p, "vcpu.maximum", def.vcpus);
    if (rt) {
      for (std::size_t i = 0; i < rt->vcpu_tids.size(); ++i) {
        std::string pre = "vcpu." + std::to_string(i) + ".";
        pid_t tid = rt->vcpu_tids[i];
        p.push_back({pre + "state", 1});  // VIR_VCPU_RUNNING, as libvirt says of every vCPU of a live guest
        auto st = read_proc_stat(rt->proc.pid(), tid);
        add_ull(p, pre + "time", st ? ticks_to_ns(st->utime + st->stime) : 0);
        auto [wait, delay] = vcpu_waits(rt->proc.pid(), tid);
        add_ull(p, pre + "wait", wait);
        add_ull(p, pre + "delay", delay);
      }
    }
  }
  if ((groups & stats_types::interface) && rt) {
    const auto& nets = def.devices.interfaces;
    add_u(p, "net.count", static_cast<unsigned>(nets.size()));
    for (std::size_t i = 0; i < nets.size(); ++i) {
      auto tap = tap_of(nets[i]);
      if (!tap) continue;  // no host device to count on (user networking): libvirt skips it too
      std::string pre = "net." + std::to_string(i) + ".";
      add_s(p, pre + "name", *tap);
      diagnostics ignore;
      auto st = tap_stats(*tap, ignore);
      if (!st) continue;
      const std::pair<const char*, std::int64_t> f[] = {
          {"rx.bytes", st->rx_bytes}, {"rx.pkts", st->rx_packets}, {"rx.errs", st->rx_errs}, {"rx.drop", st->rx_drop},
          {"tx.bytes", st->tx_bytes}, {"tx.pkts", st->tx_packets}, {"tx.errs", st->tx_errs}, {"tx.drop", st->tx_drop}};
      for (auto [name, v] : f)
        if (v >= 0) add_ull(p, pre + name, static_cast<unsigned long long>(v));
    }
  }
  if (groups & stats_types::block) add_block(p, def, rt.get(), qa.blockstats ? &*qa.blockstats : nullptr);
  if ((groups & stats_types::dirtyrate) && rt && qa.dirty_rate && qa.dirty_rate->is_object()) {
    // query-dirty-rate's status as libvirt's virDomainDirtyRateStatus: 0 unstarted, 1 measuring, 2 measured.
    const auto& o = qa.dirty_rate->as_object();
    std::string status = o.contains("status") && o.at("status").is_string() ? std::string(o.at("status").as_string()) : "";
    int code = status == "measuring" ? 1 : status == "measured" ? 2 : 0;
    p.push_back({"dirtyrate.calc_status", code});
    p.push_back({"dirtyrate.calc_start_time", static_cast<long long>(json_ull(o, "start-time"))});
    p.push_back({"dirtyrate.calc_period", static_cast<int>(json_ull(o, "calc-time"))});
    if (auto* m = o.if_contains("mode"); m && m->is_string()) add_s(p, "dirtyrate.calc_mode", std::string(m->as_string()));
    if (code == 2 && o.contains("dirty-rate"))
      p.push_back({"dirtyrate.megabytes_per_second", static_cast<long long>(json_ull(o, "dirty-rate"))});
  }
  co_return rec;
}

}  // namespace

op<std::vector<domain_stats>> driver::get_all_domain_stats(const std::vector<domain_key>& keys, unsigned stats,
                                                          unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto groups = covirt::detail::stats_groups(stats, qemu_stats_groups, flags, diag);
  if (!groups) co_return groups.error();
  auto doms = covirt::detail::stats_domains(s->doms, keys, flags);
  std::vector<domain_stats> out;
  if (doms.empty()) co_return out;
  if (doms.size() == 1) {
    out.push_back(co_await one_record(s, doms.front(), *groups));
    co_return out;
  }
  // Every domain at once: each record's QMP round trip overlaps the others'.
  using op_t = decltype(asio::co_spawn(s->ex, one_record(s, doms.front(), *groups), asio::deferred));
  std::vector<op_t> ops;
  ops.reserve(doms.size());
  for (const auto& d : doms) ops.push_back(asio::co_spawn(s->ex, one_record(s, d, *groups), asio::deferred));
  auto [order, errors, records] =
      co_await asio::experimental::make_parallel_group(std::move(ops)).async_wait(asio::experimental::wait_for_all(),
                                                                                 asio::use_awaitable);
  for (std::size_t i = 0; i < records.size(); ++i)
    if (!errors[i]) out.push_back(std::move(records[i]));
  co_return out;
}

op<std::vector<memory_stat>> driver::memory_stats(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (flags) co_return unsupported_flags(flags, "qemuDomainMemoryStats", diag);
  auto s = s_;
  auto r = get_running(*s, key, diag);
  if (!r) co_return r.error();
  std::optional<json::value> guest;
  if (has_balloon(r->d->def)) {
    json::object qom;
    qom["path"] = "/machine/peripheral/balloon0";
    qom["property"] = "guest-stats";
    std::string cmd = "qom-get";
    auto g = co_await s->call(r->rt, cmd, std::move(qom), diag);
    if (!g) co_return s->command_failed(r->d, r->rt, g.error(), diag);
    guest = std::move(*g);
  }
  co_return memory_stats_of(r->d->def, *r->rt, guest ? &*guest : nullptr);
}

op<covirt::interface_stats> driver::interface_stats(const domain_key& key, std::string_view device,
                                                    diagnostics& diag) {
  auto s = s_;
  auto r = get_running(*s, key, diag);
  if (!r) co_return r.error();
  const auto& nets = r->d->def.devices.interfaces;
  bool by_mac = device.size() == 17 && device[2] == ':';
  std::string want(device);
  if (by_mac)
    for (auto& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = std::find_if(nets.begin(), nets.end(), [&](const interface_def& n) {
    return by_mac ? n.mac == want : (n.target_dev && *n.target_dev == device);
  });
  if (it == nets.end()) co_return fail(diag, errc::invalid_arg, q(device) + " is not a known interface");
  auto tap = tap_of(*it);
  if (!tap) co_return fail(diag, errc::internal_error, "Interface name not provided");
  auto st = tap_stats(*tap, diag);
  if (!st) co_return st.error();
  co_return *st;
}

op<block_info> driver::get_block_info(const domain_key& key, std::string_view disk, unsigned flags,
                                      diagnostics& diag) {
  if (flags) co_return unsupported_flags(flags, "qemuDomainGetBlockInfo", diag);
  auto r = s_->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  const disk_def* dk = disk_by_name(d->def, disk);
  if (!dk) co_return fail(diag, errc::invalid_arg, "invalid path " + std::string(disk) + " not assigned to domain");
  std::string path = disk_path(*dk);
  if (path.empty()) {
    if (dk->type == "network")
      co_return fail(diag, errc::operation_unsupported,
                     "block info of network disk " + q(dk->target_dev) + " is not supported by covirt's qemu driver");
    co_return fail(diag, errc::invalid_arg, "disk " + q(disk) + " does not currently have a source assigned");
  }
  auto z = read_image(path, dk->driver ? std::string_view(dk->driver->type) : std::string_view(), diag);
  if (!z) co_return z.error();
  co_return block_info{z->capacity, z->allocation, z->physical};
}

}  // namespace covirt::qemu
