// covirt internal: the attributes of a typed XML element, described once for its parser and
// its printer. A table of `field<T>` in libvirt's attribute order says, per attribute, where
// its value lives in T and how it is read and written; read_fields() fills a T from a node
// (unknown attributes into the element's extra list, bad numbers refused with the attribute's
// name) and write_fields() prints them back in the table's order.
#pragma once

#include "xml_util.hpp"

#include <utility>


namespace covirt::detail::xml {

/// How a field's value is written.
enum field_flags : unsigned char {
  when_set = 0,  // a string only when not empty, a number only when present
  always = 1,    // a string even when empty (libvirt's required attributes)
  secret = 2,    // only when the caller asks for security-sensitive data
};

/// One attribute of T. Without a member it is "known, read and written by the element's own
/// code": such an attribute is neither stored nor kept among the extras.
template <class T>
struct field {
  enum class kind : unsigned char { known, text, uns, sint, ulong };
  std::string_view name;
  kind k = kind::known;
  field_flags flags = when_set;
  union {
    std::nullptr_t none;
    std::string T::*text;
    std::optional<unsigned> T::*uns;
    std::optional<int> T::*sint;
    std::optional<unsigned long long> T::*ulong;
  };
  constexpr field(std::string_view n) : name(n), none(nullptr) {}
  constexpr field(std::string_view n, std::string T::*m, field_flags f = when_set)
      : name(n), k(kind::text), flags(f), text(m) {}
  constexpr field(std::string_view n, std::optional<unsigned> T::*m) : name(n), k(kind::uns), uns(m) {}
  constexpr field(std::string_view n, std::optional<int> T::*m) : name(n), k(kind::sint), sint(m) {}
  constexpr field(std::string_view n, std::optional<unsigned long long> T::*m) : name(n), k(kind::ulong), ulong(m) {}
};

namespace fields_detail {

inline result<void> bad_number(pugi::xml_node n, pugi::xml_attribute a, const char* expected, diagnostics& diag) {
  return fail(diag, errc::xml_detail,
              std::string("invalid value '") + a.value() + "' for attribute '" + a.name() + "' of <" + n.name() +
                  ">: expected " + expected);
}

template <class T>
result<void> store(pugi::xml_node n, pugi::xml_attribute a, const field<T>& f, T& obj, diagnostics& diag) {
  using kind = typename field<T>::kind;
  switch (f.k) {
    case kind::text: (obj.*f.text).assign(a.value()); break;
    case kind::uns: {
      unsigned v = 0;
      if (!parse_uint(a.value(), v, 0)) return bad_number(n, a, "a non-negative integer", diag);
      obj.*f.uns = v;
      break;
    }
    case kind::sint: {
      std::string_view t = trim_view(a.value());
      int v = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || r.ec != std::errc{} || r.ptr != t.data() + t.size())
        return bad_number(n, a, "an integer", diag);
      obj.*f.sint = v;
      break;
    }
    case kind::ulong: {
      unsigned long long v = 0;
      if (!parse_uint(a.value(), v)) return bad_number(n, a, "a non-negative integer", diag);
      obj.*f.ulong = v;
      break;
    }
    case kind::known: break;
  }
  return {};
}

}  // namespace fields_detail

/// One pass over n's attributes: those in `fs` are stored in obj (absent ones are left as they
/// are), the others appended to `extra` in document order.
template <class T, std::size_t N>
result<void> read_fields(pugi::xml_node n, T& obj, const field<T> (&fs)[N], xml_attributes& extra,
                         diagnostics& diag) {
  for (pugi::xml_attribute a = n.first_attribute(); present(a); a = a.next_attribute()) {
    const char* nm = a.name();
    const field<T>* hit = nullptr;
    for (auto& f : fs)
      if (cstr_eq(nm, f.name)) {
        hit = &f;
        break;
      }
    if (!hit) extra.emplace_back(nm, a.value());
    else if (auto ok = fields_detail::store(n, a, *hit, obj, diag); !ok) return ok;
  }
  return {};
}

namespace fields_detail {

template <const auto& Fs, std::size_t I, class T>
[[gnu::always_inline]] inline void write_one(writer& w, const T& obj, bool secure) {
  constexpr auto& f = Fs[I];
  using kind = typename field<T>::kind;
  if constexpr ((f.flags & secret) != 0)
    if (!secure) return;
  if constexpr (f.k == kind::text) {
    if constexpr ((f.flags & always) != 0) w.attr(f.name, obj.*f.text);
    else w.attr_if(f.name, obj.*f.text);
  } else if constexpr (f.k == kind::uns) {
    w.attr_opt(f.name, obj.*f.uns);
  } else if constexpr (f.k == kind::sint) {
    w.attr_opt(f.name, obj.*f.sint);
  } else if constexpr (f.k == kind::ulong) {
    w.attr_opt(f.name, obj.*f.ulong);
  }
}

}  // namespace fields_detail

/// The attributes of the table `Fs` from obj, in the table's order; `secure` admits the
/// secret ones. The table is a template argument, so each field's kind is known at compile
/// time and the printer is the sequence of writes one would write by hand.
template <const auto& Fs, class T>
void write_fields(writer& w, const T& obj, bool secure = true) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (fields_detail::write_one<Fs, I>(w, obj, secure), ...);
  }(std::make_index_sequence<std::size(Fs)>{});
}

/// `<name` + the fields + the extra attributes + `>`: an element with a body; the mark it
/// returns goes to w.finish(), which makes it `/>` if nothing was written inside.
template <const auto& Fs, class T>
std::size_t open_element(writer& w, int depth, std::string_view name, const T& obj, const xml_attributes& extra,
                         bool secure = true) {
  w.open(depth, name);
  write_fields<Fs>(w, obj, secure);
  w.attrs(extra);
  return w.begin_body();
}

/// `<name` + the fields + the extra attributes + `/>`: an element that is nothing but attributes.
template <const auto& Fs, class T>
void write_leaf(writer& w, int depth, std::string_view name, const T& obj, const xml_attributes& extra) {
  w.open(depth, name);
  write_fields<Fs>(w, obj);
  w.attrs(extra);
  w.self_close();
}

/// `<name attr='value'/>`, when value is not empty (libvirt's one-attribute elements).
inline void write_attr_leaf(writer& w, int depth, std::string_view name, std::string_view attr,
                            std::string_view value) {
  if (value.empty()) return;
  w.open(depth, name);
  w.attr(attr, value);
  w.self_close();
}

}  // namespace covirt::detail::xml
