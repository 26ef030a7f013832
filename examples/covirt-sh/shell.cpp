// covirt-sh's shared parts: the script splitter and option parser (virsh's vshCommandParse
// rules), virsh's table layout and value syntax, the shell's lookups and background listeners,
// help, and the groups joined from each file's table.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

std::string_view type_word(opt_type t) { return t == opt_type::number ? "number" : "string"; }

}  // namespace

const std::vector<command_group>& command_groups() {
  static const std::vector<command_group> groups = [] {
    auto join = [](const std::vector<command>& a, const std::vector<command>& b) {
      std::vector<command> v = a;
      v.insert(v.end(), b.begin(), b.end());
      return v;
    };
    std::vector<command_group> g = {
        {"Domain Management", "domain", join(join(domain_commands, jobs_commands), tuning_commands)},
        {"Domain Monitoring", "monitor", join(monitor_commands, stats_commands)},
        {"Domain Events", "events", events_commands},
        {"Host and Hypervisor", "host", host_commands},
        {"Networking", "network", network_commands},
        {"Virsh itself", "virsh", shell_commands},
    };
    for (auto& group : g) std::ranges::sort(group.commands, {}, &command::name);
    // virsh lists a group in its table's order, which is the alphabet's for covirt-sh's commands
    // but for one: emulatorpin follows vcpupin.
    auto& dm = g.front().commands;
    auto by = [&](std::string_view n) { return std::ranges::find(dm, n, &command::name); };
    if (auto e = by("emulatorpin"), v = by("vcpupin"); e != dm.end() && v != dm.end() && e < v)
      std::rotate(e, e + 1, v + 1);
    return g;
  }();
  return groups;
}

const command* find_command(std::string_view name) {
  for (const auto& g : command_groups())
    for (const auto& c : g.commands)
      if (c.name == name) return &c;
  return nullptr;
}

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
      if (pc.a.has(o->name) && o->type != opt_type::argv) {
        errors.push_back(format("option --%s already seen", name.c_str()));
        return std::nullopt;
      }
      if (o->type == opt_type::boolean) {
        if (inline_value) {
          errors.push_back(format("invalid '=' after option --%s", name.c_str()));
          return std::nullopt;
        }
        pc.a.set(o->name, "");
      } else if (o->type == opt_type::argv) {
        if (inline_value) pc.a.append(o->name, *inline_value);
        else if (i + 1 < tokens.size()) pc.a.append(o->name, tokens[++i]);
        else {
          errors.push_back(format("expected syntax: --%s <string>", name.c_str()));
          return std::nullopt;
        }
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
      if (o.type != opt_type::boolean && !o.named_only && (!pc.a.has(o.name) || o.type == opt_type::argv)) {
        target = &o;
        break;
      }
    if (!target) {
      errors.push_back(format("unexpected data '%s'", tok.c_str()));
      return std::nullopt;
    }
    if (target->type == opt_type::argv) pc.a.append(target->name, tok);
    else pc.a.set(target->name, tok);
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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(format("Failed to open file '%s': %s", path.c_str(), std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

awaitable<std::optional<covirt::domain_ref>> shell::domain(const args& a, std::string_view opt) {
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

awaitable<std::optional<covirt::network_ref>> shell::network(const args& a, std::string_view opt) {
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

// An event handed to a waiting listener is in flight through posted handlers for a few turns,
// so the listeners count as idle only after several quiet turns of the io_context.
awaitable<void> shell::settle() {
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

void shell::start_listener(covirt::event_stream s, bool timestamp) {
  auto l = std::make_shared<listener>();
  l->stream = std::move(s);
  l->timestamp = timestamp;
  listeners_.push_back(l);
  asio::co_spawn(conn.get_executor(), run_listener(this, l), asio::detached);
}

awaitable<void> shell::stop_listeners() {
  co_await settle();
  for (auto& l : listeners_) l->stream.close();
  co_await settle();
  listeners_.clear();
}

awaitable<void> shell::run_listener(shell* sh, std::shared_ptr<listener> l) {
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

namespace {

std::string synopsis(const command& c) {
  std::string s(c.name);
  for (const auto& o : c.opts) {
    std::string n(o.name);
    std::string t;
    switch (o.type) {
      case opt_type::boolean: t = "--" + n; break;
      case opt_type::data: t = "<" + n + ">"; break;
      case opt_type::argv:
        s += o.required ? " <" + n + ">..." : " [<" + n + ">]...";
        continue;
      case opt_type::string:
      case opt_type::number: t = o.named_only || o.help_as_named ? "--" + n + " <" + std::string(type_word(o.type)) + ">"
                                              : "[--" + n + "] <" + std::string(type_word(o.type)) + ">";
    }
    s += " ";
    s += o.required ? t : "[" + t + "]";
  }
  return s;
}

awaitable<bool> cmd_help(shell& sh, const args& a) {
  if (auto name = a.get("command")) {
    for (const auto& g : command_groups())
      if (g.keyword == *name) {
        sh.print(group_text(g, ":"));
        co_return true;
      }
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
                           : o.type == opt_type::argv  ? "<" + n + ">"
                           : o.type == opt_type::data  ? "[--" + n + "] <string>"
                                                       : (o.named_only || o.help_as_named ? "--" : "[--") + n +
                                                             (o.named_only || o.help_as_named ? "" : "]") +
                                                             " <" + std::string(type_word(o.type)) + ">";
        out += format("    %-15s  %s\n", left.c_str(), std::string(o.help).c_str());
      }
      out += "\n";
    }
    sh.print(out);
    co_return true;
  }
  std::string out = "Grouped commands:\n\n";
  for (const auto& g : command_groups()) out += group_text(g, ":") + "\n";
  sh.print(out);
  co_return true;
}

}  // namespace

std::string typed_value_text(const covirt::typed_param& p) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int>) return format("%d", v);
        else if constexpr (std::is_same_v<T, unsigned>) return format("%u", v);
        else if constexpr (std::is_same_v<T, long long>) return format("%lld", v);
        else if constexpr (std::is_same_v<T, unsigned long long>) return format("%llu", v);
        else if constexpr (std::is_same_v<T, double>) return format("%f", v);
        else if constexpr (std::is_same_v<T, bool>) return v ? "yes" : "no";
        else return v;
      },
      p.value);
}

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

std::string group_text(const command_group& g, std::string_view colon) {
  std::string out = format(" %s (help keyword '%s')%s\n", std::string(g.title).c_str(), std::string(g.keyword).c_str(),
                           std::string(colon).c_str());
  for (const auto& c : g.commands)
    out += format("    %-30s %s\n", std::string(c.name).c_str(), std::string(c.summary).c_str());
  return out;
}

const std::vector<command> shell_commands = {
    {"help", {{"command", string, false, "Prints global help, command specific help, or help for a group of related commands"}},
     cmd_help, "print help", "Prints global help, command specific help, or help for a\n    group of related commands"},
};

}  // namespace covirt_sh
