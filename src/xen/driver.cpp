// The Xen driver: open, the node, the refresh from xend and the config folder with the events it
// sees, the watches that trigger it, and the native configs (domxml-from/to-native).
#include "driver_state.hpp"

#include "../common/listed_domains.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace covirt {
template class listed_domains<xen::driver>;
}

namespace covirt::xen {

namespace fs = std::filesystem;

namespace {

unsigned to_uint(std::optional<std::string_view> v, unsigned dflt = 0) {
  if (!v) return dflt;
  char* end = nullptr;
  std::string s(*v);
  unsigned long n = std::strtoul(s.c_str(), &end, 10);
  return (end == s.c_str()) ? dflt : static_cast<unsigned>(n);
}

// The files of the config folder that are not domains (libvirt's xm driver skipped them too).
bool is_config_candidate(const fs::directory_entry& e) {
  if (!e.is_regular_file()) return false;
  std::string n = e.path().filename().string();
  if (n.empty() || n[0] == '.' || n.back() == '~' || n.ends_with(".sxp") || n.ends_with(".rpmsave") ||
      n.ends_with(".rpmnew") || n.ends_with(".dpkg-old") || n.ends_with(".dpkg-new") || n == "xl.conf" ||
      n == "xend-config.sxp" || n.find(".tmp.") != std::string::npos)
    return false;
  return true;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

driver::driver(asio::any_io_executor ex) : s_(std::make_shared<state>(std::move(ex))) {}
driver::driver(driver&&) noexcept = default;
driver& driver::operator=(driver&&) noexcept = default;
driver::~driver() {
  if (!s_) return;
  s_->open = false;
  for (auto& w : s_->watches) w.close();
  s_->xs.close();
  s_->events.close_all();
}

asio::awaitable<result<void>> driver::state::refresh(diagnostics& diag) {
  auto all = co_await xd->get("/xend/domain?detail=1", diag);
  if (!all) co_return failure(all.error());
  std::vector<const sexpr*> items;
  if (all->is_list && all->head() == "domain") items.push_back(&*all);
  else
    for (const auto& c : all->list)
      if (c.is_list && c.head() == "domain") items.push_back(&c);

  std::set<std::string> seen;
  sxpr_context ctx;
  ctx.xend_config_version = config_version;
  for (const sexpr* item : items) {
    diagnostics ignore;
    auto conv = domain_from_sxpr(*item, ctx, ignore);
    if (!conv) continue;  // a domain covirt cannot describe: left out of the list
    auto& c = *conv;
    seen.insert(c.def.uuid);
    const bool active = c.domid.has_value();
    const bool file = fs::exists(config_path(c.def.name));
    auto d = doms.find_uuid(c.def.uuid);
    if (!d) {
      d = doms.add(c.def, file || !active);
      d->has_config_file = file;
      if (active) {
        d->id = *c.domid;
        d->state = c.state;
        const bool migrated = incoming.count(c.def.name) > 0;
        d->reason = c.state == domain_state::paused ? int(reason::user)
                    : migrated                      ? int(reason::running_migrated)
                                                    : int(reason::booted);
        if (open) doms.emit(*d, event_type::started, migrated ? event_detail::started_migrated : event_detail::started_booted);
      } else if (open) {
        doms.emit(*d, event_type::defined, event_detail::defined_added);
      }
      d->cpu_time = c.cpu_time;
      continue;
    }
    d->has_config_file = file;
    d->cpu_time = c.cpu_time;
    if (!active) {
      if (d->active()) d->stopped_by(doms);
      continue;
    }
    const domain_state before = d->state;
    const bool was_active = d->active();
    d->id = *c.domid;
    if (!was_active) doms.begin_run(*d);
    d->def = c.def;
    d->state = c.state;
    if (!was_active) {
      const bool migrated = incoming.count(c.def.name) > 0;
      d->reason = migrated ? reason::running_migrated : reason::booted;
      doms.emit(*d, event_type::started, migrated ? event_detail::started_migrated : event_detail::started_booted);
    } else if (before != domain_state::paused && c.state == domain_state::paused) {
      d->reason = reason::user;
      doms.emit(*d, event_type::suspended, event_detail::suspended_paused);
    } else if (before == domain_state::paused && c.state != domain_state::paused &&
               c.state != domain_state::crashed) {
      d->reason = reason::unpaused;
      doms.emit(*d, event_type::resumed, event_detail::resumed_unpaused);
    } else if (before != domain_state::crashed && c.state == domain_state::crashed) {
      d->reason = 0;
      doms.emit(*d, event_type::crashed, event_detail::crashed_panicked);
    } else if (before != domain_state::shutdown && c.state == domain_state::shutdown) {
      doms.emit(*d, event_type::shutdown, event_detail::shutdown_finished);
    }
  }

  // The config folder: defined domains xend does not run.
  std::error_code ec;
  if (fs::is_directory(config_dir, ec)) {
    for (const auto& e : fs::directory_iterator(config_dir, ec)) {
      if (!is_config_candidate(e)) continue;
      const std::string text = slurp(e.path());
      diagnostics ignore;
      auto conf = parse_xen_conf(text, ignore);
      if (!conf) continue;
      auto def = domain_from_xm(*conf, ignore);
      if (!def || def->name != e.path().filename().string()) continue;
      if (seen.count(def->uuid)) continue;
      seen.insert(def->uuid);
      auto d = doms.find_uuid(def->uuid);
      if (!d) {
        d = doms.add(std::move(*def), true);
        d->has_config_file = true;
        if (open) doms.emit(*d, event_type::defined, event_detail::defined_added);
        continue;
      }
      d->has_config_file = true;
      d->persistent = true;
      if (d->active()) d->stopped_by(doms);
      d->def = std::move(*def);
    }
  }

  // Known, but neither xend nor the folder has it any more.
  for (auto& d : doms.snapshot()) {
    if (seen.count(d->def.uuid)) continue;
    if (d->active()) {
      d->persistent = false;
      d->stopped_by(doms);
    } else {
      doms.undefine(*d);
    }
  }
  co_return result<void>();
}

asio::awaitable<result<std::shared_ptr<xen_domain>>> driver::state::find(const domain_key& key, diagnostics& diag) {
  if (auto d = doms.find_key(key)) co_return d;
  if (auto r = co_await refresh(diag); !r) co_return failure(r.error());
  auto d = doms.get(key, diag);
  if (!d) co_return failure(d.error());
  co_return *d;
}

namespace {

// Watch events (a domain's nodes written or removed, a domain introduced or released) mark the
// list stale; one refresh runs at a time and runs again if more came meanwhile.
asio::awaitable<void> watch_loop(std::shared_ptr<driver::state> s, std::size_t which) {
  for (;;) {
    if (which >= s->watches.size()) co_return;
    auto [ec, ev] = co_await s->watches[which].async_next(asio::as_tuple(asio::use_awaitable));
    if (!s->open || ec == asio::error::eof) co_return;
    if (ec) continue;  // the connection to xenstored ended: its error once, then events again after a reconnect
    if (s->refreshing) {
      s->dirty = true;
      continue;
    }
    s->refreshing = true;
    do {
      s->dirty = false;
      diagnostics ignore;
      co_await s->refresh(ignore);
    } while (s->dirty && s->open);
    s->refreshing = false;
  }
}

}  // namespace

op<void> driver::open(const uri& u, unsigned flags, diagnostics& diag) {
  auto s = s_;
  s->read_only = (flags & 1u) != 0;
  if (!u.host.empty() || !u.transport.empty())
    co_return fail(diag, errc::invalid_arg, "the Xen driver runs on this host: use xen:/// (or xen+unix/tcp/ssh through libvirtd)");
  xend_endpoint ep;
  if (auto p = u.param("xend_socket")) ep.unix_path = *p;
  else if (auto h = u.param("xend_host")) {
    ep.host = *h;
    ep.port = u.param("xend_port").value_or("8000");
  } else {
    ep.unix_path = "/var/lib/xend/xend-socket";
  }
  if (auto c = u.param("config_dir")) s->config_dir = *c;
  std::string xs_path = u.param("xenstore_socket").value_or("");
  s->xd.emplace(s->ex, ep);

  auto node = co_await s->xd->get("/xend/node/", diag);
  if (!node) co_return failure(node.error());
  auto v = [&](std::string_view k) { return value(*node, "node/" + std::string(k)); };
  s->hostname = std::string(v("host").value_or(""));
  s->node.model = std::string(v("machine").value_or("x86_64"));
  s->node.cpus = to_uint(v("nr_cpus"), 1);
  s->node.mhz = to_uint(v("cpu_mhz"));
  s->node.nodes = std::max(1u, to_uint(v("nr_nodes"), 1));
  s->node.cores = std::max(1u, to_uint(v("cores_per_socket"), 1));
  s->node.threads = std::max(1u, to_uint(v("threads_per_core"), 1));
  s->node.sockets = std::max(1u, s->node.cpus / (s->node.nodes * s->node.cores * s->node.threads));
  if (s->node.nodes * s->node.sockets * s->node.cores * s->node.threads != s->node.cpus) {
    s->node.nodes = 1;  // libvirt's sanity fix for an inconsistent topology
    s->node.sockets = std::max(1u, s->node.cpus / (s->node.cores * s->node.threads));
  }
  s->node.memory_kib = std::uint64_t(to_uint(v("total_memory"))) << 10;
  s->config_version = static_cast<int>(to_uint(v("xend_config_format"), 1));
  s->xen_caps = std::string(v("xen_caps").value_or(""));
  unsigned minor_extra = 0;
  if (auto extra = v("xen_extra"); extra && !extra->empty()) {
    std::string_view e = *extra;
    if (e[0] == '.') e.remove_prefix(1);
    minor_extra = to_uint(e);
  }
  s->version = std::uint64_t(to_uint(v("xen_major"))) * 1000000 + to_uint(v("xen_minor")) * 1000 + minor_extra;

  if (auto r = co_await s->xs.connect(xs_path, diag); !r) co_return r;
  if (auto r = co_await s->refresh(diag); !r) co_return r;
  // Watches: the domains' nodes, and the hypervisor's two special events.
  for (std::string_view path : {std::string_view("/local/domain"), std::string_view("@introduceDomain"),
                                std::string_view("@releaseDomain")}) {
    auto w = co_await s->xs.watch(path, "covirt-xen", diag);
    if (!w) co_return failure(w.error());
    s->watches.push_back(std::move(*w));
  }
  s->open = true;
  for (std::size_t i = 0; i < s->watches.size(); ++i) asio::co_spawn(s->ex, watch_loop(s, i), asio::detached);
  co_return result<void>();
}

op<void> driver::close(diagnostics&) {
  s_->open = false;
  for (auto& w : s_->watches) w.close();
  s_->xs.close();
  s_->events.close_all();
  co_return result<void>();
}

op<std::string> driver::get_hostname(diagnostics&) { co_return s_->hostname; }
op<std::uint64_t> driver::get_version(diagnostics&) { co_return s_->version; }
op<node_info> driver::node_get_info(diagnostics&) { co_return s_->node; }

op<int> driver::get_max_vcpus(std::string_view type, diagnostics& diag) {
  if (!type.empty() && type != "xen" && type != "Xen")
    co_return fail(diag, errc::invalid_arg, "unknown hypervisor type '" + std::string(type) + "'");
  co_return 32;  // XEN_LEGACY_MAX_VCPUS, what libvirt's Xen driver answered
}

op<std::string> driver::get_capabilities(diagnostics&) {
  capabilities c;
  c.host.cpu.arch = s_->node.model;
  std::istringstream caps(s_->xen_caps);
  for (std::string w; caps >> w;) {
    // "xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32"
    auto last = w.rfind('-');
    if (last == std::string::npos) continue;
    std::string kind = w.substr(0, w.find('-'));
    std::string arch = w.substr(last + 1);
    bool pae = !arch.empty() && arch.back() == 'p';
    if (pae) arch.pop_back();
    if (arch == "x86_32") arch = "i686";
    capabilities::guest g;
    g.os_type = kind == "hvm" ? "hvm" : "xen";
    g.arch = arch;
    g.wordsize = arch == "x86_64" ? 64 : 32;
    if (kind == "hvm") g.loader = "/usr/lib/xen/boot/hvmloader";
    capabilities::guest_domain gd;
    gd.type = "xen";
    g.domains.push_back(gd);
    c.guests.push_back(std::move(g));
  }
  co_return format_capabilities_xml(c);
}

op<std::string> driver::domain_xml_from_native(std::string_view format, std::string_view config, diagnostics& diag) {
  if (format == "xen-sxpr") {
    sxpr_context ctx;
    ctx.xend_config_version = s_->config_version;
    auto d = domain_from_sxpr(config, ctx, diag);
    if (!d) co_return failure(d.error());
    co_return format_domain_xml(d->def);
  }
  if (format == "xen-xm") co_return xm_to_domain_xml(config, diag);
  if (format == "xen-xl") co_return xl_to_domain_xml(config, diag);
  co_return fail(diag, errc::invalid_arg, "unsupported config type " + std::string(format));
}

op<std::string> driver::domain_xml_to_native(std::string_view format, std::string_view xml, diagnostics& diag) {
  if (format == "xen-sxpr") {
    auto def = parse_domain_xml(xml, diag);
    if (!def) co_return failure(def.error());
    sxpr_context ctx;
    ctx.xend_config_version = s_->config_version;
    co_return domain_to_sxpr(*def, ctx, diag);
  }
  if (format == "xen-xm") co_return domain_xml_to_xm(xml, diag);
  if (format == "xen-xl") co_return domain_xml_to_xl(xml, diag);
  co_return fail(diag, errc::invalid_arg, "unsupported config type " + std::string(format));
}

}  // namespace covirt::xen
