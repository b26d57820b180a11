// Which kubeconfig to use (client-go's ClientConfigLoadingRules) and a deferred client config
// that resolves its context only when asked:
//   explicit path (one file, no merge) > K8S_KUBECONFIG (one file) > KUBECONFIG (a ':' list,
//   merged first-wins; files that do not exist are skipped) > ~/.kube/config > in-cluster
//   (KUBERNETES_SERVICE_HOST/PORT and the service-account directory).
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "k8s/kubeconfig.hpp"

namespace agentpane::k8s {

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

using GetEnv = std::function<std::optional<std::string>(const char*)>;
GetEnv processGetEnv();  // empty variables read as unset

struct LoadingRules {
  std::string explicitPath;  // set: that one file, nothing else is looked at
  GetEnv env;                // null: the process environment
  std::string homeDir;       // "": $HOME
  std::string serviceAccountDir = std::string(kServiceAccountDir);  // tests inject a temp dir
  bool allowInCluster = true;
};

enum class KubeconfigSource { ExplicitPath, K8sKubeconfigEnv, KubeconfigEnv, HomeFile, InCluster };
std::string_view sourceName(KubeconfigSource s);  // "explicit", "K8S_KUBECONFIG", …

struct LoadedKubeconfig {
  KubeconfigSource source = KubeconfigSource::HomeFile;
  Kubeconfig config;  // empty for InCluster
};

// Finds and loads the kubeconfig. Nothing found (and no in-cluster environment) is
// K8sKubeconfigInvalid saying where it looked; a bad file is the parser's error.
Result<LoadedKubeconfig> loadKubeconfig(const LoadingRules& rules);

// The in-cluster RestConfig: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the
// CA at <dir>/ca.crt, the token at <dir>/token (re-read every minute and after a 401, kind
// "in-cluster"), the namespace from $POD_NAMESPACE, <dir>/namespace, else "default".
// Without the variables, or with an unreadable token: K8sKubeconfigInvalid.
Result<RestConfig> inClusterConfig(const LoadingRules& rules, const ResolveOptions& options);

// The contexts of what loadKubeconfig finds (an explicit path: that one file). In-cluster:
// no contexts and no current one.
Result<ContextList> listContexts(const LoadingRules& rules);

// client-go's DeferredLoadingClientConfig: nothing is read until restConfig() is called.
// The first successful result is kept (its credential source keeps its cache across calls);
// a failure is not, so a fixed file is picked up by the next call. Thread-safe.
class DeferredClientConfig {
 public:
  // context "": the kubeconfig's current-context. namespaceOverride "": the context's.
  explicit DeferredClientConfig(LoadingRules rules, std::string context = {},
                                std::string namespaceOverride = {}, ResolveOptions options = {});

  Result<RestConfig> restConfig();
  [[nodiscard]] const LoadingRules& rules() const { return rules_; }
  [[nodiscard]] const std::string& context() const { return context_; }

 private:
  const LoadingRules rules_;
  const std::string context_;
  const std::string namespaceOverride_;
  const ResolveOptions options_;
  std::mutex mu_;
  std::optional<RestConfig> resolved_;
};

}  // namespace agentpane::k8s
