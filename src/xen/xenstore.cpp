// covirt: the xenstore client — requests, the reader, the writer, watches, reconnect.
#include <covirt/xen/xenstore.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <cstdlib>
#include <unordered_map>

namespace covirt::xen {

namespace detail {

using socket_t = asio::local::stream_protocol::socket;
constexpr auto tuple_token = asio::as_tuple(asio::use_awaitable);

struct xenstore_state : std::enable_shared_from_this<xenstore_state> {
  struct pending {
    wire::msg_type type{};
    std::string_view what;  // the path or argument, for messages
    diagnostics* diag = nullptr;
    std::string reply;
    error_code ec;
    asio::any_completion_handler<void()> h;
  };
  struct watch_reg {
    std::string path, token;
    std::shared_ptr<watch_stream::state> q;
  };

  explicit xenstore_state(asio::any_io_executor e) : ex(e), sock(e) {}

  asio::any_io_executor ex;
  socket_t sock;
  std::string path;
  bool open = false;
  unsigned generation = 0;  // one per connection, so an old reader stops
  error_code close_ec;
  std::string close_msg;

  wire::reader rd;
  std::uint32_t next_req = 1;
  std::unordered_map<std::uint32_t, pending*> calls;
  std::unordered_map<std::uint32_t, wire::msg_type> abandoned;  // cancelled, or sent without a caller

  std::string outq, writing_buf;
  bool writing = false;

  std::vector<watch_reg> watches;

  std::uint32_t take_req_id() {
    std::uint32_t id = next_req++;
    if (next_req == 0) next_req = 1;
    return id;
  }

  void complete(pending& p) {
    asio::get_associated_cancellation_slot(p.h).clear();
    asio::post(ex, [h = std::move(p.h)]() mutable { std::move(h)(); });
  }

  void start_write() {
    if (writing || outq.empty() || !open) return;
    writing = true;
    writing_buf.clear();
    writing_buf.swap(outq);
    asio::async_write(sock, asio::buffer(writing_buf), [self = shared_from_this(), g = generation](error_code ec, std::size_t) {
      if (g != self->generation) return;
      self->writing = false;
      if (ec) return self->shutdown("failed while writing: " + ec.message());
      self->start_write();
    });
  }

  // A request nobody waits for (UNWATCH of a closed stream, END of a late transaction).
  void send_unawaited(wire::msg_type t, std::string_view payload, std::uint32_t tx = 0) {
    if (!open) return;
    diagnostics ignore;
    auto id = take_req_id();
    if (wire::encode(outq, t, id, tx, payload, ignore)) {
      abandoned.emplace(id, t);
      start_write();
    }
  }

  // The connection ended (not by close()): calls fail, watch streams get the error once.
  void shutdown(std::string why, errc code = errc::no_xenstore) {
    if (!open) return;
    open = false;
    ++generation;
    close_ec = make_error_code(code);
    close_msg = "connection to xenstored at '" + path + "' " + why;
    error_code ignore;
    sock.close(ignore);
    outq.clear();
    writing = false;
    abandoned.clear();
    auto pend = std::move(calls);
    calls.clear();
    for (auto& [id, p] : pend) {
      p->ec = close_ec;
      if (p->diag) p->diag->assign(close_msg);
      complete(*p);
    }
    std::erase_if(watches, [](const watch_reg& w) { return !w.q->open; });
    for (auto& w : watches) w.q->push_error(close_ec);
  }

  void route_event(std::string_view payload) {
    auto parts = wire::split(payload);
    if (parts.size() < 2) return shutdown("sent a WATCH_EVENT without a path and a token", errc::internal_error);
    const std::string& epath = parts[0];
    const std::string& token = parts[1];
    for (auto it = watches.begin(); it != watches.end();) {
      auto& w = *it;
      bool ours = w.token == token &&
                  (epath == w.path || (epath.size() > w.path.size() && epath.compare(0, w.path.size(), w.path) == 0 &&
                                       (epath[w.path.size()] == '/' || w.path == "/")));
      if (ours && !w.q->open) {  // the reader closed it: unregister it now
        send_unawaited(wire::msg_type::unwatch, wire::join(w.path, w.token));
        it = watches.erase(it);
        continue;
      }
      if (ours) w.q->push(watch_event{epath, token});
      ++it;
    }
  }

  // One message from the daemon; false once the connection is shut.
  bool route(const wire::reader::message& m) {
    if (m.head.type == wire::msg_type::watch_event) {
      route_event(m.payload);
      return open;
    }
    auto it = calls.find(m.head.req_id);
    if (it == calls.end()) {
      if (auto a = abandoned.find(m.head.req_id); a != abandoned.end()) {
        // A late transaction id whose caller went: end it, uncommitted.
        if (a->second == wire::msg_type::transaction_start && m.head.type == a->second) {
          auto id = std::strtoul(std::string(m.payload).c_str(), nullptr, 10);
          send_unawaited(wire::msg_type::transaction_end, wire::join("F"), static_cast<std::uint32_t>(id));
        }
        abandoned.erase(a);
        return true;
      }
      shutdown("sent a " + std::string(wire::type_name(m.head.type)) + " reply to request " +
                   std::to_string(m.head.req_id) + ", which this client never sent",
               errc::internal_error);
      return false;
    }
    pending& p = *it->second;
    calls.erase(it);
    if (m.head.type == wire::msg_type::error) {
      p.ec = wire::error_from_name(m.payload);
      std::string name(m.payload.substr(0, m.payload.find('\0')));
      if (p.diag)
        p.diag->assign("xenstore " + std::string(wire::type_name(p.type)) + (p.what.empty() ? "" : " ") +
                       std::string(p.what) + ": " + name);
    } else if (m.head.type != p.type) {
      shutdown("answered a " + std::string(wire::type_name(p.type)) + " request with a " +
                   std::string(wire::type_name(m.head.type)) + " message",
               errc::internal_error);
      p.ec = close_ec;
      if (p.diag) p.diag->assign(close_msg);
      complete(p);
      return false;
    } else {
      p.reply.assign(m.payload);
    }
    complete(p);
    return true;
  }

  void start_reader() { asio::co_spawn(ex, reader(shared_from_this(), generation), asio::detached); }

  static asio::awaitable<void> reader(std::shared_ptr<xenstore_state> self, unsigned g) {
    auto& s = *self;
    for (;;) {
      wire::reader::message m;
      diagnostics d;
      for (;;) {
        auto st = s.rd.next(m, d);
        if (st == wire::reader::status::need_more) break;
        if (st == wire::reader::status::error) {
          s.shutdown("sent " + std::string(d.message()), errc::internal_error);
          co_return;
        }
        if (!s.route(m) || g != s.generation) co_return;
      }
      auto [buf, room] = s.rd.prepare();
      auto [ec, got] = co_await s.sock.async_read_some(asio::buffer(buf, room), tuple_token);
      if (g != s.generation) co_return;
      s.rd.commit(ec ? 0 : got);
      if (ec == asio::error::eof) {
        s.shutdown("closed: end of file");
        co_return;
      }
      if (ec) {
        s.shutdown("failed: " + ec.message());
        co_return;
      }
    }
  }

  asio::awaitable<result<void>> open_socket(diagnostics& diag) {
    sock = socket_t(ex);
    rd = wire::reader();
    auto [ec] = co_await sock.async_connect(asio::local::stream_protocol::endpoint(path), tuple_token);
    if (ec) co_return fail(diag, errc::no_xenstore, "cannot connect to xenstored at '" + path + "': " + ec.message());
    open = true;
    ++generation;
    start_reader();
    co_return result<void>();
  }
};

}  // namespace detail

xenstore::xenstore(asio::any_io_executor ex) : s_(std::make_shared<detail::xenstore_state>(std::move(ex))) {}
xenstore::xenstore(xenstore&&) noexcept = default;
xenstore& xenstore::operator=(xenstore&& o) noexcept {
  if (this != &o) {
    close();
    s_ = std::move(o.s_);
  }
  return *this;
}
xenstore::~xenstore() { close(); }

asio::any_io_executor xenstore::get_executor() const noexcept { return s_ ? s_->ex : asio::any_io_executor(); }

std::string xenstore::default_socket() {
  if (const char* p = std::getenv("XENSTORED_PATH"); p && *p) return p;
  if (const char* d = std::getenv("XENSTORED_RUNDIR"); d && *d) return std::string(d) + "/socket";
  return "/var/run/xenstored/socket";
}

asio::awaitable<result<void>> xenstore::connect(std::string_view socket_path, diagnostics& diag) {
  auto self = s_;
  if (!self) co_return fail(diag, errc::invalid_conn, "the xenstore client was moved from");
  if (self->open) co_return fail(diag, errc::operation_invalid, "the xenstore client is already connected");
  self->path = socket_path.empty() ? default_socket() : std::string(socket_path);
  co_return co_await self->open_socket(diag);
}

asio::awaitable<result<void>> xenstore::reconnect(diagnostics& diag) {
  auto self = s_;
  if (!self || self->path.empty()) co_return fail(diag, errc::invalid_conn, "the xenstore client never connected");
  if (self->open) self->shutdown("closed for a reconnect");
  if (auto r = co_await self->open_socket(diag); !r) co_return r;
  std::erase_if(self->watches, [](const auto& w) { return !w.q->open; });
  auto regs = self->watches;  // the same streams; the registrations are sent again
  for (auto& w : regs) {
    auto r = co_await request(wire::msg_type::watch, wire::join(w.path, w.token), {}, diag);
    if (!r) co_return failure(r.error());
  }
  co_return result<void>();
}

void xenstore::close() noexcept {
  if (!s_) return;
  try {
    s_->shutdown("closed");
  } catch (...) {
  }
  for (auto& w : s_->watches) w.q->close(false);
  s_->watches.clear();
}

bool xenstore::is_open() const noexcept { return s_ && s_->open; }
const std::string& xenstore::socket_path() const noexcept {
  static const std::string none;
  return s_ ? s_->path : none;
}
std::size_t xenstore::pending_requests() const noexcept { return s_ ? s_->calls.size() : 0; }

namespace {
std::string arg0(std::string_view payload) { return std::string(payload.substr(0, payload.find('\0'))); }
}  // namespace

asio::awaitable<result<std::string>> xenstore::request(wire::msg_type type, std::string payload, transaction t,
                                                       diagnostics& diag) {
  auto self = s_;
  if (!self) co_return fail(diag, errc::invalid_conn, "the xenstore client was moved from");
  if (!self->open) {
    if (self->close_ec) {
      diag.assign(self->close_msg);
      co_return failure(self->close_ec);
    }
    co_return fail(diag, errc::invalid_conn, "the xenstore client is not connected");
  }
  std::string what = arg0(payload);
  if (type == wire::msg_type::transaction_start || type == wire::msg_type::transaction_end) what.clear();
  const std::uint32_t id = self->take_req_id();
  if (auto r = wire::encode(self->outq, type, id, t.id, payload, diag); !r) {
    diag.assign(std::string(diag.message()) + (what.empty() ? "" : " (" + what.substr(0, 80) + ")"));
    co_return failure(r.error());
  }
  self->start_write();
  detail::xenstore_state::pending p;
  asio::use_awaitable_t<> token;
  p.type = type;
  p.what = what;
  p.diag = &diag;
  co_await asio::async_initiate<asio::use_awaitable_t<>, void()>(
      [&](auto handler) {
        asio::any_completion_handler<void()> erased(std::move(handler));
        p.h.swap(erased);  // not operator=: Boost 1.81's any_completion_handler move assignment recurses
        self->calls.emplace(id, &p);
        auto slot = asio::get_associated_cancellation_slot(p.h);
        if (!slot.is_connected()) return;
        slot.assign([w = std::weak_ptr<detail::xenstore_state>(self), id](asio::cancellation_type ct) {
          if ((ct & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
              asio::cancellation_type::none)
            return;
          auto s = w.lock();
          if (!s) return;
          auto it = s->calls.find(id);
          if (it == s->calls.end()) return;
          auto& c = *it->second;
          s->calls.erase(it);
          s->abandoned.emplace(id, c.type);
          c.ec = asio::error::operation_aborted;
          if (c.diag)
            c.diag->assign("xenstore " + std::string(wire::type_name(c.type)) + " request " + std::to_string(id) +
                           " cancelled; its reply will be dropped");
          s->complete(c);
        });
      },
      token);
  if (p.ec) co_return failure(p.ec);
  co_return std::move(p.reply);
}

namespace {
result<void> expect_ok(result<std::string> r) {
  if (!r) return failure(r.error());
  return {};
}
}  // namespace

asio::awaitable<result<std::string>> xenstore::read(std::string_view path, diagnostics& diag, transaction t) {
  co_return co_await request(wire::msg_type::read, wire::join(path), t, diag);
}

asio::awaitable<result<void>> xenstore::write(std::string_view path, std::string_view value, diagnostics& diag,
                                              transaction t) {
  std::string payload = wire::join(path);
  payload.append(value);
  co_return expect_ok(co_await request(wire::msg_type::write, std::move(payload), t, diag));
}

asio::awaitable<result<void>> xenstore::mkdir(std::string_view path, diagnostics& diag, transaction t) {
  co_return expect_ok(co_await request(wire::msg_type::mkdir, wire::join(path), t, diag));
}

asio::awaitable<result<void>> xenstore::rm(std::string_view path, diagnostics& diag, transaction t) {
  co_return expect_ok(co_await request(wire::msg_type::rm, wire::join(path), t, diag));
}

asio::awaitable<result<std::vector<std::string>>> xenstore::directory(std::string_view path, diagnostics& diag,
                                                                      transaction t) {
  auto whole = co_await request(wire::msg_type::directory, wire::join(path), t, diag);
  if (whole) co_return wire::split(*whole);
  if (whole.error() != boost::system::errc::argument_list_too_long) co_return failure(whole.error());
  // Too long for one reply: in parts, from the start again whenever the node's generation changes.
  for (int restart = 0; restart < 64; ++restart) {
    std::string acc, gen;
    bool changed = false;
    for (;;) {
      auto part = co_await request(wire::msg_type::directory_part,
                                   wire::join(path, std::to_string(acc.size())), t, diag);
      if (!part) co_return failure(part.error());
      auto nul = part->find('\0');
      if (nul == std::string::npos)
        co_return fail(diag, errc::internal_error, "xenstore DIRECTORY_PART " + std::string(path) +
                                                       ": a reply without its generation count");
      std::string g = part->substr(0, nul);
      if (gen.empty()) gen = g;
      else if (g != gen) { changed = true; break; }
      std::string_view chunk = std::string_view(*part).substr(nul + 1);
      acc.append(chunk);
      // The list ends with an empty string: the last part ends in two NULs.
      if (chunk.empty() || (acc.size() >= 2 && acc.ends_with(std::string_view("\0\0", 2))) ||
          (acc.size() == 1 && acc[0] == '\0')) {
        if (!acc.empty()) acc.pop_back();
        co_return wire::split(acc);
      }
    }
    if (!changed) break;
  }
  co_return fail(diag, errc::internal_error, "xenstore DIRECTORY_PART " + std::string(path) +
                                                 ": the node kept changing while it was read");
}

asio::awaitable<result<std::vector<std::string>>> xenstore::get_perms(std::string_view path, diagnostics& diag,
                                                                      transaction t) {
  auto r = co_await request(wire::msg_type::get_perms, wire::join(path), t, diag);
  if (!r) co_return failure(r.error());
  co_return wire::split(*r);
}

asio::awaitable<result<void>> xenstore::set_perms(std::string_view path, const std::vector<std::string>& perms,
                                                  diagnostics& diag, transaction t) {
  std::string payload = wire::join(path);
  for (auto& p : perms) {
    bool ok = p.size() >= 2 && std::string_view("rwbn").find(p[0]) != std::string_view::npos &&
              p.find_first_not_of("0123456789", 1) == std::string::npos;
    if (!ok)
      co_return fail(diag, errc::invalid_arg, "xenstore permission '" + p +
                                                  "' is not a letter r, w, b or n followed by a domain id");
    payload.append(p);
    payload.push_back('\0');
  }
  co_return expect_ok(co_await request(wire::msg_type::set_perms, std::move(payload), t, diag));
}

asio::awaitable<result<std::string>> xenstore::get_domain_path(unsigned domid, diagnostics& diag) {
  auto r = co_await request(wire::msg_type::get_domain_path, wire::join(std::to_string(domid)), {}, diag);
  if (!r) co_return r;
  if (!r->empty() && r->back() == '\0') r->pop_back();
  co_return r;
}

asio::awaitable<result<bool>> xenstore::is_domain_introduced(unsigned domid, diagnostics& diag) {
  auto r = co_await request(wire::msg_type::is_domain_introduced, wire::join(std::to_string(domid)), {}, diag);
  if (!r) co_return failure(r.error());
  co_return !r->empty() && (*r)[0] == 'T';
}

asio::awaitable<result<transaction>> xenstore::transaction_start(diagnostics& diag) {
  auto r = co_await request(wire::msg_type::transaction_start, std::string(1, '\0'), {}, diag);
  if (!r) co_return failure(r.error());
  char* end = nullptr;
  std::string text = arg0(*r);
  unsigned long id = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end || id == 0 || id > 0xffffffffUL)
    co_return fail(diag, errc::internal_error, "xenstore TRANSACTION_START: the daemon answered '" + text +
                                                   "', not a transaction id");
  co_return transaction{static_cast<std::uint32_t>(id)};
}

asio::awaitable<result<void>> xenstore::transaction_end(transaction t, bool commit, diagnostics& diag) {
  co_return expect_ok(co_await request(wire::msg_type::transaction_end, wire::join(commit ? "T" : "F"), t, diag));
}

asio::awaitable<result<watch_stream>> xenstore::watch(std::string_view path, std::string_view token,
                                                      diagnostics& diag) {
  auto self = s_;
  if (!self) co_return fail(diag, errc::invalid_conn, "the xenstore client was moved from");
  if (token.find('\0') != std::string_view::npos || path.find('\0') != std::string_view::npos)
    co_return fail(diag, errc::invalid_arg, "a xenstore watch path or token cannot hold a NUL byte");
  auto q = std::make_shared<watch_stream::state>(self->ex, 4096);
  self->watches.push_back({std::string(path), std::string(token), q});
  auto r = co_await request(wire::msg_type::watch, wire::join(path, token), {}, diag);
  if (!r) {
    std::erase_if(self->watches, [&](const auto& w) { return w.q == q; });
    co_return failure(r.error());
  }
  co_return watch_stream(std::move(q));
}

asio::awaitable<result<void>> xenstore::unwatch(std::string_view path, std::string_view token, diagnostics& diag) {
  auto self = s_;
  if (!self) co_return fail(diag, errc::invalid_conn, "the xenstore client was moved from");
  auto r = co_await request(wire::msg_type::unwatch, wire::join(path, token), {}, diag);
  // The daemon may still have sent events: the stream ends (after what it holds) either way.
  for (auto& w : self->watches)
    if (w.path == path && w.token == token) w.q->close(false);
  std::erase_if(self->watches, [&](const auto& w) { return w.path == path && w.token == token; });
  co_return expect_ok(std::move(r));
}

}  // namespace covirt::xen
