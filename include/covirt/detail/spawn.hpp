// covirt internals: completing an Asio handler from a coroutine that returns result<T>.
// Every async_ initiation that runs a coroutine (the connection's operations, the QMP client,
// the process watcher) completes its handler through spawn_result, so the rules are written once:
// the handler's cancellation slot cancels the coroutine, the handler runs on its own executor,
// and a coroutine that throws (none should) completes with errc::internal_error.
#pragma once

#include <covirt/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace covirt::detail {

namespace asio = boost::asio;

/// The handler signature of an operation with result T: void(error_code, T), or void(error_code).
template <class T>
struct op_signature { using type = void(error_code, T); };
template <>
struct op_signature<void> { using type = void(error_code); };

/// Runs `o` on `ex` and hands its result to `h` as (error_code, T); `empty` is the T a failure passes.
template <class T, class Handler, class Empty = std::conditional_t<std::is_void_v<T>, int, T>>
void spawn_result(const asio::any_io_executor& ex, asio::awaitable<result<T>> o, Handler h, Empty empty = {}) {
  auto slot = asio::get_associated_cancellation_slot(h);
  auto hex = asio::get_associated_executor(h, ex);
  asio::co_spawn(ex, std::move(o),
                 asio::bind_cancellation_slot(slot, asio::bind_executor(hex,
                     [h = std::move(h), empty = std::move(empty)](std::exception_ptr e, result<T> r) mutable {
                       if (e) r = make_error_code(errc::internal_error);
                       if constexpr (std::is_void_v<T>) std::move(h)(r ? error_code{} : r.error());
                       else if (r) std::move(h)(error_code{}, std::move(*r));
                       else std::move(h)(r.error(), std::move(empty));
                     })));
}

}  // namespace covirt::detail
