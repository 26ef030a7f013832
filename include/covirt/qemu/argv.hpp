// covirt: the QEMU command line for a domain (libvirt's qemu_command.c, in small).
//
// A sans-io codec: domain_config in, argv out. Nothing is spawned or opened here, no
// file is probed (the caller says whether /dev/kvm is usable).
#pragma once

#include <covirt/domain/xml.hpp>
#include <covirt/error.hpp>

#include <optional>
#include <string>
#include <vector>

namespace covirt::qemu {

struct argv_options {
  /// The binary. Empty: the domain's <emulator>, else qemu-system-x86_64 (arch x86_64)
  /// or qemu-system-i386 (arch i686).
  std::string emulator;
  /// Path of the QMP socket; empty: no monitor (only for showing a command line).
  /// Written libvirt's way: -chardev socket,id=charmonitor,path=...,server=on,wait=off
  /// -mon chardev=charmonitor,id=monitor,mode=control.
  std::string qmp_socket;
  /// A listening socket already bound at qmp_socket that QEMU inherits (fd=N instead of path=):
  /// how a QEMU that runs as another user (a DAC label) gets a monitor in a folder it cannot
  /// write. -1: QEMU makes the socket itself.
  int qmp_fd = -1;
  /// Optional -pidfile.
  std::string pidfile;
  /// Whether /dev/kvm is usable; type='kvm' is refused when it is not.
  bool kvm_available = false;
  /// -S: vCPUs wait for QMP `cont`.
  bool start_paused = true;
  /// -incoming URI (restore / migration): "defer", "exec:cat FILE", "tcp:...".
  std::optional<std::string> incoming;
  /// The hugetlbfs mount for <memoryBacking><hugepages> (the driver finds it: check_tuning).
  std::string hugepage_dir;
  /// The X display SDL graphics open when the domain names none ($DISPLAY; the driver reads it).
  std::string display;
};

/// The argv (argv[0] is the emulator) that starts the domain under QEMU 7.2.
///
/// Errors (message in `diag`):
/// - `errc::config_unsupported`: an element or value this driver cannot honour, named
///   ("<hostdev> is not supported by covirt's qemu driver", "disk bus 'xen'",
///   "graphics type 'spice'", "domain type 'kvm' needs /dev/kvm ..."); unknown elements
///   kept in `extra` lists are refused, never dropped;
/// - `errc::config_unsupported` also for a value QEMU cannot take on its command line
///   (a control character such as a newline in a path or name).
///
/// Contract with the process manager (what argv alone does not do):
/// - `-no-shutdown` is always given: a guest power-off stops QEMU (SHUTDOWN then STOP) and
///   the manager applies <on_poweroff> (destroy: quit/kill; restart: system_reset + cont;
///   preserve: leave it). <on_reboot>destroy</on_reboot> gives `-no-reboot` (a guest reboot
///   becomes a shutdown). <on_crash> preserve / coredump-* give `-action panic=pause`;
///   otherwise a panic becomes a shutdown (reason guest-panic) the manager acts on.
/// - <graphics passwd=...> gives `password=on`; the manager must send QMP `set_password`
///   before `cont` (the secret never appears in argv).
/// - VNC autoport gives `-vnc ADDR:0,to=99`: QEMU takes the first free port from 5900;
///   the manager reads the port back with `query-vnc`.
/// - <currentMemory> below <memory> and <memballoon><stats period> are runtime settings
///   (QMP `balloon`, `qom-set guest-stats-polling-interval`).
result<std::vector<std::string>> build_argv(const domain_config& d, const argv_options& opt,
                                            diagnostics& diag);

/// One shell line for `argv`, each word quoted only when it needs it (single quotes),
/// the form `virsh domxml-to-native qemu-argv` prints, without the environment prefix.
std::string argv_to_shell(const std::vector<std::string>& argv);

/// libvirt's virDiskNameToIndex: "vda" -> 0, "sdb" -> 1, "hdaa" -> 26; nullopt for a name
/// without a known prefix (vd, sd, hd, xvd, fd, ubd) and letters a-z. Disk device ids use it
/// ("virtio-disk<index>").
std::optional<unsigned> disk_target_index(std::string_view dev);

/// A <hostdev>'s PCI <source><address> as the host names it ("0000:06:02.0"); "" when malformed.
std::string pci_host_address(const device_address& a);

/// QEMU's escaping of a value inside a comma-separated option: each ',' doubled.
std::string escape_opt_value(std::string_view value);

}  // namespace covirt::qemu
