// covirt: the Xen driver (xen:///), composed as libvirt's original Xen support was:
//   - xend over its HTTP RPC (xend.hpp) for every change of state and for the node's facts;
//   - a xenstore connection (xenstore.hpp) for fast reads (a running domain's memory target,
//     the shutdown request) and for watches: /local/domain, @introduceDomain, @releaseDomain;
//   - the xm config files of defined domains in a folder (/etc/xen by default), written
//     atomically (a temporary file, fsync, rename) by define and removed by undefine.
// All of it on the caller's io_context.
//
// URI: xen:///[?xend_socket=PATH][&xend_host=H&xend_port=P][&xenstore_socket=PATH][&config_dir=DIR]
// (defaults /var/lib/xend/xend-socket, $XENSTORED_PATH or /var/run/xenstored/socket, /etc/xen).
//
// The domain list is xend's, refreshed after each change and whenever a watch fires; the
// transitions a refresh sees (a domain appearing, going, pausing, resuming, shutting down,
// crashing) are the lifecycle events. Domains defined only by a config file are the inactive ones.
#pragma once

#include <covirt/driver.hpp>

#include <memory>

namespace covirt::xen {

class driver : public listed_domains<driver> {
public:
  explicit driver(asio::any_io_executor ex);
  driver(driver&&) noexcept;
  driver& operator=(driver&&) noexcept;
  ~driver();

  /// Connects to xenstore, reads the node from xend, lists xend's domains and the config folder,
  /// and watches. Errors: errc::no_xen (no xend), errc::no_xenstore, errc::invalid_arg (the URI).
  op<void> open(const uri& u, unsigned flags, diagnostics& diag);
  std::string_view type_name() const noexcept { return "Xen"; }

  COVIRT_DRIVER_OPERATIONS(core_driver)
  COVIRT_DRIVER_OPERATIONS(set_memory)
  COVIRT_DRIVER_OPERATIONS(set_vcpus)
  COVIRT_DRIVER_OPERATIONS(save_restore)
  COVIRT_DRIVER_OPERATIONS(core_dump)
  /// Disks and interfaces: live through xend, in the definition by rewriting its config file.
  COVIRT_DRIVER_OPERATIONS(hotplug)
  COVIRT_DRIVER_OPERATIONS(vcpu_pinning)
  COVIRT_DRIVER_OPERATIONS(native_config)
  /// Through xend's op=migrate to the destination's relocation server (src/xen/migration.cpp).
  COVIRT_DRIVER_OPERATIONS(migrate)

  struct state;

private:
  friend listed_domains<driver>;
  std::shared_ptr<state> s_;
};

static_assert(covirt::driver<driver>);
static_assert(can_set_memory<driver> && can_set_vcpus<driver> && can_save_restore<driver> && can_core_dump<driver> &&
              can_hotplug<driver> && can_vcpu_pinning<driver> && can_native_config<driver> && can_migrate<driver>);

}  // namespace covirt::xen
