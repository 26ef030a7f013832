// covirt: the parts every device of a domain has: <address>, <alias>, <boot>.

#include "codec.hpp"

#include <algorithm>
#include <span>

namespace covirt::domain_codec {

namespace {

// libvirt's attribute order of <address> per type ("" and "pci" share the PCI order)
constexpr std::string_view addr_pci[] = {"domain", "bus", "slot", "function", "multifunction"};
constexpr std::string_view addr_drive[] = {"controller", "bus", "target", "unit"};
constexpr std::string_view addr_virtio_serial[] = {"controller", "bus", "port"};
constexpr std::string_view addr_ccid[] = {"controller", "slot"};
constexpr std::string_view addr_usb[] = {"bus", "port"};
constexpr std::string_view addr_isa[] = {"iobase", "irq"};
constexpr std::string_view addr_spapr_vio[] = {"reg"};
constexpr std::string_view addr_ccw[] = {"cssid", "ssid", "devno"};
constexpr std::string_view addr_dimm[] = {"slot", "base"};
constexpr std::size_t addr_max_keys = std::size(addr_pci);

std::span<const std::string_view> address_order(std::string_view type) {
  if (x::eq(type, "pci") || type.empty()) return addr_pci;
  if (x::eq(type, "drive")) return addr_drive;
  if (x::eq(type, "virtio-serial")) return addr_virtio_serial;
  if (x::eq(type, "ccid")) return addr_ccid;
  if (x::eq(type, "usb")) return addr_usb;
  if (x::eq(type, "isa")) return addr_isa;
  if (x::eq(type, "spapr-vio")) return addr_spapr_vio;
  if (x::eq(type, "ccw")) return addr_ccw;
  if (x::eq(type, "dimm")) return addr_dimm;
  return {};
}

/// A PCI address value in libvirt's hex widths (domain 0x%04x, bus and slot 0x%02x,
/// function 0x%x); `key` is the index in addr_pci. Other keys and unparsable values as given.
std::string pci_norm(std::size_t key, std::string_view v) {
  static constexpr std::size_t width[] = {4, 2, 2, 1};
  if (key >= std::size(width)) return std::string(v);
  // already canonical ("0x" and lowercase hex digits, zero-padded to exactly the width or
  // longer without a leading zero): formatting it again gives it back
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x') {
    std::string_view d = v.substr(2);
    bool hex = std::all_of(d.begin(), d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (hex && (d.size() == width[key] || (d.size() > width[key] && d[0] != '0'))) return std::string(v);
  }
  unsigned n = 0;
  if (!x::parse_uint(v, n, 0)) return std::string(v);
  static constexpr char hex[] = "0123456789abcdef";
  char buf[2 + 2 * sizeof n];
  char* e = buf + sizeof buf;
  char* p = e;
  do {
    *--p = hex[n & 15];
    n >>= 4;
  } while (n);
  while (static_cast<std::size_t>(e - p) < width[key]) *--p = '0';
  *--p = 'x';
  *--p = '0';
  return std::string(p, e);
}

}  // namespace

device_address parse_address(xml_node n) {
  // the attributes once (name, value); an address has a handful
  struct nv {
    const char* name;
    const char* value;
  };
  nv small[16];
  std::vector<nv> large;
  nv* all = small;
  std::size_t count = 0;
  for (auto at = n.first_attribute(); x::present(at); at = at.next_attribute()) {
    if (count == std::size(small)) {
      large.assign(small, small + count);
    }
    if (count >= std::size(small)) {
      large.push_back({at.name(), at.value()});
      all = large.data();
    } else {
      small[count] = {at.name(), at.value()};
    }
    ++count;
  }
  device_address a;
  std::string_view type;
  for (std::size_t k = 0; k < count; ++k)
    if (x::cstr_eq(all[k].name, "type")) {
      type = all[k].value;
      break;
    }
  a.type.assign(type);
  auto order = address_order(type);
  const char* found[addr_max_keys] = {};
  std::size_t known = 0, unknown = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const char* nm = all[k].name;
    if (x::cstr_eq(nm, "type")) continue;
    std::size_t i = 0;
    while (i < order.size() && !x::cstr_eq(nm, order[i])) ++i;
    if (i < order.size()) {
      found[i] = all[k].value;
      ++known;
    } else {
      ++unknown;
    }
  }
  // found[1..3] are bus, slot, function when the order is PCI's
  bool pci = x::eq(type, "pci") || (type.empty() && found[2] && found[1] && found[3]);
  a.attrs.reserve(known + unknown);
  for (std::size_t i = 0; i < order.size(); ++i)
    if (found[i]) {
      if (pci) a.attrs.emplace_back(order[i], pci_norm(i, found[i]));
      else a.attrs.emplace_back(order[i], found[i]);
    }
  if (unknown)
    for (std::size_t k = 0; k < count; ++k) {
      const char* nm = all[k].name;
      if (x::cstr_eq(nm, "type") ||
          std::any_of(order.begin(), order.end(), [&](std::string_view key) { return x::cstr_eq(nm, key); }))
        continue;
      a.attrs.emplace_back(nm, all[k].value);
    }
  return a;
}

void parse_alias_address(x::reader& r, device_common& d) {
  if (auto a = r.take("alias", {"name"})) d.alias = a.attribute("name").value();
  if (auto a = r.take_leaf("address")) d.address = parse_address(a);
}

result<std::optional<unsigned>> boot_order(x::reader& r, diagnostics& diag) {
  if (auto b = r.take("boot", {"order"})) return x::opt_uint(b, "order", diag);
  return std::optional<unsigned>{};
}

void fmt_address(x::writer& w, int depth, const device_address& a) {
  w.open(depth, "address");
  w.attr_if("type", a.type);
  w.attrs(a.attrs);
  w.self_close();
}

void fmt_boot(x::writer& w, int depth, const std::optional<unsigned>& order) {
  if (!order) return;
  w.open(depth, "boot");
  w.attr_num("order", *order);
  w.self_close();
}

void fmt_tail(x::writer& w, int depth, const device_common& d, const std::optional<unsigned>& boot) {
  w.elements(depth, d.extra);
  fmt_boot(w, depth, boot);
  x::write_attr_leaf(w, depth, "alias", "name", d.alias);
  if (d.address) fmt_address(w, depth, *d.address);
}

void fmt_extra_named(x::writer& w, int depth, const std::vector<xml_element>& v, std::string_view name) {
  for (auto& e : v)
    if (e.name == name) w.element(depth, e);
}

}  // namespace covirt::domain_codec
