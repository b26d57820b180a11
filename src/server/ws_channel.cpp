// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "server/ws_channel.hpp"

#include <nlohmann/json.hpp>

#include "server/api.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/version.hpp>
#include <boost/beast/websocket.hpp>

namespace agentpane::server {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;

asio::awaitable<void> Signal::wait() {
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

WsChannel::WsChannel(beast::tcp_stream&& stream, const ServerOptions& options)
    : ws_(std::move(stream)),
      options_(options),
      wake_(ws_.get_executor()),
      drained_(ws_.get_executor()) {}

asio::awaitable<bool> WsChannel::accept(const http::request<http::string_body>& req) {
  // The websocket stream keeps its own timers from here on.
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = std::chrono::seconds(10);
  // Beast pings after half the idle timeout and gives up after the whole of it.
  t.idle_timeout = options_.wsPingInterval * 2;
  t.keep_alive_pings = true;
  ws_.set_option(t);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "agentpane"); }));
  ws_.read_message_max(options_.maxWsMessageBytes);
  ws_.auto_fragment(false);

  boost::system::error_code ec;
  co_await ws_.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    failed_ = true;
    co_return false;
  }
  writerStarted_ = true;
  asio::co_spawn(
      ws_.get_executor(), [self = shared_from_this()]() { return self->writerLoop(); },
      asio::detached);
  co_return true;
}

void WsChannel::enqueue(bool text, std::string data) {
  if (closing()) return;
  queuedBytes_ += data.size();
  queue_.push_back(Outgoing{text, std::move(data)});
  wake_.notify();
}

void WsChannel::sendText(std::string data) {
  enqueue(true, std::move(data));
}
void WsChannel::sendBinary(std::string data) {
  enqueue(false, std::move(data));
}

void WsChannel::close(websocket::close_code code, std::string reason) {
  if (closeRequested_) return;
  closeRequested_ = true;
  closeReason_ = websocket::close_reason(code, reason);
  wake_.notify();
}

void WsChannel::abort() {
  failed_ = true;
  boost::system::error_code ec;
  beast::get_lowest_layer(ws_).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  beast::get_lowest_layer(ws_).socket().close(ec);
  wake_.notify();
  drained_.notify();
}

asio::awaitable<void> WsChannel::writerLoop() {
  for (;;) {
    while (queue_.empty() && !closeRequested_ && !failed_)
      co_await wake_.wait();
    if (failed_) break;
    if (!queue_.empty()) {
      Outgoing out = std::move(queue_.front());
      queue_.pop_front();
      ws_.text(out.text);
      boost::system::error_code ec;
      co_await ws_.async_write(asio::buffer(out.data),
                               asio::redirect_error(asio::use_awaitable, ec));
      queuedBytes_ -= out.data.size();
      drained_.notify();
      if (ec) {
        failed_ = true;
        break;
      }
      continue;
    }
    // Close requested and everything before it written.
    boost::system::error_code ec;
    co_await ws_.async_close(closeReason_, asio::redirect_error(asio::use_awaitable, ec));
    break;
  }
  queue_.clear();
  queuedBytes_ = 0;
  writerDone_ = true;
  drained_.notify();
}

asio::awaitable<void> WsChannel::waitForSpace(std::size_t highWater) {
  while (queuedBytes_ > highWater && !closing() && !writerDone_)
    co_await drained_.wait();
}

asio::awaitable<std::optional<WsChannel::Message>> WsChannel::read() {
  if (failed_) co_return std::nullopt;
  readBuffer_.clear();
  boost::system::error_code ec;
  co_await ws_.async_read(readBuffer_, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    // The peer closed (Beast has answered its close frame) or the connection broke.
    if (ec != websocket::error::closed) failed_ = true;
    if (!closeRequested_) closeRequested_ = true;
    wake_.notify();
    co_return std::nullopt;
  }
  Message m;
  m.text = ws_.got_text();
  m.data = beast::buffers_to_string(readBuffer_.data());
  readBuffer_.clear();
  co_return m;
}

asio::awaitable<void> WsChannel::finished() {
  while (writerStarted_ && !writerDone_)
    co_await drained_.wait();
}

std::string errorFrame(const Error& e) {
  return dumpJson(nlohmann::json{
      {"type", "error"}, {"code", std::string(errorName(e.code))}, {"message", e.message}});
}

}  // namespace agentpane::server
