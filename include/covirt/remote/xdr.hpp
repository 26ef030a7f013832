// covirt::remote::xdr — the XDR encoding libvirt's RPC protocol uses (RFC 4506's subset), sans-io.
//
// A message is a plain struct described once with BOOST_DESCRIBE_STRUCT; the same description
// encodes and decodes it, so the two cannot drift apart. What each C++ type means on the wire:
//   bool, (u)int8/16/32, enums  4 bytes big-endian (char and short members are promoted, as XDR does)
//   (u)int64                    8 bytes ("hyper")        double  8 bytes IEEE 754
//   std::string                 string<string_max>: length, bytes, zero padding to 4
//   fixed_opaque<N>             opaque[N]: N bytes, padding (remote_uuid is fixed_opaque<16>)
//   opaque<Max>                 opaque<Max>: length, bytes, padding
//   std::array<T, N>            T[N]: N elements, no count
//   list<T, Max>                T<Max>: count, then the elements
//   std::optional<T>            T*: 0, or 1 then T
//   tagged_union<First, T...>   union switch (int) { case First: T0; case First + 1: T1; ... }
//   a described struct          its members in order
// Another kind of union (a default arm, cases that are not consecutive) writes its own
// xdr_put/xdr_get members.
// Decoding checks every length against its bound and against the bytes left before it
// allocates, and names what was wrong and where.
#pragma once

#include <covirt/error.hpp>

#include <boost/describe/members.hpp>
#include <boost/describe/class.hpp>
#include <boost/mp11/algorithm.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace covirt::remote::xdr {

/// REMOTE_STRING_MAX / VIR_NET_MESSAGE_STRING_MAX (libvirt 9.0).
inline constexpr std::uint32_t string_max = 4194304;

template <std::size_t N>
struct fixed_opaque {
  std::array<unsigned char, N> bytes{};
  bool operator==(const fixed_opaque&) const = default;
};

template <std::uint32_t Max>
struct opaque {
  std::string bytes;
  bool operator==(const opaque&) const = default;
};

/// A variable array whose count may not pass Max.
template <class T, std::uint32_t Max>
struct list : std::vector<T> {
  static constexpr std::uint32_t max = Max;
  using std::vector<T>::vector;
};

/// An XDR discriminated union whose cases are consecutive from First, one arm each, no default:
/// the discriminant on the wire is First + the variant's index. Arms may repeat a type (libvirt's
/// remote_typed_param_value has two int arms); the index, not the type, tells them apart.
/// Decoding refuses a discriminant with no arm.
template <std::int32_t First, class... T>
struct tagged_union {
  static constexpr std::int32_t first = First;
  static constexpr std::size_t arms = sizeof...(T);
  std::variant<T...> value;
  bool operator==(const tagged_union&) const = default;
};

class encoder;
class decoder;

namespace detail {
template <class T> struct is_list : std::false_type {};
template <class T, std::uint32_t M> struct is_list<list<T, M>> : std::true_type {};
template <class T> struct is_fixed_opaque : std::false_type {};
template <std::size_t N> struct is_fixed_opaque<fixed_opaque<N>> : std::true_type {};
template <class T> struct is_opaque : std::false_type {};
template <std::uint32_t M> struct is_opaque<opaque<M>> : std::true_type {};
template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_array : std::false_type {};
template <class T, std::size_t N> struct is_array<std::array<T, N>> : std::true_type {};
template <class T> struct is_tagged_union : std::false_type {};
template <std::int32_t F, class... A> struct is_tagged_union<tagged_union<F, A...>> : std::true_type {};
template <class T> concept own_codec = requires(const T& t) { t.xdr_put(std::declval<encoder&>()); };
template <class T> concept described = boost::describe::has_describe_members<T>::value;
constexpr std::size_t pad(std::size_t n) noexcept { return (4 - n % 4) % 4; }
}  // namespace detail

/// Appends XDR to a string.
class encoder {
public:
  explicit encoder(std::string& out) noexcept : out_(out) {}

  void u32(std::uint32_t v) {
    const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    out_.append(b, 4);
  }
  void u64(std::uint64_t v) {
    u32(std::uint32_t(v >> 32));
    u32(std::uint32_t(v));
  }
  void raw_padded(std::string_view b) {
    out_.append(b);
    out_.append(detail::pad(b.size()), '\0');
  }
  void counted(std::string_view b) {
    u32(std::uint32_t(b.size()));
    raw_padded(b);
  }

  template <class T>
  void put(const T& v) {
    using namespace detail;
    if constexpr (std::is_same_v<T, bool>) u32(v ? 1 : 0);
    else if constexpr (std::is_enum_v<T>) u32(std::uint32_t(static_cast<std::underlying_type_t<T>>(v)));
    else if constexpr (std::is_integral_v<T> && sizeof(T) <= 4) u32(std::uint32_t(std::int32_t(v)));
    else if constexpr (std::is_integral_v<T>) u64(std::uint64_t(v));
    else if constexpr (std::is_same_v<T, double>) {
      std::uint64_t bits;
      std::memcpy(&bits, &v, 8);
      u64(bits);
    } else if constexpr (std::is_same_v<T, std::string>) counted(v);
    else if constexpr (is_fixed_opaque<T>::value)
      raw_padded({reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size()});
    else if constexpr (is_opaque<T>::value) counted(v.bytes);
    else if constexpr (is_array<T>::value) for (const auto& e : v) put(e);
    else if constexpr (is_list<T>::value) {
      u32(std::uint32_t(v.size()));
      for (const auto& e : v) put(e);
    } else if constexpr (is_optional<T>::value) {
      u32(v ? 1 : 0);
      if (v) put(*v);
    } else if constexpr (is_tagged_union<T>::value) {
      const std::size_t arm = v.value.index();  // a valueless variant cannot be sent
      u32(std::uint32_t(T::first + std::int32_t(arm)));
      boost::mp11::mp_with_index<T::arms>(arm, [&](auto i) { put(std::get<decltype(i)::value>(v.value)); });
    } else if constexpr (own_codec<T>) v.xdr_put(*this);
    else if constexpr (described<T>)
      boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_public>>(
          [&](auto m) { put(v.*m.pointer); });
    else static_assert(sizeof(T) == 0, "no XDR encoding for this type");
  }

private:
  std::string& out_;
};

/// Reads XDR from a byte string; the first error stops it and stays in error().
class decoder {
public:
  explicit decoder(std::string_view in) noexcept : in_(in) {}

  bool ok() const noexcept { return err_.empty(); }
  /// What went wrong, with the byte offset ("a string of 9 bytes at byte 4 passes the end of
  /// the record (8 bytes)").
  const std::string& error() const noexcept { return err_; }
  std::size_t offset() const noexcept { return pos_; }
  std::size_t left() const noexcept { return in_.size() - pos_; }

  bool u32(std::uint32_t& v) {
    if (!need(4, "a 4-byte value")) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
    v = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
    pos_ += 4;
    return true;
  }
  bool u64(std::uint64_t& v) {
    std::uint32_t hi = 0, lo = 0;
    if (!need(8, "an 8-byte value") || !u32(hi) || !u32(lo)) return false;
    v = std::uint64_t(hi) << 32 | lo;
    return true;
  }
  bool raw_padded(std::size_t n, std::string_view& out, const char* what) {
    const std::size_t total = n + detail::pad(n);
    if (!need(total, what)) return false;
    out = in_.substr(pos_, n);
    for (std::size_t i = n; i < total; ++i)
      if (in_[pos_ + i] != '\0') return fail("nonzero padding after " + std::string(what));
    pos_ += total;
    return true;
  }
  bool counted(std::string& out, std::uint32_t max, const char* what) {
    const std::size_t at = pos_;
    std::uint32_t n = 0;
    if (!u32(n)) return false;
    if (n > max)
      return fail_at(at, std::string(what) + " of " + std::to_string(n) + " bytes passes its limit of " +
                             std::to_string(max));
    std::string_view b;
    if (!raw_padded(n, b, what)) return false;
    out.assign(b);
    return true;
  }

  template <class T>
  bool get(T& v) {
    using namespace detail;
    if (!ok()) return false;
    if constexpr (std::is_same_v<T, bool>) {
      std::uint32_t x = 0;
      if (!u32(x)) return false;
      if (x > 1) return fail_at(pos_ - 4, "a bool of " + std::to_string(x));
      v = x == 1;
    } else if constexpr (std::is_enum_v<T>) {
      std::uint32_t x = 0;
      if (!u32(x)) return false;
      v = static_cast<T>(static_cast<std::underlying_type_t<T>>(x));
    } else if constexpr (std::is_integral_v<T> && sizeof(T) <= 4) {
      std::uint32_t x = 0;
      if (!u32(x)) return false;
      v = static_cast<T>(x);
    } else if constexpr (std::is_integral_v<T>) {
      std::uint64_t x = 0;
      if (!u64(x)) return false;
      v = static_cast<T>(x);
    } else if constexpr (std::is_same_v<T, double>) {
      std::uint64_t bits = 0;
      if (!u64(bits)) return false;
      std::memcpy(&v, &bits, 8);
    } else if constexpr (std::is_same_v<T, std::string>) {
      return counted(v, string_max, "a string");
    } else if constexpr (is_fixed_opaque<T>::value) {
      std::string_view b;
      if (!raw_padded(v.bytes.size(), b, "a fixed opaque")) return false;
      std::memcpy(v.bytes.data(), b.data(), b.size());
    } else if constexpr (is_opaque<T>::value) {
      return counted(v.bytes, opaque_max<T>(), "an opaque");
    } else if constexpr (is_array<T>::value) {
      for (auto& e : v)
        if (!get(e)) return false;
    } else if constexpr (is_list<T>::value) {
      const std::size_t at = pos_;
      std::uint32_t n = 0;
      if (!u32(n)) return false;
      if (n > T::max)
        return fail_at(at, "an array of " + std::to_string(n) + " elements passes its limit of " +
                               std::to_string(T::max));
      // Every element takes at least 4 bytes: a count the record cannot hold allocates nothing.
      if (std::size_t(n) * 4 > left())
        return fail_at(at, "an array of " + std::to_string(n) + " elements passes the end of the record (" +
                               std::to_string(in_.size()) + " bytes)");
      v.clear();
      v.resize(n);
      for (auto& e : v)
        if (!get(e)) return false;
    } else if constexpr (is_optional<T>::value) {
      bool present = false;
      if (!get(present)) return false;
      if (!present) {
        v.reset();
        return true;
      }
      return get(v.emplace());
    } else if constexpr (is_tagged_union<T>::value) {
      const std::size_t at = pos_;
      std::uint32_t raw = 0;
      if (!u32(raw)) return false;
      const std::int64_t arm = std::int64_t(std::int32_t(raw)) - T::first;
      if (arm < 0 || arm >= std::int64_t(T::arms))
        return fail_at(at, "a union discriminant of " + std::to_string(std::int32_t(raw)) + " (its cases are " +
                               std::to_string(T::first) + " to " +
                               std::to_string(T::first + std::int32_t(T::arms) - 1) + ")");
      return boost::mp11::mp_with_index<T::arms>(std::size_t(arm), [&](auto i) {
        return get(v.value.template emplace<decltype(i)::value>());
      });
    } else if constexpr (own_codec<T>) {
      return v.xdr_get(*this);
    } else if constexpr (described<T>) {
      bool good = true;
      boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_public>>(
          [&](auto m) { good = good && get(v.*m.pointer); });
      return good;
    } else {
      static_assert(sizeof(T) == 0, "no XDR decoding for this type");
    }
    return ok();
  }

  bool fail(std::string what) { return fail_at(pos_, std::move(what)); }
  bool fail_at(std::size_t at, std::string what) {
    if (err_.empty()) err_ = what + " at byte " + std::to_string(at);
    return false;
  }

private:
  template <class T>
  static constexpr std::uint32_t opaque_max() {
    return []<std::uint32_t M>(opaque<M>*) { return M; }(static_cast<T*>(nullptr));
  }
  bool need(std::size_t n, const char* what) {
    if (n <= left()) return true;
    return fail(std::string(what) + " of " + std::to_string(n) + " bytes passes the end of the record (" +
                std::to_string(in_.size()) + " bytes)");
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  std::string err_;
};

/// The XDR of v.
template <class T>
std::string encode(const T& v) {
  std::string out;
  encoder(out).put(v);
  return out;
}

/// v from exactly the bytes of `in`; errc::rpc naming what was wrong (`what` says which message).
template <class T>
result<T> decode(std::string_view in, std::string_view what, diagnostics& diag) {
  T v{};
  decoder d(in);
  if (d.get(v) && d.left() != 0) d.fail(std::to_string(d.left()) + " bytes after the end of the message");
  if (!d.ok()) return fail(diag, errc::rpc, "malformed " + std::string(what) + ": " + d.error());
  return v;
}

}  // namespace covirt::remote::xdr
