// The cluster routes of SPEC "Server API": /api/sandbox/k8s/{status,contexts,namespaces}.
// Off (K8S_DISABLED) unless the Kubernetes feature is on. Every cluster call blocks (files,
// exec plugins, network), so it runs on the worker pool, never on the connection's strand.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "k8s/cluster_info.hpp"
#include "server/blocking.hpp"
#include "server/server_context.hpp"
#include "service/composition.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
using nlohmann::json;

namespace {

Error disabledError() {
  return Error(ErrorCode::K8sDisabled,
               "Kubernetes support is off on this server (set ENABLE_K8S_SANDBOX=true, or "
               "enableK8s in the default sandbox config)");
}

Result<void> noQuery(const RequestContext& ctx, std::string_view allowed = {}) {
  for (const auto& [k, v] : ctx.query) {
    if (k != allowed) return fieldError(k, "unknown query parameter '" + k + "'");
  }
  return {};
}

// A kubeconfig path given through the API (a query, or a profile's kubeConfigPath) passes the
// project-path rule before it is read: a kubeconfig can name a command to run (an exec
// plugin) and credentials to use, so the API may not point the server at any file on the host
// (/etc/kubernetes/admin.conf, another user's files). Returns the resolved path to read.
Result<std::string> allowedKubeconfig(ServerContext& server, const std::string& path,
                                      const std::string& field) {
  auto checked = server.service.pathPolicy().check(path, field, ErrorCode::K8sKubeconfigInvalid);
  if (!checked.ok()) return checked.takeError();
  return checked->string();
}

// The cluster the server's default profile names (kubeconfig path, context, namespace), or
// K8sDisabled when neither the server (ENABLE_K8S_SANDBOX / its options) nor that profile
// turns the feature on. Blocking (SQLite, the file system).
Result<k8s::ClusterTarget> targetOf(ServerContext& server) {
  auto cfg = server.service.defaultConfig();
  bool on = server.options.enableK8s || (cfg.ok() && cfg.value().enableK8s);
  if (!on) return disabledError();
  k8s::ClusterTarget t;
  if (cfg.ok()) {
    // Checked again at each use (the roots or the file may have changed since the profile
    // was written).
    if (!cfg->kubeConfigPath.empty()) {
      auto path = allowedKubeconfig(server, cfg->kubeConfigPath, "kubeConfigPath");
      if (!path.ok()) return path.takeError();
      t.kubeconfigPath = path.value();
    }
    t.context = cfg.value().kubeContext;
    t.namespaceName = cfg.value().kubeNamespace;
  }
  // The profiles' built-in namespace means the server's (AGENTPANE_K8S_NAMESPACE), as the
  // provider reads it: an in-cluster server may read only its own namespace.
  if (t.namespaceName.empty() || t.namespaceName == KubernetesOptions{}.kubeNamespace) {
    if (auto env = kubernetesSettingsFromEnvironment(); !env.namespaceName.empty())
      t.namespaceName = env.namespaceName;
  }
  return t;
}

json statusJson(const k8s::ClusterStatus& s) {
  return json{{"connected", s.connected},
              {"context", s.context},
              {"server", s.server},
              {"version", s.version},
              {"namespace", s.namespaceName},
              {"namespaceExists", s.namespaceExists},
              {"pods", {{"running", s.podsRunning}, {"total", s.podsTotal}}},
              {"credentialType", s.credentialType},
              {"kubeconfigSource", s.kubeconfigSource}};
}

}  // namespace

asio::awaitable<Reply> k8sStatus(RequestContext& ctx) {
  if (auto q = noQuery(ctx); !q.ok()) co_return errorReply(q.error());
  auto call = runBlocking(ctx.server.pool, [&ctx]() -> Result<k8s::ClusterStatus> {
    auto target = targetOf(ctx.server);
    if (!target.ok()) return target.takeError();
    return ctx.server.cluster->status(target.value());
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, statusJson);
}

asio::awaitable<Reply> k8sContexts(RequestContext& ctx) {
  if (auto q = noQuery(ctx, "kubeconfigPath"); !q.ok()) co_return errorReply(q.error());
  std::string path;
  if (auto it = ctx.query.find("kubeconfigPath"); it != ctx.query.end()) {
    path = it->second;
    // Reading a file the caller names: only whole, absolute paths, under the project-path
    // rule (allowedKubeconfig). Listing contexts never runs an exec plugin.
    if (path.empty() || !std::filesystem::path(path).is_absolute() ||
        path.find('\0') != std::string::npos) {
      co_return errorReply(
          fieldError("kubeconfigPath", "'kubeconfigPath' must be an absolute path"));
    }
  }
  auto call = runBlocking(ctx.server.pool, [&ctx, path]() -> Result<k8s::ContextList> {
    auto target = targetOf(ctx.server);
    if (!target.ok()) return target.takeError();
    if (path.empty()) return ctx.server.cluster->contexts("");
    auto allowed = allowedKubeconfig(ctx.server, path, "kubeconfigPath");
    if (!allowed.ok()) return allowed.takeError();
    return ctx.server.cluster->contexts(allowed.value());
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const k8s::ContextList& l) {
    json a = json::array();
    for (const auto& c : l.contexts) {
      a.push_back({{"name", c.name},
                   {"cluster", c.cluster},
                   {"user", c.user},
                   {"namespace", c.namespaceName}});
    }
    return json{{"contexts", a}, {"current", l.current.empty() ? json(nullptr) : json(l.current)}};
  });
}

asio::awaitable<Reply> k8sNamespaces(RequestContext& ctx) {
  if (auto q = noQuery(ctx); !q.ok()) co_return errorReply(q.error());
  auto call = runBlocking(ctx.server.pool, [&ctx]() -> Result<std::vector<k8s::NamespaceInfo>> {
    auto target = targetOf(ctx.server);
    if (!target.ok()) return target.takeError();
    return ctx.server.cluster->namespaces(target.value());
  });
  auto r = co_await std::move(call);
  co_return replyFrom(r, [](const std::vector<k8s::NamespaceInfo>& v) {
    json a = json::array();
    for (const auto& n : v)
      a.push_back({{"name", n.name}, {"phase", n.phase}});
    return json{{"namespaces", a}};
  });
}

}  // namespace agentpane::server
