// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "server/exec_runner.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/exec_async.hpp"
#include "server/blocking.hpp"
#include "server/ws_channel.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;

asio::awaitable<Result<std::shared_ptr<ExecSession>>> openExecOnPool(ServerContext& server,
                                                                     std::string sandboxId,
                                                                     std::vector<std::string> argv,
                                                                     ExecOptions options) {
  auto* pool = &server.pool;
  auto call = runBlocking(
      server.pool,
      [&server, id = std::move(sandboxId), argv = std::move(argv), options = std::move(options),
       pool, open = server.poolOpen]() -> Result<std::shared_ptr<ExecSession>> {
        auto r = server.service.openExec(id, argv, options, "api");
        if (!r.ok()) return r.takeError();
        return std::shared_ptr<ExecSession>(r.value().release(), [pool, open](ExecSession* p) {
          if (open->load()) {
            asio::post(*pool, [p] { delete p; });
          } else {
            delete p;  // the server is being torn down: nothing runs on the network threads
          }
        });
      });
  co_return co_await std::move(call);
}

Result<std::unique_ptr<BufferedExecSlot>> BufferedExecSlot::take(ServerContext& server,
                                                                 const std::string& sandboxId) {
  std::lock_guard lock(server.execMu);
  const int perSandbox = server.options.maxBufferedExecsPerSandbox;
  const int total = server.options.maxBufferedExecs;
  int& mine = server.activeExecsBySandbox[sandboxId];
  if (server.activeExecs >= total || mine >= perSandbox) {
    if (mine == 0) server.activeExecsBySandbox.erase(sandboxId);
    const bool serverWide = server.activeExecs >= total;
    const std::string limit = std::to_string(serverWide ? total : perSandbox);
    return Error(ErrorCode::TooManyRequests,
                 std::string("too many buffered execs running ") +
                     (serverWide ? "on this server" : "in sandbox '" + sandboxId + "'") +
                     " (limit " + limit + "); retry when one has ended, or use the stream",
                 {{"limit", limit}, {"scope", serverWide ? "server" : "sandbox"}});
  }
  ++mine;
  ++server.activeExecs;
  return std::unique_ptr<BufferedExecSlot>(new BufferedExecSlot(server, sandboxId));
}

BufferedExecSlot::~BufferedExecSlot() {
  std::lock_guard lock(server_.execMu);
  --server_.activeExecs;
  auto it = server_.activeExecsBySandbox.find(id_);
  if (it != server_.activeExecsBySandbox.end() && --it->second <= 0)
    server_.activeExecsBySandbox.erase(it);
}

namespace {

// Feeds stdin on its own coroutine, so that a process filling its output before it has read
// all of its input never deadlocks against the reader.
asio::awaitable<void> feedStdin(std::shared_ptr<ExecSession> s, std::string data,
                                std::shared_ptr<bool> done, std::shared_ptr<Signal> signal) {
  if (!data.empty()) {
    auto w = execWriteStdin(s, std::move(data));
    (void)co_await std::move(w);  // a process that exits without reading: its choice
  }
  auto c = execCloseStdin(s);
  (void)co_await std::move(c);
  *done = true;
  signal->notify();
}

}  // namespace

asio::awaitable<Result<ExecResult>> runToCompletionAsync(std::shared_ptr<ExecSession> session,
                                                         std::optional<std::string> stdinData,
                                                         std::size_t maxOutputBytes) {
  auto ex = co_await asio::this_coro::executor;
  auto fed = std::make_shared<bool>(true);
  auto feederDone = std::make_shared<Signal>(ex);
  if (stdinData) {
    *fed = false;
    asio::co_spawn(ex, feedStdin(session, std::move(*stdinData), fed, feederDone), asio::detached);
  }
  // The feeder holds the session; the caller's reference outlives it because we wait for
  // the feeder before returning.
  auto finishFeeder = [&]() -> asio::awaitable<void> {
    while (!*fed)
      co_await feederDone->wait();
  };
  ExecResult out;
  std::optional<Error> failure;
  for (;;) {
    auto readOp = execRead(session);
    auto chunk = co_await std::move(readOp);
    if (!chunk.ok()) {
      failure = chunk.takeError();
      break;
    }
    if (!chunk.value()) break;
    auto& target = chunk.value()->stream == ExecStream::Stdout ? out.stdoutData : out.stderrData;
    if (target.size() + chunk.value()->data.size() > maxOutputBytes) {
      const std::string limit = std::to_string(maxOutputBytes);
      failure = Error(ErrorCode::ExecOutputTooLarge,
                      "output exceeds the limit of " + limit +
                          " bytes per stream for a buffered exec; stream larger outputs "
                          "(GET …/exec/stream)",
                      {{"limit", limit}});
      break;
    }
    target += chunk.value()->data;
  }
  if (failure) {
    auto c = execCancel(session);
    (void)co_await std::move(c);
    auto f = finishFeeder();
    co_await std::move(f);
    co_return *failure;
  }
  auto f = finishFeeder();
  co_await std::move(f);
  auto waitOp = execWait(session);
  auto code = co_await std::move(waitOp);
  if (!code.ok()) co_return code.takeError();
  out.exitCode = code.value();
  co_return out;
}

asio::awaitable<bool> ClientWatch::run() {
  for (;;) {
    if (stopped_) co_return false;
    boost::system::error_code ec;
    co_await socket_.async_wait(asio::ip::tcp::socket::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (stopped_) co_return false;
    if (ec) co_return ec != asio::error::operation_aborted;
    // A wait_read may complete with nothing to read (the reactor's readiness is edge
    // triggered and can be stale). Asio's own receive() then blocks in poll() — on the
    // connection's strand, which hung the whole request until the client gave up — so the
    // peek goes to the kernel directly and never blocks.
    char c = 0;
    const ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    // End of stream or an error: the client is gone. Bytes: its next request (pipelined).
    co_return n <= 0;
  }
}

void ClientWatch::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  socket_.cancel(ec);  // the HTTP side has no operation pending while the handler runs
}

}  // namespace agentpane::server
