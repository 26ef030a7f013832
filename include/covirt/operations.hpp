// covirt: the table of operations. Each operation of the API is declared here once: the
// capability it belongs to, its name, libvirt's API name, whether it changes anything, its result
// and its parameters. From this one list come
//   - the driver concepts (covirt::driver, can_set_memory, ...: driver.hpp),
//   - the type-erased interface and the no_support answer for a driver without it (detail/erased_driver.hpp),
//   - the connection's async_NAME methods with every completion token, and the read-only refusal (connection.hpp).
// Adding an operation is one row here plus the drivers' code.
//
// A row: X(CAPABILITY, NAME, "virApiName", MUTATING, RESULT, (PARAMETERS), (ARGUMENT NAMES)),
// in the list of its capability (COVIRT_OPS_core, COVIRT_OPS_networks, ...). Parameters are
// written as the connection takes them (owning types); a driver takes each by view
// (std::string_view for std::string, const domain_key& for a domain). A driver declares the
// members of a capability with COVIRT_DRIVER_OPERATIONS(capability), from the same rows.
//
// Why an X-macro: the rows must become virtual functions, overriders and public member templates
// with named parameters, which neither plain templates nor Boost.Describe can declare. The macro
// does only that; everything with logic in it (the argument tuple, the concept checks, the
// dispatch) is ordinary templates below, so compiler errors still point at real code.
#pragma once

#include <covirt/error.hpp>
#include <covirt/types.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

// The operations a connection offers, one list per capability (driver.hpp has a concept for each).
#define COVIRT_OPS_core_driver(X)                                                                                      \
  /* Node and connection */                                                                                            \
  X(core, close, "virConnectClose", false, void, (), ())                                                               \
  X(core, get_hostname, "virConnectGetHostname", false, std::string, (), ())                                           \
  /* The hypervisor's version, major*1e6+minor*1e3+micro. */                                                           \
  X(core, get_version, "virConnectGetVersion", false, std::uint64_t, (), ())                                           \
  X(core, get_capabilities, "virConnectGetCapabilities", false, std::string, (), ())                                   \
  X(core, node_get_info, "virNodeGetInfo", false, node_info, (), ())                                                   \
  X(core, get_max_vcpus, "virConnectGetMaxVcpus", false, int, (std::string type), (type))                              \
  /* Domains: definition and lifecycle. create starts a defined domain (virsh start); create_xml  */                   \
  /* starts a transient one (flags: 1 = VIR_DOMAIN_START_PAUSED).                                 */                   \
  X(core, define_xml, "virDomainDefineXML", true, domain_ref, (std::string xml), (xml))                                \
  X(core, undefine, "virDomainUndefine", true, void, (domain_key dom), (dom))                                          \
  X(core, create, "virDomainCreate", true, void, (domain_key dom), (dom))                                              \
  X(core, create_xml, "virDomainCreateXML", true, domain_ref, (std::string xml, unsigned flags), (xml, flags))         \
  X(core, destroy, "virDomainDestroy", true, void, (domain_key dom), (dom))                                            \
  X(core, shutdown, "virDomainShutdown", true, void, (domain_key dom), (dom))                                          \
  X(core, reboot, "virDomainReboot", true, void, (domain_key dom), (dom))                                              \
  X(core, suspend, "virDomainSuspend", true, void, (domain_key dom), (dom))                                            \
  X(core, resume, "virDomainResume", true, void, (domain_key dom), (dom))                                              \
  /* Domains: state and configuration. get_xml flags: xml_flags (inactive: the next boot's). */                        \
  X(core, get_info, "virDomainGetInfo", false, domain_info, (domain_key dom), (dom))                                   \
  X(core, get_os_type, "virDomainGetOSType", false, std::string, (domain_key dom), (dom))                              \
  X(core, get_xml, "virDomainGetXMLDesc", false, std::string, (domain_key dom, unsigned flags), (dom, flags))

// The core rows every driver answers the same way, from its domain list (covirt::listed_domains
// in driver.hpp gives them): listing and lookup (flags: list_flags, 0: every domain), the
// domain's activity, persistence and state.
#define COVIRT_OPS_core_listed(X)                                                                                      \
  X(core, list_domains, "virConnectListAllDomains", false, std::vector<domain_ref>, (unsigned flags), (flags))         \
  X(core, lookup_by_name, "virDomainLookupByName", false, domain_ref, (std::string name), (name))                      \
  X(core, lookup_by_uuid, "virDomainLookupByUUIDString", false, domain_ref, (std::string uuid), (uuid))                \
  X(core, lookup_by_id, "virDomainLookupByID", false, domain_ref, (int id), (id))                                      \
  X(core, is_active, "virDomainIsActive", false, bool, (domain_key dom), (dom))                                        \
  X(core, is_persistent, "virDomainIsPersistent", false, bool, (domain_key dom), (dom))                                \
  X(core, get_state, "virDomainGetState", false, domain_state_info, (domain_key dom), (dom))

#define COVIRT_OPS_core(X) COVIRT_OPS_core_driver(X) COVIRT_OPS_core_listed(X)

#define COVIRT_OPS_set_memory(X)                                                                                       \
  /* flags: modify::live / config / mem_maximum, as virDomainSetMemoryFlags. */                                        \
  X(set_memory, set_memory, "virDomainSetMemoryFlags", true, void, (domain_key dom, std::uint64_t kib, unsigned flags), (dom, kib, flags)) \
  X(set_memory, set_max_memory, "virDomainSetMaxMemory", true, void, (domain_key dom, std::uint64_t kib), (dom, kib))

#define COVIRT_OPS_set_vcpus(X)                                                                                        \
  /* flags: modify::live / config / vcpu_maximum, as virDomainSetVcpusFlags. */                                        \
  X(set_vcpus, set_vcpus, "virDomainSetVcpusFlags", true, void, (domain_key dom, unsigned count, unsigned flags), (dom, count, flags))

// get_autostart is answered by the domain list (covirt::listed_domains), set_autostart by the driver.
#define COVIRT_OPS_autostart_listed(X)                                                                                 \
  X(autostart, get_autostart, "virDomainGetAutostart", false, bool, (domain_key dom), (dom))
#define COVIRT_OPS_autostart_driver(X)                                                                                 \
  X(autostart, set_autostart, "virDomainSetAutostart", true, void, (domain_key dom, bool on), (dom, on))
#define COVIRT_OPS_autostart(X) COVIRT_OPS_autostart_listed(X) COVIRT_OPS_autostart_driver(X)

#define COVIRT_OPS_save_restore(X)                                                                                     \
  /* save: the guest's state to `path`, then it stops (shut off, reason saved); restore starts it again. */            \
  X(save_restore, save, "virDomainSave", true, void, (domain_key dom, std::string path), (dom, path))                  \
  X(save_restore, restore, "virDomainRestore", true, domain_ref, (std::string path), (path))

#define COVIRT_OPS_core_dump(X)                                                                                        \
  /* flags: dump_flags (memory_only: an ELF of the guest's memory). */                                                 \
  X(core_dump, core_dump, "virDomainCoreDumpWithFormat", true, void, (domain_key dom, std::string path, unsigned flags), (dom, path, flags))

#define COVIRT_OPS_block_stats(X)                                                                                      \
  /* disk: the target dev ("vda"). */                                                                                  \
  X(block_stats, block_stats, "virDomainBlockStats", false, covirt::block_stats, (domain_key dom, std::string disk), (dom, disk))

#define COVIRT_OPS_monitor_command(X)                                                                                  \
  /* Raw QMP passthrough: `command` is a JSON command object; the result is QEMU's whole reply. */                     \
  X(monitor_command, qemu_monitor_command, "virDomainQemuMonitorCommand", true, std::string, (domain_key dom, std::string command), (dom, command))

#define COVIRT_OPS_hotplug(X)                                                                                          \
  /* One device (<disk>, <interface>) as XML; flags: device_modify (live: the running guest,     */                    \
  /* config: the definition, current: live if running). A live detach waits a few seconds for   */                     \
  /* the guest to release the device, then lets the removal finish when it does, as libvirt.    */                     \
  X(hotplug, attach_device, "virDomainAttachDeviceFlags", true, void, (domain_key dom, std::string xml, unsigned flags), (dom, xml, flags)) \
  X(hotplug, detach_device, "virDomainDetachDeviceFlags", true, void, (domain_key dom, std::string xml, unsigned flags), (dom, xml, flags))

#define COVIRT_OPS_jobs(X)                                                                                             \
  /* The long job running on the domain (save, restore, dump, migration) and its progress;      */                     \
  /* abort_job stops it, and the job's own call fails with errc::operation_aborted.             */                     \
  X(jobs, get_job_info, "virDomainGetJobInfo", false, job_info, (domain_key dom), (dom))                               \
  X(jobs, abort_job, "virDomainAbortJob", true, void, (domain_key dom), (dom))

#define COVIRT_OPS_networks(X)                                                                                         \
  /* Networks, by name (lookup_network also by UUID). */                                                               \
  X(networks, list_networks, "virConnectListAllNetworks", false, std::vector<network_ref>, (unsigned flags), (flags))  \
  X(networks, lookup_network, "virNetworkLookupByName", false, network_ref, (std::string name), (name))                \
  X(networks, define_network, "virNetworkDefineXML", true, network_ref, (std::string xml), (xml))                      \
  X(networks, undefine_network, "virNetworkUndefine", true, void, (std::string name), (name))                          \
  X(networks, create_network, "virNetworkCreate", true, void, (std::string name), (name))                              \
  X(networks, destroy_network, "virNetworkDestroy", true, void, (std::string name), (name))                            \
  X(networks, get_network_xml, "virNetworkGetXMLDesc", false, std::string, (std::string name, unsigned flags), (name, flags)) \
  X(networks, get_network_autostart, "virNetworkGetAutostart", false, bool, (std::string name), (name))                \
  X(networks, set_network_autostart, "virNetworkSetAutostart", true, void, (std::string name, bool on), (name, on))    \
  X(networks, get_network_bridge_name, "virNetworkGetBridgeName", false, std::string, (std::string name), (name))

#define COVIRT_OPS_vcpu_pinning(X)                                                                                     \
  /* cpumap: the host CPUs vCPU `vcpu` may run on, one 'y' or '-' per CPU, or a list "0-3,^2". */                      \
  X(vcpu_pinning, pin_vcpu, "virDomainPinVcpu", true, void, (domain_key dom, unsigned vcpu, std::string cpumap), (dom, vcpu, cpumap)) \
  X(vcpu_pinning, get_vcpus, "virDomainGetVcpus", false, std::vector<vcpu_info>, (domain_key dom), (dom))

#define COVIRT_OPS_native_config(X)                                                                                    \
  /* virsh domxml-from-native / domxml-to-native: format "xen-sxpr", "xen-xm", "xen-xl". */                            \
  X(native_config, domain_xml_from_native, "virConnectDomainXMLFromNative", false, std::string, (std::string format, std::string config), (format, config)) \
  X(native_config, domain_xml_to_native, "virConnectDomainXMLToNative", false, std::string, (std::string format, std::string xml), (format, xml))

// The security driver's model and a running domain's label (virsh dominfo's Security lines).
#define COVIRT_OPS_security(X)                                                                                         \
  X(security, node_get_security_model, "virNodeGetSecurityModel", false, security_model, (), ())                      \
  X(security, get_security_label, "virDomainGetSecurityLabel", false, security_label, (domain_key dom), (dom))

// Resource tuning (virsh schedinfo, memtune, blkiotune, numatune). flags: modify::live /
// modify::config / modify::current (0: live if running). Parameters are libvirt's typed
// parameters with its field names ("cpu_shares", "hard_limit", "weight", "numa_nodeset", ...).
#define COVIRT_OPS_tuning(X)                                                                                           \
  X(tuning, get_scheduler_type, "virDomainGetSchedulerType", false, std::string, (domain_key dom), (dom))              \
  X(tuning, get_scheduler_parameters, "virDomainGetSchedulerParametersFlags", false, typed_params, (domain_key dom, unsigned flags), (dom, flags)) \
  X(tuning, set_scheduler_parameters, "virDomainSetSchedulerParametersFlags", true, void, (domain_key dom, typed_params params, unsigned flags), (dom, params, flags)) \
  X(tuning, get_memory_parameters, "virDomainGetMemoryParameters", false, typed_params, (domain_key dom, unsigned flags), (dom, flags)) \
  X(tuning, set_memory_parameters, "virDomainSetMemoryParameters", true, void, (domain_key dom, typed_params params, unsigned flags), (dom, params, flags)) \
  X(tuning, get_blkio_parameters, "virDomainGetBlkioParameters", false, typed_params, (domain_key dom, unsigned flags), (dom, flags)) \
  X(tuning, set_blkio_parameters, "virDomainSetBlkioParameters", true, void, (domain_key dom, typed_params params, unsigned flags), (dom, params, flags)) \
  X(tuning, get_numa_parameters, "virDomainGetNumaParameters", false, typed_params, (domain_key dom, unsigned flags), (dom, flags)) \
  X(tuning, set_numa_parameters, "virDomainSetNumaParameters", true, void, (domain_key dom, typed_params params, unsigned flags), (dom, params, flags))

// Where vCPUs and the emulator threads may run, in the live guest or its definition (virsh
// vcpupin and emulatorpin with --live/--config). A map is one 'y' or '-' per host CPU; a
// cpumap argument may also be a list ("0-3,^2"). flags: modify::live / config / current.
#define COVIRT_OPS_affinity(X)                                                                                         \
  X(affinity, pin_vcpu_flags, "virDomainPinVcpuFlags", true, void, (domain_key dom, unsigned vcpu, std::string cpumap, unsigned flags), (dom, vcpu, cpumap, flags)) \
  X(affinity, get_vcpu_pin_info, "virDomainGetVcpuPinInfo", false, std::vector<std::string>, (domain_key dom, unsigned flags), (dom, flags)) \
  X(affinity, pin_emulator, "virDomainPinEmulator", true, void, (domain_key dom, std::string cpumap, unsigned flags), (dom, cpumap, flags)) \
  X(affinity, get_emulator_pin_info, "virDomainGetEmulatorPinInfo", false, std::string, (domain_key dom, unsigned flags), (dom, flags))

// Statistics for monitoring agents (virsh domstats, dommemstat, domifstat, domblkinfo).
#define COVIRT_OPS_stats(X)                                                                                            \
  /* doms: the domains (empty: every domain the list filters of `flags` let through); stats:    */                     \
  /* stats_types (0: every group the driver has); flags: list_flags' first eight filters and   */                     \
  /* stats_flags (enforce: a group the driver lacks is an error instead of left out).          */                     \
  X(stats, get_all_domain_stats, "virConnectGetAllDomainStats", false, std::vector<domain_stats>, (std::vector<domain_key> doms, unsigned stats, unsigned flags), (doms, stats, flags)) \
  X(stats, memory_stats, "virDomainMemoryStats", false, std::vector<memory_stat>, (domain_key dom, unsigned flags), (dom, flags)) \
  /* device: the interface's target dev ("vnet0") or its MAC address. */                                               \
  X(stats, interface_stats, "virDomainInterfaceStats", false, covirt::interface_stats, (domain_key dom, std::string device), (dom, device)) \
  /* disk: the target dev ("vda") or the source's path. */                                                             \
  X(stats, get_block_info, "virDomainGetBlockInfo", false, block_info, (domain_key dom, std::string disk, unsigned flags), (dom, disk, flags))

#define COVIRT_OPERATIONS(X) COVIRT_OPS_core(X) COVIRT_OPS_set_memory(X) COVIRT_OPS_set_vcpus(X) COVIRT_OPS_autostart(X) COVIRT_OPS_save_restore(X) COVIRT_OPS_core_dump(X) COVIRT_OPS_block_stats(X) COVIRT_OPS_monitor_command(X) COVIRT_OPS_hotplug(X) COVIRT_OPS_jobs(X) COVIRT_OPS_networks(X) COVIRT_OPS_vcpu_pinning(X) COVIRT_OPS_native_config(X) COVIRT_OPS_security(X) COVIRT_OPS_tuning(X) COVIRT_OPS_affinity(X) COVIRT_OPS_stats(X)

// Live migration, libvirt's five phases (virDomainMigrate3, protocol v3). Drivers have them and
// the erased interface carries them; the connection offers one call, async_migrate, that runs
// them across two drivers: begin on the source gives the domain XML; prepare on the destination
// starts QEMU waiting for the state and returns the URI to send it to; perform on the source
// sends it; finish on the destination runs the guest (ok) or kills it; confirm on the source
// stops its copy (ok) or resumes it.
#define COVIRT_OPS_migrate(X)                                                                                     \
  X(migrate, migrate_begin, "virDomainMigrateBegin3", true, std::string, (domain_key dom, unsigned flags),            \
    (dom, flags))                                                                                                      \
  X(migrate, migrate_prepare, "virDomainMigratePrepare3", true, std::string,                                           \
    (std::string xml, std::string uri, unsigned flags), (xml, uri, flags))                                             \
  X(migrate, migrate_perform, "virDomainMigratePerform3", true, void,                                                  \
    (domain_key dom, std::string uri, migrate_options opt), (dom, uri, opt))                                           \
  X(migrate, migrate_finish, "virDomainMigrateFinish3", true, domain_ref, (domain_key dom, unsigned flags, bool ok),   \
    (dom, flags, ok))                                                                                                  \
  X(migrate, migrate_confirm, "virDomainMigrateConfirm3", true, void, (domain_key dom, unsigned flags, bool ok),      \
    (dom, flags, ok))

namespace covirt {

namespace asio = boost::asio;

/// The groups a driver offers whole or not at all: `core` every driver has; the others are optional.
enum class capability { core, set_memory, set_vcpus, autostart, networks, save_restore, core_dump, block_stats,
                        monitor_command, hotplug, jobs, migrate, vcpu_pinning, native_config, security,
                        tuning, affinity, stats };

namespace detail {
template <class Signature>
struct args_of;
template <class... P>
struct args_of<void(P...)> { using type = std::tuple<std::decay_t<P>...>; };

/// The same arguments as references, for the erased interface: the caller keeps the objects
/// (the connection's coroutine frame, or the owning tuple) alive across the driver's co_await.
template <class Signature>
struct refs_of;
template <class... P>
struct refs_of<void(P...)> { using type = std::tuple<const std::decay_t<P>&...>; };

/// How a driver takes a parameter the connection owns: strings as views, classes by const
/// reference, numbers by value.
template <class T>
struct driver_param { using type = std::conditional_t<std::is_scalar_v<T>, T, const T&>; };
template <>
struct driver_param<std::string> { using type = std::string_view; };

template <class R, class Signature>
struct driver_fn_of;
template <class R, class... P>
struct driver_fn_of<R, void(P...)> {
  using type = asio::awaitable<result<R>>(typename driver_param<std::decay_t<P>>::type..., diagnostics&);
  using now = result<R>(typename driver_param<std::decay_t<P>>::type..., diagnostics&);
};

/// Moves the connection's parameters into the operation's argument tuple (one move each).
template <class Tuple, class... A>
Tuple take(A&... a) { return Tuple{std::move(a)...}; }
}  // namespace detail

/// One tag type per operation, with the row's facts. `invoke` calls the driver's member of that
/// name; it takes part in overload resolution only where the driver has such a member, which is
/// what the concepts in driver.hpp test.
namespace ops {
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS)                                                             \
  struct NAME {                                                                                                      \
    static constexpr std::string_view name = #NAME;                                                                  \
    static constexpr const char* api = API;                                                                          \
    static constexpr bool mutating = MUT;                                                                            \
    static constexpr capability cap = capability::CAP;                                                               \
    using result_type = RET;                                                                                         \
    using args = typename detail::args_of<void PARAMS>::type;                                                        \
    using refs = typename detail::refs_of<void PARAMS>::type;                                                        \
    using driver_fn = typename detail::driver_fn_of<RET, void PARAMS>::type;                                         \
    using now_fn = typename detail::driver_fn_of<RET, void PARAMS>::now;                                             \
    template <class D, class... A>                                                                                   \
    static auto invoke(D& d, diagnostics& g, const A&... a) -> decltype(d.NAME(a..., g)) { return d.NAME(a..., g); } \
    template <class D, class... A>                                                                                   \
    static auto invoke_now(D& d, diagnostics& g, const A&... a) -> decltype(d.NAME##_now(a..., g)) {                 \
      return d.NAME##_now(a..., g);                                                                                  \
    }                                                                                                                \
  };
COVIRT_OPERATIONS(COVIRT_X)
COVIRT_OPS_migrate(COVIRT_X)
#undef COVIRT_X
}  // namespace ops

}  // namespace covirt

/// Inside a driver class: declares its members for every row of capability CAP, with the
/// signatures the concepts expect (`COVIRT_DRIVER_OPERATIONS(core)`); the driver defines them.
#define COVIRT_DECLARE_OP(CAP, NAME, API, MUT, RET, PARAMS, ARGS) ::covirt::ops::NAME::driver_fn NAME;
#define COVIRT_DRIVER_OPERATIONS(CAP) COVIRT_OPS_##CAP(COVIRT_DECLARE_OP)
/// The same for a driver of immediate operations (covirt::immediate_operations): declares
/// `result<T> NAME_now(params..., diagnostics&)` for every row of CAP.
#define COVIRT_DECLARE_NOW(CAP, NAME, API, MUT, RET, PARAMS, ARGS) ::covirt::ops::NAME::now_fn NAME##_now;
#define COVIRT_DRIVER_IMMEDIATE_OPERATIONS(CAP) COVIRT_OPS_##CAP(COVIRT_DECLARE_NOW)
