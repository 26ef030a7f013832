// The QEMU command line built from domain XML: what it says, what it refuses, and that the
// real QEMU 7.2 (TCG) accepts it and answers QMP.
#include <catch2/catch.hpp>

#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>
#include "common/prelude.hpp"

namespace {

using covirt::domain_config;
using covirt::qemu::argv_options;
using covirt::qemu::build_argv;

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

/// A scratch directory removed at the end, with small disk images and a fake bzImage.
struct scratch {
  fs::path dir;
  scratch() {
    char tmpl[] = "/tmp/covirt-argv-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(std::string_view name) const { return (dir / name).string(); }
  void qcow2(std::string_view name) const {
    std::string cmd = "qemu-img create -q -f qcow2 '" + path(name) + "' 16M >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  void raw(std::string_view name) const {
    std::ofstream f(path(name), std::ios::binary);
    f.seekp(16 * 1024 * 1024 - 1);
    f.put('\0');
  }
  /// Enough of a Linux boot header (HdrS, protocol 2.12) for QEMU to load it with -S.
  void fake_kernel(std::string_view name) const {
    std::string b(64 * 1024, '\0');
    b[0x1f1] = 4;
    b[0x1fe] = '\x55', b[0x1ff] = '\xaa';
    std::memcpy(&b[0x202], "HdrS", 4);
    b[0x206] = 0x0c, b[0x207] = 0x02;
    b[0x211] = 0x01;
    b[0x22c] = '\xff', b[0x22d] = '\xff', b[0x22e] = '\xff', b[0x22f] = 0x37;
    std::ofstream(path(name), std::ios::binary) << b;
  }
};

domain_config parse(const std::string& xml) {
  diagnostics diag;
  auto r = covirt::parse_domain_xml(xml, diag);
  INFO(diag.message());
  REQUIRE(r.has_value());
  return *r;
}

std::string dom(std::string_view body, std::string_view type = "qemu", std::string_view name = "argv-test") {
  return "<domain type='" + std::string(type) + "'><name>" + std::string(name) +
         "</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
         "<memory unit='MiB'>64</memory>" +
         std::string(body.find("<vcpu") == std::string_view::npos ? "<vcpu>1</vcpu>" : "") + std::string(body) +
         "</domain>";
}

std::vector<std::string> argv_of(const std::string& xml, argv_options opt = {}) {
  auto d = parse(xml);
  diagnostics diag;
  auto r = build_argv(d, opt, diag);
  INFO(diag.message());
  REQUIRE(r.has_value());
  return *r;
}

/// The value after the n-th occurrence of option `opt` whose value contains `needle`.
bool has(const std::vector<std::string>& argv, std::string_view opt, std::string_view value) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == opt && argv[i + 1] == value) return true;
  return false;
}
bool has_flag(const std::vector<std::string>& argv, std::string_view opt) {
  return std::find(argv.begin(), argv.end(), opt) != argv.end();
}
std::string shell(const std::vector<std::string>& a) { return covirt::qemu::argv_to_shell(a); }

void refused(const std::string& xml, std::string_view needle, argv_options opt = {}) {
  auto d = parse(xml);
  diagnostics diag;
  auto r = build_argv(d, opt, diag);
  INFO(diag.message());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == covirt::make_error_code(errc::config_unsupported));
  CHECK(std::string(diag.message()).find(needle) != std::string::npos);
}

// ------------------------------------------------------------------ running the real QEMU

struct qemu_outcome {
  bool greeted = false;
  std::string status;   // from query-status
  std::string stderr_text;
  std::string failure;  // why it did not get that far
};

std::string read_line(int fd) {
  std::string line;
  char c;
  while (true) {
    ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return line;  // EOF or SO_RCVTIMEO
    if (c == '\n') return line;
    line += c;
  }
}

std::string read_reply(int fd) {  // skips events
  for (int i = 0; i < 50; ++i) {
    auto l = read_line(fd);
    if (l.empty()) return l;
    if (l.find("\"return\"") != std::string::npos || l.find("\"error\"") != std::string::npos) return l;
  }
  return {};
}

/// Starts argv (its QMP socket is `sock`), does the QMP handshake, query-status and quit.
/// Every wait is bounded; QEMU is SIGKILLed and reaped at the end whatever happened.
qemu_outcome run_qemu(const std::vector<std::string>& argv, const std::string& sock, const std::string& errfile) {
  qemu_outcome out;
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int e = ::open(errfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int nul = ::open("/dev/null", O_RDWR);
    ::dup2(nul, 0), ::dup2(nul, 1), ::dup2(e, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  struct reaper {
    pid_t pid;
    bool reaped = false;
    ~reaper() {
      if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } guard{pid};

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int fd = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      guard.reaped = true;
      out.failure = "QEMU exited early (status " + std::to_string(st) + ")";
      break;
    }
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
    ::close(fd);
    fd = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (fd >= 0) {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto send = [&](std::string_view s) { return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()); };
    auto greeting = read_line(fd);
    out.greeted = greeting.find("\"QMP\"") != std::string::npos;
    if (out.greeted && send("{\"execute\":\"qmp_capabilities\"}\n") &&
        read_reply(fd).find("\"return\"") != std::string::npos && send("{\"execute\":\"query-status\"}\n")) {
      auto r = read_reply(fd);
      auto p = r.find("\"status\": \"");
      if (p != std::string::npos) out.status = r.substr(p + 11, r.find('"', p + 11) - p - 11);
      else out.failure = "query-status answered " + r;
      send("{\"execute\":\"quit\"}\n");
      read_reply(fd);
      for (int i = 0; i < 100 && !guard.reaped; ++i) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) guard.reaped = true;
        else std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } else if (out.failure.empty()) {
      out.failure = "no QMP greeting/handshake (got '" + greeting + "')";
    }
    ::close(fd);
  } else if (out.failure.empty()) {
    out.failure = "the QMP socket never accepted a connection";
  }
  if (!guard.reaped) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    guard.reaped = true;
  }
  std::ifstream f(errfile);
  std::stringstream ss;
  ss << f.rdbuf();
  out.stderr_text = ss.str();
  return out;
}

/// Builds the argv for `xml` (with @DIR@ replaced) and checks that QEMU accepts it.
void accepted_by_qemu(const scratch& s, const std::string& xml_template, std::string_view label) {
  argv_options opt;
  opt.qmp_socket = s.path("qmp.sock");
  opt.pidfile = s.path("qemu.pid");
  std::error_code ec;
  fs::remove(opt.qmp_socket, ec);
  auto argv = argv_of(replace_all(xml_template, "@DIR@", s.dir.string()), opt);
  auto r = run_qemu(argv, opt.qmp_socket, s.path("stderr.txt"));
  INFO("case: " << label);
  INFO("argv: " << shell(argv));
  INFO("stderr: " << r.stderr_text);
  INFO("failure: " << r.failure);
  CHECK(r.greeted);
  CHECK(r.status == "prelaunch");
}

// ------------------------------------------------------------------ the domains

const std::string minimal = dom("<os><type arch='x86_64' machine='pc'>hvm</type></os>");

const std::string q35_everything = dom(R"(
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/><boot dev='cdrom'/><bootmenu enable='yes' timeout='3000'/></os>
  <features><acpi/><apic/><vmport state='off'/></features>
  <cpu mode='custom'><model>qemu64</model><topology sockets='1' dies='1' cores='2' threads='1'/></cpu>
  <clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/></clock>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>preserve</on_crash>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='@DIR@/a,b.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='@DIR@/data.raw'/><target dev='vdb' bus='virtio'/><readonly/><serial>SER,1</serial></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='@DIR@/cd.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    <disk type='file' device='cdrom'><target dev='sdb' bus='sata'/><readonly/></disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'/>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/><target chassis='1' port='0x10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/></controller>
    <controller type='virtio-serial' index='0'/>
    <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
    <interface type='user'><mac address='52:54:00:12:34:57'/><model type='e1000'/></interface>
    <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
    <serial type='file'><source path='@DIR@/serial,1.log'/><target port='1'/></serial>
    <serial type='unix'><source mode='bind' path='@DIR@/serial2.sock'/><target port='2'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><source mode='bind' path='@DIR@/ga.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/></channel>
    <input type='tablet' bus='usb'/><input type='mouse' bus='ps2'/><input type='keyboard' bus='virtio'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <watchdog model='i6300esb' action='pause'/>
    <memballoon model='virtio'><stats period='10'/></memballoon>
    <rng model='virtio'><rate bytes='1024' period='2000'/><backend model='random'>/dev/urandom</backend></rng>
    <panic model='isa'/>
  </devices>)", "qemu", "q35,all");

const std::string pc_ide_scsi = dom(R"(
  <os><type machine='pc'>hvm</type><boot dev='cdrom'/></os>
  <vcpu current='1'>2</vcpu>
  <clock offset='variable' adjustment='3600' basis='utc'/>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='@DIR@/ide.qcow2'/><target dev='hda' bus='ide'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='@DIR@/cd.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>
    <!-- a character device stands in for a block device: QEMU's host_device takes both -->
    <disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/zero'/><target dev='sda' bus='scsi'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/><source file='@DIR@/data.raw'/><target dev='sdb' bus='scsi'/>
      <address type='drive' controller='1' bus='0' target='0' unit='1'/></disk>
    <controller type='scsi' index='1' model='virtio-scsi'/>
    <serial type='tcp'><source mode='bind' host='127.0.0.1' service='0'/><protocol type='telnet'/><target port='0'/></serial>
    <parallel type='null'><target port='0'/></parallel>
    <graphics type='vnc' socket='@DIR@/vnc.sock'/>
    <video><model type='cirrus'/></video>
    <video><model type='vga' vram='16384'/></video>
  </devices>)");

}  // namespace

// ------------------------------------------------------------------ argv contents

TEST_CASE("argv: minimal diskless domain", "[argv]") {
  argv_options opt;
  opt.qmp_socket = "/run/x/qmp.sock";
  opt.pidfile = "/run/x/pid";
  auto a = argv_of(minimal, opt);
  CHECK(a[0] == "qemu-system-x86_64");
  CHECK(has(a, "-name", "guest=argv-test,debug-threads=on"));
  CHECK(has(a, "-machine", "pc,usb=off,dump-guest-core=off,acpi=off"));
  CHECK(has(a, "-accel", "tcg"));
  CHECK(has(a, "-m", "size=65536k"));
  CHECK(has(a, "-smp", "1,sockets=1,dies=1,cores=1,threads=1"));
  CHECK(has(a, "-uuid", "6695eb01-f6a4-8304-79aa-97f2502e193f"));
  CHECK(has(a, "-chardev", "socket,id=charmonitor,path=/run/x/qmp.sock,server=on,wait=off"));
  CHECK(has(a, "-mon", "chardev=charmonitor,id=monitor,mode=control"));
  CHECK(has(a, "-pidfile", "/run/x/pid"));
  CHECK(has(a, "-display", "none"));
  CHECK(has(a, "-msg", "timestamp=on"));
  CHECK(has(a, "-rtc", "base=utc"));
  for (auto f : {"-S", "-nodefaults", "-no-user-config", "-no-shutdown"}) CHECK(has_flag(a, f));
  CHECK_FALSE(has_flag(a, "-no-reboot"));
  CHECK_FALSE(has_flag(a, "-incoming"));

  opt.start_paused = false;
  opt.incoming = "defer";
  opt.emulator = "/opt/qemu/bin/qemu-system-x86_64";
  a = argv_of(minimal, opt);
  CHECK(a[0] == "/opt/qemu/bin/qemu-system-x86_64");
  CHECK_FALSE(has_flag(a, "-S"));
  CHECK(has(a, "-incoming", "defer"));
}

TEST_CASE("argv: <memoryBacking> and <numatune> make the RAM a memory backend, as libvirt", "[argv]") {
  std::string os = "<os><type>hvm</type></os>";
  argv_options opt;
  opt.hugepage_dir = "/dev/huge,pages";
  auto a = argv_of(dom("<memoryBacking><hugepages/><nosharepages/><locked/></memoryBacking>" + os), opt);
  CHECK(has(a, "-object", "memory-backend-file,id=pc.ram,mem-path=/dev/huge,,pages,prealloc=on,size=65536k"));
  CHECK(has(a, "-machine", "pc,usb=off,dump-guest-core=off,acpi=off,mem-merge=off,memory-backend=pc.ram"));
  CHECK(has(a, "-overcommit", "mem-lock=on"));
  a = argv_of(dom("<memoryBacking><source type='memfd'/><access mode='shared'/><allocation mode='immediate' threads='2'/>"
                  "</memoryBacking><numatune><memory mode='interleave' nodeset='0-1,3'/></numatune>" + os));
  CHECK(has(a, "-object", "memory-backend-memfd,id=pc.ram,share=on,prealloc=on,prealloc-threads=2,size=65536k,"
                          "host-nodes=0-1:3,policy=interleave"));
  a = argv_of(dom("<numatune><memory mode='strict' nodeset='0'/></numatune>" + os));
  CHECK(has(a, "-object", "memory-backend-ram,id=pc.ram,size=65536k,host-nodes=0,policy=bind"));
  // restrictive: the cgroup's cpuset.mems alone, no backend.
  a = argv_of(dom("<numatune><memory mode='restrictive' nodeset='0'/></numatune>" + os));
  CHECK_FALSE(has_flag(a, "-object"));
  a = argv_of(dom(os));
  CHECK_FALSE(has_flag(a, "-object"));
  CHECK_FALSE(has_flag(a, "-overcommit"));
}

TEST_CASE("argv: floppies, nbd disks, sound, SPICE, ethernet scripts and PCI host devices, as libvirt", "[argv]") {
  std::string os = "<os><type>hvm</type></os>", q35 = "<os><type machine='q35'>hvm</type></os>";
  auto a = argv_of(dom(os + "<devices><disk type='file' device='floppy'><source file='/f.img'/><target dev='fdb' bus='fdc'/>"
                            "</disk></devices>"));
  CHECK(has(a, "-device", "floppy,unit=1,drive=libvirt-1-format,id=fdc0-0-1"));
  CHECK_FALSE(has(a, "-device", "isa-fdc,id=fdc0"));
  a = argv_of(dom(q35 + "<devices><disk type='file' device='floppy'><target dev='fda' bus='fdc'/></disk></devices>"));
  CHECK(has(a, "-device", "isa-fdc,id=fdc0"));
  CHECK(has(a, "-device", "floppy,unit=0,id=fdc0-0-0"));
  refused(dom(os + "<devices><disk type='file' device='floppy'><source file='/f'/><target dev='fdc' bus='fdc'/></disk></devices>"),
          "two drives");
  a = argv_of(dom(os + "<devices><disk type='network'><source protocol='nbd' name='exp'><host name='10.0.0.5' port='10810'/>"
                       "</source><target dev='vda' bus='virtio'/></disk></devices>"));
  CHECK(has(a, "-blockdev", "{\"driver\":\"nbd\",\"server\":{\"type\":\"inet\",\"host\":\"10.0.0.5\",\"port\":\"10810\"},"
                            "\"export\":\"exp\",\"node-name\":\"libvirt-1-storage\",\"auto-read-only\":true}"));
  a = argv_of(dom(os + "<devices><sound model='ich6'><codec type='micro'/></sound><sound model='pcspk'/></devices>"));
  CHECK(has(a, "-audiodev", "{\"id\":\"audio1\",\"driver\":\"none\"}"));
  CHECK(has(a, "-device", "intel-hda,id=sound0"));
  CHECK(has(a, "-device", "hda-micro,id=sound0-codec0,bus=sound0.0,cad=0,audiodev=audio1"));
  CHECK(has(a, "-machine", "pc,usb=off,dump-guest-core=off,acpi=off,pcspk-audiodev=audio1"));
  a = argv_of(dom(os + "<devices><graphics type='spice' port='5905'><listen type='address' address='::1'/></graphics></devices>"));
  CHECK(has(a, "-spice", "port=5905,addr=::1,ipv6=on,disable-ticketing=on,seamless-migration=on"));
  a = argv_of(dom(os + "<devices><graphics type='spice' port='5905' passwd='x'/></devices>"));
  CHECK(has(a, "-spice", "port=5905,addr=127.0.0.1,seamless-migration=on"));  // the password goes over QMP
  a = argv_of(dom(os + "<devices><interface type='ethernet'><target dev='tap3'/><script path='/etc/qemu-ifup'/></interface></devices>"));
  CHECK(has(a, "-netdev", "tap,id=hostnet0,ifname=tap3,script=/etc/qemu-ifup,downscript=no"));
  refused(dom(os + "<devices><interface type='user'><script path='/x'/></interface></devices>"), "only type 'ethernet'");
  a = argv_of(dom(os + "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x06' "
                       "slot='0x02' function='0x1'/></source></hostdev></devices>"));
  CHECK(has(a, "-device", "vfio-pci,host=0000:06:02.1,id=hostdev0"));
}

TEST_CASE("argv: emulator from XML and arch", "[argv]") {
  auto a = argv_of(dom("<os><type arch='i686'>hvm</type></os>"));
  CHECK(a[0] == "qemu-system-i386");
  a = argv_of(dom("<os><type>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>"));
  CHECK(a[0] == "/usr/bin/qemu-system-x86_64");
  refused(dom("<os><type arch='aarch64' machine='virt'>hvm</type></os>"), "architecture 'aarch64'");
}

TEST_CASE("argv: kvm needs /dev/kvm", "[argv]") {
  std::string xml = dom("<os><type>hvm</type></os>", "kvm");
  refused(xml, "/dev/kvm");
  argv_options opt;
  opt.kvm_available = true;
  auto a = argv_of(xml, opt);
  CHECK(has(a, "-accel", "kvm"));
  refused(dom("<os><type>hvm</type></os>", "xen"), "domain type 'xen'");
  refused(dom("<os><type>hvm</type></os><cpu mode='host-passthrough'/>"), "host-passthrough");
}

TEST_CASE("argv: kernel direct boot", "[argv]") {
  auto a = argv_of(dom("<os><type>hvm</type><kernel>/k/vmlinuz</kernel><initrd>/k/initrd.img</initrd>"
                       "<cmdline>console=ttyS0 root=/dev/vda quiet</cmdline></os>"));
  CHECK(has(a, "-kernel", "/k/vmlinuz"));
  CHECK(has(a, "-initrd", "/k/initrd.img"));
  CHECK(has(a, "-append", "console=ttyS0 root=/dev/vda quiet"));
  CHECK(shell(a).find("-append 'console=ttyS0 root=/dev/vda quiet'") != std::string::npos);
}

TEST_CASE("argv: memory, vcpus and topology", "[argv]") {
  auto a = argv_of(dom("<os><type>hvm</type></os><vcpu current='2'>4</vcpu>"
                       "<cpu><topology sockets='2' dies='1' cores='2' threads='1'/></cpu>"));
  CHECK(has(a, "-smp", "2,maxcpus=4,sockets=2,dies=1,cores=2,threads=1"));
  refused(dom("<os><type>hvm</type></os><vcpu>3</vcpu><cpu><topology sockets='2' dies='1' cores='2' threads='1'/></cpu>"),
          "does not match");
  a = argv_of(dom("<os><type>hvm</type></os><maxMemory slots='4' unit='MiB'>1024</maxMemory>"));
  CHECK(has(a, "-m", "size=65536k,slots=4,maxmem=1048576k"));
}

TEST_CASE("argv: disks, controllers, boot order", "[argv]") {
  auto a = argv_of(replace_all(q35_everything, "@DIR@", "/img"));
  CHECK(has(a, "-machine", "q35,usb=off,dump-guest-core=off,vmport=off,acpi=on"));
  CHECK(has(a, "-blockdev", R"({"driver":"file","filename":"/img/a,b.qcow2","node-name":"libvirt-4-storage","auto-read-only":true,"discard":"unmap","cache":{"direct":true,"no-flush":false}})"));
  CHECK(has(a, "-blockdev", R"({"node-name":"libvirt-4-format","read-only":false,"discard":"unmap","cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-4-storage"})"));
  CHECK(has(a, "-device", "virtio-blk-pci,drive=libvirt-4-format,write-cache=on,id=virtio-disk0,bootindex=1"));
  CHECK(has(a, "-blockdev", R"({"node-name":"libvirt-3-format","read-only":true,"driver":"raw","file":"libvirt-3-storage"})"));
  CHECK(has(a, "-device", "virtio-blk-pci,drive=libvirt-3-format,id=virtio-disk1,serial=SER,,1"));
  CHECK(has(a, "-device", "ide-cd,bus=ide.0,drive=libvirt-2-format,id=sata0-0-0,bootindex=2"));
  CHECK(has(a, "-device", "ide-cd,bus=ide.1,id=sata0-0-1"));  // empty tray
  CHECK(has(a, "-device", "qemu-xhci,p2=15,p3=15,id=usb"));
  CHECK(has(a, "-device", "pcie-root-port,port=0x10,chassis=1,id=pci.1,bus=pcie.0,addr=0x2,multifunction=on"));
  CHECK(has(a, "-boot", "menu=on,strict=on,splash-time=3000"));

  a = argv_of(replace_all(pc_ide_scsi, "@DIR@", "/img"));
  CHECK(has(a, "-device", "ide-hd,bus=ide.0,unit=0,drive=libvirt-4-format,id=ide0-0-0"));
  CHECK(has(a, "-device", "ide-cd,bus=ide.1,unit=0,drive=libvirt-3-format,id=ide0-1-0,bootindex=1"));
  CHECK(has(a, "-blockdev", R"({"driver":"host_device","filename":"/dev/zero","node-name":"libvirt-2-storage","auto-read-only":true})"));
  CHECK(has(a, "-device", "lsi53c895a,id=scsi0"));  // implicit, as libvirt adds it
  CHECK(has(a, "-device", "scsi-hd,bus=scsi0.0,scsi-id=0,drive=libvirt-2-format,id=scsi0-0-0-0"));
  CHECK(has(a, "-device", "virtio-scsi-pci,id=scsi1"));
  CHECK(has(a, "-device", "scsi-hd,bus=scsi1.0,channel=0,scsi-id=0,lun=1,drive=libvirt-1-format,write-cache=off,id=scsi1-0-0-1"));
  CHECK(has(a, "-smp", "1,maxcpus=2,sockets=2,dies=1,cores=1,threads=1"));

  // per-device boot order
  a = argv_of(dom("<os><type>hvm</type></os><devices><disk type='file'><source file='/a.img'/>"
                  "<target dev='vda' bus='virtio'/><boot order='2'/></disk>"
                  "<interface type='user'><mac address='52:54:00:00:00:01'/><boot order='1'/></interface></devices>"));
  CHECK(has(a, "-device", "virtio-blk-pci,drive=libvirt-1-format,id=virtio-disk0,bootindex=2"));
  CHECK(has(a, "-device", "rtl8139,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01,bootindex=1"));
}

TEST_CASE("argv: network, serial, console, channel", "[argv]") {
  auto a = argv_of(replace_all(q35_everything, "@DIR@", "/img"));
  CHECK(has(a, "-netdev", "user,id=hostnet0"));
  CHECK(has(a, "-device", "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pci.1,addr=0x0"));
  CHECK(has(a, "-device", "e1000,netdev=hostnet1,id=net1,mac=52:54:00:12:34:57"));
  CHECK(has(a, "-chardev", "pty,id=charserial0"));
  CHECK(has(a, "-device", "isa-serial,chardev=charserial0,id=serial0,index=0"));
  CHECK(has(a, "-chardev", "file,id=charserial1,path=/img/serial,,1.log"));
  CHECK(has(a, "-chardev", "socket,id=charserial2,path=/img/serial2.sock,server=on,wait=off"));
  CHECK(has(a, "-chardev", "socket,id=charchannel0,path=/img/ga.sock,server=on,wait=off"));
  CHECK(has(a, "-device", "virtio-serial-pci,id=virtio-serial0"));
  CHECK(has(a, "-device", "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.qemu.guest_agent.0"));
  // the console mirrors serial 0: no second chardev
  CHECK(std::count(a.begin(), a.end(), "pty,id=charserial0") == 1);

  a = argv_of(dom("<os><type>hvm</type></os><devices><interface type='bridge'><mac address='52:54:00:00:00:02'/>"
                  "<source bridge='br,0'/><model type='virtio'/></interface>"
                  "<interface type='ethernet'><mac address='52:54:00:00:00:03'/><target dev='tap7'/></interface>"
                  "<console type='pty'><target type='virtio' port='0'/></console></devices>"));
  CHECK(has(a, "-netdev", "bridge,br=br,,0,id=hostnet0"));
  CHECK(has(a, "-netdev", "tap,id=hostnet1,ifname=tap7,script=no,downscript=no"));
  CHECK(has(a, "-device", "virtconsole,bus=virtio-serial0.0,chardev=charconsole0,id=console0"));
  refused(dom("<os><type>hvm</type></os><devices><interface type='network'><source network='default'/></interface></devices>"),
          "interface type 'network'");
}

TEST_CASE("argv: graphics, video, input, balloon, clock, on_*", "[argv]") {
  auto a = argv_of(replace_all(q35_everything, "@DIR@", "/img"));
  CHECK(has(a, "-vnc", "127.0.0.1:0,to=99"));
  CHECK_FALSE(has(a, "-display", "none"));
  CHECK(has(a, "-device", "virtio-vga,id=video0"));
  CHECK(has(a, "-device", "usb-tablet,id=input0,bus=usb.0"));
  CHECK(has(a, "-device", "virtio-keyboard-pci,id=input2"));
  CHECK(has(a, "-device", "virtio-balloon-pci,id=balloon0,guest-stats-polling-interval=10"));
  CHECK(has(a, "-rtc", "base=localtime,driftfix=slew"));
  CHECK(has_flag(a, "-no-hpet"));
  CHECK(has_flag(a, "-no-reboot"));
  CHECK(has(a, "-action", "panic=pause"));
  CHECK(has(a, "-action", "watchdog=pause"));
  CHECK(has(a, "-global", "ICH9-LPC.disable_s3=1"));
  CHECK(has(a, "-cpu", "qemu64"));
  CHECK(has(a, "-smp", "2,sockets=1,dies=1,cores=2,threads=1"));
  CHECK(has(a, "-object", "rng-random,id=objrng0,filename=/dev/urandom"));
  CHECK(has(a, "-device", "virtio-rng-pci,rng=objrng0,id=rng0,max-bytes=1024,period=2000"));

  a = argv_of(replace_all(pc_ide_scsi, "@DIR@", "/img"));
  CHECK(has(a, "-vnc", "unix:/img/vnc.sock"));
  CHECK(has(a, "-device", "cirrus-vga,id=video0"));
  CHECK(has(a, "-device", "secondary-vga,id=video1,vgamem_mb=16"));
  CHECK(a[std::find(a.begin(), a.end(), "-rtc") - a.begin() + 1].rfind("base=20", 0) == 0);

  a = argv_of(dom("<os><type>hvm</type></os><devices><graphics type='vnc' port='5905' listen='::1' passwd='s3cret'/></devices>"));
  CHECK(has(a, "-vnc", "[::1]:5,password=on"));
  CHECK(shell(a).find("s3cret") == std::string::npos);
  refused(dom("<os><type>hvm</type></os><devices><graphics type='spice' autoport='yes'/></devices>"),
          "<graphics type='spice'> without a port (the driver picks one for autoport)");
  refused(dom("<os><type>hvm</type></os><on_reboot>preserve</on_reboot>"), "on_reboot");
}

TEST_CASE("argv: commas are doubled, control characters refused", "[argv]") {
  auto a = argv_of(dom("<os><type>hvm</type></os>", "qemu", "web,1"));
  CHECK(has(a, "-name", "guest=web,,1,debug-threads=on"));
  argv_options opt;
  opt.qmp_socket = "/tmp/a,b/qmp.sock";
  a = argv_of(minimal, opt);
  CHECK(has(a, "-chardev", "socket,id=charmonitor,path=/tmp/a,,b/qmp.sock,server=on,wait=off"));
  CHECK(shell(a).find("path=/tmp/a,,b/qmp.sock") != std::string::npos);
  refused(dom("<os><type>hvm</type></os><devices><serial type='file'><source path='/tmp/a&#10;b'/></serial></devices>"),
          "control character");
  refused(dom("<os><type>hvm</type><kernel>/k&#10;x</kernel></os>"), "control character");
  CHECK(covirt::qemu::escape_opt_value("a,b,,c") == "a,,b,,,,c");
  CHECK(shell({"qemu", "-append", "it's"}) == "qemu -append 'it'\\''s'");
}

TEST_CASE("argv: unsupported elements are refused, naming them", "[argv]") {
  std::string os = "<os><type>hvm</type></os>";
  refused(dom(os + "<devices><hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev></devices>"),
          "<hostdev mode='subsystem' type='usb'>");
  refused(dom(os + "<devices><disk type='file'><source file='/a'/><target dev='xvda' bus='xen'/></disk></devices>"),
          "disk bus 'xen'");
  refused(dom(os + "<devices><filesystem type='mount'><source dir='/s'/><target dir='t'/></filesystem></devices>"),
          "<filesystem>");
  refused(dom(os + "<memoryBacking><hugepages/></memoryBacking>"), "<hugepages> without a hugetlbfs mount");
  refused(dom(os + "<memoryBacking><source type='file'/></memoryBacking>"), "<source type='file'/>");
  refused(dom(os + "<devices><sound model='gus'/></devices>"), "<sound model='gus'>");
  refused(dom(os + "<devices><disk type='network'><source protocol='iscsi' name='x/1'><host name='h'/></source>"
                   "<target dev='vda'/></disk></devices>"), "protocol 'iscsi'");
  refused(dom(os + "<devices><disk type='file' device='cdrom'><source file='/a.iso'/><target dev='vda' bus='virtio'/></disk></devices>"),
          "CD-ROM");
  refused(dom("<os><type machine='q35'>hvm</type></os><devices><disk type='file'><source file='/a'/><target dev='hda' bus='ide'/></disk></devices>"),
          "q35");
  refused(dom("<os firmware='efi'><type>hvm</type></os>"), "firmware");
  refused(dom(os + "<devices><video><model type='virtio'><acceleration accel3d='yes'/></model></video></devices>"), "acceleration");
  refused(dom(os + "<devices><channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel></devices>"),
          "type 'spicevmc'");
  refused(dom(os + "<devices><disk type='file'><driver name='qemu' type='raw'/><source file='/a'/><target dev='vda' bus='virtio'/>"
                   "<iotune><total_bytes_sec>1</total_bytes_sec></iotune></disk></devices>"), "<iotune>");
  // qemu:commandline passes through; qemu:env cannot be carried by an argv
  auto a = argv_of("<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>x</name>"
                   "<memory>65536</memory><os><type>hvm</type></os><qemu:commandline><qemu:arg value='-no-hpet'/>"
                   "</qemu:commandline></domain>");
  CHECK(a.back() == "-no-hpet");
}

// ------------------------------------------------------------------ acceptance by the real QEMU

TEST_CASE("argv: the real QEMU accepts the command lines", "[argv][qemu]") {
  scratch s;
  s.qcow2("a,b.qcow2");
  s.qcow2("ide.qcow2");
  s.raw("data.raw");
  s.raw("cd.iso");
  s.fake_kernel("vmlinuz,1");
  s.fake_kernel("initrd.img");

  accepted_by_qemu(s, minimal, "minimal");
  accepted_by_qemu(s, dom("<os><type machine='q35'>hvm</type></os>"), "q35 diskless");
  accepted_by_qemu(s, q35_everything, "q35 with everything");
  accepted_by_qemu(s, pc_ide_scsi, "pc with ide/scsi/block/vnc unix");
  accepted_by_qemu(s, dom("<os><type>hvm</type><kernel>@DIR@/vmlinuz,1</kernel><initrd>@DIR@/initrd.img</initrd>"
                          "<cmdline>console=ttyS0,115200 panic=-1</cmdline></os>"
                          "<devices><serial type='file'><source path='@DIR@/console.log'/></serial></devices>"),
                   "kernel direct boot");
  accepted_by_qemu(s, dom("<os><type>hvm</type><boot dev='network'/></os><vcpu current='1'>2</vcpu>"
                          "<maxMemory slots='2' unit='MiB'>512</maxMemory>"
                          "<cpu mode='maximum'><topology sockets='1' dies='1' cores='1' threads='2'/></cpu>"
                          "<clock offset='absolute' start='1000000000'/>"
                          "<devices><interface type='user'><model type='rtl8139'/></interface>"
                          "<interface type='user'><model type='e1000e'/></interface>"
                          "<controller type='usb' model='piix3-uhci'/><input type='mouse' bus='usb'/>"
                          "<graphics type='vnc' port='-1' autoport='yes'><listen type='none'/></graphics>"
                          "<video><model type='vga' vram='16384'/></video>"
                          "<watchdog model='ib700' action='reset'/>"
                          "<memballoon model='virtio' autodeflate='on'/>"
                          "<rng model='virtio'><backend model='builtin'/></rng></devices>",
                          "qemu", "comma,name"),
                   "pc with user nets, usb, vnc none, comma in name");
  accepted_by_qemu(s, dom("<os><type machine='pc'>hvm</type></os><devices>"
                          "<controller type='sata' index='0'/>"
                          "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='@DIR@/ide.qcow2'/>"
                          "<target dev='sda' bus='sata'/></disk>"
                          "<console type='pty'><target type='serial'/></console>"
                          "<channel type='unix'><source mode='bind' path='@DIR@/ch,1.sock'/>"
                          "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                          "<serial type='udp'><source mode='bind' host='127.0.0.1' service='0'/>"
                          "<source mode='connect' host='127.0.0.1' service='9'/></serial>"
                          "<parallel type='file'><source path='@DIR@/par.log'/></parallel>"
                          "<video><model type='bochs'/></video></devices>"),
                   "pc sata ahci, console-as-serial, udp serial, channel path with comma");
  accepted_by_qemu(s, dom("<os><type machine='pc-i440fx-7.2'>hvm</type><bios rebootTimeout='0'/></os>"
                          "<features><acpi/></features><on_crash>coredump-destroy</on_crash>"
                          "<pm><suspend-to-mem enabled='yes'/></pm>"
                          "<devices><controller type='pci' index='1' model='pci-bridge'/>"
                          "<controller type='usb' model='none'/>"
                          "<disk type='file'><driver name='qemu' type='raw' cache='unsafe'/><source file='@DIR@/data.raw'/>"
                          "<target dev='vda' bus='virtio'/><shareable/>"
                          "<address type='pci' domain='0x0000' bus='0x01' slot='0x03' function='0x0'/></disk>"
                          "<input type='tablet' bus='virtio'/>"
                          "<graphics type='vnc' port='-1' autoport='yes' keymap='en-us' websocket='5700'/>"
                          "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>"
                          "<panic model='isa'><address type='isa' iobase='0x505'/></panic></devices>"),
                   "i440fx with pci-bridge, qxl, vnc websocket and keymap, pvpanic");
}
