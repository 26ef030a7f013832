// The QEMU driver's face: open and close (one state folder, one owner), the node's answers
// (hostname, version, capabilities, node info), lookups and the read-only domain queries.
#include "driver_state.hpp"
#include "../common/listed_domains.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/utsname.h>

namespace covirt::qemu {

namespace impl {

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

}  // namespace impl

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
  s->cgroups = cgroup_host::detect();
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
    s->doms.add(std::move(*def), true)->autostart = qemu::get_autostart(s->dirs, n);
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
    if (!co_await d->job.acquire()) continue;
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




}  // namespace covirt::qemu

// Listing, lookup and subscriptions, answered by the domain list and the event hub.
template class covirt::listed_domains<covirt::qemu::driver>;
