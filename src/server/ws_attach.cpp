// GET /api/sandboxes/:id/tmux/:name/attach — a live view of a tmux pane (docs/api.md).
//
// Without a TTY, `tmux attach` cannot run through exec, so the server polls the pane
// (capture-pane) every attachPollInterval and sends the screen whenever it changed:
//   server -> client  text {"type":"screen","data":"<pane text>"}
//                     text {"type":"error","code","message"} then a close
//   client -> server  text frames: literal keys for the pane (no Enter added; send "\r")
// Query: ?lines=N (1..10000, default 50) rows of scroll-back in each screen.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <nlohmann/json.hpp>

#include "server/blocking.hpp"
#include "server/server_context.hpp"
#include "server/ws_channel.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using nlohmann::json;

namespace {

constexpr std::size_t kScreenHighWater = 256u << 10;

std::string errorFrame(const Error& e) {
  return dumpJson(
      json{{"type", "error"}, {"code", std::string(errorName(e.code))}, {"message", e.message}});
}

struct AttachState {
  bool done = false;
};

asio::awaitable<void> pollScreen(ServerContext& server, std::shared_ptr<WsChannel> ch,
                                 std::string id, std::string name, int lines,
                                 std::shared_ptr<AttachState> st) {
  asio::steady_timer tick(ch->executor());
  std::optional<std::string> last;
  while (!ch->closing() && !st->done) {
    auto screenCall = runBlocking(server.pool, [&server, id, name, lines] {
      return server.service.tmuxCapture(id, name, lines);
    });
    auto screen = co_await std::move(screenCall);
    if (ch->closing() || st->done) break;
    if (!screen.ok()) {
      ch->sendText(errorFrame(screen.error()));
      ch->close(websocket::close_code::normal);
      break;
    }
    // A slow client skips frames instead of queueing stale screens.
    if ((!last || *last != screen.value()) && ch->queuedBytes() <= kScreenHighWater) {
      last = screen.value();
      ch->sendText(dumpJson(json{{"type", "screen"}, {"data", screen.value()}}));
    }
    tick.expires_after(server.options.attachPollInterval);
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  st->done = true;
}

}  // namespace

asio::awaitable<void> runTmuxAttach(RequestContext& ctx, std::shared_ptr<WsChannel> ch) {
  ServerContext& server = ctx.server;
  const std::string id = ctx.param("id");
  const std::string name = ctx.param("name");
  int lines = 50;
  if (auto it = ctx.query.find("lines"); it != ctx.query.end()) {
    try {
      std::size_t used = 0;
      lines = std::stoi(it->second, &used);
      if (used != it->second.size() || lines < 1 || lines > 10000) throw std::out_of_range("lines");
    } catch (const std::exception&) {
      ch->sendText(errorFrame(Error(ErrorCode::ValidationError,
                                    "'lines' must be an integer 1..10000", {{"field", "lines"}})));
      co_return;
    }
  }

  // An attached viewer is use: the sandbox does not idle-stop under it (released on close).
  auto holding = server.service.holdActive(id);
  auto st = std::make_shared<AttachState>();
  asio::co_spawn(ch->executor(), pollScreen(server, ch, id, name, lines, st), asio::detached);

  for (;;) {
    auto msg = co_await ch->read();
    if (!msg) break;
    if (st->done) continue;
    if (!msg->text) {
      ch->sendText(errorFrame(Error(ErrorCode::ValidationError, "keys are sent as text frames")));
      continue;
    }
    if (msg->data.empty()) continue;
    auto sentCall = runBlocking(server.pool, [&server, id, name, text = msg->data] {
      return server.service.tmuxSendKeys(id, name, text, /*enter=*/false, "api");
    });
    auto sent = co_await std::move(sentCall);
    if (!sent.ok()) ch->sendText(errorFrame(sent.error()));
  }
  // The poller may be inside a capture; it sees `done` and exits on its own, holding what
  // it needs by value, so the close need not wait for it.
  st->done = true;
}

}  // namespace agentpane::server
