// covirt: the test driver (test:///default, test:///ABSOLUTE/PATH.xml), in memory,
// following libvirt's test driver: its default state, its defaults at define, its rules.
#pragma once

#include <covirt/driver.hpp>

#include <memory>

namespace covirt::test {

/// In-memory hypervisor. All operations complete without I/O; not thread-safe.
class driver {
public:
  explicit driver(asio::any_io_executor ex);
  driver(driver&&) noexcept;
  driver& operator=(driver&&) noexcept;
  ~driver();

  /// libvirt's test:///default: domain "test" running (id 1), network "default" active.
  result<void> load_default(diagnostics& diag);
  /// A node description file as libvirt's test driver reads it (<node> with <cpu>, <memory>,
  /// <domain> and <network> children, inline or as file='...').
  result<void> load_file(const std::string& path, diagnostics& diag);

  asio::any_io_executor get_executor() const noexcept;
  std::string_view type_name() const noexcept { return "TEST"; }
  op<void> close();
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
  op<void> undefine(std::string_view name, diagnostics& diag);
  op<void> create(std::string_view name, diagnostics& diag);
  op<domain_ref> create_xml(std::string_view xml, unsigned flags, diagnostics& diag);
  op<void> destroy(std::string_view name, diagnostics& diag);
  op<void> shutdown(std::string_view name, diagnostics& diag);
  op<void> reboot(std::string_view name, diagnostics& diag);
  op<void> suspend(std::string_view name, diagnostics& diag);
  op<void> resume(std::string_view name, diagnostics& diag);
  op<domain_info> get_info(std::string_view name, diagnostics& diag);
  op<domain_state_info> get_state(std::string_view name, diagnostics& diag);
  op<std::string> get_os_type(std::string_view name, diagnostics& diag);
  op<std::string> get_xml(std::string_view name, unsigned flags, diagnostics& diag);
  op<bool> is_active(std::string_view name, diagnostics& diag);
  op<bool> is_persistent(std::string_view name, diagnostics& diag);
  event_stream subscribe(std::string domain);

  op<void> set_memory(std::string_view name, std::uint64_t kib, unsigned flags, diagnostics& diag);
  op<void> set_vcpus(std::string_view name, unsigned count, unsigned flags, diagnostics& diag);
  op<bool> get_autostart(std::string_view name, diagnostics& diag);
  op<void> set_autostart(std::string_view name, bool on, diagnostics& diag);

  op<std::vector<network_ref>> list_networks(unsigned flags, diagnostics& diag);
  op<network_ref> lookup_network(std::string_view name, diagnostics& diag);
  op<network_ref> define_network(std::string_view xml, diagnostics& diag);
  op<void> undefine_network(std::string_view name, diagnostics& diag);
  op<void> create_network(std::string_view name, diagnostics& diag);
  op<void> destroy_network(std::string_view name, diagnostics& diag);
  op<std::string> get_network_xml(std::string_view name, unsigned flags, diagnostics& diag);
  op<bool> get_network_autostart(std::string_view name, diagnostics& diag);
  op<void> set_network_autostart(std::string_view name, bool on, diagnostics& diag);
  op<std::string> get_network_bridge_name(std::string_view name, diagnostics& diag);

private:
  struct state;
  std::unique_ptr<state> s_;
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_set_vcpus<driver> && can_autostart<driver> && can_networks<driver>);

/// The factory open() uses for "test" URIs.
op<std::unique_ptr<detail::erased_driver>> open_driver(asio::any_io_executor ex, const uri& u, unsigned flags,
                                                       diagnostics& diag);

}  // namespace covirt::test

namespace covirt::detail {
extern template class driver_model<test::driver>;
}
