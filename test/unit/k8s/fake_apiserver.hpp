// A scripted HTTP/1.1 server on 127.0.0.1 that, unlike net's FakeHttpServer, serves many
// requests per connection (keep-alive) and counts the connections it accepted: what the
// REST client's connection reuse, 401 retry and paging tests need.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "unit/net/fake_http_server.hpp"

namespace agentpane::testing {

// Returns true to keep the connection for the next request, false to close it.
using KeepAliveHandler = std::function<bool(const FakeRequest&, FakeConn&)>;

class FakeApiServer {
 public:
  explicit FakeApiServer(KeepAliveHandler handler)
      : handler_(std::move(handler)),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { acceptLoop(); });
  }

  ~FakeApiServer() {
    stopping_ = true;
    boost::system::error_code ec;
    {
      asio::ip::tcp::socket s(io_);
      s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    }
    thread_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_)
        s->shutdown(asio::socket_base::shutdown_both, ec);
    }
    for (auto& t : threads_)
      t.join();
  }

  [[nodiscard]] unsigned short port() const { return port_; }
  [[nodiscard]] int connections() const { return connections_.load(); }
  [[nodiscard]] std::vector<FakeRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Blocks until n requests have arrived (tests wait on events, not sleeps).
  void waitForRequests(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return requests_.size() >= n; });
  }

 private:
  void acceptLoop() {
    for (;;) {
      auto s = std::make_shared<asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*s, ec);
      if (stopping_ || ec) return;
      ++connections_;
      std::lock_guard lock(mu_);
      sockets_.push_back(s);
      threads_.emplace_back([this, s] { serve(*s); });
    }
  }

  void serve(asio::ip::tcp::socket& sock) {
    std::string buffer;
    char chunk[4096];
    fake_detail::SocketConn<asio::ip::tcp::socket> conn(sock);
    for (;;) {
      FakeRequest req;
      while (!parseFakeRequest(buffer, req)) {
        boost::system::error_code ec;
        std::size_t n = sock.read_some(asio::buffer(chunk), ec);
        if (ec) return;
        buffer.append(chunk, n);
      }
      // parseFakeRequest keeps what followed the request in req.extra: the next request.
      buffer = req.extra;
      req.extra.clear();
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req);
      }
      cv_.notify_all();
      if (!handler_(req, conn)) break;
    }
    boost::system::error_code ec;
    sock.shutdown(asio::socket_base::shutdown_both, ec);
  }

  KeepAliveHandler handler_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
  std::vector<FakeRequest> requests_;
};

}  // namespace agentpane::testing
