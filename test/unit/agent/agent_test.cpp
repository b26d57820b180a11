// The real agentpane-agent binary, run as a subprocess: commands, exit codes, stdin, env,
// timeouts that kill the whole process group, many commands at once, hostile frames, output
// fetched from a cursor, and the daemon that outlives its clients.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "agent_process.hpp"

namespace agentpane::agent::test {
namespace {

StartCommand cmd(std::string id, std::vector<std::string> argv) {
  StartCommand s;
  s.id = std::move(id);
  s.argv = std::move(argv);
  return s;
}

TEST(Agent, SaysHelloWithItsIdentity) {
  AgentProcess agent({"--stdio"});
  EXPECT_EQ(agent.hello().version, kProtocolVersion);
  EXPECT_GT(agent.hello().pid, 0u);
  EXPECT_EQ(agent.hello().uid, ::getuid());
}

TEST(Agent, SeparatesStreamsAndReportsTheExitCode) {
  AgentProcess agent({"--stdio"});
  auto r = run(agent, cmd("a", {"sh", "-c", "printf out; printf err >&2; exit 3"}));
  EXPECT_EQ(r.out, "out");
  EXPECT_EQ(r.err, "err");
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->code, 3);
  EXPECT_EQ(r.exit->reason, ExitReason::Exited);
  EXPECT_EQ(r.exit->endCursor, 6u);
}

TEST(Agent, ArgvIsNotInterpretedByAShell) {
  AgentProcess agent({"--stdio"});
  auto r = run(agent, cmd("a", {"printf", "%s|", "$HOME", "a b", ";", "*"}));
  EXPECT_EQ(r.out, "$HOME|a b|;|*|");
}

TEST(Agent, BinaryOutputArrivesWhole) {
  AgentProcess agent({"--stdio"});
  // 4 MiB of every byte value.
  auto r = run(agent, cmd("a", {"python3", "-c",
                                "import sys; sys.stdout.buffer.write(bytes(range(256)) * 16384)"}));
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->code, 0);
  std::string want;
  for (int i = 0; i < 16384; ++i) {
    for (int b = 0; b < 256; ++b)
      want.push_back(static_cast<char>(b));
  }
  EXPECT_TRUE(r.out == want) << r.out.size() << " bytes";
}

TEST(Agent, SignalDeathIs128PlusN) {
  AgentProcess agent({"--stdio"});
  auto r = run(agent, cmd("a", {"sh", "-c", "kill -TERM $$"}));
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->code, 128 + SIGTERM);
  EXPECT_EQ(r.exit->reason, ExitReason::Signaled);
}

TEST(Agent, CommandsThatCannotStartExitLikeAShell) {
  AgentProcess agent({"--stdio"});
  auto missing = run(agent, cmd("a", {"no-such-command-anywhere"}));
  ASSERT_TRUE(missing.exit);
  EXPECT_EQ(missing.exit->code, 127);
  EXPECT_NE(missing.err.find("no-such-command-anywhere"), std::string::npos);

  auto notExec = run(agent, cmd("b", {"/etc/passwd"}));
  ASSERT_TRUE(notExec.exit);
  EXPECT_EQ(notExec.exit->code, 126);

  auto badCwd = cmd("c", {"true"});
  badCwd.cwd = "/no/such/dir";
  auto r = run(agent, badCwd);
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->code, 126);
  EXPECT_NE(r.err.find("/no/such/dir"), std::string::npos);
}

TEST(Agent, WorkingDirectoryAndEnvironment) {
  AgentProcess agent({"--stdio"});
  auto s = cmd("a", {"sh", "-c", "pwd; printf '%s\\n' \"$AP_ONE\" \"$AP_TWO\""});
  s.cwd = "/tmp";
  s.env = {"AP_ONE=1", "AP_TWO=two words"};
  auto r = run(agent, s);
  EXPECT_EQ(r.out, "/tmp\n1\ntwo words\n");
}

TEST(Agent, StdinIsForwardedAndClosed) {
  AgentProcess agent({"--stdio"});
  auto s = cmd("a", {"sh", "-c", "cat; echo done"});
  s.attachStdin = true;
  agent.send(s);
  agent.expect<Started>();
  agent.send(StdinData{"a", std::string("line\0bin\n", 9)});
  agent.send(CloseStdin{"a"});
  auto r = collect(agent, {"a"})["a"];
  EXPECT_EQ(r.out, std::string("line\0bin\ndone\n", 14));
  EXPECT_EQ(r.exit->code, 0);
}

// Stdin by credit: the agent says its window and returns it as the process reads.
TEST(Agent, StdinIsCreditedBackAsTheProcessReadsIt) {
  AgentProcess agent({"--stdio"});
  EXPECT_EQ(agent.hello().stdinWindow, 4u << 20);
  auto s = cmd("a", {"cat"});
  s.attachStdin = true;
  agent.send(s);
  agent.expect<Started>();
  // Output interleaves with the credit: both are kept.
  std::string out;
  std::uint64_t acked = 0;
  auto until = [&](std::uint64_t want) {
    while (acked < want) {
      Message m = agent.nextMessage();
      if (auto* a = std::get_if<StdinAck>(&m)) {
        EXPECT_EQ(a->id, "a");
        acked = a->consumed;
      } else if (auto* o = std::get_if<Output>(&m)) {
        EXPECT_EQ(o->offset, out.size());
        out += o->data;
      }
    }
  };
  agent.send(StdinData{"a", std::string(100, 'x')});
  until(100);
  EXPECT_EQ(acked, 100u);  // at once: the queue emptied into the pipe
  agent.send(StdinData{"a", std::string(900, 'y')});
  until(1000);
  EXPECT_EQ(acked, 1000u);
  agent.send(CloseStdin{"a"});
  for (;;) {
    Message m = agent.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) {
      EXPECT_EQ(o->offset, out.size());
      out += o->data;
    } else if (auto* x = std::get_if<Exit>(&m)) {
      EXPECT_EQ(x->code, 0);
      break;
    }
  }
  EXPECT_EQ(out, std::string(100, 'x') + std::string(900, 'y'));
}

// A command that reads nothing holds only its own stdin. Stdin sent to it past the window is
// refused (never buffered without end), and the agent keeps reading the connection: another
// command gets its stdin and output. (Protocol 2 stopped reading the connection instead: on
// Kubernetes the transport carried far more than the limit before a hold came back, and the
// other command waited forever.)
TEST(Agent, StdinPastTheWindowIsRefusedAndOtherCommandsGoOn) {
  AgentProcess agent({"--stdio"});
  auto stuck = cmd("stuck", {"sleep", "3136"});
  stuck.attachStdin = true;
  agent.send(stuck);
  agent.expect<Started>();
  constexpr std::size_t kFrame = 512u << 10;
  constexpr int kFrames = 40;  // 20 MiB: five windows
  for (int i = 0; i < kFrames; ++i)
    agent.send(StdinData{"stuck", std::string(kFrame, 'x')});
  auto other = cmd("other", {"cat"});
  other.attachStdin = true;
  agent.send(other);
  agent.send(StdinData{"other", "through\n"});
  agent.send(CloseStdin{"other"});
  int refused = 0;
  std::string out;
  bool otherExited = false;
  while (!otherExited) {
    Message m = agent.nextMessage();
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      EXPECT_EQ(e->id, "stuck");
      EXPECT_EQ(e->code, kErrStdinOverflow);
      ++refused;
    } else if (auto* o = std::get_if<Output>(&m)) {
      if (o->id == "other") out += o->data;
    } else if (auto* x = std::get_if<Exit>(&m)) {
      EXPECT_EQ(x->id, "other");
      EXPECT_EQ(x->code, 0);
      otherExited = true;
    }
  }
  EXPECT_EQ(out, "through\n");
  // At most the window (8 frames) plus what the pipe took went in; the rest was refused.
  EXPECT_GE(refused, kFrames - 9);
  EXPECT_LE(refused, kFrames - 8);
  agent.send(KillCommand{"stuck", 9});
  std::optional<StdinAck> lastAck;
  for (;;) {
    Message m = agent.nextMessage();
    if (auto* a = std::get_if<StdinAck>(&m)) lastAck = *a;
    if (auto* x = std::get_if<Exit>(&m)) {
      EXPECT_EQ(x->code, 128 + SIGKILL);
      break;
    }
  }
  // Its queue was dropped with it, and credited back.
  ASSERT_TRUE(lastAck);
  EXPECT_EQ(lastAck->consumed, static_cast<std::uint64_t>(kFrames - refused) * kFrame);
}

TEST(Agent, WithoutAttachStdinTheCommandReadsEof) {
  AgentProcess agent({"--stdio"});
  auto r = run(agent, cmd("a", {"sh", "-c", "cat; echo after"}));
  EXPECT_EQ(r.out, "after\n");
}

// Live processes (not zombies) whose command line is exactly `cmdline` (NUL-separated).
int liveProcessesWithCmdline(const std::string& cmdline) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    // Through the stream (not a streambuf iterator): a process that exits meanwhile makes the
    // read fail (ESRCH), which libstdc++'s filebuf throws and only the stream catches.
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::ostringstream all;
    all << f.rdbuf();
    if (all.str() != cmdline) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (std::getline(stat, line) && line.substr(line.rfind(')') + 2, 1) != "Z") ++n;
  }
  return n;
}

std::string uniqueSleep() {
  return "1000." + std::to_string(::getpid()) + std::to_string(std::random_device{}());
}

// The timeout kills the whole group: here a child that cleared its environment (no marker
// could find it) and forked a grandchild. The Exit comes once nothing of it is alive.
TEST(Agent, TimeoutKillsTheProcessGroupEvenWithACleanEnvironment) {
  AgentProcess agent({"--stdio"});
  std::string arg = uniqueSleep();
  auto s = cmd("a", {"sh", "-c", "env -i /bin/sh -c 'sleep $0 & wait' " + arg});
  s.timeoutMs = 300;
  auto r = run(agent, s);
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->reason, ExitReason::TimedOut);
  EXPECT_EQ(r.exit->code, 128 + SIGKILL);
  EXPECT_EQ(liveProcessesWithCmdline(std::string("sleep\0", 6) + arg + std::string(1, '\0')), 0);
}

// A grandchild that moved to a process group of its own (same session) still dies with the
// command, and the Exit waits for it.
TEST(Agent, KillAlsoFindsAProcessThatLeftTheGroup) {
  AgentProcess agent({"--stdio"});
  agent.send(cmd("a", {"python3", "-c",
                       "import os,time\n"
                       "pid=os.fork()\n"
                       "if pid==0:\n  os.setpgid(0,0); time.sleep(1000)\n"
                       // The parent too (the usual way to close the race with the child's
                       // own setpgid): the group has changed before the pid is printed.
                       "os.setpgid(pid,pid)\n"
                       "print(pid, flush=True); time.sleep(1000)\n"}));
  agent.expect<Started>();
  // The pid line may come in more than one Output frame, so collect() (which checks cursors
  // from 0) is not used after this first read.
  std::string line;
  while (line.find('\n') == std::string::npos)
    line += agent.expect<Output>().data;
  auto pid = std::stoi(line);
  EXPECT_NE(::getpgid(pid), ::getpgid(static_cast<pid_t>(agent.hello().pid)));
  agent.send(KillCommand{"a", SIGKILL});
  std::optional<Exit> exit;
  std::string more;
  while (!exit) {
    Message m = agent.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) more += o->data;
    if (auto* x = std::get_if<Exit>(&m)) exit = *x;
  }
  EXPECT_EQ(exit->code, 128 + SIGKILL) << "output after the pid: " << more;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string st;
  if (std::getline(stat, st)) {
    EXPECT_EQ(st.substr(st.rfind(')') + 2, 1), "Z") << st;
  }
}

// A process that starts a session of its own (setsid, as a daemon does) leaves the command's
// group and session; it still carries the command's tag, and the kill finds it.
TEST(Agent, KillAlsoFindsAProcessThatStartedItsOwnSession) {
  AgentProcess agent({"--stdio"});
  agent.send(cmd("a", {"python3", "-c",
                       "import os,time\n"
                       "r,w=os.pipe()\n"
                       "pid=os.fork()\n"
                       "if pid==0:\n  os.setsid(); os.write(w,b'x'); time.sleep(1000)\n"
                       "os.read(r,1)\n"
                       "print(pid, flush=True); time.sleep(1000)\n"}));
  agent.expect<Started>();
  std::string line;
  while (line.find('\n') == std::string::npos)
    line += agent.expect<Output>().data;
  auto pid = std::stoi(line);
  ASSERT_EQ(::getsid(pid), pid) << "the child leads a session of its own";
  agent.send(KillCommand{"a", SIGKILL});
  std::optional<Exit> exit;
  while (!exit) {
    Message m = agent.nextMessage();
    if (auto* x = std::get_if<Exit>(&m)) exit = *x;
  }
  EXPECT_EQ(exit->code, 128 + SIGKILL);
  // Gone, or a zombie waiting for its reaper: not running.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string st;
  if (std::getline(stat, st)) {
    EXPECT_EQ(st.substr(st.rfind(')') + 2, 1), "Z") << st;
  }
  ::kill(pid, SIGKILL);  // never left behind by a failing run
}

// A command's tag does not reach what it did not start: another command's processes live on.
TEST(Agent, KillLeavesAnotherCommandsSessionAlone) {
  AgentProcess agent({"--stdio"});
  agent.send(cmd("keep", {"sleep", "1000"}));
  auto kept = agent.expect<Started>();
  agent.send(cmd("a", {"sleep", "1000"}));
  agent.expect<Started>();
  agent.send(KillCommand{"a", SIGKILL});
  std::optional<Exit> exit;
  while (!exit) {
    Message m = agent.nextMessage();
    if (auto* x = std::get_if<Exit>(&m)) exit = *x;
  }
  EXPECT_EQ(exit->id, "a");
  EXPECT_EQ(::kill(static_cast<pid_t>(kept.pid), 0), 0) << "the other command still runs";
  agent.send(KillCommand{"keep", SIGKILL});
}

TEST(Agent, KillEndsTheCommandWithThatSignal) {
  AgentProcess agent({"--stdio"});
  agent.send(cmd("a", {"sleep", "1000"}));
  agent.expect<Started>();
  agent.send(KillCommand{"a", SIGTERM});
  auto r = collect(agent, {"a"})["a"];
  EXPECT_EQ(r.exit->code, 128 + SIGTERM);
  EXPECT_EQ(r.exit->reason, ExitReason::Killed);
}

TEST(Agent, ManyCommandsAtOnceKeepTheirOwnOutput) {
  AgentProcess agent({"--stdio"});
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    std::string id = "c" + std::to_string(i);
    ids.push_back(id);
    agent.send(
        cmd(id, {"sh", "-c", "echo out-$0; echo err-$0 >&2; exit $1", id, std::to_string(i % 7)}));
  }
  auto all = collect(agent, ids);
  for (int i = 0; i < 300; ++i) {
    auto& r = all["c" + std::to_string(i)];
    EXPECT_EQ(r.out, "out-c" + std::to_string(i) + "\n");
    EXPECT_EQ(r.err, "err-c" + std::to_string(i) + "\n");
    ASSERT_TRUE(r.exit);
    EXPECT_EQ(r.exit->code, i % 7);
  }
}

TEST(Agent, HostileFramesAreRefusedAndTheAgentGoesOn) {
  AgentProcess agent({"--stdio"});
  agent.sendRaw(std::string("\0\0\0\0", 4));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrFrameEmpty);
  agent.sendRaw(std::string("\0\0\0\x01\x55", 5));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrUnknownType);
  // 2 MiB announced and sent: refused and skipped, the stream stays in step.
  agent.sendRaw(std::string("\0\x20\0\0", 4));
  agent.sendRaw(std::string(2u << 20, '\x01'));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrFrameTooLarge);
  agent.send(Ping{7});
  EXPECT_EQ(agent.expect<Pong>().tag, 7u);

  agent.send(KillCommand{"nobody", 9});
  auto e = agent.expect<ErrorReply>();
  EXPECT_EQ(e.code, kErrUnknownId);
  EXPECT_EQ(e.id, "nobody");
  agent.send(FetchOutput{"../x", 0, false});
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadId);
  agent.send(cmd("bad id", {"true"}));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadId);
  agent.send(cmd("e", {}));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadRequest);
  auto badEnv = cmd("e2", {"true"});
  badEnv.env = {"NOEQUALS"};
  agent.send(badEnv);
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadRequest);
  agent.send(Hello{});
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrUnexpected);
  agent.send(StdinData{"nobody", "x"});
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrUnknownId);

  agent.send(cmd("dup", {"sleep", "1000"}));
  agent.expect<Started>();
  agent.send(cmd("dup", {"true"}));
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrDuplicateId);
  agent.send(StdinData{"dup", "x"});  // stdin was not attached
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadRequest);
  agent.send(KillCommand{"dup", 9});
  auto r = collect(agent, {"dup"})["dup"];
  EXPECT_EQ(r.exit->code, 137);
  agent.send(KillCommand{"dup", 9});
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrNotRunning);

  // Still serving.
  auto ok = run(agent, cmd("after", {"echo", "alive"}));
  EXPECT_EQ(ok.out, "alive\n");
}

TEST(Agent, UserSwitchNeedsRoot) {
  AgentProcess agent({"--stdio"});
  auto s = cmd("a", {"id", "-u"});
  if (::getuid() == 0) {
    s.user = "65534";
    auto r = run(agent, s);
    EXPECT_EQ(r.out, "65534\n");
  } else {
    s.user = "0";
    agent.send(s);
    EXPECT_EQ(agent.expect<ErrorReply>().code, kErrUserNotAllowed);
  }
  s.id = "b";
  s.user = "no-such-user-here";
  agent.send(s);
  EXPECT_EQ(agent.expect<ErrorReply>().code, kErrBadRequest);
}

TEST(Agent, TerminalMode) {
  AgentProcess agent({"--stdio"});
  auto s = cmd("a", {"sh", "-c", "tty; stty size; echo $TERM >&2"});
  s.tty = true;
  s.rows = 30;
  s.cols = 101;
  auto r = run(agent, s);
  EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("30 101"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("xterm"), std::string::npos) << r.out;  // stderr is the terminal too
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.exit->code, 0);
}

TEST(Agent, FetchReplaysFromACursorAndTheRingIsBounded) {
  AgentProcess agent({"--stdio", "--ring-bytes", "1000"});
  auto r = run(agent, cmd("a", {"sh", "-c", "printf abc; printf def >&2; exit 4"}));
  ASSERT_EQ(r.exit->code, 4);
  agent.send(FetchOutput{"a", 2, false});
  // The two chunks may have arrived as one or two reads; the replay starts at byte 2.
  std::string replay;
  for (;;) {
    Message m = agent.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) {
      EXPECT_EQ(o->offset, 2 + replay.size());
      replay += o->data;
      continue;
    }
    auto end = std::get<FetchEnd>(m);
    EXPECT_EQ(end.nextCursor, 6u);
    EXPECT_FALSE(end.info.running);
    EXPECT_EQ(end.info.exitCode, 4);
    break;
  }
  EXPECT_EQ(replay, "cdef");

  // More than the ring holds: the oldest output is gone, the cursor says so.
  auto big = run(agent, cmd("b", {"sh", "-c", "head -c 200000 /dev/zero"}));
  EXPECT_EQ(big.out.size(), 200000u);
  agent.send(FetchOutput{"b", 0, true});
  std::uint64_t first = 0;
  std::size_t got = 0;
  for (;;) {
    Message m = agent.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) {
      if (got == 0) first = o->offset;
      got += o->data.size();
      continue;
    }
    auto end = std::get<FetchEnd>(m);
    EXPECT_GT(end.info.firstCursor, 0u);
    EXPECT_EQ(end.info.firstCursor, first);
    EXPECT_EQ(first + got, 200000u);
    break;
  }
  EXPECT_EQ(agent.expect<Exit>().code, 0);  // follow on a finished command: its Exit

  agent.send(ListCommands{1});
  auto list = agent.expect<ListReply>();
  ASSERT_EQ(list.commands.size(), 2u);
  EXPECT_EQ(list.commands[0].id, "a");
  EXPECT_EQ(list.commands[0].argv[0], "sh");
  EXPECT_EQ(list.commands[1].endCursor, 200000u);
}

TEST(Agent, StdioCommandsDieWithTheStream) {
  std::string pid;
  {
    AgentProcess agent({"--stdio"});
    agent.send(cmd("a", {"sh", "-c", "echo $$; exec sleep 1000"}));
    agent.expect<Started>();
    pid = agent.expect<Output>().data;
    agent.closeInput();
    EXPECT_FALSE(agent.next().has_value());
    EXPECT_EQ(agent.waitExit(), 0);
  }
  pid.pop_back();
  // The agent killed it before it exited; it was the agent's child, so nobody is left to
  // reap it but init: it is gone or a zombie.
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (std::getline(stat, line)) {
    EXPECT_EQ(line.substr(line.rfind(')') + 2, 1), "Z") << line;
  }
}

// The daemon: commands outlive the connection that started them; a new connection replays
// their output from a cursor and follows them to their exit.
TEST(AgentDaemon, CommandsOutliveTheirClient) {
  std::string sock = "AGENTPANE_AGENT_SOCKET=" + uniqueSocketName();
  std::uint32_t daemonPid = 0;
  {
    AgentProcess first({}, {sock});
    daemonPid = first.hello().pid;
    auto s = cmd("durable", {"sh", "-c", "cat; echo end; exit 9"});
    s.attachStdin = true;
    first.send(s);
    first.expect<Started>();
    first.send(StdinData{"durable", "hello\n"});
    EXPECT_EQ(first.expect<Output>().data, "hello\n");
    first.closeInput();
    EXPECT_EQ(first.waitExit(), 0);
  }
  AgentProcess second({}, {sock});
  EXPECT_EQ(second.hello().pid, daemonPid);
  second.send(FetchOutput{"durable", 0, true});
  auto replay = second.expect<Output>();
  EXPECT_EQ(replay.data, "hello\n");
  EXPECT_EQ(replay.offset, 0u);
  auto end = second.expect<FetchEnd>();
  EXPECT_TRUE(end.info.running);
  EXPECT_EQ(end.nextCursor, 6u);
  second.send(StdinData{"durable", "again\n"});
  second.send(CloseStdin{"durable"});
  std::string live;
  for (;;) {
    Message m = second.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) {
      EXPECT_EQ(o->offset, 6u + live.size());
      live += o->data;
      continue;
    }
    if (std::holds_alternative<StdinAck>(m)) continue;  // credit for "again\n"
    auto x = std::get<Exit>(m);
    EXPECT_EQ(x.code, 9);
    EXPECT_EQ(x.endCursor, 6u + 6u + 4u);
    break;
  }
  EXPECT_EQ(live, "again\nend\n");

  // The daemon killed mid-command: the connection ends with a clear error.
  second.send(cmd("long", {"sleep", "1000"}));
  const auto longPid = static_cast<pid_t>(second.expect<Started>().pid);
  ::kill(static_cast<pid_t>(daemonPid), SIGKILL);
  EXPECT_FALSE(second.next().has_value());
  std::string err;
  EXPECT_EQ(second.waitExit(&err), 3);
  EXPECT_NE(err.find("closed the connection"), std::string::npos) << err;
  // Its command outlives the daemon (as in a sandbox); the test does not leave it behind.
  ::kill(-longPid, SIGKILL);
}

}  // namespace
}  // namespace agentpane::agent::test
