// A tiny HTTP and WebSocket client for server tests, on Boost.Beast. Calls look synchronous;
// underneath each one is an async operation with a deadline, so a broken server fails a
// test instead of hanging it.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace agentpane::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

inline constexpr std::chrono::seconds kIoDeadline{15};

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed or closed)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;                           // transport error, when status == 0

  [[nodiscard]] nlohmann::json json() const {
    return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  }
  // error.code of an error envelope ("" otherwise).
  [[nodiscard]] std::string code() const {
    auto j = json();
    if (j.is_object() && j.contains("error") && j["error"].is_object())
      return j["error"].value("code", "");
    return "";
  }
  [[nodiscard]] nlohmann::json data() const {
    auto j = json();
    return j.is_object() && j.contains("data") ? j["data"] : nlohmann::json();
  }
  [[nodiscard]] std::string header(const std::string& lowerName) const {
    auto it = headers.find(lowerName);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Runs the io_context until the started operation completes or the deadline passes.
inline bool runUntil(asio::io_context& ioc, bool& done,
                     std::chrono::steady_clock::duration limit = kIoDeadline) {
  ioc.restart();
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    if (ioc.run_one_for(std::chrono::milliseconds(50)) == 0 && ioc.stopped()) ioc.restart();
  }
  return done;
}

// One TCP connection speaking HTTP/1.1; several requests may share it (keep-alive).
class HttpConnection {
 public:
  explicit HttpConnection(std::uint16_t port) : port_(port), stream_(ioc_) {}

  bool connect() {
    bool done = false;
    beast::error_code result;
    stream_.expires_after(kIoDeadline);
    stream_.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_),
                          [&](beast::error_code ec) {
                            result = ec;
                            done = true;
                          });
    if (!runUntil(ioc_, done) || result) return false;
    connected_ = true;
    return true;
  }

  bool connected() const { return connected_; }

  // Sends raw bytes as they are (partial requests, lying Content-Length...).
  bool sendRaw(const std::string& bytes) {
    bool done = false;
    beast::error_code result;
    stream_.expires_after(kIoDeadline);
    asio::async_write(stream_, asio::buffer(bytes), [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    return runUntil(ioc_, done) && !result;
  }

  HttpResponse send(http::request<http::string_body> req) {
    HttpResponse out;
    if (!connected_ && !connect()) {
      out.error = "connect failed";
      return out;
    }
    req.prepare_payload();
    bool done = false;
    beast::error_code result;
    stream_.expires_after(kIoDeadline);
    http::async_write(stream_, req, [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    // A refused body may fail the write; the reply is still worth reading.
    runUntil(ioc_, done);
    return readResponse();
  }

  HttpResponse readResponse() {
    HttpResponse out;
    http::response_parser<http::string_body> parser;
    parser.body_limit(512u << 20);
    bool done = false;
    beast::error_code result;
    stream_.expires_after(kIoDeadline);
    http::async_read(stream_, buffer_, parser, [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!runUntil(ioc_, done)) {
      out.error = "timeout";
      return out;
    }
    if (result) {
      out.error = result.message();
      connected_ = false;
      return out;
    }
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) {
      auto name = lower(std::string(f.name_string()));
      auto& slot = out.headers[name];
      if (!slot.empty()) slot += ", ";
      slot += std::string(f.value());
    }
    if (!res.keep_alive()) connected_ = false;
    return out;
  }

  // True when the server closed the connection (a read returns EOF or reset).
  bool closedByPeer(std::chrono::steady_clock::duration limit = kIoDeadline) {
    char c;
    bool done = false;
    beast::error_code result;
    stream_.expires_after(limit);
    stream_.async_read_some(asio::buffer(&c, 1), [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    runUntil(ioc_, done, limit + std::chrono::seconds(1));
    return done && result && result != beast::error::timeout;
  }

 private:
  std::uint16_t port_;
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

class TestClient {
 public:
  TestClient(std::uint16_t port, std::string token) : port_(port), token_(std::move(token)) {}

  // Extra headers on every request (Cookie, Origin...). Host defaults to 127.0.0.1:port.
  std::vector<std::pair<std::string, std::string>> headers;
  bool sendToken = true;

  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string origin() const { return "http://" + host(); }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& token() const { return token_; }

  http::request<http::string_body> make(
      http::verb method, const std::string& target,
      const std::optional<std::string>& body = std::nullopt) const {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host());
    req.set(http::field::user_agent, "agentpane-test");
    if (sendToken && !token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    for (const auto& [k, v] : headers)
      req.set(k, v);
    if (body) {
      req.set(http::field::content_type, "application/json");
      req.body() = *body;
    }
    return req;
  }

  HttpResponse request(http::verb method, const std::string& target,
                       const std::optional<std::string>& body = std::nullopt) {
    HttpConnection c(port_);
    auto req = make(method, target, body);
    req.keep_alive(false);
    return c.send(std::move(req));
  }

  HttpResponse get(const std::string& target) { return request(http::verb::get, target); }
  HttpResponse del(const std::string& target) { return request(http::verb::delete_, target); }
  HttpResponse post(const std::string& target,
                    const nlohmann::json& body = nlohmann::json::object()) {
    return request(http::verb::post, target, body.dump());
  }
  HttpResponse patch(const std::string& target, const nlohmann::json& body) {
    return request(http::verb::patch, target, body.dump());
  }
  HttpResponse postRaw(const std::string& target, const std::string& body) {
    return request(http::verb::post, target, body);
  }

 private:
  std::uint16_t port_;
  std::string token_;
};

// A WebSocket client. Frames are read one at a time; close() does the close handshake.
class WsClient {
 public:
  struct Message {
    bool text = false;
    std::string data;
  };

  explicit WsClient(std::uint16_t port) : port_(port), ws_(ioc_) {}

  // Connects and upgrades. On refusal, upgradeResponse holds the server's HTTP reply.
  bool connect(const std::string& target,
               const std::vector<std::pair<std::string, std::string>>& headers) {
    bool done = false;
    beast::error_code result;
    auto& lowest = beast::get_lowest_layer(ws_);
    lowest.expires_after(kIoDeadline);
    lowest.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_),
                         [&](beast::error_code ec) {
                           result = ec;
                           done = true;
                         });
    if (!runUntil(ioc_, done) || result) return false;
    lowest.expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = kIoDeadline;
    t.idle_timeout = kIoDeadline;
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [k, v] : headers)
        req.set(k, v);
    }));
    done = false;
    ws_.async_handshake(upgradeResponse, "127.0.0.1:" + std::to_string(port_), target,
                        [&](beast::error_code ec) {
                          result = ec;
                          done = true;
                        });
    if (!runUntil(ioc_, done)) return false;
    return !result;
  }

  void sendText(const std::string& s) { write(true, s); }
  void sendBinary(const std::string& s) { write(false, s); }

  bool write(bool text, const std::string& s) {
    ws_.text(text);
    bool done = false;
    beast::error_code result;
    ws_.async_write(asio::buffer(s), [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    return runUntil(ioc_, done) && !result;
  }

  // The next message; nullopt when the connection closed (see closeCode()) or failed.
  std::optional<Message> read() {
    buffer_.clear();
    bool done = false;
    beast::error_code result;
    ws_.async_read(buffer_, [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!runUntil(ioc_, done)) return std::nullopt;
    if (result) {
      lastError = result;
      return std::nullopt;
    }
    Message m;
    m.text = ws_.got_text();
    m.data = beast::buffers_to_string(buffer_.data());
    return m;
  }

  // Reads until the server closes; returns what arrived.
  std::vector<Message> readAll() {
    std::vector<Message> out;
    while (auto m = read())
      out.push_back(std::move(*m));
    return out;
  }

  void close() {
    bool done = false;
    ws_.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
    runUntil(ioc_, done);
  }

  // Drops the TCP connection without a close frame.
  void drop() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  [[nodiscard]] int closeCode() const { return static_cast<int>(ws_.reason().code); }
  [[nodiscard]] bool closedNormally() const { return lastError == websocket::error::closed; }

  websocket::response_type upgradeResponse;
  beast::error_code lastError;

 private:
  std::uint16_t port_;
  asio::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

}  // namespace agentpane::testing
