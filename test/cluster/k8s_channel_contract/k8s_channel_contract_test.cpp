// The provider contract suite on the real test cluster through the in-sandbox agent channel:
// the Kubernetes provider wrapped in a ChannelProvider, so that every exec of the suite runs
// as a command of agentpane-agent over one WebSocket exec stream per pod (the agent copied in
// from build/ when the image lacks it). As the least-privilege ServiceAccount
// (AGENTPANE_TEST_SA_KUBECONFIG from `scripts/test-cluster env`).
#include <cstdlib>

#include "channel/channel_provider.hpp"
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
  h.name = "kubernetes-channel";
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
    channel::ChannelProviderOptions co;
    co.agentBinary = channel::defaultAgentBinary();
    EXPECT_FALSE(co.agentBinary.empty()) << "build/agentpane-agent not found";
    return std::make_unique<channel::ChannelProvider>(
        std::shared_ptr<SandboxProvider>(std::move(p.value())), co);
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
    return std::make_unique<channel::ChannelProvider>(
        std::shared_ptr<SandboxProvider>(std::move(p.value())), channel::ChannelProviderOptions{});
  };
  return h;
}

}  // namespace agentpane::contract

// The checks that hold only through the channel.
#include "contract/channel_contract.hpp"  // IWYU pragma: keep
