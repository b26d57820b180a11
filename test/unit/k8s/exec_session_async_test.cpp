// The asynchronous form of the Kubernetes exec session, against the scripted apiserver:
// handlers run on the session's I/O thread, never on the caller's, and every handler runs
// exactly once.
#include <gtest/gtest.h>

#include <future>
#include <string>

#include "common/exec_async.hpp"
#include "k8s/exec_session.hpp"
#include "unit/k8s/fake_ws_apiserver.hpp"

namespace agentpane::k8s {
namespace {

using testing::FakeExchange;
using testing::FakeWsApiserver;

RestConfig plainConfig(unsigned short port) {
  RestConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  cfg.endpoint = net::Endpoint::tcp("127.0.0.1", port);
  cfg.namespaceName = "ns1";
  return cfg;
}

template <typename T>
Result<T> await(const std::function<void(ExecHandler<T>)>& start, bool* onIoThread = nullptr,
                net::IoThread* io = nullptr) {
  std::promise<Result<T>> p;
  auto f = p.get_future();
  start([&](Result<T> r) {
    if (onIoThread != nullptr) *onIoThread = io->inLoopThread();
    p.set_value(std::move(r));
  });
  return f.get();
}

class ExecSessionAsyncTest : public ::testing::Test {
 protected:
  std::shared_ptr<net::IoThread> io_ = net::IoThread::create(1);
};

TEST_F(ExecSessionAsyncTest, StdinEofOutputAndExitCode) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    std::string got;
    for (;;) {
      auto m = ex.receive();
      if (m.empty() || m == std::string("\xff\x00", 2)) break;
      got += m.substr(1);
    }
    ex.send(1, got);
    ex.send(2, "e");
    ex.send(3, R"({"status":"Failure","reason":"NonZeroExitCode",)"
               R"("details":{"causes":[{"reason":"ExitCode","message":"5"}]}})");
    ex.close();
  });
  ExecSpec spec;
  spec.pod = "p";
  spec.argv = {"cat"};
  spec.attachStdin = true;
  auto opened = openExec(io_, plainConfig(server.port()), spec);
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  auto& s = *opened.value();

  bool onIo = false;
  auto w = await<void>([&](ExecHandler<void> h) { s.asyncWriteStdin("abc", std::move(h)); }, &onIo,
                       io_.get());
  ASSERT_TRUE(w.ok()) << w.error().describe();
  EXPECT_TRUE(onIo);
  ASSERT_TRUE(await<void>([&](ExecHandler<void> h) { s.asyncCloseStdin(std::move(h)); }).ok());
  ASSERT_TRUE(await<void>([&](ExecHandler<void> h) { s.asyncCloseStdin(std::move(h)); }).ok());

  std::string out, err;
  for (;;) {
    onIo = false;
    auto c = await<std::optional<ExecChunk>>(
        [&](ExecHandler<std::optional<ExecChunk>> h) { s.asyncRead(std::move(h)); }, &onIo,
        io_.get());
    ASSERT_TRUE(c.ok()) << c.error().describe();
    EXPECT_TRUE(onIo);
    if (!c.value()) break;
    (c.value()->stream == ExecStream::Stdout ? out : err) += c.value()->data;
  }
  EXPECT_EQ(out, "abc");
  EXPECT_EQ(err, "e");
  auto code = await<int>([&](ExecHandler<int> h) { s.asyncWait(std::move(h)); });
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(code.value(), 5);
}

TEST_F(ExecSessionAsyncTest, CancelFailsAPendingReadAndCompletes) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.receive();  // until the client goes away
  });
  ExecSpec spec;
  spec.pod = "p";
  spec.argv = {"sleep", "100"};
  auto opened = openExec(io_, plainConfig(server.port()), spec);
  ASSERT_TRUE(opened.ok());
  auto& s = *opened.value();
  std::promise<Result<std::optional<ExecChunk>>> readDone;
  s.asyncRead([&](Result<std::optional<ExecChunk>> r) { readDone.set_value(std::move(r)); });
  ASSERT_TRUE(await<void>([&](ExecHandler<void> h) { s.asyncCancel(std::move(h)); }).ok());
  auto r = readDone.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("reason"), "canceled");
  // A second cancel completes too.
  EXPECT_TRUE(await<void>([&](ExecHandler<void> h) { s.asyncCancel(std::move(h)); }).ok());
}

TEST_F(ExecSessionAsyncTest, V4CloseStdinIsRefusedAsynchronously) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v4.channel.k8s.io");
    ex.receive();
  });
  ExecSpec spec;
  spec.pod = "p";
  spec.argv = {"cat"};
  spec.attachStdin = true;
  spec.offerV5 = false;
  auto opened = openExec(io_, plainConfig(server.port()), spec);
  ASSERT_TRUE(opened.ok());
  auto r = await<void>([&](ExecHandler<void> h) { opened.value()->asyncCloseStdin(std::move(h)); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("reason"), "stdinEofUnsupported");
  opened.value()->cancel();
}

// A resize is a channel 4 message of its own, whole even while a large stdin write is in
// flight: writers take turns on the socket (two Beast writes at once corrupt the stream).
TEST_F(ExecSessionAsyncTest, ResizeIsAChannelFourMessageBetweenStdinMessages) {
  std::vector<std::string> got;
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    for (;;) {
      auto m = ex.receive();
      if (m.empty() || m == std::string("\xff\x00", 2)) break;
      got.push_back(std::move(m));
    }
    ex.send(3, R"({"status":"Success"})");
    ex.close();
  });
  ExecSpec spec;
  spec.pod = "p";
  spec.argv = {"sh"};
  spec.attachStdin = true;
  spec.tty = true;
  spec.ttyRows = 24;
  spec.ttyColumns = 80;
  auto opened = openExec(io_, plainConfig(server.port()), spec);
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  auto& s = *opened.value();
  const std::string big(3u << 20, 'k');  // several stdin messages
  std::promise<Result<void>> wrote;
  s.asyncWriteStdin(big, [&](Result<void> r) { wrote.set_value(std::move(r)); });
  auto resized = await<void>([&](ExecHandler<void> h) { s.asyncResize(40, 132, std::move(h)); });
  ASSERT_TRUE(resized.ok()) << resized.error().describe();
  ASSERT_TRUE(wrote.get_future().get().ok());
  ASSERT_TRUE(await<void>([&](ExecHandler<void> h) { s.asyncCloseStdin(std::move(h)); }).ok());
  for (;;) {
    auto c = await<std::optional<ExecChunk>>(
        [&](ExecHandler<std::optional<ExecChunk>> h) { s.asyncRead(std::move(h)); });
    ASSERT_TRUE(c.ok()) << c.error().describe();
    if (!c.value()) break;
  }
  // The size at open, then stdin pieces with the resize whole among (or after) them.
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got.front(), std::string("\x04") + R"({"Width":80,"Height":24})");
  std::string stdinBytes;
  int resizes = 0;
  for (std::size_t i = 1; i < got.size(); ++i) {
    ASSERT_FALSE(got[i].empty());
    if (got[i][0] == '\x04') {
      EXPECT_EQ(got[i], std::string("\x04") + R"({"Width":132,"Height":40})");
      ++resizes;
    } else {
      ASSERT_EQ(got[i][0], '\x00');
      stdinBytes += got[i].substr(1);
    }
  }
  EXPECT_EQ(resizes, 1);
  EXPECT_TRUE(stdinBytes == big) << stdinBytes.size() << " stdin bytes";
}

}  // namespace
}  // namespace agentpane::k8s
