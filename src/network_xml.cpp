// covirt: network XML <-> network_config.
#include <covirt/domain/xml.hpp>

#include "detail/xml_util.hpp"

#include <algorithm>

namespace covirt {

namespace x = detail::xml;

namespace {

result<network_ip> parse_ip(pugi::xml_node n, diagnostics& diag) {
  network_ip ip;
  ip.address = x::attr(n, "address");
  ip.netmask = x::attr(n, "netmask");
  ip.family = x::attr(n, "family");
  ip.localptr = x::attr(n, "localPtr");
  auto p = x::opt_uint(n, "prefix", diag);
  if (!p) return p.error();
  ip.prefix = *p;
  if (ip.family == "ipv6" && ip.prefix && *ip.prefix > 128)
    return fail(diag, errc::xml_detail, "network ip prefix " + std::to_string(*ip.prefix) + " is out of range");
  if (ip.family != "ipv6" && ip.prefix && *ip.prefix > 32)
    return fail(diag, errc::xml_detail, "network ip prefix " + std::to_string(*ip.prefix) + " is out of range");
  ip.extra_attrs = x::extra_attrs(n, {"address", "netmask", "family", "localPtr", "prefix"});
  x::reader ir(n);
  if (auto d = n.child("dhcp"); d && !d.first_attribute()) {
    ir.take_any("dhcp");
    ip.has_dhcp = true;
    for (auto c : d.children()) {
      if (c.type() != pugi::node_element) continue;
      std::string_view nm = c.name();
      if (nm == "range") {
        network_ip::range_t r;
        r.start = x::attr(c, "start");
        r.end = x::attr(c, "end");
        r.extra_attrs = x::extra_attrs(c, {"start", "end"});
        r.children = x::extra_children(c, {});
        ip.dhcp_ranges.push_back(std::move(r));
      } else if (nm == "host" && x::reader::plain_leaf(c)) {
        network_dhcp_host h;
        h.mac = x::attr(c, "mac");
        for (auto& ch : h.mac) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        h.id = x::attr(c, "id");
        h.name = x::attr(c, "name");
        h.ip = x::attr(c, "ip");
        h.extra_attrs = x::extra_attrs(c, {"mac", "id", "name", "ip"});
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
    n.forward_mode = x::attr(f, "mode");
    if (n.forward_mode.empty()) n.forward_mode = "nat";  // libvirt: <forward/> means nat
    n.forward_dev = x::attr(f, "dev");
    n.forward_extra_attrs = x::extra_attrs(f, {"mode", "dev"});
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
    n.bridge_name = x::attr(b, "name");
    n.bridge_stp = x::attr(b, "stp");
    n.bridge_delay = x::attr(b, "delay");
    n.bridge_extra_attrs = x::extra_attrs(b, {"name", "stp", "delay"});
  }
  if (auto m = r.take("mtu", {"size"})) {
    auto mr = x::opt_uint(m, "size", diag);
    if (!mr) return mr.error();
    n.mtu = *mr;
  }
  if (auto m = r.take("mac", {"address"})) {
    n.mac = x::attr(m, "address");
    for (auto& ch : n.mac) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (auto d = r.take("domain", {"name", "localOnly"}); d && d.attribute("name")) {
    n.domain_name = x::attr(d, "name");
    n.domain_local = x::attr(d, "localOnly");
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
        w.open(1, "forward");
        w.attr_if("dev", n.forward_dev);
        w.attr("mode", n.forward_mode);
        w.attrs(n.forward_extra_attrs);
        auto mark = w.begin_body();
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
      if (n.has_bridge) {
        w.open(1, "bridge");
        w.attr_if("name", n.bridge_name);
        w.attr_if("stp", n.bridge_stp);
        w.attr_if("delay", n.bridge_delay);
        w.attrs(n.bridge_extra_attrs);
        w.self_close();
      }
    } else if (st == "mtu") {
      if (n.mtu) {
        w.open(1, "mtu");
        w.attr_num("size", *n.mtu);
        w.self_close();
      }
    } else if (st == "mac") {
      if (!n.mac.empty()) {
        w.open(1, "mac");
        w.attr("address", n.mac);
        w.self_close();
      }
    } else if (st == "domain") {
      if (!n.domain_name.empty()) {
        w.open(1, "domain");
        w.attr("name", n.domain_name);
        w.attr_if("localOnly", n.domain_local);
        w.self_close();
      }
    } else if (st == "dns") {
      if (n.dns) w.element(1, *n.dns);
    } else if (st == "ip") {
      for (auto& ip : n.ips) {
        w.open(1, "ip");
        w.attr_if("family", ip.family);
        w.attr_if("address", ip.address);
        w.attr_if("netmask", ip.netmask);
        w.attr_opt("prefix", ip.prefix);
        w.attr_if("localPtr", ip.localptr);
        w.attrs(ip.extra_attrs);
        w.put(">\n");  // libvirt never self-closes <ip>
        if (!ip.tftp_root.empty()) {
          w.open(2, "tftp");
          w.attr("root", ip.tftp_root);
          w.self_close();
        }
        if (ip.has_dhcp) {
          w.open(2, "dhcp");
          auto m2 = w.begin_body();
          for (auto& r : ip.dhcp_ranges) {
            w.open(3, "range");
            w.attr("start", r.start);
            w.attr("end", r.end);
            w.attrs(r.extra_attrs);
            auto m3 = w.begin_body();
            w.elements(4, r.children);
            w.finish(m3, 3, "range");
          }
          for (auto& h : ip.dhcp_hosts) {
            w.open(3, "host");
            w.attr_if("mac", h.mac);
            w.attr_if("id", h.id);
            w.attr_if("name", h.name);
            w.attr_if("ip", h.ip);
            w.attrs(h.extra_attrs);
            w.self_close();
          }
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
