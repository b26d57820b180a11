// Durable commands (issue 11): POST/GET /api/sandboxes/:id/commands,
// GET/DELETE /api/sandboxes/:id/commands/:cid. The sandbox's agent keeps them; every call
// blocks on the agent channel, so it runs on the worker pool.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/base64.hpp"
#include "server/blocking.hpp"
#include "server/server_context.hpp"
#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
using nlohmann::json;

json commandStatusJson(const CommandStatus& s) {
  json j{{"id", s.id},
         {"argv", s.argv},
         {"running", s.running},
         {"state", s.state},
         {"firstCursor", s.firstCursor},
         {"endCursor", s.endCursor},
         {"startedAtMs", s.startedAtMs}};
  j["exitCode"] = s.exitCode ? json(*s.exitCode) : json(nullptr);
  j["endedAtMs"] = s.endedAtMs > 0 ? json(s.endedAtMs) : json(nullptr);
  return j;
}

namespace {

constexpr const char* kActor = "api";
// The longest a GET …?wait=N holds a request.
constexpr std::int64_t kMaxWaitMs = 25'000;

json outputJson(const CommandOutput& o) {
  json chunks = json::array();
  for (const auto& c : o.chunks) {
    chunks.push_back({{"stream", c.stream == ExecStream::Stderr ? "stderr" : "stdout"},
                      {"offset", c.offset},
                      {"data", base64Encode(c.data)}});
  }
  return json{{"cursor", o.cursor},
              {"nextCursor", o.nextCursor},
              {"chunks", chunks},
              {"command", commandStatusJson(o.status)}};
}

Result<std::uint64_t> queryU64(const RequestContext& ctx, const std::string& name,
                               std::uint64_t max) {
  auto it = ctx.query.find(name);
  if (it == ctx.query.end() || it->second.empty()) return std::uint64_t{0};
  const std::string& v = it->second;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9' || n > (max - static_cast<std::uint64_t>(c - '0')) / 10) {
      return Error(ErrorCode::ValidationError,
                   "'" + name + "' must be an integer 0.." + std::to_string(max),
                   {{"field", name}});
    }
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

Result<void> onlyQueryOf(const RequestContext& ctx, std::initializer_list<std::string_view> ok) {
  for (const auto& [k, v] : ctx.query) {
    bool known = false;
    for (auto a : ok)
      known = known || a == k;
    if (!known) {
      return Error(ErrorCode::ValidationError, "unknown query parameter '" + k + "'",
                   {{"field", k}});
    }
  }
  return {};
}

}  // namespace

asio::awaitable<Reply> startCommand(RequestContext& ctx) {
  auto body = parseJsonObject(ctx.req.body());
  if (!body.ok()) co_return errorReply(body.error());
  json j = std::move(body.value());
  for (const char* refused : {"stdin", "stdinBase64", "root", "base64", "encoding"}) {
    if (j.contains(refused)) {
      co_return errorReply(
          Error(ErrorCode::ValidationError,
                std::string("'") + refused + "' is not available for durable commands (use /exec)",
                {{"field", refused}}));
    }
  }
  auto req = execApiRequestFromJson(j);
  if (!req.ok()) co_return errorReply(req.error());
  ExecRequest r = std::move(req.value().request);
  auto call = runBlocking(ctx.server.pool, [&ctx, id = ctx.param("id"), r]() {
    return ctx.server.service.commandStart(id, r.argv, r.options, kActor);
  });
  auto started = co_await std::move(call);
  co_return replyFrom(
      started, [](const CommandStatus& s) { return commandStatusJson(s); }, 201);
}

asio::awaitable<Reply> listCommands(RequestContext& ctx) {
  if (auto q = onlyQueryOf(ctx, {}); !q.ok()) co_return errorReply(q.error());
  auto call = runBlocking(ctx.server.pool, [&ctx, id = ctx.param("id")]() {
    return ctx.server.service.commandList(id);
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const std::vector<CommandStatus>& v) {
    json a = json::array();
    for (const auto& s : v)
      a.push_back(commandStatusJson(s));
    return a;
  });
}

asio::awaitable<Reply> getCommand(RequestContext& ctx) {
  if (auto q = onlyQueryOf(ctx, {"cursor", "wait"}); !q.ok()) co_return errorReply(q.error());
  auto cursor = queryU64(ctx, "cursor", UINT64_MAX / 2);
  if (!cursor.ok()) co_return errorReply(cursor.error());
  auto wait = queryU64(ctx, "wait", kMaxWaitMs);
  if (!wait.ok()) co_return errorReply(wait.error());
  auto call = runBlocking(ctx.server.pool, [&ctx, id = ctx.param("id"), cid = ctx.param("cid"),
                                            c = *cursor, w = *wait]() {
    return ctx.server.service.commandOutput(id, cid, c, std::chrono::milliseconds(w));
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const CommandOutput& o) { return outputJson(o); });
}

asio::awaitable<Reply> killCommand(RequestContext& ctx) {
  if (auto q = onlyQueryOf(ctx, {}); !q.ok()) co_return errorReply(q.error());
  auto call = runBlocking(ctx.server.pool, [&ctx, id = ctx.param("id"), cid = ctx.param("cid")]() {
    return ctx.server.service.commandKill(id, cid, kActor);
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const CommandStatus& s) { return commandStatusJson(s); });
}

}  // namespace agentpane::server
