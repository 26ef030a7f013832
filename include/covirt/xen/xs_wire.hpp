// covirt::xen::wire — xenstore's wire protocol, sans-io (Xen's xs_wire.h and docs/misc/xenstore.txt).
//
// A message is a 16-byte header — type, req_id, tx_id, len: four u32 in the host's byte order —
// then `len` payload bytes. Strings in a payload end in NUL, except a WRITE's value and a READ
// reply (raw bytes). Payloads are at most 4096 bytes both ways: a daemon drops a client that
// sends more, so encode() refuses it first, and the reader refuses a header that announces more
// before it buffers anything. Errors come back as type ERROR with the errno name ("ENOENT").
// Imports nothing of covirt but errors.
#pragma once

#include <covirt/error.hpp>

#include <boost/system/errc.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace covirt::xen::wire {

enum class msg_type : std::uint32_t {
  control = 0, directory = 1, read = 2, get_perms = 3, watch = 4, unwatch = 5, transaction_start = 6,
  transaction_end = 7, introduce = 8, release = 9, get_domain_path = 10, write = 11, mkdir = 12, rm = 13,
  set_perms = 14, watch_event = 15, error = 16, is_domain_introduced = 17, resume = 18, set_target = 19,
  /* 20 was XS_RESTRICT, removed in Xen 4.9 */ reset_watches = 21, directory_part = 22,
};

constexpr std::size_t header_size = 16;
constexpr std::size_t payload_max = 4096;       // XENSTORE_PAYLOAD_MAX
constexpr std::size_t abs_path_max = 3072;      // XENSTORE_ABS_PATH_MAX

struct header {
  msg_type type{};
  std::uint32_t req_id = 0, tx_id = 0, len = 0;
};

inline std::string_view type_name(msg_type t) noexcept {
  static constexpr std::string_view names[] = {
      "CONTROL", "DIRECTORY", "READ", "GET_PERMS", "WATCH", "UNWATCH", "TRANSACTION_START", "TRANSACTION_END",
      "INTRODUCE", "RELEASE", "GET_DOMAIN_PATH", "WRITE", "MKDIR", "RM", "SET_PERMS", "WATCH_EVENT", "ERROR",
      "IS_DOMAIN_INTRODUCED", "RESUME", "SET_TARGET", "RESTRICT", "RESET_WATCHES", "DIRECTORY_PART"};
  auto i = static_cast<std::uint32_t>(t);
  return i < std::size(names) ? names[i] : std::string_view("UNKNOWN");
}

/// Appends one message to `out`. Refuses (errc::invalid_arg, nothing appended) a payload over 4096 bytes.
inline result<void> encode(std::string& out, msg_type t, std::uint32_t req_id, std::uint32_t tx_id,
                           std::string_view payload, diagnostics& diag) {
  if (payload.size() > payload_max)
    return fail(diag, errc::invalid_arg, "xenstore " + std::string(type_name(t)) + " request of " +
                                             std::to_string(payload.size()) +
                                             " bytes is over the protocol's limit of 4096");
  const std::uint32_t words[4] = {static_cast<std::uint32_t>(t), req_id, tx_id,
                                  static_cast<std::uint32_t>(payload.size())};
  out.append(reinterpret_cast<const char*>(words), sizeof words);
  out.append(payload);
  return {};
}

/// A payload of NUL-terminated strings, each argument followed by NUL.
/// (Variadic, not an initializer_list: g++ 12 rejects the list's array inside a coroutine.)
template <class... A>
std::string join(const A&... args) {
  std::string s;
  ((s.append(std::string_view(args)), s.push_back('\0')), ...);
  return s;
}

/// The NUL-terminated strings of a payload; a last string without its NUL counts too.
inline std::vector<std::string> split(std::string_view payload) {
  std::vector<std::string> v;
  while (!payload.empty()) {
    auto n = payload.find('\0');
    v.emplace_back(payload.substr(0, n));
    if (n == std::string_view::npos) break;
    payload.remove_prefix(n + 1);
  }
  return v;
}

/// The errno an ERROR reply names ("ENOENT\0"), as std::errc (generic category): xenstore's
/// errors are errno names, and the distinctions callers act on (ENOENT, EACCES, EAGAIN to retry
/// a transaction, EEXIST, E2BIG and ENOSPC for quotas) are errno's, not virErrorNumber's.
/// An unknown name is EINVAL, as libxenstore does.
inline error_code error_from_name(std::string_view payload) {
  using boost::system::errc::errc_t;
  namespace e = boost::system::errc;
  if (!payload.empty() && payload.back() == '\0') payload.remove_suffix(1);
  static constexpr std::pair<std::string_view, errc_t> names[] = {
      {"EINVAL", e::invalid_argument}, {"EACCES", e::permission_denied}, {"EEXIST", e::file_exists},
      {"EISDIR", e::is_a_directory}, {"ENOENT", e::no_such_file_or_directory}, {"ENOMEM", e::not_enough_memory},
      {"ENOSPC", e::no_space_on_device}, {"EIO", e::io_error}, {"ENOTEMPTY", e::directory_not_empty},
      {"ENOSYS", e::function_not_supported}, {"EROFS", e::read_only_file_system}, {"EBUSY", e::device_or_resource_busy},
      {"EAGAIN", e::resource_unavailable_try_again}, {"EISCONN", e::already_connected},
      {"E2BIG", e::argument_list_too_long}, {"EPERM", e::operation_not_permitted}, {"EQUOTA", e::no_space_on_device}};
  for (auto& [n, v] : names)
    if (n == payload) return e::make_error_code(v);
  return e::make_error_code(e::invalid_argument);
}

/// Splits a byte stream from the daemon into messages.
///   wire::reader r;  auto [p, room] = r.prepare();  read into p;  r.commit(got);
///   while (r.next(msg, diag) == reader::status::message) ...
/// A header announcing more than 4096 bytes is an error before any of it is buffered.
class reader {
public:
  enum class status { message, need_more, error };
  struct message {
    wire::header head;
    std::string_view payload;  // valid until the next prepare()
  };

  std::pair<char*, std::size_t> prepare(std::size_t room = 8192) {
    if (start_ > 0) {
      buf_.erase(0, start_);
      start_ = 0;
    }
    used_ = buf_.size();
    buf_.resize(used_ + room);
    return {buf_.data() + used_, room};
  }
  void commit(std::size_t n) { buf_.resize(used_ + n); }
  /// Bytes a reader without a new prepare() still holds (a message not yet complete).
  std::size_t buffered() const noexcept { return buf_.size() - start_; }

  status next(message& m, diagnostics& diag) {
    std::size_t have = buf_.size() - start_;
    if (have < header_size) return status::need_more;
    std::uint32_t w[4];
    std::memcpy(w, buf_.data() + start_, sizeof w);
    if (w[3] > payload_max) {
      diag.assign("a " + std::string(type_name(static_cast<msg_type>(w[0]))) + " message announcing " +
                  std::to_string(w[3]) + " payload bytes, over the protocol's limit of 4096");
      return status::error;
    }
    if (have < header_size + w[3]) return status::need_more;
    m.head = {static_cast<msg_type>(w[0]), w[1], w[2], w[3]};
    m.payload = std::string_view(buf_.data() + start_ + header_size, w[3]);
    start_ += header_size + w[3];
    return status::message;
  }

private:
  std::string buf_;
  std::size_t start_ = 0, used_ = 0;
};

}  // namespace covirt::xen::wire
