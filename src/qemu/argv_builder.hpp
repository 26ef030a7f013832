// The QEMU command line builder's insides, shared by src/qemu/argv*.cpp: the checks every value
// passes (checked, esc), the refusal that build_argv turns into config_unsupported, and the
// builder, whose parts are defined by concern: argv.cpp (machine, CPU, memory, clock, boot,
// lifecycle), argv_disks.cpp (controllers, boot order, disks), argv_devices.cpp (interfaces,
// character devices, input, graphics, video and the rest).
#pragma once
#include <covirt/qemu/argv.hpp>
#include <covirt/domain/xml.hpp>

#include <boost/json/object.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace covirt::qemu::argv_detail {


struct refusal {
  std::string message;
};

[[noreturn]] inline void refuse(std::string msg) { throw refusal{std::move(msg)}; }

/// A value as QEMU may take it: no control characters (a newline cannot be passed safely).
inline std::string checked(std::string_view what, std::string_view v) {
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) {
      std::string shown(v.substr(0, 64));
      for (auto& ch : shown)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
      refuse(std::string(what) + " '" + shown + "' contains a control character, which QEMU's command line cannot take");
    }
  return std::string(v);
}

/// A value inside a comma-separated option (-chardev path=..., -name guest=...).
inline std::string esc(std::string_view what, std::string_view v) { return escape_opt_value(checked(what, v)); }

inline unsigned to_uint(std::string_view what, std::string_view s) {
  unsigned v = 0;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty())
    refuse(std::string(what) + " '" + std::string(s) + "' is not a number");
  return v;
}

inline std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

inline std::string_view attr(const xml_attributes& attrs, std::string_view key) {
  for (auto& [k, v] : attrs)
    if (k == key) return v;
  return {};
}

inline const xml_element* child(const std::vector<xml_element>& xs, std::string_view name) {
  for (auto& x : xs)
    if (x.name == name) return &x;
  return nullptr;
}

/// Refuses unknown attributes and child elements, except the ones listed.
inline void refuse_extras(std::string_view what, const xml_attributes& attrs, const std::vector<xml_element>& elems,
                          std::initializer_list<std::string_view> allowed_elems = {},
                          std::initializer_list<std::string_view> allowed_attrs = {}) {
  for (auto& [k, v] : attrs)
    if (std::find(allowed_attrs.begin(), allowed_attrs.end(), k) == allowed_attrs.end())
      refuse(std::string(what) + " attribute '" + k + "'");
  for (auto& e : elems)
    if (std::find(allowed_elems.begin(), allowed_elems.end(), e.name) == allowed_elems.end())
      refuse(std::string(what) + " element <" + e.name + ">");
}

struct builder {
  builder(const domain_config& dom, const argv_options& o) : d(dom), opt(o) {}
  const domain_config& d;
  const argv_options& opt;
  std::vector<std::string> out;

  bool q35 = false;
  bool kvm = false;
  std::set<unsigned> pci_buses;  // controller indexes that provide a bus named pci.N
  bool usb_declared = false, usb_none = false, usb_emitted = false;
  std::map<unsigned, std::string> scsi_models;  // index -> model
  std::set<unsigned> virtio_serials;
  bool sata_emitted = false;
  bool fdc_emitted = false;   // q35's isa-fdc
  bool pcspk = false;
  std::map<const void*, unsigned> bootindex;    // device -> bootindex
  std::vector<std::string> devices;             // -device values, emitted after controllers

  void add(std::string a) { out.push_back(std::move(a)); }
  void add(std::string a, std::string b) {
    out.push_back(std::move(a));
    out.push_back(std::move(b));
  }
  void device(std::string v) { devices.push_back(std::move(v)); }
  /// Whether the guest's RAM is a memory backend object (<memoryBacking>, <numatune>).
  bool memory_backend() const;

  std::string root_bus() const { return q35 ? "pcie.0" : "pci.0"; }

  /// ",bus=...,addr=..." for a PCI address, "" for none; other address types are refused
  /// unless the caller lists them in `also` (and then handles them itself).
  std::string pci_addr(std::string_view what, const device_common& c,
                       std::initializer_list<std::string_view> also = {});

  void common(std::string_view what, const device_common& c,
              std::initializer_list<std::string_view> allowed_elems = {});

  std::string boot(const void* dev);

  // ------------------------------------------------------------------ top level
  void run();
  void check_unsupported();
  void machine_args(const std::string& machine);
  void cpu_args();
  void memory_args();
  void smp_args();
  void clock_args();
  void lifecycle_args();
  void pm_args();
  void os_args();

  // ------------------------------------------------------------------ controllers
  std::string default_usb_model() const { return q35 ? "qemu-xhci" : "piix3-uhci"; }

  void emit_usb(const std::string& model, unsigned index, const std::string& ports, const std::string& addr);
  void controllers();
  void need_usb(std::string_view what);
  std::string need_virtio_serial(const device_common& c, std::string_view what);

  // ------------------------------------------------------------------ boot order
  void assign_boot_order();

  // ------------------------------------------------------------------ disks
  static unsigned disk_index(std::string_view dev);
  void disks();
  void disk(const disk_def& x, unsigned node);
  void floppy(const disk_def& x, const std::string& drive);
  /// The -blockdev storage of a <disk type='network'> (nbd: TCP or a unix socket).
  boost::json::object network_source(const disk_def& x, const std::string& what);

  // ------------------------------------------------------------------ interfaces
  std::string mac_for(const interface_def& n, unsigned i);
  void interfaces();

  // ------------------------------------------------------------------ character devices
  std::string chardev(const chardev_def& c, const std::string& id, const std::string& what);
  void serial(const chardev_def& c, unsigned i, const std::string& kind);
  void chardevs();

  // ------------------------------------------------------------------ input, graphics, video
  void inputs();
  void graphics();
  void spice(const graphics_def& g);
  void sdl(const graphics_def& g);
  void sounds();
  void hostdevs();
  void videos();
  void misc_devices();
  void qemu_commandline();
};

}  // namespace covirt::qemu::argv_detail
