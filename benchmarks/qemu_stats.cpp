// covirt benchmark: bulk statistics for monitoring agents, covirt's QEMU driver against libvirt's
// QEMU driver through libvirtd, in one run, on real QEMU processes (TCG).
//
//   bench_qemu_stats --libvirt-uri URI [--guests N] [--iterations N]
//
// Each side starts N guests of the same XML (64 MiB q35, a 16 MiB raw disk, a virtio balloon;
// no NIC: its boot ROM would keep every TCG guest busy), waits until they run, then times N
// calls of the bulk call with every group (stats 0, flags 0): libvirt's virConnectGetAllDomainStats (and virDomainStatsRecordListFree)
// and covirt's async_get_all_domain_stats, one coroutine on one io_context. Cells are medians
// in milliseconds; the ratio is libvirt's over covirt's. Before timing, the fields of one
// guest's record are compared (names only, values differ): what one side has and the other
// lacks is printed. Everything started carries the marker cvbq- in its command line and is
// destroyed at the end (benchmarks/run-qemu also kills what is left).
#include <covirt/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string g_lv_uri;
int g_guests = 20, g_iterations = 20;
std::string g_tmp, g_tag;

[[noreturn]] void lv_fail(const char* what) {
  const char* m = virGetLastErrorMessage();
  throw std::runtime_error(std::string(what) + ": " + (m ? m : "?"));
}

std::string guest_xml(const std::string& name, const std::string& disk) {
  return "<domain type='qemu'><name>" + name +
         "</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os>"
         "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + disk +
         "'/><target dev='vda' bus='virtio'/></disk>"
         "<memballoon model='virtio'/></devices></domain>";
}

std::string make_disk(const std::string& name) {
  std::string path = g_tmp + "/" + name + ".raw";
  std::ofstream(path).close();
  fs::resize_file(path, 16 << 20);
  return path;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// A field name with its indexes kept: both sides run the same XML, so "block.0.rd.reqs" is
/// comparable as it stands.
std::set<std::string> lv_fields(virDomainStatsRecordPtr r) {
  std::set<std::string> s;
  for (int i = 0; i < r->nparams; ++i) s.insert(r->params[i].field);
  return s;
}

asio::awaitable<void> bench(virConnectPtr lv) {
  auto ex = co_await asio::this_coro::executor;
  const std::string cv_uri = "qemu:///session?config_dir=" + g_tmp + "/c&state_dir=" + g_tmp + "/s";
  covirt::connection conn = co_await covirt::async_open(ex, cv_uri);

  std::printf("starting %d guests per side...\n", g_guests);
  std::fflush(stdout);
  std::vector<virDomainPtr> lv_doms;
  std::vector<std::string> cv_names;
  for (int i = 0; i < g_guests; ++i) {
    std::string ln = g_tag + "-lv-" + std::to_string(i), cn = g_tag + "-cv-" + std::to_string(i);
    std::string lxml = guest_xml(ln, make_disk(ln)), cxml = guest_xml(cn, make_disk(cn));
    virDomainPtr d = virDomainCreateXML(lv, lxml.c_str(), 0);
    if (!d) lv_fail("virDomainCreateXML");
    lv_doms.push_back(d);
    co_await conn.async_create_xml(cxml, 0);
    cv_names.push_back(cn);
  }
  // Let both sides' guests get past their first moments (firmware reading the disk).
  asio::steady_timer settle(ex, std::chrono::seconds(2));
  co_await settle.async_wait(asio::use_awaitable);

  // Layout: one guest each, field names compared.
  std::set<std::string> lf, cf;
  {
    virDomainStatsRecordPtr* recs = nullptr;
    virDomainPtr one[] = {lv_doms.front(), nullptr};
    if (virDomainListGetStats(one, 0, &recs, 0) < 0) lv_fail("virDomainListGetStats");
    if (recs[0]) lf = lv_fields(recs[0]);
    virDomainStatsRecordListFree(recs);
    std::vector<covirt::domain_key> keys{cv_names.front()};
    auto mine = co_await conn.async_get_all_domain_stats(keys, 0u, 0u);
    if (!mine.empty())
      for (const auto& p : mine.front().params) cf.insert(p.field);
  }
  std::vector<std::string> only_lv, only_cv;
  std::set_difference(lf.begin(), lf.end(), cf.begin(), cf.end(), std::back_inserter(only_lv));
  std::set_difference(cf.begin(), cf.end(), lf.begin(), lf.end(), std::back_inserter(only_cv));
  std::printf("fields of one guest's record: libvirt %zu, covirt %zu, in both %zu\n", lf.size(), cf.size(),
              lf.size() - only_lv.size());
  for (const auto& f : only_lv) std::printf("  only libvirt: %s\n", f.c_str());
  for (const auto& f : only_cv) std::printf("  only covirt:  %s\n", f.c_str());

  // Timing, sides alternating per iteration so that drift in the machine's load hits both.
  std::vector<double> lt, ct;
  std::size_t lv_records = 0, cv_records = 0;
  for (int it = 0; it < g_iterations; ++it) {
    auto t0 = std::chrono::steady_clock::now();
    virDomainStatsRecordPtr* recs = nullptr;
    int n = virConnectGetAllDomainStats(lv, 0, &recs, 0);
    if (n < 0) lv_fail("virConnectGetAllDomainStats");
    virDomainStatsRecordListFree(recs);
    lt.push_back(ms_since(t0));
    lv_records = static_cast<std::size_t>(n);
    t0 = std::chrono::steady_clock::now();
    const std::vector<covirt::domain_key> every;
    auto all = co_await conn.async_get_all_domain_stats(every, 0u, 0u);
    ct.push_back(ms_since(t0));
    cv_records = all.size();
  }
  double l = median(lt), c = median(ct);
  std::printf("\n| row | libvirt (ms) | covirt (ms) | libvirt / covirt |\n|---|---|---|---|\n");
  std::printf("| domstats, every group, %zu vs %zu running guests (median of %d) | %.2f | %.2f | %.1fx |\n",
              lv_records, cv_records, g_iterations, l, c, c > 0 ? l / c : 0);
  std::printf("target: covirt at least 5x faster: %s\n", c > 0 && l / c >= 5 ? "met" : "missed");

  for (auto* d : lv_doms) {
    virDomainDestroy(d);
    virDomainFree(d);
  }
  for (const auto& n : cv_names) {
    const covirt::domain_key k(n);
    co_await conn.async_destroy(k);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--libvirt-uri" && i + 1 < argc) g_lv_uri = argv[++i];
    else if (a == "--guests" && i + 1 < argc) g_guests = std::max(1, std::atoi(argv[++i]));
    else if (a == "--iterations" && i + 1 < argc) g_iterations = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s --libvirt-uri URI [--guests N] [--iterations N]\n", argv[0]);
      return 2;
    }
  }
  if (g_lv_uri.empty()) {
    std::fprintf(stderr, "--libvirt-uri is needed\n");
    return 2;
  }
  char tmpl[] = "/tmp/cvbq-stats-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  g_tmp = tmpl;
  g_tag = fs::path(g_tmp).filename().string();
  virConnectPtr lv = virConnectOpen(g_lv_uri.c_str());
  if (!lv) {
    std::fprintf(stderr, "cannot open %s\n", g_lv_uri.c_str());
    return 1;
  }
  int rc = 0;
  asio::io_context io;
  asio::co_spawn(io, bench(lv), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "bench_qemu_stats: %s\n", x.what());
      rc = 1;
    }
  });
  io.run();
  virConnectClose(lv);
  std::error_code ec;
  fs::remove_all(g_tmp, ec);
  return rc;
}
