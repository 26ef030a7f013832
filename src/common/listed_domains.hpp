// covirt internals: what covirt::listed_domains<D> (covirt/driver.hpp) answers, from the
// driver's domain list and event hub. A driver's source includes this and instantiates it once:
// `template class covirt::listed_domains<driver>;`.
#pragma once

#include <covirt/driver.hpp>

namespace covirt {

template <class D>
asio::any_io_executor listed_domains<D>::get_executor() const noexcept {
  return static_cast<const D*>(this)->s_->ex;
}

template <class D>
event_stream listed_domains<D>::subscribe(std::string domain) {
  auto& s = *static_cast<D*>(this)->s_;
  return s.events.subscribe(s.ex, std::move(domain));
}
template <class D> result<std::vector<domain_ref>> listed_domains<D>::list_domains_now(unsigned f, diagnostics&) { return doms().list(f); }
template <class D> result<domain_ref> listed_domains<D>::lookup_by_name_now(std::string_view n, diagnostics& g) { return doms().lookup_by_name(n, g); }
template <class D> result<domain_ref> listed_domains<D>::lookup_by_uuid_now(std::string_view u, diagnostics& g) { return doms().lookup_by_uuid(u, g); }
template <class D> result<domain_ref> listed_domains<D>::lookup_by_id_now(int id, diagnostics& g) { return doms().lookup_by_id(id, g); }
template <class D> result<bool> listed_domains<D>::is_active_now(const domain_key& k, diagnostics& g) { return doms().is_active(k, g); }
template <class D> result<bool> listed_domains<D>::is_persistent_now(const domain_key& k, diagnostics& g) { return doms().is_persistent(k, g); }
template <class D> result<domain_state_info> listed_domains<D>::get_state_now(const domain_key& k, diagnostics& g) { return doms().get_state(k, g); }
template <class D> result<bool> listed_domains<D>::get_autostart_now(const domain_key& k, diagnostics& g) { return doms().autostart(k, g); }

}  // namespace covirt
