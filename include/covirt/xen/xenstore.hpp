// covirt::xen::xenstore — a client of xenstored over its unix socket, usable on its own.
//
// Many requests in flight at once, matched to their replies by req_id; one reader routes what the
// daemon sends (replies by req_id, WATCH_EVENTs by token to their watch_stream); writes are queued
// and go out one batch at a time. Payloads over 4096 bytes are refused before anything is sent
// (the daemon would drop the connection), and a header from the daemon announcing more ends the
// connection before anything is buffered.
//
// Errors: what the daemon answers is its errno name as std::errc (generic category): ENOENT is
// std::errc::no_such_file_or_directory, EACCES permission_denied, EAGAIN (a transaction that lost
// a race) resource_unavailable_try_again, EEXIST, E2BIG and ENOSPC (quotas)...; `diag` says which
// request on which path ("xenstore READ /local/domain/7/name: ENOENT"). The connection ending is
// errc::no_xenstore ("connection to xenstored at '/run/xenstored/socket' closed: end of file"); a
// daemon that breaks the protocol is errc::internal_error and ends the connection.
// Cancellation (an op_timeout, a parent's ||): terminal and partial; the caller completes at once
// with asio::error::operation_aborted; the late reply is dropped by req_id (a late transaction id
// is ended, uncommitted, at once).
// Watches survive reconnect(): it registers each again, and the daemon's initial event on each
// tells the reader to rescan. When the connection ends, each open watch_stream gets the error once.
// Not thread-safe: use it from its executor (or a strand).
#pragma once

#include <covirt/detail/async_queue.hpp>
#include <covirt/error.hpp>
#include <covirt/xen/xs_wire.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/errc.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace covirt::xen {

namespace asio = boost::asio;

/// A transaction's id; the default, 0, is "no transaction".
struct transaction {
  std::uint32_t id = 0;
};

/// One WATCH_EVENT: the path that changed (or the watch's own path: the initial event, or an
/// ancestor removed) and the token of the watch.
struct watch_event {
  std::string path, token;
};

/// The events of one watch, in the order the daemon sent them. Queued while nobody waits, up to a
/// bound (past it the oldest are dropped and counted). close() drops the watch: its later events
/// are discarded and the client unregisters it.
class watch_stream {
public:
  using state = detail::async_queue<watch_event>;
  watch_stream() = default;
  explicit watch_stream(std::shared_ptr<state> s) noexcept : s_(std::move(s)) {}
  watch_stream(watch_stream&&) noexcept = default;
  watch_stream& operator=(watch_stream&& o) noexcept {
    if (this != &o) { close(); s_ = std::move(o.s_); }
    return *this;
  }
  ~watch_stream() { close(); }

  /// Handler `void(error_code, watch_event)`. Errors: the connection's (once, then the stream
  /// waits for events again, which come after a reconnect()); asio::error::eof once closed.
  template <class Token = asio::use_awaitable_t<>>
  auto async_next(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, watch_event)>(
        [this](auto h) {
          if (!s_) {
            auto ex = asio::get_associated_executor(h);
            asio::dispatch(ex, [h = std::move(h)]() mutable { std::move(h)(asio::error::eof, watch_event{}); });
            return;
          }
          s_->next(std::move(h));
        },
        token);
  }
  void close() noexcept {
    if (s_) s_->close(true);
  }
  bool is_open() const noexcept { return s_ && s_->open; }
  std::size_t pending() const noexcept { return s_ ? s_->items.size() : 0; }
  std::size_t dropped() const noexcept { return s_ ? s_->dropped : 0; }

private:
  std::shared_ptr<state> s_;
};

namespace detail {
struct xenstore_state;
}

class xenstore {
public:
  explicit xenstore(asio::any_io_executor ex);
  xenstore(xenstore&&) noexcept;
  xenstore& operator=(xenstore&&) noexcept;
  ~xenstore();

  asio::any_io_executor get_executor() const noexcept;

  /// The socket libxenstore would use: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else
  /// /var/run/xenstored/socket.
  static std::string default_socket();

  /// Connects to the daemon's socket (empty: default_socket()). errc::no_xenstore if it cannot.
  asio::awaitable<result<void>> connect(std::string_view socket_path, diagnostics& diag);
  /// Connects again to the same socket after the connection ended, and registers every watch
  /// that is still open again (each gets the daemon's initial event).
  asio::awaitable<result<void>> reconnect(diagnostics& diag);
  /// Ends the connection: pending requests fail with errc::no_xenstore, watch streams get eof.
  void close() noexcept;
  bool is_open() const noexcept;
  const std::string& socket_path() const noexcept;
  std::size_t pending_requests() const noexcept;

  /// The value at `path`: raw bytes, nothing added or stripped.
  asio::awaitable<result<std::string>> read(std::string_view path, diagnostics& diag, transaction t = {});
  /// Writes `value` (raw bytes) at `path`, making missing parents.
  asio::awaitable<result<void>> write(std::string_view path, std::string_view value, diagnostics& diag,
                                      transaction t = {});
  asio::awaitable<result<void>> mkdir(std::string_view path, diagnostics& diag, transaction t = {});
  /// Removes `path` and everything below it; a missing path is fine, a missing parent is ENOENT.
  asio::awaitable<result<void>> rm(std::string_view path, diagnostics& diag, transaction t = {});
  /// The names of `path`'s children. A list too long for one reply is read in parts
  /// (DIRECTORY_PART), again from the start if the node changes meanwhile.
  asio::awaitable<result<std::vector<std::string>>> directory(std::string_view path, diagnostics& diag,
                                                              transaction t = {});
  /// The node's permissions: the first is the owner's domain and the default for others ("n0"),
  /// then per-domain entries ("r5"): letters r, w, b (both), n (none).
  asio::awaitable<result<std::vector<std::string>>> get_perms(std::string_view path, diagnostics& diag,
                                                              transaction t = {});
  asio::awaitable<result<void>> set_perms(std::string_view path, const std::vector<std::string>& perms,
                                          diagnostics& diag, transaction t = {});
  asio::awaitable<result<std::string>> get_domain_path(unsigned domid, diagnostics& diag);
  asio::awaitable<result<bool>> is_domain_introduced(unsigned domid, diagnostics& diag);

  asio::awaitable<result<transaction>> transaction_start(diagnostics& diag);
  /// Commits (`commit`) or aborts. A commit that lost a race with another writer fails with
  /// std::errc::resource_unavailable_try_again: the transaction is gone; run it again.
  asio::awaitable<result<void>> transaction_end(transaction t, bool commit, diagnostics& diag);

  /// Runs `body(transaction)` — a coroutine returning result<T> — in a transaction and commits;
  /// when the commit fails with EAGAIN, runs it again in a new one, up to `max_tries` times.
  /// If the body fails, the transaction is aborted and its error returned.
  template <class Body>
  auto transact(Body body, diagnostics& diag, unsigned max_tries = 16)
      -> decltype(body(transaction{})) {
    for (unsigned attempt = 1;; ++attempt) {
      auto t = co_await transaction_start(diag);
      if (!t) co_return failure(t.error());
      auto r = co_await body(*t);
      if (!r) {
        diagnostics ignore;
        co_await transaction_end(*t, false, ignore);
        co_return r;
      }
      auto end = co_await transaction_end(*t, true, diag);
      if (end) co_return r;
      if (end.error() != boost::system::errc::resource_unavailable_try_again || attempt >= max_tries) {
        if (attempt >= max_tries && end.error() == boost::system::errc::resource_unavailable_try_again)
          diag.assign("xenstore transaction still conflicting after " + std::to_string(attempt) + " tries");
        co_return failure(end.error());
      }
    }
  }

  /// Watches `path` (and below; or "@introduceDomain" / "@releaseDomain"). The stream is
  /// registered before the request goes, so the daemon's initial event is in it.
  /// The same (path, token) twice is EEXIST; past the daemon's watch quota, E2BIG.
  asio::awaitable<result<watch_stream>> watch(std::string_view path, std::string_view token, diagnostics& diag);
  asio::awaitable<result<void>> unwatch(std::string_view path, std::string_view token, diagnostics& diag);

  /// Any request: its reply's payload as sent.
  asio::awaitable<result<std::string>> request(wire::msg_type type, std::string payload, transaction t,
                                               diagnostics& diag);

private:
  std::shared_ptr<detail::xenstore_state> s_;
};

}  // namespace covirt::xen
