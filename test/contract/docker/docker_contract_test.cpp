// The provider contract suite on the real Docker engine (DOCKER_HOST or the default socket)
// with the image agentpane/sandbox:latest (scripts/build-sandbox-image.sh).
#include "contract/provider_contract.hpp"
#include "docker/docker_provider.hpp"

namespace agentpane::contract {

ProviderHarness makeHarness() {
  ProviderHarness h;
  h.name = "docker";
  h.runId = "run" + detail::shortRandom();
  h.image = "agentpane/sandbox:latest";
  const std::string runId = h.runId;
  h.makeProvider = [runId]() -> std::unique_ptr<SandboxProvider> {
    docker::DockerProviderOptions opts;
    opts.scopeLabels = {{"agentpane.io/test-run", runId}};
    opts.stopTimeoutSeconds = 1;
    auto p = docker::DockerProvider::create(opts);
    if (!p.ok()) {
      ADD_FAILURE() << p.error().describe();
      return nullptr;
    }
    return std::move(p.value());
  };
  h.makeUnreachableProvider = []() -> std::unique_ptr<SandboxProvider> {
    docker::DockerProviderOptions opts;
    opts.endpoint = net::Endpoint::unixSocket("/tmp/agentpane-no-such-docker-" +
                                              detail::shortRandom() + ".sock");
    auto p = docker::DockerProvider::create(opts);
    if (!p.ok()) return nullptr;
    return std::move(p.value());
  };
  h.unreachableCode = ErrorCode::SandboxProviderUnavailable;
  // The sandbox runs as the project directory's owner: the image's user, so that the suite's
  // "uid 1000 by default" means what it says (other owners: test/integration/docker).
  h.projectOwner = 1000;
  return h;
}

}  // namespace agentpane::contract
