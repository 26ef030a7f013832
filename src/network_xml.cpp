// covirt: network XML <-> network_config.
#include <covirt/domain/xml.hpp>

#include "detail/xml_fields.hpp"

#include <algorithm>
#include <cctype>

namespace covirt {

namespace x = detail::xml;

namespace {

using range_t = network_ip::range_t;
using nc = network_config;

constexpr x::field<network_ip> ip_fields[] = {{"family", &network_ip::family},
                                              {"address", &network_ip::address},
                                              {"netmask", &network_ip::netmask},
                                              {"prefix", &network_ip::prefix},
                                              {"localPtr", &network_ip::localptr}};
constexpr x::field<range_t> range_fields[] = {{"start", &range_t::start, x::always}, {"end", &range_t::end, x::always}};
constexpr x::field<network_dhcp_host> host_fields[] = {{"mac", &network_dhcp_host::mac},
                                                       {"id", &network_dhcp_host::id},
                                                       {"name", &network_dhcp_host::name},
                                                       {"ip", &network_dhcp_host::ip}};
constexpr x::field<nc> forward_fields[] = {{"dev", &nc::forward_dev}, {"mode", &nc::forward_mode, x::always}};
constexpr x::field<nc> bridge_fields[] = {{"name", &nc::bridge_name}, {"stp", &nc::bridge_stp}, {"delay", &nc::bridge_delay}};
constexpr x::field<nc> mtu_fields[] = {{"size", &nc::mtu}};
constexpr x::field<nc> domain_fields[] = {{"name", &nc::domain_name, x::always}, {"localOnly", &nc::domain_local}};

void lower(std::string& s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
}

result<network_ip> parse_ip(pugi::xml_node n, diagnostics& diag) {
  network_ip ip;
  if (auto ok = x::read_fields(n, ip, ip_fields, ip.extra_attrs, diag); !ok) return ok.error();
  if (ip.family == "ipv6" && ip.prefix && *ip.prefix > 128)
    return fail(diag, errc::xml_detail, "network ip prefix " + std::to_string(*ip.prefix) + " is out of range");
  if (ip.family != "ipv6" && ip.prefix && *ip.prefix > 32)
    return fail(diag, errc::xml_detail, "network ip prefix " + std::to_string(*ip.prefix) + " is out of range");
  x::reader ir(n);
  if (auto d = n.child("dhcp"); d && !d.first_attribute()) {
    ir.take_any("dhcp");
    ip.has_dhcp = true;
    for (auto c : d.children()) {
      if (c.type() != pugi::node_element) continue;
      std::string_view nm = c.name();
      if (nm == "range") {
        range_t r;
        if (auto ok = x::read_fields(c, r, range_fields, r.extra_attrs, diag); !ok) return ok.error();
        r.children = x::extra_children(c, {});
        ip.dhcp_ranges.push_back(std::move(r));
      } else if (nm == "host" && x::reader::plain_leaf(c)) {
        network_dhcp_host h;
        if (auto ok = x::read_fields(c, h, host_fields, h.extra_attrs, diag); !ok) return ok.error();
        lower(h.mac);
        ip.dhcp_hosts.push_back(std::move(h));
      } else {
        ip.dhcp_extra.push_back(x::to_element(c));
      }
    }
  }
  if (auto t = ir.take("tftp", {"root"})) ip.tftp_root = x::attr(t, "root");
  ip.extra = ir.rest();
  return ip;
}

constexpr std::string_view network_order[] = {"name", "uuid", "metadata", "forward", "bridge", "mtu", "mac",
                                              "domain", "dns", "ip", "route", "portgroup", "bandwidth",
                                              "vlan", "virtualport", "port"};

}  // namespace

result<network_config> parse_network_xml(std::string_view xml, diagnostics& diag) {
  pugi::xml_document doc;
  auto rootr = x::load(doc, xml, "network", diag);
  if (!rootr) return rootr.error();
  auto root = *rootr;
  network_config n;
  n.extra_attrs = x::extra_attrs(root, {});
  for (const char* single : {"name", "uuid", "forward", "bridge", "mtu", "mac", "domain", "dns"}) {
    auto c = root.children(single).begin();
    if (c != root.children(single).end() && ++c != root.children(single).end())
      return fail(diag, errc::xml_detail, std::string("element <") + single + "> is given more than once in <network>");
  }
  x::reader r(root);
  auto name = r.take("name");
  if (!name) return fail(diag, errc::xml_detail, "network has no <name> element (or it has unsupported attributes)");
  n.name = x::trim(x::text_of(name));
  if (auto ok = check_object_name("network", n.name, diag); !ok) return ok.error();
  if (auto u = r.take("uuid")) {
    auto ur = parse_uuid(x::text_of(u), diag);
    if (!ur) return ur.error();
    n.uuid = *ur;
  }
  if (auto f = r.take_any("forward")) {
    if (auto ok = x::read_fields(f, n, forward_fields, n.forward_extra_attrs, diag); !ok) return ok.error();
    if (n.forward_mode.empty()) n.forward_mode = "nat";  // libvirt: <forward/> means nat
    for (auto c : f.children()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) == "nat" && !n.nat_ports) {
        xml_element rest = x::to_element(c);
        std::vector<xml_element> kept;
        for (auto& ch : rest.children) {
          bool plain_port = ch.name == "port" && ch.children.empty() && ch.text.empty() && !n.nat_ports;
          std::string sv, ev;
          for (auto& [k, v] : ch.attributes) {
            if (k == "start") sv = v;
            else if (k == "end") ev = v;
            else plain_port = false;
          }
          if (plain_port) {
            unsigned s = 0, e = 0;
            if (!x::parse_uint(sv, s) || !x::parse_uint(ev, e) || s > 65535 || e > 65535 || s > e)
              return fail(diag, errc::xml_detail, "network nat port range '" + sv + "-" + ev + "' is not valid");
            n.nat_ports = std::pair{s, e};
          } else {
            kept.push_back(ch);
          }
        }
        rest.children = std::move(kept);
        if (!rest.children.empty() || !rest.attributes.empty() || !n.nat_ports) n.forward_extra.push_back(std::move(rest));
      } else {
        n.forward_extra.push_back(x::to_element(c));
      }
    }
  }
  if (auto b = r.take_leaf("bridge")) {
    n.has_bridge = true;
    if (auto ok = x::read_fields(b, n, bridge_fields, n.bridge_extra_attrs, diag); !ok) return ok.error();
  }
  if (auto m = r.take("mtu", {"size"})) {
    xml_attributes none;
    if (auto ok = x::read_fields(m, n, mtu_fields, none, diag); !ok) return ok.error();
  }
  if (auto m = r.take("mac", {"address"})) {
    n.mac = x::attr(m, "address");
    lower(n.mac);
  }
  if (auto d = r.take("domain", {"name", "localOnly"}); d && d.attribute("name")) {
    xml_attributes none;
    if (auto ok = x::read_fields(d, n, domain_fields, none, diag); !ok) return ok.error();
  } else if (d) {
    n.extra.push_back(x::to_element(d));
  }
  if (auto d = r.take_any("dns")) n.dns = x::to_element(d);
  for (auto i : r.take_all_any("ip")) {
    auto ir = parse_ip(i, diag);
    if (!ir) return ir.error();
    n.ips.push_back(std::move(*ir));
  }
  for (auto& e : r.rest()) n.extra.push_back(std::move(e));
  x::sort_by_stage(n.extra, network_order);
  return n;
}

std::string format_network_xml(const network_config& n) {
  x::writer w{1024};
  w.put("<network");
  w.attrs(n.extra_attrs);
  w.put(">\n");
  for (auto st : network_order) {
    if (st == "name") w.text_elem(1, "name", n.name);
    else if (st == "uuid") {
      if (!n.uuid.empty()) w.text_elem(1, "uuid", n.uuid);
    } else if (st == "forward") {
      if (!n.forward_mode.empty()) {
        auto mark = x::open_element<forward_fields>(w, 1, "forward", n, n.forward_extra_attrs);
        bool nat_written = false;
        if (n.nat_ports) {
          // merge with a kept <nat> element (addresses) if any
          const xml_element* kept = nullptr;
          for (auto& e : n.forward_extra)
            if (e.name == "nat") kept = &e;
          w.open(2, "nat");
          if (kept) w.attrs(kept->attributes);
          w.put(">\n");
          if (kept)
            for (auto& c : kept->children)
              if (c.name == "address") w.element(3, c);
          w.open(3, "port");
          w.attr_num("start", n.nat_ports->first);
          w.attr_num("end", n.nat_ports->second);
          w.self_close();
          if (kept)
            for (auto& c : kept->children)
              if (c.name != "address") w.element(3, c);
          w.put("    </nat>\n");
          nat_written = true;
        }
        for (auto& e : n.forward_extra)
          if (!(nat_written && e.name == "nat")) w.element(2, e);
        w.finish(mark, 1, "forward");
      }
    } else if (st == "bridge") {
      if (n.has_bridge) x::write_leaf<bridge_fields>(w, 1, "bridge", n, n.bridge_extra_attrs);
    } else if (st == "mtu") {
      if (n.mtu) x::write_leaf<mtu_fields>(w, 1, "mtu", n, {});
    } else if (st == "mac") {
      x::write_attr_leaf(w, 1, "mac", "address", n.mac);
    } else if (st == "domain") {
      if (!n.domain_name.empty()) x::write_leaf<domain_fields>(w, 1, "domain", n, {});
    } else if (st == "dns") {
      if (n.dns) w.element(1, *n.dns);
    } else if (st == "ip") {
      for (auto& ip : n.ips) {
        w.open(1, "ip");
        x::write_fields<ip_fields>(w, ip);
        w.attrs(ip.extra_attrs);
        w.put(">\n");  // libvirt never self-closes <ip>
        x::write_attr_leaf(w, 2, "tftp", "root", ip.tftp_root);
        if (ip.has_dhcp) {
          w.open(2, "dhcp");
          auto m2 = w.begin_body();
          for (auto& r : ip.dhcp_ranges) {
            auto m3 = x::open_element<range_fields>(w, 3, "range", r, r.extra_attrs);
            w.elements(4, r.children);
            w.finish(m3, 3, "range");
          }
          for (auto& h : ip.dhcp_hosts) x::write_leaf<host_fields>(w, 3, "host", h, h.extra_attrs);
          w.elements(3, ip.dhcp_extra);
          w.finish(m2, 2, "dhcp");
        }
        w.elements(2, ip.extra);
        w.put("  </ip>\n");
      }
    }
    for (auto& e : n.extra)
      if (e.name == st) w.element(1, e);
  }
  for (auto& e : n.extra)
    if (std::find(std::begin(network_order), std::end(network_order), e.name) == std::end(network_order))
      w.element(1, e);
  w.put("</network>\n");
  return w.take();
}

}  // namespace covirt
