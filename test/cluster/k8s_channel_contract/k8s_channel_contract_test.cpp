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

// The commands really ran through the channel: over the WebSocket exec, the argv travels
// inside the stream, not in the exec URL (the apiserver's audit log never sees it).
TEST_F(ProviderContract, ExecsWentThroughTheAgentChannel) {
  auto before = channel::counters().channelExecs.load();
  auto nativeBefore = channel::counters().nativeExecs.load();
  auto r = run({"sh", "-c", "echo via; exit 5"}, {});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 5);
  EXPECT_EQ(r->stdoutData, "via\n");
  EXPECT_EQ(channel::counters().channelExecs.load(), before + 1);
  EXPECT_EQ(channel::counters().nativeExecs.load(), nativeBefore);
  auto ps = run({"sh", "-c", "cat /proc/$PPID/cmdline | tr '\\0' ' '"}, {});
  ASSERT_TRUE(ps.ok());
  EXPECT_NE(ps->stdoutData.find("agentpane-agent"), std::string::npos) << ps->stdoutData;
}

// The agent killed while a command runs: that command fails with a clear error (the channel
// was lost), and the next command starts a new channel by itself.
TEST_F(ProviderContract, AgentKilledMidCommandFailsItClearlyAndTheChannelRestarts) {
  auto& cp = dynamic_cast<channel::ChannelProvider&>(provider());
  auto ch = cp.channelFor(sharedRef());
  ASSERT_TRUE(ch.ok()) << ch.error().describe();
  const auto daemonPid = (*ch)->hello().pid;
  auto session =
      provider().openExec(sharedRef(), {"sh", "-c", "echo started; exec sleep 3141"}, {});
  ASSERT_TRUE(session.ok()) << session.error().describe();
  auto first = (*session)->read();  // the command runs
  ASSERT_TRUE(first.ok() && first->has_value()) << (first.ok() ? "eof" : first.error().describe());
  EXPECT_EQ((*first)->data, "started\n");
  const auto lostBefore = channel::counters().lost.load();
  ExecRequest kill;
  kill.argv = {"kill", "-9", std::to_string(daemonPid)};
  auto k = cp.inner().exec(sharedRef(), kill);  // the provider's own exec
  ASSERT_TRUE(k.ok() && k->exitCode == 0) << (k.ok() ? k->stderrData : k.error().describe());

  auto r = (*session)->read();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxExecFailed) << r.error().describe();
  EXPECT_EQ(r.error().details.at("reason"), "channelLost") << r.error().describe();
  EXPECT_EQ(channel::counters().lost.load(), lostBefore + 1);

  auto again = run({"echo", "back"}, {});
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(again->stdoutData, "back\n");
  auto restarted = cp.channelFor(sharedRef());
  ASSERT_TRUE(restarted.ok());
  EXPECT_NE((*restarted)->hello().pid, daemonPid);
  EXPECT_EQ(sh("pkill -9 -f 'sleep 314[1]'; echo done"), "done\n");
}

// 1,000 commands in flight at once over one channel: every one gets exactly its own output
// and exit code, none lost or crossed.
TEST_F(ProviderContract, AThousandConcurrentCommandsKeepTheirOwnOutput) {
  constexpr int kCommands = 1000;
  std::vector<std::unique_ptr<ExecSession>> sessions;
  for (int i = 0; i < kCommands; ++i) {
    auto s = provider().openExec(sharedRef(),
                                 {"sh", "-c", "echo out-$0; echo err-$0 >&2; exit $1",
                                  std::to_string(i), std::to_string(i % 256)},
                                 {});
    ASSERT_TRUE(s.ok()) << i << ": " << s.error().describe();
    sessions.push_back(std::move(s).value());
  }
  int good = 0;
  for (int i = 0; i < kCommands; ++i) {
    std::string out, err;
    Result<std::optional<ExecChunk>> c = sessions[i]->read();
    for (; c.ok() && c->has_value(); c = sessions[i]->read()) {
      ((*c)->stream == ExecStream::Stdout ? out : err) += (*c)->data;
    }
    ASSERT_TRUE(c.ok()) << i << ": " << c.error().describe();
    auto code = sessions[i]->wait();
    ASSERT_TRUE(code.ok()) << i << ": " << code.error().describe();
    EXPECT_EQ(out, "out-" + std::to_string(i) + "\n");
    EXPECT_EQ(err, "err-" + std::to_string(i) + "\n");
    EXPECT_EQ(*code, i % 256);
    if (out == "out-" + std::to_string(i) + "\n" && *code == i % 256) ++good;
  }
  EXPECT_EQ(good, kCommands);
}

}  // namespace agentpane::contract
