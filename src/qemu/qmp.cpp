// covirt: the QMP client. One reader coroutine per connection reads lines, and dispatches
// replies to the pending command with the same id (or, for the one command sent without id, the
// next reply without id), events to the event queue; writes go out at once when the socket takes
// them, else through a queue, one batch at a time. One timer serves every command's deadline.
// The state is shared: the reader and the writer keep it alive, so the qmp object can be
// destroyed with operations pending.
//
// What a command costs (QEMU reads its monitor a byte at a time, so the bytes come first): the
// command is `{"execute":"NAME"}` and a newline, no id when nothing else is outstanding; one
// send(2) that completes at once (no completion through the io_context); the reply completes the
// caller from the reader, as an event does its waiter, without another turn of the io_context
// (which would poll epoll first); no timer system call unless the new deadline is the earliest.
// What remains is one read that finds nothing (Asio's reactor starts every read with a
// speculative one; waiting for readiness instead costs an epoll_ctl), the epoll_wait and the
// read of the reply: 4 system calls, where a blocking client makes 2.
#include <covirt/qemu/qmp.hpp>

#include "qmp_codec.hpp"

#include <covirt/detail/spawn.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <optional>
#include <unordered_map>

namespace covirt::qemu {

namespace json = boost::json;
using tuple_awaitable_t = decltype(asio::as_tuple(asio::use_awaitable));
static tuple_awaitable_t tuple_token = asio::as_tuple(asio::use_awaitable);
using stream_socket = asio::local::stream_protocol::socket;

namespace detail {

namespace {

// Completes `h` later, on its own executor: never inside the initiating call or the reader's loop.
template <class Handler, class... Args>
void post_complete(const asio::any_io_executor& ex, Handler h, Args... args) {
  auto hex = asio::get_associated_executor(h, ex);
  asio::post(ex, asio::bind_executor(hex, [h = std::move(h), ... args = std::move(args)]() mutable {
    std::move(h)(std::move(args)...);
  }));
}

// Completes `h` now if its executor is the one running this code (a reply completes its caller
// from the reader: posting would cost the io_context a turn, and a poll of epoll, first).
template <class Handler, class... Args>
void dispatch_complete(const asio::any_io_executor& ex, Handler h, Args... args) {
  auto hex = asio::get_associated_executor(h, ex);
  asio::dispatch(hex, [h = std::move(h), ... args = std::move(args)]() mutable { std::move(h)(std::move(args)...); });
}

// The misuse of a moved-from client: no executor of ours to post to.
template <class Handler, class... Args>
void complete_now(Handler h, Args... args) {
  auto hex = asio::get_associated_executor(h);
  asio::dispatch(hex, [h = std::move(h), ... args = std::move(args)]() mutable { std::move(h)(std::move(args)...); });
}

void set_diag(diagnostics* d, std::string msg) {
  if (d) d->assign(std::move(msg));
}

std::int64_t as_int(const json::value* v) {
  if (!v) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return 0;
}

}  // namespace

struct qmp_state : std::enable_shared_from_this<qmp_state> {
  enum class phase { idle, connecting, open, closed };

  struct pending {
    std::string command;  // for messages
    diagnostics* diag = nullptr;
    bool raw = false;
    bool sent_id = false;  // the message carried our id (else it is the one without id)
    bool oob = false;      // raw exec-oob: QEMU may answer it out of order
    std::optional<json::value> user_id;  // raw: the caller's own id, echoed back
    qmp_clock::time_point deadline = qmp_clock::time_point::max();
    qmp_clock::duration limit{};
    asio::any_completion_handler<void(error_code, json::value)> hv;
    asio::any_completion_handler<void(error_code, std::string)> hr;
  };

  qmp_state(asio::any_io_executor e, qmp_options o)
      : ex(std::move(e)), opts(o), sock(ex), codec(o.max_message_size), timer(ex) {}

  asio::any_io_executor ex;
  qmp_options opts;
  stream_socket sock;
  qmp_codec codec;
  std::string path;
  qmp_greeting greeting;
  phase ph = phase::idle;
  error_code close_ec;
  std::string close_msg;

  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, pending> pending_ops;  // by our id (also for the one sent without)
  // The command sent without id, if one is outstanding: it went out when nothing else was, so it
  // is the oldest; it stays here after a cancellation or a timeout (not in pending_ops) until its
  // late reply comes, or a later in-band command's reply shows that it never will.
  std::optional<std::uint64_t> idless;
  std::size_t ignored = 0;

  // ---- deadlines: one timer, waiting for `armed` (max when idle); it is re-armed only for an
  // earlier deadline, and when it fires it expires what is due and waits for the next one.
  asio::steady_timer timer;
  qmp_clock::time_point armed = qmp_clock::time_point::max();

  std::string outq;  // serialized commands waiting for the writer
  std::string writing_buf;
  bool writing = false;

  std::deque<qmp_event> events;
  std::optional<asio::any_completion_handler<void(error_code, qmp_event)>> event_waiter;
  std::size_t dropped = 0;

  // ---- writer: whatever was queued while a write was under way goes out as one batch
  void enqueue(std::string_view text) {
    outq.append(text);
    start_write();
  }
  void start_write() {
    if (writing || outq.empty() || ph == phase::closed) return;
    // At once first (the socket is non-blocking): a command nearly always fits in the socket's
    // buffer, and then nothing has to complete through the io_context.
    error_code ec;
    std::size_t n = sock.write_some(asio::buffer(outq), ec);
    if (!ec && n == outq.size()) {
      outq.clear();
      return;
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return write_failed(ec);
    if (!ec) outq.erase(0, n);
    writing = true;
    writing_buf.clear();
    writing_buf.swap(outq);
    asio::async_write(sock, asio::buffer(writing_buf), [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing = false;
      if (ec) return self->write_failed(ec);
      self->start_write();
    });
  }
  void write_failed(error_code ec) {
    if (ph == phase::closed) return;
    if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset)  // QEMU went away
      shutdown(errc::operation_failed, "QMP connection to '" + path + "' closed by QEMU (" + ec.message() + ")");
    else
      shutdown(errc::operation_failed, "QMP connection to '" + path + "' failed while writing: " + ec.message());
  }

  // ---- ending: every pending command fails, the event stream ends
  void shutdown(errc code, std::string msg) {
    if (ph == phase::closed) return;
    ph = phase::closed;
    close_ec = make_error_code(code);
    close_msg = std::move(msg);
    error_code ignore;
    sock.shutdown(stream_socket::shutdown_both, ignore);
    sock.close(ignore);
    timer.cancel();
    armed = qmp_clock::time_point::max();
    outq.clear();
    idless.reset();
    auto ops = std::move(pending_ops);
    pending_ops.clear();
    for (auto& [id, p] : ops) fail_pending(p, close_ec, close_msg);
    if (event_waiter && events.empty()) complete_event(asio::error::eof, {});
  }

  // Takes the command `id` out of the pending ones (the one without id stays outstanding) and
  // fails it: cancelled (operation_aborted) or past its deadline (operation_timeout).
  void abandon(std::uint64_t id, error_code ec) {
    auto it = pending_ops.find(id);
    if (it == pending_ops.end()) return;
    pending p = std::move(it->second);
    pending_ops.erase(it);
    std::string reply = p.sent_id ? "its reply (id " + std::to_string(id) + ") will be dropped"
                                  : "its reply will be dropped";
    if (ec == errc::operation_timeout) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(p.limit).count();
      fail_pending(p, ec, "QEMU did not answer QMP command '" + p.command + "' within " + std::to_string(ms) +
                              " ms; " + reply);
    } else {
      fail_pending(p, ec, "QMP command '" + p.command + "' cancelled; " + reply);
    }
  }

  void watch_deadline(qmp_clock::time_point d) {
    if (d >= armed || ph == phase::closed) return;
    armed = d;
    timer.expires_at(d);  // cancels the wait for a later one: that handler sees operation_aborted
    timer.async_wait([w = weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto s = w.lock()) s->deadline_reached();
    });
  }
  void deadline_reached() {
    armed = qmp_clock::time_point::max();
    if (ph == phase::closed) return;
    auto now = qmp_clock::now();
    std::vector<std::uint64_t> due;
    auto next = qmp_clock::time_point::max();
    for (auto& [id, p] : pending_ops) {
      if (p.deadline <= now) due.push_back(id);
      else next = std::min(next, p.deadline);
    }
    for (auto id : due) abandon(id, make_error_code(errc::operation_timeout));  // completions are posted
    if (next != qmp_clock::time_point::max()) watch_deadline(next);
  }

  void fail_pending(pending& p, error_code ec, const std::string& msg) {
    set_diag(p.diag, msg);
    if (p.raw) {
      asio::get_associated_cancellation_slot(p.hr).clear();
      post_complete(ex, std::move(p.hr), ec, std::string());
    } else {
      asio::get_associated_cancellation_slot(p.hv).clear();
      post_complete(ex, std::move(p.hv), ec, json::value());
    }
  }

  // ---- events
  // `now`: from the reader, the waiter runs at once (as a reply's caller does); elsewhere
  // (close, cancellation) it is posted.
  void complete_event(error_code ec, qmp_event ev, bool now = false) {
    auto h = std::move(*event_waiter);
    event_waiter.reset();
    asio::get_associated_cancellation_slot(h).clear();
    if (now) dispatch_complete(ex, std::move(h), ec, std::move(ev));
    else post_complete(ex, std::move(h), ec, std::move(ev));
  }

  void push_event(json::object& obj) {
    qmp_event ev;
    ev.name = obj.at("event").get_string();
    if (auto* d = obj.if_contains("data"); d && d->is_object()) ev.data = std::move(d->get_object());
    if (auto* t = obj.if_contains("timestamp"); t && t->is_object()) {
      ev.seconds = as_int(t->get_object().if_contains("seconds"));
      ev.microseconds = as_int(t->get_object().if_contains("microseconds"));
    }
    if (event_waiter) return complete_event({}, std::move(ev), true);
    if (events.size() >= std::max<std::size_t>(opts.event_capacity, 1)) {
      events.pop_front();
      ++dropped;
    }
    events.push_back(std::move(ev));
  }

  // ---- commands
  // Registers `p` under a fresh id and queues `text`, the command without its closing brace: we
  // append the id member (`id_member` is `,"id":` or `"id":`) when one is needed, and the brace.
  std::uint64_t submit(std::string text, std::string_view id_member, pending p, qmp_clock::duration limit) {
    std::uint64_t id = next_id++;  // QMP echoes the id; late replies to cancelled calls are dropped by it
    // Without id only when nothing else is outstanding: its reply is then the next one without id.
    p.sent_id = opts.always_send_ids || p.raw || !pending_ops.empty() || idless;
    if (p.sent_id) {
      text += id_member;
      text += std::to_string(id);
    } else {
      idless = id;
    }
    text += "}\n";
    if (limit != qmp_no_limit) {
      auto now = qmp_clock::now();
      p.limit = limit;
      p.deadline = limit >= qmp_clock::time_point::max() - now ? qmp_clock::time_point::max() : now + limit;
    }
    auto deadline = p.deadline;
    auto slot = p.raw ? asio::get_associated_cancellation_slot(p.hr) : asio::get_associated_cancellation_slot(p.hv);
    pending_ops.emplace(id, std::move(p));
    if (slot.is_connected()) {
      slot.assign([w = weak_from_this(), id](asio::cancellation_type t) {
        // Total cancellation promises no side effect, which a command possibly written cannot keep.
        if ((t & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
            asio::cancellation_type::none)
          return;
        // Copy what we need first: completing may clear the slot, which destroys this lambda.
        auto s = w.lock();
        if (!s) return;
        s->abandon(id, asio::error::operation_aborted);
      });
    }
    if (deadline != qmp_clock::time_point::max()) watch_deadline(deadline);
    enqueue(text);
    return id;
  }

  void dispatch_reply(qmp_message& m) {
    std::unordered_map<std::uint64_t, pending>::iterator it;
    if (!m.has_id) {  // the reply to the command sent without id, if one is outstanding
      if (!idless || opts.always_send_ids) {  // e.g. an error for a line QEMU could not parse
        ++ignored;
        return;
      }
      it = pending_ops.find(*idless);
      idless.reset();
      if (it == pending_ops.end()) {  // the late reply of that command, cancelled or timed out
        ++ignored;
        return;
      }
    } else {
      it = m.id ? pending_ops.find(*m.id) : pending_ops.end();
      if (it == pending_ops.end() || !it->second.sent_id) {  // late reply of a cancelled command, or a stray one
        ++ignored;
        return;
      }
      // In-band replies come in order: the abandoned command without id, older than this one,
      // will not be answered any more.
      if (idless && !it->second.oob && !pending_ops.contains(*idless)) idless.reset();
    }
    pending p = std::move(it->second);
    pending_ops.erase(it);
    if (p.raw) {
      if (p.user_id) m.obj["id"] = std::move(*p.user_id);
      else m.obj.erase("id");
      asio::get_associated_cancellation_slot(p.hr).clear();
      dispatch_complete(ex, std::move(p.hr), error_code(), json::serialize(m.obj));
      return;
    }
    asio::get_associated_cancellation_slot(p.hv).clear();
    if (m.kind == qmp_kind::reply) {
      dispatch_complete(ex, std::move(p.hv), error_code(), std::move(m.obj["return"]));
      return;
    }
    const json::object& e = m.obj.at("error").get_object();
    std::string cls, desc;
    if (auto* c = e.if_contains("class"); c && c->is_string()) cls = c->get_string();
    if (auto* d = e.if_contains("desc"); d && d->is_string()) desc = d->get_string();
    set_diag(p.diag, "QEMU: " + cls + ": " + desc);
    errc code = cls == "CommandNotFound" ? errc::no_support : errc::operation_failed;
    dispatch_complete(ex, std::move(p.hv), make_error_code(code), json::value());
  }

  // Reads until the codec has a message. Returns false (and has shut down) on any failure.
  asio::awaitable<bool> read_message(qmp_message& m) {
    std::string why;
    for (;;) {
      switch (codec.next(m, why)) {
        case qmp_codec::status::message: co_return true;
        case qmp_codec::status::error:
          shutdown(errc::rpc, "malformed QMP message from '" + path + "': " + why);
          co_return false;
        case qmp_codec::status::need_more: break;
      }
      auto [p, n] = codec.prepare();
      auto [ec, got] = co_await sock.async_read_some(asio::buffer(p, n), asio::as_tuple(asio::use_awaitable));
      if (ph == phase::closed) co_return false;
      if (ec == asio::error::eof || (!ec && got == 0)) {
        shutdown(errc::operation_failed, "QMP connection to '" + path + "' closed by QEMU (end of file)");
        co_return false;
      }
      if (ec == asio::error::connection_reset) {  // QEMU died with our commands unread
        shutdown(errc::operation_failed, "QMP connection to '" + path + "' closed by QEMU (connection reset)");
        co_return false;
      }
      if (ec == asio::error::operation_aborted) {
        shutdown(errc::operation_failed, "QMP connection to '" + path + "' closed");
        co_return false;
      }
      if (ec) {
        shutdown(errc::operation_failed, "QMP connection to '" + path + "' failed: " + ec.message());
        co_return false;
      }
      codec.commit(got);
    }
  }

  static asio::awaitable<void> reader(std::shared_ptr<qmp_state> self) {
    qmp_message m;
    while (co_await self->read_message(m)) {
      switch (m.kind) {
        // Both complete their waiter here and now: it may send more, close, destroy the qmp
        // object (`self` keeps the state); nothing of ours is in use across the call.
        case qmp_kind::event:
          self->push_event(m.obj);
          if (self->ph == phase::closed) co_return;
          break;
        case qmp_kind::reply:
        case qmp_kind::error:
          self->dispatch_reply(m);
          if (self->ph == phase::closed) co_return;
          break;
        case qmp_kind::greeting:
          self->shutdown(errc::rpc, "malformed QMP message from '" + self->path + "': a second greeting");
          co_return;
      }
    }
  }

  static asio::awaitable<result<void>> connect(std::shared_ptr<qmp_state> self, std::string p, diagnostics* diag);
};

asio::awaitable<result<void>> qmp_state::connect(std::shared_ptr<qmp_state> self, std::string p, diagnostics* diag) {
  qmp_state& st = *self;  // `self` keeps it alive until this coroutine ends, whatever the qmp object does
  diagnostics local;
  diagnostics& d = diag ? *diag : local;
  if (st.ph != phase::idle)
    co_return fail(d, errc::operation_invalid, "this QMP client was already connected; use a new one");
  st.ph = phase::connecting;
  st.path = std::move(p);
  const std::string& path = st.path;
  asio::local::stream_protocol::endpoint ep;
  try {
    ep = asio::local::stream_protocol::endpoint(path);
  } catch (const std::exception& e) {
    st.shutdown(errc::invalid_arg, "invalid QMP socket path '" + path + "': " + e.what());
    co_return fail(d, errc::invalid_arg, st.close_msg);
  }
  // Cancellation is checked by hand below: keep co_await from throwing once it happened.
  co_await asio::this_coro::throw_if_cancelled(false);
  auto cs = co_await asio::this_coro::cancellation_state;
  // Ends a failed attempt: a cancellation reads as operation_aborted, anything else as why it closed.
  auto failed = [&](std::string why_cancelled) -> error_code {
    st.shutdown(errc::operation_failed, "QMP connection to '" + path + "' closed");
    if (cs.cancelled() != asio::cancellation_type::none) {
      d.assign(std::move(why_cancelled));
      return asio::error::operation_aborted;
    }
    d.assign(st.close_msg);
    return st.close_ec;
  };

  auto [cec] = co_await st.sock.async_connect(ep, asio::as_tuple(asio::use_awaitable));
  if (cec && st.ph != phase::closed && cec != asio::error::operation_aborted) {
    st.shutdown(errc::operation_failed, "cannot connect to QMP socket '" + path + "': " + cec.message());
    co_return fail(d, errc::operation_failed, st.close_msg);
  }
  if (cec || st.ph == phase::closed) co_return failed("connecting to QMP socket '" + path + "' was cancelled");
  {
    error_code nbec;
    st.sock.non_blocking(true, nbec);  // writes are tried at once (start_write)
    if (nbec) {
      st.shutdown(errc::operation_failed, "cannot use QMP socket '" + path + "': " + nbec.message());
      co_return fail(d, errc::operation_failed, st.close_msg);
    }
  }

  qmp_message m;
  if (!co_await st.read_message(m)) {
    if (st.close_msg.find("closed by QEMU") != std::string::npos)
      st.close_msg = "QMP connection to '" + path + "' closed before the greeting";
    co_return failed("waiting for the QMP greeting from '" + path + "' was cancelled");
  }
  if (m.kind != qmp_kind::greeting) {
    st.shutdown(errc::rpc, "'" + path + "' is not a QMP socket: expected a greeting, got '" +
                               qmp_excerpt(json::serialize(m.obj)) + "'");
    co_return fail(d, errc::rpc, st.close_msg);
  }
  const json::object& g = m.obj.at("QMP").get_object();
  if (auto* v = g.if_contains("version"); v && v->is_object()) {
    if (auto* q = v->get_object().if_contains("qemu"); q && q->is_object()) {
      st.greeting.version.major = static_cast<int>(as_int(q->get_object().if_contains("major")));
      st.greeting.version.minor = static_cast<int>(as_int(q->get_object().if_contains("minor")));
      st.greeting.version.micro = static_cast<int>(as_int(q->get_object().if_contains("micro")));
    }
    if (auto* pk = v->get_object().if_contains("package"); pk && pk->is_string())
      st.greeting.version.package = pk->get_string();
  }
  if (auto* caps = g.if_contains("capabilities"); caps && caps->is_array())
    for (auto& c : caps->get_array())
      if (c.is_string()) st.greeting.capabilities.emplace_back(c.get_string());

  // From here the reader owns the socket's input; negotiation is an ordinary command.
  asio::co_spawn(st.ex, reader(self), asio::detached);
  diagnostics neg;
  auto [ec, v] = co_await asio::async_initiate<tuple_awaitable_t,
                                               void(error_code, json::value)>(
      [&](auto h) {
        pending pd;
        pd.command = "qmp_capabilities";
        pd.diag = &neg;
        asio::any_completion_handler<void(error_code, json::value)> erased(std::move(h));
        pd.hv.swap(erased);  // not operator=: Boost 1.81's any_completion_handler move assignment recurses forever
        st.submit(R"({"execute":"qmp_capabilities")", ",\"id\":", std::move(pd), qmp_no_limit);
      },
      tuple_token);
  if (ec == asio::error::operation_aborted) co_return failed("QMP negotiation with '" + path + "' was cancelled");
  if (ec) {
    if (st.ph == phase::closed) {
      d.assign(st.close_msg);
      co_return st.close_ec;
    }
    st.shutdown(errc::operation_failed,
                "QMP negotiation with '" + path + "' failed: " + std::string(neg.message()));
    co_return fail(d, errc::operation_failed, st.close_msg);
  }
  if (st.ph == phase::closed) {  // closed while the reply was on its way to us
    d.assign(st.close_msg);
    co_return st.close_ec;
  }
  st.ph = phase::open;
  co_return result<void>();
}

}  // namespace detail

// ---- the qmp object

qmp::qmp(asio::any_io_executor ex, qmp_options opts)
    : s_(std::make_shared<detail::qmp_state>(std::move(ex), opts)) {}

asio::any_io_executor qmp::get_executor() const noexcept { return s_ ? s_->ex : asio::any_io_executor(); }

void qmp::close() noexcept {
  if (!s_) return;
  try {
    s_->shutdown(errc::operation_failed, "QMP connection to '" + s_->path + "' closed");
  } catch (...) {
  }
}

bool qmp::is_open() const noexcept { return s_ && s_->ph == detail::qmp_state::phase::open; }

const qmp_greeting& qmp::greeting() const noexcept {
  static const qmp_greeting none;
  return s_ ? s_->greeting : none;
}

const std::string& qmp::path() const noexcept {
  static const std::string none;
  return s_ ? s_->path : none;
}

error_code qmp::close_code() const noexcept { return s_ ? s_->close_ec : error_code(); }
std::string_view qmp::close_message() const noexcept { return s_ ? std::string_view(s_->close_msg) : ""; }
std::size_t qmp::pending_commands() const noexcept { return s_ ? s_->pending_ops.size() : 0; }
std::size_t qmp::events_dropped() const noexcept { return s_ ? s_->dropped : 0; }
std::size_t qmp::ignored_messages() const noexcept { return s_ ? s_->ignored : 0; }

void qmp::connect_erased(std::string path, diagnostics* diag, asio::any_completion_handler<void(error_code)> h) {
  if (!s_) {
    detail::set_diag(diag, "the QMP client was moved from");
    return detail::complete_now(std::move(h),
                                 make_error_code(errc::operation_invalid));
  }
  covirt::detail::spawn_result<void>(s_->ex, detail::qmp_state::connect(s_, std::move(path), diag), std::move(h));
}

namespace {

// A command refused before it is sent (not connected, connection ended).
template <class Handler, class T>
bool refuse(detail::qmp_state* s, diagnostics* diag, Handler& h, T empty) {
  using phase = detail::qmp_state::phase;
  if (s->ph == phase::open) return false;
  error_code ec;
  if (s->ph == phase::closed) {
    ec = s->close_ec;
    detail::set_diag(diag, s->close_msg);
  } else {
    ec = make_error_code(errc::operation_invalid);
    detail::set_diag(diag, "the QMP connection is not open");
  }
  detail::post_complete(s->ex, std::move(h), ec, std::move(empty));
  return true;
}

void execute_start(detail::qmp_state* s, std::string command, json::object args, qmp_clock::duration limit,
                   diagnostics* diag, asio::any_completion_handler<void(error_code, json::value)> h) {
  if (!s) return detail::complete_now(std::move(h),
                                        make_error_code(errc::operation_invalid), json::value());
  if (refuse(s, diag, h, json::value())) return;
  std::string text;
  text.reserve(48 + command.size());
  text += R"({"execute":)";
  text += json::serialize(json::string_view(command));
  if (!args.empty()) {
    text += R"(,"arguments":)";
    text += json::serialize(args);
  }
  detail::qmp_state::pending p;
  p.command = std::move(command);
  p.diag = diag;
  p.hv.swap(h);  // not operator=: Boost 1.81's any_completion_handler move assignment recurses forever
  s->submit(std::move(text), R"(,"id":)", std::move(p), limit);
}

void raw_start(detail::qmp_state* s, std::string text, qmp_clock::duration limit, diagnostics* diag,
               asio::any_completion_handler<void(error_code, std::string)> h) {
  if (!s) return detail::complete_now(std::move(h),
                                        make_error_code(errc::operation_invalid), std::string());
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  const char* bad = nullptr;
  if (ec) bad = "not valid JSON";
  else if (!v.is_object()) bad = "not a JSON object";
  else if (auto* e = v.get_object().if_contains("execute"); !(e && e->is_string())) {
    auto* o = v.get_object().if_contains("exec-oob");
    if (!(o && o->is_string())) bad = "no \"execute\" member naming the command";
  }
  if (bad) {
    detail::set_diag(diag, std::string("invalid QMP command: ") + bad + ": '" + detail::qmp_excerpt(text) + "'" +
                               (ec ? " (" + ec.message() + ")" : std::string()));
    return detail::post_complete(s->ex, std::move(h), make_error_code(errc::invalid_arg), std::string());
  }
  if (refuse(s, diag, h, std::string())) return;
  json::object& obj = v.get_object();
  detail::qmp_state::pending p;
  p.raw = true;
  p.diag = diag;
  if (auto* e = obj.if_contains("execute"); e && e->is_string()) {
    p.command = e->get_string();
  } else {
    p.command = obj.at("exec-oob").get_string();
    p.oob = true;
  }
  if (auto it = obj.find("id"); it != obj.end()) {
    p.user_id = std::move(it->value());
    obj.erase(it);
  }
  std::string out = json::serialize(obj);
  out.pop_back();  // the closing brace: submit() appends the id and the brace
  bool empty = obj.empty();
  p.hr.swap(h);  // not operator=: Boost 1.81's any_completion_handler move assignment recurses forever
  s->submit(std::move(out), empty ? R"("id":)" : R"(,"id":)", std::move(p), limit);
}

}  // namespace

void qmp::execute_erased(std::string command, json::object args, qmp_clock::duration limit, diagnostics* diag,
                         asio::any_completion_handler<void(error_code, json::value)> h) {
  execute_start(s_.get(), std::move(command), std::move(args), limit, diag, std::move(h));
}

void qmp::raw_erased(std::string text, qmp_clock::duration limit, diagnostics* diag,
                     asio::any_completion_handler<void(error_code, std::string)> h) {
  raw_start(s_.get(), std::move(text), limit, diag, std::move(h));
}

void qmp::next_event_erased(asio::any_completion_handler<void(error_code, qmp_event)> h) {
  if (!s_) return detail::complete_now(std::move(h), error_code(asio::error::eof),
                                        qmp_event());
  auto& st = *s_;
  if (st.event_waiter)  // one reader at a time
    return detail::post_complete(st.ex, std::move(h), error_code(asio::error::in_progress), qmp_event());
  if (!st.events.empty()) {
    qmp_event ev = std::move(st.events.front());
    st.events.pop_front();
    return detail::post_complete(st.ex, std::move(h), error_code(), std::move(ev));
  }
  if (st.ph == detail::qmp_state::phase::closed)
    return detail::post_complete(st.ex, std::move(h), error_code(asio::error::eof), qmp_event());
  st.event_waiter.emplace(std::move(h));
  auto slot = asio::get_associated_cancellation_slot(*st.event_waiter);
  if (slot.is_connected()) {
    slot.assign([w = std::weak_ptr<detail::qmp_state>(s_)](asio::cancellation_type) {
      if (auto s = w.lock(); s && s->event_waiter) s->complete_event(asio::error::operation_aborted, {});
    });
  }
}

// ---- the use_awaitable forms: the message goes into covirt::error

asio::awaitable<void> qmp::connect_throwing(std::shared_ptr<detail::qmp_state> s, std::string path,
                                            diagnostics* diag) {
  diagnostics local;
  diagnostics& d = diag ? *diag : local;
  if (!s) throw_error(fail(d, errc::operation_invalid, "the QMP client was moved from"), d);
  result<void> r = co_await detail::qmp_state::connect(s, std::move(path), &d);
  if (!r) throw_error(r.error(), d);
}

asio::awaitable<json::value> qmp::execute_throwing(std::shared_ptr<detail::qmp_state> s, std::string command,
                                                   json::object args, qmp_clock::duration limit, diagnostics* diag) {
  diagnostics local;
  diagnostics& d = diag ? *diag : local;
  auto [ec, v] = co_await asio::async_initiate<tuple_awaitable_t,
                                               void(error_code, json::value)>(
      [&](auto h) { execute_start(s.get(), std::move(command), std::move(args), limit, &d, std::move(h)); },
      tuple_token);
  if (ec) throw_error(ec, d);
  co_return std::move(v);
}

asio::awaitable<std::string> qmp::raw_throwing(std::shared_ptr<detail::qmp_state> s, std::string text,
                                               qmp_clock::duration limit, diagnostics* diag) {
  diagnostics local;
  diagnostics& d = diag ? *diag : local;
  auto [ec, v] = co_await asio::async_initiate<tuple_awaitable_t,
                                               void(error_code, std::string)>(
      [&](auto h) { raw_start(s.get(), std::move(text), limit, &d, std::move(h)); }, tuple_token);
  if (ec) throw_error(ec, d);
  co_return std::move(v);
}

}  // namespace covirt::qemu
