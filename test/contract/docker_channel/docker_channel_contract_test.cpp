// The provider contract suite on the real Docker engine through the in-sandbox agent
// channel: the Docker provider wrapped in a ChannelProvider, so that every non-root exec of
// the suite runs as a command of agentpane-agent (copied into agentpane/sandbox:latest from
// build/ when the image lacks it). Root execs take the native exec by design. Besides the
// suite, a check that the commands really went through the channel.
#include "channel/channel_provider.hpp"
#include "contract/provider_contract.hpp"
#include "docker/docker_provider.hpp"

namespace agentpane::contract {

ProviderHarness makeHarness() {
  ProviderHarness h;
  h.name = "docker-channel";
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
    channel::ChannelProviderOptions co;
    co.agentBinary = channel::defaultAgentBinary();
    EXPECT_FALSE(co.agentBinary.empty()) << "build/agentpane-agent not found";
    return std::make_unique<channel::ChannelProvider>(
        std::shared_ptr<SandboxProvider>(std::move(p.value())), co);
  };
  h.makeUnreachableProvider = []() -> std::unique_ptr<SandboxProvider> {
    docker::DockerProviderOptions opts;
    opts.endpoint = net::Endpoint::unixSocket("/tmp/agentpane-no-such-docker-" +
                                              detail::shortRandom() + ".sock");
    auto p = docker::DockerProvider::create(opts);
    if (!p.ok()) return nullptr;
    return std::make_unique<channel::ChannelProvider>(
        std::shared_ptr<SandboxProvider>(std::move(p.value())), channel::ChannelProviderOptions{});
  };
  h.unreachableCode = ErrorCode::SandboxProviderUnavailable;
  h.projectOwner = 1000;
  return h;
}

}  // namespace agentpane::contract

// The checks that hold only through the channel.
#include "contract/channel_contract.hpp"  // IWYU pragma: keep
