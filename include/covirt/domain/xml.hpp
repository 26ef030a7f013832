// covirt: typed models of libvirt's domain, network and capabilities XML.
//
// Parsing uses pugixml (in src/ only); formatting writes libvirt's canonical
// layout (element and attribute order, 2-space indent, single quotes) straight
// into a std::string. Anything the model does not know (elements, attributes)
// is kept and written back, never dropped.
#pragma once

#include <covirt/error.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace covirt {

/// Ordered attribute list (name, value), values unescaped.
using xml_attributes = std::vector<std::pair<std::string, std::string>>;

/// A generic element kept verbatim (unknown elements, <metadata> content).
/// Text is the concatenation of the element's direct character data.
struct xml_element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string text;
  std::vector<xml_element> children;
  bool operator==(const xml_element&) const = default;
};

/// <address type='pci' domain='0x0000' .../>: the type plus the other attributes in
/// libvirt's order (PCI values normalised to libvirt's hex widths at parse time).
struct device_address {
  std::string type;
  xml_attributes attrs;
  bool operator==(const device_address&) const = default;
  /// The value of an attribute, or "" if absent.
  std::string_view get(std::string_view key) const noexcept;
  void set(std::string_view key, std::string value);
};

/// Things every device carries: <alias name=>, <address>, <boot order=>, unknown children.
struct device_common {
  std::string alias;
  std::optional<device_address> address;
  xml_attributes extra_attrs;      // unknown attributes of the device element
  std::vector<xml_element> extra;  // unknown child elements
  bool operator==(const device_common&) const = default;
};

struct disk_host {
  std::string name, port, transport, socket;
  xml_attributes extra_attrs;
  bool operator==(const disk_host&) const = default;
};

struct disk_def : device_common {
  std::string type = "file";  // file block network volume dir nvme vhostuser
  std::string device = "disk";  // disk cdrom floppy lun
  struct driver_t {
    std::string name, type, cache, io, discard;
    xml_attributes extra_attrs;
    bool operator==(const driver_t&) const = default;
  };
  std::optional<driver_t> driver;
  struct source_t {
    std::string file, dev, dir, protocol, name, pool, volume, mode, startup_policy;
    std::vector<disk_host> hosts;
    xml_attributes extra_attrs;
    std::vector<xml_element> extra;
    bool operator==(const source_t&) const = default;
  };
  std::optional<source_t> source;
  std::string target_dev, target_bus, target_tray;
  xml_attributes target_extra_attrs;
  bool readonly = false, shareable = false, transient = false;
  std::optional<unsigned> boot_order;
  std::string serial, wwn;
  bool operator==(const disk_def&) const = default;
};

struct controller_def : device_common {
  std::string type;                // ide scsi sata fdc usb pci virtio-serial ccid xenbus ...
  std::optional<unsigned> index;   // libvirt always writes index
  std::string model;
  std::string ports, vectors;
  std::optional<xml_element> driver;  // <driver .../> verbatim
  bool operator==(const controller_def&) const = default;
};

struct interface_def : device_common {
  std::string type = "network";  // network bridge user ethernet direct hostdev vhostuser ...
  std::string mac;               // lowercase aa:bb:cc:dd:ee:ff
  struct source_t {
    std::string network, bridge, dev, mode, portgroup, path, type;
    xml_attributes extra_attrs;
    std::vector<xml_element> extra;
    bool operator==(const source_t&) const = default;
  };
  std::optional<source_t> source;
  std::string script_path;
  std::optional<std::string> target_dev;
  xml_attributes target_extra_attrs;
  std::string model_type;
  std::optional<xml_element> driver;  // <driver name=... queues=.../> verbatim
  std::optional<unsigned> boot_order;
  std::string link_state;
  std::optional<unsigned> mtu;
  bool operator==(const interface_def&) const = default;
};

/// serial / parallel / console / channel
struct chardev_def : device_common {
  std::string type = "pty";  // pty file unix tcp udp null stdio pipe vc dev spicevmc ...
  struct source_t {
    std::string mode, path, host, service, channel, append;
    xml_attributes extra_attrs;
    bool operator==(const source_t&) const = default;
  };
  std::vector<source_t> sources;  // udp has two (bind + connect)
  std::string protocol_type;      // <protocol type='raw|telnet'/>
  bool has_target = false;
  std::string target_type, target_address, target_name, target_state;
  std::optional<unsigned> target_port;
  xml_attributes target_extra_attrs;
  std::vector<xml_element> target_children;  // e.g. <model name='isa-serial'/>
  std::string log_file, log_append;
  bool operator==(const chardev_def&) const = default;
};

struct input_def : device_common {
  std::string type, bus;
  bool operator==(const input_def&) const = default;
};

struct graphics_listen {
  std::string type, address, network, socket;
  xml_attributes extra_attrs;
  bool operator==(const graphics_listen&) const = default;
};

struct graphics_def {
  std::string type;  // vnc spice sdl rdp desktop egl-headless dbus
  std::optional<int> port, tls_port, websocket;
  std::string autoport, socket, display, xauth, fullscreen, listen, keymap, passwd;
  xml_attributes extra_attrs;
  std::vector<graphics_listen> listens;
  std::vector<xml_element> extra;
  bool operator==(const graphics_def&) const = default;
};

struct video_def : device_common {
  std::string model_type;  // vga cirrus qxl virtio vmvga xen bochs ramfb none
  std::optional<unsigned> ram, vram, vram64, vgamem, heads;
  bool primary = false;
  std::optional<xml_element> acceleration;
  xml_attributes model_extra_attrs;
  std::optional<xml_element> driver;
  bool operator==(const video_def&) const = default;
};

struct sound_def : device_common {
  std::string model;
  bool operator==(const sound_def&) const = default;
};

struct hostdev_def : device_common {
  std::string mode = "subsystem", type = "pci", managed;
  std::optional<device_address> source_address;  // <source><address domain bus slot function/></source> (type empty)
  std::vector<xml_element> source_extra;          // other <source> children (vendor, product, adapter...)
  xml_attributes source_extra_attrs;
  std::optional<unsigned> boot_order;
  bool operator==(const hostdev_def&) const = default;
};

struct memballoon_def : device_common {
  std::string model = "virtio", autodeflate;
  std::optional<unsigned> stats_period;
  bool operator==(const memballoon_def&) const = default;
};

struct rng_def : device_common {
  std::string model = "virtio";
  std::string backend_model;  // random egd builtin
  std::string backend_text;   // /dev/urandom
  xml_attributes backend_extra_attrs;
  std::vector<xml_element> backend_children;
  std::optional<xml_element> rate;
  bool operator==(const rng_def&) const = default;
};

struct watchdog_def : device_common {
  std::string model, action;
  bool operator==(const watchdog_def&) const = default;
};

struct panic_def : device_common {
  std::string model;
  bool operator==(const panic_def&) const = default;
};

struct devices_t {
  std::string emulator;
  std::vector<disk_def> disks;
  std::vector<controller_def> controllers;
  std::vector<interface_def> interfaces;
  std::vector<chardev_def> serials, parallels, consoles, channels;
  std::vector<input_def> inputs;
  std::vector<graphics_def> graphics;
  std::vector<sound_def> sounds;
  std::vector<video_def> videos;
  std::vector<hostdev_def> hostdevs;
  std::vector<watchdog_def> watchdogs;
  std::optional<memballoon_def> memballoon;
  std::vector<rng_def> rngs;
  std::vector<panic_def> panics;
  xml_attributes extra_attrs;  // unknown attributes of <devices>
  /// Devices not modelled (filesystem, tpm, redirdev, smartcard, hub, shmem, ...),
  /// kept verbatim; written at libvirt's position for their element name.
  std::vector<xml_element> extra;
  bool operator==(const devices_t&) const = default;
};

/// A simple on/off feature element: <hap state='on'/>, <acpi/>; children kept (kvm: <hidden/>).
struct feature_flag {
  std::string state;
  xml_attributes extra_attrs;
  std::vector<xml_element> children;
  bool operator==(const feature_flag&) const = default;
};

struct features_t {
  std::optional<feature_flag> acpi, apic, pae, hap, viridian, privnet, kvm, pmu, vmport, smm;
  std::vector<xml_element> extra;  // hyperv, gic, ioapic, ... verbatim
  xml_attributes extra_attrs;      // unknown attributes of <features>
  bool operator==(const features_t&) const = default;
};

struct clock_timer {
  std::string name, present, tickpolicy, track, mode;
  std::optional<unsigned long long> frequency;
  xml_attributes extra_attrs;
  std::vector<xml_element> children;  // <catchup .../>
  bool operator==(const clock_timer&) const = default;
};

struct clock_def {
  std::string offset;  // utc localtime timezone variable absolute
  std::string adjustment, timezone, basis;
  xml_attributes extra_attrs;
  std::vector<clock_timer> timers;
  std::vector<xml_element> extra;
  bool operator==(const clock_def&) const = default;
};

struct cpu_feature {
  std::string policy, name;
  bool operator==(const cpu_feature&) const = default;
};

struct cpu_def {
  std::string mode, match, check, migratable;
  std::optional<std::string> model;  // <model>text</model>
  std::string model_fallback, model_vendor_id;
  std::string vendor;
  struct topology_t {
    unsigned sockets = 0, dies = 0, cores = 0, threads = 0;  // dies 0 = not given
    bool operator==(const topology_t&) const = default;
  };
  std::optional<topology_t> topology;
  std::vector<cpu_feature> features;
  xml_attributes extra_attrs;
  std::vector<xml_element> extra;  // cache, numa, maxphysaddr ...
  bool operator==(const cpu_def&) const = default;
};

/// <cputune>: the CFS bandwidth of the whole guest, of its vCPU threads, emulator and I/O
/// threads, and which host CPUs they may run on (cpusets normalised as libvirt writes them).
struct cputune_def {
  std::optional<unsigned long long> shares, global_period, period, emulator_period, iothread_period;
  std::optional<long long> global_quota, quota, emulator_quota, iothread_quota;
  struct vcpupin_t {
    unsigned vcpu = 0;
    std::string cpuset;
    bool operator==(const vcpupin_t&) const = default;
  };
  std::vector<vcpupin_t> vcpupins;
  std::optional<std::string> emulatorpin;  // its cpuset
  std::vector<xml_element> extra;          // iothreadpin, vcpusched, emulatorsched, cachetune, memorytune ...
  bool operator==(const cputune_def&) const = default;
};

/// <memtune>, in KiB.
struct memtune_def {
  std::optional<unsigned long long> hard_limit_kib, soft_limit_kib, min_guarantee_kib, swap_hard_limit_kib;
  bool operator==(const memtune_def&) const = default;
};

/// <blkiotune>: the guest's I/O weight and per-device weights and throttles.
struct blkiotune_def {
  std::optional<unsigned> weight;
  struct device_t {
    std::string path;
    std::optional<unsigned> weight;
    std::optional<unsigned long long> read_iops_sec, write_iops_sec, read_bytes_sec, write_bytes_sec;
    bool operator==(const device_t&) const = default;
  };
  std::vector<device_t> devices;
  bool operator==(const blkiotune_def&) const = default;
};

/// <numatune>: where the guest's memory comes from.
struct numatune_def {
  bool has_memory = false;   // <memory> given
  std::string mode;          // strict interleave preferred restrictive ("" read as strict, written as strict)
  std::string nodeset;       // normalised ("0-3,5"); empty with placement auto
  std::string placement;     // "static" / "auto" / "" (static when a nodeset is given)
  std::vector<xml_element> memnodes;  // <memnode cellid= mode= nodeset=/> verbatim
  bool operator==(const numatune_def&) const = default;
};

/// <memoryBacking>.
struct memory_backing_def {
  bool hugepages = false;  // <hugepages> given (with or without pages)
  struct page_t {
    unsigned long long size_kib = 0;
    std::string nodeset;
    bool operator==(const page_t&) const = default;
  };
  std::vector<page_t> pages;
  bool nosharepages = false, locked = false, discard = false;
  std::string source_type;      // file anonymous memfd
  std::string access_mode;      // shared private
  std::string allocation_mode;  // immediate ondemand
  std::optional<unsigned> allocation_threads;
  bool operator==(const memory_backing_def&) const = default;
};

struct domain_config {
  std::string type;                 // <domain type='test|kvm|qemu|xen'>
  std::string name, uuid;           // uuid canonical lowercase 8-4-4-4-12; empty = none given
  std::optional<std::string> title, description;
  std::optional<std::vector<xml_element>> metadata;  // kept verbatim
  unsigned long long memory_kib = 0;                 // <memory>, in KiB
  unsigned long long current_memory_kib = 0;         // <currentMemory>, 0 = not given
  std::optional<unsigned long long> max_memory_kib;  // <maxMemory>
  std::optional<unsigned> max_memory_slots;
  std::string memory_dump_core;                      // <memory dumpCore=>
  unsigned vcpus = 0;                                // <vcpu> value (maximum)
  std::optional<unsigned> vcpu_current;              // <vcpu current=>
  std::string vcpu_placement;                        // "static" / "auto" / ""
  std::string vcpu_cpuset;                           // normalised ("0-3,5")
  std::optional<blkiotune_def> blkiotune;
  std::optional<memtune_def> memtune;
  std::optional<memory_backing_def> memory_backing;
  std::optional<cputune_def> cputune;
  std::optional<numatune_def> numatune;
  std::string bootloader;
  std::optional<std::string> bootloader_args;
  struct os_t {
    std::string type, arch, machine;  // <type arch= machine=>hvm</type>
    std::string firmware;             // <os firmware='efi'>
    struct loader_t {
      std::string path, readonly, secure, type;
      xml_attributes extra_attrs;
      bool operator==(const loader_t&) const = default;
    };
    std::optional<loader_t> loader;
    std::optional<std::string> nvram;
    std::string nvram_template;
    std::string kernel, initrd, cmdline, dtb, init;
    std::vector<std::string> boot_devs;  // hd cdrom fd network, in order
    std::string bootmenu_enable, bootmenu_timeout;
    std::string smbios_mode;
    std::string bios_useserial, bios_reboot_timeout;
    xml_attributes extra_attrs;
    std::vector<xml_element> extra;  // initarg, acpi, firmware feature lists ...
    bool operator==(const os_t&) const = default;
  } os;
  std::optional<features_t> features;
  std::optional<cpu_def> cpu;
  std::optional<clock_def> clock;
  std::string on_poweroff, on_reboot, on_crash, on_lockfailure;
  struct pm_t {
    std::string suspend_to_mem, suspend_to_disk;  // "yes" / "no" / ""
    bool operator==(const pm_t&) const = default;
  };
  std::optional<pm_t> pm;
  devices_t devices;
  bool has_devices = false;     // <devices> was present (libvirt always writes it)
  xml_attributes extra_attrs;   // unknown attributes of <domain> (xmlns:qemu ...)
  std::vector<xml_element> extra;  // unknown child elements of <domain>, written back
  bool operator==(const domain_config&) const = default;
};

/// Parses a domain document. Limits: 10 MiB, nesting depth 256, no DOCTYPE.
result<domain_config> parse_domain_xml(std::string_view xml, diagnostics& diag);

struct domain_format_options {
  int id = -1;         // >= 0: write id='N' on <domain> (running)
  bool secure = true;  // false: omit secrets (graphics passwd), like virsh without --security-info
};
std::string format_domain_xml(const domain_config& d, const domain_format_options& opt = {});

/// One device as virDomainAttachDevice takes it: a <disk> or an <interface> element.
using device_def = std::variant<disk_def, interface_def>;
result<device_def> parse_device_xml(std::string_view xml, diagnostics& diag);


/// Parses a memory value with libvirt's unit rules into KiB (rounded up).
/// Unit "" means KiB. Errors name the unit or value.
result<unsigned long long> parse_memory_kib(std::string_view value, std::string_view unit,
                                            diagnostics& diag);
/// libvirt's bitmap syntax for CPU and NUMA node lists ("0-3,^2,8", virBitmapParse): the
/// members, ascending. Each must be below `limit`. Errors name the text.
result<std::vector<unsigned>> parse_bitmap(std::string_view text, unsigned limit, diagnostics& diag);
/// The members as libvirt writes them (virBitmapFormat): "0-3,5"; "" for none.
std::string format_bitmap(const std::vector<unsigned>& members);
/// Parses a uuid with or without dashes (libvirt rules); returns canonical lowercase form.
result<std::string> parse_uuid(std::string_view text, diagnostics& diag);
/// A random version-4 uuid, canonical form.
std::string generate_uuid();
/// virDiskNameToIndex: "sda" -> 0, "hdc" -> 2, "vdaa" -> 26; -1 if not a disk name.
int disk_name_to_index(std::string_view name);
/// The bus a target dev's prefix implies ("vd" virtio, "sd" scsi, "hd" ide, ...), as libvirt.
std::string bus_from_dev(std::string_view dev);
/// libvirt's MAC for an interface without one: QEMU's OUI 52:54:00 and three random bytes.
std::string random_mac();
/// Checks a domain or network name like libvirt does (non-empty, no '/', ...).
result<void> check_object_name(std::string_view what, std::string_view name, diagnostics& diag);

// ---------------------------------------------------------------- network

struct network_dhcp_host {
  std::string mac, id, name, ip;
  xml_attributes extra_attrs;
  bool operator==(const network_dhcp_host&) const = default;
};

struct network_ip {
  std::string address, netmask, family, localptr;
  std::optional<unsigned> prefix;
  struct range_t {
    std::string start, end;
    xml_attributes extra_attrs;
    std::vector<xml_element> children;
    bool operator==(const range_t&) const = default;
  };
  bool has_dhcp = false;
  std::vector<range_t> dhcp_ranges;
  std::vector<network_dhcp_host> dhcp_hosts;
  std::vector<xml_element> dhcp_extra;  // <bootp>
  std::string tftp_root;
  xml_attributes extra_attrs;
  std::vector<xml_element> extra;
  bool operator==(const network_ip&) const = default;
};

struct network_config {
  std::string name, uuid;
  std::string forward_mode;  // "" = isolated; nat route open bridge passthrough private vepa hostdev
  std::string forward_dev;
  std::optional<std::pair<unsigned, unsigned>> nat_ports;  // <nat><port start end/></nat>
  std::vector<xml_element> forward_extra;  // <interface dev=>, <pf>, <nat><address/> ...
  xml_attributes forward_extra_attrs;
  std::string bridge_name, bridge_stp, bridge_delay;
  xml_attributes bridge_extra_attrs;
  bool has_bridge = false;
  std::optional<unsigned> mtu;
  std::string mac;
  std::string domain_name, domain_local;
  std::optional<xml_element> dns;  // verbatim
  std::vector<network_ip> ips;
  xml_attributes extra_attrs;      // connections=, ipv6=, trustGuestRxFilters= ...
  std::vector<xml_element> extra;  // unknown children (bandwidth, portgroup, route ...)
  bool operator==(const network_config&) const = default;
};

result<network_config> parse_network_xml(std::string_view xml, diagnostics& diag);
std::string format_network_xml(const network_config& n);

// ---------------------------------------------------------------- capabilities

struct capabilities {
  struct page_size {
    std::string unit = "KiB";
    unsigned long long size = 0;
    bool operator==(const page_size&) const = default;
  };
  struct host_cpu_t {
    std::string arch;
    std::vector<std::string> features;  // <pae/> <nonpae/> ...
    std::vector<xml_element> extra;     // model, vendor, topology ...
    std::vector<page_size> pages;
    bool operator==(const host_cpu_t&) const = default;
  };
  struct cell_cpu {
    unsigned id = 0;
    std::optional<unsigned> socket_id, die_id, core_id;
    std::string siblings;
    bool operator==(const cell_cpu&) const = default;
  };
  struct cell_pages {
    std::string unit = "KiB";
    unsigned long long size = 0, count = 0;
    bool operator==(const cell_pages&) const = default;
  };
  struct cell {
    unsigned id = 0;
    unsigned long long memory_kib = 0;
    std::vector<cell_pages> pages;
    std::vector<xml_element> distances;  // <distances><sibling/></distances> children
    std::vector<cell_cpu> cpus;
    bool operator==(const cell&) const = default;
  };
  struct secmodel {
    std::string model, doi;
    std::vector<xml_element> extra;  // <baselabel>
    bool operator==(const secmodel&) const = default;
  };
  struct host_t {
    std::string uuid;
    host_cpu_t cpu;
    bool power_management = true;
    std::vector<std::string> power_management_modes;  // suspend_mem ...
    std::string iommu_support;                        // "yes"/"no"/"" = absent
    bool has_migration = false;
    std::vector<std::string> migration_transports;
    std::vector<cell> cells;
    bool has_topology = false;
    std::vector<secmodel> secmodels;
    std::vector<xml_element> extra;
    bool operator==(const host_t&) const = default;
  } host;
  struct guest_domain {
    std::string type;
    std::string emulator;
    std::vector<std::string> machines;
    bool operator==(const guest_domain&) const = default;
  };
  struct machine {
    std::string name, canonical;
    std::optional<unsigned> max_cpus;
    bool operator==(const machine&) const = default;
  };
  struct guest {
    std::string os_type;
    std::string arch;
    unsigned wordsize = 0;
    std::string emulator, loader;
    std::vector<machine> machines;
    std::vector<guest_domain> domains;
    bool has_features = false;
    std::vector<xml_element> features;  // <pae/> <acpi default='on' toggle='yes'/> ...
    std::vector<xml_element> extra;
    bool operator==(const guest&) const = default;
  };
  std::vector<guest> guests;
  bool operator==(const capabilities&) const = default;
};

result<capabilities> parse_capabilities_xml(std::string_view xml, diagnostics& diag);
std::string format_capabilities_xml(const capabilities& c);

}  // namespace covirt
