// covirt: capabilities XML <-> capabilities.
#include <covirt/domain/xml.hpp>

#include "detail/xml_util.hpp"

namespace covirt {

namespace x = detail::xml;

namespace {

// `virsh -c test:///default capabilities` of libvirt 9.0, byte for byte.

template <class T>
result<T> num_attr(pugi::xml_node n, const char* name, diagnostics& diag) {
  T v{};
  if (!x::parse_uint(n.attribute(name).value(), v))
    return fail(diag, errc::xml_detail,
                std::string("capabilities: <") + n.name() + "> attribute '" + name + "' value '" +
                    n.attribute(name).value() + "' is not a non-negative integer");
  return v;
}

template <class T>
result<T> num_text(pugi::xml_node n, diagnostics& diag) {
  T v{};
  if (!x::parse_uint(x::text_of(n), v))
    return fail(diag, errc::xml_detail,
                std::string("capabilities: <") + n.name() + "> value '" + x::text_of(n) +
                    "' is not a non-negative integer");
  return v;
}

#define COVIRT_CAPS_TRY(var, expr)          \
  auto var##_res = (expr);                  \
  if (!var##_res) return var##_res.error(); \
  auto var = *var##_res

result<void> parse_host(pugi::xml_node h, capabilities::host_t& host, diagnostics& diag) {
  host.uuid = x::trim(x::text_of(h.child("uuid")));
  if (auto c = h.child("cpu")) {
    host.cpu.arch = x::trim(x::text_of(c.child("arch")));
    for (auto f : c.child("features").children())
      if (f.type() == pugi::node_element) host.cpu.features.emplace_back(f.name());
    for (auto p : c.children("pages")) {
      capabilities::page_size ps;
      ps.unit = x::attr(p, "unit");
      COVIRT_CAPS_TRY(sz, num_attr<unsigned long long>(p, "size", diag));
      ps.size = sz;
      host.cpu.pages.push_back(ps);
    }
    host.cpu.extra = x::extra_children(c, {"arch", "features", "pages"});
  }
  if (auto pm = h.child("power_management")) {
    host.power_management = true;
    for (auto m : pm.children())
      if (m.type() == pugi::node_element) host.power_management_modes.emplace_back(m.name());
  } else {
    host.power_management = false;
  }
  if (auto io = h.child("iommu")) host.iommu_support = x::attr(io, "support");
  if (auto mf = h.child("migration_features")) {
    host.has_migration = true;
    for (auto t : mf.child("uri_transports").children("uri_transport"))
      host.migration_transports.push_back(x::trim(x::text_of(t)));
  }
  if (auto topo = h.child("topology")) {
    host.has_topology = true;
    for (auto cell : topo.child("cells").children("cell")) {
      capabilities::cell ce;
      COVIRT_CAPS_TRY(id, num_attr<unsigned>(cell, "id", diag));
      ce.id = id;
      if (auto m = cell.child("memory")) {
        COVIRT_CAPS_TRY(mem, parse_memory_kib(x::text_of(m), x::attr(m, "unit"), diag));
        ce.memory_kib = mem;
      }
      for (auto p : cell.children("pages")) {
        capabilities::cell_pages cp;
        cp.unit = x::attr(p, "unit");
        COVIRT_CAPS_TRY(sz, num_attr<unsigned long long>(p, "size", diag));
        COVIRT_CAPS_TRY(cnt, num_text<unsigned long long>(p, diag));
        cp.size = sz;
        cp.count = cnt;
        ce.pages.push_back(cp);
      }
      if (auto d = cell.child("distances")) ce.distances = x::extra_children(d, {});
      for (auto cpu : cell.child("cpus").children("cpu")) {
        capabilities::cell_cpu cc;
        COVIRT_CAPS_TRY(cid, num_attr<unsigned>(cpu, "id", diag));
        cc.id = cid;
        for (auto [nm, field] : {std::pair{"socket_id", &cc.socket_id}, std::pair{"die_id", &cc.die_id},
                                 std::pair{"core_id", &cc.core_id}}) {
          if (cpu.attribute(nm)) {
            COVIRT_CAPS_TRY(v, num_attr<unsigned>(cpu, nm, diag));
            *field = v;
          }
        }
        cc.siblings = x::attr(cpu, "siblings");
        ce.cpus.push_back(cc);
      }
      host.cells.push_back(std::move(ce));
    }
  }
  for (auto s : h.children("secmodel")) {
    capabilities::secmodel sm;
    sm.model = x::text_of(s.child("model"));
    sm.doi = x::text_of(s.child("doi"));
    sm.extra = x::extra_children(s, {"model", "doi"});
    host.secmodels.push_back(std::move(sm));
  }
  host.extra = x::extra_children(h, {"uuid", "cpu", "power_management", "iommu", "migration_features", "topology",
                                     "secmodel"});
  return {};
}

result<capabilities::guest> parse_guest(pugi::xml_node g, diagnostics& diag) {
  capabilities::guest gu;
  gu.os_type = x::trim(x::text_of(g.child("os_type")));
  if (auto a = g.child("arch")) {
    gu.arch = x::attr(a, "name");
    if (auto w = a.child("wordsize")) {
      COVIRT_CAPS_TRY(ws, num_text<unsigned>(w, diag));
      gu.wordsize = ws;
    }
    gu.emulator = x::trim(x::text_of(a.child("emulator")));
    gu.loader = x::trim(x::text_of(a.child("loader")));
    for (auto m : a.children("machine")) {
      capabilities::machine mc;
      mc.name = x::trim(x::text_of(m));
      mc.canonical = x::attr(m, "canonical");
      if (m.attribute("maxCpus")) {
        COVIRT_CAPS_TRY(mx, num_attr<unsigned>(m, "maxCpus", diag));
        mc.max_cpus = mx;
      }
      gu.machines.push_back(std::move(mc));
    }
    for (auto d : a.children("domain")) {
      capabilities::guest_domain gd;
      gd.type = x::attr(d, "type");
      gd.emulator = x::trim(x::text_of(d.child("emulator")));
      for (auto m : d.children("machine")) gd.machines.push_back(x::trim(x::text_of(m)));
      gu.domains.push_back(std::move(gd));
    }
  }
  if (auto f = g.child("features")) {
    gu.has_features = true;
    gu.features = x::extra_children(f, {});
  }
  gu.extra = x::extra_children(g, {"os_type", "arch", "features"});
  return gu;
}

}  // namespace

result<capabilities> parse_capabilities_xml(std::string_view xml, diagnostics& diag) {
  pugi::xml_document doc;
  auto rootr = x::load(doc, xml, "capabilities", diag);
  if (!rootr) return rootr.error();
  capabilities c;
  auto host = rootr->child("host");
  if (!host) return fail(diag, errc::xml_detail, "capabilities document has no <host> element");
  if (auto r = parse_host(host, c.host, diag); !r) return r.error();
  for (auto g : rootr->children("guest")) {
    auto r = parse_guest(g, diag);
    if (!r) return r.error();
    c.guests.push_back(std::move(*r));
  }
  return c;
}

std::string format_capabilities_xml(const capabilities& c) {
  x::writer w{8192};
  w.put("<capabilities>\n\n  <host>\n");
  auto& h = c.host;
  if (!h.uuid.empty()) w.text_elem(2, "uuid", h.uuid);
  w.open(2, "cpu");
  auto mcpu = w.begin_body();
  if (!h.cpu.arch.empty()) w.text_elem(3, "arch", h.cpu.arch);
  if (!h.cpu.features.empty()) {
    w.put("      <features>\n");
    for (auto& f : h.cpu.features) w.empty_elem(4, f);
    w.put("      </features>\n");
  }
  w.elements(3, h.cpu.extra);
  for (auto& p : h.cpu.pages) {
    w.open(3, "pages");
    w.attr("unit", p.unit);
    w.attr_num("size", p.size);
    w.self_close();
  }
  w.finish(mcpu, 2, "cpu");
  if (h.power_management) {
    w.open(2, "power_management");
    auto m = w.begin_body();
    for (auto& p : h.power_management_modes) w.empty_elem(3, p);
    w.finish(m, 2, "power_management");
  }
  if (!h.iommu_support.empty()) {
    w.open(2, "iommu");
    w.attr("support", h.iommu_support);
    w.self_close();
  }
  if (h.has_migration) {
    w.put("    <migration_features>\n      <live/>\n");
    if (!h.migration_transports.empty()) {
      w.put("      <uri_transports>\n");
      for (auto& t : h.migration_transports) w.text_elem(4, "uri_transport", t);
      w.put("      </uri_transports>\n");
    }
    w.put("    </migration_features>\n");
  }
  if (h.has_topology) {
    w.put("    <topology>\n");
    w.open_with_num(3, "cells", "num", h.cells.size());
    for (auto& ce : h.cells) {
      w.open_with_num(4, "cell", "id", ce.id);
      w.open(5, "memory");
      w.attr("unit", "KiB");
      w.num_body("memory", ce.memory_kib);
      for (auto& p : ce.pages) {
        w.open(5, "pages");
        w.attr("unit", p.unit);
        w.attr_num("size", p.size);
        w.num_body("pages", p.count);
      }
      if (!ce.distances.empty()) {
        w.put("          <distances>\n");
        w.elements(6, ce.distances);
        w.put("          </distances>\n");
      }
      w.open_with_num(5, "cpus", "num", ce.cpus.size());
      for (auto& cc : ce.cpus) {
        w.open(6, "cpu");
        w.attr_num("id", cc.id);
        w.attr_opt("socket_id", cc.socket_id);
        w.attr_opt("die_id", cc.die_id);
        w.attr_opt("core_id", cc.core_id);
        w.attr_if("siblings", cc.siblings);
        w.self_close();
      }
      w.put("          </cpus>\n        </cell>\n");
    }
    w.put("      </cells>\n    </topology>\n");
  }
  for (auto& s : h.secmodels) {
    w.put("    <secmodel>\n");
    w.text_elem(3, "model", s.model);
    w.text_elem(3, "doi", s.doi);
    w.elements(3, s.extra);
    w.put("    </secmodel>\n");
  }
  w.elements(2, h.extra);
  w.put("  </host>\n\n");
  for (auto& g : c.guests) {
    w.put("  <guest>\n");
    w.text_elem(2, "os_type", g.os_type);
    w.open(2, "arch");
    w.attr("name", g.arch);
    w.put(">\n");
    if (g.wordsize) w.num_elem(3, "wordsize", g.wordsize);
    if (!g.emulator.empty()) w.text_elem(3, "emulator", g.emulator);
    if (!g.loader.empty()) w.text_elem(3, "loader", g.loader);
    for (auto& m : g.machines) {
      w.open(3, "machine");
      w.attr_if("canonical", m.canonical);
      w.attr_opt("maxCpus", m.max_cpus);
      w.text_body("machine", m.name);
    }
    for (auto& d : g.domains) {
      w.open(3, "domain");
      w.attr("type", d.type);
      auto m = w.begin_body();
      if (!d.emulator.empty()) w.text_elem(4, "emulator", d.emulator);
      for (auto& mc : d.machines) w.text_elem(4, "machine", mc);
      w.finish(m, 3, "domain");
    }
    w.put("    </arch>\n");
    if (g.has_features) {
      w.open(2, "features");
      auto m = w.begin_body();
      w.elements(3, g.features);
      w.finish(m, 2, "features");
    }
    w.elements(2, g.extra);
    w.put("  </guest>\n\n");
  }
  w.put("</capabilities>\n");
  return w.take();
}

}  // namespace covirt
