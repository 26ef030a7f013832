// covirt internals: the type-erased driver behind covirt::connection.
#pragma once

#include <covirt/driver.hpp>

#include <utility>

namespace covirt::detail {

// Each member returns the driver's awaitable directly (no extra coroutine frame):
// views passed in must outlive the co_await, which the connection guarantees.
class erased_driver {
public:
  virtual ~erased_driver() = default;
  virtual asio::any_io_executor get_executor() = 0;
  virtual std::string_view type_name() = 0;
  virtual op<void> close() = 0;
  virtual op<std::string> get_hostname(diagnostics&) = 0;
  virtual op<std::uint64_t> get_version(diagnostics&) = 0;
  virtual op<std::string> get_capabilities(diagnostics&) = 0;
  virtual op<node_info> node_get_info(diagnostics&) = 0;
  virtual op<int> get_max_vcpus(std::string_view, diagnostics&) = 0;
  virtual op<std::vector<domain_ref>> list_domains(unsigned, diagnostics&) = 0;
  virtual op<domain_ref> lookup_by_name(std::string_view, diagnostics&) = 0;
  virtual op<domain_ref> lookup_by_uuid(std::string_view, diagnostics&) = 0;
  virtual op<domain_ref> lookup_by_id(int, diagnostics&) = 0;
  virtual op<domain_ref> define_xml(std::string_view, diagnostics&) = 0;
  virtual op<void> undefine(std::string_view, diagnostics&) = 0;
  virtual op<void> create(std::string_view, diagnostics&) = 0;
  virtual op<domain_ref> create_xml(std::string_view, unsigned, diagnostics&) = 0;
  virtual op<void> destroy(std::string_view, diagnostics&) = 0;
  virtual op<void> shutdown(std::string_view, diagnostics&) = 0;
  virtual op<void> reboot(std::string_view, diagnostics&) = 0;
  virtual op<void> suspend(std::string_view, diagnostics&) = 0;
  virtual op<void> resume(std::string_view, diagnostics&) = 0;
  virtual op<domain_info> get_info(std::string_view, diagnostics&) = 0;
  virtual op<std::string> get_os_type(std::string_view, diagnostics&) = 0;
  virtual op<domain_state_info> get_state(std::string_view, diagnostics&) = 0;
  virtual op<std::string> get_xml(std::string_view, unsigned, diagnostics&) = 0;
  virtual op<bool> is_active(std::string_view, diagnostics&) = 0;
  virtual op<bool> is_persistent(std::string_view, diagnostics&) = 0;
  virtual event_stream subscribe(std::string) = 0;
  // capabilities
  virtual op<void> set_memory(std::string_view, std::uint64_t, unsigned, diagnostics&) = 0;
  virtual op<void> set_vcpus(std::string_view, unsigned, unsigned, diagnostics&) = 0;
  virtual op<bool> get_autostart(std::string_view, diagnostics&) = 0;
  virtual op<void> set_autostart(std::string_view, bool, diagnostics&) = 0;
  virtual op<std::vector<network_ref>> list_networks(unsigned, diagnostics&) = 0;
  virtual op<network_ref> lookup_network(std::string_view, diagnostics&) = 0;
  virtual op<network_ref> define_network(std::string_view, diagnostics&) = 0;
  virtual op<void> undefine_network(std::string_view, diagnostics&) = 0;
  virtual op<void> create_network(std::string_view, diagnostics&) = 0;
  virtual op<void> destroy_network(std::string_view, diagnostics&) = 0;
  virtual op<std::string> get_network_xml(std::string_view, unsigned, diagnostics&) = 0;
  virtual op<bool> get_network_autostart(std::string_view, diagnostics&) = 0;
  virtual op<void> set_network_autostart(std::string_view, bool, diagnostics&) = 0;
  virtual op<std::string> get_network_bridge_name(std::string_view, diagnostics&) = 0;
  virtual op<void> save(std::string_view, std::string_view, diagnostics&) = 0;
  virtual op<domain_ref> restore(std::string_view, diagnostics&) = 0;
  virtual op<void> core_dump(std::string_view, std::string_view, unsigned, diagnostics&) = 0;
  virtual op<block_stats> get_block_stats(std::string_view, std::string_view, diagnostics&) = 0;
  virtual op<std::string> qemu_monitor_command(std::string_view, std::string_view, diagnostics&) = 0;
  virtual op<void> attach_device(std::string_view, std::string_view, unsigned, diagnostics&) = 0;
  virtual op<void> detach_device(std::string_view, std::string_view, unsigned, diagnostics&) = 0;
  virtual op<job_info> get_job_info(std::string_view, diagnostics&) = 0;
  virtual op<void> abort_job(std::string_view, diagnostics&) = 0;
  virtual op<std::string> migrate_begin(std::string_view, unsigned, diagnostics&) = 0;
  virtual op<std::string> migrate_prepare(std::string_view, std::string_view, unsigned, diagnostics&) = 0;
  virtual op<void> migrate_perform(std::string_view, std::string_view, const migrate_options&, diagnostics&) = 0;
  virtual op<domain_ref> migrate_finish(std::string_view, unsigned, bool, diagnostics&) = 0;
  virtual op<void> migrate_confirm(std::string_view, unsigned, bool, diagnostics&) = 0;
};

/// Runs a migration's five phases between two drivers (connection::async_migrate).
op<domain_ref> migrate(erased_driver& src, erased_driver* dst, bool dst_read_only, std::string_view name,
                       const migrate_options& opt, diagnostics& diag);

/// An operation the driver lacks: libvirt's VIR_ERR_NO_SUPPORT.
template <class T>
op<T> unsupported(diagnostics& diag, std::string_view driver, const char* what) {
  // what() then reads as libvirt's: "this function is not supported by the connection driver: virDomainSave".
  (void)driver;
  co_return fail(diag, errc::no_support, what);
}

template <driver D>
class driver_model final : public erased_driver {
public:
  template <class... Args>
  explicit driver_model(Args&&... args) : d_(std::forward<Args>(args)...) {}
  D& get() noexcept { return d_; }

  asio::any_io_executor get_executor() override { return d_.get_executor(); }
  std::string_view type_name() override { return d_.type_name(); }
  op<void> close() override { return d_.close(); }
  op<std::string> get_hostname(diagnostics& g) override { return d_.get_hostname(g); }
  op<std::uint64_t> get_version(diagnostics& g) override { return d_.get_version(g); }
  op<std::string> get_capabilities(diagnostics& g) override { return d_.get_capabilities(g); }
  op<node_info> node_get_info(diagnostics& g) override { return d_.node_get_info(g); }
  op<int> get_max_vcpus(std::string_view t, diagnostics& g) override { return d_.get_max_vcpus(t, g); }
  op<std::vector<domain_ref>> list_domains(unsigned f, diagnostics& g) override { return d_.list_domains(f, g); }
  op<domain_ref> lookup_by_name(std::string_view n, diagnostics& g) override { return d_.lookup_by_name(n, g); }
  op<domain_ref> lookup_by_uuid(std::string_view n, diagnostics& g) override { return d_.lookup_by_uuid(n, g); }
  op<domain_ref> lookup_by_id(int id, diagnostics& g) override { return d_.lookup_by_id(id, g); }
  op<domain_ref> define_xml(std::string_view x, diagnostics& g) override { return d_.define_xml(x, g); }
  op<void> undefine(std::string_view n, diagnostics& g) override { return d_.undefine(n, g); }
  op<void> create(std::string_view n, diagnostics& g) override { return d_.create(n, g); }
  op<domain_ref> create_xml(std::string_view x, unsigned f, diagnostics& g) override { return d_.create_xml(x, f, g); }
  op<void> destroy(std::string_view n, diagnostics& g) override { return d_.destroy(n, g); }
  op<void> shutdown(std::string_view n, diagnostics& g) override { return d_.shutdown(n, g); }
  op<void> reboot(std::string_view n, diagnostics& g) override { return d_.reboot(n, g); }
  op<void> suspend(std::string_view n, diagnostics& g) override { return d_.suspend(n, g); }
  op<void> resume(std::string_view n, diagnostics& g) override { return d_.resume(n, g); }
  op<domain_info> get_info(std::string_view n, diagnostics& g) override { return d_.get_info(n, g); }
  op<std::string> get_os_type(std::string_view n, diagnostics& g) override { return d_.get_os_type(n, g); }
  op<domain_state_info> get_state(std::string_view n, diagnostics& g) override { return d_.get_state(n, g); }
  op<std::string> get_xml(std::string_view n, unsigned f, diagnostics& g) override { return d_.get_xml(n, f, g); }
  op<bool> is_active(std::string_view n, diagnostics& g) override { return d_.is_active(n, g); }
  op<bool> is_persistent(std::string_view n, diagnostics& g) override { return d_.is_persistent(n, g); }
  event_stream subscribe(std::string n) override { return d_.subscribe(std::move(n)); }

  op<void> set_memory(std::string_view n, std::uint64_t k, unsigned f, diagnostics& g) override {
    if constexpr (can_set_memory<D>) return d_.set_memory(n, k, f, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainSetMemoryFlags");
  }
  op<void> set_vcpus(std::string_view n, unsigned c, unsigned f, diagnostics& g) override {
    if constexpr (can_set_vcpus<D>) return d_.set_vcpus(n, c, f, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainSetVcpusFlags");
  }
  op<bool> get_autostart(std::string_view n, diagnostics& g) override {
    if constexpr (can_autostart<D>) return d_.get_autostart(n, g);
    else return unsupported<bool>(g, d_.type_name(), "virDomainGetAutostart");
  }
  op<void> set_autostart(std::string_view n, bool on, diagnostics& g) override {
    if constexpr (can_autostart<D>) return d_.set_autostart(n, on, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainSetAutostart");
  }
  op<std::vector<network_ref>> list_networks(unsigned f, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.list_networks(f, g);
    else return unsupported<std::vector<network_ref>>(g, d_.type_name(), "virConnectListAllNetworks");
  }
  op<network_ref> lookup_network(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.lookup_network(n, g);
    else return unsupported<network_ref>(g, d_.type_name(), "virNetworkLookupByName");
  }
  op<network_ref> define_network(std::string_view x, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.define_network(x, g);
    else return unsupported<network_ref>(g, d_.type_name(), "virNetworkDefineXML");
  }
  op<void> undefine_network(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.undefine_network(n, g);
    else return unsupported<void>(g, d_.type_name(), "virNetworkUndefine");
  }
  op<void> create_network(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.create_network(n, g);
    else return unsupported<void>(g, d_.type_name(), "virNetworkCreate");
  }
  op<void> destroy_network(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.destroy_network(n, g);
    else return unsupported<void>(g, d_.type_name(), "virNetworkDestroy");
  }
  op<std::string> get_network_xml(std::string_view n, unsigned f, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.get_network_xml(n, f, g);
    else return unsupported<std::string>(g, d_.type_name(), "virNetworkGetXMLDesc");
  }
  op<bool> get_network_autostart(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.get_network_autostart(n, g);
    else return unsupported<bool>(g, d_.type_name(), "virNetworkGetAutostart");
  }
  op<void> set_network_autostart(std::string_view n, bool on, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.set_network_autostart(n, on, g);
    else return unsupported<void>(g, d_.type_name(), "virNetworkSetAutostart");
  }
  op<std::string> get_network_bridge_name(std::string_view n, diagnostics& g) override {
    if constexpr (can_networks<D>) return d_.get_network_bridge_name(n, g);
    else return unsupported<std::string>(g, d_.type_name(), "virNetworkGetBridgeName");
  }
  op<void> save(std::string_view n, std::string_view p, diagnostics& g) override {
    if constexpr (can_save_restore<D>) return d_.save(n, p, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainSave");
  }
  op<domain_ref> restore(std::string_view p, diagnostics& g) override {
    if constexpr (can_save_restore<D>) return d_.restore(p, g);
    else return unsupported<domain_ref>(g, d_.type_name(), "virDomainRestore");
  }
  op<void> core_dump(std::string_view n, std::string_view p, unsigned f, diagnostics& g) override {
    if constexpr (can_core_dump<D>) return d_.core_dump(n, p, f, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainCoreDumpWithFormat");
  }
  op<block_stats> get_block_stats(std::string_view n, std::string_view disk, diagnostics& g) override {
    if constexpr (can_block_stats<D>) return d_.block_stats(n, disk, g);
    else return unsupported<block_stats>(g, d_.type_name(), "virDomainBlockStats");
  }
  op<std::string> qemu_monitor_command(std::string_view n, std::string_view cmd, diagnostics& g) override {
    if constexpr (can_monitor_command<D>) return d_.qemu_monitor_command(n, cmd, g);
    else return unsupported<std::string>(g, d_.type_name(), "virDomainQemuMonitorCommand");
  }
  op<void> attach_device(std::string_view n, std::string_view x, unsigned f, diagnostics& g) override {
    if constexpr (can_hotplug<D>) return d_.attach_device(n, x, f, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainAttachDeviceFlags");
  }
  op<void> detach_device(std::string_view n, std::string_view x, unsigned f, diagnostics& g) override {
    if constexpr (can_hotplug<D>) return d_.detach_device(n, x, f, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainDetachDeviceFlags");
  }
  op<job_info> get_job_info(std::string_view n, diagnostics& g) override {
    if constexpr (can_jobs<D>) return d_.get_job_info(n, g);
    else return unsupported<job_info>(g, d_.type_name(), "virDomainGetJobInfo");
  }
  op<void> abort_job(std::string_view n, diagnostics& g) override {
    if constexpr (can_jobs<D>) return d_.abort_job(n, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainAbortJob");
  }
  op<std::string> migrate_begin(std::string_view n, unsigned f, diagnostics& g) override {
    if constexpr (can_migrate<D>) return d_.migrate_begin(n, f, g);
    else return unsupported<std::string>(g, d_.type_name(), "virDomainMigrateBegin3");
  }
  op<std::string> migrate_prepare(std::string_view x, std::string_view u, unsigned f, diagnostics& g) override {
    if constexpr (can_migrate<D>) return d_.migrate_prepare(x, u, f, g);
    else return unsupported<std::string>(g, d_.type_name(), "virDomainMigratePrepare3");
  }
  op<void> migrate_perform(std::string_view n, std::string_view u, const migrate_options& o, diagnostics& g) override {
    if constexpr (can_migrate<D>) return d_.migrate_perform(n, u, o, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainMigratePerform3");
  }
  op<domain_ref> migrate_finish(std::string_view n, unsigned f, bool ok, diagnostics& g) override {
    if constexpr (can_migrate<D>) return d_.migrate_finish(n, f, ok, g);
    else return unsupported<domain_ref>(g, d_.type_name(), "virDomainMigrateFinish3");
  }
  op<void> migrate_confirm(std::string_view n, unsigned f, bool ok, diagnostics& g) override {
    if constexpr (can_migrate<D>) return d_.migrate_confirm(n, f, ok, g);
    else return unsupported<void>(g, d_.type_name(), "virDomainMigrateConfirm3");
  }

private:
  D d_;
};

}  // namespace covirt::detail
