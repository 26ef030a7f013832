// covirt: domain_config -> QEMU 7.2 command line, in libvirt 9.0's style.
//
// Every value a user wrote goes through checked() (no control characters) and, inside a
// comma-separated option, through esc() (',' doubled). Block nodes use -blockdev's JSON form,
// which needs no comma escaping. Anything the driver cannot honour throws `refusal`, which
// build_argv() turns into errc::config_unsupported with a message naming the element.
//
// The builder's parts are in argv_builder.hpp (declarations and checks), here (the machine, CPU,
// memory, clock, boot and lifecycle), argv_disks.cpp and argv_devices.cpp.
#include "argv_builder.hpp"

#include "../detail/shell_quote.hpp"

#include <cstdint>
#include <ctime>

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
    out += covirt::detail::shell_quote(a);
  }
  return out;
}

namespace argv_detail {

std::string builder::pci_addr(std::string_view what, const device_common& c,
                              std::initializer_list<std::string_view> also) {
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

void builder::common(std::string_view what, const device_common& c,
                     std::initializer_list<std::string_view> allowed_elems) {
  // <alias> and <address> are modelled; anything else unknown is refused.
  refuse_extras(what, c.extra_attrs, c.extra, allowed_elems);
}

std::string builder::boot(const void* dev) {
  auto it = bootindex.find(dev);
  return it == bootindex.end() ? std::string() : ",bootindex=" + std::to_string(it->second);
}

void builder::run() {
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
    if (opt.qmp_fd >= 0)
      add("-chardev", "socket,id=charmonitor,fd=" + std::to_string(opt.qmp_fd) + ",server=on,wait=off");
    else
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
  sounds();
  hostdevs();
  misc_devices();
  for (auto& dv : devices) add("-device", std::move(dv));
  if (opt.incoming) add("-incoming", checked("incoming URI", *opt.incoming));
  qemu_commandline();
}

void builder::check_unsupported() {
  const auto& dv = d.devices;
  for (auto& e : dv.extra)
    if (e.name != "audio") refuse("<" + e.name + "> is not supported by covirt's qemu driver");
  for (auto& [k, v] : dv.extra_attrs) refuse("<devices> attribute '" + k + "'");
  for (auto& e : d.extra) {
    if (e.name == "qemu:commandline") continue;
    // DAC labels are the driver's (security.cpp: who QEMU runs as, whose the images are).
    if (e.name == "seclabel" && (attr(e.attributes, "type") == "none" || attr(e.attributes, "model").empty() ||
                                 attr(e.attributes, "model") == "dac"))
      continue;
    refuse("<" + e.name + "> is not supported by covirt's qemu driver");
  }
  for (auto& [k, v] : d.extra_attrs)
    if (k.rfind("xmlns", 0) != 0) refuse("<domain> attribute '" + k + "'");
  if (!d.bootloader.empty() || d.bootloader_args) refuse("<bootloader> (a Xen feature)");
  if (d.vcpu_placement == "auto") refuse("<vcpu placement='auto'> (needs numad)");
  if (!d.on_lockfailure.empty()) refuse("<on_lockfailure> (no lock manager)");
  if (d.memory_kib == 0) refuse("a domain without <memory>");
}

void builder::machine_args(const std::string& machine) {
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
  if (d.memory_backing && d.memory_backing->nosharepages) m += ",mem-merge=off";
  if (memory_backend()) m += ",memory-backend=pc.ram";
  for (auto& snd : d.devices.sounds)
    if (snd.model == "pcspk") {
      m += ",pcspk-audiodev=audio1";
      break;
    }
  add("-machine", m);
}

void builder::cpu_args() {
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

void builder::memory_args() {
  std::string m = "size=" + std::to_string(d.memory_kib) + "k";
  if (d.max_memory_kib) {
    m += ",slots=" + std::to_string(d.max_memory_slots.value_or(16));
    m += ",maxmem=" + std::to_string(*d.max_memory_kib) + "k";
  }
  add("-m", m);
  if (d.memory_backing && d.memory_backing->locked) add("-overcommit", "mem-lock=on");
  if (!memory_backend()) return;
  // The guest's RAM as a memory backend object, as libvirt gives it when <memoryBacking> or
  // <numatune> ask for more than plain anonymous memory.
  const auto* mb = d.memory_backing ? &*d.memory_backing : nullptr;
  std::string o;
  if (mb && mb->hugepages) {
    if (opt.hugepage_dir.empty()) refuse("<hugepages> without a hugetlbfs mount (the driver finds one)");
    if (mb->source_type == "memfd") o = "memory-backend-memfd,id=pc.ram,hugetlb=on";
    else o = "memory-backend-file,id=pc.ram,mem-path=" + esc("hugetlbfs path", opt.hugepage_dir);
    o += ",prealloc=on";  // hugepages are reserved up front (libvirt does the same)
  } else if (mb && mb->source_type == "memfd") {
    o = "memory-backend-memfd,id=pc.ram";
  } else if (mb && mb->source_type == "file") {
    refuse("<memoryBacking><source type='file'/> (a memory file under the driver's memory folder)");
  } else {
    o = "memory-backend-ram,id=pc.ram";
  }
  if (mb && mb->access_mode == "shared") o += ",share=on";
  else if (mb && mb->access_mode == "private") o += ",share=off";
  else if (mb && !mb->access_mode.empty()) refuse("<access mode='" + mb->access_mode + "'>");
  if (mb && mb->allocation_mode == "immediate" && !mb->hugepages) o += ",prealloc=on";
  else if (mb && !mb->allocation_mode.empty() && mb->allocation_mode != "ondemand" && mb->allocation_mode != "immediate")
    refuse("<allocation mode='" + mb->allocation_mode + "'>");
  if (mb && mb->allocation_threads) o += ",prealloc-threads=" + std::to_string(*mb->allocation_threads);
  if (mb && mb->discard) {
    if (o.rfind("memory-backend-file", 0) != 0) refuse("<memoryBacking><discard/> without a file-backed memory");
    o += ",discard-data=on";
  }
  o += ",size=" + std::to_string(d.memory_kib) + "k";
  if (d.numatune && d.numatune->has_memory && !d.numatune->nodeset.empty()) {
    const std::string& mode = d.numatune->mode;
    std::string policy = mode.empty() || mode == "strict" ? "bind" : mode == "preferred" ? "preferred"
                         : mode == "interleave"                ? "interleave"
                                                               : "";
    if (mode == "restrictive") policy.clear();  // libvirt: the cgroup's cpuset.mems alone
    else if (policy.empty()) refuse("<numatune><memory mode='" + mode + "'>");
    if (!policy.empty()) {
      // QEMU's list syntax is "0-1:3" (a ':' between ranges; ',' separates options).
      std::string nodes = d.numatune->nodeset;
      std::replace(nodes.begin(), nodes.end(), ',', ':');
      o += ",host-nodes=" + nodes + ",policy=" + policy;
    }
  }
  add("-object", o);
}

bool builder::memory_backend() const {
  const auto* mb = d.memory_backing ? &*d.memory_backing : nullptr;
  bool numa = d.numatune && d.numatune->has_memory && !d.numatune->nodeset.empty() &&
              d.numatune->mode != "restrictive";
  return numa || (mb && (mb->hugepages || !mb->source_type.empty() || !mb->access_mode.empty() ||
                         mb->allocation_mode == "immediate" || mb->allocation_threads || mb->discard));
}

void builder::smp_args() {
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

void builder::clock_args() {
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

void builder::lifecycle_args() {
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

void builder::pm_args() {
  if (!d.pm) return;
  std::string dev = q35 ? "ICH9-LPC" : "PIIX4_PM";
  auto one = [&](const std::string& v, const char* what) {
    if (v == "no") add("-global", dev + "." + what + "=1");
    else if (v == "yes") add("-global", dev + "." + what + "=0");
  };
  one(d.pm->suspend_to_mem, "disable_s3");
  one(d.pm->suspend_to_disk, "disable_s4");
}

void builder::os_args() {
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

void builder::qemu_commandline() {
  for (auto& e : d.extra) {
    if (e.name != "qemu:commandline") continue;
    for (auto& a : e.children) {
      if (a.name != "qemu:arg") refuse("<qemu:commandline> element <" + a.name + "> (the argv carries no environment)");
      add(checked("<qemu:arg>", attr(a.attributes, "value")));
    }
  }
}

}  // namespace argv_detail

using argv_detail::builder;
using argv_detail::refusal;

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
