// GET /api/sandboxes/:id/commands/:cid/follow?cursor=N — one durable command, live, over a
// WebSocket (docs/api.md).
//
//   server -> client  text {"type":"begin","cursor":c,"command":{…}} once: output starts at c
//                     binary: [1|2] + bytes (stdout / stderr), in order, from the cursor on
//                     text {"type":"skip","cursor":c} when the ring dropped bytes: the next
//                     output starts at c
//                     text {"type":"exit","exitCode":n,"state":"…","cursor":c} at the end
//                     text {"type":"error","code","message"}, then a close
//   client -> server  nothing (messages are ignored); closing stops following, the command
//                     runs on.
// No thread waits: the agent channel pushes events, which are posted onto this strand. A slow
// client is not buffered without bound: past a high-water mark the follow stops, and once the
// client has drained it starts again from the cursor it reached (the agent's ring has the
// bytes; what it dropped meanwhile is a skip).
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <deque>
#include <nlohmann/json.hpp>

#include "agentpane/commands.hpp"
#include "server/blocking.hpp"
#include "server/server_context.hpp"
#include "server/ws_channel.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using nlohmann::json;

namespace {

// Queued for the client beyond this, the follow pauses; it resumes below kResume.
constexpr std::size_t kHighWater = 1u << 20;
constexpr std::size_t kResume = 256u << 10;

// What the channel's events left for the strand. `generation` tells a paused follow's late
// events from the current one's.
struct FollowState {
  std::uint64_t generation = 0;
  std::optional<std::pair<std::uint64_t, CommandStatus>> begin;
  std::deque<CommandChunk> chunks;
  std::optional<Result<CommandStatus>> end;
  bool clientGone = false;
};

CommandEvents eventsFor(asio::any_io_executor ex, std::weak_ptr<FollowState> weak,
                        std::shared_ptr<Signal> wake, std::uint64_t generation) {
  // Each event hops onto the strand; the state is only touched there.
  auto onStrand = [ex, weak, wake, generation](auto apply) {
    asio::post(ex, [weak, wake, generation, apply = std::move(apply)]() mutable {
      auto st = weak.lock();
      if (!st || st->generation != generation) return;
      apply(*st);
      wake->notify();
    });
  };
  CommandEvents ev;
  ev.begin = [onStrand](std::uint64_t cursor, const CommandStatus& status) {
    onStrand([cursor, status](FollowState& st) { st.begin.emplace(cursor, status); });
  };
  ev.chunk = [onStrand](CommandChunk c) {
    onStrand([c = std::move(c)](FollowState& st) mutable { st.chunks.push_back(std::move(c)); });
  };
  ev.end = [onStrand](Result<CommandStatus> final) {
    onStrand([final = std::move(final)](FollowState& st) mutable { st.end = std::move(final); });
  };
  return ev;
}

Result<std::uint64_t> cursorParam(const RequestContext& ctx) {
  for (const auto& [k, v] : ctx.query) {
    if (k != "cursor") {
      return Error(ErrorCode::ValidationError, "unknown query parameter '" + k + "'",
                   {{"field", k}});
    }
  }
  auto it = ctx.query.find("cursor");
  if (it == ctx.query.end()) return std::uint64_t{0};
  const std::string& v = it->second;
  std::uint64_t n = 0;
  constexpr std::uint64_t kMax = UINT64_MAX / 2;
  if (v.empty())
    return Error(ErrorCode::ValidationError, "'cursor' is empty", {{"field", "cursor"}});
  for (char c : v) {
    if (c < '0' || c > '9' || n > (kMax - static_cast<std::uint64_t>(c - '0')) / 10) {
      return Error(ErrorCode::ValidationError,
                   "'cursor' must be an integer 0.." + std::to_string(kMax), {{"field", "cursor"}});
    }
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

struct FollowRun {
  ServerContext& server;
  std::string id, cid;
  std::uint64_t pos;  // the next byte the client expects
  std::shared_ptr<FollowState> st;
  std::shared_ptr<Signal> wake;
  bool done = false;
};

asio::awaitable<Result<std::unique_ptr<CommandFollow>>> startFollow(
    const std::shared_ptr<WsChannel>& ch, FollowRun& run) {
  const std::uint64_t generation = ++run.st->generation;
  auto call =
      runBlocking(run.server.pool, [&server = run.server, id = run.id, cid = run.cid, pos = run.pos,
                                    ev = eventsFor(ch->executor(), run.st, run.wake, generation)] {
        return server.service.commandFollow(id, cid, pos, ev);
      });
  co_return co_await std::move(call);
}

// Sends what the follow delivers until the command ends or the client leaves; pauses and
// resumes the follow for a slow client.
asio::awaitable<void> pumpFollow(std::shared_ptr<WsChannel> ch, std::shared_ptr<FollowRun> run,
                                 std::unique_ptr<CommandFollow> follow,
                                 std::shared_ptr<Signal> finished) {
  FollowState& st = *run->st;
  bool begun = false;
  for (;;) {
    bool paused = false;
    while (!paused) {
      while (!st.begin && st.chunks.empty() && !st.end && !st.clientGone && !ch->closing())
        co_await run->wake->wait();
      if (st.clientGone || ch->closing()) break;
      if (st.begin) {
        auto [from, status] = std::move(*st.begin);
        st.begin.reset();
        if (!begun) {
          begun = true;
          ch->sendText(dumpJson(
              json{{"type", "begin"}, {"cursor", from}, {"command", commandStatusJson(status)}}));
        } else if (from > run->pos) {
          ch->sendText(dumpJson(json{{"type", "skip"}, {"cursor", from}}));
        }
        run->pos = std::max(run->pos, from);
      }
      while (!st.chunks.empty()) {
        CommandChunk c = std::move(st.chunks.front());
        st.chunks.pop_front();
        const std::uint64_t endOff = c.offset + c.data.size();
        if (endOff <= run->pos) continue;  // already sent (a resumed follow's replay)
        if (c.offset > run->pos) {
          ch->sendText(dumpJson(json{{"type", "skip"}, {"cursor", c.offset}}));
        } else if (c.offset < run->pos) {
          c.data.erase(0, static_cast<std::size_t>(run->pos - c.offset));
        }
        std::string frame;
        frame.reserve(c.data.size() + 1);
        frame.push_back(static_cast<char>(c.stream == ExecStream::Stderr ? 2 : 1));
        frame += c.data;
        ch->sendBinary(std::move(frame));
        run->pos = endOff;
      }
      if (st.end) {
        Result<CommandStatus> final = std::move(*st.end);
        st.end.reset();
        if (final.ok()) {
          json exit{{"type", "exit"},
                    {"state", final->state},
                    {"cursor", std::max(run->pos, final->endCursor)}};
          exit["exitCode"] = final->exitCode ? json(*final->exitCode) : json(nullptr);
          ch->sendText(dumpJson(exit));
        } else {
          ch->sendText(errorFrame(final.error()));
        }
        break;
      }
      if (ch->queuedBytes() > kHighWater) {
        // Stop taking output; what arrived meanwhile is dropped and fetched again from pos.
        follow->stop();
        ++st.generation;
        st.begin.reset();
        st.chunks.clear();
        co_await ch->waitForSpace(kResume);
        paused = true;
      }
    }
    follow->stop();
    if (!paused || ch->closing() || st.clientGone) break;
    auto again = co_await startFollow(ch, *run);
    if (!again.ok()) {
      ch->sendText(errorFrame(again.error()));
      break;
    }
    follow = std::move(again.value());
  }
  ch->close(websocket::close_code::normal);
  run->done = true;
  finished->notify();
}

}  // namespace

asio::awaitable<void> runCommandFollow(RequestContext& ctx, std::shared_ptr<WsChannel> ch) {
  auto cursor = cursorParam(ctx);
  if (!cursor.ok()) {
    ch->sendText(errorFrame(cursor.error()));
    co_return;
  }
  auto run = std::make_shared<FollowRun>(FollowRun{ctx.server, ctx.param("id"), ctx.param("cid"),
                                                   cursor.value(), std::make_shared<FollowState>(),
                                                   std::make_shared<Signal>(ch->executor())});
  auto first = co_await startFollow(ch, *run);
  if (!first.ok()) {
    ch->sendText(errorFrame(first.error()));
    co_return;
  }
  // A follower is use: the sandbox does not idle-stop under it (released on close).
  auto holding = ctx.server.service.holdActive(run->id);
  auto finished = std::make_shared<Signal>(ch->executor());
  asio::co_spawn(ch->executor(), pumpFollow(ch, run, std::move(first.value()), finished),
                 asio::detached);
  while (co_await ch->read()) {
    // Nothing is expected from the client; it is read to notice its leaving.
  }
  run->st->clientGone = true;
  run->wake->notify();
  while (!run->done)
    co_await finished->wait();
}

}  // namespace agentpane::server
