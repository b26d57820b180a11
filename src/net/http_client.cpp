#include "net/http_client.hpp"

#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <limits>

#include "net/detail/connection.hpp"
#include "net/detail/streams.hpp"
#include "net/errors.hpp"

namespace agentpane::net {

namespace http = boost::beast::http;
using namespace detail;  // NOLINT(google-build-using-namespace): internal helpers of this library
using asio::redirect_error;
using asio::use_awaitable;

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  auto eq = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  for (const auto& [k, v] : headers) {
    if (eq(k, name)) return v;
  }
  return std::nullopt;
}

namespace {

http::request<http::string_body> toBeast(const HttpRequest& req, const Endpoint& ep) {
  http::request<http::string_body> r;
  auto verb = http::string_to_verb(req.method);
  if (verb == http::verb::unknown)
    r.method_string(req.method);
  else
    r.method(verb);
  r.target(req.target);
  r.version(11);
  r.set(http::field::host, ep.hostHeader());
  r.set(http::field::user_agent, "agentpane/0.1");
  for (const auto& [k, v] : req.headers)
    r.set(k, v);
  if (!req.contentType.empty()) r.set(http::field::content_type, req.contentType);
  r.body() = req.body;
  r.prepare_payload();
  return r;
}

template <typename Body>
HttpResponse fromHeader(const http::response_parser<Body>& p) {
  HttpResponse out;
  out.status = static_cast<int>(p.get().result_int());
  for (const auto& f : p.get())
    out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return out;
}

std::string describe(const HttpRequest& req, const Endpoint& ep) {
  return req.method + " " + ep.describe() + req.target;
}

Error tooLarge(const std::string& what, const CallOptions& opts);

Error readError(const error_code& ec, const std::string& what, const CallOptions& opts) {
  if (ec == http::error::body_limit) return tooLarge(what, opts);
  if (ec == http::error::header_limit)
    return netError(kTooLarge, what + ": response header too large");
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return netError(kIo, what + ": connection closed before the response was complete");
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return netError(kProtocol, what + ": malformed response: " + ec.message());
  }
  return ioError(ec, what);
}

template <typename S>
asio::awaitable<error_code> writeMessage(S& s, http::request<http::string_body>& r) {
  error_code ec;
  co_await http::async_write(s, r, redirect_error(use_awaitable, ec));
  co_return ec;
}

template <typename S, typename Parser>
asio::awaitable<error_code> readHeader(S& s, beast::flat_buffer& b, Parser& p) {
  error_code ec;
  co_await http::async_read_header(s, b, p, redirect_error(use_awaitable, ec));
  co_return ec;
}

template <typename S, typename Parser>
asio::awaitable<error_code> readRest(S& s, beast::flat_buffer& b, Parser& p) {
  error_code ec;
  co_await http::async_read(s, b, p, redirect_error(use_awaitable, ec));
  co_return ec;
}

// Beast 1.74 does not apply body_limit to a Content-Length body (it does to chunked and
// read-to-EOF bodies): check the declared length ourselves once the header is in.
template <typename Parser>
bool declaredTooLarge(const Parser& p, const CallOptions& opts) {
  auto len = p.content_length();
  return len && *len > opts.maxBodyBytes;
}

Error tooLarge(const std::string& what, const CallOptions& opts) {
  return netError(kTooLarge,
                  what + ": response body exceeds " + std::to_string(opts.maxBodyBytes) + " bytes");
}

// Connects (within the connect bound, when there is one) and counts the connection.
asio::awaitable<Result<std::unique_ptr<Connection>>> open(const Endpoint& ep, ssl::context* tls,
                                                          Deadline deadline,
                                                          const CallOptions& opts,
                                                          std::atomic<std::uint64_t>* opened) {
  auto ex = co_await asio::this_coro::executor;
  Deadline connectBy = deadline;
  if (opts.connectTimeout.count() > 0)
    connectBy = std::min(deadline, Clock::now() + opts.connectTimeout);
  auto conn = co_await connect(ex, ep, tls, connectBy);
  if (!conn.ok()) {
    // Out of connect time but not of call time: the server is not there (or not answering).
    if (connectBy < deadline && netKind(conn.error()) == kTimeout) {
      co_return netError(kConnect, "cannot connect to " + ep.describe() + ": no answer within " +
                                       std::to_string(opts.connectTimeout.count()) + " ms");
    }
    co_return conn.takeError();
  }
  if (opened != nullptr) ++*opened;
  co_return conn;
}

asio::awaitable<error_code> sendOn(Connection& c, const HttpRequest& req, const Endpoint& ep,
                                   Deadline deadline) {
  auto beastReq = toBeast(req, ep);
  setDeadline(c.stream, deadline);
  co_return co_await std::visit([&](auto& s) { return writeMessage(s, beastReq); }, c.stream);
}

// Connects and sends; the connection comes back ready for the response.
asio::awaitable<Result<std::unique_ptr<Connection>>> send(const HttpRequest& req,
                                                          const Endpoint& ep, ssl::context* tls,
                                                          Deadline deadline,
                                                          const CallOptions& opts,
                                                          std::atomic<std::uint64_t>* opened) {
  auto conn = co_await open(ep, tls, deadline, opts, opened);
  if (!conn.ok()) co_return conn.takeError();
  error_code ec = co_await sendOn(*conn.value(), req, ep, deadline);
  if (ec) co_return ioError(ec, describe(req, ep) + ": sending request");
  co_return conn;
}

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

// The outcome of one exchange on a pooled connection.
struct PooledExchange {
  std::optional<HttpResponse> response;  // set on success
  std::optional<Error> error;            // set on failure
  bool staleReuse = false;               // a reused connection failed before any response byte
  std::unique_ptr<Connection> keep;      // the connection, when it may carry another request
};

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::create(Endpoint endpoint,
                                                       std::shared_ptr<IoThread> io,
                                                       ClientOptions options) {
  std::shared_ptr<ssl::context> tls;
  if (endpoint.kind == Endpoint::Kind::Tls) {
    auto ctx = makeTlsContext(endpoint.tls);
    if (!ctx.ok()) return ctx.takeError();
    tls = std::move(ctx.value());
  }
  return std::unique_ptr<HttpClient>(
      new HttpClient(std::move(endpoint), std::move(io), std::move(tls), options));
}

HttpClient::HttpClient(Endpoint endpoint, std::shared_ptr<IoThread> io,
                       std::shared_ptr<ssl::context> tls, ClientOptions options)
    : endpoint_(std::move(endpoint)),
      io_(std::move(io)),
      tls_(std::move(tls)),
      opened_(std::make_shared<std::atomic<std::uint64_t>>(0)) {
  if (options.keepAlive)
    pool_ = std::make_unique<ConnectionPool>(options.maxIdle, options.idleTimeout);
}

HttpClient::~HttpClient() = default;

std::uint64_t HttpClient::connectionsOpened() const {
  return opened_->load();
}

asio::awaitable<Result<HttpResponse>> HttpClient::asyncRequest(HttpRequest req, CallOptions opts) {
  const Deadline deadline = Clock::now() + opts.timeout;
  const std::string what = describe(req, endpoint_);
  auto conn = co_await send(req, endpoint_, tls_.get(), deadline, opts, opened_.get());
  if (!conn.ok()) co_return conn.takeError();
  auto& c = *conn.value();
  http::response_parser<http::string_body> p;
  p.body_limit(opts.maxBodyBytes);
  p.header_limit(static_cast<std::uint32_t>(opts.maxHeaderBytes));
  if (req.method == "HEAD") p.skip(true);
  error_code ec =
      co_await std::visit([&](auto& s) { return readHeader(s, c.buffer, p); }, c.stream);
  if (!ec && declaredTooLarge(p, opts)) {
    closeNow(c.stream);
    co_return tooLarge(what, opts);
  }
  if (!ec && !p.is_done())
    ec = co_await std::visit([&](auto& s) { return readRest(s, c.buffer, p); }, c.stream);
  closeNow(c.stream);
  if (ec) co_return readError(ec, what, opts);
  HttpResponse out = fromHeader(p);
  out.body = std::move(p.get().body());
  co_return out;
}

Result<HttpResponse> HttpClient::request(const HttpRequest& req, const CallOptions& opts) {
  if (pool_) return pooledRequest(req, opts);
  return blockOn<HttpResponse>(*io_, io_->makeStrand(),
                               [this, req, opts]() { return asyncRequest(req, opts); });
}

Result<HttpResponse> HttpClient::pooledRequest(const HttpRequest& req, const CallOptions& opts) {
  const Deadline deadline = Clock::now() + opts.timeout;
  const std::string what = describe(req, endpoint_);
  for (int attempt = 0;; ++attempt) {
    // A connection is used on the strand it was made on; a new one gets a new strand.
    auto idle = std::make_shared<std::optional<IdleConnection>>(pool_->take());
    Executor ex = *idle ? (*idle)->ex : Executor(io_->makeStrand());
    auto done = blockOn<PooledExchange>(
        *io_, ex,
        [this, idle, req, opts, deadline, what]() -> asio::awaitable<Result<PooledExchange>> {
          PooledExchange out;
          std::unique_ptr<Connection> conn;
          bool reused = false;
          if (*idle && idleConnectionUsable(*(*idle)->conn)) {
            conn = std::move((*idle)->conn);
            reused = true;
          }
          idle->reset();  // a stale one is closed here, on its strand
          if (!conn) {
            auto fresh = co_await open(endpoint_, tls_.get(), deadline, opts, opened_.get());
            if (!fresh.ok()) {
              out.error = fresh.takeError();
              co_return out;
            }
            conn = std::move(fresh.value());
          }
          auto& c = *conn;
          error_code ec = co_await sendOn(c, req, endpoint_, deadline);
          if (ec) {
            closeNow(c.stream);
            out.staleReuse = reused && ec != beast::error::timeout;
            out.error = ioError(ec, what + ": sending request");
            co_return out;
          }
          http::response_parser<http::string_body> p;
          p.body_limit(opts.maxBodyBytes);
          p.header_limit(static_cast<std::uint32_t>(opts.maxHeaderBytes));
          if (req.method == "HEAD") p.skip(true);
          ec = co_await std::visit([&](auto& s) { return readHeader(s, c.buffer, p); }, c.stream);
          if (ec) {
            closeNow(c.stream);
            // Closed before a single byte of the answer: the server dropped the idle
            // connection as we reused it.
            out.staleReuse =
                reused &&
                (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                 ec == asio::error::eof || ec == ssl::error::stream_truncated);
            out.error = readError(ec, what, opts);
            co_return out;
          }
          if (declaredTooLarge(p, opts)) {
            closeNow(c.stream);
            out.error = tooLarge(what, opts);
            co_return out;
          }
          if (!p.is_done())
            ec = co_await std::visit([&](auto& s) { return readRest(s, c.buffer, p); }, c.stream);
          if (ec) {
            closeNow(c.stream);
            out.error = readError(ec, what, opts);
            co_return out;
          }
          HttpResponse resp = fromHeader(p);
          if (p.get().keep_alive() && !p.need_eof() && c.buffer.size() == 0) {
            setDeadline(c.stream, kNoDeadline);
            out.keep = std::move(conn);
          } else {
            closeNow(c.stream);
          }
          resp.body = std::move(p.get().body());
          out.response = std::move(resp);
          co_return out;
        });
    if (!done.ok()) return done.takeError();
    auto& ex2 = done.value();
    if (ex2.keep) pool_->put(IdleConnection{std::move(ex2.keep), ex, Clock::now()});
    if (ex2.response) return std::move(*ex2.response);
    if (ex2.staleReuse && attempt == 0 && idempotent(req.method) && Clock::now() < deadline)
      continue;
    return std::move(*ex2.error);
  }
}

Result<UpgradeResult> HttpClient::upgrade(const HttpRequest& req, const CallOptions& opts) {
  return blockOn<UpgradeResult>(*io_, io_->makeStrand(),
                                [this, req, opts]() { return asyncUpgrade(req, opts); });
}

asio::awaitable<Result<UpgradeResult>> HttpClient::asyncUpgrade(HttpRequest req, CallOptions opts) {
  const Deadline deadline = Clock::now() + opts.timeout;
  const std::string what = describe(req, endpoint_);
  auto conn = co_await send(req, endpoint_, tls_.get(), deadline, opts, opened_.get());
  if (!conn.ok()) co_return conn.takeError();
  auto& c = *conn.value();
  http::response_parser<http::string_body> p;
  p.body_limit(opts.maxBodyBytes);
  p.header_limit(static_cast<std::uint32_t>(opts.maxHeaderBytes));
  error_code ec =
      co_await std::visit([&](auto& s) { return readHeader(s, c.buffer, p); }, c.stream);
  if (ec) {
    closeNow(c.stream);
    co_return readError(ec, what, opts);
  }
  UpgradeResult out;
  out.response = fromHeader(p);
  if (out.response.status == 101) {
    // Whatever followed the header in the same read belongs to the new protocol.
    std::string leftover = beast::buffers_to_string(c.buffer.data());
    c.buffer.consume(c.buffer.size());
    auto ex = co_await asio::this_coro::executor;
    out.stream =
        std::make_unique<UpgradedStream>(io_, ex, std::move(conn.value()), std::move(leftover));
    co_return out;
  }
  if (declaredTooLarge(p, opts)) {
    closeNow(c.stream);
    co_return tooLarge(what, opts);
  }
  if (!p.is_done())
    ec = co_await std::visit([&](auto& s) { return readRest(s, c.buffer, p); }, c.stream);
  closeNow(c.stream);
  if (ec) co_return readError(ec, what, opts);
  out.response.body = std::move(p.get().body());
  co_return out;
}

Result<StreamResult> HttpClient::openStream(const HttpRequest& req, const CallOptions& opts) {
  auto io = io_;
  return blockOn<StreamResult>(
      *io_, io_->makeStrand(), [this, io, req, opts]() -> asio::awaitable<Result<StreamResult>> {
        const Deadline deadline = Clock::now() + opts.timeout;
        const std::string what = describe(req, endpoint_);
        auto conn = co_await send(req, endpoint_, tls_.get(), deadline, opts, opened_.get());
        if (!conn.ok()) co_return conn.takeError();
        auto st = std::make_shared<StreamedBody::State>();
        st->ex = co_await asio::this_coro::executor;
        st->conn = std::move(conn.value());
        auto& c = *st->conn;
        // Bounded per read instead. (Not boost::none: Beast 1.74 then refuses every
        // Content-Length body.)
        st->parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        st->parser.header_limit(static_cast<std::uint32_t>(opts.maxHeaderBytes));
        error_code ec = co_await std::visit(
            [&](auto& s) { return readHeader(s, c.buffer, st->parser); }, c.stream);
        if (ec) {
          closeNow(c.stream);
          co_return readError(ec, what, opts);
        }
        StreamResult out;
        out.response = fromHeader(st->parser);
        if (out.response.status >= 200 && out.response.status < 300) {
          setDeadline(c.stream, kNoDeadline);
          out.body = std::make_unique<StreamedBody>(io, st);
          co_return out;
        }
        // An error: read its (bounded) body for the message.
        std::string buf(16u << 10, '\0');
        while (!st->parser.is_done()) {
          st->parser.get().body().data = buf.data();
          st->parser.get().body().size = buf.size();
          ec = co_await std::visit([&](auto& s) { return readRest(s, c.buffer, st->parser); },
                                   c.stream);
          if (ec == http::error::need_buffer) ec = {};
          if (ec) break;
          out.response.body.append(buf.data(), buf.size() - st->parser.get().body().size);
          if (out.response.body.size() > opts.maxBodyBytes) break;
        }
        closeNow(c.stream);
        co_return out;
      });
}

}  // namespace agentpane::net
