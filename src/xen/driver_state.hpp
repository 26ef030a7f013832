// covirt internals: the Xen driver's state, shared by driver.cpp (open, node, the refresh from
// xend and the events, native configs) and domains.cpp (the domain operations).
#pragma once

#include "../common/domain_list.hpp"

#include <covirt/xen/driver.hpp>
#include <covirt/xen/sexpr.hpp>
#include <covirt/xen/sxpr_domain.hpp>
#include <covirt/xen/xen_config.hpp>
#include <covirt/xen/xend.hpp>
#include <covirt/xen/xenstore.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace covirt::xen {

/// xend's form fields.
using form_t = std::vector<std::pair<std::string, std::string>>;

/// Form fields from name, value, name, value... (a function: g++ 12 rejects brace lists in coroutines).
template <class... A>
form_t fields(const A&... a) {
  static_assert(sizeof...(A) % 2 == 0, "fields(name, value, ...)");
  std::vector<std::string> v{std::string(a)...};
  form_t f;
  for (std::size_t i = 0; i + 1 < v.size(); i += 2) f.emplace_back(v[i], v[i + 1]);
  return f;
}

struct xen_domain;
/// A domain as the driver knows it: xend's facts, and its config file if it has one.
struct xen_domain : ::covirt::detail::domain_obj {
  bool has_config_file = false;
  double cpu_time = 0;  // seconds, at the last refresh
  // Why the next stop happens, set before the driver asks xend for it (destroy, save): a refresh
  // that a watch triggers may see the domain gone before xend's answer comes back.
  int stop_reason = reason::shutdown, stop_detail = event_detail::stopped_shutdown;
  void expect_stop(int r, int d) { stop_reason = r; stop_detail = d; }
  void stopped_by(::covirt::detail::domain_list<xen_domain>& l) {
    int r = stop_reason, d = stop_detail;
    expect_stop(reason::shutdown, event_detail::stopped_shutdown);
    l.stopped(*this, r, d);
  }
};

struct driver::state {
  explicit state(asio::any_io_executor e) : ex(e), xs(e) {}

  asio::any_io_executor ex;
  event_hub events;
  ::covirt::detail::domain_list<xen_domain> doms{events};
  xenstore xs;
  std::optional<xend> xd;
  std::string config_dir = "/etc/xen";
  bool read_only = false;
  bool open = false;

  // From GET /xend/node/ at open.
  node_info node;
  std::string hostname;
  std::uint64_t version = 0;
  std::string xen_caps;
  int config_version = 4;

  std::vector<watch_stream> watches;
  /// Domains a migration is bringing here (prepare to finish): name -> the source's XML. Their
  /// arrival is `started` (migrated), not booted.
  std::map<std::string, std::string> incoming;
  bool refreshing = false, dirty = false;

  /// xend's domains and the config folder into `doms`, emitting the transitions.
  asio::awaitable<result<void>> refresh(diagnostics& diag);
  /// The domain `key` names, after a refresh if it is not known.
  asio::awaitable<result<std::shared_ptr<xen_domain>>> find(const domain_key& key, diagnostics& diag);
  /// POST /xend/domain/NAME with `op` and its fields, then a refresh.
  asio::awaitable<result<sexpr>> domain_op(const xen_domain& d, std::string_view op, const form_t& form,
                                           diagnostics& diag);
  /// domain_op for an op that ends the domain's run here (destroy, save, migrate): the stop is
  /// reported as `why`/`detail` whether xend's answer or a refresh a watch triggers sees it first.
  asio::awaitable<result<sexpr>> stop_op(xen_domain& d, std::string_view op, const form_t& form, int why, int detail,
                                         diagnostics& diag);
  /// Writes the xm config file of `def` atomically (temporary file, fsync, rename).
  result<void> write_config(const domain_config& def, diagnostics& diag) const;
  std::string config_path(std::string_view name) const { return config_dir + "/" + std::string(name); }
};

}  // namespace covirt::xen
