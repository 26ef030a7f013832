#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/remote/driver.hpp>
#include <covirt/test/driver.hpp>
#include <covirt/xen/driver.hpp>

#include <boost/asio/this_coro.hpp>

#include <map>
#include <mutex>

namespace covirt {

namespace {

// The registry is the one place that puts drivers behind the erased interface: a driver is made
// on the executor, then opens the URI (loads its state, checks the path and query).
template <class D>
op<std::unique_ptr<detail::erased_driver>> open_model(asio::any_io_executor ex, const uri& u, unsigned flags,
                                                      diagnostics& diag) {
  auto m = std::make_unique<detail::driver_model<D>>(ex);
  if (auto r = co_await m->get().open(u, flags, diag); !r) co_return r.error();
  co_return std::unique_ptr<detail::erased_driver>(std::move(m));
}

struct registry {
  std::mutex mu;
  std::map<std::string, driver_factory, std::less<>> factories;
  registry() {
    factories.emplace("test", &open_model<test::driver>);
    factories.emplace("qemu", &open_model<qemu::driver>);
    // Any URI with a transport or a host (test+unix:///default, qemu+tcp://h/system).
    factories.emplace("remote", &open_model<remote::driver>);
    factories.emplace("xen", &open_model<xen::driver>);
  }
};

registry& reg() {
  static registry r;
  return r;
}

}  // namespace

namespace detail {
// Instantiated here and only here: a program that names connection::driver_as<D> links these.
template class driver_model<test::driver>;
template class driver_model<qemu::driver>;
template class driver_model<remote::driver>;
template class driver_model<xen::driver>;
}  // namespace detail

connection::~connection() = default;

void register_driver(std::string scheme, driver_factory factory) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  r.factories.insert_or_assign(std::move(scheme), std::move(factory));
}

std::vector<std::string> registered_drivers() {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  std::vector<std::string> out;
  for (const auto& [k, v] : r.factories) out.push_back(k);
  return out;
}

namespace detail {

op<connection> open_erased(asio::any_io_executor ex, std::string text, unsigned flags, diagnostics& diag) {
  auto u = parse_uri(text, diag);
  if (!u) co_return u.error();
  driver_factory f;
  {
    auto& r = reg();
    std::lock_guard lk(r.mu);
    auto it = r.factories.find(u->driver);
    // A transport or a host means the driver runs elsewhere: that is the remote driver's job.
    if (!u->is_local()) it = r.factories.find("remote");
    if (it == r.factories.end()) {
      std::string known;
      for (const auto& [k, v] : r.factories) known += (known.empty() ? "" : ", ") + k;
      // The message completes libvirt's "no connection driver available for ...".
      co_return fail(diag, errc::no_connect,
                     u->is_local() ? text + " (known drivers: " + known + ")"
                                   : text + " (remote URIs need the remote driver, which is not available)");
    }
    f = it->second;
  }
  auto d = co_await f(ex, *u, flags, diag);
  if (!d) co_return d.error();
  co_return connection(std::move(*d), std::move(*u), flags);
}

// libvirt's virDomainMigrateVersion3Full, in one process: begin, prepare, perform, finish, confirm.
// After perform has started, every later phase runs even if the caller was cancelled: the
// destination must let go of its half and the source must resume or stop its guest.
op<domain_ref> migrate(erased_driver& src, erased_driver* dst, bool dst_read_only, const domain_key& dom,
                       const migrate_options& opt, diagnostics& diag) {
  if (!dst) co_return fail(diag, errc::invalid_conn, "the destination connection is not open");
  if (dst == &src) co_return fail(diag, errc::operation_invalid, "the destination is the source connection itself");
  if (dst_read_only) co_return fail(diag, errc::operation_denied, "read only access prevents virDomainMigratePrepare3");
  if (opt.flags & (migrate_flags::peer2peer | migrate_flags::tunnelled | migrate_flags::offline))
    co_return fail(diag, errc::argument_unsupported,
                   "migration flags peer2peer, tunnelled and offline are not supported (both drivers run in this process)");
  const bool throw_before = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto done = [&](auto r) -> asio::awaitable<decltype(r)> {
    co_await asio::this_coro::throw_if_cancelled(throw_before);
    co_return r;
  };
  auto xml = co_await detail::finish(src.migrate_begin({dom, opt.flags}, diag));
  if (!xml && xml.error() == errc::no_support) diag.assign("virDomainMigrate3");  // virsh names the public call
  if (!xml) co_return co_await done(result<domain_ref>(failure(xml.error())));
  auto uri = co_await detail::finish(dst->migrate_prepare({std::move(*xml), opt.uri, opt.flags}, diag));
  if (!uri) co_return co_await done(result<domain_ref>(failure(uri.error())));
  auto performed = co_await detail::finish(src.migrate_perform({dom, *uri, opt}, diag));
  diagnostics fdiag;
  // A named key: the erased call takes references, and a braced std::string would make a
  // domain_key that dies inside the tuple's constructor.
  const domain_key at_dest{dom.name};
  auto finished = co_await detail::finish(dst->migrate_finish({at_dest, opt.flags, performed.has_value()}, fdiag));
  diagnostics cdiag;
  auto confirmed = co_await detail::finish(src.migrate_confirm({dom, opt.flags, performed && finished}, cdiag));
  if (!performed) co_return co_await done(result<domain_ref>(failure(performed.error())));
  if (!finished) {
    diag = fdiag;
    co_return co_await done(result<domain_ref>(failure(finished.error())));
  }
  (void)confirmed;  // the guest runs at the destination; a source that failed to clean up is not the caller's loss
  co_return co_await done(std::move(finished));
}

}  // namespace detail
}  // namespace covirt
