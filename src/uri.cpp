#include <covirt/uri.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>
#include <charconv>

namespace covirt {

namespace {
constexpr std::array<std::string_view, 8> transports = {"unix", "tcp", "tls", "ssh", "ext", "libssh", "libssh2", "local"};

bool valid_scheme_part(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}
}  // namespace

std::optional<std::string> uri::param(std::string_view key) const {
  for (const auto& [k, v] : params)
    if (k == key) return v;
  return std::nullopt;
}

// Percent-encodes what cannot stand as it is in a query key or value.
static void append_query_part(std::string& out, std::string_view part) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (unsigned char c : part) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':' || c == '@' ||
        c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

static std::string compose(const uri& u, bool with_transport, bool with_params) {
  std::string s = u.driver;
  if (with_transport && !u.transport.empty()) s += "+" + u.transport;
  s += "://";
  if (!u.user.empty()) s += u.user + "@";
  if (u.host.find(':') != std::string::npos) s += "[" + u.host + "]";
  else s += u.host;
  if (u.port) s += ":" + std::to_string(*u.port);
  s += u.path.empty() ? "/" : u.path;
  if (with_params && !u.params.empty()) {
    char sep = '?';
    for (const auto& [k, v] : u.params) {
      s += sep;
      append_query_part(s, k);
      if (!v.empty()) {
        s += '=';
        append_query_part(s, v);
      }
      sep = '&';
    }
  }
  return s;
}

// libvirt's remote driver asks the daemon for the URI without transport, user, host and port.
std::string uri::without_transport() const { return driver + "://" + (path.empty() ? "/" : path); }
std::string uri::str() const { return compose(*this, true, true); }

result<uri> parse_uri(std::string_view text, diagnostics& diag) {
  auto bad = [&](std::string why) {
    return fail(diag, errc::invalid_arg, "malformed connection URI '" + std::string(text) + "': " + why);
  };
  if (text.empty()) return bad("it is empty");
  if (text.size() > 4096) return fail(diag, errc::invalid_arg, "connection URI is longer than 4096 characters");
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    if (text.find("://") == std::string_view::npos) return bad("it has no scheme (expected driver:///path, e.g. test:///default)");
    return bad(parsed.error().message());
  }
  boost::urls::url_view v = *parsed;
  uri u;
  u.original = std::string(text);
  std::string scheme(v.scheme());
  if (auto plus = scheme.find('+'); plus != std::string::npos) {
    u.driver = scheme.substr(0, plus);
    u.transport = scheme.substr(plus + 1);
    if (std::find(transports.begin(), transports.end(), u.transport) == transports.end())
      return bad("unknown transport '" + u.transport + "'");
  } else {
    u.driver = scheme;
  }
  for (char& c : u.driver) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!valid_scheme_part(u.driver)) return bad("the driver name '" + u.driver + "' is not valid");
  if (!v.has_authority()) return bad("expected '" + scheme + "://' followed by an optional host and a path");
  if (v.has_userinfo()) {
    // Not `bad`: the message must not carry the password into logs.
    if (v.has_password())
      return fail(diag, errc::invalid_arg, "malformed connection URI: passwords do not belong in connection URIs");
    u.user = std::string(v.user());
  }
  u.host = std::string(v.host_address());
  if (v.has_port()) {
    auto ps = v.port();
    unsigned port = 0;
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec != std::errc{} || p != ps.data() + ps.size() || port == 0 || port > 65535)
      return bad("port '" + std::string(ps) + "' is not a number from 1 to 65535");
    u.port = static_cast<unsigned short>(port);
  }
  u.path = std::string(v.path());
  if (!u.path.empty() && u.path[0] != '/') return bad("the path must be absolute");
  if (v.has_fragment()) return bad("fragments ('#...') are not allowed");
  for (auto p : v.params()) {
    if (p.key.empty()) return bad("a query parameter has no name");
    u.params.emplace_back(p.key, p.has_value ? p.value : std::string());
  }
  return u;
}

}  // namespace covirt
