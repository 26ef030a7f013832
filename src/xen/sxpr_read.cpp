// covirt: xend's domain S-expression -> domain_config, following libvirt's xen_sxpr.c (what it
// read and the defaults it set), so that format_domain_xml prints what libvirt printed. The
// other way is sxpr_write.cpp.

#include "sxpr_shared.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <utility>

namespace covirt::xen {

using namespace sxpr_impl;

namespace {

// ------------------------------------------------------------------ reading

struct reading {
  const sexpr& root;
  const sxpr_context& ctx;
  diagnostics& diag;
  sxpr_domain& out;
  bool hvm = false;
  std::string img;  // "domain/image/hvm" or "domain/image/linux"
  domain_config& def() { return out.def; }
};

result<void> read_lifecycle(reading& r, std::string_view key, std::string& to, std::string_view dflt) {
  auto v = value(r.root, std::string("domain/") + std::string(key));
  if (!v) {
    to = std::string(dflt);
    return {};
  }
  if (!known(lifecycle_actions, *v))
    return fail(r.diag, errc::config_unsupported,
                "domain/" + std::string(key) + ": unknown lifecycle action '" + std::string(*v) + "'");
  to = std::string(*v);
  return {};
}

result<void> read_os(reading& r) {
  auto& os = r.def().os;
  auto get = [&](std::string_view k) { return value(r.root, r.img + "/" + std::string(k)); };
  if (r.hvm) {
    auto loader = get("loader");
    bool old = !loader;
    if (old) loader = get("kernel");
    if (!loader) return fail(r.diag, errc::internal_error, "domain information incomplete, missing HVM loader");
    os.loader.emplace().path = std::string(*loader);
    if (!old) {
      if (auto k = get("kernel")) os.kernel = std::string(*k);
      if (auto k = get("ramdisk")) os.initrd = std::string(*k);
      if (auto k = get("args")) os.cmdline = std::string(*k);
    }
    if (os.kernel == os.loader->path) os.kernel.clear();  // old xend: kernel == loader
  } else {
    if (auto k = get("kernel")) os.kernel = std::string(*k);
    if (auto k = get("ramdisk")) os.initrd = std::string(*k);
    if (auto k = get("args")) os.cmdline = std::string(*k);
  }
  if (auto root = get("root"); root && !r.hvm) os.extra.push_back({"root", {}, std::string(*root), {}});
  if (r.hvm && os.kernel.empty()) {
    for (char c : value(r.root, r.img + "/boot").value_or("")) {
      if (c == 'a') os.boot_devs.emplace_back("fd");
      else if (c == 'c') os.boot_devs.emplace_back("hd");
      else if (c == 'd') os.boot_devs.emplace_back("cdrom");
      else if (c == 'n') os.boot_devs.emplace_back("network");
    }
  }
  if (!r.hvm && os.kernel.empty() && r.def().bootloader.empty() && !find(r.root, "domain/bootloader"))
    return fail(r.diag, errc::internal_error, "domain information incomplete, missing kernel & bootloader");
  return {};
}

result<void> read_disks(reading& r) {
  for (const sexpr* dev : find_all(r.root, "domain/device")) {
    if (dev->list.size() < 2 || !dev->list[1].is_list) continue;
    const sexpr& d = dev->list[1];
    std::string_view kind = d.head();
    if (kind != "vbd" && kind != "tap" && kind != "tap2") continue;
    auto src = child_value(d, "uname");
    auto dst = child_value(d, "dev");
    auto mode = child_value(d, "mode");
    disk_def disk;
    if (!dst) return fail(r.diag, errc::internal_error, "domain information incomplete, vbd has no dev");
    std::string_view target = *dst;
    if (starts_with(target, "ioemu:")) target.remove_prefix(6);
    bool cdrom = false;
    if (auto k = target.rfind(':'); k != std::string_view::npos) {
      cdrom = target.substr(k) == ":cdrom";
      target = target.substr(0, k);
    }
    if (!src && !(r.hvm && cdrom))
      return fail(r.diag, errc::internal_error, "domain information incomplete, vbd '" + std::string(*dst) + "' has no src");
    disk.type = "file";
    if (src) {
      std::string_view s = *src;
      auto k = s.find(':');
      if (k == std::string_view::npos)
        return fail(r.diag, errc::internal_error,
                    "cannot parse vbd filename '" + std::string(s) + "', missing driver name");
      auto& drv = disk.driver.emplace();
      drv.name = (kind == "tap2" && starts_with(s, "tap:")) ? "tap2" : std::string(s.substr(0, k));
      s.remove_prefix(k + 1);
      if (drv.name == "tap" || drv.name == "tap2") {
        auto k2 = s.find(':');
        if (k2 == std::string_view::npos)
          return fail(r.diag, errc::internal_error, "cannot parse vbd filename '" + std::string(*src) +
                                                        "', missing driver type");
        std::string_view fmt = s.substr(0, k2);
        if (fmt == "aio") fmt = "raw";
        if (!known(disk_formats, fmt))
          return fail(r.diag, errc::config_unsupported,
                      "device/" + std::string(kind) + "/uname: unknown driver type '" + std::string(fmt) + "'");
        drv.type = std::string(fmt);
        s.remove_prefix(k2 + 1);
      } else if (drv.name == "phy") {
        disk.type = "block";
      }
      auto& so = disk.source.emplace();
      (disk.type == "block" ? so.dev : so.file) = std::string(s);
    }
    disk.device = cdrom ? "cdrom" : "disk";
    disk.target_dev = std::string(target);
    disk.target_bus = starts_with(target, "xvd") ? "xen" : starts_with(target, "sd") ? "scsi" : "ide";
    if (mode && mode->find('r') != std::string_view::npos) disk.readonly = true;
    if (mode && mode->find('!') != std::string_view::npos) disk.shareable = true;
    auto& disks = r.def().devices.disks;
    if (child_value(d, "bootable") == std::optional<std::string_view>("1") && !disks.empty()) {
      disks.push_back(std::move(disks.front()));  // libvirt swaps the bootable disk to the front
      disks.front() = std::move(disk);
    } else {
      disks.push_back(std::move(disk));
    }
  }
  // floppies (HVM: under the image) and xend 3.0.2's HVM cdrom
  if (r.hvm) {
    for (std::string_view fd : {"fda", "fdb"}) {
      auto p = value(r.root, r.img + "/" + std::string(fd));
      if (!p || p->empty()) continue;
      disk_def disk;
      disk.device = "floppy";
      disk.source.emplace().file = std::string(*p);
      disk.target_dev = std::string(fd);
      disk.target_bus = "fdc";
      r.def().devices.disks.push_back(std::move(disk));
    }
    auto cd = value(r.root, r.img + "/cdrom");
    if (r.ctx.xend_config_version == 1 && cd && !cd->empty()) {
      disk_def disk;
      disk.device = "cdrom";
      disk.driver.emplace().name = "file";
      disk.source.emplace().file = std::string(*cd);
      disk.target_dev = "hdc";
      disk.target_bus = "ide";
      disk.readonly = true;
      r.def().devices.disks.push_back(std::move(disk));
    }
  }
  return {};
}

/// xend's rate '10MB/s[@20ms]' into KB/s, as libvirt did.
result<unsigned long long> parse_rate(std::string_view rate, diagnostics& diag) {
  auto bad = [&] { return fail(diag, errc::parse_failed, "device/vif/rate: invalid rate '" + std::string(rate) + "'"); };
  std::string_view t = rate.substr(0, rate.find('@'));
  std::size_t i = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  if (i == 0) return bad();
  std::string_view suffix = t.substr(i);
  char unit = 0;
  if (!suffix.empty() && (suffix[0] == 'G' || suffix[0] == 'M' || suffix[0] == 'K')) unit = suffix[0], suffix.remove_prefix(1);
  if (suffix != "B/s" && suffix != "b/s") return bad();
  unsigned long long n = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + i, n);
  if (ec != std::errc{} || p != t.data() + i) return bad();
  if (unit == 'G') n *= 1024 * 1024;
  else if (unit == 'M') n *= 1024;
  if (suffix[0] == 'b') n /= 8;
  return n;
}

result<std::string> normalize_mac(std::string_view mac, diagnostics& diag) {
  std::string out;
  std::string_view rest = mac;
  for (int g = 0; g < 6; ++g) {
    auto k = rest.find(':');
    std::string_view part = rest.substr(0, k);
    bool ok = !part.empty() && part.size() <= 2 && (g == 5) == (k == std::string_view::npos);
    for (char c : part) ok = ok && hex_value(c) >= 0;
    if (!ok) return fail(diag, errc::parse_failed, "device/vif/mac: malformed mac address '" + std::string(mac) + "'");
    if (part.size() == 1) out += '0';
    for (char c : part) out += static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    if (g < 5) out += ':', rest.remove_prefix(k + 1);
  }
  return out;
}

result<void> read_nets(reading& r) {
  int index = 0;
  for (const sexpr* dev : find_all(r.root, "domain/device")) {
    const sexpr* v = find(*dev, "device/vif");
    if (!v) continue;
    interface_def nic;
    auto script = child_value(*v, "script");
    auto bridge = child_value(*v, "bridge");
    auto model = child_value(*v, "model");
    auto type = child_value(*v, "type");
    if (bridge || script == std::optional<std::string_view>("vif-bridge")) {
      nic.type = "bridge";
      if (bridge) nic.source.emplace().bridge = std::string(*bridge);
    } else {
      nic.type = "ethernet";
    }
    if (script) nic.script_path = std::string(*script);
    if (auto ip = child_value(*v, "ip")) nic.extra.push_back({"ip", {{"address", std::string(*ip)}}, {}, {}});
    if (auto name = child_value(*v, "vifname")) nic.target_dev = std::string(*name);
    else if (r.out.domid) nic.target_dev = "vif" + std::to_string(*r.out.domid) + "." + std::to_string(index);
    if (auto mac = child_value(*v, "mac")) {
      auto m = normalize_mac(*mac, r.diag);
      if (!m) return m.error();
      nic.mac = std::move(*m);
    }
    if (model) nic.model_type = std::string(*model);
    else if (type == std::optional<std::string_view>("netfront")) nic.model_type = "netfront";
    if (auto rate = child_value(*v, "rate")) {
      auto kb = parse_rate(*rate, r.diag);
      if (!kb) return kb.error();
      nic.extra.push_back({"bandwidth", {}, {}, {{"outbound", {{"average", std::to_string(*kb)}}, {}, {}}}});
    }
    r.def().devices.interfaces.push_back(std::move(nic));
    ++index;
  }
  return {};
}

result<void> read_pci(reading& r) {
  const sexpr* pci = nullptr;
  for (const sexpr* dev : find_all(r.root, "domain/device"))
    if ((pci = find(*dev, "device/pci"))) break;
  if (!pci) return {};
  for (std::size_t i = 1; i < pci->list.size(); ++i) {
    const sexpr& d = pci->list[i];
    if (!d.is_list || d.head() != "dev") continue;
    hostdev_def h;
    h.managed = "no";
    auto& a = h.source_address.emplace();
    static constexpr std::pair<std::string_view, std::string_view> parts[] = {
        {"domain", "domain"}, {"bus", "bus"}, {"slot", "slot"}, {"func", "function"}};
    for (auto [key, attr] : parts) {
      auto v = child_value(d, key);
      if (!v) return fail(r.diag, errc::internal_error, "missing PCI " + std::string(key));
      auto n = number(*v, "device/pci/dev/" + std::string(key), r.diag);
      if (!n) return n.error();
      int width = key == "domain" ? 4 : key == "func" ? 1 : 2;
      a.attrs.emplace_back(std::string(attr), hexnum(*n, width));
    }
    r.def().devices.hostdevs.push_back(std::move(h));
  }
  return {};
}

/// vnc/sdl settings from a (vfb ...) or from the image's old-style keys.
result<void> read_graphics_keys(reading& r, std::string type, const sexpr& keys, std::string_view where) {
  graphics_def g;
  g.type = type;
  if (type == "sdl") {
    if (auto v = child_value(keys, "display")) g.display = std::string(*v);
    if (auto v = child_value(keys, "xauthority")) g.xauth = std::string(*v);
  } else if (type == "vnc") {
    int port = r.ctx.vnc_port.value_or(-1);
    if (port == -1)
      if (auto s = child_value(keys, "vncdisplay")) {
        diagnostics ignore;
        if (auto n = number(*s, "vncdisplay", ignore)) port = static_cast<int>(*n);
      }
    bool autoport = child_value(keys, "vncunused") == std::optional<std::string_view>("1") || port == -1;
    if (port >= 0 && port < 5900) port += 5900;
    g.port = port;
    g.autoport = autoport ? "yes" : "no";
    if (auto v = child_value(keys, "vnclisten")) {
      g.listen = std::string(*v);
      g.listens.push_back({"address", std::string(*v), {}, {}, {}});
    }
    if (auto v = child_value(keys, "keymap")) g.keymap = std::string(*v);
    if (auto v = child_value(keys, "vncpasswd")) g.passwd = std::string(*v);
  } else {
    return fail(r.diag, errc::config_unsupported, std::string(where) + ": unknown graphics type '" + type + "'");
  }
  r.def().devices.graphics.push_back(std::move(g));
  return {};
}

result<void> read_graphics(reading& r) {
  for (const sexpr* dev : find_all(r.root, "domain/device")) {
    const sexpr* v = find(*dev, "device/vfb");
    if (!v) continue;
    std::string type = child_value(*v, "type") ? std::string(*child_value(*v, "type"))
                       : child_value(*v, "vnc") ? "vnc"
                       : child_value(*v, "sdl") ? "sdl"
                                                : "unknown";
    return read_graphics_keys(r, type, *v, "device/vfb/type");
  }
  const sexpr* image = find(r.root, r.img);
  if (!image) return {};
  if (auto v = child_value(*image, "vnc"); v && starts_with(*v, "1")) return read_graphics_keys(r, "vnc", *image, r.img);
  if (auto v = child_value(*image, "sdl"); v && starts_with(*v, "1")) return read_graphics_keys(r, "sdl", *image, r.img);
  return {};
}

/// A char device string ("pty", "/dev/ttyS0", "tcp:host:port,server,nowait", ...).
result<chardev_def> read_chr(std::string_view value, const std::string& tty, std::string_view key, diagnostics& diag) {
  chardev_def c;
  std::string_view rest = value;
  if (!value.empty() && value.front() == '/') {
    c.type = "dev";
  } else {
    std::string_view prefix = value.substr(0, value.find(':'));
    rest = value.find(':') == std::string_view::npos ? std::string_view{} : value.substr(value.find(':') + 1);
    if (starts_with(prefix, "telnet")) c.type = "tcp", c.protocol_type = "telnet";
    else if (known(chr_types, prefix)) c.type = std::string(prefix);
    else return fail(diag, errc::config_unsupported, std::string(key) + ": unknown chr device type '" + std::string(prefix) + "'");
  }
  auto malformed = [&] { return fail(diag, errc::parse_failed, std::string(key) + ": malformed char device string '" + std::string(value) + "'"); };
  chardev_def::source_t s;
  if (c.type == "pty") {
    if (!tty.empty()) {
      c.extra_attrs.emplace_back("tty", tty);
      s.path = tty;
      c.sources.push_back(s);
    }
  } else if (c.type == "dev") {
    s.path = std::string(value);
    c.sources.push_back(s);
  } else if (c.type == "file" || c.type == "pipe") {
    s.path = std::string(rest);
    c.sources.push_back(s);
  } else if (c.type == "tcp") {
    auto colon = rest.find(':');
    if (colon == std::string_view::npos) return malformed();
    auto comma = rest.find(',');
    s.host = std::string(rest.substr(0, colon));
    s.service = std::string(rest.substr(colon + 1, comma == std::string_view::npos ? std::string_view::npos : comma - colon - 1));
    s.mode = comma != std::string_view::npos && rest.substr(comma).find(",server") != std::string_view::npos ? "bind" : "connect";
    c.sources.push_back(s);
    if (c.protocol_type.empty()) c.protocol_type = "raw";
  } else if (c.type == "udp") {
    auto colon = rest.find(':');
    if (colon == std::string_view::npos) return malformed();
    auto at = rest.find('@');
    chardev_def::source_t conn;
    conn.mode = "connect";
    conn.host = std::string(rest.substr(0, colon));
    if (at != std::string_view::npos) {
      conn.service = std::string(rest.substr(colon + 1, at - colon - 1));
      auto colon2 = rest.find(':', at);
      if (colon2 == std::string_view::npos) return malformed();
      chardev_def::source_t bind;
      bind.mode = "bind";
      bind.host = std::string(rest.substr(at + 1, colon2 - at - 1));
      bind.service = std::string(rest.substr(colon2 + 1));
      c.sources.push_back(bind);
    } else {
      conn.service = std::string(rest.substr(colon + 1));
    }
    c.sources.push_back(conn);
  } else if (c.type == "unix") {
    auto comma = rest.find(',');
    s.path = std::string(rest.substr(0, comma));
    s.mode = comma != std::string_view::npos && rest.substr(comma).find(",server") != std::string_view::npos ? "bind" : "connect";
    c.sources.push_back(s);
  }
  c.has_target = true;
  return c;
}

result<void> read_chardevs(reading& r) {
  auto& dv = r.def().devices;
  if (!r.hvm) {
    if (r.out.domid == std::optional<int>(0)) return {};
    auto c = read_chr("pty", r.ctx.console_tty, "console", r.diag);
    if (!c) return c.error();
    c->target_type = "xen";
    c->target_port = 0;
    dv.consoles.push_back(std::move(*c));
    return {};
  }
  const std::string key = r.img + "/serial";
  const sexpr* serial = find(r.root, key);
  bool listed = false;
  if (serial) {
    for (std::size_t i = 1; i < serial->list.size(); ++i) {
      if (!serial->list[i].is_list) continue;
      unsigned port = 0;
      for (auto& e : serial->list[i].list) {
        listed = true;
        if (e.is_list || e.atom == "none") {
          ++port;
          continue;
        }
        auto c = read_chr(e.atom, port == 0 ? r.ctx.console_tty : std::string(), key, r.diag);
        if (!c) return c.error();
        c->target_port = port++;
        dv.serials.push_back(std::move(*c));
      }
    }
  }
  if (!listed)
    if (auto v = value(r.root, key); v && *v != "none" && !v->empty()) {
      auto c = read_chr(*v, r.ctx.console_tty, key, r.diag);
      if (!c) return c.error();
      c->target_port = 0;
      dv.serials.push_back(std::move(*c));
    }
  if (!dv.serials.empty()) {  // libvirt's console mirrors the first serial port
    chardev_def con = dv.serials.front();
    con.target_type = "serial";
    con.target_port = 0;
    dv.consoles.push_back(std::move(con));
  }
  if (auto v = value(r.root, r.img + "/parallel"); v && *v != "none" && !v->empty()) {
    auto c = read_chr(*v, {}, r.img + "/parallel", r.diag);
    if (!c) return c.error();
    c->target_port = 0;
    dv.parallels.push_back(std::move(*c));
  }
  return {};
}

result<void> read_hvm_extras(reading& r) {
  auto& dv = r.def().devices;
  if (const sexpr* image = find(r.root, r.img))
    for (std::size_t i = 1; i < image->list.size(); ++i) {
      auto& e = image->list[i];
      if (e.head() != "usbdevice" || e.list.size() < 2 || e.list[1].is_list) continue;
      std::optional<std::string_view> v = e.list[1].atom;
      if (v == std::optional<std::string_view>("tablet")) dv.inputs.push_back({{}, "tablet", "usb"});
      else if (v == std::optional<std::string_view>("mouse")) dv.inputs.push_back({{}, "mouse", "usb"});
      else if (v == std::optional<std::string_view>("keyboard")) dv.inputs.push_back({{}, "keyboard", "usb"});
    }
  auto snd = value(r.root, r.img + "/soundhw");
  if (!snd || snd->empty()) return {};
  if (*snd == "all") {
    dv.sounds.push_back({{}, "sb16"});
    dv.sounds.push_back({{}, "es1370"});
    return {};
  }
  std::string_view rest = *snd;
  while (true) {
    auto k = rest.find(',');
    std::string_view m = rest.substr(0, k);
    if (!known(sound_models, m))
      return fail(r.diag, errc::config_unsupported, r.img + "/soundhw: unknown sound model '" + std::string(m) + "'");
    dv.sounds.push_back({{}, std::string(m)});
    if (k == std::string_view::npos) break;
    rest.remove_prefix(k + 1);
  }
  return {};
}

}  // namespace

domain_state domain_state_from_flags(std::string_view f) noexcept {
  auto has = [&](char c) { return f.find(c) != std::string_view::npos; };
  if (has('c')) return domain_state::crashed;
  if (has('s')) return domain_state::shutoff;
  if (has('d')) return domain_state::shutdown;
  if (has('p')) return domain_state::paused;
  if (has('b')) return domain_state::blocked;
  if (has('r')) return domain_state::running;
  return domain_state::nostate;
}

result<sxpr_domain> domain_from_sxpr(const sexpr& root_in, const sxpr_context& ctx, diagnostics& diag) {
  // The (vm ...) config form reads like (domain ...): look it up under the name "domain".
  sexpr renamed;
  const sexpr* rootp = &root_in;
  if (root_in.head() == "vm") {
    renamed = root_in;
    renamed.list.front().atom = "domain";
    rootp = &renamed;
  } else if (root_in.head() != "domain") {
    return fail(diag, errc::parse_failed,
                "not a domain S-expression: its head is '" + std::string(root_in.head()) + "', not 'domain'");
  }
  const sexpr& root = *rootp;
  sxpr_domain out;
  reading r{root, ctx, diag, out, false, {}};
  auto& d = out.def;
  d.type = "xen";
  d.has_devices = true;
  if (auto id = value(root, "domain/domid"); id && !id->empty()) {
    auto n = number(*id, "domain/domid", diag);
    if (!n) return n.error();
    out.domid = static_cast<int>(*n);
  }
  auto name = value(root, "domain/name");
  if (!name || name->empty()) return fail(diag, errc::internal_error, "domain information incomplete, missing name");
  d.name = std::string(*name);
  auto uuid = value(root, "domain/uuid");
  if (!uuid) return fail(diag, errc::internal_error, "domain information incomplete, missing uuid");
  {
    diagnostics inner;
    auto u = parse_uuid(*uuid, inner);
    if (!u) return fail(diag, errc::parse_failed, "domain/uuid: '" + std::string(*uuid) + "' is not a valid UUID");
    d.uuid = std::move(*u);
  }
  if (auto v = value(root, "domain/description")) d.description = std::string(*v);
  r.hvm = find(root, "domain/image/hvm") != nullptr;
  r.img = r.hvm ? "domain/image/hvm" : "domain/image/linux";
  if (!r.hvm) {
    if (auto v = value(root, "domain/bootloader")) d.bootloader = std::string(*v);
    if (find(root, "domain/bootloader"))
      if (auto v = value(root, "domain/bootloader_args")) d.bootloader_args = std::string(*v);
  }
  d.os.type = r.hvm ? "hvm" : "linux";
  if (out.domid != std::optional<int>(0) && find(root, "domain/image")) COVIRT_SXPR_CHECK(read_os(r));

  auto maxmem = int_at(root, "domain/maxmem", diag);
  if (!maxmem) return maxmem.error();
  auto mem = int_at(root, "domain/memory", diag);
  if (!mem) return mem.error();
  if (*maxmem < 0 || *mem < 0) return fail(diag, errc::parse_failed, "domain/memory: negative memory size");
  unsigned long long max_kib = static_cast<unsigned long long>(*maxmem ? *maxmem : *mem) << 10;
  unsigned long long cur_kib = static_cast<unsigned long long>(*mem) << 10;
  d.memory_kib = max_kib;
  d.current_memory_kib = std::min(cur_kib, max_kib);

  if (auto v = value(root, "domain/cpus"); v && !v->empty()) d.vcpu_cpuset = std::string(*v);
  auto vcpus = int_at(root, "domain/vcpus", diag);
  if (!vcpus) return vcpus.error();
  auto avail = int_at(root, "domain/vcpu_avail", diag);
  if (!avail) return avail.error();
  d.vcpus = static_cast<unsigned>(std::max(*vcpus, 1LL));
  d.vcpu_placement = "static";
  auto online = static_cast<unsigned>(std::popcount(static_cast<unsigned long long>(*avail)));
  if (online && online < d.vcpus) d.vcpu_current = online;

  COVIRT_SXPR_CHECK(read_lifecycle(r, "on_poweroff", d.on_poweroff, "destroy"));
  COVIRT_SXPR_CHECK(read_lifecycle(r, "on_reboot", d.on_reboot, "restart"));
  COVIRT_SXPR_CHECK(read_lifecycle(r, "on_crash", d.on_crash, "destroy"));

  if (r.hvm) {
    features_t f;
    bool any = false;
    for (auto [key, member] : {std::pair{"acpi", &features_t::acpi}, std::pair{"apic", &features_t::apic},
                               std::pair{"pae", &features_t::pae}, std::pair{"hap", &features_t::hap},
                               std::pair{"viridian", &features_t::viridian}}) {
      auto n = int_at(root, r.img + "/" + key, diag);
      if (!n) return n.error();
      if (*n) (f.*member).emplace(), any = true;
    }
    if (any) d.features = std::move(f);
  }
  auto localtime = int_at(root, "domain/localtime", diag);
  if (!localtime) return localtime.error();
  if (value(root, r.img + "/localtime")) {
    localtime = int_at(root, r.img + "/localtime", diag);
    if (!localtime) return localtime.error();
  }
  auto& clock = d.clock.emplace();
  clock.offset = *localtime ? "localtime" : "utc";
  if (r.hvm && find(root, r.img + "/hpet")) {
    auto hpet = int_at(root, r.img + "/hpet", diag);
    if (!hpet) return hpet.error();
    clock_timer t;
    t.name = "hpet";
    t.present = *hpet ? "yes" : "no";
    clock.timers.push_back(std::move(t));
  }
  if (auto v = value(root, r.img + "/device_model")) d.devices.emulator = std::string(*v);

  COVIRT_SXPR_CHECK(read_disks(r));
  COVIRT_SXPR_CHECK(read_nets(r));
  COVIRT_SXPR_CHECK(read_pci(r));
  COVIRT_SXPR_CHECK(read_graphics(r));
  if (r.hvm) COVIRT_SXPR_CHECK(read_hvm_extras(r));
  bool vkbd = false;
  for (const sexpr* dev : find_all(root, "domain/device")) vkbd = vkbd || find(*dev, "device/vkbd");
  if (!d.devices.graphics.empty() || (vkbd && !r.hvm)) {  // libvirt's implicit inputs
    std::string bus = r.hvm ? "ps2" : "xen";
    d.devices.inputs.push_back({{}, "mouse", bus});
    d.devices.inputs.push_back({{}, "keyboard", bus});
  }
  COVIRT_SXPR_CHECK(read_chardevs(r));

  if (auto st = value(root, "domain/state")) out.state_flags = std::string(*st);
  out.state = domain_state_from_flags(out.state_flags);
  if (out.state_flags.empty() && (!out.domid || value(root, "domain/status") == std::optional<std::string_view>("0")))
    out.state = domain_state::shutoff;
  if (auto t = value(root, "domain/cpu_time")) {
    char* end = nullptr;
    std::string s(*t);
    out.cpu_time = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end) return fail(diag, errc::parse_failed, "domain/cpu_time: '" + s + "' is not a number");
  }
  return out;
}

result<sxpr_domain> domain_from_sxpr(std::string_view text, const sxpr_context& ctx, diagnostics& diag) {
  auto s = parse_sexpr(text, diag);
  if (!s) return s.error();
  return domain_from_sxpr(*s, ctx, diag);
}

}  // namespace covirt::xen
