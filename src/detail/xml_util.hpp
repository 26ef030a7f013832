// covirt internal: helpers shared by the domain / network / capabilities XML code.
// Parsing with pugixml under limits, and a libvirt-style writer into std::string.
#pragma once

#include <covirt/domain/xml.hpp>

#include <pugixml.hpp>

#include <algorithm>
#include <bit>
#include <array>
#include <charconv>
#include <cstdint>
#include <vector>
#include <cstring>
#include <optional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace covirt::detail::xml {

inline constexpr std::size_t max_document_size = 10u * 1024u * 1024u;
inline constexpr int max_depth = 256;

// ------------------------------------------------------------------ parsing

// pugixml's handles are one pointer, null when empty, and every member function is a call
// into the shared library; the emptiness tests of the hot loops below are done inline.
static_assert(sizeof(pugi::xml_node) == sizeof(std::uintptr_t) && std::is_trivially_copyable_v<pugi::xml_node>);
static_assert(sizeof(pugi::xml_attribute) == sizeof(std::uintptr_t) &&
              std::is_trivially_copyable_v<pugi::xml_attribute>);
[[gnu::always_inline]] inline bool present(pugi::xml_node n) noexcept { return std::bit_cast<std::uintptr_t>(n) != 0; }
[[gnu::always_inline]] inline bool present(pugi::xml_attribute a) noexcept {
  return std::bit_cast<std::uintptr_t>(a) != 0;
}

/// A NUL-terminated name equals `s` (no strlen; stops at the first difference).
inline bool cstr_eq(const char* name, std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (name[i] != s[i]) return false;  // also stops at name's NUL (s holds none)
  return name[s.size()] == '\0';
}

/// a == b, inline (a literal b gives a fixed-size compare).
[[gnu::always_inline]] constexpr bool eq(std::string_view a, std::string_view b) noexcept {
  if (std::is_constant_evaluated()) return a == b;
  return a.size() == b.size() && (b.empty() || __builtin_memcmp(a.data(), b.data(), b.size()) == 0);
}

/// The name of an attribute given twice on n (pugixml accepts that; XML does not), or "".
/// When several names repeat, the smallest one (in byte order) is reported.
inline std::string_view duplicate_attribute(pugi::xml_node n) {
  constexpr std::size_t small = 16;
  const char* names[small];
  std::size_t k = 0;
  // no name() calls for the usual zero or one attribute
  pugi::xml_attribute first = n.first_attribute();
  if (!present(first)) return {};
  pugi::xml_attribute second = first.next_attribute();
  if (!present(second)) return {};
  for (pugi::xml_attribute a = first; present(a); a = a.next_attribute()) {
    if (k == small) {  // many attributes: sort them
      std::vector<std::string_view> all;
      for (auto b : n.attributes()) all.emplace_back(b.name());
      std::sort(all.begin(), all.end());
      auto it = std::adjacent_find(all.begin(), all.end());
      return it == all.end() ? std::string_view{} : *it;
    }
    names[k++] = a.name();
  }
  const char* best = nullptr;
  for (std::size_t i = 1; i < k; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (names[i][0] == names[j][0] && std::strcmp(names[i], names[j]) == 0) {
        if (!best || std::strcmp(names[i], best) < 0) best = names[i];
        break;
      }
  return best ? std::string_view(best) : std::string_view{};
}

/// Position of `name` in libvirt's element order `order`; unknown names sort last.
template <std::size_t N>
constexpr std::size_t stage_of(const std::string_view (&order)[N], std::string_view name) {
  for (std::size_t i = 0; i < N; ++i)
    if (eq(order[i], name)) return i;
  return N;
}

/// Sorts verbatim elements into the order they will be written in (stable), so that
/// parse(format(x)) == x holds for the extra lists.
template <std::size_t N>
void sort_by_stage(std::vector<xml_element>& v, const std::string_view (&order)[N]) {
  if (v.size() < 2) return;
  std::stable_sort(v.begin(), v.end(), [&](const xml_element& a, const xml_element& b) {
    return stage_of(order, a.name) < stage_of(order, b.name);
  });
}

/// Parses `text` into `doc`, enforcing size, DOCTYPE and depth limits; checks the root name.
inline result<pugi::xml_node> load(pugi::xml_document& doc, std::string_view text,
                                   const char* root_name, diagnostics& diag) {
  if (text.size() > max_document_size)
    return fail(diag, errc::xml_error,
                "XML document is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                    std::to_string(max_document_size) + " bytes");
  // parse_doctype so a DOCTYPE shows up as a node and can be refused (entities are never expanded).
  // parse_fragment keeps text outside the root as nodes, so it can be refused below.
  unsigned flags = (pugi::parse_default | pugi::parse_doctype | pugi::parse_fragment | pugi::parse_ws_pcdata_single) & ~pugi::parse_pi;
  auto res = doc.load_buffer(text.data(), text.size(), flags, pugi::encoding_utf8);
  // Syntax errors are VIR_ERR_XML_DETAIL, as libvirt reports libxml2's parse errors.
  if (!res)
    return fail(diag, errc::xml_detail,
                std::string("malformed XML: ") + res.description() + " at offset " +
                    std::to_string(res.offset));
  pugi::xml_node root;
  for (auto n = doc.first_child(); n; n = n.next_sibling()) {
    auto type = n.type();
    if (type == pugi::node_doctype)
      return fail(diag, errc::xml_error, "XML documents with a DOCTYPE are not accepted (entity declarations are refused)");
    if ((type == pugi::node_pcdata || type == pugi::node_cdata) &&
        std::string_view(n.value()).find_first_not_of(" \t\r\n") != std::string_view::npos)
      return fail(diag, errc::xml_detail, "malformed XML: text outside the root element");
    if (type == pugi::node_element) {
      if (root) return fail(diag, errc::xml_detail, "malformed XML: more than one root element");
      root = n;
    }
  }
  if (!root) return fail(diag, errc::xml_detail, "malformed XML: no root element");
  // one walk for depth and repeated attributes; pugixml's traverse() is iterative (as are
  // its parse and free) and does the navigation itself
  if (auto dup = duplicate_attribute(root); !dup.empty())
    return fail(diag, errc::xml_error,
                std::string("malformed XML: attribute '") + std::string(dup) + "' repeated on <" + root.name() + ">");
  {
    struct checker final : pugi::xml_tree_walker {
      pugi::xml_node bad;
      std::string_view dup;
      bool for_each(pugi::xml_node& n) override {
        // depth() is 0 for the root's children; the root is at depth 1. Only elements
        // count for depth and only elements have attributes.
        if (depth() + 2 > max_depth && n.type() == pugi::node_element) {
          bad = n;
          return false;
        }
        dup = duplicate_attribute(n);
        if (!dup.empty()) {
          bad = n;
          return false;
        }
        return true;
      }
    } check;
    root.traverse(check);
    if (check.bad) {
      if (check.dup.empty())
        return fail(diag, errc::xml_error,
                    "XML document nests elements deeper than the limit of " + std::to_string(max_depth));
      return fail(diag, errc::xml_error,
                  std::string("malformed XML: attribute '") + std::string(check.dup) + "' repeated on <" +
                      check.bad.name() + ">");
    }
  }
  if (std::strcmp(root.name(), root_name) != 0)
    return fail(diag, errc::xml_error,
                std::string("expected root element <") + root_name + ">, found <" + root.name() + ">");
  return root;
}

inline bool is_text(pugi::xml_node c) {
  auto t = c.type();
  return t == pugi::node_pcdata || t == pugi::node_cdata;
}

/// Text of the node's direct pcdata/cdata children: a view into the document when there is
/// at most one such child, else the concatenation, kept in `buf`.
inline std::string_view text_view(pugi::xml_node n, std::string& buf) {
  pugi::xml_node c = n.first_child();
  while (present(c) && !is_text(c)) c = c.next_sibling();
  if (!present(c)) return {};
  std::string_view first = c.value();
  pugi::xml_node d = c.next_sibling();
  while (present(d) && !is_text(d)) d = d.next_sibling();
  if (!present(d)) return first;
  buf.assign(first);
  for (; present(d); d = d.next_sibling())
    if (is_text(d)) buf += d.value();
  return buf;
}

/// Text of the node's direct pcdata/cdata children.
inline std::string text_of(pugi::xml_node n) {
  std::string buf;
  std::string_view v = text_view(n, buf);
  if (!buf.empty()) return buf;
  return std::string(v);
}

inline constexpr bool is_xml_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/// s without leading and trailing " \t\r\n".
inline std::string_view trim_view(std::string_view s) noexcept {
  std::size_t b = 0, e = s.size();
  while (b < e && is_xml_space(s[b])) ++b;
  while (e > b && is_xml_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

inline std::string trim(std::string_view s) { return std::string(trim_view(s)); }

/// trim(text_of(n)) without the intermediate copy.
inline std::string trimmed_text(pugi::xml_node n) {
  std::string buf;
  return std::string(trim_view(text_view(n, buf)));
}

inline bool is_known(std::string_view name, std::initializer_list<std::string_view> known) {
  for (auto k : known)
    if (eq(name, k)) return true;
  return false;
}
inline bool is_known(const char* name, std::initializer_list<std::string_view> known) {
  for (auto k : known)
    if (cstr_eq(name, k)) return true;
  return false;
}

/// Attributes of n whose name is not in `known`.
inline xml_attributes extra_attrs(pugi::xml_node n, std::initializer_list<std::string_view> known) {
  xml_attributes out;
  for (pugi::xml_attribute a = n.first_attribute(); present(a); a = a.next_attribute()) {
    const char* nm = a.name();
    if (!is_known(nm, known)) out.emplace_back(nm, a.value());
  }
  return out;
}

inline xml_element to_element(pugi::xml_node n) {
  xml_element e;
  e.name = n.name();
  for (auto a : n.attributes()) e.attributes.emplace_back(a.name(), a.value());
  for (auto c : n.children()) {
    if (c.type() == pugi::node_element) e.children.push_back(to_element(c));
    else if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) e.text += c.value();
  }
  // element-only content: drop pure indentation whitespace
  if (!e.children.empty() && e.text.find_first_not_of(" \t\r\n") == std::string::npos) e.text.clear();
  return e;
}

/// Child elements of n whose name is not in `known`, verbatim.
inline std::vector<xml_element> extra_children(pugi::xml_node n,
                                               std::initializer_list<std::string_view> known) {
  std::vector<xml_element> out;
  for (auto c : n.children())
    if (c.type() == pugi::node_element && !is_known(c.name(), known)) out.push_back(to_element(c));
  return out;
}

inline std::string attr(pugi::xml_node n, const char* name) { return n.attribute(name).value(); }

/// Walks the children of one element for the typed parser. Typed code "takes" the children
/// it understands; a child with attributes or sub-elements the typed model has no place for
/// is not taken, so rest() keeps it verbatim and nothing is lost.
/// The child elements are listed once (name and length) so that each take is a short scan.
class reader {
public:
  explicit reader(pugi::xml_node n) : node_(n) {
    for (pugi::xml_node c = n.first_child(); present(c); c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      add({std::bit_cast<std::uintptr_t>(c), c.name(), false});
    }
  }
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;
  pugi::xml_node node() const noexcept { return node_; }

  /// Number of child elements and the i-th one, in document order.
  std::size_t size() const noexcept { return size_; }
  pugi::xml_node child(std::size_t i) const noexcept { return std::bit_cast<pugi::xml_node>(items_[i].node); }
  std::string_view child_name(std::size_t i) const noexcept { return items_[i].name; }
  /// The i-th child element's name is `name`.
  bool child_is(std::size_t i, std::string_view name) const noexcept { return cstr_eq(items_[i].name, name); }
  bool is_claimed(std::size_t i) const noexcept { return items_[i].claimed; }
  void claim(std::size_t i) noexcept { items_[i].claimed = true; }

  /// First child `name` whose attributes are all in `attrs` and that has no child elements.
  pugi::xml_node take(std::string_view name, std::initializer_list<std::string_view> attrs = {}) {
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name) && plain(child(i), attrs)) return claim_at(i);
    return {};
  }
  /// First child `name`, whatever it holds (the typed code keeps its unknown content itself).
  pugi::xml_node take_any(std::string_view name) {
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name)) return claim_at(i);
    return {};
  }
  /// All plain children `name` in document order.
  std::vector<pugi::xml_node> take_all(std::string_view name, std::initializer_list<std::string_view> attrs = {}) {
    std::vector<pugi::xml_node> out;
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name) && plain(child(i), attrs)) out.push_back(claim_at(i));
    return out;
  }
  /// First child `name` with any attributes but no child elements (the typed code keeps unknown attributes).
  pugi::xml_node take_leaf(std::string_view name) {
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name) && plain_leaf(child(i))) return claim_at(i);
    return {};
  }
  std::vector<pugi::xml_node> take_all_leaf(std::string_view name) {
    std::vector<pugi::xml_node> out;
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name) && plain_leaf(child(i))) out.push_back(claim_at(i));
    return out;
  }
  std::vector<pugi::xml_node> take_all_any(std::string_view name) {
    std::vector<pugi::xml_node> out;
    for (std::size_t i = 0; i < size_; ++i)
      if (matches(i, name)) out.push_back(claim_at(i));
    return out;
  }
  static bool plain_leaf(pugi::xml_node c) {
    for (pugi::xml_node ch = c.first_child(); present(ch); ch = ch.next_sibling())
      if (ch.type() == pugi::node_element) return false;
    return true;
  }
  /// Child elements nobody took, verbatim, in document order.
  std::vector<xml_element> rest() const {
    std::vector<xml_element> out;
    for (std::size_t i = 0; i < size_; ++i)
      if (!items_[i].claimed) out.push_back(to_element(child(i)));
    return out;
  }

  static bool plain(pugi::xml_node c, std::initializer_list<std::string_view> attrs) {
    for (pugi::xml_attribute a = c.first_attribute(); present(a); a = a.next_attribute())
      if (!is_known(a.name(), attrs)) return false;
    return plain_leaf(c);
  }

private:
  struct item {
    std::uintptr_t node;  // the pugi::xml_node handle
    const char* name;
    bool claimed;
  };
  bool matches(std::size_t i, std::string_view name) const noexcept {
    const item& it = items_[i];
    return !it.claimed && cstr_eq(it.name, name);
  }
  pugi::xml_node claim_at(std::size_t i) noexcept {
    items_[i].claimed = true;
    return child(i);
  }
  void add(const item& it) {
    if (size_ == inline_cap) {
      heap_.assign(inline_, inline_ + size_);
      items_ = heap_.data();
    }
    if (size_ >= inline_cap) {
      heap_.push_back(it);
      items_ = heap_.data();
    } else {
      inline_[size_] = it;
    }
    ++size_;
  }
  static constexpr std::size_t inline_cap = 24;
  pugi::xml_node node_;
  item inline_[inline_cap];
  item* items_ = inline_;
  std::size_t size_ = 0;
  std::vector<item> heap_;
};

template <class T>
inline bool parse_uint(std::string_view s, T& out, int base = 10) {
  std::string_view v = trim_view(s);
  if (base == 16 || (base == 0 && v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))) {
    if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
    base = 16;
  } else if (base == 0) {
    base = 10;
  }
  if (v.empty() || v[0] == '-' || v[0] == '+') return false;
  if constexpr (std::is_unsigned_v<T>) {
    // what std::from_chars accepts (all of v in digits of `base`, no overflow), inline
    T n = 0;
    for (char c : v) {
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'z') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'Z') d = static_cast<unsigned>(c - 'A' + 10);
      else return false;
      if (d >= static_cast<unsigned>(base)) return false;
      if (__builtin_mul_overflow(n, static_cast<T>(base), &n) || __builtin_add_overflow(n, static_cast<T>(d), &n))
        return false;
    }
    out = n;
    return true;
  } else {
    auto r = std::from_chars(v.data(), v.data() + v.size(), out, base);
    return r.ec == std::errc{} && r.ptr == v.data() + v.size();
  }
}

/// Optional unsigned attribute; error names the element and attribute.
inline result<std::optional<unsigned>> opt_uint(pugi::xml_node n, const char* name, diagnostics& diag) {
  auto a = n.attribute(name);
  if (!a) return std::optional<unsigned>{};
  unsigned v = 0;
  if (!parse_uint(a.value(), v, 0))
    return fail(diag, errc::xml_detail,
                std::string("invalid value '") + a.value() + "' for attribute '" + name + "' of <" + n.name() +
                    ">: expected a non-negative integer");
  return std::optional<unsigned>{v};
}

inline result<std::optional<int>> opt_int(pugi::xml_node n, const char* name, diagnostics& diag) {
  auto a = n.attribute(name);
  if (!a) return std::optional<int>{};
  std::string_view t = trim_view(a.value());
  int v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || r.ec != std::errc{} || r.ptr != t.data() + t.size())
    return fail(diag, errc::xml_detail,
                std::string("invalid value '") + a.value() + "' for attribute '" + name + "' of <" + n.name() +
                    ">: expected an integer");
  return std::optional<int>{v};
}

// ------------------------------------------------------------------ writing

/// Writes libvirt-style XML straight into a growing buffer (no DOM). Small appends are
/// inline memcpy's into spare capacity; take() hands the finished std::string over.
class writer {
public:
  explicit writer(std::size_t initial = 4096) {
    buf_.resize(initial);
    data_ = buf_.data();
    cap_ = buf_.size();
  }

  std::string take() {
    buf_.resize(len_);
    len_ = 0;
    cap_ = 0;
    data_ = nullptr;
    return std::move(buf_);
  }
  std::size_t size() const noexcept { return len_; }
  void truncate(std::size_t n) noexcept { len_ = n; }

#define COVIRT_XML_INLINE [[gnu::always_inline]] inline
  COVIRT_XML_INLINE char* grow(std::size_t n) {
    if (len_ + n > cap_) [[unlikely]]
      grow_slow(n);
    return data_ + len_;
  }
  [[gnu::noinline]] void grow_slow(std::size_t n) {
    buf_.resize(std::max(buf_.size() * 2, len_ + n));
    data_ = buf_.data();
    cap_ = buf_.size();
  }
  COVIRT_XML_INLINE void raw(const char* s, std::size_t n) {
    std::memcpy(grow(n), s, n);
    len_ += n;
  }
  /// Appends a string literal (length known at compile time).
  template <std::size_t N>
  COVIRT_XML_INLINE void put(const char (&s)[N]) {
    raw(s, N - 1);
  }
  COVIRT_XML_INLINE void str(std::string_view s) { raw(s.data(), s.size()); }
  COVIRT_XML_INLINE void ch(char c) {
    *grow(1) = c;
    ++len_;
  }
  template <class N>
  void num(N v) {
    char* p = grow(24);
    auto r = std::to_chars(p, p + 24, v);
    len_ += static_cast<std::size_t>(r.ptr - p);
  }

  /// libvirt's virBufferEscapeString: < > & ' " as entities; other control chars dropped.
  /// Runs of plain characters are copied with one memcpy each.
  void esc(std::string_view s) {
    char* p = grow(s.size() * 6);
    char* const start = p;
    const char* in = s.data();
    const char* const end = in + s.size();
    while (in != end) {
      const char* run = in;
      while (in != end && !esc_special[static_cast<unsigned char>(*in)]) ++in;
      if (in != run) {
        copy_run(p, run, static_cast<std::size_t>(in - run));
        p += in - run;
        if (in == end) break;
      }
      switch (*in++) {
        case '<': std::memcpy(p, "&lt;", 4); p += 4; break;
        case '>': std::memcpy(p, "&gt;", 4); p += 4; break;
        case '&': std::memcpy(p, "&amp;", 5); p += 5; break;
        case '\'': std::memcpy(p, "&apos;", 6); p += 6; break;
        case '"': std::memcpy(p, "&quot;", 6); p += 6; break;
        case '\t': *p++ = '\t'; break;
        case '\n': *p++ = '\n'; break;
        case '\r': *p++ = '\r'; break;
        default: break;  // other control chars dropped
      }
    }
    len_ += static_cast<std::size_t>(p - start);
  }
  /// libxml2 xmlNodeDump escaping (double-quoted attributes), used for <metadata>.
  void esc_libxml(std::string_view s, bool attribute) {
    const char* in = s.data();
    const char* const end = in + s.size();
    while (in != end) {
      const char* run = in;
      while (in != end && !libxml_special(*in, attribute)) ++in;
      if (in != run) raw(run, static_cast<std::size_t>(in - run));
      if (in == end) break;
      switch (*in++) {
        case '<': put("&lt;"); break;
        case '>': put("&gt;"); break;
        case '&': put("&amp;"); break;
        case '"': put("&quot;"); break;   // attribute only
        case '\n': put("&#10;"); break;  // attribute only
        case '\r': put("&#13;"); break;
        case '\t': put("&#9;"); break;   // attribute only
      }
    }
  }

  COVIRT_XML_INLINE void indent(int depth) {
    static constexpr char spaces[] =
        "                                                                                ";
    std::size_t n = static_cast<std::size_t>(depth) * 2;
    while (n > sizeof spaces - 1) {
      raw(spaces, sizeof spaces - 1);
      n -= sizeof spaces - 1;
    }
    raw(spaces, n);
  }
  /// "  <name" (no '>')
  COVIRT_XML_INLINE void open(int depth, std::string_view name) {
    indent(depth);
    ch('<');
    str(name);
  }
  COVIRT_XML_INLINE void attr(std::string_view k, std::string_view v) {
    ch(' ');
    str(k);
    put("='");
    esc(v);
    ch('\'');
  }
  COVIRT_XML_INLINE void attr_if(std::string_view k, std::string_view v) {
    if (!v.empty()) attr(k, v);
  }
  template <class N>
  void attr_num(std::string_view k, N v) {
    ch(' ');
    str(k);
    put("='");
    num(v);
    ch('\'');
  }
  /// "  <name k='v'>\n": the start of an element with one number attribute and children.
  template <class N>
  void open_with_num(int depth, std::string_view name, std::string_view k, N v) {
    open(depth, name);
    attr_num(k, v);
    put(">\n");
  }
  template <class N>
  void attr_opt(std::string_view k, const std::optional<N>& v) {
    if (v) attr_num(k, *v);
  }
  void attrs(const xml_attributes& a) {
    for (auto& [k, v] : a) attr(k, v);
  }
  COVIRT_XML_INLINE void self_close() { put("/>\n"); }
  /// ">\n" and returns a mark; finish() closes either as "/>" (nothing written) or with an end tag.
  std::size_t begin_body() {
    put(">\n");
    return len_;
  }
  void finish(std::size_t mark, int depth, std::string_view name) {
    if (len_ == mark) {
      len_ = mark - 2;
      put("/>\n");
    } else {
      end_tag(depth, name);
    }
  }
  void end_tag(int depth, std::string_view name) {
    indent(depth);
    put("</");
    str(name);
    put(">\n");
  }
  /// ">text</name>\n" after an open tag
  void text_body(std::string_view name, std::string_view text) {
    ch('>');
    esc(text);
    put("</");
    str(name);
    put(">\n");
  }
  /// <name>text</name>
  void text_elem(int depth, std::string_view name, std::string_view text) {
    open(depth, name);
    text_body(name, text);
  }
  template <class N>
  void num_body(std::string_view name, N v) {
    ch('>');
    num(v);
    put("</");
    str(name);
    put(">\n");
  }
  template <class N>
  void num_elem(int depth, std::string_view name, N v) {
    open(depth, name);
    num_body(name, v);
  }
  void empty_elem(int depth, std::string_view name) {
    open(depth, name);
    self_close();
  }

  /// A verbatim element in libvirt style (single quotes, indented). Mixed content
  /// (text and children) is written inline.
  void element(int depth, const xml_element& e) {
    open(depth, e.name);
    attrs(e.attributes);
    if (e.children.empty() && e.text.empty()) {
      self_close();
      return;
    }
    if (e.children.empty()) {
      text_body(e.name, e.text);
      return;
    }
    if (!e.text.empty()) {
      ch('>');
      esc(e.text);
      for (auto& c : e.children) inline_element(c);
      put("</");
      str(e.name);
      put(">\n");
      return;
    }
    put(">\n");
    for (auto& c : e.children) element(depth + 1, c);
    end_tag(depth, e.name);
  }
  void inline_element(const xml_element& e) {
    ch('<');
    str(e.name);
    attrs(e.attributes);
    if (e.children.empty() && e.text.empty()) {
      put("/>");
      return;
    }
    ch('>');
    esc(e.text);
    for (auto& c : e.children) inline_element(c);
    put("</");
    str(e.name);
    ch('>');
  }
  void elements(int depth, const std::vector<xml_element>& v) {
    for (auto& e : v) element(depth, e);
  }

  /// libxml2 xmlNodeDump style, used by libvirt for <metadata> children.
  void libxml_element(int depth, const xml_element& e, bool indent_first = true) {
    if (indent_first) indent(depth);
    ch('<');
    str(e.name);
    for (auto& [k, v] : e.attributes) {
      ch(' ');
      str(k);
      put("=\"");
      esc_libxml(v, true);
      ch('"');
    }
    if (e.children.empty() && e.text.empty()) {
      put("/>");
      return;
    }
    ch('>');
    if (!e.text.empty() || e.children.empty()) {
      esc_libxml(e.text, false);
      for (auto& c : e.children) libxml_element(0, c, false);
    } else {
      for (auto& c : e.children) {
        ch('\n');
        libxml_element(depth + 1, c);
      }
      ch('\n');
      indent(depth);
    }
    put("</");
    str(e.name);
    ch('>');
  }

private:
  /// memcpy for a run of n bytes; short runs (most attribute values) without a library call.
  COVIRT_XML_INLINE static void copy_run(char* d, const char* s, std::size_t n) {
    if (n >= 8 && n <= 16) {
      std::uint64_t a, b;
      std::memcpy(&a, s, 8);
      std::memcpy(&b, s + n - 8, 8);
      std::memcpy(d, &a, 8);
      std::memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
      std::uint32_t a, b;
      std::memcpy(&a, s, 4);
      std::memcpy(&b, s + n - 4, 4);
      std::memcpy(d, &a, 4);
      std::memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
      for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
    } else {
      std::memcpy(d, s, n);
    }
  }
  /// Characters esc() does not copy as they are: < > & ' " and all control characters.
  static constexpr auto esc_special = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
    for (unsigned char c : {'<', '>', '&', '\'', '"'}) t[c] = true;
    return t;
  }();
  static constexpr bool libxml_special(char c, bool attribute) noexcept {
    switch (c) {
      case '<': case '>': case '&': case '\r': return true;
      case '"': case '\n': case '\t': return attribute;
      default: return false;
    }
  }
  std::string buf_;
  char* data_ = nullptr;
  std::size_t len_ = 0, cap_ = 0;
};
#undef COVIRT_XML_INLINE

}  // namespace covirt::detail::xml
