// covirt internal: what the files of the domain XML codec share. Each file holds the parser
// and the printer of one part of the document (both read the same field tables):
//   values.cpp      public helpers: sizes, bitmaps, UUIDs, names, disk names, MACs
//   common.cpp      the parts every device has: <address>, <alias>, <boot>
//   disks.cpp       <disk>, <controller>
//   interfaces.cpp  <interface>
//   devices.cpp     the other devices and <devices> itself
//   os_cpu.cpp      <os>, <features>, <cpu>, <clock>
//   tuning.cpp      <blkiotune>, <memtune>, <memoryBacking>, <cputune>, <numatune>
//   document.cpp    <domain>: the top-level elements, parse_domain_xml, format_domain_xml
#pragma once

#include <covirt/domain/xml.hpp>

#include "../detail/xml_fields.hpp"

#include <optional>
#include <string>
#include <string_view>

#define COVIRT_TRY(var, expr)               \
  auto var##_res = (expr);                  \
  if (!var##_res) return var##_res.error(); \
  auto var = std::move(*var##_res)

#define COVIRT_CHECK(expr)                           \
  do {                                               \
    if (auto ok_ = (expr); !ok_) return ok_.error(); \
  } while (0)

namespace covirt::domain_codec {

namespace x = detail::xml;
using pugi::xml_node;

/// Writes each verbatim element of `v` named `name` (an unknown child back at its place).
void fmt_extra_named(x::writer& w, int depth, const std::vector<xml_element>& v, std::string_view name);

// common.cpp: what every device has.
device_address parse_address(xml_node n);
/// alias and address of a device (its attributes: read_fields; unknown children: r.rest() at the end).
void parse_alias_address(x::reader& r, device_common& d);
result<std::optional<unsigned>> boot_order(x::reader& r, diagnostics& diag);
void fmt_address(x::writer& w, int depth, const device_address& a);
void fmt_boot(x::writer& w, int depth, const std::optional<unsigned>& order);
/// extra children, boot order, alias, address (virDomainDeviceInfoFormat's tail)
void fmt_tail(x::writer& w, int depth, const device_common& d, const std::optional<unsigned>& boot = {});

// disks.cpp
result<void> parse_disk(xml_node n, disk_def& d, diagnostics& diag);
void fmt_disk(x::writer& w, int depth, const disk_def& d);
result<void> parse_controller(xml_node n, controller_def& c, diagnostics& diag);
void fmt_controller(x::writer& w, int depth, const controller_def& c);

// interfaces.cpp
result<void> parse_interface(xml_node n, interface_def& d, diagnostics& diag);
void fmt_interface(x::writer& w, int depth, const interface_def& d);

// devices.cpp
result<void> parse_devices(xml_node n, devices_t& dv, diagnostics& diag);
void fmt_devices(x::writer& w, int depth, const devices_t& dv, bool secure);

// os_cpu.cpp
result<void> parse_os(xml_node n, domain_config::os_t& os, diagnostics& diag);
void fmt_os(x::writer& w, const domain_config::os_t& os);
result<void> parse_features(xml_node n, features_t& f, diagnostics& diag);
void fmt_features(x::writer& w, const features_t& f);
result<void> parse_cpu(xml_node n, cpu_def& c, diagnostics& diag);
void fmt_cpu(x::writer& w, const cpu_def& c);
result<void> parse_clock(xml_node n, clock_def& c, diagnostics& diag);
void fmt_clock(x::writer& w, const clock_def& c);

// tuning.cpp. Each parser leaves `out` empty when the element holds nothing libvirt keeps
// (libvirt then prints nothing); each printer prints nothing for an empty model.
/// libvirt's VIR_DOMAIN_CPUMASK_LEN: every CPU and node list of a domain is below it.
inline constexpr unsigned cpumask_len = 16384;
/// A cpuset/nodeset attribute value in libvirt's form ("0-2,^1" -> "0,2"); an invalid one is
/// errc::xml_detail, an empty set errc::config_unsupported, both naming `attr` and `elem`.
result<std::string> normalise_bitmap(std::string_view value, std::string_view attr, std::string_view elem,
                                     diagnostics& diag);
result<void> parse_blkiotune(xml_node n, std::optional<blkiotune_def>& out, diagnostics& diag);
void fmt_blkiotune(x::writer& w, const blkiotune_def& b);
result<void> parse_memtune(xml_node n, std::optional<memtune_def>& out, diagnostics& diag);
void fmt_memtune(x::writer& w, const memtune_def& m);
result<void> parse_memory_backing(xml_node n, std::optional<memory_backing_def>& out, diagnostics& diag);
void fmt_memory_backing(x::writer& w, const memory_backing_def& m);
result<void> parse_cputune(xml_node n, std::optional<cputune_def>& out, diagnostics& diag);
void fmt_cputune(x::writer& w, const cputune_def& c);
/// `vcpu_placement` is <vcpu placement=> as given: with "auto" the memory follows it.
result<void> parse_numatune(xml_node n, std::string_view vcpu_placement, std::optional<numatune_def>& out,
                            diagnostics& diag);
void fmt_numatune(x::writer& w, const numatune_def& n);
/// The checks of the hugepages against each other and the guest's NUMA cells (<cpu><numa>),
/// once the whole document is read; a node-0 page of a guest without NUMA becomes its default.
result<void> check_hugepages(domain_config& d, diagnostics& diag);

}  // namespace covirt::domain_codec
