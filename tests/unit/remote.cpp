// The remote driver's codec layer: XDR and libvirt RPC packets, against bytes seen on the wire
// between virsh and libvirtd 9.0 (../shared reference notes, "observed").
#include <covirt/remote/protocol.hpp>
#include <catch2/catch.hpp>

#include <string>

namespace {
namespace r = covirt::remote;
namespace xdr = covirt::remote::xdr;
using covirt::errc;

// "00000001 0000000e" -> bytes; spaces are ignored, quoted text is taken as it stands.
std::string hex(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ' ') continue;
    if (s[i] == '"') {
      auto end = s.find('"', i + 1);
      out.append(s.substr(i + 1, end - i - 1));
      i = end;
      continue;
    }
    out.push_back(char(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
    ++i;
  }
  return out;
}
// Decoding `bytes` as a T must fail with errc::rpc; the message it gave.
template <class T>
std::string rejection(std::string_view what, const std::string& bytes) {
  covirt::diagnostics diag;
  auto v = xdr::decode<T>(bytes, what, diag);
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error() == errc::rpc);
  return std::string(diag.message());
}
}  // namespace

TEST_CASE("remote: CONNECT_OPEN is encoded byte for byte as virsh sends it", "[remote][xdr]") {
  r::header h;
  h.proc = int(r::proc::connect_open);
  h.serial = 2;
  const auto pkt = r::encode_packet(h, xdr::encode(r::connect_open_args{"qemu:///system", 0}));
  CHECK(pkt == hex("00000038 20008086 00000001 00000001 00000000 00000002 00000000"
                   "00000001 0000000e \"qemu:///system\" 0000 00000000"));
  // and back: the length word, then header and payload
  const unsigned char len[4] = {0, 0, 0, 0x38};
  covirt::diagnostics diag;
  auto n = r::body_length(len, diag);
  REQUIRE(n.has_value());
  CHECK(*n == 0x34);
  auto p = r::decode_body(std::string_view(pkt).substr(4), diag);
  REQUIRE(p.has_value());
  CHECK(p->head == h);
  auto args = xdr::decode<r::connect_open_args>(p->payload, "connect_open_args", diag);
  REQUIRE(args.has_value());
  CHECK(args->name == std::optional<std::string>("qemu:///system"));
}

TEST_CASE("remote: a lifecycle event from libvirtd decodes to its domain, event and detail", "[remote][xdr]") {
  const auto payload = hex("00000000 00000004 \"test\" 6695eb01f6a4830479aa97f2502e193f 00000001 00000003 00000000");
  covirt::diagnostics diag;
  auto m = xdr::decode<r::domain_event_callback_lifecycle_msg>(payload, "lifecycle event", diag);
  REQUIRE(m.has_value());
  CHECK(m->callback_id == 0);
  CHECK(m->msg.dom.name == "test");
  CHECK(m->msg.dom.uuid.bytes[0] == 0x66);
  CHECK(m->msg.dom.uuid.bytes[15] == 0x3f);
  CHECK(m->msg.dom.id == 1);
  CHECK(m->msg.event == 3);   // suspended
  CHECK(m->msg.detail == 0);  // paused
  CHECK(xdr::encode(*m) == payload);
}

TEST_CASE("remote: remote_error keeps libvirtd's code and message word for word", "[remote][xdr]") {
  const auto payload = hex("0000002a 0000000c 00000001 00000010 \"Domain not found\" 00000002 00000000 00000001"
                           "00000010 \"Domain not found\" 00000000 00000000 ffffffff ffffffff 00000000");
  covirt::diagnostics diag;
  covirt::error_code ec = r::error_from_reply(payload, diag);
  CHECK(ec == errc::no_domain);
  CHECK(diag.message().empty());  // the message is libvirt's generic text for the code, nothing more
  CHECK(std::string(covirt::error(ec, std::string(diag.message())).what()) == "Domain not found");
  // A message with details: libvirt's generic prefix goes, covirt::error puts it back.
  const auto busy = hex("00000001 0000000c 00000001 00000028 \"internal error: domain 'test' not paused\""
                        "00000002 00000000 00000000 00000000 00000000 ffffffff ffffffff 00000000");
  covirt::diagnostics d2;
  covirt::error_code ec2 = r::error_from_reply(busy, d2);
  CHECK(ec2 == errc::internal_error);
  CHECK(d2.message() == "domain 'test' not paused");
  CHECK(std::string(covirt::error(ec2, std::string(d2.message())).what()) == "internal error: domain 'test' not paused");
  auto e = xdr::decode<r::remote_error>(payload, "remote_error", diag);
  REQUIRE(e.has_value());
  CHECK(e->domain == 12);
  CHECK(e->int1 == -1);
  CHECK_FALSE(e->dom.has_value());
}

TEST_CASE("remote: NODE_GET_INFO's char[32] takes one word per character (160-byte reply)", "[remote][xdr]") {
  r::node_get_info_ret info;
  info.model = {'i', '6', '8', '6'};
  info.memory = 3145728;
  info.cpus = 16;
  const auto bytes = xdr::encode(info);
  CHECK(bytes.size() == 160);
  CHECK(bytes.substr(0, 8) == hex("00000069 00000036"));
  covirt::diagnostics diag;
  auto back = xdr::decode<r::node_get_info_ret>(bytes, "node_get_info_ret", diag);
  REQUIRE(back.has_value());
  CHECK(back->model == info.model);
  CHECK(back->memory == 3145728);
  CHECK(back->cpus == 16);
}

TEST_CASE("remote: lengths from the wire are checked before anything is allocated", "[remote][xdr]") {
  covirt::diagnostics diag;
  SECTION("packet length word: libvirt's limit is 32 MiB + 4, a header is 28") {
    const unsigned char at_limit[4] = {0x02, 0x00, 0x00, 0x04}, over[4] = {0x02, 0x00, 0x00, 0x08},
                        short_[4] = {0, 0, 0, 27};
    CHECK(r::body_length(at_limit, diag).value() == 33554432);
    auto o = r::body_length(over, diag);
    REQUIRE_FALSE(o.has_value());
    CHECK(o.error() == errc::rpc);
    CHECK(diag.message() == "packet length 33554440 passes libvirt's limit of 33554436 bytes");
    CHECK_FALSE(r::body_length(short_, diag).has_value());
    CHECK(diag.message() == "packet length 27 is shorter than a header (28 bytes)");
  }
  SECTION("a string longer than what is left, or than REMOTE_STRING_MAX") {
    CHECK(rejection<r::connect_open_args>("connect_open_args", hex("00000001 00000010 \"abcd\" 00000000")) ==
          "malformed connect_open_args: a string of 16 bytes passes the end of the record (16 bytes) at byte 8");
    CHECK(rejection<r::connect_open_args>("connect_open_args", hex("00000001 00400001")) ==
          "malformed connect_open_args: a string of 4194305 bytes passes its limit of 4194304 at byte 4");
  }
  SECTION("an array count over its bound or over the bytes left") {
    CHECK(rejection<r::connect_list_all_domains_ret>("list", hex("00004001")) ==
          "malformed list: an array of 16385 elements passes its limit of 16384 at byte 0");
    CHECK(rejection<r::connect_list_all_domains_ret>("list", hex("00004000 00000000")) ==
          "malformed list: an array of 16384 elements passes the end of the record (8 bytes) at byte 0");
  }
  SECTION("nonzero padding, a bool that is not 0 or 1, bytes after the message") {
    CHECK(rejection<r::connect_open_args>("open", hex("00000001 00000001 \"a\" 000001 00000000")) ==
          "malformed open: nonzero padding after a string at byte 8");
    CHECK(rejection<r::connect_open_args>("open", hex("00000002 00000000")) == "malformed open: a bool of 2 at byte 0");
    CHECK(rejection<r::connect_open_args>("open", hex("00000000 00000000 00000000")) ==
          "malformed open: 4 bytes after the end of the message at byte 8");
  }
}
