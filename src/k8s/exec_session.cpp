#include "k8s/exec_session.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <type_traits>

#include "common/exec_async.hpp"
#include "k8s/status.hpp"
#include "k8s/ws_tls_cache.hpp"
#include "net/detail/connection.hpp"
#include "net/errors.hpp"
#include "net/url.hpp"

namespace agentpane::k8s {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using error_code = boost::system::error_code;
using asio::redirect_error;
using asio::use_awaitable;
using net::detail::TcpStream;
using net::detail::TlsStream;
using Strand = asio::strand<asio::io_context::executor_type>;

// Neighbouring output of one stream is merged into one chunk up to this size.
constexpr std::size_t kMergeLimit = 256u << 10;
// Stdin goes out in messages of at most this size (the apiserver bounds message size).
constexpr std::size_t kStdinPiece = 256u << 10;

std::string secondsText(std::chrono::milliseconds ms) {
  // GNU timeout takes fractional seconds: "1.500".
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms.count() / 1000),
                static_cast<long long>(ms.count() % 1000));
  return buf;
}

Error canceledError() {
  return Error(ErrorCode::SandboxExecFailed, "exec canceled", {{"reason", "canceled"}});
}

Error timeoutError(std::chrono::milliseconds t) {
  return Error(
      ErrorCode::ExecTimeout,
      "command exceeded its timeout of " + std::to_string(t.count()) + " ms and was killed",
      {{"timeoutMs", std::to_string(t.count())}});
}

Error exitedError() {
  return Error(ErrorCode::SandboxExecFailed, "stdin: the process has exited",
               {{"reason", "exited"}});
}

Error v4EofError() {
  return Error(ErrorCode::ValidationError,
               "stdin EOF cannot be sent on v4.channel.k8s.io (the server did not offer v5)",
               {{"reason", "stdinEofUnsupported"}});
}

// Everything the I/O coroutine and the blocking callers share. Members marked "strand" are
// touched only on the strand; the queue and the outcome only under mu.
template <class Next>
struct Shared : std::enable_shared_from_this<Shared<Next>> {
  Shared(std::shared_ptr<net::IoThread> ioThread, const ExecSpec& s)
      : io(std::move(ioThread)),
        strand(io->makeStrand()),
        spec(s),
        creditTimer(strand),
        deadlineTimer(strand),
        writeTurn(strand) {
    writeTurn.expires_at(asio::steady_timer::time_point::max());
  }

  std::shared_ptr<net::IoThread> io;
  Strand strand;
  const ExecSpec spec;
  std::shared_ptr<asio::ssl::context> tls;  // outlives ws
  std::optional<websocket::stream<Next>> ws;
  ChannelProtocol protocol = ChannelProtocol::V5;
  asio::steady_timer creditTimer;    // strand: the parked reader waits on it
  asio::steady_timer deadlineTimer;  // strand: the exec's timeout
  // strand: one message written at a time (a resize may come while stdin is being written);
  // a writer that finds `writing` waits on writeTurn, canceled (never re-armed) to wake them.
  asio::steady_timer writeTurn;
  bool writing = false;
  bool closed = false;  // strand

  std::atomic<bool> canceled{false};
  std::atomic<bool> timedOut{false};

  std::mutex mu;
  std::condition_variable cv;
  std::deque<ExecChunk> queue;
  std::size_t queued = 0;
  bool readerParked = false;
  bool ended = false;
  std::optional<Error> streamError;    // what read() returns once the queue is drained
  std::optional<Result<int>> outcome;  // what wait() returns
  std::optional<ExecHandler<std::optional<ExecChunk>>> pendingRead;  // asyncRead waiting

  void closeOnStrand() {
    if (closed) return;
    closed = true;
    error_code ignored;
    if (ws) {
      auto& sock = beast::get_lowest_layer(*ws).socket();
      sock.shutdown(asio::socket_base::shutdown_both, ignored);
      sock.close(ignored);
    }
    creditTimer.cancel();
    deadlineTimer.cancel();
    writeTurn.cancel();
  }

  void postClose() {
    asio::post(strand, [self = this->shared_from_this()] { self->closeOnStrand(); });
  }

  // Connects, handshakes and upgrades. On a refused upgrade the error carries
  // details["httpStatus"] so that the caller can retry a 401.
  asio::awaitable<Result<void>> open(const RestConfig& cfg, const std::string& target,
                                     const std::string& bearer, net::Deadline deadline) {
    auto conn =
        co_await net::detail::connect(strand, cfg.endpoint, tls ? tls.get() : nullptr, deadline);
    if (!conn.ok()) co_return transportError(conn.takeError(), cfg.server);
    ws.emplace(std::move(std::get<Next>(conn.value()->stream)));
    // The WebSocket keeps its own time (handshake bound, idle pings); the TCP stream's
    // timer would cut a quiet exec.
    beast::get_lowest_layer(*ws).expires_never();
    websocket::stream_base::timeout to{};
    to.handshake_timeout = std::max<std::chrono::nanoseconds>(deadline - net::Clock::now(),
                                                              std::chrono::milliseconds(1));
    to.idle_timeout = websocket::stream_base::none();
    to.keep_alive_pings = false;
    ws->set_option(to);
    const std::string protocols = spec.offerV5
                                      ? std::string(kChannelV5) + ", " + std::string(kChannelV4)
                                      : std::string(kChannelV4);
    ws->set_option(
        websocket::stream_base::decorator([protocols, bearer](websocket::request_type& req) {
          req.set(http::field::user_agent, "agentpane");
          req.set(http::field::sec_websocket_protocol, protocols);
          if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
        }));
    ws->binary(true);
    ws->auto_fragment(false);
    ws->read_message_max(spec.maxMessageBytes);

    websocket::response_type res;
    error_code ec;
    co_await ws->async_handshake(res, cfg.endpoint.hostHeader(), target,
                                 redirect_error(use_awaitable, ec));
    if (ec == websocket::error::upgrade_declined) {
      co_return handshakeRefused(static_cast<int>(res.result_int()), res.body(),
                                 "exec in pod " + spec.pod);
    }
    if (ec) {
      co_return transportError(net::detail::ioError(ec, "exec: WebSocket handshake"), cfg.server);
    }
    const auto chosen = res[http::field::sec_websocket_protocol];
    if (chosen == kChannelV5 && spec.offerV5) {
      protocol = ChannelProtocol::V5;
    } else if (chosen == kChannelV4) {
      protocol = ChannelProtocol::V4;
    } else {
      co_return Error(
          ErrorCode::SandboxExecFailed,
          "exec: the server chose no channel protocol we offered (\"" + std::string(chosen) + "\")",
          {{"reason", "protocol"}});
    }
    co_return okResult();
  }

  // Starts the reader and the deadline (on the strand).
  void start(net::Deadline deadline) {
    asio::post(strand, [self = this->shared_from_this(), deadline] {
      if (self->closed) return;
      // Pings: the first after pingInterval of silence, failure after twice that.
      websocket::stream_base::timeout to{};
      to.handshake_timeout = std::chrono::seconds(5);  // our close replies
      to.idle_timeout = self->spec.pingInterval * 2;
      to.keep_alive_pings = true;
      self->ws->set_option(to);
      if (deadline != net::kNoDeadline) {
        self->deadlineTimer.expires_at(deadline);
        self->deadlineTimer.async_wait([self](const error_code& ec) {
          if (ec) return;
          self->timedOut = true;
          self->closeOnStrand();
        });
      }
      asio::co_spawn(self->strand, self->readLoop(), asio::detached);
    });
  }

  asio::awaitable<void> readLoop() {
    auto self = this->shared_from_this();  // keeps everything alive while reading
    ChannelReader reader(protocol);
    beast::flat_buffer buf;
    error_code ec;
    std::optional<Error> protocolError;
    for (;;) {
      bool park = false;
      {
        std::lock_guard lock(mu);
        if (queued > spec.maxQueuedBytes) park = readerParked = true;
      }
      if (park) {
        // No read is pending while parked, so no pong can arrive: idle pings would fail
        // the stream. They are off until the caller has caught up.
        websocket::stream_base::timeout off{};
        off.handshake_timeout = std::chrono::seconds(5);
        off.idle_timeout = websocket::stream_base::none();
        ws->set_option(off);
        creditTimer.expires_at(asio::steady_timer::time_point::max());
        error_code waitEc;
        co_await creditTimer.async_wait(redirect_error(use_awaitable, waitEc));
        if (closed) break;
        websocket::stream_base::timeout on{};
        on.handshake_timeout = std::chrono::seconds(5);
        on.idle_timeout = spec.pingInterval * 2;
        on.keep_alive_pings = true;
        ws->set_option(on);
        continue;
      }
      if (closed) break;
      co_await ws->async_read(buf, redirect_error(use_awaitable, ec));
      if (ec) break;
      const std::string_view message(static_cast<const char*>(buf.cdata().data()), buf.size());
      auto event = reader.feed(message);
      if (!event.ok()) {
        protocolError = event.takeError();
        break;
      }
      if (event->kind == ChannelEvent::Kind::Output) {
        std::lock_guard lock(mu);
        if (!queue.empty() && queue.back().stream == event->stream &&
            queue.back().data.size() < kMergeLimit) {
          queue.back().data.append(event->data);
        } else {
          queue.push_back({event->stream, std::string(event->data)});
        }
        queued += event->data.size();
        cv.notify_all();
      }
      buf.consume(buf.size());
      completePendingRead();
    }
    finish(reader, ec, std::move(protocolError));
  }

  void finish(const ChannelReader& reader, const error_code& ec,
              std::optional<Error> protocolError) {
    std::optional<Error> err;
    std::optional<Result<int>> result;
    const bool cleanEnd = ec == websocket::error::closed;
    // After the status nothing is lost, however the connection ends: the status is the
    // kubelet's last message, and TCP and TLS delivered everything before it in order. Seen:
    // eof, a truncated TLS stream, a reset, broken_pipe (our reply to the close frame written
    // after the apiserver shut the connection, from a server inside the cluster), and OpenSSL's
    // "application data after close notify" (once, in the egress cluster test).
    const bool endAfterStatus = reader.statusSeen() && static_cast<bool>(ec);
    if (timedOut) {
      err = timeoutError(spec.timeout);
    } else if (canceled) {
      err = canceledError();
    } else if (protocolError) {
      err = std::move(protocolError);
    } else if (cleanEnd || endAfterStatus) {
      result = reader.exitCode();
    } else if (ec == beast::error::timeout) {
      err = Error(ErrorCode::SandboxExecFailed,
                  "exec stream: no message nor pong from the server for " +
                      std::to_string((spec.pingInterval * 2).count()) + " ms",
                  {{"reason", "idle"}});
    } else {
      err = Error(ErrorCode::SandboxExecFailed, "exec stream: " + ec.message(), {{"reason", "io"}});
    }
    closeOnStrand();
    std::unique_lock lock(mu);
    ended = true;
    if (err) {
      streamError = err;
      outcome = Result<int>(*err);
    } else {
      outcome = std::move(result);
    }
    cv.notify_all();
    lock.unlock();
    completePendingRead();
  }

  // Gives a waiting asyncRead what it can have now, if anything (never under mu).
  void completePendingRead() {
    std::optional<ExecHandler<std::optional<ExecChunk>>> handler;
    std::optional<Result<std::optional<ExecChunk>>> ready;
    {
      std::lock_guard lock(mu);
      if (!pendingRead) return;
      ready = takeReadyLocked();
      if (!ready) return;
      handler = std::move(pendingRead);
      pendingRead.reset();
    }
    (*handler)(std::move(*ready));
  }

  // Why nothing more can be written, if so.
  std::optional<Error> stateError() {
    if (canceled) return canceledError();
    if (timedOut) return timeoutError(spec.timeout);
    std::lock_guard lock(mu);
    if (ended) return exitedError();
    return std::nullopt;
  }

  // Under mu: what a read gets now, or nothing when it has to wait. Taking output from a
  // full queue lets the parked reader go on.
  std::optional<Result<std::optional<ExecChunk>>> takeReadyLocked() {
    using Out = std::optional<ExecChunk>;
    if (canceled) return Result<Out>(canceledError());
    if (!queue.empty()) {
      ExecChunk c = std::move(queue.front());
      queue.pop_front();
      queued -= c.data.size();
      if (readerParked && queued <= spec.maxQueuedBytes / 2) {
        readerParked = false;
        asio::post(strand, [self = this->shared_from_this()] { self->creditTimer.cancel(); });
      }
      return Result<Out>(Out(std::move(c)));
    }
    if (ended) return streamError ? Result<Out>(*streamError) : Result<Out>(Out());
    return std::nullopt;
  }

  // Under mu: what wait() answers.
  Result<int> waitResultLocked() {
    if (canceled) return canceledError();
    if (!ended || !queue.empty() || !outcome) {
      return Error(ErrorCode::ValidationError, "wait() before read() reported the end of output");
    }
    return *outcome;
  }

  // On the strand: one message out. Beast allows this alongside the pending read, but never
  // two writes at once: writers take turns.
  asio::awaitable<Result<void>> sendOp(std::string message, const char* what = "writing stdin") {
    while (writing && !closed) {
      error_code waitEc;
      co_await writeTurn.async_wait(redirect_error(use_awaitable, waitEc));
    }
    if (closed) co_return Error(ErrorCode::SandboxExecFailed, "exec stream closed");
    writing = true;
    error_code ec;
    co_await ws->async_write(asio::buffer(message), redirect_error(use_awaitable, ec));
    writing = false;
    writeTurn.cancel();
    if (ec) co_return Error(ErrorCode::SandboxExecFailed, std::string(what) + ": " + ec.message());
    co_return okResult();
  }

  // On the strand: stdin bytes in messages of at most kStdinPiece.
  asio::awaitable<Result<void>> writeStdinOp(std::string data) {
    std::size_t pos = 0;
    do {
      if (auto e = stateError()) co_return *e;
      auto r = co_await sendOp(encodeStdin(std::string_view(data).substr(pos, kStdinPiece)));
      if (!r.ok()) co_return stateError().value_or(r.takeError());
      pos += kStdinPiece;
    } while (pos < data.size());
    co_return okResult();
  }

  // On the strand: the v5 close signal for stdin.
  asio::awaitable<Result<void>> closeStdinOp() {
    if (stateError()) co_return okResult();  // the process is gone: no stdin left to close
    auto r = co_await sendOp(encodeCloseSignal(kChannelStdin));
    if (r.ok() || stateError()) co_return okResult();
    co_return Error(ErrorCode::SandboxExecFailed, "closing stdin: " + r.error().message);
  }
};

template <class Next>
class WsExecSession final : public K8sExecSession {
 public:
  explicit WsExecSession(std::shared_ptr<Shared<Next>> st) : st_(std::move(st)) {}
  ~WsExecSession() override { st_->postClose(); }

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override {
    std::lock_guard lock(writeMu_);
    if (auto e = writeRefusal()) return *e;
    return blockOn([&] { return st_->writeStdinOp(std::string(data)); });
  }

  Result<void> closeStdin() override {
    std::lock_guard lock(writeMu_);
    if (auto r = closeStdinShortcut()) return *r;
    return blockOn([&] { return st_->closeStdinOp(); });
  }

  Result<std::optional<ExecChunk>> read() override {
    std::unique_lock lock(st_->mu);
    std::optional<Result<std::optional<ExecChunk>>> ready;
    st_->cv.wait(lock, [&] { return (ready = st_->takeReadyLocked()).has_value(); });
    return std::move(*ready);
  }

  Result<int> wait() override {
    std::lock_guard lock(st_->mu);
    return st_->waitResultLocked();
  }

  void cancel() override {
    {
      std::lock_guard lock(st_->mu);
      if (st_->canceled.exchange(true)) return;
      st_->cv.notify_all();
    }
    st_->postClose();
  }

  // agentpane::ExecSession, asynchronous form: every call returns at once; the work and the
  // handlers run on the session's strand.
  void asyncWriteStdin(std::string data, ExecHandler<void> done) override {
    std::optional<Error> refused;
    {
      std::lock_guard lock(writeMu_);
      refused = writeRefusal();
    }
    if (refused) return post(std::move(done), Result<void>(std::move(*refused)));
    completeWith(st_->strand, st_->writeStdinOp(std::move(data)), std::move(done));
  }

  void asyncResize(int rows, int cols, ExecHandler<void> done) override {
    if (!st_->spec.tty) {
      ExecSession::asyncResize(rows, cols, std::move(done));
      return;
    }
    // Channel 4: the kubelet sets the terminal's size (Width is columns).
    completeWith(st_->strand,
                 st_->sendOp(encodeResize(static_cast<std::uint16_t>(std::clamp(cols, 1, 1000)),
                                          static_cast<std::uint16_t>(std::clamp(rows, 1, 1000))),
                             "resizing the terminal"),
                 std::move(done));
  }

  void asyncCloseStdin(ExecHandler<void> done) override {
    std::optional<Result<void>> shortcut;
    {
      std::lock_guard lock(writeMu_);
      shortcut = closeStdinShortcut();
    }
    if (shortcut) return post(std::move(done), std::move(*shortcut));
    completeWith(st_->strand, st_->closeStdinOp(), std::move(done));
  }

  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    std::optional<Result<std::optional<ExecChunk>>> ready;
    {
      std::lock_guard lock(st_->mu);
      ready = st_->takeReadyLocked();
      if (!ready) {
        // The reading coroutine completes it when output, the end or a cancel comes.
        st_->pendingRead = std::move(done);
        return;
      }
    }
    post(std::move(done), std::move(*ready));
  }

  void asyncWait(ExecHandler<int> done) override {
    std::optional<Result<int>> r;
    {
      std::lock_guard lock(st_->mu);
      r = st_->waitResultLocked();
    }
    post(std::move(done), std::move(*r));
  }

  void asyncCancel(ExecHandler<void> done) override {
    {
      std::lock_guard lock(st_->mu);
      if (!st_->canceled.exchange(true)) st_->cv.notify_all();
    }
    // The close runs on the strand before this handler, for a first call and a second
    // alike: when it runs, the stream is closed and a pending read has been failed.
    asio::post(st_->strand, [s = st_, done = std::move(done)] {
      s->closeOnStrand();
      s->completePendingRead();
      done(okResult());
    });
  }

  // agentpane::k8s::K8sExecSession
  [[nodiscard]] ChannelProtocol protocol() const override { return st_->protocol; }

 private:
  template <typename T>
  void post(ExecHandler<T> done, Result<T> r) {
    asio::post(st_->strand,
               [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  template <typename Make>
  Result<void> blockOn(Make make) {
    return net::blockOn<void>(*st_->io, st_->strand, [&]() -> asio::awaitable<Result<void>> {
      co_return co_await make();
    });
  }

  // Under writeMu_: why stdin cannot be written at all.
  std::optional<Error> writeRefusal() {
    if (!st_->spec.attachStdin) {
      return Error(ErrorCode::ValidationError, "exec was opened without stdin");
    }
    if (stdinClosed_) return Error(ErrorCode::ValidationError, "stdin already closed");
    return std::nullopt;
  }

  // Under writeMu_: the answer of closeStdin() when nothing needs sending; marks stdin
  // closed otherwise.
  std::optional<Result<void>> closeStdinShortcut() {
    if (!st_->spec.attachStdin) return okResult();
    if (st_->protocol == ChannelProtocol::V4) return Result<void>(v4EofError());
    if (stdinClosed_) return okResult();
    stdinClosed_ = true;
    return std::nullopt;
  }

  std::shared_ptr<Shared<Next>> st_;
  std::mutex writeMu_;
  bool stdinClosed_ = false;  // under writeMu_
};

template <class Next>
Result<std::unique_ptr<K8sExecSession>> openWith(const std::shared_ptr<net::IoThread>& io,
                                                 const RestConfig& cfg, const ExecSpec& spec) {
  const auto start = net::Clock::now();
  const net::Deadline execDeadline =
      spec.timeout.count() > 0 ? start + spec.timeout : net::kNoDeadline;
  const net::Deadline handshakeDeadline =
      std::min(execDeadline,
               start + (cfg.timeout.count() > 0 ? cfg.timeout : std::chrono::milliseconds(10000)));
  const std::string target = execTarget(cfg, spec, effectiveArgv(spec));
  for (int attempt = 0;; ++attempt) {
    Credentials creds;
    if (cfg.credentials) {
      auto c = cfg.credentials->current();
      if (!c.ok()) return c.takeError();
      creds = std::move(c.value());
    }
    auto st = std::make_shared<Shared<Next>>(io, spec);
    if constexpr (std::is_same_v<Next, TlsStream>) {
      auto ctx = tlsContextFor(cfg.endpoint.tls, creds);
      if (!ctx.ok()) return ctx.takeError();
      st->tls = std::move(ctx.value());
    }
    auto opened = net::blockOn<void>(*io, st->strand, [&]() -> asio::awaitable<Result<void>> {
      co_return co_await st->open(cfg, target, creds.bearerToken, handshakeDeadline);
    });
    if (opened.ok() && spec.tty) {
      // The terminal's size, before any output is read or input written.
      opened = net::blockOn<void>(*io, st->strand, [&]() -> asio::awaitable<Result<void>> {
        co_return co_await st->sendOp(encodeResize(spec.ttyColumns, spec.ttyRows));
      });
    }
    if (opened.ok()) {
      st->start(execDeadline);
      return std::unique_ptr<K8sExecSession>(new WsExecSession<Next>(st));
    }
    // Best effort: the session failed to open already; its error is what counts.
    (void)net::blockOn<void>(*io, st->strand, [&]() -> asio::awaitable<Result<void>> {
      st->closeOnStrand();
      co_return okResult();
    });
    const auto status = opened.error().details.find("code");
    const bool unauthorized = status != opened.error().details.end() && status->second == "401";
    if (unauthorized && attempt == 0 && cfg.credentials && cfg.credentials->invalidate()) {
      continue;
    }
    if (execDeadline != net::kNoDeadline && net::Clock::now() >= execDeadline &&
        net::netKind(opened.error()) == net::kTimeout) {
      return timeoutError(spec.timeout);
    }
    return opened.takeError();
  }
}

}  // namespace

std::vector<std::string> effectiveArgv(const ExecSpec& spec) {
  if (spec.timeout.count() <= 0 || !spec.killInPod) return spec.argv;
  std::vector<std::string> out{"timeout"};
  if (spec.tty) out.emplace_back("--foreground");
  out.insert(out.end(), {"-s", "KILL", secondsText(spec.timeout)});
  out.insert(out.end(), spec.argv.begin(), spec.argv.end());
  return out;
}

std::string execTarget(const RestConfig& cfg, const ExecSpec& spec,
                       const std::vector<std::string>& argv) {
  std::string ns = spec.namespaceName;
  if (ns.empty()) ns = cfg.namespaceName.empty() ? "default" : cfg.namespaceName;
  std::vector<std::pair<std::string, std::string>> query;
  query.reserve(argv.size() + 5);
  for (const auto& a : argv)
    query.emplace_back("command", a);
  if (!spec.container.empty()) query.emplace_back("container", spec.container);
  query.emplace_back("stdin", spec.attachStdin ? "true" : "false");
  query.emplace_back("stdout", "true");
  query.emplace_back("stderr", spec.tty ? "false" : "true");
  query.emplace_back("tty", spec.tty ? "true" : "false");
  std::string prefix = cfg.pathPrefix;
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  return prefix + "/api/v1/namespaces/" + net::percentEncode(ns) + "/pods/" +
         net::percentEncode(spec.pod) + "/exec" + net::queryString(query);
}

Error handshakeRefused(int httpStatus, std::string_view body, const std::string& what) {
  Error e = responseError(httpStatus, body, what);
  // The apiserver refuses a container the pod does not have with a 400 before upgrading.
  if (httpStatus == 400 && mentionsMissingContainer(e.message)) {
    e.code = ErrorCode::K8sNotFound;
    e.details["reason"] = "ContainerNotFound";
  }
  return e;
}

Result<std::unique_ptr<K8sExecSession>> openExec(const std::shared_ptr<net::IoThread>& io,
                                                 const RestConfig& cfg, const ExecSpec& spec) {
  if (spec.pod.empty()) return Error(ErrorCode::ValidationError, "exec: no pod named");
  if (spec.argv.empty()) return Error(ErrorCode::ValidationError, "exec: empty command");
  if (spec.maxQueuedBytes == 0 || spec.maxMessageBytes == 0 || spec.pingInterval.count() <= 0) {
    return Error(ErrorCode::ValidationError, "exec: limits and the ping interval must be > 0");
  }
  switch (cfg.endpoint.kind) {
    case net::Endpoint::Kind::Tls:
      return openWith<TlsStream>(io, cfg, spec);
    case net::Endpoint::Kind::Tcp:
      return openWith<TcpStream>(io, cfg, spec);
    case net::Endpoint::Kind::Unix:
      break;
  }
  return Error(ErrorCode::ValidationError, "exec: the apiserver endpoint must be http(s)");
}

}  // namespace agentpane::k8s
