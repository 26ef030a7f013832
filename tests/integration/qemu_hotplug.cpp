// Integration tests: hotplug and unplug of disks and interfaces on running QEMU guests.
#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/timeout.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/tiny_guest.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace dm = covirt::device_modify;


const std::string root_ports =
    "<controller type='pci' index='0' model='pcie-root'/>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='pci' index='2' model='pcie-root-port'/>";

fs::path make_image(const guest_dir& dir, const std::string& name, std::uintmax_t size = 1 << 20) {
  fs::path p = dir.path / name;
  std::ofstream(p).close();
  fs::resize_file(p, size);
  return p;
}

std::string disk_xml(const fs::path& file, const std::string& dev, const std::string& bus = "virtio") {
  return "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + file.string() +
         "'/><target dev='" + dev + "' bus='" + bus + "'/></disk>";
}

const std::string nic_xml = "<interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>";

// What QEMU itself says is plugged in: its user-created devices by id (qom-list through the
// monitor passthrough; query-pci would miss devices behind a root port the firmware has not
// numbered yet).
asio::awaitable<std::string> pci_of(covirt::connection& c, const std::string& name) {
  std::string cmd = R"({"execute":"qom-list","arguments":{"path":"/machine/peripheral"}})";
  co_return co_await c.async_qemu_monitor_command(name, cmd);
}

asio::awaitable<std::string> block_nodes_of(covirt::connection& c, const std::string& name) {
  std::string cmd = R"({"execute":"query-named-block-nodes"})";
  co_return co_await c.async_qemu_monitor_command(name, cmd);
}

}  // namespace

TEST_CASE("qemu hotplug: disk and interface on a running q35 guest, live and config", "[qemu_hotplug]") {
  guest_dir dir{"covirt-hp"};
  auto img = make_image(dir, "data, with comma.img");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        co_await conn.async_define_xml(guest_xml("hp", "qemu", root_ports));
        co_await conn.async_create("hp");

        // Live only (current = live on a running guest): QEMU has it, the definition does not.
        std::string dxml = disk_xml(img, "vdb");
        co_await conn.async_attach_device("hp", dxml, dm::current);
        std::string pci = co_await pci_of(conn, "hp");
        INFO(pci);
        CHECK(pci.find("\"virtio-disk1\"") != std::string::npos);
        std::string live = co_await conn.async_get_xml("hp", 0);
        CHECK(live.find("<target dev='vdb' bus='virtio'/>") != std::string::npos);
        CHECK(live.find("<alias name='virtio-disk1'/>") != std::string::npos);
        CHECK(live.find("bus='0x01'") != std::string::npos);  // on the first free root port
        std::string inactive = co_await conn.async_get_xml("hp", covirt::xml_flags::inactive);
        CHECK(inactive.find("vdb") == std::string::npos);
        // The path's comma went to QEMU as JSON, not as an option separator.
        std::string nodes = co_await block_nodes_of(conn, "hp");
        CHECK(nodes.find("data, with comma.img") != std::string::npos);
        auto stats = co_await conn.async_block_stats("hp", "vdb");
        CHECK(stats.rd_req >= 0);

        // The same target twice, a second NIC with the same MAC: refused, nothing changes.
        diagnostics diag;
        auto [e1] = co_await conn.async_attach_device("hp", dxml, dm::live, diag, tuple);
        CHECK(e1 == errc::operation_failed);
        CHECK(std::string(diag.message()).find("target vdb already exists") != std::string::npos);

        // An interface goes on the second root port, with its MAC.
        co_await conn.async_attach_device("hp", nic_xml, dm::live);
        pci = co_await pci_of(conn, "hp");
        CHECK(pci.find("\"net0\"") != std::string::npos);
        live = co_await conn.async_get_xml("hp", 0);
        CHECK(live.find("52:54:00:12:34:56") != std::string::npos);
        auto [e2] = co_await conn.async_attach_device("hp", nic_xml, dm::live, diag, tuple);
        CHECK(e2 == errc::operation_failed);

        // No root port left: a clear refusal that says what to add.
        auto img2 = make_image(dir, "second.img");
        std::string d2 = disk_xml(img2, "vdc");
        auto [e3] = co_await conn.async_attach_device("hp", d2, dm::live, diag, tuple);
        CHECK(e3 == errc::operation_failed);
        CHECK(std::string(diag.message()).find("pcie-root-port") != std::string::npos);
        std::string after = co_await conn.async_get_xml("hp", 0);
        CHECK(after.find("vdc") == std::string::npos);
        std::string nodes2 = co_await block_nodes_of(conn, "hp");
        CHECK(nodes2.find("second.img") == std::string::npos);  // the backend was rolled back

        // Config only: the definition gains it, the running guest does not.
        co_await conn.async_attach_device("hp", d2, dm::config);
        inactive = co_await conn.async_get_xml("hp", covirt::xml_flags::inactive);
        CHECK(inactive.find("<target dev='vdc' bus='virtio'/>") != std::string::npos);
        live = co_await conn.async_get_xml("hp", 0);
        CHECK(live.find("vdc") == std::string::npos);
        co_await conn.async_detach_device("hp", d2, dm::config);
        inactive = co_await conn.async_get_xml("hp", covirt::xml_flags::inactive);
        CHECK(inactive.find("vdc") == std::string::npos);
        auto [e4] = co_await conn.async_detach_device("hp", d2, dm::config, diag, tuple);
        CHECK(e4 == errc::device_missing);

        // The live definition is in the runtime record: a new connection sees the hotplugged devices.
        {
          auto again = co_await open_connection(ex, dir.uri());
          std::string x = co_await again.async_get_xml("hp", 0);
          CHECK(x.find("<target dev='vdb' bus='virtio'/>") != std::string::npos);
          CHECK(x.find("52:54:00:12:34:56") != std::string::npos);
        }

        // A guest with no OS never releases a device: detach asks, waits a while, and returns
        // with the device still there (libvirt's behaviour); it goes when QEMU says so.
        auto t0 = std::chrono::steady_clock::now();
        co_await conn.async_detach_device("hp", dxml, dm::live);
        auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(waited >= 4s);
        CHECK(waited < 10s);
        co_await conn.async_destroy("hp");
      },
      60s);
}

TEST_CASE("qemu hotplug: refusals", "[qemu_hotplug]") {
  guest_dir dir{"covirt-hp"};
  auto img = make_image(dir, "d.img");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    diagnostics diag;
    std::string dxml = disk_xml(img, "vdb");
    // Not running: live is refused; current means config, which a defined domain takes.
    co_await conn.async_define_xml(guest_xml("rf", "qemu", root_ports));
    auto [e0] = co_await conn.async_attach_device("rf", dxml, dm::live, diag, tuple);
    CHECK(e0 == errc::operation_invalid);
    co_await conn.async_attach_device("rf", dxml, dm::current);
    std::string x = co_await conn.async_get_xml("rf", 0);
    CHECK(x.find("<target dev='vdb' bus='virtio'/>") != std::string::npos);

    auto tr = guest_xml("tr", "qemu", root_ports);
    co_await conn.async_create_xml(tr, 0);
    auto [e1] = co_await conn.async_attach_device("tr", dxml, dm::config, diag, tuple);
    CHECK(e1 == errc::operation_invalid);  // a transient domain has no definition to change

    struct bad_case {
      std::string xml;
      errc code;
      std::string says;
    };
    std::vector<bad_case> cases = {
        {"<controller type='usb' model='qemu-xhci'/>", errc::config_unsupported, "<controller>"},
        {"<disk type='file'><source file='x'/>", errc::xml_detail, "malformed"},
        {dxml + dxml, errc::xml_error, "exactly one element"},
        {disk_xml(img, "sdb", "sata"), errc::config_unsupported, "bus 'sata'"},
        {"<disk type='file' device='cdrom'><source file='" + img.string() + "'/><target dev='vdc' bus='virtio'/></disk>",
         errc::config_unsupported, "CD-ROM"},
        {"<interface type='network'><source network='default'/></interface>", errc::config_unsupported, "network"},
    };
    for (auto& c : cases) {
      diagnostics d;
      auto [ec] = co_await conn.async_attach_device("tr", c.xml, dm::live, d, tuple);
      INFO(c.xml << " -> " << d.message());
      CHECK(ec == c.code);
      CHECK(std::string(d.message()).find(c.says) != std::string::npos);
    }
    std::string live = co_await conn.async_get_xml("tr", 0);
    CHECK(live.find("<disk") == std::string::npos);
    CHECK(live.find("<interface") == std::string::npos);

    // Unknown device on detach; read-only connections change nothing.
    auto [e2] = co_await conn.async_detach_device("tr", dxml, dm::live, diag, tuple);
    CHECK(e2 == errc::device_missing);
    auto ro = co_await open_connection(ex, dir.uri(), covirt::open_flags::read_only);
    auto [e3] = co_await ro.async_attach_device("tr", dxml, dm::live, diag, tuple);
    CHECK(e3 == errc::operation_denied);
    auto [e4] = co_await ro.async_detach_device("rf", dxml, dm::config, diag, tuple);
    CHECK(e4 == errc::operation_denied);
    co_await conn.async_destroy("tr");
  });
}

TEST_CASE("qemu hotplug: i440fx records the slot QEMU chose", "[qemu_hotplug]") {
  guest_dir dir{"covirt-hp"};
  auto img = make_image(dir, "pc.img");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    std::string xml = "<domain type='qemu'><name>pc1</name><memory unit='MiB'>64</memory>"
                      "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
                      "<devices><memballoon model='virtio'/></devices></domain>";
    co_await conn.async_create_xml(xml, 0);
    std::string dxml = disk_xml(img, "vdb");
    co_await conn.async_attach_device("pc1", dxml, dm::live);
    std::string live = co_await conn.async_get_xml("pc1", 0);
    CHECK(live.find("<alias name='virtio-disk1'/>") != std::string::npos);
    auto at = live.find("<target dev='vdb'");
    REQUIRE(at != std::string::npos);
    auto addr = live.find("<address type='pci'", at);
    CHECK(addr != std::string::npos);
    CHECK(live.find("slot='0x00'", at) == std::string::npos);  // a real slot, not the root's
    co_await conn.async_destroy("pc1");
  });
}

TEST_CASE("qemu hotplug: a real guest releases an unplugged disk and NIC at once", "[qemu_hotplug][qemu_guest]") {
  guest_image();
  guest_dir dir{"covirt-hp"};
  auto img = make_image(dir, "guest.img");
  run_coro(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto conn = co_await open_connection(ex, dir.uri());
        std::string xml = tiny_xml("hg", dir, "", root_ports);
        co_await conn.async_create_xml(xml, 0);
        bool up = co_await wait_up(dir, 1);
        INFO("serial log:\n" << slurp(dir.serial_log()));
        REQUIRE(up);
        std::string dxml = disk_xml(img, "vdb");
        co_await conn.async_attach_device("hg", dxml, dm::live);
        co_await conn.async_attach_device("hg", nic_xml, dm::live);
        std::string nodes = co_await block_nodes_of(conn, "hg");
        CHECK(nodes.find("guest.img") != std::string::npos);

        // The guest's kernel handles the unplug request: DEVICE_DELETED comes well within the wait.
        auto t0 = std::chrono::steady_clock::now();
        co_await conn.async_detach_device("hg", dxml, dm::live);
        auto disk_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        t0 = std::chrono::steady_clock::now();
        co_await conn.async_detach_device("hg", nic_xml, dm::live);
        auto nic_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "[qemu_hotplug] guest unplug: disk %lld ms, nic %lld ms\n", static_cast<long long>(disk_ms),
                     static_cast<long long>(nic_ms));
        CHECK(disk_ms < 4500);
        CHECK(nic_ms < 4500);
        std::string live = co_await conn.async_get_xml("hg", 0);
        CHECK(live.find("vdb") == std::string::npos);
        CHECK(live.find("52:54:00:12:34:56") == std::string::npos);
        std::string pci = co_await pci_of(conn, "hg");
        CHECK(pci.find("virtio-disk1") == std::string::npos);
        CHECK(pci.find("\"net0\"") == std::string::npos);
        nodes = co_await block_nodes_of(conn, "hg");
        CHECK(nodes.find("guest.img") == std::string::npos);  // blockdev-del after the device went

        // The freed root port takes the next device.
        co_await conn.async_attach_device("hg", dxml, dm::live);
        live = co_await conn.async_get_xml("hg", 0);
        CHECK(live.find("<target dev='vdb' bus='virtio'/>") != std::string::npos);
        co_await conn.async_destroy("hg");
      },
      90s);
}
