// The remote driver's codec layer: XDR and libvirt RPC packets, against bytes seen on the wire
// between virsh and libvirtd 9.0 (../shared reference notes, "observed").
#include <covirt/remote/protocol.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

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

// ---- typed parameters: remote_typed_param_value, a union on virTypedParameterType

namespace {
// One remote_typed_param as libvirtd writes it: the field, the discriminant, the arm.
struct typed_case {
  covirt::typed_param param;
  std::string bytes;
};
}  // namespace

TEST_CASE("remote: remote_typed_param's union, each of the seven arms byte for byte and back", "[remote][xdr]") {
  const std::vector<typed_case> cases = {
      {{"i", -5}, hex("00000001 \"i\" 000000  00000001 fffffffb")},
      {{"weight", 300u}, hex("00000006 \"weight\" 0000  00000002 0000012c")},
      {{"l", -2LL}, hex("00000001 \"l\" 000000  00000003 ffffffff fffffffe")},
      {{"hard_limit", covirt::memory_unlimited_kib}, hex("0000000a \"hard_limit\" 0000  00000004 001fffff ffffffff")},
      {{"d", 1.5}, hex("00000001 \"d\" 000000  00000005 3ff80000 00000000")},
      {{"b", true}, hex("00000001 \"b\" 000000  00000006 00000001")},
      {{"numa_nodeset", std::string("0-1")}, hex("0000000c \"numa_nodeset\"  00000007 00000003 \"0-1\" 00")},
  };
  r::typed_params_nparams_ret all;
  for (const auto& c : cases) {
    INFO(c.param.field);
    const auto wire = r::to_wire(c.param);
    CHECK(wire.value.value.index() == c.param.value.index());
    CHECK(xdr::encode(wire) == c.bytes);
    covirt::diagnostics diag;
    auto back = xdr::decode<r::remote_typed_param>(c.bytes, "remote_typed_param", diag);
    INFO(diag.message());
    REQUIRE(back.has_value());
    CHECK(r::from_wire(*back) == c.param);
    all.params.push_back(wire);
  }
  // All seven in a GET_*_PARAMETERS reply, then its nparams.
  all.nparams = 7;
  const std::string reply = xdr::encode(all);
  std::string expected = hex("00000007");
  for (const auto& c : cases) expected += c.bytes;
  expected += hex("00000007");
  CHECK(reply == expected);
  covirt::diagnostics diag;
  auto back = xdr::decode<r::typed_params_nparams_ret>(reply, "domain_get_memory_parameters_ret", diag);
  REQUIRE(back.has_value());
  REQUIRE(back->params.size() == 7);
  for (std::size_t i = 0; i < 7; ++i) CHECK(r::from_wire(back->params[i]) == cases[i].param);
  CHECK(back->nparams == 7);
  // A boolean is an int on the wire; libvirt takes any but 0 as true.
  auto two = xdr::decode<r::remote_typed_param>(hex("00000001 \"b\" 000000 00000006 00000002"), "param", diag);
  REQUIRE(two.has_value());
  CHECK(r::from_wire(*two) == covirt::typed_param{"b", true});
  CHECK(xdr::encode(r::to_wire(r::from_wire(*two))) == cases[5].bytes);
}

TEST_CASE("remote: typed parameters and CPU maps from the wire are held to remote_protocol.x's limits",
          "[remote][xdr]") {
  const std::string one = xdr::encode(r::to_wire({"weight", 300u}));
  SECTION("17 parameters, every byte of them there: refused on the count (REMOTE_DOMAIN_*_PARAMETERS_MAX is 16)") {
    std::string bytes = hex("00000011");
    for (int i = 0; i < 17; ++i) bytes += one;
    bytes += hex("00000011");
    CHECK(rejection<r::typed_params_nparams_ret>("domain_get_memory_parameters_ret", bytes) ==
          "malformed domain_get_memory_parameters_ret: an array of 17 elements passes its limit of 16 at byte 0");
    CHECK(rejection<r::typed_params_ret>("domain_get_scheduler_parameters_flags_ret", bytes.substr(0, bytes.size() - 4)) ==
          "malformed domain_get_scheduler_parameters_flags_ret: an array of 17 elements passes its limit of 16 at byte 0");
    CHECK(rejection<r::dom_typed_params_flags_args>(
              "args", hex("00000004 \"test\" 6695eb01f6a4830479aa97f2502e193f 00000001") + bytes) ==
          "malformed args: an array of 17 elements passes its limit of 16 at byte 28");
  }
  SECTION("a count of 2^32 - 1 with nothing after it") {
    CHECK(rejection<r::typed_params_nparams_ret>("reply", hex("ffffffff")) ==
          "malformed reply: an array of 4294967295 elements passes its limit of 16 at byte 0");
  }
  SECTION("16 parameters are the most, and decode") {
    std::string bytes = hex("00000010");
    for (int i = 0; i < 16; ++i) bytes += one;
    covirt::diagnostics diag;
    auto v = xdr::decode<r::typed_params_ret>(bytes, "reply", diag);
    REQUIRE(v.has_value());
    CHECK(v->params.size() == 16);
  }
  SECTION("a discriminant with no arm: 0, 8, -1") {
    CHECK(rejection<r::remote_typed_param>("param", hex("00000001 \"a\" 000000 00000000 00000001")) ==
          "malformed param: a union discriminant of 0 (its cases are 1 to 7) at byte 8");
    CHECK(rejection<r::remote_typed_param>("param", hex("00000001 \"a\" 000000 00000008 00000001")) ==
          "malformed param: a union discriminant of 8 (its cases are 1 to 7) at byte 8");
    CHECK(rejection<r::typed_params_ret>("reply", hex("00000002") + one + hex("00000001 \"a\" 000000 ffffffff")) ==
          "malformed reply: a union discriminant of -1 (its cases are 1 to 7) at byte 32");
  }
  SECTION("an arm cut short, and a string arm over its bytes") {
    CHECK(rejection<r::remote_typed_param>("param", hex("00000001 \"a\" 000000 00000004 00000001")) ==
          "malformed param: an 8-byte value of 8 bytes passes the end of the record (16 bytes) at byte 12");
    CHECK(rejection<r::remote_typed_param>("param", hex("00000001 \"a\" 000000 00000007 00000010 \"abcd\"")) ==
          "malformed param: a string of 16 bytes passes the end of the record (20 bytes) at byte 16");
  }
  SECTION("CPU maps: opaque<REMOTE_CPUMAPS_MAX> and opaque<REMOTE_CPUMAP_MAX>") {
    CHECK(rejection<r::cpumaps_ret>("domain_get_vcpu_pin_info_ret", hex("00800001")) ==
          "malformed domain_get_vcpu_pin_info_ret: an opaque of 8388609 bytes passes its limit of 8388608 at byte 0");
    CHECK(rejection<r::node_get_cpu_map_ret>("node_get_cpu_map_ret", hex("00000801")) ==
          "malformed node_get_cpu_map_ret: an opaque of 2049 bytes passes its limit of 2048 at byte 0");
    // what libvirtd answered for test:///default's two vCPUs on its 8 CPUs
    covirt::diagnostics diag;
    auto pins = xdr::decode<r::cpumaps_ret>(hex("00000002 ffff0000 00000002"), "reply", diag);
    REQUIRE(pins.has_value());
    CHECK(pins->cpumaps.bytes == std::string(2, '\xff'));
    CHECK(pins->ret == 2);
  }
}

// ---- the client against a peer that misbehaves on purpose. libvirtd cannot be made to send
// these bytes, so a socket in the test plays the daemon: it reads the client's call and answers
// with what the case says.

#include <covirt/remote/client.hpp>

#include "common/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <unistd.h>

namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

// A packet header as the daemon would send it, then `payload`; `length` overrides the length word.
std::string packet(std::uint32_t prog, std::int32_t proc, r::msg_type type, std::uint32_t serial,
                   r::msg_status status, std::string_view payload, std::optional<std::uint32_t> length = {}) {
  r::header h{prog, 1, proc, type, serial, status};
  std::string p = r::encode_packet(h, payload);
  if (length) p.replace(0, 4, xdr::encode(*length));
  return p;
}

struct bad_peer_case {
  const char* what;
  // The bytes sent back once the client's call (serial 0, CONNECT_GET_TYPE) has arrived.
  std::string answer;
  bool then_close;
  errc code;
  const char* says;
};

}  // namespace

TEST_CASE("remote: a peer that breaks the protocol gets a clear error, never a crash or a hang", "[remote][client]") {
  const std::uint32_t remote = r::remote_program;
  const auto reply = r::msg_type::reply;
  const auto ok = r::msg_status::ok;
  const std::int32_t get_type = int(r::proc::connect_get_type);
  const std::string lying_string = xdr::encode(std::uint32_t(100)) + "TEST";  // says 100 bytes, has 4
  const std::vector<bad_peer_case> cases = {
      {"a length of 0", xdr::encode(std::uint32_t(0)), false, errc::rpc, "packet length 0 is shorter than a header"},
      {"a length of 3", xdr::encode(std::uint32_t(3)), false, errc::rpc, "packet length 3 is shorter than a header"},
      {"a length of 2^31", xdr::encode(std::uint32_t(0x80000000u)), false, errc::rpc, "passes libvirt's limit"},
      {"a length just over the maximum", xdr::encode(std::uint32_t(r::message_max + 5)), false, errc::rpc,
       "passes libvirt's limit of 33554436 bytes"},
      {"a truncated header, then the peer closes", packet(remote, get_type, reply, 0, ok, "").substr(0, 14), true,
       errc::system_error, "closed: end of file"},
      {"a message for an unknown program", packet(0x12345678, 1, r::msg_type::message, 0, ok, ""), false, errc::rpc,
       "a message for unknown program 0x12345678"},
      {"a reply to a serial nobody sent", packet(remote, get_type, reply, 999, ok, ""), false, errc::rpc,
       "a reply to serial 999, which this client never sent"},
      {"a reply for another procedure", packet(remote, 7, reply, 0, ok, ""), false, errc::rpc,
       "is for program 0x20008086 procedure 7"},
      {"a string length that lies", packet(remote, get_type, reply, 0, ok, lying_string), false, errc::rpc,
       "a string of 100 bytes"},
      {"a reply of type stream", packet(remote, get_type, r::msg_type::stream, 0, r::msg_status::cont, "xx"), false,
       errc::rpc, "a packet of type 3"},
      {"a wrong program version", [&] {
         std::string p = packet(remote, get_type, reply, 0, ok, "");
         p.replace(8, 4, xdr::encode(std::uint32_t(2)));
         return p;
       }(), false, errc::rpc, "program version 2"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      const std::string path = "/tmp/covirt-bad-peer-" + std::to_string(::getpid()) + ".sock";
      ::unlink(path.c_str());
      covirt::test_support::run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        local::acceptor acc(ex, local::endpoint(path));
        local::socket peer(ex);
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
          co_await acc.async_accept(peer, asio::use_awaitable);
          std::string call(28, '\0');  // CONNECT_GET_TYPE: a header, no arguments
          co_await asio::async_read(peer, asio::buffer(call), asio::use_awaitable);
          co_await asio::async_write(peer, asio::buffer(c.answer), asio::use_awaitable);
          if (c.then_close) peer.close();
        }, asio::detached);
        r::client cl(ex);
        covirt::diagnostics diag;
        diag.assign("");
        covirt::diagnostics cd;
        auto u = covirt::parse_uri("test+unix:///default?socket=" + path, cd);
        REQUIRE(u.has_value());
        auto conn = co_await cl.connect(*u, false, cd);
        REQUIRE(conn.has_value());
        auto r = co_await cl.call<r::str_ret>(r::proc::connect_get_type, diag);
        INFO(diag.message());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == c.code);
        CHECK(std::string(diag.message()).find(c.says) != std::string::npos);
        if (c.code == errc::rpc && std::string(c.what) != "a string length that lies") {
          CHECK_FALSE(cl.is_open());  // the stream cannot be trusted after this: dropped
          covirt::diagnostics later;
          auto again = co_await cl.call<r::str_ret>(r::proc::connect_get_type, later);
          CHECK(again.error() == c.code);  // later calls fail at once, with the same reason
        }
      });
      ::unlink(path.c_str());
    }
  }
}

TEST_CASE("remote: a peer that stops answering is dropped after the keepalive count", "[remote][client]") {
  const std::string path = "/tmp/covirt-silent-peer-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  covirt::test_support::run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    local::acceptor acc(ex, local::endpoint(path));
    local::socket peer(ex);
    acc.async_accept(peer, [](covirt::error_code) {});  // accepts, then never says a word
    r::client cl(ex);
    covirt::diagnostics d;
    auto u = covirt::parse_uri("test+unix:///default?keepalive_interval=1&keepalive_count=1&socket=" + path, d);
    REQUIRE(u.has_value());
    auto connected = co_await cl.connect(*u, false, d);
    REQUIRE(connected.has_value());
    auto r = co_await cl.call_raw(r::remote_program, int(r::proc::connect_get_type), "", d);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == errc::internal_error);
    CHECK(std::string(d.message()).find("keepalive timeout") != std::string::npos);
  }, std::chrono::seconds(20));  // 1 s interval, one unanswered ping: dropped after about 2 s
  ::unlink(path.c_str());
}
