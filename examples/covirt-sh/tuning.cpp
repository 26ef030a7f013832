// covirt-sh: virsh's tuning and affinity commands of "Domain Management" (virsh 9.0's
// tools/virsh-domain.c): schedinfo, memtune, blkiotune, numatune, vcpupin, emulatorpin. Each
// checks its options in virsh's order, prints virsh's lines, and lets the library's error reach
// the run loop after the line virsh prints before it.

#include "shell.hpp"

#include <cctype>

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

/// VIR_TYPED_PARAM_STRING_OKAY: what libvirt's ...ParametersFlags entry points add to every
/// call; virsh's flagged calls reach the driver with it, so covirt-sh passes it there too.
constexpr unsigned typed_string_okay = 1u << 2;

bool is_no_support(const covirt::error& e) { return e.code() == covirt::errc::no_support; }


/// "field          : value" lines, virsh's "%-15s: %s\n".
std::string param_line(const std::string& field, const std::string& value) {
  return format("%-15s: %s\n", field.c_str(), value.c_str());
}

// virsh's number readers on a whole option value (strtol's leading spaces and sign allowed).
std::optional<long long> whole_number(const std::string& s, int base, bool unsigned_) {
  if (s.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = 0;
  if (unsigned_) {
    unsigned long long u = std::strtoull(s.c_str(), &end, base);
    if (u > LLONG_MAX) return std::nullopt;
    v = static_cast<long long>(u);
  } else {
    v = std::strtoll(s.c_str(), &end, base);
  }
  if (errno || end == s.c_str() || *end) return std::nullopt;
  return v;
}

/// vshCommandOptInt: "Numeric value '...' for <opt> option is malformed or out of range".
std::optional<int> int_option(shell& sh, const args& a, std::string_view opt) {
  const std::string& text = a.at(opt);
  auto v = whole_number(text, 10, false);
  if (!v || *v < INT_MIN || *v > INT_MAX) {
    sh.error(format("Numeric value '%s' for <%s> option is malformed or out of range", text.c_str(),
                    std::string(opt).c_str()));
    return std::nullopt;
  }
  return static_cast<int>(*v);
}

/// vshCommandOptUInt (virStrToLong_uip: no minus sign, at most UINT_MAX).
std::optional<unsigned> uint_option(shell& sh, const args& a, std::string_view opt) {
  const std::string& text = a.at(opt);
  auto v = text.find('-') == std::string::npos ? whole_number(text, 10, true) : std::nullopt;
  if (!v || *v > UINT_MAX) {
    sh.error(format("Numeric value '%s' for <%s> option is malformed or out of range", text.c_str(),
                    std::string(opt).c_str()));
    return std::nullopt;
  }
  return static_cast<unsigned>(*v);
}

/// vshCommandOptStringReq's refusal of an empty value.
bool empty_refused(shell& sh, const args& a, std::string_view opt) {
  if (auto v = a.get(opt); v && v->empty()) {
    sh.error(format("Failed to get option '%s': Option argument is empty", std::string(opt).c_str()));
    return true;
  }
  return false;
}

// ------------------------------------------------------------------ CPU lists

/// virshParseCPUList: "r" for every CPU, or a list ("0-3,^2") of CPUs below maxcpu, as a
/// 'y'/'-' map of maxcpu places; nullopt after printing virsh's error lines.
std::optional<std::string> parse_cpulist(shell& sh, const std::string& list, unsigned maxcpu) {
  if (!list.empty() && list[0] == 'r') return std::string(maxcpu, 'y');
  covirt::diagnostics diag;
  auto cpus = covirt::parse_bitmap(list, 1024, diag);
  if (!cpus || cpus->empty()) {
    sh.error(format("Invalid cpulist '%s'", list.c_str()));
    if (!cpus) sh.error(format("invalid argument: %s", std::string(diag.message()).c_str()));
    return std::nullopt;
  }
  if (cpus->back() >= maxcpu) {
    sh.error(format("CPU %d in cpulist '%s' exceed the maxcpu %d", static_cast<int>(cpus->back()), list.c_str(),
                    static_cast<int>(maxcpu)));
    return std::nullopt;
  }
  std::string map(maxcpu, '-');
  for (unsigned c : *cpus) map[c] = 'y';
  return map;
}

/// virsh's maxcpu (virNodeGetCPUMap's count): the places of the driver's CPU maps, or the
/// node's CPU count where the driver has no affinity calls.
awaitable<unsigned> host_cpus(shell& sh, const covirt::domain_ref& d) {
  bool probed = false;
  std::size_t places = 0;
  try {
    places = (co_await sh.conn.async_get_emulator_pin_info(d, covirt::modify::current)).size();
    probed = places > 0;
  } catch (const covirt::error&) {
  }
  if (probed) co_return static_cast<unsigned>(places);
  co_return (co_await sh.conn.async_node_get_info()).cpus;
}

// ------------------------------------------------------------------ schedinfo

/// virTypedParameterAssignFromStr: `text` as a value of the type of `like`.
std::variant<covirt::typed_param, std::string> param_from_string(const std::string& field,
                                                                 const covirt::typed_param& like,
                                                                 const std::string& text) {
  auto bad = [&](const char* what) -> std::string {
    return format("invalid argument: Invalid value for field '%s': expected %s", field.c_str(), what);
  };
  covirt::typed_param p{field, {}};
  errno = 0;
  char* end = nullptr;
  const char* s = text.c_str();
  auto whole = [&] { return !errno && end != s && *end == '\0'; };
  switch (like.value.index()) {
    case 0: {
      long v = std::strtol(s, &end, 10);
      if (!whole() || v < INT_MIN || v > INT_MAX) return bad("int");
      p.value = static_cast<int>(v);
      break;
    }
    case 1: {
      // virStrToLong_ui: "-1" is UINT_MAX, as strtoul's wrap into 32 bits
      unsigned long v = std::strtoul(s, &end, 10);
      if (!whole()) return bad("unsigned int");
      if (std::memchr(s, '-', static_cast<std::size_t>(end - s))) {
        if (-v > UINT_MAX) return bad("unsigned int");
        v &= UINT_MAX;
      } else if (v > UINT_MAX) {
        return bad("unsigned int");
      }
      p.value = static_cast<unsigned>(v);
      break;
    }
    case 2: {
      long long v = std::strtoll(s, &end, 10);
      if (!whole()) return bad("long long");
      p.value = v;
      break;
    }
    case 3: {
      unsigned long long v = std::strtoull(s, &end, 10);
      if (!whole()) return bad("unsigned long long");
      p.value = v;
      break;
    }
    case 4: {
      double v = std::strtod(s, &end);
      if (!whole()) return bad("double");
      p.value = v;
      break;
    }
    case 5: {
      auto lower = text;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "true" || text == "1") p.value = true;
      else if (lower == "false" || text == "0") p.value = false;
      else return format("invalid argument: Invalid boolean value for field '%s'", field.c_str());
      break;
    }
    default: p.value = text;
  }
  return p;
}

/// cmdSchedInfoUpdate: --set name=value, then --cap, then --weight, each typed like the field
/// the driver answered; nullopt after printing virsh's error.
std::optional<covirt::typed_params> schedinfo_updates(shell& sh, const args& a, const covirt::typed_params& known) {
  covirt::typed_params out;
  auto one = [&](const std::string& field, const std::string& value) {
    for (const auto& p : known) {
      if (p.field != field) continue;
      auto v = param_from_string(field, p, value);
      if (auto* err = std::get_if<std::string>(&v)) {
        sh.error(*err);
        return false;
      }
      out.push_back(std::get<covirt::typed_param>(std::move(v)));
      return true;
    }
    sh.error(format("invalid scheduler option: %s", field.c_str()));
    return false;
  };
  if (auto set = a.get("set")) {
    auto eq = set->find('=');
    if (eq == std::string::npos) {
      sh.error("Invalid syntax for --set, expecting name=value");
      return std::nullopt;
    }
    if (!one(set->substr(0, eq), set->substr(eq + 1))) return std::nullopt;
  }
  for (std::string_view opt : {"cap", "weight"}) {
    if (empty_refused(sh, a, opt)) return std::nullopt;
    if (auto v = a.get(opt); v && !one(std::string(opt), *v)) return std::nullopt;
  }
  return out;
}

awaitable<bool> cmd_schedinfo(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  const bool current = a.has("current"), live = a.has("live"), config = a.has("config");
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  std::string type;
  try {
    type = co_await sh.conn.async_get_scheduler_type(*d);
  } catch (const covirt::error&) {
    sh.print(param_line("Scheduler", "Unknown"));
    throw;
  }
  sh.print(param_line("Scheduler", type));
  // virsh calls the ...Flags entry points when any of the three options is given, the plain
  // ones otherwise; it queries "current" when asked for live and config at once.
  const bool flagged = *flags || current;
  const unsigned get_flags = flagged ? ((live && config) ? 0u : *flags) | typed_string_okay : 0u;
  auto params = co_await sh.conn.async_get_scheduler_parameters(*d, get_flags);
  auto updates = schedinfo_updates(sh, a, params);
  if (!updates) co_return false;
  if (!updates->empty()) {
    covirt::typed_params set = std::move(*updates);
    co_await sh.conn.async_set_scheduler_parameters(*d, std::move(set), flagged ? *flags : 0u);
    params = co_await sh.conn.async_get_scheduler_parameters(*d, get_flags);
  } else if (live && config) {
    sh.error("cannot query both live and config at once");
    co_return false;
  }
  std::string out;
  for (const auto& p : params) out += param_line(p.field, typed_value_text(p));
  sh.print(out);
  co_return true;
}

// ------------------------------------------------------------------ memtune

/// virshMemtuneGetSize: a number (virStrToLong_ll), negative for "unlimited", then
/// virScaleInteger's suffix (KiB without one) up to LLONG_MAX bytes; the KiB rounded up.
/// The value, or the libvirt error line ("" when virsh has none to print).
std::variant<unsigned long long, std::string> memtune_size(const std::string& text) {
  if (text.empty()) return std::string();
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || end == text.c_str()) return std::string();
  if (v < 0) return covirt::memory_unlimited_kib;
  std::string suffix(end);
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  auto ieq = [&](std::string_view x, std::string_view y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [&](char p, char q) { return lower(p) == lower(q); });
  };
  unsigned long long scale = 1024;
  if (suffix.empty()) {
  } else if (ieq(suffix, "b") || ieq(suffix, "byte") || ieq(suffix, "bytes")) {
    scale = 1;
  } else {
    unsigned long long base = 0;
    if (suffix.size() == 1 || ieq(std::string_view(suffix).substr(1), "iB")) base = 1024;
    else if (suffix.size() == 2 && lower(suffix[1]) == 'b') base = 1000;
    static constexpr std::string_view order = "kmgtpe";
    auto pos = base ? order.find(lower(suffix[0])) : std::string_view::npos;
    if (pos == std::string_view::npos) return format("invalid argument: unknown suffix '%s'", suffix.c_str());
    scale = 1;
    for (std::size_t k = 0; k <= pos; ++k) scale *= base;
  }
  const auto value = static_cast<unsigned long long>(v);
  if (value && value > static_cast<unsigned long long>(LLONG_MAX) / scale)
    return format("numerical overflow: value too large: %llu%s", value, suffix.c_str());
  unsigned long long bytes = value * scale;
  return bytes / 1024 + (bytes % 1024 ? 1 : 0);
}

awaitable<bool> cmd_memtune(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  covirt::typed_params params;
  for (auto [opt, field] : {std::pair{"hard-limit", "hard_limit"}, std::pair{"soft-limit", "soft_limit"},
                            std::pair{"swap-hard-limit", "swap_hard_limit"},
                            std::pair{"min-guarantee", "min_guarantee"}}) {
    auto text = a.get(opt);
    if (!text) continue;
    auto kib = memtune_size(*text);
    if (auto* err = std::get_if<std::string>(&kib)) {
      sh.error(format("Unable to parse integer parameter %s", opt));
      if (!err->empty()) sh.error(*err);
      co_return false;
    }
    params.push_back({field, std::get<unsigned long long>(kib)});
  }
  if (!params.empty()) {
    sh.doing("Unable to change memory parameters");
    co_await sh.conn.async_set_memory_parameters(*d, std::move(params), *flags);
    co_return true;
  }
  // libvirt refuses live and config together before the driver, in virsh's first call (the count)
  sh.doing(a.has("live") && a.has("config") ? "Unable to get number of memory parameters"
                                            : "Unable to get memory parameters");
  auto got = co_await sh.conn.async_get_memory_parameters(*d, *flags);
  std::string out;
  for (const auto& p : got) {
    auto* v = std::get_if<unsigned long long>(&p.value);
    out += param_line(p.field, v && *v == covirt::memory_unlimited_kib ? "unlimited" : typed_value_text(p));
  }
  sh.print(out);
  co_return true;
}

// ------------------------------------------------------------------ blkiotune

awaitable<bool> cmd_blkiotune(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  covirt::typed_params params;
  if (a.has("weight")) {
    auto w = int_option(sh, a, "weight");
    if (!w) co_return false;
    if (*w <= 0) {
      sh.error(format("Invalid value of %d for I/O weight", *w));
      co_return false;
    }
    params.push_back({"weight", static_cast<unsigned>(*w)});
  }
  for (auto [opt, field] : {std::pair{"device-weights", "device_weight"},
                            std::pair{"device-read-iops-sec", "device_read_iops_sec"},
                            std::pair{"device-write-iops-sec", "device_write_iops_sec"},
                            std::pair{"device-read-bytes-sec", "device_read_bytes_sec"},
                            std::pair{"device-write-bytes-sec", "device_write_bytes_sec"}}) {
    auto v = a.get(opt);
    if (!v) continue;
    if (v->empty()) {
      sh.error("Unable to parse string parameter");
      co_return false;
    }
    params.push_back({field, *v});
  }
  if (!params.empty()) {
    sh.doing("Unable to change blkio parameters");
    co_await sh.conn.async_set_blkio_parameters(*d, std::move(params), *flags);
    co_return true;
  }
  sh.doing(a.has("live") && a.has("config") ? "Unable to get number of blkio parameters"
                                            : "Unable to get blkio parameters");
  auto got = co_await sh.conn.async_get_blkio_parameters(*d, *flags);
  std::string out;
  for (const auto& p : got) out += param_line(p.field, typed_value_text(p));
  sh.print(out);
  co_return true;
}

// ------------------------------------------------------------------ numatune

constexpr const char* numa_modes[] = {"strict", "preferred", "interleave", "restrictive"};

awaitable<bool> cmd_numatune(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  covirt::typed_params params;
  if (empty_refused(sh, a, "nodeset")) co_return false;
  if (auto nodeset = a.get("nodeset")) params.push_back({"numa_nodeset", *nodeset});
  if (empty_refused(sh, a, "mode")) co_return false;
  if (auto mode = a.get("mode")) {
    // a name, or a number (virStrToLong_i, any base) for modes newer than virsh
    std::optional<long long> m;
    for (int i = 0; i < 4; ++i)
      if (*mode == numa_modes[i]) m = i;
    if (!m) m = whole_number(*mode, 0, false);
    if (!m || *m < INT_MIN || *m > INT_MAX) {
      sh.error(format("Invalid mode: %s", mode->c_str()));
      co_return false;
    }
    params.push_back({"numa_mode", static_cast<int>(*m)});
  }
  if (!params.empty()) {
    sh.doing("Unable to change numa parameters");
    co_await sh.conn.async_set_numa_parameters(*d, std::move(params), *flags);
    co_return true;
  }
  sh.doing("Unable to get numa parameters");
  auto got = co_await sh.conn.async_get_numa_parameters(*d, *flags);
  std::string out;
  for (const auto& p : got) {
    const int* mode = p.field == "numa_mode" ? std::get_if<int>(&p.value) : nullptr;
    if (mode) out += param_line(p.field, *mode >= 0 && *mode < 4 ? numa_modes[*mode] : "(null)");
    else out += param_line(p.field, typed_value_text(p));
  }
  sh.print(out);
  co_return true;
}

// ------------------------------------------------------------------ emulatorpin

awaitable<bool> cmd_emulatorpin(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  const bool none = !a.has("current") && !a.has("live") && !a.has("config");
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto list = a.get("cpulist");
  if (!list) {
    auto map = co_await sh.conn.async_get_emulator_pin_info(*d, *flags);
    sh.extra("emulator: CPU Affinity\n");
    sh.extra("----------------------------------\n");
    sh.extra("       *: ");
    sh.print(cpu_list(map) + "\n");
    co_return true;
  }
  auto map = parse_cpulist(sh, *list, co_await host_cpus(sh, *d));
  if (!map) co_return false;
  // virsh pins the running domain when no option says otherwise
  co_await sh.conn.async_pin_emulator(*d, *map, none ? covirt::modify::live : *flags);
  co_return true;
}

// ------------------------------------------------------------------ vcpupin

/// vcpupin's query on a driver without the affinity rows: the running vCPUs (virDomainGetVcpus).
awaitable<bool> vcpupin_from_vcpus(shell& sh, const covirt::domain_ref& d, std::optional<unsigned> vcpu) {
  auto vcpus = co_await sh.conn.async_get_vcpus(d);
  if (vcpu && *vcpu >= vcpus.size()) {
    sh.error(format("vcpu %d is out of range of live cpu count %zu", static_cast<int>(*vcpu), vcpus.size()));
    co_return false;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : vcpus)
    if (!vcpu || v.number == *vcpu) rows.push_back({std::to_string(v.number), cpu_list(v.affinity)});
  sh.print(render_table({"VCPU", "CPU Affinity"}, rows, !sh.quiet));
  co_return true;
}

awaitable<bool> cmd_vcpupin(shell& sh, const args& a) {
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  const bool live = a.has("live"), config = a.has("config");
  auto list = a.get("cpulist");
  if (!list && live && config) {
    sh.error("Options --live and --config are mutually exclusive");
    co_return false;
  }
  std::optional<unsigned> vcpu;
  if (a.has("vcpu")) {
    vcpu = uint_option(sh, a, "vcpu");
    if (!vcpu) co_return false;
  }
  if (list && !vcpu) {
    sh.error("vcpupin: Missing vCPU number in pin mode.");
    co_return false;
  }
  auto d = co_await sh.domain(a);
  if (!d) co_return false;

  if (list) {
    auto map = parse_cpulist(sh, *list, co_await host_cpus(sh, *d));
    if (!map) co_return false;
    // Without options virsh calls virDomainPinVcpu (so a read-only connection names it); a
    // driver that has only the flagged call gets that one with no flags.
    if (*flags || a.has("current")) {
      co_await sh.conn.async_pin_vcpu_flags(*d, *vcpu, *map, *flags);
      co_return true;
    }
    bool flagged = false;
    try {
      co_await sh.conn.async_pin_vcpu(*d, *vcpu, *map);
    } catch (const covirt::error& e) {
      if (!is_no_support(e)) throw;
      flagged = true;
    }
    if (flagged) co_await sh.conn.async_pin_vcpu_flags(*d, *vcpu, *map, 0u);
    co_return true;
  }

  // virsh counts the vCPUs of the definition asked for (the maximum), refusing a definition
  // the domain does not have
  const bool active = d->id >= 0;
  if ((*flags & covirt::modify::live) && !active) {
    sh.error("cannot get vcpupin for offline domain");
    co_return false;
  }
  if (*flags & covirt::modify::config) {
    const bool persistent = co_await sh.conn.async_is_persistent(*d);
    if (!persistent) {
      sh.error("cannot get vcpupin for transient domain");
      co_return false;
    }
  }
  std::vector<std::string> maps;
  bool fallback = false;
  try {
    maps = co_await sh.conn.async_get_vcpu_pin_info(*d, *flags);
  } catch (const covirt::error& e) {
    if (!is_no_support(e) || config) throw;
    fallback = true;
  }
  if (fallback) co_return co_await vcpupin_from_vcpus(sh, *d, vcpu);
  if (vcpu && *vcpu >= maps.size()) {
    const bool of_live = live || (!config && active);
    sh.error(format(of_live ? "vcpu %d is out of range of live cpu count %d"
                            : "vcpu %d is out of range of persistent cpu count %d",
                    static_cast<int>(*vcpu), static_cast<int>(maps.size())));
    co_return false;
  }
  std::vector<std::vector<std::string>> rows;
  for (std::size_t i = 0; i < maps.size(); ++i)
    if (!vcpu || i == *vcpu) rows.push_back({std::to_string(i), cpu_list(maps[i])});
  sh.print(render_table({"VCPU", "CPU Affinity"}, rows, !sh.quiet));
  co_return true;
}

}  // namespace

const std::vector<command> tuning_commands = {
    {"schedinfo",
     {dom,
      {"weight", number, false, "weight for XEN_CREDIT", true},
      {"cap", number, false, "cap for XEN_CREDIT", true},
      {"current", boolean, false, "get/set current scheduler info"},
      {"config", boolean, false, "get/set value to be used on next boot"},
      {"live", boolean, false, "get/set value from running domain"},
      {"set", string, false, "parameter=value"}},
     cmd_schedinfo, "show/set scheduler parameters", "Show/Set scheduler parameters."},
    {"memtune",
     {dom,
      {"hard-limit", number, false, "Max memory, as scaled integer (default KiB)"},
      {"soft-limit", number, false, "Memory during contention, as scaled integer (default KiB)"},
      {"swap-hard-limit", number, false, "Max memory plus swap, as scaled integer (default KiB)"},
      {"min-guarantee", number, false, "Min guaranteed memory, as scaled integer (default KiB)"},
      config, live, current},
     cmd_memtune, "Get or set memory parameters",
     "Get or set the current memory parameters for a guest domain.\n"
     "    To get the memory parameters use following command: \n\n"
     "    virsh # memtune <domain>"},
    {"blkiotune",
     {dom,
      {"weight", number, false, "IO Weight"},
      {"device-weights", string, false, "per-device IO Weights, in the form of /path/to/device,weight,..."},
      {"device-read-iops-sec", string, false,
       "per-device read I/O limit per second, in the form of /path/to/device,read_iops_sec,..."},
      {"device-write-iops-sec", string, false,
       "per-device write I/O limit per second, in the form of /path/to/device,write_iops_sec,..."},
      {"device-read-bytes-sec", string, false,
       "per-device bytes read per second, in the form of /path/to/device,read_bytes_sec,..."},
      {"device-write-bytes-sec", string, false,
       "per-device bytes wrote per second, in the form of /path/to/device,write_bytes_sec,..."},
      config, live, current},
     cmd_blkiotune, "Get or set blkio parameters",
     "Get or set the current blkio parameters for a guest domain.\n"
     "    To get the blkio parameters use following command: \n\n"
     "    virsh # blkiotune <domain>"},
    {"numatune",
     {dom,
      {"mode", string, false,
       "NUMA mode, one of strict, preferred and interleave \nor a number from the virDomainNumatuneMemMode enum"},
      {"nodeset", string, false, "NUMA node selections to set"},
      config, live, current},
     cmd_numatune, "Get or set numa parameters",
     "Get or set the current numa parameters for a guest domain.\n"
     "    To get the numa parameters use following command: \n\n"
     "    virsh # numatune <domain>"},
    {"vcpupin",
     {dom, {"vcpu", number, false, "vcpu number"},
      {"cpulist", string, false, "host cpu number(s) to set, or omit option to query"}, config, live, current},
     cmd_vcpupin, "control or query domain vcpu affinity", "Pin domain VCPUs to host physical CPUs."},
    {"emulatorpin",
     {dom, {"cpulist", string, false, "host cpu number(s) to set, or omit option to query"}, config, live, current},
     cmd_emulatorpin, "control or query domain emulator affinity", "Pin domain emulator threads to host physical CPUs."},
};

}  // namespace covirt_sh
