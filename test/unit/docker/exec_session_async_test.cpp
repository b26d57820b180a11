// DockerExecSession's asynchronous form over the same fakes: the results match the
// blocking form, handlers run on the session's loop (never a caller's thread), a pending
// read is failed by asyncCancel, the timeout kills once, stdin flows while a read waits.
#include <gtest/gtest.h>

#include "unit/docker/exec_fakes.hpp"
#include "unit/docker/frames.hpp"

#include <future>

namespace agentpane::docker {
namespace {

using namespace std::chrono_literals;
using agentpane::docker::testing::frame;
using agentpane::docker::testing::Rig;

// Starts one asynchronous call and waits for its handler (the test thread is not the loop).
template <typename T, typename Start>
Result<T> await(Start start, std::thread::id* ranOn = nullptr) {
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto f = p->get_future();
  start(ExecHandler<T>([p, ranOn](Result<T> r) {
    if (ranOn != nullptr) *ranOn = std::this_thread::get_id();
    p->set_value(std::move(r));
  }));
  return f.get();
}

Result<std::optional<ExecChunk>> readOnce(ExecSession& s, std::thread::id* ranOn = nullptr) {
  return await<std::optional<ExecChunk>>([&](auto h) { s.asyncRead(std::move(h)); }, ranOn);
}

TEST(DockerExecSessionAsync, ReadsBothStreamsThenTheExitCodeOnTheLoop) {
  Rig rig;
  rig.stream->reads = {frame(1, "out1 ") + frame(2, "err1"), frame(1, "end")};
  rig.control->exit = 42;
  auto s = rig.make();
  std::string out, err;
  std::thread::id ranOn;
  for (;;) {
    auto c = readOnce(*s, &ranOn);
    ASSERT_TRUE(c.ok()) << c.error().describe();
    EXPECT_EQ(ranOn, rig.thread.get_id());
    if (!*c) break;
    ((*c)->stream == ExecStream::Stdout ? out : err) += (*c)->data;
  }
  EXPECT_EQ(out, "out1 end");
  EXPECT_EQ(err, "err1");
  auto code = await<int>([&](auto h) { s->asyncWait(std::move(h)); });
  ASSERT_TRUE(code.ok()) << code.error().describe();
  EXPECT_EQ(*code, 42);
  EXPECT_EQ(rig.control->exitCalls.load(), 1);
  EXPECT_EQ(rig.control->kills.load(), 0);
}

TEST(DockerExecSessionAsync, FramesSplitAtEveryByte) {
  const std::string bytes = frame(1, "hello") + frame(2, "world") + frame(1, "!");
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    Rig rig;
    rig.stream->reads = {bytes.substr(0, cut), bytes.substr(cut)};
    auto s = rig.make();
    std::string out, err;
    for (;;) {
      auto c = readOnce(*s);
      ASSERT_TRUE(c.ok()) << "cut " << cut << ": " << c.error().describe();
      if (!*c) break;
      ((*c)->stream == ExecStream::Stdout ? out : err) += (*c)->data;
    }
    EXPECT_EQ(out, "hello!") << cut;
    EXPECT_EQ(err, "world") << cut;
  }
}

TEST(DockerExecSessionAsync, CancelFailsAPendingReadAndKillsOnce) {
  Rig rig;
  rig.stream->blockAtEnd = true;
  auto s = rig.make();
  std::promise<Result<std::optional<ExecChunk>>> read;
  s->asyncRead([&](Result<std::optional<ExecChunk>> r) { read.set_value(std::move(r)); });
  auto canceled = await<void>([&](auto h) { s->asyncCancel(std::move(h)); });
  EXPECT_TRUE(canceled.ok());
  auto r = read.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("reason"), "canceled");
  EXPECT_EQ(rig.control->kills.load(), 1);
  auto again = await<void>([&](auto h) { s->asyncCancel(std::move(h)); });  // idempotent
  EXPECT_TRUE(again.ok());
  EXPECT_EQ(rig.control->kills.load(), 1);
  auto code = await<int>([&](auto h) { s->asyncWait(std::move(h)); });
  EXPECT_FALSE(code.ok());
}

TEST(DockerExecSessionAsync, TimeoutKillsOnceAndReportsExecTimeout) {
  Rig rig;
  rig.stream->reads = {frame(1, "partial")};
  rig.stream->blockAtEnd = true;
  auto s = rig.make(100ms);
  auto first = readOnce(*s);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->data, "partial");
  auto second = readOnce(*s);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::ExecTimeout);
  EXPECT_EQ(rig.control->kills.load(), 1);
  EXPECT_EQ(readOnce(*s).error().code, ErrorCode::ExecTimeout);
  auto code = await<int>([&](auto h) { s->asyncWait(std::move(h)); });
  ASSERT_FALSE(code.ok());
  EXPECT_EQ(code.error().code, ErrorCode::ExecTimeout);
}

TEST(DockerExecSessionAsync, StdinFlowsWhileAReadWaitsAndEofEndsTheProcess) {
  Rig rig;
  rig.stream->reads = {frame(1, "ready")};
  rig.stream->eofAfterStdinClose = true;
  rig.control->exit = 0;
  auto s = rig.make(0ms, true);
  auto first = readOnce(*s);
  ASSERT_TRUE(first.ok());
  std::promise<Result<std::optional<ExecChunk>>> pending;  // waits for EOF
  s->asyncRead([&](Result<std::optional<ExecChunk>> r) { pending.set_value(std::move(r)); });
  EXPECT_TRUE(await<void>([&](auto h) { s->asyncWriteStdin("abc", std::move(h)); }).ok());
  EXPECT_TRUE(await<void>([&](auto h) { s->asyncWriteStdin("def", std::move(h)); }).ok());
  EXPECT_TRUE(await<void>([&](auto h) { s->asyncCloseStdin(std::move(h)); }).ok());
  EXPECT_TRUE(await<void>([&](auto h) { s->asyncCloseStdin(std::move(h)); }).ok());
  auto end = pending.get_future().get();
  ASSERT_TRUE(end.ok()) << end.error().describe();
  EXPECT_FALSE(end->has_value());
  auto late = await<void>([&](auto h) { s->asyncWriteStdin("late", std::move(h)); });
  EXPECT_FALSE(late.ok());
  EXPECT_EQ(rig.stream->written, "abcdef");
  EXPECT_EQ(rig.stream->shutdowns, 1);
  auto code = await<int>([&](auto h) { s->asyncWait(std::move(h)); });
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST(DockerExecSessionAsync, ATerminalStreamIsRawBytesOnStdout) {
  Rig rig;
  // With a TTY the engine sends the terminal's bytes with no multiplex header; bytes that
  // would look like one stay data.
  const std::string raw = std::string("\x01\0\0\0\0\0\0\x05prompt$ ", 16) + "\x1b[1mbold";
  rig.stream->reads = {raw.substr(0, 5), raw.substr(5)};
  auto s = rig.make(0ms, true, true);
  std::string out;
  for (;;) {
    auto c = readOnce(*s);
    ASSERT_TRUE(c.ok()) << c.error().describe();
    if (!*c) break;
    EXPECT_EQ((*c)->stream, ExecStream::Stdout);
    out += (*c)->data;
  }
  EXPECT_EQ(out, raw);
}

TEST(DockerExecSessionAsync, FailureSweepEveryReadFailsInTurn) {
  const std::string bytes = frame(1, "abc") + frame(2, "de");
  std::vector<std::string> reads;
  for (std::size_t i = 0; i < bytes.size(); i += 3)
    reads.push_back(bytes.substr(i, 3));
  const int total = static_cast<int>(reads.size()) + 1;
  for (int failAt = 0; failAt <= total; ++failAt) {
    Rig rig;
    rig.stream->reads = reads;
    rig.stream->failReadAt = failAt;
    auto s = rig.make();
    std::optional<Error> failed;
    for (int i = 0; i < 100; ++i) {
      auto c = readOnce(*s);
      if (!c.ok()) {
        failed = c.error();
        break;
      }
      if (!*c) break;
    }
    if (failAt < total) {
      ASSERT_TRUE(failed.has_value()) << failAt;
      EXPECT_EQ(failed->code, ErrorCode::SandboxExecFailed);
      EXPECT_FALSE(readOnce(*s).ok());  // sticky
    } else {
      EXPECT_FALSE(failed.has_value());
    }
    EXPECT_EQ(rig.control->kills.load(), 0);
  }
}

}  // namespace
}  // namespace agentpane::docker
