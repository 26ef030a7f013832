// covirt internals: a bounded queue read with an async call, one reader at a time — what an
// event_stream (lifecycle events) and a xenstore watch_stream (watch events) are made of.
//
// The producer pushes; past `capacity` the oldest item is dropped and counted. A reader's
// async_next takes the oldest item, or waits for one. An error can be queued too (a lost
// connection): the reader gets it once, in order, and the queue stays open. close() ends it:
// the reader gets eof once the queue is drained (or at once, if the close discards).
// Completions are posted, never run inside push() or next(), and run on the handler's executor.
// Cancellation of a waiting next: any type; nothing is lost, the next item stays queued.
#pragma once

#include <covirt/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

namespace covirt::detail {

template <class T>
struct async_queue : std::enable_shared_from_this<async_queue<T>> {
  using handler = boost::asio::any_completion_handler<void(error_code, T)>;

  async_queue(boost::asio::any_io_executor e, std::size_t cap) : ex(std::move(e)), capacity(std::max<std::size_t>(cap, 1)) {}

  boost::asio::any_io_executor ex;
  std::size_t capacity;
  std::deque<std::pair<error_code, T>> items;
  std::optional<handler> waiter;
  std::size_t dropped = 0;
  bool open = true;

  void push(T v) { push_item({}, std::move(v)); }
  /// The reader's next call fails with `ec` (after what is already queued); the queue stays open.
  void push_error(error_code ec) { push_item(ec, T{}); }

  /// Ends the queue: `discard` drops what is queued (the reader closed it); otherwise the reader
  /// still gets it, then eof.
  void close(bool discard) {
    open = false;
    if (discard) items.clear();
    if (waiter && items.empty()) complete(boost::asio::error::eof, T{});
  }

  void next(handler h) {
    namespace asio = boost::asio;
    if (waiter) {  // one reader at a time
      post_to(std::move(h), asio::error::in_progress, T{});
      return;
    }
    if (!items.empty()) {
      auto [ec, v] = std::move(items.front());
      items.pop_front();
      post_to(std::move(h), ec, std::move(v));
      return;
    }
    if (!open) {
      post_to(std::move(h), asio::error::eof, T{});
      return;
    }
    waiter.emplace(std::move(h));
    auto slot = asio::get_associated_cancellation_slot(*waiter);
    if (slot.is_connected()) {
      slot.assign([w = this->weak_from_this()](asio::cancellation_type) {
        if (auto s = w.lock(); s && s->waiter) s->complete(asio::error::operation_aborted, T{});
      });
    }
  }

private:
  void push_item(error_code ec, T v) {
    if (!open) return;
    if (waiter) return complete(ec, std::move(v));
    if (items.size() >= capacity) {
      items.pop_front();
      ++dropped;
    }
    items.emplace_back(ec, std::move(v));
  }

  void complete(error_code ec, T v) {
    auto h = std::move(*waiter);
    waiter.reset();
    boost::asio::get_associated_cancellation_slot(h).clear();
    post_to(std::move(h), ec, std::move(v));
  }

  void post_to(handler h, error_code ec, T v) {
    auto hex = boost::asio::get_associated_executor(h, ex);
    boost::asio::post(ex, [h = std::move(h), ec, v = std::move(v), hex]() mutable {
      boost::asio::dispatch(hex, [h = std::move(h), ec, v = std::move(v)]() mutable { std::move(h)(ec, std::move(v)); });
    });
  }
};

}  // namespace covirt::detail
