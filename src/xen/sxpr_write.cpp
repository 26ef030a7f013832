// covirt: domain_config -> the (vm ...) S-expression libvirt's xen_sxpr.c sent to xend, and the
// device S-expressions of attach/detach. The other way is sxpr_read.cpp.

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

// ------------------------------------------------------------------ writing

sexpr atom(std::string v) { return sexpr::make_atom(std::move(v)); }
sexpr kv(std::string k, std::string v) { return sexpr::make_list({atom(std::move(k)), atom(std::move(v))}); }
sexpr node(std::string k) { return sexpr::make_list({atom(std::move(k))}); }

result<std::string> chr_string(const chardev_def& c, std::string_view key, diagnostics& diag) {
  auto src = [&](std::string_view mode) {
    for (auto& s : c.sources)
      if (mode.empty() || s.mode == mode || (mode == "connect" && s.mode.empty())) return s;
    return chardev_def::source_t{};
  };
  auto s = src("");
  bool listen = s.mode == "bind";
  if (c.type == "null" || c.type == "stdio" || c.type == "vc" || c.type == "pty") return c.type;
  if (c.type == "file" || c.type == "pipe") return c.type + ":" + s.path;
  if (c.type == "dev") return s.path;
  if (c.type == "tcp")
    return std::string(c.protocol_type == "telnet" ? "telnet" : "tcp") + ":" + s.host + ":" + s.service +
           (listen ? ",server,nowait" : "");
  if (c.type == "udp") {
    auto conn = src("connect"), bind = src("bind");
    return "udp:" + conn.host + ":" + conn.service + "@" + bind.host + ":" + bind.service;
  }
  if (c.type == "unix") return "unix:" + s.path + (listen ? ",server,nowait" : "");
  return fail(diag, errc::config_unsupported, std::string(key) + ": unsupported chr device type '" + c.type + "'");
}

result<sexpr> disk_sxpr(const disk_def& d, bool hvm, diagnostics& diag) {
  std::string drv = d.driver ? d.driver->name : std::string();
  sexpr v = node(drv == "tap" || drv == "tap2" ? drv : "vbd");
  bool cdrom = d.device == "cdrom";
  v.list.push_back(kv("dev", d.target_dev + (hvm ? (cdrom ? ":cdrom" : ":disk") : cdrom ? ":cdrom" : "")));
  std::string path = d.source ? (d.source->file.empty() ? d.source->dev : d.source->file) : std::string();
  if (!path.empty()) {
    std::string uname;
    if (drv == "tap" || drv == "tap2") {
      std::string fmt = d.driver->type.empty() || d.driver->type == "raw" ? "aio" : d.driver->type;
      uname = drv + ":" + fmt + ":" + path;
    } else if (!drv.empty()) {
      uname = drv + ":" + path;
    } else if (d.type == "file") {
      uname = "file:" + path;
    } else if (d.type == "block") {
      uname = path.front() == '/' ? "phy:" + path : "phy:/dev/" + path;
    } else {
      return fail(diag, errc::config_unsupported, "disk '" + d.target_dev + "': unsupported disk type '" + d.type + "'");
    }
    v.list.push_back(kv("uname", uname));
  }
  v.list.push_back(kv("mode", d.readonly ? "r" : d.shareable ? "w!" : "w"));
  if (d.transient)
    return fail(diag, errc::config_unsupported, "disk '" + d.target_dev + "': transient disks not supported yet");
  return v;
}

result<sexpr> nic_sxpr(const interface_def& n, bool hvm, const sxpr_context& ctx, diagnostics& diag) {
  if (n.type != "bridge" && n.type != "ethernet")
    return fail(diag, errc::config_unsupported, "interface type '" + n.type + "' is not supported by xend (use a bridge)");
  if (n.mac.empty()) return fail(diag, errc::config_unsupported, "interface without a MAC address");
  sexpr v = node("vif");
  v.list.push_back(kv("mac", n.mac));
  std::vector<std::string> ips;
  for (auto& e : n.extra) {
    if (e.name == "ip")
      for (auto& [k, val] : e.attributes)
        if (k == "address") ips.push_back(val);
    if (e.name == "bandwidth")
      for (auto& o : e.children)
        if (o.name == "outbound")
          for (auto& [k, val] : o.attributes)
            if (k == "average" && val != "0") v.list.push_back(kv("rate", val + "KB/s"));
  }
  if (ips.size() > 1) return fail(diag, errc::config_unsupported, "xend does not support setting multiple IP addresses");
  if (n.type == "bridge") {
    v.list.push_back(kv("bridge", n.source ? n.source->bridge : std::string()));
    v.list.push_back(kv("script", n.script_path.empty() ? "vif-bridge" : n.script_path));
  } else if (!n.script_path.empty()) {
    v.list.push_back(kv("script", n.script_path));
  }
  if (!ips.empty()) v.list.push_back(kv("ip", ips.front()));
  if (n.target_dev && !starts_with(*n.target_dev, "vif")) v.list.push_back(kv("vifname", *n.target_dev));
  if (hvm && n.model_type == "netfront") {
    v.list.push_back(kv("type", "netfront"));
  } else {
    if (!n.model_type.empty()) v.list.push_back(kv("model", n.model_type));
    if (hvm && ctx.xend_config_version <= 3) v.list.push_back(kv("type", "ioemu"));
  }
  return v;
}

void graphics_keys(const graphics_def& g, bool new_style, sexpr& to) {
  auto add = [&](std::string k, const std::string& val) {
    if (!val.empty()) to.list.push_back(kv(std::move(k), val));
  };
  to.list.push_back(new_style ? kv("type", g.type) : kv(g.type, "1"));
  if (g.type == "sdl") {
    add("display", g.display);
    add("xauthority", g.xauth);
    return;
  }
  if (g.autoport == "yes" || !g.port || *g.port < 0) {
    to.list.push_back(kv("vncunused", "1"));
  } else {
    to.list.push_back(kv("vncunused", "0"));
    to.list.push_back(kv("vncdisplay", std::to_string(*g.port - 5900)));
  }
  add("vnclisten", !g.listen.empty() ? g.listen : g.listens.empty() ? std::string() : g.listens.front().address);
  add("vncpasswd", g.passwd);
  add("keymap", g.keymap);
}

result<sexpr> pci_dev(const hostdev_def& h, diagnostics& diag) {
  if (h.managed == "yes") return fail(diag, errc::config_unsupported, "managed PCI devices not supported with xend");
  if (!h.source_address) return fail(diag, errc::config_unsupported, "PCI hostdev without a source address");
  sexpr dev = node("dev");
  for (auto [attr, key, width] : {std::tuple{"domain", "domain", 4}, std::tuple{"bus", "bus", 2},
                                  std::tuple{"slot", "slot", 2}, std::tuple{"function", "func", 1}}) {
    auto n = number(h.source_address->get(attr), std::string("hostdev address ") + attr, diag);
    if (!n) return n.error();
    dev.list.push_back(kv(key, hexnum(*n, width)));
  }
  return dev;
}

result<void> hvm_image(const domain_config& d, const sxpr_context& ctx, sexpr& img, diagnostics& diag) {
  auto& os = d.os;
  img.list.push_back(kv(os.kernel.empty() ? "kernel" : "loader", os.loader->path));
  img.list.push_back(kv("vcpus", std::to_string(d.vcpus)));
  if (d.vcpu_current && *d.vcpu_current < d.vcpus)
    img.list.push_back(kv("vcpu_avail", std::to_string((1ULL << *d.vcpu_current) - 1)));
  std::string boot;
  for (auto& b : os.boot_devs) boot += b == "fd" ? 'a' : b == "cdrom" ? 'd' : b == "network" ? 'n' : 'c';
  img.list.push_back(kv("boot", boot.empty() ? "c" : boot));
  if (d.features)
    for (auto [key, member] : {std::pair{"acpi", &features_t::acpi}, std::pair{"apic", &features_t::apic},
                               std::pair{"pae", &features_t::pae}, std::pair{"hap", &features_t::hap},
                               std::pair{"viridian", &features_t::viridian}})
      if ((*d.features).*member && ((*d.features).*member)->state != "off") img.list.push_back(kv(key, "1"));
  img.list.push_back(kv("usb", "1"));
  for (auto& in : d.devices.inputs)
    if (in.bus == "usb") {
      if (in.type != "mouse" && in.type != "tablet" && in.type != "keyboard")
        return fail(diag, errc::config_unsupported, "usb input type '" + in.type + "' is not supported");
      img.list.push_back(kv("usbdevice", in.type));
    }
  if (d.devices.parallels.empty()) img.list.push_back(kv("parallel", "none"));
  else {
    auto s = chr_string(d.devices.parallels.front(), "parallel", diag);
    if (!s) return s.error();
    img.list.push_back(kv("parallel", *s));
  }
  auto& ser = d.devices.serials;
  if (ser.empty()) img.list.push_back(kv("serial", "none"));
  else if (ser.size() == 1 && ser.front().target_port.value_or(0) == 0) {
    auto s = chr_string(ser.front(), "serial", diag);
    if (!s) return s.error();
    img.list.push_back(kv("serial", *s));
  } else {
    unsigned maxport = 0;
    for (std::size_t i = 0; i < ser.size(); ++i) maxport = std::max(maxport, ser[i].target_port.value_or(unsigned(i)));
    sexpr ports = sexpr::make_list();
    for (unsigned p = 0; p <= maxport; ++p) {
      auto it = std::find_if(ser.begin(), ser.end(), [&](auto& c) { return c.target_port.value_or(~0u) == p; });
      if (it == ser.end()) ports.list.push_back(atom("none"));
      else {
        auto s = chr_string(*it, "serial", diag);
        if (!s) return s.error();
        ports.list.push_back(atom(*s));
      }
    }
    img.list.push_back(sexpr::make_list({atom("serial"), std::move(ports)}));
  }
  std::string snd;
  for (auto& s : d.devices.sounds) {
    if (!known(sound_models, s.model))
      return fail(diag, errc::config_unsupported, "sound model '" + s.model + "' is not supported");
    snd += (snd.empty() ? "" : ",") + s.model;
  }
  if (!snd.empty()) img.list.push_back(kv("soundhw", snd));
  for (auto& disk : d.devices.disks)
    if (disk.device == "floppy" && disk.source && (disk.target_dev == "fda" || disk.target_dev == "fdb"))
      img.list.push_back(kv(disk.target_dev, disk.source->file.empty() ? disk.source->dev : disk.source->file));
  (void)ctx;
  return {};
}

result<sexpr> build_vm(const domain_config& d, const sxpr_context& ctx, diagnostics& diag) {
  bool hvm = d.os.type == "hvm";
  if (!hvm && d.os.type != "linux" && d.os.type != "xen")
    return fail(diag, errc::config_unsupported, "os type '" + d.os.type + "' is not supported by xend");
  auto mib = [](unsigned long long kib) { return std::to_string((kib + 1023) / 1024); };
  sexpr vm = node("vm");
  auto add = [&](std::string k, std::string v) { vm.list.push_back(kv(std::move(k), std::move(v))); };
  add("name", d.name);
  add("memory", mib(d.current_memory_kib ? d.current_memory_kib : d.memory_kib));
  add("maxmem", mib(d.memory_kib));
  add("vcpus", std::to_string(d.vcpus));
  if (d.vcpu_current && *d.vcpu_current < d.vcpus) add("vcpu_avail", std::to_string((1ULL << *d.vcpu_current) - 1));
  if (!d.vcpu_cpuset.empty()) add("cpus", d.vcpu_cpuset);
  if (!d.uuid.empty()) add("uuid", d.uuid);
  if (d.description) add("description", *d.description);
  if (!d.bootloader.empty()) {
    add("bootloader", d.bootloader);
    if (d.bootloader_args) add("bootloader_args", *d.bootloader_args);
  }
  for (auto [key, val, dflt] : {std::tuple{"on_poweroff", &d.on_poweroff, "destroy"},
                                std::tuple{"on_reboot", &d.on_reboot, "restart"},
                                std::tuple{"on_crash", &d.on_crash, "destroy"}}) {
    if (!val->empty() && !known(lifecycle_actions, *val))
      return fail(diag, errc::config_unsupported, std::string(key) + ": lifecycle action '" + *val + "' is not supported by xend");
    add(key, val->empty() ? dflt : *val);
  }
  if (d.devices.graphics.size() > 1)
    return fail(diag, errc::config_unsupported, "xend supports one graphics device, not " + std::to_string(d.devices.graphics.size()));
  const graphics_def* g = d.devices.graphics.empty() ? nullptr : &d.devices.graphics.front();
  if (g && g->type != "vnc" && g->type != "sdl")
    return fail(diag, errc::config_unsupported, "graphics type '" + g->type + "' is not supported by xend");
  sexpr img = node(hvm ? "hvm" : "linux");
  if (d.bootloader.empty()) {
    if (hvm && (!d.os.loader || d.os.loader->path.empty()))
      return fail(diag, errc::config_unsupported, "os/loader: an HVM domain needs a loader (hvmloader)");
    auto add_img = [&](std::string k, const std::string& v) {
      if (!v.empty()) img.list.push_back(kv(std::move(k), v));
    };
    add_img("kernel", d.os.kernel);
    add_img("ramdisk", d.os.initrd);
    for (auto& e : d.os.extra)
      if (e.name == "root") add_img("root", e.text);
    add_img("args", d.os.cmdline);
    if (hvm) COVIRT_SXPR_CHECK(hvm_image(d, ctx, img, diag));
    if (hvm && !d.devices.emulator.empty()) add_img("device_model", d.devices.emulator);
    if (d.clock)
      for (auto& t : d.clock->timers)
        if (t.name == "hpet" && !t.present.empty()) img.list.push_back(kv("hpet", t.present == "yes" ? "1" : "0"));
  } else if (!d.os.cmdline.empty()) {
    img.list.push_back(kv("args", d.os.cmdline));
  }
  if (g && (hvm || ctx.xend_config_version < 3)) graphics_keys(*g, false, img);
  std::string offset = d.clock ? d.clock->offset : "utc";
  int localtime = 0;
  if (offset == "localtime") localtime = 1;
  else if (hvm && offset == "variable") {
    localtime = d.clock->basis == "localtime";
    img.list.push_back(kv("rtc_timeoffset", d.clock->adjustment.empty() ? "0" : d.clock->adjustment));
  } else if (!offset.empty() && offset != "utc")
    return fail(diag, errc::config_unsupported, "clock offset '" + offset + "' is not supported by xend");
  img.list.push_back(kv("localtime", std::to_string(localtime)));
  vm.list.push_back(sexpr::make_list({atom("image"), std::move(img)}));
  add("localtime", std::to_string(localtime));

  auto device = [&](sexpr inner) { vm.list.push_back(sexpr::make_list({atom("device"), std::move(inner)})); };
  for (auto& disk : d.devices.disks) {
    if (hvm && disk.device == "floppy") continue;  // under the image
    auto v = disk_sxpr(disk, hvm, diag);
    if (!v) return v.error();
    device(std::move(*v));
  }
  for (auto& nic : d.devices.interfaces) {
    auto v = nic_sxpr(nic, hvm, ctx, diag);
    if (!v) return v.error();
    device(std::move(*v));
  }
  sexpr pci = node("pci");
  for (auto& h : d.devices.hostdevs) {
    if (h.mode != "subsystem" || h.type != "pci")
      return fail(diag, errc::config_unsupported, "hostdev type '" + h.type + "' is not supported by xend");
    auto v = pci_dev(h, diag);
    if (!v) return v.error();
    pci.list.push_back(std::move(*v));
  }
  if (pci.list.size() > 1) device(std::move(pci));
  if (g && !hvm && ctx.xend_config_version >= 3) {
    device(node("vkbd"));
    sexpr vfb = node("vfb");
    graphics_keys(*g, true, vfb);
    device(std::move(vfb));
  }
  return vm;
}

}  // namespace

result<std::string> domain_to_sxpr(const domain_config& def, const sxpr_context& ctx, diagnostics& diag) {
  auto vm = build_vm(def, ctx, diag);
  if (!vm) return vm.error();
  return format_sexpr(*vm);
}

result<std::string> device_to_sxpr(const disk_def& disk, bool hvm, const sxpr_context&, diagnostics& diag) {
  if (hvm && disk.device == "floppy")
    return fail(diag, errc::invalid_arg, "cannot directly attach floppy '" + disk.target_dev + "'");
  auto v = disk_sxpr(disk, hvm, diag);
  if (!v) return v.error();
  return format_sexpr(*v);
}

result<std::string> device_to_sxpr(const interface_def& nic, bool hvm, const sxpr_context& ctx, diagnostics& diag) {
  auto v = nic_sxpr(nic, hvm, ctx, diag);
  if (!v) return v.error();
  return format_sexpr(*v);
}

}  // namespace covirt::xen
