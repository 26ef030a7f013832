// covirt internals: what the two halves of the domain S-expression codec share
// (sxpr_read.cpp: S-expression -> domain_config; sxpr_write.cpp: domain_config -> (vm ...)):
// strict numbers, lookups, the value sets libvirt's xen_sxpr.c accepted.
#pragma once

#include <covirt/xen/sxpr_domain.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#define COVIRT_SXPR_CHECK(expr) \
  do {                          \
    auto r_ = (expr);           \
    if (!r_) return r_.error(); \
  } while (0)

namespace covirt::xen::sxpr_impl {

/// The value of the child (key v) of a list whose head is anything: (vbd (dev xvda)) -> "xvda".
inline std::optional<std::string_view> child_value(const sexpr& l, std::string_view key) {
  for (std::size_t i = 1; i < l.list.size(); ++i) {
    auto& c = l.list[i];
    if (c.is_list && c.head() == key) {
      if (c.list.size() < 2 || c.list[1].is_list) return std::nullopt;
      return std::string_view(c.list[1].atom);
    }
  }
  return std::nullopt;
}

/// strtol(…, 0) strictly: optional sign, decimal, 0x hex or 0 octal, nothing after.
inline result<long long> number(std::string_view v, std::string_view key, diagnostics& diag) {
  std::string_view s = v;
  bool neg = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) neg = s.front() == '-', s.remove_prefix(1);
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
  else if (s.size() > 1 && s[0] == '0') base = 8, s.remove_prefix(1);
  long long n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n, base);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size())
    return fail(diag, errc::parse_failed, std::string(key) + ": '" + std::string(v) + "' is not a number");
  return neg ? -n : n;
}

/// An optional number at a path: 0 when absent, like libvirt's sexpr_int.
inline result<long long> int_at(const sexpr& root, std::string_view path, diagnostics& diag) {
  auto v = value(root, path);
  if (!v || v->empty()) return 0LL;
  return number(*v, path, diag);
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

inline std::string hexnum(long long v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", width, v);
  return buf;
}

inline constexpr std::string_view lifecycle_actions[] = {"destroy", "restart", "rename-restart", "preserve",
                                                  "coredump-destroy", "coredump-restart"};
inline constexpr std::string_view chr_types[] = {"null", "vc", "pty", "dev", "file", "pipe", "stdio", "udp", "tcp", "unix"};
inline constexpr std::string_view sound_models[] = {"sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb"};
inline constexpr std::string_view disk_formats[] = {"raw", "qcow", "qcow2", "qed", "vmdk", "vhd", "vpc", "cow", "dmg", "iso",
                                             "bochs", "cloop", "fat", "vdi", "ploop"};

template <std::size_t N>
bool known(const std::string_view (&set)[N], std::string_view v) {
  return std::find(std::begin(set), std::end(set), v) != std::end(set);
}

}  // namespace covirt::xen::sxpr_impl
