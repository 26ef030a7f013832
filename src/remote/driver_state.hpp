// covirt internals: the remote driver's state and its two helpers every operation goes through,
// on_domain and on_network (a name or ref to what libvirtd names it by, known or looked up).
#pragma once

#include <covirt/remote/driver.hpp>

#include <unordered_map>

namespace covirt::remote {

struct driver::state {
  explicit state(asio::any_io_executor e) : ex(std::move(e)) {}
  asio::any_io_executor ex;
  uri u;
  unsigned flags = 0;
  std::shared_ptr<client> rpc;  // shared: a call keeps the client it started on across a reconnect
  std::string type;
  event_hub events;
  // What lists, lookups, defines and events taught us: name -> {name, uuid, id}.
  std::unordered_map<std::string, nonnull_domain> doms;
  std::unordered_map<std::string, nonnull_network> nets;

  void learn(const nonnull_domain& d) { doms.insert_or_assign(d.name, d); }
  void forget(const nonnull_domain& d) {
    if (auto it = doms.find(d.name); it != doms.end() && it->second.uuid == d.uuid) doms.erase(it);
  }
};

/// {name, uuid, id} for the wire, from a key that carries a UUID (a ref).
inline bool wire_domain(const domain_key& k, nonnull_domain& out) {
  if (!k.by_uuid() || !parse_uuid(k.uuid(), out.uuid)) return false;
  out.name = k.name;
  out.id = k.id;
  return true;
}

inline domain_ref to_ref(const nonnull_domain& d) { return {d.name, uuid_string(d.uuid), d.id}; }

// Every helper here passes named objects to co_await'ed calls, never temporaries: see client::call.

/// Runs f(dom) with what libvirtd knows the domain as: the key's UUID; else the name's known
/// UUID, and on no_domain (undefined and defined again behind our back) a fresh lookup and one
/// retry; else a lookup first.
template <class Ret, class F>
op<Ret> on_domain(std::shared_ptr<driver::state> s, const domain_key& k, diagnostics& diag, F f) {
  nonnull_domain dom;
  if (wire_domain(k, dom)) co_return co_await f(dom);
  if (auto it = s->doms.find(k.name); it != s->doms.end()) {
    dom = it->second;
    auto r = co_await f(dom);
    if (r || r.error() != errc::no_domain) co_return r;
    s->forget(dom);
  }
  auto rpc = s->rpc;
  const str_args name{k.name};
  auto found = co_await rpc->call<dom_ret>(proc::domain_lookup_by_name, name, diag);
  if (!found) co_return failure(found.error());
  s->learn(found->dom);
  co_return co_await f(found->dom);
}

template <class Ret, class F>
op<Ret> on_network(std::shared_ptr<driver::state> s, std::string_view name, diagnostics& diag, F f) {
  std::string n(name);
  if (auto it = s->nets.find(n); it != s->nets.end()) {
    nonnull_network net = it->second;
    auto r = co_await f(net);
    if (r || r.error() != errc::no_network) co_return r;
    s->nets.erase(n);
  }
  auto rpc = s->rpc;
  const str_args by_name{n};
  auto found = co_await rpc->call<net_ret>(proc::network_lookup_by_name, by_name, diag);
  if (!found) co_return failure(found.error());
  s->nets.insert_or_assign(n, found->net);
  co_return co_await f(found->net);
}

}  // namespace covirt::remote
