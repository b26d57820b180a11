// GET /api/sandboxes/:id/tmux/:name/attach — a live terminal on a tmux session (docs/api.md).
//
// One long-lived stream per viewer: a `tmux attach-session` run under a pseudo-terminal
// (ExecOptions::tty), driven through ExecSession's asynchronous form like the exec stream.
// Nothing polls: while nobody types and the pane is quiet, no exec runs and nothing is sent.
//   server -> client  binary: the terminal's bytes (escape sequences included)
//                     text {"type":"exit","exitCode":n} when tmux detaches or the session ends
//                     text {"type":"error","code","message"}, then a close
//   client -> server  binary frames: bytes typed into the terminal, as they are (send "\r"
//                     for Enter); text frames the same, unless the viewer opened with
//                     ?control=1: then a text frame is a control message,
//                     {"type":"resize","rows":R,"cols":C} (1..1000) resizing the terminal
//                     (tmux redraws for it). A bad one is answered with an error frame
//                     (VALIDATION_ERROR) and the stream goes on.
// Query: ?rows=R&cols=C (1..1000, default 50 x 200), the terminal's size at open;
// ?control=1 (or 0), whether text frames are control messages. Opt-in, so that clients that
// type in text frames keep working.
// The session is audited once, when the viewer leaves (an "exec" entry with its duration),
// not per keystroke.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <utility>

#include "agentpane/tmux.hpp"
#include "common/exec_async.hpp"
#include "server/blocking.hpp"
#include "server/exec_runner.hpp"
#include "server/server_context.hpp"
#include "server/ws_channel.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using nlohmann::json;

namespace {

constexpr std::size_t kTerminalHighWater = 1u << 20;

Result<int> sizeParam(const RequestContext& ctx, const std::string& name, int fallback) {
  auto it = ctx.query.find(name);
  if (it == ctx.query.end()) return fallback;
  try {
    std::size_t used = 0;
    int v = std::stoi(it->second, &used);
    if (used != it->second.size() || v < 1 || v > 1000) throw std::out_of_range(name);
    return v;
  } catch (const std::exception&) {
    return Error(ErrorCode::ValidationError, "'" + name + "' must be an integer 1..1000",
                 {{"field", name}});
  }
}

struct TerminalSize {
  int rows = 0;
  int cols = 0;
};

// A control message of a ?control=1 viewer (see the file's head).
Result<TerminalSize> parseControl(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return Error(ErrorCode::ValidationError,
                 "a text frame is a control message here (?control=1): a JSON object");
  }
  const std::string type = j.value("type", "");
  if (type != "resize") {
    return Error(ErrorCode::ValidationError, "unknown control message type '" + type + "'",
                 {{"field", "type"}});
  }
  TerminalSize size;
  for (auto [name, out] :
       {std::pair<const char*, int*>{"rows", &size.rows}, {"cols", &size.cols}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_integer() || it->get<std::int64_t>() < 1 ||
        it->get<std::int64_t>() > 1000) {
      return Error(ErrorCode::ValidationError,
                   std::string("'") + name + "' must be an integer 1..1000", {{"field", name}});
    }
    *out = it->get<int>();
  }
  return size;
}

struct AttachState {
  std::shared_ptr<ExecSession> session;
  bool done = false;
  bool canceled = false;
};

asio::awaitable<void> cancelOnce(std::shared_ptr<AttachState> st) {
  if (st->canceled) co_return;
  st->canceled = true;
  auto op = execCancel(st->session);
  (void)co_await std::move(op);
}

// The terminal's output to the viewer, with back-pressure (a slow viewer slows tmux's
// writes to this client only).
asio::awaitable<void> pumpTerminal(std::shared_ptr<WsChannel> ch, std::shared_ptr<AttachState> st,
                                   std::shared_ptr<Signal> finished) {
  auto session = st->session;
  for (;;) {
    auto readOp = execRead(session);
    auto chunk = co_await std::move(readOp);
    if (!chunk.ok()) {
      if (!st->canceled) ch->sendText(errorFrame(chunk.error()));
      break;
    }
    if (!chunk.value()) {
      auto waitOp = execWait(session);
      auto code = co_await std::move(waitOp);
      if (code.ok()) {
        ch->sendText(dumpJson(json{{"type", "exit"}, {"exitCode", code.value()}}));
      } else {
        ch->sendText(errorFrame(code.error()));
      }
      break;
    }
    ch->sendBinary(std::move(chunk.value()->data));
    co_await ch->waitForSpace(kTerminalHighWater);
    if (ch->closing()) {
      auto c = cancelOnce(st);
      co_await std::move(c);
      break;
    }
  }
  st->done = true;
  ch->close(websocket::close_code::normal);
  finished->notify();
}

}  // namespace

asio::awaitable<void> runTmuxAttach(RequestContext& ctx, std::shared_ptr<WsChannel> ch) {
  ServerContext& server = ctx.server;
  const std::string id = ctx.param("id");
  const std::string name = ctx.param("name");
  for (const auto& [k, v] : ctx.query) {
    if (k != "rows" && k != "cols" && k != "control") {
      ch->sendText(errorFrame(Error(ErrorCode::ValidationError,
                                    "unknown query parameter '" + k + "'", {{"field", k}})));
      co_return;
    }
  }
  auto rows = sizeParam(ctx, "rows", 50);
  auto cols = sizeParam(ctx, "cols", 200);
  if (!rows.ok() || !cols.ok()) {
    ch->sendText(errorFrame(!rows.ok() ? rows.error() : cols.error()));
    co_return;
  }
  bool control = false;
  if (auto it = ctx.query.find("control"); it != ctx.query.end()) {
    if (it->second != "0" && it->second != "1") {
      ch->sendText(errorFrame(
          Error(ErrorCode::ValidationError, "'control' must be 0 or 1", {{"field", "control"}})));
      co_return;
    }
    control = it->second == "1";
  }

  // One look before attaching, so that a missing session is its own error rather than
  // tmux's words on the terminal.
  auto checkCall = runBlocking(
      server.pool, [&server, id, name] { return server.service.tmuxCapture(id, name, 1); });
  auto exists = co_await std::move(checkCall);
  if (!exists.ok()) {
    ch->sendText(errorFrame(exists.error()));
    co_return;
  }
  ExecOptions opts;
  opts.tty = true;
  opts.ttyRows = rows.value();
  opts.ttyColumns = cols.value();
  opts.attachStdin = true;
  opts.env = {{"TERM", "xterm-256color"}};
  auto openOp = openExecOnPool(server, id, {"tmux", "attach-session", "-t", "=" + name}, opts);
  auto opened = co_await std::move(openOp);
  if (!opened.ok()) {
    ch->sendText(errorFrame(opened.error()));
    co_return;
  }

  // An attached viewer is use: the sandbox does not idle-stop under it (released on close).
  auto holding = server.service.holdActive(id);
  auto st = std::make_shared<AttachState>();
  st->session = std::move(opened.value());
  auto finished = std::make_shared<Signal>(ch->executor());
  asio::co_spawn(ch->executor(), pumpTerminal(ch, st, finished), asio::detached);

  auto session = st->session;
  for (;;) {
    auto msg = co_await ch->read();
    if (!msg) break;
    if (st->done || msg->data.empty()) continue;
    if (control && msg->text) {
      auto size = parseControl(msg->data);
      if (!size.ok()) {
        ch->sendText(errorFrame(size.error()));
        continue;
      }
      auto rOp = execResize(session, size->rows, size->cols);
      auto resized = co_await std::move(rOp);
      if (!resized.ok() && !st->done) ch->sendText(errorFrame(resized.error()));
      continue;
    }
    auto wOp = execWriteStdin(session, std::move(msg->data));
    auto w = co_await std::move(wOp);
    if (!w.ok() && !st->done) {
      ch->sendText(errorFrame(w.error()));
      break;
    }
  }
  // The viewer left: end its tmux client (the tmux session itself lives on).
  if (!st->done) {
    auto c = cancelOnce(st);
    co_await std::move(c);
  }
  while (!st->done)
    co_await finished->wait();
}

}  // namespace agentpane::server
