// The test driver's insides, shared by the files of src/test/: what it keeps of each domain (dom)
// and network (net), and driver::state, which holds them with the node and the event hub.
// driver.cpp answers the core, memory, vCPU, autostart, network and security rows; tuning.cpp
// the tuning and affinity rows.
#pragma once

#include <covirt/domain/xml.hpp>
#include <covirt/test/driver.hpp>
#include <covirt/test/normalize.hpp>

#include "../common/domain_list.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace covirt::test {

// Private to the driver: named (not anonymous) because several files share it.
namespace impl {

struct dom : detail::domain_obj {
  std::string xml_cache;  // format of def (with id) — cleared on every change
  std::string xml_inactive_cache;
  void changed() { xml_cache.clear(); xml_inactive_cache.clear(); }
};

struct net {
  network_config def;
  bool active = false;
  bool persistent = true;
  bool autostart = false;
  network_ref ref() const { return {def.name, def.uuid, active, persistent, autostart}; }
};

inline std::string q(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace impl

struct driver::state {
  using dom = impl::dom;
  using net = impl::net;
  static std::string q(std::string_view s) { return impl::q(s); }

  asio::any_io_executor ex;
  event_hub events;
  detail::domain_list<dom> doms{events};
  std::map<std::string, std::unique_ptr<net>, std::less<>> nets;
  node_info node{"i686", 3145728, 16, 1400, 2, 2, 2, 2};
  std::string caps_xml;

  net* find_net(std::string_view name) {
    auto it = nets.find(name);
    if (it != nets.end()) return it->second.get();
    for (auto& [n, d] : nets)
      if (d->def.uuid == name) return d.get();
    return nullptr;
  }
  result<dom*> get(const domain_key& key, diagnostics& diag) {
    auto d = doms.get(key, diag);
    if (!d) return d.error();
    return d->get();
  }
  result<dom*> get_active(const domain_key& key, diagnostics& diag) {
    auto d = get(key, diag);
    if (d && !(*d)->active()) return fail(diag, errc::operation_invalid, "domain is not running");
    return d;
  }
  result<net*> get_net(std::string_view name, diagnostics& diag) {
    if (net* n = find_net(name)) return n;
    return fail(diag, errc::no_network, "no network with matching name " + q(name));
  }

  void emit(const dom& d, event_type t, int detail) { doms.emit(d, t, detail); }

  // suspend (pause) and resume, with the test driver's words when the domain is not in the state they need.
  result<void> set_paused(const domain_key& key, bool pause, diagnostics& diag) {
    auto d = get(key, diag);
    if (!d) return failure(d.error());
    dom& x = **d;
    if (pause ? (x.state == domain_state::paused || x.state == domain_state::shutoff) : x.state != domain_state::paused)
      return fail(diag, errc::internal_error, "domain " + q(x.def.name) + (pause ? " not running" : " not paused"));
    if (pause) {
      x.state = domain_state::paused;
      x.reason = reason::user;
      emit(x, event_type::suspended, event_detail::suspended_paused);
    } else {
      x.state = domain_state::running;
      x.reason = reason::unpaused;
      emit(x, event_type::resumed, event_detail::resumed_unpaused);
    }
    return result<void>{};
  }

  void start(dom& d, int reason_, domain_state st = domain_state::running) {
    doms.begin_run(d);
    d.id = doms.take_id();
    d.state = st;
    d.reason = reason_;
    prepare_live_domain_for_test_driver(d.def, d.id);
    d.changed();
  }

  // testDomainShutdownState: the domain stops; a transient one is gone.
  void stop(dom& d, int reason_, int detail) { doms.stopped(d, reason_, detail); }

  result<dom*> admit(domain_config& def, bool live, diagnostics& diag) {
    auto d = doms.admit(def, live, diag);
    if (!d) return d.error();
    return d->get();
  }

  result<void> add_domain_xml(std::string_view xml, bool running, diagnostics& diag, int reason_ = reason::booted) {
    auto def = parse_domain_xml(xml, diag);
    if (!def) return def.error();
    if (auto r = normalize_domain_for_test_driver(*def, diag); !r) return r.error();
    auto at = admit(*def, false, diag);
    if (!at) return at.error();
    if (*at) return fail(diag, errc::operation_failed, "domain " + q(def->name) + " is listed twice");
    auto d = doms.add(std::move(*def), true);
    if (running) start(*d, reason_);
    return {};
  }

  result<void> add_network_xml(std::string_view xml, bool active, diagnostics& diag) {
    auto def = parse_network_xml(xml, diag);
    if (!def) return def.error();
    if (auto r = normalize_network_for_test_driver(*def, diag); !r) return r.error();
    if (find_net(def->name)) return fail(diag, errc::network_exist, "network " + q(def->name) + " already exists");
    auto n = std::make_unique<net>();
    n->def = std::move(*def);
    n->active = active;
    std::string key = n->def.name;
    nets.emplace(std::move(key), std::move(n));
    return {};
  }
};

}  // namespace covirt::test
