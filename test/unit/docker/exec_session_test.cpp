// DockerExecSession over fake streams: frames split across reads at every byte, a failure
// sweep where each read fails in turn (an error, never a hang), timeouts, cancel, stdin.
#include <gtest/gtest.h>

#include "unit/docker/exec_fakes.hpp"
#include "unit/docker/frames.hpp"

#include <thread>

namespace agentpane::docker {
namespace {

using namespace std::chrono_literals;

using agentpane::docker::testing::FakeState;
using agentpane::docker::testing::frame;
using agentpane::docker::testing::Rig;

struct Drained {
  std::string out, err;
  std::optional<Error> error;
};

Drained drain(ExecSession& s, int maxReads = 10000) {
  Drained d;
  for (int i = 0; i < maxReads; ++i) {
    auto c = s.read();
    if (!c.ok()) {
      d.error = c.error();
      return d;
    }
    if (!*c) return d;
    ((*c)->stream == ExecStream::Stdout ? d.out : d.err) += (*c)->data;
  }
  ADD_FAILURE() << "read() never finished";
  return d;
}

std::string script() {
  std::string bin;
  for (int i = 0; i < 256; ++i)
    bin += static_cast<char>(i);
  return frame(1, "out1 ") + frame(2, "err1") + frame(1, bin) + frame(1, "") + frame(2, "err2") +
         frame(1, "end");
}

std::string expectedOut() {
  std::string bin;
  for (int i = 0; i < 256; ++i)
    bin += static_cast<char>(i);
  return "out1 " + bin + "end";
}

TEST(DockerExecSession, ReadsBothStreamsInOrderThenTheExitCode) {
  Rig rig;
  rig.stream->reads = {script()};
  rig.control->exit = 42;
  auto s = rig.make();
  std::vector<ExecChunk> chunks;
  for (;;) {
    auto c = s->read();
    ASSERT_TRUE(c.ok()) << c.error().describe();
    if (!*c) break;
    chunks.push_back(**c);
  }
  ASSERT_EQ(chunks.size(), 5u);  // neighbours of one stream merged: out err out err out
  EXPECT_EQ(chunks[0].stream, ExecStream::Stdout);
  EXPECT_EQ(chunks[1].data, "err1");
  auto again = s->read();  // after the end: still the end
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  auto code = s->wait();
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 42);
  EXPECT_EQ(s->wait().value(), 42);
  EXPECT_EQ(rig.control->exitCalls.load(), 1);
  EXPECT_EQ(rig.control->kills.load(), 0);
}

TEST(DockerExecSession, FramesSplitAcrossReadsAtEveryByte) {
  const std::string bytes = script();
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    Rig rig;
    rig.stream->reads = {bytes.substr(0, cut), bytes.substr(cut)};
    if (rig.stream->reads[0].empty()) rig.stream->reads.erase(rig.stream->reads.begin());
    auto s = rig.make();
    Drained d = drain(*s);
    ASSERT_FALSE(d.error) << "cut " << cut << ": " << d.error->describe();
    EXPECT_EQ(d.out, expectedOut()) << "cut " << cut;
    EXPECT_EQ(d.err, "err1err2") << "cut " << cut;
    EXPECT_TRUE(s->wait().ok());
  }
}

TEST(DockerExecSession, FailureSweepEveryReadFailsInTurn) {
  // Three bytes per read: every header and payload boundary is crossed somewhere.
  const std::string bytes = script();
  std::vector<std::string> reads;
  for (std::size_t i = 0; i < bytes.size(); i += 3)
    reads.push_back(bytes.substr(i, 3));
  const int total = static_cast<int>(reads.size()) + 1;  // + the read that sees EOF
  for (int failAt = 0; failAt <= total; ++failAt) {
    Rig rig;
    rig.stream->reads = reads;
    rig.stream->failReadAt = failAt;
    auto s = rig.make();
    Drained d = drain(*s);
    if (failAt < total) {
      ASSERT_TRUE(d.error.has_value()) << "failAt " << failAt;
      EXPECT_EQ(d.error->code, ErrorCode::SandboxExecFailed) << "failAt " << failAt;
      auto again = s->read();  // sticky, no hang
      ASSERT_FALSE(again.ok());
      auto code = s->wait();
      EXPECT_FALSE(code.ok());
    } else {
      ASSERT_FALSE(d.error) << d.error->describe();
      EXPECT_EQ(d.out, expectedOut());
      EXPECT_TRUE(s->wait().ok());
    }
    EXPECT_EQ(rig.control->kills.load(), 0);
  }
}

TEST(DockerExecSession, StreamEndingInsideAFrameIsAnError) {
  const std::string bytes = frame(1, "complete") + frame(2, "cut short");
  for (std::size_t end = bytes.size() - 1; end > frame(1, "complete").size(); --end) {
    Rig rig;
    rig.stream->reads = {bytes.substr(0, end)};
    auto s = rig.make();
    Drained d = drain(*s);
    ASSERT_TRUE(d.error.has_value()) << end;
    EXPECT_EQ(d.error->code, ErrorCode::SandboxExecFailed);
  }
}

TEST(DockerExecSession, EngineSystemErrorFrame) {
  Rig rig;
  rig.stream->reads = {frame(1, "x") + frame(3, "exec failed: no such file")};
  auto s = rig.make();
  Drained d = drain(*s);
  ASSERT_TRUE(d.error.has_value());
  EXPECT_NE(d.error->message.find("no such file"), std::string::npos);
}

TEST(DockerExecSession, TimeoutKillsOnceAndReportsExecTimeout) {
  Rig rig;
  rig.stream->reads = {frame(1, "partial")};
  rig.stream->blockAtEnd = true;
  auto s = rig.make(150ms);
  auto first = s->read();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->data, "partial");
  auto t0 = std::chrono::steady_clock::now();
  auto second = s->read();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::ExecTimeout);
  EXPECT_EQ(rig.control->kills.load(), 1);
  EXPECT_EQ(s->read().error().code, ErrorCode::ExecTimeout);
  EXPECT_EQ(s->wait().error().code, ErrorCode::ExecTimeout);
  s->cancel();
  EXPECT_EQ(rig.control->kills.load(), 1);
}

TEST(DockerExecSession, CancelFromAnotherThreadUnblocksRead) {
  Rig rig;
  rig.stream->blockAtEnd = true;
  auto s = rig.make();
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    s->cancel();
  });
  auto r = s->read();
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("reason"), "canceled");
  EXPECT_EQ(rig.control->kills.load(), 1);
  s->cancel();
  EXPECT_EQ(rig.control->kills.load(), 1);
  EXPECT_FALSE(s->wait().ok());
}

TEST(DockerExecSession, StdinWritesWhileAnotherThreadReads) {
  Rig rig;
  rig.stream->blockAtEnd = true;
  auto s = rig.make(0ms, true);
  std::thread reader([&] { (void)s->read(); });
  ASSERT_TRUE(s->writeStdin("abc").ok());
  ASSERT_TRUE(s->writeStdin("def").ok());
  ASSERT_TRUE(s->closeStdin().ok());
  ASSERT_TRUE(s->closeStdin().ok());
  EXPECT_FALSE(s->writeStdin("late").ok());
  s->cancel();
  reader.join();
  EXPECT_EQ(rig.stream->written, "abcdef");
  EXPECT_EQ(rig.stream->shutdowns, 1);
}

TEST(DockerExecSession, StdinRulesAndWriteFailures) {
  Rig noStdin;
  auto a = noStdin.make();
  auto w = a->writeStdin("x");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::ValidationError);
  EXPECT_TRUE(a->closeStdin().ok());
  EXPECT_EQ(noStdin.stream->shutdowns, 0);

  for (int failAt = 0; failAt < 3; ++failAt) {
    Rig rig;
    rig.stream->failWriteAt = failAt;
    auto s = rig.make(0ms, true);
    bool failed = false;
    for (int i = 0; i < 3; ++i) {
      auto r = s->writeStdin("chunk");
      if (!r.ok()) {
        EXPECT_EQ(r.error().code, ErrorCode::SandboxExecFailed);
        failed = true;
        break;
      }
    }
    EXPECT_TRUE(failed);
  }
}

TEST(DockerExecSession, OutputEndMeansStdinIsRefusedAtOnce) {
  Rig rig;
  rig.stream->reads = {frame(1, "bye")};
  auto s = rig.make(0ms, true);
  Drained d = drain(*s);
  ASSERT_FALSE(d.error);
  auto w = s->writeStdin("too late");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().details.at("reason"), "exited");
  EXPECT_TRUE(s->closeStdin().ok());
  EXPECT_TRUE(rig.stream->closed);  // a blocked writer would have been woken
}

TEST(DockerExecSession, WaitBeforeTheEndIsRefused) {
  Rig rig;
  rig.stream->reads = {frame(1, "x")};
  auto s = rig.make();
  auto w = s->wait();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(rig.control->exitCalls.load(), 0);
}

TEST(DockerExecSession, RunToCompletionFeedsStdinAndCollects) {
  Rig rig;
  rig.stream->reads = {frame(1, "5\n")};
  rig.stream->eofAfterStdinClose = true;
  rig.control->exit = 0;
  auto s = rig.make(0ms, true);
  ExecRequest req;
  req.options.attachStdin = true;
  req.stdinData = "hello";
  auto r = runToCompletion(*s, req);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "5\n");
  EXPECT_EQ(rig.stream->written, "hello");
  EXPECT_EQ(rig.stream->shutdowns, 1);
}

}  // namespace
}  // namespace agentpane::docker
