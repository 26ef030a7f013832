// QEMU command line: the device families libvirt users bring beyond the basic ones: sound
// (with its audiodev), SPICE and SDL graphics, floppies on the fdc, network disks (NBD) and PCI
// host devices (vfio-pci), in the shape libvirt 9.0's qemu_command.c gives them.
#include "argv_builder.hpp"

#include <boost/json.hpp>

namespace covirt::qemu::argv_detail {

// ------------------------------------------------------------------ sound

void builder::sounds() {
  const auto& ss = d.devices.sounds;
  for (auto& e : d.devices.extra)
    if (e.name == "audio" && attr(e.attributes, "type") != "none")
      refuse("<audio type='" + std::string(attr(e.attributes, "type")) + "'> (covirt's qemu driver has audio type 'none')");
  if (ss.empty()) return;
  // libvirt's default backend where the domain names none: no host audio at all.
  add("-audiodev", "{\"id\":\"audio1\",\"driver\":\"none\"}");
  unsigned i = 0;
  for (auto& s : ss) {
    std::string what = "sound " + std::to_string(i) + " (model '" + s.model + "')";
    common(what, s, {"codec"});
    std::string id = "sound" + std::to_string(i);
    if (s.model == "pcspk") {
      if (s.address) refuse(what + " address");
      pcspk = true;  // a machine property (pcspk-audiodev), see machine_args
    } else if (s.model == "ich6" || s.model == "ich9") {
      device(std::string(s.model == "ich6" ? "intel-hda" : "ich9-intel-hda") + ",id=" + id + pci_addr(what, s));
      std::string codec = "duplex";
      if (auto* c = child(s.extra, "codec")) {
        codec = std::string(attr(c->attributes, "type"));
        if (codec != "duplex" && codec != "micro" && codec != "output") refuse(what + " codec '" + codec + "'");
      }
      device("hda-" + codec + ",id=" + id + "-codec0,bus=" + id + ".0,cad=0,audiodev=audio1");
    } else if (s.model == "ac97" || s.model == "es1370") {
      device(std::string(s.model == "ac97" ? "AC97" : "ES1370") + ",id=" + id + ",audiodev=audio1" + pci_addr(what, s));
    } else if (s.model == "sb16") {
      if (s.address) refuse(what + " address");
      device("sb16,id=" + id + ",audiodev=audio1");
    } else if (s.model == "usb") {
      need_usb(what);
      device("usb-audio,id=" + id + ",audiodev=audio1");
    } else {
      refuse("<sound model='" + s.model + "'>");
    }
    ++i;
  }
}

// ------------------------------------------------------------------ graphics beyond VNC

void builder::spice(const graphics_def& g) {
  refuse_extras("<graphics type='spice'>", g.extra_attrs, g.extra);
  if (g.tls_port && *g.tls_port != 0)
    refuse("<graphics type='spice' tlsPort=...>: SPICE over TLS needs certificates (libvirt's spice_tls_x509_cert_dir), "
           "which covirt's qemu driver does not configure");
  std::string listen = g.listen;
  for (auto& l : g.listens) {
    refuse_extras("<graphics><listen>", l.extra_attrs, {});
    if (l.type == "address") {
      if (!l.address.empty()) listen = l.address;
    } else {
      refuse("<graphics type='spice'><listen type='" + l.type + "'>");
    }
  }
  if (g.listens.size() > 1) refuse("<graphics> with more than one <listen>");
  if (listen.empty()) listen = "127.0.0.1";
  for (char c : checked("SPICE listen address", listen))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != ':' && c != '-')
      refuse("SPICE listen address '" + listen + "'");
  if (!g.port || *g.port <= 0)
    refuse("<graphics type='spice'> without a port (the driver picks one for autoport)");
  if (*g.port > 65535) refuse("SPICE port " + std::to_string(*g.port));
  std::string v = "port=" + std::to_string(*g.port) + ",addr=" + listen;
  if (listen.find(':') != std::string::npos) v += ",ipv6=on";
  // A password is given over QMP (set_password) before the guest runs, never on the command line.
  if (g.passwd.empty()) v += ",disable-ticketing=on";
  v += ",seamless-migration=on";
  add("-spice", v);
}

void builder::sdl(const graphics_def& g) {
  refuse_extras("<graphics type='sdl'>", g.extra_attrs, g.extra);
  if (g.display.empty() && opt.display.empty())
    refuse("<graphics type='sdl'> needs an X display: give display='...' or run with $DISPLAY set");
  add("-display", g.fullscreen == "yes" ? "sdl,full-screen=on" : "sdl");
}

// ------------------------------------------------------------------ floppies

void builder::floppy(const disk_def& x, const std::string& drive) {
  std::string tgt = x.target_dev, what = "floppy '" + tgt + "'";
  unsigned idx = disk_index(tgt);
  if (idx > 1) refuse(what + ": the floppy controller has two drives (fda, fdb)");
  unsigned unit = idx;
  if (x.address) {
    if (x.address->type != "drive") refuse(what + " address type '" + x.address->type + "'");
    auto u = x.address->get("unit");
    unit = u.empty() ? idx : to_uint("unit", u);
    if (unit > 1 || (!x.address->get("controller").empty() && x.address->get("controller") != "0"))
      refuse(what + " address beyond the one floppy controller");
  }
  // The pc machine has its ISA floppy controller built in; q35 gets one.
  if (q35 && !fdc_emitted) {
    device("isa-fdc,id=fdc0");
    fdc_emitted = true;
  }
  device("floppy,unit=" + std::to_string(unit) + drive + ",id=fdc0-0-" + std::to_string(unit) + boot(&x));
}

// ------------------------------------------------------------------ network disks

boost::json::object builder::network_source(const disk_def& x, const std::string& what) {
  const auto& s = *x.source;
  if (s.protocol != "nbd")
    refuse(what + " protocol '" + s.protocol + "' (covirt's qemu driver does nbd)");
  if (s.hosts.size() != 1) refuse(what + " with " + std::to_string(s.hosts.size()) + " <host> (nbd takes one)");
  const auto& h = s.hosts[0];
  refuse_extras(what + " <host>", h.extra_attrs, {});
  boost::json::object server;
  if (h.transport == "unix") {
    if (h.socket.empty()) refuse(what + " <host transport='unix'> without socket=...");
    server["type"] = "unix";
    server["path"] = checked(what + " socket", h.socket);
  } else if (h.transport.empty() || h.transport == "tcp") {
    if (h.name.empty()) refuse(what + " <host> without name=...");
    server["type"] = "inet";
    server["host"] = checked(what + " host", h.name);
    server["port"] = h.port.empty() ? std::string("10809") : std::to_string(to_uint("nbd port", h.port));
  } else {
    refuse(what + " <host transport='" + h.transport + "'>");
  }
  boost::json::object o;
  o["driver"] = "nbd";
  o["server"] = server;
  if (!s.name.empty()) o["export"] = checked(what + " export name", s.name);
  return o;
}

// ------------------------------------------------------------------ PCI host devices

void builder::hostdevs() {
  unsigned i = 0;
  for (auto& h : d.devices.hostdevs) {
    std::string what = "hostdev " + std::to_string(i);
    common(what, h);
    if (h.mode != "subsystem" || h.type != "pci")
      refuse("<hostdev mode='" + h.mode + "' type='" + h.type + "'> (covirt's qemu driver does PCI devices through vfio-pci)");
    if (!h.source_extra.empty() || !h.source_extra_attrs.empty()) refuse(what + " <source> content");
    if (!h.source_address) refuse(what + " without <source><address .../></source>");
    std::string host = pci_host_address(*h.source_address);
    if (host.empty()) refuse(what + " source address");
    std::string dev = "vfio-pci,host=" + host + ",id=hostdev" + std::to_string(i) + pci_addr(what, h);
    if (h.boot_order) dev += ",bootindex=" + std::to_string(*h.boot_order);
    device(dev);
    ++i;
  }
}

}  // namespace covirt::qemu::argv_detail

namespace covirt::qemu {

std::string pci_host_address(const device_address& a) {
  auto num = [&](std::string_view k, unsigned long max) -> long {
    auto v = a.get(k);
    if (v.empty()) return k == "domain" ? 0 : -1;
    char* end = nullptr;
    std::string s(v);
    unsigned long n = std::strtoul(s.c_str(), &end, 0);
    if (*end || n > max) return -1;
    return static_cast<long>(n);
  };
  long dom = num("domain", 0xffff), bus = num("bus", 0xff), slot = num("slot", 0x1f), fn = num("function", 7);
  if (dom < 0 || bus < 0 || slot < 0 || fn < 0) return {};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lx:%02lx:%02lx.%lx", dom, bus, slot, fn);
  return buf;
}

}  // namespace covirt::qemu
