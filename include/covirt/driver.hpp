// covirt: what a driver is. One concept for the operations every hypervisor has,
// one small capability concept per optional operation.
//
// Every operation is a coroutine that returns its error as a value and the peer's
// words in `diag`: `asio::awaitable<result<T>> op(args..., diagnostics& diag)`.
// Arguments passed by view must outlive the co_await (the connection guarantees it).
#pragma once

#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/types.hpp>
#include <covirt/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace covirt {

namespace asio = boost::asio;

template <class T>
using op = asio::awaitable<result<T>>;

/// The core every driver has: node facts, domain listing and lookup, the lifecycle, XML, events.
template <class D>
concept driver = requires(D& d, std::string_view s, unsigned flags, int id, diagnostics& diag) {
  { d.get_executor() } -> std::convertible_to<asio::any_io_executor>;
  { d.type_name() } -> std::convertible_to<std::string_view>;  // virConnectGetType: "TEST", "QEMU", "Xen"
  { d.close() } -> std::same_as<op<void>>;
  { d.get_hostname(diag) } -> std::same_as<op<std::string>>;
  { d.get_version(diag) } -> std::same_as<op<std::uint64_t>>;  // hypervisor version, major*1e6+minor*1e3+micro
  { d.get_capabilities(diag) } -> std::same_as<op<std::string>>;
  { d.node_get_info(diag) } -> std::same_as<op<node_info>>;
  { d.get_max_vcpus(s, diag) } -> std::same_as<op<int>>;
  { d.list_domains(flags, diag) } -> std::same_as<op<std::vector<domain_ref>>>;
  { d.lookup_by_name(s, diag) } -> std::same_as<op<domain_ref>>;
  { d.lookup_by_uuid(s, diag) } -> std::same_as<op<domain_ref>>;
  { d.lookup_by_id(id, diag) } -> std::same_as<op<domain_ref>>;
  { d.define_xml(s, diag) } -> std::same_as<op<domain_ref>>;
  { d.undefine(s, diag) } -> std::same_as<op<void>>;
  { d.create(s, diag) } -> std::same_as<op<void>>;  // start a defined domain (virDomainCreate)
  { d.create_xml(s, flags, diag) } -> std::same_as<op<domain_ref>>;  // transient
  { d.destroy(s, diag) } -> std::same_as<op<void>>;
  { d.shutdown(s, diag) } -> std::same_as<op<void>>;
  { d.reboot(s, diag) } -> std::same_as<op<void>>;
  { d.suspend(s, diag) } -> std::same_as<op<void>>;
  { d.resume(s, diag) } -> std::same_as<op<void>>;
  { d.get_info(s, diag) } -> std::same_as<op<domain_info>>;
  { d.get_os_type(s, diag) } -> std::same_as<op<std::string>>;  // virDomainGetOSType
  { d.get_state(s, diag) } -> std::same_as<op<domain_state_info>>;
  { d.get_xml(s, flags, diag) } -> std::same_as<op<std::string>>;
  { d.is_active(s, diag) } -> std::same_as<op<bool>>;
  { d.is_persistent(s, diag) } -> std::same_as<op<bool>>;
  { d.subscribe(std::string{}) } -> std::same_as<event_stream>;
};

template <class D>
concept can_set_memory = driver<D> && requires(D& d, std::string_view s, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  { d.set_memory(s, kib, flags, diag) } -> std::same_as<op<void>>;  // flags: modify::live/config/mem_maximum
};

template <class D>
concept can_set_vcpus = driver<D> && requires(D& d, std::string_view s, unsigned n, unsigned flags, diagnostics& diag) {
  { d.set_vcpus(s, n, flags, diag) } -> std::same_as<op<void>>;
};

template <class D>
concept can_autostart = driver<D> && requires(D& d, std::string_view s, bool on, diagnostics& diag) {
  { d.get_autostart(s, diag) } -> std::same_as<op<bool>>;
  { d.set_autostart(s, on, diag) } -> std::same_as<op<void>>;
};

template <class D>
concept can_networks = driver<D> && requires(D& d, std::string_view s, unsigned flags, bool on, diagnostics& diag) {
  { d.list_networks(flags, diag) } -> std::same_as<op<std::vector<network_ref>>>;
  { d.lookup_network(s, diag) } -> std::same_as<op<network_ref>>;  // by name or UUID
  { d.define_network(s, diag) } -> std::same_as<op<network_ref>>;
  { d.undefine_network(s, diag) } -> std::same_as<op<void>>;
  { d.create_network(s, diag) } -> std::same_as<op<void>>;
  { d.destroy_network(s, diag) } -> std::same_as<op<void>>;
  { d.get_network_xml(s, flags, diag) } -> std::same_as<op<std::string>>;
  { d.get_network_autostart(s, diag) } -> std::same_as<op<bool>>;
  { d.set_network_autostart(s, on, diag) } -> std::same_as<op<void>>;
  { d.get_network_bridge_name(s, diag) } -> std::same_as<op<std::string>>;
};

/// virDomainSave / virDomainRestore: the guest's memory and device state to a file and back.
template <class D>
concept can_save_restore = driver<D> && requires(D& d, std::string_view s, diagnostics& diag) {
  { d.save(s, s, diag) } -> std::same_as<op<void>>;  // (name, path)
  { d.restore(s, diag) } -> std::same_as<op<domain_ref>>;  // (path)
};

/// virDomainCoreDumpWithFormat.
template <class D>
concept can_core_dump = driver<D> && requires(D& d, std::string_view s, unsigned flags, diagnostics& diag) {
  { d.core_dump(s, s, flags, diag) } -> std::same_as<op<void>>;  // (name, path, dump_flags)
};

/// virDomainBlockStats.
template <class D>
concept can_block_stats = driver<D> && requires(D& d, std::string_view s, diagnostics& diag) {
  { d.block_stats(s, s, diag) } -> std::same_as<op<block_stats>>;  // (name, disk target dev)
};

/// virDomainQemuMonitorCommand: raw monitor passthrough.
template <class D>
concept can_monitor_command = driver<D> && requires(D& d, std::string_view s, diagnostics& diag) {
  { d.qemu_monitor_command(s, s, diag) } -> std::same_as<op<std::string>>;  // (name, command text)
};

/// virDomainAttachDeviceFlags / virDomainDetachDeviceFlags: one device's XML (<disk>, <interface>).
template <class D>
concept can_hotplug = driver<D> && requires(D& d, std::string_view s, unsigned flags, diagnostics& diag) {
  { d.attach_device(s, s, flags, diag) } -> std::same_as<op<void>>;  // (name, device XML, device_modify)
  { d.detach_device(s, s, flags, diag) } -> std::same_as<op<void>>;
};

/// virDomainGetJobInfo / virDomainAbortJob: progress of a long job, and stopping it.
/// Neither waits for the domain's job: they are asked while it runs.
template <class D>
concept can_jobs = driver<D> && requires(D& d, std::string_view s, diagnostics& diag) {
  { d.get_job_info(s, diag) } -> std::same_as<op<job_info>>;
  { d.abort_job(s, diag) } -> std::same_as<op<void>>;
};

/// Live migration, libvirt's five phases (virDomainMigrate3 with the v3 protocol). A caller
/// (covirt::connection::async_migrate) runs them across two drivers: begin on the source
/// gives the domain XML; prepare on the destination starts QEMU waiting for the state and
/// returns the URI to send it to; perform on the source sends it; finish on the destination
/// runs the guest (ok) or kills it; confirm on the source stops its copy (ok) or resumes it.
template <class D>
concept can_migrate = driver<D> && requires(D& d, std::string_view s, unsigned flags, bool ok,
                                            const migrate_options& opt, diagnostics& diag) {
  { d.migrate_begin(s, flags, diag) } -> std::same_as<op<std::string>>;          // (name) -> XML
  { d.migrate_prepare(s, s, flags, diag) } -> std::same_as<op<std::string>>;     // (XML, URI wish) -> URI
  { d.migrate_perform(s, s, opt, diag) } -> std::same_as<op<void>>;              // (name, URI, options)
  { d.migrate_finish(s, flags, ok, diag) } -> std::same_as<op<domain_ref>>;      // (name, performed?)
  { d.migrate_confirm(s, flags, ok, diag) } -> std::same_as<op<void>>;           // (name, finished?)
};

}  // namespace covirt
