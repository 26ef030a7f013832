// covirt: the remote driver (DRIVER+unix:///PATH, DRIVER+tcp://HOST/PATH, DRIVER+ssh://HOST/PATH):
// libvirt's own RPC protocol to a libvirtd, no libvirt library, on the caller's io_context.
//
// Every operation of the table is one call on the wire (a few take more: restore reads the saved
// image's XML first to learn the domain; the network rows with flags ask for them; the tuning
// Gets ask the count first, the pin infos the host's CPUs and the domain's vCPUs). Calls on
// one connection run concurrently, as many as the caller starts; libvirtd serves
// max_client_requests of them at once (5 by default) and queues the rest.
//
// Domains by name: libvirtd finds a domain by the UUID in {name, uuid, id}. The driver keeps
// what lists, lookups, defines and lifecycle events taught it (name -> uuid and id), so a call
// by name costs no lookup when the name is known; an undefine event drops the name, and a call
// that meets errc::no_domain with a remembered UUID (the domain was undefined and defined again
// under our feet) looks the name up once more and retries once. A domain_ref from a list or
// lookup names that very domain: no retry.
//
// Events: the driver registers for lifecycle events at open; they reach every subscription.
// When the connection drops (libvirtd dies, the network breaks, keepalive gives up) every pending
// call fails at once with the reason, later calls fail the same way, and the event streams end;
// reconnect() opens it again.
#pragma once

#include <covirt/driver.hpp>
#include <covirt/remote/client.hpp>

#include <memory>

namespace covirt::remote {

class driver {
public:
  explicit driver(asio::any_io_executor ex);
  driver(driver&&) noexcept;
  driver& operator=(driver&&) noexcept;
  ~driver();

  /// Connects (client::connect for the URIs), then the handshake virsh performs: AUTH_LIST
  /// (only "none" is supported), keepalive, CONNECT_OPEN with the URI without its transport
  /// ("test:///default") and the read-only flag, the hypervisor's type, the event callback.
  /// Errors: errc::no_connect (unreachable), errc::auth_failed (the daemon wants SASL or
  /// polkit), libvirtd's own (e.g. no_connect for a driver it does not have).
  op<void> open(const uri& u, unsigned flags, diagnostics& diag);
  /// Drops the connection (pending calls fail, event streams end) and opens it again with the
  /// same URI and flags; what the driver knew about domains is forgotten.
  op<void> reconnect(diagnostics& diag);

  asio::any_io_executor get_executor() const noexcept;
  /// The remote hypervisor's type as libvirtd said it at open: "TEST", "QEMU".
  std::string_view type_name() const noexcept;
  event_stream subscribe(std::string domain);

  COVIRT_DRIVER_OPERATIONS(core)
  COVIRT_DRIVER_OPERATIONS(set_memory)
  COVIRT_DRIVER_OPERATIONS(set_vcpus)
  COVIRT_DRIVER_OPERATIONS(autostart)
  /// restore: the saved image's XML (virDomainSaveImageGetXMLDesc) gives the domain's UUID.
  COVIRT_DRIVER_OPERATIONS(save_restore)
  COVIRT_DRIVER_OPERATIONS(core_dump)
  COVIRT_DRIVER_OPERATIONS(block_stats)
  /// The QEMU program's DOMAIN_MONITOR_COMMAND (libvirt-qemu's virDomainQemuMonitorCommand).
  COVIRT_DRIVER_OPERATIONS(monitor_command)
  COVIRT_DRIVER_OPERATIONS(hotplug)
  COVIRT_DRIVER_OPERATIONS(jobs)
  COVIRT_DRIVER_OPERATIONS(networks)
  COVIRT_DRIVER_OPERATIONS(security)
  /// Libvirt's two calls for each Get (the count, then the parameters; the scheduler's count is
  /// GET_SCHEDULER_TYPE's, and with flags 0 it asks GET_SCHEDULER_PARAMETERS as virsh does), with
  /// VIR_TYPED_PARAM_STRING_OKAY added to the Flags calls as libvirt's API adds it.
  COVIRT_DRIVER_OPERATIONS(tuning)
  /// Maps as long as the host's CPU count (virsh's: NODE_GET_CPU_MAP, else NODE_GET_INFO); a
  /// cpumap list ("0-3,^2") becomes such a map, a 'y'/'-' map goes as it stands.
  /// get_vcpu_pin_info: one map per vCPU up to the maximum (GET_VCPUS_FLAGS, as virsh asks).
  COVIRT_DRIVER_OPERATIONS(affinity)
  /// CONNECT_GET_ALL_DOMAIN_STATS, DOMAIN_MEMORY_STATS, DOMAIN_INTERFACE_STATS, DOMAIN_GET_BLOCK_INFO.
  COVIRT_DRIVER_OPERATIONS(stats)

  /// The RPC client under the driver (for tests and benchmarks); replaced by reconnect().
  client& rpc() noexcept;
  /// Domain names the driver knows the UUID of.
  std::size_t known_domains() const noexcept;

  struct state;

private:
  std::shared_ptr<state> s_;
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_set_vcpus<driver> && can_autostart<driver> && can_networks<driver> && can_security<driver> &&
              can_save_restore<driver> && can_core_dump<driver> && can_block_stats<driver> &&
              can_monitor_command<driver> && can_hotplug<driver> && can_jobs<driver> && can_tuning<driver> &&
              can_affinity<driver> && can_stats<driver>);

}  // namespace covirt::remote
