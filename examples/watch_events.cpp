// One coroutine watches lifecycle events while another changes domains' states,
// both on one io_context and one connection.
#include <covirt/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> watch(covirt::event_stream events) {
  for (;;) {
    auto [ec, ev] = co_await events.async_next(asio::as_tuple(asio::use_awaitable));
    if (ec) break;  // eof: the connection closed and every event was read
    std::cout << "event '" << covirt::to_string(ev.type) << "' for domain '" << ev.domain.name
              << "': " << covirt::detail_string(ev.type, ev.detail) << "\n";
  }
}

asio::awaitable<void> act(covirt::connection& conn) {
  // The test driver answers at once, without I/O; yielding after each step lets the
  // watcher print as we go, as it would while a real driver waits on its hypervisor.
  auto ex = co_await asio::this_coro::executor;
  auto yield = [&] { return asio::post(ex, asio::use_awaitable); };
  co_await conn.async_suspend("test");
  co_await yield();
  co_await conn.async_resume("test");
  co_await yield();
  co_await conn.async_destroy("test");
  co_await yield();
  co_await conn.async_create("test");
  co_await yield();
  covirt::domain_ref web = co_await conn.async_create_xml(
      "<domain type='test'><name>web1</name><memory unit='MiB'>256</memory>"
      "<os><type>hvm</type></os></domain>", 0);
  std::cout << "started transient domain " << web.name << " with id " << web.id << "\n";
  co_await yield();
  try {
    co_await conn.async_suspend("nosuch");
  } catch (const covirt::error& e) {
    std::cout << "as expected: " << e.what() << "\n";
  }
  co_await conn.async_destroy("web1");
}

asio::awaitable<void> run() {
  auto ex = co_await asio::this_coro::executor;
  covirt::connection conn = co_await covirt::async_open(ex, "test:///default");
  asio::co_spawn(ex, watch(conn.subscribe()), asio::detached);
  co_await act(conn);
  co_await conn.async_close();  // ends the watcher once it has read everything
}

int main() {
  asio::io_context ioc;
  int rc = 0;
  asio::co_spawn(ioc, run(), [&](std::exception_ptr e) {
    if (!e) return;
    try { std::rethrow_exception(e); }
    catch (const std::exception& x) { std::cerr << "error: " << x.what() << "\n"; rc = 1; }
  });
  ioc.run();
  return rc;
}
