// The REST routes of SPEC "Server API". Each handler parses and checks its input, runs the
// blocking service call on the worker pool, and answers with the JSON envelope.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "agentpane/tmux.hpp"
#include "common/exec_async.hpp"
#include "common/time.hpp"
#include "server/blocking.hpp"
#include "server/exec_runner.hpp"
#include "server/server_context.hpp"
#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
using http_verb = boost::beast::http::verb;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kActor = "api";

template <typename F>
asio::awaitable<std::invoke_result_t<F&>> blocking(RequestContext& ctx, F fn) {
  return runBlocking(ctx.server.pool, std::move(fn));
}

template <typename T>
json arrayOf(const std::vector<T>& items) {
  json a = json::array();
  for (const auto& i : items)
    a.push_back(toJson(i));
  return a;
}

// Query parameters a route does not know are refused rather than silently ignored.
Result<void> onlyQuery(const RequestContext& ctx, std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : ctx.query) {
    bool known = false;
    for (auto a : allowed)
      known = known || a == k;
    if (!known) return fieldError(k, "unknown query parameter '" + k + "'");
  }
  return {};
}

Result<std::optional<std::int64_t>> queryInt(const RequestContext& ctx, const std::string& name,
                                             std::int64_t min, std::int64_t max) {
  auto it = ctx.query.find(name);
  if (it == ctx.query.end()) return std::optional<std::int64_t>{};
  try {
    std::size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size() || v < min || v > max) throw std::out_of_range(name);
    return std::optional<std::int64_t>(v);
  } catch (const std::exception&) {
    return fieldError(name, "'" + name + "' must be an integer " + std::to_string(min) + ".." +
                                std::to_string(max));
  }
}

Result<json> bodyObject(const RequestContext& ctx) {
  return parseJsonObject(ctx.req.body());
}

Reply deleted(const std::string& key, const std::string& value) {
  return okReply(json{{key, value}, {"deleted", true}});
}

// --- health, session, metrics ---------------------------------------------------------------

asio::awaitable<Reply> health(RequestContext&) {
  co_return okReply(json{{"status", "ok"}, {"version", kServerVersion}});
}

asio::awaitable<Reply> createSession(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"token"});
  if (!f.ok()) co_return errorReply(f.error());
  auto token = f->requiredString("token");
  if (!token.ok()) co_return errorReply(token.error());
  if (!constantTimeEquals(token.value(), ctx.server.token)) {
    std::string remote;
    boost::system::error_code ec;
    if (ctx.socket != nullptr) {
      if (auto ep = ctx.socket->remote_endpoint(ec); !ec) remote = ep.address().to_string();
    }
    auditAuthFailure(ctx.server, ctx.route, "POST", remote, "wrong token for a session");
    co_return errorReply(ErrorCode::Unauthorized, "wrong token");
  }
  auto ttl = ctx.server.sessions.ttl();
  std::string id = ctx.server.sessions.create();
  Reply r = okReply(json{{"expiresInSeconds", ttl.count()}});
  r.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) + "=" + id +
                                           "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" +
                                           std::to_string(ttl.count()));
  co_return r;
}

asio::awaitable<Reply> deleteSession(RequestContext& ctx) {
  if (auto h = ctx.req.find(boost::beast::http::field::cookie); h != ctx.req.end()) {
    if (auto id = cookieValue(h->value(), kSessionCookie)) ctx.server.sessions.remove(*id);
  }
  Reply r = okReply(json{{"loggedOut", true}});
  r.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) +
                                           "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
  co_return r;
}

asio::awaitable<Reply> metrics(RequestContext& ctx) {
  auto countsCall = blocking(ctx, [&ctx] { return ctx.server.service.sandboxCounts(); });
  auto counts = co_await std::move(countsCall);
  auto poolsCall = blocking(ctx, [&ctx] { return ctx.server.service.warmPools(); });
  auto pools = co_await std::move(poolsCall);
  Reply r;
  r.body =
      ctx.server.metrics.render(counts, pools.ok() ? pools.value() : std::vector<WarmPoolInfo>{});
  r.contentType = "text/plain; version=0.0.4; charset=utf-8";
  co_return r;
}

// --- warm pool ------------------------------------------------------------------------------

asio::awaitable<Reply> getPool(RequestContext& ctx) {
  if (auto q = onlyQuery(ctx, {}); !q.ok()) co_return errorReply(q.error());
  auto call = blocking(ctx, [&ctx] { return ctx.server.service.warmPools(); });
  auto pools = co_await std::move(call);
  if (!pools.ok()) co_return errorReply(pools.error());
  co_return okReply(json{{"pools", arrayOf(pools.value())}});
}

asio::awaitable<Reply> prewarm(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto req = prewarmRequestFromJson(body.value());
  if (!req.ok()) co_return errorReply(req.error());
  auto call = blocking(ctx, [&ctx, r = req.value()] {
    return ctx.server.service.prewarm(r.profile, r.count, kActor);
  });
  auto pool = co_await std::move(call);
  if (!pool.ok()) co_return errorReply(pool.error());
  co_return okReply(toJson(pool.value()));
}

// --- configs --------------------------------------------------------------------------------

asio::awaitable<Reply> listConfigs(RequestContext& ctx) {
  auto rCall = blocking(ctx, [&ctx] { return ctx.server.service.listConfigs(); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return arrayOf(v); });
}

asio::awaitable<Reply> createConfig(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto cfg = configFromCreateJson(body.value());
  if (!cfg.ok()) co_return errorReply(cfg.error());
  auto rCall = blocking(ctx, [&ctx, c = std::move(cfg.value())]() mutable {
    return ctx.server.service.createConfig(std::move(c));
  });
  auto r = co_await std::move(rCall);
  co_return replyFrom(
      r, [](const auto& v) { return toJson(v); }, 201);
}

asio::awaitable<Reply> getConfig(RequestContext& ctx) {
  auto rCall =
      blocking(ctx, [&ctx, id = ctx.param("id")] { return ctx.server.service.getConfig(id); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

asio::awaitable<Reply> patchConfig(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto rCall = blocking(
      ctx,
      [&ctx, id = ctx.param("id"), patch = std::move(body.value())]() -> Result<SandboxConfig> {
        auto& svc = ctx.server.service;
        auto base = svc.getConfig(id);
        if (!base.ok()) return base.takeError();
        auto merged = applyConfigPatch(base.value(), patch);
        if (!merged.ok()) return merged.takeError();
        return svc.updateConfig(merged.value());
      });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

asio::awaitable<Reply> deleteConfig(RequestContext& ctx) {
  auto id = ctx.param("id");
  auto rCall = blocking(ctx, [&ctx, id] { return ctx.server.service.deleteConfig(id); });
  auto r = co_await std::move(rCall);
  if (!r.ok()) co_return errorReply(r.error());
  co_return deleted("id", id);
}

// --- sandboxes ------------------------------------------------------------------------------

asio::awaitable<Reply> listSandboxes(RequestContext& ctx) {
  auto rCall = blocking(ctx, [&ctx] { return ctx.server.service.listSandboxes(); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return arrayOf(v); });
}

asio::awaitable<Reply> createSandbox(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto req = createSandboxRequestFromJson(body.value());
  if (!req.ok()) co_return errorReply(req.error());
  auto run = runCreate(ctx, std::move(req.value()));
  co_return co_await std::move(run);
}

// POST /api/sandboxes/:id/migrate {"to":"docker"|"kubernetes"}: a create on the other
// provider, then the old one removed; answered (and streamed) as a create is.
asio::awaitable<Reply> migrateSandbox(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"to"});
  if (!f.ok()) co_return errorReply(f.error());
  auto name = f->requiredString("to");
  if (!name.ok()) co_return errorReply(name.error());
  auto to = providerTypeFromString(name.value());
  if (!to) co_return errorReply(fieldError("to", "'to' must be \"docker\" or \"kubernetes\""));
  auto run = runCreateLike(
      ctx, [id = ctx.param("id"), to = *to](SandboxService& service, const CreateControl& control) {
        return service.migrateSandbox(id, to, kActor, control);
      });
  co_return co_await std::move(run);
}

asio::awaitable<Reply> getSandbox(RequestContext& ctx) {
  auto rCall =
      blocking(ctx, [&ctx, id = ctx.param("id")] { return ctx.server.service.getSandbox(id); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

asio::awaitable<Reply> deleteSandbox(RequestContext& ctx) {
  auto id = ctx.param("id");
  auto rCall = blocking(ctx, [&ctx, id] { return ctx.server.service.removeSandbox(id, kActor); });
  auto r = co_await std::move(rCall);
  if (!r.ok()) co_return errorReply(r.error());
  co_return deleted("id", id);
}

asio::awaitable<Reply> stopSandbox(RequestContext& ctx) {
  auto id = ctx.param("id");
  auto rCall = blocking(ctx, [&ctx, id]() -> Result<SandboxRecord> {
    auto stopped = ctx.server.service.stopSandbox(id, kActor);
    if (!stopped.ok()) return stopped.takeError();
    return ctx.server.service.getSandbox(id);
  });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

// PATCH {"allowEgress": [...]}: replaces the running sandbox's egress allowlist; the answer is
// the sandbox, whose "egress" lists what is enforced and any name that did not resolve.
asio::awaitable<Reply> patchSandbox(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"allowEgress"});
  if (!f.ok()) co_return errorReply(f.error());
  auto list = f->optionalStringArray("allowEgress");
  if (!list.ok()) co_return errorReply(list.error());
  if (!list->has_value()) {
    co_return errorReply(Error(ErrorCode::ValidationError, "allowEgress (a list) is required",
                               {{"field", "allowEgress"}}));
  }
  auto rCall = blocking(ctx, [&ctx, id = ctx.param("id"), l = std::move(**list)] {
    return ctx.server.service.setEgress(id, l, kActor);
  });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

asio::awaitable<Reply> startSandbox(RequestContext& ctx) {
  auto id = ctx.param("id");
  auto rCall = blocking(ctx, [&ctx, id] { return ctx.server.service.startSandbox(id, kActor); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return toJson(v); });
}

asio::awaitable<Reply> execSandbox(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  // `"encoding":"base64"` is accepted as another spelling of `"base64":true`.
  json j = std::move(body.value());
  if (j.contains("encoding")) {
    const auto& e = j["encoding"];
    if (!e.is_string() || (e != "base64" && e != "utf-8")) {
      co_return errorReply(fieldError("encoding", "'encoding' must be \"base64\" or \"utf-8\""));
    }
    if (e == "base64") j["base64"] = true;
    j.erase("encoding");
  }
  auto req = execApiRequestFromJson(j);
  if (!req.ok()) co_return errorReply(req.error());
  ExecApiRequest api = std::move(req.value());
  if (api.request.options.timeout.count() == 0) {
    api.request.options.timeout = ctx.server.options.defaultExecTimeout;
  }
  if (api.request.stdinData) api.request.options.attachStdin = true;
  const auto startedAt = Clock::now();
  const auto id = ctx.param("id");
  auto slot = BufferedExecSlot::take(ctx.server, id);
  if (!slot.ok()) co_return errorReply(slot.error());
  // The command runs without a thread of ours: opened on the pool, then driven on this
  // connection's strand, while a watch on the socket kills it if the client leaves.
  auto openOp = openExecOnPool(ctx.server, id, api.request.argv, api.request.options);
  auto opened = co_await std::move(openOp);
  Result<ExecResult> r = Error(ErrorCode::Internal, "not run");
  if (!opened.ok()) {
    r = opened.takeError();
  } else {
    auto session = opened.value();
    std::shared_ptr<ClientWatch> watch;
    if (ctx.socket != nullptr) {
      watch = std::make_shared<ClientWatch>(*ctx.socket);
      auto ex = co_await asio::this_coro::executor;
      asio::co_spawn(
          ex,
          [watch, session]() -> asio::awaitable<void> {
            auto w = watch->run();
            if (co_await std::move(w)) {
              auto c = execCancel(session);  // the client is gone: so is its command
              (void)co_await std::move(c);
            }
          },
          asio::detached);
    }
    auto runOp = runToCompletionAsync(
        session, std::move(api.request.stdinData),
        std::min(api.request.maxOutputBytes, ctx.server.options.maxBufferedOutputBytes));
    r = co_await std::move(runOp);
    if (watch) watch->stop();
  }
  auto providerCall = blocking(ctx, [&ctx, id] { return providerLabel(ctx.server.service, id); });
  auto provider = co_await std::move(providerCall);
  Result<int> code = r.ok() ? Result<int>(r.value().exitCode) : Result<int>(r.error());
  ctx.server.metrics.recordExec(provider, execResultLabel(code),
                                std::chrono::duration<double>(Clock::now() - startedAt).count());
  co_return replyFrom(r, [&](const ExecResult& v) { return toJson(v, api.base64Output); });
}

// --- tmux -----------------------------------------------------------------------------------

asio::awaitable<Reply> listTmux(RequestContext& ctx) {
  auto rCall =
      blocking(ctx, [&ctx, id = ctx.param("id")] { return ctx.server.service.tmuxList(id); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return arrayOf(v); });
}

asio::awaitable<Reply> createTmux(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"name", "command"});
  if (!f.ok()) co_return errorReply(f.error());
  auto name = f->requiredString("name");
  if (!name.ok()) co_return errorReply(name.error());
  if (auto valid = validateTmuxName(name.value()); !valid.ok()) {
    co_return errorReply(valid.error());
  }
  auto command = f->optionalStringArray("command");
  if (!command.ok()) co_return errorReply(command.error());
  auto rCall = blocking(ctx, [&ctx, id = ctx.param("id"), n = name.value(),
                              cmd = command.value().value_or(std::vector<std::string>{})] {
    return ctx.server.service.tmuxCreate(id, n, cmd, kActor);
  });
  auto r = co_await std::move(rCall);
  co_return replyFrom(
      r, [](const auto& v) { return toJson(v); }, 201);
}

asio::awaitable<Reply> tmuxKeys(RequestContext& ctx) {
  auto body = bodyObject(ctx);
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"text", "enter"});
  if (!f.ok()) co_return errorReply(f.error());
  auto text = f->requiredString("text");
  if (!text.ok()) co_return errorReply(text.error());
  auto enter = f->optionalBool("enter");
  if (!enter.ok()) co_return errorReply(enter.error());
  auto rCall = blocking(ctx, [&ctx, id = ctx.param("id"), n = ctx.param("name"), t = text.value(),
                              e = enter.value().value_or(true)] {
    return ctx.server.service.tmuxSendKeys(id, n, t, e, kActor);
  });
  auto r = co_await std::move(rCall);
  if (!r.ok()) co_return errorReply(r.error());
  co_return okReply(json{{"name", ctx.param("name")}, {"sent", true}});
}

asio::awaitable<Reply> tmuxCapture(RequestContext& ctx) {
  if (auto q = onlyQuery(ctx, {"lines"}); !q.ok()) co_return errorReply(q.error());
  auto lines = queryInt(ctx, "lines", 1, 10000);
  if (!lines.ok()) co_return errorReply(lines.error());
  int n = static_cast<int>(lines.value().value_or(100));
  auto rCall = blocking(ctx, [&ctx, id = ctx.param("id"), name = ctx.param("name"), n] {
    return ctx.server.service.tmuxCapture(id, name, n);
  });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [&](const std::string& content) {
    return json{{"name", ctx.param("name")}, {"lines", n}, {"content", content}};
  });
}

asio::awaitable<Reply> killTmux(RequestContext& ctx) {
  auto rCall = blocking(ctx, [&ctx, id = ctx.param("id"), n = ctx.param("name")] {
    return ctx.server.service.tmuxKill(id, n, kActor);
  });
  auto r = co_await std::move(rCall);
  if (!r.ok()) co_return errorReply(r.error());
  co_return deleted("name", ctx.param("name"));
}

// --- audit ----------------------------------------------------------------------------------

// A time in a query: RFC 3339 ("2026-12-04T20:00:00Z") or Unix milliseconds.
Result<std::optional<std::int64_t>> queryTimeMs(const RequestContext& ctx,
                                                const std::string& name) {
  auto it = ctx.query.find(name);
  if (it == ctx.query.end() || it->second.empty()) return std::optional<std::int64_t>{};
  const std::string& v = it->second;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return queryInt(ctx, name, 0, std::numeric_limits<std::int64_t>::max());
  }
  auto t = parseRfc3339(v);
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000 - 1;
  if (!t.ok() || t->unixSeconds < 0 || t->unixSeconds > kMaxSeconds) {
    return fieldError(name, "'" + name +
                                "' must be an RFC 3339 time (2026-12-04T20:00:00Z) or Unix "
                                "milliseconds");
  }
  return std::optional<std::int64_t>(t->unixSeconds * 1000 + t->nanos / 1000000);
}

// An event name, or a family of them ("sandbox.*").
bool isValidEventFilter(const std::string& e) {
  if (e.empty() || e.size() > 64) return false;
  std::string_view name(e);
  if (name.size() >= 2 && name.substr(name.size() - 2) == ".*") name.remove_suffix(2);
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

asio::awaitable<Reply> audit(RequestContext& ctx) {
  if (auto q = onlyQuery(ctx, {"sandboxId", "event", "since", "until", "limit", "beforeId"});
      !q.ok())
    co_return errorReply(q.error());
  AuditQuery q;
  if (auto it = ctx.query.find("sandboxId"); it != ctx.query.end() && !it->second.empty()) {
    if (!isValidSandboxId(it->second))
      co_return errorReply(fieldError("sandboxId", "invalid sandbox id"));
    q.sandboxId = it->second;
  }
  if (auto it = ctx.query.find("event"); it != ctx.query.end() && !it->second.empty()) {
    if (!isValidEventFilter(it->second)) {
      co_return errorReply(fieldError(
          "event", "'event' must be an event name (exec, sandbox.create) or a family (sandbox.*)"));
    }
    q.action = it->second;
  }
  auto since = queryTimeMs(ctx, "since");
  if (!since.ok()) co_return errorReply(since.error());
  auto until = queryTimeMs(ctx, "until");
  if (!until.ok()) co_return errorReply(until.error());
  q.sinceMs = since.value();
  q.untilMs = until.value();
  auto limit = queryInt(ctx, "limit", 1, 1000);
  if (!limit.ok()) co_return errorReply(limit.error());
  q.limit = static_cast<int>(limit.value().value_or(100));
  auto before = queryInt(ctx, "beforeId", 0, std::numeric_limits<std::int64_t>::max());
  if (!before.ok()) co_return errorReply(before.error());
  q.beforeId = before.value().value_or(0);
  auto rCall = blocking(ctx, [&ctx, q] { return ctx.server.service.audit(q); });
  auto r = co_await std::move(rCall);
  co_return replyFrom(r, [](const auto& v) { return arrayOf(v); });
}

Route http(http_verb m, const char* pattern, HttpHandler h, bool auth = true,
           std::chrono::seconds ioTimeout = std::chrono::seconds(0)) {
  return Route{m, RoutePattern(pattern), auth, ioTimeout, std::move(h), {}};
}

Route ws(const char* pattern, WsHandler h) {
  return Route{http_verb::get, RoutePattern(pattern), true, std::chrono::seconds(0), {},
               std::move(h)};
}

}  // namespace

std::string providerLabel(SandboxService& service, const std::string& sandboxId) {
  auto r = service.getSandbox(sandboxId);
  return r.ok() ? toString(r.value().info.provider) : "unknown";
}

std::string execResultLabel(const Result<int>& exitCode) {
  if (exitCode.ok()) return exitCode.value() == 0 ? "ok" : "nonzero";
  return exitCode.error().code == ErrorCode::ExecTimeout ? "timeout" : "error";
}

std::vector<Route> buildRoutes() {
  using V = http_verb;
  std::vector<Route> r;
  r.push_back(http(V::get, "/api/health", health, /*auth=*/false));
  r.push_back(http(V::post, "/api/session", createSession, /*auth=*/false));
  r.push_back(http(V::delete_, "/api/session", deleteSession, /*auth=*/false));
  r.push_back(http(V::get, "/metrics", metrics));

  r.push_back(http(V::get, "/api/sandbox/k8s/status", k8sStatus));
  r.push_back(http(V::get, "/api/sandbox/k8s/contexts", k8sContexts));
  r.push_back(http(V::get, "/api/sandbox/k8s/namespaces", k8sNamespaces));
  r.push_back(http(V::get, "/api/sandbox/pool", getPool));
  r.push_back(http(V::post, "/api/sandbox/pool/prewarm", prewarm));

  r.push_back(http(V::get, "/api/sandbox-configs", listConfigs));
  r.push_back(http(V::post, "/api/sandbox-configs", createConfig));
  r.push_back(http(V::get, "/api/sandbox-configs/{config}", getConfig));
  r.push_back(http(V::patch, "/api/sandbox-configs/{config}", patchConfig));
  r.push_back(http(V::delete_, "/api/sandbox-configs/{config}", deleteConfig));

  r.push_back(http(V::get, "/api/sandboxes", listSandboxes));
  r.push_back(http(V::post, "/api/sandboxes", createSandbox));
  r.push_back(http(V::get, "/api/sandboxes/{sandbox}", getSandbox));
  r.push_back(http(V::delete_, "/api/sandboxes/{sandbox}", deleteSandbox));
  r.push_back(http(V::patch, "/api/sandboxes/{sandbox}", patchSandbox));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/stop", stopSandbox));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/start", startSandbox));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/migrate", migrateSandbox));
  r.push_back(
      http(V::post, "/api/sandboxes/{sandbox}/exec", execSandbox, true, std::chrono::seconds(300)));
  r.push_back(ws("/api/sandboxes/{sandbox}/exec/stream", runExecStream));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/commands", startCommand));
  r.push_back(http(V::get, "/api/sandboxes/{sandbox}/commands", listCommands));
  r.push_back(http(V::get, "/api/sandboxes/{sandbox}/commands/{command}", getCommand));
  r.push_back(http(V::delete_, "/api/sandboxes/{sandbox}/commands/{command}", killCommand));
  r.push_back(ws("/api/sandboxes/{sandbox}/commands/{command}/follow", runCommandFollow));

  r.push_back(http(V::get, "/api/sandboxes/{sandbox}/tmux", listTmux));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/tmux", createTmux));
  r.push_back(http(V::post, "/api/sandboxes/{sandbox}/tmux/{tmux}/keys", tmuxKeys));
  r.push_back(http(V::get, "/api/sandboxes/{sandbox}/tmux/{tmux}/capture", tmuxCapture));
  r.push_back(http(V::delete_, "/api/sandboxes/{sandbox}/tmux/{tmux}", killTmux));
  r.push_back(ws("/api/sandboxes/{sandbox}/tmux/{tmux}/attach", runTmuxAttach));

  r.push_back(http(V::get, "/api/audit", audit));

  r.push_back(http(V::get, "/api/settings", getSettings));
  r.push_back(http(V::put, "/api/settings", putSettings));
  return r;
}

}  // namespace agentpane::server
