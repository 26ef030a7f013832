// covirt: the remote driver's tuning and affinity rows (virsh schedinfo, memtune, blkiotune,
// numatune; vcpupin and emulatorpin with flags): typed parameters and CPU maps, as libvirt's own
// remote client sends them (src/remote/remote_driver.c, virsh-domain.c).
//
// Parameters come in libvirt's two calls. The scheduler's count is DOMAIN_GET_SCHEDULER_TYPE's
// nparams, then GET_SCHEDULER_PARAMETERS_FLAGS with it (flags 0: GET_SCHEDULER_PARAMETERS, as
// virsh schedinfo calls virDomainGetSchedulerParameters then; the Flags API with 0 reaches the
// driver as VIR_TYPED_PARAM_STRING_OKAY, which libvirt's test driver refuses); memory, blkio and
// numa ask their own procedure with nparams 0 (libvirtd answers the count and no parameters),
// then with the count. Every Flags Get carries VIR_TYPED_PARAM_STRING_OKAY, as libvirt's API
// adds it: without it libvirtd leaves the string parameters (blkio's device_weight,
// numa_nodeset) out of its reply.
//
// CPU maps: the host's CPU count is virsh's (NODE_GET_CPU_MAP's count, else NODE_GET_INFO's
// nodes * sockets * cores * threads); a map is VIR_CPU_MAPLEN of it bytes. A pin info asks
// GET_VCPUS_FLAGS (VIR_DOMAIN_VCPU_MAXIMUM | flags) for the number of maps, as virsh does.
#include "driver_state.hpp"

#include <covirt/domain/xml.hpp>  // parse_bitmap

namespace covirt::remote {

namespace {
namespace tune {  // (the member definitions below name what they use from here)

using state_ptr = std::shared_ptr<driver::state>;
using client_ptr = std::shared_ptr<client>;

/// virTypedParamsSerialize's check, then the parameters as the wire has them.
result<domain_typed_params> params_to_wire(const typed_params& params, diagnostics& diag) {
  if (params.size() > domain_typed_params::max)
    return fail(diag, errc::rpc, "too many parameters '" + std::to_string(params.size()) + "' for limit '" +
                                     std::to_string(domain_typed_params::max) + "'");
  domain_typed_params out;
  out.reserve(params.size());
  for (const auto& p : params) {
    // virTypedParameterValidateSet (libvirt's API, before anything is sent)
    if (p.field.size() >= typed_param_field_length)
      return fail(diag, errc::invalid_arg,
                  "string parameter name '" + p.field.substr(0, typed_param_field_length) + "' too long");
    out.push_back(to_wire(p));
  }
  return out;
}

/// virTypedParamsDeserialize's checks: no more than were asked for, names that fit libvirt's field.
result<typed_params> params_from_wire(const domain_typed_params& wire, std::size_t asked, diagnostics& diag) {
  if (wire.size() > asked)
    return fail(diag, errc::rpc, "libvirtd returned " + std::to_string(wire.size()) + " parameters for " +
                                     std::to_string(asked) + " asked");
  typed_params out;
  out.reserve(wire.size());
  for (const auto& w : wire) {
    if (w.field.size() >= typed_param_field_length)
      return fail(diag, errc::internal_error, "parameter " + w.field + " too big for destination");
    out.push_back(from_wire(w));
  }
  return out;
}

/// A count libvirtd announced, as the next call may ask for it.
result<std::int32_t> announced(std::int32_t n, diagnostics& diag) {
  if (n < 0 || std::uint32_t(n) > domain_typed_params::max)
    return fail(diag, errc::rpc, "libvirtd announced " + std::to_string(n) + " parameters, past the limit of " +
                                     std::to_string(domain_typed_params::max));
  return n;
}

// The calls on a domain run inside on_domain (one retry on no_domain covers both of a pair);
// they take what they use by value, so nothing of the caller's frame is needed after the first
// co_await.

op<std::string> scheduler_type(client_ptr rpc, nonnull_domain dom, diagnostics& diag) {
  const dom_args a{std::move(dom)};
  auto r = co_await rpc->call<domain_get_scheduler_type_ret>(proc::domain_get_scheduler_type, a, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->type);
}

op<typed_params> scheduler_params(client_ptr rpc, nonnull_domain dom, unsigned flags, diagnostics& diag) {
  const dom_args which{dom};
  auto type = co_await rpc->call<domain_get_scheduler_type_ret>(proc::domain_get_scheduler_type, which, diag);
  if (!type) co_return failure(type.error());
  auto n = announced(type->nparams, diag);
  if (!n) co_return failure(n.error());
  if (*n == 0) co_return typed_params{};  // a scheduler without parameters
  result<typed_params_ret> r;
  if (flags == 0) {  // virsh's schedinfo without flags: libvirt's test driver takes no flags, not even STRING_OKAY
    const dom_int_args a{std::move(dom), *n};
    r = co_await rpc->call<typed_params_ret>(proc::domain_get_scheduler_parameters, a, diag);
  } else {
    const dom_int_flags_args a{std::move(dom), *n, flags | typed_param_string_okay};
    r = co_await rpc->call<typed_params_ret>(proc::domain_get_scheduler_parameters_flags, a, diag);
  }
  if (!r) co_return failure(r.error());
  co_return params_from_wire(r->params, std::size_t(*n), diag);
}

op<typed_params> counted_params(client_ptr rpc, nonnull_domain dom, proc p, unsigned flags, diagnostics& diag) {
  flags |= typed_param_string_okay;
  const dom_int_flags_args count{dom, 0, flags};
  auto c = co_await rpc->call<typed_params_nparams_ret>(p, count, diag);
  if (!c) co_return failure(c.error());
  auto n = announced(c->nparams, diag);
  if (!n) co_return failure(n.error());
  if (*n == 0) co_return typed_params{};
  const dom_int_flags_args a{std::move(dom), *n, flags};
  auto r = co_await rpc->call<typed_params_nparams_ret>(p, a, diag);
  if (!r) co_return failure(r.error());
  co_return params_from_wire(r->params, std::size_t(*n), diag);
}

op<typed_params> get_params(state_ptr s, const domain_key& k, proc p, unsigned flags, diagnostics& diag) {
  auto fetch = [rpc = s->rpc, p, flags, &diag](const nonnull_domain& d) {
    return p == proc::domain_get_scheduler_parameters_flags ? scheduler_params(rpc, d, flags, diag)
                                                            : counted_params(rpc, d, p, flags, diag);
  };
  co_return co_await on_domain<typed_params>(s, k, diag, fetch);
}

op<void> set_params(state_ptr s, const domain_key& k, proc p, const typed_params& params, unsigned flags,
                    diagnostics& diag) {
  auto wire = params_to_wire(params, diag);
  if (!wire) co_return failure(wire.error());
  auto send = [rpc = s->rpc, p, flags, &diag, w = std::move(*wire)](const nonnull_domain& d) {
    const dom_typed_params_flags_args a{d, w, flags};
    return rpc->call<void>(p, a, diag);  // encoded before it returns
  };
  co_return co_await on_domain<void>(s, k, diag, send);
}

// ------------------------------------------------------------------ CPU maps

/// virshNodeGetCPUCount: NODE_GET_CPU_MAP's count, else NODE_GET_INFO's (VIR_NODEINFO_MAXCPUS).
op<unsigned> host_cpus(client_ptr rpc, diagnostics& diag) {
  const node_get_cpu_map_args only_count{0, 0, 0};
  diagnostics ignored;
  auto m = co_await rpc->call<node_get_cpu_map_ret>(proc::node_get_cpu_map, only_count, ignored);
  long long n = m ? m->ret : 0;
  if (n <= 0) {
    auto info = co_await rpc->call<node_get_info_ret>(proc::node_get_info, diag);
    if (!info) co_return failure(info.error());
    n = 1LL * info->nodes * info->sockets * info->cores * info->threads;
  }
  // A map of every CPU must fit REMOTE_CPUMAP_MAX.
  if (n <= 0 || n > 8LL * cpumap_max)
    co_return fail(diag, errc::rpc, "libvirtd says the host has " + std::to_string(n) +
                                        " CPUs; a CPU map holds 1 to " + std::to_string(8 * cpumap_max));
  co_return unsigned(n);
}

constexpr std::size_t map_len(unsigned cpus) { return (cpus + 7) / 8; }  // VIR_CPU_MAPLEN

bool is_yn_map(std::string_view m) { return m.find_first_not_of("y-") == std::string_view::npos; }

/// The first `cpus` CPUs of libvirt's bytes as 'y'/'-'.
std::string map_string(std::string_view bytes, unsigned cpus) {
  std::string m(cpus, '-');
  for (unsigned c = 0; c < cpus && c / 8 < bytes.size(); ++c)
    if (static_cast<unsigned char>(bytes[c / 8]) >> (c % 8) & 1) m[c] = 'y';
  return m;
}

void set_cpu(std::string& bytes, unsigned c) { bytes[c / 8] = char(static_cast<unsigned char>(bytes[c / 8]) | 1u << (c % 8)); }

/// A cpumap argument as libvirt's bytes: a 'y'/'-' map as it stands (its length is the caller's
/// business and libvirtd's, an empty one included), or a list ("0-3,^2") over the host's CPUs.
op<std::string> cpumap_arg(client_ptr rpc, std::string_view cpumap, diagnostics& diag) {
  std::string bytes;
  if (is_yn_map(cpumap)) {
    if (cpumap.size() > 8 * cpumap_max)  // REMOTE_CPUMAP_MAX bytes
      co_return fail(diag, errc::invalid_arg, "a CPU map of " + std::to_string(cpumap.size()) +
                                                  " CPUs passes libvirt's limit of " + std::to_string(8 * cpumap_max));
    bytes.assign(map_len(unsigned(cpumap.size())), '\0');
    for (std::size_t c = 0; c < cpumap.size(); ++c)
      if (cpumap[c] == 'y') set_cpu(bytes, unsigned(c));
    co_return bytes;
  }
  const std::string list(cpumap);
  auto cpus = co_await host_cpus(rpc, diag);
  if (!cpus) co_return failure(cpus.error());
  auto members = parse_bitmap(list, 8 * cpumap_max, diag);
  if (!members) co_return failure(members.error());
  if (!members->empty() && members->back() >= *cpus)  // virshParseCPUList's words
    co_return fail(diag, errc::invalid_arg, "CPU " + std::to_string(members->back()) + " in cpulist '" + list +
                                                "' exceed the maxcpu " + std::to_string(*cpus));
  bytes.assign(map_len(*cpus), '\0');
  for (unsigned c : *members) set_cpu(bytes, c);
  co_return bytes;
}

op<void> pin(state_ptr s, const domain_key& k, std::optional<unsigned> vcpu, std::string_view cpumap, unsigned flags,
             diagnostics& diag) {
  auto bytes = co_await cpumap_arg(s->rpc, cpumap, diag);
  if (!bytes) co_return failure(bytes.error());
  auto send = [rpc = s->rpc, vcpu, flags, &diag, b = std::move(*bytes)](const nonnull_domain& d) {
    if (vcpu) {
      const domain_pin_vcpu_flags_args a{d, *vcpu, {b}, flags};
      return rpc->call<void>(proc::domain_pin_vcpu_flags, a, diag);
    }
    const domain_pin_emulator_args a{d, {b}, flags};
    return rpc->call<void>(proc::domain_pin_emulator, a, diag);
  };
  co_return co_await on_domain<void>(s, k, diag, send);
}

op<std::vector<std::string>> vcpu_pins(client_ptr rpc, nonnull_domain dom, unsigned cpus, unsigned flags,
                                       diagnostics& diag) {
  const dom_flags_args how_many{dom, flags | modify::vcpu_maximum};
  auto n = co_await rpc->call<int_ret>(proc::domain_get_vcpus_flags, how_many, diag);
  if (!n) co_return failure(n.error());
  const std::size_t maplen = map_len(cpus);
  if (n->value <= 0) co_return std::vector<std::string>{};
  if (std::uint32_t(n->value) > vcpuinfo_max || std::size_t(n->value) * maplen > cpumaps_max)
    co_return fail(diag, errc::rpc, "the domain's " + std::to_string(n->value) + " vCPUs of " + std::to_string(cpus) +
                                        " host CPUs pass libvirt's limits for their maps");
  const domain_get_vcpu_pin_info_args a{std::move(dom), n->value, std::int32_t(maplen), flags};
  auto r = co_await rpc->call<cpumaps_ret>(proc::domain_get_vcpu_pin_info, a, diag);
  if (!r) co_return failure(r.error());
  const std::string& bytes = r->cpumaps.bytes;
  // remoteDomainGetVcpuPinInfo's checks
  if (r->ret < 0 || r->ret > n->value || bytes.size() > std::size_t(n->value) * maplen ||
      bytes.size() < std::size_t(r->ret) * maplen)
    co_return fail(diag, errc::rpc, "libvirtd's pin info holds " + std::to_string(bytes.size()) + " bytes for " +
                                        std::to_string(r->ret) + " vCPUs (asked " + std::to_string(n->value) +
                                        " maps of " + std::to_string(maplen) + " bytes)");
  std::vector<std::string> maps;
  maps.reserve(std::size_t(r->ret));
  for (std::size_t i = 0; i < std::size_t(r->ret); ++i)
    maps.push_back(map_string(std::string_view(bytes).substr(i * maplen, maplen), cpus));
  co_return maps;
}

op<std::string> emulator_pin(client_ptr rpc, nonnull_domain dom, unsigned cpus, unsigned flags, diagnostics& diag) {
  const std::size_t maplen = map_len(cpus);
  const dom_int_flags_args a{std::move(dom), std::int32_t(maplen), flags};
  auto r = co_await rpc->call<cpumaps_ret>(proc::domain_get_emulator_pin_info, a, diag);
  if (!r) co_return failure(r.error());
  if (r->cpumaps.bytes.size() > maplen || r->ret < 0)
    co_return fail(diag, errc::rpc, "libvirtd's emulator pin info holds " + std::to_string(r->cpumaps.bytes.size()) +
                                        " bytes for a map of " + std::to_string(maplen));
  co_return map_string(r->cpumaps.bytes, cpus);
}

}  // namespace tune
}  // namespace

// ------------------------------------------------------------------ tuning

op<std::string> driver::get_scheduler_type(const domain_key& k, diagnostics& diag) {
  auto ask = [rpc = s_->rpc, &diag](const nonnull_domain& d) { return tune::scheduler_type(rpc, d, diag); };
  return on_domain<std::string>(s_, k, diag, ask);
}

op<typed_params> driver::get_scheduler_parameters(const domain_key& k, unsigned flags, diagnostics& diag) {
  return tune::get_params(s_, k, proc::domain_get_scheduler_parameters_flags, flags, diag);
}
op<void> driver::set_scheduler_parameters(const domain_key& k, const typed_params& params, unsigned flags,
                                          diagnostics& diag) {
  return tune::set_params(s_, k, proc::domain_set_scheduler_parameters_flags, params, flags, diag);
}
op<typed_params> driver::get_memory_parameters(const domain_key& k, unsigned flags, diagnostics& diag) {
  return tune::get_params(s_, k, proc::domain_get_memory_parameters, flags, diag);
}
op<void> driver::set_memory_parameters(const domain_key& k, const typed_params& params, unsigned flags,
                                       diagnostics& diag) {
  return tune::set_params(s_, k, proc::domain_set_memory_parameters, params, flags, diag);
}
op<typed_params> driver::get_blkio_parameters(const domain_key& k, unsigned flags, diagnostics& diag) {
  return tune::get_params(s_, k, proc::domain_get_blkio_parameters, flags, diag);
}
op<void> driver::set_blkio_parameters(const domain_key& k, const typed_params& params, unsigned flags,
                                      diagnostics& diag) {
  return tune::set_params(s_, k, proc::domain_set_blkio_parameters, params, flags, diag);
}
op<typed_params> driver::get_numa_parameters(const domain_key& k, unsigned flags, diagnostics& diag) {
  return tune::get_params(s_, k, proc::domain_get_numa_parameters, flags, diag);
}
op<void> driver::set_numa_parameters(const domain_key& k, const typed_params& params, unsigned flags,
                                     diagnostics& diag) {
  return tune::set_params(s_, k, proc::domain_set_numa_parameters, params, flags, diag);
}

// ------------------------------------------------------------------ affinity

op<void> driver::pin_vcpu_flags(const domain_key& k, unsigned vcpu, std::string_view cpumap, unsigned flags,
                                diagnostics& diag) {
  return tune::pin(s_, k, vcpu, cpumap, flags, diag);
}

op<void> driver::pin_emulator(const domain_key& k, std::string_view cpumap, unsigned flags, diagnostics& diag) {
  return tune::pin(s_, k, std::nullopt, cpumap, flags, diag);
}

op<std::vector<std::string>> driver::get_vcpu_pin_info(const domain_key& k, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto cpus = co_await tune::host_cpus(s->rpc, diag);
  if (!cpus) co_return failure(cpus.error());
  auto ask = [rpc = s->rpc, n = *cpus, flags, &diag](const nonnull_domain& d) {
    return tune::vcpu_pins(rpc, d, n, flags, diag);
  };
  co_return co_await on_domain<std::vector<std::string>>(s, k, diag, ask);
}

op<std::string> driver::get_emulator_pin_info(const domain_key& k, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto cpus = co_await tune::host_cpus(s->rpc, diag);
  if (!cpus) co_return failure(cpus.error());
  auto ask = [rpc = s->rpc, n = *cpus, flags, &diag](const nonnull_domain& d) {
    return tune::emulator_pin(rpc, d, n, flags, diag);
  };
  co_return co_await on_domain<std::string>(s, k, diag, ask);
}

}  // namespace covirt::remote
