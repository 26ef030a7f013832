// covirt: domain XML <-> domain_config.
#include <covirt/domain/xml.hpp>

#include "detail/xml_util.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <span>
#include <random>

namespace covirt {

namespace x = detail::xml;

#define COVIRT_TRY(var, expr)             \
  auto var##_res = (expr);                \
  if (!var##_res) return var##_res.error(); \
  auto var = std::move(*var##_res)

// ====================================================================== small public helpers

std::string_view device_address::get(std::string_view key) const noexcept {
  for (auto& [k, v] : attrs)
    if (k == key) return v;
  return {};
}

void device_address::set(std::string_view key, std::string value) {
  for (auto& [k, v] : attrs)
    if (k == key) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(std::string(key), std::move(value));
}

result<unsigned long long> parse_memory_kib(std::string_view value, std::string_view unit, diagnostics& diag) {
  std::string_view v = x::trim_view(value);
  unsigned long long n = 0;
  if (v.empty() || !x::parse_uint(v, n))
    return fail(diag, errc::xml_detail,
                "memory value '" + std::string(value) + "' is not a non-negative integer");
  // every known unit is at most 5 characters; longer ones are refused below either way
  char lower[8];
  if (unit.size() > sizeof lower)
    return fail(diag, errc::invalid_arg, "memory unit '" + std::string(unit) + "' is not known");
  for (std::size_t i = 0; i < unit.size(); ++i)
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(unit[i])));
  std::string_view u(lower, unit.size());
  unsigned long long scale = 0;
  if (u.empty()) scale = 1024;
  else if (u == "b" || u == "byte" || u == "bytes") scale = 1;
  else {
    static constexpr std::string_view prefixes = "kmgtpe";
    auto p = prefixes.find(u[0]);
    std::string_view rest = std::string_view(u).substr(1);
    unsigned long long base = 0;
    if (p != std::string_view::npos) {
      if (rest.empty() || rest == "ib") base = 1024;
      else if (rest == "b") base = 1000;
    }
    if (!base) return fail(diag, errc::invalid_arg, "memory unit '" + std::string(unit) + "' is not known");
    scale = 1;
    for (std::size_t i = 0; i <= p; ++i) scale *= base;
  }
  unsigned long long bytes = 0;
  if (__builtin_mul_overflow(n, scale, &bytes))
    return fail(diag, errc::invalid_arg,
                "memory value '" + std::string(v) + "' with unit '" + std::string(unit) + "' is too large");
  return bytes / 1024 + (bytes % 1024 ? 1 : 0);
}

result<std::string> parse_uuid(std::string_view text, diagnostics& diag) {
  unsigned char b[16];
  std::size_t i = 0, pos = 0;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto bad = [&] { return fail(diag, errc::xml_detail, "uuid '" + std::string(text) + "' is not a valid UUID"); };
  while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  while (i < 16) {
    if (pos >= text.size()) return bad();
    if (text[pos] == '-' || text[pos] == ' ') {
      ++pos;
      continue;
    }
    if (pos + 1 >= text.size()) return bad();
    int h = hex(text[pos]), l = hex(text[pos + 1]);
    if (h < 0 || l < 0) return bad();
    b[i++] = static_cast<unsigned char>(h * 16 + l);
    pos += 2;
  }
  while (pos < text.size())
    if (!std::isspace(static_cast<unsigned char>(text[pos++]))) return bad();
  // "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(36, '-');
  for (std::size_t k = 0, o = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) ++o;
    out[o++] = digits[b[k] >> 4];
    out[o++] = digits[b[k] & 15];
  }
  return out;
}

namespace {
std::mt19937_64& rng() {
  thread_local std::mt19937_64 g{std::random_device{}()};
  return g;
}
}  // namespace

std::string generate_uuid() {
  unsigned char b[16];
  auto a = rng()(), c = rng()();
  std::memcpy(b, &a, 8);
  std::memcpy(b + 8, &c, 8);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

result<void> check_object_name(std::string_view what, std::string_view name, diagnostics& diag) {
  std::string w(what);
  if (name.empty()) return fail(diag, errc::xml_detail, w + " name must not be empty");
  if (name.find('/') != std::string_view::npos)
    return fail(diag, errc::xml_detail, w + " name '" + std::string(name) + "' must not contain '/'");
  if (name[0] == '.')
    return fail(diag, errc::xml_detail, w + " name '" + std::string(name) + "' must not start with '.'");
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fail(diag, errc::xml_detail, w + " name must not contain control characters");
  return {};
}

// ====================================================================== parsing

namespace {

// libvirt's order of <devices> children (virDomainDefFormatInternal)
constexpr std::string_view device_order[] = {
    "emulator", "disk",  "controller", "lease",    "filesystem", "interface", "smartcard", "serial",
    "parallel", "console", "channel",  "input",    "tpm",        "graphics",  "sound",     "audio",
    "video",    "hostdev", "redirdev", "redirfilter", "hub",     "watchdog",  "memballoon", "rng",
    "panic",    "shmem", "memory",     "iommu",    "vsock",      "crypto"};

constexpr std::string_view feature_order[] = {
    "acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "pvspinlock", "capabilities", "pmu",
    "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm", "nested-hv", "msrs", "ccf-assist", "xen", "cfpc",
    "sbbc", "ibs", "tcg", "async-teardown"};

// libvirt's order of <domain> children; unknown names known to libvirt are placed here.
constexpr std::string_view domain_order[] = {
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
    "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "iothreadids", "cputune", "numatune",
    "resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "features", "cpu", "clock",
    "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel", "keywrap",
    "launchSecurity"};

consteval std::size_t dev_idx(std::string_view n) { return x::stage_of(device_order, n); }
consteval std::size_t feat_idx(std::string_view n) { return x::stage_of(feature_order, n); }
consteval std::size_t dom_idx(std::string_view n) { return x::stage_of(domain_order, n); }



using pugi::xml_node;

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

/// alias and address of a device (its attributes: read_attrs; unknown children: r.rest() at the end).
void parse_alias_address(x::reader& r, device_common& d) {
  if (auto a = r.take("alias", {"name"})) d.alias = a.attribute("name").value();
  if (auto a = r.take_leaf("address")) d.address = parse_address(a);
}

/// alias, address and unknown attributes for a device (unknown children: r.rest() at the end).
void parse_common(x::reader& r, device_common& d, std::initializer_list<std::string_view> known_attrs) {
  d.extra_attrs = x::extra_attrs(r.node(), known_attrs);
  parse_alias_address(r, d);
}

result<std::optional<unsigned>> boot_order(x::reader& r, diagnostics& diag) {
  if (auto b = r.take("boot", {"order"})) return x::opt_uint(b, "order", diag);
  return std::optional<unsigned>{};
}

result<void> parse_disk(xml_node n, disk_def& d, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"type", &d.type}, {"device", &d.device}}, d.extra_attrs);
  parse_alias_address(r, d);
  if (auto c = r.take_leaf("driver")) {
    auto& dr = d.driver.emplace();
    x::read_attrs(c,
                  {{"name", &dr.name}, {"type", &dr.type}, {"cache", &dr.cache}, {"io", &dr.io},
                   {"discard", &dr.discard}},
                  dr.extra_attrs);
  }
  if (auto c = r.take_any("source")) {
    auto& s = d.source.emplace();
    x::reader sr(c);
    x::read_attrs(c,
                  {{"file", &s.file}, {"dev", &s.dev}, {"dir", &s.dir}, {"protocol", &s.protocol}, {"name", &s.name},
                   {"pool", &s.pool}, {"volume", &s.volume}, {"mode", &s.mode}, {"startupPolicy", &s.startup_policy}},
                  s.extra_attrs);
    for (auto h : sr.take_all_leaf("host")) {
      auto& dh = s.hosts.emplace_back();
      x::read_attrs(h, {{"name", &dh.name}, {"port", &dh.port}, {"transport", &dh.transport}, {"socket", &dh.socket}},
                    dh.extra_attrs);
    }
    s.extra = sr.rest();
  }
  if (auto c = r.take_leaf("target")) {
    x::read_attrs(c, {{"dev", &d.target_dev}, {"bus", &d.target_bus}, {"tray", &d.target_tray}},
                  d.target_extra_attrs);
  } else {
    return fail(diag, errc::xml_detail, "disk is missing its <target dev=...> element");
  }
  if (d.target_dev.empty()) return fail(diag, errc::xml_detail, "disk <target> is missing the 'dev' attribute");
  d.readonly = static_cast<bool>(r.take("readonly"));
  d.shareable = static_cast<bool>(r.take("shareable"));
  d.transient = static_cast<bool>(r.take("transient"));
  COVIRT_TRY(bo, boot_order(r, diag));
  d.boot_order = bo;
  if (auto s = r.take("serial")) d.serial = x::text_of(s);
  if (auto s = r.take("wwn")) d.wwn = x::text_of(s);
  d.extra = r.rest();
  return {};
}

result<void> parse_controller(xml_node n, controller_def& c, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n,
                {{"type", &c.type}, {"index", nullptr}, {"model", &c.model}, {"ports", &c.ports},
                 {"vectors", &c.vectors}},
                c.extra_attrs);
  if (c.type.empty()) return fail(diag, errc::xml_detail, "controller is missing the 'type' attribute");
  COVIRT_TRY(idx, x::opt_uint(n, "index", diag));
  c.index = idx;
  parse_alias_address(r, c);
  if (auto d = r.take_any("driver")) c.driver = x::to_element(d);
  c.extra = r.rest();
  return {};
}

std::string normalize_mac(std::string_view s) {
  std::string m(s);
  for (char& ch : m) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return m;
}

bool valid_mac(std::string_view m) {
  if (m.size() != 17) return false;
  for (std::size_t i = 0; i < 17; ++i) {
    if (i % 3 == 2) {
      if (m[i] != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(m[i]))) {
      return false;
    }
  }
  return true;
}

result<void> parse_interface(xml_node n, interface_def& d, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"type", &d.type}}, d.extra_attrs);
  parse_alias_address(r, d);
  if (auto c = r.take("mac", {"address"})) {
    std::string_view address = c.attribute("address").value();
    d.mac = normalize_mac(address);
    if (!valid_mac(d.mac))
      return fail(diag, errc::xml_detail, "interface MAC address '" + std::string(address) + "' is not valid");
  }
  if (auto c = r.take_any("source")) {
    auto& s = d.source.emplace();
    x::read_attrs(c,
                  {{"network", &s.network}, {"bridge", &s.bridge}, {"dev", &s.dev}, {"mode", &s.mode},
                   {"portgroup", &s.portgroup}, {"path", &s.path}, {"type", &s.type}},
                  s.extra_attrs);
    s.extra = x::extra_children(c, {});
  }
  if (auto c = r.take("script", {"path"})) d.script_path = c.attribute("path").value();
  if (auto c = r.take_leaf("target")) {
    if (auto dev = c.attribute("dev")) d.target_dev = dev.value();
    d.target_extra_attrs = x::extra_attrs(c, {"dev"});
  }
  if (auto c = r.take("model", {"type"})) d.model_type = c.attribute("type").value();
  if (auto c = r.take_any("driver")) d.driver = x::to_element(c);
  COVIRT_TRY(bo, boot_order(r, diag));
  d.boot_order = bo;
  if (auto c = r.take("link", {"state"})) d.link_state = c.attribute("state").value();
  if (auto c = r.take("mtu", {"size"})) {
    COVIRT_TRY(m, x::opt_uint(c, "size", diag));
    d.mtu = m;
  }
  d.extra = r.rest();
  return {};
}

result<void> parse_chardev(xml_node n, chardev_def& d, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"type", &d.type}}, d.extra_attrs);
  parse_alias_address(r, d);
  for (auto s : r.take_all_leaf("source")) {
    auto& src = d.sources.emplace_back();
    x::read_attrs(s,
                  {{"mode", &src.mode}, {"path", &src.path}, {"host", &src.host}, {"service", &src.service},
                   {"channel", &src.channel}, {"append", &src.append}},
                  src.extra_attrs);
  }
  if (auto p = r.take("protocol", {"type"})) d.protocol_type = p.attribute("type").value();
  if (auto t = r.take_any("target")) {
    d.has_target = true;
    x::read_attrs(t,
                  {{"type", &d.target_type}, {"address", &d.target_address}, {"name", &d.target_name},
                   {"state", &d.target_state}, {"port", nullptr}},
                  d.target_extra_attrs);
    COVIRT_TRY(p, x::opt_uint(t, "port", diag));
    d.target_port = p;
    d.target_children = x::extra_children(t, {});
  }
  if (auto l = r.take("log", {"file", "append"})) {
    d.log_file = l.attribute("file").value();
    d.log_append = l.attribute("append").value();
  }
  d.extra = r.rest();
  return {};
}

result<void> parse_graphics(xml_node n, graphics_def& g, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n,
                {{"type", &g.type}, {"port", nullptr}, {"tlsPort", nullptr}, {"websocket", nullptr},
                 {"autoport", &g.autoport}, {"socket", &g.socket}, {"display", &g.display}, {"xauth", &g.xauth},
                 {"fullscreen", &g.fullscreen}, {"listen", &g.listen}, {"keymap", &g.keymap}, {"passwd", &g.passwd}},
                g.extra_attrs);
  if (g.type.empty()) return fail(diag, errc::xml_detail, "graphics is missing the 'type' attribute");
  COVIRT_TRY(p, x::opt_int(n, "port", diag));
  g.port = p;
  COVIRT_TRY(tp, x::opt_int(n, "tlsPort", diag));
  g.tls_port = tp;
  COVIRT_TRY(ws, x::opt_int(n, "websocket", diag));
  g.websocket = ws;
  for (auto l : r.take_all_leaf("listen")) {
    auto& gl = g.listens.emplace_back();
    x::read_attrs(l, {{"type", &gl.type}, {"address", &gl.address}, {"network", &gl.network}, {"socket", &gl.socket}},
                  gl.extra_attrs);
  }
  g.extra = r.rest();
  return {};
}

result<void> parse_video(xml_node n, video_def& v, diagnostics& diag) {
  x::reader r(n);
  parse_common(r, v, {});
  // <model> is typed unless it holds children other than one <acceleration>
  xml_node model, accel;
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!r.child_is(i, "model")) continue;
    xml_node m = r.child(i);
    bool simple = true;
    int accels = 0;
    for (xml_node c = m.first_child(); x::present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) != "acceleration") simple = false;
      else if (!accels++) accel = c;
    }
    if (simple && accels < 2 && !r.is_claimed(i)) {
      r.claim(i);
      model = m;
    }
    break;
  }
  if (auto m = model) {
    std::string primary;
    x::read_attrs(m,
                  {{"type", &v.model_type}, {"ram", nullptr}, {"vram", nullptr}, {"vram64", nullptr},
                   {"vgamem", nullptr}, {"heads", nullptr}, {"primary", &primary}},
                  v.model_extra_attrs);
    COVIRT_TRY(ram, x::opt_uint(m, "ram", diag));
    COVIRT_TRY(vram, x::opt_uint(m, "vram", diag));
    COVIRT_TRY(vram64, x::opt_uint(m, "vram64", diag));
    COVIRT_TRY(vgamem, x::opt_uint(m, "vgamem", diag));
    COVIRT_TRY(heads, x::opt_uint(m, "heads", diag));
    v.ram = ram;
    v.vram = vram;
    v.vram64 = vram64;
    v.vgamem = vgamem;
    v.heads = heads;
    v.primary = primary == "yes";
    if (!primary.empty() && primary != "yes") v.model_extra_attrs.emplace_back("primary", std::move(primary));
    if (accel) v.acceleration = x::to_element(accel);
  }
  if (auto d = r.take_any("driver")) v.driver = x::to_element(d);
  v.extra = r.rest();
  return {};
}

result<void> parse_hostdev(xml_node n, hostdev_def& h, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"mode", &h.mode}, {"type", &h.type}, {"managed", &h.managed}}, h.extra_attrs);
  parse_alias_address(r, h);
  if (auto s = r.take_any("source")) {
    h.source_extra_attrs = x::extra_attrs(s, {});
    for (auto c : s.children()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) == "address" && !h.source_address && x::reader::plain_leaf(c))
        h.source_address = parse_address(c);
      else h.source_extra.push_back(x::to_element(c));
    }
  }
  COVIRT_TRY(bo, boot_order(r, diag));
  h.boot_order = bo;
  h.extra = r.rest();
  return {};
}

result<void> parse_memballoon(xml_node n, memballoon_def& m, diagnostics& diag) {
  x::reader r(n);
  m.model.clear();  // an absent model= is kept as "" (not the default)
  x::read_attrs(n, {{"model", &m.model}, {"autodeflate", &m.autodeflate}}, m.extra_attrs);
  parse_alias_address(r, m);
  if (auto s = r.take("stats", {"period"})) {
    COVIRT_TRY(p, x::opt_uint(s, "period", diag));
    m.stats_period = p;
  }
  m.extra = r.rest();
  return {};
}

void parse_rng(xml_node n, rng_def& rd) {
  x::reader r(n);
  rd.model.clear();  // an absent model= is kept as "" (not the default)
  x::read_attrs(n, {{"model", &rd.model}}, rd.extra_attrs);
  parse_alias_address(r, rd);
  std::size_t bi = 0;
  while (bi < r.size() && !r.child_is(bi, "backend")) ++bi;
  if (bi < r.size() && !r.is_claimed(bi)) {
    xml_node b = r.child(bi);
    std::string buf;
    std::string_view text = x::trim_view(x::text_view(b, buf));
    bool mixed = !x::reader::plain_leaf(b) && !text.empty();
    if (!mixed) {
      r.claim(bi);
      rd.backend_text.assign(text);
      x::read_attrs(b, {{"model", &rd.backend_model}}, rd.backend_extra_attrs);
      rd.backend_children = x::extra_children(b, {});
    }
  }
  if (auto rt = r.take_any("rate")) rd.rate = x::to_element(rt);
  rd.extra = r.rest();
}

feature_flag parse_flag(xml_node n) {
  feature_flag f;
  x::read_attrs(n, {{"state", &f.state}}, f.extra_attrs);
  f.children = x::extra_children(n, {});
  return f;
}

result<void> parse_cpu(xml_node n, cpu_def& c, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"mode", &c.mode}, {"match", &c.match}, {"check", &c.check}, {"migratable", &c.migratable}},
                c.extra_attrs);
  if (auto m = r.take("model", {"fallback", "vendor_id"})) {
    c.model = x::trimmed_text(m);
    c.model_fallback = m.attribute("fallback").value();
    c.model_vendor_id = m.attribute("vendor_id").value();
  }
  if (auto v = r.take("vendor")) c.vendor = x::trimmed_text(v);
  if (auto t = r.take("topology", {"sockets", "dies", "cores", "threads"})) {
    cpu_def::topology_t topo;
    for (auto [name, field] : {std::pair{"sockets", &topo.sockets}, std::pair{"dies", &topo.dies},
                               std::pair{"cores", &topo.cores}, std::pair{"threads", &topo.threads}}) {
      COVIRT_TRY(v, x::opt_uint(t, name, diag));
      if (v && *v == 0)
        return fail(diag, errc::xml_detail, std::string("cpu topology '") + name + "' must be greater than zero");
      if (!v && std::string_view(name) != "dies")
        return fail(diag, errc::xml_detail, std::string("cpu topology is missing '") + name + "'");
      *field = v.value_or(0);
    }
    c.topology = topo;
  }
  for (auto f : r.take_all("feature", {"policy", "name"}))
    c.features.push_back({f.attribute("policy").value(), f.attribute("name").value()});
  c.extra = r.rest();
  return {};
}

result<void> parse_clock(xml_node n, clock_def& c, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"offset", &c.offset}, {"adjustment", &c.adjustment}, {"timezone", &c.timezone}, {"basis", &c.basis}},
                c.extra_attrs);
  for (auto t : r.take_all_any("timer")) {
    auto& tm = c.timers.emplace_back();
    x::read_attrs(t,
                  {{"name", &tm.name}, {"present", &tm.present}, {"tickpolicy", &tm.tickpolicy}, {"track", &tm.track},
                   {"mode", &tm.mode}, {"frequency", nullptr}},
                  tm.extra_attrs);
    if (auto f = t.attribute("frequency")) {
      unsigned long long v = 0;
      if (!x::parse_uint(f.value(), v))
        return fail(diag, errc::xml_detail, std::string("invalid timer frequency '") + f.value() + "'");
      tm.frequency = v;
    }
    tm.children = x::extra_children(t, {});
  }
  c.extra = r.rest();
  return {};
}

result<void> parse_os(xml_node n, domain_config::os_t& os, diagnostics& diag) {
  x::reader r(n);
  x::read_attrs(n, {{"firmware", &os.firmware}}, os.extra_attrs);
  if (auto t = r.take("type", {"arch", "machine"})) {
    os.type = x::trimmed_text(t);
    os.arch = t.attribute("arch").value();
    os.machine = t.attribute("machine").value();
  }
  if (auto l = r.take_leaf("loader")) {
    auto& ld = os.loader.emplace();
    ld.path = x::trimmed_text(l);
    x::read_attrs(l, {{"readonly", &ld.readonly}, {"secure", &ld.secure}, {"type", &ld.type}}, ld.extra_attrs);
  }
  if (auto v = r.take("nvram", {"template"})) {
    os.nvram = x::trimmed_text(v);
    os.nvram_template = v.attribute("template").value();
  }
  if (auto e = r.take("kernel")) os.kernel = x::text_of(e);
  if (auto e = r.take("initrd")) os.initrd = x::text_of(e);
  if (auto e = r.take("cmdline")) os.cmdline = x::text_of(e);
  if (auto e = r.take("dtb")) os.dtb = x::text_of(e);
  if (auto e = r.take("init")) os.init = x::text_of(e);
  for (auto b : r.take_all("boot", {"dev"})) {
    std::string_view dev = b.attribute("dev").value();
    if (dev != "hd" && dev != "cdrom" && dev != "fd" && dev != "network")
      return fail(diag, errc::xml_detail, "unknown boot device '" + std::string(dev) + "'");
    os.boot_devs.emplace_back(dev);
  }
  if (auto b = r.take("bootmenu", {"enable", "timeout"})) {
    os.bootmenu_enable = b.attribute("enable").value();
    os.bootmenu_timeout = b.attribute("timeout").value();
  }
  if (auto s = r.take("smbios", {"mode"})) os.smbios_mode = s.attribute("mode").value();
  if (auto b = r.take("bios", {"useserial", "rebootTimeout"})) {
    os.bios_useserial = b.attribute("useserial").value();
    os.bios_reboot_timeout = b.attribute("rebootTimeout").value();
  }
  os.extra = r.rest();
  return {};
}

/// A device with nothing but typed attributes, alias, address and verbatim children.
template <class T>
void parse_simple_device(xml_node c, T& d, std::initializer_list<x::attr_slot> slots) {
  x::reader r(c);
  x::read_attrs(c, slots, d.extra_attrs);
  parse_alias_address(r, d);
  d.extra = r.rest();
}

#define COVIRT_CHECK(expr)                         \
  do {                                             \
    if (auto ok_ = (expr); !ok_) return ok_.error(); \
  } while (0)

enum class dev_kind : unsigned char {
  other, emulator, disk, controller, interface, serial, parallel, console, channel, input, graphics, sound, video,
  hostdev, watchdog, memballoon, rng, panic, count_
};

dev_kind device_kind(std::string_view nm) noexcept {
  switch (nm.size()) {
    case 3:
      if (x::eq(nm, "rng")) return dev_kind::rng;
      break;
    case 4:
      if (x::eq(nm, "disk")) return dev_kind::disk;
      break;
    case 5:
      if (x::eq(nm, "input")) return dev_kind::input;
      if (x::eq(nm, "sound")) return dev_kind::sound;
      if (x::eq(nm, "video")) return dev_kind::video;
      if (x::eq(nm, "panic")) return dev_kind::panic;
      break;
    case 6:
      if (x::eq(nm, "serial")) return dev_kind::serial;
      break;
    case 7:
      if (x::eq(nm, "console")) return dev_kind::console;
      if (x::eq(nm, "channel")) return dev_kind::channel;
      if (x::eq(nm, "hostdev")) return dev_kind::hostdev;
      break;
    case 8:
      if (x::eq(nm, "emulator")) return dev_kind::emulator;
      if (x::eq(nm, "parallel")) return dev_kind::parallel;
      if (x::eq(nm, "graphics")) return dev_kind::graphics;
      if (x::eq(nm, "watchdog")) return dev_kind::watchdog;
      break;
    case 9:
      if (x::eq(nm, "interface")) return dev_kind::interface;
      break;
    case 10:
      if (x::eq(nm, "controller")) return dev_kind::controller;
      if (x::eq(nm, "memballoon")) return dev_kind::memballoon;
      break;
  }
  return dev_kind::other;
}

result<void> parse_devices(xml_node n, devices_t& dv, diagnostics& diag) {
  // classify the children once, so each device list is allocated once
  struct child {
    xml_node node;
    dev_kind kind;
  };
  std::vector<child> children;
  children.reserve(64);
  std::size_t count[static_cast<std::size_t>(dev_kind::count_)] = {};
  for (xml_node c = n.first_child(); x::present(c); c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    dev_kind k = device_kind(c.name());
    ++count[static_cast<std::size_t>(k)];
    children.push_back({c, k});
  }
  auto reserve = [&](auto& v, dev_kind k) {
    if (auto m = count[static_cast<std::size_t>(k)]) v.reserve(m);
  };
  reserve(dv.disks, dev_kind::disk);
  reserve(dv.controllers, dev_kind::controller);
  reserve(dv.interfaces, dev_kind::interface);
  reserve(dv.serials, dev_kind::serial);
  reserve(dv.parallels, dev_kind::parallel);
  reserve(dv.consoles, dev_kind::console);
  reserve(dv.channels, dev_kind::channel);
  reserve(dv.inputs, dev_kind::input);
  reserve(dv.graphics, dev_kind::graphics);
  reserve(dv.sounds, dev_kind::sound);
  reserve(dv.videos, dev_kind::video);
  reserve(dv.hostdevs, dev_kind::hostdev);
  reserve(dv.watchdogs, dev_kind::watchdog);
  reserve(dv.rngs, dev_kind::rng);
  reserve(dv.panics, dev_kind::panic);
  reserve(dv.extra, dev_kind::other);

  for (auto [c, kind] : children) {
    switch (kind) {
      case dev_kind::emulator:
        if (dv.emulator.empty() && x::reader::plain(c, {})) {
          dv.emulator = x::trimmed_text(c);
          continue;
        }
        break;
      case dev_kind::disk: COVIRT_CHECK(parse_disk(c, dv.disks.emplace_back(), diag)); continue;
      case dev_kind::controller: COVIRT_CHECK(parse_controller(c, dv.controllers.emplace_back(), diag)); continue;
      case dev_kind::interface: COVIRT_CHECK(parse_interface(c, dv.interfaces.emplace_back(), diag)); continue;
      case dev_kind::serial: COVIRT_CHECK(parse_chardev(c, dv.serials.emplace_back(), diag)); continue;
      case dev_kind::parallel: COVIRT_CHECK(parse_chardev(c, dv.parallels.emplace_back(), diag)); continue;
      case dev_kind::console: COVIRT_CHECK(parse_chardev(c, dv.consoles.emplace_back(), diag)); continue;
      case dev_kind::channel: COVIRT_CHECK(parse_chardev(c, dv.channels.emplace_back(), diag)); continue;
      case dev_kind::input: {
        auto& in = dv.inputs.emplace_back();
        parse_simple_device(c, in, {{"type", &in.type}, {"bus", &in.bus}});
        continue;
      }
      case dev_kind::graphics: COVIRT_CHECK(parse_graphics(c, dv.graphics.emplace_back(), diag)); continue;
      case dev_kind::sound: {
        auto& s = dv.sounds.emplace_back();
        parse_simple_device(c, s, {{"model", &s.model}});
        continue;
      }
      case dev_kind::video: COVIRT_CHECK(parse_video(c, dv.videos.emplace_back(), diag)); continue;
      case dev_kind::hostdev: COVIRT_CHECK(parse_hostdev(c, dv.hostdevs.emplace_back(), diag)); continue;
      case dev_kind::watchdog: {
        auto& w = dv.watchdogs.emplace_back();
        parse_simple_device(c, w, {{"model", &w.model}, {"action", &w.action}});
        continue;
      }
      case dev_kind::memballoon:
        if (!dv.memballoon) {
          COVIRT_CHECK(parse_memballoon(c, dv.memballoon.emplace(), diag));
          continue;
        }
        break;
      case dev_kind::rng: parse_rng(c, dv.rngs.emplace_back()); continue;
      case dev_kind::panic: {
        auto& p = dv.panics.emplace_back();
        parse_simple_device(c, p, {{"model", &p.model}});
        continue;
      }
      case dev_kind::other:
      case dev_kind::count_: break;
    }
    dv.extra.push_back(x::to_element(c));
  }
  return {};
}

result<unsigned long long> memory_elem(xml_node n, diagnostics& diag) {
  std::string buf;
  auto r = parse_memory_kib(x::text_view(n, buf), n.attribute("unit").value(), diag);
  if (!r) diag.assign("<" + std::string(n.name()) + ">: " + std::string(diag.message()));
  return r;
}

/// A top-level scalar element the model has no room for extra content in: refuse what it
/// does not know rather than drop it.
result<xml_node> strict(x::reader& r, const char* name, std::initializer_list<std::string_view> attrs,
                        diagnostics& diag) {
  xml_node n = r.take_any(name);
  if (!n) return n;
  for (auto a = n.first_attribute(); x::present(a); a = a.next_attribute())
    if (!x::is_known(a.name(), attrs))
      return fail(diag, errc::xml_detail,
                  std::string("attribute '") + a.name() + "' of <" + name + "> is not supported");
  for (auto c = n.first_child(); x::present(c); c = c.next_sibling())
    if (c.type() == pugi::node_element)
      return fail(diag, errc::xml_detail, std::string("<") + name + "> must not contain <" + c.name() + ">");
  return n;
}

}  // namespace

result<domain_config> parse_domain_xml(std::string_view xml, diagnostics& diag) {
  pugi::xml_document doc;
  COVIRT_TRY(root, x::load(doc, xml, "domain", diag));
  domain_config d;
  x::read_attrs(root, {{"type", &d.type}, {"id", nullptr}}, d.extra_attrs);
  if (d.type.empty()) return fail(diag, errc::xml_detail, "<domain> is missing the 'type' attribute");

  x::reader r(root);
  // duplicates of single elements are refused
  static constexpr std::string_view single[] = {
      "name", "uuid", "title", "description", "metadata", "memory", "currentMemory", "maxMemory", "vcpu",
      "bootloader", "bootloader_args", "os", "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash",
      "on_lockfailure", "pm", "devices"};
  unsigned seen[std::size(single)] = {};
  for (std::size_t i = 0; i < r.size(); ++i) {
    auto it = std::find_if(std::begin(single), std::end(single), [&](std::string_view k) { return r.child_is(i, k); });
    if (it != std::end(single) && ++seen[it - std::begin(single)] > 1)
      return fail(diag, errc::xml_detail,
                  "element <" + std::string(r.child_name(i)) + "> is given more than once in <domain>");
  }

  std::string buf;
  COVIRT_TRY(name, strict(r, "name", {}, diag));
  if (!name) return fail(diag, errc::xml_detail, "domain has no <name> element");
  d.name = x::trimmed_text(name);
  if (auto ok = check_object_name("domain", d.name, diag); !ok) return ok.error();

  COVIRT_TRY(u, strict(r, "uuid", {}, diag));
  if (u) {
    COVIRT_TRY(uuid, parse_uuid(x::text_view(u, buf), diag));
    d.uuid = std::move(uuid);
  }
  COVIRT_TRY(t, strict(r, "title", {}, diag));
  if (t) {
    d.title = x::text_of(t);
    if (d.title->find('\n') != std::string::npos)
      return fail(diag, errc::xml_detail, "domain title must not contain newlines");
  }
  COVIRT_TRY(desc, strict(r, "description", {}, diag));
  if (desc) d.description = x::text_of(desc);
  if (auto m = r.take_any("metadata")) {
    if (!m.first_attribute()) d.metadata = x::extra_children(m, {});
    else d.extra.push_back(x::to_element(m));  // attributes on <metadata>: keep it whole
  }

  COVIRT_TRY(mem, strict(r, "memory", {"unit", "dumpCore"}, diag));
  if (!mem) return fail(diag, errc::xml_detail, "domain has no <memory> element");
  {
    COVIRT_TRY(kib, memory_elem(mem, diag));
    d.memory_kib = kib;
    d.memory_dump_core = mem.attribute("dumpCore").value();
  }
  COVIRT_TRY(cmem, strict(r, "currentMemory", {"unit"}, diag));
  if (cmem) {
    COVIRT_TRY(kib, memory_elem(cmem, diag));
    d.current_memory_kib = kib;
  }
  COVIRT_TRY(mmem, strict(r, "maxMemory", {"unit", "slots"}, diag));
  if (mmem) {
    COVIRT_TRY(kib, memory_elem(mmem, diag));
    d.max_memory_kib = kib;
    COVIRT_TRY(slots, x::opt_uint(mmem, "slots", diag));
    d.max_memory_slots = slots;
  }
  COVIRT_TRY(v, strict(r, "vcpu", {"placement", "current", "cpuset"}, diag));
  if (v) {
    unsigned n = 0;
    std::string_view text = x::text_view(v, buf);
    if (!x::parse_uint(text, n))
      return fail(diag, errc::xml_detail, "vcpu count '" + std::string(text) + "' is not a non-negative integer");
    if (n == 0) return fail(diag, errc::xml_detail, "vcpu count must be greater than zero");
    d.vcpus = n;
    COVIRT_TRY(cur, x::opt_uint(v, "current", diag));
    d.vcpu_current = cur;
    d.vcpu_placement = v.attribute("placement").value();
    if (!d.vcpu_placement.empty() && d.vcpu_placement != "static" && d.vcpu_placement != "auto")
      return fail(diag, errc::xml_detail, "vcpu placement '" + d.vcpu_placement + "' is not known");
    d.vcpu_cpuset = v.attribute("cpuset").value();
  }
  COVIRT_TRY(bl, strict(r, "bootloader", {}, diag));
  if (bl) d.bootloader = x::text_of(bl);
  COVIRT_TRY(bla, strict(r, "bootloader_args", {}, diag));
  if (bla) d.bootloader_args = x::text_of(bla);
  if (auto os = r.take_any("os")) {
    if (auto ok = parse_os(os, d.os, diag); !ok) return ok.error();
  }
  if (auto f = r.take_any("features")) {
    features_t& ft = d.features.emplace();
    ft.extra_attrs = x::extra_attrs(f, {});
    for (auto c = f.first_child(); x::present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      std::string_view nm = c.name();
      std::optional<feature_flag>* slot = nm == "acpi"       ? &ft.acpi
                                          : nm == "apic"     ? &ft.apic
                                          : nm == "pae"      ? &ft.pae
                                          : nm == "hap"      ? &ft.hap
                                          : nm == "viridian" ? &ft.viridian
                                          : nm == "privnet"  ? &ft.privnet
                                          : nm == "kvm"      ? &ft.kvm
                                          : nm == "pmu"      ? &ft.pmu
                                          : nm == "vmport"   ? &ft.vmport
                                          : nm == "smm"      ? &ft.smm
                                                             : nullptr;
      if (slot && !*slot) *slot = parse_flag(c);
      else ft.extra.push_back(x::to_element(c));
    }
    x::sort_by_stage(ft.extra, feature_order);
  }
  if (auto c = r.take_any("cpu")) COVIRT_CHECK(parse_cpu(c, d.cpu.emplace(), diag));
  if (auto c = r.take_any("clock")) COVIRT_CHECK(parse_clock(c, d.clock.emplace(), diag));
  for (auto [nm, field] : {std::pair{"on_poweroff", &d.on_poweroff}, std::pair{"on_reboot", &d.on_reboot},
                           std::pair{"on_crash", &d.on_crash}, std::pair{"on_lockfailure", &d.on_lockfailure}}) {
    COVIRT_TRY(e, strict(r, nm, {}, diag));
    if (e) *field = x::trimmed_text(e);
  }
  // <pm> is typed only when it holds nothing but suspend-to-mem/-disk enabled=; else kept verbatim
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!r.child_is(i, "pm")) continue;
    xml_node p = r.child(i);
    bool simple = !p.first_attribute();
    for (auto c = p.first_child(); x::present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      std::string_view nm = c.name();
      simple = simple && (nm == "suspend-to-mem" || nm == "suspend-to-disk") && x::reader::plain(c, {"enabled"});
    }
    if (simple) {
      r.take_any("pm");
      domain_config::pm_t pm;
      pm.suspend_to_mem = p.child("suspend-to-mem").attribute("enabled").value();
      pm.suspend_to_disk = p.child("suspend-to-disk").attribute("enabled").value();
      d.pm = pm;
    }
    break;
  }
  if (auto dv = r.take_any("devices")) {
    d.has_devices = true;
    d.devices.extra_attrs = x::extra_attrs(dv, {});
    if (auto ok = parse_devices(dv, d.devices, diag); !ok) return ok.error();
    x::sort_by_stage(d.devices.extra, device_order);
  }
  for (auto& e : r.rest()) d.extra.push_back(std::move(e));
  x::sort_by_stage(d.extra, domain_order);
  if (d.vcpu_current && *d.vcpu_current > d.vcpus && d.vcpus)
    return fail(diag, errc::xml_detail,
                "vcpu current " + std::to_string(*d.vcpu_current) + " is greater than the maximum " +
                    std::to_string(d.vcpus));
  return d;
}
#undef COVIRT_CHECK

// ====================================================================== formatting

namespace {

void fmt_address(x::writer& w, int depth, const device_address& a) {
  w.open(depth, "address");
  w.attr_if("type", a.type);
  w.attrs(a.attrs);
  w.self_close();
}

void fmt_boot(x::writer& w, int depth, const std::optional<unsigned>& order);

/// extra children, boot order, alias, address (virDomainDeviceInfoFormat's tail)
void fmt_tail(x::writer& w, int depth, const device_common& d, const std::optional<unsigned>& boot = {}) {
  w.elements(depth, d.extra);
  fmt_boot(w, depth, boot);
  if (!d.alias.empty()) {
    w.open(depth, "alias");
    w.attr("name", d.alias);
    w.self_close();
  }
  if (d.address) fmt_address(w, depth, *d.address);
}

void fmt_boot(x::writer& w, int depth, const std::optional<unsigned>& order) {
  if (!order) return;
  w.open(depth, "boot");
  w.attr_num("order", *order);
  w.self_close();
}

void fmt_disk(x::writer& w, int depth, const disk_def& d) {
  w.open(depth, "disk");
  w.attr("type", d.type);
  w.attr("device", d.device);
  w.attrs(d.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (d.driver) {
    w.open(in, "driver");
    w.attr_if("name", d.driver->name);
    w.attr_if("type", d.driver->type);
    w.attr_if("cache", d.driver->cache);
    w.attr_if("io", d.driver->io);
    w.attr_if("discard", d.driver->discard);
    w.attrs(d.driver->extra_attrs);
    w.self_close();
  }
  if (d.source) {
    auto& s = *d.source;
    w.open(in, "source");
    w.attr_if("protocol", s.protocol);
    w.attr_if("name", s.name);
    w.attr_if("file", s.file);
    w.attr_if("dev", s.dev);
    w.attr_if("dir", s.dir);
    w.attr_if("pool", s.pool);
    w.attr_if("volume", s.volume);
    w.attr_if("mode", s.mode);
    w.attr_if("startupPolicy", s.startup_policy);
    w.attrs(s.extra_attrs);
    auto m2 = w.begin_body();
    for (auto& h : s.hosts) {
      w.open(in + 1, "host");
      w.attr_if("transport", h.transport);
      w.attr_if("name", h.name);
      w.attr_if("port", h.port);
      w.attr_if("socket", h.socket);
      w.attrs(h.extra_attrs);
      w.self_close();
    }
    w.elements(in + 1, s.extra);
    w.finish(m2, in, "source");
  }
  w.open(in, "target");
  w.attr("dev", d.target_dev);
  w.attr_if("bus", d.target_bus);
  w.attr_if("tray", d.target_tray);
  w.attrs(d.target_extra_attrs);
  w.self_close();
  if (d.readonly) w.empty_elem(in, "readonly");
  if (d.shareable) w.empty_elem(in, "shareable");
  if (d.transient) w.empty_elem(in, "transient");
  if (!d.serial.empty()) w.text_elem(in, "serial", d.serial);
  if (!d.wwn.empty()) w.text_elem(in, "wwn", d.wwn);
  fmt_tail(w, in, d, d.boot_order);
  w.finish(mark, depth, "disk");
}

void fmt_controller(x::writer& w, int depth, const controller_def& c) {
  w.open(depth, "controller");
  w.attr("type", c.type);
  w.attr_opt("index", c.index);
  w.attr_if("model", c.model);
  w.attr_if("ports", c.ports);
  w.attr_if("vectors", c.vectors);
  w.attrs(c.extra_attrs);
  auto mark = w.begin_body();
  if (c.driver) w.element(depth + 1, *c.driver);
  fmt_tail(w, depth + 1, c);
  w.finish(mark, depth, "controller");
}

void fmt_interface(x::writer& w, int depth, const interface_def& d) {
  w.open(depth, "interface");
  w.attr("type", d.type);
  w.attrs(d.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (!d.mac.empty()) {
    w.open(in, "mac");
    w.attr("address", d.mac);
    w.self_close();
  }
  if (d.source) {
    auto& s = *d.source;
    w.open(in, "source");
    w.attr_if("type", s.type);
    w.attr_if("network", s.network);
    w.attr_if("portgroup", s.portgroup);
    w.attr_if("bridge", s.bridge);
    w.attr_if("dev", s.dev);
    w.attr_if("mode", s.mode);
    w.attr_if("path", s.path);
    w.attrs(s.extra_attrs);
    auto m2 = w.begin_body();
    w.elements(in + 1, s.extra);
    w.finish(m2, in, "source");
  }
  if (!d.script_path.empty()) {
    w.open(in, "script");
    w.attr("path", d.script_path);
    w.self_close();
  }
  if (d.target_dev || !d.target_extra_attrs.empty()) {
    w.open(in, "target");
    if (d.target_dev) w.attr("dev", *d.target_dev);
    w.attrs(d.target_extra_attrs);
    w.self_close();
  }
  if (!d.model_type.empty()) {
    w.open(in, "model");
    w.attr("type", d.model_type);
    w.self_close();
  }
  if (d.driver) w.element(in, *d.driver);
  w.elements(in, d.extra);
  if (!d.link_state.empty()) {
    w.open(in, "link");
    w.attr("state", d.link_state);
    w.self_close();
  }
  if (d.mtu) {
    w.open(in, "mtu");
    w.attr_num("size", *d.mtu);
    w.self_close();
  }
  fmt_boot(w, in, d.boot_order);
  if (!d.alias.empty()) {
    w.open(in, "alias");
    w.attr("name", d.alias);
    w.self_close();
  }
  if (d.address) fmt_address(w, in, *d.address);
  w.finish(mark, depth, "interface");
}

void fmt_chardev(x::writer& w, int depth, std::string_view elem, const chardev_def& c) {
  w.open(depth, elem);
  w.attr("type", c.type);
  w.attrs(c.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  for (auto& s : c.sources) {
    w.open(in, "source");
    w.attr_if("mode", s.mode);
    w.attr_if("path", s.path);
    w.attr_if("append", s.append);
    w.attr_if("host", s.host);
    w.attr_if("service", s.service);
    w.attr_if("channel", s.channel);
    w.attrs(s.extra_attrs);
    w.self_close();
  }
  if (!c.protocol_type.empty()) {
    w.open(in, "protocol");
    w.attr("type", c.protocol_type);
    w.self_close();
  }
  if (!c.log_file.empty()) {
    w.open(in, "log");
    w.attr("file", c.log_file);
    w.attr_if("append", c.log_append);
    w.self_close();
  }
  if (c.has_target) {
    w.open(in, "target");
    w.attr_if("type", c.target_type);
    w.attr_if("address", c.target_address);
    w.attr_opt("port", c.target_port);
    w.attr_if("name", c.target_name);
    w.attr_if("state", c.target_state);
    w.attrs(c.target_extra_attrs);
    auto m2 = w.begin_body();
    w.elements(in + 1, c.target_children);
    w.finish(m2, in, "target");
  }
  fmt_tail(w, in, c);
  w.finish(mark, depth, elem);
}

void fmt_graphics(x::writer& w, int depth, const graphics_def& g, bool secure) {
  w.open(depth, "graphics");
  w.attr("type", g.type);
  w.attr_opt("port", g.port);
  w.attr_opt("tlsPort", g.tls_port);
  w.attr_if("autoport", g.autoport);
  w.attr_opt("websocket", g.websocket);
  w.attr_if("socket", g.socket);
  w.attr_if("display", g.display);
  w.attr_if("xauth", g.xauth);
  w.attr_if("fullscreen", g.fullscreen);
  w.attr_if("listen", g.listen);
  w.attr_if("keymap", g.keymap);
  if (secure) w.attr_if("passwd", g.passwd);
  w.attrs(g.extra_attrs);
  auto mark = w.begin_body();
  for (auto& l : g.listens) {
    w.open(depth + 1, "listen");
    w.attr_if("type", l.type);
    w.attr_if("address", l.address);
    w.attr_if("network", l.network);
    w.attr_if("socket", l.socket);
    w.attrs(l.extra_attrs);
    w.self_close();
  }
  w.elements(depth + 1, g.extra);
  w.finish(mark, depth, "graphics");
}

void fmt_video(x::writer& w, int depth, const video_def& v) {
  w.open(depth, "video");
  w.attrs(v.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (v.driver) w.element(in, *v.driver);
  if (!v.model_type.empty() || v.ram || v.vram || v.vram64 || v.vgamem || v.heads || v.primary ||
      v.acceleration || !v.model_extra_attrs.empty()) {
    w.open(in, "model");
    w.attr_if("type", v.model_type);
    w.attr_opt("ram", v.ram);
    w.attr_opt("vram", v.vram);
    w.attr_opt("vram64", v.vram64);
    w.attr_opt("vgamem", v.vgamem);
    w.attr_opt("heads", v.heads);
    if (v.primary) w.attr("primary", "yes");
    w.attrs(v.model_extra_attrs);
    auto m2 = w.begin_body();
    if (v.acceleration) w.element(in + 1, *v.acceleration);
    w.finish(m2, in, "model");
  }
  fmt_tail(w, in, v);
  w.finish(mark, depth, "video");
}

void fmt_hostdev(x::writer& w, int depth, const hostdev_def& h) {
  w.open(depth, "hostdev");
  w.attr("mode", h.mode);
  w.attr("type", h.type);
  w.attr_if("managed", h.managed);
  w.attrs(h.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (h.source_address || !h.source_extra.empty() || !h.source_extra_attrs.empty()) {
    w.open(in, "source");
    w.attrs(h.source_extra_attrs);
    auto m2 = w.begin_body();
    w.elements(in + 1, h.source_extra);
    if (h.source_address) fmt_address(w, in + 1, *h.source_address);
    w.finish(m2, in, "source");
  }
  fmt_tail(w, in, h, h.boot_order);
  w.finish(mark, depth, "hostdev");
}

void fmt_simple(x::writer& w, int depth, std::string_view elem,
                std::initializer_list<std::pair<std::string_view, std::string_view>> attrs,
                const device_common& c) {
  w.open(depth, elem);
  for (auto& [k, v] : attrs) w.attr_if(k, v);
  w.attrs(c.extra_attrs);
  auto mark = w.begin_body();
  fmt_tail(w, depth + 1, c);
  w.finish(mark, depth, elem);
}

void fmt_memballoon(x::writer& w, int depth, const memballoon_def& m) {
  w.open(depth, "memballoon");
  w.attr_if("model", m.model);
  w.attr_if("autodeflate", m.autodeflate);
  w.attrs(m.extra_attrs);
  auto mark = w.begin_body();
  if (m.stats_period) {
    w.open(depth + 1, "stats");
    w.attr_num("period", *m.stats_period);
    w.self_close();
  }
  fmt_tail(w, depth + 1, m);
  w.finish(mark, depth, "memballoon");
}

void fmt_rng(x::writer& w, int depth, const rng_def& r) {
  w.open(depth, "rng");
  w.attr_if("model", r.model);
  w.attrs(r.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (r.rate) w.element(in, *r.rate);
  if (!r.backend_model.empty() || !r.backend_text.empty() || !r.backend_children.empty()) {
    w.open(in, "backend");
    w.attr_if("model", r.backend_model);
    w.attrs(r.backend_extra_attrs);
    if (r.backend_children.empty()) {
      if (r.backend_text.empty()) {
        w.self_close();
      } else {
        w.text_body("backend", r.backend_text);
      }
    } else {
      auto m2 = w.begin_body();
      w.elements(in + 1, r.backend_children);
      w.finish(m2, in, "backend");
    }
  }
  fmt_tail(w, in, r);
  w.finish(mark, depth, "rng");
}

void fmt_flag(x::writer& w, int depth, std::string_view name, const std::optional<feature_flag>& f) {
  if (!f) return;
  w.open(depth, name);
  w.attr_if("state", f->state);
  w.attrs(f->extra_attrs);
  auto mark = w.begin_body();
  w.elements(depth + 1, f->children);
  w.finish(mark, depth, name);
}

void fmt_extra_named(x::writer& w, int depth, const std::vector<xml_element>& v, std::string_view name) {
  for (auto& e : v)
    if (e.name == name) w.element(depth, e);
}

void fmt_devices(x::writer& w, int depth, const devices_t& dv, bool secure) {
  int in = depth + 1;
  w.open(depth, "devices");
  w.attrs(dv.extra_attrs);
  w.put(">\n");
  for (std::size_t i = 0; i < std::size(device_order); ++i) {
    if (i == dev_idx("emulator")) {
      if (!dv.emulator.empty()) w.text_elem(in, "emulator", dv.emulator);
    } else if (i == dev_idx("disk")) {
      for (auto& d : dv.disks) fmt_disk(w, in, d);
    } else if (i == dev_idx("controller")) {
      for (auto& c : dv.controllers) fmt_controller(w, in, c);
    } else if (i == dev_idx("interface")) {
      for (auto& c : dv.interfaces) fmt_interface(w, in, c);
    } else if (i == dev_idx("serial")) {
      for (auto& c : dv.serials) fmt_chardev(w, in, "serial", c);
    } else if (i == dev_idx("parallel")) {
      for (auto& c : dv.parallels) fmt_chardev(w, in, "parallel", c);
    } else if (i == dev_idx("console")) {
      for (auto& c : dv.consoles) fmt_chardev(w, in, "console", c);
    } else if (i == dev_idx("channel")) {
      for (auto& c : dv.channels) fmt_chardev(w, in, "channel", c);
    } else if (i == dev_idx("input")) {
      for (auto& c : dv.inputs) fmt_simple(w, in, "input", {{"type", c.type}, {"bus", c.bus}}, c);
    } else if (i == dev_idx("graphics")) {
      for (auto& c : dv.graphics) fmt_graphics(w, in, c, secure);
    } else if (i == dev_idx("sound")) {
      for (auto& c : dv.sounds) fmt_simple(w, in, "sound", {{"model", c.model}}, c);
    } else if (i == dev_idx("video")) {
      for (auto& c : dv.videos) fmt_video(w, in, c);
    } else if (i == dev_idx("hostdev")) {
      for (auto& c : dv.hostdevs) fmt_hostdev(w, in, c);
    } else if (i == dev_idx("watchdog")) {
      for (auto& c : dv.watchdogs) fmt_simple(w, in, "watchdog", {{"model", c.model}, {"action", c.action}}, c);
    } else if (i == dev_idx("memballoon")) {
      if (dv.memballoon) fmt_memballoon(w, in, *dv.memballoon);
    } else if (i == dev_idx("rng")) {
      for (auto& c : dv.rngs) fmt_rng(w, in, c);
    } else if (i == dev_idx("panic")) {
      for (auto& c : dv.panics) fmt_simple(w, in, "panic", {{"model", c.model}}, c);
    }
    if (!dv.extra.empty()) fmt_extra_named(w, in, dv.extra, device_order[i]);
  }
  for (auto& e : dv.extra)
    if (std::find(std::begin(device_order), std::end(device_order), e.name) == std::end(device_order))
      w.element(in, e);
  w.indent(depth);
  w.put("</devices>\n");
}

void fmt_memory(x::writer& w, std::string_view name, unsigned long long kib) {
  w.open(1, name);
  w.attr("unit", "KiB");
  w.num_body(name, kib);
}

void fmt_os(x::writer& w, const domain_config::os_t& os) {
  w.open(1, "os");
  w.attr_if("firmware", os.firmware);
  w.attrs(os.extra_attrs);
  auto mark = w.begin_body();
  if (!os.type.empty() || !os.arch.empty() || !os.machine.empty()) {
    w.open(2, "type");
    w.attr_if("arch", os.arch);
    w.attr_if("machine", os.machine);
    w.text_body("type", os.type);
  }
  if (!os.init.empty()) w.text_elem(2, "init", os.init);
  if (os.loader) {
    auto& l = *os.loader;
    w.open(2, "loader");
    w.attr_if("readonly", l.readonly);
    w.attr_if("secure", l.secure);
    w.attr_if("type", l.type);
    w.attrs(l.extra_attrs);
    if (l.path.empty()) {
      w.self_close();
    } else {
      w.text_body("loader", l.path);
    }
  }
  if (os.nvram) {
    w.open(2, "nvram");
    w.attr_if("template", os.nvram_template);
    if (os.nvram->empty()) {
      w.self_close();
    } else {
      w.text_body("nvram", *os.nvram);
    }
  }
  if (!os.kernel.empty()) w.text_elem(2, "kernel", os.kernel);
  if (!os.initrd.empty()) w.text_elem(2, "initrd", os.initrd);
  if (!os.cmdline.empty()) w.text_elem(2, "cmdline", os.cmdline);
  if (!os.dtb.empty()) w.text_elem(2, "dtb", os.dtb);
  w.elements(2, os.extra);
  for (auto& b : os.boot_devs) {
    w.open(2, "boot");
    w.attr("dev", b);
    w.self_close();
  }
  if (!os.bootmenu_enable.empty() || !os.bootmenu_timeout.empty()) {
    w.open(2, "bootmenu");
    w.attr_if("enable", os.bootmenu_enable);
    w.attr_if("timeout", os.bootmenu_timeout);
    w.self_close();
  }
  if (!os.smbios_mode.empty()) {
    w.open(2, "smbios");
    w.attr("mode", os.smbios_mode);
    w.self_close();
  }
  if (!os.bios_useserial.empty() || !os.bios_reboot_timeout.empty()) {
    w.open(2, "bios");
    w.attr_if("useserial", os.bios_useserial);
    w.attr_if("rebootTimeout", os.bios_reboot_timeout);
    w.self_close();
  }
  w.finish(mark, 1, "os");
}

void fmt_features(x::writer& w, const features_t& f) {
  w.open(1, "features");
  w.attrs(f.extra_attrs);
  auto mark = w.begin_body();
  for (std::size_t i = 0; i < std::size(feature_order); ++i) {
    auto st = feature_order[i];
    if (i == feat_idx("acpi")) fmt_flag(w, 2, st, f.acpi);
    else if (i == feat_idx("apic")) fmt_flag(w, 2, st, f.apic);
    else if (i == feat_idx("pae")) fmt_flag(w, 2, st, f.pae);
    else if (i == feat_idx("hap")) fmt_flag(w, 2, st, f.hap);
    else if (i == feat_idx("viridian")) fmt_flag(w, 2, st, f.viridian);
    else if (i == feat_idx("privnet")) fmt_flag(w, 2, st, f.privnet);
    else if (i == feat_idx("kvm")) fmt_flag(w, 2, st, f.kvm);
    else if (i == feat_idx("pmu")) fmt_flag(w, 2, st, f.pmu);
    else if (i == feat_idx("vmport")) fmt_flag(w, 2, st, f.vmport);
    else if (i == feat_idx("smm")) fmt_flag(w, 2, st, f.smm);
    if (!f.extra.empty()) fmt_extra_named(w, 2, f.extra, st);
  }
  for (auto& e : f.extra)
    if (std::find(std::begin(feature_order), std::end(feature_order), e.name) == std::end(feature_order))
      w.element(2, e);
  w.finish(mark, 1, "features");
}

void fmt_cpu(x::writer& w, const cpu_def& c) {
  w.open(1, "cpu");
  w.attr_if("mode", c.mode);
  w.attr_if("match", c.match);
  w.attr_if("check", c.check);
  w.attr_if("migratable", c.migratable);
  w.attrs(c.extra_attrs);
  auto mark = w.begin_body();
  if (c.model) {
    w.open(2, "model");
    w.attr_if("fallback", c.model_fallback);
    w.attr_if("vendor_id", c.model_vendor_id);
    if (c.model->empty()) {
      w.self_close();
    } else {
      w.text_body("model", *c.model);
    }
  }
  if (!c.vendor.empty()) w.text_elem(2, "vendor", c.vendor);
  if (c.topology) {
    w.open(2, "topology");
    w.attr_num("sockets", c.topology->sockets);
    if (c.topology->dies) w.attr_num("dies", c.topology->dies);
    w.attr_num("cores", c.topology->cores);
    w.attr_num("threads", c.topology->threads);
    w.self_close();
  }
  fmt_extra_named(w, 2, c.extra, "cache");
  fmt_extra_named(w, 2, c.extra, "maxphysaddr");
  for (auto& f : c.features) {
    w.open(2, "feature");
    w.attr_if("policy", f.policy);
    w.attr("name", f.name);
    w.self_close();
  }
  for (auto& e : c.extra)
    if (e.name != "cache" && e.name != "maxphysaddr") w.element(2, e);
  w.finish(mark, 1, "cpu");
}

void fmt_clock(x::writer& w, const clock_def& c) {
  w.open(1, "clock");
  w.attr_if("offset", c.offset);
  w.attr_if("adjustment", c.adjustment);
  w.attr_if("basis", c.basis);
  w.attr_if("timezone", c.timezone);
  w.attrs(c.extra_attrs);
  auto mark = w.begin_body();
  for (auto& t : c.timers) {
    w.open(2, "timer");
    w.attr("name", t.name);
    w.attr_if("present", t.present);
    w.attr_if("tickpolicy", t.tickpolicy);
    w.attr_if("track", t.track);
    w.attr_opt("frequency", t.frequency);
    w.attr_if("mode", t.mode);
    w.attrs(t.extra_attrs);
    auto m2 = w.begin_body();
    w.elements(3, t.children);
    w.finish(m2, 2, "timer");
  }
  w.elements(2, c.extra);
  w.finish(mark, 1, "clock");
}

}  // namespace

std::string format_domain_xml(const domain_config& d, const domain_format_options& opt) {
  x::writer w;
  w.open(0, "domain");
  w.attr("type", d.type);
  if (opt.id >= 0) w.attr_num("id", opt.id);
  w.attrs(d.extra_attrs);
  w.put(">\n");
  for (std::size_t i = 0; i < std::size(domain_order); ++i) {
    auto st = domain_order[i];
    if (i == dom_idx("name")) w.text_elem(1, "name", d.name);
    else if (i == dom_idx("uuid")) {
      if (!d.uuid.empty()) w.text_elem(1, "uuid", d.uuid);
    } else if (i == dom_idx("title")) {
      if (d.title) w.text_elem(1, "title", *d.title);
    } else if (i == dom_idx("description")) {
      if (d.description) w.text_elem(1, "description", *d.description);
    } else if (i == dom_idx("metadata")) {
      if (d.metadata) {
        if (d.metadata->empty()) {
          w.empty_elem(1, "metadata");
        } else {
          w.put("  <metadata>\n");
          for (auto& e : *d.metadata) {
            w.libxml_element(2, e);
            w.ch('\n');
          }
          w.put("  </metadata>\n");
        }
      }
    } else if (i == dom_idx("maxMemory")) {
      if (d.max_memory_kib) {
        w.open(1, "maxMemory");
        w.attr_opt("slots", d.max_memory_slots);
        w.attr("unit", "KiB");
        w.num_body("maxMemory", *d.max_memory_kib);
      }
    } else if (i == dom_idx("memory")) {
      w.open(1, "memory");
      w.attr("unit", "KiB");
      w.attr_if("dumpCore", d.memory_dump_core);
      w.num_body("memory", d.memory_kib);
    } else if (i == dom_idx("currentMemory")) {
      if (d.current_memory_kib) fmt_memory(w, "currentMemory", d.current_memory_kib);
    } else if (i == dom_idx("vcpu")) {
      if (d.vcpus == 0) continue;  // not given (libvirt's default is 1, see normalize)
      w.open(1, "vcpu");
      w.attr_if("placement", d.vcpu_placement);
      w.attr_if("cpuset", d.vcpu_cpuset);
      w.attr_opt("current", d.vcpu_current);
      w.num_body("vcpu", d.vcpus);
    } else if (i == dom_idx("bootloader")) {
      if (!d.bootloader.empty()) w.text_elem(1, "bootloader", d.bootloader);
    } else if (i == dom_idx("bootloader_args")) {
      if (d.bootloader_args) w.text_elem(1, "bootloader_args", *d.bootloader_args);
    } else if (i == dom_idx("os")) {
      fmt_os(w, d.os);
    } else if (i == dom_idx("features")) {
      if (d.features) fmt_features(w, *d.features);
    } else if (i == dom_idx("cpu")) {
      if (d.cpu) fmt_cpu(w, *d.cpu);
    } else if (i == dom_idx("clock")) {
      if (d.clock) fmt_clock(w, *d.clock);
    } else if (i == dom_idx("on_poweroff")) {
      if (!d.on_poweroff.empty()) w.text_elem(1, st, d.on_poweroff);
    } else if (i == dom_idx("on_reboot")) {
      if (!d.on_reboot.empty()) w.text_elem(1, st, d.on_reboot);
    } else if (i == dom_idx("on_crash")) {
      if (!d.on_crash.empty()) w.text_elem(1, st, d.on_crash);
    } else if (i == dom_idx("on_lockfailure")) {
      if (!d.on_lockfailure.empty()) w.text_elem(1, st, d.on_lockfailure);
    } else if (i == dom_idx("pm")) {
      if (d.pm) {
        w.open(1, "pm");
        auto mark = w.begin_body();
        if (!d.pm->suspend_to_mem.empty()) {
          w.open(2, "suspend-to-mem");
          w.attr("enabled", d.pm->suspend_to_mem);
          w.self_close();
        }
        if (!d.pm->suspend_to_disk.empty()) {
          w.open(2, "suspend-to-disk");
          w.attr("enabled", d.pm->suspend_to_disk);
          w.self_close();
        }
        w.finish(mark, 1, "pm");
      }
    } else if (i == dom_idx("devices")) {
      if (d.has_devices || !(d.devices == devices_t{})) fmt_devices(w, 1, d.devices, opt.secure);
    }
    if (!d.extra.empty()) fmt_extra_named(w, 1, d.extra, st);
  }
  for (auto& e : d.extra)
    if (std::find(std::begin(domain_order), std::end(domain_order), e.name) == std::end(domain_order))
      w.element(1, e);
  w.put("</domain>\n");
  return w.take();
}

// ====================================================================== names libvirt derives

/// virDiskNameToIndex: "sda" -> 0, "hdc" -> 2, "vdaa" -> 26; -1 if not a disk name.
int disk_name_to_index(std::string_view name) {
  static constexpr std::string_view prefixes[] = {"fd", "hd", "vd", "sd", "xvd", "ubd"};
  std::string_view p;
  for (auto pr : prefixes)
    if (name.substr(0, pr.size()) == pr) {
      p = pr;
      break;
    }
  if (p.empty()) return -1;
  std::string_view rest = name.substr(p.size());
  if (rest.empty()) return -1;
  std::size_t i = 0;
  // straightforward re-implementation of libvirt's loop
  int r = 0;
  auto letter = [&](std::size_t k) { return k < rest.size() && rest[k] >= 'a' && rest[k] <= 'z'; };
  // At most 6 letters: 26^6 fits an int, and no bus has more disks than that.
  for (i = 0; i < 6 && letter(i); ++i) r = (r + (i ? 1 : 0)) * 26 + (rest[i] - 'a');
  if (i == 0 || letter(i)) return -1;
  for (; i < rest.size(); ++i)
    if (rest[i] < '0' || rest[i] > '9') return -1;  // partition numbers allowed
  return r;
}

std::string bus_from_dev(std::string_view dev) {
  if (dev.substr(0, 2) == "hd") return "ide";
  if (dev.substr(0, 2) == "sd") return "scsi";
  if (dev.substr(0, 2) == "vd") return "virtio";
  if (dev.substr(0, 3) == "xvd") return "xen";
  if (dev.substr(0, 2) == "fd") return "fdc";
  if (dev.substr(0, 3) == "ubd") return "uml";
  return "ide";
}

std::string random_mac() {
  auto v = rng()();
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", static_cast<unsigned>(v & 0xff),
                static_cast<unsigned>((v >> 8) & 0xff), static_cast<unsigned>((v >> 16) & 0xff));
  return buf;
}

/// virDomainControllerInsertPreAlloced placement.

}  // namespace covirt
