#include <covirt/connection.hpp>
#include <covirt/qemu/driver.hpp>
#include <covirt/test/driver.hpp>

#include <map>
#include <mutex>

namespace covirt {

namespace {

struct registry {
  std::mutex mu;
  std::map<std::string, driver_factory, std::less<>> factories;
  registry() {
    factories.emplace("test", &test::open_driver);
    factories.emplace("qemu", &qemu::open_driver);
  }
};

registry& reg() {
  static registry r;
  return r;
}

}  // namespace

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

}  // namespace detail
}  // namespace covirt
