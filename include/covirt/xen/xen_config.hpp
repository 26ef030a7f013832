// covirt: Xen's xm / xl domain config files (/etc/xen/NAME), sans-io.
//
// The grammar is libvirt's virconf subset of Python: `name = value` statements ended by a
// newline or `;`, `#` comments, values that are strings ('x', "x", """x"""), signed integers
// or lists of values (spanning lines, trailing comma allowed). Lookups take the first entry of
// a name, as libvirt does. The conversions to and from covirt::domain_config follow libvirt 9's
// `virsh domxml-from-native xen-xm|xen-xl` and `domxml-to-native`.
#pragma once

#include <covirt/domain/xml.hpp>
#include <covirt/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace covirt::xen {

/// One value of a config file: a string, an integer or a list of values.
struct conf_value {
  enum class kind { string, integer, list };
  kind type = kind::string;
  std::string str;                // kind::string
  long long num = 0;              // kind::integer
  std::vector<conf_value> items;  // kind::list
  bool operator==(const conf_value&) const = default;

  static conf_value string(std::string s);
  static conf_value integer(long long n);
  static conf_value list(std::vector<conf_value> v);
};

struct conf_entry {
  std::string name;
  conf_value value;
  bool operator==(const conf_entry&) const = default;
};

/// The entries of a file in their order (comments are not kept).
struct conf_file {
  std::vector<conf_entry> entries;
  /// The first entry named `name`, or nullptr.
  const conf_value* get(std::string_view name) const noexcept;
  /// Replaces the first entry named `name` in place, or appends one (libvirt's virConfSetValue).
  void set(std::string_view name, conf_value v);
  bool operator==(const conf_file&) const = default;
};

struct conf_limits {
  std::size_t max_bytes = 1024 * 1024;  // the whole input
  std::size_t max_depth = 16;           // nested lists
};

/// Parses a config file. Malformed input gives errc::conf_syntax and a message naming the line
/// ("line 3: unterminated string"); input over the size limit is refused before it is read.
result<conf_file> parse_xen_conf(std::string_view text, diagnostics& diag, const conf_limits& limits = {});

/// Prints as libvirt's virConfWriteMem: `name = value` lines, integers bare, strings in double
/// quotes (single if the string holds a double quote, triple if it holds a newline), lists
/// `[ "a", "b" ]`.
std::string format_xen_conf(const conf_file& conf);

// ------------------------------------------------------------- domain conversions (xm_domain.cpp)

/// xm config (xend's format) to a domain, as libvirt's xenParseXM.
result<domain_config> domain_from_xm(const conf_file& conf, diagnostics& diag);
/// xl config (libxl's format) to a domain, as libvirt's xenParseXL.
result<domain_config> domain_from_xl(const conf_file& conf, diagnostics& diag);
/// A domain to an xm config, as libvirt's xenFormatXM (its key order).
result<conf_file> domain_to_xm(const domain_config& dom, diagnostics& diag);
/// A domain to an xl config, as libvirt's xenFormatXL (its key order).
result<conf_file> domain_to_xl(const domain_config& dom, diagnostics& diag);

/// `virsh domxml-from-native xen-xm FILE`: config text to domain XML.
result<std::string> xm_to_domain_xml(std::string_view conf_text, diagnostics& diag);
/// `virsh domxml-from-native xen-xl FILE`.
result<std::string> xl_to_domain_xml(std::string_view conf_text, diagnostics& diag);
/// `virsh domxml-to-native xen-xm FILE`: domain XML to config text.
result<std::string> domain_xml_to_xm(std::string_view xml, diagnostics& diag);
/// `virsh domxml-to-native xen-xl FILE`.
result<std::string> domain_xml_to_xl(std::string_view xml, diagnostics& diag);

}  // namespace covirt::xen
