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
  /// test:///default loads the default; test:///ABSOLUTE/FILE.xml a node file.
  op<void> open(const uri& u, unsigned flags, diagnostics& diag);

  asio::any_io_executor get_executor() const noexcept;
  std::string_view type_name() const noexcept { return "TEST"; }
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
  op<domain_ref> create_xml(std::string_view xml, unsigned flags, diagnostics& diag);
  op<void> destroy(const domain_key& key, diagnostics& diag);
  op<void> shutdown(const domain_key& key, diagnostics& diag);
  op<void> reboot(const domain_key& key, diagnostics& diag);
  op<void> suspend(const domain_key& key, diagnostics& diag);
  op<void> resume(const domain_key& key, diagnostics& diag);
  op<domain_info> get_info(const domain_key& key, diagnostics& diag);
  op<domain_state_info> get_state(const domain_key& key, diagnostics& diag);
  op<std::string> get_os_type(const domain_key& key, diagnostics& diag);
  op<std::string> get_xml(const domain_key& key, unsigned flags, diagnostics& diag);
  op<bool> is_active(const domain_key& key, diagnostics& diag);
  op<bool> is_persistent(const domain_key& key, diagnostics& diag);
  event_stream subscribe(std::string domain);

  op<void> set_memory(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag);
  /// set_memory with modify::mem_maximum.
  op<void> set_max_memory(const domain_key& key, std::uint64_t kib, diagnostics& diag);
  op<void> set_vcpus(const domain_key& key, unsigned count, unsigned flags, diagnostics& diag);
  op<bool> get_autostart(const domain_key& key, diagnostics& diag);
  op<void> set_autostart(const domain_key& key, bool on, diagnostics& diag);

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

}  // namespace covirt::test

