// covirt: the QEMU driver (qemu:///session, qemu:///system). In-process, no daemon: it runs
// real qemu-system-* processes, each in its own session, and controls each over its QMP unix
// socket, all on the caller's io_context.
//
// State lives on disk (see qemu/state.hpp): persistent definitions in the config dir, one
// runtime record per running guest in the state dir. Guests outlive the driver: destroying it
// (or the connection) closes the QMP sockets and leaves the guests running; a new driver on
// the same directories re-attaches to them (same ids) and drops records whose process is gone.
//
// Several connections to the same directories in one program (say a read-only one beside a
// read-write one) share one driver state, as two libvirt connections share one daemon: the same
// QMP connections, jobs and events. Another program on the same directories is refused with
// errc::resource_busy while this one holds them (QEMU's monitor serves one client at a time).
//
// Operations on one domain are serialized (one job at a time per domain); operations on
// different domains run concurrently. Lifecycle events come from QMP events (STOP, RESUME,
// SHUTDOWN, GUEST_PANICKED, SUSPEND, WAKEUP) and from the QEMU process exit (pidfd).
#pragma once

#include <covirt/driver.hpp>

#include <functional>
#include <memory>

namespace covirt::qemu {

/// The QEMU driver. Not thread-safe: use it from its executor.
class driver : public listed_domains<driver> {
public:
  explicit driver(asio::any_io_executor ex);
  driver(driver&&) noexcept;
  driver& operator=(driver&&) noexcept;
  /// Closes the QMP connections and stops watching; running guests keep running.
  ~driver();

  /// Resolves the directories of `u`, loads the definitions, re-attaches to running guests
  /// (stale runtime records are removed, their domains shut off) and starts autostart domains.
  /// Errors: errc::invalid_arg (bad URI path or query), errc::operation_denied (qemu:///system
  /// when not root), errc::operation_failed (cannot create the directories).
  op<void> open(const uri& u, unsigned flags, diagnostics& diag);

  /// For tests: replaces the /dev/kvm probe (access(R_OK|W_OK)) used when a domain starts.
  void set_kvm_probe(std::function<bool()> probe);

  std::string_view type_name() const noexcept { return "QEMU"; }

  // The table's operations (covirt/operations.hpp), with its signatures; listing and lookup
  // come from listed_domains, answered at once by the domain list.
  COVIRT_DRIVER_OPERATIONS(core_driver)
  /// set_memory flags: modify::live (QMP balloon), modify::config (the definition), modify::mem_maximum.
  COVIRT_DRIVER_OPERATIONS(set_memory)
  COVIRT_DRIVER_OPERATIONS(autostart_driver)
  /// save: pauses the guest, migrates its state into the file (after a covirt header holding the
  /// domain XML), then stops QEMU: shut off, reason saved, event stopped/saved. restore: starts
  /// QEMU with -incoming defer and feeds it the saved state; event started/restored.
  COVIRT_DRIVER_OPERATIONS(save_restore)
  /// dump-guest-memory (ELF, no paging).
  COVIRT_DRIVER_OPERATIONS(core_dump)
  /// query-blockstats for the disk with that target dev; errc::invalid_arg for an unknown disk.
  COVIRT_DRIVER_OPERATIONS(block_stats)
  /// Raw QMP passthrough: QEMU's whole reply as text.
  COVIRT_DRIVER_OPERATIONS(monitor_command)
  /// Hotplug of <disk> (virtio, on a free PCI slot; on q35 a free <controller model='pcie-root-port'>)
  /// and <interface> (user, bridge, ethernet) with QMP blockdev-add/netdev-add + device_add.
  /// Detach sends device_del and waits up to 5 s for QEMU's DEVICE_DELETED (the guest must
  /// release the device); later removals are applied when the event comes.
  COVIRT_DRIVER_OPERATIONS(hotplug)
  /// The running save/restore/dump/migration and its progress (query-migrate); no job: type none.
  /// abort_job: migrate_cancel for save and migration, the feed stops for restore;
  /// errc::operation_invalid without a job.
  COVIRT_DRIVER_OPERATIONS(jobs)
  /// Migration phases (see covirt::can_migrate); the stream goes over TCP, QEMU to QEMU.
  COVIRT_DRIVER_OPERATIONS(migrate)
  /// As root, libvirt's DAC model (DOI "0"): QEMU runs as the domain's <seclabel model='dac'>
  /// label ("+UID:+GID"; dynamic: the driver's own) and its images belong to that label while it
  /// runs. Unprivileged, libvirt's "none" model: QEMU runs as the caller (src/qemu/security.cpp).
  COVIRT_DRIVER_OPERATIONS(security)
  /// schedinfo, memtune, blkiotune, numatune: live through the guest's cgroups (src/qemu/cgroup.hpp),
  /// or in the definition (src/qemu/tuning_live.cpp).
  COVIRT_DRIVER_OPERATIONS(tuning)
  /// vcpupin, emulatorpin (the threads' affinity and their cpusets), vcpuinfo (query-cpus-fast, /proc).
  COVIRT_DRIVER_OPERATIONS(affinity)
  COVIRT_DRIVER_OPERATIONS(vcpu_pinning)
  /// domstats and friends, with libvirt's QEMU driver's fields (src/qemu/stats.cpp): the
  /// kernel's counters (/proc, cpuacct, the taps), the images' sizes, QEMU's block and balloon
  /// figures; the domains of one call are asked concurrently, without taking their jobs.
  COVIRT_DRIVER_OPERATIONS(stats)

  struct state;

private:
  friend listed_domains<driver>;
  std::shared_ptr<state> s_;
  std::shared_ptr<void> share_;  // this driver's hold on a state shared by every connection to its directories
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_autostart<driver>);
static_assert(can_save_restore<driver> && can_core_dump<driver> && can_block_stats<driver> &&
              can_monitor_command<driver>);
static_assert(can_hotplug<driver> && can_jobs<driver> && can_migrate<driver> && can_security<driver>);
static_assert(can_tuning<driver> && can_affinity<driver> && can_vcpu_pinning<driver> && can_stats<driver>);

}  // namespace covirt::qemu

