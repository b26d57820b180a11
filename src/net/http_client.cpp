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

// Connects and sends; the connection comes back ready for the response.
asio::awaitable<Result<std::unique_ptr<Connection>>> send(const HttpRequest& req,
                                                          const Endpoint& ep, ssl::context* tls,
                                                          Deadline deadline) {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await connect(ex, ep, tls, deadline);
  if (!conn.ok()) co_return conn.takeError();
  auto beastReq = toBeast(req, ep);
  auto& c = *conn.value();
  setDeadline(c.stream, deadline);
  error_code ec = co_await std::visit([&](auto& s) { return writeMessage(s, beastReq); }, c.stream);
  if (ec) co_return ioError(ec, describe(req, ep) + ": sending request");
  co_return conn;
}

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::create(Endpoint endpoint,
                                                       std::shared_ptr<IoThread> io) {
  std::shared_ptr<ssl::context> tls;
  if (endpoint.kind == Endpoint::Kind::Tls) {
    auto ctx = makeTlsContext(endpoint.tls);
    if (!ctx.ok()) return ctx.takeError();
    tls = std::move(ctx.value());
  }
  return std::unique_ptr<HttpClient>(
      new HttpClient(std::move(endpoint), std::move(io), std::move(tls)));
}

HttpClient::HttpClient(Endpoint endpoint, std::shared_ptr<IoThread> io,
                       std::shared_ptr<ssl::context> tls)
    : endpoint_(std::move(endpoint)), io_(std::move(io)), tls_(std::move(tls)) {}

HttpClient::~HttpClient() = default;

asio::awaitable<Result<HttpResponse>> HttpClient::asyncRequest(HttpRequest req, CallOptions opts) {
  const Deadline deadline = Clock::now() + opts.timeout;
  const std::string what = describe(req, endpoint_);
  auto conn = co_await send(req, endpoint_, tls_.get(), deadline);
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
  return blockOn<HttpResponse>(*io_, io_->makeStrand(),
                               [this, req, opts]() { return asyncRequest(req, opts); });
}

Result<UpgradeResult> HttpClient::upgrade(const HttpRequest& req, const CallOptions& opts) {
  auto io = io_;
  return blockOn<UpgradeResult>(
      *io_, io_->makeStrand(), [this, io, req, opts]() -> asio::awaitable<Result<UpgradeResult>> {
        const Deadline deadline = Clock::now() + opts.timeout;
        const std::string what = describe(req, endpoint_);
        auto conn = co_await send(req, endpoint_, tls_.get(), deadline);
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
          out.stream = std::make_unique<UpgradedStream>(io, ex, std::move(conn.value()),
                                                        std::move(leftover));
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
      });
}

Result<StreamResult> HttpClient::openStream(const HttpRequest& req, const CallOptions& opts) {
  auto io = io_;
  return blockOn<StreamResult>(
      *io_, io_->makeStrand(), [this, io, req, opts]() -> asio::awaitable<Result<StreamResult>> {
        const Deadline deadline = Clock::now() + opts.timeout;
        const std::string what = describe(req, endpoint_);
        auto conn = co_await send(req, endpoint_, tls_.get(), deadline);
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
