// Opens a connection and prints every domain with its info.
//   ./build/examples/list_domains [URI]      (default test:///default)
#include <covirt/connection.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> list(std::string uri) {
  covirt::connection conn = co_await covirt::async_open(co_await asio::this_coro::executor, uri);
  for (const covirt::domain_ref& d : co_await conn.async_list_domains(covirt::list_flags::all)) {
    covirt::domain_info info = co_await conn.async_get_info(d.name);
    std::cout << d.name << " (id " << d.id << ", uuid " << d.uuid << "): " << covirt::to_string(info.state) << ", "
              << info.nr_virt_cpu << " vcpus, " << info.memory_kib << " of " << info.max_mem_kib << " KiB\n";
  }
}

int main(int argc, char** argv) {
  asio::io_context ioc;
  int rc = 0;
  asio::co_spawn(ioc, list(argc > 1 ? argv[1] : "test:///default"), [&](std::exception_ptr e) {
    if (!e) return;
    try { std::rethrow_exception(e); }
    catch (const std::exception& ex) { std::cerr << "error: " << ex.what() << "\n"; rc = 1; }
  });
  ioc.run();
  return rc;
}
