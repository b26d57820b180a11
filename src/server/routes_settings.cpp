// GET/PUT /api/settings: what the web page's Providers view shows and changes. The default
// provider is stored by the server (settings table); the rest is read live: whether the
// Kubernetes feature is on, and each registered provider's health (engine version, state).
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <nlohmann/json.hpp>

#include "agentpane/provider.hpp"
#include "server/blocking.hpp"
#include "server/server_context.hpp"
#include "service/sandbox_service.hpp"
#include "service/validation.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
using nlohmann::json;

namespace {

json providerJson(SandboxService& service, ProviderType t) {
  SandboxProvider* p = service.provider(t);
  if (p == nullptr) return json{{"registered", false}};
  HealthStatus h = p->healthCheck();
  return json{{"registered", true},         {"reachable", h.reachable}, {"version", h.version},
              {"apiVersion", h.apiVersion}, {"running", h.running},     {"total", h.total},
              {"warnings", h.warnings}};
}

// What a profile may ask for (service/validation.hpp), so that a client's controls hold to the
// server's rules instead of copying them.
json limitsJson() {
  using namespace config_limits;
  auto range = [](auto min, auto max) { return json{{"min", min}, {"max", max}}; };
  return json{{"memoryMb", range(kMemoryMbMin, kMemoryMbMax)},
              {"cpu", range(kCpuMin, kCpuMax)},
              {"pidsLimit", range(kPidsMin, kPidsMax)},
              {"timeoutMinutes", range(kTimeoutMinutesMin, kTimeoutMinutesMax)},
              {"warmPoolMax", range(0, kWarmPoolMax)},
              {"warmPoolIdleTtlSeconds", range(kWarmPoolTtlMin, kWarmPoolTtlMax)},
              {"allowedEgressHosts", range(0, kMaxEgressHosts)}};
}

Result<json> settingsJson(ServerContext& server) {
  auto def = server.service.defaultProvider();
  if (!def.ok()) return def.takeError();
  return json{{"defaultProvider", toString(def.value())},
              {"k8sEnabled", server.service.k8sEnabled()},
              {"limits", limitsJson()},
              {"providers",
               {{"docker", providerJson(server.service, ProviderType::Docker)},
                {"kubernetes", providerJson(server.service, ProviderType::Kubernetes)}}}};
}

}  // namespace

asio::awaitable<Reply> getSettings(RequestContext& ctx) {
  if (!ctx.query.empty()) {
    co_return errorReply(fieldError(ctx.query.begin()->first,
                                    "unknown query parameter '" + ctx.query.begin()->first + "'"));
  }
  auto call = runBlocking(ctx.server.pool, [&ctx] { return settingsJson(ctx.server); });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const json& j) { return j; });
}

asio::awaitable<Reply> putSettings(RequestContext& ctx) {
  auto body = parseJsonObject(ctx.req.body());
  if (!body.ok()) co_return errorReply(body.error());
  auto f = JsonFields::of(body.value(), {"defaultProvider"});
  if (!f.ok()) co_return errorReply(f.error());
  auto name = f->requiredString("defaultProvider");
  if (!name.ok()) co_return errorReply(name.error());
  auto type = providerTypeFromString(name.value());
  if (!type) {
    co_return errorReply(
        fieldError("defaultProvider", "'defaultProvider' must be \"docker\" or \"kubernetes\""));
  }
  auto call = runBlocking(ctx.server.pool, [&ctx, t = *type]() -> Result<json> {
    AP_TRY(ctx.server.service.setDefaultProvider(t));
    return settingsJson(ctx.server);
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const json& j) { return j; });
}

}  // namespace agentpane::server
