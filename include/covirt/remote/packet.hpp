// covirt::remote — libvirt RPC packets (virnetprotocol.x), sans-io: the length word, the 24-byte
// header, and remote_error, the payload of every failed reply.
//
// On the wire: u32 length (the whole packet, itself included), then prog, vers, proc, type,
// serial, status, then the XDR payload. A reader takes 4 bytes, asks body_length() how many
// follow (checked against libvirt's limit before anything is allocated), reads them, and hands
// them to decode_body().
#pragma once

#include <covirt/remote/xdr.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace covirt::remote {

/// Programs: the remote one (the libvirt API), the QEMU extras, keepalive ("keep").
inline constexpr std::uint32_t remote_program = 0x20008086;
inline constexpr std::uint32_t qemu_program = 0x20008087;
inline constexpr std::uint32_t keepalive_program = 0x6b656570;
inline constexpr std::uint32_t protocol_version = 1;

/// VIR_NET_MESSAGE_MAX (libvirt 9.0): a packet's bytes after the length word.
inline constexpr std::uint32_t message_max = 33554432;
inline constexpr std::uint32_t header_size = 24;
inline constexpr std::uint32_t length_size = 4;

enum class msg_type : std::int32_t {
  call = 0, reply = 1, message = 2, stream = 3, call_with_fds = 4, reply_with_fds = 5, stream_hole = 6
};
enum class msg_status : std::int32_t { ok = 0, error = 1, cont = 2 };

struct header {
  std::uint32_t prog = remote_program;
  std::uint32_t vers = protocol_version;
  std::int32_t proc = 0;
  msg_type type = msg_type::call;
  std::uint32_t serial = 0;
  msg_status status = msg_status::ok;
  bool operator==(const header&) const = default;
};
BOOST_DESCRIBE_STRUCT(header, (), (prog, vers, proc, type, serial, status))

/// Appends a whole packet to `out`: length word, header, payload (already XDR).
inline void append_packet(std::string& out, const header& h, std::string_view payload) {
  xdr::encoder e(out);
  e.u32(std::uint32_t(length_size + header_size + payload.size()));
  e.put(h);
  out.append(payload);
}

/// A whole packet as a string of its own.
inline std::string encode_packet(const header& h, std::string_view payload) {
  std::string out;
  out.reserve(length_size + header_size + payload.size());
  append_packet(out, h, payload);
  return out;
}

/// From a packet's first 4 bytes, how many follow; errc::rpc if the length cannot be one of
/// libvirt's packets (shorter than a header, or over message_max).
inline result<std::uint32_t> body_length(const unsigned char (&len)[4], diagnostics& diag) {
  std::uint32_t n = 0;
  xdr::decoder(std::string_view(reinterpret_cast<const char*>(len), length_size)).u32(n);
  if (n < length_size + header_size)
    return fail(diag, errc::rpc, "packet length " + std::to_string(n) + " is shorter than a header (" +
                                     std::to_string(length_size + header_size) + " bytes)");
  if (n - length_size > message_max)
    return fail(diag, errc::rpc, "packet length " + std::to_string(n) + " passes libvirt's limit of " +
                                     std::to_string(message_max + length_size) + " bytes");
  return n - length_size;
}

/// A packet after its length word, split into header and payload (a view into `body`).
struct packet_view {
  header head;
  std::string_view payload;
};

inline result<packet_view> decode_body(std::string_view body, diagnostics& diag) {
  if (body.size() < header_size)
    return fail(diag, errc::rpc, "packet of " + std::to_string(body.size()) + " bytes is shorter than its header");
  xdr::decoder d(body.substr(0, header_size));
  packet_view p;
  d.get(p.head);
  p.payload = body.substr(header_size);
  return p;
}

/// Splits a byte stream into packets, sans-io: the caller reads from its socket into prepare(),
/// says how much came with commit(), then takes whole packets with next(). A packet's length is
/// checked (body_length) before the buffer grows to hold it, so a peer can make it grow to
/// libvirt's limit at most.
class packet_reader {
public:
  enum class status { packet, need_more, error };

  /// Room for the next read: at least what the packet under way still needs, at least 4 KiB.
  std::pair<char*, std::size_t> prepare() {
    if (begin_ == end_) {
      begin_ = end_ = 0;
      // A big packet came and went: give its room back (a fleet holds one reader per host).
      if (buf_.size() > keep_size && want_ == 0) std::string().swap(buf_);
    }
    const std::size_t have = end_ - begin_;
    const std::size_t want = std::max<std::size_t>(want_, have + 4096);
    if (buf_.size() - begin_ < want) {
      if (begin_ != 0) {
        buf_.replace(0, have, buf_, begin_, have);
        begin_ = 0;
        end_ = have;
      }
      if (buf_.size() < want) buf_.resize(std::max<std::size_t>(want, initial_size));
    }
    return {buf_.data() + end_, buf_.size() - end_};
  }
  void commit(std::size_t n) noexcept { end_ += n; }

  /// The next whole packet, as a view valid until the next prepare(); need_more if it has not
  /// all come yet; error (with the reason in `diag`) if the stream cannot be libvirt's.
  status next(packet_view& p, diagnostics& diag) {
    const std::size_t have = end_ - begin_;
    if (have < length_size) return status::need_more;
    unsigned char len[length_size];
    std::memcpy(len, buf_.data() + begin_, length_size);
    auto body = body_length(len, diag);
    if (!body) return status::error;
    if (have < length_size + *body) {
      want_ = length_size + *body;
      return status::need_more;
    }
    auto v = decode_body(std::string_view(buf_.data() + begin_ + length_size, *body), diag);
    if (!v) return status::error;
    p = *v;
    begin_ += length_size + *body;
    want_ = 0;
    return status::packet;
  }

  /// Bytes read and not yet handed out as packets.
  std::size_t buffered() const noexcept { return end_ - begin_; }

private:
  // Small to start with (libvirt's own client starts at 64 KiB, VIR_NET_MESSAGE_INITIAL): most
  // replies are a few dozen bytes, and a packet's length word sizes the buffer for a big one.
  static constexpr std::size_t initial_size = 4096;
  static constexpr std::size_t keep_size = 65536;
  std::string buf_;
  std::size_t begin_ = 0, end_ = 0, want_ = 0;
};

/// remote_nonnull_domain / remote_nonnull_network: what libvirtd names a domain or network by.
using uuid_bytes = xdr::fixed_opaque<16>;
struct nonnull_domain {
  std::string name;
  uuid_bytes uuid;
  std::int32_t id = -1;
  bool operator==(const nonnull_domain&) const = default;
};
BOOST_DESCRIBE_STRUCT(nonnull_domain, (), (name, uuid, id))
struct nonnull_network {
  std::string name;
  uuid_bytes uuid;
  bool operator==(const nonnull_network&) const = default;
};
BOOST_DESCRIBE_STRUCT(nonnull_network, (), (name, uuid))

/// remote_error (virnetprotocol.x's virNetMessageError): code is a virErrorNumber, so it is an
/// errc as it stands; message is the server's text, kept word for word.
struct remote_error {
  std::int32_t code = 0;
  std::int32_t domain = 0;
  std::optional<std::string> message;
  std::int32_t level = 0;
  std::optional<nonnull_domain> dom;
  std::optional<std::string> str1, str2, str3;
  std::int32_t int1 = -1, int2 = -1;
  std::optional<nonnull_network> net;
};
BOOST_DESCRIBE_STRUCT(remote_error, (), (code, domain, message, level, dom, str1, str2, str3, int1, int2, net))

/// The failure a reply with status error carries: its code as errc, and in `diag` the server's
/// message after libvirt's generic text for the code, which covirt::error puts back: what() is
/// libvirtd's message word for word ("internal error: domain 'test' not paused" arrives as
/// internal_error and "domain 'test' not paused"; a bare "Domain not found" leaves diag empty).
inline failure error_from_reply(std::string_view payload, diagnostics& diag) {
  auto e = xdr::decode<remote_error>(payload, "remote_error", diag);
  if (!e) return e.error();
  const int code = e->code > 0 ? e->code : int(errc::internal_error);
  const error_code ec = make_error_code(static_cast<errc>(code));
  if (!e->message) {
    diag.assign("the server gave no message (error " + std::to_string(e->code) + ")");
    return ec;
  }
  std::string_view m = *e->message;
  const std::string generic = ec.message();
  if (m == generic) m = {};
  else if (m.size() > generic.size() + 2 && m.starts_with(generic) && m.substr(generic.size(), 2) == ": ")
    m.remove_prefix(generic.size() + 2);
  diag.assign(std::string(m));
  return ec;
}

}  // namespace covirt::remote
