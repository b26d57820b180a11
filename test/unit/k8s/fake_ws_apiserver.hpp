// A scripted stand-in for the apiserver's exec endpoint, for hermetic unit tests of the
// WebSocket exec session: plain TCP on 127.0.0.1 port 0, one thread per connection. The
// test's handler gets the HTTP upgrade request and either refuses it (any status + body) or
// accepts it with the subprotocol it picks, then plays the server side of the channels.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace agentpane::k8s::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

using Request = http::request<http::string_body>;
using Ws = websocket::stream<tcp::socket>;

// The server side of one connection.
class FakeExchange {
 public:
  FakeExchange(tcp::socket s, Request req) : sock_(std::move(s)), req_(std::move(req)) {}
  [[nodiscard]] const Request& request() const { return req_; }
  [[nodiscard]] std::string offered() const {
    return std::string(req_[http::field::sec_websocket_protocol]);
  }

  void refuse(http::status status, const std::string& body) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = body;
    res.prepare_payload();
    beast::error_code ec;
    http::write(sock_, res, ec);
    sock_.shutdown(tcp::socket::shutdown_both, ec);
  }

  // Accepts the upgrade choosing `protocol` ("" chooses none).
  Ws& accept(const std::string& protocol) {
    ws_ = std::make_unique<Ws>(std::move(sock_));
    ws_->set_option(websocket::stream_base::decorator([protocol](websocket::response_type& r) {
      if (!protocol.empty()) r.set(http::field::sec_websocket_protocol, protocol);
    }));
    ws_->accept(req_);
    ws_->binary(true);
    return *ws_;
  }

  void send(std::uint8_t channel, const std::string& payload) {
    std::string m(1, static_cast<char>(channel));
    m += payload;
    ws_->write(asio::buffer(m));
  }
  // The next message from the client ("" on error/close).
  std::string receive() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws_->read(b, ec);
    if (ec) return {};
    return beast::buffers_to_string(b.data());
  }
  void close() {
    beast::error_code ec;
    ws_->close(websocket::close_code::normal, ec);
    // Drain until the client's close reply.
    beast::flat_buffer b;
    while (!ec)
      ws_->read(b, ec);
  }

 private:
  tcp::socket sock_;
  Request req_;
  std::unique_ptr<Ws> ws_;
};

using ExchangeHandler = std::function<void(FakeExchange&)>;

class FakeWsApiserver {
 public:
  explicit FakeWsApiserver(ExchangeHandler handler)
      : handler_(std::move(handler)),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    acceptThread_ = std::thread([this] { acceptLoop(); });
  }
  ~FakeWsApiserver() {
    stopping_ = true;
    beast::error_code ec;
    // Wake accept() with a connection of our own.
    tcp::socket s(ioc_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    acceptThread_.join();
    std::lock_guard lock(mu_);
    for (auto& t : connThreads_)
      t.join();
  }
  [[nodiscard]] unsigned short port() const { return port_; }
  [[nodiscard]] std::vector<std::string> targets() const {
    std::lock_guard lock(mu_);
    return targets_;
  }

 private:
  void acceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (stopping_ || ec) return;
      std::lock_guard lock(mu_);
      connThreads_.emplace_back([this, s = std::move(s)]() mutable {
        beast::flat_buffer b;
        Request req;
        beast::error_code rec;
        http::read(s, b, req, rec);
        if (rec) return;
        {
          std::lock_guard l(mu_);
          targets_.emplace_back(req.target());
        }
        FakeExchange ex(std::move(s), std::move(req));
        try {
          handler_(ex);
        } catch (const std::exception&) {  // the client went away mid-script
        }
      });
    }
  }

  ExchangeHandler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptThread_;
  mutable std::mutex mu_;
  std::vector<std::thread> connThreads_;
  std::vector<std::string> targets_;
};

}  // namespace agentpane::k8s::testing
