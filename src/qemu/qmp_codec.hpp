// covirt: QMP framing, sans-io. Bytes in, classified JSON messages out.
// QEMU ends every message it sends with CRLF and never puts a raw newline inside one
// (unless started with -qmp-pretty, which covirt does not support), so a message is a line.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace covirt::qemu::detail {

enum class qmp_kind { greeting, reply, error, event };

/// One message from QEMU, already checked for its shape.
struct qmp_message {
  qmp_kind kind = qmp_kind::reply;
  boost::json::object obj;           // the whole message
  std::optional<std::uint64_t> id;   // set when "id" is an unsigned integer (the ids covirt sends)
  bool has_id = false;               // "id" present, whatever its type
};

/// Text for error messages: the start of a line, with control characters escaped.
inline std::string qmp_excerpt(std::string_view s, std::size_t max = 80) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

/// Parses and classifies one line. Returns "" on success, else why it is not a QMP message.
inline std::string qmp_classify(boost::json::parser& p, std::string_view line, qmp_message& out) {
  boost::system::error_code ec;
  p.reset();
  p.write(line.data(), line.size(), ec);
  if (ec) return "not JSON (" + ec.message() + "): '" + qmp_excerpt(line) + "'";
  boost::json::value v = p.release();
  if (!v.is_object()) return "not a JSON object: '" + qmp_excerpt(line) + "'";
  out.obj = std::move(v.get_object());
  out.id.reset();
  out.has_id = false;
  if (auto* id = out.obj.if_contains("id")) {
    out.has_id = true;
    if (id->is_uint64()) out.id = id->get_uint64();
    else if (id->is_int64() && id->get_int64() >= 0) out.id = static_cast<std::uint64_t>(id->get_int64());
  }
  if (out.obj.contains("return")) {
    out.kind = qmp_kind::reply;
  } else if (auto* e = out.obj.if_contains("error"); e && e->is_object()) {
    out.kind = qmp_kind::error;
  } else if (auto* ev = out.obj.if_contains("event"); ev && ev->is_string()) {
    out.kind = qmp_kind::event;
  } else if (auto* g = out.obj.if_contains("QMP"); g && g->is_object()) {
    out.kind = qmp_kind::greeting;
  } else {
    return "neither a greeting, a return, an error nor an event: '" + qmp_excerpt(line) + "'";
  }
  return {};
}

/// The byte side: read into prepare(), commit(n), then call next() until it says need_more.
/// Never holds more than max_message bytes of one unfinished message (plus one read's worth).
class qmp_codec {
public:
  enum class status { message, need_more, error };

  explicit qmp_codec(std::size_t max_message = std::size_t(64) << 20) : max_(max_message) {}

  /// Room to read into; empty when an unfinished message already fills the cap
  /// (next() then reports the error).
  std::pair<char*, std::size_t> prepare(std::size_t want = 64 * 1024) {
    if (end_ - begin_ > max_) return {nullptr, 0};
    want = std::min(want, max_ + 1 - (end_ - begin_));  // one byte past the cap is enough to know
    if (begin_ > 0 && (begin_ == end_ || begin_ >= buf_.size() / 2)) {  // compact what was consumed
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      scan_ -= begin_;
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < want) buf_.resize(end_ + want);
    return {buf_.data() + end_, buf_.size() - end_};
  }
  void commit(std::size_t n) { end_ += n; }

  /// Feeds bytes (for tests and fixtures): prepare + copy + commit.
  void feed(std::string_view bytes) {
    while (!bytes.empty()) {
      auto [p, n] = prepare(bytes.size());
      if (n == 0) return;  // over the cap: next() will say so
      n = std::min(n, bytes.size());
      std::memcpy(p, bytes.data(), n);
      commit(n);
      bytes.remove_prefix(n);
    }
  }

  /// The next complete message. On status::error, `why` says what was wrong; the stream
  /// cannot be trusted any further.
  status next(qmp_message& out, std::string& why) {
    for (;;) {
      const char* base = buf_.data();
      const void* nl = scan_ < end_ ? std::memchr(base + scan_, '\n', end_ - scan_) : nullptr;
      if (!nl) {
        scan_ = end_;
        if (end_ - begin_ > max_) {
          why = "a QMP message exceeds the limit of " + std::to_string(max_) + " bytes";
          return status::error;
        }
        return status::need_more;
      }
      std::size_t pos = static_cast<const char*>(nl) - base;
      std::string_view line(base + begin_, pos - begin_);
      begin_ = scan_ = pos + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank line
      if (line.size() > max_) {
        why = "a QMP message exceeds the limit of " + std::to_string(max_) + " bytes";
        return status::error;
      }
      why = qmp_classify(parser_, line, out);
      return why.empty() ? status::message : status::error;
    }
  }

  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::size_t capacity() const noexcept { return buf_.size(); }

private:
  std::size_t max_;
  std::vector<char> buf_;
  std::size_t begin_ = 0, scan_ = 0, end_ = 0;
  boost::json::parser parser_;
};

}  // namespace covirt::qemu::detail
