// covirt-sh: the long jobs of "Domain Management": save, restore, migrate, dump and the job
// commands, with virsh's progress bar and Ctrl-C abort.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

// ---------------------------------------------------------------------------------------------
// Long jobs: save, restore, migrate. While the call runs, a second coroutine on the same
// io_context watches it: it polls async_get_job_info for the progress bar (virsh's --verbose,
// "\rLabel: [ 45 %]" on stderr) and turns Ctrl-C into async_abort_job, as virsh does.

/// virsh shows the bar with --verbose; covirt-sh also whenever stderr is a terminal.
bool show_progress(const args& a) { return a.has("verbose") || ::isatty(STDERR_FILENO) == 1; }

/// virshPrintJobProgress: "\rLABEL: [NNN %]" on stderr, stdout flushed first.
void print_progress(std::string_view label, int percent) {
  std::fflush(stdout);
  std::fprintf(stderr, "\r%.*s: [%3d %%]", static_cast<int>(label.size()), label.data(), percent);
  std::fflush(stderr);
}

/// The percentage a running job has done, from the bytes it still has to move; never 100
/// while the job runs (a live guest keeps dirtying pages). nullopt when the job says nothing.
std::optional<int> job_percent(const covirt::job_info& j) {
  if (j.type != covirt::job_type::bounded && j.type != covirt::job_type::unbounded) return std::nullopt;
  if (j.data_total == 0) return std::nullopt;
  std::uint64_t remaining = std::min(j.data_remaining, j.data_total);
  // remaining * 100 / total without overflow for any 64-bit sizes
  long double done = 100.0L - static_cast<long double>(remaining) * 100.0L / static_cast<long double>(j.data_total);
  int p = static_cast<int>(done);
  return std::clamp(p, 0, 99);
}

struct job_watch {
  std::string domain;  ///< whose job (empty: unknown, no polling)
  std::string label;   ///< "Save", "Restore", "Migration"
  bool show = false;   ///< print the progress bar
  bool printed = false;
  int last = -1;
};

/// Runs until cancelled: every 100 ms the job's progress, and Ctrl-C aborts the job.
awaitable<void> watch_job(shell& sh, job_watch& w) {
  auto ex = co_await asio::this_coro::executor;
  if (w.domain.empty()) {  // nothing to follow: wait until the call ends and cancels this
    asio::steady_timer forever(ex, asio::steady_timer::time_point::max());
    co_await forever.async_wait(use_awaitable);
    co_return;
  }
  asio::steady_timer tick(ex);
  asio::signal_set interrupt(ex, SIGINT);
  bool aborted = false;
  for (;;) {
    tick.expires_after(std::chrono::milliseconds(100));
    auto r = co_await (tick.async_wait(asio::as_tuple(use_awaitable)) ||
                       interrupt.async_wait(asio::as_tuple(use_awaitable)));
    if (r.index() == 1 && !aborted) {
      aborted = true;  // a second Ctrl-C is ignored too, while the abort takes effect
      auto [ec] = co_await sh.conn.async_abort_job(w.domain, asio::as_tuple(use_awaitable));
      (void)ec;
    }
    if (!w.show) continue;
    auto [ec, info] = co_await sh.conn.async_get_job_info(w.domain, asio::as_tuple(use_awaitable));
    if (ec) continue;  // not there yet (restore) or gone: the call itself will say
    auto p = job_percent(info);
    if (!p || *p == w.last) continue;
    w.last = *p;
    w.printed = true;
    print_progress(w.label, *p);
  }
}

/// `op`'s value or exception, as a result that never throws: `||` (wait_for_one_success)
/// would otherwise keep waiting for the watcher when the call fails.
template <class T>
using value_or_unit = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
template <class T>
awaitable<std::exception_ptr> captured(awaitable<T> op, std::optional<value_or_unit<T>>& value) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      value.emplace();
    } else {
      value.emplace(co_await std::move(op));
    }
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

/// Runs `op` (a save, restore or migrate call) with a watcher beside it; on success the bar
/// ends with [100 %] and a newline, on failure the bar's line is ended before the error.
template <class T>
awaitable<T> watched(shell& sh, awaitable<T> op, job_watch& w) {
  std::optional<value_or_unit<T>> value;
  // The call always completes (it captures its exception); the watcher never does, and is
  // cancelled then. The watcher starts first, so it is listening when the call ends.
  auto r = co_await (watch_job(sh, w) || captured(std::move(op), value));
  std::exception_ptr failed = std::get<1>(r);
  if (failed) {
    if (w.printed) {
      std::fflush(stdout);
      std::fputs("\n", stderr);
    }
    std::rethrow_exception(failed);
  }
  if (w.show) {
    print_progress(w.label, 100);
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
  if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}

awaitable<bool> cmd_save(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  const std::string& n = a.at("domain");
  const std::string& file = a.at("file");
  job_watch w{d->name, "Save", show_progress(a)};
  sh.doing(format("Failed to save domain '%s' to %s", n.c_str(), file.c_str()));
  co_await watched(sh, sh.conn.async_save(*d, file), w);
  sh.extra(format("\nDomain '%s' saved to %s\n", n.c_str(), file.c_str()));
  co_return true;
}

/// The name of the domain a covirt save file holds (its header: "covirt-save 1 <xml bytes>
/// <offset>\n" and the XML), to follow the restore's job; empty if it cannot tell.
std::string saved_domain_name(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  constexpr std::string_view magic = "covirt-save 1 ";
  unsigned long long xml_len = 0, offset = 0;
  if (line.compare(0, magic.size(), magic) != 0 ||
      std::sscanf(line.c_str() + magic.size(), "%llu %llu", &xml_len, &offset) != 2 || xml_len > (64u << 20))
    return {};
  std::string xml(xml_len, '\0');
  in.read(xml.data(), static_cast<std::streamsize>(xml_len));
  if (static_cast<unsigned long long>(in.gcount()) != xml_len) return {};
  covirt::diagnostics diag;
  auto def = covirt::parse_domain_xml(xml, diag);
  return def ? def->name : std::string();
}

awaitable<bool> cmd_restore(shell& sh, const args& a) {
  const std::string& file = a.at("file");
  job_watch w{saved_domain_name(file), "Restore", show_progress(a)};
  sh.doing(format("Failed to restore domain from %s", file.c_str()));
  co_await watched(sh, sh.conn.async_restore(file), w);
  sh.extra(format("Domain restored from %s\n", file.c_str()));
  co_return true;
}

awaitable<bool> cmd_migrate(shell& sh, const args& a) {
  if (a.has("live") && a.has("offline")) {
    sh.error("Options --live and --offline are mutually exclusive");
    co_return false;
  }
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  covirt::migrate_options opt;
  opt.flags = 0;
  const std::pair<std::string_view, unsigned> bits[] = {
      {"live", covirt::migrate_flags::live}, {"offline", covirt::migrate_flags::offline},
      {"p2p", covirt::migrate_flags::peer2peer}, {"tunnelled", covirt::migrate_flags::tunnelled},
      {"persistent", covirt::migrate_flags::persist_dest},
      {"undefinesource", covirt::migrate_flags::undefine_source}, {"suspend", covirt::migrate_flags::paused},
      {"copy-storage-all", covirt::migrate_flags::non_shared_disk},
      {"copy-storage-inc", covirt::migrate_flags::non_shared_inc},
      {"change-protection", covirt::migrate_flags::change_protection}, {"unsafe", covirt::migrate_flags::unsafe},
      {"compressed", covirt::migrate_flags::compressed}, {"auto-converge", covirt::migrate_flags::auto_converge},
      {"abort-on-error", covirt::migrate_flags::abort_on_error}};
  for (auto [name, bit] : bits)
    if (a.has(name)) opt.flags |= bit;
  if (auto u = a.get("migrateuri")) opt.uri = *u;
  const std::string& desturi = a.at("desturi");

  // The destination is a second connection in this process: covirt's drivers are in-process.
  auto ex = co_await asio::this_coro::executor;
  covirt::connection dest;
  dest = co_await covirt::async_open(ex, desturi, 0u);
  job_watch w{d->name, "Migration", show_progress(a)};
  bool ok = true;
  try {
    co_await watched(sh, sh.conn.async_migrate(*d, dest, opt), w);
  } catch (const covirt::error& e) {
    ok = sh.fail("", e);
  }
  try {
    co_await dest.async_close();
  } catch (const covirt::error&) {
  }
  co_return ok;
}


std::string_view job_type_word(covirt::job_type t) {
  switch (t) {
    case covirt::job_type::none: return "None";
    case covirt::job_type::bounded: return "Bounded";
    case covirt::job_type::unbounded: return "Unbounded";
    case covirt::job_type::completed: return "Completed";
    case covirt::job_type::failed: return "Failed";
    case covirt::job_type::cancelled: return "Cancelled";
  }
  return "unknown";
}

/// covirt's operation names in virsh's words (virDomainJobOperation).
std::string_view job_operation_word(std::string_view op) {
  if (op == "save") return "Save";
  if (op == "restore") return "Restore";
  if (op == "dump") return "Dump";
  if (op == "migration out") return "Outgoing migration";
  if (op == "migration in") return "Incoming migration";
  if (op == "start") return "Start";
  if (op == "snapshot") return "Snapshot";
  if (op == "backup") return "Backup";
  return "Unknown";
}

awaitable<bool> cmd_domjobinfo(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  covirt::job_info j;
  j = co_await sh.conn.async_get_job_info(*d);
  std::string out = format("%-17s %-12s\n", "Job type:", std::string(job_type_word(j.type)).c_str());
  if (j.type == covirt::job_type::bounded || j.type == covirt::job_type::unbounded) {
    out += format("%-17s %-12s\n", "Operation:", std::string(job_operation_word(j.operation)).c_str());
    out += format("%-17s %-12llu ms\n", "Time elapsed:", static_cast<unsigned long long>(j.time_elapsed_ms));
    // covirt's job_info has no estimate of the time left: virsh's line for bounded jobs says 0.
    if (j.type == covirt::job_type::bounded) out += format("%-17s %-12llu ms\n", "Time remaining:", 0ull);
    auto cap = [&](const char* label, std::uint64_t v) {
      auto [x, unit] = pretty_capacity(v);
      out += format("%-17s %-.3lf %s\n", label, x, unit);
    };
    if (j.data_total || j.data_remaining || j.data_processed) {
      cap("Data processed:", j.data_processed);
      cap("Data remaining:", j.data_remaining);
      cap("Data total:", j.data_total);
    }
    if (j.mem_total || j.mem_remaining || j.mem_processed) {
      cap("Memory processed:", j.mem_processed);
      cap("Memory remaining:", j.mem_remaining);
      cap("Memory total:", j.mem_total);
    }
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_domjobabort(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  co_await sh.conn.async_abort_job(*d);
  co_return true;
}

awaitable<bool> cmd_dump(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  const std::string& n = a.at("domain");
  const std::string& file = a.at("file");
  unsigned flags = 0;
  if (a.has("live")) flags |= covirt::dump_flags::live;
  if (a.has("crash")) flags |= covirt::dump_flags::crash;
  if (a.has("bypass-cache")) flags |= covirt::dump_flags::bypass_cache;
  if (a.has("reset")) flags |= covirt::dump_flags::reset;
  if (a.has("memory-only")) flags |= covirt::dump_flags::memory_only;
  sh.doing(format("Failed to core dump domain '%s' to %s", n.c_str(), file.c_str()));
  co_await sh.conn.async_core_dump(*d, file, flags);
  sh.extra(format("\nDomain '%s' dumped to %s\n", n.c_str(), file.c_str()));
  co_return true;
}

}  // namespace

const std::vector<command> jobs_commands = {
    {"save",
     {dom, {"file", data, true, "where to save the data"},
      {"bypass-cache", boolean, false, "avoid file system cache when saving"},
      {"verbose", boolean, false, "display the progress of save"}},
     cmd_save, "save a domain state to a file", "Save the RAM state of a running domain."},
    {"restore",
     {{"file", data, true, "the state to restore"},
      {"bypass-cache", boolean, false, "avoid file system cache when restoring"},
      {"verbose", boolean, false, "covirt: display the progress of restore"}},
     cmd_restore, "restore a domain from a saved state in a file", "Restore a domain."},
    {"migrate",
     {dom,
      {"desturi", data, true,
       "connection URI of the destination host as seen from the client(normal migration) or source(p2p migration)"},
      {"live", boolean, false, "live migration"},
      {"offline", boolean, false, "offline migration"},
      {"p2p", boolean, false, "peer-2-peer migration"},
      {"tunnelled", boolean, false, "tunnelled migration"},
      {"persistent", boolean, false, "persist VM on destination"},
      {"undefinesource", boolean, false, "undefine VM on source"},
      {"suspend", boolean, false, "do not restart the domain on the destination host"},
      {"copy-storage-all", boolean, false, "migration with non-shared storage with full disk copy"},
      {"copy-storage-inc", boolean, false,
       "migration with non-shared storage with incremental copy (same base image shared between source and "
       "destination)"},
      {"change-protection", boolean, false, "prevent any configuration changes to domain until migration ends"},
      {"unsafe", boolean, false, "force migration even if it may be unsafe"},
      {"verbose", boolean, false, "display the progress of migration"},
      {"compressed", boolean, false, "compress repeated pages during live migration"},
      {"auto-converge", boolean, false, "force convergence during live migration"},
      {"abort-on-error", boolean, false, "abort on soft errors during migration"},
      {"migrateuri", string, false, "migration URI, usually can be omitted", true}},
     cmd_migrate, "migrate domain to another host", "Migrate domain to another host.  Add --live for live migration."},
    {"domjobinfo", {dom}, cmd_domjobinfo, "domain job information",
     "Returns information about jobs running on a domain."},
    {"domjobabort", {dom}, cmd_domjobabort, "abort active domain job", "Aborts the currently running domain job"},
    {"dump",
     {dom, {"file", data, true, "where to dump the core"},
      {"live", boolean, false, "perform a live core dump if supported"},
      {"crash", boolean, false, "crash the domain after core dump"},
      {"bypass-cache", boolean, false, "avoid file system cache when dumping"},
      {"reset", boolean, false, "reset the domain after core dump"},
      {"memory-only", boolean, false, "dump domain's memory only"}},
     cmd_dump, "dump the core of a domain to a file for analysis", "Core dump a domain."},
};

}  // namespace covirt_sh
