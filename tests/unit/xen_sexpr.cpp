// xend's S-expressions: the reader and writer (sexpr.hpp), and the domain S-expression
// <-> domain_config conversion (sxpr_domain.hpp) against files under tests/data/xen/sxpr
// (written for covirt; each .xml is what libvirt's xend driver printed for such input).
#include <covirt/domain/xml.hpp>
#include <covirt/xen/sexpr.hpp>
#include <covirt/xen/sxpr_domain.hpp>

#include <catch2/catch.hpp>

#include "common/data.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace covirt;
using covirt::xen::sexpr;
namespace fs = std::filesystem;

namespace {

std::string sxpr_data(const std::string& name) {
  fs::path dir = covirt_test::data_dir();
  REQUIRE(!dir.empty());
  std::ifstream in(dir / ".." / "xen" / "sxpr" / name, std::ios::binary);
  INFO("tests/data/xen/sxpr/" << name);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

sexpr parse_ok(std::string_view text) {
  diagnostics diag;
  auto r = xen::parse_sexpr(text, diag);
  INFO("input: " << text << "\nmessage: " << diag.message());
  REQUIRE(r.has_value());
  return *r;
}

/// Parsing fails with errc::sexpr_serial and a message containing `needle`.
std::string parse_error(std::string_view text, const std::string& needle, const xen::sexpr_limits& lim = {}) {
  diagnostics diag;
  auto r = xen::parse_sexpr(text, diag, lim);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == make_error_code(errc::sexpr_serial));
  INFO("message: " << diag.message());
  CHECK(std::string(diag.message()).find(needle) != std::string::npos);
  return std::string(diag.message());
}

void domain_error(std::string_view text, errc code, const std::string& needle) {
  diagnostics diag;
  auto r = xen::domain_from_sxpr(text, xen::sxpr_context{}, diag);
  INFO("input: " << text << "\nmessage: " << diag.message());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == make_error_code(code));
  CHECK(std::string(diag.message()).find(needle) != std::string::npos);
}

struct sample {
  const char* name;
  xen::sxpr_context ctx;
  bool inactive;  // no domid: the config round trip gives the same document
};

std::vector<sample> samples() {
  xen::sxpr_context v2, running;
  v2.xend_config_version = 2;
  running.console_tty = "/dev/pts/3";
  return {{"pv-bootloader", {}, true}, {"pv-kernel", running, false}, {"pv-vfb-old", v2, true},
          {"pv-vfb-new", {}, true},    {"hvm-disks", {}, true},       {"hvm-pci", {}, true}};
}

bool have_tool(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

TEST_CASE("xen sexpr: the reader takes xend's grammar", "[xen-sexpr]") {
  auto s = parse_ok("(domain (name web01) (memory 1024)\n (image (linux (kernel ''))))");
  REQUIRE(s.is_list);
  CHECK(s.head() == "domain");
  REQUIRE(s.list.size() == 4);
  CHECK(s.list[1] == sexpr::make_list({sexpr::make_atom("name"), sexpr::make_atom("web01")}));
  CHECK(s.list[3].list[1].list[1].list[1].atom == "");
  CHECK_FALSE(s.list[3].list[1].list[1].list[1].is_list);

  // both quote styles, every escape, octal, \x, an unknown escape keeps its backslash
  auto q = parse_ok(R"((a 'it\'s' "say \"hi\"" '\a\b\t\n\v\f\r\\' "\x41\x4a\101\0\7" '\q\x4' 'tab	and
newline'))");
  REQUIRE(q.list.size() == 7);
  CHECK(q.list[1].atom == "it's");
  CHECK(q.list[2].atom == "say \"hi\"");
  CHECK(q.list[3].atom == "\a\b\t\n\v\f\r\\");
  CHECK(q.list[4].atom == std::string("AJA\0\7", 5));
  CHECK(q.list[5].atom == "\\q\\x4");
  CHECK(q.list[6].atom == "tab\tand\nnewline");
  CHECK(parse_ok("'\\303\\251t\\xc3\\xa9'").atom == "\xc3\xa9t\xc3\xa9");  // UTF-8 from escapes

  // comments, atoms ended by parentheses, whitespace of every kind
  auto c = parse_ok("# xend says\n(a# b # a comment to the end of the line )\n(c)d)\v\f # trailing comment");
  REQUIRE(c.list.size() == 4);
  CHECK(c.list[0].atom == "a#");  // '#' inside an atom is part of it
  CHECK(c.list[1].atom == "b");
  CHECK(c.list[2] == sexpr::make_list({sexpr::make_atom("c")}));
  CHECK(c.list[3].atom == "d");
  CHECK(parse_ok("(x(y)z)").list.size() == 3);
  CHECK(parse_ok("()").is_list);
  CHECK(parse_ok("  atom  ").atom == "atom");
  CHECK(parse_ok("(state -b----)").list[1].atom == "-b----");
}

TEST_CASE("xen sexpr: the writer is compact and reads back the same", "[xen-sexpr]") {
  CHECK(xen::format_sexpr(parse_ok("( vm ( name  web ) (memory 512) (image (linux (args 'ro quiet'))))")) ==
        "(vm (name web)(memory 512)(image (linux (args 'ro quiet'))))");
  CHECK(xen::format_atom("") == "''");
  CHECK(xen::format_atom("phy:/dev/vg0/a_b-c.d~e@f") == "phy:/dev/vg0/a_b-c.d~e@f");
  CHECK(xen::format_atom("it's a\\b") == "'it\\'s a\\\\b'");
  CHECK(xen::format_atom("w!") == "'w!'");
  CHECK(xen::format_atom("#x") == "'#x'");
  CHECK(xen::format_sexpr(parse_ok("(serial (pty none /dev/ttyS1))")) == "(serial (pty none /dev/ttyS1))");
  for (std::string text : {"(a 'x y' \"q'uote\" '' (b (c 'd\\\\e')) () '\\n\\t' 'caf\\xc3\\xa9')",
                           "(domain (device (pci (dev (domain 0x0000)(bus 0x00)))))", "'(not a list)'",
                           "(a ')' '(' '#' \"\\x00\")"}) {
    auto once = parse_ok(text);
    auto out = xen::format_sexpr(once);
    INFO(text << " -> " << out);
    CHECK(parse_ok(out) == once);
    CHECK(xen::format_sexpr(parse_ok(out)) == out);
  }
}

TEST_CASE("xen sexpr: lookups follow libvirt's sexpr_lookup", "[xen-sexpr]") {
  auto s = parse_ok("(domain (name a) (bootloader) (image (hvm (kernel /k) (serial (pty none))))"
                    " (device (vbd (dev xvda))) (device (vif (mac 1))) (device (vbd (dev xvdb))) (name b))");
  CHECK(xen::value(s, "domain/name") == std::optional<std::string_view>("a"));  // the first only
  CHECK(xen::value(s, "domain/image/hvm/kernel") == std::optional<std::string_view>("/k"));
  CHECK(xen::find(s, "domain/bootloader") != nullptr);
  CHECK_FALSE(xen::value(s, "domain/bootloader"));             // no value after the head
  CHECK_FALSE(xen::value(s, "domain/image/hvm/serial"));       // its value is a list
  CHECK(xen::find(s, "domain/image/hvm/serial") != nullptr);
  CHECK(xen::find(s, "vm/name") == nullptr);                   // the first step is s's own head
  CHECK(xen::find(s, "domain/image/linux") == nullptr);
  CHECK(xen::find(s, "domain") == &s);
  auto devs = xen::find_all(s, "domain/device");
  REQUIRE(devs.size() == 3);
  CHECK(xen::value(*devs[2], "device/vbd/dev") == std::optional<std::string_view>("xvdb"));
  CHECK(xen::find_all(s, "domain/nothing").empty());
  CHECK(xen::find_all(s, "nothing/device").empty());
}

TEST_CASE("xen sexpr: malformed input is refused with where and what", "[xen-sexpr]") {
  auto m = parse_error("(domain (name a)\n  (memory 1)", "unbalanced '('");
  CHECK(m.find("line 1, column 1 (offset 0)") != std::string::npos);
  m = parse_error("(a (b))\n)", "trailing garbage");
  CHECK(m.find("line 2, column 1") != std::string::npos);
  parse_error(")", "unbalanced ')'");
  parse_error("(a b))", "trailing garbage");
  parse_error("(a) b", "trailing garbage");
  m = parse_error("(a 'unterminated)", "unterminated string");
  CHECK(m.find("column 4") != std::string::npos);
  parse_error("(a \"x\\\")", "unterminated string");
  parse_error("(a 'x\\", "unterminated string");
  parse_error("", "no S-expression");
  parse_error("  # only a comment\n", "no S-expression");
  parse_error("(a \xff\xfe)", "invalid UTF-8 in an atom");
  parse_error("(a 'ok' '\xc3\x28')", "invalid UTF-8 in a string");
  parse_error("(a '\\xff')", "invalid UTF-8 in a string");
  parse_error("(a '\xed\xa0\x80')", "invalid UTF-8");  // a surrogate
  parse_error("(a \xc0\xaf)", "invalid UTF-8");         // overlong
  parse_error("(a b\x01)", "control character");

  SECTION("nesting 100000 deep is refused at the limit, not on the stack") {
    std::string deep(100000, '(');
    deep += std::string(100000, ')');
    m = parse_error(deep, "nested deeper than 256");
    CHECK(m.find("offset 256") != std::string::npos);
    xen::sexpr_limits lim;
    lim.max_depth = 3;
    parse_error("((((a))))", "nested deeper than 3", lim);
    CHECK(parse_ok(std::string(256, '(') + std::string(256, ')')).is_list);
  }
  SECTION("a 100 MB input is refused at once") {
    std::string big(100u << 20, '(');
    auto t0 = std::chrono::steady_clock::now();
    parse_error(big, "over the limit of 16777216 bytes");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50));
    xen::sexpr_limits lim;
    lim.max_bytes = 4;
    parse_error("(a b)", "5 bytes is over the limit of 4", lim);
  }
}

TEST_CASE("xen sexpr: domain S-expressions give libvirt's XML", "[xen-sexpr]") {
  for (auto& s : samples()) {
    INFO(s.name);
    diagnostics diag;
    auto d = xen::domain_from_sxpr(sxpr_data(std::string(s.name) + ".sexpr"), s.ctx, diag);
    INFO(diag.message());
    REQUIRE(d.has_value());
    CHECK(format_domain_xml(d->def, d->format_options()) == sxpr_data(std::string(s.name) + ".xml"));
    CHECK(d->domid.has_value() == !s.inactive);
  }
}

TEST_CASE("xen sexpr: running facts and state letters", "[xen-sexpr]") {
  xen::sxpr_context ctx;
  ctx.console_tty = "/dev/pts/3";
  diagnostics diag;
  auto d = xen::domain_from_sxpr(sxpr_data("pv-kernel.sexpr"), ctx, diag);
  REQUIRE(d.has_value());
  CHECK(d->domid == std::optional<int>(6));
  CHECK(d->state_flags == "-b----");
  CHECK(d->state == domain_state::blocked);
  CHECK(d->cpu_time == Approx(812.25));
  CHECK(d->def.vcpu_current == std::optional<unsigned>(2));
  auto off = xen::domain_from_sxpr(sxpr_data("pv-bootloader.sexpr"), ctx, diag);
  REQUIRE(off.has_value());
  CHECK(off->state == domain_state::shutoff);
  CHECK(off->format_options().id == -1);

  using xen::domain_state_from_flags;
  CHECK(domain_state_from_flags("r-----") == domain_state::running);
  CHECK(domain_state_from_flags("-b----") == domain_state::blocked);
  CHECK(domain_state_from_flags("--p---") == domain_state::paused);
  CHECK(domain_state_from_flags("---s--") == domain_state::shutoff);
  CHECK(domain_state_from_flags("----c-") == domain_state::crashed);
  CHECK(domain_state_from_flags("-----d") == domain_state::shutdown);
  CHECK(domain_state_from_flags("r-p-c-") == domain_state::crashed);  // c first
  CHECK(domain_state_from_flags("rb----") == domain_state::blocked);  // b before r
  CHECK(domain_state_from_flags("------") == domain_state::nostate);

  // the VNC port from xenstore wins over vncdisplay; small values are displays
  xen::sxpr_context vnc;
  vnc.vnc_port = 5911;
  auto g = xen::domain_from_sxpr(sxpr_data("pv-vfb-old.sexpr"), vnc, diag);
  REQUIRE(g.has_value());
  REQUIRE(g->def.devices.graphics.size() == 1);
  CHECK(g->def.devices.graphics[0].port == std::optional<int>(5911));
  vnc.vnc_port = 2;
  g = xen::domain_from_sxpr(sxpr_data("pv-vfb-old.sexpr"), vnc, diag);
  REQUIRE(g.has_value());
  CHECK(g->def.devices.graphics[0].port == std::optional<int>(5902));
}

TEST_CASE("xen sexpr: XML -> (vm ...) -> XML gives the same document", "[xen-sexpr]") {
  for (auto& s : samples()) {
    if (!s.inactive) continue;
    INFO(s.name);
    std::string xml = sxpr_data(std::string(s.name) + ".xml");
    diagnostics diag;
    auto def = parse_domain_xml(xml, diag);
    INFO(diag.message());
    REQUIRE(def.has_value());
    auto vm = xen::domain_to_sxpr(*def, s.ctx, diag);
    REQUIRE(vm.has_value());
    INFO(*vm);
    CHECK(vm->rfind("(vm (name ", 0) == 0);
    auto back = xen::domain_from_sxpr(*vm, s.ctx, diag);
    REQUIRE(back.has_value());
    CHECK(format_domain_xml(back->def, back->format_options()) == xml);
  }
}

TEST_CASE("xen sexpr: the (vm ...) config is libvirt's", "[xen-sexpr]") {
  diagnostics diag;
  auto def = parse_domain_xml(sxpr_data("pv-bootloader.xml"), diag);
  REQUIRE(def.has_value());
  auto vm = xen::domain_to_sxpr(*def, {}, diag);
  REQUIRE(vm.has_value());
  CHECK(*vm ==
        "(vm (name mail01)(memory 512)(maxmem 1024)(vcpus 1)(uuid c0ffee00-d15e-a5e0-b0a7-b0a7deadbeef)"
        "(bootloader /usr/bin/pygrub)(bootloader_args '-q --entry=1')(on_poweroff destroy)(on_reboot restart)"
        "(on_crash restart)(image (linux (args 'ro quiet')(localtime 0)))(localtime 0)"
        "(device (vbd (dev xvda)(uname phy:/dev/vg0/mail01)(mode w)))"
        "(device (vif (mac 00:16:3e:0a:0b:0c)(bridge xenbr0)(script vif-bridge))))");

  auto hvm = parse_domain_xml(sxpr_data("hvm-disks.xml"), diag);
  REQUIRE(hvm.has_value());
  auto v4 = xen::domain_to_sxpr(*hvm, {}, diag);
  REQUIRE(v4.has_value());
  CHECK(v4->find("(image (hvm (kernel /usr/lib/xen/boot/hvmloader)(vcpus 2)(boot dc)(acpi 1)(apic 1)(pae 1)"
                 "(viridian 1)(usb 1)(usbdevice tablet)(parallel none)(serial (pty none /dev/ttyS1))"
                 "(soundhw 'sb16,es1370')(device_model /usr/lib64/xen/bin/qemu-dm)(hpet 1)(vnc 1)(vncunused 0)"
                 "(vncdisplay 7)(keymap fr)(localtime 1)))") != std::string::npos);
  CHECK(v4->find("(device (vbd (dev hdc:cdrom)(mode r)))") != std::string::npos);
  CHECK(v4->find("(type ioemu)") == std::string::npos);
  xen::sxpr_context v3;
  v3.xend_config_version = 3;
  auto with_ioemu = xen::domain_to_sxpr(*hvm, v3, diag);
  REQUIRE(with_ioemu.has_value());
  CHECK(with_ioemu->find("(model e1000)(type ioemu)") != std::string::npos);
  CHECK(with_ioemu->find("(type netfront)") != std::string::npos);

  auto pci = parse_domain_xml(sxpr_data("hvm-pci.xml"), diag);
  REQUIRE(pci.has_value());
  auto vp = xen::domain_to_sxpr(*pci, {}, diag);
  REQUIRE(vp.has_value());
  CHECK(vp->find("(device (pci (dev (domain 0x0000)(bus 0x00)(slot 0x1b)(func 0x0))"
                 "(dev (domain 0x0000)(bus 0x02)(slot 0x00)(func 0x1))))") != std::string::npos);

  // PV graphics: new style from 3.0.4 (version 3), keys under the image before
  auto fb = parse_domain_xml(sxpr_data("pv-vfb-new.xml"), diag);
  REQUIRE(fb.has_value());
  auto vnew = xen::domain_to_sxpr(*fb, {}, diag);
  REQUIRE(vnew.has_value());
  CHECK(vnew->find("(device (vkbd))(device (vfb (type vnc)(vncunused 1)(vnclisten 127.0.0.1)(vncpasswd s3cret)"
                   "(keymap en-us)))") != std::string::npos);
  xen::sxpr_context v2;
  v2.xend_config_version = 2;
  auto vold = xen::domain_to_sxpr(*fb, v2, diag);
  REQUIRE(vold.has_value());
  CHECK(vold->find("(vfb") == std::string::npos);
  CHECK(vold->find("(vnc 1)(vncunused 1)(vnclisten 127.0.0.1)") != std::string::npos);
}

TEST_CASE("xen sexpr: one device for device_create", "[xen-sexpr]") {
  diagnostics diag;
  auto def = parse_domain_xml(sxpr_data("pv-kernel.xml"), diag);
  REQUIRE(def.has_value());
  auto& disks = def->devices.disks;
  REQUIRE(disks.size() == 4);
  CHECK(xen::device_to_sxpr(disks[1], false, {}, diag).value() ==
        "(tap (dev xvdb)(uname tap:aio:/srv/xen/web02-data.raw)(mode 'w!'))");
  CHECK(xen::device_to_sxpr(disks[3], false, {}, diag).value() ==
        "(vbd (dev xvdd:cdrom)(uname file:/srv/iso/tools.iso)(mode r))");
  CHECK(xen::device_to_sxpr(disks[0], true, {}, diag).value() ==
        "(vbd (dev xvda:disk)(uname file:/srv/xen/web02.img)(mode w))");
  auto nic = def->devices.interfaces.at(0);
  CHECK(xen::device_to_sxpr(nic, false, {}, diag).value() ==
        "(vif (mac 00:16:3e:22:33:44)(script vif-route)(ip 10.0.0.12))");  // vif6.0 is xend's own name
  disk_def blk;
  blk.type = "block";
  blk.source.emplace().dev = "sdb";
  blk.target_dev = "xvdb";
  CHECK(xen::device_to_sxpr(blk, false, {}, diag).value() == "(vbd (dev xvdb)(uname phy:/dev/sdb)(mode w))");

  interface_def net;
  net.type = "network";
  net.mac = "00:16:3e:00:00:01";
  auto r = xen::device_to_sxpr(net, false, {}, diag);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == make_error_code(errc::config_unsupported));
  CHECK(std::string(diag.message()).find("'network'") != std::string::npos);
  disk_def fd;
  fd.device = "floppy";
  fd.target_dev = "fda";
  CHECK(xen::device_to_sxpr(fd, true, {}, diag).error() == make_error_code(errc::invalid_arg));
  blk.transient = true;
  CHECK(xen::device_to_sxpr(blk, false, {}, diag).error() == make_error_code(errc::config_unsupported));
}

TEST_CASE("xen sexpr: what xend cannot take is refused by name", "[xen-sexpr]") {
  diagnostics diag;
  auto base = parse_domain_xml(sxpr_data("hvm-pci.xml"), diag);
  REQUIRE(base.has_value());
  auto refused = [&](domain_config d, const std::string& needle) {
    diagnostics dg;
    auto r = xen::domain_to_sxpr(d, {}, dg);
    INFO(needle << ": " << dg.message());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == make_error_code(errc::config_unsupported));
    CHECK(std::string(dg.message()).find(needle) != std::string::npos);
  };
  auto d = *base;
  d.devices.hostdevs[0].managed = "yes";
  refused(d, "managed PCI");
  d = *base;
  d.os.loader.reset();
  refused(d, "os/loader");
  d = *base;
  d.on_crash = "explode";
  refused(d, "on_crash");
  d = *base;
  d.devices.graphics = {graphics_def{}, graphics_def{}};
  refused(d, "one graphics device");
  d = *base;
  d.devices.graphics.emplace_back().type = "spice";
  refused(d, "'spice'");
  d = *base;
  d.clock->offset = "timezone";
  refused(d, "clock offset 'timezone'");
  d = *base;
  d.devices.serials[0].type = "spicevmc";
  refused(d, "'spicevmc'");
}

TEST_CASE("xen sexpr: bad domain S-expressions give clear errors", "[xen-sexpr]") {
  const std::string ok_tail = " (image (linux (kernel /k))))";
  domain_error("(domain (name a) (uuid 'not-a-uuid')" + ok_tail, errc::parse_failed, "domain/uuid: 'not-a-uuid'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f8)" + ok_tail, errc::parse_failed, "domain/uuid");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (memory lots)" + ok_tail,
               errc::parse_failed, "domain/memory: 'lots' is not a number");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (maxmem 12k)" + ok_tail,
               errc::parse_failed, "domain/maxmem");
  domain_error("(domain (uuid 4f77abd2301958e83bab6fbf2118f880)" + ok_tail, errc::internal_error, "missing name");
  domain_error("(domain (name a)" + ok_tail, errc::internal_error, "missing uuid");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (on_reboot explode)" + ok_tail,
               errc::config_unsupported, "domain/on_reboot: unknown lifecycle action 'explode'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (image (linux (args x))))",
               errc::internal_error, "missing kernel & bootloader");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (image (hvm (boot c))))",
               errc::internal_error, "missing HVM loader");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (image (hvm (kernel /l) (serial bogus:x))))",
               errc::config_unsupported, "unknown chr device type 'bogus'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (image (hvm (kernel /l) (soundhw 'sb16,kazoo'))))",
               errc::config_unsupported, "soundhw: unknown sound model 'kazoo'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (vfb (type rdp)))" + ok_tail,
               errc::config_unsupported, "device/vfb/type: unknown graphics type 'rdp'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (vif (mac 00:16:3e:zz:00:01)))" + ok_tail,
               errc::parse_failed, "malformed mac address '00:16:3e:zz:00:01'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (vif (rate fast)))" + ok_tail,
               errc::parse_failed, "invalid rate 'fast'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (vbd (dev xvda) (uname /x)))" + ok_tail,
               errc::internal_error, "missing driver name");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (vbd (dev xvdc:cdrom)))" + ok_tail,
               errc::internal_error, "has no src");  // only an HVM cdrom may lack media
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (tap (dev xvda) (uname tap:zip:/x)))" + ok_tail,
               errc::config_unsupported, "unknown driver type 'zip'");
  domain_error("(domain (name a) (uuid 4f77abd2301958e83bab6fbf2118f880) (device (pci (dev (domain 0) (bus 0) (slot 1))))" + ok_tail,
               errc::internal_error, "missing PCI func");
  domain_error("(node (host x))", errc::parse_failed, "its head is 'node'");
  domain_error("(domain (name a)", errc::sexpr_serial, "unbalanced");
}

TEST_CASE("xen sexpr: every expected document passes libvirt's schema", "[xen-sexpr][xmllint]") {
  if (!have_tool("xmllint") || !fs::exists("/usr/share/libvirt/schemas/domain.rng")) {
    WARN("xmllint or libvirt's schemas are missing: not checked");
    return;
  }
  for (auto& s : samples()) {
    INFO(s.name);
    fs::path f = fs::temp_directory_path() / ("covirt-xen-sxpr-" + std::to_string(::getpid()) + "-" + s.name + ".xml");
    std::ofstream(f, std::ios::binary) << sxpr_data(std::string(s.name) + ".xml");
    std::string cmd = "xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng " + f.string() + " >/dev/null 2>&1";
    CHECK(std::system(cmd.c_str()) == 0);
    std::error_code ec;
    fs::remove(f, ec);
  }
}
