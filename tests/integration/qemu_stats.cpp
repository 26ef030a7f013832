// Integration tests: the QEMU driver's statistics with real QEMU 7.2 (TCG): the bulk record's
// fields in libvirt's layout, figures that match what the kernel and the image files say, the
// firmware's read of the boot disk counted, a tap's counters turned around, and the errors.
#include <covirt/connection.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include <sys/stat.h>

namespace {

template <class T>
std::optional<T> field(const covirt::typed_params& ps, const std::string& f) {
  for (auto& p : ps)
    if (p.field == f)
      if (auto* v = std::get_if<T>(&p.value)) return *v;
  return std::nullopt;
}

std::vector<std::string> names(const covirt::typed_params& ps) {
  std::vector<std::string> v;
  for (auto& p : ps) v.push_back(p.field);
  return v;
}

unsigned long long sysfs_number(const std::string& path) {
  std::ifstream in(path);
  unsigned long long v = 0;
  in >> v;
  return v;
}

}  // namespace

TEST_CASE("qemu stats: the bulk record has libvirt's fields, the kernel's and the images' figures",
          "[qemu_stats]") {
  guest_dir dir;
  const std::string qcow = (dir.path / "a.qcow2").string(), raw = (dir.path / "b.raw").string();
  REQUIRE(std::system(("qemu-img create -q -f qcow2 " + qcow + " 64M").c_str()) == 0);
  { std::ofstream(raw).put('\0'); }
  fs::resize_file(raw, 32 << 20);
  const bool root = ::geteuid() == 0;
  const std::string tap = "covst" + std::to_string(::getpid() % 100000);
  std::string devices =
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + qcow +
      "'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>"
      "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + raw +
      "'/><target dev='vdb' bus='virtio'/></disk>"
      "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"
      "<interface type='user'><mac address='52:54:00:aa:bb:01'/><model type='virtio'/></interface>";
  if (root)
    devices += "<interface type='ethernet'><mac address='52:54:00:aa:bb:02'/><target dev='" + tap +
               "'/><model type='virtio'/></interface>";
  std::string xml = guest_xml("st1", "qemu", devices);
  xml.replace(xml.find("<os>"), 4, "<vcpu>2</vcpu><os>");
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    co_await conn.async_define_xml(xml);

    // Shut off: state, the balloon's and vCPUs' sizes, the disks from their files.
    const std::vector<covirt::domain_key> st1{covirt::domain_key("st1")};
    auto off = co_await conn.async_get_all_domain_stats(st1, 0u, 0u);
    REQUIRE(off.size() == 1);
    CHECK(off[0].dom.name == "st1");
    CHECK(field<int>(off[0].params, "state.state") == 5);
    CHECK(field<unsigned long long>(off[0].params, "balloon.maximum") == 65536ull);
    CHECK(field<unsigned>(off[0].params, "vcpu.maximum") == 2u);
    CHECK(field<unsigned long long>(off[0].params, "block.0.capacity") == 64ull << 20);
    CHECK(field<unsigned long long>(off[0].params, "block.1.capacity") == 32ull << 20);
    CHECK(!field<unsigned long long>(off[0].params, "cpu.time"));

    co_await conn.async_create("st1");
    // SeaBIOS tries the boot disk: its read of the first sector shows in vda's counters.
    std::optional<unsigned long long> reads;
    asio::steady_timer poll(ex);
    for (int i = 0; i < 1000 && !(reads && *reads > 0); ++i) {  // 10 s: TCG firmware start on a loaded machine
      auto r = co_await conn.async_get_all_domain_stats(st1, covirt::stats_types::block, 0u);
      if (!r.empty()) reads = field<unsigned long long>(r[0].params, "block.0.rd.reqs");
      poll.expires_after(10ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
    CHECK(reads > 0ull);

    auto all = co_await conn.async_get_all_domain_stats(st1, 0u, 0u);
    REQUIRE(all.size() == 1);
    const auto& p = all[0].params;
    INFO("fields: " << [&] { std::string s; for (auto& n : names(p)) s += n + " "; return s; }());
    // libvirt 9.0's QEMU driver's layout for this guest (taken from virsh domstats on the same
    // XML through libvirtd, under TCG), in its order.
    std::vector<std::string> want = {
        "state.state", "state.reason", "cpu.time", "cpu.user", "cpu.system", "cpu.cache.monitor.count",
        "cpu.haltpoll.success.time", "cpu.haltpoll.fail.time", "balloon.current", "balloon.maximum",
        "balloon.last-update", "balloon.rss", "vcpu.current", "vcpu.maximum", "vcpu.0.state", "vcpu.0.time",
        "vcpu.0.wait", "vcpu.0.delay", "vcpu.1.state", "vcpu.1.time", "vcpu.1.wait", "vcpu.1.delay", "net.count"};
    if (root)
      for (const char* f : {"name", "rx.bytes", "rx.pkts", "rx.errs", "rx.drop", "tx.bytes", "tx.pkts", "tx.errs", "tx.drop"})
        want.push_back(std::string("net.1.") + f);
    want.push_back("block.count");
    for (int i = 0; i < 2; ++i) {
      std::string b = "block." + std::to_string(i) + ".";
      for (const char* f : {"name", "path", "backingIndex", "rd.reqs", "rd.bytes", "rd.times", "wr.reqs", "wr.bytes",
                            "wr.times", "fl.reqs", "fl.times", "allocation", "capacity", "physical"})
        want.push_back(b + f);
    }
    for (const char* f : {"name", "rd.reqs", "rd.bytes", "rd.times", "wr.reqs", "wr.bytes", "wr.times", "fl.reqs", "fl.times"})
      want.push_back(std::string("block.2.") + f);
    for (const char* f : {"calc_status", "calc_start_time", "calc_period", "calc_mode"})
      want.push_back(std::string("dirtyrate.") + f);
    CHECK(names(p) == want);

    CHECK(field<int>(p, "state.state") == 1);
    CHECK(field<unsigned long long>(p, "cpu.time") > 0ull);
    CHECK(field<unsigned long long>(p, "balloon.current") == 65536ull);
    CHECK(field<unsigned long long>(p, "balloon.rss") > 1024ull);  // QEMU holds more than a MiB
    CHECK(field<unsigned>(p, "net.count") == (root ? 2u : 1u));
    CHECK(field<unsigned>(p, "block.count") == 3u);
    CHECK(field<std::string>(p, "block.0.path") == qcow);
    CHECK(field<unsigned>(p, "block.0.backingIndex") == 3u);
    CHECK(field<unsigned long long>(p, "block.0.capacity") == 64ull << 20);
    CHECK(field<unsigned long long>(p, "block.0.rd.bytes") >= 512ull);
    struct stat sq {};
    REQUIRE(::stat(qcow.c_str(), &sq) == 0);
    CHECK(field<unsigned long long>(p, "block.0.physical") == static_cast<unsigned long long>(sq.st_blocks) * 512);
    CHECK(field<std::string>(p, "dirtyrate.calc_mode") == "page-sampling");

    // The per-call forms.
    auto mem = co_await conn.async_memory_stats("st1", 0u);
    REQUIRE(mem.size() >= 2);
    CHECK(mem.front().tag == covirt::memory_stat_tag::actual_balloon);
    CHECK(mem.front().value == 65536u);
    CHECK(mem.back().tag == covirt::memory_stat_tag::rss);
    auto info = co_await conn.async_get_block_info("st1", "vda", 0u);
    CHECK(info.capacity == 64ull << 20);
    CHECK(info.physical == static_cast<std::uint64_t>(sq.st_size));
    CHECK(info.allocation == static_cast<std::uint64_t>(sq.st_blocks) * 512);
    auto by_path = co_await conn.async_get_block_info("st1", raw, 0u);
    CHECK(by_path.capacity == 32ull << 20);
    auto empty = co_await catch_error(conn.async_get_block_info("st1", "sda", 0u));
    CHECK(empty.message == "disk 'sda' does not currently have a source assigned");
    auto unknown = co_await catch_error(conn.async_get_block_info("st1", "vdz", 0u));
    CHECK(unknown.ec == errc::invalid_arg);
    auto user = co_await catch_error(conn.async_interface_stats("st1", "52:54:00:aa:bb:01"));
    CHECK(user.message == "Interface name not provided");
    auto nonet = co_await catch_error(conn.async_interface_stats("st1", "nope0"));
    CHECK(nonet.message == "'nope0' is not a known interface");
    if (root) {
      // The tap's counters, turned around: what the host's side sent, the guest received.
      auto ifs = co_await conn.async_interface_stats("st1", tap);
      std::string sys = "/sys/class/net/" + tap + "/statistics/";
      CHECK(static_cast<unsigned long long>(ifs.tx_bytes) == sysfs_number(sys + "rx_bytes"));
      CHECK(static_cast<unsigned long long>(ifs.rx_packets) == sysfs_number(sys + "tx_packets"));
      auto by_mac = co_await conn.async_interface_stats("st1", "52:54:00:AA:BB:02");
      CHECK(by_mac.tx_bytes == ifs.tx_bytes);
    }

    // Filters and enforcement.
    const std::vector<covirt::domain_key> none;
    auto inactive = co_await conn.async_get_all_domain_stats(none, covirt::stats_types::state, covirt::list_flags::inactive);
    CHECK(inactive.empty());
    auto bad = co_await catch_error(conn.async_get_all_domain_stats(none, 1u << 20, covirt::stats_flags::enforce));
    CHECK(bad.ec == errc::argument_unsupported);
    co_await conn.async_destroy("st1");
    auto gone = co_await catch_error(conn.async_memory_stats("st1", 0u));
    CHECK(gone.message == "domain is not running");
  });
}
