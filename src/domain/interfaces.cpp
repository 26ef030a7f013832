// covirt: <interface>.

#include "codec.hpp"

#include <algorithm>
#include <cctype>

namespace covirt::domain_codec {

namespace {

using source = interface_def::source_t;

constexpr x::field<interface_def> interface_fields[] = {{"type", &interface_def::type, x::always}};
constexpr x::field<source> source_fields[] = {
    {"type", &source::type}, {"network", &source::network}, {"portgroup", &source::portgroup},
    {"bridge", &source::bridge}, {"dev", &source::dev}, {"mode", &source::mode}, {"path", &source::path}};
constexpr x::field<interface_def> mtu_fields[] = {{"size", &interface_def::mtu}};

std::string normalize_mac(std::string_view s) {
  std::string m(s);
  for (char& ch : m) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return m;
}

bool valid_mac(std::string_view m) {
  if (m.size() != 17) return false;
  for (std::size_t i = 0; i < 17; ++i) {
    if (i % 3 == 2) {
      if (m[i] != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(m[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

result<void> parse_interface(xml_node n, interface_def& d, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, d, interface_fields, d.extra_attrs, diag));
  parse_alias_address(r, d);
  if (auto c = r.take("mac", {"address"})) {
    std::string_view address = c.attribute("address").value();
    d.mac = normalize_mac(address);
    if (!valid_mac(d.mac))
      return fail(diag, errc::xml_detail, "interface MAC address '" + std::string(address) + "' is not valid");
  }
  if (auto c = r.take_any("source")) {
    auto& s = d.source.emplace();
    COVIRT_CHECK(x::read_fields(c, s, source_fields, s.extra_attrs, diag));
    s.extra = x::extra_children(c, {});
  }
  if (auto c = r.take("script", {"path"})) d.script_path = c.attribute("path").value();
  if (auto c = r.take_leaf("target")) {
    if (auto dev = c.attribute("dev")) d.target_dev = dev.value();
    d.target_extra_attrs = x::extra_attrs(c, {"dev"});
  }
  if (auto c = r.take("model", {"type"})) d.model_type = c.attribute("type").value();
  if (auto c = r.take_any("driver")) d.driver = x::to_element(c);
  COVIRT_TRY(bo, boot_order(r, diag));
  d.boot_order = bo;
  if (auto c = r.take("link", {"state"})) d.link_state = c.attribute("state").value();
  if (auto c = r.take("mtu", {"size"})) {
    xml_attributes none;
    COVIRT_CHECK(x::read_fields(c, d, mtu_fields, none, diag));
  }
  d.extra = r.rest();
  return {};
}

void fmt_interface(x::writer& w, int depth, const interface_def& d) {
  auto mark = x::open_element<interface_fields>(w, depth, "interface", d, d.extra_attrs);
  int in = depth + 1;
  x::write_attr_leaf(w, in, "mac", "address", d.mac);
  if (d.source) {
    auto& s = *d.source;
    auto m2 = x::open_element<source_fields>(w, in, "source", s, s.extra_attrs);
    w.elements(in + 1, s.extra);
    w.finish(m2, in, "source");
  }
  // The unmodelled children libvirt prints between <source> and <script>, in its order.
  static constexpr std::string_view after_source[] = {"vlan", "virtualport", "ip", "route"};
  auto early = [](const xml_element& e) {
    return std::find(std::begin(after_source), std::end(after_source), e.name) != std::end(after_source);
  };
  std::vector<xml_element> first, rest;
  for (const auto& name : after_source)
    for (const auto& e : d.extra)
      if (e.name == name) first.push_back(e);
  for (const auto& e : d.extra)
    if (!early(e)) rest.push_back(e);
  w.elements(in, first);
  x::write_attr_leaf(w, in, "script", "path", d.script_path);
  if (d.target_dev || !d.target_extra_attrs.empty()) {
    w.open(in, "target");
    if (d.target_dev) w.attr("dev", *d.target_dev);
    w.attrs(d.target_extra_attrs);
    w.self_close();
  }
  x::write_attr_leaf(w, in, "model", "type", d.model_type);
  if (d.driver) w.element(in, *d.driver);
  w.elements(in, rest);
  x::write_attr_leaf(w, in, "link", "state", d.link_state);
  if (d.mtu) x::write_leaf<mtu_fields>(w, in, "mtu", d, {});
  fmt_boot(w, in, d.boot_order);
  x::write_attr_leaf(w, in, "alias", "name", d.alias);
  if (d.address) fmt_address(w, in, *d.address);
  w.finish(mark, depth, "interface");
}

}  // namespace covirt::domain_codec
