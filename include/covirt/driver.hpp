// covirt: what a driver is. One concept for the operations every hypervisor has, one
// capability concept per optional group; both are read off the table in operations.hpp.
//
// Every operation is a coroutine that returns its error as a value and the peer's
// words in `diag`: `asio::awaitable<result<T>> op(args..., diagnostics& diag)`.
// Arguments passed by view must outlive the co_await (the connection guarantees it).
#pragma once

#include <covirt/error.hpp>
#include <covirt/events.hpp>
#include <covirt/operations.hpp>
#include <covirt/types.hpp>
#include <covirt/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace covirt {

namespace asio = boost::asio;

template <class T>
using op = asio::awaitable<result<T>>;

namespace detail {
// A call of row Op's member on D with the arguments of tuple `a`: the coroutine NAME, or NAME_now.
template <class D, class Op, std::size_t... I>
auto invoke_row(std::false_type, D& d, diagnostics& g, const typename Op::args& a, std::index_sequence<I...>)
    -> decltype(Op::invoke(d, g, std::get<I>(a)...));
template <class D, class Op, std::size_t... I>
auto invoke_row(std::true_type, D& d, diagnostics& g, const typename Op::args& a, std::index_sequence<I...>)
    -> decltype(Op::invoke_now(d, g, std::get<I>(a)...));

template <class D, class Op, bool Now>
concept has_row = requires(D& d, diagnostics& g, const typename Op::args& a) {
  { invoke_row<D, Op>(std::bool_constant<Now>{}, d, g, a, std::make_index_sequence<std::tuple_size_v<typename Op::args>>{}) }
      -> std::same_as<std::conditional_t<Now, result<typename Op::result_type>, op<typename Op::result_type>>>;
};

/// Whether driver type D has operation Op with the row's parameters and result.
template <class D, class Op>
concept has_op = has_row<D, Op, false>;
/// Whether D answers operation Op without waiting: `result<T> NAME_now(params..., diag)`.
template <class D, class Op>
concept has_now = has_row<D, Op, true>;

/// Whether D has every operation of capability `c`.
template <class D>
consteval bool provides(capability c) {
  bool all = true;
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS) \
  if (c == capability::CAP) all = all && has_op<D, ops::NAME>;
  COVIRT_OPERATIONS(COVIRT_X)
  COVIRT_OPS_migrate(COVIRT_X)
#undef COVIRT_X
  return all;
}
}  // namespace detail

/// A base for a driver whose operations never wait (all in memory, as libvirt's test driver):
/// it defines each operation as `result<T> NAME_now(params..., diagnostics&)` (declared with
/// COVIRT_DRIVER_IMMEDIATE_OPERATIONS) and inherits from here the coroutine `NAME` the
/// concepts ask for. Through a connection such an operation runs inside the connection's own
/// coroutine (driver_model calls NAME_now): the erased layer adds no frame to the driver's.
template <class D>
class immediate_operations {
public:
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS)                                      \
  template <class... A, class Self = D>                                                       \
  auto NAME(A&&... a) -> decltype((void)static_cast<Self*>(this)->NAME##_now(std::forward<A>(a)...), op<RET>{}) { \
    co_return static_cast<D*>(this)->NAME##_now(std::forward<A>(a)...);                      \
  }
  COVIRT_OPERATIONS(COVIRT_X)
#undef COVIRT_X
};

/// A base for a driver that keeps its domains in covirt's domain list (src/common/domain_list.hpp),
/// as libvirt's drivers keep theirs in one virDomainObjList: the list answers the rows of
/// COVIRT_OPS_core_listed (listing, lookup, is_active, is_persistent, get_state) and get_autostart
/// at once, and the driver's
/// event hub its subscriptions, the same for every driver. D declares the rest of its core with
/// COVIRT_DRIVER_OPERATIONS(core_driver) and (autostart_driver) (or the IMMEDIATE forms), befriends this
/// class, and holds its state as `s_` with the members `ex`, `events` and `doms`; its source
/// instantiates this class (src/common/listed_domains.hpp has the definitions).
template <class D>
class listed_domains : public immediate_operations<D> {
public:
  asio::any_io_executor get_executor() const noexcept;
  event_stream subscribe(std::string domain);
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(core_listed)
  COVIRT_DRIVER_IMMEDIATE_OPERATIONS(autostart_listed)

private:
  auto& doms() { return static_cast<D*>(this)->s_->doms; }
};

/// The core every driver has (the table's `core` rows: node facts, domain listing and lookup,
/// the lifecycle, XML), plus its executor, its type name and its events.
template <class D>
concept driver = requires(D& d) {
  { d.get_executor() } -> std::convertible_to<asio::any_io_executor>;
  { d.type_name() } -> std::convertible_to<std::string_view>;  // virConnectGetType: "TEST", "QEMU", "Xen"
  { d.subscribe(std::string{}) } -> std::same_as<event_stream>;
} && detail::provides<D>(capability::core);

// One concept per optional capability: the driver has all of its rows.
template <class D> concept can_set_memory = driver<D> && detail::provides<D>(capability::set_memory);
template <class D> concept can_set_vcpus = driver<D> && detail::provides<D>(capability::set_vcpus);
template <class D> concept can_autostart = driver<D> && detail::provides<D>(capability::autostart);
template <class D> concept can_networks = driver<D> && detail::provides<D>(capability::networks);
template <class D> concept can_save_restore = driver<D> && detail::provides<D>(capability::save_restore);
template <class D> concept can_core_dump = driver<D> && detail::provides<D>(capability::core_dump);
template <class D> concept can_block_stats = driver<D> && detail::provides<D>(capability::block_stats);
template <class D> concept can_monitor_command = driver<D> && detail::provides<D>(capability::monitor_command);
template <class D> concept can_hotplug = driver<D> && detail::provides<D>(capability::hotplug);
/// get_job_info and abort_job do not wait for the domain's job: they are asked while it runs.
template <class D> concept can_jobs = driver<D> && detail::provides<D>(capability::jobs);
template <class D> concept can_migrate = driver<D> && detail::provides<D>(capability::migrate);
template <class D> concept can_vcpu_pinning = driver<D> && detail::provides<D>(capability::vcpu_pinning);
template <class D> concept can_native_config = driver<D> && detail::provides<D>(capability::native_config);
template <class D> concept can_security = driver<D> && detail::provides<D>(capability::security);
/// schedinfo, memtune, blkiotune, numatune: the typed parameters, live and in the definition.
template <class D> concept can_tuning = driver<D> && detail::provides<D>(capability::tuning);
/// vcpupin and emulatorpin with flags: affinity live and in the definition.
template <class D> concept can_affinity = driver<D> && detail::provides<D>(capability::affinity);
/// domstats, dommemstat, domifstat, domblkinfo: statistics for monitoring agents.
template <class D> concept can_stats = driver<D> && detail::provides<D>(capability::stats);

}  // namespace covirt
