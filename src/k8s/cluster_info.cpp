#include "k8s/cluster_info.hpp"

#include <nlohmann/json.hpp>

#include "k8s/rest_client.hpp"

namespace agentpane::k8s {

namespace {

std::string keyOf(const ClusterTarget& t) {
  return t.kubeconfigPath + '\n' + t.context;
}

}  // namespace

ClusterInfo::ClusterInfo(ClusterInfoOptions options) : options_(std::move(options)) {}
ClusterInfo::~ClusterInfo() = default;

std::size_t ClusterInfo::cachedClients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

Result<ClusterInfo::Entry> ClusterInfo::entryFor(const ClusterTarget& target) {
  const std::string key = keyOf(target);
  {
    std::lock_guard lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end(); ++it) {
      if (it->key == key) {
        clients_.splice(clients_.begin(), clients_, it);
        return *clients_.begin();
      }
    }
  }
  // Built outside the lock: loading may run nothing slow today, but reads files.
  LoadingRules rules = options_.rules;
  if (!target.kubeconfigPath.empty()) rules.explicitPath = target.kubeconfigPath;
  auto loaded = loadKubeconfig(rules);
  if (!loaded.ok()) return loaded.takeError();
  ResolveOptions resolve = options_.resolve;
  resolve.timeout = options_.callTimeout;
  if (!target.kubeconfigPath.empty() && !options_.allowExecInTargetKubeconfigs)
    resolve.refuseExecPlugins = true;
  Result<RestConfig> rc = Error(ErrorCode::Internal, "unresolved");
  if (loaded.value().source == KubeconfigSource::InCluster) {
    if (!target.context.empty()) {
      return Error(ErrorCode::K8sContextNotFound,
                   "context '" + target.context + "' was asked for, but there is no kubeconfig",
                   {{"context", target.context}});
    }
    rc = inClusterConfig(rules, resolve);
  } else {
    rc = resolveContext(loaded.value().config, target.context, resolve);
  }
  if (!rc.ok()) return rc.takeError();
  RestClientOptions ro;
  ro.connectTimeout = options_.connectTimeout;
  auto client = RestClient::create(std::move(rc.value()), ro);
  if (!client.ok()) {
    return Error(ErrorCode::K8sKubeconfigInvalid, client.error().message, client.error().details);
  }
  Entry e{key, std::move(client.value()), std::string(sourceName(loaded.value().source))};
  std::lock_guard lock(mu_);
  for (const auto& existing : clients_) {
    if (existing.key == key) return existing;  // another thread built it meanwhile
  }
  clients_.push_front(e);
  while (clients_.size() > options_.maxClients)
    clients_.pop_back();
  return e;
}

Result<std::shared_ptr<RestClient>> ClusterInfo::client(const ClusterTarget& target) {
  auto e = entryFor(target);
  if (!e.ok()) return e.takeError();
  return e.value().client;
}

Result<ClusterStatus> ClusterInfo::status(const ClusterTarget& target) {
  auto e = entryFor(target);
  if (!e.ok()) return e.takeError();
  RestClient& c = *e.value().client;
  const RestConfig& cfg = c.config();
  ClusterStatus s;
  s.context = cfg.contextName;
  s.server = cfg.server;
  s.credentialType = cfg.credentials ? cfg.credentials->kind() : "none";
  s.kubeconfigSource = e.value().source;
  s.namespaceName = !target.namespaceName.empty() ? target.namespaceName
                    : !cfg.namespaceName.empty()  ? cfg.namespaceName
                                                  : std::string(kSandboxNamespace);

  auto version = c.get("/version");
  if (!version.ok()) return version.takeError();
  s.connected = true;
  s.version = version.value().value("gitVersion", "");

  auto ns = c.get(resourcePath("v1", "namespaces", {}, s.namespaceName));
  if (!ns.ok()) {
    // Missing is an answer, not a failure: the provider creates it on first use.
    auto code = ns.error().details.find("code");
    if (code == ns.error().details.end() || code->second != "404") return ns.takeError();
    return s;
  }
  s.namespaceExists = true;
  ListOptions lo;
  lo.labelSelector = std::string(kSandboxSelector);
  auto pods = c.listAll(resourcePath("v1", "pods", s.namespaceName), lo);
  if (!pods.ok()) return pods.takeError();
  const auto& items = pods.value()["items"];
  if (items.is_array()) {
    for (const auto& p : items) {
      ++s.podsTotal;
      const auto* st = p.contains("status") ? &p["status"] : nullptr;
      if (st != nullptr && st->is_object() && st->value("phase", "") == "Running") ++s.podsRunning;
    }
  }
  return s;
}

Result<ContextList> ClusterInfo::contexts(const std::string& kubeconfigPath) {
  LoadingRules rules = options_.rules;
  if (!kubeconfigPath.empty()) rules.explicitPath = kubeconfigPath;
  return listContexts(rules);
}

Result<std::vector<NamespaceInfo>> ClusterInfo::namespaces(const ClusterTarget& target) {
  auto client = this->client(target);
  if (!client.ok()) return client.takeError();
  auto list = client.value()->listAll("/api/v1/namespaces");
  if (!list.ok()) return list.takeError();
  std::vector<NamespaceInfo> out;
  const auto& items = list.value()["items"];
  if (items.is_array()) {
    for (const auto& n : items) {
      NamespaceInfo info;
      if (n.contains("metadata") && n["metadata"].is_object()) {
        info.name = n["metadata"].value("name", "");
      }
      if (n.contains("status") && n["status"].is_object()) {
        info.phase = n["status"].value("phase", "");
      }
      out.push_back(std::move(info));
    }
  }
  return out;
}

}  // namespace agentpane::k8s
