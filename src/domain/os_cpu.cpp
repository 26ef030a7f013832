// covirt: <os>, <features>, <cpu> and <clock>.

#include "codec.hpp"

#include <algorithm>

namespace covirt::domain_codec {

namespace {

using os_t = domain_config::os_t;
using loader_t = os_t::loader_t;

// ------------------------------------------------------------------ os

constexpr x::field<os_t> os_fields[] = {{"firmware", &os_t::firmware}};
constexpr x::field<os_t> os_type_fields[] = {{"arch", &os_t::arch}, {"machine", &os_t::machine}};
constexpr x::field<loader_t> loader_fields[] = {
    {"readonly", &loader_t::readonly}, {"secure", &loader_t::secure}, {"type", &loader_t::type}};
constexpr x::field<os_t> nvram_fields[] = {{"template", &os_t::nvram_template}};
constexpr x::field<os_t> bootmenu_fields[] = {{"enable", &os_t::bootmenu_enable},
                                              {"timeout", &os_t::bootmenu_timeout}};
constexpr x::field<os_t> bios_fields[] = {{"useserial", &os_t::bios_useserial},
                                          {"rebootTimeout", &os_t::bios_reboot_timeout}};

/// The text-only children of <os> written after <nvram>, in libvirt's order.
constexpr std::pair<std::string_view, std::string os_t::*> os_texts[] = {
    {"kernel", &os_t::kernel}, {"initrd", &os_t::initrd}, {"cmdline", &os_t::cmdline}, {"dtb", &os_t::dtb}};

/// The attributes of a child taken with r.take(name, {its attribute names}): nothing unknown.
template <class T, std::size_t N>
result<void> read_known(xml_node n, T& obj, const x::field<T> (&fs)[N], diagnostics& diag) {
  xml_attributes none;
  return x::read_fields(n, obj, fs, none, diag);
}

/// Whether any of the fields' strings is set.
template <class T, std::size_t N>
bool any_set(const T& obj, const x::field<T> (&fs)[N]) {
  return std::any_of(std::begin(fs), std::end(fs), [&](const x::field<T>& f) {
    return f.k == x::field<T>::kind::text && !(obj.*f.text).empty();
  });
}

/// `<name attrs>text</name>`, or `<name attrs/>` without text.
template <const auto& Fs, class T>
void text_leaf(x::writer& w, int depth, std::string_view name, const T& obj, const xml_attributes& extra,
               std::string_view text) {
  w.open(depth, name);
  x::write_fields<Fs>(w, obj);
  w.attrs(extra);
  if (text.empty()) w.self_close();
  else w.text_body(name, text);
}

// ------------------------------------------------------------------ features

constexpr x::field<feature_flag> flag_fields[] = {{"state", &feature_flag::state}};

result<void> parse_flag(xml_node n, feature_flag& f, diagnostics& diag) {
  COVIRT_CHECK(x::read_fields(n, f, flag_fields, f.extra_attrs, diag));
  f.children = x::extra_children(n, {});
  return {};
}

void fmt_flag(x::writer& w, int depth, std::string_view name, const feature_flag& f) {
  auto mark = x::open_element<flag_fields>(w, depth, name, f, f.extra_attrs);
  w.elements(depth + 1, f.children);
  w.finish(mark, depth, name);
}

/// libvirt's order of <features> children; the typed ones with their place in features_t.
constexpr std::pair<std::string_view, std::optional<feature_flag> features_t::*> feature_kinds[] = {
    {"acpi", &features_t::acpi}, {"apic", &features_t::apic}, {"pae", &features_t::pae},
    {"hap", &features_t::hap}, {"viridian", &features_t::viridian}, {"privnet", &features_t::privnet},
    {"hyperv", nullptr}, {"kvm", &features_t::kvm}, {"pvspinlock", nullptr}, {"capabilities", nullptr},
    {"pmu", &features_t::pmu}, {"vmport", &features_t::vmport}, {"gic", nullptr}, {"smm", &features_t::smm},
    {"ioapic", nullptr}, {"hpt", nullptr}, {"vmcoreinfo", nullptr}, {"htm", nullptr}, {"nested-hv", nullptr},
    {"msrs", nullptr}, {"ccf-assist", nullptr}, {"xen", nullptr}, {"cfpc", nullptr}, {"sbbc", nullptr},
    {"ibs", nullptr}, {"tcg", nullptr}, {"async-teardown", nullptr}
};

std::size_t feature_stage(std::string_view name) {
  for (std::size_t i = 0; i < std::size(feature_kinds); ++i)
    if (feature_kinds[i].first == name) return i;
  return std::size(feature_kinds);
}

// ------------------------------------------------------------------ cpu, clock

constexpr x::field<cpu_def> cpu_fields[] = {{"mode", &cpu_def::mode},
                                            {"match", &cpu_def::match},
                                            {"check", &cpu_def::check},
                                            {"migratable", &cpu_def::migratable}};
constexpr x::field<cpu_def> cpu_model_fields[] = {{"fallback", &cpu_def::model_fallback},
                                                  {"vendor_id", &cpu_def::model_vendor_id}};
constexpr x::field<cpu_feature> cpu_feature_fields[] = {{"policy", &cpu_feature::policy},
                                                        {"name", &cpu_feature::name, x::always}};

constexpr x::field<clock_def> clock_fields[] = {{"offset", &clock_def::offset},
                                                {"adjustment", &clock_def::adjustment},
                                                {"basis", &clock_def::basis},
                                                {"timezone", &clock_def::timezone}};
constexpr x::field<clock_timer> timer_fields[] = {
    {"name", &clock_timer::name, x::always}, {"present", &clock_timer::present},
    {"tickpolicy", &clock_timer::tickpolicy}, {"track", &clock_timer::track},
    {"frequency", &clock_timer::frequency},  {"mode", &clock_timer::mode}};

}  // namespace

result<void> parse_os(xml_node n, os_t& os, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, os, os_fields, os.extra_attrs, diag));
  if (auto t = r.take("type", {"arch", "machine"})) {
    os.type = x::trimmed_text(t);
    COVIRT_CHECK(read_known(t, os, os_type_fields, diag));
  }
  if (auto l = r.take_leaf("loader")) {
    auto& ld = os.loader.emplace();
    ld.path = x::trimmed_text(l);
    COVIRT_CHECK(x::read_fields(l, ld, loader_fields, ld.extra_attrs, diag));
  }
  if (auto v = r.take("nvram", {"template"})) {
    os.nvram = x::trimmed_text(v);
    COVIRT_CHECK(read_known(v, os, nvram_fields, diag));
  }
  for (auto [name, member] : os_texts)
    if (auto e = r.take(name)) os.*member = x::text_of(e);
  if (auto e = r.take("init")) os.init = x::text_of(e);
  for (auto b : r.take_all("boot", {"dev"})) {
    std::string_view dev = b.attribute("dev").value();
    if (dev != "hd" && dev != "cdrom" && dev != "fd" && dev != "network")
      return fail(diag, errc::xml_detail, "unknown boot device '" + std::string(dev) + "'");
    os.boot_devs.emplace_back(dev);
  }
  if (auto b = r.take("bootmenu", {"enable", "timeout"})) COVIRT_CHECK(read_known(b, os, bootmenu_fields, diag));
  if (auto s = r.take("smbios", {"mode"})) os.smbios_mode = s.attribute("mode").value();
  if (auto b = r.take("bios", {"useserial", "rebootTimeout"})) COVIRT_CHECK(read_known(b, os, bios_fields, diag));
  os.extra = r.rest();
  return {};
}

void fmt_os(x::writer& w, const os_t& os) {
  auto mark = x::open_element<os_fields>(w, 1, "os", os, os.extra_attrs);
  if (!os.type.empty() || any_set(os, os_type_fields)) {
    w.open(2, "type");
    x::write_fields<os_type_fields>(w, os);
    w.text_body("type", os.type);
  }
  if (!os.init.empty()) w.text_elem(2, "init", os.init);
  if (os.loader) text_leaf<loader_fields>(w, 2, "loader", *os.loader, os.loader->extra_attrs, os.loader->path);
  if (os.nvram) text_leaf<nvram_fields>(w, 2, "nvram", os, {}, *os.nvram);
  for (auto [name, member] : os_texts)
    if (!(os.*member).empty()) w.text_elem(2, name, os.*member);
  w.elements(2, os.extra);
  for (auto& b : os.boot_devs) x::write_attr_leaf(w, 2, "boot", "dev", b);
  if (any_set(os, bootmenu_fields)) x::write_leaf<bootmenu_fields>(w, 2, "bootmenu", os, {});
  x::write_attr_leaf(w, 2, "smbios", "mode", os.smbios_mode);
  if (any_set(os, bios_fields)) x::write_leaf<bios_fields>(w, 2, "bios", os, {});
  w.finish(mark, 1, "os");
}

result<void> parse_features(xml_node n, features_t& ft, diagnostics& diag) {
  ft.extra_attrs = x::extra_attrs(n, {});
  for (auto c = n.first_child(); x::present(c); c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    std::size_t k = feature_stage(c.name());
    auto member = k < std::size(feature_kinds) ? feature_kinds[k].second : nullptr;
    if (member && !(ft.*member)) COVIRT_CHECK(parse_flag(c, (ft.*member).emplace(), diag));
    else ft.extra.push_back(x::to_element(c));
  }
  if (ft.extra.size() > 1)
    std::stable_sort(ft.extra.begin(), ft.extra.end(), [](const xml_element& a, const xml_element& b) {
      return feature_stage(a.name) < feature_stage(b.name);
    });
  return {};
}

void fmt_features(x::writer& w, const features_t& f) {
  w.open(1, "features");
  w.attrs(f.extra_attrs);
  auto mark = w.begin_body();
  for (auto [name, member] : feature_kinds) {
    if (member && f.*member) fmt_flag(w, 2, name, *(f.*member));
    if (!f.extra.empty()) fmt_extra_named(w, 2, f.extra, name);
  }
  for (auto& e : f.extra)
    if (feature_stage(e.name) == std::size(feature_kinds)) w.element(2, e);
  w.finish(mark, 1, "features");
}

result<void> parse_cpu(xml_node n, cpu_def& c, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, c, cpu_fields, c.extra_attrs, diag));
  if (auto m = r.take("model", {"fallback", "vendor_id"})) {
    c.model = x::trimmed_text(m);
    COVIRT_CHECK(read_known(m, c, cpu_model_fields, diag));
  }
  if (auto v = r.take("vendor")) c.vendor = x::trimmed_text(v);
  if (auto t = r.take("topology", {"sockets", "dies", "cores", "threads"})) {
    cpu_def::topology_t topo;
    for (auto [name, field] : {std::pair{"sockets", &topo.sockets}, std::pair{"dies", &topo.dies},
                               std::pair{"cores", &topo.cores}, std::pair{"threads", &topo.threads}}) {
      COVIRT_TRY(v, x::opt_uint(t, name, diag));
      if (v && *v == 0)
        return fail(diag, errc::xml_detail, std::string("cpu topology '") + name + "' must be greater than zero");
      if (!v && std::string_view(name) != "dies")
        return fail(diag, errc::xml_detail, std::string("cpu topology is missing '") + name + "'");
      *field = v.value_or(0);
    }
    c.topology = topo;
  }
  for (auto f : r.take_all("feature", {"policy", "name"}))
    COVIRT_CHECK(read_known(f, c.features.emplace_back(), cpu_feature_fields, diag));
  c.extra = r.rest();
  return {};
}

void fmt_cpu(x::writer& w, const cpu_def& c) {
  auto mark = x::open_element<cpu_fields>(w, 1, "cpu", c, c.extra_attrs);
  if (c.model) text_leaf<cpu_model_fields>(w, 2, "model", c, {}, *c.model);
  if (!c.vendor.empty()) w.text_elem(2, "vendor", c.vendor);
  if (c.topology) {
    w.open(2, "topology");
    w.attr_num("sockets", c.topology->sockets);
    if (c.topology->dies) w.attr_num("dies", c.topology->dies);
    w.attr_num("cores", c.topology->cores);
    w.attr_num("threads", c.topology->threads);
    w.self_close();
  }
  fmt_extra_named(w, 2, c.extra, "cache");
  fmt_extra_named(w, 2, c.extra, "maxphysaddr");
  for (auto& f : c.features) x::write_leaf<cpu_feature_fields>(w, 2, "feature", f, {});
  for (auto& e : c.extra)
    if (e.name != "cache" && e.name != "maxphysaddr") w.element(2, e);
  w.finish(mark, 1, "cpu");
}

result<void> parse_clock(xml_node n, clock_def& c, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, c, clock_fields, c.extra_attrs, diag));
  for (auto t : r.take_all_any("timer")) {
    auto& tm = c.timers.emplace_back();
    COVIRT_CHECK(x::read_fields(t, tm, timer_fields, tm.extra_attrs, diag));
    tm.children = x::extra_children(t, {});
  }
  c.extra = r.rest();
  return {};
}

void fmt_clock(x::writer& w, const clock_def& c) {
  auto mark = x::open_element<clock_fields>(w, 1, "clock", c, c.extra_attrs);
  for (auto& t : c.timers) {
    auto m2 = x::open_element<timer_fields>(w, 2, "timer", t, t.extra_attrs);
    w.elements(3, t.children);
    w.finish(m2, 2, "timer");
  }
  w.elements(2, c.extra);
  w.finish(mark, 1, "clock");
}

}  // namespace covirt::domain_codec
