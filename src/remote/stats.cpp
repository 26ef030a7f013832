// covirt: the remote driver's statistics rows (virsh domstats, dommemstat, domifstat, domblkinfo),
// each one procedure of the remote program, with the checks libvirt's remote client makes of
// the replies (remote_driver.c: no more memory stats than asked, a record's parameters within
// REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX, field names that fit libvirt's buffer).
#include "driver_state.hpp"

namespace covirt::remote {

namespace {

using state_ptr = std::shared_ptr<driver::state>;
using client_ptr = std::shared_ptr<client>;

/// VIR_DOMAIN_MEMORY_STAT_NR: how many virsh dommemstat asks for.
constexpr std::uint32_t memory_stat_nr = 13;

// What a co_await'ed call takes is a named object, never a class temporary (see domains.cpp).

op<domain_interface_stats_ret> interface_call(client_ptr rpc, nonnull_domain dom, std::string device, diagnostics& diag) {
  const dom_str_args a{std::move(dom), std::move(device)};
  co_return co_await rpc->call<domain_interface_stats_ret>(proc::domain_interface_stats, a, diag);
}

op<domain_memory_stats_ret> memory_call(client_ptr rpc, nonnull_domain dom, unsigned flags, diagnostics& diag) {
  const domain_memory_stats_args a{std::move(dom), memory_stat_nr, flags};
  co_return co_await rpc->call<domain_memory_stats_ret>(proc::domain_memory_stats, a, diag);
}

op<domain_get_block_info_ret> block_info_call(client_ptr rpc, nonnull_domain dom, std::string disk, unsigned flags,
                                              diagnostics& diag) {
  const domain_get_block_info_args a{std::move(dom), std::move(disk), flags};
  co_return co_await rpc->call<domain_get_block_info_ret>(proc::domain_get_block_info, a, diag);
}

/// What libvirtd names a domain by: the key's UUID, the name's known one, or a lookup.
op<nonnull_domain> resolve(state_ptr s, domain_key k, diagnostics& diag) {
  nonnull_domain dom;
  if (wire_domain(k, dom)) co_return dom;
  if (auto it = s->doms.find(k.name); it != s->doms.end()) co_return it->second;
  auto rpc = s->rpc;
  const str_args name{k.name};
  auto found = co_await rpc->call<dom_ret>(proc::domain_lookup_by_name, name, diag);
  if (!found) co_return failure(found.error());
  s->learn(found->dom);
  co_return found->dom;
}

}  // namespace

op<std::vector<domain_stats>> driver::get_all_domain_stats(const std::vector<domain_key>& keys, unsigned stats,
                                                          unsigned flags, diagnostics& diag) {
  auto s = s_;
  connect_get_all_domain_stats_args a;
  if (keys.size() > domain_list_max)
    co_return fail(diag, errc::rpc, "too many domains '" + std::to_string(keys.size()) + "' for limit '" +
                                        std::to_string(domain_list_max) + "'");
  for (const auto& k : keys) {
    auto d = co_await resolve(s, k, diag);
    if (!d) co_return failure(d.error());
    a.doms.push_back(std::move(*d));
  }
  a.stats = stats;
  a.flags = flags;
  auto rpc = s->rpc;
  auto r = co_await rpc->call<connect_get_all_domain_stats_ret>(proc::connect_get_all_domain_stats, a, diag);
  if (!r) co_return failure(r.error());
  std::vector<domain_stats> out;
  out.reserve(r->ret_stats.size());
  for (const auto& rec : r->ret_stats) {
    s->learn(rec.dom);
    domain_stats one{to_ref(rec.dom), {}};
    one.params.reserve(rec.params.size());
    for (const auto& w : rec.params) {
      if (w.field.size() >= typed_param_field_length)
        co_return fail(diag, errc::internal_error, "parameter " + w.field + " too big for destination");
      one.params.push_back(from_wire(w));
    }
    out.push_back(std::move(one));
  }
  co_return out;
}

op<std::vector<memory_stat>> driver::memory_stats(const domain_key& k, unsigned flags, diagnostics& diag) {
  auto call = [rpc = s_->rpc, flags, &diag](const nonnull_domain& d) { return memory_call(rpc, d, flags, diag); };
  auto r = co_await on_domain<domain_memory_stats_ret>(s_, k, diag, call);
  if (!r) co_return failure(r.error());
  if (r->stats.size() > memory_stat_nr)
    co_return fail(diag, errc::rpc, "libvirtd returned " + std::to_string(r->stats.size()) +
                                        " memory statistics for " + std::to_string(memory_stat_nr) + " asked");
  std::vector<memory_stat> out;
  out.reserve(r->stats.size());
  for (const auto& m : r->stats) out.push_back({m.tag, m.val});
  co_return out;
}

op<covirt::interface_stats> driver::interface_stats(const domain_key& k, std::string_view device, diagnostics& diag) {
  auto call = [rpc = s_->rpc, dev = std::string(device), &diag](const nonnull_domain& d) {
    return interface_call(rpc, d, dev, diag);
  };
  auto r = co_await on_domain<domain_interface_stats_ret>(s_, k, diag, call);
  if (!r) co_return failure(r.error());
  co_return covirt::interface_stats{r->rx_bytes, r->rx_packets, r->rx_errs, r->rx_drop,
                                    r->tx_bytes, r->tx_packets, r->tx_errs, r->tx_drop};
}

op<block_info> driver::get_block_info(const domain_key& k, std::string_view disk, unsigned flags, diagnostics& diag) {
  auto call = [rpc = s_->rpc, p = std::string(disk), flags, &diag](const nonnull_domain& d) {
    return block_info_call(rpc, d, p, flags, diag);
  };
  auto r = co_await on_domain<domain_get_block_info_ret>(s_, k, diag, call);
  if (!r) co_return failure(r.error());
  co_return block_info{r->capacity, r->allocation, r->physical};
}

}  // namespace covirt::remote
