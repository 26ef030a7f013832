// covirt: a deadline for one operation (Boost 1.81 has no asio::cancel_after).
#pragma once

#include <covirt/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace covirt {

namespace asio = boost::asio;

/// Cancels the operation it is bound to when the time is up. Declare it just before the call:
///
///   covirt::op_timeout deadline{ex, 5s};
///   auto [ec] = co_await conn.async_suspend("web1", asio::as_tuple(deadline.bind(asio::use_awaitable)));
///   if (deadline.expired()) ...   // ec is asio::error::operation_aborted: report errc::operation_timeout
///
/// The timer fires a terminal cancellation; what the driver already sent to its peer may still happen.
class op_timeout {
  struct state {
    asio::cancellation_signal sig;
    bool expired = false;
  };
  std::shared_ptr<state> s_ = std::make_shared<state>();
  asio::steady_timer timer_;
  asio::cancellation_slot parent_;

public:
  op_timeout(asio::any_io_executor ex, std::chrono::steady_clock::duration d) : timer_(std::move(ex), d) {
    timer_.async_wait([s = s_](error_code ec) {
      if (!ec) {
        s->expired = true;
        s->sig.emit(asio::cancellation_type::terminal);
      }
    });
  }
  op_timeout(const op_timeout&) = delete;
  op_timeout& operator=(const op_timeout&) = delete;
  ~op_timeout() {
    if (parent_.is_connected()) parent_.clear();
    s_->sig.slot().clear();
    timer_.cancel();
  }
  /// Also cancels the bound operation when `parent` fires: for an operation that must stop at
  /// either the deadline or its caller's cancellation. In a coroutine, `parent` is the slot of
  /// `co_await asio::this_coro::cancellation_state` (no other operation may use it meanwhile).
  void follow(asio::cancellation_slot parent) {
    if (!parent.is_connected()) return;
    parent_ = parent;
    parent_.assign([s = s_](asio::cancellation_type t) { s->sig.emit(t); });
  }
  bool expired() const noexcept { return s_->expired; }
  /// The error to report for a cancelled operation: operation_timeout if the deadline did it.
  error_code translate(error_code ec) const noexcept {
    return (ec == asio::error::operation_aborted && expired()) ? make_error_code(errc::operation_timeout) : ec;
  }
  template <class Token>
  auto bind(Token&& t) {
    return asio::bind_cancellation_slot(s_->sig.slot(), std::forward<Token>(t));
  }
};

}  // namespace covirt
