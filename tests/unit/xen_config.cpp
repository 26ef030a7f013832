// covirt: Xen xm / xl config files: the grammar, and the conversions to and from domain XML
// against the files of tests/data/xen (written for covirt; the expected outputs follow libvirt 9).
#include <covirt/domain/xml.hpp>
#include <covirt/xen/xen_config.hpp>

#include <catch2/catch.hpp>

#include "common/data.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace covirt;
using namespace covirt::xen;
namespace fs = std::filesystem;

namespace {

fs::path xen_dir() { return covirt_test::data_dir().parent_path() / "xen"; }

std::string read_xen(const std::string& name) {
  fs::path dir = covirt_test::data_dir();
  REQUIRE(!dir.empty());
  std::ifstream in(xen_dir() / name, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// parse_xen_conf's error code and message for `text` (the parse must fail).
std::pair<error_code, std::string> conf_error(std::string_view text) {
  diagnostics diag;
  auto r = parse_xen_conf(text, diag);
  REQUIRE_FALSE(r.has_value());
  return {r.error(), std::string(diag.message())};
}

std::pair<error_code, std::string> xm_error(std::string_view text, bool xl = false) {
  diagnostics diag;
  auto r = xl ? xl_to_domain_xml(text, diag) : xm_to_domain_xml(text, diag);
  REQUIRE_FALSE(r.has_value());
  return {r.error(), std::string(diag.message())};
}

struct case_t {
  const char* dir;  // xm or xl
  const char* name;
};
constexpr case_t cases[] = {{"xm", "pv-bootloader"}, {"xm", "pv-kernel"},   {"xm", "pv-vfb-vnc"},
                            {"xm", "hvm-disks-nics"}, {"xm", "hvm-pci"},    {"xl", "hvm-serial-sound-usb"},
                            {"xl", "disk-keyvalue"}};

}  // namespace

TEST_CASE("xen config: values, comments, separators and quoting", "[xen-config]") {
  diagnostics diag;
  auto r = parse_xen_conf(
      "# a comment\n"
      "name = \"web01\" # trailing comment\n"
      "memory=512; vcpus = -2 ; extra = 'say \"hi\"'\n"
      "desc = \"\"\"two\nlines\"\"\"\n"
      "disk = [ 'phy:/dev/a,xvda,w',\n"
      "   # inside a list\n"
      "   \"file:/b,xvdb,r\", ]\n"
      "nested = [ 1, [ 'a' ], [] ]\n"
      "name = \"second\"\n",
      diag);
  REQUIRE(r.has_value());
  const conf_file& c = *r;
  REQUIRE(c.entries.size() == 8);
  CHECK(c.get("name")->str == "web01");  // the first occurrence wins
  CHECK(c.get("memory")->type == conf_value::kind::integer);
  CHECK(c.get("memory")->num == 512);
  CHECK(c.get("vcpus")->num == -2);
  CHECK(c.get("extra")->str == "say \"hi\"");
  CHECK(c.get("desc")->str == "two\nlines");
  REQUIRE(c.get("disk")->items.size() == 2);
  CHECK(c.get("disk")->items[1].str == "file:/b,xvdb,r");
  CHECK(c.get("nested")->items[1].items[0].str == "a");
  CHECK(c.get("nested")->items[2].items.empty());
  CHECK(c.get("missing") == nullptr);
}

TEST_CASE("xen config: format prints as libvirt and parses back equal", "[xen-config]") {
  conf_file c;
  c.set("name", conf_value::string("g1"));
  c.set("memory", conf_value::integer(1024));
  c.set("quote", conf_value::string("a \"b\""));
  c.set("multi", conf_value::string("x\ny"));
  c.set("disk", conf_value::list({conf_value::string("phy:/dev/a,xvda,w"), conf_value::string(",hdc:cdrom,r")}));
  c.set("empty", conf_value::list({}));
  c.set("neg", conf_value::integer(-5));
  c.set("memory", conf_value::integer(2048));  // replaced in place
  std::string text = format_xen_conf(c);
  CHECK(text ==
        "name = \"g1\"\nmemory = 2048\nquote = 'a \"b\"'\nmulti = \"\"\"x\ny\"\"\"\n"
        "disk = [ \"phy:/dev/a,xvda,w\", \",hdc:cdrom,r\" ]\nempty = [  ]\nneg = -5\n");
  diagnostics diag;
  auto back = parse_xen_conf(text, diag);
  REQUIRE(back.has_value());
  CHECK((*back == c));
  // every data file: parse, format, parse gives the same entries
  for (auto& k : cases) {
    INFO(k.name);
    auto once = parse_xen_conf(read_xen(std::string(k.dir) + "/" + k.name + ".cfg"), diag);
    REQUIRE(once.has_value());
    auto twice = parse_xen_conf(format_xen_conf(*once), diag);
    REQUIRE(twice.has_value());
    CHECK((*twice == *once));
  }
}

TEST_CASE("xen config: malformed input is refused with the line and the reason", "[xen-config]") {
  auto check = [](std::string_view text, std::string_view expect) {
    auto [ec, msg] = conf_error(text);
    CHECK(ec == make_error_code(errc::conf_syntax));
    CHECK_THAT(msg, Catch::Contains(std::string(expect)));
  };
  check("name = \"abc\nmemory = 1\n", "line 1: unterminated string");
  check("a = 1\nname = 'abc\n", "line 2: unterminated string");
  check("a = \"\"\"never closed\n\n", "line 1: unterminated string (triple-quoted)");
  check("disk = [ 'a',\n 'b'\n", "line 1: unterminated list");
  check("disk = [ 'a' 'b' ]\n", "expecting ',' or ']'");
  check("name \"abc\"\n", "line 1: expecting '=' after 'name'");
  check("x = 1\n9name = 1\n", "line 2: expecting a name");
  check("name = abc\n", "expecting a value");
  check("memory = 12abc\n", "malformed number");
  check("memory = 99999999999999999999\n", "number too large");
  check("a = 1 b = 2\n", "expecting a separator");
  check("ok = 1\nname = \"caf\xc3\"\n", "line 2: invalid UTF-8");
  check("name = \"\xed\xa0\x80\"\n", "invalid UTF-8");  // a surrogate
  {
    // 100 MB is refused before it is looked at (an unterminated string would be found otherwise)
    std::string huge(100u * 1024 * 1024, ' ');
    huge[0] = 'a', huge[1] = '=', huge[2] = '"';
    auto [ec, msg] = conf_error(huge);
    CHECK(ec == make_error_code(errc::conf_syntax));
    CHECK_THAT(msg, Catch::Contains("larger than the limit of 1048576 bytes"));
  }
  diagnostics diag;
  CHECK(parse_xen_conf("a = [[[[1]]]]\n", diag, conf_limits{1024, 3}).error() == make_error_code(errc::conf_syntax));
  CHECK(parse_xen_conf("a = [[[1]]]\n", diag, conf_limits{1024, 3}).has_value());
}

TEST_CASE("xen config: each data file converts to the expected domain XML", "[xen-config]") {
  for (auto& k : cases) {
    std::string base = std::string(k.dir) + "/" + k.name;
    INFO(base);
    diagnostics diag;
    auto conf = read_xen(base + ".cfg");
    auto xml = std::string_view(k.dir) == "xm" ? xm_to_domain_xml(conf, diag) : xl_to_domain_xml(conf, diag);
    INFO(diag.message());
    REQUIRE(xml.has_value());
    CHECK(*xml == read_xen(base + ".xml"));
  }
}

TEST_CASE("xen config: domain XML converts to the expected native config, and back", "[xen-config]") {
  for (auto& k : cases) {
    std::string base = std::string(k.dir) + "/" + k.name;
    bool xl = std::string_view(k.dir) == "xl";
    INFO(base);
    diagnostics diag;
    std::string xml = read_xen(base + ".xml");
    auto native = xl ? domain_xml_to_xl(xml, diag) : domain_xml_to_xm(xml, diag);
    INFO(diag.message());
    REQUIRE(native.has_value());
    CHECK(*native == read_xen(base + ".native.cfg"));
    // XML -> config -> XML gives the same document
    auto again = xl ? xl_to_domain_xml(*native, diag) : xm_to_domain_xml(*native, diag);
    REQUIRE(again.has_value());
    CHECK(*again == xml);
    // and the same model
    auto a = parse_domain_xml(xml, diag), b = parse_domain_xml(*again, diag);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK((*a == *b));
  }
}

TEST_CASE("xen config: expected XML passes libvirt's domain schema", "[xen-config][xmllint]") {
  REQUIRE(std::system("command -v xmllint >/dev/null 2>&1") == 0);
  REQUIRE(fs::exists("/usr/share/libvirt/schemas/domain.rng"));
  for (auto& k : cases) {
    fs::path p = xen_dir() / k.dir / (std::string(k.name) + ".xml");
    INFO(p);
    std::string cmd = "xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng '" + p.string() + "' >/dev/null 2>&1";
    CHECK(std::system(cmd.c_str()) == 0);
  }
  // the check can fail: a document the schema refuses
  fs::path bad = fs::temp_directory_path() / ("covirt-xen-bad-" + std::to_string(::getpid()) + ".xml");
  std::ofstream(bad) << "<domain type='xen'><name>x</name><memory>abc</memory><os><type>linux</type></os></domain>";
  std::string cmd = "xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng '" + bad.string() + "' >/dev/null 2>&1";
  CHECK(std::system(cmd.c_str()) != 0);
  fs::remove(bad);
}

TEST_CASE("xen config: defaults, generated uuid and MAC, vif details", "[xen-config]") {
  diagnostics diag;
  auto c = parse_xen_conf("name = \"d\"\nvif = [ '', 'ip=192.0.2.7,bridge=br0,mac=00:16:3e:aa:bb:cc' ]\n", diag);
  REQUIRE(c.has_value());
  auto d = domain_from_xm(*c, diag);
  REQUIRE(d.has_value());
  CHECK(d->uuid.size() == 36);
  CHECK(d->memory_kib == 128 * 1024);
  CHECK(d->vcpus == 1);
  CHECK(d->on_poweroff == "destroy");
  CHECK(d->on_reboot == "restart");
  CHECK(d->on_crash == "restart");
  CHECK(d->os.type == "linux");
  REQUIRE(d->devices.interfaces.size() == 2);
  CHECK(d->devices.interfaces[0].mac.rfind("00:16:3e:", 0) == 0);
  CHECK(d->devices.interfaces[0].type == "ethernet");
  REQUIRE(d->devices.interfaces[1].extra.size() == 1);
  CHECK(d->devices.interfaces[1].extra[0].name == "ip");
  auto back = domain_to_xm(*d, diag);
  REQUIRE(back.has_value());
  CHECK(back->get("vif")->items[1].str == "mac=00:16:3e:aa:bb:cc,bridge=br0,ip=192.0.2.7,script=vif-bridge");
  auto d2 = domain_from_xm(*c, diag);
  REQUIRE(d2.has_value());
  CHECK(d2->uuid != d->uuid);  // generated afresh
}

TEST_CASE("xen config: malformed or unsupported domain configs name what is wrong", "[xen-config]") {
  auto check = [](std::string_view text, errc code, std::string_view expect, bool xl = false) {
    auto [ec, msg] = xm_error(text, xl);
    CHECK(ec == make_error_code(code));
    CHECK_THAT(msg, Catch::Contains(std::string(expect)));
  };
  check("name = 'a'\nmemory = 'lots'\n", errc::conf_syntax, "'memory' is not a non-negative number: 'lots'");
  check("name = 'a'\nmemory = -4\n", errc::conf_syntax, "'memory' is not a non-negative number");
  check("memory = 4\n", errc::conf_syntax, "'name' was missing");
  check("name = 'a'\nuuid = 'nope'\n", errc::conf_syntax, "uuid 'nope' not parseable");
  check("name = 'a'\ndisk = [ 'phy:/dev/x' ]\n", errc::conf_syntax, "malformed disk spec 'phy:/dev/x'");
  check("name = 'a'\ndisk = [ 'phy:/dev/x,xvda,q' ]\n", errc::conf_syntax, "bad mode 'q'");
  check("name = 'a'\ndisk = [ 'phy:/dev/x,nonsense,w' ]\n", errc::conf_syntax, "bad device name 'nonsense'");
  check("name = 'a'\ndisk = [ 'nbd:host:1,xvda,w' ]\n", errc::config_unsupported, "unsupported disk driver 'nbd'");
  check("name = 'a'\ndisk = [ 'format=raw,access=rw,target=/x' ]\n", errc::conf_syntax, "missing or bad vdev", true);
  check("name = 'a'\ndisk = [ 'format=vmdk2,vdev=xvda,target=/x' ]\n", errc::config_unsupported, "format not supported", true);
  check("name = 'a'\npci = [ '0000:03:00' ]\n", errc::conf_syntax, "malformed PCI address '0000:03:00'");
  check("name = 'a'\npci = [ '0000:zz:00.0' ]\n", errc::conf_syntax, "malformed PCI address");
  check("name = 'a'\npci = [ '0000:03:00.9' ]\n", errc::conf_syntax, "malformed PCI address");
  check("name = 'a'\nvif = [ 'mac=zz:16:3e:00:00:01' ]\n", errc::conf_syntax, "malformed mac address");
  check("name = 'a'\nvif = [ 'rate=fast' ]\n", errc::conf_syntax, "invalid rate 'fast'");
  check("name = 'a'\nvnuma = [ [ 'pnode=0' ] ]\n", errc::config_unsupported, "unsupported config key 'vnuma'");
  check("name = 'a'\nbuilder = 'vmx'\n", errc::config_unsupported, "builder 'vmx'");
  check("name = 'a'\non_crash = 'explode'\n", errc::config_unsupported, "'explode' for on_crash");
  check("name = 'a'\nbuilder = 'hvm'\n", errc::conf_syntax, "'kernel' was missing");
  check("name = 'a'\nbuilder = 'hvm'\nkernel = '/l'\nserial = [ 'pty' ]\n", errc::config_unsupported,
        "Multiple serial devices are not supported by xen-xm");
  check("name = 'a'\nbuilder = 'hvm'\nkernel = '/l'\nserial = 'carrier-pigeon'\n", errc::config_unsupported,
        "unknown chr device type 'carrier-pigeon'");
  check("name = 'a'\nbuilder = 'hvm'\nkernel = '/l'\nsoundhw = 'gus'\n", errc::config_unsupported, "sound model 'gus'");
  check("name = 'a'\nbuilder = 'hvm'\nkernel = '/l'\nusbdevice = 'joystick'\n", errc::config_unsupported,
        "usbdevice 'joystick'");
  check("name = 'a'\ncpus = '3-1'\n", errc::conf_syntax, "not a valid CPU list");
  check("name = 'a\n", errc::conf_syntax, "line 1: unterminated string");
}

TEST_CASE("xen config: domains the formats cannot hold are refused", "[xen-config]") {
  diagnostics diag;
  std::string xml = read_xen("xl/hvm-serial-sound-usb.xml");
  auto d = parse_domain_xml(xml, diag);
  REQUIRE(d.has_value());
  auto xm = domain_to_xm(*d, diag);  // four serial ports
  REQUIRE_FALSE(xm.has_value());
  CHECK(xm.error() == make_error_code(errc::config_unsupported));
  CHECK_THAT(std::string(diag.message()), Catch::Contains("Multiple serial devices"));
  auto net = *d;
  net.devices.interfaces[0].type = "network";
  auto r = domain_to_xl(net, diag);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == make_error_code(errc::config_unsupported));
  CHECK_THAT(std::string(diag.message()), Catch::Contains("Unsupported net type 'network'"));
  auto pvh = *d;
  pvh.os.type = "xenpvh";
  CHECK(domain_to_xl(pvh, diag).error() == make_error_code(errc::config_unsupported));
}
