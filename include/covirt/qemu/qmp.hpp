// covirt: a QMP (QEMU Machine Protocol) client, usable on its own.
#pragma once

#include <covirt/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace covirt::qemu {

namespace asio = boost::asio;

/// QEMU's version, from the greeting (the shape of query-version).
struct qmp_version {
  int major = 0, minor = 0, micro = 0;
  std::string package;  // "Debian 1:7.2+dfsg-7+deb12u18+b3"; empty upstream
};

/// What QEMU said when the connection opened.
struct qmp_greeting {
  qmp_version version;
  std::vector<std::string> capabilities;  // e.g. {"oob"}; covirt enables none of them
};

/// An asynchronous QMP event, e.g. {"STOP", {}, 1700000000, 123456}.
struct qmp_event {
  std::string name;
  boost::json::object data;  // empty when QEMU sent none
  std::int64_t seconds = 0, microseconds = 0;  // host wall clock; -1 if QEMU could not read it
};

struct qmp_options {
  /// Longest message accepted from QEMU; a longer one fails the connection with errc::rpc.
  std::size_t max_message_size = std::size_t(64) << 20;
  /// Events kept while nobody reads them; past it the oldest are dropped (events_dropped()).
  std::size_t event_capacity = 4096;
  /// Whether every command carries an "id". false (the default): a command sent while no other
  /// is outstanding goes without one, and its reply is the next reply without id (QMP answers
  /// in-band commands in order; covirt enables no out-of-band capability); a command sent while
  /// others are outstanding, and every async_execute_raw, carries one. QEMU reads its monitor a
  /// byte at a time (each byte one turn of its main loop), so the id's ten-odd bytes cost more
  /// than anything else in a round trip. true: every command carries an id, replies are matched
  /// by id alone and an error without id is always ignored.
  bool always_send_ids = false;
};

using qmp_clock = std::chrono::steady_clock;
/// No time limit.
inline constexpr qmp_clock::duration qmp_no_limit = qmp_clock::duration::max();

namespace detail {
struct qmp_state;
template <class Token>
inline constexpr bool qmp_is_diag = std::is_same_v<std::decay_t<Token>, diagnostics>;
template <class Token>
inline constexpr bool qmp_is_use_awaitable = std::is_same_v<std::decay_t<Token>, asio::use_awaitable_t<>>;
template <class Token>
inline constexpr bool qmp_is_token = !qmp_is_diag<Token> && !std::is_convertible_v<Token, boost::json::object> &&
                                     !std::is_convertible_v<Token, qmp_clock::duration>;
}  // namespace detail

/// A client for one QMP socket: connect once, then any number of commands in flight at once
/// (replies matched by id; a command sent alone goes without one and takes the next reply
/// without id, see qmp_options::always_send_ids) and an event stream. One reader per connection dispatches what QEMU
/// sends; writes are queued and go out one batch at a time. Never blocks; no threads.
///
/// Every operation takes an optional `diagnostics&` and a completion token (default
/// `asio::use_awaitable`, which throws covirt::error carrying the code and the message; other
/// tokens get the error_code and, with `diag`, the message).
///
/// Errors: a QMP error reply is errc::no_support for class CommandNotFound and
/// errc::operation_failed for every other class; `diag` reads "QEMU: <class>: <desc>".
/// When the connection ends (close(), the destructor, QEMU closing the socket or dying), every
/// pending and later command fails at once with errc::operation_failed ("QMP connection to
/// '<path>' closed ..."), and the event stream ends with asio::error::eof after what was queued.
/// Protocol corruption from the peer (a line that is not JSON, not an object, not a QMP message
/// shape, or longer than max_message_size) fails the connection the same way with errc::rpc
/// ("malformed QMP message from '<path>': ..."). A reply whose id matches no pending command
/// (a late reply to a cancelled command, or a stray one) is ignored and counted in
/// ignored_messages(); so is a reply or error without id when no command without id is
/// outstanding (see qmp_options::always_send_ids: a cancelled command sent without id stays
/// outstanding until its late reply comes, or until a later in-band command is answered).
///
/// Time limits: async_execute and async_execute_raw take an optional `limit`; a command not
/// answered within it fails with errc::operation_timeout (its late reply is dropped, as for a
/// cancelled one). One timer per connection serves every limit: it is re-armed only when a new
/// deadline is earlier than the one it waits for, so a command costs no timer system call.
///
/// Not thread-safe: use it from the executor it was made with. Safe to destroy with operations
/// pending: they complete with the "closed" error.
class qmp {
public:
  explicit qmp(asio::any_io_executor ex, qmp_options opts = {});
  qmp(qmp&&) noexcept = default;
  qmp& operator=(qmp&& o) noexcept {
    if (this != &o) { close(); s_ = std::move(o.s_); }
    return *this;
  }
  ~qmp() { close(); }

  asio::any_io_executor get_executor() const noexcept;

  /// Connects to QEMU's QMP unix socket at `path`, reads the greeting and negotiates
  /// (qmp_capabilities). Only once per object.
  /// Handler: `void(error_code)`. Errors: errc::operation_failed (cannot connect, peer closed,
  /// negotiation refused), errc::rpc (the peer is not QMP), errc::operation_invalid (already
  /// connected), asio::error::operation_aborted.
  /// Cancellation: terminal; the connection is then closed. QEMU serves one client at a time and
  /// keeps a second one waiting without a greeting, so bound this call with an op_timeout.
  /// Lifetimes: `diag` must outlive the operation.
  template <class Token = asio::use_awaitable_t<>>
  auto async_connect(std::string path, diagnostics& diag, Token&& token = {}) {
    if constexpr (detail::qmp_is_use_awaitable<Token>) {
      return connect_throwing(s_, std::move(path), &diag);
    } else {
      return asio::async_initiate<Token, void(error_code)>(
          [this](auto h, std::string p, diagnostics* d) { connect_erased(std::move(p), d, std::move(h)); }, token,
          std::move(path), &diag);
    }
  }
  template <class Token = asio::use_awaitable_t<>>
    requires(!detail::qmp_is_diag<Token>)
  auto async_connect(std::string path, Token&& token = {}) {
    if constexpr (detail::qmp_is_use_awaitable<Token>) {
      return connect_throwing(s_, std::move(path), nullptr);
    } else {
      return asio::async_initiate<Token, void(error_code)>(
          [this](auto h, std::string p) { connect_erased(std::move(p), nullptr, std::move(h)); }, token,
          std::move(path));
    }
  }

  /// Runs `command` with `args` (omitted from the message when empty); yields QEMU's "return".
  /// Handler: `void(error_code, boost::json::value)`. Errors: see the class comment;
  /// errc::operation_invalid before async_connect completed; asio::error::operation_aborted.
  /// Cancellation: terminal and partial (not total: the command may already be written). The
  /// caller completes at once with asio::error::operation_aborted; the command is not recalled
  /// (it may still take effect) and its late reply is dropped by id.
  /// Lifetimes: `diag` must outlive the operation.
  /// With `limit`: errc::operation_timeout when QEMU has not answered within it (diag says so).
  template <class Token = asio::use_awaitable_t<>>
  auto async_execute(std::string command, boost::json::object args, qmp_clock::duration limit, diagnostics& diag,
                     Token&& token = {}) {
    return execute_impl(std::move(command), std::move(args), limit, &diag, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto async_execute(std::string command, boost::json::object args, diagnostics& diag, Token&& token = {}) {
    return execute_impl(std::move(command), std::move(args), qmp_no_limit, &diag, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto async_execute(std::string command, diagnostics& diag, Token&& token = {}) {
    return execute_impl(std::move(command), {}, qmp_no_limit, &diag, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
    requires detail::qmp_is_token<Token>
  auto async_execute(std::string command, boost::json::object args, Token&& token = {}) {
    return execute_impl(std::move(command), std::move(args), qmp_no_limit, nullptr, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
    requires detail::qmp_is_token<Token>
  auto async_execute(std::string command, Token&& token = {}) {
    return execute_impl(std::move(command), {}, qmp_no_limit, nullptr, std::forward<Token>(token));
  }

  /// Passthrough (virsh qemu-monitor-command): `json_text` is a whole command object
  /// (`{"execute":"query-status"}`); the result is QEMU's whole reply as text, an error reply
  /// included (it is not mapped to an error_code). The command's own "id", if any, is echoed back
  /// in the reply; without one the reply has no "id". covirt matches the reply with an id of its own.
  /// Handler: `void(error_code, std::string)`. Errors: errc::invalid_arg (not JSON, not an object,
  /// no "execute"/"exec-oob" string), the connection errors of async_execute.
  /// Cancellation and `limit`: as async_execute. Lifetimes: `diag` must outlive the operation.
  template <class Token = asio::use_awaitable_t<>>
  auto async_execute_raw(std::string json_text, qmp_clock::duration limit, diagnostics& diag, Token&& token = {}) {
    return raw_impl(std::move(json_text), limit, &diag, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto async_execute_raw(std::string json_text, diagnostics& diag, Token&& token = {}) {
    return raw_impl(std::move(json_text), qmp_no_limit, &diag, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
    requires(!detail::qmp_is_diag<Token>)
  auto async_execute_raw(std::string json_text, Token&& token = {}) {
    return raw_impl(std::move(json_text), qmp_no_limit, nullptr, std::forward<Token>(token));
  }

  /// Waits for the next event, in the order QEMU sent them (events that arrive before a
  /// command's reply included). One waiter at a time (a second gets asio::error::in_progress).
  /// Handler: `void(error_code, qmp_event)`. Errors: asio::error::eof once the connection has
  /// ended and the queue is drained (close_reason() says why); asio::error::operation_aborted.
  /// Cancellation: terminal, partial and total; nothing is lost, the event stays queued.
  template <class Token = asio::use_awaitable_t<>>
  auto async_next_event(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, qmp_event)>(
        [this](auto h) { next_event_erased(std::move(h)); }, token);
  }

  /// Ends the connection: pending commands fail with errc::operation_failed ("QMP connection to
  /// '<path>' closed"), a waiting async_next_event gets eof, queued events are kept for reading.
  /// Idempotent; never blocks.
  void close() noexcept;

  /// True between a successful async_connect and the end of the connection.
  bool is_open() const noexcept;
  /// Valid after a successful async_connect.
  const qmp_greeting& greeting() const noexcept;
  /// The socket path given to async_connect.
  const std::string& path() const noexcept;
  /// Why the connection ended (empty code while it has not): the code and message that pending
  /// commands got.
  error_code close_code() const noexcept;
  std::string_view close_message() const noexcept;
  /// Commands sent and not answered yet (cancelled ones excluded).
  std::size_t pending_commands() const noexcept;
  /// Events dropped because nobody read them and the queue was full.
  std::size_t events_dropped() const noexcept;
  /// Replies with an unknown id (late replies of cancelled commands) and errors without id.
  std::size_t ignored_messages() const noexcept;

private:
  template <class Token>
  auto execute_impl(std::string command, boost::json::object args, qmp_clock::duration limit, diagnostics* diag,
                    Token&& token) {
    if constexpr (detail::qmp_is_use_awaitable<Token>) {
      return execute_throwing(s_, std::move(command), std::move(args), limit, diag);
    } else {
      return asio::async_initiate<Token, void(error_code, boost::json::value)>(
          [this](auto h, std::string c, boost::json::object a, qmp_clock::duration l, diagnostics* d) {
            execute_erased(std::move(c), std::move(a), l, d, std::move(h));
          },
          token, std::move(command), std::move(args), limit, diag);
    }
  }
  template <class Token>
  auto raw_impl(std::string text, qmp_clock::duration limit, diagnostics* diag, Token&& token) {
    if constexpr (detail::qmp_is_use_awaitable<Token>) {
      return raw_throwing(s_, std::move(text), limit, diag);
    } else {
      return asio::async_initiate<Token, void(error_code, std::string)>(
          [this](auto h, std::string t, qmp_clock::duration l, diagnostics* d) {
            raw_erased(std::move(t), l, d, std::move(h));
          },
          token, std::move(text), limit, diag);
    }
  }

  // src/qemu/qmp.cpp
  void connect_erased(std::string path, diagnostics* diag, asio::any_completion_handler<void(error_code)> h);
  void execute_erased(std::string command, boost::json::object args, qmp_clock::duration limit, diagnostics* diag,
                      asio::any_completion_handler<void(error_code, boost::json::value)> h);
  void raw_erased(std::string text, qmp_clock::duration limit, diagnostics* diag,
                  asio::any_completion_handler<void(error_code, std::string)> h);
  void next_event_erased(asio::any_completion_handler<void(error_code, qmp_event)> h);
  // The use_awaitable forms: covirt::error carries the message. They hold the state, not `this`.
  static asio::awaitable<void> connect_throwing(std::shared_ptr<detail::qmp_state> s, std::string path,
                                               diagnostics* diag);
  static asio::awaitable<boost::json::value> execute_throwing(std::shared_ptr<detail::qmp_state> s,
                                                              std::string command, boost::json::object args,
                                                              qmp_clock::duration limit, diagnostics* diag);
  static asio::awaitable<std::string> raw_throwing(std::shared_ptr<detail::qmp_state> s, std::string text,
                                                   qmp_clock::duration limit, diagnostics* diag);

  std::shared_ptr<detail::qmp_state> s_;
};

}  // namespace covirt::qemu
