// covirt internals: the list of a driver's domains, as libvirt's virDomainObjList is for all of
// libvirt's drivers. By name (so lists come sorted), by UUID and by id; libvirt's answers for
// list and lookup, and the identity checks a new definition must pass. Every driver keeps its
// domains here; what a domain holds beyond its identity is the driver's own.
//
// Dom needs: def.name, def.uuid, id, persistent, autostart, state, active(), ref(); and
// optionally `starting` (a start in progress counts as active for admit).
#pragma once

#include <covirt/domain/xml.hpp>
#include <covirt/error.hpp>
#include <covirt/types.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace covirt::detail {

inline std::string quote_name(std::string_view s) { return "'" + std::string(s) + "'"; }

template <class Dom>
class domain_list {
public:
  using ptr = std::shared_ptr<Dom>;

  ptr find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  ptr find_uuid(std::string_view uuid) const {
    auto it = by_uuid_.find(std::string(uuid));
    return it == by_uuid_.end() ? nullptr : it->second.lock();
  }
  /// By UUID when the key has one (libvirt's protocol does), else by name.
  ptr find_key(const domain_key& key) const { return key.by_uuid() ? find_uuid(key.uuid) : find(key.name); }

  /// The domain `key` names, or libvirt's no_domain error.
  result<ptr> get(const domain_key& key, diagnostics& diag) const {
    if (auto d = find_key(key)) return d;
    if (key.by_uuid())
      return fail(diag, errc::no_domain, "no domain with matching uuid " + quote_name(key.uuid) + " (" + key.name + ")");
    return fail(diag, errc::no_domain, "no domain with matching name " + quote_name(key.name));
  }

  /// virDomainObjListAdd's checks: a name and a UUID name one domain, or none. The domain the
  /// definition is for (same UUID and name), or null when it is new.
  result<ptr> admit(const domain_config& def, bool live, diagnostics& diag) const {
    if (auto by_uuid = find_uuid(def.uuid)) {
      if (by_uuid->def.name != def.name)
        return fail(diag, errc::operation_failed,
                    "domain " + quote_name(by_uuid->def.name) + " is already defined with uuid " + def.uuid);
      if (live && (by_uuid->active() || starting(*by_uuid)))
        return fail(diag, errc::operation_invalid, "domain " + quote_name(def.name) + " is already active");
      return by_uuid;
    }
    if (auto by_name = find(def.name))
      return fail(diag, errc::operation_failed,
                  "domain " + quote_name(def.name) + " already exists with uuid " + by_name->def.uuid);
    return ptr{};
  }

  void insert(ptr d) {
    by_uuid_[d->def.uuid] = d;
    std::string name = d->def.name;
    by_name_.insert_or_assign(std::move(name), std::move(d));
  }
  /// Removes `d` if it is the one listed under its name (a newer one of that name stays).
  void erase(const Dom& d) {
    auto it = by_name_.find(d.def.name);
    if (it == by_name_.end() || it->second.get() != &d) return;
    by_uuid_.erase(d.def.uuid);
    by_name_.erase(it);
  }

  std::size_t size() const noexcept { return by_name_.size(); }
  /// The domains now, for a loop that may change the list.
  std::vector<ptr> snapshot() const {
    std::vector<ptr> v;
    v.reserve(by_name_.size());
    for (const auto& [n, d] : by_name_) v.push_back(d);
    return v;
  }
  auto begin() const { return by_name_.begin(); }
  auto end() const { return by_name_.end(); }

  // libvirt's answers to virConnectListAllDomains and the lookups.
  std::vector<domain_ref> list(unsigned flags) const {
    std::vector<domain_ref> out;
    out.reserve(by_name_.size());
    for (const auto& [n, d] : by_name_)
      if (list_flags_match(flags, {d->active(), d->persistent, d->autostart, d->state})) out.push_back(d->ref());
    return out;
  }
  result<domain_ref> lookup_by_name(std::string_view name, diagnostics& diag) const {
    auto d = get(domain_key(name), diag);
    if (!d) return d.error();
    return (*d)->ref();
  }
  result<domain_ref> lookup_by_uuid(std::string_view text, diagnostics& diag) const {
    auto uuid = parse_uuid(text, diag);
    if (!uuid) return fail(diag, errc::invalid_arg, "Invalid UUID " + quote_name(text));
    if (auto d = find_uuid(*uuid)) return d->ref();
    return fail(diag, errc::no_domain, "no domain with matching uuid " + quote_name(*uuid));
  }
  result<domain_ref> lookup_by_id(int id, diagnostics& diag) const {
    if (id >= 0)
      for (const auto& [n, d] : by_name_)
        if (d->id == id) return d->ref();
    return fail(diag, errc::no_domain, "no domain with matching id " + std::to_string(id));
  }

private:
  static bool starting(const Dom& d) {
    if constexpr (requires { d.starting; }) return d.starting;
    else return false;
  }

  std::map<std::string, ptr, std::less<>> by_name_;
  std::unordered_map<std::string, std::weak_ptr<Dom>> by_uuid_;
};

}  // namespace covirt::detail
