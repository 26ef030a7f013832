// covirt: the connection, a type-erased handle on any driver, and open(uri).
#pragma once

#include <covirt/detail/erased_driver.hpp>
#include <covirt/detail/spawn.hpp>
#include <covirt/driver.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <memory>
#include <type_traits>
#include <typeinfo>

namespace covirt {

namespace detail {
template <class Token>
inline constexpr bool is_diag = std::is_same_v<std::decay_t<Token>, diagnostics>;
template <class Token>
inline constexpr bool is_use_awaitable = std::is_same_v<std::decay_t<Token>, asio::use_awaitable_t<>>;
}  // namespace detail

/// A connection to one hypervisor through one driver. Move-only; not thread-safe
/// (use it from one thread or strand, like any Asio I/O object).
///
/// Its operations are the rows of the table in covirt/operations.hpp (read it for what each
/// takes and does). Every one comes in two forms, `async_X(args..., token)` and
/// `async_X(args..., diagnostics& diag, token)`. The handler is `void(error_code, T)`
/// (`void(error_code)` when there is no value). With the default token,
/// `asio::use_awaitable`, a failure throws covirt::error, which carries the code and the
/// driver's message ("domain 'web1' is not running"); other tokens get the code, and
/// the message lands in `diag` when given. Errors are covirt::errc values (libvirt's).
/// A domain is named by a domain_key: a name, or a domain_ref a lookup returned (then by UUID).
/// Cancellation: through the token's cancellation slot, or the awaiting coroutine's;
/// what a driver has already sent to its peer may still take effect.
/// A read-only connection refuses every operation that changes anything with
/// errc::operation_denied before the driver sees it.
class connection {
public:
  connection() = default;
  connection(std::unique_ptr<detail::erased_driver> impl, covirt::uri u, unsigned flags) noexcept
      : impl_(std::move(impl)), uri_(std::move(u)), flags_(flags) {}
  connection(connection&&) noexcept = default;
  connection& operator=(connection&&) noexcept = default;
  ~connection();

  bool is_open() const noexcept { return impl_ != nullptr; }
  bool is_read_only() const noexcept { return (flags_ & open_flags::read_only) != 0; }
  asio::any_io_executor get_executor() const { return impl_->get_executor(); }
  const covirt::uri& uri() const noexcept { return uri_; }
  /// virConnectGetType: "TEST", "QEMU", "Xen".
  std::string_view type() const { return impl_->type_name(); }
  /// The driver, for code that knows its type (nullptr if it is another).
  template <driver D>
  D* driver_as() noexcept {
    return impl_ ? static_cast<D*>(impl_->target(typeid(D))) : nullptr;
  }
  /// Lifecycle events, optionally of one domain only.
  event_stream subscribe(std::string domain = {}) { return impl_->subscribe(std::move(domain)); }

// async_NAME(params..., token) and async_NAME(params..., diag, token) for each row of the table.
// With use_awaitable (the default) the call is itself the coroutine: its parameters are the
// arguments the driver sees by reference, moved once, into its frame. Like an Asio I/O object's
// operations, it reads the connection when awaited, so the connection must outlive the co_await.
// Other tokens: the arguments move into an owning tuple in the frame of a coroutine spawned on
// the connection's executor.
#define COVIRT_P(...) __VA_ARGS__ __VA_OPT__(, )
#define COVIRT_AWAIT(NAME, DIAG, ARGS)                                    \
  auto s = start<ops::NAME>(ops::NAME::refs ARGS, DIAG);                 \
  if (!s.now) s.now.emplace(co_await std::move(s.later));                \
  co_return value_or_throw(std::move(*s.now), DIAG)
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS)                                                 \
  asio::awaitable<RET> async_##NAME(COVIRT_P PARAMS asio::use_awaitable_t<> = {}) {                     \
    diagnostics diag;                                                                                    \
    COVIRT_AWAIT(NAME, diag, ARGS);                                                                      \
  }                                                                                                      \
  asio::awaitable<RET> async_##NAME(COVIRT_P PARAMS diagnostics& diag, asio::use_awaitable_t<> = {}) {  \
    COVIRT_AWAIT(NAME, diag, ARGS);                                                                      \
  }                                                                                                      \
  template <class Token>                                                                                 \
    requires(!detail::is_diag<Token> && !detail::is_use_awaitable<Token>)                                \
  auto async_##NAME(COVIRT_P PARAMS Token&& token) {                                                     \
    return run<ops::NAME>(std::forward<Token>(token), nullptr, detail::take<ops::NAME::args> ARGS);      \
  }                                                                                                      \
  template <class Token>                                                                                 \
    requires(!detail::is_use_awaitable<Token>)                                                           \
  auto async_##NAME(COVIRT_P PARAMS diagnostics& diag, Token&& token) {                                  \
    return run<ops::NAME>(std::forward<Token>(token), &diag, detail::take<ops::NAME::args> ARGS);        \
  }
  COVIRT_OPERATIONS(COVIRT_X)
#undef COVIRT_X
#undef COVIRT_AWAIT
#undef COVIRT_P

  /// Live migration to the hypervisor behind `dest` (virDomainMigrate3, the table's migration
  /// phases run across two drivers): the guest keeps running while its state moves, then runs on
  /// `dest`; the result is its ref there. Cancelling the call (or async_abort_job on this
  /// connection) cancels the migration and the guest keeps running here. Both connections must
  /// stay open until it completes.
  template <class Token = asio::use_awaitable_t<>>
    requires(!detail::is_diag<Token>)
  auto async_migrate(domain_key dom, connection& dest, migrate_options opt = {}, Token&& token = {}) {
    return run<migrate_op>(std::forward<Token>(token), nullptr,
                           migrate_op::args{std::move(dom), &dest, std::move(opt)});
  }
  template <class Token = asio::use_awaitable_t<>>
  auto async_migrate(domain_key dom, connection& dest, migrate_options opt, diagnostics& diag, Token&& token = {}) {
    return run<migrate_op>(std::forward<Token>(token), &diag,
                           migrate_op::args{std::move(dom), &dest, std::move(opt)});
  }

private:
  // async_migrate as if it were a row: runs the phases through detail::migrate.
  struct migrate_op {
    static constexpr const char* api = "virDomainMigrate3";
    static constexpr bool mutating = true;
    using result_type = domain_ref;
    using args = std::tuple<domain_key, connection*, migrate_options>;
  };

  // The driver's answer to row Op, or the step of a migration; `a` is Op::refs or Op::args.
  template <class Op, class Tuple>
  static detail::step<typename Op::result_type> call(detail::erased_driver& impl, const Tuple& a, diagnostics& d) {
    if constexpr (std::is_same_v<Op, migrate_op>) {
      connection* dst = std::get<1>(a);
      return {std::nullopt,
              detail::migrate(impl, dst->impl_.get(), dst->is_read_only(), std::get<0>(a), std::get<2>(a), d)};
    } else {
      return dispatch_erased(impl, Op{}, typename Op::refs(a), d);
    }
  }
#define COVIRT_X(CAP, NAME, API, MUT, RET, PARAMS, ARGS)                                                 \
  static detail::step<RET> dispatch_erased(detail::erased_driver& impl, ops::NAME, const ops::NAME::refs& a, \
                                           diagnostics& d) {                                             \
    return impl.NAME(a, d);                                                                              \
  }
  COVIRT_OPERATIONS(COVIRT_X)
#undef COVIRT_X

  // A call's first step: refused (with its error as the answer), or the driver's.
  template <class Op>
  detail::step<typename Op::result_type> start(const typename Op::refs& a, diagnostics& d) {
    if (auto ec = refusal<Op>(impl_.get(), is_read_only(), d)) return {failure(ec)};
    return call<Op>(*impl_, a, d);
  }

  template <class T>
  static T value_or_throw(result<T>&& r, const diagnostics& d) {
    if (!r) throw_error(r.error(), d);
    if constexpr (!std::is_void_v<T>) return std::move(*r);
  }

  // What stops a call before the driver sees it; fills `d` and returns the code.
  template <class Op>
  static error_code refusal(detail::erased_driver* impl, bool read_only, diagnostics& d) {
    if (!impl) return fail(d, errc::invalid_conn, "the connection is not open").ec;
    if (Op::mutating && read_only)
      return fail(d, errc::operation_denied, std::string("read only access prevents ") + Op::api).ec;
    return {};
  }

  // Every token but the rows' use_awaitable: the owning tuple lives in the frame of the
  // coroutine that awaits the driver's (async_migrate's use_awaitable gets one that throws; any
  // other token a handler). `a` arrives as a prvalue and goes on as one, moved once, into that
  // frame: every move of a domain_key is two strings' worth of the erased layer's cost.
  template <class Op, class Token>
  auto run(Token&& token, diagnostics* diag, typename Op::args&& a) {
    using T = typename Op::result_type;
    if constexpr (detail::is_use_awaitable<Token>) {
      return throwing<Op>(impl_.get(), is_read_only(), diag, std::move(a));
    } else {
      return asio::async_initiate<Token, typename detail::op_signature<T>::type>(
          [](auto h, detail::erased_driver* impl, bool ro, diagnostics* diag, typename Op::args&& a) {
            auto ex = impl ? impl->get_executor() : asio::get_associated_executor(h);
            detail::spawn_result<T>(ex, as_result<Op>(impl, ro, diag, std::move(a)), std::move(h));
          },
          token, impl_.get(), is_read_only(), diag, std::move(a));
    }
  }

  template <class Op>
  static op<typename Op::result_type> as_result(detail::erased_driver* impl, bool ro, diagnostics* diag,
                                                typename Op::args a) {
    diagnostics local;
    diagnostics& d = diag ? *diag : local;
    if (auto ec = refusal<Op>(impl, ro, d)) co_return failure(ec);
    auto s = call<Op>(*impl, a, d);
    if (s.now) co_return std::move(*s.now);
    co_return co_await std::move(s.later);
  }

  template <class Op>
  static asio::awaitable<typename Op::result_type> throwing(detail::erased_driver* impl, bool ro,
                                                            diagnostics* diag, typename Op::args a) {
    diagnostics local;
    diagnostics& d = diag ? *diag : local;
    if (auto ec = refusal<Op>(impl, ro, d)) throw_error(ec, d);
    auto s = call<Op>(*impl, a, d);
    if (!s.now) s.now.emplace(co_await std::move(s.later));
    co_return value_or_throw(std::move(*s.now), d);
  }

  std::unique_ptr<detail::erased_driver> impl_;
  covirt::uri uri_;
  unsigned flags_ = 0;
};

/// Makes a driver for a URI whose scheme it was registered under.
using driver_factory = std::function<op<std::unique_ptr<detail::erased_driver>>(
    asio::any_io_executor, const uri&, unsigned flags, diagnostics&)>;

/// Adds (or replaces) the driver for `scheme` ("test", "qemu", ...). The test driver is built in.
void register_driver(std::string scheme, driver_factory factory);

/// The schemes open() knows.
std::vector<std::string> registered_drivers();

namespace detail {
op<connection> open_erased(asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag);
}  // namespace detail

/// Opens a connection (virConnectOpenAuth without auth): parses the URI and asks its driver.
/// Handler: `void(error_code, connection)`. Errors: errc::invalid_arg (malformed URI),
/// errc::no_connect (no driver for the scheme), the driver's own.
/// flags: open_flags::read_only.
template <class Token = asio::use_awaitable_t<>>
  requires(!detail::is_diag<Token>)
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags = 0, Token&& token = {});

template <class Token = asio::use_awaitable_t<>>
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag, Token&& token = {}) {
  if constexpr (detail::is_use_awaitable<Token>) {
    return [](asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag) -> asio::awaitable<connection> {
      result<connection> r = co_await detail::open_erased(ex, std::move(uri), flags, diag);
      if (!r) throw_error(r.error(), diag);
      co_return std::move(*r);
    }(std::move(ex), std::move(uri), flags, diag);
  } else {
    return asio::async_initiate<Token, void(error_code, connection)>(
        [](auto h, asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics* diag) {
          detail::spawn_result<connection>(ex, detail::open_erased(ex, std::move(uri), flags, *diag), std::move(h));
        },
        token, std::move(ex), std::move(uri), flags, &diag);
  }
}

template <class Token>
  requires(!detail::is_diag<Token>)
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags, Token&& token) {
  if constexpr (detail::is_use_awaitable<Token>) {
    return [](asio::any_io_executor ex, std::string uri, unsigned flags) -> asio::awaitable<connection> {
      diagnostics diag;
      result<connection> r = co_await detail::open_erased(ex, std::move(uri), flags, diag);
      if (!r) throw_error(r.error(), diag);
      co_return std::move(*r);
    }(std::move(ex), std::move(uri), flags);
  } else {
    // The message has nowhere to go with this token; the code still does.
    auto diag = std::make_shared<diagnostics>();
    return async_open(std::move(ex), std::move(uri), flags, *diag,
                      asio::consign(std::forward<Token>(token), diag));
  }
}

}  // namespace covirt
