// The QEMU driver: a guest's control groups (see cgroup.hpp for the layout).
#include "cgroup.hpp"

#include <covirt/types.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace covirt::qemu {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view all_controllers[] = {"cpu", "cpuacct", "cpuset", "memory", "blkio"};

bool cpu_side(std::string_view c) { return c == "cpu" || c == "cpuacct" || c == "cpuset"; }

// v2's name for a v1 controller (cpuacct's figures are in v2's cpu.stat).
std::string_view v2_name(std::string_view c) {
  if (c == "blkio") return "io";
  if (c == "cpuacct") return "cpu";
  return c;
}

std::string errno_text(int e) { return std::strerror(e); }

// One write(2) of the whole value, as cgroupfs wants it (a partial write is an error there).
int write_all(const fs::path& p, std::string_view v) {
  int fd = ::open(p.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, v.data(), v.size());
  int e = n < 0 ? errno : (static_cast<std::size_t>(n) == v.size() ? 0 : EIO);
  ::close(fd);
  return e;
}

std::optional<std::string> slurp(const fs::path& p, int& err) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    err = errno ? errno : ENOENT;
    return std::nullopt;
  }
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> words(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

std::optional<unsigned long long> to_ull(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  unsigned long long v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return std::nullopt;
    unsigned long long nv = v * 10 + static_cast<unsigned>(ch - '0');
    if (nv / 10 != v) return std::nullopt;
    v = nv;
  }
  return v;
}

// Makes `dir` and the levels above it down from `base`; each new v1 cpuset level takes its
// parent's CPUs and nodes, each v2 level its parent's controllers. 0 or errno.
int make_levels(const fs::path& base, const fs::path& rel, bool cpuset_v1, std::string_view v2_enable) {
  fs::path at = base;
  for (const auto& part : rel) {
    if (part.empty() || part == "/") continue;
    fs::path parent = at;
    at /= part;
    if (!v2_enable.empty()) (void)write_all(parent / "cgroup.subtree_control", v2_enable);
    if (::mkdir(at.c_str(), 0755) < 0) {
      if (errno != EEXIST) return errno;
      continue;
    }
    if (cpuset_v1) {
      int e = 0;
      for (const char* f : {"cpuset.cpus", "cpuset.mems"})
        if (auto v = slurp(parent / f, e)) (void)write_all(at / f, *v);
    }
  }
  return 0;
}

}  // namespace

cgroup_host cgroup_host::detect() {
  cgroup_host h;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = words(line.substr(0, dash), ' ');
    auto post = words(line.substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    const std::string& mnt = pre[4];
    if (post[0] == "cgroup2") {
      if (h.v2) continue;
      h.v2 = mnt;
      int e = 0;
      if (auto c = slurp(fs::path(mnt) / "cgroup.controllers", e))
        for (auto& w : words(*c, ' '))
          if (!w.empty()) h.v2_controllers.insert(w);
    } else if (post[0] == "cgroup") {
      for (auto& opt : words(post[2], ','))
        for (auto c : all_controllers)
          if (opt == c && !h.v1.count(c)) h.v1.emplace(std::string(c), mnt);
    }
  }
  return h;
}

int cgroup_host::version_of(std::string_view c) const {
  if (v1.count(c)) return 1;
  if (v2 && v2_controllers.count(v2_name(c))) return 2;
  return 0;
}

std::string default_cgroup_root(bool privileged, const fs::path& state_dir) {
  if (privileged) return "/machine";
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char ch : state_dir.string()) h = (h ^ ch) * 16777619u;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return std::string("/machine/covirt-") + buf;
}

result<guest_cgroup> guest_cgroup::create(const cgroup_host& host, std::string_view root, std::string_view name,
                                          unsigned vcpus, const std::vector<std::string_view>& need,
                                          diagnostics& diag) {
  guest_cgroup g;
  auto needed = [&](std::string_view c) { return std::find(need.begin(), need.end(), c) != need.end(); };
  g.subs_.push_back("emulator");
  for (unsigned i = 0; i < vcpus; ++i) g.subs_.push_back("vcpu" + std::to_string(i));
  fs::path rel = fs::path(std::string(root)).relative_path() / (std::string(name) + ".covirt-qemu");
  for (auto c : all_controllers) {
    int v = host.version_of(c);
    if (v == 0) {
      if (needed(c)) {
        g.remove();
        return fail(diag, errc::config_unsupported,
                    "the host has no cgroup controller '" + std::string(c) + "', which this domain's tuning needs");
      }
      continue;
    }
    g.v2_ = v == 2;
    fs::path base = v == 1 ? host.v1.at(std::string(c)) : *host.v2;
    std::string enable;
    if (v == 2)
      for (auto k : {"cpu", "cpuset", "memory", "io"})
        if (host.v2_controllers.count(k)) enable += std::string(enable.empty() ? "+" : " +") + k;
    int e = make_levels(base, rel, v == 1 && c == "cpuset", enable);
    if (e) {
      if (needed(c)) {
        g.remove();
        return fail(diag, errc::operation_failed,
                    "cannot create cgroup '" + (base / rel).string() + "': " + errno_text(e));
      }
      continue;
    }
    fs::path dir = base / rel;
    g.dirs_.emplace(std::string(c), dir);
    if (!cpu_side(c)) continue;
    // Children left by an earlier guest of this name go first (an empty group can be removed).
    std::error_code ec;
    for (auto& ent : fs::directory_iterator(dir, ec))
      if (ent.is_directory(ec)) ::rmdir(ent.path().c_str());
    if (v == 2) {
      std::string threaded;
      for (auto k : {"cpu", "cpuset"})
        if (host.v2_controllers.count(k)) threaded += std::string(threaded.empty() ? "+" : " +") + k;
      if (!threaded.empty()) (void)write_all(dir / "cgroup.subtree_control", threaded);
    }
    for (auto& sub : g.subs_) {
      fs::path sd = dir / sub;
      if (::mkdir(sd.c_str(), 0755) < 0 && errno != EEXIST) {
        int err = errno;
        g.remove();
        return fail(diag, errc::operation_failed, "cannot create cgroup '" + sd.string() + "': " + errno_text(err));
      }
      if (v == 2) (void)write_all(sd / "cgroup.type", "threaded");
      if (v == 1 && c == "cpuset") {
        int err = 0;
        for (const char* f : {"cpuset.cpus", "cpuset.mems"})
          if (auto val = slurp(dir / f, err)) (void)write_all(sd / f, *val);
      }
    }
  }
  return g;
}

guest_cgroup guest_cgroup::attach(const cgroup_host& host, std::string_view root, std::string_view name) {
  guest_cgroup g;
  fs::path rel = fs::path(std::string(root)).relative_path() / (std::string(name) + ".covirt-qemu");
  std::error_code ec;
  for (auto c : all_controllers) {
    int v = host.version_of(c);
    if (v == 0) continue;
    fs::path dir = (v == 1 ? host.v1.at(std::string(c)) : *host.v2) / rel;
    if (!fs::is_directory(dir, ec)) continue;
    g.v2_ = v == 2;
    g.dirs_.emplace(std::string(c), dir);
    if (cpu_side(c) && g.subs_.empty())
      for (auto& ent : fs::directory_iterator(dir, ec))
        if (ent.is_directory(ec)) g.subs_.push_back(ent.path().filename().string());
  }
  return g;
}

bool guest_cgroup::has(std::string_view c) const { return dirs_.count(c) != 0; }

fs::path guest_cgroup::dir(std::string_view c, std::string_view sub) const {
  auto it = dirs_.find(c);
  if (it == dirs_.end()) return {};
  return sub.empty() ? it->second : it->second / std::string(sub);
}

result<void> guest_cgroup::write(std::string_view c, std::string_view sub, std::string_view file,
                                 std::string_view value, diagnostics& diag) const {
  if (!has(c))
    return fail(diag, errc::config_unsupported, "the domain has no cgroup for controller '" + std::string(c) + "'");
  fs::path p = dir(c, sub) / std::string(file);
  if (int e = write_all(p, value))
    return fail(diag, errc::operation_failed,
                "cannot write '" + std::string(value) + "' to '" + p.string() + "': " + errno_text(e));
  return {};
}

result<std::string> guest_cgroup::read(std::string_view c, std::string_view sub, std::string_view file,
                                       diagnostics& diag) const {
  if (!has(c))
    return fail(diag, errc::config_unsupported, "the domain has no cgroup for controller '" + std::string(c) + "'");
  fs::path p = dir(c, sub) / std::string(file);
  int e = 0;
  auto v = slurp(p, e);
  if (!v) return fail(diag, errc::operation_failed, "cannot read '" + p.string() + "': " + errno_text(e));
  return std::move(*v);
}

result<void> guest_cgroup::add_process(pid_t pid, diagnostics& diag) {
  std::string v = std::to_string(pid);
  std::set<fs::path> done;
  for (auto& [c, d] : dirs_) {
    fs::path target = cpu_side(c) && !subs_.empty() ? d / "emulator" : d;
    if (!done.insert(target).second) continue;
    if (auto r = write(c, cpu_side(c) && !subs_.empty() ? "emulator" : "", "cgroup.procs", v, diag); !r) return r;
  }
  return {};
}

result<void> guest_cgroup::add_vcpu_thread(unsigned vcpu, pid_t tid, diagnostics& diag) {
  std::string sub = "vcpu" + std::to_string(vcpu), v = std::to_string(tid);
  std::set<fs::path> done;
  for (auto& [c, d] : dirs_) {
    if (!cpu_side(c) || !done.insert(d).second) continue;
    if (auto r = write(c, sub, v2_ ? "cgroup.threads" : "tasks", v, diag); !r) return r;
  }
  return {};
}

// ------------------------------------------------------------------ settings

result<void> guest_cgroup::set_shares(unsigned long long v, diagnostics& diag) const {
  return write("cpu", "", v2_ ? "cpu.weight" : "cpu.shares", std::to_string(v), diag);
}

result<unsigned long long> guest_cgroup::shares(diagnostics& diag) const {
  auto s = read("cpu", "", v2_ ? "cpu.weight" : "cpu.shares", diag);
  if (!s) return s.error();
  auto v = to_ull(*s);
  if (!v) return fail(diag, errc::internal_error, "unexpected cpu shares '" + *s + "'");
  return *v;
}

result<void> guest_cgroup::set_bandwidth(std::string_view sub, std::optional<unsigned long long> period,
                                         std::optional<long long> quota, diagnostics& diag) const {
  if (!v2_) {
    // The kernel checks the quota against the period: set the period first.
    if (period)
      if (auto r = write("cpu", sub, "cpu.cfs_period_us", std::to_string(*period), diag); !r) return r;
    if (quota)
      if (auto r = write("cpu", sub, "cpu.cfs_quota_us", std::to_string(*quota), diag); !r) return r;
    return {};
  }
  auto now = bandwidth(sub, diag);
  if (!now) return now.error();
  unsigned long long p = period.value_or(now->period);
  long long q = quota.value_or(now->quota);
  std::string v = (q < 0 ? std::string("max") : std::to_string(q)) + " " + std::to_string(p);
  return write("cpu", sub, "cpu.max", v, diag);
}

result<guest_cgroup::bandwidth_t> guest_cgroup::bandwidth(std::string_view sub, diagnostics& diag) const {
  bandwidth_t b;
  if (!v2_) {
    auto p = read("cpu", sub, "cpu.cfs_period_us", diag);
    if (!p) return p.error();
    auto q = read("cpu", sub, "cpu.cfs_quota_us", diag);
    if (!q) return q.error();
    auto pv = to_ull(*p);
    if (!pv) return fail(diag, errc::internal_error, "unexpected cfs period '" + *p + "'");
    b.period = *pv;
    if (*q == "-1") b.quota = -1;
    else if (auto qv = to_ull(*q)) b.quota = static_cast<long long>(*qv);
    else return fail(diag, errc::internal_error, "unexpected cfs quota '" + *q + "'");
    return b;
  }
  auto m = read("cpu", sub, "cpu.max", diag);
  if (!m) return m.error();
  auto w = words(*m, ' ');
  auto pv = w.size() == 2 ? to_ull(w[1]) : std::nullopt;
  if (!pv) return fail(diag, errc::internal_error, "unexpected cpu.max '" + *m + "'");
  b.period = *pv;
  if (w[0] == "max") b.quota = -1;
  else if (auto qv = to_ull(w[0])) b.quota = static_cast<long long>(*qv);
  else return fail(diag, errc::internal_error, "unexpected cpu.max '" + *m + "'");
  return b;
}

result<void> guest_cgroup::set_cpus(std::string_view sub, std::string_view list, diagnostics& diag) const {
  return write("cpuset", sub, "cpuset.cpus", list, diag);
}

result<void> guest_cgroup::set_mems(std::string_view sub, std::string_view list, diagnostics& diag) const {
  // Under v1 each child has its own cpuset.mems, which must stay within the parent's: widen the
  // parent first, then narrow the children to what the guest asked.
  if (auto r = write("cpuset", sub, "cpuset.mems", list, diag); !r) return r;
  if (sub.empty() && !v2_)
    for (auto& s : subs_)
      if (auto r = write("cpuset", s, "cpuset.mems", list, diag); !r) return r;
  return {};
}

result<std::string> guest_cgroup::mems(std::string_view sub, diagnostics& diag) const {
  return read("cpuset", sub, v2_ ? "cpuset.mems.effective" : "cpuset.mems", diag);
}

namespace {
const char* mem_file(guest_cgroup::mem_limit w, bool v2) {
  using m = guest_cgroup::mem_limit;
  if (v2) return w == m::hard ? "memory.max" : w == m::soft ? "memory.high" : "memory.swap.max";
  return w == m::hard ? "memory.limit_in_bytes" : w == m::soft ? "memory.soft_limit_in_bytes" : "memory.memsw.limit_in_bytes";
}
// What v1 reads back for "no limit" (PAGE_COUNTER_MAX pages), in KiB; anything from there up is unlimited.
constexpr unsigned long long v1_unlimited_kib = 9007199254740988ULL;
}  // namespace

result<void> guest_cgroup::set_memory_limit(mem_limit which, unsigned long long kib, diagnostics& diag) const {
  std::string v;
  if (kib >= memory_unlimited_kib) v = v2_ ? "max" : "-1";
  else v = std::to_string(kib * 1024);
  return write("memory", "", mem_file(which, v2_), v, diag);
}

result<unsigned long long> guest_cgroup::memory_limit(mem_limit which, diagnostics& diag) const {
  auto s = read("memory", "", mem_file(which, v2_), diag);
  if (!s) return s.error();
  if (*s == "max") return memory_unlimited_kib;
  auto v = to_ull(*s);
  if (!v) return fail(diag, errc::internal_error, "unexpected memory limit '" + *s + "'");
  unsigned long long kib = *v >> 10;
  return kib >= v1_unlimited_kib ? memory_unlimited_kib : kib;
}

namespace {
// The weight file this host's I/O controller has: the plain one, else BFQ's.
std::string weight_file(const guest_cgroup& g, bool v2, bool device) {
  std::error_code ec;
  std::string plain = v2 ? "io.weight" : device ? "blkio.weight_device" : "blkio.weight";
  std::string bfq = v2 ? "io.bfq.weight" : device ? "blkio.bfq.weight_device" : "blkio.bfq.weight";
  if (fs::exists(g.dir("blkio") / plain, ec)) return plain;
  if (fs::exists(g.dir("blkio") / bfq, ec)) return bfq;
  return {};
}
const char* throttle_key(guest_cgroup::io_value w) {
  using v = guest_cgroup::io_value;
  return w == v::read_bps ? "rbps" : w == v::write_bps ? "wbps" : w == v::read_iops ? "riops" : "wiops";
}
const char* throttle_file_v1(guest_cgroup::io_value w) {
  using v = guest_cgroup::io_value;
  return w == v::read_bps    ? "blkio.throttle.read_bps_device"
         : w == v::write_bps ? "blkio.throttle.write_bps_device"
         : w == v::read_iops ? "blkio.throttle.read_iops_device"
                             : "blkio.throttle.write_iops_device";
}
}  // namespace

result<void> guest_cgroup::set_io_weight(unsigned w, diagnostics& diag) const {
  if (!has("blkio")) return write("blkio", "", "", "", diag);  // the "no cgroup" error
  std::string f = weight_file(*this, v2_, false);
  if (f.empty())
    return fail(diag, errc::operation_invalid, "blkio device weight is valid only for bfq or cfq scheduler");
  std::string v = v2_ && f == "io.weight" ? "default " + std::to_string(w) : std::to_string(w);
  return write("blkio", "", f, v, diag);
}

result<unsigned> guest_cgroup::io_weight(diagnostics& diag) const {
  if (!has("blkio")) return fail(diag, errc::config_unsupported, "the domain has no cgroup for controller 'blkio'");
  std::string f = weight_file(*this, v2_, false);
  // libvirt 9.0's QEMU driver's refusal where the I/O scheduler has no weights.
  if (f.empty()) return fail(diag, errc::operation_invalid, "blkio device weight is valid only for bfq or cfq scheduler");
  auto s = read("blkio", "", f, diag);
  if (!s) return s.error();
  for (auto& line : words(*s, '\n')) {
    auto w = words(line, ' ');
    std::string_view val = w.size() == 2 && w[0] == "default" ? std::string_view(w[1]) : std::string_view(line);
    if (auto v = to_ull(val)) return static_cast<unsigned>(*v);
  }
  return fail(diag, errc::internal_error, "unexpected blkio weight '" + *s + "'");
}

result<void> guest_cgroup::set_device_io(io_value which, std::string_view majmin, unsigned long long v,
                                         diagnostics& diag) const {
  std::string dev(majmin);
  if (which == io_value::weight) {
    std::string f = has("blkio") ? weight_file(*this, v2_, true) : "";
    if (has("blkio") && f.empty())
      return fail(diag, errc::config_unsupported,
                  "this host's block I/O scheduler has no per-device weights: blkio device weight is not supported here");
    return write("blkio", "", f, dev + " " + (v2_ && v == 0 ? std::string("default") : std::to_string(v)), diag);
  }
  if (v2_) return write("blkio", "", "io.max", dev + " " + throttle_key(which) + "=" + (v ? std::to_string(v) : "max"), diag);
  return write("blkio", "", throttle_file_v1(which), dev + " " + std::to_string(v), diag);
}

result<std::map<std::string, unsigned long long>> guest_cgroup::device_io(io_value which, diagnostics& diag) const {
  std::map<std::string, unsigned long long> out;
  std::string f = which == io_value::weight ? (has("blkio") ? weight_file(*this, v2_, true) : "")
                  : v2_ ? "io.max" : throttle_file_v1(which);
  if (f.empty()) return out;
  auto s = read("blkio", "", f, diag);
  if (!s) return s.error();
  for (auto& line : words(*s, '\n')) {
    auto w = words(line, ' ');
    if (w.size() < 2 || w[0] == "default" || w[0].find(':') == std::string::npos) continue;
    if (v2_ && which != io_value::weight) {
      std::string key = std::string(throttle_key(which)) + "=";
      for (std::size_t i = 1; i < w.size(); ++i)
        if (w[i].rfind(key, 0) == 0)
          if (auto v = to_ull(w[i].substr(key.size()))) out[w[0]] = *v;
    } else if (auto v = to_ull(w[1])) {
      if (*v) out[w[0]] = *v;
    }
  }
  return out;
}

bool guest_cgroup::remove() {
  bool all = true;
  std::set<fs::path> done;
  for (auto& [c, d] : dirs_) {
    if (!done.insert(d).second) continue;
    if (cpu_side(c))
      for (auto& s : subs_)
        if (::rmdir((d / s).c_str()) < 0 && errno != ENOENT) all = false;
    if (::rmdir(d.c_str()) < 0 && errno != ENOENT) all = false;
  }
  if (all) dirs_.clear();
  return all;
}

}  // namespace covirt::qemu
