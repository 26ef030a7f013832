// The QEMU driver: the per-domain job (one change at a time) and the long jobs' progress and abort
// (virDomainGetJobInfo, virDomainAbortJob).
#include "driver_state.hpp"

namespace covirt::qemu {

asio::awaitable<result<driver::state::held_job>> driver::state::begin_job(std::shared_ptr<state> s, const domain_key& key,
                                                                          diagnostics& diag, need n) {
  auto d = s->get(key, diag);
  if (!d) co_return d.error();
  dom_ptr p = *d;
  if (!co_await p->job.acquire()) co_return fail(diag, errc::operation_aborted, "waiting for a job on domain " + q(p->def.name) + " was cancelled");
  held_job j{std::move(s), job_guard(p), p->rt};
  if (n == need::running && (!p->active() || !j.rt)) co_return fail(diag, errc::operation_invalid, "domain is not running");
  co_return j;
}

asio::awaitable<bool> driver::state::caller_cancelled() {
  asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
  co_return cs.cancelled() != asio::cancellation_type::none;
}

// ------------------------------------------------------------------ jobs

op<job_info> driver::get_job_info(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  auto job = (*r)->job_now;
  job_info info;
  if (!job) co_return info;
  info.type = job_type::unbounded;
  info.operation = job->operation;
  info.time_elapsed_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - job->started).count());
  if (job->outgoing && job->rt && job->rt->mon.is_open()) {
    diagnostics ignore;
    std::string cmd = "query-migrate";
    auto q = co_await s->call(job->rt, cmd, {}, ignore, 5s);
    if (q && q->is_object())
      if (auto* ram = q->as_object().if_contains("ram"); ram && ram->is_object()) {
        auto num = [&](const char* k) -> std::uint64_t {
          auto* v = ram->as_object().if_contains(k);
          if (v && v->is_int64()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v->as_int64()));
          if (v && v->is_uint64()) return v->as_uint64();
          return 0;
        };
        info.mem_total = num("total");
        info.mem_remaining = num("remaining");
        info.mem_processed = num("transferred");
        info.data_total = info.mem_total;
        info.data_remaining = info.mem_remaining;
        info.data_processed = info.mem_processed;
      }
  } else if (job->feed_total) {
    info.type = job_type::bounded;
    info.data_total = job->feed_total;
    info.data_processed = std::min(job->fed, job->feed_total);
    info.data_remaining = job->feed_total - info.data_processed;
  }
  co_return info;
}

op<void> driver::abort_job(const domain_key& key, diagnostics& diag) {
  auto s = s_;
  auto r = s->get(key, diag);
  if (!r) co_return failure(r.error());
  auto job = (*r)->job_now;
  if (!job) co_return fail(diag, errc::operation_invalid, "no job is active on the domain");
  if (job->operation == "restore") {
    job->abort_requested = true;
    co_return result<void>{};
  }
  if (!job->outgoing)
    co_return fail(diag, errc::operation_invalid, "cannot abort " + job->operation + " job" +
                                                      (job->operation == "migration in" ? "; use virDomainDestroy instead" : ""));
  job->abort_requested = true;
  std::string cmd = "migrate_cancel";
  if (auto c = co_await s->call(job->rt, cmd, {}, diag, 5s); !c) co_return c.error();
  co_return result<void>{};
}

}  // namespace covirt::qemu
