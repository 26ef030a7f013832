// covirt internals: the HOST[:PORT] part of a migration URI, split the same way for every driver
// (the QEMU driver's tcp://, the Xen driver's xenmigr://): "host", "host:port", "[v6]:port".
#pragma once

#include <covirt/error.hpp>

#include <string>
#include <string_view>

namespace covirt::detail {

struct host_port {
  std::string host;  // may be empty ("" or ":PORT"): the caller picks a default or refuses
  std::string port;  // empty when none is given; else digits, at most 65535
  bool empty_port = false;  // "host:": a colon with no port after it (the caller decides)
};

/// `u` is the authority, `uri` the whole URI the errors name ("migration URI 'x' has a bad host").
inline result<host_port> split_host_port(std::string_view u, std::string_view uri, diagnostics& diag) {
  const std::string q = "migration URI '" + std::string(uri) + "'";
  host_port hp;
  std::string_view rest;
  if (!u.empty() && u.front() == '[') {  // [IPv6]:PORT
    const auto close = u.find(']');
    if (close == std::string_view::npos) return fail(diag, errc::invalid_arg, q + " has a bad host");
    hp.host = std::string(u.substr(1, close - 1));
    rest = u.substr(close + 1);
  } else {
    const auto colon = u.find(':');
    hp.host = std::string(u.substr(0, colon));
    if (colon != std::string_view::npos) rest = u.substr(colon);
  }
  if (!rest.empty()) {
    if (rest.front() != ':') return fail(diag, errc::invalid_arg, q + " has a bad host");
    const std::string_view p = rest.substr(1);
    hp.empty_port = p.empty();
    if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string_view::npos ||
        (!p.empty() && std::stoi(std::string(p)) > 65535))
      return fail(diag, errc::invalid_arg, q + " has a bad port");
    hp.port = std::string(p);
  }
  return hp;
}

}  // namespace covirt::detail
