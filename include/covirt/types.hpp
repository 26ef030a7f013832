// covirt: value types shared by every driver (libvirt's numbers where libvirt has them).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace covirt {

/// virTypedParameter: a named value, as schedinfo, memtune, blkiotune, numatune and the domain
/// stats carry them. The variant's index plus one is virTypedParameterType (1 int, 2 uint,
/// 3 llong, 4 ullong, 5 double, 6 boolean, 7 string).
struct typed_param {
  std::string field;
  std::variant<int, unsigned, long long, unsigned long long, double, bool, std::string> value;
  bool operator==(const typed_param&) const = default;
};
using typed_params = std::vector<typed_param>;

/// libvirt's "no limit" for memtune values in KiB (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED).
inline constexpr unsigned long long memory_unlimited_kib = 9007199254740991ULL;

/// virDomainState.
enum class domain_state : int {
  nostate = 0, running = 1, blocked = 2, paused = 3, shutdown = 4, shutoff = 5, crashed = 6, pmsuspended = 7
};
/// virsh's words: "running", "idle", "paused", "in shutdown", "shut off", "crashed", "pmsuspended", "no state".
std::string_view to_string(domain_state s) noexcept;

/// Reasons, as virDomain{Running,Paused,Shutoff,...}Reason (the number depends on the state).
namespace reason {
enum running : int { running_unknown = 0, booted = 1, running_migrated = 2, running_restored = 3, running_from_snapshot = 4,
                     unpaused = 5, running_migration_canceled = 6, running_save_canceled = 7, running_wakeup = 8, running_crashed = 9 };
enum paused : int { paused_unknown = 0, user = 1, paused_migration = 2, paused_save = 3, paused_dump = 4, paused_ioerror = 5,
                    paused_watchdog = 6, paused_from_snapshot = 7, paused_shutting_down = 8, paused_snapshot = 9, paused_crashed = 10 };
enum shutoff : int { shutoff_unknown = 0, shutdown = 1, destroyed = 2, crashed = 3, migrated = 4, saved = 5, failed = 6,
                     from_snapshot = 7, daemon = 8 };
}  // namespace reason
/// virsh domstate --reason words ("booted", "user", "destroyed", ...).
std::string_view reason_string(domain_state s, int reason) noexcept;

/// A domain's identity: what lookups and lists return.
struct domain_ref {
  std::string name;
  std::string uuid;  ///< canonical 8-4-4-4-12 lowercase
  int id = -1;       ///< -1 when not running
  bool operator==(const domain_ref&) const = default;
};

/// How an operation names its domain: by name, or by a ref a list, lookup or define returned.
/// Implicit from all of them, so `conn.async_suspend("web1")` and `conn.async_suspend(ref)` both
/// read naturally. Drivers find the domain by its UUID when the key has one (libvirt's protocol
/// carries {name, uuid, id} and libvirtd looks up by UUID), else by its name.
struct domain_key {
  std::string name;
  int id = -1;
  domain_key() = default;
  domain_key(const std::string& n) : name(n) {}
  domain_key(std::string&& n) : name(std::move(n)) {}
  domain_key(const char* n) : name(n) {}
  domain_key(std::string_view n) : name(n) {}
  domain_key(const domain_ref& r) : name(r.name), id(r.id) { set_uuid(r.uuid); }
  domain_key(domain_ref&& r) : name(std::move(r.name)), id(r.id) { set_uuid(r.uuid); }
  /// The UUID the key carries (canonical 8-4-4-4-12), or empty: look up by name.
  std::string_view uuid() const noexcept { return {uuid_.data(), uuid_len_}; }
  bool by_uuid() const noexcept { return uuid_len_ != 0; }
  bool operator==(const domain_key&) const = default;

private:
  // The UUID lives inline, so a key made from a ref never allocates for it and moving a key
  // (every call through connection moves one into its frame) copies a fixed block instead of a
  // second string. Anything but a canonical UUID's 36 characters leaves the key by name.
  void set_uuid(std::string_view u) noexcept {
    if (u.size() != uuid_.size()) return;
    for (std::size_t i = 0; i < u.size(); ++i) uuid_[i] = u[i];
    uuid_len_ = static_cast<unsigned char>(u.size());
  }
  std::array<char, 36> uuid_{};
  unsigned char uuid_len_ = 0;
};

/// virDomainInfo.
struct domain_info {
  domain_state state = domain_state::nostate;
  std::uint64_t max_mem_kib = 0;
  std::uint64_t memory_kib = 0;
  unsigned nr_virt_cpu = 0;
  std::uint64_t cpu_time_ns = 0;
};

/// One entry of virDomainGetVcpus: virVcpuInfo and its row of the CPU map.
struct vcpu_info {
  unsigned number = 0;
  int state = 0;            ///< virVcpuState: 0 offline, 1 running, 2 blocked
  std::uint64_t cpu_time_ns = 0;
  int cpu = -1;             ///< the physical CPU it runs on, -1 if none
  std::string affinity;     ///< the host CPUs it may run on, one 'y'/'-' per CPU (virsh vcpuinfo's map)
  bool operator==(const vcpu_info&) const = default;
};

/// virNodeGetSecurityModel: the host's security driver ("testSecurity", "dac", "selinux", or
/// "none") and its domain of interpretation.
struct security_model {
  std::string model, doi;
  bool operator==(const security_model&) const = default;
};

/// virDomainGetSecurityLabel: a running domain's label ("+107:+107" for DAC); empty when the
/// domain is not running.
struct security_label {
  std::string label;
  bool enforcing = false;
  bool operator==(const security_label&) const = default;
};

/// virDomainGetState's pair.
struct domain_state_info {
  domain_state state = domain_state::nostate;
  int reason = 0;
};

/// virNodeInfo.
struct node_info {
  std::string model;
  std::uint64_t memory_kib = 0;
  unsigned cpus = 0, mhz = 0, nodes = 0, sockets = 0, cores = 0, threads = 0;
  bool operator==(const node_info&) const = default;
};

/// virDomainBlockStatsStruct: -1 where the hypervisor does not say.
struct block_stats {
  std::int64_t rd_req = -1;
  std::int64_t rd_bytes = -1;
  std::int64_t wr_req = -1;
  std::int64_t wr_bytes = -1;
  std::int64_t errs = -1;
};

/// virDomainInterfaceStatsStruct: -1 where the hypervisor does not say.
struct interface_stats {
  std::int64_t rx_bytes = -1, rx_packets = -1, rx_errs = -1, rx_drop = -1;
  std::int64_t tx_bytes = -1, tx_packets = -1, tx_errs = -1, tx_drop = -1;
};

/// virDomainBlockInfo (virsh domblkinfo), in bytes: what the guest sees, what the image takes on
/// the host, and how long its file or device is.
struct block_info {
  std::uint64_t capacity = 0, allocation = 0, physical = 0;
  bool operator==(const block_info&) const = default;
};

/// virDomainMemoryStatTags.
namespace memory_stat_tag {
inline constexpr int swap_in = 0, swap_out = 1, major_fault = 2, minor_fault = 3, unused = 4, available = 5,
                     actual_balloon = 6, rss = 7, usable = 8, last_update = 9, disk_caches = 10,
                     hugetlb_pgalloc = 11, hugetlb_pgfail = 12;
}
/// One virDomainMemoryStatStruct: a tag (memory_stat_tag) and its value (KiB; counts for the
/// faults and hugetlb figures; seconds since the epoch for last_update).
struct memory_stat {
  int tag = 0;
  std::uint64_t value = 0;
  bool operator==(const memory_stat&) const = default;
};
/// virsh dommemstat's word for a tag ("actual", "swap_in", "rss", ...); empty for an unknown one.
std::string_view memory_stat_name(int tag) noexcept;

/// virDomainStatsTypes: the groups of get_all_domain_stats.
namespace stats_types {
inline constexpr unsigned state = 1u << 0, cpu_total = 1u << 1, balloon = 1u << 2, vcpu = 1u << 3,
                          interface = 1u << 4, block = 1u << 5, perf = 1u << 6, iothread = 1u << 7,
                          memory = 1u << 8, dirtyrate = 1u << 9, vm = 1u << 10;
}
/// virConnectGetAllDomainStatsFlags: list_flags' first eight filters (active ... other), and these.
namespace stats_flags {
inline constexpr unsigned nowait = 1u << 29, backing = 1u << 30, enforce = 1u << 31;
}
/// One virDomainStatsRecord: the domain and its fields, libvirt's names and types
/// ("state.state" int, "cpu.time" ullong, "block.0.name" string, ...).
struct domain_stats {
  domain_ref dom;
  typed_params params;
  bool operator==(const domain_stats&) const = default;
};

/// virDomainCoreDumpFlags (core_dump).
namespace dump_flags {
inline constexpr unsigned crash = 1u << 0, live = 1u << 1, bypass_cache = 1u << 2, reset = 1u << 3,
                          memory_only = 1u << 4;
}

/// virConnectListAllDomainsFlags, same bits.
namespace list_flags {
inline constexpr unsigned active = 1u << 0, inactive = 1u << 1, persistent = 1u << 2, transient = 1u << 3,
                          running = 1u << 4, paused = 1u << 5, shutoff = 1u << 6, other = 1u << 7,
                          managedsave = 1u << 8, no_managedsave = 1u << 9, autostart = 1u << 10, no_autostart = 1u << 11,
                          has_snapshot = 1u << 12, no_snapshot = 1u << 13, has_checkpoint = 1u << 14, no_checkpoint = 1u << 15;
inline constexpr unsigned all = 0;  ///< libvirt: 0 means every domain
}  // namespace list_flags

/// What virConnectListAllDomains' flags look at, for one domain.
struct domain_list_facts {
  bool active = false, persistent = false, autostart = false;
  domain_state state = domain_state::shutoff;
  bool managed_save = false, has_snapshot = false, has_checkpoint = false;
};
/// Whether such a domain is listed under `flags` (list_flags; 0 lists every domain).
bool list_flags_match(unsigned flags, const domain_list_facts& d) noexcept;

/// virDomainXMLFlags (get_xml).
namespace xml_flags {
inline constexpr unsigned secure = 1u << 0, inactive = 1u << 1, update_cpu = 1u << 2, migratable = 1u << 3;
}

/// virDomainModificationImpact (set_memory, set_vcpus).
namespace modify {
inline constexpr unsigned current = 0, live = 1u << 0, config = 1u << 1;
inline constexpr unsigned vcpu_maximum = 1u << 2;  ///< VIR_DOMAIN_VCPU_MAXIMUM
inline constexpr unsigned mem_maximum = 1u << 2;   ///< VIR_DOMAIN_MEM_MAXIMUM
}  // namespace modify

/// virDomainDeviceModifyFlags (attach_device, detach_device): modify::live / modify::config /
/// modify::current, plus force (VIR_DOMAIN_DEVICE_MODIFY_FORCE, for a CD-ROM change).
namespace device_modify {
inline constexpr unsigned current = 0, live = 1u << 0, config = 1u << 1, force = 1u << 2;
}

/// virDomainJobType.
enum class job_type : int { none = 0, bounded = 1, unbounded = 2, completed = 3, failed = 4, cancelled = 5 };

/// The long job running on a domain (virDomainGetJobInfo): save, restore, dump or migration.
/// data_* count the bytes the job moves: for save and outgoing migration the guest's RAM
/// QEMU has sent (and what it still has to send, which grows while a live guest dirties
/// pages); for restore the bytes of the saved file fed to QEMU. Zero where not known.
struct job_info {
  job_type type = job_type::none;
  std::string operation;  ///< "save", "restore", "dump", "migration out", "migration in"; empty for none
  std::uint64_t time_elapsed_ms = 0;
  std::uint64_t data_total = 0, data_processed = 0, data_remaining = 0;
  std::uint64_t mem_total = 0, mem_processed = 0, mem_remaining = 0;
};

/// virDomainMigrateFlags, same bits.
namespace migrate_flags {
inline constexpr unsigned live = 1u << 0, peer2peer = 1u << 1, tunnelled = 1u << 2, persist_dest = 1u << 3,
                          undefine_source = 1u << 4, paused = 1u << 5, non_shared_disk = 1u << 6,
                          non_shared_inc = 1u << 7, change_protection = 1u << 8, unsafe = 1u << 9, offline = 1u << 10,
                          compressed = 1u << 11, abort_on_error = 1u << 12, auto_converge = 1u << 13;
}

/// What async_migrate takes besides the domain and the destination.
struct migrate_options {
  unsigned flags = migrate_flags::live;  ///< migrate_flags
  /// Where the destination listens ("tcp://HOST[:PORT]" or "tcp:HOST:PORT", virsh's --migrateuri);
  /// empty: the destination picks (127.0.0.1 and a free port, for two drivers on one host).
  std::string uri;
  /// Cap on the migration stream in MiB/s (virsh migrate --bandwidth); 0: unlimited.
  std::uint64_t bandwidth_mib = 0;
};

/// virConnectListAllNetworksFlags.
namespace network_list_flags {
inline constexpr unsigned inactive = 1u << 0, active = 1u << 1, persistent = 1u << 2, transient = 1u << 3,
                          autostart = 1u << 4, no_autostart = 1u << 5;
}

struct network_ref {
  std::string name;
  std::string uuid;
  bool active = false;
  bool persistent = false;
  bool autostart = false;
  bool operator==(const network_ref&) const = default;
};

/// virDomainEventType.
enum class event_type : int {
  defined = 0, undefined = 1, started = 2, suspended = 3, resumed = 4, stopped = 5, shutdown = 6, pmsuspended = 7, crashed = 8
};
std::string_view to_string(event_type t) noexcept;

/// The detail enums of virDomainEvent*DetailType.
namespace event_detail {
enum defined : int { defined_added = 0, defined_updated = 1, defined_renamed = 2, defined_from_snapshot = 3 };
enum undefined : int { undefined_removed = 0, undefined_renamed = 1 };
enum started : int { started_booted = 0, started_migrated = 1, started_restored = 2, started_from_snapshot = 3, started_wakeup = 4 };
enum suspended : int { suspended_paused = 0, suspended_migrated = 1, suspended_ioerror = 2, suspended_watchdog = 3,
                       suspended_restored = 4, suspended_from_snapshot = 5, suspended_api_error = 6,
                       suspended_postcopy = 7, suspended_postcopy_failed = 8 };
enum resumed : int { resumed_unpaused = 0, resumed_migrated = 1, resumed_from_snapshot = 2, resumed_postcopy = 3,
                     resumed_postcopy_failed = 4 };
enum stopped : int { stopped_shutdown = 0, stopped_destroyed = 1, stopped_crashed = 2, stopped_migrated = 3,
                     stopped_saved = 4, stopped_failed = 5, stopped_from_snapshot = 6 };
enum shutdown : int { shutdown_finished = 0, shutdown_guest = 1, shutdown_host = 2 };
enum pmsuspended : int { pmsuspended_memory = 0, pmsuspended_disk = 1 };
enum crashed : int { crashed_panicked = 0, crashed_crashloaded = 1 };
}  // namespace event_detail
/// virsh event's words for a detail ("Booted", "Destroyed", ...).
std::string_view detail_string(event_type t, int detail) noexcept;

/// A lifecycle event (VIR_DOMAIN_EVENT_ID_LIFECYCLE).
struct domain_event {
  domain_ref domain;
  event_type type = event_type::defined;
  int detail = 0;
};

/// Flags of open().
namespace open_flags {
inline constexpr unsigned read_only = 1u << 0;  ///< VIR_CONNECT_RO
}

}  // namespace covirt
