#include <covirt/events.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <deque>
#include <optional>

namespace covirt {

namespace detail {

struct event_stream_state : std::enable_shared_from_this<event_stream_state> {
  asio::any_io_executor ex;
  std::string domain;
  std::size_t capacity = 4096;
  std::deque<domain_event> queue;
  std::optional<asio::any_completion_handler<void(error_code, domain_event)>> waiter;
  std::size_t dropped = 0;
  bool open = true;

  void complete(error_code ec, domain_event ev) {
    auto h = std::move(*waiter);
    waiter.reset();
    asio::get_associated_cancellation_slot(h).clear();
    auto hex = asio::get_associated_executor(h, ex);
    // Never complete inside publish() or async_next(): post to the handler's executor.
    asio::post(ex, [h = std::move(h), ec, ev = std::move(ev), hex]() mutable {
      asio::dispatch(hex, [h = std::move(h), ec, ev = std::move(ev)]() mutable { std::move(h)(ec, std::move(ev)); });
    });
  }

  void push(const domain_event& ev) {
    if (!open) return;
    if (!domain.empty() && ev.domain.name != domain) return;
    if (waiter) return complete({}, ev);
    if (queue.size() >= capacity) {
      queue.pop_front();
      ++dropped;
    }
    queue.push_back(ev);
  }

  // The reader's close() discards what is queued; the driver's lets the reader drain it.
  void close(bool discard) {
    open = false;
    if (discard) queue.clear();
    if (waiter) complete(asio::error::eof, {});
  }
};

}  // namespace detail

void event_stream::close() noexcept {
  if (s_) s_->close(true);
}

bool event_stream::is_open() const noexcept { return s_ && s_->open; }
std::size_t event_stream::dropped() const noexcept { return s_ ? s_->dropped : 0; }
std::size_t event_stream::pending() const noexcept { return s_ ? s_->queue.size() : 0; }

void event_stream::next_erased(asio::any_completion_handler<void(error_code, domain_event)> h) {
  if (!s_) {  // a default-constructed stream: nothing will ever come
    auto hex = asio::get_associated_executor(h);
    asio::dispatch(hex, [h = std::move(h)]() mutable { std::move(h)(asio::error::eof, domain_event{}); });
    return;
  }
  if (!s_->open && s_->queue.empty()) {
    asio::post(s_->ex, [h = std::move(h)]() mutable { std::move(h)(asio::error::eof, domain_event{}); });
    return;
  }
  auto& st = *s_;
  if (st.waiter) {  // one reader at a time
    asio::post(st.ex, [h = std::move(h)]() mutable { std::move(h)(asio::error::in_progress, domain_event{}); });
    return;
  }
  st.waiter.emplace(std::move(h));
  if (!st.queue.empty()) {
    domain_event ev = std::move(st.queue.front());
    st.queue.pop_front();
    return st.complete({}, std::move(ev));
  }
  auto slot = asio::get_associated_cancellation_slot(*st.waiter);
  if (slot.is_connected()) {
    slot.assign([w = std::weak_ptr<detail::event_stream_state>(s_)](asio::cancellation_type) {
      if (auto s = w.lock(); s && s->waiter) s->complete(asio::error::operation_aborted, {});
    });
  }
}

event_stream event_hub::subscribe(asio::any_io_executor ex, std::string domain, std::size_t capacity) {
  auto s = std::make_shared<detail::event_stream_state>();
  s->ex = std::move(ex);
  s->domain = std::move(domain);
  s->capacity = std::max<std::size_t>(capacity, 1);
  subs_.push_back(s);
  return event_stream(std::move(s));
}

void event_hub::publish(const domain_event& ev) {
  std::erase_if(subs_, [](const auto& s) { return !s->open; });
  for (auto& s : subs_) s->push(ev);
}

void event_hub::close_all() noexcept {
  for (auto& s : subs_) s->close(false);
  subs_.clear();
}

}  // namespace covirt
