// One accepted WebSocket: a single writer coroutine drains a bounded queue (one write in
// flight, as in Beast's chat example), reads are awaited by the handler, pings keep idle
// streams alive. Every member runs on the connection's strand.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "agentpane/result.hpp"
#include "server/server.hpp"

namespace agentpane::server {

// A condition for coroutines on one strand: wait() until notify(); callers re-check their
// condition in a loop (wake-ups may be spurious).
class Signal {
 public:
  explicit Signal(const boost::asio::any_io_executor& ex) : timer_(ex) {
    // Armed once: cancel() wakes every waiter and leaves the expiry as it is.
    timer_.expires_at(boost::asio::steady_timer::time_point::max());
  }
  boost::asio::awaitable<void> wait();
  void notify() { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
};

// The text message a WebSocket route ends with on failure:
// {"type":"error","code":"…","message":"…"}.
std::string errorFrame(const Error& e);

class WsChannel : public std::enable_shared_from_this<WsChannel> {
 public:
  using Stream = boost::beast::websocket::stream<boost::beast::tcp_stream>;
  struct Message {
    bool text = false;
    std::string data;
  };

  WsChannel(boost::beast::tcp_stream&& stream, const ServerOptions& options);

  boost::asio::any_io_executor executor() { return ws_.get_executor(); }

  // Completes the upgrade and starts the writer; false when the handshake failed.
  boost::asio::awaitable<bool> accept(
      const boost::beast::http::request<boost::beast::http::string_body>& req);

  // Queue a message. Ignored once the channel is closing.
  void sendText(std::string data);
  void sendBinary(std::string data);
  // Sends a close frame after what is queued. Idempotent.
  void close(boost::beast::websocket::close_code code, std::string reason = {});
  // Drops the connection now (shutdown deadline passed, protocol abuse).
  void abort();

  // Close requested, the peer went away, or a write failed: sending is pointless.
  [[nodiscard]] bool closing() const { return closeRequested_ || failed_; }
  [[nodiscard]] std::size_t queuedBytes() const { return queuedBytes_; }

  // Returns once at most `highWater` bytes are queued, or the channel is closing.
  boost::asio::awaitable<void> waitForSpace(std::size_t highWater);
  // The next whole message; nullopt once the peer closed or the connection failed.
  boost::asio::awaitable<std::optional<Message>> read();
  // Returns once the writer ended (close frame sent, or failure).
  boost::asio::awaitable<void> finished();

 private:
  struct Outgoing {
    bool text = false;
    std::string data;
  };
  void enqueue(bool text, std::string data);
  boost::asio::awaitable<void> writerLoop();

  Stream ws_;
  const ServerOptions& options_;
  boost::beast::flat_buffer readBuffer_;
  std::deque<Outgoing> queue_;
  std::size_t queuedBytes_ = 0;
  Signal wake_;     // something to write
  Signal drained_;  // queue shrank or writer ended
  bool closeRequested_ = false;
  boost::beast::websocket::close_reason closeReason_;
  bool failed_ = false;
  bool writerDone_ = false;
  bool writerStarted_ = false;
};

}  // namespace agentpane::server
