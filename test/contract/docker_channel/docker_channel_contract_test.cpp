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

namespace agentpane::contract {

// An image without the agent (agentpane/sandbox:base, our rootfs before the agent layer, made
// by scripts/build-sandbox-image.sh): the server copies its own agent in once, and the
// commands still run through the channel.
TEST_F(ProviderContract, AForeignImageGetsTheAgentCopiedIn) {
  std::string dir = detail::tempProjectDir();
  SandboxSpec s = spec(freshId("foreign"), dir);
  s.image = "agentpane/sandbox:base";
  auto made = provider().create(s);
  ASSERT_TRUE(made.ok()) << made.error().describe()
                         << " (agentpane/sandbox:base: scripts/build-sandbox-image.sh)";
  const SandboxRef ref = sandboxRef(made.value());
  auto& cp = dynamic_cast<channel::ChannelProvider&>(provider());
  ExecRequest probe;
  probe.argv = {"test", "-e", channel::kBakedAgentPath};
  auto baked = cp.inner().exec(ref, probe);
  ASSERT_TRUE(baked.ok()) << baked.error().describe();
  EXPECT_NE(baked->exitCode, 0) << "agentpane/sandbox:base has the agent: not a foreign image";

  const auto installs = channel::counters().installs.load();
  const auto viaChannel = channel::counters().channelExecs.load();
  ExecRequest req;
  req.argv = {"sh", "-c", "readlink /proc/$PPID/exe"};
  auto r = provider().exec(ref, req);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0) << r->stderrData;
  EXPECT_EQ(channel::counters().installs.load(), installs + 1);
  EXPECT_EQ(channel::counters().channelExecs.load(), viaChannel + 1);
  // The daemon runs from the copy (/tmp/.agentpane/agentpane-agent-<hash>).
  EXPECT_EQ(r->stdoutData.rfind("/tmp/.agentpane/agentpane-agent-", 0), 0u) << r->stdoutData;
  auto again = provider().exec(ref, req);  // the channel stays up: no second copy
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(channel::counters().installs.load(), installs + 1);

  EXPECT_TRUE(provider().remove(ref).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace agentpane::contract
