#include "service/composition.hpp"

#include <unistd.h>

#include <charconv>

#include <cstdlib>

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "common/hash.hpp"
#include "docker/docker_provider.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"

namespace agentpane {

namespace fs = std::filesystem;

bool k8sEnabledByEnvironment() {
  const char* v = std::getenv("ENABLE_K8S_SANDBOX");
  if (v == nullptr) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "TRUE" || s == "yes";
}

namespace {
std::string envOr(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}
}  // namespace

Result<long> wholeNumberSetting(const std::string& name, const std::string& text, long lo,
                                long hi) {
  long v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    return Error(ErrorCode::ValidationError,
                 name + " must be a whole number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + ", not '" + text + "'",
                 {{"field", name}});
  }
  return v;
}

Result<int> cpuRequestPercent(const std::string& text) {
  if (text.empty()) return 0;
  auto v = wholeNumberSetting("AGENTPANE_K8S_CPU_REQUEST_PERCENT", text, 1, 100);
  if (!v.ok()) return v.takeError();
  return static_cast<int>(v.value());
}

CompositionOptions::Kubernetes kubernetesSettingsFromEnvironment() {
  CompositionOptions::Kubernetes k;
  k.kubeconfigPath = envOr("AGENTPANE_K8S_KUBECONFIG_PATH");
  k.context = envOr("AGENTPANE_K8S_CONTEXT");
  k.namespaceName = envOr("AGENTPANE_K8S_NAMESPACE");
  k.imagePullPolicy = envOr("AGENTPANE_K8S_IMAGE_PULL_POLICY");
  k.cpuRequestPercent = envOr("AGENTPANE_K8S_CPU_REQUEST_PERCENT");
  k.workspace = envOr("AGENTPANE_K8S_WORKSPACE");
  k.storageClass = envOr("AGENTPANE_K8S_STORAGE_CLASS");
  k.allowApiKubeconfigExec = envOr("AGENTPANE_K8S_API_KUBECONFIG_EXEC") == "1";
  return k;
}

std::string instanceIdForHome(const fs::path& home) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(home, ec);
  return sha256Hex((ec ? home : canonical).string()).substr(0, 12);
}

Result<std::shared_ptr<SandboxProvider>> buildKubernetesProvider(const CompositionOptions& options,
                                                                 const KubernetesTarget& target,
                                                                 const std::string& instanceName) {
  // A profile's fields win over the server's; what both leave empty is discovered.
  auto pick = [](const std::string& a, const std::string& b) { return a.empty() ? b : a; };
  const auto& k = options.kubernetes;
  const std::string path = pick(target.kubeconfigPath, k.kubeconfigPath);
  const std::string context = pick(target.context, k.context);
  const std::string ns = pick(target.namespaceName, k.namespaceName);
  k8s::LoadingRules rules;
  rules.explicitPath = path;
  k8s::ResolveOptions resolve;
  // A profile's kubeconfig came through the API: its exec plugin would run on this host.
  resolve.refuseExecPlugins = !target.kubeconfigPath.empty() && !k.allowApiKubeconfigExec;
  k8s::DeferredClientConfig deferred(rules, context, ns, resolve);
  auto rest = deferred.restConfig();
  if (!rest.ok()) return rest.takeError();
  k8s::K8sProviderOptions ko;
  ko.rest = std::move(rest).value();
  ko.instanceName = instanceName;
  ko.scopeLabels = {{labels::kInstance, instanceIdForHome(options.home)}};
  if (!ns.empty()) {
    ko.namespaceName = ns;
  } else if (!ko.rest.namespaceName.empty() && ko.rest.namespaceName != "default") {
    ko.namespaceName = ko.rest.namespaceName;  // the context's namespace
  }
  if (!k.imagePullPolicy.empty()) ko.imagePullPolicy = k.imagePullPolicy;  // checked by the caller
  if (auto pct = cpuRequestPercent(k.cpuRequestPercent); pct.ok() && *pct > 0)
    ko.cpuRequestPercent = *pct;  // checked by the caller
  // The server's default workspace (checked by the caller); PersistentVolumes only for a claim
  // without a storage class.
  if (auto w = k8s::workspaceKindFromString(k.workspace); w && !k.workspace.empty())
    ko.workspace = *w;
  ko.storageClass = k.storageClass;
  ko.persistentVolumes = ko.workspace == k8s::WorkspaceKind::Claim && ko.storageClass.empty();
  // Warm pool: workspace slots are bind mounts on this host (the node of a local cluster),
  // which needs root; one root per provider instance.
  if (::geteuid() == 0)
    ko.warmSlots =
        std::make_shared<WorkspaceSlots>(fs::path(options.home) / "warm-slots" / instanceName);
  auto provider = k8s::K8sProvider::create(std::move(ko));
  if (!provider.ok()) return provider.takeError();
  spdlog::info("Kubernetes provider {}: {} (context {}, namespace {})", instanceName,
               (*provider)->client().config().server, (*provider)->client().config().contextName,
               (*provider)->namespaceName());
  return std::shared_ptr<SandboxProvider>(std::move(provider).value());
}

Result<std::vector<std::shared_ptr<SandboxProvider>>> buildProviders(
    const CompositionOptions& options) {
  std::vector<std::shared_ptr<SandboxProvider>> out;
  docker::DockerProviderOptions dockerOptions;
  const std::string scope = instanceIdForHome(options.home);
  dockerOptions.scopeLabels = {{labels::kInstance, scope}};
  // Egress allowlists are enforced with host iptables rules, which needs root
  // (AGENTPANE_DOCKER_EGRESS=off keeps sandboxes without a network profile on "none").
  const char* eg = std::getenv("AGENTPANE_DOCKER_EGRESS");
  dockerOptions.egressFirewall = ::geteuid() == 0 && !(eg != nullptr && std::string(eg) == "off");
  // Warm pool: claims bind projects into running sandboxes, which mounts on the host (root).
  // A slot root per provider instance, so that one instance's sweep never touches another's.
  if (::geteuid() == 0) {
    dockerOptions.warmSlots =
        std::make_shared<WorkspaceSlots>(options.home / "warm-slots" / "docker");
  }
  auto docker = docker::DockerProvider::create(dockerOptions);
  if (!docker.ok()) return docker.takeError();
  out.push_back(std::shared_ptr<SandboxProvider>(std::move(docker).value()));
  if (!options.enableK8s) return out;

  const std::string& pull = options.kubernetes.imagePullPolicy;
  if (!pull.empty() && pull != "IfNotPresent" && pull != "Never" && pull != "Always") {
    return Error(ErrorCode::ValidationError,
                 "AGENTPANE_K8S_IMAGE_PULL_POLICY must be IfNotPresent, Never or Always, not '" +
                     pull + "'");
  }
  if (auto pct = cpuRequestPercent(options.kubernetes.cpuRequestPercent); !pct.ok())
    return pct.takeError();
  const std::string& workspace = options.kubernetes.workspace;
  if (!workspace.empty() && !k8s::workspaceKindFromString(workspace)) {
    return Error(
        ErrorCode::ValidationError,
        "AGENTPANE_K8S_WORKSPACE must be pvc, emptyDir or hostPath, not '" + workspace + "'");
  }
  auto provider = buildKubernetesProvider(options, KubernetesTarget{}, "kubernetes");
  if (!provider.ok()) {
    spdlog::warn("Kubernetes provider not available: {}", provider.error().describe());
    return out;
  }
  out.push_back(std::move(provider).value());
  return out;
}

}  // namespace agentpane
