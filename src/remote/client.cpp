// covirt: the remote client's calls, reader, writer and keepalive (transport.cpp opens the stream).
#include "client_state.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace covirt::remote {

namespace detail {

namespace {

constexpr auto tuple_token = asio::as_tuple(asio::use_awaitable);

std::string hex32(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// Completes a call later, on the executor: never inside the reader's loop or the initiation.
void complete(const asio::any_io_executor& ex, client_state::pending& p) {
  asio::get_associated_cancellation_slot(p.h).clear();
  asio::post(ex, [h = std::move(p.h)]() mutable { std::move(h)(); });
}

}  // namespace

void client_state::shutdown(errc code, std::string msg, bool notify) {
  if (closed) return;
  closed = true;
  open = false;
  close_ec = make_error_code(code);
  close_msg = std::move(msg);
  if (stderr_of_transport && code == errc::system_error) {
    std::string said = stderr_of_transport();
    while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
    if (!said.empty()) close_msg += " (ssh: " + said + ")";
  }
  error_code ignore;
  sock.shutdown(stream_socket::shutdown_both, ignore);
  sock.close(ignore);
  keepalive.cancel();
  outq.clear();
  auto pending_calls = std::move(calls);
  calls.clear();
  for (auto& [serial, p] : pending_calls) {
    p->ec = close_ec;
    if (p->diag) p->diag->assign(close_msg);
    complete(ex, *p);
  }
  keep.reset();
  if (notify && on_close) {
    auto h = std::move(on_close);
    on_close = nullptr;
    h(close_ec, close_msg);
  }
}

namespace {

void start_write(const std::shared_ptr<client_state>& self) {
  auto& s = *self;
  if (s.writing || s.outq.empty() || s.closed) return;
  s.writing = true;
  s.writing_buf.clear();
  s.writing_buf.swap(s.outq);
  asio::async_write(s.sock, asio::buffer(s.writing_buf), [self](error_code ec, std::size_t) {
    self->writing = false;
    if (ec) {
      if (!self->closed)
        self->shutdown(errc::system_error,
                       "connection to libvirtd at '" + self->peer + "' failed while writing: " + ec.message());
      return;
    }
    start_write(self);
  });
}

void enqueue(const std::shared_ptr<client_state>& self, const header& h, std::string_view payload) {
  append_packet(self->outq, h, payload);
  start_write(self);
}

void send_keepalive(const std::shared_ptr<client_state>& self, keepalive_proc p) {
  header h;
  h.prog = keepalive_program;
  h.proc = static_cast<std::int32_t>(p);
  h.type = msg_type::message;
  enqueue(self, h, {});
}

// Whether `serial` is one this client has used (a late reply of a cancelled call): among the 2^31
// serials before the next one, so a counter that wrapped still counts.
bool was_sent(const client_state& s, std::uint32_t serial) {
  return std::uint32_t(s.next_serial - serial - 1) < 0x80000000u;
}

// One packet from the daemon. Returns false once it has shut the connection down.
bool route(const std::shared_ptr<client_state>& self, const packet_view& p) {
  auto& s = *self;
  const header& h = p.head;
  auto broken = [&](std::string why) {
    s.shutdown(errc::rpc, "malformed packet from libvirtd at '" + s.peer + "': " + why);
    return false;
  };
  if (h.vers != protocol_version) return broken("program version " + std::to_string(h.vers) + ", expected 1");
  switch (h.type) {
    case msg_type::reply:
    case msg_type::reply_with_fds: {
      auto it = s.calls.find(h.serial);
      if (it == s.calls.end()) {
        if (was_sent(s, h.serial)) {
          ++s.ignored;
          return true;
        }
        return broken("a reply to serial " + std::to_string(h.serial) + ", which this client never sent");
      }
      client_state::pending& c = *it->second;
      s.calls.erase(it);
      if (h.prog != c.prog || h.proc != c.proc) {
        broken("the reply to serial " + std::to_string(h.serial) + " is for program " + hex32(h.prog) +
               " procedure " + std::to_string(h.proc) + ", but that call was procedure " + std::to_string(c.proc));
        c.ec = s.close_ec;
        if (c.diag) c.diag->assign(s.close_msg);
        complete(s.ex, c);
        return false;
      }
      if (h.status == msg_status::ok) {
        c.reply.assign(p.payload);
      } else if (h.status == msg_status::error) {
        diagnostics local;
        c.ec = error_from_reply(p.payload, c.diag ? *c.diag : local).ec;
      } else {
        c.ec = make_error_code(errc::rpc);
        if (c.diag) c.diag->assign("reply with status " + std::to_string(int(h.status)));
      }
      complete(s.ex, c);
      return true;
    }
    case msg_type::message:
      if (h.prog == keepalive_program) {
        if (h.proc == static_cast<std::int32_t>(keepalive_proc::ping)) send_keepalive(self, keepalive_proc::pong);
        return true;  // a PONG (or anything else it says) only proves the peer alive
      }
      if (h.prog == remote_program || h.prog == qemu_program) {
        if (s.on_msg) s.on_msg(h, p.payload);
        return !s.closed;
      }
      return broken("a message for unknown program " + hex32(h.prog));
    default:
      return broken("a packet of type " + std::to_string(int(h.type)) + " (serial " + std::to_string(h.serial) +
                    "), which no call of this client asked for");
  }
}

asio::awaitable<void> reader(std::shared_ptr<client_state> self) {
  auto& s = *self;
  for (;;) {
    packet_view p;
    diagnostics d;
    bool more = true;
    while (more) {
      switch (s.reader_buf.next(p, d)) {
        case packet_reader::status::packet:
          if (!route(self, p)) co_return;
          break;
        case packet_reader::status::error:
          s.shutdown(errc::rpc, "malformed packet from libvirtd at '" + s.peer + "': " + std::string(d.message()));
          co_return;
        case packet_reader::status::need_more: more = false; break;
      }
    }
    auto [buf, room] = s.reader_buf.prepare();
    auto [ec, got] = co_await s.sock.async_read_some(asio::buffer(buf, room), tuple_token);
    if (s.closed) co_return;
    if (ec == asio::error::eof || (!ec && got == 0)) {
      s.shutdown(errc::system_error, "connection to libvirtd at '" + s.peer + "' closed: end of file");
      co_return;
    }
    if (ec) {
      s.shutdown(errc::system_error, "connection to libvirtd at '" + s.peer + "' failed: " + ec.message());
      co_return;
    }
    s.reader_buf.commit(got);
    s.last_rx = std::chrono::steady_clock::now();
    s.unanswered = 0;
  }
}

asio::awaitable<void> keepalive_loop(std::shared_ptr<client_state> self) {
  auto& s = *self;
  const auto interval = s.opts.keepalive_interval;
  for (;;) {
    s.keepalive.expires_after(interval);
    co_await s.keepalive.async_wait(tuple_token);
    if (s.closed) co_return;
    if (std::chrono::steady_clock::now() - s.last_rx < interval) continue;
    if (s.unanswered >= s.opts.keepalive_count) {
      s.shutdown(errc::internal_error, "connection to libvirtd at '" + s.peer +
                                           "' closed due to keepalive timeout (no answer to " +
                                           std::to_string(s.unanswered) + " keepalive requests in " +
                                           std::to_string(interval.count() * (s.unanswered + 1)) + " s)");
      co_return;
    }
    ++s.unanswered;
    send_keepalive(self, keepalive_proc::ping);
  }
}

}  // namespace

void client_state::start() {
  open = true;
  last_rx = std::chrono::steady_clock::now();
  asio::co_spawn(ex, reader(shared_from_this()), asio::detached);
  if (opts.keepalive_interval.count() > 0) asio::co_spawn(ex, keepalive_loop(shared_from_this()), asio::detached);
}

}  // namespace detail

client::client(asio::any_io_executor ex, client_options opts)
    : s_(std::make_shared<detail::client_state>(std::move(ex), opts)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&& o) noexcept {
  if (this != &o) {
    close();
    s_ = std::move(o.s_);
  }
  return *this;
}
client::~client() { close(); }

asio::any_io_executor client::get_executor() const noexcept { return s_ ? s_->ex : asio::any_io_executor(); }

void client::close() noexcept {
  if (!s_ || s_->closed) return;
  try {
    s_->shutdown(errc::system_error, "connection to libvirtd at '" + s_->peer + "' closed", false);
  } catch (...) {
  }
}

bool client::is_open() const noexcept { return s_ && s_->open; }
const std::string& client::peer() const noexcept {
  static const std::string none;
  return s_ ? s_->peer : none;
}
std::size_t client::pending_calls() const noexcept { return s_ ? s_->calls.size() : 0; }
std::size_t client::ignored_replies() const noexcept { return s_ ? s_->ignored : 0; }
void client::on_message(message_handler h) {
  if (s_) s_->on_msg = std::move(h);
}
void client::on_close(close_handler h) {
  if (s_) s_->on_close = std::move(h);
}

asio::awaitable<result<std::string>> client::call_raw(std::uint32_t prog, std::int32_t proc, std::string_view args,
                                                      diagnostics& diag) {
  auto self = s_;  // the state outlives this call whatever happens to the client object
  if (!self) co_return fail(diag, errc::invalid_conn, "the remote client was moved from");
  if (!self->open) {
    if (self->closed) {
      diag.assign(self->close_msg);
      co_return failure(self->close_ec);
    }
    co_return fail(diag, errc::invalid_conn, "the connection to libvirtd is not open");
  }
  if (args.size() > message_max - header_size)
    co_return fail(diag, errc::rpc, "the arguments of procedure " + std::to_string(proc) + " take " +
                                        std::to_string(args.size()) + " bytes, past libvirt's limit of " +
                                        std::to_string(message_max - header_size));
  detail::client_state::pending p;
  p.prog = prog;
  p.proc = proc;
  p.diag = &diag;
  const std::uint32_t serial = self->next_serial++;
  header h;
  h.prog = prog;
  h.proc = proc;
  h.serial = serial;
  detail::enqueue(self, h, args);
  asio::use_awaitable_t<> token;
  co_await asio::async_initiate<asio::use_awaitable_t<>, void()>(
      [&](auto handler) {
        asio::any_completion_handler<void()> erased(std::move(handler));
        p.h.swap(erased);  // not operator=: Boost 1.81's any_completion_handler move assignment recurses
        self->calls.emplace(serial, &p);
        auto slot = asio::get_associated_cancellation_slot(p.h);
        if (!slot.is_connected()) return;
        slot.assign([w = std::weak_ptr<detail::client_state>(self), serial](asio::cancellation_type t) {
          // Total cancellation promises no side effect, which a call already written cannot keep.
          if ((t & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
              asio::cancellation_type::none)
            return;
          auto s = w.lock();
          if (!s) return;
          auto it = s->calls.find(serial);
          if (it == s->calls.end()) return;
          auto& c = *it->second;
          s->calls.erase(it);
          c.ec = asio::error::operation_aborted;
          if (c.diag)
            c.diag->assign("call of procedure " + std::to_string(c.proc) + " cancelled; its reply (serial " +
                           std::to_string(serial) + ") will be dropped");
          detail::complete(s->ex, c);
        });
      },
      token);
  if (p.ec) co_return failure(p.ec);
  co_return std::move(p.reply);
}

}  // namespace covirt::remote
