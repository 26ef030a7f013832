// covirt internal: a guest's control groups, as libvirt's QEMU driver lays them out.
//
// Each running guest gets ROOT/NAME.covirt-qemu in every controller covirt uses (cpu, cpuacct,
// cpuset, memory, blkio; under cgroup v2 the one unified group with cpu, cpuset, memory, io),
// with the children `emulator` (QEMU's own threads) and `vcpuN` (vCPU N's thread) in the
// cpu-side controllers, so each can have its own CFS bandwidth and cpuset; memory and I/O are
// limited for the whole guest. ROOT is the URI's ?cgroup_root= (relative to each hierarchy's
// mount), by default /machine for qemu:///system and /machine/covirt-<hash of the state
// folder> for a session, so two drivers on one host never share a group. The groups are made
// at start, after QEMU is spawned paused and before its vCPUs run, and removed at stop.
//
// Hosts differ: cgroup v1 (a hierarchy per controller, this project's CI machines), v2 (one
// unified hierarchy) or both (v1 controllers beside an empty v2). cgroup_host::detect reads
// /proc/self/mountinfo; tests build a cgroup_host over folders of their own.
//
// Plain blocking file I/O on cgroupfs: the kernel answers these writes at once, in memory.
#pragma once

#include <covirt/error.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace covirt::qemu {

/// Where the host's cgroup controllers are.
struct cgroup_host {
  std::map<std::string, std::filesystem::path, std::less<>> v1;  ///< controller -> its v1 mount
  std::optional<std::filesystem::path> v2;                        ///< the unified hierarchy's mount
  std::set<std::string, std::less<>> v2_controllers;              ///< its root's cgroup.controllers

  /// The mounts of this host (from /proc/self/mountinfo).
  static cgroup_host detect();
  /// 1 or 2 for the version that has controller `c` ("cpu", "cpuacct", "cpuset", "memory",
  /// "blkio"; v2 calls blkio "io" and has cpuacct inside "cpu"), 0 when the host has none.
  int version_of(std::string_view c) const;
};

/// The controllers a guest's settings need, named as v1 names them.
namespace cgroup_controllers {
inline constexpr std::string_view cpu = "cpu", cpuacct = "cpuacct", cpuset = "cpuset", memory = "memory",
                                  blkio = "blkio";
}

/// One guest's groups. Movable; remove() takes them down (the destructor does not: a guest
/// outlives its driver, and a new driver finds its groups again with attach()).
class guest_cgroup {
public:
  guest_cgroup() = default;

  /// Makes ROOT/NAME.covirt-qemu in every controller the host has (a controller it lacks or
  /// that cannot be written is skipped, unless it is in `need`: then the error names it), and
  /// the `emulator` and `vcpu0..vcpus-1` children in cpu, cpuacct and cpuset. Under v1 a new
  /// cpuset group starts with its parent's CPUs and memory nodes. A group left by an earlier
  /// guest of that name is emptied of children and reused. Errors: errc::config_unsupported
  /// (a needed controller missing), errc::operation_failed (the kernel refused, with its reason).
  static result<guest_cgroup> create(const cgroup_host& host, std::string_view root, std::string_view name,
                                     unsigned vcpus, const std::vector<std::string_view>& need, diagnostics& diag);
  /// The groups a running guest already has (re-attach): those that exist.
  static guest_cgroup attach(const cgroup_host& host, std::string_view root, std::string_view name);

  bool empty() const noexcept { return dirs_.empty(); }
  /// Whether the guest has a group in controller `c` (v1 name).
  bool has(std::string_view c) const;
  int version() const noexcept { return v2_ ? 2 : 1; }
  /// The folder of controller `c`'s group, or of its child `sub` ("emulator", "vcpu3").
  std::filesystem::path dir(std::string_view c, std::string_view sub = {}) const;

  /// Puts every thread of process `pid` into the guest: the emulator child of cpu, cpuacct
  /// and cpuset, the guest group of the others.
  result<void> add_process(pid_t pid, diagnostics& diag);
  /// Moves one thread (a vCPU's) into vcpuN of cpu, cpuacct and cpuset.
  result<void> add_vcpu_thread(unsigned vcpu, pid_t tid, diagnostics& diag);

  /// The group's file `file` of controller `c` (child `sub`): written, read (trailing newline
  /// removed). Errors name the file and the kernel's reason (errc::operation_failed).
  result<void> write(std::string_view c, std::string_view sub, std::string_view file, std::string_view value,
                     diagnostics& diag) const;
  result<std::string> read(std::string_view c, std::string_view sub, std::string_view file, diagnostics& diag) const;

  // The settings, in the file each version keeps them in (values as libvirt's API has them).
  /// cpu.shares (v1) / cpu.weight (v2) of the guest group.
  result<void> set_shares(unsigned long long v, diagnostics& diag) const;
  result<unsigned long long> shares(diagnostics& diag) const;
  /// CFS bandwidth of `sub` ("" the guest, "emulator", "vcpuN"): period in µs, quota in µs
  /// (-1: none). cpu.cfs_period_us + cpu.cfs_quota_us (v1) / cpu.max (v2).
  result<void> set_bandwidth(std::string_view sub, std::optional<unsigned long long> period,
                             std::optional<long long> quota, diagnostics& diag) const;
  struct bandwidth_t {
    unsigned long long period = 0;
    long long quota = -1;
  };
  result<bandwidth_t> bandwidth(std::string_view sub, diagnostics& diag) const;
  /// cpuset.cpus / cpuset.mems of `sub` (a list, "0-3,5").
  result<void> set_cpus(std::string_view sub, std::string_view list, diagnostics& diag) const;
  result<void> set_mems(std::string_view sub, std::string_view list, diagnostics& diag) const;
  result<std::string> mems(std::string_view sub, diagnostics& diag) const;
  /// Memory limits in KiB, memory_unlimited_kib for none: hard (memory.limit_in_bytes /
  /// memory.max), soft (memory.soft_limit_in_bytes / memory.high), swap (memory.memsw.limit_in_bytes,
  /// memory and swap together / memory.swap.max).
  enum class mem_limit { hard, soft, swap };
  result<void> set_memory_limit(mem_limit which, unsigned long long kib, diagnostics& diag) const;
  result<unsigned long long> memory_limit(mem_limit which, diagnostics& diag) const;
  /// I/O: the guest's weight (blkio.weight or blkio.bfq.weight / io.weight or io.bfq.weight),
  /// and per device ("MAJ:MIN") its weight and throttles (0: none).
  enum class io_value { weight, read_bps, write_bps, read_iops, write_iops };
  result<void> set_io_weight(unsigned w, diagnostics& diag) const;
  result<unsigned> io_weight(diagnostics& diag) const;
  result<void> set_device_io(io_value which, std::string_view majmin, unsigned long long v, diagnostics& diag) const;
  /// Every device's value of one kind, "MAJ:MIN" -> value (devices without one are absent).
  result<std::map<std::string, unsigned long long>> device_io(io_value which, diagnostics& diag) const;

  /// Takes the groups down, children first. A group the kernel still calls busy (a thread
  /// not yet gone) is left for retry_remove. Returns whether everything is gone.
  bool remove();

private:
  std::map<std::string, std::filesystem::path, std::less<>> dirs_;  // controller -> guest group
  std::vector<std::string> subs_;                                    // emulator, vcpu0, ...
  bool v2_ = false;
};

/// The default root: /machine (privileged) or /machine/covirt-XXXXXXXX, a hash of the state folder.
std::string default_cgroup_root(bool privileged, const std::filesystem::path& state_dir);

}  // namespace covirt::qemu
