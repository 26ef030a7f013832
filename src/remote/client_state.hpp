// covirt internals: the remote client's shared state (client.cpp runs it, transport.cpp opens
// its stream). The reader, the writer and the keepalive timer keep it alive, so the client object
// can go away with calls pending.
#pragma once

#include <covirt/remote/client.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unordered_map>

namespace covirt::remote::detail {

using stream_socket = asio::generic::stream_protocol::socket;

struct client_state : std::enable_shared_from_this<client_state> {
  struct pending {
    std::uint32_t prog = 0;
    std::int32_t proc = 0;
    diagnostics* diag = nullptr;
    std::string reply;
    error_code ec;
    asio::any_completion_handler<void()> h;
  };

  client_state(asio::any_io_executor e, client_options o) : ex(e), opts(o), sock(e), keepalive(e) {}

  asio::any_io_executor ex;
  client_options opts;
  stream_socket sock;
  std::string peer;
  std::shared_ptr<void> keep;  // what the transport needs kept (the ssh process)
  std::function<std::string()> stderr_of_transport;  // what ssh said, for the error when it ends
  bool open = false, closed = false;
  error_code close_ec;
  std::string close_msg;

  packet_reader reader_buf;
  std::uint32_t next_serial = 0;
  std::unordered_map<std::uint32_t, pending*> calls;
  std::size_t ignored = 0;

  std::string outq, writing_buf;
  bool writing = false;

  asio::steady_timer keepalive;
  std::chrono::steady_clock::time_point last_rx{};
  unsigned unanswered = 0;

  client::message_handler on_msg;
  client::close_handler on_close;

  /// From here the stream is connected: the reader and the keepalive start.
  void start();
  void shutdown(errc code, std::string msg, bool notify = true);
};

}  // namespace covirt::remote::detail
