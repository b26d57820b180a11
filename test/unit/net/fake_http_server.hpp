// A scripted HTTP server for hermetic client tests: listens on a unix socket in a temp dir
// (or on 127.0.0.1 port 0), reads one request per connection and hands the raw socket to
// the test's handler, which writes whatever bytes the case needs (101 + raw stream, a body
// too large, nothing at all...). Shared by the net and docker unit tests.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>
#include <algorithm>
#include <cctype>

namespace agentpane::testing {

namespace asio = boost::asio;

struct FakeRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string extra;  // bytes that arrived after the request (raw protocol data)
};

// A connected socket, whichever kind, with blocking helpers.
class FakeConn {
 public:
  virtual ~FakeConn() = default;
  virtual void write(const std::string& bytes) = 0;
  // Reads up to n bytes; "" at EOF or error.
  virtual std::string readSome(std::size_t n = 65536) = 0;
  virtual void shutdownSend() = 0;
};

using FakeHandler = std::function<void(const FakeRequest&, FakeConn&)>;

class FakeHttpServer {
 public:
  enum class Kind { Unix, Tcp };
  explicit FakeHttpServer(FakeHandler handler, Kind kind = Kind::Unix);
  ~FakeHttpServer();

  [[nodiscard]] const std::string& socketPath() const { return path_; }
  [[nodiscard]] unsigned short port() const { return port_; }
  [[nodiscard]] std::vector<FakeRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

  static std::string response(int status, const std::string& body,
                              const std::string& extraHeaders = "") {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nContent-Type: application/json\r\n" + extraHeaders + "\r\n" + body;
  }

 private:
  template <typename Socket>
  void serve(Socket sock);
  void acceptLoop();

  FakeHandler handler_;
  Kind kind_;
  asio::io_context io_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unixAcceptor_;
  std::unique_ptr<asio::ip::tcp::acceptor> tcpAcceptor_;
  std::string dir_;
  std::string path_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::vector<std::thread> connThreads_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<FakeRequest> requests_;
};

// ---- implementation (header-only so that every test binary can use it) ----

namespace fake_detail {

template <typename Socket>
class SocketConn final : public FakeConn {
 public:
  explicit SocketConn(Socket& s) : s_(s) {}
  void write(const std::string& bytes) override {
    boost::system::error_code ec;
    asio::write(s_, asio::buffer(bytes), ec);
  }
  std::string readSome(std::size_t n) override {
    std::string buf(n, '\0');
    boost::system::error_code ec;
    std::size_t got = s_.read_some(asio::buffer(buf), ec);
    if (ec) return {};
    buf.resize(got);
    return buf;
  }
  void shutdownSend() override {
    boost::system::error_code ec;
    s_.shutdown(asio::socket_base::shutdown_send, ec);
  }

 private:
  Socket& s_;
};

}  // namespace fake_detail

inline bool parseFakeRequest(std::string& buffer, FakeRequest& out) {
  auto end = buffer.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string head = buffer.substr(0, end);
  FakeRequest r;
  auto lineEnd = head.find("\r\n");
  std::string first = head.substr(0, lineEnd);
  auto sp1 = first.find(' ');
  auto sp2 = first.find(' ', sp1 + 1);
  r.method = first.substr(0, sp1);
  r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  std::size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string k = line.substr(0, colon);
      std::transform(k.begin(), k.end(), k.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ')
        v.erase(0, 1);
      r.headers[k] = v;
    }
    pos = e + 2;
  }
  std::size_t len = 0;
  if (auto it = r.headers.find("content-length"); it != r.headers.end())
    len = std::stoul(it->second);
  if (buffer.size() < end + 4 + len) return false;
  r.body = buffer.substr(end + 4, len);
  r.extra = buffer.substr(end + 4 + len);
  buffer.clear();
  out = std::move(r);
  return true;
}

inline FakeHttpServer::FakeHttpServer(FakeHandler handler, Kind kind)
    : handler_(std::move(handler)), kind_(kind) {
  if (kind_ == Kind::Unix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-fake-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    path_ = dir_ + "/engine.sock";
    unixAcceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(path_));
  } else {
    tcpAcceptor_ = std::make_unique<asio::ip::tcp::acceptor>(
        io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port_ = tcpAcceptor_->local_endpoint().port();
  }
  thread_ = std::thread([this] { acceptLoop(); });
}

inline FakeHttpServer::~FakeHttpServer() {
  stopping_ = true;
  boost::system::error_code ec;
  // Wake the blocking accept with a connection of our own.
  if (kind_ == Kind::Unix) {
    asio::local::stream_protocol::socket s(io_);
    s.connect(asio::local::stream_protocol::endpoint(path_), ec);
  } else {
    asio::ip::tcp::socket s(io_);
    s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
  }
  thread_.join();
  for (auto& t : connThreads_)
    t.join();
  std::error_code fsEc;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, fsEc);
}

inline void FakeHttpServer::acceptLoop() {
  for (;;) {
    boost::system::error_code ec;
    if (kind_ == Kind::Unix) {
      asio::local::stream_protocol::socket s(io_);
      unixAcceptor_->accept(s, ec);
      if (stopping_ || ec) return;
      connThreads_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    } else {
      asio::ip::tcp::socket s(io_);
      tcpAcceptor_->accept(s, ec);
      if (stopping_ || ec) return;
      connThreads_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    }
  }
}

template <typename Socket>
void FakeHttpServer::serve(Socket sock) {
  std::string buffer;
  FakeRequest req;
  char chunk[4096];
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = sock.read_some(asio::buffer(chunk), ec);
    if (ec) return;
    buffer.append(chunk, n);
    if (parseFakeRequest(buffer, req)) break;
  }
  {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
  }
  fake_detail::SocketConn<Socket> conn(sock);
  handler_(req, conn);
  boost::system::error_code ec;
  sock.shutdown(asio::socket_base::shutdown_both, ec);
  sock.close(ec);
}

}  // namespace agentpane::testing
