// The Xen driver (xen:///) against the tests' xend (tests/fixtures/fake_xend.cpp, which writes its
// domains' nodes into a real xenstored as xend did) and Debian's real C xenstored: the driver's
// reads, its changes through xend, its config files, and the events its xenstore watches see.
#include "common/connection_helpers.hpp"
#include "common/fake_xend.hpp"
#include "common/libvirtd.hpp"
#include "common/qemu_guests.hpp"
#include "common/xenstored.hpp"

#include <covirt/connection.hpp>
#include <covirt/xen/driver.hpp>
#include <covirt/xen/xen_config.hpp>
#include <covirt/xen/xend.hpp>
#include <covirt/xen/xenstore.hpp>

#include <fstream>

namespace {

using covirt::connection;

const char* const web1_xml = R"(<domain type='xen'>
  <name>web1</name>
  <uuid>4f77abd2-3019-58e8-3bab-6fbf2118f880</uuid>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/boot/vmlinuz-xen</kernel>
    <cmdline>root=/dev/xvda ro</cmdline>
  </os>
  <devices>
    <disk type='block' device='disk'>
      <driver name='phy'/>
      <source dev='/dev/vg0/web1'/>
      <target dev='xvda' bus='xen'/>
    </disk>
    <interface type='bridge'>
      <mac address='00:16:3e:12:34:56'/>
      <source bridge='xenbr0'/>
      <script path='vif-bridge'/>
    </interface>
    <console type='pty'>
      <target type='xen' port='0'/>
    </console>
  </devices>
</domain>
)";

// A Xen host of the test's own: a real xenstored, the fake xend on it, a config folder.
// With `relocation`, its xend also takes migrations (relocation_port()).
struct xen_host {
  private_xenstored xs{xenstored_kind::c};
  fake_xend_process xend;
  std::string config_dir;
  explicit xen_host(bool relocation = false)
      : xend(xs.socket(), false, relocation), config_dir(xend.dir() + "/etc-xen") {
    fs::create_directories(config_dir);
  }
  std::string uri() const {
    return "xen:///?xend_socket=" + xend.unix_path() + "&xenstore_socket=" + xs.socket() + "&config_dir=" + config_dir;
  }
};

// The event of type `t` for domain `name`, skipping others.
asio::awaitable<covirt::domain_event> event_for(covirt::event_stream& s, const std::string& name, event_type t) {
  for (;;) {
    auto e = co_await next_event(s, 20s);
    UNSCOPED_INFO("event " << e.domain.name << " " << covirt::to_string(e.type));
    if (e.domain.name == name && e.type == t) co_return e;
  }
}

TEST_CASE("xen driver: node, lists, define into a config file, start through xend, state from xenstore",
          "[xen-driver]") {
  xen_host host;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, host.uri());
    CHECK(c.type() == "Xen");
    auto node = co_await c.async_node_get_info();
    CHECK(node.cpus > 0);
    CHECK(node.memory_kib > 0);
    auto caps = co_await c.async_get_capabilities();
    CHECK(caps.find("<os_type>xen</os_type>") != std::string::npos);
    auto version = co_await c.async_get_version();
    CHECK(version >= 3000000);

    // Domain-0 is there and running, as on every Xen host.
    auto all = co_await c.async_list_domains(0);
    REQUIRE_FALSE(all.empty());
    auto dom0 = co_await c.async_lookup_by_id(0);
    CHECK(dom0.name == "Domain-0");

    auto events = c.subscribe();
    auto ref = co_await c.async_define_xml(web1_xml);
    CHECK(ref.name == "web1");
    CHECK(ref.id == -1);
    // The definition is an xm config file, written whole.
    const std::string file = host.config_dir + "/web1";
    REQUIRE(fs::exists(file));
    diagnostics diag;
    auto conf = covirt::xen::parse_xen_conf(slurp(file), diag);
    REQUIRE(conf.has_value());
    auto back = covirt::xen::domain_from_xm(*conf, diag);
    REQUIRE(back.has_value());
    CHECK(back->name == "web1");
    CHECK(back->uuid == "4f77abd2-3019-58e8-3bab-6fbf2118f880");
    CHECK(back->memory_kib == 524288);
    for (auto& e : fs::directory_iterator(host.config_dir)) CHECK(e.path().filename() == "web1");  // no temporary left
    auto defined = co_await event_for(events, "web1", event_type::defined);
    CHECK(defined.domain.uuid == ref.uuid);
    auto v1 = co_await c.async_is_active("web1");
    CHECK_FALSE(v1);

    // Start: xend creates it, its nodes appear in the real xenstored, the driver says running.
    co_await c.async_create("web1");
    auto started = co_await event_for(events, "web1", event_type::started);
    CHECK(started.domain.id > 0);
    auto info = co_await c.async_get_info("web1");
    CHECK(info.state == domain_state::running);
    CHECK(info.max_mem_kib == 524288);
    CHECK(info.nr_virt_cpu == 2);
    auto now = co_await c.async_lookup_by_name("web1");
    REQUIRE(now.id > 0);
    CHECK(host.xs.tool("xenstore-read /local/domain/" + std::to_string(now.id) + "/name") == "web1\n");
    auto xml = co_await c.async_get_xml("web1", 0);
    CHECK(xml.find("<domain type='xen' id='" + std::to_string(now.id) + "'>") != std::string::npos);

    // The fast path: memory is the balloon target xend keeps in xenstore.
    co_await c.async_set_memory("web1", 131072, covirt::modify::live);
    auto after = co_await c.async_get_info("web1");
    CHECK(after.memory_kib == 131072);
    const std::string target = host.xs.tool("xenstore-read /local/domain/" + std::to_string(now.id) + "/memory/target");
    CHECK(target == "131072\n");

    // Pause and unpause through xend; the events come.
    co_await c.async_suspend("web1");
    co_await event_for(events, "web1", event_type::suspended);
    auto paused = co_await c.async_get_state("web1");
    CHECK(paused.state == domain_state::paused);
    co_await c.async_resume("web1");
    co_await event_for(events, "web1", event_type::resumed);

    // vCPUs: count, pinning, what xend reports.
    co_await c.async_set_vcpus("web1", 1, covirt::modify::live);
    auto too_many = co_await code_of(c.async_set_vcpus("web1", 8, covirt::modify::live));
    CHECK(too_many == errc::invalid_arg);
    co_await c.async_pin_vcpu("web1", 0, "0");
    auto vcpus = co_await c.async_get_vcpus("web1");
    REQUIRE_FALSE(vcpus.empty());
    CHECK(vcpus[0].number == 0);
    CHECK(vcpus[0].affinity.substr(0, 1) == "y");

    // Destroy: stopped, and the domain's nodes are gone from xenstore.
    co_await c.async_destroy("web1");
    auto stopped = co_await event_for(events, "web1", event_type::stopped);
    CHECK(stopped.detail == detail_::stopped_destroyed);
    int st = 0;
    host.xs.tool("xenstore-exists /local/domain/" + std::to_string(now.id) + "/name", &st);
    CHECK(st != 0);
    auto v2 = co_await c.async_is_active("web1");
    CHECK_FALSE(v2);
    auto v3 = co_await c.async_is_persistent("web1");
    CHECK(v3);

    // Undefine: the config file goes.
    co_await c.async_undefine("web1");
    co_await event_for(events, "web1", event_type::undefined);
    CHECK_FALSE(fs::exists(file));
    auto gone = co_await code_of(c.async_lookup_by_name("web1"));
    CHECK(gone == errc::no_domain);
  }, 120s);
}

TEST_CASE("xen driver: a domain started by someone else on the host shows up through the xenstore watch",
          "[xen-driver]") {
  xen_host host;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, host.uri());
    auto events = c.subscribe();
    // Another toolstack (here: a xend client of its own) creates a domain; the driver calls nothing.
    covirt::xen::xend other(ex, covirt::xen::xend_endpoint{host.xend.unix_path(), "", ""});
    diagnostics diag;
    const std::string config =
        "(vm (name other1) (memory 128) (maxmem 128) (vcpus 1) (uuid 6a1c5e21-0b8e-4f9b-a1d2-3c4d5e6f7081) "
        "(image (linux (kernel /boot/vmlinuz))))";
    const std::vector<std::pair<std::string, std::string>> form{{"op", "create"}, {"config", config}};
    auto made = co_await other.post("/xend/domain/", form, diag);
    INFO(diag.message());
    REQUIRE(made.has_value());
    auto started = co_await event_for(events, "other1", event_type::started);
    CHECK(started.domain.uuid == "6a1c5e21-0b8e-4f9b-a1d2-3c4d5e6f7081");
    auto ref = co_await c.async_lookup_by_name("other1");
    CHECK(ref.id > 0);
    // And destroyed by the other toolstack: stopped, and a transient domain is gone.
    const std::vector<std::pair<std::string, std::string>> destroy{{"op", "destroy"}};
    auto d = co_await other.post("/xend/domain/other1", destroy, diag);
    REQUIRE(d.has_value());
    co_await event_for(events, "other1", event_type::stopped);
    auto gone = co_await code_of(c.async_lookup_by_name("other1"));
    CHECK(gone == errc::no_domain);
  }, 60s);
}

TEST_CASE("xen driver: shutdown through xend, create_xml, save and restore, errors with xend's words",
          "[xen-driver]") {
  xen_host host;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, host.uri());
    auto events = c.subscribe();
    auto ref = co_await c.async_create_xml(web1_xml, 0);
    CHECK(ref.id > 0);
    CHECK_FALSE(fs::exists(host.config_dir + "/web1"));  // transient: no config file
    auto v4 = co_await c.async_is_persistent("web1");
    CHECK_FALSE(v4);

    const std::string image = host.xend.dir() + "/web1.save";
    co_await c.async_save("web1", image);
    auto saved = co_await event_for(events, "web1", event_type::stopped);
    CHECK(saved.detail == detail_::stopped_saved);
    CHECK(fs::exists(image));
    auto restored = co_await c.async_restore(image);
    CHECK(restored.name == "web1");
    CHECK(restored.id > 0);

    co_await c.async_shutdown("web1");
    co_await event_for(events, "web1", event_type::stopped);
    auto gone = co_await code_of(c.async_lookup_by_name("web1"));
    CHECK(gone == errc::no_domain);

    // xend's own words reach the caller: a 500 with (xend.err '...') for a vCPU the domain lacks.
    auto again = co_await c.async_create_xml(web1_xml, 0);
    std::string msg;
    auto failed = co_await code_of(c.async_pin_vcpu(again, 7, "0"), &msg);
    CHECK(failed == errc::post_failed);
    CHECK(msg == "Invalid VCPU 7");
    co_await c.async_destroy(again);
  }, 60s);
}

TEST_CASE("xen driver: attach and detach a disk, live through xend and in the config file", "[xen-driver]") {
  xen_host host;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, host.uri());
    const std::string disk = "<disk type='block' device='disk'><driver name='phy'/><source dev='/dev/vg0/data'/>"
                             "<target dev='xvdb' bus='xen'/></disk>";
    auto ref = co_await c.async_define_xml(web1_xml);
    // In the definition only: the config file names the new disk.
    co_await c.async_attach_device(ref, disk, covirt::device_modify::config);
    CHECK(slurp(host.config_dir + "/web1").find("xvdb") != std::string::npos);
    co_await c.async_detach_device(ref, disk, covirt::device_modify::config);
    CHECK(slurp(host.config_dir + "/web1").find("xvdb") == std::string::npos);

    // Live: xend's device_create puts its backend into the real xenstored; detach finds its id there.
    co_await c.async_create("web1");
    auto now = co_await c.async_lookup_by_name("web1");
    const std::string backend = "/local/domain/0/backend/vbd/" + std::to_string(now.id);
    const std::string before = host.xs.tool("xenstore-ls " + backend);
    co_await c.async_attach_device("web1", disk, covirt::device_modify::live);
    const std::string with = host.xs.tool("xenstore-ls " + backend);
    CHECK(with.find("xvdb") != std::string::npos);
    CHECK(before.find("xvdb") == std::string::npos);
    co_await c.async_detach_device("web1", disk, covirt::device_modify::live);
    CHECK(host.xs.tool("xenstore-ls " + backend).find("xvdb") == std::string::npos);
    std::string msg;
    auto missing = co_await code_of(c.async_detach_device("web1", disk, covirt::device_modify::live), &msg);
    CHECK(missing == errc::operation_failed);
    CHECK(msg == "device xvdb not found in the running domain");
    co_await c.async_destroy("web1");
  }, 60s);
}

TEST_CASE("xen driver: native configs, read-only refusal, a missing xend", "[xen-driver]") {
  xen_host host;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await covirt::async_open(ex, host.uri());
    const std::string xm = "name = \"n1\"\nuuid = \"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\"\nmemory = 256\nvcpus = 1\n"
                           "kernel = \"/boot/vmlinuz\"\ndisk = [ \"phy:/dev/vg0/n1,xvda,w\" ]\n";
    auto xml = co_await c.async_domain_xml_from_native("xen-xm", xm);
    CHECK(xml.find("<name>n1</name>") != std::string::npos);
    CHECK(xml.find("<source dev='/dev/vg0/n1'/>") != std::string::npos);
    auto again = co_await c.async_domain_xml_to_native("xen-xm", xml);
    CHECK(again.find("name = \"n1\"") != std::string::npos);
    auto sxpr = co_await c.async_domain_xml_to_native("xen-sxpr", xml);
    CHECK(sxpr.rfind("(vm ", 0) == 0);
    auto from_sxpr = co_await c.async_domain_xml_from_native("xen-sxpr", sxpr);
    CHECK(from_sxpr.find("<name>n1</name>") != std::string::npos);
    std::string msg;
    auto bad = co_await code_of(c.async_domain_xml_from_native("vmware-vmx", xm), &msg);
    CHECK(bad == errc::invalid_arg);
    CHECK(msg == "unsupported config type vmware-vmx");

    auto ro = co_await covirt::async_open(ex, host.uri(), covirt::open_flags::read_only);
    auto refused = co_await code_of(ro.async_define_xml(web1_xml));
    CHECK(refused == errc::operation_denied);
    CHECK_FALSE(fs::exists(host.config_dir + "/web1"));

    auto none = co_await code_of(covirt::async_open(ex, "xen:///?xend_socket=/nonexistent/xend-socket&xenstore_socket=" +
                                                        host.xs.socket()), &msg);
    CHECK(none == errc::no_xen);
  }, 60s);
}

TEST_CASE("xen driver: migration from one Xen host to another through xend's relocation", "[xen-driver]") {
  xen_host a, b(true);
  const std::string reloc = "xenmigr://127.0.0.1:" + std::to_string(b.xend.relocation_port());
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto src = co_await covirt::async_open(ex, a.uri());
    auto dst = co_await covirt::async_open(ex, b.uri());
    auto src_events = src.subscribe();
    auto dst_events = dst.subscribe();
    co_await src.async_define_xml(web1_xml);
    co_await src.async_create("web1");

    // Refusals before anything moves, each naming what was wrong; the guest keeps running here.
    covirt::migrate_options bad;
    bad.uri = "tcp://127.0.0.1:1";
    std::string msg;
    auto e1 = co_await code_of(src.async_migrate("web1", dst, bad), &msg);
    CHECK(e1 == errc::invalid_arg);
    CHECK(msg.find("only xenmigr://") != std::string::npos);
    bad.uri = reloc;
    bad.bandwidth_mib = 10;
    auto e2 = co_await code_of(src.async_migrate("web1", dst, bad), &msg);
    CHECK(e2 == errc::no_support);
    CHECK(msg == "Xen does not support bandwidth limits");
    bad.bandwidth_mib = 0;
    bad.flags = covirt::migrate_flags::live | covirt::migrate_flags::non_shared_disk;
    auto e3 = co_await code_of(src.async_migrate("web1", dst, bad), &msg);
    CHECK(e3 == errc::argument_unsupported);
    CHECK(msg.find("non_shared_disk") != std::string::npos);
    // Nobody listens there: xend's own error, and web1 still runs on a.
    covirt::migrate_options nowhere;
    nowhere.uri = "xenmigr://127.0.0.1:" + std::to_string(fake_xend_process::free_port());
    auto e4 = co_await code_of(src.async_migrate("web1", dst, nowhere), &msg);
    CHECK(e4 == errc::post_failed);
    CHECK(msg.find("can't connect") != std::string::npos);
    auto still = co_await src.async_get_state("web1");
    CHECK(still.state == domain_state::running);
    auto nothing = co_await code_of(dst.async_lookup_by_name("web1"));
    CHECK(nothing == errc::no_domain);

    covirt::migrate_options opt;
    opt.uri = reloc;
    opt.flags = covirt::migrate_flags::live | covirt::migrate_flags::persist_dest | covirt::migrate_flags::undefine_source;
    auto there = co_await src.async_migrate("web1", dst, opt);
    CHECK(there.name == "web1");
    CHECK(there.id > 0);
    auto left = co_await event_for(src_events, "web1", event_type::stopped);
    CHECK(left.detail == detail_::stopped_migrated);
    co_await event_for(src_events, "web1", event_type::undefined);
    auto came = co_await event_for(dst_events, "web1", event_type::started);
    CHECK(came.detail == detail_::started_migrated);
    auto st = co_await dst.async_get_state("web1");
    CHECK(st.state == domain_state::running);
    CHECK(st.reason == covirt::reason::running_migrated);
    auto persistent = co_await dst.async_is_persistent("web1");
    CHECK(persistent);
    CHECK(fs::exists(b.config_dir + "/web1"));
    CHECK_FALSE(fs::exists(a.config_dir + "/web1"));
    auto gone = co_await code_of(src.async_lookup_by_name("web1"));
    CHECK(gone == errc::no_domain);
    // b's xenstored holds the guest now; a's has nothing of it.
    auto info = co_await dst.async_get_info("web1");
    CHECK(info.memory_kib == 262144);
    co_await dst.async_destroy("web1");
  }, 60s);

  // The same through covirt-sh, paused at the destination as --suspend asks.
  const char* sh = std::getenv("COVIRT_SH");
  REQUIRE(sh);
  const std::string xml_file = a.xend.dir() + "/web1.xml";
  std::ofstream(xml_file) << web1_xml;
  int st = 0;
  const std::string out = shell(std::string(sh) + " -c '" + a.uri() + "' 'create " + xml_file +
                                    "; migrate --live --suspend web1 \"" + b.uri() + "\" --migrateuri " + reloc +
                                    "; list --all' 2>&1; " + sh + " -c '" + b.uri() + "' 'domstate --reason web1' 2>&1",
                                &st);
  INFO(out);
  CHECK(st == 0);
  CHECK(out.find("paused (user)") != std::string::npos);
  CHECK(out.find(" web1 ") == std::string::npos);  // a's list --all: web1 is not there any more
}

TEST_CASE("xen driver: covirt-sh's tour on xen:///", "[xen-driver]") {
  xen_host host;
  const char* sh = std::getenv("COVIRT_SH");
  REQUIRE(sh);
  const std::string xml_file = host.xend.dir() + "/web1.xml";
  std::ofstream(xml_file) << web1_xml;
  const std::string xm_file = host.xend.dir() + "/n1.cfg";
  std::ofstream(xm_file) << "name = \"n1\"\nmemory = 256\nvcpus = 1\nkernel = \"/boot/vmlinuz\"\n";
  int st = 0;
  const std::string out =
      shell(std::string(sh) + " -c '" + host.uri() + "' 'define " + xml_file + "; list --all; start web1; dominfo web1; " +
                "vcpupin web1 1 0; vcpupin web1; vcpuinfo web1 --pretty; vcpupin web1 0 1023; vcpupin web1 0 2-1; suspend web1; domstate web1; resume web1; destroy web1; domxml-from-native xen-xm " + xm_file +
                "; undefine web1; list --all' 2>&1",
            &st);
  INFO(out);
  CHECK(st == 0);
  CHECK(out.find("Domain 'web1' defined from " + xml_file) != std::string::npos);
  CHECK(out.find(" -    web1       shut off") != std::string::npos);
  CHECK(out.find("Domain 'web1' started") != std::string::npos);
  CHECK(out.find("OS Type:        linux") != std::string::npos);
  // The pinning, read back from xend's vcpuinfo: vCPU 1 on CPU 0 only, vCPU 0 anywhere.
  CHECK(out.find(" VCPU   CPU Affinity\n----------------------\n 0      0-") != std::string::npos);
  CHECK(out.find("\n 1      0\n") != std::string::npos);
  CHECK(out.find("VCPU:           1\nCPU:            0\nState:          running\n") != std::string::npos);
  CHECK(out.find("CPU Affinity:   0 (out of ") != std::string::npos);
  CHECK(out.find("error: CPU 1023 in cpulist '1023' exceed the maxcpu 4\n") != std::string::npos);
  CHECK(out.find("error: Invalid cpulist '2-1'\nerror: invalid argument: Failed to parse bitmap '2-1'\n") != std::string::npos);
  CHECK(out.find("Domain 'web1' suspended") != std::string::npos);
  CHECK(out.find("paused") != std::string::npos);
  CHECK(out.find("Domain 'web1' destroyed") != std::string::npos);
  CHECK(out.find("<name>n1</name>") != std::string::npos);
  CHECK(out.find("Domain 'web1' has been undefined") != std::string::npos);
  CHECK(out.find("Domain-0") != std::string::npos);
}

TEST_CASE("one io_context drives a Xen host, a QEMU host and a libvirtd at once (examples/one_loop)",
          "[xen-driver][one-loop]") {
  xen_host xen;
  guest_dir qemu("covirt-loop");
  private_libvirtd libvirtd;
  const char* one_loop = std::getenv("COVIRT_ONE_LOOP");
  REQUIRE(one_loop);
  const std::string dir = xen.xend.dir();
  std::ofstream(dir + "/xen.xml") << web1_xml;
  std::ofstream(dir + "/qemu.xml") << guest_xml("loop1");
  std::ofstream(dir + "/test.xml") << "<domain type='test'><name>r1</name><memory unit='MiB'>128</memory>"
                                      "<os><type>hvm</type></os></domain>";
  int st = 0;
  const std::string out = shell(std::string(one_loop) + " --seconds 100 --xml " + dir + "/xen.xml '" + xen.uri() +
                                    "' --xml " + dir + "/qemu.xml '" + qemu.uri() + "' --xml " + dir + "/test.xml '" +
                                    libvirtd.uri() + "' 2>&1",
                                &st);
  INFO(out);
  CHECK(st == 0);
  // Each peer's whole lifecycle, its events printed by its own coroutine on the one thread.
  for (const char* line : {"[1] Started web1 (Booted)", "[1] Suspended web1", "[1] Resumed web1", "[1] Stopped web1 (Destroyed)",
                           "[2] Started loop1 (Booted)", "[2] Suspended loop1", "[2] Resumed loop1", "[2] Stopped loop1",
                           "[3] Started r1 (Booted)", "[3] Suspended r1", "[3] Resumed r1", "[3] Stopped r1"})
    CHECK(out.find(line) != std::string::npos);
  CHECK(out.find(": Xen, ") != std::string::npos);
  CHECK(out.find(": QEMU, ") != std::string::npos);
  CHECK(out.find(": TEST, ") != std::string::npos);
}

}  // namespace
