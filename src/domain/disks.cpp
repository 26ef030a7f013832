// covirt: <disk> and <controller>. Each element's attributes are one field table, in
// libvirt's order, read by the parser and written by the printer.

#include "codec.hpp"

namespace covirt::domain_codec {

namespace {

using disk_source = disk_def::source_t;
using disk_driver = disk_def::driver_t;

constexpr x::field<disk_def> disk_fields[] = {{"type", &disk_def::type, x::always},
                                              {"device", &disk_def::device, x::always}};
constexpr x::field<disk_driver> driver_fields[] = {{"name", &disk_driver::name},
                                                   {"type", &disk_driver::type},
                                                   {"cache", &disk_driver::cache},
                                                   {"io", &disk_driver::io},
                                                   {"discard", &disk_driver::discard}};
constexpr x::field<disk_source> source_fields[] = {
    {"protocol", &disk_source::protocol}, {"name", &disk_source::name},     {"file", &disk_source::file},
    {"dev", &disk_source::dev},           {"dir", &disk_source::dir},       {"pool", &disk_source::pool},
    {"volume", &disk_source::volume},     {"mode", &disk_source::mode},     {"startupPolicy", &disk_source::startup_policy}};
constexpr x::field<disk_host> host_fields[] = {{"transport", &disk_host::transport},
                                               {"name", &disk_host::name},
                                               {"port", &disk_host::port},
                                               {"socket", &disk_host::socket}};
constexpr x::field<disk_def> target_fields[] = {{"dev", &disk_def::target_dev, x::always},
                                                {"bus", &disk_def::target_bus},
                                                {"tray", &disk_def::target_tray}};

constexpr x::field<controller_def> controller_fields[] = {{"type", &controller_def::type, x::always},
                                                          {"index", &controller_def::index},
                                                          {"model", &controller_def::model},
                                                          {"ports", &controller_def::ports},
                                                          {"vectors", &controller_def::vectors}};

}  // namespace

result<void> parse_disk(xml_node n, disk_def& d, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, d, disk_fields, d.extra_attrs, diag));
  parse_alias_address(r, d);
  if (auto c = r.take_leaf("driver")) {
    auto& dr = d.driver.emplace();
    COVIRT_CHECK(x::read_fields(c, dr, driver_fields, dr.extra_attrs, diag));
  }
  if (auto c = r.take_any("source")) {
    auto& s = d.source.emplace();
    x::reader sr(c);
    COVIRT_CHECK(x::read_fields(c, s, source_fields, s.extra_attrs, diag));
    for (auto h : sr.take_all_leaf("host")) {
      auto& dh = s.hosts.emplace_back();
      COVIRT_CHECK(x::read_fields(h, dh, host_fields, dh.extra_attrs, diag));
    }
    s.extra = sr.rest();
  }
  if (auto c = r.take_leaf("target")) {
    COVIRT_CHECK(x::read_fields(c, d, target_fields, d.target_extra_attrs, diag));
  } else {
    return fail(diag, errc::xml_detail, "disk is missing its <target dev=...> element");
  }
  if (d.target_dev.empty()) return fail(diag, errc::xml_detail, "disk <target> is missing the 'dev' attribute");
  d.readonly = static_cast<bool>(r.take("readonly"));
  d.shareable = static_cast<bool>(r.take("shareable"));
  d.transient = static_cast<bool>(r.take("transient"));
  COVIRT_TRY(bo, boot_order(r, diag));
  d.boot_order = bo;
  if (auto s = r.take("serial")) d.serial = x::text_of(s);
  if (auto s = r.take("wwn")) d.wwn = x::text_of(s);
  d.extra = r.rest();
  return {};
}

void fmt_disk(x::writer& w, int depth, const disk_def& d) {
  auto mark = x::open_element<disk_fields>(w, depth, "disk", d, d.extra_attrs);
  int in = depth + 1;
  if (d.driver) x::write_leaf<driver_fields>(w, in, "driver", *d.driver, d.driver->extra_attrs);
  if (d.source) {
    auto& s = *d.source;
    auto m2 = x::open_element<source_fields>(w, in, "source", s, s.extra_attrs);
    for (auto& h : s.hosts) x::write_leaf<host_fields>(w, in + 1, "host", h, h.extra_attrs);
    w.elements(in + 1, s.extra);
    w.finish(m2, in, "source");
  }
  x::write_leaf<target_fields>(w, in, "target", d, d.target_extra_attrs);
  if (d.readonly) w.empty_elem(in, "readonly");
  if (d.shareable) w.empty_elem(in, "shareable");
  if (d.transient) w.empty_elem(in, "transient");
  if (!d.serial.empty()) w.text_elem(in, "serial", d.serial);
  if (!d.wwn.empty()) w.text_elem(in, "wwn", d.wwn);
  fmt_tail(w, in, d, d.boot_order);
  w.finish(mark, depth, "disk");
}

result<void> parse_controller(xml_node n, controller_def& c, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, c, controller_fields, c.extra_attrs, diag));
  if (c.type.empty()) return fail(diag, errc::xml_detail, "controller is missing the 'type' attribute");
  parse_alias_address(r, c);
  if (auto d = r.take_any("driver")) c.driver = x::to_element(d);
  c.extra = r.rest();
  return {};
}

void fmt_controller(x::writer& w, int depth, const controller_def& c) {
  auto mark = x::open_element<controller_fields>(w, depth, "controller", c, c.extra_attrs);
  if (c.driver) w.element(depth + 1, *c.driver);
  fmt_tail(w, depth + 1, c);
  w.finish(mark, depth, "controller");
}

}  // namespace covirt::domain_codec
