// The test driver's define-time rules: the defaults libvirt's test driver (and its generic
// domain/network post-parse code) fills in, and the default capabilities document. Policy of
// this driver, kept out of the XML codec, which only reads and writes documents.
#include <covirt/test/normalize.hpp>

#include "../detail/xml_util.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>

namespace covirt {

namespace x = detail::xml;

namespace {

void insert_controller(devices_t& dv, controller_def c) {
  int insert_at = -1;
  for (int i = static_cast<int>(dv.controllers.size()) - 1; i >= 0; --i) {
    auto& cur = dv.controllers[static_cast<std::size_t>(i)];
    if (cur.type == c.type) {
      if (cur.index.value_or(0) <= c.index.value_or(0)) {
        insert_at = i + 1;
        break;
      }
      insert_at = i;
    }
  }
  if (insert_at < 0) dv.controllers.push_back(std::move(c));
  else dv.controllers.insert(dv.controllers.begin() + insert_at, std::move(c));
}

void ensure_controller(devices_t& dv, std::string_view type, unsigned index) {
  for (auto& c : dv.controllers)
    if (c.type == type && c.index.value_or(0) == index) return;
  controller_def c;
  c.type = std::string(type);
  c.index = index;
  insert_controller(dv, std::move(c));
}

void fill_chardev_target(chardev_def& c, bool console) {
  c.has_target = true;
  if (!c.target_port) c.target_port = 0;
  if (console && c.target_type.empty()) c.target_type = "serial";
}

constexpr std::string_view test_default_caps_head = R"(<capabilities>

  <host>
    <cpu>
      <arch>i686</arch>
      <features>
        <pae/>
        <nonpae/>
      </features>
      <pages unit='KiB' size='4'/>
      <pages unit='KiB' size='8'/>
      <pages unit='KiB' size='2048'/>
      <pages unit='KiB' size='1048576'/>
    </cpu>
    <power_management/>
    <iommu support='no'/>
    <topology>
)";

constexpr std::string_view test_default_caps_host_end = R"(    </topology>
    <secmodel>
      <model>testSecurity</model>
      <doi></doi>
    </secmodel>
  </host>
)";

// One <guest> per OS type the test driver runs (hvm, xen), both i686 on the test hypervisor.
std::string guests() {
  std::string out;
  for (const char* os : {"hvm", "xen"})
    out += std::string("\n  <guest>\n    <os_type>") + os +
           "</os_type>\n    <arch name='i686'>\n      <wordsize>32</wordsize>\n"
           "      <emulator>/usr/bin/test-hv</emulator>\n      <domain type='test'/>\n    </arch>\n"
           "    <features>\n      <pae/>\n      <nonpae/>\n    </features>\n  </guest>\n";
  return out + "\n</capabilities>\n";
}

// The host's two NUMA cells of 8 CPUs each, as libvirt's test driver describes them (its second
// cell reports 8 KiB base pages).
std::string numa_cells() {
  std::string out = "      <cells num='2'>\n";
  for (int cell = 0; cell < 2; ++cell) {
    auto n = [](auto v) { return std::to_string(v); };
    out += "        <cell id='" + n(cell) + "'>\n          <memory unit='KiB'>" + n(2097152 << cell) +
           "</memory>\n          <pages unit='KiB' size='" + n(4 << cell) + "'>524288</pages>\n" +
           "          <pages unit='KiB' size='2048'>0</pages>\n          <pages unit='KiB' size='1048576'>0</pages>\n" +
           "          <cpus num='8'>\n";
    for (int core = 0; core < 8; ++core) {
      std::string id = n(cell * 8 + core);
      out += "            <cpu id='" + id + "' socket_id='" + n(cell) + "' die_id='0' core_id='" + n(core) +
             "' siblings='" + id + "'/>\n";
    }
    out += "          </cpus>\n        </cell>\n";
  }
  return out + "      </cells>\n";
}

}  // namespace

result<void> normalize_domain_for_test_driver(domain_config& d, diagnostics& diag) {
  if (auto r = check_object_name("domain", d.name, diag); !r) return r;
  if (d.memory_kib == 0)
    return fail(diag, errc::xml_detail, "memory size must be specified via <memory> and be greater than zero");
  if (d.vcpus == 0) d.vcpus = 1;
  if (d.uuid.empty()) d.uuid = generate_uuid();
  if (d.current_memory_kib == 0 || d.current_memory_kib > d.memory_kib) d.current_memory_kib = d.memory_kib;
  if (d.vcpu_placement.empty()) d.vcpu_placement = "static";
  if (d.vcpu_current && *d.vcpu_current == d.vcpus) d.vcpu_current.reset();
  // virDomainNumatuneParseXML: without <numatune>, memory is placed like the vCPUs
  if (d.vcpu_placement == "auto" && !d.numatune) {
    numatune_def nt;
    nt.has_memory = true;
    nt.mode = "strict";
    nt.placement = "auto";
    d.numatune = std::move(nt);
  }
  // virDomainDefParseXML ignores the pins of vCPUs the domain does not have
  if (d.cputune) {
    std::erase_if(d.cputune->vcpupins, [&](const cputune_def::vcpupin_t& p) { return p.vcpu >= d.vcpus; });
    if (*d.cputune == cputune_def{}) d.cputune.reset();
  }
  if (d.os.type.empty()) return fail(diag, errc::xml_detail, "an os <type> must be specified");
  if (d.os.type != "hvm" && d.os.type != "xen" && d.os.type != "linux")
    return fail(diag, errc::config_unsupported,
                "os type '" + d.os.type + "' is not supported by the test driver (hvm, xen, linux)");
  if (d.os.arch.empty()) d.os.arch = "i686";
  // default <boot dev='hd'/> unless devices carry their own <boot order=>
  bool per_device_boot = false;
  for (auto& disk : d.devices.disks) per_device_boot |= disk.boot_order.has_value();
  for (auto& n : d.devices.interfaces) per_device_boot |= n.boot_order.has_value();
  for (auto& h : d.devices.hostdevs) per_device_boot |= h.boot_order.has_value();
  if (per_device_boot && !d.os.boot_devs.empty())
    return fail(diag, errc::config_unsupported, "per-device boot elements cannot be used together with os/boot elements");
  if (d.os.type == "hvm" && d.os.boot_devs.empty() && d.bootloader.empty() && !per_device_boot)
    d.os.boot_devs.push_back("hd");
  if (!d.clock) d.clock = clock_def{};
  if (d.clock->offset.empty()) d.clock->offset = "utc";
  if (d.on_poweroff.empty()) d.on_poweroff = "destroy";
  if (d.on_reboot.empty()) d.on_reboot = "restart";
  if (d.on_crash.empty()) d.on_crash = "destroy";
  if (d.cpu && d.cpu->topology && d.cpu->topology->dies == 0) d.cpu->topology->dies = 1;
  d.has_devices = true;
  auto& dv = d.devices;

  // disks: bus from the name, drive addresses, implicit controllers
  for (auto& disk : dv.disks) {
    if (disk.target_bus.empty()) disk.target_bus = disk.device == "floppy" ? "fdc" : bus_from_dev(disk.target_dev);
    int idx = disk_name_to_index(disk.target_dev);
    if (idx < 0) return fail(diag, errc::xml_detail, "disk target '" + disk.target_dev + "' is not a valid disk name");
    if (disk.address) continue;
    unsigned u = static_cast<unsigned>(idx);
    unsigned controller = 0, bus = 0, unit = 0;
    if (disk.target_bus == "scsi") controller = u / 7, unit = u % 7;
    else if (disk.target_bus == "ide") controller = u / 4, bus = (u % 4) / 2, unit = u % 2;
    else if (disk.target_bus == "sata") controller = u / 6, unit = u % 6;
    else if (disk.target_bus == "fdc") controller = u / 2, unit = u % 2;
    else continue;
    device_address a;
    a.type = "drive";
    a.attrs = {{"controller", std::to_string(controller)}, {"bus", std::to_string(bus)}, {"target", "0"},
               {"unit", std::to_string(unit)}};
    disk.address = std::move(a);
  }
  // virDomainDefAddDiskControllersForType: controllers 0..max for each drive bus
  for (std::string_view bus : {"scsi", "fdc", "ide", "sata"}) {
    int max_ctl = -1;
    for (auto& disk : dv.disks)
      if (disk.target_bus == bus && disk.address && disk.address->type == "drive") {
        unsigned ctl = 0;
        x::parse_uint(disk.address->get("controller"), ctl);
        max_ctl = std::max(max_ctl, static_cast<int>(ctl));
      }
    for (int i = 0; i <= max_ctl; ++i) ensure_controller(dv, bus, static_cast<unsigned>(i));
  }

  // console <-> serial (hvm only)
  if (d.os.type != "hvm") {
  } else if (!dv.consoles.empty()) {
    auto& con = dv.consoles.front();
    if (con.target_type.empty() || con.target_type == "serial") {
      if (dv.serials.empty()) {
        chardev_def s = con;
        s.target_type.clear();
        fill_chardev_target(s, false);
        dv.serials.push_back(std::move(s));
      }
      con = dv.serials.front();
      con.target_type = "serial";
      con.target_port = dv.serials.front().target_port.value_or(0);
      con.target_children.clear();
      con.has_target = true;
      con.alias.clear();
      con.address.reset();
    }
  } else if (!dv.serials.empty()) {
    chardev_def con = dv.serials.front();
    con.target_type = "serial";
    con.target_port = con.target_port.value_or(0);
    con.target_children.clear();
    con.has_target = true;
    con.address.reset();
    dv.consoles.push_back(std::move(con));
  }
  {
    unsigned port = 0;
    for (auto& s : dv.serials) {
      if (!s.target_port) s.target_port = port;
      s.has_target = true;
      port = *s.target_port + 1;
    }
    for (auto& c : dv.consoles) fill_chardev_target(c, true);
    unsigned pport = 0;
    for (auto& p : dv.parallels) {
      if (!p.target_port) p.target_port = pport;
      p.has_target = true;
      pport = *p.target_port + 1;
    }
  }
  bool need_vserial = false;
  for (auto& c : dv.channels) need_vserial |= c.target_type == "virtio";
  for (auto& c : dv.consoles) need_vserial |= c.target_type == "virtio";
  if (need_vserial) ensure_controller(dv, "virtio-serial", 0);

  // interfaces: MAC, target names (lowest unused testnetN)
  for (auto& n : dv.interfaces) {
    if (n.mac.empty()) n.mac = random_mac();
    // libvirt formats <driver> only for virtio models (virDomainNetDefFormat)
    if (n.driver && n.type != "hostdev" && n.model_type.rfind("virtio", 0) != 0) n.driver.reset();
  }
  for (auto& n : dv.interfaces) {
    if (n.target_dev && !n.target_dev->empty()) continue;
    for (int i = 0; i < 1024; ++i) {
      std::string cand = "testnet" + std::to_string(i);
      bool used = false;
      for (auto& o : dv.interfaces) used |= o.target_dev && *o.target_dev == cand;
      if (!used) {
        n.target_dev = cand;
        break;
      }
    }
  }

  // graphics
  for (auto& g : dv.graphics) {
    if (g.type == "vnc") {
      if (g.socket.empty()) {
        if (!g.port || *g.port == -1) {
          g.port = -1;
          g.autoport = "yes";
        }
        if (g.autoport.empty()) g.autoport = "no";
      }
    }
    if (g.type == "spice" && g.listens.empty() && g.listen.empty() && !g.port && !g.tls_port &&
        g.autoport != "yes") {
      g.listens.push_back(graphics_listen{"none", {}, {}, {}, {}});
    }
    if (g.type == "vnc" || g.type == "spice" || g.type == "rdp") {
      if (g.listens.empty() && g.socket.empty()) {
        graphics_listen l;
        l.type = "address";
        l.address = g.listen;
        g.listens.push_back(std::move(l));
      }
      if (g.listen.empty() && !g.listens.empty() && g.listens.front().type == "address")
        g.listen = g.listens.front().address;
    }
  }

  // video: first is primary; default vram / heads per model
  for (std::size_t i = 0; i < dv.videos.size(); ++i) {
    auto& v = dv.videos[i];
    if (v.model_type.empty()) v.model_type = "cirrus";
    if (v.model_type == "none") continue;
    if (i == 0) v.primary = true;
    if (!v.heads) v.heads = 1;
    if (v.model_type == "qxl") {
      if (!v.ram) v.ram = 65536;
      if (!v.vram) v.vram = 65536;
    } else if (v.model_type == "vga" || v.model_type == "cirrus" || v.model_type == "vmvga" ||
               v.model_type == "xen") {
      if (!v.vram) v.vram = 16384;
    }
  }
  return {};
}

void prepare_live_domain_for_test_driver(domain_config& d, int id) {
  // libvirt 9.0's test driver assigns interface names at define time and changes
  // nothing else at start; the id is written by format_domain_xml({.id = id}).
  (void)d;
  (void)id;
}


result<void> normalize_network_for_test_driver(network_config& n, diagnostics& diag) {
  if (auto r = check_object_name("network", n.name, diag); !r) return r;
  if (n.uuid.empty()) n.uuid = generate_uuid();
  bool bridged = n.forward_mode.empty() || n.forward_mode == "nat" || n.forward_mode == "route" ||
                 n.forward_mode == "open";
  if (bridged) {
    n.has_bridge = true;
    if (n.bridge_stp.empty()) n.bridge_stp = "on";
    if (n.bridge_delay.empty()) n.bridge_delay = "0";
  }
  // <forward dev='X'> implies <interface dev='X'/>
  if (!n.forward_dev.empty()) {
    bool has = false;
    for (auto& e : n.forward_extra) has |= e.name == "interface";
    if (!has) n.forward_extra.push_back(xml_element{"interface", {{"dev", n.forward_dev}}, {}, {}});
  }
  return {};
}


capabilities test_driver_default_capabilities() {
  static const capabilities caps = [] {
    diagnostics diag;
    auto r = parse_capabilities_xml(std::string(test_default_caps_head) + numa_cells() + std::string(test_default_caps_host_end) + guests(), diag);
    return r ? *r : capabilities{};
  }();
  return caps;
}

}  // namespace covirt
