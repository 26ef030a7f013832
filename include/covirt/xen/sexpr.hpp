// covirt: xend's S-expressions, sans-io. A reader for xend's whole grammar (both quote
// styles, backslash escapes, # comments) under limits, a compact writer in the form
// libvirt's xend driver sent, and libvirt's slash-path lookups.
#pragma once

#include <covirt/error.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace covirt::xen {

/// An atom (a string, quoted or bare on the wire) or a list of S-expressions.
struct sexpr {
  std::string atom;          // the value of an atom, unescaped
  std::vector<sexpr> list;   // the elements of a list
  bool is_list = false;

  static sexpr make_atom(std::string value);
  static sexpr make_list(std::vector<sexpr> elements = {});
  /// The first element's value when this is a list that starts with an atom, else "".
  std::string_view head() const noexcept;
  bool operator==(const sexpr&) const = default;
};

struct sexpr_limits {
  std::size_t max_bytes = 16 * 1024 * 1024;  // the whole input
  std::size_t max_depth = 256;               // nested lists
};

/// Reads one S-expression (a list or an atom) and nothing after it but whitespace and
/// comments. Errors are errc::sexpr_serial with a message naming line, column and offset
/// (unbalanced parentheses, an unterminated string, trailing garbage, invalid UTF-8, too
/// deep); an input over the size limit is refused before anything is read.
/// Atoms end at whitespace, '(' or ')'; '#' starts a comment where a token could start.
result<sexpr> parse_sexpr(std::string_view text, diagnostics& diag, const sexpr_limits& lim = {});

/// One line: atoms bare where they are safe (letters, digits, . - _ : / ~ @), otherwise in
/// '...' with \ and ' escaped; lists as libvirt wrote them: "(vm (name x)(memory 512))".
std::string format_sexpr(const sexpr& s);
/// An atom as format_sexpr writes it ("xvda", "'a b'", "''").
std::string format_atom(std::string_view value);

/// libvirt's sexpr_lookup: the first step of `path` names the head of `s` itself, each
/// further step the first child list whose head is that step ("domain/image/hvm/kernel").
/// Returns that list, or nullptr.
const sexpr* find(const sexpr& s, std::string_view path);
/// The first element after the head of find(s, path) when it is an atom ("" for `''`);
/// nullopt when the path is missing, has no value (`(bootloader)`) or its value is a list.
std::optional<std::string_view> value(const sexpr& s, std::string_view path);
/// Every child list of find(s, parent of path) whose head is the last step of `path`:
/// find_all(dom, "domain/device") gives each (device ...) in order.
std::vector<const sexpr*> find_all(const sexpr& s, std::string_view path);

}  // namespace covirt::xen
