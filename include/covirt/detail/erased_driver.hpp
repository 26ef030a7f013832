// covirt internals: the type-erased driver behind covirt::connection, generated from the table
// of operations (operations.hpp): one virtual function per row, taking the row's arguments as a
// tuple of references (Op::refs) to objects the caller keeps.
#pragma once

#include <covirt/driver.hpp>

#include <memory>
#include <optional>
#include <tuple>
#include <typeinfo>
#include <utility>

namespace covirt::detail {

/// What an erased operation gives back: the driver's answer when it had one at once (an
/// immediate operation), else its awaitable. The arguments must outlive the co_await of
/// `later`, which the connection guarantees.
template <class T>
struct step {
  std::optional<result<T>> now;
  op<T> later{};
};

/// The result of a step, for code that does not care how it came (migration's phases).
template <class T>
op<T> finish(step<T> s) {
  if (s.now) co_return std::move(*s.now);
  co_return co_await std::move(s.later);
}

// Each member calls the driver's operation without a coroutine of its own.
class erased_driver {
public:
  virtual ~erased_driver() = default;
  virtual asio::any_io_executor get_executor() = 0;
  virtual std::string_view type_name() = 0;
  virtual event_stream subscribe(std::string domain) = 0;
  /// The driver object if it is of type `t` (connection::driver_as), else nullptr.
  virtual void* target(const std::type_info& t) noexcept = 0;
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS) \
  virtual step<RET> NAME(const ops::NAME::refs&, diagnostics&) = 0;
  COVIRT_OPERATIONS(COVIRT_X)
  COVIRT_OPS_migrate(COVIRT_X)
#undef COVIRT_X
};

/// Runs a migration's five phases between two drivers (connection::async_migrate).
op<domain_ref> migrate(erased_driver& src, erased_driver* dst, bool dst_read_only, const domain_key& dom,
                       const migrate_options& opt, diagnostics& diag);

/// An operation the driver lacks: libvirt's VIR_ERR_NO_SUPPORT. what() then reads as libvirt's:
/// "this function is not supported by the connection driver: virDomainSave".
template <class T>
op<T> unsupported(diagnostics& diag, const char* api) {
  co_return fail(diag, errc::no_support, api);
}

/// Calls operation Op of driver d with the arguments in the tuple (Op::args or Op::refs), or
/// answers no_support.
template <class Op, class D, class Tuple>
op<typename Op::result_type> dispatch(D& d, const Tuple& a, diagnostics& g) {
  if constexpr (has_op<D, Op>)
    return std::apply([&](const auto&... x) { return Op::invoke(d, g, x...); }, a);
  else
    return unsupported<typename Op::result_type>(g, Op::api);
}

/// Operation Op of driver d as a step: at once where the driver answers without waiting.
template <class Op, class D, class Tuple>
step<typename Op::result_type> run_step(D& d, const Tuple& a, diagnostics& g) {
  if constexpr (has_now<D, Op>)
    return {std::apply([&](const auto&... x) { return Op::invoke_now(d, g, x...); }, a)};
  else
    return {std::nullopt, dispatch<Op>(d, a, g)};
}

/// A driver behind the erased interface. Only the driver registry (src/connection.cpp)
/// instantiates it: drivers do not know the layer above them.
template <driver D>
class driver_model final : public erased_driver {
public:
  template <class... Args>
  explicit driver_model(Args&&... args) : d_(std::forward<Args>(args)...) {}
  D& get() noexcept { return d_; }

  asio::any_io_executor get_executor() override { return d_.get_executor(); }
  std::string_view type_name() override { return d_.type_name(); }
  event_stream subscribe(std::string domain) override { return d_.subscribe(std::move(domain)); }
  void* target(const std::type_info& t) noexcept override { return t == typeid(D) ? &d_ : nullptr; }
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS)                      \
  step<RET> NAME(const ops::NAME::refs& a, diagnostics& g) override {         \
    return run_step<ops::NAME>(d_, a, g);                                     \
  }
  COVIRT_OPERATIONS(COVIRT_X)
  COVIRT_OPS_migrate(COVIRT_X)
#undef COVIRT_X

private:
  D d_;
};

}  // namespace covirt::detail
