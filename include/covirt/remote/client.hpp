// covirt::remote::client — one connection to a libvirtd speaking libvirt's RPC protocol.
//
// Many calls in flight at once, matched to their replies by serial (libvirtd answers in any
// order); one reader routes what the daemon sends (replies by serial, MESSAGEs by program and
// procedure); writes are queued and go out one batch at a time. Keepalive: the client answers
// the daemon's PINGs and sends its own after `keepalive_interval` of silence; a peer that stays
// silent through `keepalive_count` of them is dropped. When the connection ends, every pending
// call fails at once with the reason, and so does every later call.
//
// Errors: a reply with status error is libvirt's own (remote_error: its code as errc, its message
// word for word in `diag`); the transport ending is errc::system_error ("connection to libvirtd
// at '/run/libvirt/libvirt-sock' closed: end of file"); a peer that breaks the protocol
// (lengths, types, serials) is errc::rpc and ends the connection; keepalive timeout is
// errc::internal_error ("connection closed due to keepalive timeout").
// Cancellation: terminal and partial; the caller completes at once with
// asio::error::operation_aborted, the call is not recalled, its late reply is dropped by serial.
// Not thread-safe: use it from its executor.
#pragma once

#include <covirt/remote/protocol.hpp>
#include <covirt/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace covirt::remote {

namespace asio = boost::asio;

struct client_options {
  /// Seconds of silence before the client PINGs; 0 turns client PINGs off. virsh's -k.
  std::chrono::seconds keepalive_interval{5};
  /// Unanswered PINGs after which the peer counts as dead. virsh's -K.
  unsigned keepalive_count = 5;
};

namespace detail {
struct client_state;
}

class client {
public:
  /// A MESSAGE from the server of the remote or QEMU program (an event): header and payload,
  /// valid only during the call.
  using message_handler = std::function<void(const header&, std::string_view payload)>;
  /// Called once when the connection ends (not after close()): the code and message calls got.
  using close_handler = std::function<void(error_code, std::string_view)>;

  explicit client(asio::any_io_executor ex, client_options opts = {});
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  /// Ends the connection (pending calls fail with "closed").
  ~client();

  asio::any_io_executor get_executor() const noexcept;

  /// Opens the transport a remote URI names and starts reading:
  ///   DRIVER+unix:///PATH[?socket=S]        S, else /var/run/libvirt/libvirt-sock (-ro when read_only)
  ///   DRIVER+tcp://HOST[:PORT]/PATH          PORT, else 16509
  ///   DRIVER+ssh://[USER@]HOST[:PORT]/PATH   the system ssh client (?command= another one, ?keyfile=,
  ///       ?no_verify=1, ?known_hosts=), running virt-ssh-helper on HOST, or with ?netcat=NC
  ///       `NC -U SOCKET` (libvirt's two remote-helper conventions); BatchMode: no prompts.
  /// Query keys covirt adds: keepalive_interval, keepalive_count (as client_options).
  /// Errors: errc::no_connect (cannot reach it, with why), errc::invalid_arg (bad URI for this).
  asio::awaitable<result<void>> connect(const uri& u, bool read_only, diagnostics& diag);

  /// One call of program `prog`: `args` is the XDR of its arguments; the result, its reply's.
  /// `args` must stay valid until the call completes (it is queued when the call starts).
  asio::awaitable<result<std::string>> call_raw(std::uint32_t prog, std::int32_t proc, std::string_view args,
                                                diagnostics& diag);

  /// One call with described structs: Ret void for a procedure that returns nothing. `args` is
  /// encoded before this returns. Pass it as a named object: g++ 12 miscompiles a temporary of a
  /// class with an SSO string inside a co_await expression (it destroys a bitwise copy).
  template <class Ret, class Args>
  asio::awaitable<result<Ret>> call(proc p, const Args& args, diagnostics& diag) {
    return typed<Ret>(remote_program, static_cast<std::int32_t>(p), xdr::encode(args), diag);
  }
  template <class Ret>
  asio::awaitable<result<Ret>> call(proc p, diagnostics& diag) {
    return typed<Ret>(remote_program, static_cast<std::int32_t>(p), {}, diag);
  }
  template <class Ret, class Args>
  asio::awaitable<result<Ret>> call(qemu_proc p, const Args& args, diagnostics& diag) {
    return typed<Ret>(qemu_program, static_cast<std::int32_t>(p), xdr::encode(args), diag);
  }

  void on_message(message_handler h);
  void on_close(close_handler h);

  /// Ends the connection now: pending and later calls fail with errc::system_error ("... closed").
  /// Idempotent; never blocks; the close handler is not called.
  void close() noexcept;
  bool is_open() const noexcept;
  /// Where it is connected ("/run/libvirt/libvirt-sock", "host:16509", "ssh host").
  const std::string& peer() const noexcept;
  std::size_t pending_calls() const noexcept;
  /// Replies to calls cancelled before their reply came, dropped by serial.
  std::size_t ignored_replies() const noexcept;

private:
  template <class Ret>
  asio::awaitable<result<Ret>> typed(std::uint32_t prog, std::int32_t proc, std::string args, diagnostics& diag) {
    auto r = co_await call_raw(prog, proc, args, diag);
    if (!r) co_return failure(r.error());
    if constexpr (std::is_void_v<Ret>) {
      if (!r->empty())
        co_return fail(diag, errc::rpc, "malformed reply to procedure " + std::to_string(proc) + ": " +
                                            std::to_string(r->size()) + " bytes where none were expected");
      co_return result<void>();
    } else {
      co_return xdr::decode<Ret>(*r, "reply to procedure " + std::to_string(proc), diag);
    }
  }

  std::shared_ptr<detail::client_state> s_;
};

}  // namespace covirt::remote
