// covirt: the test driver (test:///default, test:///ABSOLUTE/PATH.xml), in memory,
// following libvirt's test driver: its default state, its defaults at define, its rules.
#pragma once

#include <covirt/driver.hpp>

#include <memory>

namespace covirt::test {

/// In-memory hypervisor. All operations complete without I/O; not thread-safe.
class driver : public listed_domains<driver> {
public:
  /// Movable, not copyable (the compiler's own members: the state's deleter is a function).
  explicit driver(asio::any_io_executor ex);

  /// libvirt's test:///default: domain "test" running (id 1), network "default" active.
  result<void> load_default(diagnostics& diag);
  /// A node description file as libvirt's test driver reads it (<node> with <cpu>, <memory>,
  /// <domain> and <network> children, inline or as file='...').
  result<void> load_file(const std::string& path, diagnostics& diag);
  /// test:///default loads the default; test:///ABSOLUTE/FILE.xml a node file.
  op<void> open(const uri& u, unsigned flags, diagnostics& diag);

  std::string_view type_name() const noexcept { return "TEST"; }

  // The table's operations (covirt/operations.hpp), with its signatures, answered at once:
  // NAME_now here, the coroutine NAME from immediate_operations. set_max_memory is
  // set_memory with modify::mem_maximum.
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(core_driver)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(set_memory)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(set_vcpus)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(autostart_driver)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(networks)
  /// libvirt's test driver's: model "testSecurity", DOI "", label "libvirt-test" (enforcing) while running.
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(security)
  /// libvirt 9.0's test driver's (src/test/tuning.cpp): scheduler "fair" with a fixed "weight"
  /// of 50 that no call changes, and no flags for it; memtune (hard_limit, soft_limit,
  /// swap_hard_limit), blkiotune (weight and the per-device lists) and numatune (numa_mode,
  /// numa_nodeset), read from and written to the live or the persistent definition.
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(tuning)
  /// vCPU pins of the running domain only (pin_vcpu_flags takes no flags, as libvirt's), the
  /// emulator pin live or in the definition. Maps have 8 places: the CPUs of the test node's
  /// CPU map (virNodeGetCPUMap says 8, though node_get_info says 16).
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(affinity)
  /// libvirt 9.0's test driver's figures (src/test/stats.cpp): block and interface counters that
  /// grow with the time of day, a balloon's figures derived from the current memory, a terabyte
  /// for every disk with a source, and get_all_domain_stats' "state" group.
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(block_stats)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(stats)

private:
  friend listed_domains<driver>;
  struct state;
  std::unique_ptr<state, void (*)(state*)> s_;
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_set_vcpus<driver> && can_autostart<driver> && can_networks<driver> &&
              can_security<driver> && can_tuning<driver> && can_affinity<driver> &&
              can_block_stats<driver> && can_stats<driver>);

}  // namespace covirt::test

