// covirt: lifecycle events as an async stream.
#pragma once

#include <covirt/error.hpp>
#include <covirt/types.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace covirt {

namespace asio = boost::asio;

namespace detail {
struct event_stream_state;
}

/// A subscription to lifecycle events, in the order the driver saw them.
/// Events queue up while nobody waits, up to a bound; past it the oldest are
/// dropped and counted in dropped(), so a slow reader never grows memory without limit.
/// Not thread-safe: use it from the executor it was made on.
class event_stream {
public:
  event_stream() = default;
  explicit event_stream(std::shared_ptr<detail::event_stream_state> s) noexcept : s_(std::move(s)) {}
  event_stream(event_stream&&) noexcept = default;
  event_stream& operator=(event_stream&& o) noexcept {
    if (this != &o) { close(); s_ = std::move(o.s_); }
    return *this;
  }
  ~event_stream() { close(); }

  /// Waits for the next event.
  /// Handler: `void(error_code, domain_event)`. Errors: `asio::error::eof` once the stream is
  /// closed (by close() or by the connection closing) and drained; `asio::error::operation_aborted`.
  /// Cancellation: terminal, partial and total; nothing is lost, the event stays queued.
  template <class Token = asio::use_awaitable_t<>>
  auto async_next(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, domain_event)>(
        [this](auto h) { next_erased(std::move(h)); }, token);
  }

  /// Ends the stream: a pending async_next completes with eof; queued events are discarded.
  void close() noexcept;
  bool is_open() const noexcept;
  /// Events dropped because the queue was full.
  std::size_t dropped() const noexcept;
  /// Events waiting to be read.
  std::size_t pending() const noexcept;

private:
  void next_erased(asio::any_completion_handler<void(error_code, domain_event)> h);
  std::shared_ptr<detail::event_stream_state> s_;
};

/// The publishing side, owned by a driver.
class event_hub {
public:
  event_hub() = default;
  event_hub(const event_hub&) = delete;
  event_hub& operator=(const event_hub&) = delete;
  ~event_hub() { close_all(); }

  /// A new subscription; `domain` empty means every domain, else only events of that name.
  event_stream subscribe(asio::any_io_executor ex, std::string domain = {}, std::size_t capacity = 4096);
  void publish(const domain_event& ev);
  void publish(const domain_ref& d, event_type t, int detail) { if (!subs_.empty()) publish(domain_event{d, t, detail}); }
  bool has_subscribers() const noexcept { return !subs_.empty(); }
  /// Ends every stream (the driver is closing); readers still get what was queued, then eof.
  void close_all() noexcept;

private:
  std::vector<std::shared_ptr<detail::event_stream_state>> subs_;
};

}  // namespace covirt
