// covirt: the devices but disks, controllers and interfaces, and <devices> itself: one table
// (libvirt's order of <devices> children) says for each element name how it is parsed, where
// it is kept and how it is written; the names without a typed model are kept verbatim.

#include "codec.hpp"

#include <algorithm>

namespace covirt::domain_codec {

namespace {

// ------------------------------------------------------------------ serial, parallel, console, channel

using chardev_source = chardev_def::source_t;

constexpr x::field<chardev_def> chardev_fields[] = {{"type", &chardev_def::type, x::always}};
constexpr x::field<chardev_source> chardev_source_fields[] = {
    {"mode", &chardev_source::mode}, {"path", &chardev_source::path},       {"append", &chardev_source::append},
    {"host", &chardev_source::host}, {"service", &chardev_source::service}, {"channel", &chardev_source::channel}};
constexpr x::field<chardev_def> chardev_target_fields[] = {
    {"type", &chardev_def::target_type}, {"address", &chardev_def::target_address},
    {"port", &chardev_def::target_port}, {"name", &chardev_def::target_name},
    {"state", &chardev_def::target_state}};
constexpr x::field<chardev_def> chardev_log_fields[] = {{"file", &chardev_def::log_file, x::always},
                                                        {"append", &chardev_def::log_append}};

result<void> parse_chardev(xml_node n, chardev_def& d, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, d, chardev_fields, d.extra_attrs, diag));
  parse_alias_address(r, d);
  for (auto s : r.take_all_leaf("source")) {
    auto& src = d.sources.emplace_back();
    COVIRT_CHECK(x::read_fields(s, src, chardev_source_fields, src.extra_attrs, diag));
  }
  if (auto p = r.take("protocol", {"type"})) d.protocol_type = p.attribute("type").value();
  if (auto t = r.take_any("target")) {
    d.has_target = true;
    COVIRT_CHECK(x::read_fields(t, d, chardev_target_fields, d.target_extra_attrs, diag));
    d.target_children = x::extra_children(t, {});
  }
  if (auto l = r.take("log", {"file", "append"})) {
    xml_attributes none;
    COVIRT_CHECK(x::read_fields(l, d, chardev_log_fields, none, diag));
  }
  d.extra = r.rest();
  return {};
}

void fmt_chardev(x::writer& w, int depth, std::string_view elem, const chardev_def& c) {
  auto mark = x::open_element<chardev_fields>(w, depth, elem, c, c.extra_attrs);
  int in = depth + 1;
  for (auto& s : c.sources) x::write_leaf<chardev_source_fields>(w, in, "source", s, s.extra_attrs);
  x::write_attr_leaf(w, in, "protocol", "type", c.protocol_type);
  if (!c.log_file.empty()) x::write_leaf<chardev_log_fields>(w, in, "log", c, {});
  if (c.has_target) {
    auto m2 = x::open_element<chardev_target_fields>(w, in, "target", c, c.target_extra_attrs);
    w.elements(in + 1, c.target_children);
    w.finish(m2, in, "target");
  }
  fmt_tail(w, in, c);
  w.finish(mark, depth, elem);
}

// ------------------------------------------------------------------ graphics

constexpr x::field<graphics_def> graphics_fields[] = {
    {"type", &graphics_def::type, x::always}, {"port", &graphics_def::port},
    {"tlsPort", &graphics_def::tls_port},     {"autoport", &graphics_def::autoport},
    {"websocket", &graphics_def::websocket},  {"socket", &graphics_def::socket},
    {"display", &graphics_def::display},      {"xauth", &graphics_def::xauth},
    {"fullscreen", &graphics_def::fullscreen}, {"listen", &graphics_def::listen},
    {"keymap", &graphics_def::keymap},        {"passwd", &graphics_def::passwd, x::secret}};
constexpr x::field<graphics_listen> listen_fields[] = {{"type", &graphics_listen::type},
                                                       {"address", &graphics_listen::address},
                                                       {"network", &graphics_listen::network},
                                                       {"socket", &graphics_listen::socket}};

result<void> parse_graphics(xml_node n, graphics_def& g, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, g, graphics_fields, g.extra_attrs, diag));
  if (g.type.empty()) return fail(diag, errc::xml_detail, "graphics is missing the 'type' attribute");
  for (auto l : r.take_all_leaf("listen")) {
    auto& gl = g.listens.emplace_back();
    COVIRT_CHECK(x::read_fields(l, gl, listen_fields, gl.extra_attrs, diag));
  }
  g.extra = r.rest();
  return {};
}

void fmt_graphics(x::writer& w, int depth, const graphics_def& g, bool secure) {
  auto mark = x::open_element<graphics_fields>(w, depth, "graphics", g, g.extra_attrs, secure);
  for (auto& l : g.listens) x::write_leaf<listen_fields>(w, depth + 1, "listen", l, l.extra_attrs);
  w.elements(depth + 1, g.extra);
  w.finish(mark, depth, "graphics");
}

// ------------------------------------------------------------------ video

// primary='yes' is a bool in the model: read and written by hand.
constexpr x::field<video_def> video_model_fields[] = {
    {"type", &video_def::model_type}, {"ram", &video_def::ram},       {"vram", &video_def::vram},
    {"vram64", &video_def::vram64},   {"vgamem", &video_def::vgamem}, {"heads", &video_def::heads},
    {"primary"}};

result<void> parse_video(xml_node n, video_def& v, diagnostics& diag) {
  x::reader r(n);
  v.extra_attrs = x::extra_attrs(n, {});
  parse_alias_address(r, v);
  // <model> is typed unless it holds children other than one <acceleration>
  xml_node model, accel;
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!r.child_is(i, "model")) continue;
    xml_node m = r.child(i);
    bool simple = true;
    int accels = 0;
    for (xml_node c = m.first_child(); x::present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) != "acceleration") simple = false;
      else if (!accels++) accel = c;
    }
    if (simple && accels < 2 && !r.is_claimed(i)) {
      r.claim(i);
      model = m;
    }
    break;
  }
  if (auto m = model) {
    COVIRT_CHECK(x::read_fields(m, v, video_model_fields, v.model_extra_attrs, diag));
    std::string_view primary = m.attribute("primary").value();
    v.primary = primary == "yes";
    if (!primary.empty() && !v.primary) v.model_extra_attrs.emplace_back("primary", std::string(primary));
    if (accel) v.acceleration = x::to_element(accel);
  }
  if (auto d = r.take_any("driver")) v.driver = x::to_element(d);
  v.extra = r.rest();
  return {};
}

void fmt_video(x::writer& w, int depth, const video_def& v) {
  w.open(depth, "video");
  w.attrs(v.extra_attrs);
  auto mark = w.begin_body();
  int in = depth + 1;
  if (v.driver) w.element(in, *v.driver);
  if (!v.model_type.empty() || v.ram || v.vram || v.vram64 || v.vgamem || v.heads || v.primary ||
      v.acceleration || !v.model_extra_attrs.empty()) {
    w.open(in, "model");
    x::write_fields<video_model_fields>(w, v);
    if (v.primary) w.attr("primary", "yes");
    w.attrs(v.model_extra_attrs);
    auto m2 = w.begin_body();
    if (v.acceleration) w.element(in + 1, *v.acceleration);
    w.finish(m2, in, "model");
  }
  fmt_tail(w, in, v);
  w.finish(mark, depth, "video");
}

// ------------------------------------------------------------------ hostdev

constexpr x::field<hostdev_def> hostdev_fields[] = {{"mode", &hostdev_def::mode, x::always},
                                                    {"type", &hostdev_def::type, x::always},
                                                    {"managed", &hostdev_def::managed}};

result<void> parse_hostdev(xml_node n, hostdev_def& h, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(x::read_fields(n, h, hostdev_fields, h.extra_attrs, diag));
  parse_alias_address(r, h);
  if (auto s = r.take_any("source")) {
    h.source_extra_attrs = x::extra_attrs(s, {});
    for (auto c : s.children()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) == "address" && !h.source_address && x::reader::plain_leaf(c))
        h.source_address = parse_address(c);
      else h.source_extra.push_back(x::to_element(c));
    }
  }
  COVIRT_TRY(bo, boot_order(r, diag));
  h.boot_order = bo;
  h.extra = r.rest();
  return {};
}

void fmt_hostdev(x::writer& w, int depth, const hostdev_def& h) {
  auto mark = x::open_element<hostdev_fields>(w, depth, "hostdev", h, h.extra_attrs);
  int in = depth + 1;
  if (h.source_address || !h.source_extra.empty() || !h.source_extra_attrs.empty()) {
    w.open(in, "source");
    w.attrs(h.source_extra_attrs);
    auto m2 = w.begin_body();
    w.elements(in + 1, h.source_extra);
    if (h.source_address) fmt_address(w, in + 1, *h.source_address);
    w.finish(m2, in, "source");
  }
  fmt_tail(w, in, h, h.boot_order);
  w.finish(mark, depth, "hostdev");
}

// ------------------------------------------------------------------ memballoon, rng

constexpr x::field<memballoon_def> memballoon_fields[] = {{"model", &memballoon_def::model},
                                                          {"autodeflate", &memballoon_def::autodeflate}};
constexpr x::field<memballoon_def> stats_fields[] = {{"period", &memballoon_def::stats_period}};

// How a memballoon and an rng begin: model= (kept as "" when absent, not the default), the
// other attributes, alias and address.
template <class Def, std::size_t N>
result<void> parse_model_head(xml_node n, x::reader& r, Def& d, const x::field<Def> (&fields)[N], diagnostics& diag) {
  d.model.clear();
  COVIRT_CHECK(x::read_fields(n, d, fields, d.extra_attrs, diag));
  parse_alias_address(r, d);
  return {};
}

result<void> parse_memballoon(xml_node n, memballoon_def& m, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(parse_model_head(n, r, m, memballoon_fields, diag));
  if (auto s = r.take("stats", {"period"})) {
    xml_attributes none;
    COVIRT_CHECK(x::read_fields(s, m, stats_fields, none, diag));
  }
  m.extra = r.rest();
  return {};
}

void fmt_memballoon(x::writer& w, int depth, const memballoon_def& m) {
  auto mark = x::open_element<memballoon_fields>(w, depth, "memballoon", m, m.extra_attrs);
  if (m.stats_period) x::write_leaf<stats_fields>(w, depth + 1, "stats", m, {});
  fmt_tail(w, depth + 1, m);
  w.finish(mark, depth, "memballoon");
}

constexpr x::field<rng_def> rng_fields[] = {{"model", &rng_def::model}};
constexpr x::field<rng_def> backend_fields[] = {{"model", &rng_def::backend_model}};

result<void> parse_rng(xml_node n, rng_def& rd, diagnostics& diag) {
  x::reader r(n);
  COVIRT_CHECK(parse_model_head(n, r, rd, rng_fields, diag));
  std::size_t bi = 0;
  while (bi < r.size() && !r.child_is(bi, "backend")) ++bi;
  if (bi < r.size() && !r.is_claimed(bi)) {
    xml_node b = r.child(bi);
    std::string buf;
    std::string_view text = x::trim_view(x::text_view(b, buf));
    bool mixed = !x::reader::plain_leaf(b) && !text.empty();
    if (!mixed) {
      r.claim(bi);
      rd.backend_text.assign(text);
      COVIRT_CHECK(x::read_fields(b, rd, backend_fields, rd.backend_extra_attrs, diag));
      rd.backend_children = x::extra_children(b, {});
    }
  }
  if (auto rt = r.take_any("rate")) rd.rate = x::to_element(rt);
  rd.extra = r.rest();
  return {};
}

void fmt_rng(x::writer& w, int depth, const rng_def& r) {
  auto mark = x::open_element<rng_fields>(w, depth, "rng", r, r.extra_attrs);
  int in = depth + 1;
  if (r.rate) w.element(in, *r.rate);
  if (!r.backend_model.empty() || !r.backend_text.empty() || !r.backend_children.empty()) {
    w.open(in, "backend");
    x::write_fields<backend_fields>(w, r);
    w.attrs(r.backend_extra_attrs);
    if (!r.backend_children.empty()) {
      auto m2 = w.begin_body();
      w.elements(in + 1, r.backend_children);
      w.finish(m2, in, "backend");
    } else if (r.backend_text.empty()) {
      w.self_close();
    } else {
      w.text_body("backend", r.backend_text);
    }
  }
  fmt_tail(w, in, r);
  w.finish(mark, depth, "rng");
}

// ------------------------------------------------------------------ input, sound, watchdog, panic

/// The devices that are nothing but typed attributes, alias, address and verbatim children.
template <class T>
struct simple_device;
template <>
struct simple_device<input_def> {
  static constexpr x::field<input_def> fields[] = {{"type", &input_def::type}, {"bus", &input_def::bus}};
};
template <>
struct simple_device<sound_def> {
  static constexpr x::field<sound_def> fields[] = {{"model", &sound_def::model}};
};
template <>
struct simple_device<watchdog_def> {
  static constexpr x::field<watchdog_def> fields[] = {{"model", &watchdog_def::model},
                                                      {"action", &watchdog_def::action}};
};
template <>
struct simple_device<panic_def> {
  static constexpr x::field<panic_def> fields[] = {{"model", &panic_def::model}};
};

template <class T>
result<void> parse_simple(xml_node c, T& d, diagnostics& diag) {
  x::reader r(c);
  COVIRT_CHECK(x::read_fields(c, d, simple_device<T>::fields, d.extra_attrs, diag));
  parse_alias_address(r, d);
  d.extra = r.rest();
  return {};
}

template <class T>
void fmt_simple(x::writer& w, int depth, std::string_view elem, const T& d) {
  auto mark = x::open_element<simple_device<T>::fields>(w, depth, elem, d, d.extra_attrs);
  fmt_tail(w, depth + 1, d);
  w.finish(mark, depth, elem);
}

// ------------------------------------------------------------------ the table of <devices> children

/// One child name of <devices>: how it is parsed into devices_t and written back. A kind
/// without `parse` is kept verbatim (devices_t::extra) and written at its place in the order.
struct device_kind {
  std::string_view name;
  result<void> (*parse)(xml_node, devices_t&, diagnostics&) = nullptr;
  void (*print)(x::writer&, int depth, std::string_view name, const devices_t&, bool secure) = nullptr;
  void (*reserve)(devices_t&, std::size_t) = nullptr;
};

/// A list member of devices_t, its element parser and printer.
template <auto List, auto Parse, auto Print>
struct list_of {
  static result<void> parse(xml_node c, devices_t& dv, diagnostics& diag) {
    return Parse(c, (dv.*List).emplace_back(), diag);
  }
  static void print(x::writer& w, int depth, std::string_view name, const devices_t& dv, bool secure) {
    for (auto& d : dv.*List) Print(w, depth, name, d, secure);
  }
  static void reserve(devices_t& dv, std::size_t n) { (dv.*List).reserve(n); }
  static constexpr device_kind kind(std::string_view name) { return {name, parse, print, reserve}; }
};

// The element printers in one shape: (writer, depth, element name, device, secure).
template <class T>
void print_simple(x::writer& w, int depth, std::string_view name, const T& d, bool) {
  fmt_simple(w, depth, name, d);
}
void print_disk(x::writer& w, int depth, std::string_view, const disk_def& d, bool) { fmt_disk(w, depth, d); }
void print_controller(x::writer& w, int depth, std::string_view, const controller_def& c, bool) {
  fmt_controller(w, depth, c);
}
void print_interface(x::writer& w, int depth, std::string_view, const interface_def& i, bool) {
  fmt_interface(w, depth, i);
}
void print_chardev(x::writer& w, int depth, std::string_view name, const chardev_def& c, bool) {
  fmt_chardev(w, depth, name, c);
}
void print_graphics(x::writer& w, int depth, std::string_view, const graphics_def& g, bool secure) {
  fmt_graphics(w, depth, g, secure);
}
void print_video(x::writer& w, int depth, std::string_view, const video_def& v, bool) { fmt_video(w, depth, v); }
void print_hostdev(x::writer& w, int depth, std::string_view, const hostdev_def& h, bool) {
  fmt_hostdev(w, depth, h);
}
void print_rng(x::writer& w, int depth, std::string_view, const rng_def& r, bool) { fmt_rng(w, depth, r); }

/// <emulator> and <memballoon> are single: a second one is kept verbatim.
result<void> parse_emulator(xml_node c, devices_t& dv, diagnostics&) {
  if (dv.emulator.empty() && x::reader::plain(c, {})) dv.emulator = x::trimmed_text(c);
  else dv.extra.push_back(x::to_element(c));
  return {};
}
void print_emulator(x::writer& w, int depth, std::string_view, const devices_t& dv, bool) {
  if (!dv.emulator.empty()) w.text_elem(depth, "emulator", dv.emulator);
}
result<void> parse_balloon(xml_node c, devices_t& dv, diagnostics& diag) {
  if (!dv.memballoon) return parse_memballoon(c, dv.memballoon.emplace(), diag);
  dv.extra.push_back(x::to_element(c));
  return {};
}
void print_balloon(x::writer& w, int depth, std::string_view, const devices_t& dv, bool) {
  if (dv.memballoon) fmt_memballoon(w, depth, *dv.memballoon);
}

using dv = devices_t;

// libvirt's order of <devices> children (virDomainDefFormatInternal)
constexpr device_kind device_kinds[] = {
    {"emulator", parse_emulator, print_emulator},
    list_of<&dv::disks, parse_disk, print_disk>::kind("disk"),
    list_of<&dv::controllers, parse_controller, print_controller>::kind("controller"),
    {"lease"},
    {"filesystem"},
    list_of<&dv::interfaces, parse_interface, print_interface>::kind("interface"),
    {"smartcard"},
    list_of<&dv::serials, parse_chardev, print_chardev>::kind("serial"),
    list_of<&dv::parallels, parse_chardev, print_chardev>::kind("parallel"),
    list_of<&dv::consoles, parse_chardev, print_chardev>::kind("console"),
    list_of<&dv::channels, parse_chardev, print_chardev>::kind("channel"),
    list_of<&dv::inputs, parse_simple<input_def>, print_simple<input_def>>::kind("input"),
    {"tpm"},
    list_of<&dv::graphics, parse_graphics, print_graphics>::kind("graphics"),
    list_of<&dv::sounds, parse_simple<sound_def>, print_simple<sound_def>>::kind("sound"),
    {"audio"},
    list_of<&dv::videos, parse_video, print_video>::kind("video"),
    list_of<&dv::hostdevs, parse_hostdev, print_hostdev>::kind("hostdev"),
    {"redirdev"},
    {"redirfilter"},
    {"hub"},
    list_of<&dv::watchdogs, parse_simple<watchdog_def>, print_simple<watchdog_def>>::kind("watchdog"),
    {"memballoon", parse_balloon, print_balloon},
    list_of<&dv::rngs, parse_rng, print_rng>::kind("rng"),
    list_of<&dv::panics, parse_simple<panic_def>, print_simple<panic_def>>::kind("panic"),
    {"shmem"},
    {"memory"},
    {"iommu"},
    {"vsock"},
    {"crypto"}};
constexpr std::size_t unknown_kind = std::size(device_kinds);

std::size_t kind_of(const char* name) noexcept {
  std::string_view nm = name;
  for (std::size_t i = 0; i < std::size(device_kinds); ++i)
    if (device_kinds[i].name.size() == nm.size() && device_kinds[i].name == nm) return i;
  return unknown_kind;
}

}  // namespace

result<void> parse_devices(xml_node n, devices_t& dv, diagnostics& diag) {
  // classify the children once, so each device list is allocated once
  struct child {
    xml_node node;
    std::size_t kind;
  };
  std::vector<child> children;
  children.reserve(64);
  std::size_t count[unknown_kind + 1] = {};
  for (xml_node c = n.first_child(); x::present(c); c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    std::size_t k = kind_of(c.name());
    ++count[k];
    children.push_back({c, k});
  }
  for (std::size_t k = 0; k < unknown_kind; ++k)
    if (count[k] && device_kinds[k].reserve) device_kinds[k].reserve(dv, count[k]);
  std::size_t verbatim = 0;
  for (std::size_t k = 0; k <= unknown_kind; ++k)
    if (k == unknown_kind || !device_kinds[k].parse) verbatim += count[k];
  if (verbatim) dv.extra.reserve(verbatim);

  for (auto [c, k] : children) {
    if (k < unknown_kind && device_kinds[k].parse) COVIRT_CHECK(device_kinds[k].parse(c, dv, diag));
    else dv.extra.push_back(x::to_element(c));
  }
  // the verbatim ones in the order they will be written in, so that parse(format(x)) == x
  if (dv.extra.size() > 1)
    std::stable_sort(dv.extra.begin(), dv.extra.end(), [](const xml_element& a, const xml_element& b) {
      return kind_of(a.name.c_str()) < kind_of(b.name.c_str());
    });
  return {};
}

void fmt_devices(x::writer& w, int depth, const devices_t& dv, bool secure) {
  int in = depth + 1;
  w.open(depth, "devices");
  w.attrs(dv.extra_attrs);
  w.put(">\n");
  for (auto& k : device_kinds) {
    if (k.print) k.print(w, in, k.name, dv, secure);
    if (!dv.extra.empty()) fmt_extra_named(w, in, dv.extra, k.name);
  }
  for (auto& e : dv.extra)
    if (kind_of(e.name.c_str()) == unknown_kind) w.element(in, e);
  w.indent(depth);
  w.put("</devices>\n");
}

}  // namespace covirt::domain_codec
