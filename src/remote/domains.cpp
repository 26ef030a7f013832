// covirt: the remote driver's domain rows, each one procedure of the remote program (restore
// two). Domains go to the wire through on_domain (driver_state.hpp).
#include "driver_state.hpp"

#include <pugixml.hpp>

namespace covirt::remote {

namespace {

using state_ptr = std::shared_ptr<driver::state>;

// A call whose only argument besides the domain is in the struct `A` made by `make(dom)`.
template <class Ret, class Make>
op<Ret> dom_call(const state_ptr& s, const domain_key& k, proc p, diagnostics& diag, Make make) {
  return on_domain<Ret>(s, k, diag, [rpc = s->rpc, p, &diag, make](const nonnull_domain& dom) {
    return rpc->call<Ret>(p, make(dom), diag);
  });
}

template <class Ret>
op<Ret> dom_only(const state_ptr& s, const domain_key& k, proc p, diagnostics& diag) {
  return dom_call<Ret>(s, k, p, diag, [](const nonnull_domain& d) { return dom_args{d}; });
}

template <class Ret>
op<Ret> dom_flags(const state_ptr& s, const domain_key& k, proc p, unsigned flags, diagnostics& diag) {
  return dom_call<Ret>(s, k, p, diag, [flags](const nonnull_domain& d) { return dom_flags_args{d, flags}; });
}

op<bool> dom_bool(state_ptr s, const domain_key& k, proc p, diagnostics& diag) {
  auto r = co_await dom_only<int_ret>(s, k, p, diag);
  if (!r) co_return failure(r.error());
  co_return r->value != 0;
}

result<domain_ref> learned(driver::state& s, const result<dom_ret>& r) {
  if (!r) return failure(r.error());
  s.learn(r->dom);
  return to_ref(r->dom);
}

}  // namespace

// In coroutines here, what a co_await'ed call takes is a named object or a plain number, never a
// class temporary (a lambda, an aggregate): g++ 12 destroys a bitwise copy of such a temporary
// as well as the temporary (double frees seen with lambdas capturing strings).

// ---- definition and lifecycle

op<domain_ref> driver::define_xml(std::string_view xml, diagnostics& diag) {
  auto s = s_;
  const str_flags_args a{std::string(xml), 0};
  auto r = co_await s->rpc->call<dom_ret>(proc::domain_define_xml_flags, a, diag);
  co_return learned(*s, r);
}

op<void> driver::undefine(const domain_key& k, diagnostics& diag) {
  auto s = s_;
  // The domain the call reached is the one to forget: look it up the way the call will.
  nonnull_domain reached;
  auto call = [&, rpc = s->rpc](const nonnull_domain& d) {
    reached = d;
    return rpc->call<void>(proc::domain_undefine_flags, dom_flags_args{d, 0}, diag);
  };
  auto r = co_await on_domain<void>(s, k, diag, call);
  if (r) s->forget(reached);
  co_return r;
}

op<void> driver::create(const domain_key& k, diagnostics& diag) {
  auto s = s_;
  auto r = co_await dom_flags<dom_ret>(s, k, proc::domain_create_with_flags, 0, diag);
  if (!r) co_return failure(r.error());
  s->learn(r->dom);  // its new id
  co_return result<void>();
}

op<domain_ref> driver::create_xml(std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  const str_flags_args a{std::string(xml), flags};
  auto r = co_await s->rpc->call<dom_ret>(proc::domain_create_xml, a, diag);
  co_return learned(*s, r);
}

op<void> driver::destroy(const domain_key& k, diagnostics& diag) { return dom_only<void>(s_, k, proc::domain_destroy, diag); }
op<void> driver::shutdown(const domain_key& k, diagnostics& diag) { return dom_only<void>(s_, k, proc::domain_shutdown, diag); }
op<void> driver::reboot(const domain_key& k, diagnostics& diag) { return dom_flags<void>(s_, k, proc::domain_reboot, 0, diag); }
op<void> driver::suspend(const domain_key& k, diagnostics& diag) { return dom_only<void>(s_, k, proc::domain_suspend, diag); }
op<void> driver::resume(const domain_key& k, diagnostics& diag) { return dom_only<void>(s_, k, proc::domain_resume, diag); }

// ---- state and configuration

op<domain_info> driver::get_info(const domain_key& k, diagnostics& diag) {
  auto r = co_await dom_only<domain_get_info_ret>(s_, k, proc::domain_get_info, diag);
  if (!r) co_return failure(r.error());
  co_return domain_info{static_cast<domain_state>(r->state), r->max_mem, r->memory, r->nr_virt_cpu, r->cpu_time};
}

op<std::string> driver::get_os_type(const domain_key& k, diagnostics& diag) {
  auto r = co_await dom_only<str_ret>(s_, k, proc::domain_get_os_type, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<std::string> driver::get_xml(const domain_key& k, unsigned flags, diagnostics& diag) {
  auto r = co_await dom_flags<str_ret>(s_, k, proc::domain_get_xml_desc, flags, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<std::vector<domain_ref>> driver::list_domains(unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto r = co_await s->rpc->call<connect_list_all_domains_ret>(proc::connect_list_all_domains,
                                                                 list_all_args{1, flags}, diag);
  if (!r) co_return failure(r.error());
  std::vector<domain_ref> out;
  out.reserve(r->domains.size());
  for (const auto& d : r->domains) {
    s->learn(d);
    out.push_back(to_ref(d));
  }
  co_return out;
}

op<domain_ref> driver::lookup_by_name(std::string_view name, diagnostics& diag) {
  auto s = s_;
  const str_args a{std::string(name)};
  auto r = co_await s->rpc->call<dom_ret>(proc::domain_lookup_by_name, a, diag);
  co_return learned(*s, r);
}

op<domain_ref> driver::lookup_by_uuid(std::string_view uuid, diagnostics& diag) {
  auto s = s_;
  uuid_args a;
  if (!parse_uuid(uuid, a.uuid)) co_return fail(diag, errc::invalid_arg, "Invalid UUID '" + std::string(uuid) + "'");
  auto r = co_await s->rpc->call<dom_ret>(proc::domain_lookup_by_uuid, a, diag);
  co_return learned(*s, r);
}

op<domain_ref> driver::lookup_by_id(int id, diagnostics& diag) {
  auto s = s_;
  const int_args a{id};
  auto r = co_await s->rpc->call<dom_ret>(proc::domain_lookup_by_id, a, diag);
  co_return learned(*s, r);
}

op<bool> driver::is_active(const domain_key& k, diagnostics& diag) { return dom_bool(s_, k, proc::domain_is_active, diag); }
op<bool> driver::is_persistent(const domain_key& k, diagnostics& diag) {
  return dom_bool(s_, k, proc::domain_is_persistent, diag);
}

op<domain_state_info> driver::get_state(const domain_key& k, diagnostics& diag) {
  auto r = co_await dom_flags<domain_get_state_ret>(s_, k, proc::domain_get_state, 0, diag);
  if (!r) co_return failure(r.error());
  co_return domain_state_info{static_cast<domain_state>(r->state), r->reason};
}

op<void> driver::set_memory(const domain_key& k, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_set_memory_flags, diag,
                        [=](const nonnull_domain& d) { return dom_u64_flags_args{d, kib, flags}; });
}
op<void> driver::set_max_memory(const domain_key& k, std::uint64_t kib, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_set_max_memory, diag,
                        [=](const nonnull_domain& d) { return dom_u64_args{d, kib}; });
}
op<void> driver::set_vcpus(const domain_key& k, unsigned count, unsigned flags, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_set_vcpus_flags, diag,
                        [=](const nonnull_domain& d) { return dom_u32_flags_args{d, count, flags}; });
}

op<bool> driver::get_autostart(const domain_key& k, diagnostics& diag) {
  return dom_bool(s_, k, proc::domain_get_autostart, diag);
}
op<void> driver::set_autostart(const domain_key& k, bool on, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_set_autostart, diag,
                        [=](const nonnull_domain& d) { return dom_int_args{d, on ? 1 : 0}; });
}

// ---- save, restore, dump, stats, monitor, devices, jobs

op<void> driver::save(const domain_key& k, std::string_view path, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_save, diag,
                        [p = std::string(path)](const nonnull_domain& d) { return dom_str_args{d, p}; });
}

op<domain_ref> driver::restore(std::string_view path, diagnostics& diag) {
  auto s = s_;
  auto rpc = s->rpc;
  // virDomainRestore returns nothing; the image's own XML says which domain comes back.
  const str_flags_args image{std::string(path), 0};
  auto xml = co_await rpc->call<str_ret>(proc::domain_save_image_get_xml_desc, image, diag);
  if (!xml) co_return failure(xml.error());
  pugi::xml_document doc;
  const std::string uuid = doc.load_string(xml->value.c_str()) ? doc.child("domain").child_value("uuid") : "";
  uuid_args a;
  if (!parse_uuid(uuid, a.uuid))
    co_return fail(diag, errc::internal_error, "the saved image '" + std::string(path) + "' has no domain UUID in its XML");
  const str_args from{std::string(path)};
  if (auto r = co_await rpc->call<void>(proc::domain_restore, from, diag); !r) co_return failure(r.error());
  auto r = co_await rpc->call<dom_ret>(proc::domain_lookup_by_uuid, a, diag);
  co_return learned(*s, r);
}

op<void> driver::core_dump(const domain_key& k, std::string_view path, unsigned flags, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_core_dump_with_format, diag, [p = std::string(path), flags](const nonnull_domain& d) {
    return domain_core_dump_with_format_args{d, p, 0, flags};
  });
}

op<covirt::block_stats> driver::block_stats(const domain_key& k, std::string_view disk, diagnostics& diag) {
  auto args = [p = std::string(disk)](const nonnull_domain& d) { return dom_str_args{d, p}; };
  auto r = co_await dom_call<domain_block_stats_ret>(s_, k, proc::domain_block_stats, diag, args);
  if (!r) co_return failure(r.error());
  co_return covirt::block_stats{r->rd_req, r->rd_bytes, r->wr_req, r->wr_bytes, r->errs};
}

op<std::string> driver::qemu_monitor_command(const domain_key& k, std::string_view command, diagnostics& diag) {
  auto s = s_;
  auto call = [rpc = s->rpc, c = std::string(command), &diag](const nonnull_domain& d) {
    return rpc->call<str_ret>(qemu_proc::domain_monitor_command, domain_monitor_command_args{d, c, 0}, diag);
  };
  auto r = co_await on_domain<str_ret>(s, k, diag, call);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<void> driver::attach_device(const domain_key& k, std::string_view xml, unsigned flags, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_attach_device_flags, diag, [x = std::string(xml), flags](const nonnull_domain& d) {
    return dom_str_flags_args{d, x, flags};
  });
}
op<void> driver::detach_device(const domain_key& k, std::string_view xml, unsigned flags, diagnostics& diag) {
  return dom_call<void>(s_, k, proc::domain_detach_device_flags, diag, [x = std::string(xml), flags](const nonnull_domain& d) {
    return dom_str_flags_args{d, x, flags};
  });
}

op<job_info> driver::get_job_info(const domain_key& k, diagnostics& diag) {
  auto r = co_await dom_only<domain_get_job_info_ret>(s_, k, proc::domain_get_job_info, diag);
  if (!r) co_return failure(r.error());
  job_info j;
  j.type = static_cast<job_type>(r->type);
  j.time_elapsed_ms = r->time_elapsed;
  j.data_total = r->data_total;
  j.data_processed = r->data_processed;
  j.data_remaining = r->data_remaining;
  j.mem_total = r->mem_total;
  j.mem_processed = r->mem_processed;
  j.mem_remaining = r->mem_remaining;
  co_return j;
}

op<void> driver::abort_job(const domain_key& k, diagnostics& diag) { return dom_only<void>(s_, k, proc::domain_abort_job, diag); }

// ------------------------------------------------------------------ security (dominfo's lines)

namespace {
// A `char x<>` array as libvirtd fills it: the C string, NUL included (or not).
std::string c_string(const std::vector<char>& v) { return std::string(v.data(), ::strnlen(v.data(), v.size())); }
}  // namespace

op<security_model> driver::node_get_security_model(diagnostics& diag) {
  auto r = co_await s_->rpc->call<node_get_security_model_ret>(proc::node_get_security_model, diag);
  if (!r) co_return failure(r.error());
  security_model m;
  m.model = c_string(r->model);
  m.doi = c_string(r->doi);
  co_return m;
}

op<security_label> driver::get_security_label(const domain_key& k, diagnostics& diag) {
  auto r = co_await dom_only<domain_get_security_label_ret>(s_, k, proc::domain_get_security_label, diag);
  if (!r) co_return failure(r.error());
  security_label l;
  l.label = c_string(r->label);
  l.enforcing = r->enforcing != 0;
  co_return l;
}

}  // namespace covirt::remote
