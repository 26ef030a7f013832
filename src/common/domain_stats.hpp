// covirt internals: what virConnectGetAllDomainStats does alike in every driver: which domains a
// call covers (the ones named, or all, through its list filters), which stats groups it fills
// (the ones asked that the driver has; with enforce, a group it lacks is an error in libvirt's
// words), and the "state" group, which the domain list alone can answer.
#pragma once

#include <covirt/error.hpp>
#include <covirt/types.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace covirt::detail {

/// The flags virConnectGetAllDomainStats takes: the list filters of virConnectListAllDomains'
/// first eight bits, nowait, backing and enforce.
inline constexpr unsigned stats_flags_known = 0xffu | stats_flags::nowait | stats_flags::backing | stats_flags::enforce;

/// The groups to fill for `wanted` (0: every group the driver has), given the ones it has.
inline result<unsigned> stats_groups(unsigned wanted, unsigned supported, unsigned flags, diagnostics& diag) {
  if (unsigned bad = flags & ~stats_flags_known) {
    char text[96];
    std::snprintf(text, sizeof text, "unsupported flags (0x%x) in function virConnectGetAllDomainStats", bad);
    return fail(diag, errc::invalid_arg, text);
  }
  if (wanted == 0) return supported;
  if ((flags & stats_flags::enforce) && (wanted & ~supported)) {
    char text[96];
    std::snprintf(text, sizeof text, "Stats types bits 0x%x are not supported by this daemon", wanted & ~supported);
    return fail(diag, errc::argument_unsupported, text);
  }
  return wanted & supported;
}

/// The domains a stats call covers, from a domain list (domain_list<Dom>): those `keys` name
/// (libvirt skips the ones it no longer finds), else every domain, in name order; then only
/// those the list filters in `flags` let through.
template <class List>
auto stats_domains(const List& doms, const std::vector<domain_key>& keys, unsigned flags) {
  std::vector<typename List::ptr> out;
  auto pass = [&](const auto& d) {
    return list_flags_match(flags & 0xffu, {d->active(), d->persistent, d->autostart, d->state});
  };
  if (keys.empty()) {
    for (const auto& [name, d] : doms)
      if (pass(d)) out.push_back(d);
    return out;
  }
  for (const auto& k : keys) {
    auto d = doms.find_key(k);
    if (!d || !pass(d)) continue;
    bool seen = false;
    for (const auto& o : out) seen = seen || o == d;
    if (!seen) out.push_back(d);
  }
  return out;
}

/// The "state" group: state.state and state.reason, as ints.
inline void add_state_stats(typed_params& out, domain_state st, int reason) {
  out.push_back({"state.state", static_cast<int>(st)});
  out.push_back({"state.reason", reason});
}

}  // namespace covirt::detail
