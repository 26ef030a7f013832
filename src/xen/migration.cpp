// The Xen driver's live migration, as libvirt's xend driver did it, in the five phases the
// connection runs (operations.hpp, COVIRT_OPS_migrate):
//   begin    (source)       the running domain's XML;
//   prepare  (destination)  the URI to send it to: the caller's, or xenmigr://<this host>;
//   perform  (source)       POST op=migrate to the source's xend, which sends the domain to the
//                           destination's relocation server (port 8002 unless the URI says);
//   finish   (destination)  the domain, now run by the destination's xend: paused if asked,
//                           given a config file with persist_dest;
//   confirm  (source)       with undefine_source, the source's config file goes.
// xend does the transfer and the clean-up of a failed one on both hosts; the phases around it are
// checks and bookkeeping. The events: `stopped` (migrated) at the source, `started` (migrated)
// at the destination, from the refresh their xenstore watches cause.
#include "driver_state.hpp"
#include "../common/host_port.hpp"

#include <unistd.h>

#include <filesystem>

namespace covirt::xen {

namespace fs = std::filesystem;

namespace {

constexpr unsigned handled = migrate_flags::live | migrate_flags::persist_dest | migrate_flags::undefine_source |
                             migrate_flags::paused | migrate_flags::change_protection | migrate_flags::unsafe |
                             migrate_flags::abort_on_error;

result<void> check_flags(unsigned flags, diagnostics& diag) {
  const unsigned other = flags & ~handled;
  if (!other) return {};
  std::string names;
  auto add = [&](unsigned f, const char* n) {
    if (other & f) names += std::string(names.empty() ? "" : ", ") + n;
  };
  add(migrate_flags::peer2peer, "peer2peer");
  add(migrate_flags::tunnelled, "tunnelled");
  add(migrate_flags::non_shared_disk, "non_shared_disk");
  add(migrate_flags::non_shared_inc, "non_shared_inc");
  add(migrate_flags::offline, "offline");
  add(migrate_flags::compressed, "compressed");
  add(migrate_flags::auto_converge, "auto_converge");
  if (names.empty()) {  // bits with no name
    char b[16];
    std::snprintf(b, sizeof b, "0x%x", other);
    names = b;
  }
  return fail(diag, errc::argument_unsupported, "xend's migration does not support the flags " + names);
}

struct target {
  std::string host;
  std::string port = "0";  // xend's relocation port (8002)
};

/// xenmigr://HOST[:PORT][/] or HOST[:PORT], as libvirt's xend driver took them.
result<target> parse_target(std::string_view uri, diagnostics& diag) {
  const std::string q = "'" + std::string(uri) + "'";
  std::string_view u = uri;
  if (auto p = u.find("://"); p != std::string_view::npos) {
    if (u.substr(0, p) != "xenmigr")
      return fail(diag, errc::invalid_arg, "only xenmigr:// migrations are supported by Xen, not " + q);
    u.remove_prefix(p + 3);
    while (!u.empty() && u.back() == '/') u.remove_suffix(1);
  }
  auto hp = ::covirt::detail::split_host_port(u, uri, diag);
  if (!hp) return failure(hp.error());
  if (hp->empty_port) return fail(diag, errc::invalid_arg, "migration URI " + q + " has a bad port");
  target t;
  t.host = std::move(hp->host);
  if (!hp->port.empty()) t.port = std::move(hp->port);
  if (t.host.empty()) return fail(diag, errc::invalid_arg, "a hostname must be specified in the migration URI " + q);
  if (t.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") != std::string::npos)
    return fail(diag, errc::invalid_arg, "migration URI " + q + " has a bad host");
  return t;
}

}  // namespace

op<std::string> driver::migrate_begin(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto s = s_;
  if (auto f = check_flags(flags, diag); !f) co_return failure(f.error());
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (!(*d)->active()) co_return fail(diag, errc::operation_invalid, "domain '" + (*d)->def.name + "' is not running");
  domain_format_options opt;
  opt.id = -1;
  co_return format_domain_xml((*d)->def, opt);
}

op<std::string> driver::migrate_prepare(std::string_view xml, std::string_view uri, unsigned flags, diagnostics& diag) {
  auto s = s_;
  if (auto f = check_flags(flags, diag); !f) co_return failure(f.error());
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return failure(def.error());
  if (auto d = s->doms.find_key(domain_key{def->name}); d && d->active())
    co_return fail(diag, errc::operation_invalid, "domain '" + def->name + "' is already running on this host");
  std::string out(uri);
  if (out.empty()) {
    std::string host = s->hostname;
    if (host.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      host = buf;
    }
    out = "xenmigr://" + host;
  }
  if (auto t = parse_target(out, diag); !t) co_return failure(t.error());
  s->incoming[def->name] = std::string(xml);
  co_return out;
}

op<void> driver::migrate_perform(const domain_key& key, std::string_view uri, const migrate_options& opt,
                                 diagnostics& diag) {
  auto s = s_;
  if (auto f = check_flags(opt.flags, diag); !f) co_return failure(f.error());
  if (opt.bandwidth_mib) co_return fail(diag, errc::no_support, "Xen does not support bandwidth limits");
  auto t = parse_target(uri, diag);
  if (!t) co_return failure(t.error());
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (!(*d)->active()) co_return fail(diag, errc::operation_invalid, "domain '" + (*d)->def.name + "' is not running");
  // xend fails on a missing field but ignores unknown ones: libvirt sent all of them.
  const form_t form = fields("destination", t->host, "live", (opt.flags & migrate_flags::live) ? "1" : "0", "port",
                             t->port, "node", "-1", "ssl", "0", "change_home_server", "0", "resource", "0");
  auto r = co_await s->stop_op(**d, "migrate", form, reason::migrated, event_detail::stopped_migrated, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

op<domain_ref> driver::migrate_finish(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  auto s = s_;
  auto in = s->incoming.find(key.name);
  std::string xml;
  if (in != s->incoming.end()) {
    xml = std::move(in->second);
    s->incoming.erase(in);
  }
  // A failed transfer leaves nothing here: the destination's xend dropped what it received.
  if (!ok) co_return fail(diag, errc::operation_failed, "migration of domain '" + key.name + "' did not complete");
  if (auto r = co_await s->refresh(diag); !r) co_return failure(r.error());
  auto found = s->doms.find_key(key);
  if (!found || !found->active())
    co_return fail(diag, errc::no_domain, "domain '" + key.name + "' did not arrive from the migration");
  auto d = found;
  if ((flags & migrate_flags::paused) && d->state != domain_state::paused) {
    const form_t none;
    auto p = co_await s->domain_op(*d, "pause", none, diag);
    if (!p) co_return failure(p.error());
  }
  if (flags & migrate_flags::persist_dest) {
    // The definition the source had, if it had one that differs, else the running one.
    auto def = xml.empty() ? result<domain_config>(d->def) : parse_domain_xml(xml, diag);
    if (!def) co_return failure(def.error());
    if (auto w = s->write_config(*def, diag); !w) co_return failure(w.error());
    d->has_config_file = true;
    if (!d->persistent) {
      d->persistent = true;
      s->doms.begin_run(*d);
      s->doms.emit(*d, event_type::defined, event_detail::defined_added);
    }
  }
  co_return d->ref();
}

op<void> driver::migrate_confirm(const domain_key& key, unsigned flags, bool ok, diagnostics& diag) {
  auto s = s_;
  // Not ok: xend kept the domain running here; nothing to resume.
  if (!ok || !(flags & migrate_flags::undefine_source)) co_return result<void>();
  auto d = s->doms.find_key(key);
  if (!d || !d->has_config_file) co_return result<void>();
  std::error_code ec;
  fs::remove(s->config_path(d->def.name), ec);
  if (ec) co_return fail(diag, errc::operation_failed, "cannot remove '" + s->config_path(d->def.name) + "': " + ec.message());
  d->has_config_file = false;
  s->doms.undefine(*d);
  co_return result<void>();
}

}  // namespace covirt::xen
