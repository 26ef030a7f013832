// covirt: xend's S-expression reader and writer, and libvirt's path lookups.
//
// The reader is a loop over the bytes with an explicit stack of open lists, so the depth of
// the input never reaches the C++ stack; the depth limit bounds the values it builds.

#include <covirt/xen/sexpr.hpp>

#include <utility>

namespace covirt::xen {

sexpr sexpr::make_atom(std::string value) {
  sexpr s;
  s.atom = std::move(value);
  return s;
}

sexpr sexpr::make_list(std::vector<sexpr> elements) {
  sexpr s;
  s.list = std::move(elements);
  s.is_list = true;
  return s;
}

std::string_view sexpr::head() const noexcept {
  if (!is_list || list.empty() || list.front().is_list) return {};
  return list.front().atom;
}

namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// The offset of the first byte that is not valid UTF-8 (overlong forms and surrogates
/// included), or npos.
std::size_t invalid_utf8_at(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned cp = 0;
    if (b >= 0xc2 && b <= 0xdf) len = 2, cp = b & 0x1fu;
    else if (b >= 0xe0 && b <= 0xef) len = 3, cp = b & 0x0fu;
    else if (b >= 0xf0 && b <= 0xf4) len = 4, cp = b & 0x07u;
    else return i;
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0u) != 0x80u) return i;
      cp = (cp << 6) | (c & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

class reader {
public:
  reader(std::string_view text, diagnostics& diag, const sexpr_limits& lim) : t_(text), diag_(diag), lim_(lim) {}

  result<sexpr> run() {
    if (t_.size() > lim_.max_bytes)
      return fail(diag_, errc::sexpr_serial,
                  "S-expression of " + std::to_string(t_.size()) + " bytes is over the limit of " +
                      std::to_string(lim_.max_bytes) + " bytes");
    std::optional<sexpr> top;
    std::vector<sexpr> open;          // the lists not closed yet, outermost first
    std::vector<std::size_t> open_at;  // where each began
    auto emit = [&](sexpr v) {
      if (open.empty()) top = std::move(v);
      else open.back().list.push_back(std::move(v));
    };
    std::size_t i = 0;
    while (i < t_.size()) {
      char c = t_[i];
      if (is_space(c)) {
        ++i;
        continue;
      }
      if (c == '#') {
        while (i < t_.size() && t_[i] != '\n') ++i;
        continue;
      }
      if (top && open.empty()) return error(i, "trailing garbage after the S-expression");
      if (c == '(') {
        if (open.size() >= lim_.max_depth)
          return error(i, "lists nested deeper than " + std::to_string(lim_.max_depth));
        open.push_back(sexpr::make_list());
        open_at.push_back(i);
        ++i;
      } else if (c == ')') {
        if (open.empty()) return error(i, "unbalanced ')' with no list open");
        sexpr done = std::move(open.back());
        open.pop_back();
        open_at.pop_back();
        emit(std::move(done));
        ++i;
      } else if (c == '\'' || c == '"') {
        auto s = quoted(i);
        if (!s) return s.error();
        emit(sexpr::make_atom(std::move(*s)));
      } else {
        std::size_t start = i;
        while (i < t_.size() && !is_space(t_[i]) && t_[i] != '(' && t_[i] != ')') {
          auto b = static_cast<unsigned char>(t_[i]);
          if (b < 0x20 || b == 0x7f) return error(i, "control character in an atom");
          ++i;
        }
        std::string_view a = t_.substr(start, i - start);
        if (auto bad = invalid_utf8_at(a); bad != std::string_view::npos)
          return error(start + bad, "invalid UTF-8 in an atom");
        emit(sexpr::make_atom(std::string(a)));
      }
    }
    if (!open.empty()) return error(open_at.back(), "unbalanced '(': the list opened here is not closed");
    if (!top) return error(t_.size(), "no S-expression in the input");
    return std::move(*top);
  }

private:
  failure error(std::size_t off, const std::string& what) {
    std::size_t line = 1, col = 1;
    for (std::size_t k = 0; k < off && k < t_.size(); ++k) {
      if (t_[k] == '\n') ++line, col = 1;
      else ++col;
    }
    return fail(diag_, errc::sexpr_serial,
                "S-expression: " + what + " at line " + std::to_string(line) + ", column " +
                    std::to_string(col) + " (offset " + std::to_string(off) + ")");
  }

  /// A '...' or "..." string starting at i; leaves i after the closing quote.
  result<std::string> quoted(std::size_t& i) {
    const std::size_t start = i;
    const char q = t_[i++];
    std::string out;
    for (;;) {
      if (i >= t_.size()) return error(start, "unterminated string");
      char ch = t_[i];
      if (ch == q) {
        ++i;
        break;
      }
      if (ch != '\\') {
        out += ch;
        ++i;
        continue;
      }
      if (i + 1 >= t_.size()) return error(start, "unterminated string");
      char e = t_[i + 1];
      char simple = 0;
      switch (e) {
        case 'a': simple = '\a'; break;
        case 'b': simple = '\b'; break;
        case 't': simple = '\t'; break;
        case 'n': simple = '\n'; break;
        case 'v': simple = '\v'; break;
        case 'f': simple = '\f'; break;
        case 'r': simple = '\r'; break;
        case '\\': case '\'': case '"': simple = e; break;
        default: break;
      }
      if (simple) {
        out += simple;
        i += 2;
      } else if (e == 'x' && i + 3 < t_.size() && hex_digit(t_[i + 2]) >= 0 && hex_digit(t_[i + 3]) >= 0) {
        out += static_cast<char>(hex_digit(t_[i + 2]) * 16 + hex_digit(t_[i + 3]));
        i += 4;
      } else if (e >= '0' && e <= '7') {
        unsigned v = 0;
        std::size_t k = i + 1;
        for (int n = 0; n < 3 && k < t_.size() && t_[k] >= '0' && t_[k] <= '7'; ++n, ++k)
          v = v * 8 + static_cast<unsigned>(t_[k] - '0');
        out += static_cast<char>(v & 0xffu);
        i = k;
      } else {  // an unknown escape keeps its backslash; the next character follows as it is
        out += '\\';
        ++i;
      }
    }
    if (auto bad = invalid_utf8_at(out); bad != std::string_view::npos)
      return error(start, "invalid UTF-8 in a string (byte " + std::to_string(bad) + " of its value)");
    return out;
  }

  std::string_view t_;
  diagnostics& diag_;
  const sexpr_limits& lim_;
};

bool atom_safe(std::string_view v) noexcept {
  if (v.empty()) return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':' || c == '/' || c == '~' || c == '@';
    if (!ok) return false;
  }
  return v.front() != '#';
}

void write(std::string& out, const sexpr& s) {
  if (!s.is_list) {
    out += format_atom(s.atom);
    return;
  }
  out += '(';
  const sexpr* prev = nullptr;
  for (auto& e : s.list) {
    if (prev && !(prev->is_list && e.is_list)) out += ' ';
    write(out, e);
    prev = &e;
  }
  out += ')';
}

/// Splits "a/b/c" into its steps; empty steps are dropped.
std::vector<std::string_view> steps(std::string_view path) {
  std::vector<std::string_view> r;
  while (!path.empty()) {
    auto k = path.find('/');
    auto step = path.substr(0, k);
    if (!step.empty()) r.push_back(step);
    if (k == std::string_view::npos) break;
    path.remove_prefix(k + 1);
  }
  return r;
}

const sexpr* child(const sexpr& s, std::string_view name) {
  if (!s.is_list) return nullptr;
  for (std::size_t k = 1; k < s.list.size(); ++k)
    if (s.list[k].is_list && s.list[k].head() == name) return &s.list[k];
  return nullptr;
}

}  // namespace

result<sexpr> parse_sexpr(std::string_view text, diagnostics& diag, const sexpr_limits& lim) {
  return reader(text, diag, lim).run();
}

std::string format_atom(std::string_view value) {
  if (atom_safe(value)) return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string format_sexpr(const sexpr& s) {
  std::string out;
  write(out, s);
  return out;
}

const sexpr* find(const sexpr& s, std::string_view path) {
  auto st = steps(path);
  if (st.empty() || s.head() != st.front()) return nullptr;
  const sexpr* cur = &s;
  for (std::size_t k = 1; k < st.size() && cur; ++k) cur = child(*cur, st[k]);
  return cur;
}

std::optional<std::string_view> value(const sexpr& s, std::string_view path) {
  const sexpr* n = find(s, path);
  if (!n || n->list.size() < 2 || n->list[1].is_list) return std::nullopt;
  return std::string_view(n->list[1].atom);
}

std::vector<const sexpr*> find_all(const sexpr& s, std::string_view path) {
  std::vector<const sexpr*> r;
  auto k = path.rfind('/');
  if (k == std::string_view::npos) return r;
  const sexpr* parent = find(s, path.substr(0, k));
  std::string_view name = path.substr(k + 1);
  if (!parent) return r;
  for (std::size_t i = 1; i < parent->list.size(); ++i)
    if (parent->list[i].is_list && parent->list[i].head() == name) r.push_back(&parent->list[i]);
  return r;
}

}  // namespace covirt::xen
