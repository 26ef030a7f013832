// covirt internals: one job at a time on a domain, as libvirt's per-domain job condition
// (virDomainObjBeginJob) is, for callers that await instead of blocking a thread. Waiters are
// served in the order they came; a waiter whose wait is cancelled leaves the queue and never
// holds the job.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <memory>

namespace covirt::detail {

class job_queue {
public:
  bool held() const noexcept { return held_; }

  /// Takes the job if nobody holds it (a domain nobody else knows of yet, say).
  bool try_take() noexcept {
    if (held_) return false;
    held_ = true;
    return true;
  }

  /// Waits for the job; false when the wait was cancelled (the job is then not held by us).
  boost::asio::awaitable<bool> acquire() {
    if (try_take()) co_return true;
    auto w = std::make_shared<waiter>(co_await boost::asio::this_coro::executor);
    waiters_.push_back(w);
    co_await w->timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (w->granted) co_return true;
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
    co_return false;
  }

  /// Ends the holder's job: the first waiter gets it, or nobody holds it.
  void release() {
    if (waiters_.empty()) {
      held_ = false;
      return;
    }
    auto w = std::move(waiters_.front());
    waiters_.pop_front();
    w->granted = true;  // the job passes on; held_ stays true
    w->timer.cancel();
  }

private:
  struct waiter {
    explicit waiter(boost::asio::any_io_executor ex)
        : timer(std::move(ex), boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer timer;
    bool granted = false;
  };
  bool held_ = false;
  std::deque<std::shared_ptr<waiter>> waiters_;
};

/// Holds a domain's job for a scope: releases it when it goes, if it was handed one.
/// Ptr points to a domain with a `job` (a job_queue).
template <class Ptr>
struct job_guard {
  Ptr d;
  job_guard() = default;
  explicit job_guard(Ptr p) : d(std::move(p)) {}
  job_guard(job_guard&& o) noexcept : d(std::move(o.d)) {}
  job_guard& operator=(job_guard&&) = delete;
  ~job_guard() {
    if (d) d->job.release();
  }
};

}  // namespace covirt::detail
