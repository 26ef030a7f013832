// covirt-sh: virsh's "Domain Monitoring" (list, dominfo, domstate, domblkstat) and "Domain Events"
// (event) commands.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

/// Sorted like virsh: running domains by id, then the others by name.
void sort_domains(std::vector<covirt::domain_ref>& v) {
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    bool aa = a.id >= 0, ba = b.id >= 0;
    if (aa && ba) return a.id < b.id;
    if (aa != ba) return aa;
    return a.name < b.name;
  });
}

awaitable<bool> cmd_list(shell& sh, const args& a) {
  unsigned flags = 0;
  if (a.has("all")) flags |= covirt::list_flags::active | covirt::list_flags::inactive;
  else if (a.has("inactive")) flags |= covirt::list_flags::inactive;
  else flags |= covirt::list_flags::active;
  const std::pair<std::string_view, unsigned> filters[] = {
      {"persistent", covirt::list_flags::persistent}, {"transient", covirt::list_flags::transient},
      {"autostart", covirt::list_flags::autostart},   {"no-autostart", covirt::list_flags::no_autostart},
      {"state-running", covirt::list_flags::running}, {"state-paused", covirt::list_flags::paused},
      {"state-shutoff", covirt::list_flags::shutoff}, {"state-other", covirt::list_flags::other}};
  for (auto [name, bit] : filters)
    if (a.has(name)) flags |= bit;
  std::vector<covirt::domain_ref> doms;
  sh.doing("Failed to list domains");
  doms = co_await sh.conn.async_list_domains(flags);
  sort_domains(doms);
  if (print_names(sh, a, doms)) co_return true;
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : doms) {
    std::string state;
    try {
      state = std::string(covirt::to_string((co_await sh.conn.async_get_state(d)).state));
    } catch (const covirt::error&) {
      continue;  // gone meanwhile: virsh skips it too
    }
    rows.push_back({d.id >= 0 ? std::to_string(d.id) : "-", d.name, state});
  }
  sh.print(render_table({"Id", "Name", "State"}, rows, !sh.quiet));
  co_return true;
}

awaitable<bool> cmd_dominfo(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto line = [](std::string_view label, std::string_view value) {
    return format("%-15s %s\n", std::string(label).c_str(), std::string(value).c_str());
  };
  std::string out;
  out += line("Id:", d->id >= 0 ? std::to_string(d->id) : "-");
  out += line("Name:", d->name);
  out += line("UUID:", d->uuid);
  try {
    out += line("OS Type:", co_await sh.conn.async_get_os_type(*d));
  } catch (const covirt::error&) {
  }
  bool ok = true;
  try {
    auto info = co_await sh.conn.async_get_info(*d);
    out += line("State:", covirt::to_string(info.state));
    out += line("CPU(s):", std::to_string(info.nr_virt_cpu));
    if (info.cpu_time_ns != 0)
      out += format("%-15s %.1lfs\n", "CPU time:", static_cast<double>(info.cpu_time_ns) / 1000000000.0);
    out += line("Max memory:", info.max_mem_kib == UINT_MAX ? std::string("no limit")
                                                              : std::to_string(info.max_mem_kib) + " KiB");
    out += line("Used memory:", std::to_string(info.memory_kib) + " KiB");
  } catch (const covirt::error&) {
    ok = false;
  }
  try {
    out += line("Persistent:", yes_no(co_await sh.conn.async_is_persistent(*d)));
  } catch (const covirt::error&) {
    out += line("Persistent:", "unknown");
  }
  try {
    out += line("Autostart:", co_await sh.conn.async_get_autostart(*d) ? "enable" : "disable");
  } catch (const covirt::error&) {
  }
  // covirt has no managed save, so there is never a managed save image.
  out += line("Managed save:", "no");
  sh.print(out);
  // The Security lines, as virsh: none when the driver has no security model (no_support) or
  // its model is empty; the label only when the domain has one (it runs). Other errors fail.
  covirt::security_model model;
  bool has_model = true;
  try {
    model = co_await sh.conn.async_node_get_security_model();
  } catch (const covirt::error& e) {
    if (e.code() != covirt::errc::no_support) throw;
    has_model = false;
  }
  if (!has_model || model.model.empty()) co_return ok;
  out = line("Security model:", model.model) + line("Security DOI:", model.doi);
  sh.print(out);
  auto label = co_await sh.conn.async_get_security_label(*d);
  if (!label.label.empty())
    sh.print(format("%-15s %s (%s)\n", "Security label:", label.label.c_str(), label.enforcing ? "enforcing" : "permissive"));
  co_return ok;
}

awaitable<bool> cmd_domstate(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto st = co_await sh.conn.async_get_state(*d);
  if (a.has("reason"))
    sh.print(format("%s (%s)\n", std::string(covirt::to_string(st.state)).c_str(),
                    std::string(covirt::reason_string(st.state, st.reason)).c_str()));
  else
    sh.print(std::string(covirt::to_string(st.state)) + "\n");
  co_return true;
}

awaitable<bool> cmd_domblkstat(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  std::string dev = a.get("device").value_or("");
  bool human = a.has("human");
  sh.doing(format("Failed to get block stats %s %s", a.at("domain").c_str(), dev.c_str()));
  auto st = co_await sh.conn.async_block_stats(*d, dev);
  struct field { const char* name; const char* human; long long v; };
  const field fields[] = {{"rd_req", "number of read operations:", st.rd_req},
                          {"rd_bytes", "number of bytes read:", st.rd_bytes},
                          {"wr_req", "number of write operations:", st.wr_req},
                          {"wr_bytes", "number of bytes written:", st.wr_bytes},
                          {"errs", "error count:", st.errs}};
  if (human) sh.print(format("Device: %s\n", dev.c_str()));
  for (const auto& f : fields) {
    if (f.v < 0) continue;
    if (human) sh.print(format(" %-31s %lld\n", f.human, f.v));
    else sh.print(format("%s %s %lld\n", dev.c_str(), f.name, f.v));
  }
  co_return true;
}

// ---------------------------------------------------------------------------------------------
// Events.

// virsh's event names; covirt delivers lifecycle events only.
constexpr std::string_view virsh_events[] = {
    "lifecycle", "reboot", "rtc-change", "watchdog", "io-error", "graphics", "io-error-reason", "control-error",
    "block-job", "disk-change", "tray-change", "pm-wakeup", "pm-suspend", "balloon-change", "pm-suspend-disk",
    "device-removed", "block-job-2", "tunable", "agent-lifecycle", "device-added", "migration-iteration",
    "job-completed", "device-removal-failed", "metadata-change", "block-threshold", "memory-failure",
    "memory-device-size-change"};

awaitable<bool> cmd_event(shell& sh, const args& a) {
  if (a.has("list")) {
    sh.print("lifecycle\n");
    co_return true;
  }
  if (!a.has("all") && !a.has("event")) {
    sh.error("one of --list, --all, or --event <type> is required");
    co_return false;
  }
  if (auto ev = a.get("event"); ev && *ev != "lifecycle") {
    if (std::find(std::begin(virsh_events), std::end(virsh_events), *ev) == std::end(virsh_events))
      sh.error(format("unknown event type %s", ev->c_str()));
    else
      sh.error(format("event type '%s' is not supported by covirt", ev->c_str()));
    co_return false;
  }
  std::optional<long long> timeout;
  if (auto t = a.get("timeout")) {
    timeout = parse_int(*t);
    if (!timeout || *timeout <= 0 || *timeout > INT_MAX / 1000) {
      sh.error(format("invalid timeout value '%s'", t->c_str()));
      co_return false;
    }
  }
  std::string filter;
  if (a.has("domain")) {
    auto d = co_await sh.domain(a);
    if (!d) co_return false;
    filter = d->name;
  }
  bool timestamp = a.has("timestamp");
  covirt::event_stream stream = sh.conn.subscribe(filter);
  if (a.has("background")) {
    sh.start_listener(std::move(stream), timestamp);
    co_return true;
  }

  // What the script printed so far is out before the wait: whoever reads the output (a person,
  // a test) sees the earlier commands' lines while the loop listens.
  std::fflush(stdout);
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer deadline(ex);
  if (timeout) deadline.expires_after(std::chrono::seconds(*timeout));
  else deadline.expires_at(asio::steady_timer::time_point::max());
  asio::signal_set interrupt(ex, SIGINT);
  int count = 0;
  for (;;) {
    auto r = co_await (stream.async_next(asio::as_tuple(use_awaitable)) ||
                       deadline.async_wait(asio::as_tuple(use_awaitable)) ||
                       interrupt.async_wait(asio::as_tuple(use_awaitable)));
    if (r.index() == 1) {
      sh.print("event loop timed out\n");
      break;
    }
    if (r.index() == 2) {
      sh.print("event loop interrupted\n");
      break;
    }
    auto [ec, ev] = std::get<0>(std::move(r));
    if (ec) break;  // the connection closed
    ++count;
    sh.print(event_line(ev, timestamp));
    std::fflush(stdout);
    if (!a.has("loop")) break;
  }
  sh.print(format("events received: %d\n", count));
  co_return count > 0;
}

}  // namespace

const std::vector<command> monitor_commands = {
    {"list",
     {{"inactive", boolean, false, "list inactive domains"},
      {"all", boolean, false, "list inactive & active domains"},
      {"transient", boolean, false, "list transient domains"},
      {"persistent", boolean, false, "list persistent domains"},
      {"autostart", boolean, false, "list domains with autostart enabled"},
      {"no-autostart", boolean, false, "list domains with autostart disabled"},
      {"state-running", boolean, false, "list domains in running state"},
      {"state-paused", boolean, false, "list domains in paused state"},
      {"state-shutoff", boolean, false, "list domains in shutoff state"},
      {"state-other", boolean, false, "list domains in other states"},
      {"uuid", boolean, false, "list uuid's only"},
      {"name", boolean, false, "list domain names only"}},
     cmd_list, "list domains", "Returns list of domains."},
    {"dominfo", {dom}, cmd_dominfo, "domain information", "Returns basic information about the domain."},
    {"domstate", {dom, {"reason", boolean, false, "also print reason for the state"}}, cmd_domstate, "domain state",
     "Returns state about a domain."},
    {"domblkstat",
     {dom, {"device", data, false, "block device"}, {"human", boolean, false, "print a more human readable output"}},
     cmd_domblkstat, "get device block stats for a domain", "Get device block stats for a running domain."},
};


const std::vector<command> events_commands = {
    {"event",
     {{"domain", string, false, "filter by domain name, id or uuid"},
      {"event", string, false, "which event type to wait for"},
      {"all", boolean, false, "wait for all events instead of just one type"},
      {"loop", boolean, false, "loop until timeout or interrupt, rather than one-shot"},
      {"timeout", number, false, "timeout seconds", true},
      {"list", boolean, false, "list valid event types"},
      {"timestamp", boolean, false, "show timestamp for each printed event"},
      {"background", boolean, false, "covirt: print events while the following commands run"}},
     cmd_event, "Domain Events",
     "List event types, or wait for domain events to occur. With --background (covirt), listen while "
     "the rest of the script runs."},
};

}  // namespace covirt_sh
