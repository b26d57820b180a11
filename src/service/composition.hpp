// The composition root: which providers exist, and with what settings. `serve` and `doctor`
// both build their providers here, so that doctor checks exactly what the server would use
// (the same engine, the same instance scope).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agentpane/provider.hpp"
#include "agentpane/result.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane {

struct CompositionOptions {
  // The server's home directory. The provider instance scope (labels::kInstance) is derived
  // from it, so that it survives restarts and a lost database.
  std::filesystem::path home;
  // ENABLE_K8S_SANDBOX (or `serve --enable-k8s`): a Kubernetes provider is registered too.
  bool enableK8s = false;
  // The cluster of the Kubernetes provider instance. Empty fields: kubeconfig discovery
  // (K8S_KUBECONFIG > KUBECONFIG > ~/.kube/config > in-cluster), its current context,
  // namespace agentpane-sandboxes, pull policy IfNotPresent.
  struct Kubernetes {
    std::string kubeconfigPath;
    std::string context;
    std::string namespaceName;
    std::string imagePullPolicy;    // IfNotPresent | Never | Always
    std::string cpuRequestPercent;  // "1".."100" (empty: 50)
    // The default workspace of Kubernetes sandboxes: pvc | emptyDir | hostPath ("" = pvc).
    // Anything but pvc without a storage class turns PersistentVolumes off (no cluster-wide
    // volume verbs needed); the in-cluster Deployment (`agentpane manifests`) uses emptyDir.
    std::string workspace;
    std::string storageClass;
    // AGENTPANE_K8S_API_KUBECONFIG_EXEC=1: a profile's kubeconfig may use exec plugins (off:
    // the API could otherwise make the server run a command a token holder wrote).
    bool allowApiKubeconfigExec = false;
  } kubernetes;
};

// AGENTPANE_K8S_KUBECONFIG_PATH, AGENTPANE_K8S_CONTEXT, AGENTPANE_K8S_NAMESPACE,
// AGENTPANE_K8S_IMAGE_PULL_POLICY (Never for a cluster whose node has the image imported),
// AGENTPANE_K8S_WORKSPACE, AGENTPANE_K8S_STORAGE_CLASS and AGENTPANE_K8S_CPU_REQUEST_PERCENT.
CompositionOptions::Kubernetes kubernetesSettingsFromEnvironment();

// A setting that is a whole number from lo to hi (decimal digits, an optional minus, nothing
// else); `name` is the setting's name for the ValidationError.
Result<long> wholeNumberSetting(const std::string& name, const std::string& text, long lo, long hi);

// AGENTPANE_K8S_CPU_REQUEST_PERCENT's value: 1..100, 0 when empty (the default, 50), else a
// ValidationError.
Result<int> cpuRequestPercent(const std::string& text);

// ENABLE_K8S_SANDBOX is set to 1, true, TRUE or yes.
bool k8sEnabledByEnvironment();

// The instance label value of a server home: the first 12 hex digits of the SHA-256 of its
// canonical path. Several servers (or test runs) sharing one engine then never adopt, or reap
// as orphans, each other's sandboxes.
std::string instanceIdForHome(const std::filesystem::path& home);

// The Kubernetes provider instance of a cluster a profile names (its kubeConfigPath or
// kubeContext, and its namespace), in the server's instance scope. `target` fields left
// empty fall back as the server's own do; `instanceName` is the row's instance
// (kubernetesInstanceName). Fails on an unloadable kubeconfig or context; never calls the
// cluster.
Result<std::shared_ptr<SandboxProvider>> buildKubernetesProvider(const CompositionOptions& options,
                                                                 const KubernetesTarget& target,
                                                                 const std::string& instanceName);

// The providers of a server, in registration order (Docker first). Fails only on
// configuration (an unusable DOCKER_HOST, bad TLS files); never needs a reachable engine or
// cluster. A Kubernetes provider whose kubeconfig cannot be loaded is left out with a
// warning (creates for Kubernetes then fall back to Docker where the config allows it).
Result<std::vector<std::shared_ptr<SandboxProvider>>> buildProviders(
    const CompositionOptions& options);

}  // namespace agentpane
