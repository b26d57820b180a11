// The provider contract suite on the real test cluster (scripts/test-cluster), as the
// least-privilege ServiceAccount (AGENTPANE_TEST_SA_KUBECONFIG from `scripts/test-cluster env`),
// with the sandbox image imported into the node (imagePullPolicy Never).
#include <cstdlib>

#include "contract/provider_contract.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"

namespace agentpane::contract {

namespace {

Result<k8s::RestConfig> saConfig() {
  const char* path = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
  if (path == nullptr || *path == '\0') {
    return Error(ErrorCode::ValidationError,
                 "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster env)\"");
  }
  k8s::LoadingRules rules;
  rules.explicitPath = path;
  k8s::DeferredClientConfig deferred(rules);
  return deferred.restConfig();
}

}  // namespace

ProviderHarness makeHarness() {
  ProviderHarness h;
  h.name = "kubernetes";
  h.runId = "run" + detail::shortRandom();
  h.image = "agentpane/sandbox:latest";
  h.rootAllowed = false;
  h.unreachableCode = ErrorCode::K8sUnreachable;
  h.unknownImageCode = ErrorCode::K8sImagePullBackoff;
  h.projectOwner = 1000;
  const std::string runId = h.runId;
  h.makeProvider = [runId]() -> std::unique_ptr<SandboxProvider> {
    auto cfg = saConfig();
    if (!cfg.ok()) {
      ADD_FAILURE() << cfg.error().describe();
      return nullptr;
    }
    k8s::K8sProviderOptions opts;
    opts.rest = std::move(cfg).value();
    opts.scopeLabels = {{"agentpane.io/test-run", runId}};
    opts.imagePullPolicy = "Never";
    opts.startupTimeout = std::chrono::seconds(90);
    opts.createNamespace = false;
    auto p = k8s::K8sProvider::create(std::move(opts));
    if (!p.ok()) {
      ADD_FAILURE() << p.error().describe();
      return nullptr;
    }
    return std::move(p.value());
  };
  h.makeUnreachableProvider = []() -> std::unique_ptr<SandboxProvider> {
    auto cfg = saConfig();
    if (!cfg.ok()) return nullptr;
    k8s::RestConfig rc = std::move(cfg).value();
    // The same credentials and CA, at a port nothing listens on.
    rc.endpoint.port = 1;
    rc.server = "https://127.0.0.1:1";
    k8s::K8sProviderOptions opts;
    opts.rest = rc;
    auto p = k8s::K8sProvider::create(std::move(opts));
    if (!p.ok()) return nullptr;
    return std::move(p.value());
  };
  return h;
}

}  // namespace agentpane::contract
