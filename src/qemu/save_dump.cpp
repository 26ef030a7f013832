// The QEMU driver: save and restore (QEMU's migration stream to and from a file) and core dumps.
#include "driver_state.hpp"

#include "../detail/shell_quote.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

namespace covirt::qemu {

namespace {

// A save file: one header line "covirt-save 1 <xml bytes> <state offset>\n", the domain XML,
// zero padding up to the offset (a multiple of 4096), then QEMU's migration stream.
constexpr std::string_view save_magic = "covirt-save 1 ";

struct save_header {
  std::string xml;
  std::uint64_t offset = 0;
};

result<save_header> read_save_header(const std::string& path, diagnostics& diag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(diag, errc::operation_failed, "cannot open saved state file " + q(path));
  std::string line;
  std::getline(in, line);
  unsigned long long xml_len = 0, offset = 0;
  if (line.compare(0, save_magic.size(), save_magic) != 0 ||
      std::sscanf(line.c_str() + save_magic.size(), "%llu %llu", &xml_len, &offset) != 2 ||
      xml_len > (64u << 20) || offset < line.size() + 1 + xml_len)
    return fail(diag, errc::invalid_arg, "file " + q(path) + " is not a covirt saved state file");
  save_header h;
  h.xml.resize(xml_len);
  in.read(h.xml.data(), static_cast<std::streamsize>(xml_len));
  if (static_cast<unsigned long long>(in.gcount()) != xml_len)
    return fail(diag, errc::invalid_arg, "saved state file " + q(path) + " is truncated");
  h.offset = offset;
  return h;
}

// QEMU runs in its own working directory: paths given to it are made absolute here.
std::string absolute_path(std::string_view p) {
  if (p.empty()) return {};
  std::error_code ec;
  auto a = fs::absolute(fs::path(p), ec);
  return ec ? std::string(p) : a.lexically_normal().string();
}

}  // namespace

op<void> driver::save(const domain_key& key, std::string_view path, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, path = absolute_path(path), &diag] {
    return s->save_job(key, path, diag);
  });
}

op<void> driver::state::save_job(const domain_key& key, std::string path, diagnostics& diag) {
  auto j = co_await state::begin_job(shared_from_this(), key, diag, state::need::running);
  if (!j) co_return j.error();
  auto s = j->s;  // locals, not a structured binding: the lambdas below capture them (clang 14)
  dom_ptr d = j->guard.d;
  auto rt = j->rt;
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to save to");
  bool was_running = d->state == domain_state::running;
  job_scope job(d, "save", rt, true);

  // The header: the live definition, so restore knows the guest.
  std::string xml = format_domain_xml(d->def);
  std::string line = std::string(save_magic) + std::to_string(xml.size()) + " ";
  std::uint64_t offset = line.size() + 32 + xml.size();  // room for the offset's digits and '\n'
  offset = (offset + 4095) / 4096 * 4096;
  line += std::to_string(offset) + "\n";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) co_return fail(diag, errc::operation_failed, "cannot create " + q(path) + ": " + std::strerror(errno));
    std::string head = line + xml;
    head.resize(offset, '\0');
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.flush();
    if (!out) co_return fail(diag, errc::operation_failed, "cannot write " + q(path));
  }
  std::error_code fec;

  // The guest stops for good: the STOP event and the exit are the save's, not news.
  rt->intent = stop_intent{reason::saved, event_detail::stopped_saved};
  auto undo = [&]() -> asio::awaitable<void> {
    fs::remove(path, fec);
    if (d->rt != rt || rt->finished) co_return;
    rt->intent.reset();
    if (was_running) {
      bool was_paused = d->state == domain_state::paused;
      s->set_state(*d, domain_state::running, reason::running_save_canceled);  // before cont: RESUME is no news
      diagnostics ignore;
      std::string cont = "cont";
      (void)co_await s->call(rt, cont, {}, ignore, 5s);
      if (was_paused) s->emit(*d, event_type::resumed, event_detail::resumed_unpaused);
    }
  };
  if (was_running) {
    std::string stop = "stop";
    auto sr = co_await s->call(rt, stop, {}, diag);
    if (!sr) {
      co_await undo();
      co_return s->command_failed(d, rt, sr.error(), diag);
    }
    if (d->rt == rt) s->set_state(*d, domain_state::paused, reason::paused_save);
  }
  // QEMU's default cap on the stream is 128 MiB/s; a save to a local file goes as fast as it can.
  co_await s->set_max_bandwidth(rt, 0);
  // Appends to the header written above, and never creates the file: a cancelled save removes
  // it, and a writer that starts late must not bring it back (cat >> would).
  std::string to = "exec:dd of=" + covirt::detail::shell_quote(path) + " oflag=append conv=notrunc,nocreat bs=1M status=none";
  if (auto mr = co_await s->migrate_out(d, rt, std::move(to), 300s, "save", diag); !mr) {
    co_await undo();
    co_return mr.error();
  }
  co_await s->kill(d, rt);
  co_return result<void>{};
}

op<domain_ref> driver::restore(std::string_view path_in, diagnostics& diag) {
  auto s = s_;
  std::string path = absolute_path(path_in);
  auto h = read_save_header(path, diag);
  if (!h) co_return failure(h.error());
  auto def = parse_definition(h->xml, diag);
  if (!def) co_return def.error();
  incoming_plan plan;
  plan.job = std::make_shared<long_job>();
  plan.job->operation = "restore";
  plan.feed_path = path;
  plan.feed_offset = h->offset;
  std::error_code fec;
  auto size = fs::file_size(path, fec);
  plan.job->feed_total = !fec && size > h->offset ? size - h->offset : 0;
  co_return co_await state::cleanup_on_cancel<domain_ref>([&] {
    return s->start_live(std::move(*def), false, std::move(plan), "restore", diag);
  });
}

op<void> driver::core_dump(const domain_key& key, std::string_view path, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, path = absolute_path(path), flags, &diag] {
    return s->dump_job(key, path, flags, diag);
  });
}

// virDomainCoreDumpWithFormat: always an ELF of the guest's memory (dump-guest-memory), the
// format crash(8) and gdb read; without dump_flags::live the guest is paused meanwhile (reason
// dump), crash destroys it afterwards (shut off, crashed), reset resets it.
op<void> driver::state::dump_job(const domain_key& key, std::string path, unsigned flags, diagnostics& diag) {
  auto j = co_await state::begin_job(shared_from_this(), key, diag, state::need::running);
  if (!j) co_return j.error();
  auto [s, d, rt] = j->parts();
  if (path.empty()) co_return fail(diag, errc::invalid_arg, "no file to dump to");
  if ((flags & dump_flags::crash) && (flags & dump_flags::live))
    co_return fail(diag, errc::invalid_arg, "dump flags crash and live are mutually exclusive");
  if ((flags & dump_flags::crash) && (flags & dump_flags::reset))
    co_return fail(diag, errc::invalid_arg, "dump flags crash and reset are mutually exclusive");
  job_scope job(d, "dump", rt, false);
  bool paused_here = false;
  if (!(flags & dump_flags::live) && d->state == domain_state::running) {
    rt->expect_stop = true;
    std::string stop = "stop";
    auto sr = co_await s->call(rt, stop, {}, diag);
    rt->expect_stop = false;
    if (!sr) co_return s->command_failed(d, rt, sr.error(), diag);
    paused_here = true;
    if (d->rt == rt) s->set_state(*d, domain_state::paused, reason::paused_dump);
  }
  json::object a;
  a["paging"] = false;
  a["protocol"] = "file:" + path;
  std::string cmd = "dump-guest-memory";
  auto res = co_await s->call(rt, cmd, std::move(a), diag, 300s);
  if (!res) {
    auto f = s->command_failed(d, rt, res.error(), diag);
    std::error_code fec;
    fs::remove(path, fec);
    if (paused_here && d->rt == rt && !rt->finished) {
      diagnostics ignore;
      std::string cont = "cont";
      (void)co_await s->call(rt, cont, {}, ignore, 5s);
    }
    co_return f;
  }
  if (flags & dump_flags::crash) {
    rt->intent = stop_intent{reason::crashed, event_detail::stopped_crashed};
    co_await s->kill(d, rt);
    co_return result<void>{};
  }
  if (flags & dump_flags::reset) {
    diagnostics ignore;
    std::string reset = "system_reset";
    (void)co_await s->call(rt, reset, {}, ignore, 5s);
  }
  if (paused_here && d->rt == rt && !rt->finished) {
    std::string cont = "cont";
    if (auto cr = co_await s->call(rt, cont, {}, diag); !cr) co_return s->command_failed(d, rt, cr.error(), diag);
    if (d->rt == rt && d->state != domain_state::running) s->set_state(*d, domain_state::running, reason::unpaused);
  }
  co_return result<void>{};
}

asio::awaitable<std::size_t> driver::state::read_chunk(std::ifstream& in, std::vector<char>& buf) {
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  co_return static_cast<std::size_t>(in.gcount());
}

asio::awaitable<result<void>> driver::state::feed_state(std::shared_ptr<long_job> job, std::string sock_path,
                                                        std::string path, std::uint64_t offset,
                                                        diagnostics& diag) {
  asio::local::stream_protocol::socket sock(ex);
  {
    op_timeout deadline{ex, 10s};
    auto [ec] = co_await sock.async_connect(asio::local::stream_protocol::endpoint(sock_path),
                                            asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) co_return fail(diag, errc::operation_failed, "cannot connect to QEMU's incoming socket: " + ec.message());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) co_return fail(diag, errc::operation_failed, "cannot open saved state file " + q(path));
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<char> buf(1 << 20);
  for (;;) {
    if (job->abort_requested || co_await caller_cancelled())
      co_return fail(diag, errc::operation_aborted, "restore job: canceled by client");
    // The read happens on the file thread (a cold disk can take milliseconds), the write here.
    auto n = co_await asio::co_spawn(file_thread(), read_chunk(in, buf), asio::use_awaitable);
    if (n == 0) break;
    op_timeout deadline{ex, 30s};
    auto [ec, w] = co_await asio::async_write(sock, asio::buffer(buf.data(), n),
                                              asio::as_tuple(deadline.bind(asio::use_awaitable)));
    if (ec) {
      if (job->abort_requested) co_return fail(diag, errc::operation_aborted, "restore job: canceled by client");
      co_return fail(diag, errc::operation_failed,
                     deadline.expired() ? std::string("QEMU stopped reading the saved state")
                                        : "QEMU stopped reading the saved state: " + ec.message());
    }
    job->fed += w;
  }
  if (in.bad()) co_return fail(diag, errc::operation_failed, "cannot read saved state file " + q(path));
  error_code sec;
  sock.shutdown(asio::socket_base::shutdown_send, sec);
  co_return result<void>{};
}

}  // namespace covirt::qemu
