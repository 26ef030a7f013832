// The test driver's statistics, as libvirt 9.0's test driver answers them (src/test/test_driver.c):
// testDomainBlockStats and testDomainInterfaceStats count up from the time of day (their numbers
// mean nothing, they only move), testDomainMemoryStats derives a balloon's figures from the
// current memory, testDomainGetBlockInfo gives every disk with a source the same terabyte, and
// testConnectGetAllDomainStats has the "state" group and an "iothread" group that stays empty.
// The checks come in libvirt's order, with its words.
#include "driver_state.hpp"
#include "../common/domain_stats.hpp"

#include <algorithm>
#include <cstdio>
#include <sys/time.h>

namespace covirt::test {

using namespace impl;

namespace {

/// testDomainObjPrivateAlloc's clock (priv->seconds): the memory stats' last_update.
constexpr std::uint64_t test_clock_seconds = 627319920;

failure unsupported_flags(unsigned bad, const char* function, diagnostics& diag) {
  char text[160];
  std::snprintf(text, sizeof text, "unsupported flags (0x%x) in function %s", bad, function);
  return fail(diag, errc::invalid_arg, text);
}

/// The time of day as the test driver's counters read it: microseconds and seconds.
struct clock_base {
  unsigned long long micros = 0, seconds = 0;
};
clock_base now_base() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return {static_cast<unsigned long long>(tv.tv_sec) * 1000000ULL + static_cast<unsigned long long>(tv.tv_usec),
          static_cast<unsigned long long>(tv.tv_sec)};
}

bool is_mac(std::string_view s) {
  if (s.size() != 17) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2 ? s[i] != ':' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

/// virDomainDiskByName: a disk by its target or its source path.
const disk_def* disk_by_name(const domain_config& def, std::string_view name) {
  for (const auto& d : def.devices.disks)
    if (d.target_dev == name) return &d;
  for (const auto& d : def.devices.disks)
    if (d.source && !d.source->file.empty() && d.source->file == name) return &d;
  return nullptr;
}

}  // namespace

result<covirt::block_stats> driver::block_stats_now(const domain_key& key, std::string_view disk, diagnostics& diag) {
  if (disk.empty()) return fail(diag, errc::operation_unsupported, "summary statistics are not supported yet");
  auto d = s_->get_active(key, diag);
  if (!d) return d.error();
  if (!disk_by_name((*d)->def, disk)) return fail(diag, errc::invalid_arg, "invalid path: " + std::string(disk));
  auto t = now_base();
  covirt::block_stats st;
  st.rd_req = static_cast<std::int64_t>(t.micros / 10);
  st.rd_bytes = static_cast<std::int64_t>(t.micros / 20);
  st.wr_req = static_cast<std::int64_t>(t.micros / 30);
  st.wr_bytes = static_cast<std::int64_t>(t.micros / 40);
  st.errs = static_cast<std::int64_t>(t.seconds / 2);
  return st;
}

result<covirt::interface_stats> driver::interface_stats_now(const domain_key& key, std::string_view device,
                                                            diagnostics& diag) {
  auto d = s_->get_active(key, diag);
  if (!d) return d.error();
  // virDomainNetFind: a MAC address names the interface with that MAC, anything else its target.
  const auto& nets = (*d)->def.devices.interfaces;
  bool by_mac = is_mac(device);
  std::string mac = lower(device);
  auto it = std::find_if(nets.begin(), nets.end(), [&](const interface_def& n) {
    return by_mac ? n.mac == mac : (n.target_dev && *n.target_dev == device);
  });
  if (it == nets.end()) return fail(diag, errc::invalid_arg, q(device) + " is not a known interface");
  auto t = now_base();
  covirt::interface_stats st;
  st.rx_bytes = static_cast<std::int64_t>(t.micros / 10);
  st.rx_packets = static_cast<std::int64_t>(t.micros / 100);
  st.rx_errs = static_cast<std::int64_t>(t.seconds);
  st.rx_drop = static_cast<std::int64_t>(t.seconds / 2);
  st.tx_bytes = static_cast<std::int64_t>(t.micros / 20);
  st.tx_packets = static_cast<std::int64_t>(t.micros / 110);
  st.tx_errs = static_cast<std::int64_t>(t.seconds / 3);
  st.tx_drop = static_cast<std::int64_t>(t.seconds / 4);
  return st;
}

result<std::vector<memory_stat>> driver::memory_stats_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  if (flags) return unsupported_flags(flags, "testDomainMemoryStats", diag);
  auto d = s_->get_active(key, diag);
  if (!d) return d.error();
  const auto& def = (*d)->def;
  std::vector<memory_stat> out;
  if (!def.devices.memballoon || def.devices.memballoon->model == "none") return out;
  const std::uint64_t cur = def.current_memory_kib ? def.current_memory_kib : def.memory_kib;
  namespace t = memory_stat_tag;
  out = {{t::actual_balloon, cur}, {t::swap_in, 0},           {t::swap_out, 0},
         {t::major_fault, 0},      {t::minor_fault, 0},       {t::unused, cur / 2},
         {t::available, cur},      {t::usable, cur / 2},      {t::last_update, test_clock_seconds},
         {t::disk_caches, cur / 8}, {t::hugetlb_pgalloc, 0},  {t::hugetlb_pgfail, 0},
         {t::rss, cur / 2}};
  return out;
}

result<block_info> driver::get_block_info_now(const domain_key& key, std::string_view disk, unsigned flags,
                                              diagnostics& diag) {
  if (flags) return unsupported_flags(flags, "testDomainGetBlockInfo", diag);
  auto d = s_->get(key, diag);
  if (!d) return d.error();
  const disk_def* dk = disk_by_name((*d)->def, disk);
  if (!dk)
    return fail(diag, errc::invalid_arg, "invalid path " + std::string(disk) + " not assigned to domain");
  bool empty = !dk->source || (dk->source->file.empty() && dk->source->dev.empty() && dk->source->dir.empty() &&
                               dk->source->name.empty() && dk->source->volume.empty());
  if (empty) return fail(diag, errc::invalid_arg, "disk " + q(disk) + " does not currently have a source assigned");
  return block_info{1099506450432ULL, 1099511627776ULL, 1099511627776ULL};
}

result<std::vector<domain_stats>> driver::get_all_domain_stats_now(const std::vector<domain_key>& keys,
                                                                  unsigned stats, unsigned flags, diagnostics& diag) {
  // testDomainGetStatsWorkers: state and iothread; the test driver's iothread worker adds nothing
  // for the domains this driver can hold.
  auto groups = detail::stats_groups(stats, stats_types::state | stats_types::iothread, flags, diag);
  if (!groups) return groups.error();
  std::vector<domain_stats> out;
  for (const auto& d : detail::stats_domains(s_->doms, keys, flags)) {
    domain_stats rec{d->ref(), {}};
    if (*groups & stats_types::state) detail::add_state_stats(rec.params, d->state, d->reason);
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace covirt::test
