// A small HTTP/1.1 client over Beast for unix sockets, TCP and TLS. It knows nothing of any
// particular API: the Docker and Kubernetes clients build requests on top of it.
//
// Bounds: every call has a deadline (connect to last byte) and a body limit; a streamed
// body (openStream) is bounded per read instead. By default one connection per call: the
// Docker engine is local, and a fresh connection keeps calls independent of each other.
// A client made with ClientOptions::keepAlive keeps finished connections open and reuses
// them (a remote apiserver over TLS: a warm call then costs one round trip, no handshake).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"
#include "net/byte_stream.hpp"
#include "net/endpoint.hpp"
#include "net/io_thread.hpp"

namespace boost::asio::ssl {
class context;
}

namespace agentpane::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query, already encoded
  Headers headers;           // Host, User-Agent and Content-Length are set for you
  std::string body;
  std::string contentType;  // sent when non-empty
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  // Case-insensitive header lookup (first match).
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

struct CallOptions {
  std::chrono::milliseconds timeout{30000};  // connect to last body byte
  // When > 0, connecting (resolve, TCP, TLS handshake) MUST finish within this much as
  // well; running out is a connect failure (details["net"] = "connect"), not a Timeout,
  // so that a dead server is told apart from a slow answer within seconds.
  std::chrono::milliseconds connectTimeout{0};
  std::size_t maxBodyBytes = 64u << 20;  // larger bodies fail with PayloadTooLarge
  std::size_t maxHeaderBytes = 64u << 10;
};

// A response whose body is read piece by piece (event streams, watches, logs).
// Thread-safety: next() from one thread; close() from any thread unblocks it.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // The next piece of the body (transfer decoding done), std::nullopt at its end.
  virtual Result<std::optional<std::string>> next(Deadline deadline = kNoDeadline) = 0;
  virtual void close() = 0;
};

struct UpgradeResult {
  HttpResponse response;               // the 101 header, or the whole error response
  std::unique_ptr<ByteStream> stream;  // set iff the server switched protocols (101)
};

struct StreamResult {
  HttpResponse response;             // header; the whole body too when status is not 2xx
  std::unique_ptr<BodyStream> body;  // set iff status is 2xx
};

struct ClientOptions {
  // Keep connections open after a complete response whose server allows it (HTTP/1.1
  // keep-alive) and reuse them for later request() calls. Only request() reuses; upgrade(),
  // openStream() and asyncRequest() always use a connection of their own.
  bool keepAlive = false;
  std::size_t maxIdle = 8;                       // idle connections kept; more are closed
  std::chrono::milliseconds idleTimeout{90000};  // an idle connection older than this is closed
};

namespace detail {
class ConnectionPool;
}

class HttpClient {
 public:
  // Fails only on bad TLS material (ValidationError).
  static Result<std::unique_ptr<HttpClient>> create(Endpoint endpoint, std::shared_ptr<IoThread> io,
                                                    ClientOptions options = {});
  ~HttpClient();

  [[nodiscard]] const Endpoint& endpoint() const { return endpoint_; }
  [[nodiscard]] const std::shared_ptr<IoThread>& io() const { return io_; }

  // Connections this client has opened so far (all kinds of call); for tests and benchmarks.
  [[nodiscard]] std::uint64_t connectionsOpened() const;

  // Blocking forms: MUST NOT be called from the I/O thread.
  // With keepAlive, a reused connection that turns out closed by the server (before any
  // byte of the response) is replaced by a fresh one and an idempotent request (GET, HEAD,
  // PUT, DELETE, OPTIONS) is sent again, once; other methods fail as they would anyway.
  Result<HttpResponse> request(const HttpRequest& req, const CallOptions& opts = {});
  // Sends req (add Connection: Upgrade and Upgrade: <proto> yourself); on 101 hands back
  // the raw connection, including any bytes the server sent right after its header. The
  // deadline covers only the exchange up to the 101.
  Result<UpgradeResult> upgrade(const HttpRequest& req, const CallOptions& opts = {});
  // Sends req and returns once the response header is in (within opts.timeout).
  Result<StreamResult> openStream(const HttpRequest& req, const CallOptions& opts = {});

  // Coroutine forms, for callers already on the loop. The connection lives on the awaiting
  // coroutine's executor, which MUST be a strand of io() (an upgraded stream keeps it).
  boost::asio::awaitable<Result<HttpResponse>> asyncRequest(HttpRequest req, CallOptions opts);
  boost::asio::awaitable<Result<UpgradeResult>> asyncUpgrade(HttpRequest req, CallOptions opts);

 private:
  HttpClient(Endpoint endpoint, std::shared_ptr<IoThread> io,
             std::shared_ptr<boost::asio::ssl::context> tls, ClientOptions options);
  Result<HttpResponse> pooledRequest(const HttpRequest& req, const CallOptions& opts);

  Endpoint endpoint_;
  std::shared_ptr<IoThread> io_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::unique_ptr<detail::ConnectionPool> pool_;  // null without keepAlive
  std::shared_ptr<std::atomic<std::uint64_t>> opened_;
};

}  // namespace agentpane::net
