// covirt::remote — the remote program's messages (remote_protocol.x), each described once for
// the XDR codec. Procedure numbers are libvirt's (append-only on the wire).
#pragma once

#include <covirt/remote/packet.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace covirt::remote {

/// REMOTE_PROC_* numbers used so far.
enum class proc : std::int32_t {
  connect_open = 1, connect_close = 2, connect_get_type = 3, node_get_info = 6,
  connect_supports_feature = 60, auth_list = 66, connect_list_all_domains = 273,
  domain_event_callback_lifecycle = 318,
};

inline constexpr std::uint32_t domain_list_max = 16384;   // REMOTE_DOMAIN_LIST_MAX
inline constexpr std::uint32_t auth_type_list_max = 20;   // REMOTE_AUTH_TYPE_LIST_MAX

struct connect_open_args {
  std::optional<std::string> name;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(connect_open_args, (), (name, flags))

struct auth_list_ret {
  xdr::list<std::int32_t, auth_type_list_max> types;
};
BOOST_DESCRIBE_STRUCT(auth_list_ret, (), (types))

/// NODE_GET_INFO's reply: model is char[32], one 4-byte word per character on the wire.
struct node_get_info_ret {
  std::array<char, 32> model{};
  std::uint64_t memory = 0;
  std::int32_t cpus = 0, mhz = 0, nodes = 0, sockets = 0, cores = 0, threads = 0;
};
BOOST_DESCRIBE_STRUCT(node_get_info_ret, (), (model, memory, cpus, mhz, nodes, sockets, cores, threads))

struct connect_list_all_domains_args {
  std::int32_t need_results = 1;
  std::uint32_t flags = 0;
};
BOOST_DESCRIBE_STRUCT(connect_list_all_domains_args, (), (need_results, flags))
struct connect_list_all_domains_ret {
  xdr::list<nonnull_domain, domain_list_max> domains;
  std::uint32_t ret = 0;
};
BOOST_DESCRIBE_STRUCT(connect_list_all_domains_ret, (), (domains, ret))

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

}  // namespace covirt::remote
