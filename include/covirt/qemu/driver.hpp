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
class driver {
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

  asio::any_io_executor get_executor() const noexcept;
  std::string_view type_name() const noexcept { return "QEMU"; }
  op<void> close(diagnostics& diag);
  op<std::string> get_hostname(diagnostics& diag);
  op<std::uint64_t> get_version(diagnostics& diag);
  op<std::string> get_capabilities(diagnostics& diag);
  op<node_info> node_get_info(diagnostics& diag);
  op<int> get_max_vcpus(std::string_view type, diagnostics& diag);
  op<std::vector<domain_ref>> list_domains(unsigned flags, diagnostics& diag);
  op<domain_ref> lookup_by_name(std::string_view name, diagnostics& diag);
  op<domain_ref> lookup_by_uuid(std::string_view uuid, diagnostics& diag);
  op<domain_ref> lookup_by_id(int id, diagnostics& diag);
  op<domain_ref> define_xml(std::string_view xml, diagnostics& diag);
  op<void> undefine(const domain_key& key, diagnostics& diag);
  op<void> create(const domain_key& key, diagnostics& diag);
  /// flags: 1 = VIR_DOMAIN_START_PAUSED.
  op<domain_ref> create_xml(std::string_view xml, unsigned flags, diagnostics& diag);
  op<void> destroy(const domain_key& key, diagnostics& diag);
  op<void> shutdown(const domain_key& key, diagnostics& diag);
  op<void> reboot(const domain_key& key, diagnostics& diag);
  op<void> suspend(const domain_key& key, diagnostics& diag);
  op<void> resume(const domain_key& key, diagnostics& diag);
  op<domain_info> get_info(const domain_key& key, diagnostics& diag);
  op<std::string> get_os_type(const domain_key& key, diagnostics& diag);
  op<domain_state_info> get_state(const domain_key& key, diagnostics& diag);
  op<std::string> get_xml(const domain_key& key, unsigned flags, diagnostics& diag);
  op<bool> is_active(const domain_key& key, diagnostics& diag);
  op<bool> is_persistent(const domain_key& key, diagnostics& diag);
  event_stream subscribe(std::string domain);

  /// flags: modify::live (QMP balloon), modify::config (the definition), modify::mem_maximum.
  op<void> set_memory(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag);
  /// set_memory with modify::mem_maximum.
  op<void> set_max_memory(const domain_key& key, std::uint64_t kib, diagnostics& diag);
  op<bool> get_autostart(const domain_key& key, diagnostics& diag);
  op<void> set_autostart(const domain_key& key, bool on, diagnostics& diag);

  /// Pauses the guest, migrates its state into `path` (after a covirt header holding the domain
  /// XML), then stops QEMU: shut off, reason saved, event stopped/saved.
  op<void> save(const domain_key& key, std::string_view path, diagnostics& diag);
  /// Starts QEMU with -incoming defer and feeds it the state saved in `path`; event started/restored.
  op<domain_ref> restore(std::string_view path, diagnostics& diag);
  /// dump-guest-memory (ELF, no paging) into `path`.
  op<void> core_dump(const domain_key& key, std::string_view path, unsigned flags, diagnostics& diag);
  /// query-blockstats for the disk with target dev `disk`; errc::invalid_arg for an unknown disk.
  op<covirt::block_stats> block_stats(const domain_key& key, std::string_view disk, diagnostics& diag);
  /// Raw QMP passthrough: QEMU's whole reply as text.
  op<std::string> qemu_monitor_command(const domain_key& key, std::string_view command, diagnostics& diag);

  /// Hotplug of <disk> (virtio, on a free PCI slot; on q35 a free <controller model='pcie-root-port'>)
  /// and <interface> (user, bridge, ethernet) with QMP blockdev-add/netdev-add + device_add.
  /// flags: device_modify::live, ::config, ::current. Detach sends device_del and waits up to
  /// 5 s for QEMU's DEVICE_DELETED (the guest must release the device); later removals are
  /// applied when the event comes.
  op<void> attach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag);
  op<void> detach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag);

  /// The running save/restore/dump/migration and its progress (query-migrate); no job: type none.
  op<job_info> get_job_info(const domain_key& key, diagnostics& diag);
  /// migrate_cancel for save and migration, the feed stops for restore; errc::operation_invalid without a job.
  op<void> abort_job(const domain_key& key, diagnostics& diag);

  /// Migration phases (see covirt::can_migrate); the stream goes over TCP, QEMU to QEMU.
  op<std::string> migrate_begin(const domain_key& key, unsigned flags, diagnostics& diag);
  op<std::string> migrate_prepare(std::string_view xml, std::string_view uri, unsigned flags, diagnostics& diag);
  op<void> migrate_perform(const domain_key& key, std::string_view uri, const migrate_options& opt, diagnostics& diag);
  op<domain_ref> migrate_finish(const domain_key& key, unsigned flags, bool ok, diagnostics& diag);
  op<void> migrate_confirm(const domain_key& key, unsigned flags, bool ok, diagnostics& diag);

  struct state;

private:
  std::shared_ptr<state> s_;
  std::shared_ptr<void> share_;  // this driver's hold on a state shared by every connection to its directories
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_autostart<driver>);
static_assert(can_save_restore<driver> && can_core_dump<driver> && can_block_stats<driver> &&
              can_monitor_command<driver>);
static_assert(can_hotplug<driver> && can_jobs<driver> && can_migrate<driver>);

}  // namespace covirt::qemu

