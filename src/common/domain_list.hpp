// covirt internals: the list of a driver's domains, as libvirt's virDomainObjList is for all of
// libvirt's drivers. By name (so lists come sorted), by UUID and by id; libvirt's answers for
// list and lookup; the identity checks a new definition must pass; and the transitions every
// driver makes the same way (define over a known domain, undefine, a run's start and end) with
// the lifecycle events they emit. What a domain holds beyond domain_obj is the driver's own.
#pragma once

#include "job_queue.hpp"

#include <covirt/domain/xml.hpp>
#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/types.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace covirt::detail {

inline std::string quote_name(std::string_view s) { return "'" + std::string(s) + "'"; }

/// What every driver knows of a domain (libvirt's virDomainObj): a driver's domain derives from it.
struct domain_obj {
  domain_config def;                  // the running definition, or the only one
  std::optional<domain_config> next;  // the persistent definition while running (virDomainObjSetDefTransient)
  domain_state state = domain_state::shutoff;
  int reason = reason::shutoff_unknown;
  int id = -1;
  bool persistent = true;
  bool autostart = false;
  bool starting = false;  // a start in progress: counts as active when a definition is admitted
  job_queue job;          // one change at a time (drivers whose operations never wait leave it be)

  bool active() const noexcept { return id >= 0; }
  domain_ref ref() const { return {def.name, def.uuid, id}; }
  // While a persistent domain runs, `next` holds its own copy of the definition, so live changes
  // never leak into the next boot.
  const domain_config& persistent_def() const { return next ? *next : def; }
  domain_config& persistent_def_mut() { return next ? *next : def; }
};

template <class Dom>
class domain_list {
  static_assert(std::is_base_of_v<domain_obj, Dom>);

public:
  using ptr = std::shared_ptr<Dom>;

  /// The list emits the lifecycle events of its transitions to `events`.
  explicit domain_list(event_hub& events) : events_(events) {}

  ptr find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  ptr find_uuid(std::string_view uuid) const {
    auto it = by_uuid_.find(uuid);
    return it == by_uuid_.end() ? nullptr : it->second.lock();
  }
  /// By UUID when the key has one (libvirt's protocol does), else by name.
  ptr find_key(const domain_key& key) const { return key.by_uuid() ? find_uuid(key.uuid()) : find(key.name); }

  /// The domain `key` names, or libvirt's no_domain error.
  result<ptr> get(const domain_key& key, diagnostics& diag) const {
    if (auto d = find_key(key)) return d;
    if (key.by_uuid())
      return fail(diag, errc::no_domain, "no domain with matching uuid " + quote_name(key.uuid()) + " (" + key.name + ")");
    return fail(diag, errc::no_domain, "no domain with matching name " + quote_name(key.name));
  }

  /// virDomainObjListAdd's checks: a name and a UUID name one domain, or none. The domain the
  /// definition is for (same UUID and name), or null when it is new.
  result<ptr> admit(const domain_config& def, bool live, diagnostics& diag) const {
    if (auto by_uuid = find_uuid(def.uuid)) {
      if (by_uuid->def.name != def.name)
        return fail(diag, errc::operation_failed,
                    "domain " + quote_name(by_uuid->def.name) + " is already defined with uuid " + def.uuid);
      if (live && (by_uuid->active() || by_uuid->starting))
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
  // virDomainIsActive, virDomainIsPersistent, virDomainGetState, virDomainGetAutostart.
  result<bool> is_active(const domain_key& key, diagnostics& diag) const {
    auto d = get(key, diag);
    if (!d) return failure(d.error());
    return (*d)->active();
  }
  result<bool> is_persistent(const domain_key& key, diagnostics& diag) const {
    auto d = get(key, diag);
    if (!d) return failure(d.error());
    return (*d)->persistent;
  }
  result<domain_state_info> get_state(const domain_key& key, diagnostics& diag) const {
    auto d = get(key, diag);
    if (!d) return failure(d.error());
    return domain_state_info{(*d)->state, (*d)->reason};
  }
  result<bool> autostart(const domain_key& key, diagnostics& diag) const {
    auto d = get(key, diag);
    if (!d) return failure(d.error());
    return (*d)->autostart;
  }
  result<domain_ref> lookup_by_id(int id, diagnostics& diag) const {
    if (id >= 0)
      for (const auto& [n, d] : by_name_)
        if (d->id == id) return d->ref();
    return fail(diag, errc::no_domain, "no domain with matching id " + std::to_string(id));
  }

  // ------------------------------------------------------------------ transitions

  void emit(const Dom& d, event_type t, int detail) {
    if (events_.has_subscribers()) events_.publish(domain_event{d.ref(), t, detail});
  }

  /// A new domain of `def`, listed; its job already held when `job_taken` (nobody can wait for
  /// it yet). The caller emits `defined` or `started` once it is really there.
  ptr add(domain_config def, bool persistent, bool job_taken = false) {
    auto d = std::make_shared<Dom>();
    d->def = std::move(def);
    d->persistent = persistent;
    if (job_taken) d->job.try_take();
    insert(d);
    return d;
  }

  /// A new definition of a known domain: for its next boot if it runs, at once if not.
  void redefine(Dom& d, domain_config def) {
    if (d.active()) d.next = std::move(def);
    else d.def = std::move(def);
    d.persistent = true;
    changed(d);
    emit(d, event_type::defined, event_detail::defined_updated);
  }

  /// virDomainUndefine: a running domain becomes transient (gone when it stops), any other is
  /// gone. (Whether autostart survives is the driver's: libvirt's QEMU driver drops it, its test
  /// driver keeps it.)
  void undefine(Dom& d) {
    domain_ref ref = d.ref();
    if (d.active()) {
      d.persistent = false;
      d.next.reset();
      changed(d);
    } else {
      erase(d);
    }
    events_.publish(ref, event_type::undefined, event_detail::undefined_removed);
  }

  /// A run of the definition begins: the persistent one is kept aside, so that the live one may
  /// change. run_instead: a persistent domain runs once with `def` instead (create_xml, restore).
  void begin_run(Dom& d) {
    if (d.persistent && !d.next) d.next = d.def;
  }
  void run_instead(Dom& d, domain_config def) {
    d.next = std::move(d.def);
    d.def = std::move(def);
  }
  /// The run did not start: the domain is as it was (a new one, `fresh`, is gone).
  void abandon_run(Dom& d, bool fresh) {
    if (fresh) {
      erase(d);
      return;
    }
    if (d.next) {
      d.def = std::move(*d.next);
      d.next.reset();
    }
  }

  /// The next domain id (libvirt's ids only grow); seen: an id taken elsewhere (a re-attach).
  int take_id() noexcept { return next_id_++; }
  void saw_id(int id) noexcept { next_id_ = std::max(next_id_, id + 1); }

  /// The run ended (libvirt's virDomainObjRemoveTransientDef and friends): shut off, back to the
  /// persistent definition, `stopped` emitted, and a transient domain is gone.
  void stopped(Dom& d, int reason_, int detail) {
    d.id = -1;
    d.state = domain_state::shutoff;
    d.reason = reason_;
    if (d.next) {
      d.def = std::move(*d.next);
      d.next.reset();
    }
    changed(d);
    emit(d, event_type::stopped, detail);
    if (!d.persistent) erase(d);
  }

private:
  // A driver that caches what it derives from a domain (its XML, say) drops it here.
  static void changed(Dom& d) {
    if constexpr (requires { d.changed(); }) d.changed();
  }

  event_hub& events_;
  int next_id_ = 1;
  std::map<std::string, ptr, std::less<>> by_name_;
  // Found by a string_view without making a string (a UUID is past the small-string buffer).
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::weak_ptr<Dom>, text_hash, std::equal_to<>> by_uuid_;
};

}  // namespace covirt::detail
