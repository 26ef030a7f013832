// covirt: a xend domain S-expression <-> covirt's domain model, as libvirt's xend driver
// converted them (xen_sxpr.c): (domain ...) from GET /xend/domain/<x>?detail=1 into a
// domain_config, and a domain_config into the (vm ...) sent with op=create / op=new.
#pragma once

#include <covirt/domain/xml.hpp>
#include <covirt/error.hpp>
#include <covirt/types.hpp>
#include <covirt/xen/sexpr.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace covirt::xen {

/// What the conversion needs besides the S-expression.
struct sxpr_context {
  int xend_config_version = 4;  // node's xend_config_format (1 = 3.0.2 ... 4 = 3.1.0+)
  /// Facts libvirt read from xenstore and merged in (running domains):
  std::optional<int> vnc_port;  // console/vnc-port
  std::string console_tty;      // console/tty (PV) or serial/0/tty (HVM)
};

/// A domain as xend reports it: the definition plus the running facts.
struct sxpr_domain {
  domain_config def;
  std::optional<int> domid;         // absent for an inactive domain
  std::string state_flags;          // "r-----", "" when absent
  domain_state state = domain_state::nostate;
  double cpu_time = 0;              // seconds
  /// format_domain_xml's options for this domain (id='N' when running).
  domain_format_options format_options() const { return {domid.value_or(-1), true}; }
};

/// libvirt's reading of xend's state letters: c crashed, s shut off, d shutdown (dying),
/// p paused, b blocked, r running, checked in that order; nostate when none is set.
domain_state domain_state_from_flags(std::string_view flags) noexcept;

/// (domain ...) into the model libvirt built for it. Errors: errc::config_unsupported naming
/// the key (an unknown lifecycle action, char device, graphics or sound type),
/// errc::internal_error for missing facts (name, uuid, kernel, a vbd's dev, as libvirt),
/// errc::parse_failed for a malformed value (uuid, number, MAC, rate), each naming the key.
result<sxpr_domain> domain_from_sxpr(const sexpr& domain, const sxpr_context& ctx, diagnostics& diag);
/// The same from the text (parse_sexpr's limits and errors first).
result<sxpr_domain> domain_from_sxpr(std::string_view text, const sxpr_context& ctx, diagnostics& diag);

/// The (vm ...) config libvirt sent with op=create / op=new, on one line.
/// errc::config_unsupported for what xend cannot express (a network-type NIC, managed PCI,
/// transient disks, more than one graphics, ...).
result<std::string> domain_to_sxpr(const domain_config& def, const sxpr_context& ctx, diagnostics& diag);

/// One disk or NIC for device_create / device_configure: "(vbd ...)", "(tap ...)" or
/// "(vif ...)" without the outer (device ...). `hvm` is the guest's os type == "hvm".
result<std::string> device_to_sxpr(const disk_def& disk, bool hvm, const sxpr_context& ctx, diagnostics& diag);
result<std::string> device_to_sxpr(const interface_def& nic, bool hvm, const sxpr_context& ctx, diagnostics& diag);

}  // namespace covirt::xen
