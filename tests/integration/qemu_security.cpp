// Integration tests: the QEMU driver's DAC security model with real QEMU 7.2 (TCG), as root: a
// static label runs QEMU as that user and group, the image belongs to them while the guest runs
// and to its owner again after, the dynamic default is the driver's own identity, and the labels
// it cannot honour are refused by name with nothing left behind.
#include <covirt/connection.hpp>

#include "common/qemu_guests.hpp"
#include "common/run.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

namespace {

std::string labelled_xml(const std::string& name, const std::string& image, const std::string& seclabel) {
  return "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>64</memory>"
         "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
         "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + image +
         "'/><target dev='vda' bus='virtio'/></disk><memballoon model='none'/></devices>" + seclabel + "</domain>";
}

/// The real and effective ids of /proc/PID/status's line `key` ("Uid:", "Gid:").
std::string ids_of(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) {
      std::istringstream s(line.substr(key.size()));
      std::string real, eff;
      s >> real >> eff;
      return real + "/" + eff;
    }
  return "";
}

std::pair<unsigned, unsigned> owner_of(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return {st.st_uid, st.st_gid};
}

}  // namespace

TEST_CASE("qemu security: a DAC label runs QEMU as its user, whose the images are while it runs", "[qemu_security]") {
  REQUIRE(::geteuid() == 0);  // the DAC model is a privileged driver's (CI runs as root)
  guest_dir dir;
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string image = (dir.path / "disk.raw").string();
  { std::ofstream(image).put('\0'); }
  fs::resize_file(image, 1 << 20);
  fs::permissions(image, fs::perms::owner_read | fs::perms::owner_write);
  REQUIRE(::chown(image.c_str(), 0, 0) == 0);
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await open_connection(ex, dir.uri());
    auto model = co_await conn.async_node_get_security_model();
    CHECK(model.model == "dac");
    CHECK(model.doi == "0");

    // Static, relabelled: QEMU as 4242:4243, the image theirs until the guest stops.
    std::string xml = labelled_xml("dac1", image,
                                   "<seclabel type='static' model='dac' relabel='yes'><label>+4242:+4243</label></seclabel>");
    co_await conn.async_create_xml(xml, 0);
    auto pids = qemu_pids_with(dir.path.string());
    REQUIRE(pids.size() == 1);
    CHECK(ids_of(pids[0], "Uid:") == "4242/4242");
    CHECK(ids_of(pids[0], "Gid:") == "4243/4243");
    CHECK(owner_of(image) == std::pair{4242u, 4243u});
    auto label = co_await conn.async_get_security_label("dac1");
    CHECK(label.label == "+4242:+4243");
    CHECK(label.enforcing);
    // The monitor QEMU inherited works: a state change goes through it.
    co_await conn.async_suspend("dac1");
    CHECK((co_await conn.async_get_state("dac1")).state == domain_state::paused);
    co_await conn.async_destroy("dac1");
    CHECK(owner_of(image) == std::pair{0u, 0u});
    CHECK(qemu_pids_with(dir.path.string()).empty());

    // No <seclabel>: the dynamic default, the driver's own identity.
    std::string plain = labelled_xml("dac2", image, "");
    co_await conn.async_create_xml(plain, 0);
    pids = qemu_pids_with(dir.path.string());
    REQUIRE(pids.size() == 1);
    CHECK(ids_of(pids[0], "Uid:") == "0/0");
    CHECK((co_await conn.async_get_security_label("dac2")).label == "+0:+0");
    co_await conn.async_destroy("dac2");
    std::string none = labelled_xml("dac3", image, "<seclabel type='none'/>");
    co_await conn.async_create_xml(none, 0);
    CHECK((co_await conn.async_get_security_label("dac3")).label.empty());
    co_await conn.async_destroy("dac3");

    // Refused: a model covirt lacks; a static label without relabel cannot open a root-only
    // image (QEMU's own error), and the image keeps its owner.
    std::string selinux = labelled_xml("dac4", image, "<seclabel type='dynamic' model='selinux'/>");
    auto t = co_await catch_error(conn.async_create_xml(selinux, 0));
    CHECK(t.ec == errc::config_unsupported);
    CHECK(t.message == "<seclabel model='selinux'> is not supported by covirt's qemu driver (only 'dac')");
    std::string norelabel = labelled_xml("dac5", image,
                                         "<seclabel type='static' model='dac'><label>+4242:+4243</label></seclabel>");
    auto t2 = co_await catch_error(conn.async_create_xml(norelabel, 0));
    CHECK(t2.threw);
    CHECK(t2.message.find("Permission denied") != std::string::npos);
    CHECK(owner_of(image) == std::pair{0u, 0u});
    CHECK(qemu_pids_with(dir.path.string()).empty());
  }, 60s);
}
