// covirt: <blkiotune>, <memtune>, <memoryBacking>, <cputune>, <numatune>: libvirt 9.0's parse
// rules (virDomainDefTunablesParse, virDomainNumatuneParseXML, their validation) and its
// printer's layout. Values libvirt reads as "not set" (a period or quota of 0, a weight of 0,
// an unlimited memtune) are read as not set here too, so the model is what libvirt keeps.

#include "codec.hpp"

#include <algorithm>
#include <charconv>

namespace covirt::domain_codec {

namespace {

// ------------------------------------------------------------------ shared

/// Refuses by name what the element's model has no room for: attributes not in `attrs`,
/// child elements not in `children` (the messages of strict() in document.cpp).
result<void> only(xml_node n, std::initializer_list<std::string_view> attrs,
                  std::initializer_list<std::string_view> children, diagnostics& diag) {
  for (auto a = n.first_attribute(); x::present(a); a = a.next_attribute())
    if (!x::is_known(a.name(), attrs))
      return fail(diag, errc::xml_detail,
                  std::string("attribute '") + a.name() + "' of <" + n.name() + "> is not supported");
  for (auto c = n.first_child(); x::present(c); c = c.next_sibling())
    if (c.type() == pugi::node_element && !x::is_known(c.name(), children))
      return fail(diag, errc::xml_detail, std::string("<") + n.name() + "> must not contain <" + c.name() + ">");
  return {};
}

/// The child elements of `r` named in `names` given more than once are refused (libvirt
/// reads the first and ignores the others; covirt does not drop them silently).
result<void> once(const x::reader& r, std::initializer_list<std::string_view> names, diagnostics& diag) {
  for (auto nm : names) {
    int seen = 0;
    for (std::size_t i = 0; i < r.size(); ++i)
      if (r.child_is(i, nm) && ++seen > 1)
        return fail(diag, errc::xml_detail,
                    "element <" + std::string(nm) + "> is given more than once in <" + r.node().name() + ">");
  }
  return {};
}

/// One of libvirt's enumerated values, or "" when not given.
bool one_of(std::string_view v, std::initializer_list<std::string_view> allowed) {
  return v.empty() || x::is_known(v, allowed);
}

/// Unsigned text content (virStrToLong_ull); false when it is not one.
template <class T>
bool uint_text(xml_node n, T& out) {
  std::string buf;
  return x::parse_uint(x::text_view(n, buf), out);
}

/// libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (KiB): the largest memtune value, read as "no limit".
constexpr unsigned long long memory_unlimited = 9007199254740991ULL;  // 2^53 - 1

}  // namespace

result<std::string> normalise_bitmap(std::string_view value, std::string_view attr, std::string_view elem,
                                     diagnostics& diag) {
  auto members = parse_bitmap(value, cpumask_len, diag);
  if (!members)
    return fail(diag, errc::xml_detail,
                "invalid value '" + std::string(value) + "' for attribute '" + std::string(attr) + "' of <" +
                    std::string(elem) + ">: " + std::string(diag.message()));
  if (members->empty())
    return fail(diag, errc::config_unsupported,
                "Invalid value of '" + std::string(attr) + "' of <" + std::string(elem) + ">: " + std::string(value));
  return format_bitmap(*members);
}

namespace {

/// The attribute `attr` of n as a normalised bitmap, "" when absent.
result<std::string> bitmap_attr(xml_node n, const char* attr, diagnostics& diag) {
  auto a = n.attribute(attr);
  if (!a) return std::string();
  return normalise_bitmap(a.value(), attr, n.name(), diag);
}

// ------------------------------------------------------------------ blkiotune

using blkio_device = blkiotune_def::device_t;

/// The per-device children after <path>, in libvirt's order: the weight, then the throttles.
constexpr std::pair<std::string_view, std::optional<unsigned> blkio_device::*> blkio_uints[] = {
    {"weight", &blkio_device::weight}};
struct blkio_ull {
  std::string_view name, words;  // words: libvirt's name in its error messages
  std::optional<unsigned long long> blkio_device::*member;
  bool is_uint;  // read as an unsigned int by libvirt (virStrToLong_ui)
};
constexpr blkio_ull blkio_limits[] = {
    {"read_iops_sec", "read iops sec", &blkio_device::read_iops_sec, true},
    {"write_iops_sec", "write iops sec", &blkio_device::write_iops_sec, true},
    {"read_bytes_sec", "read bytes sec", &blkio_device::read_bytes_sec, false},
    {"write_bytes_sec", "write bytes sec", &blkio_device::write_bytes_sec, false}};

bool blkio_device_empty(const blkio_device& d) {
  return !d.weight && !d.read_iops_sec && !d.write_iops_sec && !d.read_bytes_sec && !d.write_bytes_sec;
}

result<void> parse_blkio_device(xml_node n, blkio_device& dev, diagnostics& diag) {
  COVIRT_CHECK(only(n, {}, {"path", "weight", "read_iops_sec", "write_iops_sec", "read_bytes_sec", "write_bytes_sec"},
                    diag));
  x::reader r(n);
  COVIRT_CHECK(once(r, {"path", "weight", "read_iops_sec", "write_iops_sec", "read_bytes_sec", "write_bytes_sec"},
                    diag));
  auto leaf = [&](std::string_view name) -> result<xml_node> {
    xml_node c = r.take_any(name);
    if (c) COVIRT_CHECK(only(c, {}, {}, diag));
    return c;
  };
  COVIRT_TRY(path, leaf("path"));
  if (path) dev.path = x::text_of(path);
  if (dev.path.empty()) return fail(diag, errc::config_unsupported, "missing per-device path");
  for (auto [name, member] : blkio_uints) {
    COVIRT_TRY(c, leaf(name));
    if (!c) continue;
    unsigned v = 0;
    if (!uint_text(c, v))
      return fail(diag, errc::config_unsupported, "could not parse " + std::string(name) + " " + x::text_of(c));
    if (v) dev.*member = v;
  }
  for (auto& f : blkio_limits) {
    COVIRT_TRY(c, leaf(f.name));
    if (!c) continue;
    unsigned long long v = 0;
    bool ok = uint_text(c, v) && (!f.is_uint || v <= 0xffffffffULL);
    if (!ok)
      return fail(diag, errc::config_unsupported, "could not parse " + std::string(f.words) + " " + x::text_of(c));
    if (v) dev.*f.member = v;
  }
  return {};
}

// ------------------------------------------------------------------ memoryBacking

using page_t = memory_backing_def::page_t;

bool backing_empty(const memory_backing_def& m) {
  return !m.hugepages && !m.nosharepages && !m.locked && !m.discard && m.source_type.empty() &&
         m.access_mode.empty() && m.allocation_mode.empty() && !m.allocation_threads;
}

result<void> parse_hugepages(xml_node n, memory_backing_def& m, diagnostics& diag) {
  COVIRT_CHECK(only(n, {}, {"page"}, diag));
  m.hugepages = true;
  for (auto p = n.child("page"); x::present(p); p = p.next_sibling("page")) {
    COVIRT_CHECK(only(p, {"size", "unit", "nodeset"}, {}, diag));
    auto size = p.attribute("size");
    if (!size) return fail(diag, errc::xml_error, "<page> of <hugepages> is missing the 'size' attribute");
    auto kib = parse_memory_kib(size.value(), p.attribute("unit").value(), diag);
    if (!kib) {
      diag.assign("<page>: " + std::string(diag.message()));
      return kib.error();
    }
    if (*kib == 0) return fail(diag, errc::xml_detail, "hugepage size can't be zero");
    COVIRT_TRY(nodeset, bitmap_attr(p, "nodeset", diag));
    m.pages.push_back({*kib, std::move(nodeset)});
  }
  return {};
}

/// `<name attr='value'/>` of <memoryBacking>: value one of `allowed` (libvirt's error otherwise).
result<void> backing_choice(x::reader& r, const char* name, const char* attr,
                            std::initializer_list<std::string_view> allowed, std::string& out, diagnostics& diag) {
  xml_node c = r.take_any(name);
  if (!c) return {};
  COVIRT_CHECK(only(c, {attr}, {}, diag));
  std::string_view v = c.attribute(attr).value();
  if (!one_of(v, allowed))
    return fail(diag, errc::config_unsupported,
                std::string("unknown memoryBacking/") + name + "/" + attr + " '" + std::string(v) + "'");
  out.assign(v);
  return {};
}

// ------------------------------------------------------------------ cputune

/// The CFS bandwidth children: (name, member), in libvirt's order of printing.
struct cfs_field {
  std::string_view name;
  bool quota;  // signed (a quota) or unsigned (a period)
  std::optional<unsigned long long> cputune_def::*period;
  std::optional<long long> cputune_def::*quota_member;
};
constexpr cfs_field cfs_fields[] = {
    {"period", false, &cputune_def::period, nullptr},
    {"quota", true, nullptr, &cputune_def::quota},
    {"global_period", false, &cputune_def::global_period, nullptr},
    {"global_quota", true, nullptr, &cputune_def::global_quota},
    {"emulator_period", false, &cputune_def::emulator_period, nullptr},
    {"emulator_quota", true, nullptr, &cputune_def::emulator_quota},
    {"iothread_period", false, &cputune_def::iothread_period, nullptr},
    {"iothread_quota", true, nullptr, &cputune_def::iothread_quota}};

// libvirt's VIR_CGROUP_CPU_* bounds (vircgroup.h), checked by virDomainDefCputuneValidate
constexpr unsigned long long shares_min = 2, shares_max = 262144;
constexpr unsigned long long period_min = 1000, period_max = 1000000;
constexpr long long quota_min = 1000, quota_max = 17592186044415LL;

/// libvirt's order of the <cputune> children it prints after <emulatorpin> (kept verbatim here).
constexpr std::string_view cputune_extra_order[] = {"iothreadpin", "emulatorsched", "vcpusched",
                                                    "iothreadsched", "cachetune", "memorytune"};

bool cputune_empty(const cputune_def& c) { return c == cputune_def{}; }

result<void> range_error(std::string_view name, unsigned long long lo, unsigned long long hi, diagnostics& diag) {
  return fail(diag, errc::config_unsupported,
              "Value of cputune '" + std::string(name) + "' must be in range [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "]");
}

result<void> parse_cfs(xml_node c, const cfs_field& f, cputune_def& ct, diagnostics& diag) {
  std::string buf;
  std::string_view text = x::trim_view(x::text_view(c, buf));
  auto bad = [&] {
    return fail(diag, errc::xml_error,
                "can't parse cputune " + std::string(f.name) + " value '" + std::string(text) + "'");
  };
  if (!f.quota) {
    unsigned long long v = 0;
    if (!x::parse_uint(text, v)) return bad();
    if (v == 0) return {};  // libvirt's "not set"
    if (v < period_min || v > period_max) return range_error(f.name, period_min, period_max, diag);
    ct.*f.period = v;
  } else {
    long long v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || res.ec != std::errc{} || res.ptr != text.data() + text.size()) return bad();
    if (v == 0) return {};
    if (v > 0 && (v < quota_min || v > quota_max))
      return range_error(f.name, static_cast<unsigned long long>(quota_min), static_cast<unsigned long long>(quota_max),
                         diag);
    ct.*f.quota_member = v;  // any negative value is "no limit" to libvirt, and kept as given
  }
  return {};
}

result<void> parse_vcpupin(xml_node p, cputune_def& ct, diagnostics& diag) {
  COVIRT_CHECK(only(p, {"vcpu", "cpuset"}, {}, diag));
  auto v = p.attribute("vcpu");
  if (!v) return fail(diag, errc::xml_error, "Missing required attribute 'vcpu' in element 'vcpupin'");
  unsigned id = 0;
  if (!x::parse_uint(v.value(), id))
    return fail(diag, errc::xml_error,
                std::string("Invalid value for attribute 'vcpu' in element 'vcpupin': '") + v.value() +
                    "'. Expected non-negative integer value");
  if (!p.attribute("cpuset")) return fail(diag, errc::internal_error, "missing cpuset for vcpupin");
  for (auto& q : ct.vcpupins)
    if (q.vcpu == id)
      return fail(diag, errc::internal_error, "duplicate vcpupin for vcpu '" + std::to_string(id) + "'");
  COVIRT_TRY(cpuset, bitmap_attr(p, "cpuset", diag));
  ct.vcpupins.push_back({id, std::move(cpuset)});
  return {};
}

/// A verbatim child's bitmap attribute normalised in place (iothreadpin cpuset, memnode nodeset).
result<void> normalise_attr(xml_element& e, std::string_view attr, diagnostics& diag) {
  for (auto& [k, v] : e.attributes)
    if (k == attr) {
      COVIRT_TRY(norm, normalise_bitmap(v, attr, e.name, diag));
      v = std::move(norm);
    }
  return {};
}

// ------------------------------------------------------------------ numatune

/// A <memnode> in libvirt's form: cellid, mode (strict when not given), nodeset normalised,
/// then whatever else it holds, as given.
result<void> normalise_memnode(xml_element& e, diagnostics& diag) {
  std::string cellid, mode, nodeset;
  bool has_cellid = false, has_nodeset = false;
  xml_attributes rest;
  for (auto& [k, v] : e.attributes) {
    if (k == "cellid") {
      cellid = v;
      has_cellid = true;
    } else if (k == "mode") {
      mode = v;
    } else if (k == "nodeset") {
      nodeset = v;
      has_nodeset = true;
    } else {
      rest.emplace_back(k, v);
    }
  }
  if (!one_of(mode, {"strict", "preferred", "interleave", "restrictive"}))
    return fail(diag, errc::xml_error, "Invalid value for attribute 'mode' in element 'memnode': '" + mode + "'.");
  if (has_nodeset) {
    COVIRT_TRY(norm, normalise_bitmap(nodeset, "nodeset", "memnode", diag));
    nodeset = std::move(norm);
  }
  xml_attributes out;
  if (has_cellid) out.emplace_back("cellid", std::move(cellid));
  out.emplace_back("mode", mode.empty() ? std::string("strict") : std::move(mode));
  if (has_nodeset) out.emplace_back("nodeset", std::move(nodeset));
  for (auto& a : rest) out.push_back(std::move(a));
  e.attributes = std::move(out);
  return {};
}

/// A memnode's cellid for libvirt's order (by cell); unparsable ones last, as given.
unsigned long long memnode_cell(const xml_element& e) {
  for (auto& [k, v] : e.attributes)
    if (k == "cellid") {
      unsigned long long id = 0;
      if (x::parse_uint(v, id)) return id;
    }
  return ~0ULL;
}

}  // namespace

// ------------------------------------------------------------------ parsers

result<void> parse_blkiotune(xml_node n, std::optional<blkiotune_def>& out, diagnostics& diag) {
  COVIRT_CHECK(only(n, {}, {"weight", "device"}, diag));
  x::reader r(n);
  COVIRT_CHECK(once(r, {"weight"}, diag));
  blkiotune_def b;
  if (auto w = r.take_any("weight")) {
    COVIRT_CHECK(only(w, {}, {}, diag));
    unsigned v = 0;
    if (!uint_text(w, v))
      return fail(diag, errc::xml_detail,
                  "invalid value '" + x::text_of(w) + "' for <weight> of <blkiotune>: expected a non-negative integer");
    if (v) b.weight = v;
  }
  std::vector<std::string> paths;
  for (auto d : r.take_all_any("device")) {
    blkio_device dev;
    COVIRT_CHECK(parse_blkio_device(d, dev, diag));
    if (std::find(paths.begin(), paths.end(), dev.path) != paths.end())
      return fail(diag, errc::config_unsupported, "duplicate blkio device path '" + dev.path + "'");
    paths.push_back(dev.path);
    // a device with nothing set is what libvirt keeps but never prints
    if (!blkio_device_empty(dev)) b.devices.push_back(std::move(dev));
  }
  if (b.weight || !b.devices.empty()) out = std::move(b);
  return {};
}

result<void> parse_memtune(xml_node n, std::optional<memtune_def>& out, diagnostics& diag) {
  COVIRT_CHECK(only(n, {}, {"hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit"}, diag));
  x::reader r(n);
  COVIRT_CHECK(once(r, {"hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit"}, diag));
  memtune_def m;
  for (auto [name, member] : {std::pair{"hard_limit", &memtune_def::hard_limit_kib},
                              std::pair{"soft_limit", &memtune_def::soft_limit_kib},
                              std::pair{"min_guarantee", &memtune_def::min_guarantee_kib},
                              std::pair{"swap_hard_limit", &memtune_def::swap_hard_limit_kib}}) {
    xml_node c = r.take_any(name);
    if (!c) continue;
    COVIRT_CHECK(only(c, {"unit"}, {}, diag));
    std::string buf;
    std::string_view text = x::text_view(c, buf);
    auto kib = parse_memory_kib(text, c.attribute("unit").value(), diag);
    if (!kib) {
      diag.assign("<" + std::string(name) + ">: " + std::string(diag.message()));
      return kib.error();
    }
    if (*kib > memory_unlimited)
      return fail(diag, errc::overflow,
                  "<" + std::string(name) + ">: value too large: " + std::string(x::trim_view(text)) +
                      c.attribute("unit").value());
    if (*kib != memory_unlimited) m.*member = *kib;  // the largest value means "unlimited", libvirt's default
  }
  if (!(m == memtune_def{})) out = m;
  return {};
}

result<void> parse_memory_backing(xml_node n, std::optional<memory_backing_def>& out, diagnostics& diag) {
  const std::initializer_list<std::string_view> kids = {"hugepages", "nosharepages", "locked", "source",
                                                        "access",    "allocation",   "discard"};
  COVIRT_CHECK(only(n, {}, kids, diag));
  x::reader r(n);
  COVIRT_CHECK(once(r, kids, diag));
  memory_backing_def m;
  if (auto h = r.take_any("hugepages")) COVIRT_CHECK(parse_hugepages(h, m, diag));
  for (auto [name, member] : {std::pair{"nosharepages", &memory_backing_def::nosharepages},
                              std::pair{"locked", &memory_backing_def::locked},
                              std::pair{"discard", &memory_backing_def::discard}}) {
    xml_node c = r.take_any(name);
    if (!c) continue;
    COVIRT_CHECK(only(c, {}, {}, diag));
    m.*member = true;
  }
  COVIRT_CHECK(backing_choice(r, "source", "type", {"file", "anonymous", "memfd"}, m.source_type, diag));
  COVIRT_CHECK(backing_choice(r, "access", "mode", {"shared", "private"}, m.access_mode, diag));
  if (auto a = r.take_any("allocation")) {
    COVIRT_CHECK(only(a, {"mode", "threads"}, {}, diag));
    std::string_view mode = a.attribute("mode").value();
    if (!one_of(mode, {"immediate", "ondemand"}))
      return fail(diag, errc::config_unsupported, "unknown memoryBacking/allocation/mode '" + std::string(mode) + "'");
    m.allocation_mode.assign(mode);
    if (auto t = a.attribute("threads")) {
      unsigned v = 0;
      if (!x::parse_uint(t.value(), v))
        return fail(diag, errc::xml_error,
                    std::string("Failed to parse memory allocation threads '") + t.value() + "'");
      if (v) m.allocation_threads = v;  // 0 is libvirt's "not set"
    }
  }
  if (!backing_empty(m)) out = std::move(m);
  return {};
}

result<void> parse_cputune(xml_node n, std::optional<cputune_def>& out, diagnostics& diag) {
  // no attributes; unknown children are kept (extra)
  if (auto a = n.first_attribute(); x::present(a))
    return fail(diag, errc::xml_detail, std::string("attribute '") + a.name() + "' of <cputune> is not supported");
  x::reader r(n);
  COVIRT_CHECK(once(r, {"shares", "period", "quota", "global_period", "global_quota", "emulator_period",
                        "emulator_quota", "iothread_period", "iothread_quota"},
                    diag));
  cputune_def ct;
  if (auto s = r.take_any("shares")) {
    COVIRT_CHECK(only(s, {}, {}, diag));
    std::string buf;
    std::string_view text = x::trim_view(x::text_view(s, buf));
    unsigned long long v = 0;
    if (!x::parse_uint(text, v))
      return fail(diag, errc::xml_error, "can't parse cputune shares value '" + std::string(text) + "'");
    if (v > 0 && (v < shares_min || v > shares_max)) return range_error("shares", shares_min, shares_max, diag);
    ct.shares = v;  // 0 given is kept and printed, as libvirt does (sharesSpecified)
  }
  for (auto& f : cfs_fields) {
    xml_node c = r.take_any(f.name);
    if (!c) continue;
    COVIRT_CHECK(only(c, {}, {}, diag));
    COVIRT_CHECK(parse_cfs(c, f, ct, diag));
  }
  for (auto p : r.take_all_any("vcpupin")) COVIRT_CHECK(parse_vcpupin(p, ct, diag));
  std::stable_sort(ct.vcpupins.begin(), ct.vcpupins.end(),
                   [](const auto& a, const auto& b) { return a.vcpu < b.vcpu; });
  auto pins = r.take_all_any("emulatorpin");
  if (pins.size() > 1) return fail(diag, errc::xml_error, "only one emulatorpin is supported");
  if (!pins.empty()) {
    COVIRT_CHECK(only(pins[0], {"cpuset"}, {}, diag));
    if (!pins[0].attribute("cpuset")) return fail(diag, errc::internal_error, "missing cpuset for emulatorpin");
    COVIRT_TRY(cpuset, bitmap_attr(pins[0], "cpuset", diag));
    ct.emulatorpin = std::move(cpuset);
  }
  ct.extra = r.rest();
  for (auto& e : ct.extra)
    if (e.name == "iothreadpin") COVIRT_CHECK(normalise_attr(e, "cpuset", diag));
  x::sort_by_stage(ct.extra, cputune_extra_order);
  if (!cputune_empty(ct)) out = std::move(ct);
  return {};
}

result<void> parse_numatune(xml_node n, std::string_view vcpu_placement, std::optional<numatune_def>& out,
                            diagnostics& diag) {
  COVIRT_CHECK(only(n, {}, {"memory", "memnode"}, diag));
  x::reader r(n);
  COVIRT_CHECK(once(r, {"memory"}, diag));
  numatune_def nt;
  xml_node m = r.take_any("memory");
  if (m) COVIRT_CHECK(only(m, {"mode", "placement", "nodeset"}, {}, diag));
  // virDomainNumatuneParseXML: a <memory> without attributes says nothing
  if (m && m.first_attribute()) {
    nt.has_memory = true;
    nt.mode = m.attribute("mode").value();
    if (!one_of(nt.mode, {"strict", "preferred", "interleave", "restrictive"}))
      return fail(diag, errc::config_unsupported, "Unsupported NUMA memory tuning mode '" + nt.mode + "'");
    nt.placement = m.attribute("placement").value();
    if (!one_of(nt.placement, {"static", "auto"}))
      return fail(diag, errc::config_unsupported, "Unsupported NUMA memory placement mode '" + nt.placement + "'");
    COVIRT_TRY(nodeset, bitmap_attr(m, "nodeset", diag));
    nt.nodeset = std::move(nodeset);
  } else if (vcpu_placement == "auto") {
    nt.has_memory = true;  // virDomainNumatuneSet: memory placed like the vCPUs
  }
  if (nt.has_memory) {
    if (nt.mode.empty()) nt.mode = "strict";
    if (nt.placement.empty())
      nt.placement = !nt.nodeset.empty() || vcpu_placement != "auto" ? "static" : "auto";
    if (nt.placement == "static" && nt.nodeset.empty())
      return fail(diag, errc::config_unsupported,
                  "nodeset for NUMA memory tuning must be set if 'placement' is 'static'");
    if (nt.placement == "auto") nt.nodeset.clear();  // libvirt drops a nodeset given with auto placement
  }
  for (auto c : r.take_all_any("memnode")) {
    xml_element e = x::to_element(c);
    COVIRT_CHECK(normalise_memnode(e, diag));
    nt.memnodes.push_back(std::move(e));
  }
  std::stable_sort(nt.memnodes.begin(), nt.memnodes.end(),
                   [](const xml_element& a, const xml_element& b) { return memnode_cell(a) < memnode_cell(b); });
  if (nt.placement == "auto" && !nt.memnodes.empty())
    return fail(diag, errc::config_unsupported, "Per-node binding is not compatible with automatic NUMA placement.");
  if (nt.has_memory || !nt.memnodes.empty()) out = std::move(nt);
  return {};
}

result<void> check_hugepages(domain_config& d, diagnostics& diag) {
  if (!d.memory_backing || d.memory_backing->pages.empty()) return {};
  auto& pages = d.memory_backing->pages;
  // the guest's NUMA cells: <cpu><numa><cell/>...</numa></cpu>
  std::size_t cells = 0;
  bool numa = false;
  if (d.cpu)
    for (auto& e : d.cpu->extra)
      if (e.name == "numa") {
        numa = true;
        for (auto& c : e.children) cells += c.name == "cell";
      }
  // virDomainDefParseMemory: without guest NUMA, a page of node 0 is the guest's one page size
  if (!numa)
    for (auto& p : pages)
      if (p.nodeset == "0") p.nodeset.clear();
  for (std::size_t i = 0; i < pages.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      auto sizes = std::to_string(pages[i].size_kib) + " and " + std::to_string(pages[j].size_kib);
      if (pages[i].nodeset.empty() && pages[j].nodeset.empty())
        return fail(diag, errc::xml_detail, "two master hugepages detected: " + sizes);
      if (pages[i].nodeset.empty() || pages[j].nodeset.empty()) continue;
      auto a = parse_bitmap(pages[i].nodeset, cpumask_len, diag), b = parse_bitmap(pages[j].nodeset, cpumask_len, diag);
      if (!a || !b) return fail(diag, errc::xml_detail, "hugepage nodeset is not a valid node list");
      std::vector<unsigned> both;
      std::set_intersection(a->begin(), a->end(), b->begin(), b->end(), std::back_inserter(both));
      if (!both.empty())
        return fail(diag, errc::xml_detail, "nodeset attribute of hugepages of sizes " + sizes + " intersect");
    }
  for (auto& p : pages) {
    if (p.nodeset.empty()) continue;
    auto members = parse_bitmap(p.nodeset, cpumask_len, diag);
    if (!members) return fail(diag, errc::xml_detail, "hugepage nodeset '" + p.nodeset + "' is not a valid node list");
    for (unsigned node : *members)
      if (node >= cells)
        return fail(diag, errc::xml_detail, "hugepages: node " + std::to_string(node) + " not found");
  }
  return {};
}

// ------------------------------------------------------------------ printers

void fmt_blkiotune(x::writer& w, const blkiotune_def& b) {
  // libvirt writes no empty <blkiotune/>, nor a device with nothing set
  if (!b.weight && std::all_of(b.devices.begin(), b.devices.end(), blkio_device_empty)) return;
  w.put("  <blkiotune>\n");
  if (b.weight) w.num_elem(2, "weight", *b.weight);
  for (auto& dev : b.devices) {
    if (blkio_device_empty(dev)) continue;
    w.put("    <device>\n");
    w.text_elem(3, "path", dev.path);
    for (auto [name, member] : blkio_uints)
      if (dev.*member) w.num_elem(3, name, *(dev.*member));
    for (auto& f : blkio_limits)
      if (dev.*f.member) w.num_elem(3, f.name, *(dev.*f.member));
    w.put("    </device>\n");
  }
  w.put("  </blkiotune>\n");
}

void fmt_memtune(x::writer& w, const memtune_def& m) {
  if (m == memtune_def{}) return;
  w.put("  <memtune>\n");
  for (auto [name, member] : {std::pair{"hard_limit", &memtune_def::hard_limit_kib},
                              std::pair{"soft_limit", &memtune_def::soft_limit_kib},
                              std::pair{"min_guarantee", &memtune_def::min_guarantee_kib},
                              std::pair{"swap_hard_limit", &memtune_def::swap_hard_limit_kib}}) {
    if (!(m.*member)) continue;
    w.open(2, name);
    w.attr("unit", "KiB");
    w.num_body(name, *(m.*member));
  }
  w.put("  </memtune>\n");
}

void fmt_memory_backing(x::writer& w, const memory_backing_def& m) {
  if (backing_empty(m)) return;
  w.put("  <memoryBacking>\n");
  if (m.hugepages || !m.pages.empty()) {
    if (m.pages.empty()) {
      w.empty_elem(2, "hugepages");
    } else {
      w.put("    <hugepages>\n");
      for (auto& p : m.pages) {
        w.open(3, "page");
        w.attr_num("size", p.size_kib);
        w.attr("unit", "KiB");
        w.attr_if("nodeset", p.nodeset);
        w.self_close();
      }
      w.put("    </hugepages>\n");
    }
  }
  if (m.nosharepages) w.empty_elem(2, "nosharepages");
  if (m.locked) w.empty_elem(2, "locked");
  x::write_attr_leaf(w, 2, "source", "type", m.source_type);
  x::write_attr_leaf(w, 2, "access", "mode", m.access_mode);
  if (!m.allocation_mode.empty() || m.allocation_threads) {
    w.open(2, "allocation");
    w.attr_if("mode", m.allocation_mode);
    w.attr_opt("threads", m.allocation_threads);
    w.self_close();
  }
  if (m.discard) w.empty_elem(2, "discard");
  w.put("  </memoryBacking>\n");
}

void fmt_cputune(x::writer& w, const cputune_def& c) {
  if (cputune_empty(c)) return;
  w.put("  <cputune>\n");
  if (c.shares) w.num_elem(2, "shares", *c.shares);
  for (auto& f : cfs_fields) {
    if (!f.quota && c.*f.period) w.num_elem(2, f.name, *(c.*f.period));
    if (f.quota && c.*f.quota_member) w.num_elem(2, f.name, *(c.*f.quota_member));
  }
  // libvirt keeps one pin per vCPU and prints them by vCPU
  std::vector<const cputune_def::vcpupin_t*> pins;
  pins.reserve(c.vcpupins.size());
  for (auto& p : c.vcpupins) pins.push_back(&p);
  std::stable_sort(pins.begin(), pins.end(), [](auto* a, auto* b) { return a->vcpu < b->vcpu; });
  for (auto* p : pins) {
    w.open(2, "vcpupin");
    w.attr_num("vcpu", p->vcpu);
    w.attr("cpuset", p->cpuset);
    w.self_close();
  }
  if (c.emulatorpin) x::write_attr_leaf(w, 2, "emulatorpin", "cpuset", *c.emulatorpin);
  w.elements(2, c.extra);
  w.put("  </cputune>\n");
}

void fmt_numatune(x::writer& w, const numatune_def& n) {
  if (!n.has_memory && n.memnodes.empty()) return;
  w.put("  <numatune>\n");
  if (n.has_memory) {
    w.open(2, "memory");
    w.attr("mode", n.mode.empty() ? std::string_view("strict") : std::string_view(n.mode));
    if (n.placement == "auto") w.attr("placement", "auto");
    else w.attr_if("nodeset", n.nodeset);
    w.self_close();
  }
  w.elements(2, n.memnodes);
  w.put("  </numatune>\n");
}

}  // namespace covirt::domain_codec
