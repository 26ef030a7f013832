#include <covirt/types.hpp>

namespace covirt {

namespace {
// A word per enumerator, in the enumeration's order (its values are 0, 1, 2, ...).
template <class E, std::size_t N>
std::string_view word_of(E e, const std::string_view (&words)[N], std::string_view otherwise) noexcept {
  auto i = static_cast<std::size_t>(e);
  return i < N ? words[i] : otherwise;
}
}  // namespace

std::string_view memory_stat_name(int tag) noexcept {
  // virsh's cmdDomMemStat words, by tag.
  static constexpr std::string_view names[] = {"swap_in", "swap_out", "major_fault", "minor_fault", "unused",
                                               "available", "actual", "rss", "usable", "last_update",
                                               "disk_caches", "hugetlb_pgalloc", "hugetlb_pgfail"};
  return tag >= 0 && static_cast<std::size_t>(tag) < std::size(names) ? names[tag] : std::string_view();
}

std::string_view to_string(domain_state s) noexcept {
  static constexpr std::string_view words[] = {"no state", "running", "idle", "paused",
                                               "in shutdown", "shut off", "crashed", "pmsuspended"};
  return word_of(s, words, "no state");
}

std::string_view reason_string(domain_state s, int r) noexcept {
  switch (s) {
    case domain_state::running: {
      constexpr std::string_view w[] = {"unknown", "booted", "migrated", "restored", "from snapshot", "unpaused",
                                        "migration canceled", "save canceled", "event wakeup", "crashed", "post-copy"};
      return r >= 0 && r < 11 ? w[r] : "unknown";
    }
    case domain_state::paused: {
      constexpr std::string_view w[] = {"unknown", "user", "migrating", "saving", "dumping", "I/O error",
                                        "watchdog", "from snapshot", "shutting down", "creating snapshot", "crashed",
                                        "starting up", "post-copy", "post-copy failed"};
      return r >= 0 && r < 14 ? w[r] : "unknown";
    }
    case domain_state::shutoff: {
      constexpr std::string_view w[] = {"unknown", "shutdown", "destroyed", "crashed", "migrated",
                                        "saved", "failed", "from snapshot", "daemon"};
      return r >= 0 && r < 9 ? w[r] : "unknown";
    }
    case domain_state::shutdown: return r == 1 ? "user" : "unknown";
    case domain_state::crashed: return r == 1 ? "panicked" : "unknown";
    case domain_state::blocked: return "unknown";
    case domain_state::pmsuspended: return "unknown";
    case domain_state::nostate: return "unknown";
  }
  return "unknown";
}

std::string_view to_string(event_type t) noexcept {
  static constexpr std::string_view words[] = {"Defined", "Undefined", "Started", "Suspended", "Resumed",
                                               "Stopped", "Shutdown", "PMSuspended", "Crashed"};
  return word_of(t, words, "Unknown");
}

std::string_view detail_string(event_type t, int d) noexcept {
  auto pick = [d](std::initializer_list<std::string_view> w) -> std::string_view {
    return d >= 0 && static_cast<std::size_t>(d) < w.size() ? *(w.begin() + d) : "Unknown";
  };
  switch (t) {
    case event_type::defined: return pick({"Added", "Updated", "Renamed", "Snapshot"});
    case event_type::undefined: return pick({"Removed", "Renamed"});
    case event_type::started: return pick({"Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"});
    case event_type::suspended:
      return pick({"Paused", "Migrated", "I/O Error", "Watchdog", "Restored", "Snapshot", "API error", "Post-copy",
                   "Post-copy Error"});
    case event_type::resumed: return pick({"Unpaused", "Migrated", "Snapshot", "Post-copy", "Post-copy Error"});
    case event_type::stopped:
      return pick({"Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "Snapshot"});
    case event_type::shutdown: return pick({"Finished", "Finished after guest request", "Finished after host request"});
    case event_type::pmsuspended: return pick({"Memory", "Disk"});
    case event_type::crashed: return pick({"Panicked", "Crashloaded"});
  }
  return "Unknown";
}

bool list_flags_match(unsigned flags, const domain_list_facts& d) noexcept {
  using namespace list_flags;
  // Each group of flags, when any of it is given, is a union within the group and an
  // intersection across groups, as in libvirt's virDomainObjListFilter.
  auto group = [flags](unsigned yes, unsigned no, bool fact) {
    return !(flags & (yes | no)) || ((flags & yes) && fact) || ((flags & no) && !fact);
  };
  if (!group(active, inactive, d.active) || !group(persistent, transient, d.persistent) ||
      !group(autostart, no_autostart, d.autostart) || !group(managedsave, no_managedsave, d.managed_save) ||
      !group(has_snapshot, no_snapshot, d.has_snapshot) || !group(has_checkpoint, no_checkpoint, d.has_checkpoint))
    return false;
  if (flags & (running | paused | shutoff | other)) {
    bool is_other = d.state != domain_state::running && d.state != domain_state::paused && d.state != domain_state::shutoff;
    return ((flags & running) && d.state == domain_state::running) || ((flags & paused) && d.state == domain_state::paused) ||
           ((flags & shutoff) && d.state == domain_state::shutoff) || ((flags & other) && is_other);
  }
  return true;
}

}  // namespace covirt
