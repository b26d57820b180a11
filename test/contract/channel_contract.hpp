// Checks of the provider contract that hold only through the in-sandbox agent channel
// (src/channel): included by each provider's channel suite after its makeHarness().
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

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

// Our image has the agent baked in (scripts/build-sandbox-image.sh): a channel starts from
// it without a copy (no "installed" event), and the agent daemon runs from the image's file.
TEST_F(ProviderContract, OurImageNeedsNoCopyOfTheAgent) {
  auto& cp = dynamic_cast<channel::ChannelProvider&>(provider());
  // A channel provider of its own over the same backend, so the channel starts now, while
  // the counters are watched (the suite's provider may have started its channel already).
  std::shared_ptr<SandboxProvider> inner(std::shared_ptr<SandboxProvider>{}, &cp.inner());
  channel::ChannelProviderOptions co;
  co.agentBinary = channel::defaultAgentBinary();
  ASSERT_FALSE(co.agentBinary.empty()) << "build/agentpane-agent not found";
  channel::ChannelProvider fresh(inner, co);
  const auto installs = channel::counters().installs.load();
  const auto starts = channel::counters().starts.load();
  auto ch = fresh.channelFor(sharedRef());
  ASSERT_TRUE(ch.ok()) << ch.error().describe();
  EXPECT_EQ(channel::counters().starts.load(), starts + 1);
  EXPECT_EQ(channel::counters().installs.load(), installs)
      << "the agent was copied in: the image lacks " << channel::kBakedAgentPath
      << " (rebuild it: scripts/build-sandbox-image.sh)";
  // The daemon names itself "agentpane-agent --serve-daemon …": its executable tells.
  auto exe = sh("readlink /proc/" + std::to_string((*ch)->hello().pid) + "/exe");
  EXPECT_EQ(exe, std::string(channel::kBakedAgentPath) + "\n");
  (*ch)->close();
}

// A reader that does not read: its command's unread output stays bounded (the agent holds
// that command's output and the process waits on its pipe), another command on the same
// channel runs meanwhile, and once read, every byte arrives and the exit code with it.
TEST_F(ProviderContract, ASlowReaderHoldsItsCommandNotTheChannel) {
  using Clock = std::chrono::steady_clock;
  auto& cp = dynamic_cast<channel::ChannelProvider&>(provider());
  auto ch = cp.channelFor(sharedRef());
  ASSERT_TRUE(ch.ok()) << ch.error().describe();
  const auto holds = channel::counters().outputHolds.load();
  constexpr std::size_t kTotal = 96u << 20;
  // Hold past 8 MiB, plus what is in flight: the agent's client queue (8 MiB) and the
  // transport's buffers — on Kubernetes the socket buffers of every hop (runtime, kubelet,
  // apiserver, us), which reached 33.8 MiB once under load. Without the hold all 96 MiB pile
  // up within a second.
  constexpr std::size_t kBound = 48u << 20;
  auto session =
      provider().openExec(sharedRef(), {"head", "-c", std::to_string(kTotal), "/dev/zero"}, {});
  ASSERT_TRUE(session.ok()) << session.error().describe();
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (channel::counters().outputHolds.load() == holds && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GT(channel::counters().outputHolds.load(), holds)
      << "no hold; unread: " << (*ch)->queuedOutputBytes();

  auto other = run({"echo", "other"});  // the channel is not held
  ASSERT_TRUE(other.ok()) << other.error().describe();
  EXPECT_EQ(other->stdoutData, "other\n");
  std::size_t most = 0;
  for (int i = 0; i < 30; ++i) {  // 1.5 s of a reader that still does not read
    most = std::max(most, (*ch)->queuedOutputBytes());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_LE(most, kBound);
  std::printf("unread output while not reading: at most %zu KiB of %zu\n", most >> 10,
              kTotal >> 10);

  std::size_t got = 0;
  bool allZero = true;
  for (;;) {
    auto c = (*session)->read();
    ASSERT_TRUE(c.ok()) << c.error().describe();
    if (!c->has_value()) break;
    got += (*c)->data.size();
    allZero = allZero && (*c)->data.find_first_not_of('\0') == std::string::npos;
  }
  EXPECT_EQ(got, kTotal);
  EXPECT_TRUE(allZero);
  auto code = (*session)->wait();
  ASSERT_TRUE(code.ok()) << code.error().describe();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ((*ch)->queuedOutputBytes(), 0u);
}

// A command that does not read its stdin holds only its own stdin: its writer waits (the
// agent's window for it is used up), while another command on the same channel gets its stdin
// and its output meanwhile, whatever the transport buffers in between (Kubernetes' proxies
// buffer a lot: with protocol 2's hold this hung there). Killed, the waiting stdin is dropped and
// the writer returns.
TEST_F(ProviderContract, AStuckStdinHoldsItsCommandNotTheChannel) {
  using Clock = std::chrono::steady_clock;
  ExecOptions in;
  in.attachStdin = true;
  auto stuck = provider().openExec(sharedRef(), {"sleep", "3135"}, in);
  ASSERT_TRUE(stuck.ok()) << stuck.error().describe();
  const auto holds = channel::counters().stdinWaits.load();
  std::promise<Result<void>> written;
  auto writtenF = written.get_future();
  (*stuck)->asyncWriteStdin(std::string(32u << 20, 'x'),
                            [&written](Result<void> r) { written.set_value(std::move(r)); });
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (channel::counters().stdinWaits.load() == holds && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GT(channel::counters().stdinWaits.load(), holds);

  ExecOptions bounded = in;
  bounded.timeout = std::chrono::seconds(20);
  auto other = run({"cat"}, bounded, std::string("through\n"));
  ASSERT_TRUE(other.ok()) << other.error().describe();
  EXPECT_EQ(other->stdoutData, "through\n");
  EXPECT_EQ(other->exitCode, 0);
  EXPECT_EQ(writtenF.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "32 MiB went to a process that reads nothing";

  (*stuck)->cancel();
  ASSERT_EQ(writtenF.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto code = (*stuck)->wait();
  EXPECT_FALSE(code.ok() && *code == 0);
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

// A durable command followed live through the runner: `begin`, then the output as it is
// written (the command waits for a file made only after the first line arrived), then `end`
// with the exit code; after stop() nothing more is delivered; an unknown command ends with
// NotFound. Events come on the channel's thread, so the test collects them under a lock.
TEST_F(ProviderContract, ADurableCommandIsFollowedLiveUntilItsEnd) {
  auto& cp = dynamic_cast<channel::ChannelProvider&>(provider());
  ExecOptions opts;
  auto started = cp.startCommand(sharedRef(),
                                 {"sh", "-c",
                                  "echo first; while [ ! -e /tmp/follow-go ]; do sleep 0.05; "
                                  "done; echo second >&2; exit 4"},
                                 opts);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  struct Seen {
    std::mutex m;
    std::condition_variable cv;
    std::optional<std::uint64_t> begin;
    std::string out, err;
    std::optional<Result<CommandStatus>> end;
    int events = 0;
  };
  auto seen = std::make_shared<Seen>();
  auto eventsInto = [](std::shared_ptr<Seen> s) {
    CommandEvents ev;
    ev.begin = [s](std::uint64_t c, const CommandStatus&) {
      std::lock_guard lk(s->m);
      s->begin = c;
      ++s->events;
      s->cv.notify_all();
    };
    ev.chunk = [s](CommandChunk c) {
      std::lock_guard lk(s->m);
      (c.stream == ExecStream::Stderr ? s->err : s->out) += c.data;
      ++s->events;
      s->cv.notify_all();
    };
    ev.end = [s](Result<CommandStatus> r) {
      std::lock_guard lk(s->m);
      s->end = std::move(r);
      ++s->events;
      s->cv.notify_all();
    };
    return ev;
  };
  auto follow = cp.followCommand(sharedRef(), started->id, 0, eventsInto(seen));
  ASSERT_TRUE(follow.ok()) << follow.error().describe();
  {
    std::unique_lock lk(seen->m);
    ASSERT_TRUE(seen->cv.wait_for(lk, std::chrono::seconds(30), [&] {
      return seen->out == "first\n";
    })) << seen->out;
    EXPECT_EQ(seen->begin, std::optional<std::uint64_t>(0));
    EXPECT_FALSE(seen->end.has_value());
  }
  EXPECT_EQ(sh("touch /tmp/follow-go; echo ok"), "ok\n");
  {
    std::unique_lock lk(seen->m);
    ASSERT_TRUE(
        seen->cv.wait_for(lk, std::chrono::seconds(30), [&] { return seen->end.has_value(); }));
    ASSERT_TRUE(seen->end->ok()) << seen->end->error().describe();
    EXPECT_EQ((*seen->end)->exitCode, std::optional<int>(4));
    EXPECT_EQ((*seen->end)->state, "exited");
    EXPECT_EQ(seen->err, "second\n");
  }

  // stop(): a follower of a live command hears nothing after it returns.
  auto sleeper =
      cp.startCommand(sharedRef(), {"sh", "-c", "while :; do echo tick; sleep 0.05; done"}, opts);
  ASSERT_TRUE(sleeper.ok()) << sleeper.error().describe();
  auto ticks = std::make_shared<Seen>();
  auto f2 = cp.followCommand(sharedRef(), sleeper->id, 0, eventsInto(ticks));
  ASSERT_TRUE(f2.ok());
  {
    std::unique_lock lk(ticks->m);
    ASSERT_TRUE(
        ticks->cv.wait_for(lk, std::chrono::seconds(30), [&] { return ticks->out.size() >= 10; }));
  }
  (*f2)->stop();
  int eventsAtStop = 0;
  {
    std::lock_guard lk(ticks->m);
    eventsAtStop = ticks->events;
  }
  // The command still writes; a few of its lines later, the stopped follower has heard none.
  auto probe = cp.commandOutput(sharedRef(), sleeper->id, 0, std::chrono::milliseconds(0));
  ASSERT_TRUE(probe.ok());
  auto later = cp.commandOutput(sharedRef(), sleeper->id, probe->nextCursor + 10,
                                std::chrono::milliseconds(5000));
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(later->chunks.empty());
  {
    std::lock_guard lk(ticks->m);
    EXPECT_EQ(ticks->events, eventsAtStop);
  }
  ASSERT_TRUE(cp.killCommand(sharedRef(), sleeper->id).ok());

  auto unknown = std::make_shared<Seen>();
  auto f3 = cp.followCommand(sharedRef(), "no-such-command", 0, eventsInto(unknown));
  ASSERT_TRUE(f3.ok());
  std::unique_lock lk(unknown->m);
  ASSERT_TRUE(
      unknown->cv.wait_for(lk, std::chrono::seconds(30), [&] { return unknown->end.has_value(); }));
  ASSERT_FALSE(unknown->end->ok());
  EXPECT_EQ(unknown->end->error().code, ErrorCode::NotFound);
  EXPECT_EQ(sh("rm -f /tmp/follow-go; echo ok"), "ok\n");
}

}  // namespace agentpane::contract
