// covirt internal: helpers shared by the domain / network / capabilities XML code.
// Parsing with pugixml under limits, and a libvirt-style writer into std::string.
#pragma once

#include <covirt/domain/xml.hpp>

#include <pugixml.hpp>

#include <algorithm>
#include <charconv>
#include <vector>
#include <cstring>
#include <optional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace covirt::detail::xml {

inline constexpr std::size_t max_document_size = 10u * 1024u * 1024u;
inline constexpr int max_depth = 256;

// ------------------------------------------------------------------ parsing

/// The name of an attribute given twice on n (pugixml accepts that; XML does not), or "".
inline std::string_view duplicate_attribute(pugi::xml_node n) {
  std::vector<std::string_view> names;
  for (auto a : n.attributes()) names.emplace_back(a.name());
  std::sort(names.begin(), names.end());
  auto it = std::adjacent_find(names.begin(), names.end());
  return it == names.end() ? std::string_view{} : *it;
}

/// Position of `name` in libvirt's element order `order`; unknown names sort last.
template <std::size_t N>
constexpr std::size_t stage_of(const std::string_view (&order)[N], std::string_view name) {
  for (std::size_t i = 0; i < N; ++i)
    if (order[i] == name) return i;
  return N;
}

/// Sorts verbatim elements into the order they will be written in (stable), so that
/// parse(format(x)) == x holds for the extra lists.
template <std::size_t N>
void sort_by_stage(std::vector<xml_element>& v, const std::string_view (&order)[N]) {
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
  if (!res)
    return fail(diag, errc::xml_error,
                std::string("malformed XML: ") + res.description() + " at offset " +
                    std::to_string(res.offset));
  pugi::xml_node root;
  for (auto n : doc.children()) {
    if (n.type() == pugi::node_doctype)
      return fail(diag, errc::xml_error, "XML documents with a DOCTYPE are not accepted (entity declarations are refused)");
    if ((n.type() == pugi::node_pcdata || n.type() == pugi::node_cdata) &&
        std::string_view(n.value()).find_first_not_of(" \t\r\n") != std::string_view::npos)
      return fail(diag, errc::xml_error, "malformed XML: text outside the root element");
    if (n.type() == pugi::node_element) {
      if (root) return fail(diag, errc::xml_error, "malformed XML: more than one root element");
      root = n;
    }
  }
  if (!root) return fail(diag, errc::xml_error, "malformed XML: no root element");
  // iterative depth walk (pugixml itself parses and frees without recursion)
  {
    int depth = 1;
    pugi::xml_node cur = root;
    for (;;) {
      if (cur.type() == pugi::node_element && cur.first_attribute() &&
          cur.first_attribute().next_attribute()) {
        if (auto dup = duplicate_attribute(cur); !dup.empty())
          return fail(diag, errc::xml_error,
                      std::string("malformed XML: attribute '") + std::string(dup) + "' repeated on <" +
                          cur.name() + ">");
      }
      if (pugi::xml_node child = cur.first_child()) {
        cur = child;
        ++depth;
        if (child.type() == pugi::node_element && depth > max_depth)
          return fail(diag, errc::xml_error,
                      "XML document nests elements deeper than the limit of " + std::to_string(max_depth));
        continue;
      }
      while (cur != root && !cur.next_sibling()) {
        cur = cur.parent();
        --depth;
      }
      if (cur == root) break;
      cur = cur.next_sibling();
    }
  }
  if (std::strcmp(root.name(), root_name) != 0)
    return fail(diag, errc::xml_error,
                std::string("expected root element <") + root_name + ">, found <" + root.name() + ">");
  return root;
}

/// Text of the node's direct pcdata/cdata children.
inline std::string text_of(pugi::xml_node n) {
  std::string s;
  for (auto c : n.children())
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) s += c.value();
  return s;
}

inline bool is_known(std::string_view name, std::initializer_list<std::string_view> known) {
  for (auto k : known)
    if (k == name) return true;
  return false;
}

/// Attributes of n whose name is not in `known`.
inline xml_attributes extra_attrs(pugi::xml_node n, std::initializer_list<std::string_view> known) {
  xml_attributes out;
  for (auto a : n.attributes())
    if (!is_known(a.name(), known)) out.emplace_back(a.name(), a.value());
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
class reader {
public:
  explicit reader(pugi::xml_node n) : node_(n) {}
  pugi::xml_node node() const noexcept { return node_; }

  /// First child `name` whose attributes are all in `attrs` and that has no child elements.
  pugi::xml_node take(const char* name, std::initializer_list<std::string_view> attrs = {}) {
    for (auto c : node_.children(name))
      if (!claimed(c) && plain(c, attrs)) {
        claimed_.push_back(c);
        return c;
      }
    return {};
  }
  /// First child `name`, whatever it holds (the typed code keeps its unknown content itself).
  pugi::xml_node take_any(const char* name) {
    for (auto c : node_.children(name))
      if (!claimed(c)) {
        claimed_.push_back(c);
        return c;
      }
    return {};
  }
  /// All plain children `name` in document order.
  std::vector<pugi::xml_node> take_all(const char* name, std::initializer_list<std::string_view> attrs = {}) {
    std::vector<pugi::xml_node> out;
    for (auto c : node_.children(name))
      if (!claimed(c) && plain(c, attrs)) {
        claimed_.push_back(c);
        out.push_back(c);
      }
    return out;
  }
  /// First child `name` with any attributes but no child elements (the typed code keeps unknown attributes).
  pugi::xml_node take_leaf(const char* name) {
    for (auto c : node_.children(name))
      if (!claimed(c) && plain_leaf(c)) {
        claimed_.push_back(c);
        return c;
      }
    return {};
  }
  std::vector<pugi::xml_node> take_all_leaf(const char* name) {
    std::vector<pugi::xml_node> out;
    for (auto c : node_.children(name))
      if (!claimed(c) && plain_leaf(c)) {
        claimed_.push_back(c);
        out.push_back(c);
      }
    return out;
  }
  std::vector<pugi::xml_node> take_all_any(const char* name) {
    std::vector<pugi::xml_node> out;
    for (auto c : node_.children(name))
      if (!claimed(c)) {
        claimed_.push_back(c);
        out.push_back(c);
      }
    return out;
  }
  static bool plain_leaf(pugi::xml_node c) {
    for (auto ch : c.children())
      if (ch.type() == pugi::node_element) return false;
    return true;
  }
  /// Child elements nobody took, verbatim, in document order.
  std::vector<xml_element> rest() const;

  static bool plain(pugi::xml_node c, std::initializer_list<std::string_view> attrs) {
    for (auto a : c.attributes())
      if (!is_known(a.name(), attrs)) return false;
    for (auto ch : c.children())
      if (ch.type() == pugi::node_element) return false;
    return true;
  }

private:
  bool claimed(pugi::xml_node c) const {
    for (auto& k : claimed_)
      if (k == c) return true;
    return false;
  }
  pugi::xml_node node_;
  std::vector<pugi::xml_node> claimed_;
};

inline std::vector<xml_element> reader::rest() const {
  std::vector<xml_element> out;
  for (auto c : node_.children())
    if (c.type() == pugi::node_element && !claimed(c)) out.push_back(to_element(c));
  return out;
}


inline std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

template <class T>
inline bool parse_uint(std::string_view s, T& out, int base = 10) {
  std::string t = trim(s);
  std::string_view v = t;
  if (base == 16 || (base == 0 && v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))) {
    if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
    base = 16;
  } else if (base == 0) {
    base = 10;
  }
  if (v.empty() || v[0] == '-' || v[0] == '+') return false;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out, base);
  return r.ec == std::errc{} && r.ptr == v.data() + v.size();
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
  std::string t = trim(a.value());
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
  void esc(std::string_view s) {
    char* p = grow(s.size() * 6);
    char* const start = p;
    for (char c0 : s) {
      unsigned char c = static_cast<unsigned char>(c0);
      if (c > '>' || (c >= 0x20 && c != '<' && c != '>' && c != '&' && c != '\'' && c != '"')) {
        *p++ = c0;
        continue;
      }
      switch (c) {
        case '<': std::memcpy(p, "&lt;", 4); p += 4; break;
        case '>': std::memcpy(p, "&gt;", 4); p += 4; break;
        case '&': std::memcpy(p, "&amp;", 5); p += 5; break;
        case '\'': std::memcpy(p, "&apos;", 6); p += 6; break;
        case '"': std::memcpy(p, "&quot;", 6); p += 6; break;
        default:
          if (c == '\t' || c == '\n' || c == '\r') *p++ = c0;  // other control chars dropped
      }
    }
    len_ += static_cast<std::size_t>(p - start);
  }
  /// libxml2 xmlNodeDump escaping (double-quoted attributes), used for <metadata>.
  void esc_libxml(std::string_view s, bool attribute) {
    for (char c : s) {
      switch (c) {
        case '<': put("&lt;"); break;
        case '>': put("&gt;"); break;
        case '&': put("&amp;"); break;
        case '"': attribute ? put("&quot;") : ch(c); break;
        case '\n': attribute ? put("&#10;") : ch(c); break;
        case '\r': put("&#13;"); break;
        case '\t': attribute ? put("&#9;") : ch(c); break;
        default: ch(c);
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
  std::string buf_;
  char* data_ = nullptr;
  std::size_t len_ = 0, cap_ = 0;
};
#undef COVIRT_XML_INLINE

}  // namespace covirt::detail::xml
