// GET /api/sandboxes/:id/exec/stream — streaming exec over one WebSocket (docs/api.md).
//
//   client -> server  1st message, text: {"argv":[...],"root":bool?,"timeoutSeconds":n?,
//                                          "workingDir":"..."?,"env":{...}?,"stdin":bool?}
//                     binary: stdin bytes;  text {"type":"eof"}: close stdin
//   server -> client  binary: [1|2] + bytes (1 stdout, 2 stderr)
//                     text {"type":"exit","exitCode":n} | {"type":"error","code","message"}
//                     then a normal close.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <nlohmann/json.hpp>

#include "common/exec_async.hpp"
#include "server/blocking.hpp"
#include "server/exec_runner.hpp"
#include "server/server_context.hpp"
#include "server/ws_channel.hpp"
#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kOutHighWater = 1u << 20;  // queued output before we stop reading the process

// The start message is read by the same parser as the buffered exec's body.
Result<ExecStreamStart> parseStart(const std::string& text) {
  auto obj = parseJsonObject(text);
  if (!obj.ok()) return obj.takeError();
  return execStreamStartFromJson(obj.value());
}

// State shared by the reader (handler) and the output pump; both run on the channel's strand.
// The session is driven only through its asynchronous form, so a chunk goes from the
// provider's I/O thread straight to this strand: no worker thread per stream, and nothing
// here blocks (opening the exec and the final release, which audits, run on the pool).
struct StreamState {
  std::shared_ptr<ExecSession> session;
  bool pumpDone = false;
  bool stdinClosed = false;
  bool canceled = false;
};

// Kills the process without blocking the strand; the pump then sees its read fail.
asio::awaitable<void> cancelOnce(std::shared_ptr<StreamState> st) {
  if (st->canceled) co_return;
  st->canceled = true;
  auto op = execCancel(st->session);
  (void)co_await std::move(op);
}

asio::awaitable<void> pumpOutput(ServerContext& server, std::shared_ptr<WsChannel> ch,
                                 std::shared_ptr<StreamState> st, std::string provider,
                                 Clock::time_point startedAt, std::shared_ptr<Signal> done) {
  auto session = st->session;
  std::string result = "error";
  for (;;) {
    auto readOp = execRead(session);
    auto chunk = co_await std::move(readOp);
    if (!chunk.ok()) {
      result = chunk.error().code == ErrorCode::ExecTimeout ? "timeout" : "error";
      ch->sendText(errorFrame(chunk.error()));
      break;
    }
    if (!chunk.value()) {
      auto waitOp = execWait(session);
      auto code = co_await std::move(waitOp);
      result = execResultLabel(code);
      if (code.ok()) {
        ch->sendText(dumpJson(json{{"type", "exit"}, {"exitCode", code.value()}}));
      } else {
        ch->sendText(errorFrame(code.error()));
      }
      break;
    }
    std::string frame;
    frame.reserve(chunk.value()->data.size() + 1);
    frame.push_back(static_cast<char>(chunk.value()->stream == ExecStream::Stdout ? 1 : 2));
    frame += chunk.value()->data;
    ch->sendBinary(std::move(frame));
    // Back-pressure: a slow client slows the process down instead of growing our memory.
    co_await ch->waitForSpace(kOutHighWater);
    if (ch->closing()) {
      auto c = cancelOnce(st);
      co_await std::move(c);
      result = "error";
      break;
    }
  }
  server.metrics.recordExec(provider, result,
                            std::chrono::duration<double>(Clock::now() - startedAt).count());
  st->pumpDone = true;
  ch->close(websocket::close_code::normal);
  done->notify();
}

}  // namespace

asio::awaitable<void> runExecStream(RequestContext& ctx, std::shared_ptr<WsChannel> ch) {
  ServerContext& server = ctx.server;
  const std::string id = ctx.param("id");

  // The first message says what to run; a client that says nothing is dropped.
  asio::steady_timer startDeadline(ch->executor());
  startDeadline.expires_after(server.options.wsStartTimeout);
  startDeadline.async_wait(
      [weak = std::weak_ptr<WsChannel>(ch)](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto c = weak.lock()) c->abort();
      });
  auto first = co_await ch->read();
  startDeadline.cancel();
  if (!first) co_return;
  if (!first->text) {
    ch->sendText(errorFrame(
        Error(ErrorCode::ValidationError, "the first message must be a JSON text frame")));
    co_return;
  }
  auto start = parseStart(first->data);
  if (!start.ok()) {
    ch->sendText(errorFrame(start.error()));
    co_return;
  }

  const auto startedAt = Clock::now();
  auto openedCall = openExecOnPool(server, id, start->argv, start->options);
  auto opened = co_await std::move(openedCall);
  auto providerCall =
      runBlocking(server.pool, [&server, id] { return providerLabel(server.service, id); });
  std::string provider = co_await std::move(providerCall);
  if (!opened.ok()) {
    server.metrics.recordExec(provider, "error",
                              std::chrono::duration<double>(Clock::now() - startedAt).count());
    ch->sendText(errorFrame(opened.error()));
    co_return;
  }

  auto st = std::make_shared<StreamState>();
  st->session = std::move(opened.value());
  st->stdinClosed = !start->options.attachStdin;
  auto pumpFinished = std::make_shared<Signal>(ch->executor());
  asio::co_spawn(ch->executor(), pumpOutput(server, ch, st, provider, startedAt, pumpFinished),
                 asio::detached);

  auto session = st->session;
  for (;;) {
    auto msg = co_await ch->read();
    if (!msg) break;
    if (st->pumpDone) continue;  // finished: wait for the client's close reply
    if (!msg->text) {
      if (st->stdinClosed) continue;  // the process has no stdin any more; drop quietly
      auto wOp = execWriteStdin(session, std::move(msg->data));
      auto w = co_await std::move(wOp);
      // A process that exits without reading its stdin makes writes fail; that is the
      // process's choice and the exit frame will say how it ended.
      if (!w.ok()) st->stdinClosed = true;
      continue;
    }
    json j = json::parse(msg->data, nullptr, false);
    if (j.is_object() && j.size() == 1 && j.contains("type") && j["type"] == "eof") {
      if (!st->stdinClosed) {
        st->stdinClosed = true;
        auto closeOp = execCloseStdin(session);
        (void)co_await std::move(closeOp);
      }
      continue;
    }
    ch->sendText(errorFrame(
        Error(ErrorCode::ValidationError, R"(unknown control message (expected {"type":"eof"}))")));
    // Closing now keeps the error the last word: the pump's exit report is dropped.
    ch->close(websocket::close_code::normal);
    auto c = cancelOnce(st);
    co_await std::move(c);
    break;
  }
  // The client went away (or broke the protocol) before the process ended: kill it rather
  // than leave it running unobserved. The pump then reports and closes.
  if (!st->pumpDone) {
    auto c = cancelOnce(st);
    co_await std::move(c);
  }
  while (!st->pumpDone)
    co_await pumpFinished->wait();
}

}  // namespace agentpane::server
