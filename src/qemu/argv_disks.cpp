// covirt: domain_config -> QEMU command line: controllers (the buses other devices sit on), the boot order, disks.
// (The builder and its checks: argv_builder.hpp.)
#include "argv_builder.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace covirt::qemu::argv_detail {

void builder::emit_usb(const std::string& model, unsigned index, const std::string& ports, const std::string& addr) {
  static const std::map<std::string, std::string> models = {
      {"piix3-uhci", "piix3-usb-uhci"}, {"piix4-uhci", "piix4-usb-uhci"},
      {"qemu-xhci", "qemu-xhci"},       {"nec-xhci", "nec-usb-xhci"}};
  auto it = models.find(model);
  if (it == models.end()) refuse("USB controller model '" + model + "'");
  std::string s = it->second;
  if (!ports.empty()) {
    if (model.find("xhci") == std::string::npos) refuse("USB controller ports= on model '" + model + "'");
    auto p = std::to_string(to_uint("USB ports", ports));
    s += ",p2=" + p + ",p3=" + p;
  }
  s += ",id=" + std::string(index == 0 ? "usb" : "usb" + std::to_string(index)) + addr;
  device(s);
  usb_emitted = true;
}

void builder::controllers() {
  // First the PCI buses, so addresses on them can be checked.
  for (auto& c : d.devices.controllers)
    if (c.type == "pci" && c.index.value_or(0) != 0) pci_buses.insert(*c.index);
  for (auto& c : d.devices.controllers) {
    std::string what = "<controller type='" + c.type + "'>";
    common(what, c, {"model", "target"});
    if (c.driver) refuse(what + " <driver>");
    unsigned idx = c.index.value_or(0);
    if (c.type == "pci") {
      if (idx == 0) {
        if (!c.model.empty() && c.model != (q35 ? "pcie-root" : "pci-root"))
          refuse("PCI controller 0 model '" + c.model + "' on this machine type");
        continue;
      }
      const xml_element* t = child(c.extra, "target");
      if (c.model == "pcie-root-port") {
        if (!q35) refuse("pcie-root-port on an i440fx (pc) machine");
        std::string s = "pcie-root-port";
        if (t && !attr(t->attributes, "port").empty())
          s += ",port=" + hex(to_uint("root port", attr(t->attributes, "port")));
        s += ",chassis=" + std::to_string(t && !attr(t->attributes, "chassis").empty()
                                               ? to_uint("chassis", attr(t->attributes, "chassis")) : idx);
        s += ",id=pci." + std::to_string(idx) + pci_addr(what, c);
        device(s);
      } else if (c.model == "pci-bridge") {
        std::string s = "pci-bridge,chassis_nr=" +
                        std::to_string(t && !attr(t->attributes, "chassisNr").empty()
                                           ? to_uint("chassisNr", attr(t->attributes, "chassisNr")) : idx);
        s += ",id=pci." + std::to_string(idx) + pci_addr(what, c);
        device(s);
      } else {
        refuse("PCI controller model '" + c.model + "'");
      }
    } else if (c.type == "usb") {
      usb_declared = true;
      if (c.model == "none") {
        usb_none = true;
        continue;
      }
      emit_usb(c.model.empty() ? default_usb_model() : c.model, idx, c.ports, pci_addr(what, c));
    } else if (c.type == "ide") {
      if (q35 || idx != 0) refuse("IDE controller " + std::to_string(idx) + (q35 ? " on a q35 machine (use sata)" : ""));
    } else if (c.type == "sata") {
      if (q35 && idx == 0) continue;  // the ICH9's built-in AHCI, bus names ide.0 .. ide.5
      device("ich9-ahci,id=sata" + std::to_string(idx) + pci_addr(what, c));
      if (idx == 0) sata_emitted = true;
    } else if (c.type == "scsi") {
      std::string model = c.model.empty() ? "lsilogic" : c.model;
      std::string dev;
      if (model == "virtio-scsi") dev = "virtio-scsi-pci";
      else if (model == "lsilogic") dev = "lsi53c895a";
      else refuse("SCSI controller model '" + model + "'");
      scsi_models[idx] = model;
      device(dev + ",id=scsi" + std::to_string(idx) + pci_addr(what, c));
    } else if (c.type == "virtio-serial") {
      std::string s = "virtio-serial-pci,id=virtio-serial" + std::to_string(idx);
      if (!c.ports.empty()) s += ",max_ports=" + std::to_string(to_uint("ports", c.ports));
      if (!c.vectors.empty()) s += ",vectors=" + std::to_string(to_uint("vectors", c.vectors));
      device(s + pci_addr(what, c));
      virtio_serials.insert(idx);
    } else {
      refuse("controller type '" + c.type + "'");
    }
  }
}

void builder::need_usb(std::string_view what) {
  if (usb_emitted) return;
  if (usb_none) refuse(std::string(what) + " needs a USB controller, and <controller type='usb' model='none'/> removes it");
  emit_usb(default_usb_model(), 0, {}, {});
}

std::string builder::need_virtio_serial(const device_common& c, std::string_view what) {
  unsigned ctl = 0, bus = 0;
  std::string nr;
  if (c.address) {
    if (c.address->type != "virtio-serial") refuse(std::string(what) + " address type '" + c.address->type + "'");
    if (!c.address->get("controller").empty()) ctl = to_uint("controller", c.address->get("controller"));
    if (!c.address->get("bus").empty()) bus = to_uint("bus", c.address->get("bus"));
    if (!c.address->get("port").empty()) nr = ",nr=" + std::to_string(to_uint("port", c.address->get("port")));
  }
  if (!virtio_serials.count(ctl)) {
    device("virtio-serial-pci,id=virtio-serial" + std::to_string(ctl));
    virtio_serials.insert(ctl);
  }
  return "bus=virtio-serial" + std::to_string(ctl) + "." + std::to_string(bus) + nr;
}

void builder::assign_boot_order() {
  bool per_device = false;
  for (auto& x : d.devices.disks)
    if (x.boot_order) per_device = true, bootindex[&x] = *x.boot_order;
  for (auto& x : d.devices.interfaces)
    if (x.boot_order) per_device = true, bootindex[&x] = *x.boot_order;
  if (per_device && !d.os.boot_devs.empty())
    refuse("per-device <boot order='N'/> together with <os><boot dev='...'/>");
  unsigned n = 0;
  for (auto& dev : d.os.boot_devs) {
    ++n;
    const void* which = nullptr;
    if (dev == "hd" || dev == "cdrom" || dev == "fd") {
      std::string want = dev == "hd" ? "disk" : dev == "cdrom" ? "cdrom" : "floppy";
      for (auto& x : d.devices.disks)
        if (x.device == want) {
          which = &x;
          break;
        }
    } else if (dev == "network") {
      if (!d.devices.interfaces.empty()) which = &d.devices.interfaces[0];
    } else {
      refuse("<boot dev='" + dev + "'>");
    }
    if (which && !bootindex.count(which)) bootindex[which] = n;
  }
}

unsigned builder::disk_index(std::string_view dev) {
  auto idx = disk_target_index(dev);
  if (!idx) refuse("disk target '" + std::string(dev) + "' (a prefix such as vd, sd, hd and letters a-z)");
  return *idx;
}

void builder::disks() {
  std::size_t n = d.devices.disks.size();
  for (std::size_t i = 0; i < n; ++i) disk(d.devices.disks[i], static_cast<unsigned>(n - i));
}

void builder::disk(const disk_def& x, unsigned node) {
  std::string tgt = checked("disk target", x.target_dev);
  std::string what = "disk '" + tgt + "'";
  common(what, x, {"backingStore"});
  if (auto* bs = child(x.extra, "backingStore"); bs && (!bs->children.empty() || !bs->attributes.empty()))
    refuse(what + " <backingStore> with content (backing chains come from the image)");
  if (!x.target_extra_attrs.empty()) refuse(what + " <target> attribute '" + x.target_extra_attrs[0].first + "'");
  if (x.device != "disk" && x.device != "cdrom" && x.device != "floppy") refuse("disk device '" + x.device + "'");
  bool cdrom = x.device == "cdrom", fd = x.device == "floppy";
  if (x.type != "file" && x.type != "block" && x.type != "network") refuse("disk type '" + x.type + "'");
  if (x.type == "network" && (!x.source || x.source->protocol.empty())) refuse(what + " of type 'network' without <source protocol=...>");
  if (x.transient) refuse(what + " <transient/>");
  if (!x.target_tray.empty() && x.target_tray != "closed") refuse(what + " tray='" + x.target_tray + "'");
  std::string bus = x.target_bus;
  if (bus.empty()) {
    auto p = tgt.substr(0, 2);
    bus = p == "vd" ? "virtio" : p == "sd" ? "scsi" : p == "hd" ? "ide" : p == "fd" ? "fdc" : "xen";
  }
  if (fd != (bus == "fdc")) refuse(fd ? what + ": a floppy on bus '" + bus + "' (floppies go on 'fdc')" : "disk bus '" + bus + "'");
  if (bus != "virtio" && bus != "ide" && bus != "sata" && bus != "scsi" && bus != "fdc") refuse("disk bus '" + bus + "'");
  unsigned idx = disk_index(tgt);

  std::string path;
  if (x.source) {
    refuse_extras(what + " <source>", x.source->extra_attrs, x.source->extra, {}, {"index"});
    if (!x.source->startup_policy.empty()) refuse(what + " startupPolicy");
    path = x.type == "file" ? x.source->file : x.type == "block" ? x.source->dev : x.source->protocol;
  }
  std::string drive;
  if (path.empty()) {
    if (!cdrom && !fd) refuse(what + " has no <source> (only a CD-ROM or a floppy may be empty)");
  } else {
    std::string fmt = "raw", cache, io, discard;
    if (x.driver) {
      if (!x.driver->name.empty() && x.driver->name != "qemu") refuse(what + " driver name '" + x.driver->name + "'");
      refuse_extras(what + " <driver>", x.driver->extra_attrs, {});
      if (!x.driver->type.empty()) fmt = x.driver->type;
      cache = x.driver->cache;
      io = x.driver->io;
      discard = x.driver->discard;
    }
    static const std::set<std::string> formats = {"raw", "qcow2", "qcow", "qed", "vmdk", "vdi", "vpc", "vhdx"};
    if (!formats.count(fmt)) refuse(what + " format '" + fmt + "'");
    bool direct = false, noflush = false, wce = true, has_cache = !cache.empty();
    if (cache == "none") direct = true;
    else if (cache == "writethrough") wce = false;
    else if (cache == "directsync") direct = true, wce = false;
    else if (cache == "unsafe") noflush = true;
    else if (!cache.empty() && cache != "writeback" && cache != "default") refuse(what + " cache '" + cache + "'");
    if (cache == "default") has_cache = false;
    if (!io.empty() && io != "native" && io != "threads" && io != "io_uring") refuse(what + " io '" + io + "'");
    if (io == "native" && !direct) refuse(what + " io='native' needs cache='none' or 'directsync'");
    if (!discard.empty() && discard != "unmap" && discard != "ignore") refuse(what + " discard '" + discard + "'");
    bool ro = x.readonly || cdrom;

    std::string storage = "libvirt-" + std::to_string(node) + "-storage";
    std::string format = "libvirt-" + std::to_string(node) + "-format";
    boost::json::object s;
    if (x.type == "network") {
      s = network_source(x, what);
    } else {
      s["driver"] = x.type == "block" ? "host_device" : "file";
      s["filename"] = checked(what + " source path", path);
    }
    s["node-name"] = storage;
    s["auto-read-only"] = true;
    if (!discard.empty()) s["discard"] = discard;
    if (!io.empty()) s["aio"] = io;
    boost::json::object c;
    if (has_cache) {
      c["direct"] = direct;
      c["no-flush"] = noflush;
      s["cache"] = c;
    }
    add("-blockdev", boost::json::serialize(s));
    boost::json::object f;
    f["node-name"] = format;
    f["read-only"] = ro;
    if (!discard.empty()) f["discard"] = discard;
    if (has_cache) f["cache"] = c;
    f["driver"] = fmt;
    f["file"] = storage;
    add("-blockdev", boost::json::serialize(f));
    drive = ",drive=" + format;
    if (has_cache) drive += wce ? ",write-cache=on" : ",write-cache=off";
  }

  if (fd) return floppy(x, drive);
  std::string dev;
  if (bus == "virtio") {
    if (cdrom) refuse(what + ": disk bus 'virtio' cannot hold a CD-ROM (ejectable media)");
    dev = "virtio-blk-pci" + pci_addr(what, x) + drive + ",id=virtio-disk" + std::to_string(idx);
  } else {
    if (bus != "scsi" && x.readonly && !cdrom) refuse(what + ": a read-only " + bus + " hard disk (QEMU's ide-hd cannot be read-only)");
    unsigned ctl = 0, dbus = 0, target = 0, unit = 0;
    if (x.address) {
      if (x.address->type != "drive") refuse(what + " address type '" + x.address->type + "'");
      auto g = [&](std::string_view k) { auto v = x.address->get(k); return v.empty() ? 0u : to_uint(k, v); };
      ctl = g("controller"), dbus = g("bus"), target = g("target"), unit = g("unit");
    } else if (bus == "ide") {
      dbus = idx / 2, unit = idx % 2;
    } else if (bus == "sata") {
      ctl = idx / 6, unit = idx % 6;
    } else {
      ctl = idx / 7, unit = idx % 7;
    }
    std::string c = std::to_string(ctl), b = std::to_string(dbus), t = std::to_string(target), u = std::to_string(unit);
    if (bus == "ide") {
      if (q35) refuse(what + ": disk bus 'ide' on a q35 machine (it has no IDE controller; use 'sata')");
      if (ctl != 0 || dbus > 1 || unit > 1) refuse(what + " IDE address beyond the built-in controller");
      dev = std::string(cdrom ? "ide-cd" : "ide-hd") + ",bus=ide." + b + ",unit=" + u + drive + ",id=ide0-" + b + "-" + u;
    } else if (bus == "sata") {
      if (unit > 5 || dbus != 0) refuse(what + " SATA unit beyond 5");
      std::string busname;
      if (q35 && ctl == 0) {
        busname = "ide." + u;
      } else {
        if (ctl == 0 && !sata_emitted) {
          device("ich9-ahci,id=sata0");
          sata_emitted = true;
        } else if (ctl != 0) {
          bool found = false;
          for (auto& cc : d.devices.controllers) found |= cc.type == "sata" && cc.index.value_or(0) == ctl;
          if (!found) refuse(what + " on SATA controller " + c + ", which is not declared");
        }
        busname = "sata" + c + "." + u;
      }
      dev = std::string(cdrom ? "ide-cd" : "ide-hd") + ",bus=" + busname + drive + ",id=sata" + c + "-0-" + u;
    } else {
      if (!scsi_models.count(ctl)) {
        device("lsi53c895a,id=scsi" + c);  // libvirt's implicit default for x86
        scsi_models[ctl] = "lsilogic";
      }
      if (scsi_models[ctl] == "virtio-scsi")
        dev = std::string(cdrom ? "scsi-cd" : "scsi-hd") + ",bus=scsi" + c + ".0,channel=" + b + ",scsi-id=" + t + ",lun=" + u;
      else {
        if (dbus != 0 || target != 0) refuse(what + " lsilogic SCSI address with bus/target");
        dev = std::string(cdrom ? "scsi-cd" : "scsi-hd") + ",bus=scsi" + c + ".0,scsi-id=" + u;
      }
      dev += drive + ",id=scsi" + c + "-" + b + "-" + t + "-" + u;
    }
  }
  if (!x.serial.empty()) dev += ",serial=" + esc(what + " serial", x.serial);
  if (!x.wwn.empty()) {
    if (bus == "virtio") refuse(what + " <wwn> on bus 'virtio'");
    dev += ",wwn=0x" + esc(what + " wwn", x.wwn);
  }
  if (x.shareable) dev += ",share-rw=on";
  dev += boot(&x);
  device(dev);
}

}  // namespace covirt::qemu::argv_detail
