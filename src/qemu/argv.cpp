// covirt: domain_config -> QEMU 7.2 command line, in libvirt 9.0's style.
//
// Every value a user wrote goes through checked() (no control characters) and, inside a
// comma-separated option, through esc() (',' doubled). Block nodes use -blockdev's JSON form,
// which needs no comma escaping. Anything the driver cannot honour throws `refusal`, which
// build_argv() turns into errc::config_unsupported with a message naming the element.
#include <covirt/qemu/argv.hpp>
#include <covirt/domain/xml.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <set>

namespace covirt::qemu {

// The codec's virDiskNameToIndex, without the partition number a disk target cannot carry.
std::optional<unsigned> disk_target_index(std::string_view dev) {
  if (dev.empty() || (dev.back() >= '0' && dev.back() <= '9')) return std::nullopt;
  int i = disk_name_to_index(dev);
  if (i < 0) return std::nullopt;
  return static_cast<unsigned>(i);
}

std::string escape_opt_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::string argv_to_shell(const std::vector<std::string>& argv) {
  auto safe = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-_./=:,@+%^").find(static_cast<char>(c)) != std::string_view::npos;
  };
  std::string out;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const auto& a = argv[i];
    if (i) out += ' ';
    if (!a.empty() && std::all_of(a.begin(), a.end(), safe)) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') out += "'\\''";
      else out += c;
    }
    out += '\'';
  }
  return out;
}

namespace {

struct refusal {
  std::string message;
};

[[noreturn]] void refuse(std::string msg) { throw refusal{std::move(msg)}; }

/// A value as QEMU may take it: no control characters (a newline cannot be passed safely).
std::string checked(std::string_view what, std::string_view v) {
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
std::string esc(std::string_view what, std::string_view v) { return escape_opt_value(checked(what, v)); }

unsigned to_uint(std::string_view what, std::string_view s) {
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

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

std::string_view attr(const xml_attributes& attrs, std::string_view key) {
  for (auto& [k, v] : attrs)
    if (k == key) return v;
  return {};
}

const xml_element* child(const std::vector<xml_element>& xs, std::string_view name) {
  for (auto& x : xs)
    if (x.name == name) return &x;
  return nullptr;
}

/// Refuses unknown attributes and child elements, except the ones listed.
void refuse_extras(std::string_view what, const xml_attributes& attrs, const std::vector<xml_element>& elems,
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
  std::map<const void*, unsigned> bootindex;    // device -> bootindex
  std::vector<std::string> devices;             // -device values, emitted after controllers

  void add(std::string a) { out.push_back(std::move(a)); }
  void add(std::string a, std::string b) {
    out.push_back(std::move(a));
    out.push_back(std::move(b));
  }
  void device(std::string v) { devices.push_back(std::move(v)); }

  std::string root_bus() const { return q35 ? "pcie.0" : "pci.0"; }

  /// ",bus=...,addr=..." for a PCI address, "" for none; other address types are refused
  /// unless the caller lists them in `also` (and then handles them itself).
  std::string pci_addr(std::string_view what, const device_common& c,
                       std::initializer_list<std::string_view> also = {}) {
    if (!c.address) return {};
    const auto& a = *c.address;
    if (a.type != "pci") {
      if (std::find(also.begin(), also.end(), a.type) != also.end()) return {};
      refuse(std::string(what) + " address type '" + a.type + "'");
    }
    for (auto& [k, v] : a.attrs)
      if (k != "domain" && k != "bus" && k != "slot" && k != "function" && k != "multifunction")
        refuse(std::string(what) + " PCI address attribute '" + k + "'");
    if (to_uint("PCI domain", a.get("domain")) != 0) refuse(std::string(what) + " PCI domain other than 0");
    unsigned bus = a.get("bus").empty() ? 0 : to_uint("PCI bus", a.get("bus"));
    unsigned slot = to_uint("PCI slot", a.get("slot").empty() ? "0" : a.get("slot"));
    unsigned fn = a.get("function").empty() ? 0 : to_uint("PCI function", a.get("function"));
    std::string s = ",bus=";
    if (bus == 0) {
      s += root_bus();
    } else {
      if (!pci_buses.count(bus))
        refuse(std::string(what) + " is on PCI bus " + hex(bus) + ", which no <controller type='pci'> provides");
      s += "pci." + std::to_string(bus);
    }
    s += ",addr=" + hex(slot);
    if (fn) s += "." + hex(fn);
    if (a.get("multifunction") == "on") s += ",multifunction=on";
    return s;
  }

  void common(std::string_view what, const device_common& c,
              std::initializer_list<std::string_view> allowed_elems = {}) {
    // <alias> and <address> are modelled; anything else unknown is refused.
    refuse_extras(what, c.extra_attrs, c.extra, allowed_elems);
  }

  std::string boot(const void* dev) {
    auto it = bootindex.find(dev);
    return it == bootindex.end() ? std::string() : ",bootindex=" + std::to_string(it->second);
  }

  // ------------------------------------------------------------------ top level
  void run() {
    if (d.type == "kvm") {
      if (!opt.kvm_available)
        refuse("domain type 'kvm' needs /dev/kvm, which is missing or not usable on this host; "
               "use <domain type='qemu'> for TCG emulation");
      kvm = true;
    } else if (d.type != "qemu") {
      refuse("domain type '" + d.type + "' is not supported by covirt's qemu driver (use 'qemu' or 'kvm')");
    }
    if (d.os.type != "hvm" && !d.os.type.empty()) refuse("OS type '" + d.os.type + "'");
    std::string arch = d.os.arch.empty() ? "x86_64" : d.os.arch;
    std::string def_emulator;
    if (arch == "x86_64") def_emulator = "qemu-system-x86_64";
    else if (arch == "i686") def_emulator = "qemu-system-i386";
    else refuse("architecture '" + arch + "' (covirt's qemu driver does x86_64 and i686)");
    std::string emulator = !opt.emulator.empty() ? opt.emulator
                           : !d.devices.emulator.empty() ? d.devices.emulator : def_emulator;
    add(checked("emulator", emulator));

    std::string machine = d.os.machine.empty() ? "pc" : d.os.machine;
    for (char c : machine)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_')
        refuse("machine type '" + checked("machine type", machine) + "'");
    if (machine == "q35" || machine.rfind("pc-q35", 0) == 0) q35 = true;
    else if (!(machine == "pc" || machine.rfind("pc-", 0) == 0))
      refuse("machine type '" + machine + "' (covirt's qemu driver does pc and q35)");

    check_unsupported();

    add("-name", "guest=" + esc("domain name", d.name) + ",debug-threads=on");
    if (opt.start_paused) add("-S");
    add("-msg", "timestamp=on");
    if (!opt.qmp_socket.empty()) {
      if (opt.qmp_socket.size() > 107) refuse("QMP socket path longer than 107 bytes");
      add("-chardev", "socket,id=charmonitor,path=" + esc("QMP socket path", opt.qmp_socket) +
                          ",server=on,wait=off");
      add("-mon", "chardev=charmonitor,id=monitor,mode=control");
    }
    if (!opt.pidfile.empty()) add("-pidfile", checked("pidfile", opt.pidfile));
    machine_args(machine);
    add("-accel", kvm ? "kvm" : "tcg");
    cpu_args();
    memory_args();
    smp_args();
    if (!d.uuid.empty()) add("-uuid", checked("uuid", d.uuid));
    add("-no-user-config");
    add("-nodefaults");
    clock_args();
    lifecycle_args();
    pm_args();
    os_args();

    controllers();
    assign_boot_order();
    disks();
    interfaces();
    chardevs();
    inputs();
    graphics();
    videos();
    misc_devices();
    for (auto& dv : devices) add("-device", std::move(dv));
    if (opt.incoming) add("-incoming", checked("incoming URI", *opt.incoming));
    qemu_commandline();
  }

  void check_unsupported() {
    const auto& dv = d.devices;
    if (!dv.hostdevs.empty()) refuse("<hostdev> is not supported by covirt's qemu driver");
    if (!dv.sounds.empty()) refuse("<sound model='" + dv.sounds[0].model + "'> is not supported by covirt's qemu driver");
    for (auto& e : dv.extra) refuse("<" + e.name + "> is not supported by covirt's qemu driver");
    for (auto& [k, v] : dv.extra_attrs) refuse("<devices> attribute '" + k + "'");
    for (auto& e : d.extra) {
      if (e.name == "qemu:commandline") continue;
      if (e.name == "seclabel" && attr(e.attributes, "type") == "none") continue;
      refuse("<" + e.name + "> is not supported by covirt's qemu driver");
    }
    for (auto& [k, v] : d.extra_attrs)
      if (k.rfind("xmlns", 0) != 0) refuse("<domain> attribute '" + k + "'");
    if (!d.bootloader.empty() || d.bootloader_args) refuse("<bootloader> (a Xen feature)");
    if (!d.vcpu_cpuset.empty()) refuse("<vcpu cpuset=...> (vCPU pinning) is not supported by covirt's qemu driver");
    if (d.vcpu_placement == "auto") refuse("<vcpu placement='auto'> (needs numad)");
    if (!d.on_lockfailure.empty()) refuse("<on_lockfailure> (no lock manager)");
    if (d.memory_kib == 0) refuse("a domain without <memory>");
  }

  void machine_args(const std::string& machine) {
    std::string m = machine + ",usb=off";
    m += d.memory_dump_core == "on" ? ",dump-guest-core=on" : ",dump-guest-core=off";
    bool acpi = false;
    if (d.features) {
      const auto& f = *d.features;
      refuse_extras("<features>", f.extra_attrs, f.extra);
      auto on = [](const feature_flag& x) { return x.state.empty() || x.state == "on"; };
      if (f.acpi) acpi = on(*f.acpi);
      if (f.apic && !on(*f.apic)) refuse("<features><apic state='off'/>");
      if (f.vmport) m += on(*f.vmport) ? ",vmport=on" : ",vmport=off";
      if (f.smm) m += on(*f.smm) ? ",smm=on" : ",smm=off";
      // <pae/> is what x86_64 guests have anyway.
      if (f.hap) refuse("<features><hap/> (a Xen feature)");
      if (f.viridian) refuse("<features><viridian/> (a Xen feature)");
      if (f.privnet) refuse("<features><privnet/>");
      if (f.kvm) refuse("<features><kvm/>");
      if (f.pmu) refuse("<features><pmu/>");
    }
    m += acpi ? ",acpi=on" : ",acpi=off";  // libvirt: no <acpi/> means no ACPI
    add("-machine", m);
  }

  void cpu_args() {
    if (!d.cpu) return;
    const auto& c = *d.cpu;
    refuse_extras("<cpu>", c.extra_attrs, c.extra);
    if (!c.vendor.empty() || !c.model_vendor_id.empty()) refuse("<cpu><vendor> / vendor_id");
    std::string model;
    if (c.mode == "host-passthrough") {
      if (!kvm) refuse("CPU mode 'host-passthrough' needs KVM (domain type 'kvm'); TCG cannot pass the host CPU through");
      model = "host";
    } else if (c.mode == "host-model") {
      model = kvm ? "host" : "max";
    } else if (c.mode == "maximum") {
      model = "max";
    } else if (c.mode.empty() || c.mode == "custom") {
      if (!c.model) {
        if (!c.features.empty()) refuse("<cpu> features without a <model>");
        return;
      }
      model = *c.model;
      for (char ch : model)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
          refuse("CPU model '" + checked("CPU model", model) + "'");
    } else {
      refuse("CPU mode '" + c.mode + "'");
    }
    for (auto& f : c.features) {
      bool on = f.policy.empty() || f.policy == "require" || f.policy == "force" || f.policy == "optional";
      if (!on && f.policy != "disable" && f.policy != "forbid") refuse("CPU feature policy '" + f.policy + "'");
      model += "," + esc("CPU feature", f.name) + (on ? "=on" : "=off");
    }
    add("-cpu", model);
  }

  void memory_args() {
    std::string m = "size=" + std::to_string(d.memory_kib) + "k";
    if (d.max_memory_kib) {
      m += ",slots=" + std::to_string(d.max_memory_slots.value_or(16));
      m += ",maxmem=" + std::to_string(*d.max_memory_kib) + "k";
    }
    add("-m", m);
  }

  void smp_args() {
    unsigned maxv = d.vcpus ? d.vcpus : 1;
    unsigned cur = d.vcpu_current.value_or(maxv);
    if (cur == 0 || cur > maxv) refuse("<vcpu current='" + std::to_string(cur) + "'> above the maximum");
    std::string s = std::to_string(cur);
    if (cur != maxv) s += ",maxcpus=" + std::to_string(maxv);
    if (d.cpu && d.cpu->topology && d.cpu->topology->sockets) {
      const auto& t = *d.cpu->topology;
      unsigned dies = t.dies ? t.dies : 1;
      if (t.sockets * dies * t.cores * t.threads != maxv)
        refuse("CPU topology (sockets*dies*cores*threads = " +
               std::to_string(t.sockets * dies * t.cores * t.threads) + ") does not match the " +
               std::to_string(maxv) + " vCPUs");
      s += ",sockets=" + std::to_string(t.sockets) + ",dies=" + std::to_string(dies) +
           ",cores=" + std::to_string(t.cores) + ",threads=" + std::to_string(t.threads);
    } else {
      s += ",sockets=" + std::to_string(maxv) + ",dies=1,cores=1,threads=1";
    }
    add("-smp", s);
  }

  void clock_args() {
    std::string rtc = "base=utc";
    std::string extra;
    if (d.clock) {
      const auto& c = *d.clock;
      refuse_extras("<clock>", c.extra_attrs, c.extra, {}, {"start"});
      if (c.offset.empty() || c.offset == "utc") {
        if (!c.adjustment.empty() && c.adjustment != "reset") refuse("<clock offset='utc' adjustment=...>");
      } else if (c.offset == "localtime") {
        rtc = "base=localtime";
      } else if (c.offset == "variable" || c.offset == "absolute") {
        std::time_t t = std::time(nullptr);
        bool local = c.basis == "localtime";
        if (c.offset == "absolute") {
          t = static_cast<std::time_t>(std::stoll(std::string(attr(c.extra_attrs, "start")).empty()
                                                      ? "0" : std::string(attr(c.extra_attrs, "start"))));
          local = false;
        } else if (!c.adjustment.empty()) {
          t += std::stoll(c.adjustment);
        }
        std::tm tm{};
        if (local) localtime_r(&t, &tm);
        else gmtime_r(&t, &tm);
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        rtc = std::string("base=") + buf;
      } else {
        refuse("<clock offset='" + c.offset + "'>");
      }
      for (auto& tm : c.timers) {
        refuse_extras("<timer name='" + tm.name + "'>", tm.extra_attrs, tm.children);
        if (!tm.mode.empty() || tm.frequency) refuse("<timer name='" + tm.name + "'> mode/frequency");
        if (tm.name == "rtc") {
          if (tm.present == "no") refuse("<timer name='rtc' present='no'>");
          if (tm.tickpolicy == "catchup") rtc += ",driftfix=slew";
          else if (!tm.tickpolicy.empty() && tm.tickpolicy != "delay")
            refuse("<timer name='rtc' tickpolicy='" + tm.tickpolicy + "'>");
          if (tm.track == "guest") rtc += ",clock=vm";
          else if (tm.track == "wall") rtc += ",clock=rt";
          else if (!tm.track.empty() && tm.track != "boot") refuse("<timer name='rtc' track='" + tm.track + "'>");
        } else if (tm.name == "pit") {
          if (tm.present == "no") refuse("<timer name='pit' present='no'>");
          // TCG's i8254 already delays lost ticks; the policy is KVM's in-kernel PIT's.
          if (kvm && !tm.tickpolicy.empty()) {
            if (tm.tickpolicy != "delay" && tm.tickpolicy != "discard")
              refuse("<timer name='pit' tickpolicy='" + tm.tickpolicy + "'>");
            extra = "kvm-pit.lost_tick_policy=" + tm.tickpolicy;
          }
        } else if (tm.name == "hpet") {
          if (tm.present == "no") add("-no-hpet");
        } else {
          refuse("<timer name='" + tm.name + "'>");
        }
      }
    }
    add("-rtc", rtc);
    if (!extra.empty()) add("-global", extra);
  }

  void lifecycle_args() {
    // The manager acts on SHUTDOWN per <on_poweroff>; QEMU must not exit by itself.
    add("-no-shutdown");
    const auto& r = d.on_reboot;
    if (r == "destroy") add("-no-reboot");
    else if (!r.empty() && r != "restart") refuse("<on_reboot>" + r + "</on_reboot>");
    const auto& p = d.on_poweroff;
    if (!p.empty() && p != "destroy" && p != "restart" && p != "preserve")
      refuse("<on_poweroff>" + p + "</on_poweroff>");
    const auto& c = d.on_crash;
    if (c == "preserve" || c == "coredump-destroy" || c == "coredump-restart") add("-action", "panic=pause");
    else if (!c.empty() && c != "destroy" && c != "restart") refuse("<on_crash>" + c + "</on_crash>");
  }

  void pm_args() {
    if (!d.pm) return;
    std::string dev = q35 ? "ICH9-LPC" : "PIIX4_PM";
    auto one = [&](const std::string& v, const char* what) {
      if (v == "no") add("-global", dev + "." + what + "=1");
      else if (v == "yes") add("-global", dev + "." + what + "=0");
    };
    one(d.pm->suspend_to_mem, "disable_s3");
    one(d.pm->suspend_to_disk, "disable_s4");
  }

  void os_args() {
    const auto& o = d.os;
    refuse_extras("<os>", o.extra_attrs, o.extra);
    if (!o.firmware.empty()) refuse("<os firmware='" + o.firmware + "'> (firmware auto-selection)");
    if (o.nvram || !o.nvram_template.empty()) refuse("<nvram> (UEFI variables)");
    if (o.loader) {
      const auto& l = *o.loader;
      if (!l.type.empty() && l.type != "rom") refuse("<loader type='" + l.type + "'> (pflash firmware)");
      if (l.secure == "yes") refuse("<loader secure='yes'>");
      refuse_extras("<loader>", l.extra_attrs, {});
      if (!l.path.empty()) add("-bios", checked("loader path", l.path));
    }
    if (!o.init.empty()) refuse("<init> (a container feature)");
    if (!o.smbios_mode.empty() && o.smbios_mode != "emulate") refuse("<smbios mode='" + o.smbios_mode + "'>");
    if (o.bios_useserial == "yes") refuse("<bios useserial='yes'> (serial graphics adapter)");
    if (!o.kernel.empty()) add("-kernel", checked("kernel path", o.kernel));
    else if (!o.initrd.empty() || !o.cmdline.empty() || !o.dtb.empty())
      refuse("<initrd>/<cmdline>/<dtb> without <kernel>");
    if (!o.initrd.empty()) {
      // -initrd is split on ',' for multiboot module lists; refuse rather than guess.
      if (o.initrd.find(',') != std::string::npos) refuse("initrd path '" + o.initrd + "' with a ','");
      add("-initrd", checked("initrd path", o.initrd));
    }
    if (!o.cmdline.empty()) add("-append", checked("kernel command line", o.cmdline));
    if (!o.dtb.empty()) add("-dtb", checked("dtb path", o.dtb));
    std::string b = "strict=on";
    if (o.bootmenu_enable == "yes") {
      b = "menu=on," + b;
      if (!o.bootmenu_timeout.empty())
        b += ",splash-time=" + std::to_string(to_uint("boot menu timeout", o.bootmenu_timeout));
    }
    if (!o.bios_reboot_timeout.empty())
      b += ",reboot-timeout=" + std::to_string(static_cast<int>(std::stol(o.bios_reboot_timeout)));
    add("-boot", b);
  }

  // ------------------------------------------------------------------ controllers
  std::string default_usb_model() const { return q35 ? "qemu-xhci" : "piix3-uhci"; }

  void emit_usb(const std::string& model, unsigned index, const std::string& ports, const std::string& addr) {
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

  void controllers() {
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

  void need_usb(std::string_view what) {
    if (usb_emitted) return;
    if (usb_none) refuse(std::string(what) + " needs a USB controller, and <controller type='usb' model='none'/> removes it");
    emit_usb(default_usb_model(), 0, {}, {});
  }

  std::string need_virtio_serial(const device_common& c, std::string_view what) {
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

  // ------------------------------------------------------------------ boot order
  void assign_boot_order() {
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

  // ------------------------------------------------------------------ disks
  static unsigned disk_index(std::string_view dev) {
    auto idx = disk_target_index(dev);
    if (!idx) refuse("disk target '" + std::string(dev) + "' (a prefix such as vd, sd, hd and letters a-z)");
    return *idx;
  }

  void disks() {
    std::size_t n = d.devices.disks.size();
    for (std::size_t i = 0; i < n; ++i) disk(d.devices.disks[i], static_cast<unsigned>(n - i));
  }

  void disk(const disk_def& x, unsigned node) {
    std::string tgt = checked("disk target", x.target_dev);
    std::string what = "disk '" + tgt + "'";
    common(what, x, {"backingStore"});
    if (auto* bs = child(x.extra, "backingStore"); bs && (!bs->children.empty() || !bs->attributes.empty()))
      refuse(what + " <backingStore> with content (backing chains come from the image)");
    if (!x.target_extra_attrs.empty()) refuse(what + " <target> attribute '" + x.target_extra_attrs[0].first + "'");
    if (x.device != "disk" && x.device != "cdrom") refuse("disk device '" + x.device + "'");
    bool cdrom = x.device == "cdrom";
    if (x.type != "file" && x.type != "block") refuse("disk type '" + x.type + "'");
    if (x.transient) refuse(what + " <transient/>");
    if (!x.target_tray.empty() && x.target_tray != "closed") refuse(what + " tray='" + x.target_tray + "'");
    std::string bus = x.target_bus;
    if (bus.empty()) {
      auto p = tgt.substr(0, 2);
      bus = p == "vd" ? "virtio" : p == "sd" ? "scsi" : p == "hd" ? "ide" : p == "fd" ? "fdc" : "xen";
    }
    if (bus != "virtio" && bus != "ide" && bus != "sata" && bus != "scsi") refuse("disk bus '" + bus + "'");
    unsigned idx = disk_index(tgt);

    std::string path;
    if (x.source) {
      refuse_extras(what + " <source>", x.source->extra_attrs, x.source->extra, {}, {"index"});
      if (!x.source->startup_policy.empty()) refuse(what + " startupPolicy");
      path = x.type == "file" ? x.source->file : x.source->dev;
    }
    std::string drive;
    if (path.empty()) {
      if (!cdrom) refuse(what + " has no <source> (only a CD-ROM may be empty)");
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
      s["driver"] = x.type == "block" ? "host_device" : "file";
      s["filename"] = checked(what + " source path", path);
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

  // ------------------------------------------------------------------ interfaces
  std::string mac_for(const interface_def& n, unsigned i) {
    if (!n.mac.empty()) return checked("MAC address", n.mac);
    // Stable per domain and position; a driver normally assigns MACs at define time.
    auto h = std::hash<std::string>{}(d.uuid + "/" + d.name + "/" + std::to_string(i));
    char buf[32];
    std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", unsigned(h & 0xff), unsigned((h >> 8) & 0xff),
                  unsigned((h >> 16) & 0xff));
    return buf;
  }

  void interfaces() {
    unsigned i = 0;
    for (auto& n : d.devices.interfaces) {
      std::string what = "interface " + std::to_string(i) + " (type '" + n.type + "')";
      common(what, n);
      std::string id = std::to_string(i), netdev;
      if (n.source) refuse_extras(what + " <source>", n.source->extra_attrs, n.source->extra);
      if (!n.script_path.empty()) refuse(what + " <script>");
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
        netdev += ",script=no,downscript=no";
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

  // ------------------------------------------------------------------ character devices
  std::string chardev(const chardev_def& c, const std::string& id, const std::string& what) {
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

  void serial(const chardev_def& c, unsigned i, const std::string& kind) {
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

  void chardevs() {
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

  // ------------------------------------------------------------------ input, graphics, video
  void inputs() {
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

  void graphics() {
    const auto& gs = d.devices.graphics;
    if (gs.empty()) {
      add("-display", "none");
      return;
    }
    if (gs.size() > 1) refuse("more than one <graphics>");
    const auto& g = gs[0];
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

  void videos() {
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

  void misc_devices() {
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

  void qemu_commandline() {
    for (auto& e : d.extra) {
      if (e.name != "qemu:commandline") continue;
      for (auto& a : e.children) {
        if (a.name != "qemu:arg") refuse("<qemu:commandline> element <" + a.name + "> (the argv carries no environment)");
        add(checked("<qemu:arg>", attr(a.attributes, "value")));
      }
    }
  }
};

}  // namespace

result<std::vector<std::string>> build_argv(const domain_config& d, const argv_options& opt, diagnostics& diag) {
  builder b(d, opt);
  try {
    b.run();
  } catch (refusal& r) {
    // The code's own text is libvirt's "unsupported configuration"; diag holds the specifics.
    return fail(diag, errc::config_unsupported,
                r.message + (r.message.find("covirt's qemu driver") == std::string::npos
                                 ? " (domain '" + d.name + "')" : ""));
  } catch (std::exception& e) {  // std::stoll and friends on malformed numbers
    return fail(diag, errc::config_unsupported, "a malformed number in domain '" + d.name + "': " + e.what());
  }
  return std::move(b.out);
}

}  // namespace covirt::qemu
