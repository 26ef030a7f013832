// covirt-sh: virsh's statistics commands of "Domain Monitoring": domstats, dommemstat, domifstat,
// domblkinfo (domblkstat is in monitor.cpp). Output, order of checks and messages are virsh 9.0's.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

/// domstats' group options and their virDomainStatsTypes bits, in virsh's order.
constexpr std::pair<std::string_view, unsigned> stats_groups[] = {
    {"state", covirt::stats_types::state},         {"cpu-total", covirt::stats_types::cpu_total},
    {"balloon", covirt::stats_types::balloon},     {"vcpu", covirt::stats_types::vcpu},
    {"interface", covirt::stats_types::interface}, {"block", covirt::stats_types::block},
    {"perf", covirt::stats_types::perf},           {"iothread", covirt::stats_types::iothread},
    {"memory", covirt::stats_types::memory},       {"dirtyrate", covirt::stats_types::dirtyrate},
    {"vm", covirt::stats_types::vm}};

/// domstats' list filters (virConnectGetAllDomainStatsFlags' first eight bits).
constexpr std::pair<std::string_view, unsigned> stats_filters[] = {
    {"list-active", covirt::list_flags::active},         {"list-inactive", covirt::list_flags::inactive},
    {"list-persistent", covirt::list_flags::persistent}, {"list-transient", covirt::list_flags::transient},
    {"list-running", covirt::list_flags::running},       {"list-paused", covirt::list_flags::paused},
    {"list-shutoff", covirt::list_flags::shutoff},       {"list-other", covirt::list_flags::other}};

awaitable<bool> cmd_domstats(shell& sh, const args& a) {
  unsigned stats = 0, flags = 0;
  for (auto [name, bit] : stats_groups)
    if (a.has(name)) stats |= bit;
  for (auto [name, bit] : stats_filters)
    if (a.has(name)) flags |= bit;
  if (a.has("enforce")) flags |= covirt::stats_flags::enforce;
  if (a.has("backing")) flags |= covirt::stats_flags::backing;
  if (a.has("nowait")) flags |= covirt::stats_flags::nowait;
  // Each domain named is looked up first, as virsh does; the first that is not found ends it.
  std::vector<covirt::domain_key> keys;
  for (const auto& name : a.all("domain")) {
    args one;
    one.set("domain", name);
    auto d = co_await sh.domain(one);
    if (!d) co_return false;
    keys.emplace_back(*d);
  }
  sh.doing("");
  auto records = co_await sh.conn.async_get_all_domain_stats(keys, stats, flags);
  // Records one after another with a blank line between them (the run loop ends the last).
  std::string out;
  for (const auto& r : records) {
    if (!out.empty()) out += "\n";
    out += format("Domain: '%s'\n", r.dom.name.c_str());
    for (const auto& p : r.params) out += format("  %s=%s\n", p.field.c_str(), typed_value_text(p).c_str());
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_dommemstat(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  sh.doing(format("Failed to get memory statistics for domain %s", d->name.c_str()));
  auto stats = co_await sh.conn.async_memory_stats(*d, 0u);
  std::string out;
  for (const auto& s : stats) {
    std::string_view name = covirt::memory_stat_name(s.tag);
    if (!name.empty()) out += format("%s %llu\n", std::string(name).c_str(), static_cast<unsigned long long>(s.value));
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_domifstat(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  const std::string& dev = a.at("interface");
  sh.doing(format("Failed to get interface stats %s %s", a.at("domain").c_str(), dev.c_str()));
  auto st = co_await sh.conn.async_interface_stats(*d, dev);
  const std::pair<const char*, std::int64_t> fields[] = {
      {"rx_bytes", st.rx_bytes}, {"rx_packets", st.rx_packets}, {"rx_errs", st.rx_errs}, {"rx_drop", st.rx_drop},
      {"tx_bytes", st.tx_bytes}, {"tx_packets", st.tx_packets}, {"tx_errs", st.tx_errs}, {"tx_drop", st.tx_drop}};
  std::string out;
  for (auto [name, v] : fields)
    if (v >= 0) out += format("%s %s %lld\n", dev.c_str(), name, static_cast<long long>(v));
  sh.print(out);
  co_return true;
}

/// cmdDomblkinfoGet: the three figures as text, "-" each when all are zero.
std::array<std::string, 3> block_info_text(const covirt::block_info& b, bool human) {
  if (b.capacity == 0 && b.allocation == 0 && b.physical == 0) return {"-", "-", "-"};
  auto one = [&](std::uint64_t v) {
    if (!human) return format("%llu", static_cast<unsigned long long>(v));
    auto [x, unit] = pretty_capacity(v);
    return format("%.3lf %s", x, unit);
  };
  return {one(b.capacity), one(b.allocation), one(b.physical)};
}

awaitable<bool> cmd_domblkinfo(shell& sh, const args& a) {
  bool all = a.has("all"), human = a.has("human");
  if (all && a.has("device")) {
    sh.error("Options --all and --device are mutually exclusive");
    co_return false;
  }
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  if (!all && !a.has("device")) {
    sh.error("command 'domblkinfo' requires <device> option");
    co_return false;
  }
  sh.doing("");
  if (!all) {
    auto info = co_await sh.conn.async_get_block_info(*d, a.at("device"), 0u);
    auto t = block_info_text(info, human);
    sh.print(format("%-15s %s\n%-15s %s\n%-15s %s\n", "Capacity:", t[0].c_str(), "Allocation:", t[1].c_str(),
                    "Physical:", t[2].c_str()));
    co_return true;
  }
  // --all: every disk of the live definition; one without a <source> has "-" everywhere.
  std::string xml = co_await sh.conn.async_get_xml(*d, 0u);
  covirt::diagnostics diag;
  auto def = covirt::parse_domain_xml(xml, diag);
  if (!def) throw covirt::error(def.error(), std::string(diag.message()));
  std::vector<std::vector<std::string>> rows;
  for (const auto& disk : def->devices.disks) {
    std::array<std::string, 3> t{"-", "-", "-"};
    if (disk.source) {
      auto info = co_await sh.conn.async_get_block_info(*d, disk.target_dev, 0u);
      t = block_info_text(info, human);
    }
    rows.push_back({disk.target_dev, t[0], t[1], t[2]});
  }
  sh.print(render_table({"Target", "Capacity", "Allocation", "Physical"}, rows, true));
  co_return true;
}

}  // namespace

const std::vector<command> stats_commands = {
    {"domstats",
     {{"state", boolean, false, "report domain state"},
      {"cpu-total", boolean, false, "report domain physical cpu usage"},
      {"balloon", boolean, false, "report domain balloon statistics"},
      {"vcpu", boolean, false, "report domain virtual cpu information"},
      {"interface", boolean, false, "report domain network interface information"},
      {"block", boolean, false, "report domain block device statistics"},
      {"perf", boolean, false, "report domain perf event statistics"},
      {"iothread", boolean, false, "report domain IOThread information"},
      {"memory", boolean, false, "report domain memory usage"},
      {"dirtyrate", boolean, false, "report domain dirty rate information"},
      {"vm", boolean, false, "report hypervisor-specific statistics"},
      {"list-active", boolean, false, "list only active domains"},
      {"list-inactive", boolean, false, "list only inactive domains"},
      {"list-persistent", boolean, false, "list only persistent domains"},
      {"list-transient", boolean, false, "list only transient domains"},
      {"list-running", boolean, false, "list only running domains"},
      {"list-paused", boolean, false, "list only paused domains"},
      {"list-shutoff", boolean, false, "list only shutoff domains"},
      {"list-other", boolean, false, "list only domains in other states"},
      {"raw", boolean, false, "do not pretty-print the fields"},
      {"enforce", boolean, false, "enforce requested stats parameters"},
      {"backing", boolean, false, "add backing chain information to block stats"},
      {"nowait", boolean, false, "report only stats that are accessible instantly"},
      {"domain", argv, false, "list of domains to get stats for"}},
     cmd_domstats, "get statistics about one or multiple domains",
     "Gets statistics about one or more (or all) domains"},
    {"dommemstat", {dom, config, live, current}, cmd_dommemstat, "get memory statistics for a domain",
     "Get memory statistics for a running domain."},
    {"domifstat", {dom, {"interface", data, true, "interface device specified by name or MAC Address"}},
     cmd_domifstat, "get network interface stats for a domain", "Get network interface stats for a running domain."},
    {"domblkinfo",
     {dom, {"device", string, false, "block device", false, true},
      {"human", boolean, false, "Human readable output"},
      {"all", boolean, false, "display all block devices info"}},
     cmd_domblkinfo, "domain block device size information", "Get block device size info for a domain."},
};

}  // namespace covirt_sh
