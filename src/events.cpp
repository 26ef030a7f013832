#include <covirt/events.hpp>
#include <covirt/detail/async_queue.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

namespace covirt {

namespace detail {

// A lifecycle event queue, filtered by domain name if the subscriber asked for one.
struct event_stream_state : async_queue<domain_event> {
  using async_queue::async_queue;
  std::string domain;
  void publish(const domain_event& ev) {
    if (domain.empty() || ev.domain.name == domain) push(ev);
  }
};

}  // namespace detail

void event_stream::close() noexcept {
  if (s_) s_->close(true);
}

bool event_stream::is_open() const noexcept { return s_ && s_->open; }
std::size_t event_stream::dropped() const noexcept { return s_ ? s_->dropped : 0; }
std::size_t event_stream::pending() const noexcept { return s_ ? s_->items.size() : 0; }

void event_stream::next_erased(asio::any_completion_handler<void(error_code, domain_event)> h) {
  if (!s_) {  // a default-constructed stream: nothing will ever come
    auto hex = asio::get_associated_executor(h);
    asio::dispatch(hex, [h = std::move(h)]() mutable { std::move(h)(asio::error::eof, domain_event{}); });
    return;
  }
  s_->next(std::move(h));
}

event_stream event_hub::subscribe(asio::any_io_executor ex, std::string domain, std::size_t capacity) {
  auto s = std::make_shared<detail::event_stream_state>(std::move(ex), capacity);
  s->domain = std::move(domain);
  subs_.push_back(s);
  return event_stream(std::move(s));
}

void event_hub::publish(const domain_event& ev) {
  std::erase_if(subs_, [](const auto& s) { return !s->open; });
  for (auto& s : subs_) s->publish(ev);
}

void event_hub::close_all() noexcept {
  for (auto& s : subs_) s->close(false);
  subs_.clear();
}

}  // namespace covirt
