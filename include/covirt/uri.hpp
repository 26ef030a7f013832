// covirt: libvirt connection URIs.
#pragma once

#include <covirt/error.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace covirt {

/// A parsed libvirt connection URI: `driver[+transport]://[user@][host][:port]/path[?k=v&...]`.
/// Examples: "test:///default", "qemu:///session", "qemu+unix:///system?socket=/run/x.sock",
/// "qemu+tcp://host:16509/system", "xen:///", "test:///tmp/node.xml".
struct uri {
  std::string original;   ///< as given
  std::string driver;     ///< "test", "qemu", "xen", ...
  std::string transport;  ///< "" (local), "unix", "tcp", "tls", "ssh", "ext", "libssh", "libssh2"
  std::string user;
  std::string host;
  std::optional<unsigned short> port;
  std::string path;       ///< "/default", "/system", "/session", "/abs/file.xml" or ""
  std::vector<std::pair<std::string, std::string>> params;  ///< decoded query, in order

  /// The value of a query parameter ("socket", "config_dir", ...), if given.
  std::optional<std::string> param(std::string_view key) const;
  /// The URI as libvirtd is asked for it: no transport, user, host, port or query ("qemu:///system").
  std::string without_transport() const;
  /// True when no host is named and no transport is given: the driver runs in this process.
  bool is_local() const noexcept { return transport.empty() && host.empty(); }
  /// The canonical text form.
  std::string str() const;
};

/// Parses `text`. Errors: errc::invalid_arg with a message naming the problem
/// ("URI 'foo' has no scheme", "unknown transport 'bogus' in 'qemu+bogus:///system'").
result<uri> parse_uri(std::string_view text, diagnostics& diag);

}  // namespace covirt
