// covirt: domain / network / capabilities XML tests.
// Some tests run the real `virsh -c test:///default` and `xmllint`; they are skipped
// (with a warning) when those tools are not installed.
#include <covirt/domain/xml.hpp>
#include <covirt/test/normalize.hpp>

#include <catch2/catch.hpp>

#include "common/data.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace covirt;
using covirt_test::read_data;
namespace fs = std::filesystem;

namespace {

bool have_tool(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct temp_file {
  fs::path path;
  explicit temp_file(const std::string& content, const std::string& suffix = ".xml") {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("covirt-xmltest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + suffix);
    std::ofstream(path, std::ios::binary) << content;
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

/// Does xmllint accept `xml` against libvirt's schema `rng` (domain, network, capability)?
bool validates(const std::string& xml, const std::string& rng) {
  temp_file f(xml);
  std::string cmd = "xmllint --noout --relaxng /usr/share/libvirt/schemas/" + rng + ".rng " + f.path.string() +
                    " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

domain_config parse_ok(std::string_view xml) {
  diagnostics diag;
  auto r = parse_domain_xml(xml, diag);
  INFO(diag.message());
  REQUIRE(r.has_value());
  return *r;
}

/// parse fails with `code` and a message containing `needle`.
void expect_domain_error(std::string_view xml, errc code, const std::string& needle) {
  diagnostics diag;
  auto r = parse_domain_xml(xml, diag);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == make_error_code(code));
  INFO("message: " << diag.message());
  CHECK(std::string(diag.message()).find(needle) != std::string::npos);
}

std::string minimal(std::string_view inner) {
  return "<domain type='test'><name>vm</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>" +
         std::string(inner) + "</domain>";
}

/// Blank the values libvirt generates randomly (uuid, interface MACs), so two definitions compare.
void blank_generated(domain_config& d, const domain_config& input) {
  if (input.uuid.empty()) d.uuid.clear();
  for (std::size_t i = 0; i < d.devices.interfaces.size(); ++i)
    if (i >= input.devices.interfaces.size() || input.devices.interfaces[i].mac.empty())
      d.devices.interfaces[i].mac.clear();
}

const char* const domain_inputs[] = {"minimal.xml",       "full.xml",          "scsi_sata_video.xml",
                                     "channel_hostdev_rng.xml", "floppy_ide_vnc.xml", "xen_os.xml",
                                     "serials_graphics.xml", "many_devices.xml", "kvm_virtio_net.xml", "qemu_realistic.xml", "libvirt_test_domain.xml"};

}  // namespace

// ------------------------------------------------------------------ round trips

TEST_CASE("xml: libvirt's own test domain formats byte for byte", "[xml]") {
  std::string text = read_data("libvirt_test_domain.xml");
  auto d = parse_ok(text);
  CHECK(d.name == "test");
  CHECK(d.uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f");
  CHECK(d.memory_kib == 8388608);
  CHECK(d.current_memory_kib == 2097152);
  CHECK(d.vcpus == 2);
  CHECK(d.vcpu_placement == "static");
  CHECK(d.os.type == "hvm");
  CHECK(d.os.arch == "i686");
  REQUIRE(d.os.boot_devs == std::vector<std::string>{"hd"});
  REQUIRE(d.devices.disks.size() == 1);
  CHECK(d.devices.disks[0].source->file == "/guest/diskimage1");
  CHECK(d.devices.disks[0].address->get("bus") == "0x01");
  REQUIRE(d.devices.interfaces.size() == 1);
  CHECK(d.devices.interfaces[0].mac == "aa:bb:cc:dd:ee:ff");
  CHECK(d.devices.interfaces[0].target_dev == std::optional<std::string>("testnet0"));
  REQUIRE(d.devices.memballoon);
  // virsh appends one newline after the document
  std::string expected = text.substr(0, text.find("</domain>") + 10);
  CHECK(format_domain_xml(d, {.id = 1}) == expected);
}

TEST_CASE("xml: a realistic virt-install style KVM domain formats byte for byte", "[xml]") {
  // every element here is in libvirt's canonical layout already, so format(parse(x)) == x
  std::string text = read_data("qemu_realistic.xml");
  auto d = parse_ok(text);
  CHECK(format_domain_xml(d) == text);
  CHECK(d.devices.controllers.size() == 5);
  CHECK(d.devices.extra.size() == 4);  // filesystem, tpm, audio, redirdev kept verbatim
  CHECK(d.extra.size() == 3);          // sysinfo, seclabel, qemu:commandline
  REQUIRE(d.memory_backing);           // <memoryBacking> and <cputune> are typed
  CHECK(d.memory_backing->source_type == "memfd");
  CHECK(d.memory_backing->access_mode == "shared");
  REQUIRE(d.cputune);
  CHECK(d.cputune->vcpupins == std::vector<cputune_def::vcpupin_t>{{0, "1"}});
  REQUIRE(d.cpu);
  CHECK(d.cpu->mode == "host-passthrough");
  CHECK(d.devices.channels[1].address->get("port") == "2");
  CHECK(d.devices.serials[0].target_children[0].name == "model");
}

TEST_CASE("xml: parse(format(x)) == x and format is idempotent", "[xml]") {
  for (auto name : domain_inputs) {
    INFO(name);
    auto d = parse_ok(read_data(name));
    std::string once = format_domain_xml(d);
    auto d2 = parse_ok(once);
    CHECK(d2 == d);
    CHECK(format_domain_xml(d2) == once);
    // and after test-driver normalisation
    diagnostics diag;
    REQUIRE(normalize_domain_for_test_driver(d, diag).has_value());
    std::string norm = format_domain_xml(d);
    auto twice = d;  // normalising a normalised definition changes nothing (redefine of dumpxml output)
    REQUIRE(normalize_domain_for_test_driver(twice, diag).has_value());
    CHECK(twice == d);
    auto d3 = parse_ok(norm);
    CHECK(d3 == d);
    CHECK(format_domain_xml(d3) == norm);
  }
}

TEST_CASE("xml: canonical formatting (units, escaping, attribute order, uuid)", "[xml]") {
  auto d = parse_ok(
      "<domain type='kvm'><name>web</name><uuid>12345678123456781234567812345678</uuid>"
      "<title>T &amp; 'q'</title><description>say \"hi\" &lt;b&gt;</description>"
      "<memory unit='GiB'>2</memory><currentMemory unit='MB'>1000</currentMemory>"
      "<vcpu current='1' cpuset='0-1' placement='static'>2</vcpu><os><type machine='pc' arch='x86_64'>hvm</type></os>"
      "<devices><disk device='disk' type='file'><target bus='virtio' dev='vda'/><source file='/a b.img'/></disk>"
      "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='1' slot='2' function='3'/></source></hostdev>"
      "</devices></domain>");
  CHECK(d.uuid == "12345678-1234-5678-1234-567812345678");
  CHECK(d.memory_kib == 2097152);
  CHECK(d.current_memory_kib == 976563);  // 10^9 bytes rounded up to KiB
  std::string out = format_domain_xml(d);
  CHECK(out.find("  <memory unit='KiB'>2097152</memory>\n") != std::string::npos);
  CHECK(out.find("<title>T &amp; &apos;q&apos;</title>") != std::string::npos);
  CHECK(out.find("<description>say &quot;hi&quot; &lt;b&gt;</description>") != std::string::npos);
  CHECK(out.find("<vcpu placement='static' cpuset='0-1' current='1'>2</vcpu>") != std::string::npos);
  CHECK(out.find("<type arch='x86_64' machine='pc'>hvm</type>") != std::string::npos);
  CHECK(out.find("    <disk type='file' device='disk'>\n      <source file='/a b.img'/>\n"
                 "      <target dev='vda' bus='virtio'/>\n    </disk>\n") != std::string::npos);
  CHECK(out.find("<address domain='0x0000' bus='0x01' slot='0x02' function='0x3'/>") != std::string::npos);
  CHECK(out.find("<domain type='kvm'>\n  <name>web</name>\n") == 0);
  CHECK(parse_ok(out) == d);
}

TEST_CASE("xml: metadata is kept verbatim and written like libvirt", "[xml]") {
  auto d = parse_ok(minimal("<metadata><app:foo xmlns:app=\"http://x/y\" a=\"1\">hi<app:b/></app:foo>"
                            "<other:x xmlns:other='urn:o'><other:y k='v'/></other:x></metadata>"));
  REQUIRE(d.metadata);
  REQUIRE(d.metadata->size() == 2);
  CHECK((*d.metadata)[0].name == "app:foo");
  CHECK((*d.metadata)[0].text == "hi");
  std::string out = format_domain_xml(d);
  CHECK(out.find("  <metadata>\n    <app:foo xmlns:app=\"http://x/y\" a=\"1\">hi<app:b/></app:foo>\n"
                 "    <other:x xmlns:other=\"urn:o\">\n      <other:y k=\"v\"/>\n    </other:x>\n  </metadata>\n") !=
        std::string::npos);
  CHECK(parse_ok(out) == d);
}

TEST_CASE("xml: unknown elements and attributes are preserved", "[xml]") {
  auto d = parse_ok(
      "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>u</name>"
      "<memory>1024</memory><vcpu>1</vcpu>"
      "<cputune><shares>2048</shares></cputune>"
      "<os><type>hvm</type><acpi><table type='slic'>/p</table></acpi></os>"
      "<features><acpi/><hyperv mode='custom'><relaxed state='on'/></hyperv><newfeature x='1'/></features>"
      "<devices>"
      "<disk type='file' device='disk' snapshot='no' futureattr='z'><source file='/d' index='3'/>"
      "<target dev='vda' bus='virtio' rotation_rate='1'/><iotune><total_bytes_sec>1000</total_bytes_sec></iotune></disk>"
      "<interface type='bridge' trustGuestRxFilters='yes'><source bridge='br0'/><virtualport type='openvswitch'/>"
      "<bandwidth><inbound average='1000'/></bandwidth></interface>"
      "<tpm model='tpm-tis'><backend type='emulator' version='2.0'/></tpm>"
      "<filesystem type='mount'><source dir='/h'/><target dir='t'/></filesystem>"
      "<futuredevice kind='x'><part/></futuredevice>"
      "</devices>"
      "<seclabel type='dynamic' model='selinux'/>"
      "<qemu:commandline><qemu:arg value='-x'/></qemu:commandline>"
      "</domain>");
  std::string out = format_domain_xml(d);
  for (const char* needle :
       {"xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'", "<cputune>\n    <shares>2048</shares>\n  </cputune>",
        "<table type='slic'>/p</table>", "<hyperv mode='custom'>\n      <relaxed state='on'/>\n    </hyperv>",
        "<newfeature x='1'/>", "snapshot='no' futureattr='z'", "<source file='/d' index='3'/>",
        "rotation_rate='1'", "<total_bytes_sec>1000</total_bytes_sec>", "trustGuestRxFilters='yes'",
        "<virtualport type='openvswitch'/>", "<inbound average='1000'/>", "<backend type='emulator' version='2.0'/>",
        "<filesystem type='mount'>", "<futuredevice kind='x'>\n      <part/>\n    </futuredevice>",
        "<seclabel type='dynamic' model='selinux'/>", "<qemu:arg value='-x'/>"}) {
    INFO(needle);
    CHECK(out.find(needle) != std::string::npos);
  }
  // libvirt's positions: cputune before os, filesystem before interface, tpm after input, seclabel after devices
  CHECK(out.find("<cputune>") < out.find("<os>"));
  CHECK(out.find("<filesystem") < out.find("<interface"));
  CHECK(out.find("<interface") < out.find("<tpm"));
  CHECK(out.find("</devices>") < out.find("<seclabel"));
  auto d2 = parse_ok(out);
  CHECK(d2 == d);
  CHECK(format_domain_xml(d2) == out);
}

TEST_CASE("xml: a domain_config built in code formats and validates", "[xml]") {
  domain_config d;
  d.type = "kvm";
  d.name = "built";
  d.memory_kib = 1u << 20;
  d.vcpus = 2;
  d.os.type = "hvm";
  disk_def disk;
  disk.source = disk_def::source_t{};
  disk.source->file = "/var/lib/images/built.qcow2";
  disk.driver = disk_def::driver_t{"qemu", "qcow2", {}, {}, {}, {}};
  disk.target_dev = "vda";
  disk.target_bus = "virtio";
  d.devices.disks.push_back(disk);
  interface_def nic;
  nic.source = interface_def::source_t{};
  nic.source->network = "default";
  nic.model_type = "virtio";
  d.devices.interfaces.push_back(nic);
  std::string out = format_domain_xml(d);  // has_devices not set: devices are still written
  CHECK(out.find("<source file='/var/lib/images/built.qcow2'/>") != std::string::npos);
  CHECK(out.find("<driver name='qemu' type='qcow2'/>") != std::string::npos);
  auto back = parse_ok(out);
  CHECK(back.devices == d.devices);
  diagnostics diag;
  REQUIRE(normalize_domain_for_test_driver(d, diag).has_value());
  CHECK(d.devices.interfaces[0].target_dev == std::optional<std::string>("testnet0"));
  REQUIRE(have_tool("xmllint"));
  CHECK(validates(format_domain_xml(d), "domain"));
}

TEST_CASE("xml: an unknown attribute or child injected anywhere survives (or is refused by name)", "[xml]") {
  for (auto name : {"qemu_realistic.xml", "many_devices.xml", "full.xml"}) {
    std::string text = read_data(name);
    int injected = 0, refused = 0;
    for (std::size_t pos = text.find('<'); pos != std::string::npos; pos = text.find('<', pos + 1)) {
      if (text[pos + 1] == '/' || text[pos + 1] == '!' || text[pos + 1] == '?') continue;
      std::size_t name_end = text.find_first_of(" />", pos);
      std::string elem = text.substr(pos + 1, name_end - pos - 1);
      INFO(name << ": <" << elem << "> at " << pos);
      // 1. unknown attribute
      std::string doc = text;
      doc.insert(name_end, " covirt-x='1&amp;2'");
      diagnostics diag;
      auto r = parse_domain_xml(doc, diag);
      if (!r) {
        ++refused;
        CHECK(std::string(diag.message()) == "attribute 'covirt-x' of <" + elem + "> is not supported");
      } else {
        ++injected;
        std::string out = format_domain_xml(*r);
        bool kept = out.find("covirt-x='1&amp;2'") != std::string::npos || out.find("covirt-x=\"1&amp;2\"") != std::string::npos;
        CHECK(kept);
        CHECK(parse_ok(out) == *r);
      }
      // 2. unknown child element (only inside elements that have an end tag)
      std::size_t close = text.find('>', pos);
      if (text[close - 1] == '/') continue;
      doc = text;
      doc.insert(close + 1, "<covirt-y z='3'/>");
      auto r2 = parse_domain_xml(doc, diag);
      if (!r2) {
        CHECK(std::string(diag.message()) == "<" + elem + "> must not contain <covirt-y>");
      } else {
        std::string out = format_domain_xml(*r2);
        bool kept = out.find("<covirt-y z='3'/>") != std::string::npos || out.find("<covirt-y z=\"3\"/>") != std::string::npos;
        CHECK(kept);
        CHECK(parse_ok(out) == *r2);
      }
    }
    CHECK(injected > 40);
    CHECK(refused < 15);
  }
}

TEST_CASE("xml: secure=false hides the graphics password", "[xml]") {
  auto d = parse_ok(minimal("<devices><graphics type='vnc' port='5900' passwd='s3cret'/></devices>"));
  CHECK(format_domain_xml(d).find("passwd='s3cret'") != std::string::npos);
  CHECK(format_domain_xml(d, {.secure = false}).find("passwd") == std::string::npos);
  CHECK(format_domain_xml(d, {.id = 7}).find("<domain type='test' id='7'>") == 0);
}

// ------------------------------------------------------------------ values

TEST_CASE("xml: memory units follow libvirt", "[xml]") {
  diagnostics diag;
  struct row {
    const char* value;
    const char* unit;
    unsigned long long kib;
  };
  for (auto [v, u, kib] : {row{"1024", "", 1024}, row{"1024", "KiB", 1024}, row{"1024", "k", 1024},
                           row{"1000", "KB", 977}, row{"2048", "b", 2}, row{"2049", "bytes", 3},
                           row{"1", "M", 1024}, row{"1", "MiB", 1024}, row{"1", "MB", 977},
                           row{"2", "G", 2097152}, row{"2", "GiB", 2097152}, row{"1", "GB", 976563},
                           row{"1", "T", 1073741824ull}, row{"1", "TiB", 1073741824ull},
                           row{"1", "TB", 976562500ull}, row{"1", "PiB", 1099511627776ull}, row{" 7 ", "kib", 7}}) {
    INFO(v << " " << u);
    auto r = parse_memory_kib(v, u, diag);
    REQUIRE(r.has_value());
    CHECK(*r == kib);
  }
  auto bad = parse_memory_kib("1", "KiX", diag);
  REQUIRE_FALSE(bad.has_value());
  CHECK(diag.message() == "memory unit 'KiX' is not known");
  CHECK_FALSE(parse_memory_kib("99999999999999999999", "", diag).has_value());
  CHECK_FALSE(parse_memory_kib("18446744073709551615", "EiB", diag).has_value());
  CHECK(std::string(diag.message()).find("too large") != std::string::npos);
}

TEST_CASE("xml: uuids with and without dashes", "[xml]") {
  diagnostics diag;
  CHECK(*parse_uuid("6695EB01F6A4830479AA97F2502E193F", diag) == "6695eb01-f6a4-8304-79aa-97f2502e193f");
  CHECK(*parse_uuid(" 6695eb01-f6a4-8304-79aa-97f2502e193f ", diag) == "6695eb01-f6a4-8304-79aa-97f2502e193f");
  CHECK_FALSE(parse_uuid("6695eb01-f6a4-8304-79aa-97f2502e193", diag).has_value());
  CHECK_FALSE(parse_uuid("6695eb01-f6a4-8304-79aa-97f2502e193f0", diag).has_value());
  CHECK_FALSE(parse_uuid("zz95eb01-f6a4-8304-79aa-97f2502e193f", diag).has_value());
  auto g = generate_uuid();
  CHECK(g.size() == 36);
  CHECK(*parse_uuid(g, diag) == g);
  CHECK(g != generate_uuid());
}

// ------------------------------------------------------------------ hostile and invalid input

TEST_CASE("xml: invalid values are refused with a clear message", "[xml]") {
  expect_domain_error("<domain type='test'><name>a/b</name><memory>1</memory></domain>", errc::xml_detail,
                      "domain name 'a/b' must not contain '/'");
  expect_domain_error("<domain type='test'><name>..</name><memory>1</memory></domain>", errc::xml_detail,
                      "must not start with '.'");
  expect_domain_error("<domain type='test'><name>.</name><memory>1</memory></domain>", errc::xml_detail,
                      "must not start with '.'");
  expect_domain_error("<domain type='test'><name></name><memory>1</memory></domain>", errc::xml_detail,
                      "name must not be empty");
  expect_domain_error("<domain type='test'><memory>1</memory></domain>", errc::xml_detail, "no <name>");
  expect_domain_error("<domain><name>x</name><memory>1</memory></domain>", errc::xml_detail, "'type'");
  expect_domain_error("<domain type='test'><name>a&#9;b</name><memory>1</memory></domain>", errc::xml_detail,
                      "control characters");
  expect_domain_error("<domain type='test'><name>x</name><uuid>not-a-uuid</uuid><memory>1</memory></domain>",
                      errc::xml_detail, "uuid 'not-a-uuid' is not a valid UUID");
  expect_domain_error("<domain type='test'><name>x</name><memory unit='KiX'>1</memory></domain>", errc::invalid_arg,
                      "memory unit 'KiX' is not known");
  expect_domain_error("<domain type='test'><name>x</name><memory>-5</memory></domain>", errc::xml_detail,
                      "memory value '-5' is not a non-negative integer");
  expect_domain_error("<domain type='test'><name>x</name><memory>lots</memory></domain>", errc::xml_detail,
                      "'lots'");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu>-1</vcpu></domain>",
                      errc::xml_detail, "vcpu count '-1'");
  expect_domain_error("<domain type='test'><name>x</name><name>y</name><memory>1</memory></domain>", errc::xml_detail,
                      "element <name> is given more than once");
  expect_domain_error("<domain type='test'><name>x</name><title>a\nb</title><memory>1</memory></domain>",
                      errc::xml_detail, "title must not contain newlines");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu>0</vcpu></domain>",
                      errc::xml_detail, "vcpu count must be greater than zero");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><os><type>hvm</type><boot dev='usb'/></os></domain>",
                      errc::xml_detail, "unknown boot device 'usb'");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><cpu><topology sockets='0' cores='1' threads='1'/></cpu></domain>",
                      errc::xml_detail, "'sockets' must be greater than zero");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu current='4'>2</vcpu></domain>",
                      errc::xml_detail, "greater than the maximum");
  expect_domain_error(minimal("<devices><interface type='user'><mac address='zz:zz'/></interface></devices>"),
                      errc::xml_detail, "MAC address 'zz:zz'");
  expect_domain_error(minimal("<devices><disk type='file'><source file='/x'/></disk></devices>"), errc::xml_detail,
                      "<target");
  expect_domain_error("<network><name>n</name></network>", errc::xml_error, "expected root element <domain>");
}

TEST_CASE("xml: malformed documents", "[xml]") {
  // Syntax errors are xml_detail, as libvirtd answers for them (libxml2's errors).
  expect_domain_error("<domain type='test'><name>x</name>", errc::xml_detail, "malformed XML");
  expect_domain_error("<domain type='test'><name>x</nam></domain>", errc::xml_detail, "malformed XML");
  expect_domain_error("", errc::xml_detail, "malformed XML");
  expect_domain_error("<domain type='test' type='x'/>", errc::xml_error, "attribute 'type' repeated on <domain>");
  expect_domain_error("<domain type='test'/><domain type='test'/>", errc::xml_detail, "malformed XML");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory></domain>trailing", errc::xml_detail,
                      "malformed XML");
}

TEST_CASE("xml: truncated and mutated documents never crash and round trip when accepted", "[xml]") {
  for (auto name : {"many_devices.xml", "full.xml"}) {
    std::string text = read_data(name);
    diagnostics diag;
    int accepted = 0;
    auto check_one = [&](const std::string& doc) {
      auto r = parse_domain_xml(doc, diag);
      if (!r) {
        CHECK_FALSE(diag.message().empty());
        return;
      }
      ++accepted;
      std::string once = format_domain_xml(*r);
      auto again = parse_domain_xml(once, diag);
      INFO(doc);
      REQUIRE(again.has_value());
      CHECK(*again == *r);
      CHECK(format_domain_xml(*again) == once);
    };
    for (std::size_t len = 0; len <= text.size(); len += 7) check_one(text.substr(0, len));
    CHECK(accepted >= 1);  // the full document at least (when len hits the end)
    check_one(text);
    std::uint32_t seed = 12345;
    auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
    const char junk[] = "<>/'\"&=x \n\t;#";
    for (int i = 0; i < 3000; ++i) {
      std::string m = text;
      for (int k = 0; k < 3; ++k) m[next() % m.size()] = junk[next() % (sizeof junk - 1)];
      check_one(m);
    }
  }
}

TEST_CASE("xml: a 50 MB document is refused by size, before parsing", "[xml]") {
  std::string big = "<domain type='test'><name>x</name><description>";
  big.append(50u * 1024u * 1024u, 'a');
  big += "</description><memory>1</memory></domain>";
  // The message shows the size check refused it, before any parsing.
  expect_domain_error(big, errc::xml_error, "more than the limit of 10485760 bytes");
}

TEST_CASE("xml: 100000 levels of nesting are refused without crashing", "[xml]") {
  std::string deep = "<domain type='test'><name>x</name><memory>1</memory><metadata>";
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  for (int i = 0; i < 100000; ++i) deep += "</a>";
  deep += "</metadata></domain>";
  expect_domain_error(deep, errc::xml_error, "deeper than the limit of 256");
  diagnostics diag;
  CHECK_FALSE(parse_network_xml("<network><name>n</name>" + deep.substr(60) + "</network>", diag).has_value());
  // depth 200 is fine
  std::string ok = "<domain type='test'><name>x</name><memory>1</memory><metadata>";
  for (int i = 0; i < 200; ++i) ok += "<a>";
  for (int i = 0; i < 200; ++i) ok += "</a>";
  ok += "</metadata></domain>";
  auto d = parse_ok(ok);
  CHECK(parse_ok(format_domain_xml(d)) == d);
}

TEST_CASE("xml: DOCTYPE and entities (billion laughs) are refused", "[xml]") {
  std::string lol =
      "<?xml version='1.0'?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
      " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
      " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
      " <!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n]>\n"
      "<domain type='test'><name>&lol9;</name><memory>1</memory></domain>";
  expect_domain_error(lol, errc::xml_error, "DOCTYPE");
  std::string xxe =
      "<!DOCTYPE d [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><domain type='test'><name>&xxe;</name>"
      "<memory>1</memory></domain>";
  expect_domain_error(xxe, errc::xml_error, "DOCTYPE");
  diagnostics diag;
  CHECK_FALSE(parse_network_xml("<!DOCTYPE n><network><name>n</name></network>", diag).has_value());
  CHECK_FALSE(parse_capabilities_xml("<!DOCTYPE c><capabilities><host/></capabilities>", diag).has_value());
}

// ------------------------------------------------------------------ schema validation

TEST_CASE("xml: formatted documents validate against libvirt's RelaxNG schemas", "[xml][xmllint]") {
  // scripts/setup installs both (libxml2-utils, libvirt0's schemas): their absence is a failure.
  REQUIRE(have_tool("xmllint"));
  REQUIRE(fs::exists("/usr/share/libvirt/schemas/domain.rng"));
  for (auto name : domain_inputs) {
    INFO(name);
    auto d = parse_ok(read_data(name));
    CHECK(validates(format_domain_xml(d), "domain"));
    diagnostics diag;
    REQUIRE(normalize_domain_for_test_driver(d, diag).has_value());
    CHECK(validates(format_domain_xml(d), "domain"));
    CHECK(validates(format_domain_xml(d, {.id = 3}), "domain"));
  }
  for (auto name : {"net_isolated_dhcp.xml", "net_nat.xml", "net_minimal.xml", "net_route_tftp.xml", "net_bridge.xml"}) {
    INFO(name);
    diagnostics diag;
    auto n = parse_network_xml(read_data(name), diag);
    REQUIRE(n.has_value());
    CHECK(validates(format_network_xml(*n), "network"));
    REQUIRE(normalize_network_for_test_driver(*n, diag).has_value());
    CHECK(validates(format_network_xml(*n), "network"));
  }
  CHECK(validates(format_capabilities_xml(test_driver_default_capabilities()), "capability"));
}

// ------------------------------------------------------------------ test driver normalisation vs real virsh

namespace {

/// `virsh define FILE; dumpxml --inactive NAME` (one process, the test driver lives in memory).
std::string virsh_define_dump(const std::string& xml, const std::string& name, bool network = false) {
  temp_file f(xml);
  std::string cmds = network ? "net-define " + f.path.string() + "; net-dumpxml " + name
                             : "define " + f.path.string() + "; dumpxml --inactive " + name;
  std::string out = run("virsh -q -c test:///default \"" + cmds + "\" 2>&1");
  auto pos = out.find(network ? "<network" : "<domain");
  return pos == std::string::npos ? out : out.substr(pos);
}

}  // namespace

TEST_CASE("xml: normalisation matches libvirt 9.0's test driver (virsh define; dumpxml)", "[xml][virsh]") {
  REQUIRE(have_tool("virsh"));
  for (auto file : {"minimal.xml", "full.xml", "scsi_sata_video.xml", "channel_hostdev_rng.xml",
                    "floppy_ide_vnc.xml", "xen_os.xml", "serials_graphics.xml", "many_devices.xml", "kvm_virtio_net.xml", "qemu_realistic.xml"}) {
    INFO(file);
    std::string text = read_data(file);
    auto input = parse_ok(text);
    std::string got = virsh_define_dump(text, input.name);
    INFO("virsh said: " << got);
    auto theirs = parse_ok(got);
    auto ours = input;
    diagnostics diag;
    REQUIRE(normalize_domain_for_test_driver(ours, diag).has_value());
    // generated values: same shape, then blanked for the comparison
    CHECK(ours.uuid.size() == 36);
    for (auto& n : ours.devices.interfaces) CHECK(n.mac.rfind("52:54:00:", 0) == 0);
    blank_generated(ours, input);
    blank_generated(theirs, input);
    for (auto& g : ours.devices.graphics) g.passwd.clear();  // dumpxml without --security-info
    // Known divergence: the test driver has no qemu namespace and drops <qemu:commandline>
    // and xmlns:qemu; covirt keeps unknown content.
    std::erase_if(ours.extra, [](const xml_element& e) { return e.name.find(':') != std::string::npos; });
    std::erase_if(ours.extra_attrs, [](const auto& a) { return a.first.rfind("xmlns:", 0) == 0; });
    CHECK(format_domain_xml(ours, {.secure = false}) == format_domain_xml(theirs, {.secure = false}));
    CHECK(ours == theirs);
  }
}

TEST_CASE("xml: normalisation details verified with virsh", "[xml]") {
  diagnostics diag;
  auto d = parse_ok(
      "<domain type='test'><name>n</name><memory unit='KB'>1000</memory><currentMemory unit='GiB'>4</currentMemory>"
      "<vcpu>2</vcpu><os><type>hvm</type></os><cpu><topology sockets='1' cores='2' threads='1'/></cpu><devices>"
      "<disk type='file' device='cdrom'><source file='/b.iso'/><target dev='hdc'/><readonly/></disk>"
      "<disk type='file' device='disk'><source file='/s'/><target dev='sdi'/></disk>"
      "<interface type='network'><source network='default'/></interface>"
      "<interface type='user'><target dev='testnet0'/></interface>"
      "<serial type='pty'/><channel type='unix'><target type='virtio' name='a'/></channel>"
      "<graphics type='vnc'/><video><model type='qxl'/></video><video/></devices></domain>");
  REQUIRE(normalize_domain_for_test_driver(d, diag).has_value());
  CHECK(d.memory_kib == 977);
  CHECK(d.current_memory_kib == 977);  // clamped to <memory>
  CHECK(d.vcpu_placement == "static");
  CHECK(d.os.arch == "i686");
  CHECK(d.os.boot_devs == std::vector<std::string>{"hd"});
  CHECK(d.clock->offset == "utc");
  CHECK(d.on_poweroff == "destroy");
  CHECK(d.on_reboot == "restart");
  CHECK(d.on_crash == "destroy");
  CHECK(d.cpu->topology->dies == 1);
  auto& dv = d.devices;
  CHECK(dv.disks[0].target_bus == "ide");
  CHECK(dv.disks[0].address->attrs == xml_attributes{{"controller", "0"}, {"bus", "1"}, {"target", "0"}, {"unit", "0"}});
  CHECK(dv.disks[1].target_bus == "scsi");
  CHECK(dv.disks[1].address->get("controller") == "1");
  CHECK(dv.disks[1].address->get("unit") == "1");
  REQUIRE(dv.controllers.size() == 4);
  CHECK(dv.controllers[0].type == "scsi");
  CHECK(dv.controllers[1].type == "scsi");
  CHECK(dv.controllers[1].index == 1u);
  CHECK(dv.controllers[2].type == "ide");
  CHECK(dv.controllers[3].type == "virtio-serial");
  CHECK(dv.interfaces[0].target_dev == std::optional<std::string>("testnet1"));  // lowest unused
  CHECK(dv.interfaces[1].target_dev == std::optional<std::string>("testnet0"));
  CHECK(dv.interfaces[0].mac.size() == 17);
  REQUIRE(dv.consoles.size() == 1);
  CHECK(dv.consoles[0].target_type == "serial");
  CHECK(dv.serials[0].target_port == 0u);
  CHECK(dv.graphics[0].port == -1);
  CHECK(dv.graphics[0].autoport == "yes");
  REQUIRE(dv.graphics[0].listens.size() == 1);
  CHECK(dv.graphics[0].listens[0].type == "address");
  CHECK(dv.videos[0].primary);
  CHECK(dv.videos[0].ram == 65536u);
  CHECK(dv.videos[0].vram == 65536u);
  CHECK(dv.videos[1].model_type == "cirrus");
  CHECK(dv.videos[1].vram == 16384u);
  CHECK_FALSE(dv.videos[1].primary);
  // per-device boot order suppresses the default <boot dev='hd'/> (checked with virsh)
  auto b = parse_ok(minimal("<devices><disk type='file'><source file='/x'/><target dev='vda'/><boot order='1'/></disk></devices>"));
  REQUIRE(normalize_domain_for_test_driver(b, diag).has_value());
  CHECK(b.os.boot_devs.empty());
  CHECK(b.devices.disks[0].target_bus == "virtio");
  CHECK_FALSE(b.devices.disks[0].address);
  CHECK(format_domain_xml(b).find("<target dev='vda' bus='virtio'/>\n      <boot order='1'/>\n    </disk>") != std::string::npos);
  auto both = parse_ok("<domain type='test'><name>x</name><memory>1</memory><os><type>hvm</type><boot dev='hd'/></os>"
                       "<devices><interface type='user'><boot order='1'/></interface></devices></domain>");
  CHECK_FALSE(normalize_domain_for_test_driver(both, diag).has_value());
  CHECK(std::string(diag.message()).find("per-device boot") != std::string::npos);
  // os type, memory: refused like virsh define refuses them
  auto noos = parse_ok("<domain type='test'><name>x</name><memory>1024</memory></domain>");
  CHECK_FALSE(normalize_domain_for_test_driver(noos, diag).has_value());
  CHECK(std::string(diag.message()) == "an os <type> must be specified");
  auto nomem = parse_ok("<domain type='test'><name>x</name><memory>0</memory><os><type>hvm</type></os></domain>");
  CHECK_FALSE(normalize_domain_for_test_driver(nomem, diag).has_value());
  CHECK(std::string(diag.message()).find("<memory>") != std::string::npos);
  auto pv = parse_ok("<domain type='xen'><name>x</name><memory>1024</memory><os><type>linux</type></os></domain>");
  REQUIRE(normalize_domain_for_test_driver(pv, diag).has_value());
  CHECK(pv.os.boot_devs.empty());
  CHECK(pv.type == "xen");
  // starting changes nothing but the id
  auto before = d;
  prepare_live_domain_for_test_driver(d, 5);
  CHECK(d == before);
}

// ------------------------------------------------------------------ network

TEST_CASE("xml: network parse, format, round trip", "[xml]") {
  diagnostics diag;
  auto n = parse_network_xml(read_data("net_nat.xml"), diag);
  INFO(diag.message());
  REQUIRE(n.has_value());
  CHECK(n->name == "n2");
  CHECK(n->forward_mode == "nat");
  CHECK(n->forward_dev == "eth0");
  CHECK(n->nat_ports == std::pair<unsigned, unsigned>{1024, 65535});
  CHECK(n->mtu == 9000u);
  CHECK(n->mac == "52:54:00:aa:bb:cc");
  CHECK(n->domain_name == "example.com");
  REQUIRE(n->ips.size() == 2);
  CHECK(n->ips[0].family == "ipv6");
  CHECK(n->ips[0].prefix == 64u);
  CHECK(n->bridge_name.empty());
  std::string out = format_network_xml(*n);
  auto n2 = parse_network_xml(out, diag);
  REQUIRE(n2.has_value());
  CHECK(*n2 == *n);
  CHECK(format_network_xml(*n2) == out);

  auto def = parse_network_xml(
      "<network><name>default</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid><forward mode='nat'/>"
      "<bridge name='virbr0' stp='on' delay='0'/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>"
      "<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip><portgroup name='p' default='yes'/></network>",
      diag);
  REQUIRE(def.has_value());
  CHECK(def->bridge_name == "virbr0");
  REQUIRE(def->ips.size() == 1);
  CHECK(def->ips[0].dhcp_ranges[0].end == "192.168.122.254");
  CHECK(format_network_xml(*def) ==
        "<network>\n  <name>default</name>\n  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>\n"
        "  <forward mode='nat'/>\n  <bridge name='virbr0' stp='on' delay='0'/>\n"
        "  <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp>\n"
        "      <range start='192.168.122.2' end='192.168.122.254'/>\n    </dhcp>\n  </ip>\n"
        "  <portgroup name='p' default='yes'/>\n</network>\n");

  CHECK_FALSE(parse_network_xml("<network><name>a/b</name></network>", diag).has_value());
  CHECK(diag.message() == "network name 'a/b' must not contain '/'");
  CHECK_FALSE(parse_network_xml("<network><name>x</name><ip address='1.2.3.4' prefix='40'/></network>", diag).has_value());
  CHECK_FALSE(parse_network_xml("<network><name>x</name><forward><nat><port start='9' end='2'/></nat></forward></network>", diag).has_value());
}

TEST_CASE("xml: network normalisation matches virsh net-define; net-dumpxml", "[xml][virsh]") {
  REQUIRE(have_tool("virsh"));
  for (auto file : {"net_isolated_dhcp.xml", "net_nat.xml", "net_minimal.xml", "net_route_tftp.xml", "net_bridge.xml"}) {
    INFO(file);
    std::string text = read_data(file);
    diagnostics diag;
    auto ours = parse_network_xml(text, diag);
    REQUIRE(ours.has_value());
    std::string got = virsh_define_dump(text, ours->name, true);
    INFO("virsh said: " << got);
    auto theirs = parse_network_xml(got, diag);
    REQUIRE(theirs.has_value());
    REQUIRE(normalize_network_for_test_driver(*ours, diag).has_value());
    CHECK(ours->uuid.size() == 36);
    ours->uuid = theirs->uuid;
    CHECK(format_network_xml(*ours) == got.substr(0, got.find("</network>") + 11));
    CHECK(*ours == *theirs);
  }
}

// ------------------------------------------------------------------ capabilities

TEST_CASE("xml: test driver capabilities are exactly virsh's", "[xml]") {
  auto caps = test_driver_default_capabilities();
  CHECK(caps.host.cpu.arch == "i686");
  CHECK(caps.host.cells.size() == 2);
  CHECK(caps.host.cells[1].cpus.size() == 8);
  CHECK(caps.host.cells[1].memory_kib == 4194304);
  REQUIRE(caps.guests.size() == 2);
  CHECK(caps.guests[0].os_type == "hvm");
  CHECK(caps.guests[1].os_type == "xen");
  CHECK(caps.guests[0].domains[0].type == "test");
  std::string text = read_data("test_capabilities.xml");
  std::string expected = text.substr(0, text.find("</capabilities>") + 16);
  CHECK(format_capabilities_xml(caps) == expected);
  diagnostics diag;
  auto parsed = parse_capabilities_xml(text, diag);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == caps);
  REQUIRE(have_tool("virsh"));
  std::string live = run("virsh -c test:///default capabilities 2>/dev/null");
  CHECK(format_capabilities_xml(caps) == live.substr(0, live.find("</capabilities>") + 16));
}

TEST_CASE("xml: capabilities with qemu-style content round trip", "[xml]") {
  std::string text =
      "<capabilities>\n\n  <host>\n    <uuid>11111111-2222-3333-4444-555555555555</uuid>\n    <cpu>\n"
      "      <arch>x86_64</arch>\n      <model>Skylake</model>\n      <vendor>Intel</vendor>\n"
      "      <feature name='vmx'/>\n      <pages unit='KiB' size='4'/>\n    </cpu>\n"
      "    <power_management>\n      <suspend_mem/>\n    </power_management>\n    <iommu support='yes'/>\n"
      "    <migration_features>\n      <live/>\n      <uri_transports>\n        <uri_transport>tcp</uri_transport>\n"
      "      </uri_transports>\n    </migration_features>\n    <secmodel>\n      <model>dac</model>\n"
      "      <doi>0</doi>\n      <baselabel type='kvm'>+0:+0</baselabel>\n    </secmodel>\n  </host>\n\n"
      "  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n"
      "      <emulator>/usr/bin/qemu-system-x86_64</emulator>\n      <machine maxCpus='255'>pc-i440fx-7.2</machine>\n"
      "      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>\n      <domain type='qemu'/>\n"
      "      <domain type='kvm'/>\n    </arch>\n    <features>\n      <acpi default='on' toggle='yes'/>\n"
      "    </features>\n  </guest>\n\n</capabilities>\n";
  diagnostics diag;
  auto c = parse_capabilities_xml(text, diag);
  INFO(diag.message());
  REQUIRE(c.has_value());
  CHECK(c->guests[0].machines[1].canonical == "pc-i440fx-7.2");
  CHECK(c->guests[0].machines[1].max_cpus == 255u);
  CHECK(format_capabilities_xml(*c) == text);
  REQUIRE(have_tool("xmllint"));
  CHECK(validates(text, "capability"));
}

// ------------------------------------------------------------------ tuning: blkiotune, memtune, memoryBacking, cputune, numatune

namespace {

/// Every field of the five tuning elements, in an order and spelling libvirt normalises.
const char* const tuning_input = R"(<domain type='test'>
  <name>tuned</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='MiB'>1024</memory>
  <blkiotune>
    <device><path>/dev/sdb</path><write_bytes_sec>40</write_bytes_sec></device>
    <weight>800</weight>
    <device>
      <path>/dev/sda</path><write_bytes_sec>40</write_bytes_sec><read_bytes_sec>30</read_bytes_sec>
      <write_iops_sec>20</write_iops_sec><read_iops_sec>10</read_iops_sec><weight>500</weight>
    </device>
  </blkiotune>
  <memtune>
    <swap_hard_limit unit='GiB'>2</swap_hard_limit><min_guarantee unit='MB'>1</min_guarantee>
    <soft_limit>1000</soft_limit><hard_limit unit='M'>1</hard_limit>
  </memtune>
  <memoryBacking>
    <discard/><allocation threads='8' mode='immediate'/><access mode='shared'/><source type='memfd'/>
    <locked/><nosharepages/>
    <hugepages><page unit='M' size='2' nodeset=' 0-2 ,^1'/><page size='1' unit='GiB'/></hugepages>
  </memoryBacking>
  <vcpu placement='static' cpuset='0-2,^1,5-6'>8</vcpu>
  <iothreads>2</iothreads>
  <cputune>
    <memorytune vcpus='0'><node id='0' bandwidth='50'/></memorytune>
    <vcpusched vcpus='0' scheduler='fifo' priority='1'/>
    <emulatorpin cpuset=' 1 - 3 , 7'/>
    <iothreadpin iothread='1' cpuset='0-3,^2'/>
    <vcpupin vcpu='3' cpuset='0-2,^1'/><vcpupin vcpu='1' cpuset='2'/>
    <iothread_quota>3000</iothread_quota><iothread_period>2000</iothread_period>
    <emulator_quota>-1</emulator_quota><emulator_period>1000000</emulator_period>
    <quota>17592186044415</quota><period>1000</period>
    <global_quota>5000</global_quota><global_period>100000</global_period>
    <shares>2048</shares>
  </cputune>
  <numatune>
    <memnode nodeset='1-2,^2' cellid='2'/>
    <memnode cellid='0' mode='preferred' nodeset='0'/>
    <memory mode='interleave' nodeset='0-2,^1,5'/>
  </numatune>
  <os><type>hvm</type></os>
  <cpu><numa><cell id='0' cpus='0-1' memory='262144' unit='KiB'/><cell id='1' cpus='2-3' memory='262144' unit='KiB'/><cell id='2' cpus='4-7' memory='524288' unit='KiB'/></numa></cpu>
</domain>
)";

/// What virsh 9.0 prints for tuning_input (define; dumpxml on test:///default), from
/// <blkiotune> to </numatune>.
const char* const tuning_virsh = R"(  <blkiotune>
    <weight>800</weight>
    <device>
      <path>/dev/sdb</path>
      <write_bytes_sec>40</write_bytes_sec>
    </device>
    <device>
      <path>/dev/sda</path>
      <weight>500</weight>
      <read_iops_sec>10</read_iops_sec>
      <write_iops_sec>20</write_iops_sec>
      <read_bytes_sec>30</read_bytes_sec>
      <write_bytes_sec>40</write_bytes_sec>
    </device>
  </blkiotune>
  <memtune>
    <hard_limit unit='KiB'>1024</hard_limit>
    <soft_limit unit='KiB'>1000</soft_limit>
    <min_guarantee unit='KiB'>977</min_guarantee>
    <swap_hard_limit unit='KiB'>2097152</swap_hard_limit>
  </memtune>
  <memoryBacking>
    <hugepages>
      <page size='2048' unit='KiB' nodeset='0,2'/>
      <page size='1048576' unit='KiB'/>
    </hugepages>
    <nosharepages/>
    <locked/>
    <source type='memfd'/>
    <access mode='shared'/>
    <allocation mode='immediate' threads='8'/>
    <discard/>
  </memoryBacking>
  <vcpu placement='static' cpuset='0,2,5-6'>8</vcpu>
  <iothreads>2</iothreads>
  <cputune>
    <shares>2048</shares>
    <period>1000</period>
    <quota>17592186044415</quota>
    <global_period>100000</global_period>
    <global_quota>5000</global_quota>
    <emulator_period>1000000</emulator_period>
    <emulator_quota>-1</emulator_quota>
    <iothread_period>2000</iothread_period>
    <iothread_quota>3000</iothread_quota>
    <vcpupin vcpu='1' cpuset='2'/>
    <vcpupin vcpu='3' cpuset='0,2'/>
    <emulatorpin cpuset='1-3,7'/>
    <iothreadpin iothread='1' cpuset='0-1,3'/>
    <vcpusched vcpus='0' scheduler='fifo' priority='1'/>
    <memorytune vcpus='0'>
      <node id='0' bandwidth='50'/>
    </memorytune>
  </cputune>
  <numatune>
    <memory mode='interleave' nodeset='0,2,5'/>
    <memnode cellid='0' mode='preferred' nodeset='0'/>
    <memnode cellid='2' mode='strict' nodeset='1'/>
  </numatune>
)";

/// The part of a formatted domain from <blkiotune> (or <memtune>, ...) to the end of </numatune>.
std::string tuning_part(const std::string& xml) {
  std::size_t b = xml.find("  <blkiotune>");
  std::size_t e = xml.find("  </numatune>\n");
  if (b == std::string::npos || e == std::string::npos) return xml;
  return xml.substr(b, e + 14 - b);
}

/// The tuning elements of minimal()'s domain, formatted: the text between <vcpu> and <os>.
std::string tuned(std::string_view inner) {
  std::string out = format_domain_xml(parse_ok(minimal(inner)));
  std::size_t b = out.find("</currentMemory>\n");
  b = b == std::string::npos ? out.find("</memory>\n") + 10 : b + 17;
  return out.substr(b, out.find("  <os>") - b);
}

}  // namespace

TEST_CASE("xml: bitmaps follow libvirt's virBitmapParse and virBitmapFormat", "[xml]") {
  diagnostics diag;
  struct row {
    const char* text;
    const char* canonical;
  };
  for (auto [text, canonical] :
       {row{"0-2,^1,5-6", "0,2,5-6"}, row{"0-3,5", "0-3,5"}, row{" 1 , 3 - 5 ,", "1,3-5"}, row{"1-+3", "1-3"},
        row{"1,^1,2", "2"}, row{"^1,1", "1"}, row{"01", "1"}, row{"1023,1024", "1023-1024"}, row{"7,3,5,4", "3-5,7"},
        row{"^1", ""}, row{"0-4095", "0-4095"}, row{"\t2\n", "2"}}) {
    INFO(text);
    auto r = parse_bitmap(text, 4096, diag);
    INFO(diag.message());
    REQUIRE(r.has_value());
    CHECK(format_bitmap(*r) == canonical);
  }
  CHECK(*parse_bitmap("0-2,^1,5-6", 4096, diag) == std::vector<unsigned>{0, 2, 5, 6});
  for (const char* text : {"", " ", "1-", "3-1", "1,,2", ",1", "1 2", "0x2", "x", "-1", "^1-2", "1-4,^1-4", "4096",
                           "^4096", "1-4096", "2147483648", "1;2"}) {
    INFO(text);
    auto r = parse_bitmap(text, 4096, diag);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == make_error_code(errc::invalid_arg));
    CHECK(diag.message() == "Failed to parse bitmap '" + std::string(text) + "'");
  }
  CHECK(format_bitmap({}) == "");
  CHECK(format_bitmap({0, 1, 2, 3, 5, 7, 8}) == "0-3,5,7-8");
  CHECK(format_bitmap({8, 7, 5, 0, 1, 2, 3}) == "0-3,5,7-8");
}

TEST_CASE("xml: tuning elements with every field print as libvirt 9.0 does", "[xml]") {
  auto d = parse_ok(tuning_input);
  REQUIRE(d.blkiotune);
  CHECK(d.blkiotune->weight == 800u);
  REQUIRE(d.blkiotune->devices.size() == 2);
  CHECK(d.blkiotune->devices[1].path == "/dev/sda");
  CHECK(d.blkiotune->devices[1].read_iops_sec == 10u);
  REQUIRE(d.memtune);
  CHECK(d.memtune->hard_limit_kib == 1024u);
  CHECK(d.memtune->min_guarantee_kib == 977u);  // 10^6 bytes, rounded up to KiB
  CHECK(d.memtune->swap_hard_limit_kib == 2097152u);
  REQUIRE(d.memory_backing);
  CHECK(d.memory_backing->pages == std::vector<memory_backing_def::page_t>{{2048, "0,2"}, {1048576, ""}});
  CHECK(d.memory_backing->allocation_threads == 8u);
  CHECK(d.vcpu_cpuset == "0,2,5-6");
  REQUIRE(d.cputune);
  CHECK(d.cputune->shares == 2048u);
  CHECK(d.cputune->emulator_quota == -1);
  CHECK(d.cputune->quota == 17592186044415LL);
  CHECK(d.cputune->vcpupins == std::vector<cputune_def::vcpupin_t>{{1, "2"}, {3, "0,2"}});
  CHECK(d.cputune->emulatorpin == std::optional<std::string>("1-3,7"));
  REQUIRE(d.cputune->extra.size() == 3);
  CHECK(d.cputune->extra[0].name == "iothreadpin");
  REQUIRE(d.numatune);
  CHECK(d.numatune->mode == "interleave");
  CHECK(d.numatune->nodeset == "0,2,5");
  CHECK(d.numatune->memnodes.size() == 2);
  CHECK(d.extra.size() == 1);  // <iothreads>
  std::string out = format_domain_xml(d);
  CHECK(tuning_part(out) == tuning_virsh);
  auto again = parse_ok(out);
  CHECK(again == d);
  CHECK(format_domain_xml(again) == out);
  // and from a domain_config built in code, vCPU pins in any order
  domain_config b;
  b.type = "kvm";
  b.name = "b";
  b.memory_kib = 1 << 20;
  b.vcpus = 4;
  b.os.type = "hvm";
  b.cputune.emplace().vcpupins = {{3, "1"}, {0, "2-3"}};
  b.numatune = numatune_def{true, "", "1", "", {}};
  std::string bo = format_domain_xml(b);
  CHECK(bo.find("  <cputune>\n    <vcpupin vcpu='0' cpuset='2-3'/>\n    <vcpupin vcpu='3' cpuset='1'/>\n  </cputune>\n"
                "  <numatune>\n    <memory mode='strict' nodeset='1'/>\n  </numatune>\n  <os>") != std::string::npos);
  b.numatune = numatune_def{true, "preferred", "", "auto", {}};
  CHECK(format_domain_xml(b).find("<memory mode='preferred' placement='auto'/>") != std::string::npos);
}

TEST_CASE("xml: tuning values libvirt reads as unset or normalises (checked with virsh)", "[xml]") {
  // period and quota 0 are "not set"; shares 0 is kept; any negative quota is "no limit"
  CHECK(tuned("<cputune><period>0</period><quota>0</quota></cputune>") == "  <vcpu>1</vcpu>\n");
  CHECK(tuned("<cputune><shares>0</shares><global_quota>-17592186044416</global_quota></cputune>") ==
        "  <vcpu>1</vcpu>\n  <cputune>\n    <shares>0</shares>\n    <global_quota>-17592186044416</global_quota>\n"
        "  </cputune>\n");
  CHECK(tuned("<cputune/>") == "  <vcpu>1</vcpu>\n");
  // memtune: 0 is a value, 2^53-1 KiB is libvirt's "unlimited"
  CHECK(tuned("<memtune><hard_limit>0</hard_limit><soft_limit>9007199254740991</soft_limit>"
              "<min_guarantee unit='b'>1</min_guarantee></memtune>") ==
        "  <memtune>\n    <hard_limit unit='KiB'>0</hard_limit>\n    <min_guarantee unit='KiB'>1</min_guarantee>\n"
        "  </memtune>\n  <vcpu>1</vcpu>\n");
  CHECK(tuned("<memtune/>") == "  <vcpu>1</vcpu>\n");
  // blkiotune: weights of 0 and devices with nothing set are not printed
  CHECK(tuned("<blkiotune><weight>0</weight><device><path>/a</path><weight>0</weight></device>"
              "<device><path>/b</path><read_bytes_sec>18446744073709551615</read_bytes_sec></device></blkiotune>") ==
        "  <blkiotune>\n    <device>\n      <path>/b</path>\n      <read_bytes_sec>18446744073709551615</read_bytes_sec>\n"
        "    </device>\n  </blkiotune>\n  <vcpu>1</vcpu>\n");
  CHECK(tuned("<blkiotune><weight>0</weight></blkiotune>") == "  <vcpu>1</vcpu>\n");
  // memoryBacking: sizes into KiB (rounded up), 0 threads is unset, empty children say nothing
  CHECK(tuned("<memoryBacking><hugepages><page size='4097' unit='b'/></hugepages><allocation threads='0'/>"
              "<source/><access/></memoryBacking>") ==
        "  <memoryBacking>\n    <hugepages>\n      <page size='5' unit='KiB'/>\n    </hugepages>\n"
        "  </memoryBacking>\n  <vcpu>1</vcpu>\n");
  CHECK(tuned("<memoryBacking><hugepages/><nosharepages/><locked/><discard/></memoryBacking>") ==
        "  <memoryBacking>\n    <hugepages/>\n    <nosharepages/>\n    <locked/>\n    <discard/>\n"
        "  </memoryBacking>\n  <vcpu>1</vcpu>\n");
  CHECK(tuned("<memoryBacking/>") == "  <vcpu>1</vcpu>\n");
  // a page of node 0 on a guest without NUMA cells is the guest's default page size
  CHECK(tuned("<memoryBacking><hugepages><page size='2' unit='MiB' nodeset='0'/></hugepages></memoryBacking>") ==
        "  <memoryBacking>\n    <hugepages>\n      <page size='2048' unit='KiB'/>\n    </hugepages>\n"
        "  </memoryBacking>\n  <vcpu>1</vcpu>\n");
  // numatune: mode strict by default; auto placement drops the nodeset and takes unpinned vCPUs along
  CHECK(tuned("<numatune><memory nodeset='0-3,^1'/></numatune>") ==
        "  <vcpu>1</vcpu>\n  <numatune>\n    <memory mode='strict' nodeset='0,2-3'/>\n  </numatune>\n");
  CHECK(tuned("<numatune><memory placement='auto' nodeset='1'/></numatune>") ==
        "  <vcpu placement='auto'>1</vcpu>\n  <numatune>\n    <memory mode='strict' placement='auto'/>\n"
        "  </numatune>\n");
  CHECK(tuned("<numatune><memory mode='interleave' placement='auto'/></numatune><cputune><emulatorpin cpuset='1'/>"
              "</cputune>") ==
        "  <vcpu>1</vcpu>\n  <cputune>\n    <emulatorpin cpuset='1'/>\n  </cputune>\n  <numatune>\n"
        "    <memory mode='interleave' placement='auto'/>\n  </numatune>\n");
  CHECK(tuned("<numatune><memory mode='restrictive' nodeset='1'/></numatune>").find(
            "<memory mode='restrictive' nodeset='1'/>") != std::string::npos);
  // with <vcpu placement='auto'> the cpuset is ignored and the memory follows the vCPUs
  auto a = parse_ok("<domain type='test'><name>vm</name><memory>1024</memory><vcpu placement='auto' cpuset='x'>2</vcpu>"
                    "<numatune><memory mode='preferred'/></numatune><os><type>hvm</type></os></domain>");
  CHECK(a.vcpu_cpuset.empty());
  REQUIRE(a.numatune);
  CHECK(a.numatune->placement == "auto");
  CHECK(format_domain_xml(a).find("  <vcpu placement='auto'>2</vcpu>\n  <numatune>\n"
                                  "    <memory mode='preferred' placement='auto'/>\n  </numatune>\n") !=
        std::string::npos);
  CHECK(tuned("<numatune/>") == "  <vcpu>1</vcpu>\n");
  // the test driver: <vcpu placement='auto'> alone gets the automatic memory; pins of missing vCPUs go
  auto t = parse_ok("<domain type='test'><name>vm</name><memory>1024</memory><vcpu placement='auto'>2</vcpu>"
                    "<cputune><vcpupin vcpu='1' cpuset='1'/><vcpupin vcpu='4' cpuset='1'/></cputune>"
                    "<os><type>hvm</type></os></domain>");
  diagnostics diag;
  REQUIRE(normalize_domain_for_test_driver(t, diag).has_value());
  REQUIRE(t.numatune);
  CHECK(t.numatune->placement == "auto");
  CHECK(t.cputune->vcpupins == std::vector<cputune_def::vcpupin_t>{{1, "1"}});
  auto once = t;
  REQUIRE(normalize_domain_for_test_driver(once, diag).has_value());
  CHECK(once == t);
  CHECK(parse_ok(format_domain_xml(t)) == t);
}

TEST_CASE("xml: tuning values libvirt refuses are refused with its words", "[xml]") {
  // cputune ranges: libvirt's virDomainDefCputuneValidate
  expect_domain_error(minimal("<cputune><period>999</period></cputune>"), errc::config_unsupported,
                      "Value of cputune 'period' must be in range [1000, 1000000]");
  expect_domain_error(minimal("<cputune><emulator_period>1000001</emulator_period></cputune>"),
                      errc::config_unsupported, "Value of cputune 'emulator_period' must be in range [1000, 1000000]");
  expect_domain_error(minimal("<cputune><quota>999</quota></cputune>"), errc::config_unsupported,
                      "Value of cputune 'quota' must be in range [1000, 17592186044415]");
  expect_domain_error(minimal("<cputune><iothread_quota>17592186044416</iothread_quota></cputune>"),
                      errc::config_unsupported, "Value of cputune 'iothread_quota' must be in range [1000, 17592186044415]");
  expect_domain_error(minimal("<cputune><shares>1</shares></cputune>"), errc::config_unsupported,
                      "Value of cputune 'shares' must be in range [2, 262144]");
  expect_domain_error(minimal("<cputune><shares>262145</shares></cputune>"), errc::config_unsupported,
                      "Value of cputune 'shares' must be in range [2, 262144]");
  expect_domain_error(minimal("<cputune><shares>-3</shares></cputune>"), errc::xml_error,
                      "can't parse cputune shares value '-3'");
  expect_domain_error(minimal("<cputune><global_quota>x</global_quota></cputune>"), errc::xml_error,
                      "can't parse cputune global_quota value 'x'");
  // pins
  expect_domain_error(minimal("<cputune><vcpupin vcpu='0' cpuset='1-'/></cputune>"), errc::xml_detail,
                      "invalid value '1-' for attribute 'cpuset' of <vcpupin>: Failed to parse bitmap '1-'");
  expect_domain_error(minimal("<cputune><vcpupin vcpu='0' cpuset='16384'/></cputune>"), errc::xml_detail,
                      "Failed to parse bitmap '16384'");
  expect_domain_error(minimal("<cputune><emulatorpin cpuset='^3'/></cputune>"), errc::config_unsupported,
                      "Invalid value of 'cpuset' of <emulatorpin>: ^3");
  expect_domain_error(minimal("<cputune><vcpupin vcpu='1' cpuset='1'/><vcpupin vcpu='1' cpuset='2'/></cputune>"),
                      errc::internal_error, "duplicate vcpupin for vcpu '1'");
  expect_domain_error(minimal("<cputune><vcpupin vcpu='1'/></cputune>"), errc::internal_error,
                      "missing cpuset for vcpupin");
  expect_domain_error(minimal("<cputune><vcpupin cpuset='1'/></cputune>"), errc::xml_error,
                      "Missing required attribute 'vcpu' in element 'vcpupin'");
  expect_domain_error(minimal("<cputune><emulatorpin cpuset='1'/><emulatorpin cpuset='2'/></cputune>"),
                      errc::xml_error, "only one emulatorpin is supported");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu cpuset='0-2,x'>2</vcpu></domain>",
                      errc::xml_detail, "invalid value '0-2,x' for attribute 'cpuset' of <vcpu>: Failed to parse bitmap '0-2,x'");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu cpuset='1-4,^1-4'>2</vcpu></domain>",
                      errc::xml_detail, "Failed to parse bitmap '1-4,^1-4'");
  expect_domain_error("<domain type='test'><name>x</name><memory>1</memory><vcpu cpuset='^1'>2</vcpu></domain>",
                      errc::config_unsupported, "Invalid value of 'cpuset' of <vcpu>: ^1");
  // numatune
  expect_domain_error(minimal("<numatune><memory mode='bogus' nodeset='1'/></numatune>"), errc::config_unsupported,
                      "Unsupported NUMA memory tuning mode 'bogus'");
  expect_domain_error(minimal("<numatune><memory placement='bogus'/></numatune>"), errc::config_unsupported,
                      "Unsupported NUMA memory placement mode 'bogus'");
  expect_domain_error(minimal("<numatune><memory mode='interleave'/></numatune>"), errc::config_unsupported,
                      "nodeset for NUMA memory tuning must be set if 'placement' is 'static'");
  expect_domain_error(minimal("<numatune><memory nodeset='^1'/></numatune>"), errc::config_unsupported,
                      "Invalid value of 'nodeset' of <memory>: ^1");
  expect_domain_error(minimal("<numatune><memnode cellid='0' mode='bogus' nodeset='0'/></numatune>"), errc::xml_error,
                      "Invalid value for attribute 'mode' in element 'memnode': 'bogus'.");
  // memtune, blkiotune, memoryBacking
  expect_domain_error(minimal("<memtune><hard_limit unit='X'>1</hard_limit></memtune>"), errc::invalid_arg,
                      "<hard_limit>: memory unit 'X' is not known");
  expect_domain_error(minimal("<memtune><soft_limit>-1</soft_limit></memtune>"), errc::xml_detail,
                      "<soft_limit>: memory value '-1' is not a non-negative integer");
  expect_domain_error(minimal("<memtune><hard_limit>9007199254740992</hard_limit></memtune>"), errc::overflow,
                      "<hard_limit>: value too large: 9007199254740992");
  expect_domain_error(minimal("<blkiotune><device><weight>5</weight></device></blkiotune>"),
                      errc::config_unsupported, "missing per-device path");
  expect_domain_error(minimal("<blkiotune><device><path>/a</path><weight>x</weight></device></blkiotune>"),
                      errc::config_unsupported, "could not parse weight x");
  expect_domain_error(minimal("<blkiotune><device><path>/a</path><read_iops_sec>4294967296</read_iops_sec></device>"
                              "</blkiotune>"),
                      errc::config_unsupported, "could not parse read iops sec 4294967296");
  expect_domain_error(minimal("<blkiotune><device><path>/a</path></device><device><path>/a</path></device></blkiotune>"),
                      errc::config_unsupported, "duplicate blkio device path '/a'");
  expect_domain_error(minimal("<memoryBacking><hugepages><page size='0'/></hugepages></memoryBacking>"),
                      errc::xml_detail, "hugepage size can't be zero");
  expect_domain_error(minimal("<memoryBacking><hugepages><page size='2048'/><page size='1048576'/></hugepages>"
                              "</memoryBacking>"),
                      errc::xml_detail, "two master hugepages detected: 1048576 and 2048");
  expect_domain_error(minimal("<memoryBacking><hugepages><page size='2048' nodeset='1'/></hugepages></memoryBacking>"),
                      errc::xml_detail, "hugepages: node 1 not found");
  expect_domain_error(minimal("<memoryBacking><hugepages><page size='2' unit='X'/></hugepages></memoryBacking>"),
                      errc::invalid_arg, "<page>: memory unit 'X' is not known");
  expect_domain_error(minimal("<memoryBacking><source type='bogus'/></memoryBacking>"), errc::config_unsupported,
                      "unknown memoryBacking/source/type 'bogus'");
  expect_domain_error(minimal("<memoryBacking><access mode='bogus'/></memoryBacking>"), errc::config_unsupported,
                      "unknown memoryBacking/access/mode 'bogus'");
  expect_domain_error(minimal("<memoryBacking><allocation mode='bogus'/></memoryBacking>"), errc::config_unsupported,
                      "unknown memoryBacking/allocation/mode 'bogus'");
  expect_domain_error(minimal("<memoryBacking><allocation threads='x'/></memoryBacking>"), errc::xml_error,
                      "Failed to parse memory allocation threads 'x'");
  // unknown attributes and children: refused by name where the model has no room for them
  for (auto [inner, message] : std::initializer_list<std::pair<const char*, const char*>>{
           {"<cputune foo='1'/>", "attribute 'foo' of <cputune> is not supported"},
           {"<cputune><vcpupin vcpu='0' cpuset='1' foo='1'/></cputune>", "attribute 'foo' of <vcpupin> is not supported"},
           {"<cputune><shares unit='x'>5</shares></cputune>", "attribute 'unit' of <shares> is not supported"},
           {"<memtune><hard_limit foo='1'>1</hard_limit></memtune>", "attribute 'foo' of <hard_limit> is not supported"},
           {"<memtune><limit>1</limit></memtune>", "<memtune> must not contain <limit>"},
           {"<blkiotune><device><path>/a</path><extra/></device></blkiotune>", "<device> must not contain <extra>"},
           {"<memoryBacking><hugepages><page size='2048' foo='1'/></hugepages></memoryBacking>",
            "attribute 'foo' of <page> is not supported"},
           {"<memoryBacking><huge/></memoryBacking>", "<memoryBacking> must not contain <huge>"},
           {"<numatune><memory nodeset='1' foo='1'/></numatune>", "attribute 'foo' of <memory> is not supported"},
           {"<numatune><bogus/></numatune>", "<numatune> must not contain <bogus>"},
           {"<cputune><shares>2</shares><shares>3</shares></cputune>",
            "element <shares> is given more than once in <cputune>"},
           {"<numatune><memory nodeset='1'/><memory nodeset='2'/></numatune>",
            "element <memory> is given more than once in <numatune>"}}) {
    INFO(inner);
    expect_domain_error(minimal(inner), errc::xml_detail, message);
  }
  // unknown children of <cputune> are kept, at libvirt's place for them (virsh prints <shares> and
  // <emulatorsched> alike; it drops the unknown <future> and the empty <cachetune>, covirt keeps them)
  auto k = parse_ok(minimal("<cputune><cachetune vcpus='0'/><future x='1'/><emulatorsched scheduler='idle'/>"
                            "<shares>5</shares></cputune>"));
  CHECK(tuned("<cputune><cachetune vcpus='0'/><future x='1'/><emulatorsched scheduler='idle'/><shares>5</shares>"
              "</cputune>") ==
        "  <vcpu>1</vcpu>\n  <cputune>\n    <shares>5</shares>\n    <emulatorsched scheduler='idle'/>\n"
        "    <cachetune vcpus='0'/>\n    <future x='1'/>\n  </cputune>\n");
  CHECK(parse_ok(format_domain_xml(k)) == k);
}

TEST_CASE("xml: tuning elements match virsh define; dumpxml and libvirt's schema", "[xml][virsh]") {
  auto d = parse_ok(tuning_input);
  REQUIRE(have_tool("xmllint"));
  CHECK(validates(format_domain_xml(d), "domain"));
  diagnostics diag;
  auto ours = d;
  REQUIRE(normalize_domain_for_test_driver(ours, diag).has_value());
  CHECK(validates(format_domain_xml(ours), "domain"));
  REQUIRE(have_tool("virsh"));
  std::string got = virsh_define_dump(tuning_input, "tuned");
  INFO("virsh said: " << got);
  CHECK(tuning_part(got) == tuning_virsh);
  CHECK(format_domain_xml(ours) == got.substr(0, got.find("</domain>") + 10));
  CHECK(parse_ok(got) == ours);
  // and the normalisations one by one
  for (const char* inner :
       {"<cputune><period>0</period><quota>-5</quota><shares>0</shares></cputune>",
        "<memtune><hard_limit>0</hard_limit><soft_limit>9007199254740991</soft_limit></memtune>",
        "<blkiotune><weight>0</weight><device><path>/a</path><weight>0</weight></device></blkiotune>",
        "<memoryBacking><hugepages><page size='4097' unit='b' nodeset='0'/></hugepages><allocation threads='0'/>"
        "</memoryBacking>",
        "<numatune><memory placement='auto' nodeset='1'/></numatune>",
        "<numatune><memory mode='interleave' nodeset='0-3,^1'/></numatune><cputune><vcpupin vcpu='0' cpuset='1,'/>"
        "<vcpupin vcpu='7' cpuset='1'/></cputune>"}) {
    INFO(inner);
    std::string text = minimal(inner);
    auto input = parse_ok(text);
    auto mine = input;
    REQUIRE(normalize_domain_for_test_driver(mine, diag).has_value());
    std::string theirs = virsh_define_dump(text, "vm");
    INFO("virsh said: " << theirs);
    auto parsed = parse_ok(theirs);
    blank_generated(mine, input);
    blank_generated(parsed, input);
    CHECK(format_domain_xml(mine) == format_domain_xml(parsed));
    CHECK(mine == parsed);
  }
}
