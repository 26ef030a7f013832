// Integration tests: the QEMU driver's resource tuning with real QEMU 7.2 (TCG) and this host's
// real cgroups: the limits land in the cgroup files, the vCPU and emulator threads run where
// they were pinned, the live calls change both, hugepages are really used, and bad input leaves
// no QEMU and no cgroup behind.
#include <covirt/connection.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace {

std::string trimmed(const fs::path& p) {
  std::string s = slurp(p);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A cgroup root of this test's own, taken down at the end (and checked empty).
struct cgroup_root {
  std::string rel;
  cgroup_root() {
    std::random_device rd;
    rel = "/covirt-test-" + std::to_string(rd() % 1000000);
  }
  fs::path in(const std::string& controller) const { return fs::path("/sys/fs/cgroup") / controller / rel.substr(1); }
  ~cgroup_root() {
    for (const char* c : {"cpu", "cpuacct", "cpuset", "memory", "blkio"}) {
      std::error_code ec;
      fs::path base = in(c);
      if (!fs::exists(base, ec)) continue;
      // rmdir only: a cgroup folder cannot be removed with its files.
      std::vector<fs::path> dirs;
      for (auto it = fs::recursive_directory_iterator(base, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_directory(ec)) dirs.push_back(it->path());
      std::sort(dirs.rbegin(), dirs.rend());
      for (auto& d : dirs) ::rmdir(d.c_str());
      ::rmdir(base.c_str());
    }
  }
};

// A loop device over a small file, for <blkiotune> throttles.
struct loop_device {
  std::string dev;
  fs::path file;
  explicit loop_device(const fs::path& dir) {
    file = dir / "loop.img";
    { std::ofstream(file).put('\0'); }
    fs::resize_file(file, 4 << 20);
    std::string cmd = "losetup -f --show " + file.string() + " 2>/dev/null";
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof buf, p)) dev = buf;
      ::pclose(p);
    }
    while (!dev.empty() && dev.back() == '\n') dev.pop_back();
  }
  std::string majmin() const {
    struct stat sb {};
    ::stat(dev.c_str(), &sb);
    return std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev));
  }
  ~loop_device() {
    if (!dev.empty()) std::system(("losetup -d " + dev).c_str());
  }
};

std::string tuned_xml(const std::string& name, const std::string& tuning) {
  return "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>64</memory><vcpu>2</vcpu>" + tuning +
         "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices><memballoon model='none'/></devices></domain>";
}

std::vector<unsigned> affinity_of(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> out;
  if (::sched_getaffinity(tid, sizeof set, &set) == 0)
    for (unsigned c = 0; c < 64; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

bool multi_cpu() { return ::sysconf(_SC_NPROCESSORS_ONLN) >= 2; }

template <class T>
std::optional<T> param(const covirt::typed_params& ps, const std::string& f) {
  for (auto& p : ps)
    if (p.field == f)
      if (auto* v = std::get_if<T>(&p.value)) return *v;
  return std::nullopt;
}

}  // namespace

TEST_CASE("qemu tuning: the cgroup files hold the limits, the threads run where pinned, all gone at stop",
          "[qemu_tuning]") {
  REQUIRE(multi_cpu());
  guest_dir dir;
  cgroup_root root;
  loop_device loop(dir.path);
  REQUIRE(!loop.dev.empty());
  std::string uri = dir.uri() + "&cgroup_root=" + root.rel;
  std::string tuning =
      "<blkiotune><device><path>" + loop.dev + "</path><read_bytes_sec>1048576</read_bytes_sec>"
      "<write_iops_sec>300</write_iops_sec></device></blkiotune>"
      "<memtune><hard_limit unit='MiB'>256</hard_limit><soft_limit unit='MiB'>128</soft_limit>"
      "<swap_hard_limit unit='MiB'>512</swap_hard_limit></memtune>"
      "<cputune><shares>2048</shares><period>100000</period><quota>50000</quota>"
      "<emulator_period>200000</emulator_period><emulator_quota>80000</emulator_quota>"
      "<vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='0'/></cputune>"
      "<numatune><memory mode='strict' nodeset='0'/></numatune>";
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, uri);
    std::string xml0 = tuned_xml("tuned", tuning);
    co_await conn.async_define_xml(xml0);
    co_await conn.async_create("tuned");
    const std::string g = "tuned.covirt-qemu";
    fs::path cpu = root.in("cpu") / g, mem = root.in("memory") / g, blk = root.in("blkio") / g,
             cpuset = root.in("cpuset") / g;
    CHECK(trimmed(cpu / "cpu.shares") == "2048");
    CHECK(trimmed(cpu / "vcpu0" / "cpu.cfs_quota_us") == "50000");
    CHECK(trimmed(cpu / "vcpu1" / "cpu.cfs_quota_us") == "50000");
    CHECK(trimmed(cpu / "emulator" / "cpu.cfs_period_us") == "200000");
    CHECK(trimmed(cpu / "emulator" / "cpu.cfs_quota_us") == "80000");
    CHECK(trimmed(mem / "memory.limit_in_bytes") == std::to_string(256ull << 20));
    CHECK(trimmed(mem / "memory.soft_limit_in_bytes") == std::to_string(128ull << 20));
    CHECK(trimmed(mem / "memory.memsw.limit_in_bytes") == std::to_string(512ull << 20));
    CHECK(slurp(blk / "blkio.throttle.read_bps_device").find(loop.majmin() + " 1048576") != std::string::npos);
    CHECK(slurp(blk / "blkio.throttle.write_iops_device").find(loop.majmin() + " 300") != std::string::npos);
    CHECK(trimmed(cpuset / "cpuset.mems") == "0");
    CHECK(trimmed(cpuset / "vcpu0" / "cpuset.cpus") == "1");
    CHECK(trimmed(cpuset / "emulator" / "cpuset.cpus") == "0");

    // The threads: vCPU 0 on CPU 1 only, vCPU 1 anywhere, QEMU's other threads on CPU 0.
    auto vcpus = co_await conn.async_get_vcpus("tuned");
    REQUIRE(vcpus.size() == 2);
    CHECK(vcpus[0].affinity.substr(0, 2) == "-y");
    CHECK(vcpus[1].affinity.substr(0, 2) == "yy");
    std::string procs = slurp(cpu / "emulator" / "cgroup.procs");
    REQUIRE(!procs.empty());
    pid_t qemu_pid = static_cast<pid_t>(std::atoi(procs.c_str()));
    CHECK(affinity_of(qemu_pid) == std::vector<unsigned>{0});
    // Each vCPU thread sits in its own group.
    CHECK(!trimmed(cpu / "vcpu0" / "tasks").empty());
    CHECK(trimmed(cpu / "vcpu0" / "tasks").find('\n') == std::string::npos);

    // The live calls read the kernel and change it.
    auto sched = co_await conn.async_get_scheduler_parameters("tuned", covirt::modify::live);
    CHECK(param<unsigned long long>(sched, "cpu_shares") == 2048ull);
    CHECK(param<long long>(sched, "vcpu_quota") == 50000ll);
    CHECK(param<unsigned long long>(sched, "emulator_period") == 200000ull);
    CHECK(param<long long>(sched, "global_quota") == -1ll);
    covirt::typed_params set1{{"cpu_shares", 512ull}, {"vcpu_quota", -1ll}};
    co_await conn.async_set_scheduler_parameters("tuned", set1, covirt::modify::live);
    CHECK(trimmed(cpu / "cpu.shares") == "512");
    CHECK(trimmed(cpu / "vcpu1" / "cpu.cfs_quota_us") == "-1");
    covirt::typed_params short_period{{"vcpu_period", 10ull}}, weight{{"weight", 10u}};
    auto bad = co_await catch_error(conn.async_set_scheduler_parameters("tuned", short_period, 0));
    CHECK(bad.ec == errc::invalid_arg);
    CHECK(bad.message == "value of 'vcpu_period' is out of range [1000, 1000000]");
    auto unknown = co_await catch_error(conn.async_set_scheduler_parameters("tuned", weight, 0));
    CHECK(unknown.ec == errc::argument_unsupported);

    auto mt = co_await conn.async_get_memory_parameters("tuned", 0);
    CHECK(param<unsigned long long>(mt, "hard_limit") == 256ull << 10);
    covirt::typed_params hard200{{"hard_limit", 200ull << 10}}, hard1g{{"hard_limit", 1ull << 20}},
        ming_p{{"min_guarantee", 1024ull}};
    co_await conn.async_set_memory_parameters("tuned", hard200, 0);
    CHECK(trimmed(mem / "memory.limit_in_bytes") == std::to_string(200ull << 20));
    auto above = co_await catch_error(conn.async_set_memory_parameters("tuned", hard1g, 0));
    CHECK(above.message == "memory hard_limit tuning value must be less than or equal to swap_hard_limit");
    auto ming = co_await catch_error(conn.async_set_memory_parameters("tuned", ming_p, 0));
    CHECK(ming.message == "Parameter 'min_guarantee' not supported by QEMU.");

    if (fs::exists(blk / "blkio.weight") || fs::exists(blk / "blkio.bfq.weight")) {
      auto bk = co_await conn.async_get_blkio_parameters("tuned", 0);
      CHECK(param<std::string>(bk, "device_read_bytes_sec") == loop.dev + ",1048576");
    } else {
      // An I/O scheduler without weights (this CI's): libvirt 9.0's QEMU driver refuses the live
      // read, and so does covirt; the definition still says what was asked.
      auto nw = co_await catch_error(conn.async_get_blkio_parameters("tuned", 0));
      CHECK(nw.message == "blkio device weight is valid only for bfq or cfq scheduler");
      auto bk = co_await conn.async_get_blkio_parameters("tuned", covirt::modify::config);
      CHECK(param<std::string>(bk, "device_read_bytes_sec") == loop.dev + ",1048576");
    }
    covirt::typed_params rbps{{"device_read_bytes_sec", loop.dev + ",2097152"}};
    co_await conn.async_set_blkio_parameters("tuned", rbps, 0);
    CHECK(slurp(blk / "blkio.throttle.read_bps_device").find(loop.majmin() + " 2097152") != std::string::npos);

    auto numa = co_await conn.async_get_numa_parameters("tuned", 0);
    CHECK(param<std::string>(numa, "numa_nodeset") == "0");
    CHECK(param<int>(numa, "numa_mode") == 0);
    covirt::typed_params node5{{"numa_nodeset", std::string("5")}};
    auto nonode = co_await catch_error(conn.async_set_numa_parameters("tuned", node5, 0));
    CHECK(nonode.message == "NUMA node 5 is unavailable");

    // Pinning, live: the thread and its cpuset move; the live XML says so, the definition does not.
    co_await conn.async_pin_vcpu_flags("tuned", 1, "0", covirt::modify::live);
    vcpus = co_await conn.async_get_vcpus("tuned");
    CHECK(vcpus[1].affinity.substr(0, 2) == "y-");
    CHECK(trimmed(cpuset / "vcpu1" / "cpuset.cpus") == "0");
    co_await conn.async_pin_emulator("tuned", "1", covirt::modify::live);
    CHECK(affinity_of(qemu_pid) == std::vector<unsigned>{1});
    auto pins = co_await conn.async_get_vcpu_pin_info("tuned", 0);
    REQUIRE(pins.size() == 2);
    CHECK(pins[1].substr(0, 2) == "y-");
    std::string emu_pin = co_await conn.async_get_emulator_pin_info("tuned", 0);
    CHECK(emu_pin == "-y");
    std::string live = co_await conn.async_get_xml("tuned", 0);
    CHECK(live.find("<vcpupin vcpu='1' cpuset='0'/>") != std::string::npos);
    CHECK(live.find("<shares>512</shares>") != std::string::npos);
    std::string inactive = co_await conn.async_get_xml("tuned", covirt::xml_flags::inactive);
    CHECK(inactive.find("<vcpupin vcpu='1'") == std::string::npos);
    CHECK(inactive.find("<shares>2048</shares>") != std::string::npos);
    // --config changes the definition only.
    covirt::typed_params shares4096{{"cpu_shares", 4096ull}};
    co_await conn.async_set_scheduler_parameters("tuned", shares4096, covirt::modify::config);
    CHECK(trimmed(cpu / "cpu.shares") == "512");
    inactive = co_await conn.async_get_xml("tuned", covirt::xml_flags::inactive);
    CHECK(inactive.find("<shares>4096</shares>") != std::string::npos);

    co_await conn.async_destroy("tuned");
    // The groups go at stop (the kernel may hold them a moment after the exit).
    bool gone = co_await eventually([&] { return !fs::exists(cpu) && !fs::exists(mem) && !fs::exists(blk) && !fs::exists(cpuset); });
    CHECK(gone);
    auto none = co_await catch_error(conn.async_get_scheduler_parameters("tuned", covirt::modify::live));
    CHECK(none.ec == errc::operation_invalid);
    // Inactive: the definition's values.
    auto cfg = co_await conn.async_get_scheduler_parameters("tuned", 0);
    CHECK(param<unsigned long long>(cfg, "cpu_shares") == 4096ull);
  }, 120s);
}

TEST_CASE("qemu tuning: bad tuning is refused before QEMU starts, nothing left behind", "[qemu_tuning]") {
  guest_dir dir;
  cgroup_root root;
  std::string uri = dir.uri() + "&cgroup_root=" + root.rel;
  struct bad_case {
    std::string tuning, code_name, message;
    errc code;
  };
  unsigned n = static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_ONLN));
  std::string beyond = std::to_string(n + 3);
  std::vector<bad_case> cases = {
      {"<cputune><vcpupin vcpu='0' cpuset='" + beyond + "'/></cputune>", "vcpupin",
       "<vcpupin> cpuset '" + beyond + "' names CPU " + beyond + ", which this host lacks", errc::invalid_arg},
      {"<cputune><vcpupin vcpu='4' cpuset='0'/></cputune>", "vcpupin out of range",
       "<vcpupin vcpu='4'>: the domain has 2 vCPUs", errc::invalid_arg},
      {"<memtune><min_guarantee unit='MiB'>32</min_guarantee></memtune>", "min_guarantee",
       "Parameter 'min_guarantee' not supported by QEMU.", errc::config_unsupported},
      {"<memtune><hard_limit unit='MiB'>512</hard_limit><swap_hard_limit unit='MiB'>256</swap_hard_limit></memtune>",
       "hard above swap", "memory hard_limit tuning value must be less than or equal to swap_hard_limit",
       errc::invalid_arg},
      {"<numatune><memory mode='strict' nodeset='3'/></numatune>", "nodeset", "NUMA node 3 is unavailable",
       errc::invalid_arg},
      {"<blkiotune><device><path>/tmp</path><weight>500</weight></device></blkiotune>", "not a block device",
       "<blkiotune> device '/tmp' must be a block device", errc::invalid_arg},
      // 3 MiB: a page size no x86 host has (some have 1 GiB pages, as this CI's machines do).
      {"<memoryBacking><hugepages><page size='3' unit='M'/></hugepages></memoryBacking>", "hugepage size",
       "hugepage size 3072 KiB is not supported by this host", errc::config_unsupported},
  };
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, uri);
    for (auto& c : cases) {
      INFO(c.code_name);
      std::string xml = tuned_xml("bad", c.tuning);
      auto t = co_await catch_error(conn.async_create_xml(xml, 0));
      CHECK(t.threw);
      CHECK(t.ec == c.code);
      CHECK(t.message.find(c.message) != std::string::npos);
      CHECK(qemu_pids_with(dir.path.string()).empty());
      CHECK(!fs::exists(root.in("cpu") / "bad.covirt-qemu"));
      CHECK(!fs::exists(root.in("memory") / "bad.covirt-qemu"));
    }
  }, 60s);
}

TEST_CASE("qemu tuning: <memoryBacking><hugepages/> takes the guest's RAM from hugetlbfs", "[qemu_tuning]") {
  guest_dir dir;
  const fs::path nr = "/proc/sys/vm/nr_hugepages";
  std::string before = trimmed(nr);
  // 64 MiB of 2 MiB pages, and a few more.
  { std::ofstream(nr) << 40; }
  struct restore_pages {
    fs::path nr;
    std::string before;
    fs::path mnt;
    ~restore_pages() {
      ::umount(mnt.c_str());
      std::ofstream(nr) << before;
    }
  } restore{nr, before, dir.path / "huge"};
  fs::create_directories(restore.mnt);
  REQUIRE(::mount("none", restore.mnt.c_str(), "hugetlbfs", 0, "pagesize=2M") == 0);
  auto free_pages = [] {
    std::ifstream in("/proc/meminfo");
    std::string k, u;
    unsigned long long v = 0;
    while (in >> k >> v) {
      if (k == "HugePages_Free:") return v;
      std::getline(in, u);
    }
    return 0ull;
  };
  auto free_before = free_pages();
  if (free_before < 32) {
    WARN("this host could not reserve 32 hugepages of 2 MiB (it gave " << free_before << "): not tested here");
    return;
  }
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string huge_xml = tuned_xml("huge", "<memoryBacking><hugepages/><nosharepages/></memoryBacking>");
    co_await conn.async_create_xml(huge_xml, 0);
    // QEMU preallocates the guest's 64 MiB: 32 pages leave the pool.
    CHECK(free_pages() + 32 <= free_before);
    std::string xml = co_await conn.async_get_xml("huge", 0);
    CHECK(xml.find("<hugepages/>") != std::string::npos);
    co_await conn.async_destroy("huge");
    bool back = co_await eventually([&] { return free_pages() == free_before; });
    CHECK(back);
  }, 60s);
}

TEST_CASE("qemu tuning: a memfd backend, shared, locked, with a preferred node, runs", "[qemu_tuning]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string xml = tuned_xml("memfd", "<memoryBacking><source type='memfd'/><access mode='shared'/><locked/>"
                                         "</memoryBacking><numatune><memory mode='preferred' nodeset='0'/></numatune>");
    co_await conn.async_create_xml(xml, 0);
    auto st = co_await conn.async_get_state("memfd");
    CHECK(st.state == domain_state::running);
    // The guest's RAM is a memfd QEMU maps shared: /proc/PID/maps names it (QEMU names it by its type).
    auto pids = qemu_pids_with(dir.path.string());
    REQUIRE(pids.size() == 1);
    CHECK(slurp("/proc/" + std::to_string(pids[0]) + "/maps").find("/memfd:memory-backend-memfd") != std::string::npos);
    auto numa = co_await conn.async_get_numa_parameters("memfd", 0);
    CHECK(param<int>(numa, "numa_mode") == 1);
    co_await conn.async_destroy("memfd");
  }, 60s);
}
