// covirt-sh: a virsh-like command-line tool written on covirt::connection (public API only).
//
// One io_context, one connection, every command a coroutine. The script ("cmd args; cmd args",
// one quoted argument or several argv items) is parsed in full first, as virsh does, then run in
// order; a failing command prints virsh's error lines and the next one runs. The exit status is
// the last command's, as virsh's is.
//
// Beyond virsh: `event --background` starts the event listener as a coroutine that prints events
// while the following commands of the same script run, and stops at the end of the script.
// save, restore and migrate show virsh's progress bar ("\rSave: [ 45 %]" on stderr) with --verbose
// and also whenever stderr is a terminal; restore takes --verbose too. `migrate` opens DESTURI as
// a second connection in this process (covirt's drivers run in-process).
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

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

// The meson project version; covirt has no version header yet.
// "0.1.0" from covirt's version number, as virsh prints libvirt's.
std::string version_text(std::uint64_t v) {
  return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." + std::to_string(v % 1000);
}
const std::string covirt_version = version_text(covirt::lib_version());

std::string format(const char* fmt, auto... args) {
  int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<std::size_t>(n), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Command options and the parser shared by every command (virsh's vshCommandParse rules).

enum class opt_type { boolean, data, string, number };

struct opt_spec {
  std::string_view name;
  opt_type type = opt_type::boolean;
  bool required = false;
  std::string_view help;
  bool named_only = false;  // non-boolean options are positional too, in order, unless this is set
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

private:
  std::map<std::string, std::string, std::less<>> values_;
};

class shell;
using handler = awaitable<bool> (*)(shell&, const args&);

struct command {
  std::string_view name;
  std::vector<opt_spec> opts;
  handler run;
  std::string_view summary;
  std::string_view description;
};

const std::vector<command>& commands();

const command* find_command(std::string_view name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

struct parsed_command {
  const command* cmd;
  args a;
};

std::string_view type_word(opt_type t) { return t == opt_type::number ? "number" : "string"; }

/// Parses one command's tokens; errors are appended to `errors` (virsh's words, no "error: ").
std::optional<parsed_command> parse_command(const std::vector<std::string>& tokens, std::vector<std::string>& errors) {
  const command* cmd = find_command(tokens.front());
  if (!cmd) {
    errors.push_back(format("unknown command: '%s'", tokens.front().c_str()));
    return std::nullopt;
  }
  parsed_command pc{cmd, {}};
  bool data_only = false;
  auto lookup = [&](std::string_view n) -> const opt_spec* {
    for (const auto& o : cmd->opts)
      if (o.name == n) return &o;
    return nullptr;
  };
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    if (!data_only && tok == "--") {
      data_only = true;
      continue;
    }
    if (!data_only && tok.size() > 2 && tok.starts_with("--")) {
      std::string name = tok.substr(2);
      std::optional<std::string> inline_value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      const opt_spec* o = lookup(name);
      if (!o) {
        errors.push_back(format("command '%s' doesn't support option --%s", std::string(cmd->name).c_str(),
                                name.c_str()));
        return std::nullopt;
      }
      if (pc.a.has(o->name)) {
        errors.push_back(format("option --%s already seen", name.c_str()));
        return std::nullopt;
      }
      if (o->type == opt_type::boolean) {
        if (inline_value) {
          errors.push_back(format("invalid '=' after option --%s", name.c_str()));
          return std::nullopt;
        }
        pc.a.set(o->name, "");
      } else if (inline_value) {
        pc.a.set(o->name, *inline_value);
      } else if (i + 1 < tokens.size()) {
        pc.a.set(o->name, tokens[++i]);
      } else {
        errors.push_back(format("expected syntax: --%s <%s>", name.c_str(), std::string(type_word(o->type)).c_str()));
        return std::nullopt;
      }
      continue;
    }
    const opt_spec* target = nullptr;
    for (const auto& o : cmd->opts)
      if (o.type != opt_type::boolean && !o.named_only && !pc.a.has(o.name)) {
        target = &o;
        break;
      }
    if (!target) {
      errors.push_back(format("unexpected data '%s'", tok.c_str()));
      return std::nullopt;
    }
    pc.a.set(target->name, tok);
  }
  bool missing = false;
  for (const auto& o : cmd->opts)
    if (o.required && !pc.a.has(o.name)) {
      missing = true;
      errors.push_back(o.type == opt_type::data
                           ? format("command '%s' requires <%s> option", std::string(cmd->name).c_str(),
                                    std::string(o.name).c_str())
                           : format("command '%s' requires --%s option", std::string(cmd->name).c_str(),
                                    std::string(o.name).c_str()));
    }
  if (missing) return std::nullopt;
  return pc;
}

/// Splits one script string into commands and their tokens (quotes, backslashes, ';', '#').
std::vector<std::vector<std::string>> tokenize(std::string_view s) {
  std::vector<std::vector<std::string>> out(1);
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (c == ';' || c == '\n') {
      out.emplace_back();
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    std::string tok;
    char quote = 0;
    for (; i < s.size(); ++i) {
      c = s[i];
      if (quote) {
        if (c == quote) quote = 0;
        else if (c == '\\' && quote == '"' && i + 1 < s.size()) tok += s[++i];
        else tok += c;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '\\' && i + 1 < s.size()) {
        tok += s[++i];
      } else if (c == ' ' || c == '\t' || c == ';' || c == '\n') {
        break;
      } else {
        tok += c;
      }
    }
    out.back().push_back(std::move(tok));
  }
  std::erase_if(out, [](const auto& v) { return v.empty(); });
  return out;
}

// ---------------------------------------------------------------------------------------------
// virsh's table layout (vshTable): " cell" then padding to the column width plus two spaces,
// the last cell unpadded; a dashed line of sum(width + 3) under the header. Without a header
// (-q) the widths come from the rows alone.

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         bool with_header) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  };
  if (with_header) measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      out += ' ';
      out += r[i];
      if (i + 1 < r.size()) out.append(width[i] - r[i].size() + 2, ' ');
    }
    out += '\n';
  };
  if (with_header) {
    line(header);
    for (std::size_t w : width) out.append(w + 3, '-');
    out += '\n';
  }
  for (const auto& r : rows) line(r);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Values as virsh reads them.

std::optional<long long> parse_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string str(s);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(str.c_str(), &end, 10);
  if (errno || *end != '\0' || end == str.c_str()) return std::nullopt;
  return v;
}

/// virUUIDParse: 32 hex digits, hyphens allowed between them; the canonical form back.
std::optional<std::string> parse_uuid(std::string_view s) {
  std::string hex;
  for (char c : s) {
    if (c == '-') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.size() != 32 || s.front() == '-') return std::nullopt;
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

/// virsh's scaled integers (vshCommandOptScaledInt + virScaleInteger) for a size in KiB.
/// Returns the KiB value, or the error lines.
std::variant<std::uint64_t, std::vector<std::string>> parse_size_kib(std::string_view text, std::string_view opt) {
  auto malformed = format("Scaled numeric value '%s' for <%s> option is malformed or out of range",
                          std::string(text).c_str(), std::string(opt).c_str());
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return std::vector<std::string>{malformed};
  std::string num(text.substr(0, digits));
  errno = 0;
  unsigned long long value = std::strtoull(num.c_str(), nullptr, 10);
  if (errno) return std::vector<std::string>{malformed};
  std::string suffix(text.substr(digits));
  unsigned long long scale = 1024;
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  auto ieq = [&](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
  };
  if (suffix.empty()) {
  } else if (ieq(suffix, "b") || ieq(suffix, "byte") || ieq(suffix, "bytes")) {
    scale = 1;
  } else {
    unsigned long long base;
    if (suffix.size() == 1 || ieq(std::string_view(suffix).substr(1), "iB")) base = 1024;
    else if (suffix.size() == 2 && lower(suffix[1]) == 'b') base = 1000;
    else return std::vector<std::string>{malformed, format("invalid argument: unknown suffix '%s'", suffix.c_str())};
    static constexpr std::string_view order = "kmgtpe";
    auto pos = order.find(lower(suffix[0]));
    if (pos == std::string_view::npos)
      return std::vector<std::string>{malformed, format("invalid argument: unknown suffix '%s'", suffix.c_str())};
    scale = 1;
    for (std::size_t k = 0; k <= pos; ++k) scale *= base;
  }
  if (value && value > ULLONG_MAX / scale)
    return std::vector<std::string>{malformed, format("value too large: %llu%s", value, suffix.c_str())};
  unsigned long long bytes = value * scale;
  return static_cast<std::uint64_t>(bytes / 1024 + (bytes % 1024 ? 1 : 0));
}

std::string_view yes_no(bool b) { return b ? "yes" : "no"; }

// ---------------------------------------------------------------------------------------------
// The shell: the connection, the output rules, lookups.

/// A background event listener (event --background).
struct listener {
  covirt::event_stream stream;
  bool timestamp = false;
  bool waiting = false;
  bool finished = false;
  int count = 0;
};

std::string event_line(const covirt::domain_event& ev, bool timestamp) {
  std::string line;
  if (timestamp) {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t t = system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    line = format("%s.%03d+0000: ", buf, static_cast<int>(ms));
  }
  line += format("event 'lifecycle' for domain '%s': %s %s\n", ev.domain.name.c_str(),
                 std::string(covirt::to_string(ev.type)).c_str(),
                 std::string(covirt::detail_string(ev.type, ev.detail)).c_str());
  return line;
}

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

  /// A domain by id, UUID or name, in virsh's order; prints virsh's error when none matches.
  awaitable<std::optional<covirt::domain_ref>> domain(const args& a, std::string_view opt = "domain") {
    const std::string& n = a.at(opt);
    if (auto id = parse_int(n); id && *id >= 0 && *id <= INT_MAX) {
      try {
        co_return co_await conn.async_lookup_by_id(static_cast<int>(*id));
      } catch (const covirt::error&) {
      }
    }
    // virsh tries a UUID only for a string of a UUID's length (36).
    if (auto uuid = n.size() == 36 ? parse_uuid(n) : std::nullopt) {
      try {
        co_return co_await conn.async_lookup_by_uuid(*uuid);
      } catch (const covirt::error&) {
      }
    }
    try {
      co_return co_await conn.async_lookup_by_name(n);
    } catch (const covirt::error&) {
    }
    error(format("failed to get domain '%s'", n.c_str()));
    co_return std::nullopt;
  }

  /// A network by UUID or name, as virsh; prints both error lines when none matches.
  awaitable<std::optional<covirt::network_ref>> network(const args& a, std::string_view opt = "network") {
    const std::string& n = a.at(opt);
    if (auto uuid = n.size() == 36 ? parse_uuid(n) : std::nullopt) {
      try {
        for (auto& net : co_await conn.async_list_networks(0))
          if (net.uuid == *uuid) co_return net;
      } catch (const covirt::error&) {
      }
    }
    std::optional<covirt::error> err;
    try {
      co_return co_await conn.async_lookup_network(n);
    } catch (const covirt::error& e) {
      err = e;
    }
    error(format("failed to get network '%s'", n.c_str()));
    error(err->what());
    co_return std::nullopt;
  }

  /// Lets background listeners print what the last command caused before the next one runs.
  /// An event handed to a waiting listener is in flight through posted handlers for a few turns,
  /// so the listeners count as idle only after several quiet turns of the io_context.
  awaitable<void> settle() {
    if (listeners_.empty()) co_return;
    auto ex = co_await asio::this_coro::executor;
    for (int spins = 0, quiet = 0; spins < 1000 && quiet < 4; ++spins) {
      co_await asio::post(ex, use_awaitable);
      bool busy = false;
      for (auto& l : listeners_)
        if (!l->finished && (!l->waiting || l->stream.pending() > 0)) busy = true;
      quiet = busy ? 0 : quiet + 1;
    }
  }

  void start_listener(covirt::event_stream s, bool timestamp) {
    auto l = std::make_shared<listener>();
    l->stream = std::move(s);
    l->timestamp = timestamp;
    listeners_.push_back(l);
    asio::co_spawn(conn.get_executor(), run_listener(this, l), asio::detached);
  }

  /// Ends the background listeners (end of the script) after they printed what is queued.
  awaitable<void> stop_listeners() {
    co_await settle();
    for (auto& l : listeners_) l->stream.close();
    co_await settle();
    listeners_.clear();
  }

private:
  static awaitable<void> run_listener(shell* sh, std::shared_ptr<listener> l) {
    for (;;) {
      l->waiting = true;
      auto [ec, ev] = co_await l->stream.async_next(asio::as_tuple(use_awaitable));
      l->waiting = false;
      if (ec) break;
      ++l->count;
      sh->print(event_line(ev, l->timestamp));
    }
    l->finished = true;
  }

  std::vector<std::shared_ptr<listener>> listeners_;
};

// ---------------------------------------------------------------------------------------------
// Domain commands.

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(format("Failed to open file '%s': %s", path.c_str(), std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
  try {
    doms = co_await sh.conn.async_list_domains(flags);
  } catch (const covirt::error& e) {
    co_return sh.fail("Failed to list domains", e);
  }
  sort_domains(doms);
  if (a.has("name") || a.has("uuid")) {
    std::string out;
    for (const auto& d : doms) {
      if (a.has("uuid") && a.has("name")) out += d.uuid + " " + d.name + "\n";
      else out += (a.has("uuid") ? d.uuid : d.name) + "\n";
    }
    sh.print(out);
    co_return true;
  }
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
  // The Security model/DOI/label lines are left out: covirt has no security-model API.
  sh.print(out);
  co_return ok;
}

awaitable<bool> cmd_domstate(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  try {
    auto st = co_await sh.conn.async_get_state(*d);
    if (a.has("reason"))
      sh.print(format("%s (%s)\n", std::string(covirt::to_string(st.state)).c_str(),
                      std::string(covirt::reason_string(st.state, st.reason)).c_str()));
    else
      sh.print(std::string(covirt::to_string(st.state)) + "\n");
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

awaitable<bool> cmd_dumpxml(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  unsigned flags = 0;
  if (a.has("inactive")) flags |= covirt::xml_flags::inactive;
  if (a.has("security-info")) flags |= covirt::xml_flags::secure;
  if (a.has("update-cpu")) flags |= covirt::xml_flags::update_cpu;
  if (a.has("migratable")) flags |= covirt::xml_flags::migratable;
  try {
    sh.print(co_await sh.conn.async_get_xml(*d, flags));
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

awaitable<bool> cmd_define(shell& sh, const args& a) {
  const std::string& file = a.at("file");
  std::string xml = read_file(file);
  try {
    auto d = co_await sh.conn.async_define_xml(std::move(xml));
    sh.extra(format("Domain '%s' defined from %s\n", d.name.c_str(), file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to define domain from %s", file.c_str()), e);
  }
  co_return true;
}

/// virsh domxml-to-native: the command line covirt's QEMU driver would run for a domain.
awaitable<bool> cmd_domxml_to_native(shell& sh, const args& a) {
  const std::string& fmt = a.at("format");
  if (fmt != "qemu-argv") {
    sh.error(format("unsupported config type %s", fmt.c_str()));
    co_return false;
  }
  std::string xml = read_file(a.at("xml"));
  covirt::diagnostics diag;
  auto def = covirt::parse_domain_xml(xml, diag);
  if (def) {
    covirt::qemu::argv_options opt;
    opt.qmp_socket = "/run/covirt/qemu/" + def->name + ".qmp";  // where qemu:///system would put it
    opt.kvm_available = ::access("/dev/kvm", R_OK | W_OK) == 0;
    if (auto argv = covirt::qemu::build_argv(*def, opt, diag)) {
      sh.print(covirt::qemu::argv_to_shell(*argv) + "\n");
      co_return true;
    } else {
      co_return sh.fail("", covirt::error(argv.error(), std::string(diag.message())));
    }
  }
  co_return sh.fail("", covirt::error(def.error(), std::string(diag.message())));
}

awaitable<bool> cmd_create(shell& sh, const args& a) {
  const std::string& file = a.at("file");
  std::string xml = read_file(file);
  unsigned flags = a.has("paused") ? 1u : 0u;  // VIR_DOMAIN_START_PAUSED
  try {
    auto d = co_await sh.conn.async_create_xml(std::move(xml), flags);
    sh.extra(format("Domain '%s' created from %s\n", d.name.c_str(), file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to create domain from %s", file.c_str()), e);
  }
  co_return true;
}

awaitable<bool> cmd_start(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  if (d->id >= 0) {
    sh.error("Domain is already active");
    co_return false;
  }
  const std::string& n = a.at("domain");
  try {
    co_await sh.conn.async_create(*d);
    sh.extra(format("Domain '%s' started\n", n.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to start domain '%s'", n.c_str()), e);
  }
  co_return true;
}

/// The commands that act on one domain or network and say so in one line: destroy, net-start, ...
/// `find` looks the object up from the option `opt`; `done` and `failed` get the name as given.
template <class Find, class Op>
awaitable<bool> simple_op(shell& sh, const args& a, const char* opt, Find find, Op op, const char* done,
                          const char* failed) {
  auto obj = co_await find(sh, a);
  if (!obj) co_return false;
  const std::string& given = a.at(opt);
  try {
    co_await op(sh.conn, *obj);
    sh.extra(format(done, given.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format(failed, given.c_str()), e);
  }
  co_return true;
}

template <class Op>
awaitable<bool> simple_domain_op(shell& sh, const args& a, Op op, const char* done, const char* failed) {
  return simple_op(sh, a, "domain", [](shell& sh, const args& a) { return sh.domain(a); }, op, done, failed);
}

// The one-domain and one-network operations on what the lookup found: a domain by its ref (so
// by UUID: the domain the lookup saw, not another defined since under its name), a network by name.
const covirt::domain_ref& op_key(const covirt::domain_ref& d) { return d; }
const std::string& op_key(const covirt::network_ref& n) { return n.name; }
#define COVIRT_SH_NAME_OP(api) [](covirt::connection& c, const auto& obj) { return c.api(op_key(obj)); }

awaitable<bool> cmd_undefine(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_undefine), "Domain '%s' has been undefined\n",
                                                             "Failed to undefine domain '%s'");
}
awaitable<bool> cmd_destroy(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_destroy), "Domain '%s' destroyed\n",
                                                            "Failed to destroy domain '%s'");
}
awaitable<bool> cmd_shutdown(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_shutdown), "Domain '%s' is being shutdown\n",
                                                             "Failed to shutdown domain '%s'");
}
awaitable<bool> cmd_reboot(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_reboot), "Domain '%s' is being rebooted\n",
                                                           "Failed to reboot domain '%s'");
}
awaitable<bool> cmd_suspend(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_suspend), "Domain '%s' suspended\n",
                                                            "Failed to suspend domain '%s'");
}
awaitable<bool> cmd_resume(shell& sh, const args& a) {
  return simple_domain_op(sh, a, COVIRT_SH_NAME_OP(async_resume), "Domain '%s' resumed\n",
                                                           "Failed to resume domain '%s'");
}

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
  try {
    co_await watched(sh, sh.conn.async_save(*d, file), w);
    sh.extra(format("\nDomain '%s' saved to %s\n", n.c_str(), file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to save domain '%s' to %s", n.c_str(), file.c_str()), e);
  }
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
  try {
    co_await watched(sh, sh.conn.async_restore(file), w);
    sh.extra(format("Domain restored from %s\n", file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to restore domain from %s", file.c_str()), e);
  }
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
      {"live", covirt::migrate_flags::live},
      {"offline", covirt::migrate_flags::offline},
      {"p2p", covirt::migrate_flags::peer2peer},
      {"tunnelled", covirt::migrate_flags::tunnelled},
      {"persistent", covirt::migrate_flags::persist_dest},
      {"undefinesource", covirt::migrate_flags::undefine_source},
      {"suspend", covirt::migrate_flags::paused},
      {"copy-storage-all", covirt::migrate_flags::non_shared_disk},
      {"copy-storage-inc", covirt::migrate_flags::non_shared_inc},
      {"change-protection", covirt::migrate_flags::change_protection},
      {"unsafe", covirt::migrate_flags::unsafe},
      {"compressed", covirt::migrate_flags::compressed},
      {"auto-converge", covirt::migrate_flags::auto_converge},
      {"abort-on-error", covirt::migrate_flags::abort_on_error}};
  for (auto [name, bit] : bits)
    if (a.has(name)) opt.flags |= bit;
  if (auto u = a.get("migrateuri")) opt.uri = *u;
  const std::string& desturi = a.at("desturi");

  // The destination is a second connection in this process: covirt's drivers are in-process.
  auto ex = co_await asio::this_coro::executor;
  covirt::connection dest;
  try {
    dest = co_await covirt::async_open(ex, desturi, 0u);
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
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

/// vshPrettyCapacity: the value in the largest binary unit below 1024 of it.
std::pair<double, const char*> pretty_capacity(std::uint64_t v) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double x = static_cast<double>(v);
  std::size_t u = 0;
  while (u + 1 < std::size(units) && x >= 1024.0) {
    x /= 1024.0;
    ++u;
  }
  return {x, units[u]};
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
  try {
    j = co_await sh.conn.async_get_job_info(*d);
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
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
  try {
    co_await sh.conn.async_abort_job(*d);
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

/// attach-device and detach-device: virsh's option checks, then one call with the file's XML.
awaitable<bool> device_op(shell& sh, const args& a, bool attach) {
  bool current = a.has("current"), live = a.has("live"), config = a.has("config"), persistent = a.has("persistent");
  const std::pair<bool, const char*> clashes[] = {
      {persistent && current, "Options --persistent and --current are mutually exclusive"},
      {current && live, "Options --current and --live are mutually exclusive"},
      {current && config, "Options --current and --config are mutually exclusive"}};
  for (auto [clash, msg] : clashes)
    if (clash) {
      sh.error(msg);
      co_return false;
    }
  unsigned flags = covirt::device_modify::current;
  if (config || persistent) flags |= covirt::device_modify::config;
  if (live) flags |= covirt::device_modify::live;
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  const std::string& file = a.at("file");
  if (persistent) {
    bool active = false;
    try {
      active = co_await sh.conn.async_is_active(*d);
    } catch (const covirt::error&) {
    }
    if (active) flags |= covirt::device_modify::live;
  }
  std::string xml = read_file(file);
  // Without flags virsh calls virDomainAttachDevice / virDomainDetachDevice: the running guest.
  if (flags == 0 && !current) flags = covirt::device_modify::live;
  try {
    if (attach) co_await sh.conn.async_attach_device(*d, std::move(xml), flags);
    else co_await sh.conn.async_detach_device(*d, std::move(xml), flags);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(attach ? "Failed to attach device from %s" : "Failed to detach device from %s",
                             file.c_str()),
                      e);
  }
  sh.extra(attach ? "Device attached successfully\n" : "Device detached successfully\n");
  co_return true;
}

awaitable<bool> cmd_attach_device(shell& sh, const args& a) { return device_op(sh, a, true); }
awaitable<bool> cmd_detach_device(shell& sh, const args& a) { return device_op(sh, a, false); }

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
  try {
    co_await sh.conn.async_core_dump(*d, file, flags);
    sh.extra(format("\nDomain '%s' dumped to %s\n", n.c_str(), file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to core dump domain '%s' to %s", n.c_str(), file.c_str()), e);
  }
  co_return true;
}

awaitable<bool> cmd_domblkstat(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  std::string dev = a.get("device").value_or("");
  bool human = a.has("human");
  try {
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
      if (human) sh.print(format("%-27s %lld\n", f.human, f.v));
      else sh.print(format("%s %s %lld\n", dev.c_str(), f.name, f.v));
    }
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to get block stats %s %s", a.at("domain").c_str(), dev.c_str()), e);
  }
  co_return true;
}

/// JSON text indented by two spaces per level (virsh qemu-monitor-command --pretty).
std::string pretty_json(std::string_view in) {
  std::string out;
  int depth = 0;
  bool in_str = false, esc = false;
  auto newline = [&] { out += '\n'; out.append(static_cast<std::size_t>(2 * std::max(depth, 0)), ' '); };
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_str) {
      out += c;
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    switch (c) {
      case '"': in_str = true; out += c; break;
      case '{': case '[': {
        out += c;
        std::size_t j = in.find_first_not_of(" \t\r\n", i + 1);
        if (j != std::string_view::npos && (in[j] == '}' || in[j] == ']')) { out += in[j]; i = j; break; }
        ++depth;
        newline();
        break;
      }
      case '}': case ']': --depth; newline(); out += c; break;
      case ',': out += c; newline(); break;
      case ':': out += ": "; break;
      case ' ': case '\t': case '\r': case '\n': break;
      default: out += c;
    }
  }
  return out;
}

awaitable<bool> cmd_qemu_monitor_command(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  try {
    auto reply = co_await sh.conn.async_qemu_monitor_command(*d, a.at("cmd"));
    while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
    sh.print((a.has("pretty") ? pretty_json(reply) : reply) + "\n");
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

/// --config/--live/--current as virsh checks them; nullopt after printing the error.
std::optional<unsigned> impact_flags(shell& sh, const args& a) {
  bool current = a.has("current"), live = a.has("live"), config = a.has("config");
  if (current && live) {
    sh.error("Options --current and --live are mutually exclusive");
    return std::nullopt;
  }
  if (current && config) {
    sh.error("Options --current and --config are mutually exclusive");
    return std::nullopt;
  }
  return (live ? covirt::modify::live : 0u) | (config ? covirt::modify::config : 0u);
}

std::optional<std::uint64_t> size_arg(shell& sh, const args& a) {
  auto r = parse_size_kib(a.at("size"), "size");
  if (auto* errs = std::get_if<std::vector<std::string>>(&r)) {
    for (auto& e : *errs) sh.error(e);
    return std::nullopt;
  }
  return std::get<std::uint64_t>(r);
}

awaitable<bool> cmd_setmem(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  auto kib = size_arg(sh, a);
  if (!kib) co_return false;
  // Without flags virsh calls virDomainSetMemory, which acts on the running domain.
  bool plain = *flags == 0 && !a.has("current");
  try {
    co_await sh.conn.async_set_memory(*d, *kib, plain ? covirt::modify::live : *flags);
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

awaitable<bool> cmd_setmaxmem(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  auto kib = size_arg(sh, a);
  if (!kib) co_return false;
  try {
    if (*flags == 0) co_await sh.conn.async_set_max_memory(*d, *kib);
    else co_await sh.conn.async_set_memory(*d, *kib, *flags | covirt::modify::mem_maximum);
  } catch (const covirt::error& e) {
    co_return sh.fail("Unable to change MaxMemorySize", e);
  }
  co_return true;
}

awaitable<bool> cmd_setvcpus(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  if (a.has("maximum") && !a.has("config")) {
    sh.error("Option --config is required by option --maximum");
    co_return false;
  }
  auto count = parse_int(a.at("count"));
  if (!count || *count < INT_MIN || *count > INT_MAX) {
    sh.error(format("Numeric value '%s' for <count> option is malformed or out of range", a.at("count").c_str()));
    co_return false;
  }
  if (*count <= 0) {
    sh.error(format("Can't set %lld processors for a VM", *count));
    co_return false;
  }
  unsigned f = *flags | (a.has("maximum") ? covirt::modify::vcpu_maximum : 0u);
  // Without flags virsh calls virDomainSetVcpus, which acts on the running domain.
  if (f == 0 && !a.has("current")) f = covirt::modify::live;
  try {
    co_await sh.conn.async_set_vcpus(*d, static_cast<unsigned>(*count), f);
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

awaitable<bool> cmd_autostart(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  bool on = !a.has("disable");
  const std::string& n = a.at("domain");
  try {
    co_await sh.conn.async_set_autostart(*d, on);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(on ? "Failed to mark domain '%s' as autostarted" : "Failed to unmark domain '%s' as autostarted",
                             n.c_str()),
                      e);
  }
  sh.extra(format(on ? "Domain '%s' marked as autostarted\n" : "Domain '%s' unmarked as autostarted\n", n.c_str()));
  co_return true;
}

awaitable<bool> cmd_domuuid(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  sh.print(d->uuid + "\n");
  co_return true;
}

awaitable<bool> cmd_domid(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  sh.print(d->id >= 0 ? std::to_string(d->id) + "\n" : "-\n");
  co_return true;
}

awaitable<bool> cmd_domname(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  sh.print(d->name + "\n");
  co_return true;
}

// ---------------------------------------------------------------------------------------------
// Host commands.

awaitable<bool> cmd_nodeinfo(shell& sh, const args&) {
  try {
    auto n = co_await sh.conn.async_node_get_info();
    std::string out;
    auto line = [&](const char* label, const std::string& v) { out += format("%-20s %s\n", label, v.c_str()); };
    line("CPU model:", n.model);
    line("CPU(s):", std::to_string(n.cpus));
    line("CPU frequency:", std::to_string(n.mhz) + " MHz");
    line("CPU socket(s):", std::to_string(n.sockets));
    line("Core(s) per socket:", std::to_string(n.cores));
    line("Thread(s) per core:", std::to_string(n.threads));
    line("NUMA cell(s):", std::to_string(n.nodes));
    line("Memory size:", std::to_string(n.memory_kib) + " KiB");
    sh.print(out);
  } catch (const covirt::error& e) {
    co_return sh.fail("failed to get node information", e);
  }
  co_return true;
}

awaitable<bool> cmd_capabilities(shell& sh, const args&) {
  try {
    sh.print(co_await sh.conn.async_get_capabilities() + "\n");
  } catch (const covirt::error& e) {
    co_return sh.fail("failed to get capabilities", e);
  }
  co_return true;
}

std::string version_string(std::uint64_t v) {
  return format("%llu.%llu.%llu", static_cast<unsigned long long>(v / 1000000),
                static_cast<unsigned long long>(v / 1000 % 1000), static_cast<unsigned long long>(v % 1000));
}

awaitable<bool> cmd_version(shell& sh, const args&) {
  // The library lines name covirt: it is covirt, not libvirt, that this tool runs on.
  std::string out = format("Compiled against library: covirt %s\n", std::string(covirt_version).c_str());
  out += format("Using library: covirt %s\n", std::string(covirt_version).c_str());
  std::string type(sh.conn.type());
  out += format("Using API: %s %s\n", type.c_str(), std::string(covirt_version).c_str());
  try {
    out += format("Running hypervisor: %s %s\n", type.c_str(),
                  version_string(co_await sh.conn.async_get_version()).c_str());
  } catch (const covirt::error& e) {
    sh.print(out);
    co_return sh.fail("failed to get the hypervisor version", e);
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_uri(shell& sh, const args&) {
  sh.print(sh.conn.uri().str() + "\n");
  co_return true;
}

awaitable<bool> cmd_hostname(shell& sh, const args&) {
  try {
    sh.print(co_await sh.conn.async_get_hostname() + "\n");
  } catch (const covirt::error& e) {
    co_return sh.fail("failed to get hostname", e);
  }
  co_return true;
}

awaitable<bool> cmd_maxvcpus(shell& sh, const args& a) {
  try {
    sh.print(std::to_string(co_await sh.conn.async_get_max_vcpus(a.get("type").value_or(""))) + "\n");
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

// ---------------------------------------------------------------------------------------------
// Network commands.

awaitable<bool> cmd_net_list(shell& sh, const args& a) {
  unsigned flags = 0;
  if (a.has("all")) flags = covirt::network_list_flags::active | covirt::network_list_flags::inactive;
  else if (a.has("inactive")) flags = covirt::network_list_flags::inactive;
  else flags = covirt::network_list_flags::active;
  std::vector<covirt::network_ref> nets;
  try {
    nets = co_await sh.conn.async_list_networks(flags);
  } catch (const covirt::error& e) {
    co_return sh.fail("Failed to list networks", e);
  }
  std::sort(nets.begin(), nets.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  if (a.has("name") || a.has("uuid")) {
    std::string out;
    for (const auto& n : nets) {
      if (a.has("uuid") && a.has("name")) out += n.uuid + " " + n.name + "\n";
      else out += (a.has("uuid") ? n.uuid : n.name) + "\n";
    }
    sh.print(out);
    co_return true;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : nets)
    rows.push_back({n.name, n.active ? "active" : "inactive", std::string(yes_no(n.autostart)),
                    std::string(yes_no(n.persistent))});
  sh.print(render_table({"Name", "State", "Autostart", "Persistent"}, rows, !sh.quiet));
  co_return true;
}

awaitable<bool> cmd_net_info(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  auto line = [](const char* label, std::string_view v) { return format("%-15s %s\n", label, std::string(v).c_str()); };
  std::string out = line("Name:", n->name) + line("UUID:", n->uuid) + line("Active:", yes_no(n->active)) +
                    line("Persistent:", yes_no(n->persistent));
  try {
    out += line("Autostart:", yes_no(co_await sh.conn.async_get_network_autostart(n->name)));
  } catch (const covirt::error&) {
    out += line("Autostart:", "no autostart");
  }
  try {
    out += line("Bridge:", co_await sh.conn.async_get_network_bridge_name(n->name));
  } catch (const covirt::error&) {
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_net_dumpxml(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  try {
    sh.print(co_await sh.conn.async_get_network_xml(n->name, a.has("inactive") ? 1u : 0u));
  } catch (const covirt::error& e) {
    co_return sh.fail("", e);
  }
  co_return true;
}

awaitable<bool> cmd_net_define(shell& sh, const args& a) {
  const std::string& file = a.at("file");
  std::string xml = read_file(file);
  try {
    auto n = co_await sh.conn.async_define_network(std::move(xml));
    sh.extra(format("Network %s defined from %s\n", n.name.c_str(), file.c_str()));
  } catch (const covirt::error& e) {
    co_return sh.fail(format("Failed to define network from %s", file.c_str()), e);
  }
  co_return true;
}

template <class Op>
awaitable<bool> simple_network_op(shell& sh, const args& a, Op op, const char* done, const char* failed) {
  return simple_op(sh, a, "network", [](shell& sh, const args& a) { return sh.network(a); }, op, done, failed);
}

awaitable<bool> cmd_net_undefine(shell& sh, const args& a) {
  return simple_network_op(sh, a, COVIRT_SH_NAME_OP(async_undefine_network), "Network %s has been undefined\n",
                                                                      "Failed to undefine network %s");
}
awaitable<bool> cmd_net_start(shell& sh, const args& a) {
  return simple_network_op(sh, a, COVIRT_SH_NAME_OP(async_create_network), "Network %s started\n",
                                                                    "Failed to start network %s");
}
awaitable<bool> cmd_net_destroy(shell& sh, const args& a) {
  return simple_network_op(sh, a, COVIRT_SH_NAME_OP(async_destroy_network), "Network %s destroyed\n",
                                                                     "Failed to destroy network %s");
}

awaitable<bool> cmd_net_autostart(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  bool on = !a.has("disable");
  const std::string& name = a.at("network");
  try {
    co_await sh.conn.async_set_network_autostart(n->name, on);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(on ? "failed to mark network %s as autostarted" : "failed to unmark network %s as autostarted",
                             name.c_str()),
                      e);
  }
  sh.extra(format(on ? "Network %s marked as autostarted\n" : "Network %s unmarked as autostarted\n", name.c_str()));
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

// ---------------------------------------------------------------------------------------------
// help and the table of commands.

std::string synopsis(const command& c) {
  std::string s(c.name);
  for (const auto& o : c.opts) {
    std::string n(o.name);
    std::string t;
    switch (o.type) {
      case opt_type::boolean: t = "--" + n; break;
      case opt_type::data: t = "<" + n + ">"; break;
      case opt_type::string:
      case opt_type::number: t = o.named_only ? "--" + n + " <" + std::string(type_word(o.type)) + ">"
                                              : "[--" + n + "] <" + std::string(type_word(o.type)) + ">";
    }
    s += " ";
    s += o.required ? t : "[" + t + "]";
  }
  return s;
}

awaitable<bool> cmd_help(shell& sh, const args& a) {
  if (auto name = a.get("command")) {
    const command* c = find_command(*name);
    if (!c) {
      sh.error(format("command or command group '%s' doesn't exist", name->c_str()));
      co_return false;
    }
    std::string out = format("  NAME\n    %s - %s\n\n  SYNOPSIS\n    %s\n\n  DESCRIPTION\n    %s\n\n",
                             std::string(c->name).c_str(), std::string(c->summary).c_str(), synopsis(*c).c_str(),
                             std::string(c->description).c_str());
    if (!c->opts.empty()) {
      out += "  OPTIONS\n";
      for (const auto& o : c->opts) {
        std::string n(o.name);
        std::string left = o.type == opt_type::boolean ? "--" + n
                           : o.type == opt_type::data  ? "[--" + n + "] <string>"
                                                       : (o.named_only ? "--" : "[--") + n + (o.named_only ? "" : "]") +
                                                             " <" + std::string(type_word(o.type)) + ">";
        out += format("    %-15s  %s\n", left.c_str(), std::string(o.help).c_str());
      }
      out += "\n";
    }
    sh.print(out);
    co_return true;
  }
  std::string out = "Commands:\n\n";
  for (const auto& c : commands())
    out += format("    %-30s %s\n", std::string(c.name).c_str(), std::string(c.summary).c_str());
  sh.print(out + "\n");
  co_return true;
}

const std::vector<command>& commands() {
  using enum opt_type;
  const opt_spec dom{"domain", data, true, "domain name, id or uuid"};
  const opt_spec net{"network", data, true, "network name or uuid"};
  const opt_spec config{"config", boolean, false, "affect next boot"};
  const opt_spec live{"live", boolean, false, "affect running domain"};
  const opt_spec current{"current", boolean, false, "affect current domain"};
  static const std::vector<command> table = {
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
      {"dumpxml",
       {dom,
        {"inactive", boolean, false, "show inactive defined XML"},
        {"security-info", boolean, false, "include security sensitive information in XML dump"},
        {"update-cpu", boolean, false, "update guest CPU according to host CPU"},
        {"migratable", boolean, false, "provide XML suitable for migrations"}},
       cmd_dumpxml, "domain information in XML", "Output the domain information as an XML dump to stdout."},
      {"define", {{"file", data, true, "file containing an XML domain description"}}, cmd_define,
       "define (but don't start) a domain from an XML file", "Define a domain."},
      {"undefine", {dom}, cmd_undefine, "undefine a domain", "Undefine an inactive domain, or convert persistent to transient."},
      {"create",
       {{"file", data, true, "file containing an XML domain description"},
        {"paused", boolean, false, "leave the guest paused after creation"}},
       cmd_create, "create a domain from an XML file", "Create a domain."},
      {"start", {dom}, cmd_start, "start a (previously defined) inactive domain", "Start a (previously defined) inactive domain."},
      {"destroy", {dom}, cmd_destroy, "destroy (stop) a domain", "Forcefully stop a given domain, but leave its resources intact."},
      {"shutdown", {dom}, cmd_shutdown, "gracefully shutdown a domain", "Run shutdown in the target domain."},
      {"reboot", {dom}, cmd_reboot, "reboot a domain", "Run a reboot command in the target domain."},
      {"suspend", {dom}, cmd_suspend, "suspend a domain", "Suspend a running domain."},
      {"resume", {dom}, cmd_resume, "resume a domain", "Resume a previously suspended domain."},
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
      {"attach-device",
       {dom, {"file", data, true, "XML file"}, {"persistent", boolean, false, "make live change persistent"}, config,
        live, current},
       cmd_attach_device, "attach device from an XML file", "Attach device from an XML <file>."},
      {"detach-device",
       {dom, {"file", data, true, "XML file"}, {"persistent", boolean, false, "make live change persistent"}, config,
        live, current},
       cmd_detach_device, "detach device from an XML file", "Detach device from an XML <file>"},
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
      {"domblkstat",
       {dom, {"device", data, false, "block device"}, {"human", boolean, false, "print a more human readable output"}},
       cmd_domblkstat, "get device block stats for a domain", "Get device block stats for a running domain."},
      {"qemu-monitor-command",
       {dom, {"cmd", data, true, "command"}, {"pretty", boolean, false, "pretty-print any qemu monitor protocol output"}},
       cmd_qemu_monitor_command, "QEMU Monitor Command", "QEMU Monitor Command"},
      {"setmem", {dom, {"size", number, true, "new memory size, as scaled integer (default KiB)"}, config, live, current},
       cmd_setmem, "change memory allocation", "Change the current memory allocation in the guest domain."},
      {"setmaxmem",
       {dom, {"size", number, true, "new maximum memory size, as scaled integer (default KiB)"}, config, live, current},
       cmd_setmaxmem, "change maximum memory limit", "Change the maximum memory allocation limit in the guest domain."},
      {"setvcpus",
       {dom, {"count", number, true, "number of virtual CPUs"},
        {"maximum", boolean, false, "set maximum limit on next boot"}, config, live, current},
       cmd_setvcpus, "change number of virtual CPUs", "Change the number of virtual CPUs in the guest domain."},
      {"autostart", {dom, {"disable", boolean, false, "disable autostarting"}}, cmd_autostart, "autostart a domain",
       "Configure a domain to be automatically started at boot."},
      {"domuuid", {{"domain", data, true, "domain id or name"}}, cmd_domuuid, "convert a domain name or id to domain UUID",
       "Convert a domain name or id to domain UUID."},
      {"domid", {{"domain", data, true, "domain name or uuid"}}, cmd_domid, "convert a domain name or UUID to domain id",
       "Convert a domain name to domain id."},
      {"domname", {{"domain", data, true, "domain id or uuid"}}, cmd_domname, "convert a domain id or UUID to domain name",
       "Convert a domain id or UUID to domain name."},
      {"domxml-to-native",
       {{"format", data, true, "target config data type format (qemu-argv)"},
        {"xml", data, true, "xml data file to export from"}},
       cmd_domxml_to_native, "Convert domain XML to native config",
       "Convert domain XML config to a native guest configuration format."},
      {"nodeinfo", {}, cmd_nodeinfo, "node information", "Returns basic information about the node."},
      {"capabilities", {}, cmd_capabilities, "capabilities", "Returns capabilities of hypervisor/driver."},
      {"version", {}, cmd_version, "show version", "Display the system version information."},
      {"uri", {}, cmd_uri, "print the hypervisor canonical URI", "Print the hypervisor canonical URI."},
      {"hostname", {}, cmd_hostname, "print the hypervisor hostname", "Print the hypervisor hostname."},
      {"maxvcpus", {{"type", string, false, "domain type"}}, cmd_maxvcpus, "connection vcpu maximum",
       "Get maximum number of virtual CPUs for a guest domain."},
      {"net-list",
       {{"inactive", boolean, false, "list inactive networks"},
        {"all", boolean, false, "list inactive & active networks"},
        {"uuid", boolean, false, "list uuid's only"},
        {"name", boolean, false, "list network names only"}},
       cmd_net_list, "list networks", "Returns list of networks."},
      {"net-info", {net}, cmd_net_info, "network information", "Returns basic information about the network"},
      {"net-dumpxml", {net, {"inactive", boolean, false, "show inactive defined XML"}}, cmd_net_dumpxml,
       "network information in XML", "Output the network information as an XML dump to stdout."},
      {"net-define", {{"file", data, true, "file containing an XML network description"}}, cmd_net_define,
       "define an inactive persistent virtual network or modify an existing persistent one from an XML file",
       "Define or modify a persistent virtual network."},
      {"net-undefine", {net}, cmd_net_undefine, "undefine a persistent network", "Undefine the configuration for a persistent network."},
      {"net-start", {net}, cmd_net_start, "start a (previously defined) inactive network", "Start a network."},
      {"net-destroy", {net}, cmd_net_destroy, "destroy (stop) a network", "Forcefully stop a given network."},
      {"net-autostart", {net, {"disable", boolean, false, "disable autostarting"}}, cmd_net_autostart,
       "autostart a network", "Configure a network to be automatically started at boot."},
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
      {"help", {{"command", string, false, "Prints global help, command specific help, or help for a group of related commands"}},
       cmd_help, "print help", "Prints global help, command specific help, or help for a\n    group of related commands"},
  };
  return table;
}

// ---------------------------------------------------------------------------------------------
// main: global options, the script, the run.

struct options {
  std::string uri;
  bool read_only = false;
  bool quiet = false;
  std::vector<std::vector<std::string>> script;
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "\ncovirt-sh [options]... [<command_string>]\n"
               "covirt-sh [options]... <command> [args...]\n\n"
               "  options:\n"
               "    -c | --connect=URI      hypervisor connection URI\n"
               "    -h | --help             this help\n"
               "    -q | --quiet            quiet mode\n"
               "    -r | --readonly         connect readonly\n"
               "    -v | --version          program version\n\n"
               "  commands (non interactive mode):\n\n");
  for (const auto& c : commands())
    std::fprintf(f, "    %-30s %s\n", std::string(c.name).c_str(), std::string(c.summary).c_str());
  std::fprintf(f, "\n  (specify help <command> for details about the command)\n\n");
}

awaitable<int> run(options opt) {
  auto ex = co_await asio::this_coro::executor;
  shell sh;
  sh.quiet = opt.quiet;

  std::vector<parsed_command> script;
  std::vector<std::string> errors;
  for (const auto& tokens : opt.script) {
    auto pc = parse_command(tokens, errors);
    if (!pc) break;
    script.push_back(std::move(*pc));
  }
  if (!errors.empty()) {
    for (const auto& e : errors) sh.error(e);
    co_return EXIT_FAILURE;
  }

  try {
    sh.conn = co_await covirt::async_open(ex, opt.uri, opt.read_only ? covirt::open_flags::read_only : 0u);
  } catch (const covirt::error& e) {
    sh.error("failed to connect to the hypervisor");
    sh.error(e.what());
    co_return EXIT_FAILURE;
  }

  bool ok = true;
  for (const auto& pc : script) {
    try {
      ok = co_await pc.cmd->run(sh, pc.a);
    } catch (const covirt::error& e) {
      ok = sh.fail("", e);
    } catch (const std::exception& e) {  // a FILE argument that could not be read
      sh.error(e.what());
      ok = false;
    }
    co_await sh.settle();
    sh.extra("\n");
  }
  co_await sh.stop_listeners();
  try {
    co_await sh.conn.async_close();
  } catch (const covirt::error&) {
  }
  co_return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (const char* env = std::getenv("COVIRT_DEFAULT_URI"); env && *env) opt.uri = env;
  else opt.uri = "test:///default";

  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-c" || a == "--connect") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: option '%s' requires an argument\n", argv[i]);
        return EXIT_FAILURE;
      }
      opt.uri = argv[++i];
    } else if (a.starts_with("--connect=")) {
      opt.uri = std::string(a.substr(10));
    } else if (a.starts_with("-c") && a.size() > 2) {
      opt.uri = std::string(a.substr(2));
    } else if (a == "-r" || a == "--readonly") {
      opt.read_only = true;
    } else if (a == "-q" || a == "--quiet") {
      opt.quiet = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return EXIT_SUCCESS;
    } else if (a == "-v" || a == "--version" || a == "-V") {
      std::printf("%s\n", std::string(covirt_version).c_str());
      return EXIT_SUCCESS;
    } else if (a == "--") {
      ++i;
      break;
    } else if (a.size() > 1 && a.front() == '-') {
      std::fprintf(stderr, "error: unsupported option '%s'. See --help.\n", argv[i]);
      return EXIT_FAILURE;
    } else {
      break;
    }
  }
  if (i >= argc) {
    // virsh would start its interactive shell; covirt-sh runs scripts only.
    usage(stderr);
    return EXIT_FAILURE;
  }
  if (argc - i == 1) {
    opt.script = tokenize(argv[i]);
  } else {
    // argv mode: each item is one token; a lone ";" separates commands (virsh refuses that).
    opt.script.emplace_back();
    for (; i < argc; ++i) {
      if (std::string_view(argv[i]) == ";") opt.script.emplace_back();
      else opt.script.back().push_back(argv[i]);
    }
    std::erase_if(opt.script, [](const auto& v) { return v.empty(); });
  }

  asio::io_context ioc;
  int status = EXIT_FAILURE;
  asio::co_spawn(ioc, run(std::move(opt)), [&](std::exception_ptr e, int rc) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: %s\n", ex.what());
      }
      rc = EXIT_FAILURE;
    }
    status = rc;
  });
  ioc.run();
  std::fflush(stdout);
  return status;
}
