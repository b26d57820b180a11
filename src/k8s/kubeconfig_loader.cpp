#include "k8s/kubeconfig_loader.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "k8s/credentials.hpp"

namespace agentpane::k8s {

namespace {

Error noConfig(const std::string& why) {
  return Error(ErrorCode::K8sKubeconfigInvalid, "no kubeconfig found: " + why);
}

std::string homeOf(const LoadingRules& rules, const GetEnv& env) {
  if (!rules.homeDir.empty()) return rules.homeDir;
  if (auto h = env("HOME")) return *h;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return {};
}

std::string absolute(const std::string& p) {
  std::error_code ec;
  auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

bool inClusterAvailable(const LoadingRules& rules, const GetEnv& env) {
  return rules.allowInCluster && env("KUBERNETES_SERVICE_HOST") && env("KUBERNETES_SERVICE_PORT");
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

}  // namespace

GetEnv processGetEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

std::string_view sourceName(KubeconfigSource s) {
  switch (s) {
    case KubeconfigSource::ExplicitPath:
      return "explicit";
    case KubeconfigSource::K8sKubeconfigEnv:
      return "K8S_KUBECONFIG";
    case KubeconfigSource::KubeconfigEnv:
      return "KUBECONFIG";
    case KubeconfigSource::HomeFile:
      return "~/.kube/config";
    case KubeconfigSource::InCluster:
      return "in-cluster";
  }
  return "?";
}

Result<LoadedKubeconfig> loadKubeconfig(const LoadingRules& rules) {
  GetEnv env = rules.env ? rules.env : processGetEnv();
  auto one = [](const std::string& path, KubeconfigSource src) -> Result<LoadedKubeconfig> {
    auto c = loadKubeconfigFile(absolute(path));
    if (!c.ok()) return c.takeError();
    return LoadedKubeconfig{src, std::move(c.value())};
  };
  if (!rules.explicitPath.empty()) return one(rules.explicitPath, KubeconfigSource::ExplicitPath);
  if (auto p = env("K8S_KUBECONFIG")) return one(*p, KubeconfigSource::K8sKubeconfigEnv);

  std::string looked;
  if (auto list = env("KUBECONFIG")) {
    std::vector<Kubeconfig> parts;
    std::set<std::string> seen;
    std::size_t start = 0;
    while (start <= list->size()) {
      std::size_t colon = list->find(':', start);
      std::string item =
          list->substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      start = colon == std::string::npos ? list->size() + 1 : colon + 1;
      if (item.empty()) continue;
      std::string path = absolute(item);
      if (!seen.insert(path).second) continue;
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) continue;  // client-go skips missing entries
      auto c = loadKubeconfigFile(path);
      if (!c.ok()) return c.takeError();
      parts.push_back(std::move(c.value()));
    }
    if (!parts.empty()) {
      return LoadedKubeconfig{KubeconfigSource::KubeconfigEnv, mergeKubeconfigs(std::move(parts))};
    }
    looked = "no file of KUBECONFIG=" + *list + " exists";
  } else {
    std::string home = homeOf(rules, env);
    std::string path = home.empty() ? "" : home + "/.kube/config";
    std::error_code ec;
    if (!path.empty() && std::filesystem::exists(path, ec)) {
      return one(path, KubeconfigSource::HomeFile);
    }
    looked = (path.empty() ? std::string("no home directory") : path + " does not exist");
  }
  if (inClusterAvailable(rules, env)) return LoadedKubeconfig{KubeconfigSource::InCluster, {}};
  return noConfig(looked + ", K8S_KUBECONFIG is not set, and KUBERNETES_SERVICE_HOST/PORT " +
                  "are not set (not in a cluster)");
}

Result<RestConfig> inClusterConfig(const LoadingRules& rules, const ResolveOptions& options) {
  GetEnv env = rules.env ? rules.env : processGetEnv();
  auto host = env("KUBERNETES_SERVICE_HOST");
  auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    return Error(ErrorCode::K8sKubeconfigInvalid,
                 "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  }
  std::string hostPart = host->find(':') != std::string::npos ? "[" + *host + "]" : *host;
  RestConfig rc;
  rc.server = "https://" + hostPart + ":" + *port;
  auto url = parseServerUrl(rc.server);
  if (!url.ok()) {
    return Error(ErrorCode::K8sKubeconfigInvalid,
                 "in-cluster: KUBERNETES_SERVICE_HOST/PORT: " + url.error().message);
  }
  rc.endpoint = std::move(url.value().first);
  const std::string dir = rules.serviceAccountDir;
  std::error_code ec;
  // As client-go: an unreadable CA leaves the system trust store in place.
  if (std::filesystem::exists(dir + "/ca.crt", ec)) rc.endpoint.tls.caFile = dir + "/ca.crt";
  if (auto ns = env("POD_NAMESPACE")) {
    rc.namespaceName = *ns;
  } else if (auto f = readSmallFile(dir + "/namespace"); f.ok() && !trim(f.value()).empty()) {
    rc.namespaceName = trim(f.value());
  } else {
    rc.namespaceName = "default";
  }
  FileCredentialSpec spec;
  spec.kind = "in-cluster";
  spec.tokenFile = dir + "/token";
  spec.origin = {"in-cluster service account", "token"};
  spec.clock = options.exec.clock;
  auto source = std::make_shared<FileCredentials>(std::move(spec));
  auto first = source->current();
  if (!first.ok()) {
    Error e = first.takeError();
    e.code = ErrorCode::K8sKubeconfigInvalid;
    return e;
  }
  rc.credentials = std::move(source);
  rc.sourceFile = "in-cluster";
  rc.timeout = options.timeout;
  return rc;
}

Result<ContextList> listContexts(const LoadingRules& rules) {
  auto loaded = loadKubeconfig(rules);
  if (!loaded.ok()) return loaded.takeError();
  return listContexts(loaded.value().config);
}

DeferredClientConfig::DeferredClientConfig(LoadingRules rules, std::string context,
                                           std::string namespaceOverride, ResolveOptions options)
    : rules_(std::move(rules)),
      context_(std::move(context)),
      namespaceOverride_(std::move(namespaceOverride)),
      options_(std::move(options)) {}

Result<RestConfig> DeferredClientConfig::restConfig() {
  std::lock_guard lock(mu_);
  if (resolved_) return *resolved_;
  auto loaded = loadKubeconfig(rules_);
  if (!loaded.ok()) return loaded.takeError();
  Result<RestConfig> rc = Error(ErrorCode::Internal, "unresolved");
  if (loaded.value().source == KubeconfigSource::InCluster) {
    if (!context_.empty()) {
      return Error(ErrorCode::K8sContextNotFound,
                   "context '" + context_ + "' was asked for, but there is no kubeconfig " +
                       "(in-cluster credentials have no contexts)",
                   {{"context", context_}});
    }
    rc = inClusterConfig(rules_, options_);
  } else {
    rc = resolveContext(loaded.value().config, context_, options_);
  }
  if (!rc.ok()) return rc;
  if (!namespaceOverride_.empty()) rc.value().namespaceName = namespaceOverride_;
  resolved_ = rc.value();
  return rc;
}

}  // namespace agentpane::k8s
