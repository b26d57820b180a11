// What route handlers see: the service, the pools, metrics, auth state, and the matched
// request. Internal to src/server.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "agentpane/commands.hpp"
#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/metrics.hpp"
#include "server/router.hpp"
#include "server/server.hpp"

namespace agentpane {
class SandboxService;
struct CreateSandboxRequest;
struct CreateSandboxOutcome;
struct CreateControl;
}  // namespace agentpane
namespace agentpane::k8s {
class ClusterInfo;
}

namespace agentpane::server {

class WsChannel;

using Request = boost::beast::http::request<boost::beast::http::string_body>;

struct ServerContext {
  ServerContext(SandboxService& s, const ServerOptions& o, boost::asio::thread_pool& p,
                boost::asio::thread_pool& lp)
      : service(s), options(o), pool(p), lifecyclePool(lp), sessions(o.sessionTtl) {}

  SandboxService& service;
  const ServerOptions& options;
  boost::asio::thread_pool& pool;           // short blocking service calls; no exec waits here
  boost::asio::thread_pool& lifecyclePool;  // create, start, stop, remove
  // Requested when the server starts stopping: creates in flight are cancelled.
  std::stop_source stopAll;
  Metrics metrics;
  SessionStore sessions;
  AuthFailureThrottle authFailures;
  std::string token;
  int maxStreams = 0;  // the effective bound (options.maxStreams, or derived at start)
  std::atomic<int> activeStreams{0};
  std::atomic<bool> stopping{false};
  // The cluster routes' clients (never null; the routes check that the feature is on).
  std::shared_ptr<k8s::ClusterInfo> cluster;
  // False once stop() has stopped the pool: what would be posted there runs inline instead
  // (a session released while the server is torn down).
  std::shared_ptr<std::atomic<bool>> poolOpen = std::make_shared<std::atomic<bool>>(true);
  // Buffered execs running, on the server and per sandbox (network threads only touch
  // them, under execMu).
  std::mutex execMu;
  int activeExecs = 0;
  std::map<std::string, int> activeExecsBySandbox;

  // Takes one of maxStreams slots, the check and the increment in one step. The slot is
  // given back when the returned handle is destroyed; null when none is free.
  std::shared_ptr<void> acquireStream() {
    int n = activeStreams.load();
    while (n < maxStreams) {
      if (activeStreams.compare_exchange_weak(n, n + 1)) {
        return std::shared_ptr<void>(static_cast<void*>(this), [](void* self) {
          static_cast<ServerContext*>(self)->activeStreams.fetch_sub(1);
        });
      }
    }
    return nullptr;
  }
};

struct RequestContext {
  ServerContext& server;
  const Request& req;
  std::map<std::string, std::string> params;  // "id", "name"
  std::map<std::string, std::string> query;
  std::string route;  // pattern label, e.g. /api/sandboxes/:id
  // The client's connection, idle while the handler runs: a long handler (a buffered exec)
  // watches it to notice the client going away. Null for WebSocket routes.
  boost::asio::ip::tcp::socket* socket = nullptr;

  [[nodiscard]] const std::string& param(const std::string& name) const { return params.at(name); }
};

using HttpHandler = std::function<boost::asio::awaitable<Reply>(RequestContext&)>;
// Runs after the upgrade; returns when the WebSocket is finished (closed or failed).
using WsHandler =
    std::function<boost::asio::awaitable<void>(RequestContext&, std::shared_ptr<WsChannel>)>;

struct Route {
  boost::beast::http::verb method;
  RoutePattern pattern;
  bool needsAuth = true;
  std::chrono::seconds ioTimeout{0};  // body read and response write; 0 = options.ioTimeout
  HttpHandler http;                   // exactly one of http / ws
  WsHandler ws;
};

// The REST routes (routes.cpp) and the WebSocket routes (ws_exec.cpp, ws_attach.cpp).
std::vector<Route> buildRoutes();
boost::asio::awaitable<void> runExecStream(RequestContext& ctx, std::shared_ptr<WsChannel> ch);
boost::asio::awaitable<void> runTmuxAttach(RequestContext& ctx, std::shared_ptr<WsChannel> ch);
// POST /api/sandboxes once its body is read (create_stream.cpp).
boost::asio::awaitable<Reply> runCreate(RequestContext& ctx, CreateSandboxRequest request);
// The same for any work that ends in a new sandbox (a migrate): run on the lifecycle pool with
// the control the client's leaving or the server's stop cancels.
using CreateWork =
    std::function<Result<CreateSandboxOutcome>(SandboxService&, const CreateControl&)>;
boost::asio::awaitable<Reply> runCreateLike(RequestContext& ctx, CreateWork work);
// The cluster routes (routes_k8s.cpp).
boost::asio::awaitable<Reply> k8sStatus(RequestContext& ctx);
boost::asio::awaitable<Reply> k8sContexts(RequestContext& ctx);
boost::asio::awaitable<Reply> k8sNamespaces(RequestContext& ctx);
// Durable commands (routes_commands.cpp).
boost::asio::awaitable<Reply> startCommand(RequestContext& ctx);
boost::asio::awaitable<Reply> listCommands(RequestContext& ctx);
boost::asio::awaitable<Reply> getCommand(RequestContext& ctx);
boost::asio::awaitable<Reply> killCommand(RequestContext& ctx);
// GET /api/sandboxes/:id/commands/:cid/follow, a WebSocket (ws_follow.cpp).
boost::asio::awaitable<void> runCommandFollow(RequestContext& ctx, std::shared_ptr<WsChannel> ch);
// A durable command's status as the API shows it.
nlohmann::json commandStatusJson(const CommandStatus& s);
// The web page's settings (routes_settings.cpp).
boost::asio::awaitable<Reply> getSettings(RequestContext& ctx);
boost::asio::awaitable<Reply> putSettings(RequestContext& ctx);

// Writes an "auth.failure" audit entry (route, method, remote address, why) on the worker
// pool: called on network threads, it never blocks them. Throttled (AuthFailureThrottle).
void auditAuthFailure(ServerContext& server, const std::string& route, const std::string& method,
                      const std::string& remote, const std::string& reason);

// Counts one exec in the metrics: provider label looked up from the sandbox (blocking).
std::string providerLabel(SandboxService& service, const std::string& sandboxId);
std::string execResultLabel(const Result<int>& exitCode);

}  // namespace agentpane::server
