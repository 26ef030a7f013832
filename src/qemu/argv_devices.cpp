// covirt: domain_config -> QEMU command line: network interfaces, character devices, input, graphics, video and the other devices.
// (The builder and its checks: argv_builder.hpp.)
#include "argv_builder.hpp"

namespace covirt::qemu::argv_detail {

std::string builder::mac_for(const interface_def& n, unsigned i) {
  if (!n.mac.empty()) return checked("MAC address", n.mac);
  // Stable per domain and position; a driver normally assigns MACs at define time.
  auto h = std::hash<std::string>{}(d.uuid + "/" + d.name + "/" + std::to_string(i));
  char buf[32];
  std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", unsigned(h & 0xff), unsigned((h >> 8) & 0xff),
                unsigned((h >> 16) & 0xff));
  return buf;
}

void builder::interfaces() {
  unsigned i = 0;
  for (auto& n : d.devices.interfaces) {
    std::string what = "interface " + std::to_string(i) + " (type '" + n.type + "')";
    common(what, n);
    std::string id = std::to_string(i), netdev;
    if (n.source) refuse_extras(what + " <source>", n.source->extra_attrs, n.source->extra);
    if (!n.script_path.empty() && n.type != "ethernet") refuse(what + " <script> (only type 'ethernet' runs one)");
    if (!n.target_extra_attrs.empty()) refuse(what + " <target> attribute '" + n.target_extra_attrs[0].first + "'");
    if (n.driver) {
      if (!n.driver->children.empty()) refuse(what + " <driver> children");
      for (auto& [k, v] : n.driver->attributes)
        if (!(k == "name" && v == "qemu")) refuse(what + " <driver " + k + "='" + v + "'>");
    }
    if (n.type == "user") {
      netdev = "user,id=hostnet" + id;
    } else if (n.type == "bridge") {
      if (!n.source || n.source->bridge.empty()) refuse(what + " without <source bridge=...>");
      // qemu-bridge-helper creates the tap and enslaves it (its ACL: /etc/qemu/bridge.conf).
      netdev = "bridge,br=" + esc("bridge name", n.source->bridge) + ",id=hostnet" + id;
    } else if (n.type == "ethernet") {
      netdev = "tap,id=hostnet" + id;
      if (n.target_dev) netdev += ",ifname=" + esc("tap name", *n.target_dev);
      // QEMU runs the script with the tap's name once it has made the tap (libvirt runs it itself,
      // the same way); the driver has checked that it is an executable file.
      if (!n.script_path.empty()) {
        if (n.script_path[0] != '/') refuse(what + " <script path='" + n.script_path + "'> must be absolute");
        netdev += ",script=" + esc("script path", n.script_path) + ",downscript=no";
      } else {
        netdev += ",script=no,downscript=no";
      }
    } else {
      refuse("interface type '" + n.type + "'" +
             (n.type == "network" ? std::string(" (covirt's qemu driver has no virtual network driver; use 'user' or 'bridge')") : ""));
    }
    static const std::map<std::string, std::string> models = {
        {"virtio", "virtio-net-pci"}, {"e1000", "e1000"}, {"e1000e", "e1000e"}, {"rtl8139", "rtl8139"},
        {"ne2k_pci", "ne2k_pci"},    {"pcnet", "pcnet"}, {"vmxnet3", "vmxnet3"}};
    std::string model = n.model_type.empty() ? "rtl8139" : n.model_type;
    auto it = models.find(model);
    if (it == models.end()) refuse(what + " model '" + model + "'");
    if (!n.link_state.empty() && n.link_state != "up") refuse(what + " link state '" + n.link_state + "'");
    add("-netdev", netdev);
    std::string dev = it->second + ",netdev=hostnet" + id + ",id=net" + id + ",mac=" + mac_for(n, i);
    if (n.mtu) {
      if (model != "virtio") refuse(what + " <mtu> on model '" + model + "'");
      dev += ",host_mtu=" + std::to_string(*n.mtu);
    }
    dev += pci_addr(what, n) + boot(&n);
    device(dev);
    ++i;
  }
}

std::string builder::chardev(const chardev_def& c, const std::string& id, const std::string& what) {
  if (!c.protocol_type.empty() && c.type != "tcp") refuse(what + " <protocol>");
  auto src = [&](std::size_t k) -> const chardev_def::source_t* {
    return k < c.sources.size() ? &c.sources[k] : nullptr;
  };
  for (auto& s : c.sources) refuse_extras(what + " <source>", s.extra_attrs, {});
  auto sock_path = [&](const chardev_def::source_t* s) {
    if (!s || s->path.empty()) refuse(what + " of type 'unix' without <source path=...>");
    if (s->path.size() > 107) refuse(what + " UNIX socket path longer than 107 bytes");
    return esc(what + " socket path", s->path);
  };
  std::string v;
  const auto* s = src(0);
  if (c.type == "pty") {
    v = "pty,id=" + id;
  } else if (c.type == "null") {
    v = "null,id=" + id;
  } else if (c.type == "file") {
    if (!s || s->path.empty()) refuse(what + " of type 'file' without <source path=...>");
    v = "file,id=" + id + ",path=" + esc(what + " path", s->path);
    if (s->append == "on") v += ",append=on";
    else if (s->append == "off") v += ",append=off";
  } else if (c.type == "pipe") {
    if (!s || s->path.empty()) refuse(what + " of type 'pipe' without <source path=...>");
    v = "pipe,id=" + id + ",path=" + esc(what + " path", s->path);
  } else if (c.type == "dev") {
    if (!s || s->path.empty()) refuse(what + " of type 'dev' without <source path=...>");
    v = "tty,id=" + id + ",path=" + esc(what + " path", s->path);
  } else if (c.type == "unix") {
    bool server = !s || s->mode.empty() || s->mode == "bind";
    v = "socket,id=" + id + ",path=" + sock_path(s) + (server ? ",server=on,wait=off" : ",server=off");
  } else if (c.type == "tcp") {
    if (!s || s->service.empty()) refuse(what + " of type 'tcp' without <source service=...>");
    bool server = s->mode.empty() || s->mode == "bind";
    v = "socket,id=" + id + ",host=" + esc(what + " host", s->host.empty() ? "127.0.0.1" : s->host) +
        ",port=" + std::to_string(to_uint("TCP port", s->service));
    if (c.protocol_type == "telnet") v += ",telnet=on";
    else if (!c.protocol_type.empty() && c.protocol_type != "raw") refuse(what + " protocol '" + c.protocol_type + "'");
    v += server ? ",server=on,wait=off" : ",server=off";
  } else if (c.type == "udp") {
    const chardev_def::source_t *conn = nullptr, *bind = nullptr;
    for (auto& x : c.sources) (x.mode == "bind" ? bind : conn) = &x;
    if (!conn || conn->service.empty()) refuse(what + " of type 'udp' without a connect <source>");
    v = "udp,id=" + id + ",host=" + esc(what + " host", conn->host.empty() ? "127.0.0.1" : conn->host) +
        ",port=" + std::to_string(to_uint("UDP port", conn->service));
    if (bind) {
      if (!bind->host.empty()) v += ",localaddr=" + esc(what + " host", bind->host);
      if (!bind->service.empty()) v += ",localport=" + std::to_string(to_uint("UDP port", bind->service));
    }
  } else {
    refuse(what + " type '" + c.type + "'");
  }
  if (!c.log_file.empty()) {
    v += ",logfile=" + esc(what + " log file", c.log_file);
    if (c.log_append == "on") v += ",logappend=on";
    else if (c.log_append == "off") v += ",logappend=off";
  }
  add("-chardev", v);
  return id;
}

void builder::serial(const chardev_def& c, unsigned i, const std::string& kind) {
  std::string what = "<" + kind + " type='" + c.type + "'>";
  common(what, c);
  std::string tt = c.target_type;
  for (auto& ch : c.target_children) {
    if (ch.name != "model") refuse(what + " <target> element <" + ch.name + ">");
    if (tt.empty()) tt = std::string(attr(ch.attributes, "name"));
  }
  if (!c.target_extra_attrs.empty()) refuse(what + " <target> attribute '" + c.target_extra_attrs[0].first + "'");
  unsigned port = c.target_port.value_or(i);
  std::string id = "serial" + std::to_string(port);
  chardev(c, "char" + id, what);
  if (tt.empty() || tt == "isa-serial" || tt == "serial") {
    if (c.address) refuse(what + " address type '" + c.address->type + "'");
    device("isa-serial,chardev=char" + id + ",id=" + id + ",index=" + std::to_string(port));
  } else if (tt == "pci-serial") {
    device("pci-serial,chardev=char" + id + ",id=" + id + pci_addr(what, c));
  } else {
    refuse(what + " target type '" + tt + "'");
  }
}

void builder::chardevs() {
  const auto& dv = d.devices;
  unsigned i = 0;
  for (auto& s : dv.serials) serial(s, i++, "serial");
  unsigned ci = 0;
  for (auto& c : dv.consoles) {
    std::string what = "<console type='" + c.type + "'>";
    if (c.target_type.empty() || c.target_type == "serial") {
      unsigned port = c.target_port.value_or(0);
      bool dup = false;
      for (std::size_t k = 0; k < dv.serials.size(); ++k)
        dup |= dv.serials[k].target_port.value_or(static_cast<unsigned>(k)) == port;
      if (dup) {  // libvirt's console 0 mirrors serial 0
        ++ci;
        continue;
      }
      if (!dv.serials.empty()) refuse(what + " for a serial port that is not declared");
      chardev_def as_serial = c;
      as_serial.target_type.clear();
      serial(as_serial, port, "console");
    } else if (c.target_type == "virtio") {
      common(what, c);
      std::string id = "console" + std::to_string(ci);
      chardev(c, "char" + id, what);
      device("virtconsole," + need_virtio_serial(c, what) + ",chardev=char" + id + ",id=" + id);
    } else {
      refuse(what + " target type '" + c.target_type + "'");
    }
    ++ci;
  }
  i = 0;
  for (auto& c : dv.channels) {
    std::string what = "<channel type='" + c.type + "'>";
    common(what, c);
    if (c.target_type != "virtio") refuse(what + " target type '" + c.target_type + "'");
    if (!c.target_state.empty() || !c.target_address.empty()) refuse(what + " target state/address");
    std::string id = "channel" + std::to_string(i++);
    chardev(c, "char" + id, what);
    std::string s = "virtserialport," + need_virtio_serial(c, what) + ",chardev=char" + id + ",id=" + id;
    if (!c.target_name.empty()) s += ",name=" + esc(what + " name", c.target_name);
    device(s);
  }
  i = 0;
  for (auto& c : dv.parallels) {
    std::string what = "<parallel type='" + c.type + "'>";
    common(what, c);
    if (c.address) refuse(what + " address");
    std::string id = "parallel" + std::to_string(c.target_port.value_or(i++));
    chardev(c, "char" + id, what);
    device("isa-parallel,chardev=char" + id + ",id=" + id);
  }
}

void builder::inputs() {
  unsigned i = 0;
  for (auto& in : d.devices.inputs) {
    std::string what = "<input type='" + in.type + "' bus='" + in.bus + "'>";
    common(what, in);
    std::string bus = in.bus.empty() ? (in.type == "tablet" ? "usb" : "ps2") : in.bus;
    std::string id = "input" + std::to_string(i++);
    if (in.type != "mouse" && in.type != "keyboard" && in.type != "tablet") refuse("input type '" + in.type + "'");
    if (bus == "ps2") {
      if (in.type == "tablet") refuse(what + ": no PS/2 tablet");
      continue;  // the i8042 is built into pc and q35
    }
    if (bus == "usb") {
      need_usb(what);
      std::string s = in.type == "tablet" ? "usb-tablet" : in.type == "mouse" ? "usb-mouse" : "usb-kbd";
      s += ",id=" + id + ",bus=usb.0";
      if (in.address) {
        if (in.address->type != "usb") refuse(what + " address type '" + in.address->type + "'");
        if (!in.address->get("port").empty()) s += ",port=" + esc("USB port", in.address->get("port"));
      }
      device(s);
    } else if (bus == "virtio") {
      std::string s = in.type == "tablet" ? "virtio-tablet-pci" : in.type == "mouse" ? "virtio-mouse-pci" : "virtio-keyboard-pci";
      device(s + ",id=" + id + pci_addr(what, in));
    } else {
      refuse("input bus '" + bus + "'");
    }
  }
}

void builder::graphics() {
  const auto& gs = d.devices.graphics;
  if (gs.empty()) {
    add("-display", "none");
    return;
  }
  if (gs.size() > 1) refuse("more than one <graphics>");
  const auto& g = gs[0];
  if (g.type == "spice") return spice(g);
  if (g.type == "sdl") return sdl(g);
  if (g.type != "vnc") refuse("graphics type '" + g.type + "'");
  refuse_extras("<graphics type='vnc'>", g.extra_attrs, g.extra);
  if (!g.display.empty() || !g.xauth.empty() || !g.fullscreen.empty() || g.tls_port)
    refuse("<graphics type='vnc'> display/xauth/fullscreen/tlsPort");
  std::string listen = g.listen, socket = g.socket;
  bool none = false;
  if (!g.listens.empty()) {
    if (g.listens.size() > 1) refuse("<graphics> with more than one <listen>");
    const auto& l = g.listens[0];
    refuse_extras("<graphics><listen>", l.extra_attrs, {});
    if (l.type == "address") {
      if (!l.address.empty()) listen = l.address;
    } else if (l.type == "socket") {
      socket = l.socket;
      if (socket.empty()) refuse("<listen type='socket'> without socket=... (no per-domain directory here)");
    } else if (l.type == "none") {
      none = true;
    } else {
      refuse("<listen type='" + l.type + "'>");
    }
  }
  std::string v;
  if (none) {
    v = "none";
  } else if (!socket.empty()) {
    if (socket.size() > 107) refuse("VNC socket path longer than 107 bytes");
    v = "unix:" + esc("VNC socket path", socket);
  } else {
    if (listen.empty()) listen = "127.0.0.1";
    for (char c : checked("VNC listen address", listen))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '.' && c != ':' &&
          !std::isalnum(static_cast<unsigned char>(c)) && c != '-')
        refuse("VNC listen address '" + listen + "'");
    std::string host = listen.find(':') != std::string::npos ? "[" + listen + "]" : listen;
    bool autoport = g.autoport == "yes" || !g.port || *g.port == -1;
    if (autoport) {
      v = host + ":0,to=99";  // QEMU takes the first free port from 5900; read it with query-vnc
    } else {
      if (*g.port < 5900 || *g.port > 65535) refuse("VNC port " + std::to_string(*g.port) + " (must be 5900..65535)");
      v = host + ":" + std::to_string(*g.port - 5900);
    }
  }
  if (g.websocket) {
    if (*g.websocket <= 0) refuse("VNC websocket autoport");
    v += ",websocket=" + std::to_string(*g.websocket);
  }
  if (!g.passwd.empty()) v += ",password=on";
  add("-vnc", v);
  if (!g.keymap.empty()) {
    for (char c : g.keymap)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') refuse("keymap '" + checked("keymap", g.keymap) + "'");
    add("-k", g.keymap);
  }
}

void builder::videos() {
  unsigned i = 0;
  for (auto& v : d.devices.videos) {
    std::string what = "<video><model type='" + v.model_type + "'>";
    common(what, v);
    if (v.acceleration) refuse(what + " <acceleration>");
    if (v.driver) refuse(what + " <driver>");
    if (!v.model_extra_attrs.empty()) refuse(what + " attribute '" + v.model_extra_attrs[0].first + "'");
    std::string model = v.model_type.empty() ? "vga" : v.model_type;
    if (model == "none") continue;
    bool first = i == 0;
    std::string id = "video" + std::to_string(i++), s;
    if (model == "vga") s = first ? "VGA" : "secondary-vga";
    else if (model == "cirrus") s = "cirrus-vga";
    else if (model == "vmvga") s = "vmware-svga";
    else if (model == "virtio") s = first ? "virtio-vga" : "virtio-gpu-pci";
    else if (model == "bochs") s = "bochs-display";
    else if (model == "qxl") s = first ? "qxl-vga" : "qxl";
    else if (model == "ramfb") s = "ramfb";
    else refuse("video model '" + model + "'");
    if ((model == "cirrus" || model == "ramfb") && !first) refuse(what + " as a secondary video device");
    s += ",id=" + id;
    if ((model == "vga" || model == "vmvga") && v.vram) s += ",vgamem_mb=" + std::to_string(*v.vram / 1024);
    if (model == "qxl") {
      if (v.ram) s += ",ram_size=" + std::to_string(static_cast<unsigned long long>(*v.ram) * 1024);
      if (v.vram) s += ",vram_size=" + std::to_string(static_cast<unsigned long long>(*v.vram) * 1024);
      if (v.vgamem) s += ",vgamem_mb=" + std::to_string(*v.vgamem / 1024);
    }
    if (v.heads && *v.heads != 1) {
      if (model == "virtio" || model == "qxl") s += ",max_outputs=" + std::to_string(*v.heads);
      else refuse(what + " heads='" + std::to_string(*v.heads) + "'");
    }
    if (model != "ramfb") s += pci_addr(what, v);
    else if (v.address) refuse(what + " address");
    device(s);
  }
}

void builder::misc_devices() {
  const auto& dv = d.devices;
  if (dv.memballoon && dv.memballoon->model != "none") {
    const auto& b = *dv.memballoon;
    common("<memballoon>", b, {"stats"});
    if (b.model != "virtio") refuse("memballoon model '" + b.model + "'");
    std::string s = "virtio-balloon-pci,id=balloon0" + pci_addr("<memballoon>", b);
    if (b.autodeflate == "on") s += ",deflate-on-oom=on";
    if (b.stats_period) s += ",guest-stats-polling-interval=" + std::to_string(*b.stats_period);
    device(s);
  }
  if (dv.watchdogs.size() > 1) refuse("more than one <watchdog>");
  for (auto& w : dv.watchdogs) {
    std::string what = "<watchdog model='" + w.model + "'>";
    common(what, w);
    if (w.model == "i6300esb") device("i6300esb,id=watchdog0" + pci_addr(what, w));
    else if (w.model == "ib700") device("ib700,id=watchdog0");
    else refuse("watchdog model '" + w.model + "'");
    static const std::set<std::string> actions = {"reset", "shutdown", "poweroff", "pause", "none", "inject-nmi"};
    std::string a = w.action.empty() ? "reset" : w.action;
    if (!actions.count(a)) refuse("watchdog action '" + a + "'");
    add("-action", "watchdog=" + a);
  }
  unsigned i = 0;
  for (auto& r : dv.rngs) {
    std::string what = "<rng model='" + r.model + "'>";
    common(what, r);
    if (r.model != "virtio") refuse("rng model '" + r.model + "'");
    refuse_extras(what + " <backend>", r.backend_extra_attrs, r.backend_children);
    std::string id = "rng" + std::to_string(i++);
    if (r.backend_model == "random" || r.backend_model.empty())
      add("-object", "rng-random,id=obj" + id + ",filename=" +
                         esc("rng device", r.backend_text.empty() ? "/dev/urandom" : r.backend_text));
    else if (r.backend_model == "builtin")
      add("-object", "rng-builtin,id=obj" + id);
    else
      refuse("rng backend model '" + r.backend_model + "'");
    std::string s = "virtio-rng-pci,rng=obj" + id + ",id=" + id;
    if (r.rate) {
      refuse_extras(what + " <rate>", {}, r.rate->children);
      for (auto& [k, v] : r.rate->attributes) {
        if (k == "bytes") s += ",max-bytes=" + std::to_string(to_uint("rate bytes", v));
        else if (k == "period") s += ",period=" + std::to_string(to_uint("rate period", v));
        else refuse(what + " <rate> attribute '" + k + "'");
      }
      if (attr(r.rate->attributes, "period").empty()) s += ",period=1000";
    }
    device(s + pci_addr(what, r));
  }
  for (auto& p : dv.panics) {
    std::string what = "<panic model='" + p.model + "'>";
    common(what, p);
    if (!p.model.empty() && p.model != "isa") refuse("panic model '" + p.model + "'");
    std::string s = "pvpanic";
    if (p.address) {
      if (p.address->type != "isa") refuse(what + " address type '" + p.address->type + "'");
      if (!p.address->get("iobase").empty()) s += ",ioport=" + std::to_string(to_uint("iobase", p.address->get("iobase")));
    }
    device(s);
  }
}

}  // namespace covirt::qemu::argv_detail
