// covirt: the remote driver's network rows. covirt names networks by name; libvirtd by
// {name, uuid}: on_network (driver_state.hpp) keeps what it learned, as for domains.
#include "driver_state.hpp"

#include <set>

namespace covirt::remote {

namespace {

using state_ptr = std::shared_ptr<driver::state>;

template <class Ret, class Make>
op<Ret> net_call(const state_ptr& s, std::string_view name, proc p, diagnostics& diag, Make make) {
  return on_network<Ret>(s, name, diag, [rpc = s->rpc, p, &diag, make](const nonnull_network& net) {
    return rpc->call<Ret>(p, make(net), diag);
  });
}

template <class Ret>
op<Ret> net_only(const state_ptr& s, std::string_view name, proc p, diagnostics& diag) {
  return net_call<Ret>(s, name, p, diag, [](const nonnull_network& n) { return net_args{n}; });
}

op<bool> net_bool(state_ptr s, std::string_view name, proc p, diagnostics& diag) {
  auto r = co_await net_only<int_ret>(s, name, p, diag);
  if (!r) co_return failure(r.error());
  co_return r->value != 0;
}

// A network_ref with its flags, three calls for one network.
op<network_ref> with_flags(const state_ptr& s, const nonnull_network& net, diagnostics& diag) {
  s->nets.insert_or_assign(net.name, net);
  auto rpc = s->rpc;
  network_ref ref{net.name, uuid_string(net.uuid)};
  const net_args a{net};
  auto active = co_await rpc->call<int_ret>(proc::network_is_active, a, diag);
  if (!active) co_return failure(active.error());
  auto persistent = co_await rpc->call<int_ret>(proc::network_is_persistent, a, diag);
  if (!persistent) co_return failure(persistent.error());
  auto autostart = co_await rpc->call<int_ret>(proc::network_get_autostart, a, diag);
  if (!autostart) co_return failure(autostart.error());
  ref.active = active->value != 0;
  ref.persistent = persistent->value != 0;
  ref.autostart = autostart->value != 0;
  co_return ref;
}

}  // namespace

op<std::vector<network_ref>> driver::list_networks(unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto rpc = s->rpc;
  // The list, then which of them are active, persistent, autostarted: four calls for any number.
  auto names = [&](unsigned f) -> op<std::set<std::string>> {
    const list_all_args a{1, f};
    auto r = co_await rpc->call<connect_list_all_networks_ret>(proc::connect_list_all_networks, a, diag);
    if (!r) co_return failure(r.error());
    std::set<std::string> out;
    for (const auto& n : r->nets) out.insert(n.name);
    co_return out;
  };
  const list_all_args every{1, flags};
  auto all = co_await rpc->call<connect_list_all_networks_ret>(proc::connect_list_all_networks, every, diag);
  if (!all) co_return failure(all.error());
  auto active = co_await names(network_list_flags::active);
  if (!active) co_return failure(active.error());
  auto persistent = co_await names(network_list_flags::persistent);
  if (!persistent) co_return failure(persistent.error());
  auto autostart = co_await names(network_list_flags::autostart);
  if (!autostart) co_return failure(autostart.error());
  std::vector<network_ref> out;
  for (const auto& n : all->nets) {
    s->nets.insert_or_assign(n.name, n);
    out.push_back({n.name, uuid_string(n.uuid), active->count(n.name) != 0, persistent->count(n.name) != 0,
                   autostart->count(n.name) != 0});
  }
  co_return out;
}

namespace {
// A call of one string (a name, an XML) that returns a network, then its flags.
op<network_ref> network_from(state_ptr s, proc p, std::string_view text, diagnostics& diag) {
  const str_args a{std::string(text)};
  auto r = co_await s->rpc->call<net_ret>(p, a, diag);
  if (!r) co_return failure(r.error());
  co_return co_await with_flags(s, r->net, diag);
}
}  // namespace

op<network_ref> driver::lookup_network(std::string_view name, diagnostics& diag) {
  return network_from(s_, proc::network_lookup_by_name, name, diag);
}

op<network_ref> driver::define_network(std::string_view xml, diagnostics& diag) {
  return network_from(s_, proc::network_define_xml, xml, diag);
}

op<void> driver::undefine_network(std::string_view name, diagnostics& diag) {
  auto s = s_;
  auto r = co_await net_only<void>(s, name, proc::network_undefine, diag);
  if (r) s->nets.erase(std::string(name));
  co_return r;
}

op<void> driver::create_network(std::string_view name, diagnostics& diag) {
  return net_only<void>(s_, name, proc::network_create, diag);
}
op<void> driver::destroy_network(std::string_view name, diagnostics& diag) {
  return net_only<void>(s_, name, proc::network_destroy, diag);
}

op<std::string> driver::get_network_xml(std::string_view name, unsigned flags, diagnostics& diag) {
  auto args = [flags](const nonnull_network& n) { return net_flags_args{n, flags}; };
  auto r = co_await net_call<str_ret>(s_, name, proc::network_get_xml_desc, diag, args);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<bool> driver::get_network_autostart(std::string_view name, diagnostics& diag) {
  return net_bool(s_, name, proc::network_get_autostart, diag);
}
op<void> driver::set_network_autostart(std::string_view name, bool on, diagnostics& diag) {
  return net_call<void>(s_, name, proc::network_set_autostart, diag,
                        [on](const nonnull_network& n) { return net_int_args{n, on ? 1 : 0}; });
}

op<std::string> driver::get_network_bridge_name(std::string_view name, diagnostics& diag) {
  auto r = co_await net_only<str_ret>(s_, name, proc::network_get_bridge_name, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

}  // namespace covirt::remote
