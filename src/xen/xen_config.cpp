// covirt: the grammar of Xen's xm / xl config files (libvirt's virconf subset of Python).
#include <covirt/xen/xen_config.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace covirt::xen {

conf_value conf_value::string(std::string s) {
  conf_value v;
  v.type = kind::string;
  v.str = std::move(s);
  return v;
}

conf_value conf_value::integer(long long n) {
  conf_value v;
  v.type = kind::integer;
  v.num = n;
  return v;
}

conf_value conf_value::list(std::vector<conf_value> items) {
  conf_value v;
  v.type = kind::list;
  v.items = std::move(items);
  return v;
}

const conf_value* conf_file::get(std::string_view name) const noexcept {
  for (const auto& e : entries)
    if (e.name == name) return &e.value;
  return nullptr;
}

void conf_file::set(std::string_view name, conf_value v) {
  for (auto& e : entries)
    if (e.name == name) {
      e.value = std::move(v);
      return;
    }
  entries.push_back({std::string(name), std::move(v)});
}

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// The line (1-based) of the first byte that is not well-formed UTF-8, or 0.
std::size_t invalid_utf8_line(std::string_view s) {
  std::size_t line = 1;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') ++line;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return line;
    if (i + n >= s.size()) return line;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return line;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // overlong forms, surrogates, beyond U+10FFFF
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return line;
    i += n + 1;
  }
  return 0;
}

class parser {
public:
  parser(std::string_view text, diagnostics& diag, const conf_limits& lim) : s_(text), diag_(diag), lim_(lim) {}

  result<conf_file> run() {
    conf_file out;
    for (;;) {
      skip_blanks_and_lines();
      if (eof()) return out;
      if (cur() == ';') {  // an empty statement
        ++pos_;
        continue;
      }
      auto name = parse_name();
      if (!name) return name.error();
      skip_spaces();
      if (eof() || cur() != '=') return err("expecting '=' after '" + *name + "'");
      ++pos_;
      skip_spaces();
      auto v = parse_value(0);
      if (!v) return v.error();
      out.entries.push_back({std::move(*name), std::move(*v)});
      // the separator: end of line, ';', a comment or the end
      skip_spaces();
      if (eof()) return out;
      if (cur() == '#') {
        skip_comment();
        continue;
      }
      if (cur() == ';' || cur() == '\n' || cur() == '\r') {
        if (cur() == '\n') ++line_;
        ++pos_;
        continue;
      }
      return err("expecting a separator (newline or ';') after the value of '" + out.entries.back().name + "'");
    }
  }

private:
  std::string_view s_;
  diagnostics& diag_;
  const conf_limits& lim_;
  std::size_t pos_ = 0, line_ = 1;

  bool eof() const { return pos_ >= s_.size(); }
  char cur() const { return s_[pos_]; }

  failure err(std::string what) { return fail(diag_, errc::conf_syntax, "line " + std::to_string(line_) + ": " + what); }
  failure err_at(std::size_t line, std::string what) {
    return fail(diag_, errc::conf_syntax, "line " + std::to_string(line) + ": " + what);
  }

  void skip_spaces() {
    while (!eof() && (cur() == ' ' || cur() == '\t')) ++pos_;
  }
  void skip_comment() {
    while (!eof() && cur() != '\n') ++pos_;
  }
  /// Spaces, comments and newlines (between statements and inside lists).
  void skip_blanks_and_lines() {
    while (!eof()) {
      char c = cur();
      if (c == ' ' || c == '\t' || c == '\r') ++pos_;
      else if (c == '\n') ++pos_, ++line_;
      else if (c == '#') skip_comment();
      else break;
    }
  }

  result<std::string> parse_name() {
    if (!is_alpha(cur())) {
      std::string shown(1, cur());
      if (static_cast<unsigned char>(cur()) < 0x20) shown = "\\x" + std::to_string(static_cast<int>(cur()));
      return err("expecting a name, found '" + shown + "'");
    }
    std::size_t b = pos_;
    while (!eof() && (is_alpha(cur()) || is_digit(cur()) || cur() == '_')) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }

  result<conf_value> parse_value(std::size_t depth) {
    if (eof()) return err("expecting a value");
    char c = cur();
    if (c == '"' || c == '\'') return parse_string();
    if (c == '[') return parse_list(depth);
    if (c == '-' || c == '+' || is_digit(c)) return parse_integer();
    return err(std::string("expecting a value, found '") + c + "'");
  }

  result<conf_value> parse_string() {
    char q = cur();
    std::size_t start_line = line_;
    if (s_.substr(pos_, 3) == std::string(3, q)) {  // triple-quoted: may span lines
      pos_ += 3;
      std::size_t b = pos_;
      auto e = s_.find(std::string(3, q), pos_);
      if (e == std::string_view::npos) return err_at(start_line, "unterminated string (triple-quoted)");
      for (std::size_t i = b; i < e; ++i)
        if (s_[i] == '\n') ++line_;
      pos_ = e + 3;
      return conf_value::string(std::string(s_.substr(b, e - b)));
    }
    ++pos_;
    std::size_t b = pos_;
    while (!eof() && cur() != q && cur() != '\n') ++pos_;
    if (eof() || cur() != q) return err_at(start_line, std::string("unterminated string (missing ") + q + ")");
    std::string v(s_.substr(b, pos_ - b));
    ++pos_;
    return conf_value::string(std::move(v));
  }

  result<conf_value> parse_integer() {
    std::size_t b = pos_;
    bool neg = false;
    if (cur() == '-' || cur() == '+') neg = cur() == '-', ++pos_;
    if (eof() || !is_digit(cur())) return err("malformed number '" + std::string(s_.substr(b, pos_ - b + (eof() ? 0 : 1))) + "'");
    unsigned long long v = 0;
    const unsigned long long lim = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
    while (!eof() && is_digit(cur())) {
      unsigned d = static_cast<unsigned>(cur() - '0');
      if (v > (lim - d) / 10) return err("number too large '" + std::string(s_.substr(b, pos_ - b + 1)) + "...'");
      v = v * 10 + d;
      ++pos_;
    }
    if (!eof() && (is_alpha(cur()) || cur() == '.' || cur() == '_'))
      return err("malformed number: '" + std::string(s_.substr(b, pos_ - b + 1)) + "'");
    long long n = neg ? (v == lim ? std::numeric_limits<long long>::min() : -static_cast<long long>(v))
                      : static_cast<long long>(v);
    return conf_value::integer(n);
  }

  result<conf_value> parse_list(std::size_t depth) {
    if (depth + 1 > lim_.max_depth) return err("lists nested deeper than " + std::to_string(lim_.max_depth));
    std::size_t start_line = line_;
    ++pos_;  // '['
    std::vector<conf_value> items;
    skip_blanks_and_lines();
    if (eof()) return err_at(start_line, "unterminated list (missing ']')");
    if (cur() == ']') {
      ++pos_;
      return conf_value::list(std::move(items));
    }
    for (;;) {
      auto v = parse_value(depth + 1);
      if (!v) return v.error();
      items.push_back(std::move(*v));
      skip_blanks_and_lines();
      if (eof()) return err_at(start_line, "unterminated list (missing ']')");
      if (cur() == ']') {
        ++pos_;
        return conf_value::list(std::move(items));
      }
      if (cur() != ',') return err(std::string("expecting ',' or ']' in a list, found '") + cur() + "'");
      ++pos_;
      skip_blanks_and_lines();
      if (eof()) return err_at(start_line, "unterminated list (missing ']')");
      if (cur() == ']') {  // trailing comma
        ++pos_;
        return conf_value::list(std::move(items));
      }
    }
  }
};

void format_value(std::string& out, const conf_value& v) {
  switch (v.type) {
    case conf_value::kind::integer: out += std::to_string(v.num); break;
    case conf_value::kind::string:
      if (v.str.find('\n') != std::string::npos) out += "\"\"\"" + v.str + "\"\"\"";
      else if (v.str.find('"') != std::string::npos) out += "'" + v.str + "'";
      else out += "\"" + v.str + "\"";
      break;
    case conf_value::kind::list:
      out += "[ ";
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ", ";
        format_value(out, v.items[i]);
      }
      out += " ]";
      break;
  }
}

}  // namespace

result<conf_file> parse_xen_conf(std::string_view text, diagnostics& diag, const conf_limits& limits) {
  if (text.size() > limits.max_bytes)
    return fail(diag, errc::conf_syntax,
                "config of " + std::to_string(text.size()) + " bytes is larger than the limit of " +
                    std::to_string(limits.max_bytes) + " bytes");
  if (auto line = invalid_utf8_line(text))
    return fail(diag, errc::conf_syntax, "line " + std::to_string(line) + ": invalid UTF-8");
  if (text.find('\0') != std::string_view::npos)
    return fail(diag, errc::conf_syntax, "config contains a NUL byte");
  parser p(text, diag, limits);
  return p.run();
}

std::string format_xen_conf(const conf_file& conf) {
  std::string out;
  for (const auto& e : conf.entries) {
    out += e.name;
    out += " = ";
    format_value(out, e.value);
    out += '\n';
  }
  return out;
}

// ---------------------------------------------------------------- domain -> config
// (xenFormatConfigCommon + xenFormatXMOS/xenFormatXLOS, disks and inputs, in libvirt's key order;
// the other direction is in xm_domain.cpp)

namespace {

enum class out_fmt { xm, xl };

failure unsup(diagnostics& d, std::string m) { return fail(d, errc::config_unsupported, std::move(m)); }

long long ll(unsigned long long v) { return static_cast<long long>(v); }

std::string elem_attr(const xml_element& e, std::string_view k) {
  for (auto& [n, v] : e.attributes)
    if (n == k) return v;
  return {};
}

result<std::string> format_chr(const chardev_def& c, diagnostics& diag) {
  auto src = [&](std::size_t i) { return i < c.sources.size() ? c.sources[i] : chardev_def::source_t{}; };
  const std::string& t = c.type;
  if (t == "null" || t == "stdio" || t == "vc" || t == "pty") return t;
  if (t == "file" || t == "pipe") return t + ":" + src(0).path;
  if (t == "dev") return src(0).path;
  if (t == "tcp") {
    auto s = src(0);
    return std::string(c.protocol_type == "telnet" ? "telnet" : "tcp") + ":" + s.host + ":" + s.service +
           (s.mode == "bind" ? ",server,nowait" : "");
  }
  if (t == "udp") {
    chardev_def::source_t conn, bind;
    for (auto& s : c.sources) (s.mode == "bind" ? bind : conn) = s;
    return "udp:" + conn.host + ":" + conn.service + "@" + bind.host + ":" + bind.service;
  }
  if (t == "unix") return "unix:" + src(0).path + (src(0).mode == "bind" ? ",server,nowait" : "");
  return unsup(diag, "unsupported chr device type '" + t + "'");
}

result<conf_value> format_vif(const interface_def& n, bool hvm, out_fmt f, diagnostics& diag) {
  std::string b = "mac=" + n.mac, ip;
  for (auto& e : n.extra)
    if (e.name == "ip") ip = (ip.empty() ? "" : " ") + elem_attr(e, "address");
  if (n.type == "bridge") {
    b += ",bridge=" + (n.source ? n.source->bridge : std::string());
    if (!ip.empty()) b += ",ip=" + ip;
    b += ",script=" + (n.script_path.empty() ? std::string("vif-bridge") : n.script_path);
  } else if (n.type == "ethernet") {
    if (!n.script_path.empty()) b += ",script=" + n.script_path;
    if (!ip.empty()) b += ",ip=" + ip;
  } else {
    return unsup(diag, "Unsupported net type '" + n.type + "'");
  }
  if (!n.model_type.empty()) {
    if (hvm && n.model_type == "netfront") b += std::string(",type=") + (f == out_fmt::xl ? "vif" : "netfront");
    else b += ",model=" + n.model_type;
  }
  if (n.target_dev && !n.target_dev->empty()) b += ",vifname=" + *n.target_dev;
  for (auto& e : n.extra)
    if (e.name == "bandwidth")
      for (auto& o : e.children)
        if (o.name == "outbound" && !elem_attr(o, "average").empty() && elem_attr(o, "average") != "0")
          b += ",rate=" + elem_attr(o, "average") + "KB/s";
  return conf_value::string(b);
}

std::string disk_path(const disk_def& d) {
  if (!d.source) return {};
  return !d.source->file.empty() ? d.source->file : !d.source->dev.empty() ? d.source->dev : d.source->dir;
}

result<conf_value> format_disk(const disk_def& d, out_fmt f, diagnostics& diag) {
  if (d.transient) return unsup(diag, "transient disks not supported yet");
  std::string src = disk_path(d), format = d.driver ? d.driver->type : "", driver = d.driver ? d.driver->name : "";
  if (d.type == "network" || d.type == "volume" || d.type == "nvme")
    return unsup(diag, "disk type '" + d.type + "' of '" + d.target_dev + "' is not supported");
  std::string b;
  if (f == out_fmt::xm) {
    if (!src.empty()) {
      if (!format.empty()) {
        if (!driver.empty()) {
          b += driver + ":";
          if (driver == "tap" || driver == "tap2") b += (format == "raw" ? std::string("aio") : format) + ":";
        }
      } else if (d.type == "file") {
        b += "file:";
      } else if (d.type == "block") {
        b += "phy:";
      } else {
        return unsup(diag, "unsupported disk type '" + d.type + "'");
      }
      b += src;
    }
    b += "," + d.target_dev + (d.device == "cdrom" ? ":cdrom" : "");
    b += d.readonly ? ",r" : d.shareable ? ",!" : ",w";
    return conf_value::string(b);
  }
  static const std::set<std::string_view> fmts = {"raw", "qcow", "qcow2", "qed"};
  b = "format=" + (format == "vhd" ? std::string("xvhd") : fmts.count(format) ? format : std::string("raw"));
  b += ",vdev=" + d.target_dev;
  b += std::string(",access=") + (d.readonly ? "ro" : d.shareable ? "!" : "rw");
  if (!driver.empty()) {
    b += ",backendtype=";
    if (driver == "qemu" || driver == "file") b += "qdisk";
    else if (driver == "tap" || driver == "phy") b += driver;
  }
  if (d.device == "cdrom") b += ",devtype=cdrom";
  if (!src.empty()) b += ",target=" + src;
  return conf_value::string(b);
}

result<conf_file> domain_to(const domain_config& d, out_fmt f, diagnostics& diag) {
  conf_file c;
  bool hvm = d.os.type == "hvm";
  if (!hvm && d.os.type != "linux" && d.os.type != "xen")
    return unsup(diag, "os type '" + d.os.type + "' is not supported");
  const auto& dv = d.devices;
  auto str = [&](std::string_view k, std::string v) { c.set(k, conf_value::string(std::move(v))); };
  auto num = [&](std::string_view k, long long v) { c.set(k, conf_value::integer(v)); };
  str("name", d.name);
  str("uuid", d.uuid);
  num("maxmem", ll((d.memory_kib + 1023) / 1024));
  num("memory", ll(((d.current_memory_kib ? d.current_memory_kib : d.memory_kib) + 1023) / 1024));
  unsigned cur = d.vcpu_current ? *d.vcpu_current : d.vcpus;
  if (cur < d.vcpus) num("maxvcpus", d.vcpus);
  num("vcpus", cur);
  if (!d.vcpu_cpuset.empty()) str("cpus", d.vcpu_cpuset);
  auto on = [&](const std::optional<feature_flag>& ft) { return ft && ft->state != "off"; };
  std::optional<features_t> noft;
  const features_t& ft = d.features ? *d.features : noft.emplace();
  if (hvm) {
    num("pae", on(ft.pae));
    num("acpi", on(ft.acpi));
    num("apic", on(ft.apic));
    if (ft.hap && ft.hap->state == "off") num("hap", 0);
    num("viridian", on(ft.viridian));
  }
  if (d.clock) {
    for (auto& t : d.clock->timers) {
      if (t.name == "hpet" && hvm) num("hpet", t.present != "no");
      else return unsup(diag, "unsupported timer type (name) '" + t.name + "'");
    }
  }
  std::string offset = d.clock ? d.clock->offset : "utc";
  bool reset = d.clock && d.clock->adjustment == "reset";
  int localtime = 0;
  if (hvm) {
    long rtc = 0;
    if (offset == "variable") {
      localtime = d.clock->basis == "localtime";
      rtc = std::strtol(d.clock->adjustment.c_str(), nullptr, 10);
    } else if ((offset == "utc" || offset == "localtime") && !reset) {
      localtime = offset == "localtime";
    } else {
      return unsup(diag, reset ? "unsupported clock adjustment='reset'" : "unsupported clock offset='" + offset + "'");
    }
    num("rtc_timeoffset", rtc);
  } else if (offset == "utc" || offset == "localtime") {
    localtime = offset == "localtime";
  } else {
    return unsup(diag, "unsupported clock offset='" + offset + "'");
  }
  num("localtime", localtime);
  str("on_poweroff", d.on_poweroff.empty() ? "destroy" : d.on_poweroff);
  str("on_reboot", d.on_reboot.empty() ? "restart" : d.on_reboot);
  str("on_crash", d.on_crash.empty() ? "destroy" : d.on_crash);
  if (!dv.emulator.empty()) str("device_model_override", dv.emulator);
  if (dv.graphics.size() == 1 && dv.graphics[0].type != "spice") {
    const auto& g = dv.graphics[0];
    bool autoport = g.autoport == "yes" || (g.port && *g.port == -1);
    std::string listen = !g.listens.empty() && !g.listens[0].address.empty() ? g.listens[0].address : g.listen;
    if (g.type != "vnc" && g.type != "sdl") return unsup(diag, "unsupported graphics type '" + g.type + "'");
    if (hvm && g.type == "sdl") {
      num("sdl", 1), num("vnc", 0);
      if (!g.display.empty()) str("display", g.display);
      if (!g.xauth.empty()) str("xauthority", g.xauth);
    } else if (hvm) {
      num("sdl", 0), num("vnc", 1), num("vncunused", autoport);
      if (!autoport) num("vncdisplay", g.port.value_or(5900) - 5900);
      if (!listen.empty()) str("vnclisten", listen);
      if (!g.passwd.empty()) str("vncpasswd", g.passwd);
      if (!g.keymap.empty()) str("keymap", g.keymap);
    } else {
      std::string b = "type=" + g.type;
      if (g.type == "sdl") {
        if (!g.display.empty()) b += ",display=" + g.display;
        if (!g.xauth.empty()) b += ",xauthority=" + g.xauth;
      } else {
        b += std::string(",vncunused=") + (autoport ? "1" : "0");
        if (!autoport) b += ",vncdisplay=" + std::to_string(g.port.value_or(5900) - 5900);
        if (!listen.empty()) b += ",vnclisten=" + listen;
        if (!g.passwd.empty()) b += ",vncpasswd=" + g.passwd;
        if (!g.keymap.empty()) b += ",keymap=" + g.keymap;
      }
      c.set("vfb", conf_value::list({conf_value::string(b)}));
    }
  } else if (dv.graphics.size() > 1) {
    return unsup(diag, "more than one graphics device is not supported");
  }
  std::vector<conf_value> vifs;
  for (auto& n : dv.interfaces) {
    auto v = format_vif(n, hvm, f, diag);
    if (!v) return v.error();
    vifs.push_back(std::move(*v));
  }
  if (!vifs.empty()) c.set("vif", conf_value::list(std::move(vifs)));
  std::vector<conf_value> pcis;
  for (auto& h : dv.hostdevs) {
    if (h.mode != "subsystem" || h.type != "pci" || !h.source_address)
      return unsup(diag, "hostdev of type '" + h.type + "' is not supported");
    auto hx = [&](std::string_view k) { return std::strtoul(std::string(h.source_address->get(k)).c_str(), nullptr, 16); };
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04lx:%02lx:%02lx.%lx", hx("domain"), hx("bus"), hx("slot"), hx("function"));
    pcis.push_back(conf_value::string(buf));
  }
  if (!pcis.empty()) c.set("pci", conf_value::list(std::move(pcis)));
  if (hvm) {
    if (!dv.parallels.empty()) {
      auto p = format_chr(dv.parallels[0], diag);
      if (!p) return p.error();
      str("parallel", *p);
    } else {
      str("parallel", "none");
    }
    if (dv.serials.size() == 1 && dv.serials[0].target_port.value_or(0) == 0) {
      auto s = format_chr(dv.serials[0], diag);
      if (!s) return s.error();
      str("serial", *s);
    } else if (!dv.serials.empty()) {
      if (f == out_fmt::xm) return unsup(diag, "Multiple serial devices are not supported by xen-xm");
      unsigned maxport = 0;
      for (auto& s : dv.serials) maxport = std::max(maxport, s.target_port.value_or(0));
      std::vector<conf_value> list;
      for (unsigned p = 0; p <= maxport; ++p) {
        const chardev_def* found = nullptr;
        for (auto& s : dv.serials)
          if (s.target_port.value_or(0) == p) found = &s;
        if (!found) {
          list.push_back(conf_value::string("none"));
          continue;
        }
        auto s = format_chr(*found, diag);
        if (!s) return s.error();
        list.push_back(conf_value::string(*s));
      }
      c.set("serial", conf_value::list(std::move(list)));
    } else {
      str("serial", "none");
    }
    if (!dv.sounds.empty()) {
      std::string snd;
      for (auto& s : dv.sounds) snd += (snd.empty() ? "" : ",") + s.model;
      str("soundhw", snd);
    }
  }
  // the OS
  if (hvm) {
    str("builder", "hvm");
    if (f == out_fmt::xm) {
      if (d.os.loader && !d.os.loader->path.empty()) str("kernel", d.os.loader->path);
    } else {
      if (!d.os.kernel.empty()) str("kernel", d.os.kernel);
      if (!d.os.initrd.empty()) str("ramdisk", d.os.initrd);
      if (!d.os.cmdline.empty()) str("cmdline", d.os.cmdline);
    }
    std::string boot;
    for (auto& b : d.os.boot_devs) boot += b == "fd" ? 'a' : b == "cdrom" ? 'd' : b == "network" ? 'n' : 'c';
    str("boot", boot.empty() ? "c" : boot);
  } else {
    if (!d.bootloader.empty()) str("bootloader", d.bootloader);
    if (d.bootloader_args) str("bootargs", *d.bootloader_args);
    if (!d.os.kernel.empty()) str("kernel", d.os.kernel);
    if (!d.os.initrd.empty()) str("ramdisk", d.os.initrd);
    if (!d.os.cmdline.empty()) str(f == out_fmt::xm ? "extra" : "cmdline", d.os.cmdline);
  }
  std::vector<conf_value> disks;
  for (auto& dk : dv.disks) {
    if (dk.device == "floppy") continue;
    auto v = format_disk(dk, f, diag);
    if (!v) return v.error();
    disks.push_back(std::move(*v));
  }
  if (!disks.empty()) c.set("disk", conf_value::list(std::move(disks)));
  if (hvm) {
    std::vector<conf_value> usb;
    for (auto& in : dv.inputs) {
      if (in.bus != "usb") continue;
      num("usb", 1);
      if (in.type == "mouse" || in.type == "tablet" || in.type == "keyboard") {
        usb.push_back(conf_value::string(in.type));
        if (f == out_fmt::xm) break;
      }
    }
    if (usb.size() == 1) c.set("usbdevice", usb[0]);
    else if (!usb.empty()) c.set("usbdevice", conf_value::list(std::move(usb)));
  }
  return c;
}

}  // namespace

result<conf_file> domain_to_xm(const domain_config& dom, diagnostics& diag) { return domain_to(dom, out_fmt::xm, diag); }
result<conf_file> domain_to_xl(const domain_config& dom, diagnostics& diag) { return domain_to(dom, out_fmt::xl, diag); }

namespace {
template <class From>
result<std::string> text_to_xml(std::string_view text, diagnostics& diag, From from) {
  auto conf = parse_xen_conf(text, diag);
  if (!conf) return conf.error();
  auto dom = from(*conf, diag);
  if (!dom) return dom.error();
  return format_domain_xml(*dom);
}
template <class To>
result<std::string> xml_to_text(std::string_view xml, diagnostics& diag, To to) {
  auto dom = parse_domain_xml(xml, diag);
  if (!dom) return dom.error();
  auto conf = to(*dom, diag);
  if (!conf) return conf.error();
  return format_xen_conf(*conf);
}
}  // namespace

result<std::string> xm_to_domain_xml(std::string_view t, diagnostics& diag) { return text_to_xml(t, diag, domain_from_xm); }
result<std::string> xl_to_domain_xml(std::string_view t, diagnostics& diag) { return text_to_xml(t, diag, domain_from_xl); }
result<std::string> domain_xml_to_xm(std::string_view x, diagnostics& diag) { return xml_to_text(x, diag, domain_to_xm); }
result<std::string> domain_xml_to_xl(std::string_view x, diagnostics& diag) { return xml_to_text(x, diag, domain_to_xl); }

}  // namespace covirt::xen
