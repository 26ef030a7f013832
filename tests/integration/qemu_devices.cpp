// Integration tests: the device families beyond the basic ones, with real QEMU 7.2 (TCG):
// floppies on the fdc, an NBD disk served by Debian's qemu-nbd, sound models, an ethernet
// interface whose <script> runs on a real tap, SPICE answering on its port, and the refusals
// (a <hostdev> this host lacks, SDL without a display, SPICE TLS without certificates), and SDL
// on a real X server (Debian's Xvfb).
#include <covirt/connection.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

namespace {

std::string dom_xml(const std::string& name, const std::string& machine, const std::string& devices) {
  return "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>64</memory>"
         "<os><type arch='x86_64' machine='" + machine + "'>hvm</type></os><devices>" + devices +
         "<memballoon model='none'/></devices></domain>";
}

// QMP through the driver's passthrough, as a string.
asio::awaitable<std::string> hmp(covirt::connection& c, const std::string& dom, const std::string& line) {
  std::string cmd = "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"" + line + "\"}}";
  co_return co_await c.async_qemu_monitor_command(dom, cmd);
}

// qemu-nbd serving `image` on a unix socket; killed at the end.
struct nbd_server {
  pid_t pid = -1;
  fs::path sock;
  nbd_server(const fs::path& image, const fs::path& socket) : sock(socket) {
    pid = ::fork();
    if (pid == 0) {
      ::execlp("qemu-nbd", "qemu-nbd", "-k", socket.c_str(), "-f", "raw", "-x", "exp", "--persistent",
               image.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~nbd_server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

// Debian's Xvfb on a display number of its own (the first free one from :90); killed at the end.
struct xvfb_server {
  pid_t pid = -1;
  int number = -1;
  xvfb_server() {
    for (int n = 90; n < 140; ++n) {
      std::string sock = "/tmp/.X11-unix/X" + std::to_string(n), lock = "/tmp/.X" + std::to_string(n) + "-lock";
      if (fs::exists(sock) || fs::exists(lock)) continue;
      number = n;
      break;
    }
    if (number < 0) return;
    pid = ::fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::string d = ":" + std::to_string(number);
      ::execlp("Xvfb", "Xvfb", d.c_str(), "-nolisten", "tcp", "-screen", "0", "800x600x24", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  std::string display() const { return ":" + std::to_string(number); }
  fs::path socket() const { return "/tmp/.X11-unix/X" + std::to_string(number); }
  ~xvfb_server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

}  // namespace

TEST_CASE("qemu devices: SDL graphics draw on a real X server (Xvfb)", "[qemu_devices]") {
  // Xvfb (xvfb) and QEMU's SDL module (qemu-system-gui) come from scripts/setup's list.
  xvfb_server x;
  REQUIRE(x.number >= 0);
  REQUIRE(x.pid > 0);
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    bool up = co_await eventually([&] { return fs::exists(x.socket()); }, 20s);  // Xvfb's start on a loaded host
    REQUIRE(up);
    auto conn = co_await open_connection(ex, dir.uri());
    std::string xml = dom_xml("sdl", "q35", "<graphics type='sdl' display='" + x.display() + "'/><video><model type='vga'/></video>");
    co_await conn.async_create_xml(xml, 0);
    auto pids = qemu_pids_with(dir.path.string());
    REQUIRE(pids.size() == 1);
    // QEMU loaded its SDL UI module and holds a connection to the X server's socket.
    bool sdl_loaded = co_await eventually([&] { return slurp("/proc/" + std::to_string(pids[0]) + "/maps").find("ui-sdl") != std::string::npos; }, 10s);
    CHECK(sdl_loaded);
    auto st = co_await conn.async_get_state("sdl");
    CHECK(st.state == domain_state::running);
    co_await conn.async_destroy("sdl");

    // A display nobody serves: QEMU's own complaint, and nothing left running.
    std::string none = dom_xml("sdl2", "q35", "<graphics type='sdl' display=':" + std::to_string(x.number + 50) + "'/>");
    auto t = co_await catch_error(conn.async_create_xml(none, 0));
    CHECK(t.threw);
    CHECK(t.message.find("SDL") != std::string::npos);
    CHECK(qemu_pids_with(dir.path.string()).empty());
  }, 60s);
}

TEST_CASE("qemu devices: floppies on pc and q35, an nbd disk that reads what qemu-nbd serves", "[qemu_devices]") {
  guest_dir dir;
  fs::path fimg = dir.path / "floppy.img", nimg = dir.path / "nbd.img", sock = dir.path / "nbd.sock";
  {
    std::ofstream f(fimg, std::ios::binary);
    f << std::string(1474560, '\0');
    std::ofstream n(nimg, std::ios::binary);
    n << "covirt-nbd-marker" << std::string(1 << 20, '\0');
  }
  nbd_server nbd(nimg, sock);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    bool up = co_await eventually([&] { return fs::exists(sock); }, 10s);  // qemu-nbd makes its socket at once
    REQUIRE(up);
    auto conn = co_await open_connection(ex, dir.uri());
    std::string floppy = "<disk type='file' device='floppy'><source file='" + fimg.string() +
                         "'/><target dev='fda' bus='fdc'/></disk>";
    for (std::string machine : {"pc", "q35"}) {
      INFO(machine);
      std::string name = "fd-" + machine, xml = dom_xml(name, machine, floppy);
      co_await conn.async_create_xml(xml, 0);
      std::string tree = co_await hmp(conn, name, "info qtree");
      CHECK(tree.find("dev: floppy, id \\\"fdc0-0-0\\\"") != std::string::npos);
      co_await conn.async_destroy(name);
    }
    std::string disk = "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
                       "<source protocol='nbd' name='exp'><host transport='unix' socket='" + sock.string() +
                       "'/></source><target dev='vda' bus='virtio'/></disk>";
    std::string xml = dom_xml("nbd", "q35", disk);
    co_await conn.async_create_xml(xml, 0);
    // QEMU reads the export's first bytes through its block layer. qemu-io prints its hex dump on
    // QEMU's stdout, the domain's log, flushed when QEMU quits.
    std::string said = co_await hmp(conn, "nbd", "qemu-io libvirt-1-format \\\"read -v 0 17\\\"");
    CHECK(said.find("Error") == std::string::npos);
    co_await conn.async_destroy("nbd");
    fs::path log = dir.path / "s" / "log" / "nbd.log";
    CHECK(slurp(log).find("covirt.nbd.marke") != std::string::npos);
  }, 90s);
}

TEST_CASE("qemu devices: sound models, each with its audiodev", "[qemu_devices]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string xml = dom_xml("snd", "pc",
                              "<sound model='ich9'/><sound model='ac97'/><sound model='es1370'/>"
                              "<sound model='sb16'/><sound model='pcspk'/>");
    co_await conn.async_create_xml(xml, 0);
    std::string tree = co_await hmp(conn, "snd", "info qtree");
    for (const char* dev : {"ich9-intel-hda", "hda-duplex", "AC97", "ES1370", "sb16"}) {
      INFO(dev);
      CHECK(tree.find(std::string("dev: ") + dev) != std::string::npos);
    }
    co_await conn.async_destroy("snd");
    std::string gus = dom_xml("snd2", "pc", "<sound model='gus'/>");
    auto bad = co_await catch_error(conn.async_create_xml(gus, 0));
    CHECK(bad.ec == errc::config_unsupported);
    CHECK(bad.message.find("<sound model='gus'>") != std::string::npos);
  }, 60s);
}

TEST_CASE("qemu devices: an ethernet interface's <script> runs with its tap", "[qemu_devices]") {
  guest_dir dir;
  fs::path script = dir.path / "ifup.sh", out = dir.path / "ifup.out";
  {
    std::ofstream s(script);
    s << "#!/bin/sh\necho \"$1\" > " << out.string() << "\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string nic = "<interface type='ethernet'><target dev='covtap7'/><script path='" + script.string() +
                      "'/><model type='virtio'/></interface>";
    std::string xml = dom_xml("eth", "q35", nic);
    co_await conn.async_create_xml(xml, 0);
    bool ran = co_await eventually([&] { return fs::exists(out) && !slurp(out).empty(); }, 10s);
    REQUIRE(ran);
    CHECK(slurp(out) == "covtap7\n");
    CHECK(fs::exists("/sys/class/net/covtap7"));
    co_await conn.async_destroy("eth");

    // A script that cannot run: refused before QEMU starts.
    fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
    auto t = co_await catch_error(conn.async_create_xml(xml, 0));
    CHECK(t.ec == errc::invalid_arg);
    CHECK(t.message == "interface script '" + script.string() + "' is not an executable file");
    CHECK(qemu_pids_with(dir.path.string()).empty());
  }, 60s);
}

TEST_CASE("qemu devices: SPICE answers on its port; hostdev, SDL and SPICE TLS refused clearly", "[qemu_devices]") {
  guest_dir dir;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string xml = dom_xml("spice", "q35", "<graphics type='spice' autoport='yes' passwd='s3cret'><listen type='address' address='127.0.0.1'/></graphics><video><model type='qxl'/></video>");
    co_await conn.async_create_xml(xml, 0);
    std::string live = co_await conn.async_get_xml("spice", 0);
    auto at = live.find("<graphics type='spice' port='");
    REQUIRE(at != std::string::npos);
    int port = std::atoi(live.c_str() + at + 29);
    CHECK(port >= 5900);
    // The SPICE server takes connections on it.
    asio::ip::tcp::socket s(ex);
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    auto [cec] = co_await s.async_connect(ep, tuple);
    CHECK(!cec);
    std::string info = co_await hmp(conn, "spice", "info spice");
    INFO(info);
    CHECK(info.find("address: 127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(info.find("auth: spice") != std::string::npos);  // a password, set over QMP
    co_await conn.async_destroy("spice");

    struct refusal {
      std::string devices, message;
      errc code;
    };
    std::vector<refusal> cases = {
        {"<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x99' slot='0x1f' "
         "function='0x7'/></source></hostdev>",
         "PCI device 0000:99:1f.7 of <hostdev> is not on this host", errc::device_missing},
        {"<graphics type='spice' port='5990' tlsPort='5991'/>", "SPICE over TLS needs certificates", errc::config_unsupported},
    };
    if (!std::getenv("DISPLAY"))
      cases.push_back({"<graphics type='sdl'/>", "<graphics type='sdl'> needs an X display", errc::config_unsupported});
    for (auto& c : cases) {
      INFO(c.devices);
      std::string bad = dom_xml("refused", "q35", c.devices);
      auto t = co_await catch_error(conn.async_create_xml(bad, 0));
      CHECK(t.ec == c.code);
      CHECK(t.message.find(c.message) != std::string::npos);
      CHECK(qemu_pids_with(dir.path.string()).empty());
    }
  }, 60s);
}
