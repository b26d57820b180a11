// Checks of the provider contract that hold only through the in-sandbox agent channel
// (src/channel): included by each provider's channel suite after its makeHarness().
#pragma once

#include "channel/channel_provider.hpp"
#include "contract/provider_contract.hpp"

namespace agentpane::contract {

// The commands really ran through the channel: their parent is the agent daemon (on
// Kubernetes the argv then travels inside the stream, not in the exec URL, so the apiserver's
// audit log never sees it). Execs on stopped or removed sandboxes fall back to the native
// exec, which reports SandboxNotRunning / NotFound.
TEST_F(ProviderContract, ExecsWentThroughTheAgentChannel) {
  auto before = channel::counters().channelExecs.load();
  auto nativeBefore = channel::counters().nativeExecs.load();
  auto r = run({"sh", "-c", "echo via; exit 5"}, {});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 5);
  EXPECT_EQ(r->stdoutData, "via\n");
  EXPECT_EQ(channel::counters().channelExecs.load(), before + 1);
  EXPECT_EQ(channel::counters().nativeExecs.load(), nativeBefore);
  // The command's parent is the agent daemon, not the engine's exec.
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
