// covirt: xm / xl config <-> covirt::domain_config, as libvirt 9's xen_common.c, xen_xm.c and
// xen_xl.c (with libxl's post-parse defaults: implicit inputs, console, xenbus, video, balloon).
#include <covirt/xen/xen_config.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

namespace covirt::xen {

namespace {

enum class fmt { xm, xl };
constexpr const char* hvmloader = "/usr/lib/xen/boot/hvmloader";

#define XEN_TRY(var, expr)                  \
  auto var##_res = (expr);                  \
  if (!var##_res) return var##_res.error(); \
  auto var = std::move(*var##_res)

failure bad(diagnostics& d, std::string m) { return fail(d, errc::conf_syntax, std::move(m)); }
failure unsupported(diagnostics& d, std::string m) { return fail(d, errc::config_unsupported, std::move(m)); }

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (;;) {
    auto e = s.find(sep, b);
    out.emplace_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}

std::string trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return std::string(s);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---------------------------------------------------------------- reading values

result<std::optional<std::string>> get_str(const conf_file& c, std::string_view name, diagnostics& diag) {
  const conf_value* v = c.get(name);
  if (!v) return std::optional<std::string>{};
  if (v->type != conf_value::kind::string) return bad(diag, "config value '" + std::string(name) + "' must be a string");
  return std::optional<std::string>(v->str);
}

result<unsigned long long> get_num(const conf_file& c, std::string_view name, unsigned long long def,
                                   diagnostics& diag) {
  const conf_value* v = c.get(name);
  if (!v) return def;
  if (v->type == conf_value::kind::integer && v->num >= 0) return static_cast<unsigned long long>(v->num);
  if (v->type == conf_value::kind::string && all_digits(v->str) && v->str.size() < 20) return std::stoull(v->str);
  std::string shown = v->type == conf_value::kind::string ? "'" + v->str + "'"
                      : v->type == conf_value::kind::integer ? std::to_string(v->num) : "a list";
  return bad(diag, "config value '" + std::string(name) + "' is not a non-negative number: " + shown);
}

result<bool> get_bool(const conf_file& c, std::string_view name, bool def, diagnostics& diag) {
  const conf_value* v = c.get(name);
  if (!v) return def;
  if (v->type == conf_value::kind::integer) return v->num != 0;
  if (v->type == conf_value::kind::string) return v->str == "1";
  return bad(diag, "config value '" + std::string(name) + "' was malformed (a list)");
}

/// The strings of a list value (other items skipped, as libvirt); nullopt when not a list.
std::optional<std::vector<std::string>> get_list(const conf_file& c, std::string_view name) {
  const conf_value* v = c.get(name);
  if (!v || v->type != conf_value::kind::list) return std::nullopt;
  std::vector<std::string> out;
  for (auto& i : v->items)
    if (i.type == conf_value::kind::string) out.push_back(i.str);
  return out;
}

// ---------------------------------------------------------------- the keys we know

const std::set<std::string_view>& known_keys(fmt f) {
  static const std::set<std::string_view> common = {
      "name", "uuid", "memory", "maxmem", "vcpus", "maxvcpus", "cpus", "builder", "kernel", "ramdisk", "extra",
      "root", "bootloader", "bootargs", "on_poweroff", "on_reboot", "on_crash", "localtime", "rtc_timeoffset",
      "pae", "acpi", "apic", "hap", "viridian", "hpet", "boot", "device_model", "device_model_override",
      "device_model_version", "disk", "vif", "vfb", "vnc", "vncunused", "vncdisplay", "vnclisten", "vncpasswd",
      "keymap", "sdl", "display", "xauthority", "serial", "parallel", "soundhw", "usb", "usbdevice", "pci",
      // accepted and ignored, as libvirt ignores them
      "stdvga", "monitor", "nographic", "vncconsole", "xen_platform_pci", "nx", "shadow_memory", "timer_mode",
      "vpt_align", "on_xend_start", "on_xend_stop", "cpu_weight", "cpu_cap", "vcpu_avail", "dhcp", "netmask",
      "gateway", "hostname", "vtpm", "opengl"};
  static const std::set<std::string_view> xl = [] {
    auto s = common;
    s.insert({"type", "cmdline"});
    return s;
  }();
  return f == fmt::xl ? xl : common;
}

// ---------------------------------------------------------------- pieces

std::string random_xen_mac() {
  std::random_device rd;
  char buf[18];
  std::snprintf(buf, sizeof buf, "00:16:3e:%02x:%02x:%02x", rd() & 0xff, rd() & 0x7f, rd() & 0xff);
  return buf;
}

/// A cpu list ("0-3,^2") to libvirt's canonical form ("0-1,3"), with the domain codec's
/// parse_bitmap (libvirt's syntax; CPUs below 4096) and this config's own message.
result<std::string> canonical_cpuset(std::string_view text, diagnostics& diag) {
  auto members = parse_bitmap(text, 4096, diag);
  if (!members) return bad(diag, "config value 'cpus' is not a valid CPU list: '" + std::string(text) + "'");
  return format_bitmap(*members);
}

void assign_drive_address(disk_def& d) {
  int idx = disk_name_to_index(d.target_dev);
  if (idx < 0 || (d.target_bus != "ide" && d.target_bus != "scsi")) return;
  device_address a;
  a.type = "drive";
  int ctl = d.target_bus == "ide" ? idx / 4 : idx / 7;
  int bus = d.target_bus == "ide" ? (idx % 4) / 2 : 0;
  int unit = d.target_bus == "ide" ? idx % 2 : idx % 7;
  a.attrs = {{"controller", std::to_string(ctl)}, {"bus", std::to_string(bus)}, {"target", "0"},
             {"unit", std::to_string(unit)}};
  d.address = a;
}

void set_disk_source(disk_def& d, const std::string& path) {
  if (path.empty()) return;
  auto& s = d.source.emplace();
  if (d.type == "block") s.dev = path;
  else s.file = path;
}

std::string disk_bus(std::string_view dev, bool hvm) {
  if (starts(dev, "xvd") || !hvm) return "xen";
  if (starts(dev, "sd")) return "scsi";
  return "ide";
}

const std::set<std::string_view> image_formats = {"raw", "qcow", "qcow2", "vhd", "qed", "vmdk", "cow", "dmg",
                                                  "iso", "bochs", "cloop", "vpc", "vdi", "fat", "ploop"};

/// "phy:/dev/vg/x,xvda,w" (xenParseXMDisk).
result<disk_def> parse_xm_disk(const std::string& spec, bool hvm, diagnostics& diag) {
  auto parts = split(spec, ',');
  if (parts.size() != 3 || parts[1].empty())
    return bad(diag, "malformed disk spec '" + spec + "': expecting SOURCE,VDEV,MODE");
  disk_def d;
  std::string src = parts[0], driver, format;
  if (auto c = src.find(':'); !src.empty() && c != std::string::npos) {
    driver = src.substr(0, c);
    src.erase(0, c + 1);
    if (driver == "tap" || driver == "tap2") {
      auto c2 = src.find(':');
      if (c2 == std::string::npos) return bad(diag, "malformed disk spec '" + spec + "': tap needs a sub-type");
      format = src.substr(0, c2);
      if (format == "aio") format = "raw";
      if (!image_formats.count(format)) return unsupported(diag, "unknown disk driver type '" + format + "' in '" + spec + "'");
      src.erase(0, c2 + 1);
    } else if (driver != "phy" && driver != "file") {
      return unsupported(diag, "unsupported disk driver '" + driver + "' in '" + spec + "'");
    }
  }
  if (driver.empty()) driver = "phy";
  d.type = driver == "phy" ? "block" : "file";
  d.driver = disk_def::driver_t{driver, format.empty() ? "raw" : format, {}, {}, {}, {}};
  set_disk_source(d, src);
  std::string dst = parts[1];
  if (starts(dst, "ioemu:")) dst.erase(0, 6);
  if (auto c = dst.find(':'); c != std::string::npos) {
    if (dst.substr(c) == ":cdrom") d.device = "cdrom";
    else if (dst.substr(c) != ":disk") return unsupported(diag, "unsupported device type '" + dst.substr(c + 1) + "' in '" + spec + "'");
    dst.erase(c);
  }
  if (disk_name_to_index(dst) < 0) return bad(diag, "malformed disk spec '" + spec + "': bad device name '" + dst + "'");
  d.target_dev = dst;
  d.target_bus = disk_bus(dst, hvm);
  const std::string& mode = parts[2];
  if (mode == "r" || mode == "ro") d.readonly = true;
  else if (mode == "w!" || mode == "!") d.shareable = true;
  else if (mode != "w" && mode != "rw") return bad(diag, "malformed disk spec '" + spec + "': bad mode '" + mode + "'");
  assign_drive_address(d);
  return d;
}

/// xl's disk syntax (xl-disk-configuration): positional target,format,vdev,access and key=value,
/// `target=` last; the deprecated xm form is accepted.
result<disk_def> parse_xl_disk(const std::string& spec, bool hvm, diagnostics& diag) {
  std::string target, format, vdev, access, devtype, backend;
  bool have_target = false;
  std::vector<std::string> positional;
  std::string_view rest = spec;
  while (!rest.empty()) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    if (starts(rest, "target=")) {
      target = std::string(rest.substr(7)), have_target = true;
      break;
    }
    auto e = rest.find(',');
    std::string tok(rest.substr(0, e));
    rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 1);
    if (auto eq = tok.find('='); eq != std::string::npos) {
      std::string k = tok.substr(0, eq), v = tok.substr(eq + 1);
      if (k == "format") format = v;
      else if (k == "vdev") vdev = v;
      else if (k == "access") access = v;
      else if (k == "devtype") devtype = v;
      else if (k == "backendtype") backend = v;
      else return unsupported(diag, "unsupported disk parameter '" + k + "' in '" + spec + "'");
    } else if (tok == "cdrom") {
      devtype = "cdrom";
    } else if (!tok.empty() || !rest.empty()) {
      positional.push_back(tok);
    }
  }
  if (!positional.empty()) {
    std::string* slots[] = {&target, &format, &vdev, &access};
    bool filled[] = {have_target, !format.empty(), !vdev.empty(), !access.empty()};
    std::size_t s = 0;
    for (auto& p : positional) {
      while (s < 4 && filled[s]) ++s;
      if (s == 1 && !p.empty() && !image_formats.count(p)) ++s;  // the deprecated TARGET,VDEV,ACCESS form
      while (s < 4 && filled[s]) ++s;
      if (s >= 4) return bad(diag, "malformed disk spec '" + spec + "': too many parameters");
      *slots[s] = p;
      filled[s++] = true;
    }
  }
  // deprecated prefixes on the target: ignored, but raw:/qcow:/qcow2:/vhd: give the format
  for (bool again = true; again;) {
    again = false;
    for (std::string_view p : {"phy:", "file:", "tap:", "tap2:", "aio:", "ioemu:", "tapdisk:"})
      if (starts(target, p)) target.erase(0, p.size()), again = true;
    for (std::string_view p : {"raw:", "qcow:", "qcow2:", "vhd:"})
      if (starts(target, p)) format = std::string(p.substr(0, p.size() - 1)), target.erase(0, p.size()), again = true;
  }
  if (auto c = vdev.find(':'); c != std::string::npos) {
    if (vdev.substr(c) == ":cdrom") devtype = "cdrom";
    vdev.erase(c);
  }
  if (vdev.empty() || disk_name_to_index(vdev) < 0)
    return bad(diag, "malformed disk spec '" + spec + "': missing or bad vdev '" + vdev + "'");
  disk_def d;
  d.target_dev = vdev;
  d.target_bus = disk_bus(vdev, hvm);
  if (access.empty() || access == "rw" || access == "w") {
  } else if (access == "ro" || access == "r") {
    d.readonly = true;
  } else if (access == "!" || access == "w!") {
    d.shareable = true;
  } else {
    return bad(diag, "malformed disk spec '" + spec + "': bad access '" + access + "'");
  }
  if (format == "xvhd") format = "vhd";
  if (!format.empty() && format != "empty" && !image_formats.count(format))
    return unsupported(diag, "disk image format not supported: '" + format + "'");
  if (!devtype.empty() && devtype != "cdrom" && devtype != "disk")
    return unsupported(diag, "unsupported disk devtype '" + devtype + "'");
  std::string driver = "qemu";
  if (devtype == "cdrom") {
    d.device = "cdrom";
  } else if (backend == "phy") {
    driver = "phy", d.type = "block";
  } else if (backend == "tap") {
    driver = "tap";
  } else if (!backend.empty() && backend != "qdisk") {
    return unsupported(diag, "disk backend not supported: '" + backend + "'");
  }
  d.driver = disk_def::driver_t{driver, format.empty() || format == "empty" ? "raw" : format, {}, {}, {}, {}};
  set_disk_source(d, target);
  assign_drive_address(d);
  return d;
}

/// A character device string (xenParseSxprChar): "pty", "/dev/ttyS0", "file:/x", "tcp:h:p,server".
result<chardev_def> parse_chr(const std::string& value, diagnostics& diag) {
  chardev_def c;
  c.has_target = true;
  if (!value.empty() && value[0] == '/') {
    c.type = "dev";
    c.sources.push_back({{}, value, {}, {}, {}, {}, {}});
    return c;
  }
  std::string prefix = value, rest;
  if (auto p = value.find(':'); p != std::string::npos) prefix = value.substr(0, p), rest = value.substr(p + 1);
  static const std::set<std::string_view> types = {"null", "vc", "pty", "dev", "file", "pipe", "stdio", "udp", "tcp", "unix"};
  if (starts(prefix, "telnet")) {
    c.type = "tcp", c.protocol_type = "telnet";
  } else if (types.count(prefix)) {
    c.type = prefix;
  } else {
    return unsupported(diag, "unknown chr device type '" + prefix + "'");
  }
  if (c.type == "file" || c.type == "pipe" || c.type == "dev") {
    c.sources.push_back({{}, rest, {}, {}, {}, {}, {}});
  } else if (c.type == "tcp") {
    if (c.protocol_type.empty()) c.protocol_type = "raw";
    auto colon = rest.find(':');
    if (colon == std::string::npos) return bad(diag, "malformed char device string '" + value + "'");
    auto comma = rest.find(',', colon);
    bool listen = comma != std::string::npos && rest.find(",server", comma) != std::string::npos;
    chardev_def::source_t s;
    s.mode = listen ? "bind" : "connect";
    s.host = rest.substr(0, colon);
    s.service = rest.substr(colon + 1, comma == std::string::npos ? std::string::npos : comma - colon - 1);
    c.sources.push_back(s);
  } else if (c.type == "udp") {
    auto colon = rest.find(':');
    if (colon == std::string::npos) return bad(diag, "malformed char device string '" + value + "'");
    chardev_def::source_t conn, bind;
    conn.mode = "connect", bind.mode = "bind";
    conn.host = rest.substr(0, colon);
    auto at = rest.find('@', colon);
    conn.service = rest.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1);
    if (at != std::string::npos) {
      auto c3 = rest.find(':', at);
      if (c3 == std::string::npos) return bad(diag, "malformed char device string '" + value + "'");
      bind.host = rest.substr(at + 1, c3 - at - 1);
      bind.service = rest.substr(c3 + 1);
      c.sources.push_back(bind);
    }
    c.sources.push_back(conn);
  } else if (c.type == "unix") {
    auto comma = rest.find(',');
    chardev_def::source_t s;
    s.mode = comma != std::string::npos && rest.find(",server", comma) != std::string::npos ? "bind" : "connect";
    s.path = rest.substr(0, comma);
    c.sources.push_back(s);
  }
  return c;
}

/// "mac=..,bridge=..,script=.." (xenParseVif).
result<interface_def> parse_vif(const std::string& spec, bool hvm, fmt f, diagnostics& diag) {
  std::optional<std::string> mac, bridge, script, model, type, vifname, ip, rate;
  for (auto& kv : split(spec, ',')) {
    std::string t = trim_left(kv);
    if (t.empty() && spec.empty()) break;  // '' is one NIC with all defaults
    auto eq = t.find('=');
    if (eq == std::string::npos) return bad(diag, "malformed vif spec '" + spec + "': '" + t + "' is not key=value");
    std::string k = t.substr(0, eq), v = t.substr(eq + 1);
    if (k == "mac") mac = v;
    else if (k == "bridge") bridge = v;
    else if (k == "script") script = v;
    else if (k == "model") model = v;
    else if (k == "type") type = v;
    else if (k == "vifname") vifname = v;
    else if (k == "ip") ip = v;
    else if (k == "rate") rate = v;
    else if (k != "backend") return unsupported(diag, "unsupported vif parameter '" + k + "' in '" + spec + "'");
  }
  interface_def n;
  if (mac) {
    std::string m = *mac;
    std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    bool ok = m.size() == 17;
    for (std::size_t i = 0; ok && i < 17; ++i) ok = i % 3 == 2 ? m[i] == ':' : std::isxdigit(static_cast<unsigned char>(m[i])) != 0;
    if (!ok) return bad(diag, "malformed mac address '" + *mac + "'");
    n.mac = m;
  } else {
    n.mac = random_xen_mac();
  }
  bool bridged = bridge || script == std::optional<std::string>("vif-bridge") || script == std::optional<std::string>("vif-vnic");
  n.type = bridged ? "bridge" : "ethernet";
  if (bridged && bridge) {
    if (bridge->find_first_of(".:") != std::string::npos)
      return unsupported(diag, "VLAN tags in vif bridge '" + *bridge + "' are not supported");
    n.source.emplace().bridge = *bridge;
  }
  if (ip) {
    if (ip->find(' ') != std::string::npos) return unsupported(diag, "multiple IP addresses in vif '" + spec + "'");
    n.extra.push_back({"ip", {{"address", *ip}}, {}, {}});
  }
  if (script && !script->empty()) n.script_path = *script;
  if (model) n.model_type = *model;
  else if (type && *type == (f == fmt::xl ? "vif" : "netfront")) n.model_type = "netfront";
  (void)hvm;
  if (vifname && !vifname->empty()) n.target_dev = *vifname;
  if (rate) {
    std::string r = rate->substr(0, rate->find('@'));
    std::size_t i = 0;
    while (i < r.size() && std::isdigit(static_cast<unsigned char>(r[i]))) ++i;
    std::string unit = r.substr(i);
    static const std::set<std::string_view> units = {"B/s", "b/s", "KB/s", "Kb/s", "MB/s", "Mb/s", "GB/s", "Gb/s"};
    if (i == 0 || i > 15 || !units.count(unit)) return bad(diag, "invalid rate '" + *rate + "' in vif '" + spec + "'");
    unsigned long long v = std::stoull(r.substr(0, i));
    if (unit[0] == 'G') v *= 1024 * 1024;
    else if (unit[0] == 'M') v *= 1024;
    if (unit.find('b') != std::string::npos) v /= 8;
    xml_element out{"outbound", {{"average", std::to_string(v)}}, {}, {}};
    n.extra.push_back({"bandwidth", {}, {}, {out}});
  }
  return n;
}

/// "DDDD:BB:SS.F" or "BB:SS.F" (hex), options after a comma (xenParsePCI).
result<hostdev_def> parse_pci(const std::string& entry, diagnostics& diag) {
  std::string addr = entry.substr(0, entry.find(','));
  auto parts = split(addr, ':');
  auto hex = [](const std::string& s, unsigned max, unsigned& out) {
    if (s.empty() || s.size() > 4 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
      return false;
    out = static_cast<unsigned>(std::stoul(s, nullptr, 16));
    return out <= max;
  };
  unsigned dom = 0, bus = 0, slot = 0, fn = 0;
  bool ok = parts.size() == 2 || parts.size() == 3;
  if (ok && parts.size() == 3) ok = hex(parts[0], 0xffff, dom);
  if (ok) ok = hex(parts[parts.size() - 2], 0xff, bus);
  std::string sf = ok ? parts.back() : "";
  auto dot = sf.find('.');
  if (ok) ok = dot != std::string::npos && hex(sf.substr(0, dot), 0x1f, slot) && hex(sf.substr(dot + 1), 7, fn);
  if (!ok) return bad(diag, "malformed PCI address '" + entry + "': expecting DDDD:BB:SS.F");
  if (entry.find(',') != std::string::npos)
    return unsupported(diag, "PCI options in '" + entry + "' are not supported");
  hostdev_def h;
  h.managed = "no";
  device_address a;
  char b[4][8];
  std::snprintf(b[0], sizeof b[0], "0x%04x", dom);
  std::snprintf(b[1], sizeof b[1], "0x%02x", bus);
  std::snprintf(b[2], sizeof b[2], "0x%02x", slot);
  std::snprintf(b[3], sizeof b[3], "0x%x", fn);
  a.attrs = {{"domain", b[0]}, {"bus", b[1]}, {"slot", b[2]}, {"function", b[3]}};
  h.source_address = a;
  return h;
}

graphics_def vnc_graphics(bool autoport, std::optional<int> port, const std::optional<std::string>& listen,
                          const std::optional<std::string>& passwd, const std::optional<std::string>& keymap) {
  graphics_def g;
  g.type = "vnc";
  g.autoport = autoport ? "yes" : "no";
  if (autoport) g.port = -1;
  else if (port) g.port = *port;
  if (listen) {
    g.listen = *listen;
    g.listens.push_back({"address", *listen, {}, {}, {}});
  }
  if (passwd) g.passwd = *passwd;
  if (keymap) g.keymap = *keymap;
  return g;
}

result<void> parse_graphics(const conf_file& c, domain_config& d, bool hvm, diagnostics& diag) {
  if (hvm) {
    XEN_TRY(vnc, get_bool(c, "vnc", false, diag));
    if (vnc) {
      XEN_TRY(unused, get_bool(c, "vncunused", true, diag));
      XEN_TRY(display, get_num(c, "vncdisplay", 0, diag));
      XEN_TRY(listen, get_str(c, "vnclisten", diag));
      XEN_TRY(passwd, get_str(c, "vncpasswd", diag));
      XEN_TRY(keymap, get_str(c, "keymap", diag));
      d.devices.graphics.push_back(vnc_graphics(unused, static_cast<int>(display) + 5900, listen, passwd, keymap));
      return {};
    }
    XEN_TRY(sdl, get_bool(c, "sdl", false, diag));
    if (sdl) {
      graphics_def g;
      g.type = "sdl";
      XEN_TRY(display, get_str(c, "display", diag));
      XEN_TRY(xauth, get_str(c, "xauthority", diag));
      if (display) g.display = *display;
      if (xauth) g.xauth = *xauth;
      d.devices.graphics.push_back(g);
    }
    return {};
  }
  auto vfbs = get_list(c, "vfb");
  if (!vfbs || vfbs->empty()) return {};
  const std::string& spec = vfbs->front();
  bool sdl = spec.find("type=sdl") != std::string::npos;
  bool autoport = false;
  std::optional<int> port;
  std::optional<std::string> listen, passwd, keymap, display, xauth;
  for (auto& raw : split(spec, ',')) {
    std::string kv = trim_left(raw);
    auto eq = kv.find('=');
    if (eq == std::string::npos) break;
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "vncunused") autoport = v == "1";
    else if (k == "vnclisten") listen = v;
    else if (k == "vncpasswd") passwd = v;
    else if (k == "keymap") keymap = v;
    else if (k == "display") display = v;
    else if (k == "xauthority") xauth = v;
    else if (k == "vncdisplay") {
      if (!all_digits(v) || v.size() > 5) return bad(diag, "invalid vncdisplay value '" + v + "' in vfb");
      port = std::stoi(v) + 5900;
    } else if (k != "type" && k != "vnc" && k != "sdl")
      return unsupported(diag, "unsupported vfb parameter '" + k + "'");
  }
  if (sdl) {
    graphics_def g;
    g.type = "sdl";
    if (display) g.display = *display;
    if (xauth) g.xauth = *xauth;
    d.devices.graphics.push_back(g);
  } else {
    d.devices.graphics.push_back(vnc_graphics(autoport, port, listen, passwd, keymap));
  }
  return {};
}

result<void> parse_chardevs(const conf_file& c, domain_config& d, fmt f, diagnostics& diag) {
  auto& dv = d.devices;
  XEN_TRY(par, get_str(c, "parallel", diag));
  if (par && *par != "none") {
    XEN_TRY(ch, parse_chr(*par, diag));
    ch.target_port = 0;
    dv.parallels.push_back(ch);
  }
  const conf_value* sv = c.get("serial");
  std::vector<std::string> ports;
  if (sv && sv->type == conf_value::kind::list) {
    if (f == fmt::xm) return unsupported(diag, "Multiple serial devices are not supported by xen-xm");
    ports = *get_list(c, "serial");
  } else {
    XEN_TRY(s, get_str(c, "serial", diag));
    if (s) ports.push_back(*s);
  }
  for (unsigned i = 0; i < ports.size(); ++i) {
    if (ports[i] == "none") continue;
    XEN_TRY(ch, parse_chr(ports[i], diag));
    ch.target_port = i;
    dv.serials.push_back(ch);
  }
  if (!dv.serials.empty()) {  // libvirt's console compat: serial 0 again as a console
    chardev_def con = dv.serials.front();
    con.target_type = "serial";
    con.target_port = 0;
    dv.consoles.push_back(con);
  }
  return {};
}

result<domain_config> domain_from(const conf_file& c, fmt f, diagnostics& diag) {
  const auto& keys = known_keys(f);
  for (auto& e : c.entries)
    if (!keys.count(e.name)) return unsupported(diag, "unsupported config key '" + e.name + "'");
  domain_config d;
  d.type = "xen";
  XEN_TRY(name, get_str(c, "name", diag));
  if (!name || name->empty()) return bad(diag, "config value 'name' was missing");
  d.name = *name;
  XEN_TRY(uuid, get_str(c, "uuid", diag));
  if (uuid) {
    diagnostics ud;
    auto u = parse_uuid(*uuid, ud);
    if (!u) return bad(diag, "uuid '" + *uuid + "' not parseable");
    d.uuid = *u;
  } else {
    d.uuid = generate_uuid();
  }
  bool hvm = false;
  XEN_TRY(type, f == fmt::xl ? get_str(c, "type", diag) : result<std::optional<std::string>>(std::nullopt));
  if (type) {
    if (*type == "hvm") hvm = true;
    else if (*type != "pv") return unsupported(diag, "type '" + *type + "' is not supported");
  } else {
    XEN_TRY(builder, get_str(c, "builder", diag));
    if (builder && *builder == "hvm") hvm = true;
    else if (builder && *builder != "linux") return unsupported(diag, "builder '" + *builder + "' is not supported");
  }
  d.os.type = hvm ? "hvm" : "linux";
  d.os.arch = "x86_64";
  d.os.machine = hvm ? "xenfv" : "xenpv";
  // memory (MiB in the file)
  XEN_TRY(mem, get_num(c, "memory", 128, diag));
  XEN_TRY(maxmem, get_num(c, "maxmem", mem, diag));
  d.current_memory_kib = mem * 1024;
  d.memory_kib = maxmem * 1024;
  // lifecycle
  static const std::set<std::string_view> actions = {"destroy", "restart", "rename-restart", "preserve",
                                                     "coredump-destroy", "coredump-restart"};
  for (auto [key, member, def] : {std::tuple{"on_poweroff", &domain_config::on_poweroff, "destroy"},
                                  std::tuple{"on_reboot", &domain_config::on_reboot, "restart"},
                                  std::tuple{"on_crash", &domain_config::on_crash, "restart"}}) {
    XEN_TRY(v, get_str(c, key, diag));
    std::string a = v ? *v : def;
    if (!actions.count(a) || (a.rfind("coredump", 0) == 0 && std::string_view(key) != "on_crash"))
      return unsupported(diag, "unexpected value '" + a + "' for " + key);
    d.*member = a;
  }
  // vcpus
  XEN_TRY(vcpus, get_num(c, "vcpus", 1, diag));
  XEN_TRY(maxv, get_num(c, "maxvcpus", vcpus, diag));
  if (vcpus == 0 || maxv < vcpus || maxv > 4096) return bad(diag, "vcpus " + std::to_string(vcpus) + " / maxvcpus " + std::to_string(maxv) + " are not valid");
  d.vcpus = static_cast<unsigned>(maxv);
  if (maxv != vcpus) d.vcpu_current = static_cast<unsigned>(vcpus);
  d.vcpu_placement = "static";
  XEN_TRY(cpus, get_str(c, "cpus", diag));
  if (cpus) {
    XEN_TRY(cs, canonical_cpuset(*cpus, diag));
    d.vcpu_cpuset = cs;
  }
  // features and clock
  XEN_TRY(localtime, get_bool(c, "localtime", false, diag));
  clock_def clk;
  if (hvm) {
    features_t ft;
    XEN_TRY(acpi, get_bool(c, "acpi", true, diag));
    XEN_TRY(apic, get_bool(c, "apic", true, diag));
    XEN_TRY(hap, get_bool(c, "hap", true, diag));
    XEN_TRY(viridian, get_bool(c, "viridian", false, diag));
    XEN_TRY(pae, get_bool(c, "pae", true, diag));
    (void)pae;  // libxl: x86_64 HVM guests always have PAE
    if (acpi) ft.acpi = feature_flag{};
    if (apic) ft.apic = feature_flag{};
    ft.pae = feature_flag{};
    if (!hap) ft.hap = feature_flag{"off", {}, {}};
    if (viridian) ft.viridian = feature_flag{};
    d.features = ft;
    XEN_TRY(off, get_num(c, "rtc_timeoffset", 0, diag));
    clk.offset = "variable";
    clk.adjustment = std::to_string(static_cast<int>(off));
    clk.basis = localtime ? "localtime" : "utc";
    if (c.get("hpet")) {
      XEN_TRY(hpet, get_bool(c, "hpet", false, diag));
      clock_timer t;
      t.name = "hpet";
      t.present = hpet ? "yes" : "no";
      clk.timers.push_back(t);
    }
  } else {
    clk.offset = localtime ? "localtime" : "utc";
    clk.adjustment = "reset";
  }
  d.clock = clk;
  // the OS
  XEN_TRY(kernel, get_str(c, "kernel", diag));
  XEN_TRY(ramdisk, get_str(c, "ramdisk", diag));
  XEN_TRY(extra, get_str(c, "extra", diag));
  XEN_TRY(root, get_str(c, "root", diag));
  XEN_TRY(cmdline, f == fmt::xl ? get_str(c, "cmdline", diag) : result<std::optional<std::string>>(std::nullopt));
  std::string cmd = cmdline ? *cmdline
                    : root && extra ? "root=" + *root + " " + *extra
                    : root          ? "root=" + *root
                    : extra         ? *extra
                                    : "";
  if (hvm) {
    d.os.loader = domain_config::os_t::loader_t{};
    d.os.loader->type = "rom";
    if (f == fmt::xm) {
      if (!kernel) return bad(diag, "config value 'kernel' was missing (the HVM loader)");
      d.os.loader->path = *kernel;
    } else {
      d.os.loader->path = hvmloader;
      if (kernel) d.os.kernel = *kernel;
      if (ramdisk) d.os.initrd = *ramdisk;
      d.os.cmdline = cmd;
    }
    XEN_TRY(boot, get_str(c, "boot", diag));
    std::string b = boot ? *boot : "c";
    for (std::size_t i = 0; i < b.size() && i < 4; ++i)
      d.os.boot_devs.push_back(b[i] == 'a' ? "fd" : b[i] == 'd' ? "cdrom" : b[i] == 'n' ? "network" : "hd");
  } else {
    XEN_TRY(bl, get_str(c, "bootloader", diag));
    XEN_TRY(ba, get_str(c, "bootargs", diag));
    if (bl) d.bootloader = *bl;
    if (ba) d.bootloader_args = *ba;
    if (kernel) d.os.kernel = *kernel;
    if (ramdisk) d.os.initrd = *ramdisk;
    d.os.cmdline = cmd;
  }
  // devices
  auto& dv = d.devices;
  d.has_devices = true;
  XEN_TRY(dmo, get_str(c, "device_model_override", diag));
  XEN_TRY(dm, get_str(c, "device_model", diag));
  if (dmo) dv.emulator = *dmo;
  else if (dm) dv.emulator = *dm;
  if (auto disks = get_list(c, "disk"))
    for (auto& spec : *disks) {
      XEN_TRY(disk, f == fmt::xm ? parse_xm_disk(spec, hvm, diag) : parse_xl_disk(spec, hvm, diag));
      dv.disks.push_back(std::move(disk));
    }
  controller_def xenbus;
  xenbus.type = "xenbus", xenbus.index = 0;
  dv.controllers.push_back(xenbus);
  for (std::string bus : {"ide", "scsi"}) {
    int max = -1;
    for (auto& dk : dv.disks)
      if (dk.target_bus == bus && dk.address) max = std::max(max, std::stoi(std::string(dk.address->get("controller"))));
    for (int i = 0; i <= max; ++i) {
      controller_def ctl;
      ctl.type = bus, ctl.index = static_cast<unsigned>(i);
      dv.controllers.push_back(ctl);
    }
  }
  if (const conf_value* vl = c.get("vif"); vl && vl->type == conf_value::kind::list)
    for (auto& item : vl->items) {
      if (item.type != conf_value::kind::string) continue;
      XEN_TRY(nic, parse_vif(item.str, hvm, f, diag));
      dv.interfaces.push_back(std::move(nic));
    }
  if (auto pcis = get_list(c, "pci"))
    for (auto& p : *pcis) {
      XEN_TRY(h, parse_pci(p, diag));
      dv.hostdevs.push_back(std::move(h));
    }
  if (hvm) {
    XEN_TRY(snd, get_str(c, "soundhw", diag));
    if (snd) {
      static const std::set<std::string_view> models = {"sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb", "ich7"};
      auto list = *snd == "all" ? std::vector<std::string>{"sb16", "es1370"} : split(*snd, ',');
      for (auto& m : list) {
        if (!models.count(m)) return unsupported(diag, "unsupported sound model '" + m + "'");
        sound_def s;
        s.model = m;
        dv.sounds.push_back(s);
      }
    }
  }
  if (auto g = parse_graphics(c, d, hvm, diag); !g) return g.error();
  if (hvm) {
    if (auto ch = parse_chardevs(c, d, f, diag); !ch) return ch.error();
    std::vector<std::string> usb;
    const conf_value* uv = c.get("usbdevice");
    if (uv && uv->type == conf_value::kind::list && f == fmt::xl) usb = *get_list(c, "usbdevice");
    else if (uv) {
      XEN_TRY(u, get_str(c, "usbdevice", diag));
      usb.push_back(*u);
    }
    for (auto& u : usb) {
      if (u != "tablet" && u != "mouse" && u != "keyboard") return unsupported(diag, "unsupported usbdevice '" + u + "'");
      dv.inputs.push_back({{}, u == "keyboard" ? "keyboard" : u, "usb"});
    }
  } else {
    chardev_def con;
    con.has_target = true, con.target_type = "xen", con.target_port = 0;
    dv.consoles.push_back(con);
  }
  std::string ibus = hvm ? "ps2" : "xen";
  dv.inputs.push_back({{}, "mouse", ibus});
  dv.inputs.push_back({{}, "keyboard", ibus});
  if (!dv.graphics.empty()) {
    video_def v;
    v.model_type = hvm ? "cirrus" : "xen";
    v.vram = hvm ? 8192 : 4096;
    v.heads = 1;
    v.primary = true;
    dv.videos.push_back(v);
  }
  memballoon_def mb;
  mb.model = "xen";
  dv.memballoon = mb;
  return d;
}

}  // namespace

result<domain_config> domain_from_xm(const conf_file& conf, diagnostics& diag) { return domain_from(conf, fmt::xm, diag); }
result<domain_config> domain_from_xl(const conf_file& conf, diagnostics& diag) { return domain_from(conf, fmt::xl, diag); }

}  // namespace covirt::xen
