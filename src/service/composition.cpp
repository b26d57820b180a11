#include "service/composition.hpp"

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

CompositionOptions::Kubernetes kubernetesSettingsFromEnvironment() {
  CompositionOptions::Kubernetes k;
  k.kubeconfigPath = envOr("AGENTPANE_K8S_KUBECONFIG_PATH");
  k.context = envOr("AGENTPANE_K8S_CONTEXT");
  k.namespaceName = envOr("AGENTPANE_K8S_NAMESPACE");
  k.imagePullPolicy = envOr("AGENTPANE_K8S_IMAGE_PULL_POLICY");
  return k;
}

std::string instanceIdForHome(const fs::path& home) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(home, ec);
  return sha256Hex((ec ? home : canonical).string()).substr(0, 12);
}

Result<std::vector<std::shared_ptr<SandboxProvider>>> buildProviders(
    const CompositionOptions& options) {
  std::vector<std::shared_ptr<SandboxProvider>> out;
  docker::DockerProviderOptions dockerOptions;
  const std::string scope = instanceIdForHome(options.home);
  dockerOptions.scopeLabels = {{labels::kInstance, scope}};
  auto docker = docker::DockerProvider::create(dockerOptions);
  if (!docker.ok()) return docker.takeError();
  out.push_back(std::shared_ptr<SandboxProvider>(std::move(docker).value()));
  if (!options.enableK8s) return out;

  const auto& k = options.kubernetes;
  k8s::LoadingRules rules;
  rules.explicitPath = k.kubeconfigPath;
  k8s::DeferredClientConfig deferred(rules, k.context, k.namespaceName);
  auto rest = deferred.restConfig();
  if (!rest.ok()) {
    spdlog::warn("Kubernetes provider not available: {}", rest.error().describe());
    return out;
  }
  k8s::K8sProviderOptions ko;
  ko.rest = std::move(rest).value();
  ko.scopeLabels = {{labels::kInstance, scope}};
  if (!k.namespaceName.empty()) {
    ko.namespaceName = k.namespaceName;
  } else if (!ko.rest.namespaceName.empty() && ko.rest.namespaceName != "default") {
    ko.namespaceName = ko.rest.namespaceName;  // the context's namespace
  }
  if (!k.imagePullPolicy.empty()) {
    if (k.imagePullPolicy != "IfNotPresent" && k.imagePullPolicy != "Never" &&
        k.imagePullPolicy != "Always") {
      return Error(ErrorCode::ValidationError,
                   "AGENTPANE_K8S_IMAGE_PULL_POLICY must be IfNotPresent, Never or Always, not '" +
                       k.imagePullPolicy + "'");
    }
    ko.imagePullPolicy = k.imagePullPolicy;
  }
  auto provider = k8s::K8sProvider::create(std::move(ko));
  if (!provider.ok()) {
    spdlog::warn("Kubernetes provider not available: {}", provider.error().describe());
    return out;
  }
  spdlog::info("Kubernetes provider: {} (context {}, namespace {})",
               (*provider)->client().config().server, (*provider)->client().config().contextName,
               (*provider)->namespaceName());
  out.push_back(std::shared_ptr<SandboxProvider>(std::move(provider).value()));
  return out;
}

}  // namespace agentpane
