// covirt::xen::xend — one HTTP request to xend per connection, with Boost.Beast.
#include <covirt/xen/xend.hpp>


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <charconv>
#include <memory>
#include <optional>

namespace covirt::xen {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using local_stream = asio::local::stream_protocol;

namespace {

using response = http::response<http::string_body>;

std::string_view trimmed(std::string_view s) {
  const auto ws = " \t\r\n\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string excerpt(std::string_view s, std::size_t max = 200) {
  s = trimmed(s);
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

// The text of `(xend.err 'text')` when the body is one.
std::optional<std::string> xend_error_text(std::string_view body) {
  if (body.find("xend.err") == std::string_view::npos) return std::nullopt;
  diagnostics ignore;
  auto s = parse_sexpr(body, ignore);
  if (!s || s->head() != "xend.err") return std::nullopt;
  std::string text;
  for (std::size_t i = 1; i < s->list.size(); ++i) {
    if (!text.empty()) text += ' ';
    text += s->list[i].is_list ? format_sexpr(s->list[i]) : s->list[i].atom;
  }
  return text;
}

std::string status_line(const response& r) {
  return "HTTP/" + std::to_string(r.version() / 10) + "." + std::to_string(r.version() % 10) + " " +
         std::to_string(r.result_int()) + " " + std::string(r.reason());
}

bool content_type_is(const response& r, std::string_view type) {
  auto it = r.find(http::field::content_type);
  if (it == r.end()) return false;
  std::string_view v = it->value();
  return v.size() >= type.size() && beast::iequals(v.substr(0, type.size()), type);
}

// What `diag` says about a refusal: xend's own words, else the status line (and a plain-text body).
std::string refusal_text(const response& r) {
  if (auto t = xend_error_text(r.body())) return *t;
  std::string s = status_line(r);
  if (!trimmed(r.body()).empty() && !content_type_is(r, "text/html")) s += ": " + excerpt(r.body());
  return s;
}

// The deadline of one request and the signal its steps are bound to; shared with the timer's
// handler, which may run after the request ended.
struct deadline_state {
  asio::cancellation_signal sig;
  bool expired = false;
};

// The state of one request, shared by the steps below.
struct call {
  const xend& x;
  bool is_post;
  std::string_view target;
  diagnostics& diag;
  asio::cancellation_state cs;
  std::shared_ptr<deadline_state> dl = std::make_shared<deadline_state>();
  asio::steady_timer timer;

  call(const xend& x_, bool post, std::string_view t, diagnostics& d, asio::cancellation_state c)
      : x(x_), is_post(post), target(t), diag(d), cs(c), timer(x_.get_executor(), x_.options().timeout) {
    timer.async_wait([s = dl](error_code ec) {
      if (ec) return;
      s->expired = true;
      s->sig.emit(asio::cancellation_type::terminal);
    });
  }
  call(const call&) = delete;
  call& operator=(const call&) = delete;
  ~call() {
    if (cs.slot().is_connected()) cs.slot().clear();
    dl->sig.slot().clear();
    timer.cancel();
  }

  errc failed_code() const { return is_post ? errc::post_failed : errc::get_failed; }
  std::string request_name() const { return std::string(is_post ? "POST " : "GET ") + std::string(target); }
  failure failed(std::string msg) const { return fail(diag, failed_code(), std::move(msg)); }
  /// The caller cancelled (its signal reaches a step only while that step runs: see token()).
  bool cancelled() const { return cs.cancelled() != asio::cancellation_type::none; }
  bool stopped(error_code ec) const { return ec == asio::error::operation_aborted && (dl->expired || cancelled()); }
  failure stop() const {
    if (dl->expired)
      return fail(diag, errc::operation_timeout,
                  "xend at '" + x.where() + "' did not answer within " +
                      std::to_string(x.options().timeout.count()) + " ms");
    diag.assign(request_name() + " to xend at '" + x.where() + "' was cancelled");
    return failure(asio::error::operation_aborted);
  }
  failure cannot_connect(error_code ec) const {
    if (stopped(ec)) return stop();
    return fail(diag, errc::no_xen, "cannot connect to xend at '" + x.where() + "': " + ec.message());
  }
  /// For each step: bound to the deadline's signal, which the caller's cancellation (terminal or
  /// partial: either ends the request) also fires. The awaitable clears the coroutine's slot after
  /// every operation it awaited, so the handler goes on it again for each step.
  auto token() {
    if (cs.slot().is_connected())
      cs.slot().assign([s = dl](asio::cancellation_type) { s->sig.emit(asio::cancellation_type::terminal); });
    return asio::as_tuple(asio::bind_cancellation_slot(dl->sig.slot(), asio::use_awaitable));
  }
};

template <class Stream>
asio::awaitable<result<response>> talk(Stream& sock, call& c, http::request<http::string_body>& req) {
  if (c.cancelled()) co_return c.stop();
  auto [wec, written] = co_await http::async_write(sock, req, c.token());
  (void)written;
  if (wec) {
    if (c.stopped(wec)) co_return c.stop();
    co_return c.failed("cannot send " + c.request_name() + " to xend at '" + c.x.where() + "': " + wec.message());
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(c.x.options().body_limit);
  if (c.cancelled()) co_return c.stop();
  auto [rec, read] = co_await http::async_read(sock, buf, parser, c.token());
  (void)read;
  if (rec) {
    if (c.stopped(rec)) co_return c.stop();
    const std::string who = "xend at '" + c.x.where() + "'";
    if (rec == http::error::body_limit)
      co_return c.failed(who + " answered " + c.request_name() + " with a body over the limit of " +
                         std::to_string(c.x.options().body_limit) + " bytes");
    if (rec == http::error::partial_message)
      co_return c.failed(who + " closed the connection in the middle of its answer to " + c.request_name());
    if (rec == http::error::end_of_stream || rec == asio::error::eof || rec == asio::error::connection_reset)
      co_return c.failed(who + " closed the connection without answering " + c.request_name());
    co_return c.failed("cannot read " + who + "'s answer to " + c.request_name() + ": " + rec.message());
  }
  error_code ignore;
  sock.shutdown(Stream::shutdown_both, ignore);
  sock.close(ignore);
  co_return parser.release();
}

}  // namespace

xend::xend(asio::any_io_executor ex, xend_endpoint ep, xend_options o)
    : ex_(std::move(ex)), ep_(std::move(ep)), opt_(o) {}

std::string xend::where() const {
  if (!ep_.unix_path.empty()) return ep_.unix_path;
  return ep_.host + ":" + ep_.port;
}

std::string xend::encode_form(const std::vector<std::pair<std::string, std::string>>& form) {
  std::string body;
  for (const auto& [k, v] : form) {
    if (!body.empty()) body += '&';
    body += boost::urls::encode(k, boost::urls::unreserved_chars);
    body += '=';
    body += boost::urls::encode(v, boost::urls::unreserved_chars);
  }
  return body;
}

asio::awaitable<result<sexpr>> xend::get(std::string_view target, diagnostics& diag) {
  return request(false, target, std::string(), diag);
}

asio::awaitable<result<sexpr>> xend::post(std::string_view target,
                                          const std::vector<std::pair<std::string, std::string>>& form,
                                          diagnostics& diag) {
  return request(true, target, encode_form(form), diag);
}

asio::awaitable<result<sexpr>> xend::request(bool is_post, std::string_view target, std::string body,
                                             diagnostics& diag) {
  // Cancellation is checked by hand: keep co_await from throwing once it happened, and give the
  // caller's coroutine its own setting back afterwards.
  const bool throw_before = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto r = co_await exchange(is_post, target, std::move(body), diag);
  co_await asio::this_coro::throw_if_cancelled(throw_before);
  co_return r;
}

asio::awaitable<result<sexpr>> xend::exchange(bool is_post, std::string_view target, std::string body,
                                              diagnostics& diag) {
  asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
  call c{*this, is_post, target, diag, cs};

  http::request<http::string_body> req{is_post ? http::verb::post : http::verb::get, target, 11};
  req.set(http::field::host, ep_.unix_path.empty() ? ep_.host + ":" + ep_.port : std::string("localhost"));
  req.set(http::field::accept_encoding, "identity");
  req.set(http::field::content_type, "application/x-www-form-urlencoded");
  req.set(http::field::accept, "application/sxp");
  req.body() = std::move(body);
  req.prepare_payload();

  result<response> res = response{};
  if (!ep_.unix_path.empty()) {
    local_stream::endpoint where;
    try {
      where = local_stream::endpoint(ep_.unix_path);
    } catch (const std::exception& e) {
      co_return fail(diag, errc::no_xen, "cannot connect to xend at '" + ep_.unix_path + "': " + e.what());
    }
    local_stream::socket sock(ex_);
    auto [ec] = co_await sock.async_connect(where, c.token());
    if (ec) co_return c.cannot_connect(ec);
    res = co_await talk(sock, c, req);
  } else {
    tcp::socket sock(ex_);
    error_code ec;
    const auto addr = asio::ip::make_address(ep_.host, ec);
    unsigned short port = 0;
    const auto [pend, perr] = std::from_chars(ep_.port.data(), ep_.port.data() + ep_.port.size(), port);
    if (!ec && perr == std::errc() && pend == ep_.port.data() + ep_.port.size()) {
      const tcp::endpoint where(addr, port);
      std::tie(ec) = co_await sock.async_connect(where, c.token());
    } else {
      tcp::resolver resolver(ex_);
      auto [rec, found] = co_await resolver.async_resolve(ep_.host, ep_.port, c.token());
      if (rec) co_return c.cannot_connect(rec);
      if (c.cancelled() || c.dl->expired) co_return c.stop();
      tcp::endpoint chosen;
      std::tie(ec, chosen) = co_await asio::async_connect(sock, found, c.token());
    }
    if (ec) co_return c.cannot_connect(ec);
    res = co_await talk(sock, c, req);
  }
  if (!res) co_return failure(res.error());
  const response& r = *res;
  const std::string who = "xend at '" + where() + "'";
  const int code = r.result_int();
  if (code == 404) co_return fail(diag, errc::no_domain, refusal_text(r));
  if (code < 200 || code >= 300) co_return c.failed(refusal_text(r));
  if (xend_error_text(r.body()) || r.body().find("xend.err") != std::string::npos)
    co_return c.failed(refusal_text(r));
  if (code == 202 && r.body().find("failed") != std::string::npos)
    co_return c.failed(status_line(r) + ": " + excerpt(r.body()));
  if (content_type_is(r, "text/html"))
    co_return c.failed(who + " answered " + c.request_name() + " with HTML, not an S-expression");
  if (trimmed(r.body()).empty()) {
    if (is_post) co_return sexpr::make_list();
    co_return c.failed(who + " sent an empty answer to " + c.request_name());
  }
  diagnostics pd;
  sexpr_limits lim;
  lim.max_bytes = opt_.body_limit;
  auto s = parse_sexpr(r.body(), pd, lim);
  if (!s)
    co_return c.failed(who + " answered " + c.request_name() + " with a malformed S-expression: " +
                       std::string(pd.message()));
  co_return std::move(*s);
}

}  // namespace covirt::xen
