// covirt::xen::xend — a client of xend's legacy S-expression HTTP interface (Xen 3.x/4.0/4.1),
// as libvirt's xend driver spoke it: one connection per request (unix socket or TCP), HTTP/1.1,
// `Accept: application/sxp`, POST bodies application/x-www-form-urlencoded (keys and values
// URL-encoded), answers read as S-expressions.
//
// Errors (the message in `diag`: xend's own text from `(xend.err 'text')` when it sent one, else
// the status line, "HTTP/1.1 404 Not Found", followed by a text/plain body if there was one):
//   404                                   errc::no_domain
//   other non-2xx, a 2xx body holding xend.err, a 202 whose body says "failed"
//                                         errc::get_failed (get) / errc::post_failed (post)
//   cannot connect                        errc::no_xen ("cannot connect to xend at '...': ...")
//   a body over body_limit, a response cut short, an HTML or malformed answer
//                                         errc::get_failed / errc::post_failed
//   no whole answer within `timeout`      errc::operation_timeout
//   the caller's cancellation (terminal or partial)
//                                         asio::error::operation_aborted
// Nothing here blocks: the name of a TCP host is resolved asynchronously (a numeric address is
// not resolved at all).
#pragma once

#include <covirt/error.hpp>
#include <covirt/xen/sexpr.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace covirt::xen {

namespace asio = boost::asio;

/// Where xend listens: `unix_path` when set, else TCP `host`:`port`.
struct xend_endpoint {
  std::string unix_path;
  std::string host;
  std::string port;
};

struct xend_options {
  std::chrono::milliseconds timeout{30000};  // one whole request: connect, send, answer
  std::size_t body_limit = 4u << 20;         // bytes of one answer's body
};

class xend {
public:
  xend(asio::any_io_executor ex, xend_endpoint ep, xend_options o = {});

  const xend_endpoint& endpoint() const noexcept { return ep_; }
  const xend_options& options() const noexcept { return opt_; }
  asio::any_io_executor get_executor() const noexcept { return ex_; }
  /// "/var/lib/xend/xend-socket" or "localhost:8000", as messages name it.
  std::string where() const;

  /// GET target ("/xend/node/", "/xend/domain?detail=1", "/xend/domain/web1?detail=1"): the body
  /// as an S-expression.
  asio::awaitable<result<sexpr>> get(std::string_view target, diagnostics& diag);
  /// POST target with form fields (application/x-www-form-urlencoded, keys and values
  /// URL-encoded): the body parsed as an S-expression if non-empty (an empty list if the body is
  /// empty or only whitespace).
  asio::awaitable<result<sexpr>> post(std::string_view target,
                                      const std::vector<std::pair<std::string, std::string>>& form,
                                      diagnostics& diag);

  /// The form body post() sends: "op=create&config=%28vm%20...%29".
  static std::string encode_form(const std::vector<std::pair<std::string, std::string>>& form);

private:
  asio::awaitable<result<sexpr>> request(bool is_post, std::string_view target, std::string body,
                                         diagnostics& diag);
  asio::awaitable<result<sexpr>> exchange(bool is_post, std::string_view target, std::string body,
                                          diagnostics& diag);

  asio::any_io_executor ex_;
  xend_endpoint ep_;
  xend_options opt_;
};

}  // namespace covirt::xen
