// The connection side of the server, in the style of Beast's flex-awaitable example: an
// accept loop and one coroutine per connection, each on its own strand.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "server/server.hpp"

#include <pthread.h>

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "k8s/cluster_info.hpp"
#include "server/server_context.hpp"
#include "server/static_files.hpp"
#include "server/ws_channel.hpp"
#include "service/composition.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// One live connection, as seen by stop(). Fields are touched only on the connection's strand.
struct Conn {
  asio::any_io_executor ex;
  beast::tcp_stream* stream = nullptr;  // during the HTTP phase
  std::weak_ptr<WsChannel> ws;          // after an upgrade
  bool idle = true;                     // waiting for the next request
  bool stopping = false;
};

class ConnRegistry {
 public:
  void add(const std::shared_ptr<Conn>& c) {
    std::lock_guard lock(mu_);
    conns_.insert(c);
  }
  void remove(const std::shared_ptr<Conn>& c) {
    std::lock_guard lock(mu_);
    conns_.erase(c);
    if (conns_.empty()) cv_.notify_all();
  }
  std::vector<std::shared_ptr<Conn>> snapshot() {
    std::lock_guard lock(mu_);
    return {conns_.begin(), conns_.end()};
  }
  bool waitEmpty(Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return conns_.empty(); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::shared_ptr<Conn>> conns_;
};

struct ScopeExit {
  std::function<void()> fn;
  ~ScopeExit() {
    if (fn) fn();
  }
};

Result<tcp::endpoint> parseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Error(ErrorCode::ValidationError,
                 "listen address must be host:port, got '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  std::string portText = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(portText, &used);
    if (used != portText.size() || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Error(ErrorCode::ValidationError, "bad port in listen address '" + listen + "'");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec)
    return Error(ErrorCode::ValidationError,
                 "listen host must be an IP address, got '" + host + "'");
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

http::response<http::string_body> toResponse(const Reply& r, unsigned version, bool keepAlive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "agentpane");
  res.set(http::field::content_type, r.contentType);
  bool cacheControlSet = false;
  for (const auto& [k, v] : r.headers)
    cacheControlSet = cacheControlSet || beast::iequals(k, "Cache-Control");
  if (!cacheControlSet) res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  for (const auto& [k, v] : r.headers)
    res.insert(k, v);
  res.keep_alive(keepAlive);
  res.body() = r.body;
  res.prepare_payload();
  return res;
}

}  // namespace

struct Server::Impl {
  Impl(SandboxService& service, ServerOptions opts)
      : options(std::move(opts)),
        routes(buildRoutes()),
        ctx(service, options, pool, lifecyclePool),
        pool(static_cast<std::size_t>(std::max(1, options.workerThreads))),
        lifecyclePool(static_cast<std::size_t>(std::max(1, options.lifecycleThreads))) {
    // Always there: the default profile may turn the feature on at any time. It reads
    // nothing until a cluster route is called.
    k8s::ClusterInfoOptions clusterOptions;
    clusterOptions.allowExecInTargetKubeconfigs =
        kubernetesSettingsFromEnvironment().allowApiKubeconfigExec;
    ctx.cluster =
        options.cluster ? options.cluster : std::make_shared<k8s::ClusterInfo>(clusterOptions);
  }

  // Declaration order is destruction order reversed: the pools go first (their abandoned
  // work hands coroutine frames back to the io_context), then the io_context (whose frames
  // still touch ctx, the routes and the registry), and only then what those frames touch.
  // ctx is constructed before the pools it refers to: it only keeps the references.
  ServerOptions options;
  ConnRegistry registry;
  std::vector<Route> routes;
  ServerContext ctx;
  StaticFiles webPage;  // the built web page (options.webRoot); empty when not built
  std::unique_ptr<asio::io_context> ioc = std::make_unique<asio::io_context>();
  asio::thread_pool pool;
  asio::thread_pool lifecyclePool;

  std::optional<tcp::acceptor> acceptor;
  asio::any_io_executor acceptorEx;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::uint16_t boundPort = 0;
  bool started = false;

  std::mutex stopMu;  // serialises stop()
  bool stopped = false;
  std::mutex requestMu;
  std::condition_variable requestCv;
  bool stopRequested = false;

  Result<void> start();
  void stop();
  void requestStop() {
    std::lock_guard lock(requestMu);
    stopRequested = true;
    requestCv.notify_all();
  }

  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> session(beast::tcp_stream stream);
  asio::awaitable<void> lingerClose(beast::tcp_stream& stream);
  // Answers a request the HTTP parser refused (400), then closes the connection.
  asio::awaitable<void> refuseMalformed(beast::tcp_stream& stream,
                                        const boost::system::error_code& why);
  asio::awaitable<void> upgrade(beast::tcp_stream& stream, const std::shared_ptr<Conn>& conn,
                                Request req, const Route& route, PatternMatch match, Target target,
                                std::shared_ptr<void> streamSlot);

  struct Dispatch {
    const Route* route = nullptr;
    PatternMatch match;
    Target target;
    std::string label = "unmatched";
    std::optional<Reply> early;        // a reply without running a handler
    std::shared_ptr<void> streamSlot;  // WebSocket routes: the slot taken for the stream
    bool authFailed = false;           // refused for a missing or wrong token: audited
  };
  Dispatch dispatch(const Request& req);
  // Everything decided on the header alone: size, origin, route, auth, upgrade.
  Dispatch checkHeader(http::request_parser<http::string_body>& parser);
  bool authorized(const Request& req);
  Reply payloadTooLarge() const;
  static Reply headerTooLarge();
  static Reply internalError();
};

void auditAuthFailure(ServerContext& server, const std::string& route, const std::string& method,
                      const std::string& remote, const std::string& reason) {
  auto suppressed = server.authFailures.admit();
  if (!suppressed) return;
  nlohmann::json detail{
      {"route", route}, {"method", method}, {"remote", remote}, {"reason", reason}};
  if (*suppressed > 0) detail["notRecordedBefore"] = *suppressed;
  if (!server.poolOpen->load()) return;  // shutting down: the pool runs nothing more
  asio::post(server.pool, [&service = server.service, d = detail.dump()] {
    service.recordEvent("", "anonymous", "auth.failure", d, false);
  });
}

namespace {

// The stream bound when none is configured. Descriptors are the real resource: a stream
// holds the client's socket and the provider's, and briefly a third (exit code, kill). The
// soft limit is raised to the hard one first, as servers commonly do.
int streamsForDescriptors() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 256;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = std::min<rlim_t>(lim.rlim_max, 1u << 20);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  constexpr rlim_t kReserved = 256;  // the database, logs, HTTP clients, the engine's calls
  if (lim.rlim_cur == RLIM_INFINITY) return 8192;
  rlim_t usable = lim.rlim_cur > kReserved * 2 ? lim.rlim_cur - kReserved : lim.rlim_cur / 2;
  return static_cast<int>(std::clamp<rlim_t>(usable / 3, 16, 8192));
}

}  // namespace

Result<void> Server::Impl::start() {
  ctx.maxStreams = options.maxStreams > 0 ? options.maxStreams : streamsForDescriptors();
  auto ep = parseListen(options.listen);
  if (!ep.ok()) return ep.takeError();
  if (options.home.empty())
    return Error(ErrorCode::ValidationError, "the server needs a home directory");
  auto token = loadServerToken(options.home, options.tokenFile);
  if (!token.ok()) return token.takeError();
  ctx.token = token.value();
  if (!options.webRoot.empty()) {
    webPage = StaticFiles::load(options.webRoot);
    if (webPage.available()) {
      spdlog::info("web page: {} files from {}", webPage.fileCount(), options.webRoot.string());
    } else {
      spdlog::warn(
          "web page not served: {} (build it with `npm --prefix web ci && npm --prefix "
          "web run build`)",
          webPage.problem());
    }
  }

  acceptorEx = asio::make_strand(*ioc);
  acceptor.emplace(acceptorEx);
  boost::system::error_code ec;
  acceptor->open(ep->protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep.value(), ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor.reset();
    return Error(ErrorCode::Internal, "cannot listen on " + options.listen + ": " + ec.message());
  }
  boundPort = acceptor->local_endpoint().port();

  asio::co_spawn(acceptorEx, acceptLoop(), asio::detached);
  work.emplace(ioc->get_executor());
  int n = std::clamp(options.networkThreads, 1, 8);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([this] {
      ::pthread_setname_np(::pthread_self(), "ap-http");
      for (;;) {
        try {
          ioc->run();
          break;
        } catch (const std::exception& e) {
          spdlog::error("network thread: {}", e.what());
        }
      }
    });
  }
  started = true;
  spdlog::info("agentpane server listening on {}:{}", ep->address().to_string(), boundPort);
  return {};
}

asio::awaitable<void> Server::Impl::acceptLoop() {
  for (;;) {
    boost::system::error_code ec;
    asio::any_io_executor connEx = asio::make_strand(*ioc);
    tcp::socket socket =
        co_await acceptor->async_accept(connEx, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      spdlog::warn("accept: {}", ec.message());
      // Out of descriptors and the like: back off instead of spinning.
      asio::steady_timer t(acceptorEx, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (ctx.stopping) {
      socket.close(ec);
      continue;
    }
    asio::co_spawn(connEx, session(beast::tcp_stream(std::move(socket))), asio::detached);
  }
}

bool Server::Impl::authorized(const Request& req) {
  if (auto h = req.find(http::field::authorization); h != req.end()) {
    auto token = bearerToken(h->value());
    if (token && constantTimeEquals(*token, ctx.token)) return true;
  }
  if (auto h = req.find(http::field::cookie); h != req.end()) {
    auto id = cookieValue(h->value(), kSessionCookie);
    if (id && ctx.sessions.valid(*id)) return true;
  }
  return false;
}

Server::Impl::Dispatch Server::Impl::dispatch(const Request& req) {
  Dispatch d;
  auto target = parseTarget(req.target());
  if (!target.ok()) {
    d.early = errorReply(target.error());
    return d;
  }
  std::string allowed;
  for (const auto& route : routes) {
    auto m = route.pattern.match(target->segments);
    if (!m) continue;
    d.label = route.pattern.label();
    if (route.method != req.method()) {
      if (!allowed.empty()) allowed += ", ";
      allowed += std::string(http::to_string(route.method));
      continue;
    }
    if (!m->ok()) {
      d.early = errorReply(m->error());
      return d;
    }
    d.route = &route;
    d.match = std::move(m->value());
    d.target = std::move(target.value());
    return d;
  }
  if (!allowed.empty()) {
    Reply r = errorReply(
        ErrorCode::MethodNotAllowed,
        std::string(req.method_string()) + " is not allowed here (allowed: " + allowed + ")");
    r.headers.emplace_back("Allow", allowed);
    d.early = std::move(r);
    return d;
  }
  if (req.method() == http::verb::get && !options.webRoot.empty()) {
    if (auto page = webPage.serve(req.target().substr(0, req.target().find('?')))) {
      d.label = "page";
      d.early = std::move(page);
      return d;
    }
  }
  d.label = "unmatched";
  d.early =
      errorReply(ErrorCode::NotFound, "no route for " + std::string(req.target().substr(0, 200)));
  return d;
}

Reply Server::Impl::payloadTooLarge() const {
  const std::string limit = std::to_string(options.maxBodyBytes);
  return errorReply(Error(ErrorCode::PayloadTooLarge, "request body exceeds " + limit + " bytes",
                          {{"limit", limit}}));
}

Reply Server::Impl::headerTooLarge() {
  return errorReply(ErrorCode::ValidationError, "request header too large");
}

namespace {

// A request the parser refused as not HTTP (a NUL or control byte in a header, a bad request
// line, target, version, length or chunk), as opposed to a connection that ended or timed
// out. Such a request gets a 400 before the connection closes: closing without a word leaves
// the client with "connection closed without response" and no reason.
bool isMalformedRequest(const boost::system::error_code& ec) {
  if (ec.category() != make_error_code(http::error::bad_method).category()) return false;
  switch (static_cast<http::error>(ec.value())) {
    case http::error::end_of_stream:
    case http::error::partial_message:
    case http::error::need_more:
    case http::error::need_buffer:
    case http::error::stale_parser:
    case http::error::short_read:
      return false;
    default:
      return true;
  }
}

}  // namespace

asio::awaitable<void> Server::Impl::refuseMalformed(beast::tcp_stream& stream,
                                                    const boost::system::error_code& why) {
  Reply bad = errorReply(ErrorCode::ValidationError, "malformed HTTP request: " + why.message());
  ctx.metrics.recordRequest("unmatched", "other", bad.status, 0);
  auto res = toResponse(bad, 11, false);
  boost::system::error_code ec;
  stream.expires_after(options.ioTimeout);
  co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  co_await lingerClose(stream);
}

Reply Server::Impl::internalError() {
  return errorReply(ErrorCode::Internal, "internal error");
}

Server::Impl::Dispatch Server::Impl::checkHeader(http::request_parser<http::string_body>& parser) {
  const Request& req = parser.get();
  if (auto len = parser.content_length(); len && *len > options.maxBodyBytes) {
    Dispatch d;
    d.early = payloadTooLarge();
    return d;
  }
  std::string origin;
  if (auto h = req.find(http::field::origin); h != req.end()) origin = std::string(h->value());
  std::string host;
  if (auto h = req.find(http::field::host); h != req.end()) host = std::string(h->value());
  if (!originAllowed(origin, host)) {
    Dispatch d;
    d.early = errorReply(ErrorCode::Forbidden, "cross-origin requests are refused");
    return d;
  }
  Dispatch d = dispatch(req);
  if (d.early) return d;
  const Route& route = *d.route;
  if (route.needsAuth && !authorized(req)) {
    Reply r = errorReply(ErrorCode::Unauthorized, "missing or wrong bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    d.early = std::move(r);
    d.authFailed = true;
    return d;
  }
  if (route.ws) {
    if (!websocket::is_upgrade(req)) {
      d.early = errorReply(ErrorCode::ValidationError, "this route needs a WebSocket upgrade");
    } else if (!(d.streamSlot = ctx.acquireStream())) {
      const std::string limit = std::to_string(ctx.maxStreams);
      d.early = errorReply(Error(ErrorCode::TooManyRequests,
                                 "the server already runs its limit of " + limit +
                                     " concurrent streams; retry when one has ended",
                                 {{"limit", limit}}));
    }
  }
  return d;
}

asio::awaitable<void> Server::Impl::lingerClose(beast::tcp_stream& stream) {
  // The client may still be sending a body we refused; closing with unread data would send
  // a reset that can destroy our reply before the client reads it. Half-close, then discard
  // what arrives for a short while.
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(2));
  std::vector<char> sink(64 * 1024);
  std::uint64_t total = 0;
  while (!ec && total < (64u << 20)) {
    std::size_t n = co_await stream.async_read_some(asio::buffer(sink),
                                                    asio::redirect_error(asio::use_awaitable, ec));
    total += n;
  }
  stream.socket().close(ec);
}

asio::awaitable<void> Server::Impl::session(beast::tcp_stream stream) {
  auto conn = std::make_shared<Conn>();
  conn->ex = stream.get_executor();
  conn->stream = &stream;
  registry.add(conn);
  ScopeExit unregister{[this, conn] { registry.remove(conn); }};

  beast::flat_buffer buffer;
  bool first = true;
  try {
    for (;;) {
      if (conn->stopping || ctx.stopping) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(options.maxHeaderBytes);
      parser.body_limit(options.maxBodyBytes);
      conn->idle = true;
      stream.expires_after(first ? options.ioTimeout : options.idleTimeout);
      first = false;
      boost::system::error_code ec;
      co_await http::async_read_header(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      conn->idle = false;
      if (ec == http::error::header_limit) {
        Reply tooLarge = headerTooLarge();
        auto res = toResponse(tooLarge, 11, false);
        stream.expires_after(options.ioTimeout);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        co_await lingerClose(stream);
        co_return;
      }
      if (ec == http::error::body_limit) {
        // Beast checks Content-Length against the body limit while parsing the header: the
        // reply goes out before a single body byte is read.
        Reply tooLarge = payloadTooLarge();
        auto res = toResponse(tooLarge, parser.get().version(), false);
        stream.expires_after(options.ioTimeout);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        ctx.metrics.recordRequest("unmatched", std::string(parser.get().method_string()),
                                  tooLarge.status, 0);
        co_await lingerClose(stream);
        co_return;
      }
      if (isMalformedRequest(ec)) {
        co_await refuseMalformed(stream, ec);
        co_return;
      }
      if (ec) break;  // closed, timed out or cancelled by stop()

      const auto startedAt = Clock::now();
      Request& req = parser.get();
      const unsigned version = req.version();
      std::string method(req.method_string());

      auto finish = [&](const Reply& reply, const std::string& label,
                        bool keepAlive) -> asio::awaitable<bool> {
        auto res = toResponse(reply, version, keepAlive);
        // Recorded before the write: a client that has its answer must find it counted.
        double secs = std::chrono::duration<double>(Clock::now() - startedAt).count();
        ctx.metrics.recordRequest(label, method, reply.status, secs);
        spdlog::debug("{} {} -> {} in {:.3f}s", method, label, reply.status, secs);
        boost::system::error_code wec;
        stream.expires_after(options.ioTimeout);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, wec));
        co_return !wec;
      };
      // A reply sent before the body was read: the connection cannot be reused.
      auto refuse = [&](const Reply& reply, const std::string& label) -> asio::awaitable<void> {
        bool bodyPending = !parser.is_done();
        bool ok = co_await finish(reply, label, !bodyPending && req.keep_alive() && !ctx.stopping);
        if (!ok || bodyPending || !req.keep_alive() || ctx.stopping) {
          co_await lingerClose(stream);
          conn->stopping = true;
        }
      };

      Dispatch d = checkHeader(parser);
      if (d.authFailed) {
        boost::system::error_code rec;
        auto remote = stream.socket().remote_endpoint(rec);
        auditAuthFailure(ctx, d.label, method, rec ? "" : remote.address().to_string(),
                         req.find(http::field::authorization) != req.end() ? "wrong bearer token"
                         : req.find(http::field::cookie) != req.end()
                             ? "no valid session (unknown or expired)"
                             : "no credentials");
      }
      if (d.early) {
        co_await refuse(*d.early, d.label);
        if (conn->stopping) co_return;
        continue;
      }
      const Route& route = *d.route;
      if (route.ws) {
        ctx.metrics.recordRequest(d.label, method, 101,
                                  std::chrono::duration<double>(Clock::now() - startedAt).count());
        // GCC 12 destroys non-trivial temporaries of a co_await expression twice: awaitables
        // are built first, then awaited (see blocking.hpp).
        auto op = upgrade(stream, conn, parser.release(), route, std::move(d.match),
                          std::move(d.target), std::move(d.streamSlot));
        co_await std::move(op);
        co_return;
      }

      if (req[http::field::expect] == "100-continue" && !parser.is_done()) {
        http::response<http::empty_body> cont{http::status::continue_, version};
        stream.expires_after(options.ioTimeout);
        co_await http::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      if (!parser.is_done()) {
        stream.expires_after(route.ioTimeout.count() > 0 ? route.ioTimeout : options.ioTimeout);
        co_await http::async_read(stream, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec == http::error::body_limit) {
          Reply tooLarge = payloadTooLarge();
          co_await refuse(tooLarge, d.label);
          co_return;
        }
        if (isMalformedRequest(ec)) {  // a bad chunk, say
          co_await refuseMalformed(stream, ec);
          co_return;
        }
        if (ec) break;
      }
      stream.expires_never();

      RequestContext rc{ctx,
                        req,
                        std::move(d.match.params),
                        std::move(d.target.query),
                        d.label,
                        &stream.socket()};
      Reply reply;
      try {
        auto op = route.http(rc);
        reply = co_await std::move(op);
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", method, d.label, e.what());
        reply = internalError();
      }
      bool keepAlive = req.keep_alive() && !ctx.stopping && !conn->stopping;
      if (reply.streamed) {
        double secs = std::chrono::duration<double>(Clock::now() - startedAt).count();
        ctx.metrics.recordRequest(d.label, method, reply.status, secs);
        if (!*reply.streamed || !keepAlive) break;
        continue;
      }
      bool ok = co_await finish(reply, d.label, keepAlive);
      if (!ok || !keepAlive) break;
    }
  } catch (const std::exception& e) {
    spdlog::debug("connection ended: {}", e.what());
  }
  boost::system::error_code ec;
  if (conn->stream) {
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
  }
}

asio::awaitable<void> Server::Impl::upgrade(beast::tcp_stream& stream,
                                            const std::shared_ptr<Conn>& conn, Request req,
                                            const Route& route, PatternMatch match, Target target,
                                            std::shared_ptr<void> streamSlot) {
  // streamSlot (taken by checkHeader) is held until the stream ends.
  auto ch = std::make_shared<WsChannel>(std::move(stream), options);
  conn->stream = nullptr;
  conn->ws = ch;
  if (!co_await ch->accept(req)) co_return;
  if (ctx.stopping) {
    ch->close(websocket::close_code::going_away, "server stopping");
    co_await ch->finished();
    co_return;
  }
  RequestContext rc{ctx, req, std::move(match.params), std::move(target.query),
                    route.pattern.label()};
  try {
    auto op = route.ws(rc, ch);
    co_await std::move(op);
  } catch (const std::exception& e) {
    spdlog::error("websocket {}: {}", route.pattern.label(), e.what());
    ch->abort();
  }
  // Let the close handshake finish before the stream goes away.
  ch->close(websocket::close_code::normal);
  co_await ch->finished();
}

void Server::Impl::stop() {
  std::lock_guard stopLock(stopMu);
  requestStop();
  if (stopped) return;
  stopped = true;
  if (!started) return;
  spdlog::info("server stopping: finishing in-flight requests");
  ctx.stopping = true;
  ctx.stopAll.request_stop();  // creates in flight remove what they made and end

  // New connections are refused from here on; wait for the close so that a caller of stop()
  // can rely on it.
  auto acceptorClosed = std::make_shared<std::promise<void>>();
  asio::post(acceptorEx, [this, acceptorClosed] {
    boost::system::error_code ec;
    acceptor->close(ec);
    acceptorClosed->set_value();
  });
  acceptorClosed->get_future().wait_for(std::chrono::seconds(2));
  // Idle keep-alive connections go now; busy ones finish their request first; WebSockets
  // get a close frame.
  for (const auto& c : registry.snapshot()) {
    asio::post(c->ex, [c] {
      c->stopping = true;
      if (auto ws = c->ws.lock()) {
        ws->close(websocket::close_code::going_away, "server stopping");
      } else if (c->stream && c->idle) {
        c->stream->cancel();
      }
    });
  }
  if (!registry.waitEmpty(Clock::now() + options.shutdownGrace)) {
    spdlog::warn("shutdown grace period over: closing the remaining connections");
    for (const auto& c : registry.snapshot()) {
      asio::post(c->ex, [c] {
        if (auto ws = c->ws.lock()) {
          ws->abort();
        } else if (c->stream) {
          boost::system::error_code ec;
          c->stream->socket().close(ec);
        }
      });
    }
    registry.waitEmpty(Clock::now() + std::chrono::seconds(2));
  }
  work.reset();
  ioc->stop();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  boost::system::error_code ec;
  acceptor->close(ec);  // no network thread runs any more
  // Calls still running on the pools are bounded by the provider contract; queued ones are
  // abandoned.
  ctx.poolOpen->store(false);
  pool.stop();
  pool.join();
  lifecyclePool.stop();
  lifecyclePool.join();
  spdlog::info("server stopped");
}

Server::Server(SandboxService& service, ServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {}

Server::~Server() {
  stop();
}

Result<void> Server::start() {
  if (impl_->started) return Error(ErrorCode::Internal, "server already started");
  return impl_->start();
}

std::uint16_t Server::port() const {
  return impl_->boundPort;
}

const std::string& Server::token() const {
  return impl_->ctx.token;
}

void Server::stop() {
  impl_->stop();
}

void Server::runUntilSignal() {
  auto& impl = *impl_;
  if (!impl.started) return;
  asio::signal_set signals(*impl.ioc, SIGINT, SIGTERM);
  signals.async_wait([&impl](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {} received", sig);
    impl.requestStop();
  });
  {
    std::unique_lock lock(impl.requestMu);
    impl.requestCv.wait(lock, [&] { return impl.stopRequested; });
  }
  stop();
}

}  // namespace agentpane::server
