// The Xen driver's domain operations: define/undefine (config files), the lifecycle through xend
// (and xenstore's control/shutdown), info, XML, memory, vCPUs and their pinning, save/restore, dump.
#include "driver_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace covirt::xen {

namespace fs = std::filesystem;

namespace {


const form_t no_fields;

std::string mib_up(std::uint64_t kib) { return std::to_string((kib + 1023) / 1024); }

result<void> need_active(const xen_domain& d, diagnostics& diag) {
  if (d.active()) return {};
  return fail(diag, errc::operation_invalid, "domain '" + d.def.name + "' is not running");
}

}  // namespace

result<void> driver::state::write_config(const domain_config& def, diagnostics& diag) const {
  auto conf = domain_to_xm(def, diag);
  if (!conf) return failure(conf.error());
  const std::string text = format_xen_conf(*conf);
  const std::string path = config_path(def.name);
  const std::string tmp = config_dir + "/." + def.name + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail(diag, errc::write_failed, "cannot write '" + tmp + "': " + std::generic_category().message(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(diag, errc::write_failed, "cannot write '" + tmp + "': " + std::generic_category().message(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(diag, errc::write_failed, "cannot write '" + tmp + "': " + std::generic_category().message(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(diag, errc::write_failed, "cannot rename '" + tmp + "' to '" + path + "': " + std::generic_category().message(e));
  }
  return {};
}

asio::awaitable<result<sexpr>> driver::state::domain_op(const xen_domain& d, std::string_view op, const form_t& more,
                                                        diagnostics& diag) {
  form_t form = fields("op", op);
  form.insert(form.end(), more.begin(), more.end());
  const std::string target = "/xend/domain/" + d.def.name;
  auto r = co_await xd->post(target, form, diag);
  if (!r) co_return r;
  diagnostics ignore;
  co_await refresh(ignore);
  co_return r;
}

asio::awaitable<result<sexpr>> driver::state::stop_op(xen_domain& d, std::string_view op, const form_t& more, int why,
                                                      int detail, diagnostics& diag) {
  d.expect_stop(why, detail);
  form_t form = fields("op", op);
  form.insert(form.end(), more.begin(), more.end());
  const std::string target = "/xend/domain/" + d.def.name;
  auto r = co_await xd->post(target, form, diag);
  if (!r) {
    d.expect_stop(reason::shutdown, event_detail::stopped_shutdown);
    co_return r;
  }
  // xend may answer before the domain is gone (destroy's 202): it is gone from here on, as virsh reports it.
  if (d.active()) d.stopped_by(doms);
  diagnostics ignore;
  co_await refresh(ignore);
  co_return r;
}

op<domain_ref> driver::define_xml(std::string_view xml, diagnostics& diag) {
  auto s = s_;
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return failure(def.error());
  if (auto r = check_object_name("domain", def->name, diag); !r) co_return failure(r.error());
  if (def->name.find('/') != std::string::npos || def->name == "." || def->name == "..")
    co_return fail(diag, errc::invalid_arg, "domain name '" + def->name + "' cannot name a config file");
  if (def->uuid.empty()) def->uuid = generate_uuid();
  auto known = s->doms.admit(*def, false, diag);
  if (!known) co_return failure(known.error());
  if (auto w = s->write_config(*def, diag); !w) co_return failure(w.error());
  if (auto d = *known) {
    d->has_config_file = true;
    s->doms.redefine(*d, std::move(*def));
    co_return d->ref();
  }
  auto d = s->doms.add(std::move(*def), true);
  d->has_config_file = true;
  s->doms.emit(*d, event_type::defined, event_detail::defined_added);
  co_return d->ref();
}

op<void> driver::undefine(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  if (!dom.persistent) co_return fail(diag, errc::operation_invalid, "cannot undefine transient domain");
  std::error_code ec;
  fs::remove(s->config_path(dom.def.name), ec);
  if (ec) co_return fail(diag, errc::operation_failed, "cannot remove '" + s->config_path(dom.def.name) + "': " + ec.message());
  dom.has_config_file = false;
  s->doms.undefine(dom);
  co_return result<void>();
}

namespace {

asio::awaitable<result<std::shared_ptr<xen_domain>>> start(driver::state& s, const domain_config& def,
                                                           diagnostics& diag) {
  sxpr_context ctx;
  ctx.xend_config_version = s.config_version;
  auto config = domain_to_sxpr(def, ctx, diag);
  if (!config) co_return failure(config.error());
  form_t form = fields("op", "create", "config", std::move(*config));
  auto r = co_await s.xd->post("/xend/domain/", form, diag);
  if (!r) co_return failure(r.error());
  if (auto f = co_await s.refresh(diag); !f) co_return failure(f.error());
  auto d = s.doms.find_uuid(def.uuid);
  if (!d || !d->active())
    co_return fail(diag, errc::operation_failed, "xend created domain '" + def.name + "' but does not list it running");
  co_return d;
}

}  // namespace

op<void> driver::create(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if ((*d)->active()) co_return fail(diag, errc::operation_invalid, "domain is already running");
  auto def = (*d)->def;
  auto r = co_await start(*s, def, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

op<domain_ref> driver::create_xml(std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto def = parse_domain_xml(xml, diag);
  if (!def) co_return failure(def.error());
  if (def->uuid.empty()) def->uuid = generate_uuid();
  if (auto known = s->doms.admit(*def, true, diag); !known) co_return failure(known.error());
  auto d = co_await start(*s, *def, diag);
  if (!d) co_return failure(d.error());
  if (flags & 1u) {
    auto p = co_await s->domain_op(**d, "pause", no_fields, diag);
    if (!p) co_return failure(p.error());
  }
  co_return (*d)->ref();
}

op<void> driver::destroy(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  auto r = co_await s->stop_op(**d, "destroy", no_fields, reason::destroyed, event_detail::stopped_destroyed, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

namespace {

// Shutdown and reboot: xend's op=shutdown, and if xend refuses, the request written straight into
// the guest's xenstore control/shutdown node, as libvirt's xenstore sub-driver did.
asio::awaitable<result<void>> ask_guest(driver::state& s, const domain_key& key, std::string_view why,
                                        diagnostics& diag) {
  auto d = co_await s.find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  if ((*d)->id == 0) co_return fail(diag, errc::operation_invalid, "cannot shut down or reboot Domain-0");
  diagnostics xend_said;
  form_t form = fields("op", "shutdown", "reason", std::string(why));
  const std::string target = "/xend/domain/" + (*d)->def.name;
  auto r = co_await s.xd->post(target, form, xend_said);
  if (r) co_return result<void>();
  const std::string node = "/local/domain/" + std::to_string((*d)->id) + "/control/shutdown";
  auto w = co_await s.xs.write(node, why == "poweroff" ? "poweroff" : why, diag);
  if (!w) {
    diag.assign(std::string(xend_said.message()) + "; and " + std::string(diag.message()));
    co_return failure(r.error());
  }
  co_return result<void>();
}

}  // namespace

op<void> driver::shutdown(const domain_key& key, diagnostics& diag) { co_return co_await ask_guest(*s_, key, "poweroff", diag); }
op<void> driver::reboot(const domain_key& key, diagnostics& diag) { co_return co_await ask_guest(*s_, key, "reboot", diag); }

namespace {

// An xend op without fields on a running domain (pause, unpause).
asio::awaitable<result<void>> running_op(driver::state& s, const domain_key& key, std::string_view op,
                                         diagnostics& diag) {
  auto d = co_await s.find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  auto r = co_await s.domain_op(**d, op, no_fields, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

}  // namespace

op<void> driver::suspend(const domain_key& key, diagnostics& diag) { co_return co_await running_op(*s_, key, "pause", diag); }
op<void> driver::resume(const domain_key& key, diagnostics& diag) { co_return co_await running_op(*s_, key, "unpause", diag); }

op<domain_info> driver::get_info(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  domain_info info;
  info.state = dom.state;
  info.max_mem_kib = dom.def.memory_kib;
  info.memory_kib = dom.def.current_memory_kib ? dom.def.current_memory_kib : dom.def.memory_kib;
  info.nr_virt_cpu = dom.def.vcpu_current.value_or(dom.def.vcpus);
  if (dom.active()) {
    // The fast path: the balloon target xend keeps in xenstore, no HTTP round trip.
    diagnostics ignore;
    const std::string node = "/local/domain/" + std::to_string(dom.id) + "/memory/target";
    auto target = co_await s->xs.read(node, ignore);
    if (target) {
      char* end = nullptr;
      unsigned long long kib = std::strtoull(target->c_str(), &end, 10);
      if (end != target->c_str()) info.memory_kib = kib;
    }
    info.cpu_time_ns = static_cast<std::uint64_t>(std::llround(dom.cpu_time * 1e9));
  }
  co_return info;
}

op<std::string> driver::get_os_type(const domain_key& key, diagnostics& diag) {
  auto d = co_await s_->find(key, diag);
  if (!d) co_return failure(d.error());
  co_return (*d)->def.os.type.empty() ? std::string("linux") : (*d)->def.os.type;
}

op<std::string> driver::get_xml(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto d = co_await s_->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  const bool inactive = (flags & xml_flags::inactive) != 0;
  domain_format_options opt;
  opt.id = inactive ? -1 : dom.id;
  opt.secure = (flags & xml_flags::secure) != 0;
  co_return format_domain_xml(inactive ? dom.persistent_def() : dom.def, opt);
}

op<void> driver::set_memory(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  const bool maximum = (flags & modify::mem_maximum) != 0;
  const bool config = (flags & modify::config) != 0;
  const bool live = (flags & modify::live) != 0 || (!config && dom.active());
  if (live && !dom.active()) co_return fail(diag, errc::operation_invalid, "domain is not running");
  const std::uint64_t max = dom.def.memory_kib;
  if (!maximum && kib > max)
    co_return fail(diag, errc::invalid_arg, "cannot set memory higher than max memory");
  if (live) {
    form_t form = fields(maximum ? "memory" : "target", mib_up(kib));
    auto r = co_await s->domain_op(dom, maximum ? "maxmem_set" : "mem_target_set", form, diag);
    if (!r) co_return failure(r.error());
  }
  if (config) {
    if (!dom.persistent) co_return fail(diag, errc::operation_invalid, "cannot change the config of a transient domain");
    domain_config next = dom.persistent_def();
    if (maximum) next.memory_kib = kib;
    else next.current_memory_kib = kib;
    if (auto w = s->write_config(next, diag); !w) co_return w;
    dom.persistent_def_mut() = std::move(next);
  }
  co_return result<void>();
}

op<void> driver::set_max_memory(const domain_key& key, std::uint64_t kib, diagnostics& diag) {
  co_return co_await set_memory(key, kib, modify::mem_maximum | modify::live, diag);
}

op<void> driver::set_vcpus(const domain_key& key, unsigned count, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  if (count == 0) co_return fail(diag, errc::invalid_arg, "argument unsupported: vcpus must be at least 1");
  // xend does not check the count against the maximum: libvirt checked first, so does covirt.
  if (count > dom.def.vcpus)
    co_return fail(diag, errc::invalid_arg, "requested vcpus is greater than max allowable vcpus for the domain: " +
                                                std::to_string(count) + " > " + std::to_string(dom.def.vcpus));
  const bool config = (flags & modify::config) != 0;
  const bool live = (flags & modify::live) != 0 || (!config && dom.active());
  if (live) {
    if (auto a = need_active(dom, diag); !a) co_return a;
    const form_t form2 = fields("vcpus", std::to_string(count));
    auto r = co_await s->domain_op(dom, "set_vcpus", form2, diag);
    if (!r) co_return failure(r.error());
  }
  if (config) {
    domain_config next = dom.persistent_def();
    next.vcpu_current = count;
    if (auto w = s->write_config(next, diag); !w) co_return w;
    dom.persistent_def_mut() = std::move(next);
  }
  co_return result<void>();
}

op<void> driver::pin_vcpu(const domain_key& key, unsigned vcpu, std::string_view cpumap, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  // xend wants the CPUs as a list "0,1,3"; a 'y'/'-' map is turned into one.
  std::string list;
  if (cpumap.find_first_not_of("y-") == std::string_view::npos) {
    for (std::size_t i = 0; i < cpumap.size(); ++i)
      if (cpumap[i] == 'y') list += (list.empty() ? "" : ",") + std::to_string(i);
  } else {
    if (cpumap.find_first_not_of("0123456789,-^") != std::string_view::npos)
      co_return fail(diag, errc::invalid_arg, "invalid cpu map '" + std::string(cpumap) + "'");
    list = cpumap;
  }
  if (list.empty()) co_return fail(diag, errc::invalid_arg, "the cpu map names no CPU");
  const form_t form3 = fields("vcpu", std::to_string(vcpu), "cpumap", list);
  auto r = co_await s->domain_op(**d, "pincpu", form3, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

op<std::vector<vcpu_info>> driver::get_vcpus(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return failure(a.error());
  const std::string target = "/xend/domain/" + (*d)->def.name + "?op=vcpuinfo";
  auto r = co_await s->xd->get(target, diag);
  if (!r) co_return failure(r.error());
  std::vector<vcpu_info> out;
  auto num = [](const sexpr& v, std::string_view k) {
    auto x = value(v, "vcpu/" + std::string(k));
    return x ? std::strtod(std::string(*x).c_str(), nullptr) : 0.0;
  };
  const unsigned cpus = std::max(1u, s->node.cpus);
  for (const auto& v : r->list) {
    if (!v.is_list || v.head() != "vcpu") continue;
    vcpu_info info;
    info.number = static_cast<unsigned>(num(v, "number"));
    const bool online = num(v, "online") != 0;
    info.state = !online ? 0 : (num(v, "running") != 0 ? 1 : 2);
    info.cpu_time_ns = static_cast<std::uint64_t>(std::llround(num(v, "cpu_time") * 1e9));
    info.cpu = online ? static_cast<int>(num(v, "cpu")) : -1;
    info.affinity.assign(cpus, '-');
    if (const sexpr* map = find(v, "vcpu/cpumap"))
      for (std::size_t i = 1; i < map->list.size(); ++i) {
        unsigned c = static_cast<unsigned>(std::strtoul(map->list[i].atom.c_str(), nullptr, 10));
        if (c < cpus) info.affinity[c] = 'y';
      }
    out.push_back(std::move(info));
  }
  co_return out;
}

op<void> driver::save(const domain_key& key, std::string_view path, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  if ((*d)->id == 0) co_return fail(diag, errc::operation_invalid, "cannot save Domain-0");
  if (path.empty() || path[0] != '/') co_return fail(diag, errc::invalid_arg, "the save file must be an absolute path");
  const form_t file = fields("file", std::string(path));
  auto r = co_await s->stop_op(**d, "save", file, reason::saved, event_detail::stopped_saved, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

op<domain_ref> driver::restore(std::string_view path, diagnostics& diag) {
  auto s = s_;
  if (path.empty() || path[0] != '/') co_return fail(diag, errc::invalid_arg, "the save file must be an absolute path");
  const form_t form5 = fields("op", "restore", "file", std::string(path));
  auto r = co_await s->xd->post("/xend/domain/", form5, diag);
  if (!r) co_return failure(r.error());
  if (auto f = co_await s->refresh(diag); !f) co_return failure(f.error());
  // xend answers with the restored domain's S-expression.
  auto name = value(*r, "domain/name");
  if (name)
    if (auto d = s->doms.find(*name); d && d->active()) co_return d->ref();
  co_return fail(diag, errc::operation_failed, "xend restored '" + std::string(path) + "' but no running domain came of it");
}

op<void> driver::core_dump(const domain_key& key, std::string_view path, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  if (auto a = need_active(**d, diag); !a) co_return a;
  if (path.empty() || path[0] != '/') co_return fail(diag, errc::invalid_arg, "the dump file must be an absolute path");
  form_t form = fields("op", "dump", "file", std::string(path), "live", "0", "crash", "0");
  const std::string target8 = "/xend/domain/" + (*d)->def.name;
  auto r = co_await s->xd->post(target8, form, diag);
  if (!r) co_return failure(r.error());
  co_return result<void>();
}

}  // namespace covirt::xen
