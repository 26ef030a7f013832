// The test driver's tuning and affinity rows, as libvirt 9.0's test driver answers them
// (src/test/test_driver.c, with the checks libvirt's public entry points make before it):
// testDomainGetSchedulerType and testDomainGet/SetSchedulerParametersFlags (a fixed "fair",
// "weight" 50), testDomainGet/SetMemoryParameters, testDomainGet/SetBlkioParameters (through
// virDomainDriverSetupPersistentDefBlkioParams), testDomainGet/SetNumaParameters (through
// virDomainNumatuneSet), testDomainPinVcpuFlags, testDomainGetVcpuPinInfo, testDomainPinEmulator
// and testDomainGetEmulatorPinInfo. Their words are libvirt's, their order of checks too.
#include "driver_state.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace covirt::test {

using namespace impl;

namespace {

namespace m = modify;

/// VIR_TYPED_PARAM_STRING_OKAY: libvirt's typed-parameter getters add it to the caller's flags
/// before the driver sees them (so testDomainGetSchedulerParametersFlags, which takes no flags,
/// refuses every call of virDomainGetSchedulerParametersFlags). covirt's callers may pass it.
constexpr unsigned string_okay = 1u << 2;
/// VIR_DOMAIN_CPUMASK_LEN: CPU and NUMA node lists name numbers below it.
constexpr unsigned cpumask_len = 16384;
/// testNodeGetCPUMap: the test node's CPU map has 8 CPUs (virNodeGetInfo says 16), and the maps
/// this driver answers have that many places, as virsh asks for them.
constexpr std::size_t map_cpus = 8;
/// VIR_TYPED_PARAM_FIELD_LENGTH.
constexpr std::size_t field_length = 80;
/// virDomainNumatuneMemMode, by value.
constexpr std::string_view numa_modes[] = {"strict", "preferred", "interleave", "restrictive"};

/// typed_param's alternatives, by index (virTypedParameterType minus one).
enum type_index : std::size_t { t_int, t_uint, t_llong, t_ullong, t_double, t_boolean, t_string };
constexpr const char* type_names[] = {"int", "uint", "llong", "ullong", "double", "boolean", "string"};

// virCheckFlags: libvirt's words without the generic text of VIR_ERR_INVALID_ARG
// (virReportInvalidArg), which covirt::error's what() puts before them.
failure unsupported_flags(unsigned bad, const char* function, diagnostics& diag) {
  char text[160];
  std::snprintf(text, sizeof text, "unsupported flags (0x%x) in function %s", bad, function);
  return fail(diag, errc::invalid_arg, text);
}

result<void> check_flags(unsigned flags, unsigned allowed, const char* function, diagnostics& diag) {
  if (unsigned bad = flags & ~allowed) return unsupported_flags(bad, function, diag);
  return {};
}

// VIR_EXCLUSIVE_FLAGS (libvirt's entry points) and virDomainObjGetOneDefState.
result<void> not_both(unsigned flags, diagnostics& diag) {
  if ((flags & m::live) && (flags & m::config))
    return fail(diag, errc::invalid_arg,
                "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive");
  return {};
}

/// The definition a call acts on (virDomainObjGetOneDefState): live or the next boot's, "current"
/// being live on a running domain; `live` says which.
struct one_def {
  domain_config* def = nullptr;
  bool live = false;
};

result<one_def> get_one_def(dom& d, unsigned flags, diagnostics& diag) {
  if (auto r = not_both(flags, diag); !r) return r.error();
  bool live = flags & m::live, config = flags & m::config;
  if (!live && !config) (d.active() ? live : config) = true;
  if (live && !d.active()) return fail(diag, errc::operation_invalid, "domain is not running");
  if (config && !d.persistent)
    return fail(diag, errc::operation_invalid, "transient domains do not have any persistent config");
  if (config) return one_def{&d.persistent_def_mut(), false};
  return one_def{&d.def, true};
}

// virTypedParameterValidateSet: what libvirt's setters check before the driver.
result<void> validate_set(const typed_params& params, diagnostics& diag) {
  for (const auto& p : params)
    if (p.field.size() >= field_length)
      return fail(diag, errc::invalid_arg, "string parameter name '" + p.field.substr(0, field_length) + "' too long");
  return {};
}

struct key {
  std::string_view field;
  std::size_t type;
};

// virTypedParamsValidate: both lists sorted by name and walked together, so the first error in
// name order is the one reported.
result<void> validate(const typed_params& params, std::initializer_list<key> keys_in, diagnostics& diag) {
  std::vector<const typed_param*> sorted;
  for (const auto& p : params) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->field < b->field; });
  std::vector<key> keys(keys_in);
  std::sort(keys.begin(), keys.end(), [](const key& a, const key& b) { return a.field < b.field; });
  std::size_t i = 0, j = 0;
  const std::string* last = nullptr;
  while (i < sorted.size() && j < keys.size()) {
    if (sorted[i]->field != keys[j].field) {
      ++j;
      continue;
    }
    if (last && *last == sorted[i]->field)
      return fail(diag, errc::invalid_arg, "parameter '" + sorted[i]->field + "' occurs multiple times");
    if (sorted[i]->value.index() != keys[j].type)
      return fail(diag, errc::invalid_arg,
                  std::string("invalid type '") + type_names[sorted[i]->value.index()] + "' for parameter '" +
                      sorted[i]->field + "', expected '" + type_names[keys[j].type] + "'");
    last = &sorted[i]->field;
    ++i;
  }
  if (j == keys.size() && i != sorted.size())
    return fail(diag, errc::argument_unsupported, "parameter '" + sorted[i]->field + "' not supported");
  return {};
}

// ------------------------------------------------------------------ CPU maps

/// A cpumap argument: one 'y'/'-' per CPU, or a list ("0-3,^2"). The CPUs it names.
result<std::vector<unsigned>> cpus_of(std::string_view cpumap, const char* api, diagnostics& diag) {
  // virCheckPositiveArgGoto(maplen): there is no empty map
  if (cpumap.empty()) return fail(diag, errc::invalid_arg, std::string("maplen in ") + api + " must be greater than zero");
  if (cpumap.find_first_not_of("y-") == std::string_view::npos) {
    std::vector<unsigned> on;
    for (std::size_t i = 0; i < cpumap.size(); ++i)
      if (cpumap[i] == 'y') on.push_back(static_cast<unsigned>(i));
    return on;
  }
  return parse_bitmap(cpumap, cpumask_len, diag);
}

/// A cpuset of the definition (normalised, "" for none) as the map a caller gets: its CPUs
/// below map_cpus (virBitmapToDataBuf cuts the rest), every CPU when there is none.
std::string map_of(const std::string& cpuset) {
  if (cpuset.empty()) return std::string(map_cpus, 'y');
  std::string map(map_cpus, '-');
  diagnostics ignored;
  if (auto cpus = parse_bitmap(cpuset, cpumask_len, ignored))
    for (unsigned c : *cpus)
      if (c < map_cpus) map[c] = 'y';
  return map;
}

// ------------------------------------------------------------------ blkio

/// The five per-device lists of virDomainGet/SetBlkioParameters. libvirt reads the weights and
/// the iops as unsigned ints (virStrToLong_uip), the bytes as unsigned long longs.
struct blkio_list {
  std::string_view field;
  bool wide;
  std::optional<unsigned> blkiotune_def::device_t::*u;
  std::optional<unsigned long long> blkiotune_def::device_t::*ull;
};
const blkio_list blkio_lists[] = {
    {"device_weight", false, &blkiotune_def::device_t::weight, nullptr},
    {"device_read_iops_sec", false, nullptr, &blkiotune_def::device_t::read_iops_sec},
    {"device_write_iops_sec", false, nullptr, &blkiotune_def::device_t::write_iops_sec},
    {"device_read_bytes_sec", true, nullptr, &blkiotune_def::device_t::read_bytes_sec},
    {"device_write_bytes_sec", true, nullptr, &blkiotune_def::device_t::write_bytes_sec},
};

unsigned long long value_of(const blkiotune_def::device_t& d, const blkio_list& l) {
  if (l.u) return (d.*l.u).value_or(0);
  return (d.*l.ull).value_or(0);
}
void set_value(blkiotune_def::device_t& d, const blkio_list& l, unsigned long long v) {
  // 0 is libvirt's "not set"
  if (l.u) d.*l.u = v ? std::optional<unsigned>(static_cast<unsigned>(v)) : std::nullopt;
  else d.*l.ull = v ? std::optional<unsigned long long>(v) : std::nullopt;
}

// virStrToLong_uip / virStrToLong_ullp with an end pointer: strtoul's number at `s` (spaces
// and a '+' before it allowed, no '-'), `end` past it.
bool positive_number(const char* s, const char*& end, bool wide, unsigned long long& out) {
  errno = 0;
  char* p = nullptr;
  unsigned long long v = std::strtoull(s, &p, 10);
  end = p;
  if (p == s || errno || std::find(s, static_cast<const char*>(p), '-') != p) return false;
  if (!wide && v > 0xffffffffULL) return false;
  out = v;
  return true;
}

struct parsed_device {
  std::string path;
  unsigned long long value = 0;
};

// virDomainDriverParseBlkioDeviceStr: "/path,value,/path,value".
result<std::vector<parsed_device>> parse_blkio_devices(const std::string& text, const blkio_list& l, diagnostics& diag) {
  std::vector<parsed_device> out;
  if (text.empty()) return out;
  auto parse_error = [&] {
    return fail(diag, errc::invalid_arg,
                "unable to parse blkio device '" + std::string(l.field) + "' '" + text + "'");
  };
  // A valid string has an even number of fields, hence an odd number of commas.
  if (!(std::count(text.begin(), text.end(), ',') & 1)) return parse_error();
  const char* temp = text.c_str();
  for (;;) {
    const char* comma = std::strchr(temp, ',');
    if (!comma) return parse_error();
    parsed_device dev;
    dev.path.assign(temp, comma);
    temp = comma + 1;
    const char* end = nullptr;
    if (!positive_number(temp, end, l.wide, dev.value))
      return fail(diag, errc::invalid_arg,
                  "invalid value '" + std::string(temp) + "' for parameter '" + std::string(l.field) + "' of device '" +
                      dev.path + "'");
    out.push_back(std::move(dev));
    if (*end == '\0') break;
    if (*end != ',') return parse_error();
    temp = end + 1;
  }
  return out;
}

// virDomainDriverMergeBlkioDevice: a known path gets the new value (0 clears it, and the device
// stays, printed by nobody); a new path with a value is added at the end.
void merge_blkio_devices(blkiotune_def& b, const std::vector<parsed_device>& devs, const blkio_list& l) {
  for (const auto& src : devs) {
    auto it = std::find_if(b.devices.begin(), b.devices.end(), [&](const auto& d) { return d.path == src.path; });
    if (it != b.devices.end()) {
      set_value(*it, l, src.value);
      continue;
    }
    if (!src.value) continue;
    blkiotune_def::device_t d;
    d.path = src.path;
    set_value(d, l, src.value);
    b.devices.push_back(std::move(d));
  }
}

}  // namespace

// ------------------------------------------------------------------ scheduler

// testDomainGetSchedulerType answers "fair" without looking the domain up.
result<std::string> driver::get_scheduler_type_now(const domain_key&, diagnostics&) { return std::string("fair"); }

// flags 0 is virDomainGetSchedulerParameters; any other value is ...ParametersFlags, which
// libvirt gives the driver with VIR_TYPED_PARAM_STRING_OKAY added, and this driver takes no flags.
result<typed_params> driver::get_scheduler_parameters_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (flags) {
    if (auto r = not_both(flags, diag); !r) return r.error();
    return unsupported_flags(flags | string_okay, "testDomainGetSchedulerParametersFlags", diag);
  }
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  return typed_params{{"weight", 50u}};
}

// The weight is validated and then forgotten, as libvirt's test driver does ("XXX").
result<void> driver::set_scheduler_parameters_now(const domain_key& key, const typed_params& params, unsigned flags,
                                                  diagnostics& diag) {
  if (auto r = validate_set(params, diag); !r) return r;
  if (auto r = check_flags(flags, 0, "testDomainSetSchedulerParametersFlags", diag); !r) return r;
  if (auto r = validate(params, {{"weight", t_uint}}, diag); !r) return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  return {};
}

// ------------------------------------------------------------------ memory

result<typed_params> driver::get_memory_parameters_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (auto r = not_both(flags, diag); !r) return r.error();
  if (auto r = check_flags(flags, m::live | m::config | string_okay, "testDomainGetMemoryParameters", diag); !r)
    return r.error();
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  auto one = get_one_def(**d, flags, diag);
  if (!one) return one.error();
  memtune_def mt = one->def->memtune.value_or(memtune_def{});
  return typed_params{{"hard_limit", mt.hard_limit_kib.value_or(memory_unlimited_kib)},
                      {"soft_limit", mt.soft_limit_kib.value_or(memory_unlimited_kib)},
                      {"swap_hard_limit", mt.swap_hard_limit_kib.value_or(memory_unlimited_kib)}};
}

// Values of memory_unlimited_kib or more are "no limit" (nothing in <memtune>). The hard limit is
// checked against the swap limit of the *running* definition whatever the flags, as libvirt does.
result<void> driver::set_memory_parameters_now(const domain_key& key, const typed_params& params, unsigned flags,
                                               diagnostics& diag) {
  if (auto r = validate_set(params, diag); !r) return r;
  if (auto r = check_flags(flags, m::live | m::config, "testDomainSetMemoryParameters", diag); !r) return r;
  if (auto r = validate(params,
                        {{"hard_limit", t_ullong}, {"soft_limit", t_ullong}, {"swap_hard_limit", t_ullong}}, diag);
      !r)
    return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  auto one = get_one_def(x, flags, diag);
  if (!one) return failure(one.error());
  auto given = [&](std::string_view field) -> std::optional<unsigned long long> {
    for (const auto& p : params)
      if (p.field == field) return std::get<unsigned long long>(p.value);
    return std::nullopt;
  };
  auto hard = given("hard_limit"), soft = given("soft_limit"), swap = given("swap_hard_limit");
  if (hard || swap) {
    const memtune_def running = x.def.memtune.value_or(memtune_def{});
    unsigned long long mem_limit = hard ? *hard : running.hard_limit_kib.value_or(memory_unlimited_kib);
    unsigned long long swap_limit = swap ? *swap : running.swap_hard_limit_kib.value_or(memory_unlimited_kib);
    if (mem_limit > swap_limit)
      return fail(diag, errc::invalid_arg,
                  "memory hard_limit tunable value must be lower than or equal to swap_hard_limit");
  }
  domain_config& def = *one->def;
  memtune_def mt = def.memtune.value_or(memtune_def{});
  auto limit = [](unsigned long long v) {
    return v >= memory_unlimited_kib ? std::nullopt : std::optional<unsigned long long>(v);
  };
  if (soft) mt.soft_limit_kib = limit(*soft);
  if (hard) mt.hard_limit_kib = limit(*hard);
  if (swap) mt.swap_hard_limit_kib = limit(*swap);
  if (mt == memtune_def{}) def.memtune.reset();
  else def.memtune = mt;
  x.changed();
  return {};
}

// ------------------------------------------------------------------ blkio

result<typed_params> driver::get_blkio_parameters_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (auto r = not_both(flags, diag); !r) return r.error();
  if (auto r = check_flags(flags, m::live | m::config | string_okay, "testDomainGetBlkioParameters", diag); !r)
    return r.error();
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  auto one = get_one_def(**d, flags, diag);
  if (!one) return one.error();
  const blkiotune_def b = one->def->blkiotune.value_or(blkiotune_def{});
  typed_params out{{"weight", b.weight.value_or(0u)}};
  // virDomainGetBlkioParametersAssignFromDef: "path,value" of the devices that have one
  for (const auto& l : blkio_lists) {
    std::string list;
    for (const auto& dev : b.devices)
      if (unsigned long long v = value_of(dev, l)) {
        if (!list.empty()) list += ',';
        list += dev.path + "," + std::to_string(v);
      }
    out.push_back({std::string(l.field), std::move(list)});
  }
  return out;
}

// Each parameter is applied in turn; one that cannot be read is skipped and the call fails at
// the end with the last one's words, the others having taken effect (libvirt's way).
result<void> driver::set_blkio_parameters_now(const domain_key& key, const typed_params& params, unsigned flags,
                                              diagnostics& diag) {
  if (auto r = validate_set(params, diag); !r) return r;
  if (auto r = check_flags(flags, m::live | m::config, "testDomainSetBlkioParameters", diag); !r) return r;
  if (auto r = validate(params,
                        {{"weight", t_uint},
                         {"device_weight", t_string},
                         {"device_read_iops_sec", t_string},
                         {"device_write_iops_sec", t_string},
                         {"device_read_bytes_sec", t_string},
                         {"device_write_bytes_sec", t_string}},
                        diag);
      !r)
    return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  auto one = get_one_def(x, flags, diag);
  if (!one) return failure(one.error());
  domain_config& def = *one->def;
  blkiotune_def b = def.blkiotune.value_or(blkiotune_def{});
  std::optional<error_code> failed;
  std::string failed_words;
  for (const auto& p : params) {
    if (p.field == "weight") {
      unsigned w = std::get<unsigned>(p.value);
      b.weight = w ? std::optional<unsigned>(w) : std::nullopt;
      continue;
    }
    for (const auto& l : blkio_lists) {
      if (p.field != l.field) continue;
      diagnostics here;
      auto devs = parse_blkio_devices(std::get<std::string>(p.value), l, here);
      if (!devs) {
        failed = devs.error();
        failed_words = std::string(here.message());
        break;
      }
      merge_blkio_devices(b, *devs, l);
    }
  }
  if (!b.weight && b.devices.empty()) def.blkiotune.reset();
  else def.blkiotune = std::move(b);
  x.changed();
  if (failed) {
    diag.assign(std::move(failed_words));
    return failure(*failed);
  }
  return {};
}

// ------------------------------------------------------------------ NUMA

result<typed_params> driver::get_numa_parameters_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (auto r = check_flags(flags, m::live | m::config | string_okay, "testDomainGetNumaParameters", diag); !r)
    return r.error();
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  auto one = get_one_def(**d, flags, diag);
  if (!one) return one.error();
  int mode = 0;  // strict unless <numatune><memory> says otherwise
  std::string nodeset;
  if (const auto& nt = one->def->numatune; nt && nt->has_memory) {
    for (int i = 0; i < 4; ++i)
      if (numa_modes[i] == nt->mode) mode = i;
    if (nt->placement != "auto") nodeset = nt->nodeset;
  }
  return typed_params{{"numa_mode", mode}, {"numa_nodeset", std::move(nodeset)}};
}

// testDomainSetNumaParameters, then virDomainNumatuneSet with the vCPUs' placement: a mode
// alone on a domain without <numatune> needs a nodeset unless the vCPUs are placed 'auto'.
result<void> driver::set_numa_parameters_now(const domain_key& key, const typed_params& params, unsigned flags,
                                             diagnostics& diag) {
  if (auto r = validate_set(params, diag); !r) return r;
  if (auto r = check_flags(flags, m::live | m::config, "testDomainSetNumaParameters", diag); !r) return r;
  if (auto r = validate(params, {{"numa_mode", t_int}, {"numa_nodeset", t_string}}, diag); !r) return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  auto one = get_one_def(x, flags, diag);
  if (!one) return failure(one.error());
  int mode = -1;
  std::optional<std::string> nodeset;
  for (const auto& p : params) {
    if (p.field == "numa_mode") {
      mode = std::get<int>(p.value);
      if (mode < 0 || mode >= 4)
        return fail(diag, errc::invalid_arg, "unsupported numatune mode: '" + std::to_string(mode) + "'");
    } else if (p.field == "numa_nodeset") {
      const auto& text = std::get<std::string>(p.value);
      auto nodes = parse_bitmap(text, cpumask_len, diag);
      if (!nodes) return failure(nodes.error());
      if (nodes->empty()) return fail(diag, errc::operation_invalid, "Invalid nodeset of 'numatune': " + text);
      nodeset = format_bitmap(*nodes);
    }
  }
  domain_config& def = *one->def;
  const bool specified = def.numatune && def.numatune->has_memory;
  if (one->live && mode != -1 && specified) {
    int now = 0;
    for (int i = 0; i < 4; ++i)
      if (numa_modes[i] == def.numatune->mode) now = i;
    if (now != mode) return fail(diag, errc::operation_invalid, "can't change numatune mode for running domain");
  }
  // virDomainNumatuneSet(def->numa, placement_mode == static, placement -1, mode, nodeset)
  if (mode == -1 && !nodeset) return {};
  enum class placement { unset, by_default, fixed, automatic };
  placement pl = placement::unset;
  numatune_def nt = def.numatune.value_or(numatune_def{});
  std::string nodes = specified ? nt.nodeset : std::string();
  if (!specified) {
    if (mode == -1) mode = 0;
    pl = placement::by_default;
  }
  if (nodeset) {
    nodes = *nodeset;
    if (pl == placement::unset) pl = placement::fixed;
  }
  if (pl == placement::by_default)
    pl = !nodes.empty() || def.vcpu_placement != "auto" ? placement::fixed : placement::automatic;
  if (pl == placement::fixed && nodes.empty())
    return fail(diag, errc::config_unsupported,
                "nodeset for NUMA memory tuning must be set if 'placement' is 'static'");
  if (pl == placement::automatic) nodes.clear();
  if (mode != -1) nt.mode = std::string(numa_modes[mode]);
  if (pl == placement::fixed) nt.placement = "static";
  if (pl == placement::automatic) nt.placement = "auto";
  if (nt.placement.empty()) nt.placement = nodes.empty() ? "auto" : "static";
  nt.nodeset = std::move(nodes);
  nt.has_memory = true;
  def.numatune = std::move(nt);
  x.changed();
  return {};
}

// ------------------------------------------------------------------ affinity

// Only the running domain's vCPUs, and no flags at all (not even live).
result<void> driver::pin_vcpu_flags_now(const domain_key& key, unsigned vcpu, std::string_view cpumap, unsigned flags,
                                        diagnostics& diag) {
  if (auto r = check_flags(flags, 0, "testDomainPinVcpuFlags", diag); !r) return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  if (!x.active()) return fail(diag, errc::operation_invalid, "cannot pin vcpus on an inactive domain");
  domain_config& def = x.def;
  if (vcpu >= def.vcpu_current.value_or(def.vcpus))  // absent, or offline
    return fail(diag, errc::invalid_arg,
                "requested vcpu '" + std::to_string(static_cast<int>(vcpu)) + "' is not present in the domain");
  auto cpus = cpus_of(cpumap, "virDomainPinVcpuFlags", diag);
  if (!cpus) return failure(cpus.error());
  std::string cpuset = format_bitmap(*cpus);
  cputune_def ct = def.cputune.value_or(cputune_def{});
  std::erase_if(ct.vcpupins, [&](const auto& p) { return p.vcpu == vcpu; });
  auto at = std::find_if(ct.vcpupins.begin(), ct.vcpupins.end(), [&](const auto& p) { return p.vcpu > vcpu; });
  ct.vcpupins.insert(at, {vcpu, std::move(cpuset)});
  def.cputune = std::move(ct);
  x.changed();
  return {};
}

// One map per vCPU up to the definition's maximum: its pin, else <vcpu cpuset>, else every CPU.
result<std::vector<std::string>> driver::get_vcpu_pin_info_now(const domain_key& key, unsigned flags,
                                                               diagnostics& diag) {
  if (auto r = not_both(flags, diag); !r) return r.error();
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  auto one = get_one_def(**d, flags, diag);
  if (!one) return one.error();
  const domain_config& def = *one->def;
  std::vector<std::string> maps;
  for (unsigned i = 0; i < def.vcpus; ++i) {
    const std::string* cpuset = &def.vcpu_cpuset;
    if (def.cputune)
      for (const auto& p : def.cputune->vcpupins)
        if (p.vcpu == i) cpuset = &p.cpuset;
    maps.push_back(map_of(*cpuset));
  }
  return maps;
}

result<void> driver::pin_emulator_now(const domain_key& key, std::string_view cpumap, unsigned flags,
                                      diagnostics& diag) {
  if (auto r = check_flags(flags, m::live | m::config, "testDomainPinEmulator", diag); !r) return r;
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  auto one = get_one_def(x, flags, diag);
  if (!one) return failure(one.error());
  auto cpus = cpus_of(cpumap, "virDomainPinEmulator", diag);
  if (!cpus) return failure(cpus.error());
  if (cpus->empty()) return fail(diag, errc::invalid_arg, "Empty cpu list for pinning");
  domain_config& def = *one->def;
  cputune_def ct = def.cputune.value_or(cputune_def{});
  ct.emulatorpin = format_bitmap(*cpus);
  def.cputune = std::move(ct);
  x.changed();
  return {};
}

// The emulator pin, else <vcpu cpuset>, else every CPU.
result<std::string> driver::get_emulator_pin_info_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (auto r = check_flags(flags, m::live | m::config, "testDomainGetEmulatorPinInfo", diag); !r) return r.error();
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  auto one = get_one_def(**d, flags, diag);
  if (!one) return one.error();
  const domain_config& def = *one->def;
  if (def.cputune && def.cputune->emulatorpin) return map_of(*def.cputune->emulatorpin);
  return map_of(def.vcpu_cpuset);
}

}  // namespace covirt::test
