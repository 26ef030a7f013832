// covirt: the domain model's public helpers: sizes, bitmaps (CPU and node lists), UUIDs,
// object names, the names libvirt derives (disk indexes, buses, MACs).

#include "codec.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

namespace covirt {

namespace x = detail::xml;

std::string_view device_address::get(std::string_view key) const noexcept {
  for (auto& [k, v] : attrs)
    if (k == key) return v;
  return {};
}

void device_address::set(std::string_view key, std::string value) {
  for (auto& [k, v] : attrs)
    if (k == key) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(std::string(key), std::move(value));
}

result<unsigned long long> parse_memory_kib(std::string_view value, std::string_view unit, diagnostics& diag) {
  std::string_view v = x::trim_view(value);
  unsigned long long n = 0;
  if (v.empty() || !x::parse_uint(v, n))
    return fail(diag, errc::xml_detail,
                "memory value '" + std::string(value) + "' is not a non-negative integer");
  // every known unit is at most 5 characters; longer ones are refused below either way
  char lower[8];
  if (unit.size() > sizeof lower)
    return fail(diag, errc::invalid_arg, "memory unit '" + std::string(unit) + "' is not known");
  for (std::size_t i = 0; i < unit.size(); ++i)
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(unit[i])));
  std::string_view u(lower, unit.size());
  unsigned long long scale = 0;
  if (u.empty()) scale = 1024;
  else if (u == "b" || u == "byte" || u == "bytes") scale = 1;
  else {
    static constexpr std::string_view prefixes = "kmgtpe";
    auto p = prefixes.find(u[0]);
    std::string_view rest = std::string_view(u).substr(1);
    unsigned long long base = 0;
    if (p != std::string_view::npos) {
      if (rest.empty() || rest == "ib") base = 1024;
      else if (rest == "b") base = 1000;
    }
    if (!base) return fail(diag, errc::invalid_arg, "memory unit '" + std::string(unit) + "' is not known");
    scale = 1;
    for (std::size_t i = 0; i <= p; ++i) scale *= base;
  }
  unsigned long long bytes = 0;
  if (__builtin_mul_overflow(n, scale, &bytes))
    return fail(diag, errc::invalid_arg,
                "memory value '" + std::string(v) + "' with unit '" + std::string(unit) + "' is too large");
  return bytes / 1024 + (bytes % 1024 ? 1 : 0);
}

namespace {
/// virSkipSpaces: the C locale's isspace.
constexpr bool bitmap_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
}  // namespace

// virBitmapParseInternal (limited) step by step: items "N", "N-M" (M >= N) and "^N", spaces
// around numbers and after commas, one trailing comma; "^N-M" is refused like libvirt does.
// Every number must be below `limit` (virBitmapSetBit/ClearBit on a bitmap of that size).
result<std::vector<unsigned>> parse_bitmap(std::string_view text, unsigned limit, diagnostics& diag) {
  auto bad = [&] { return fail(diag, errc::invalid_arg, "Failed to parse bitmap '" + std::string(text) + "'"); };
  std::vector<bool> on;
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto skip = [&] {
    while (i < n && bitmap_space(text[i])) ++i;
  };
  // virStrToLong_i: an int in base 10 (a sign is allowed where strtol allows it)
  auto number = [&](bool allow_sign, long long& out) {
    bool neg = false;
    if (allow_sign && i < n && (text[i] == '+' || text[i] == '-')) neg = text[i++] == '-';
    std::size_t start = i;
    long long v = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
      if (v > 2147483647LL + (neg ? 1 : 0)) return false;
    }
    if (i == start) return false;
    out = neg ? -v : v;
    return true;
  };
  auto fits = [&](long long bit) { return bit >= 0 && static_cast<unsigned long long>(bit) < limit; };
  auto set = [&](std::size_t bit, bool value) {
    if (bit >= on.size()) {
      if (!value) return;
      on.resize(bit + 1);
    }
    on[bit] = value;
  };
  skip();
  if (i == n) return bad();
  while (i < n) {
    bool neg = false;
    if (text[i] == '^') {
      ++i;
      neg = true;
    }
    if (i == n || text[i] < '0' || text[i] > '9') return bad();
    long long first = 0;
    if (!number(false, first)) return bad();
    skip();
    if (i == n || text[i] == ',') {
      if (!fits(first)) return bad();
      set(static_cast<std::size_t>(first), !neg);
    } else if (text[i] == '-') {
      if (neg) return bad();
      ++i;
      skip();
      long long last = 0;
      if (!number(true, last) || last < first) return bad();
      if (!fits(last)) return bad();
      for (long long b = first; b <= last; ++b) set(static_cast<std::size_t>(b), true);
      skip();
    }
    if (i < n && text[i] == ',') {
      ++i;
      skip();
    } else if (i < n) {
      return bad();
    }
  }
  std::vector<unsigned> members;
  for (std::size_t b = 0; b < on.size(); ++b)
    if (on[b]) members.push_back(static_cast<unsigned>(b));
  return members;
}

std::string format_bitmap(const std::vector<unsigned>& members) {
  std::vector<unsigned> sorted;
  const std::vector<unsigned>* m = &members;
  if (!std::is_sorted(members.begin(), members.end())) {
    sorted = members;
    std::sort(sorted.begin(), sorted.end());
    m = &sorted;
  }
  std::string out;
  for (std::size_t k = 0; k < m->size();) {
    unsigned first = (*m)[k], last = first;
    for (++k; k < m->size() && ((*m)[k] == last + 1 || (*m)[k] == last); ++k) last = (*m)[k];
    if (!out.empty()) out += ',';
    out += std::to_string(first);
    if (last != first) {
      out += '-';
      out += std::to_string(last);
    }
  }
  return out;
}

result<std::string> parse_uuid(std::string_view text, diagnostics& diag) {
  unsigned char b[16];
  std::size_t i = 0, pos = 0;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto bad = [&] { return fail(diag, errc::xml_detail, "uuid '" + std::string(text) + "' is not a valid UUID"); };
  while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  while (i < 16) {
    if (pos >= text.size()) return bad();
    if (text[pos] == '-' || text[pos] == ' ') {
      ++pos;
      continue;
    }
    if (pos + 1 >= text.size()) return bad();
    int h = hex(text[pos]), l = hex(text[pos + 1]);
    if (h < 0 || l < 0) return bad();
    b[i++] = static_cast<unsigned char>(h * 16 + l);
    pos += 2;
  }
  while (pos < text.size())
    if (!std::isspace(static_cast<unsigned char>(text[pos++]))) return bad();
  // "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(36, '-');
  for (std::size_t k = 0, o = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) ++o;
    out[o++] = digits[b[k] >> 4];
    out[o++] = digits[b[k] & 15];
  }
  return out;
}

namespace {
std::mt19937_64& rng() {
  thread_local std::mt19937_64 g{std::random_device{}()};
  return g;
}
}  // namespace

std::string generate_uuid() {
  unsigned char b[16];
  auto a = rng()(), c = rng()();
  std::memcpy(b, &a, 8);
  std::memcpy(b + 8, &c, 8);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

result<void> check_object_name(std::string_view what, std::string_view name, diagnostics& diag) {
  std::string w(what);
  if (name.empty()) return fail(diag, errc::xml_detail, w + " name must not be empty");
  if (name.find('/') != std::string_view::npos)
    return fail(diag, errc::xml_detail, w + " name '" + std::string(name) + "' must not contain '/'");
  if (name[0] == '.')
    return fail(diag, errc::xml_detail, w + " name '" + std::string(name) + "' must not start with '.'");
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fail(diag, errc::xml_detail, w + " name must not contain control characters");
  return {};
}

/// virDiskNameToIndex: "sda" -> 0, "hdc" -> 2, "vdaa" -> 26; -1 if not a disk name.
int disk_name_to_index(std::string_view name) {
  static constexpr std::string_view prefixes[] = {"fd", "hd", "vd", "sd", "xvd", "ubd"};
  std::string_view p;
  for (auto pr : prefixes)
    if (name.substr(0, pr.size()) == pr) {
      p = pr;
      break;
    }
  if (p.empty()) return -1;
  std::string_view rest = name.substr(p.size());
  if (rest.empty()) return -1;
  std::size_t i = 0;
  // straightforward re-implementation of libvirt's loop
  int r = 0;
  auto letter = [&](std::size_t k) { return k < rest.size() && rest[k] >= 'a' && rest[k] <= 'z'; };
  // At most 6 letters: 26^6 fits an int, and no bus has more disks than that.
  for (i = 0; i < 6 && letter(i); ++i) r = (r + (i ? 1 : 0)) * 26 + (rest[i] - 'a');
  if (i == 0 || letter(i)) return -1;
  for (; i < rest.size(); ++i)
    if (rest[i] < '0' || rest[i] > '9') return -1;  // partition numbers allowed
  return r;
}

std::string bus_from_dev(std::string_view dev) {
  if (dev.substr(0, 2) == "hd") return "ide";
  if (dev.substr(0, 2) == "sd") return "scsi";
  if (dev.substr(0, 2) == "vd") return "virtio";
  if (dev.substr(0, 3) == "xvd") return "xen";
  if (dev.substr(0, 2) == "fd") return "fdc";
  if (dev.substr(0, 3) == "ubd") return "uml";
  return "ide";
}

std::string random_mac() {
  auto v = rng()();
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", static_cast<unsigned>(v & 0xff),
                static_cast<unsigned>((v >> 8) & 0xff), static_cast<unsigned>((v >> 16) & 0xff));
  return buf;
}

}  // namespace covirt
