// covirt: <domain> itself: its top-level elements, parse_domain_xml and format_domain_xml; and
// parse_device_xml, one device of it.

#include "codec.hpp"

#include <algorithm>
#include <array>
#include <sstream>

namespace covirt {

using namespace domain_codec;

namespace {

// libvirt's order of <domain> children; unknown names known to libvirt are placed here.
constexpr std::string_view domain_order[] = {
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
    "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "iothreadids", "cputune", "numatune",
    "resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "features", "cpu", "clock",
    "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel", "keywrap",
    "launchSecurity"};

// id= is the running domain's, written from domain_format_options, never kept.
constexpr x::field<domain_config> domain_fields[] = {{"type", &domain_config::type}, {"id"}};

result<unsigned long long> memory_elem(xml_node n, diagnostics& diag) {
  std::string buf;
  auto r = parse_memory_kib(x::text_view(n, buf), n.attribute("unit").value(), diag);
  if (!r) diag.assign("<" + std::string(n.name()) + ">: " + std::string(diag.message()));
  return r;
}

/// A top-level scalar element the model has no room for extra content in: refuse what it
/// does not know rather than drop it.
result<xml_node> strict(x::reader& r, const char* name, std::initializer_list<std::string_view> attrs,
                        diagnostics& diag) {
  xml_node n = r.take_any(name);
  if (!n) return n;
  for (auto a = n.first_attribute(); x::present(a); a = a.next_attribute())
    if (!x::is_known(a.name(), attrs))
      return fail(diag, errc::xml_detail,
                  std::string("attribute '") + a.name() + "' of <" + name + "> is not supported");
  for (auto c = n.first_child(); x::present(c); c = c.next_sibling())
    if (c.type() == pugi::node_element)
      return fail(diag, errc::xml_detail, std::string("<") + name + "> must not contain <" + c.name() + ">");
  return n;
}

void fmt_memory(x::writer& w, std::string_view name, unsigned long long kib) {
  w.open(1, name);
  w.attr("unit", "KiB");
  w.num_body(name, kib);
}

}  // namespace

result<domain_config> parse_domain_xml(std::string_view xml, diagnostics& diag) {
  pugi::xml_document doc;
  COVIRT_TRY(root, x::load(doc, xml, "domain", diag));
  domain_config d;
  COVIRT_CHECK(x::read_fields(root, d, domain_fields, d.extra_attrs, diag));
  if (d.type.empty()) return fail(diag, errc::xml_detail, "<domain> is missing the 'type' attribute");

  x::reader r(root);
  // duplicates of single elements are refused
  static constexpr std::string_view single[] = {
      "name", "uuid", "title", "description", "metadata", "memory", "currentMemory", "maxMemory", "vcpu",
      "blkiotune", "memtune", "memoryBacking", "cputune", "numatune", "bootloader", "bootloader_args", "os", "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash",
      "on_lockfailure", "pm", "devices"};
  unsigned seen[std::size(single)] = {};
  for (std::size_t i = 0; i < r.size(); ++i) {
    auto it = std::find_if(std::begin(single), std::end(single), [&](std::string_view k) { return r.child_is(i, k); });
    if (it != std::end(single) && ++seen[it - std::begin(single)] > 1)
      return fail(diag, errc::xml_detail,
                  "element <" + std::string(r.child_name(i)) + "> is given more than once in <domain>");
  }

  std::string buf;
  COVIRT_TRY(name, strict(r, "name", {}, diag));
  if (!name) return fail(diag, errc::xml_detail, "domain has no <name> element");
  d.name = x::trimmed_text(name);
  if (auto ok = check_object_name("domain", d.name, diag); !ok) return ok.error();

  COVIRT_TRY(u, strict(r, "uuid", {}, diag));
  if (u) {
    COVIRT_TRY(uuid, parse_uuid(x::text_view(u, buf), diag));
    d.uuid = std::move(uuid);
  }
  COVIRT_TRY(t, strict(r, "title", {}, diag));
  if (t) {
    d.title = x::text_of(t);
    if (d.title->find('\n') != std::string::npos)
      return fail(diag, errc::xml_detail, "domain title must not contain newlines");
  }
  COVIRT_TRY(desc, strict(r, "description", {}, diag));
  if (desc) d.description = x::text_of(desc);
  if (auto m = r.take_any("metadata")) {
    if (!m.first_attribute()) d.metadata = x::extra_children(m, {});
    else d.extra.push_back(x::to_element(m));  // attributes on <metadata>: keep it whole
  }

  COVIRT_TRY(mem, strict(r, "memory", {"unit", "dumpCore"}, diag));
  if (!mem) return fail(diag, errc::xml_detail, "domain has no <memory> element");
  {
    COVIRT_TRY(kib, memory_elem(mem, diag));
    d.memory_kib = kib;
    d.memory_dump_core = mem.attribute("dumpCore").value();
  }
  COVIRT_TRY(cmem, strict(r, "currentMemory", {"unit"}, diag));
  if (cmem) {
    COVIRT_TRY(kib, memory_elem(cmem, diag));
    d.current_memory_kib = kib;
  }
  COVIRT_TRY(mmem, strict(r, "maxMemory", {"unit", "slots"}, diag));
  if (mmem) {
    COVIRT_TRY(kib, memory_elem(mmem, diag));
    d.max_memory_kib = kib;
    COVIRT_TRY(slots, x::opt_uint(mmem, "slots", diag));
    d.max_memory_slots = slots;
  }
  COVIRT_TRY(v, strict(r, "vcpu", {"placement", "current", "cpuset"}, diag));
  if (v) {
    unsigned n = 0;
    std::string_view text = x::text_view(v, buf);
    if (!x::parse_uint(text, n))
      return fail(diag, errc::xml_detail, "vcpu count '" + std::string(text) + "' is not a non-negative integer");
    if (n == 0) return fail(diag, errc::xml_detail, "vcpu count must be greater than zero");
    d.vcpus = n;
    COVIRT_TRY(cur, x::opt_uint(v, "current", diag));
    d.vcpu_current = cur;
    d.vcpu_placement = v.attribute("placement").value();
    if (!d.vcpu_placement.empty() && d.vcpu_placement != "static" && d.vcpu_placement != "auto")
      return fail(diag, errc::xml_detail, "vcpu placement '" + d.vcpu_placement + "' is not known");
    // virDomainVcpuParse: with automatic placement the cpuset is ignored (not even read)
    if (auto cs = v.attribute("cpuset"); cs && d.vcpu_placement != "auto") {
      COVIRT_TRY(norm, normalise_bitmap(cs.value(), "cpuset", "vcpu", diag));
      d.vcpu_cpuset = std::move(norm);
    }
  }
  if (auto b = r.take_any("blkiotune")) COVIRT_CHECK(parse_blkiotune(b, d.blkiotune, diag));
  if (auto m = r.take_any("memtune")) COVIRT_CHECK(parse_memtune(m, d.memtune, diag));
  if (auto m = r.take_any("memoryBacking")) COVIRT_CHECK(parse_memory_backing(m, d.memory_backing, diag));
  if (auto c = r.take_any("cputune")) COVIRT_CHECK(parse_cputune(c, d.cputune, diag));
  if (auto n = r.take_any("numatune")) COVIRT_CHECK(parse_numatune(n, d.vcpu_placement, d.numatune, diag));
  COVIRT_TRY(bl, strict(r, "bootloader", {}, diag));
  if (bl) d.bootloader = x::text_of(bl);
  COVIRT_TRY(bla, strict(r, "bootloader_args", {}, diag));
  if (bla) d.bootloader_args = x::text_of(bla);
  if (auto os = r.take_any("os")) COVIRT_CHECK(parse_os(os, d.os, diag));
  if (auto f = r.take_any("features")) COVIRT_CHECK(parse_features(f, d.features.emplace(), diag));
  if (auto c = r.take_any("cpu")) COVIRT_CHECK(parse_cpu(c, d.cpu.emplace(), diag));
  if (auto c = r.take_any("clock")) COVIRT_CHECK(parse_clock(c, d.clock.emplace(), diag));
  for (auto [nm, field] : {std::pair{"on_poweroff", &d.on_poweroff}, std::pair{"on_reboot", &d.on_reboot},
                           std::pair{"on_crash", &d.on_crash}, std::pair{"on_lockfailure", &d.on_lockfailure}}) {
    COVIRT_TRY(e, strict(r, nm, {}, diag));
    if (e) *field = x::trimmed_text(e);
  }
  // <pm> is typed only when it holds nothing but suspend-to-mem/-disk enabled=; else kept verbatim
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!r.child_is(i, "pm")) continue;
    xml_node p = r.child(i);
    bool simple = !p.first_attribute();
    for (auto c = p.first_child(); x::present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      std::string_view nm = c.name();
      simple = simple && (nm == "suspend-to-mem" || nm == "suspend-to-disk") && x::reader::plain(c, {"enabled"});
    }
    if (simple) {
      r.take_any("pm");
      domain_config::pm_t pm;
      pm.suspend_to_mem = p.child("suspend-to-mem").attribute("enabled").value();
      pm.suspend_to_disk = p.child("suspend-to-disk").attribute("enabled").value();
      d.pm = pm;
    }
    break;
  }
  if (auto dv = r.take_any("devices")) {
    d.has_devices = true;
    d.devices.extra_attrs = x::extra_attrs(dv, {});
    COVIRT_CHECK(parse_devices(dv, d.devices, diag));
  }
  for (auto& e : r.rest()) d.extra.push_back(std::move(e));
  x::sort_by_stage(d.extra, domain_order);
  // virDomainDefParseXML: memory placed automatically takes the vCPUs along unless they are pinned
  if (d.numatune && d.numatune->has_memory && d.numatune->placement == "auto" && d.vcpu_cpuset.empty()) {
    bool pinned = false;
    if (d.cputune) {
      pinned = !d.cputune->vcpupins.empty() || d.cputune->emulatorpin.has_value();
      for (auto& e : d.cputune->extra) pinned |= e.name == "iothreadpin";
    }
    if (!pinned) d.vcpu_placement = "auto";
  }
  COVIRT_CHECK(check_hugepages(d, diag));
  if (d.vcpu_current && *d.vcpu_current > d.vcpus && d.vcpus)
    return fail(diag, errc::xml_detail,
                "vcpu current " + std::to_string(*d.vcpu_current) + " is greater than the maximum " +
                    std::to_string(d.vcpus));
  return d;
}

namespace {

using printer = void (*)(x::writer&, std::string_view name, const domain_config&, const domain_format_options&);

/// A text child kept in a string (written when not empty) or an optional string (when set).
template <auto Member>
void print_text(x::writer& w, std::string_view name, const domain_config& d, const domain_format_options&) {
  const auto& v = d.*Member;
  if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
    if (!v.empty()) w.text_elem(1, name, v);
  } else {
    if (v) w.text_elem(1, name, *v);
  }
}

void print_name(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  w.text_elem(1, "name", d.name);
}

void print_metadata(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (!d.metadata) return;
  if (d.metadata->empty()) {
    w.empty_elem(1, "metadata");
    return;
  }
  w.put("  <metadata>\n");
  for (auto& e : *d.metadata) {
    w.libxml_element(2, e);
    w.ch('\n');
  }
  w.put("  </metadata>\n");
}

void print_max_memory(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (!d.max_memory_kib) return;
  w.open(1, "maxMemory");
  w.attr_opt("slots", d.max_memory_slots);
  w.attr("unit", "KiB");
  w.num_body("maxMemory", *d.max_memory_kib);
}

void print_memory(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  w.open(1, "memory");
  w.attr("unit", "KiB");
  w.attr_if("dumpCore", d.memory_dump_core);
  w.num_body("memory", d.memory_kib);
}

void print_current_memory(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.current_memory_kib) fmt_memory(w, "currentMemory", d.current_memory_kib);
}

void print_vcpu(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.vcpus == 0) return;  // not given (libvirt's default is 1: the drivers' normalisation adds it)
  w.open(1, "vcpu");
  w.attr_if("placement", d.vcpu_placement);
  w.attr_if("cpuset", d.vcpu_cpuset);
  w.attr_opt("current", d.vcpu_current);
  w.num_body("vcpu", d.vcpus);
}

void print_blkiotune(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.blkiotune) fmt_blkiotune(w, *d.blkiotune);
}
void print_memtune(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.memtune) fmt_memtune(w, *d.memtune);
}
void print_memory_backing(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.memory_backing) fmt_memory_backing(w, *d.memory_backing);
}
void print_cputune(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.cputune) fmt_cputune(w, *d.cputune);
}
void print_numatune(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.numatune) fmt_numatune(w, *d.numatune);
}

void print_os(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) { fmt_os(w, d.os); }
void print_features(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.features) fmt_features(w, *d.features);
}
void print_cpu(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.cpu) fmt_cpu(w, *d.cpu);
}
void print_clock(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (d.clock) fmt_clock(w, *d.clock);
}

void print_pm(x::writer& w, std::string_view, const domain_config& d, const domain_format_options&) {
  if (!d.pm) return;
  w.open(1, "pm");
  auto mark = w.begin_body();
  x::write_attr_leaf(w, 2, "suspend-to-mem", "enabled", d.pm->suspend_to_mem);
  x::write_attr_leaf(w, 2, "suspend-to-disk", "enabled", d.pm->suspend_to_disk);
  w.finish(mark, 1, "pm");
}

void print_devices(x::writer& w, std::string_view, const domain_config& d, const domain_format_options& opt) {
  if (d.has_devices || !(d.devices == devices_t{})) fmt_devices(w, 1, d.devices, opt.secure);
}

using dc = domain_config;

/// The typed children of <domain> at their place in libvirt's order (domain_order).
constexpr std::pair<std::string_view, printer> domain_parts[] = {
    {"name", print_name},
    {"uuid", print_text<&dc::uuid>},
    {"title", print_text<&dc::title>},
    {"description", print_text<&dc::description>},
    {"metadata", print_metadata},
    {"maxMemory", print_max_memory},
    {"memory", print_memory},
    {"currentMemory", print_current_memory},
    {"blkiotune", print_blkiotune},
    {"memtune", print_memtune},
    {"memoryBacking", print_memory_backing},
    {"vcpu", print_vcpu},
    {"cputune", print_cputune},
    {"numatune", print_numatune},
    {"bootloader", print_text<&dc::bootloader>},
    {"bootloader_args", print_text<&dc::bootloader_args>},
    {"os", print_os},
    {"features", print_features},
    {"cpu", print_cpu},
    {"clock", print_clock},
    {"on_poweroff", print_text<&dc::on_poweroff>},
    {"on_reboot", print_text<&dc::on_reboot>},
    {"on_crash", print_text<&dc::on_crash>},
    {"on_lockfailure", print_text<&dc::on_lockfailure>},
    {"pm", print_pm},
    {"devices", print_devices}};

/// Where each part stands in domain_order (the parts follow that order).
constexpr auto part_stage = [] {
  std::array<std::size_t, std::size(domain_parts)> at{};
  std::size_t p = 0;
  for (std::size_t i = 0; i < std::size(domain_order); ++i)
    if (p < at.size() && domain_parts[p].first == domain_order[i]) at[p++] = i;
  if (p != at.size()) throw "domain_parts must follow domain_order";
  return at;
}();

}  // namespace

std::string format_domain_xml(const domain_config& d, const domain_format_options& opt) {
  x::writer w;
  w.open(0, "domain");
  w.attr("type", d.type);
  if (opt.id >= 0) w.attr_num("id", opt.id);
  w.attrs(d.extra_attrs);
  w.put(">\n");
  std::size_t part = 0;
  for (std::size_t i = 0; i < std::size(domain_order); ++i) {
    std::string_view st = domain_order[i];
    if (part < part_stage.size() && part_stage[part] == i) domain_parts[part++].second(w, st, d, opt);
    if (!d.extra.empty()) fmt_extra_named(w, 1, d.extra, st);
  }
  for (auto& e : d.extra)
    if (std::find(std::begin(domain_order), std::end(domain_order), e.name) == std::end(domain_order))
      w.element(1, e);
  w.put("</domain>\n");
  return w.take();
}

// One <disk> or <interface> element, as virDomainAttachDevice takes it.
result<device_def> parse_device_xml(std::string_view xml, diagnostics& diag) {
  if (xml.size() > (1u << 20)) return fail(diag, errc::xml_error, "device XML is larger than 1 MiB");
  pugi::xml_document doc;
  auto pr = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default);
  if (!pr) return fail(diag, errc::xml_detail, std::string("malformed device XML: ") + pr.description());
  pugi::xml_node el;
  int elements = 0;
  for (auto c : doc.children())
    if (c.type() == pugi::node_element) {
      el = c;
      ++elements;
    }
  if (elements != 1) return fail(diag, errc::xml_error, "device XML must be exactly one element");
  std::string_view kind = el.name();
  if (kind != "disk" && kind != "interface")
    return fail(diag, errc::config_unsupported,
                "device <" + std::string(kind) + "> cannot be attached or detached (<disk> and <interface> can)");
  std::ostringstream one;
  el.print(one, "", pugi::format_raw);
  std::string wrapped = "<domain type='qemu'><name>device</name><memory>1024</memory><devices>" + one.str() +
                        "</devices></domain>";
  auto def = parse_domain_xml(wrapped, diag);
  if (!def) return def.error();
  auto& dv = def->devices;
  if (kind == "disk" && dv.disks.size() == 1) return device_def(std::move(dv.disks[0]));
  if (kind == "interface" && dv.interfaces.size() == 1) return device_def(std::move(dv.interfaces[0]));
  return fail(diag, errc::xml_error, "device XML could not be read as one <" + std::string(kind) + ">");
}

}  // namespace covirt
