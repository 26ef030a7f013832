// covirt benchmark: the test driver (test:///default) against libvirt's own test driver,
// in one process, the same operations on both sides.
//
//   bench_test_driver [--seconds X] [--rounds N] [--filter SUBSTRING] [--no-direct]
//                     [--side libvirt|covirt|direct]
//
// Columns:
//   libvirt   libvirt's C API on virConnectOpen("test:///default") (in-process test driver)
//   covirt    covirt::connection from async_open(ex, "test:///default"), every call
//             `co_await conn.async_X(...)` (use_awaitable) inside ONE coroutine on one io_context
//   direct    covirt::test::driver used directly (compile-time dispatch, no type erasure,
//             no exceptions: `co_await drv.X(..., diag)` returning result<T>)
// Each cell: warm-up, then as many iterations as fit in --seconds (steady_clock),
// reported as operations (or pairs) per second; the whole run is repeated --rounds times
// (libvirt, covirt, direct in turn each round) and each cell keeps its best round.
#include <covirt/connection.hpp>
#include <covirt/domain/xml.hpp>
#include <covirt/test/driver.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using bench_clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------------
// Options and the measuring loop

double g_seconds = 0.3;
int g_rounds = 3;
std::string g_filter;
std::size_t g_sink = 0;  // keeps results used (a global the optimizer cannot drop)

bool selected(const char* row) { return g_filter.empty() || std::strstr(row, g_filter.c_str()) != nullptr; }

// MEASURE(out_ops_per_s, BODY): BODY is one iteration; it may contain co_await.
// Warm-up (a fifth of the run, at least 20 ms) also sizes a batch so that the clock is read
// about every 50 µs, whatever an iteration costs; then it counts iterations for g_seconds.
#define MEASURE(out, ...)                                                                               \
  do {                                                                                                  \
    const auto mw_len_ = std::chrono::duration<double>(std::max(0.02, g_seconds / 5));                  \
    std::uint64_t mw_n_ = 0;                                                                            \
    const auto mw_t0_ = bench_clock::now();                                                             \
    auto mw_t_ = mw_t0_;                                                                                \
    do {                                                                                                \
      { __VA_ARGS__; }                                                                                  \
      ++mw_n_;                                                                                          \
      mw_t_ = bench_clock::now();                                                                       \
    } while (mw_t_ - mw_t0_ < mw_len_);                                                                 \
    const double m_per_op_ = std::chrono::duration<double>(mw_t_ - mw_t0_).count() / mw_n_;             \
    const std::uint64_t m_batch_ = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(50e-6 / m_per_op_)); \
    std::uint64_t m_n_ = 0;                                                                             \
    const auto m_t0_ = bench_clock::now();                                                              \
    const auto m_len_ = std::chrono::duration<double>(g_seconds);                                       \
    auto m_t_ = m_t0_;                                                                                  \
    do {                                                                                                \
      for (std::uint64_t m_b_ = 0; m_b_ < m_batch_; ++m_b_) { __VA_ARGS__; }                            \
      m_n_ += m_batch_;                                                                                 \
      m_t_ = bench_clock::now();                                                                        \
    } while (m_t_ - m_t0_ < m_len_);                                                                    \
    (out) = m_n_ / std::chrono::duration<double>(m_t_ - m_t0_).count();                                 \
  } while (0)

// ---------------------------------------------------------------------------------------------
// The documents

// A document of benchmarks/data (COVIRT_BENCH_DATA, set by meson to that folder).
std::string read_bench_file(const char* name) {
  std::string path = std::string(COVIRT_BENCH_DATA) + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot read " + path);
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  return text;
}

const std::string small_name = "bench-small";
const std::string small_xml = R"(<domain type='test'>
  <name>bench-small</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type arch='i686'>hvm</type></os>
</domain>
)";

const std::string transient_name = "bench-transient";
const std::string transient_xml = R"(<domain type='test'>
  <name>bench-transient</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type arch='i686'>hvm</type></os>
</domain>
)";

std::string extra_xml(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "bench-extra-%03d", i);
  return std::string("<domain type='test'><name>") + name +
         "</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type arch='i686'>hvm</type></os></domain>";
}

// A realistic guest, about 3 KB: disks, a cdrom, controllers, two NICs, serial + console,
// a channel, input, graphics, video, memballoon, rng (benchmarks/data/web1.xml).
const std::string big_name = "bench-big";
const std::string big_xml = read_bench_file("web1.xml");

// ---------------------------------------------------------------------------------------------
// Results

enum column { col_libvirt, col_covirt, col_direct, col_count };

struct row {
  std::string name;
  std::string unit;  // "ops/s" or "pairs/s"
  bool target = true;  // part of the ≥10× target (rows marked extra are information)
  double v[col_count] = {NAN, NAN, NAN};
};

std::vector<row> g_rows;

row& get_row(const std::string& name, const char* unit, bool target = true) {
  for (auto& r : g_rows)
    if (r.name == name) return r;
  g_rows.push_back(row{name, unit, target, {NAN, NAN, NAN}});
  return g_rows.back();
}

// Row names, in table order.
constexpr const char* r_lookup = "lookup by name";
constexpr const char* r_info = "get_info";
constexpr const char* r_list1 = "list all (1 domain)";
constexpr const char* r_define_small = "define+undefine small";
constexpr const char* r_define_big = "define+undefine 3 KB";
constexpr const char* r_xml_big = "get_xml 3 KB";
constexpr const char* r_create = "create_xml+destroy small";
constexpr const char* r_suspend = "suspend+resume";
constexpr const char* r_list1000 = "list all (1000 domains)";
constexpr const char* r_lookup1000 = "lookup by name, 1000 domains [extra]";
constexpr const char* r_define1000 = "define+undefine small, 1000 domains [extra]";
constexpr const char* r_xml_small = "get_xml \"test\" (default domain) [extra]";
constexpr const char* r_xml_changed = "set_memory+get_xml 3 KB (no cache) [extra]";

void declare_rows() {
  get_row(r_lookup, "ops/s");
  get_row(r_info, "ops/s");
  get_row(r_list1, "ops/s");
  get_row(r_list1000, "ops/s");
  get_row(r_define_small, "pairs/s");
  get_row(r_define_big, "pairs/s");
  get_row(r_xml_big, "ops/s");
  get_row(r_create, "pairs/s");
  get_row(r_suspend, "pairs/s");
  get_row(r_lookup1000, "ops/s", false);
  get_row(r_define1000, "pairs/s", false);
  get_row(r_xml_small, "ops/s", false);
  get_row(r_xml_changed, "pairs/s", false);
}

// Keeps the best of the rounds: on a busy machine the best round is the one least disturbed.
void record(const char* name, column c, double v) {
  double& cell = get_row(name, "ops/s").v[c];
  if (std::isnan(cell) || v > cell) cell = v;
}

// ---------------------------------------------------------------------------------------------
// libvirt

[[noreturn]] void lv_die(const char* what) {
  const virError* e = virGetLastError();
  std::fprintf(stderr, "libvirt: %s failed: %s\n", what, e && e->message ? e->message : "?");
  std::exit(1);
}

void lv_silence(void*, virErrorPtr) {}

void bench_libvirt() {
  virSetErrorFunc(nullptr, lv_silence);
  virConnectPtr conn = virConnectOpen("test:///default");
  if (!conn) lv_die("virConnectOpen");
  virDomainPtr test = virDomainLookupByName(conn, "test");
  if (!test) lv_die("lookup test");
  double v = 0;

  if (selected(r_list1)) {
    MEASURE(v, {
      virDomainPtr* doms = nullptr;
      int n = virConnectListAllDomains(conn, &doms, 0);
      if (n != 1) lv_die("virConnectListAllDomains");
      for (int i = 0; i < n; ++i) virDomainFree(doms[i]);
      free(doms);
      g_sink += n;
    });
    record(r_list1, col_libvirt, v);
  }
  if (selected(r_lookup)) {
    MEASURE(v, {
      virDomainPtr d = virDomainLookupByName(conn, "test");
      if (!d) lv_die("virDomainLookupByName");
      virDomainFree(d);
    });
    record(r_lookup, col_libvirt, v);
  }
  if (selected(r_info)) {
    MEASURE(v, {
      virDomainInfo info;
      if (virDomainGetInfo(test, &info) < 0) lv_die("virDomainGetInfo");
      g_sink += info.nrVirtCpu;
    });
    record(r_info, col_libvirt, v);
  }
  if (selected(r_define_small)) {
    MEASURE(v, {
      virDomainPtr d = virDomainDefineXML(conn, small_xml.c_str());
      if (!d) lv_die("virDomainDefineXML small");
      if (virDomainUndefine(d) < 0) lv_die("virDomainUndefine small");
      virDomainFree(d);
    });
    record(r_define_small, col_libvirt, v);
  }
  if (selected(r_define_big)) {
    MEASURE(v, {
      virDomainPtr d = virDomainDefineXML(conn, big_xml.c_str());
      if (!d) lv_die("virDomainDefineXML 3 KB");
      if (virDomainUndefine(d) < 0) lv_die("virDomainUndefine 3 KB");
      virDomainFree(d);
    });
    record(r_define_big, col_libvirt, v);
  }
  if (selected(r_xml_big) || selected(r_xml_changed)) {
    virDomainPtr d = virDomainDefineXML(conn, big_xml.c_str());
    if (!d) lv_die("virDomainDefineXML 3 KB");
    if (selected(r_xml_big)) {
      MEASURE(v, {
        char* x = virDomainGetXMLDesc(d, 0);
        if (!x) lv_die("virDomainGetXMLDesc");
        g_sink += std::strlen(x);
        free(x);
      });
      record(r_xml_big, col_libvirt, v);
    }
    if (selected(r_xml_changed)) {
      // A change between reads, so that no formatted XML can be reused.
      unsigned long kib = 2097152;
      MEASURE(v, {
        kib ^= 1024;
        if (virDomainSetMemoryFlags(d, kib, VIR_DOMAIN_AFFECT_CONFIG) < 0) lv_die("virDomainSetMemoryFlags");
        char* x = virDomainGetXMLDesc(d, 0);
        if (!x) lv_die("virDomainGetXMLDesc");
        g_sink += std::strlen(x);
        free(x);
      });
      record(r_xml_changed, col_libvirt, v);
    }
    if (virDomainUndefine(d) < 0) lv_die("virDomainUndefine 3 KB");
    virDomainFree(d);
  }
  if (selected(r_xml_small)) {
    MEASURE(v, {
      char* x = virDomainGetXMLDesc(test, 0);
      if (!x) lv_die("virDomainGetXMLDesc");
      g_sink += std::strlen(x);
      free(x);
    });
    record(r_xml_small, col_libvirt, v);
  }
  if (selected(r_create)) {
    MEASURE(v, {
      virDomainPtr d = virDomainCreateXML(conn, transient_xml.c_str(), 0);
      if (!d) lv_die("virDomainCreateXML");
      if (virDomainDestroy(d) < 0) lv_die("virDomainDestroy");
      virDomainFree(d);
    });
    record(r_create, col_libvirt, v);
  }
  if (selected(r_suspend)) {
    MEASURE(v, {
      if (virDomainSuspend(test) < 0) lv_die("virDomainSuspend");
      if (virDomainResume(test) < 0) lv_die("virDomainResume");
    });
    record(r_suspend, col_libvirt, v);
  }

  // 1000 domains: "test" plus 999 defined ones.
  if (selected(r_list1000) || selected(r_lookup1000) || selected(r_define1000)) {
    for (int i = 0; i < 999; ++i) {
      virDomainPtr d = virDomainDefineXML(conn, extra_xml(i).c_str());
      if (!d) lv_die("virDomainDefineXML extra");
      virDomainFree(d);
    }
    if (selected(r_list1000)) {
      MEASURE(v, {
        virDomainPtr* doms = nullptr;
        int n = virConnectListAllDomains(conn, &doms, 0);
        if (n != 1000) lv_die("virConnectListAllDomains 1000");
        for (int i = 0; i < n; ++i) virDomainFree(doms[i]);
        free(doms);
        g_sink += n;
      });
      record(r_list1000, col_libvirt, v);
    }
    if (selected(r_lookup1000)) {
      MEASURE(v, {
        virDomainPtr d = virDomainLookupByName(conn, "bench-extra-500");
        if (!d) lv_die("virDomainLookupByName");
        virDomainFree(d);
      });
      record(r_lookup1000, col_libvirt, v);
    }
    if (selected(r_define1000)) {
      MEASURE(v, {
        virDomainPtr d = virDomainDefineXML(conn, small_xml.c_str());
        if (!d) lv_die("virDomainDefineXML small");
        if (virDomainUndefine(d) < 0) lv_die("virDomainUndefine small");
        virDomainFree(d);
      });
      record(r_define1000, col_libvirt, v);
    }
    for (int i = 0; i < 999; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "bench-extra-%03d", i);
      virDomainPtr d = virDomainLookupByName(conn, name);
      if (!d || virDomainUndefine(d) < 0) lv_die("undefine extra");
      virDomainFree(d);
    }
  }
  virDomainFree(test);
  virConnectClose(conn);
}

// ---------------------------------------------------------------------------------------------
// covirt: one sequence, two ways to call it.
//
// conn_api goes through covirt::connection exactly as a user writes it (`co_await
// conn.async_X(args)`, errors thrown). direct_api calls covirt::test::driver's members and
// returns their awaitable<result<T>> untouched; unwrap() checks it. Both return the library's
// awaitable directly, adding no coroutine frame of their own.

struct conn_api {
  static constexpr bool throws = true;
  covirt::connection& c;
  auto lookup(const std::string& n) { return c.async_lookup_by_name(n); }
  auto info(const std::string& n) { return c.async_get_info(n); }
  auto list(unsigned f) { return c.async_list_domains(f); }
  auto define(const std::string& x) { return c.async_define_xml(x); }
  auto undefine(const std::string& n) { return c.async_undefine(n); }
  auto create_xml(const std::string& x) { return c.async_create_xml(x, 0); }
  auto destroy(const std::string& n) { return c.async_destroy(n); }
  auto suspend(const std::string& n) { return c.async_suspend(n); }
  auto resume(const std::string& n) { return c.async_resume(n); }
  auto xml(const std::string& n) { return c.async_get_xml(n, 0); }
  auto set_memory(const std::string& n, std::uint64_t kib, unsigned f) { return c.async_set_memory(n, kib, f); }
};

struct direct_api {
  static constexpr bool throws = false;
  covirt::test::driver& d;
  covirt::diagnostics diag;
  // A driver's arguments are views that must outlive the co_await: the key lives here, not in a
  // temporary made from the name (the calls below are awaited one at a time).
  covirt::domain_key key;
  const covirt::domain_key& key_of(const std::string& n) {
    key.name = n;
    return key;
  }
  auto lookup(const std::string& n) { return d.lookup_by_name(n, diag); }
  auto info(const std::string& n) { return d.get_info(key_of(n), diag); }
  auto list(unsigned f) { return d.list_domains(f, diag); }
  auto define(const std::string& x) { return d.define_xml(x, diag); }
  auto undefine(const std::string& n) { return d.undefine(key_of(n), diag); }
  auto create_xml(const std::string& x) { return d.create_xml(x, 0, diag); }
  auto destroy(const std::string& n) { return d.destroy(key_of(n), diag); }
  auto suspend(const std::string& n) { return d.suspend(key_of(n), diag); }
  auto resume(const std::string& n) { return d.resume(key_of(n), diag); }
  auto xml(const std::string& n) { return d.get_xml(key_of(n), 0, diag); }
  auto set_memory(const std::string& n, std::uint64_t kib, unsigned f) { return d.set_memory(key_of(n), kib, f, diag); }
};

template <class T>
T unwrap(T&& v) { return std::move(v); }
template <class T>
T unwrap(covirt::result<T>&& r) {
  if (!r) throw std::runtime_error("covirt direct call failed: " + r.error().message());
  return std::move(*r);
}
inline void unwrap(covirt::result<void>&& r) {
  if (!r) throw std::runtime_error("covirt direct call failed: " + r.error().message());
}

// U(x): unwraps a co_await'ed value (identity for connection calls, which throw themselves).
// UV(x): the same for operations without a value.
#define U(...) unwrap(co_await __VA_ARGS__)
#define UV(...)                                              \
  do {                                                       \
    if constexpr (Api::throws) co_await __VA_ARGS__;         \
    else unwrap(co_await __VA_ARGS__);                       \
  } while (0)

template <class Api>
asio::awaitable<void> bench_covirt(Api api, column c) {
  const std::string test = "test";
  double v = 0;

  if (selected(r_list1)) {
    MEASURE(v, {
      auto l = U(api.list(0));
      if (l.size() != 1) throw std::runtime_error("list: expected 1 domain");
      g_sink += l.size();
    });
    record(r_list1, c, v);
  }
  if (selected(r_lookup)) {
    MEASURE(v, {
      auto r = U(api.lookup(test));
      g_sink += r.id;
    });
    record(r_lookup, c, v);
  }
  if (selected(r_info)) {
    MEASURE(v, {
      auto i = U(api.info(test));
      g_sink += i.nr_virt_cpu;
    });
    record(r_info, c, v);
  }
  if (selected(r_define_small)) {
    MEASURE(v, {
      auto r = U(api.define(small_xml));
      g_sink += r.name.size();
      UV(api.undefine(small_name));
    });
    record(r_define_small, c, v);
  }
  if (selected(r_define_big)) {
    MEASURE(v, {
      auto r = U(api.define(big_xml));
      g_sink += r.name.size();
      UV(api.undefine(big_name));
    });
    record(r_define_big, c, v);
  }
  if (selected(r_xml_big) || selected(r_xml_changed)) {
    U(api.define(big_xml));
    if (selected(r_xml_big)) {
      MEASURE(v, {
        std::string x = U(api.xml(big_name));
        g_sink += x.size();
      });
      record(r_xml_big, c, v);
    }
    if (selected(r_xml_changed)) {
      std::uint64_t kib = 2097152;
      MEASURE(v, {
        kib ^= 1024;
        UV(api.set_memory(big_name, kib, covirt::modify::config));
        std::string x = U(api.xml(big_name));
        g_sink += x.size();
      });
      record(r_xml_changed, c, v);
    }
    UV(api.undefine(big_name));
  }
  if (selected(r_xml_small)) {
    MEASURE(v, {
      std::string x = U(api.xml(test));
      g_sink += x.size();
    });
    record(r_xml_small, c, v);
  }
  if (selected(r_create)) {
    MEASURE(v, {
      auto r = U(api.create_xml(transient_xml));
      g_sink += r.id;
      UV(api.destroy(transient_name));
    });
    record(r_create, c, v);
  }
  if (selected(r_suspend)) {
    MEASURE(v, {
      UV(api.suspend(test));
      UV(api.resume(test));
    });
    record(r_suspend, c, v);
  }

  if (selected(r_list1000) || selected(r_lookup1000) || selected(r_define1000)) {
    for (int i = 0; i < 999; ++i) U(api.define(extra_xml(i)));
    if (selected(r_list1000)) {
      MEASURE(v, {
        auto l = U(api.list(0));
        if (l.size() != 1000) throw std::runtime_error("list: expected 1000 domains");
        g_sink += l.size();
      });
      record(r_list1000, c, v);
    }
    if (selected(r_lookup1000)) {
      const std::string name = "bench-extra-500";
      MEASURE(v, {
        auto r = U(api.lookup(name));
        g_sink += r.name.size();
      });
      record(r_lookup1000, c, v);
    }
    if (selected(r_define1000)) {
      MEASURE(v, {
        auto r = U(api.define(small_xml));
        g_sink += r.name.size();
        UV(api.undefine(small_name));
      });
      record(r_define1000, c, v);
    }
    for (int i = 0; i < 999; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "bench-extra-%03d", i);
      UV(api.undefine(std::string(name)));
    }
  }
}

void run_on_io_context(asio::io_context& ioc, asio::awaitable<void> a) {
  std::exception_ptr failure;
  asio::co_spawn(ioc, std::move(a), [&](std::exception_ptr e) { failure = e; });
  ioc.run();
  ioc.restart();
  if (failure) std::rethrow_exception(failure);
}

void bench_covirt_connection() {
  asio::io_context ioc(1);
  run_on_io_context(ioc, [](asio::any_io_executor ex) -> asio::awaitable<void> {
    covirt::connection conn = co_await covirt::async_open(ex, "test:///default");
    co_await bench_covirt(conn_api{conn}, col_covirt);
    co_await conn.async_close();
  }(ioc.get_executor()));
}

void bench_covirt_direct() {
  asio::io_context ioc(1);
  covirt::test::driver drv(ioc.get_executor());
  covirt::diagnostics diag;
  if (!drv.load_default(diag)) throw std::runtime_error("load_default: " + std::string(diag.message()));
  run_on_io_context(ioc, bench_covirt(direct_api{drv, {}, {}}, col_direct));
}

// ---------------------------------------------------------------------------------------------
// Reference: covirt's own domain XML codec on the 3 KB document (what define and an uncached
// get_xml cost at least).

void bench_codec() {
  covirt::diagnostics diag;
  double v = 0;
  MEASURE(v, {
    auto d = covirt::parse_domain_xml(big_xml, diag);
    if (!d) throw std::runtime_error("parse_domain_xml: " + std::string(diag.message()));
    g_sink += d->name.size();
  });
  std::printf("  covirt::parse_domain_xml (3 KB)           %12.0f ops/s  (%.2f us)\n", v, 1e6 / v);
  auto d = covirt::parse_domain_xml(big_xml, diag);
  MEASURE(v, {
    std::string x = covirt::format_domain_xml(*d);
    g_sink += x.size();
  });
  std::printf("  covirt::format_domain_xml (3 KB)          %12.0f ops/s  (%.2f us)\n", v, 1e6 / v);
  std::printf("  3 KB document: %zu bytes in, %zu bytes out of format_domain_xml\n", big_xml.size(),
              covirt::format_domain_xml(*d).size());
}

// ---------------------------------------------------------------------------------------------
// Output

std::string fmt_rate(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

std::string fmt_ratio(double a, double b) {
  if (std::isnan(a) || std::isnan(b) || b == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fx", a / b);
  return buf;
}

void print_table(bool direct) {
  std::printf("\n%-44s | %13s | %13s | %9s |", "operation", "libvirt", "covirt", "covirt/lv");
  if (direct) std::printf(" %13s | %9s |", "direct", "direct/lv");
  std::printf(" unit\n");
  std::printf("%s\n", std::string(direct ? 126 : 98, '-').c_str());
  for (const auto& r : g_rows) {
    if (std::isnan(r.v[col_libvirt]) && std::isnan(r.v[col_covirt])) continue;
    std::printf("%-44s | %13s | %13s | %9s |", r.name.c_str(), fmt_rate(r.v[col_libvirt]).c_str(),
                fmt_rate(r.v[col_covirt]).c_str(), fmt_ratio(r.v[col_covirt], r.v[col_libvirt]).c_str());
    if (direct)
      std::printf(" %13s | %9s |", fmt_rate(r.v[col_direct]).c_str(),
                  fmt_ratio(r.v[col_direct], r.v[col_libvirt]).c_str());
    std::printf(" %s\n", r.unit.c_str());
  }

  std::printf("\nTarget: covirt (through covirt::connection) >= 10x libvirt on every row.\n");
  int met = 0, total = 0;
  std::string missed;
  for (const auto& r : g_rows) {
    if (!r.target || std::isnan(r.v[col_libvirt]) || std::isnan(r.v[col_covirt])) continue;
    ++total;
    double ratio = r.v[col_covirt] / r.v[col_libvirt];
    if (ratio >= 10) ++met;
    else missed += (missed.empty() ? "" : "; ") + r.name + " (" + fmt_ratio(r.v[col_covirt], r.v[col_libvirt]) + ")";
  }
  std::printf("Target met on %d of %d rows%s%s\n", met, total, missed.empty() ? "." : ". Below target: ",
              missed.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  bool direct = true;
  std::string side;  // "", or one of libvirt / covirt / direct (for profiling one side)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      g_seconds = std::atof(argv[++i]);
      if (!(g_seconds > 0)) { std::fprintf(stderr, "--seconds needs a positive number\n"); return 2; }
    } else if (a == "--rounds" && i + 1 < argc) {
      g_rounds = std::atoi(argv[++i]);
      if (g_rounds < 1) { std::fprintf(stderr, "--rounds needs a positive integer\n"); return 2; }
    } else if (a == "--filter" && i + 1 < argc) {
      g_filter = argv[++i];
    } else if (a == "--side" && i + 1 < argc) {
      side = argv[++i];
      if (side != "libvirt" && side != "covirt" && side != "direct") {
        std::fprintf(stderr, "--side takes libvirt, covirt or direct\n");
        return 2;
      }
    } else if (a == "--no-direct") {
      direct = false;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [--seconds X] [--rounds N] [--filter SUBSTRING] [--no-direct] [--side S]\n"
                  "  --seconds X   measuring time per cell (default 0.3; warm-up is a fifth of it, >= 20 ms)\n"
                  "  --rounds N    run everything N times and keep each cell's best (default 3)\n"
                  "  --filter S    only rows whose name contains S\n"
                  "  --no-direct   skip the covirt::test::driver (no type erasure) column\n"
                  "  --side S      run one side only: libvirt, covirt or direct (for profilers)\n",
                  argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }

  declare_rows();
  try {
    unsigned long lv_version = 0;
    virGetVersion(&lv_version, nullptr, nullptr);
    std::printf("covirt test driver vs libvirt %lu.%lu.%lu test driver: %.2f s per cell, best of %d round%s\n",
                lv_version / 1000000, lv_version / 1000 % 1000, lv_version % 1000, g_seconds, g_rounds,
                g_rounds == 1 ? "" : "s");
    std::fflush(stdout);
    for (int round = 0; round < g_rounds; ++round) {
      if (side.empty() || side == "libvirt") bench_libvirt();
      if (side.empty() || side == "covirt") bench_covirt_connection();
      if ((direct && side.empty()) || side == "direct") bench_covirt_direct();
    }
    print_table(direct || side == "direct");
    if (g_filter.empty() && side.empty()) {
      std::printf("\nReference, covirt's domain XML codec alone:\n");
      bench_codec();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "benchmark failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
