#include "cli/api_client.hpp"

#include "net/endpoint.hpp"
#include "net/http_client.hpp"
#include "net/url.hpp"

#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

namespace agentpane::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr auto kCallTimeout =
    std::chrono::milliseconds(std::chrono::minutes(10));  // creates can pull and start
constexpr std::size_t kMaxResponse = 512u << 20;

Error unreachable(const ServerEndpoint& ep, const std::string& why) {
  return {ErrorCode::ServerUnreachable,
          "cannot reach the agentpane server at " + ep.url() + " (" + why +
              "); start it with `agentpane serve` or set AGENTPANE_URL"};
}

Error errorFromEnvelope(int status, const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    Error err(errorFromName(e.value("code", "INTERNAL_ERROR")), e.value("message", ""));
    if (e.contains("details") && e["details"].is_object()) {
      for (auto& [k, v] : e["details"].items()) {
        err.details[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    return err;
  }
  return {ErrorCode::Internal,
          "server answered HTTP " + std::to_string(status) + " without an error envelope"};
}

}  // namespace

Result<ServerEndpoint> parseServerUrl(const std::string& url) {
  auto parsed = net::parseUrl(url);
  if (parsed.ok() && parsed->scheme == "https") {
    return Error(ErrorCode::ValidationError,
                 "AGENTPANE_URL: https is not supported by the CLI yet; use http:// on loopback");
  }
  if (!parsed.ok() || parsed->scheme != "http") {
    return Error(ErrorCode::ValidationError,
                 "AGENTPANE_URL must look like http://HOST:PORT, got '" + url + "'");
  }
  auto ep = net::parseEndpoint(url, 80);
  if (!ep.ok()) return Error(ErrorCode::ValidationError, "AGENTPANE_URL: " + ep.error().message);
  return ServerEndpoint{ep->host, std::to_string(ep->port)};
}

std::string defaultHome() {
  if (const char* h = std::getenv("AGENTPANE_HOME"); h && *h) return h;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.agentpane";
}

Result<std::string> discoverToken(const std::string& home) {
  if (const char* t = std::getenv("AGENTPANE_TOKEN"); t && *t) return std::string(t);
  std::ifstream in(home + "/token");
  if (!in) {
    return Error(ErrorCode::Unauthorized,
                 "no token: set AGENTPANE_TOKEN or AGENTPANE_HOME (looked for " + home +
                     "/token, which `agentpane serve` creates at first start)");
  }
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty())
    return Error(ErrorCode::Unauthorized, "token file " + home + "/token is empty");
  return token;
}

Result<ApiClient> ApiClient::fromEnvironment() {
  const char* url = std::getenv("AGENTPANE_URL");
  auto ep = parseServerUrl(url && *url ? url : "http://127.0.0.1:7300");
  if (!ep.ok()) return ep.takeError();
  auto token = discoverToken(defaultHome());
  if (!token.ok()) return token.takeError();
  return ApiClient(ep.value(), token.value());
}

Result<std::unique_ptr<net::HttpClient>> ApiClient::http() const {
  std::uint16_t port = 0;
  try {
    port = static_cast<std::uint16_t>(std::stoul(endpoint_.port));
  } catch (const std::exception&) {
    return Error(ErrorCode::ValidationError, "bad server port '" + endpoint_.port + "'");
  }
  return net::HttpClient::create(net::Endpoint::tcp(endpoint_.host, port), net::IoThread::create());
}

Error ApiClient::callFailed(Error e) const {
  if (e.code == ErrorCode::Timeout)
    return Error(ErrorCode::Timeout, "the server did not answer in time");
  if (e.code == ErrorCode::ServerUnreachable) return unreachable(endpoint_, e.message);
  return e;
}

Result<json> ApiClient::call(const std::string& method, const std::string& target,
                             const std::optional<json>& body) const {
  auto http = this->http();
  if (!http.ok()) return http.takeError();
  net::HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers = {{"Authorization", "Bearer " + token_}, {"User-Agent", "agentpane-cli"}};
  if (body) {
    req.contentType = "application/json";
    req.body = body->dump();
  }
  net::CallOptions opts;
  opts.timeout = kCallTimeout;
  opts.maxBodyBytes = kMaxResponse;
  auto res = http.value()->request(req, opts);
  if (!res.ok()) return callFailed(res.takeError());
  auto j = json::parse(res->body, nullptr, false);
  if (res->status >= 400 || !j.is_object() || !j.value("ok", false))
    return errorFromEnvelope(res->status, res->body);
  return j.contains("data") ? j["data"] : json(nullptr);
}

Result<json> ApiClient::callStreamed(const std::string& method, const std::string& target,
                                     const json& body,
                                     const std::function<void(const json&)>& onProgress) const {
  auto http = this->http();
  if (!http.ok()) return http.takeError();
  net::HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers = {{"Authorization", "Bearer " + token_},
                 {"User-Agent", "agentpane-cli"},
                 {"Accept", "application/x-ndjson"}};
  req.contentType = "application/json";
  req.body = body.dump();
  net::CallOptions opts;
  opts.timeout = std::chrono::seconds(30);  // up to the response header
  opts.maxBodyBytes = kMaxResponse;
  auto res = http.value()->openStream(req, opts);
  if (!res.ok()) return callFailed(res.takeError());
  if (!res->body) return errorFromEnvelope(res->response.status, res->response.body);
  const bool lines =
      res->response.header("Content-Type").value_or("").find("application/x-ndjson") == 0;
  std::string buffer;
  const auto deadline = net::Clock::now() + kCallTimeout;
  for (;;) {
    auto piece = res->body->next(deadline);
    if (!piece.ok()) {
      if (piece.error().code == ErrorCode::Timeout)
        return Error(ErrorCode::Timeout, "the server did not finish in time");
      return piece.takeError();
    }
    if (!*piece) break;
    buffer += **piece;
    if (buffer.size() > kMaxResponse)
      return Error(ErrorCode::PayloadTooLarge, "the server's answer is too large");
    if (!lines) continue;
    for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
      auto j = json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (!j.is_object()) continue;
      if (j.value("type", "") == "progress") {
        if (onProgress) onProgress(j);
        continue;
      }
      if (j.value("type", "") != "result") continue;
      const int status = j.value("status", 200);
      if (status >= 400 || !j.value("ok", false)) return errorFromEnvelope(status, j.dump());
      return j.contains("data") ? j["data"] : json(nullptr);
    }
  }
  if (lines) {
    return Error(ErrorCode::ServerUnreachable,
                 "the server's answer ended before the outcome (did it stop?)");
  }
  auto j = json::parse(buffer, nullptr, false);
  if (res->response.status >= 400 || !j.is_object() || !j.value("ok", false))
    return errorFromEnvelope(res->response.status, buffer);
  return j.contains("data") ? j["data"] : json(nullptr);
}

namespace {

// One exec over WebSocket, driven on one io_context thread; stdin is read on its own
// thread and handed over by post(), so that one write is in flight at a time.
class ExecStreamSession : public std::enable_shared_from_this<ExecStreamSession> {
 public:
  ExecStreamSession(const ServerEndpoint& ep, std::string token, const ExecStreamRequest& req)
      : ep_(ep), token_(std::move(token)), req_(req), ws_(ioc_) {}

  Result<int> run() {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(ep_.host, ep_.port, ec);
    if (ec) return unreachable(ep_, ec.message());
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(5));
    beast::get_lowest_layer(ws_).connect(results, ec);
    if (ec) return unreachable(ep_, ec.message());
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(
        websocket::stream_base::timeout{std::chrono::seconds(30), std::chrono::seconds(60), true});
    ws_.set_option(websocket::stream_base::decorator([this](websocket::request_type& r) {
      r.set(http::field::authorization, "Bearer " + token_);
      r.set(http::field::user_agent, "agentpane-cli");
    }));
    websocket::response_type upgradeRes;
    // The asynchronous handshake: Boost 1.74's blocking one drops the response of a refused
    // upgrade, and with it the server's error (a 429 at the stream bound would read as
    // "cannot reach the server").
    // Run only until it completes: a refused handshake leaves its timer armed.
    bool handshaken = false;
    ws_.async_handshake(upgradeRes, ep_.host + ":" + ep_.port,
                        "/api/sandboxes/" + net::percentEncode(req_.sandboxId) + "/exec/stream",
                        [&](const beast::error_code& e) {
                          ec = e;
                          handshaken = true;
                        });
    while (!handshaken && ioc_.run_one() > 0) {
    }
    ioc_.restart();
    if (ec) {
      if (upgradeRes.result_int() >= 400) {
        return errorFromEnvelope(static_cast<int>(upgradeRes.result_int()), upgradeRes.body());
      }
      return unreachable(ep_, ec.message());
    }
    json start = {{"argv", req_.argv}, {"root", req_.root}};
    if (req_.timeoutSeconds > 0) start["timeoutSeconds"] = req_.timeoutSeconds;
    ws_.text(true);
    ws_.write(asio::buffer(start.dump()), ec);
    if (ec) return unreachable(ep_, ec.message());

    if (req_.forwardStdin) {
      stdinThread_ = std::thread([self = shared_from_this()] { self->pumpStdin(); });
    } else {
      enqueue(Outgoing{true, json{{"type", "eof"}}.dump()});
    }
    doRead();
    ioc_.run();
    if (stdinThread_.joinable()) {
      // The process may end before our stdin does; the reader thread is blocked in read(2)
      // on a terminal or pipe we do not own. It holds a reference to this session, so it
      // stays valid until the CLI exits.
      stdinThread_.detach();
    }
    if (error_) return *error_;
    if (!exitCode_)
      return Error(ErrorCode::SandboxExecFailed, "the exec stream ended without an exit code");
    return *exitCode_;
  }

 private:
  struct Outgoing {
    bool text;
    std::string data;
  };

  void pumpStdin() {
    std::vector<char> buf(64 * 1024);
    for (;;) {
      ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
      if (n > 0) {
        enqueue(Outgoing{false, std::string(buf.data(), static_cast<std::size_t>(n))});
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    enqueue(Outgoing{true, json{{"type", "eof"}}.dump()});
  }

  void enqueue(Outgoing o) {
    asio::post(ioc_, [this, o = std::move(o)]() mutable {
      if (done_) return;
      queue_.push_back(std::move(o));
      if (queue_.size() == 1) doWrite();
    });
  }

  void doWrite() {
    auto& front = queue_.front();
    ws_.text(front.text);
    ws_.async_write(asio::buffer(front.data), [this](beast::error_code ec, std::size_t) {
      if (ec) return;  // the read side reports what went wrong
      queue_.pop_front();
      if (!queue_.empty() && !done_) doWrite();
    });
  }

  void doRead() {
    ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) {
      if (ec) {
        done_ = true;
        if (ec != websocket::error::closed && !exitCode_ && !error_) {
          error_ = Error(ErrorCode::SandboxExecFailed, "exec stream broke: " + ec.message());
        }
        return;
      }
      handleMessage();
      buffer_.consume(buffer_.size());
      doRead();
    });
  }

  void handleMessage() {
    auto data = buffer_.data();
    const char* p = static_cast<const char*>(data.data());
    std::size_t n = data.size();
    if (!ws_.got_text()) {
      if (n == 0) return;
      FILE* out = p[0] == 2 ? stderr : stdout;
      if (n > 1) std::fwrite(p + 1, 1, n - 1, out);
      std::fflush(out);
      return;
    }
    auto j = json::parse(std::string_view(p, n), nullptr, false);
    if (!j.is_object()) return;
    auto type = j.value("type", "");
    if (type == "exit") {
      exitCode_ = j.value("exitCode", 1);
    } else if (type == "error") {
      error_ = Error(errorFromName(j.value("code", "INTERNAL_ERROR")), j.value("message", ""));
    }
  }

  ServerEndpoint ep_;
  std::string token_;
  ExecStreamRequest req_;
  asio::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<Outgoing> queue_;
  std::thread stdinThread_;
  bool done_ = false;
  std::optional<int> exitCode_;
  std::optional<Error> error_;
};

}  // namespace

Result<int> ApiClient::execStream(const ExecStreamRequest& req) const {
  auto session = std::make_shared<ExecStreamSession>(endpoint_, token_, req);
  return session->run();
}

}  // namespace agentpane::cli
