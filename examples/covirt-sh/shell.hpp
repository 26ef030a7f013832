// covirt-sh's shared parts: the command table's types, the option parser, virsh's output
// rules and the shell (the connection and its lookups). Each command group (virsh's "help
// keyword") is one file beside this one with its own table; shell.cpp joins them for help.
#pragma once

#include <covirt/config.hpp>
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>
#include <covirt/qemu/argv.hpp>
#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/types.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <unistd.h>

namespace covirt_sh {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

/// "0.1.0" from covirt's version number, as virsh prints libvirt's.
inline std::string version_text(std::uint64_t v) {
  return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." + std::to_string(v % 1000);
}
inline const std::string covirt_version = version_text(covirt::lib_version());

std::string format(const char* fmt, auto... args) {
  int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<std::size_t>(n), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Command options and the parser shared by every command (virsh's vshCommandParse rules).

/// argv: every positional word left (virsh's VSH_OT_ARGV, "[<domain>]..."), read with args::all.
enum class opt_type { boolean, data, string, number, argv };

struct opt_spec {
  std::string_view name;
  opt_type type = opt_type::boolean;
  bool required = false;
  std::string_view help;
  bool named_only = false;  // non-boolean options are positional too, in order, unless this is set
  bool help_as_named = false;  // positional too, but help shows it as "--name <type>", as virsh does
};

/// The options one command was given.
class args {
public:
  bool has(std::string_view n) const { return values_.contains(std::string(n)); }
  std::optional<std::string> get(std::string_view n) const {
    auto it = values_.find(std::string(n));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  const std::string& at(std::string_view n) const { return values_.at(std::string(n)); }
  void set(std::string_view n, std::string v) { values_[std::string(n)] = std::move(v); }
  /// An argv option's words, in order (empty when it was not given).
  std::vector<std::string> all(std::string_view n) const {
    auto it = lists_.find(n);
    return it == lists_.end() ? std::vector<std::string>{} : it->second;
  }
  void append(std::string_view n, std::string v) {
    values_.try_emplace(std::string(n), v);
    lists_[std::string(n)].push_back(std::move(v));
  }

private:
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, std::vector<std::string>, std::less<>> lists_;
};

class shell;
/// A command: true when it succeeded. A covirt::error it throws is printed by the run loop as
/// virsh prints a failed call's error (one "error: ..." line) and the command counts as failed.
using handler = awaitable<bool> (*)(shell&, const args&);

struct command {
  std::string_view name;
  std::vector<opt_spec> opts;
  handler run;
  std::string_view summary;
  std::string_view description;
};

/// One of virsh's command groups, as `help` lists them.
struct command_group {
  std::string_view title;    // "Domain Management"
  std::string_view keyword;  // "domain", for `help domain`
  std::vector<command> commands;
};

/// The options several commands share.
namespace common_opts {
inline constexpr opt_spec dom{"domain", opt_type::data, true, "domain name, id or uuid"};
inline constexpr opt_spec net{"network", opt_type::data, true, "network name or uuid"};
inline constexpr opt_spec config{"config", opt_type::boolean, false, "affect next boot"};
inline constexpr opt_spec live{"live", opt_type::boolean, false, "affect running domain"};
inline constexpr opt_spec current{"current", opt_type::boolean, false, "affect current domain"};
}  // namespace common_opts

// Each group's table, in its own file.
extern const std::vector<command> domain_commands;   // domain.cpp
extern const std::vector<command> jobs_commands;     // jobs.cpp (also "Domain Management")
extern const std::vector<command> tuning_commands;   // tuning.cpp (also "Domain Management")
extern const std::vector<command> monitor_commands;  // monitor.cpp
extern const std::vector<command> stats_commands;    // stats.cpp (also "Domain Monitoring")
extern const std::vector<command> events_commands;   // monitor.cpp
extern const std::vector<command> host_commands;     // host.cpp
extern const std::vector<command> network_commands;  // network.cpp
extern const std::vector<command> shell_commands;    // shell.cpp

/// virsh's groups in virsh's order, each sorted by name.
const std::vector<command_group>& command_groups();
const command* find_command(std::string_view name);
/// One group as virsh's help lists it: " Title (help keyword 'kw')" + colon, then its commands.
std::string group_text(const command_group& g, std::string_view colon);

struct parsed_command {
  const command* cmd;
  args a;
};

/// Parses one command's tokens; errors are appended to `errors` (virsh's words, no "error: ").
std::optional<parsed_command> parse_command(const std::vector<std::string>& tokens, std::vector<std::string>& errors);
/// Splits one script string into commands and their tokens (quotes, backslashes, ';', '#').
std::vector<std::vector<std::string>> tokenize(std::string_view s);

/// virsh's table layout (vshTable).
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         bool with_header);

// Values as virsh reads them.
std::optional<long long> parse_int(std::string_view s);
/// virUUIDParse: 32 hex digits, hyphens allowed between them; the canonical form back.
std::optional<std::string> parse_uuid(std::string_view s);
/// virsh's scaled integers for a size in KiB: the KiB value, or the error lines.
std::variant<std::uint64_t, std::vector<std::string>> parse_size_kib(std::string_view text, std::string_view opt);
inline std::string_view yes_no(bool b) { return b ? "yes" : "no"; }
/// vshGetTypedParamValue: a typed parameter's value as virsh prints it.
std::string typed_value_text(const covirt::typed_param& p);
/// vshPrettyCapacity: the value in the largest binary unit below 1024 of it.
std::pair<double, const char*> pretty_capacity(std::uint64_t v);
/// A FILE argument's contents; throws std::runtime_error naming the file.
std::string read_file(const std::string& path);

/// virsh event's line for one lifecycle event.
std::string event_line(const covirt::domain_event& ev, bool timestamp);

/// A background event listener (event --background).
struct listener {
  covirt::event_stream stream;
  bool timestamp = false;
  bool waiting = false;
  bool finished = false;
  int count = 0;
};

/// The shell: the connection, the output rules, lookups.
class shell {
public:
  covirt::connection conn;
  bool quiet = false;

  /// vshPrint: always.
  void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }
  /// vshPrintExtra: not with -q.
  void extra(std::string_view s) {
    if (!quiet) print(s);
  }
  /// vshError: "error: ..." on stderr.
  void error(std::string_view s) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %.*s\n", static_cast<int>(s.size()), s.data());
  }
  /// The two lines of a failed call: what we were doing, then the library's error.
  bool fail(std::string_view what, const covirt::error& e) {
    if (!what.empty()) error(what);
    error(e.what());
    return false;
  }

  /// What the running command is doing, for the line virsh prints before a failed call's error
  /// ("failed to get hostname"); empty: the error line alone. The run loop clears it before
  /// each command and prints it when the command throws covirt::error.
  void doing(std::string what) { doing_ = std::move(what); }
  const std::string& doing() const noexcept { return doing_; }

  /// A domain by id, UUID or name, in virsh's order; prints virsh's error when none matches.
  awaitable<std::optional<covirt::domain_ref>> domain(const args& a, std::string_view opt = "domain");
  /// A network by UUID or name, as virsh; prints both error lines when none matches.
  awaitable<std::optional<covirt::network_ref>> network(const args& a, std::string_view opt = "network");

  /// Lets background listeners print what the last command caused before the next one runs.
  awaitable<void> settle();
  void start_listener(covirt::event_stream s, bool timestamp);
  /// Ends the background listeners (end of the script) after they printed what is queued.
  awaitable<void> stop_listeners();

private:
  static awaitable<void> run_listener(shell* sh, std::shared_ptr<listener> l);

  std::vector<std::shared_ptr<listener>> listeners_;
  std::string doing_;
};

/// --config/--live/--current as virsh checks them (domain.cpp); nullopt after printing the error.
std::optional<unsigned> impact_flags(shell& sh, const args& a);
/// A 'y'/'-' map as virsh prints a CPU list: "0-3,6" (domain.cpp).
std::string cpu_list(std::string_view map);

/// list and net-list with --name and/or --uuid: one line each ("UUID NAME" with both); false
/// when neither option was given (the caller prints its table).
template <class Refs>
bool print_names(shell& sh, const args& a, const Refs& refs) {
  if (!a.has("name") && !a.has("uuid")) return false;
  std::string out;
  for (const auto& r : refs) {
    if (a.has("uuid") && a.has("name")) out += r.uuid + " " + r.name + "\n";
    else out += (a.has("uuid") ? r.uuid : r.name) + "\n";
  }
  sh.print(out);
  return true;
}

/// define, create, net-define: the document of --file given to `call` (an awaitable returning a
/// domain or network reference), with virsh's line on failure (`failed`, of the file) and on
/// success (`done`, of the name and the file).
template <class Call>
awaitable<bool> from_file(shell& sh, const args& a, const char* failed, Call call, const char* done) {
  const std::string& file = a.at("file");
  std::string xml = read_file(file);
  sh.doing(format(failed, file.c_str()));
  auto made = co_await call(std::move(xml));
  sh.extra(format(done, made.name.c_str(), file.c_str()));
  co_return true;
}

/// virsh's commands that act on one domain or network and say so in one line (destroy,
/// net-start, ...): the call on what the lookup found, the line printed when it succeeded and
/// the one before the error when it failed (both get the name as given). A domain is passed on
/// by its ref, so by UUID: the domain the lookup saw, not another defined since under its name.
template <class Ref>
struct one_line_op {
  awaitable<void> (*call)(covirt::connection&, const Ref&);
  const char* done;
  const char* failed;
};

inline const covirt::domain_ref& op_key(const covirt::domain_ref& d) { return d; }
inline const std::string& op_key(const covirt::network_ref& n) { return n.name; }
/// The call of a one_line_op: `COVIRT_SH_CALL(async_destroy)`.
#define COVIRT_SH_CALL(api) [](covirt::connection& c, const auto& obj) { return c.api(op_key(obj)); }

/// The handler of entry I of a table of one_line_ops.
template <const auto& Ops, std::size_t I>
awaitable<bool> run_one_line(shell& sh, const args& a) {
  const auto& op = Ops[I];
  constexpr bool domain = std::is_same_v<std::decay_t<decltype(op)>, one_line_op<covirt::domain_ref>>;
  const char* opt = domain ? "domain" : "network";
  auto find = [&] {
    if constexpr (domain) return sh.domain(a);
    else return sh.network(a);
  };
  auto obj = co_await find();
  if (!obj) co_return false;
  const std::string& given = a.at(opt);
  sh.doing(format(op.failed, given.c_str()));
  co_await op.call(sh.conn, *obj);
  sh.extra(format(op.done, given.c_str()));
  co_return true;
}

}  // namespace covirt_sh
