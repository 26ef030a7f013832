// covirt::remote — the remote program's messages (remote_protocol.x), each described once for
// the XDR codec. Procedure numbers are libvirt's (append-only on the wire).
//
// XDR carries shapes, not names, so one struct serves every procedure of its shape: the table
// `proc` says, procedure by procedure, which args and ret structs go with it.
#pragma once

#include <covirt/remote/packet.hpp>
#include <covirt/types.hpp>

#include <boost/mp11/algorithm.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace covirt::remote {

/// REMOTE_PROC_* numbers, with their args -> ret shapes (structs below).
enum class proc : std::int32_t {
  connect_open = 1,                 // connect_open_args -> void
  connect_close = 2,                // void -> void
  connect_get_type = 3,             // void -> str_ret
  connect_get_version = 4,          // void -> u64_ret
  connect_get_max_vcpus = 5,        // opt_str_args -> int_ret
  node_get_info = 6,                // void -> node_get_info_ret
  connect_get_capabilities = 7,     // void -> str_ret
  domain_create_xml = 10,           // str_flags_args -> dom_ret
  domain_destroy = 12,              // dom_args -> void
  domain_get_xml_desc = 14,         // dom_flags_args -> str_ret
  domain_get_autostart = 15,        // dom_args -> int_ret
  domain_get_info = 16,             // dom_args -> domain_get_info_ret
  domain_get_os_type = 19,          // dom_args -> str_ret
  domain_lookup_by_id = 22,         // int_args -> dom_ret
  domain_lookup_by_name = 23,       // str_args -> dom_ret
  domain_lookup_by_uuid = 24,       // uuid_args -> dom_ret
  domain_reboot = 27,               // dom_flags_args -> void
  domain_resume = 28,               // dom_args -> void
  domain_set_autostart = 29,        // dom_int_args -> void
  domain_set_max_memory = 30,       // dom_u64_args -> void
  domain_shutdown = 33,             // dom_args -> void
  domain_suspend = 34,              // dom_args -> void
  network_create = 39,              // net_args -> void
  network_define_xml = 41,          // str_args -> net_ret
  network_destroy = 42,             // net_args -> void
  network_get_xml_desc = 43,        // net_flags_args -> str_ret
  network_get_autostart = 44,       // net_args -> int_ret
  network_get_bridge_name = 45,     // net_args -> str_ret
  network_lookup_by_name = 46,      // str_args -> net_ret
  network_set_autostart = 48,       // net_int_args -> void
  network_undefine = 49,            // net_args -> void
  domain_restore = 54,              // str_args -> void
  domain_save = 55,                 // dom_str_args -> void
  domain_get_scheduler_type = 56,   // dom_args -> domain_get_scheduler_type_ret
  domain_get_scheduler_parameters = 57,  // dom_int_args (nparams) -> typed_params_ret
  connect_get_hostname = 59,        // void -> str_ret
  connect_supports_feature = 60,    // int_args -> int_ret
  domain_block_stats = 64,          // dom_str_args -> domain_block_stats_ret
  domain_interface_stats = 65,      // dom_str_args -> domain_interface_stats_ret
  auth_list = 66,                   // void -> auth_list_ret
  connect_get_uri = 110,            // void -> str_ret
  domain_get_security_label = 121,  // dom_args -> domain_get_security_label_ret
  node_get_security_model = 122,    // void -> node_get_security_model_ret
  domain_is_active = 150,           // dom_args -> int_ret
  domain_is_persistent = 151,       // dom_args -> int_ret
  network_is_active = 152,          // net_args -> int_ret
  network_is_persistent = 153,      // net_args -> int_ret
  connect_get_lib_version = 157,    // void -> u64_ret
  domain_memory_stats = 159,        // domain_memory_stats_args -> domain_memory_stats_ret
  domain_attach_device_flags = 160, // dom_str_flags_args -> void
  domain_detach_device_flags = 161, // dom_str_flags_args -> void
  domain_get_job_info = 163,        // dom_args -> domain_get_job_info_ret
  domain_abort_job = 164,           // dom_args -> void
  domain_create_with_flags = 196,   // dom_flags_args -> dom_ret
  domain_set_memory_parameters = 197,  // dom_typed_params_flags_args -> void
  domain_get_memory_parameters = 198,  // dom_int_flags_args (nparams) -> typed_params_nparams_ret
  domain_set_vcpus_flags = 199,     // dom_u32_flags_args -> void
  domain_get_vcpus_flags = 200,     // dom_flags_args -> int_ret
  domain_set_memory_flags = 204,    // dom_u64_flags_args -> void
  domain_set_blkio_parameters = 205,   // dom_typed_params_flags_args -> void
  domain_get_blkio_parameters = 206,   // dom_int_flags_args (nparams) -> typed_params_nparams_ret
  domain_get_state = 212,           // dom_flags_args -> domain_get_state_ret
  domain_set_scheduler_parameters_flags = 219,  // dom_typed_params_flags_args -> void
  domain_get_scheduler_parameters_flags = 223,  // dom_int_flags_args (nparams) -> typed_params_ret
  domain_pin_vcpu_flags = 225,      // domain_pin_vcpu_flags_args -> void
  domain_get_vcpu_pin_info = 230,   // domain_get_vcpu_pin_info_args -> cpumaps_ret
  domain_undefine_flags = 231,      // dom_flags_args -> void
  domain_save_image_get_xml_desc = 235,  // str_flags_args -> str_ret
  domain_set_numa_parameters = 254,    // dom_typed_params_flags_args -> void
  domain_get_numa_parameters = 255,    // dom_int_flags_args (nparams) -> typed_params_nparams_ret
  connect_list_all_domains = 273,   // list_all_args -> list_all_domains_ret
  domain_pin_emulator = 279,        // domain_pin_emulator_args -> void
  domain_get_emulator_pin_info = 280,  // dom_int_flags_args (maplen) -> cpumaps_ret
  connect_list_all_networks = 283,  // list_all_args -> list_all_networks_ret
  node_get_cpu_map = 293,           // node_get_cpu_map_args -> node_get_cpu_map_ret
  connect_domain_event_callback_register_any = 316,    // event_register_args -> int_ret
  connect_domain_event_callback_deregister_any = 317,  // int_args -> void
  domain_event_callback_lifecycle = 318,               // (message) domain_event_callback_lifecycle_msg
  domain_get_block_info = 194,      // domain_get_block_info_args -> domain_get_block_info_ret
  domain_core_dump_with_format = 334,  // domain_core_dump_with_format_args -> void
  connect_get_all_domain_stats = 344,  // connect_get_all_domain_stats_args -> connect_get_all_domain_stats_ret
  domain_define_xml_flags = 350,    // str_flags_args -> dom_ret
  connect_event_connection_closed = 362,               // (message) int_args
};

/// QEMU_PROC_* (program qemu_program).
enum class qemu_proc : std::int32_t {
  domain_monitor_command = 1,  // domain_monitor_command_args -> str_ret
};

/// KEEPALIVE_PROC_* (program keepalive_program): both empty MESSAGEs.
enum class keepalive_proc : std::int32_t { ping = 1, pong = 2 };

/// VIR_DRV_FEATURE_* asked at connect.
namespace feature {
inline constexpr std::int32_t program_keepalive = 10, remote_event_callback = 14;
}

/// REMOTE_AUTH_*.
enum class auth_type : std::int32_t { none = 0, sasl = 1, polkit = 2 };

inline constexpr std::uint32_t domain_list_max = 16384;   // REMOTE_DOMAIN_LIST_MAX
inline constexpr std::uint32_t network_list_max = 16384;  // REMOTE_NETWORK_LIST_MAX
inline constexpr std::uint32_t auth_type_list_max = 20;   // REMOTE_AUTH_TYPE_LIST_MAX
inline constexpr std::uint32_t cpumap_max = 2048;         // REMOTE_CPUMAP_MAX: bytes of one CPU map
inline constexpr std::uint32_t vcpuinfo_max = 16384;      // REMOTE_VCPUINFO_MAX: maps in GET_VCPU_PIN_INFO
inline constexpr std::uint32_t cpumaps_max = 8388608;     // REMOTE_CPUMAPS_MAX: bytes of all of them
/// REMOTE_DOMAIN_{SCHEDULER,MEMORY,BLKIO,NUMA}_PARAMETERS_MAX.
inline constexpr std::uint32_t domain_scheduler_parameters_max = 16, domain_memory_parameters_max = 16,
                               domain_blkio_parameters_max = 16, domain_numa_parameters_max = 16;

/// VIR_TYPED_PARAM_FIELD_LENGTH: a field name's buffer in virTypedParameter, its NUL included.
inline constexpr std::size_t typed_param_field_length = 80;
/// VIR_TYPED_PARAM_STRING_OKAY: the caller takes string parameters. libvirt's public API adds it
/// to a Get*Parameters call's flags when the driver has VIR_DRV_FEATURE_TYPED_PARAM_STRING
/// (libvirtd has since 0.9.7); libvirtd leaves string parameters out of a reply without it.
inline constexpr std::uint32_t typed_param_string_okay = 1u << 2;

// ---- typed parameters: remote_typed_param

/// remote_typed_param_value: `union switch (int type)`, the type virTypedParameterType (1 int,
/// 2 uint, 3 llong, 4 ullong, 5 double, 6 boolean, 7 string); the boolean is an int on the wire.
using remote_typed_param_value =
    xdr::tagged_union<1, std::int32_t, std::uint32_t, std::int64_t, std::uint64_t, double, std::int32_t, std::string>;
struct remote_typed_param {
  std::string field;
  remote_typed_param_value value;
};
BOOST_DESCRIBE_STRUCT(remote_typed_param, (), (field, value))

/// The parameters of the four tuning procedures: their four maxima are one number, so one list.
static_assert(domain_scheduler_parameters_max == domain_memory_parameters_max &&
              domain_memory_parameters_max == domain_blkio_parameters_max &&
              domain_blkio_parameters_max == domain_numa_parameters_max);
using domain_typed_params = xdr::list<remote_typed_param, domain_scheduler_parameters_max>;

/// covirt's typed parameter on the wire, and back: covirt::typed_param's variant index + 1 is the
/// discriminant, so each arm maps to the arm of the same index (a bool to the int 0 or 1, and any
/// int but 0 back to true, as libvirt reads it).
inline remote_typed_param to_wire(const covirt::typed_param& p) {
  remote_typed_param w{p.field, {}};
  boost::mp11::mp_with_index<remote_typed_param_value::arms>(p.value.index(), [&](auto i) {
    constexpr std::size_t I = decltype(i)::value;
    w.value.value.template emplace<I>(std::get<I>(p.value));
  });
  return w;
}
inline covirt::typed_param from_wire(const remote_typed_param& w) {
  covirt::typed_param p{w.field, {}};
  boost::mp11::mp_with_index<remote_typed_param_value::arms>(w.value.value.index(), [&](auto i) {
    constexpr std::size_t I = decltype(i)::value;
    using T = std::variant_alternative_t<I, decltype(p.value)>;
    if constexpr (std::is_same_v<T, bool>) p.value.template emplace<I>(std::get<I>(w.value.value) != 0);
    else p.value.template emplace<I>(std::get<I>(w.value.value));
  });
  return p;
}
static_assert(std::variant_size_v<decltype(covirt::typed_param::value)> == remote_typed_param_value::arms);

// ---- arguments

struct connect_open_args {
  std::optional<std::string> name;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(connect_open_args, (), (name, flags))

struct int_args { std::int32_t value = 0; };
BOOST_DESCRIBE_STRUCT(int_args, (), (value))
struct str_args { std::string value; };
BOOST_DESCRIBE_STRUCT(str_args, (), (value))
struct opt_str_args { std::optional<std::string> value; };
BOOST_DESCRIBE_STRUCT(opt_str_args, (), (value))
struct str_flags_args { std::string value; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(str_flags_args, (), (value, flags))
struct uuid_args { uuid_bytes uuid; };
BOOST_DESCRIBE_STRUCT(uuid_args, (), (uuid))

struct dom_args { nonnull_domain dom; };
BOOST_DESCRIBE_STRUCT(dom_args, (), (dom))
struct dom_flags_args { nonnull_domain dom; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_flags_args, (), (dom, flags))
struct dom_int_args { nonnull_domain dom; std::int32_t value = 0; };
BOOST_DESCRIBE_STRUCT(dom_int_args, (), (dom, value))
struct dom_u64_args { nonnull_domain dom; std::uint64_t value = 0; };
BOOST_DESCRIBE_STRUCT(dom_u64_args, (), (dom, value))
struct dom_u64_flags_args { nonnull_domain dom; std::uint64_t value = 0; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_u64_flags_args, (), (dom, value, flags))
struct dom_u32_flags_args { nonnull_domain dom; std::uint32_t value = 0; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_u32_flags_args, (), (dom, value, flags))
struct dom_str_args { nonnull_domain dom; std::string value; };
BOOST_DESCRIBE_STRUCT(dom_str_args, (), (dom, value))
struct dom_str_flags_args { nonnull_domain dom; std::string value; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_str_flags_args, (), (dom, value, flags))
/// GET_{SCHEDULER_PARAMETERS_FLAGS,MEMORY,BLKIO,NUMA}_PARAMETERS (value: nparams),
/// GET_EMULATOR_PIN_INFO (value: maplen).
struct dom_int_flags_args { nonnull_domain dom; std::int32_t value = 0; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_int_flags_args, (), (dom, value, flags))
/// SET_{SCHEDULER_PARAMETERS_FLAGS,MEMORY,BLKIO,NUMA}_PARAMETERS.
struct dom_typed_params_flags_args { nonnull_domain dom; domain_typed_params params; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(dom_typed_params_flags_args, (), (dom, params, flags))
/// A CPU map: CPU n is bit n % 8 of byte n / 8 (VIR_USE_CPU).
using cpumap_bytes = xdr::opaque<cpumap_max>;
struct domain_pin_vcpu_flags_args {
  nonnull_domain dom;
  std::uint32_t vcpu = 0;
  cpumap_bytes cpumap;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(domain_pin_vcpu_flags_args, (), (dom, vcpu, cpumap, flags))
struct domain_pin_emulator_args { nonnull_domain dom; cpumap_bytes cpumap; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(domain_pin_emulator_args, (), (dom, cpumap, flags))
/// GET_VCPU_PIN_INFO: room for ncpumaps maps of maplen bytes each.
struct domain_get_vcpu_pin_info_args {
  nonnull_domain dom;
  std::int32_t ncpumaps = 0;
  std::int32_t maplen = 0;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_vcpu_pin_info_args, (), (dom, ncpumaps, maplen, flags))
/// NODE_GET_CPU_MAP: need_map/need_online 0 asks only the count (the reply's ret).
struct node_get_cpu_map_args {
  std::int32_t need_map = 0;
  std::int32_t need_online = 0;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(node_get_cpu_map_args, (), (need_map, need_online, flags))
struct domain_core_dump_with_format_args {
  nonnull_domain dom;
  std::string to;
  std::uint32_t dumpformat = 0;  // VIR_DOMAIN_CORE_DUMP_FORMAT_RAW
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(domain_core_dump_with_format_args, (), (dom, to, dumpformat, flags))
/// QEMU program: the command text and VIR_DOMAIN_QEMU_MONITOR_COMMAND_* flags (0: QMP).
struct domain_monitor_command_args { nonnull_domain dom; std::string cmd; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(domain_monitor_command_args, (), (dom, cmd, flags))

struct net_args { nonnull_network net; };
BOOST_DESCRIBE_STRUCT(net_args, (), (net))
struct net_flags_args { nonnull_network net; std::uint32_t flags = 0; };
BOOST_DESCRIBE_STRUCT(net_flags_args, (), (net, flags))
struct net_int_args { nonnull_network net; std::int32_t value = 0; };
BOOST_DESCRIBE_STRUCT(net_int_args, (), (net, value))

struct list_all_args {
  std::int32_t need_results = 1;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(list_all_args, (), (need_results, flags))

/// CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: an event id (0: lifecycle), for one domain or all.
struct event_register_args {
  std::int32_t event_id = 0;
  std::optional<nonnull_domain> dom;
};
BOOST_DESCRIBE_STRUCT(event_register_args, (), (event_id, dom))

// ---- replies

struct int_ret { std::int32_t value = 0; };
BOOST_DESCRIBE_STRUCT(int_ret, (), (value))
struct u64_ret { std::uint64_t value = 0; };
BOOST_DESCRIBE_STRUCT(u64_ret, (), (value))
struct str_ret { std::string value; };
BOOST_DESCRIBE_STRUCT(str_ret, (), (value))
struct dom_ret { nonnull_domain dom; };
BOOST_DESCRIBE_STRUCT(dom_ret, (), (dom))
struct net_ret { nonnull_network net; };
BOOST_DESCRIBE_STRUCT(net_ret, (), (net))

struct auth_list_ret {
  xdr::list<auth_type, auth_type_list_max> types;
};
BOOST_DESCRIBE_STRUCT(auth_list_ret, (), (types))

/// NODE_GET_INFO's reply: model is char[32], one 4-byte word per character on the wire.
struct node_get_info_ret {
  std::array<char, 32> model{};
  std::uint64_t memory = 0;
  std::int32_t cpus = 0, mhz = 0, nodes = 0, sockets = 0, cores = 0, threads = 0;
};
BOOST_DESCRIBE_STRUCT(node_get_info_ret, (), (model, memory, cpus, mhz, nodes, sockets, cores, threads))

/// REMOTE_SECURITY_LABEL_MAX, _MODEL_MAX, _DOI_MAX (VIR_SECURITY_*_BUFLEN).
inline constexpr std::uint32_t security_label_max = 4097, security_model_max = 257, security_doi_max = 257;

/// DOMAIN_GET_SECURITY_LABEL: `char label<>`, an array of chars (each a 4-byte word, counted),
/// with its terminating NUL, as libvirtd sends it.
struct domain_get_security_label_ret {
  xdr::list<char, security_label_max> label;
  std::int32_t enforcing = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_security_label_ret, (), (label, enforcing))

/// NODE_GET_SECURITY_MODEL: two `char x<>` arrays, NUL included.
struct node_get_security_model_ret {
  xdr::list<char, security_model_max> model;
  xdr::list<char, security_doi_max> doi;
};
BOOST_DESCRIBE_STRUCT(node_get_security_model_ret, (), (model, doi))

/// DOMAIN_GET_INFO: state is an unsigned char and nr_virt_cpu an unsigned short, each a 4-byte word.
struct domain_get_info_ret {
  std::uint32_t state = 0;
  std::uint64_t max_mem = 0;
  std::uint64_t memory = 0;
  std::uint32_t nr_virt_cpu = 0;
  std::uint64_t cpu_time = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_info_ret, (), (state, max_mem, memory, nr_virt_cpu, cpu_time))

/// DOMAIN_GET_SCHEDULER_TYPE: the scheduler's name and how many parameters it has.
struct domain_get_scheduler_type_ret {
  std::string type;
  std::int32_t nparams = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_scheduler_type_ret, (), (type, nparams))
/// GET_SCHEDULER_PARAMETERS and GET_SCHEDULER_PARAMETERS_FLAGS.
struct typed_params_ret { domain_typed_params params; };
BOOST_DESCRIBE_STRUCT(typed_params_ret, (), (params))
/// GET_{MEMORY,BLKIO,NUMA}_PARAMETERS: asked with nparams 0, no params and the count; else the params.
struct typed_params_nparams_ret {
  domain_typed_params params;
  std::int32_t nparams = 0;
};
BOOST_DESCRIBE_STRUCT(typed_params_nparams_ret, (), (params, nparams))
/// GET_VCPU_PIN_INFO (ret: the vCPUs filled in, libvirt's `num`) and GET_EMULATOR_PIN_INFO (ret:
/// 1, or 0 when no emulator thread is pinned): the maps, maplen bytes each, one after the other.
struct cpumaps_ret {
  xdr::opaque<cpumaps_max> cpumaps;
  std::int32_t ret = 0;
};
BOOST_DESCRIBE_STRUCT(cpumaps_ret, (), (cpumaps, ret))
struct node_get_cpu_map_ret {
  cpumap_bytes cpumap;
  std::uint32_t online = 0;
  std::int32_t ret = 0;  ///< the host's CPU count
};
BOOST_DESCRIBE_STRUCT(node_get_cpu_map_ret, (), (cpumap, online, ret))

struct domain_get_state_ret {
  std::int32_t state = 0;
  std::int32_t reason = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_state_ret, (), (state, reason))

struct domain_block_stats_ret {
  std::int64_t rd_req = 0, rd_bytes = 0, wr_req = 0, wr_bytes = 0, errs = 0;
};
BOOST_DESCRIBE_STRUCT(domain_block_stats_ret, (), (rd_req, rd_bytes, wr_req, wr_bytes, errs))

struct domain_interface_stats_ret {
  std::int64_t rx_bytes = 0, rx_packets = 0, rx_errs = 0, rx_drop = 0;
  std::int64_t tx_bytes = 0, tx_packets = 0, tx_errs = 0, tx_drop = 0;
};
BOOST_DESCRIBE_STRUCT(domain_interface_stats_ret, (),
                      (rx_bytes, rx_packets, rx_errs, rx_drop, tx_bytes, tx_packets, tx_errs, tx_drop))

inline constexpr std::uint32_t domain_memory_stats_max = 1024;       // REMOTE_DOMAIN_MEMORY_STATS_MAX
inline constexpr std::uint32_t connect_get_all_domain_stats_max = 4096;  // REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX
struct domain_memory_stats_args {
  nonnull_domain dom;
  std::uint32_t max_stats = 0;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(domain_memory_stats_args, (), (dom, max_stats, flags))
struct domain_memory_stat {
  std::int32_t tag = 0;
  std::uint64_t val = 0;
};
BOOST_DESCRIBE_STRUCT(domain_memory_stat, (), (tag, val))
struct domain_memory_stats_ret {
  xdr::list<domain_memory_stat, domain_memory_stats_max> stats;
};
BOOST_DESCRIBE_STRUCT(domain_memory_stats_ret, (), (stats))

struct domain_get_block_info_args {
  nonnull_domain dom;
  std::string path;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_block_info_args, (), (dom, path, flags))
struct domain_get_block_info_ret {
  std::uint64_t allocation = 0, capacity = 0, physical = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_block_info_ret, (), (allocation, capacity, physical))

struct domain_stats_record {
  nonnull_domain dom;
  xdr::list<remote_typed_param, connect_get_all_domain_stats_max> params;
};
BOOST_DESCRIBE_STRUCT(domain_stats_record, (), (dom, params))
struct connect_get_all_domain_stats_args {
  xdr::list<nonnull_domain, domain_list_max> doms;
  std::uint32_t stats = 0;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(connect_get_all_domain_stats_args, (), (doms, stats, flags))
struct connect_get_all_domain_stats_ret {
  xdr::list<domain_stats_record, domain_list_max> ret_stats;
};
BOOST_DESCRIBE_STRUCT(connect_get_all_domain_stats_ret, (), (ret_stats))

struct domain_get_job_info_ret {
  std::int32_t type = 0;
  std::uint64_t time_elapsed = 0, time_remaining = 0;
  std::uint64_t data_total = 0, data_processed = 0, data_remaining = 0;
  std::uint64_t mem_total = 0, mem_processed = 0, mem_remaining = 0;
  std::uint64_t file_total = 0, file_processed = 0, file_remaining = 0;
};
BOOST_DESCRIBE_STRUCT(domain_get_job_info_ret, (),
                      (type, time_elapsed, time_remaining, data_total, data_processed, data_remaining, mem_total,
                       mem_processed, mem_remaining, file_total, file_processed, file_remaining))

struct connect_list_all_domains_ret {
  xdr::list<nonnull_domain, domain_list_max> domains;
  std::uint32_t ret = 0;
};
BOOST_DESCRIBE_STRUCT(connect_list_all_domains_ret, (), (domains, ret))
struct connect_list_all_networks_ret {
  xdr::list<nonnull_network, network_list_max> nets;
  std::uint32_t ret = 0;
};
BOOST_DESCRIBE_STRUCT(connect_list_all_networks_ret, (), (nets, ret))

// ---- messages (server to client)

struct domain_event_lifecycle_msg {
  nonnull_domain dom;
  std::int32_t event = 0;
  std::int32_t detail = 0;
};
BOOST_DESCRIBE_STRUCT(domain_event_lifecycle_msg, (), (dom, event, detail))
struct domain_event_callback_lifecycle_msg {
  std::int32_t callback_id = 0;
  domain_event_lifecycle_msg msg;
};
BOOST_DESCRIBE_STRUCT(domain_event_callback_lifecycle_msg, (), (callback_id, msg))

// ---- UUIDs: 16 bytes on the wire, 8-4-4-4-12 lowercase in covirt's API

inline std::string uuid_string(const uuid_bytes& u) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[u.bytes[i] >> 4];
    s += hex[u.bytes[i] & 15];
  }
  return s;
}

/// The bytes of a UUID written as 32 hex digits, dashes anywhere between pairs (libvirt's
/// virUUIDParse accepts the same); false if it is not one.
inline bool parse_uuid(std::string_view s, uuid_bytes& out) noexcept {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::size_t i = 0;
  for (std::size_t n = 0; n < 16; ++n) {
    while (i < s.size() && s[i] == '-') ++i;
    if (i + 2 > s.size()) return false;
    const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.bytes[n] = static_cast<unsigned char>(hi << 4 | lo);
    i += 2;
  }
  return i == s.size();
}

}  // namespace covirt::remote
