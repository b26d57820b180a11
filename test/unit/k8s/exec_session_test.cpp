#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

#include "k8s/exec_session.hpp"
#include "unit/k8s/fake_ws_apiserver.hpp"

namespace agentpane::k8s {
namespace {

using testing::FakeExchange;
using testing::FakeWsApiserver;
namespace http = testing::http;

const char* kSuccess = R"({"metadata":{},"status":"Success"})";
std::string exitStatus(int code) {
  return R"({"status":"Failure","reason":"NonZeroExitCode","message":"exit code )" +
         std::to_string(code) + R"(","details":{"causes":[{"reason":"ExitCode","message":")" +
         std::to_string(code) + R"("}]}})";
}

class StaticToken final : public CredentialSource {
 public:
  explicit StaticToken(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}
  Result<Credentials> current() override {
    Credentials c;
    c.bearerToken = tokens_[std::min(index_.load(), tokens_.size() - 1)];
    ++calls;
    return c;
  }
  bool invalidate() override {
    ++invalidations;
    ++index_;
    return tokens_.size() > 1;
  }
  [[nodiscard]] std::string kind() const override { return "token"; }
  std::atomic<int> calls{0};
  std::atomic<int> invalidations{0};

 private:
  std::vector<std::string> tokens_;
  std::atomic<std::size_t> index_{0};
};

RestConfig configFor(unsigned short port, std::shared_ptr<CredentialSource> creds = nullptr) {
  RestConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  cfg.endpoint = net::Endpoint::tcp("127.0.0.1", port);
  cfg.credentials =
      creds ? std::move(creds) : std::make_shared<StaticToken>(std::vector<std::string>{"tok"});
  cfg.namespaceName = "ns1";
  return cfg;
}

ExecSpec spec(std::vector<std::string> argv) {
  ExecSpec s;
  s.pod = "p1";
  s.argv = std::move(argv);
  return s;
}

struct Collected {
  std::string out, err;
  Result<int> code = Error(ErrorCode::Internal, "not waited");
};

Collected drain(ExecSession& s) {
  Collected c;
  for (;;) {
    auto chunk = s.read();
    if (!chunk.ok()) {
      c.code = chunk.takeError();
      return c;
    }
    if (!chunk.value()) break;
    (chunk.value()->stream == ExecStream::Stdout ? c.out : c.err) += chunk.value()->data;
  }
  c.code = s.wait();
  return c;
}

class ExecSessionTest : public ::testing::Test {
 protected:
  std::shared_ptr<net::IoThread> io_ = net::IoThread::create(1);
};

TEST_F(ExecSessionTest, TargetHasOneCommandPerArgvElementEncoded) {
  RestConfig cfg = configFor(1);
  cfg.pathPrefix = "/proxy/";
  ExecSpec s = spec({"sh", "-c", "echo a&b=c /x"});
  s.container = "main";
  s.attachStdin = true;
  EXPECT_EQ(execTarget(cfg, s, s.argv),
            "/proxy/api/v1/namespaces/ns1/pods/p1/exec?command=sh&command=-c&"
            "command=echo%20a%26b%3Dc%20%2Fx&container=main&stdin=true&stdout=true&"
            "stderr=true&tty=false");
}

TEST_F(ExecSessionTest, TimeoutWrapsArgvInTimeoutKill) {
  ExecSpec s = spec({"sleep", "9"});
  EXPECT_EQ(effectiveArgv(s), s.argv);
  s.timeout = std::chrono::milliseconds(1500);
  EXPECT_EQ(effectiveArgv(s),
            (std::vector<std::string>{"timeout", "-s", "KILL", "1.500", "sleep", "9"}));
  s.killInPod = false;
  EXPECT_EQ(effectiveArgv(s), s.argv);
}

TEST_F(ExecSessionTest, TtyAsksForATerminalWithOneOutputAndForegroundTimeout) {
  ExecSpec s = spec({"tmux", "attach"});
  s.tty = true;
  EXPECT_EQ(execTarget(configFor(1), s, s.argv),
            "/api/v1/namespaces/ns1/pods/p1/exec?command=tmux&command=attach&stdin=false&"
            "stdout=true&stderr=false&tty=true");
  s.timeout = std::chrono::milliseconds(2000);
  EXPECT_EQ(effectiveArgv(s), (std::vector<std::string>{"timeout", "--foreground", "-s", "KILL",
                                                        "2.000", "tmux", "attach"}));
}

TEST_F(ExecSessionTest, TtySizeIsTheFirstMessage) {
  std::string first, target;
  FakeWsApiserver server([&](FakeExchange& ex) {
    target = std::string(ex.request().target());
    ex.accept("v5.channel.k8s.io");
    first = ex.receive();
    ex.send(1, "\x1b[Hscreen");
    ex.send(3, kSuccess);
    ex.close();
  });
  ExecSpec sp = spec({"tmux", "attach"});
  sp.tty = true;
  sp.ttyRows = 50;
  sp.ttyColumns = 200;
  sp.attachStdin = true;
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok()) << c.code.error().describe();
  EXPECT_EQ(c.out, "\x1b[Hscreen");
  EXPECT_EQ(first, std::string("\x04") + R"({"Width":200,"Height":50})");
  EXPECT_NE(target.find("&tty=true"), std::string::npos) << target;
}

TEST_F(ExecSessionTest, ExitCodeAndSeparateStreamsOnV5) {
  std::string auth, offered;
  FakeWsApiserver server([&](FakeExchange& ex) {
    auth = std::string(ex.request()[http::field::authorization]);
    offered = ex.offered();
    ex.accept("v5.channel.k8s.io");
    ex.send(1, "");  // ready signals
    ex.send(2, "");
    ex.send(1, "hello ");
    ex.send(2, "warn\n");
    ex.send(1, "world\n");
    ex.send(3, exitStatus(42));
    ex.close();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"sh", "-c", "exit 42"}));
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(s.value()->protocol(), ChannelProtocol::V5);
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok()) << c.code.error().describe();
  EXPECT_EQ(c.code.value(), 42);
  EXPECT_EQ(c.out, "hello world\n");
  EXPECT_EQ(c.err, "warn\n");
  EXPECT_EQ(auth, "Bearer tok");
  EXPECT_EQ(offered, "v5.channel.k8s.io, v4.channel.k8s.io");
}

TEST_F(ExecSessionTest, StdinWithEofOnV5) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    std::string got;
    for (;;) {
      auto m = ex.receive();
      if (m.empty()) return;
      if (m == std::string("\xff\x00", 2)) break;
      ASSERT_EQ(m[0], '\0');
      got += m.substr(1);
    }
    ex.send(1, std::to_string(got.size()) + ":" + got);
    ex.send(3, kSuccess);
    ex.close();
  });
  ExecSpec sp = spec({"cat"});
  sp.attachStdin = true;
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  std::string big(600000, 'x');  // more than one stdin message
  ASSERT_TRUE(s.value()->writeStdin("abc").ok());
  ASSERT_TRUE(s.value()->writeStdin(big).ok());
  ASSERT_TRUE(s.value()->closeStdin().ok());
  ASSERT_TRUE(s.value()->closeStdin().ok());  // idempotent
  EXPECT_FALSE(s.value()->writeStdin("late").ok());
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok()) << c.code.error().describe();
  EXPECT_EQ(c.code.value(), 0);
  EXPECT_EQ(c.out, std::to_string(3 + big.size()) + ":abc" + big);
}

TEST_F(ExecSessionTest, OnlyV4OfferedAndEofRefused) {
  std::string offered;
  FakeWsApiserver server([&](FakeExchange& ex) {
    offered = ex.offered();
    ex.accept("v4.channel.k8s.io");
    auto m = ex.receive();  // stdin data
    ex.send(1, m.substr(1));
    ex.send(3, kSuccess);
    ex.close();
  });
  ExecSpec sp = spec({"cat"});
  sp.attachStdin = true;
  sp.offerV5 = false;
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(s.value()->protocol(), ChannelProtocol::V4);
  EXPECT_EQ(offered, "v4.channel.k8s.io");
  auto eof = s.value()->closeStdin();
  ASSERT_FALSE(eof.ok());
  EXPECT_EQ(eof.error().details.at("reason"), "stdinEofUnsupported");
  ASSERT_FALSE(s.value()->closeStdin().ok());  // the same answer every time
  ASSERT_TRUE(s.value()->writeStdin("ping").ok());
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok());
  EXPECT_EQ(c.out, "ping");
}

TEST_F(ExecSessionTest, ServerFallsBackToV4WhenOfferedBoth) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v4.channel.k8s.io");
    ex.send(1, "x");
    ex.send(3, exitStatus(3));
    ex.close();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value()->protocol(), ChannelProtocol::V4);
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok());
  EXPECT_EQ(c.code.value(), 3);
}

TEST_F(ExecSessionTest, NoChosenProtocolIsAnError) {
  FakeWsApiserver server([&](FakeExchange& ex) { ex.accept(""); });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().details.at("reason"), "protocol");
}

TEST_F(ExecSessionTest, UnauthorizedRetriesOnceWithFreshCredentials) {
  std::vector<std::string> seen;
  std::mutex mu;
  FakeWsApiserver server([&](FakeExchange& ex) {
    std::string a(ex.request()[http::field::authorization]);
    {
      std::lock_guard l(mu);
      seen.push_back(a);
    }
    if (a != "Bearer fresh") {
      ex.refuse(http::status::unauthorized, R"({"status":"Failure","reason":"Unauthorized"})");
      return;
    }
    ex.accept("v5.channel.k8s.io");
    ex.send(3, kSuccess);
    ex.close();
  });
  auto creds = std::make_shared<StaticToken>(std::vector<std::string>{"stale", "fresh"});
  auto s = openExec(io_, configFor(server.port(), creds), spec({"true"}));
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(creds->invalidations.load(), 1);
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok());
  std::lock_guard l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"Bearer stale", "Bearer fresh"}));
}

TEST_F(ExecSessionTest, UnauthorizedTwiceIsAuthFailed) {
  std::atomic<int> attempts{0};
  FakeWsApiserver server([&](FakeExchange& ex) {
    ++attempts;
    ex.refuse(http::status::unauthorized, R"({"status":"Failure","message":"Unauthorized"})");
  });
  auto creds = std::make_shared<StaticToken>(std::vector<std::string>{"a", "b", "c"});
  auto s = openExec(io_, configFor(server.port(), creds), spec({"true"}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::K8sAuthFailed);
  EXPECT_EQ(attempts.load(), 2);
}

TEST_F(ExecSessionTest, RefusedHandshakesMapToCodes) {
  EXPECT_EQ(
      handshakeRefused(404, R"({"message":"pods \"x\" not found","reason":"NotFound"})", "e").code,
      ErrorCode::K8sNotFound);
  EXPECT_EQ(handshakeRefused(403, "{}", "e").code, ErrorCode::K8sForbidden);
  auto c = handshakeRefused(400, R"({"message":"container nope is not valid for pod p1"})", "e");
  EXPECT_EQ(c.code, ErrorCode::K8sNotFound);
  EXPECT_EQ(c.details.at("reason"), "ContainerNotFound");
  EXPECT_NE(c.message.find("container nope is not valid"), std::string::npos);
  EXPECT_EQ(handshakeRefused(500, "oops", "e").code, ErrorCode::K8sApiError);

  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.refuse(http::status::not_found,
              R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
              R"("message":"pods \"p1\" not found","reason":"NotFound","code":404})");
  });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::K8sNotFound);
  EXPECT_NE(s.error().message.find("pods \"p1\" not found"), std::string::npos);
}

TEST_F(ExecSessionTest, FailureStatusThatIsNotAnExitCode) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.send(3, R"j({"status":"Failure","message":"container not found (\"c\")","reason":"x"})j");
    ex.close();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_TRUE(s.ok());
  auto c = drain(*s.value());
  ASSERT_FALSE(c.code.ok());
  EXPECT_EQ(c.code.error().code, ErrorCode::K8sNotFound);
}

// After the status nothing is lost, however the connection then ends (seen on the cluster: a
// TLS "application data after close notify"). Here a server that goes silent after the status
// (no close, no pong): the idle timeout ends the stream, and the exit code stands.
TEST_F(ExecSessionTest, AnyBreakAfterTheStatusKeepsTheExitCode) {
  std::promise<void> release;
  auto released = release.get_future().share();
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.send(1, "all of it\n");
    ex.send(3, exitStatus(3));
    released.wait();  // silent: reads nothing, so answers no ping
  });
  ExecSpec sp = spec({"true"});
  sp.pingInterval = std::chrono::milliseconds(50);
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok());
  auto c = drain(*s.value());
  release.set_value();
  EXPECT_EQ(c.out, "all of it\n");
  ASSERT_TRUE(c.code.ok()) << c.code.error().describe();
  EXPECT_EQ(c.code.value(), 3);
}

TEST_F(ExecSessionTest, StreamCutBeforeStatusIsNotASuccess) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.send(1, "partial");
    ex.close();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_TRUE(s.ok());
  auto c = drain(*s.value());
  EXPECT_EQ(c.out, "partial");
  ASSERT_FALSE(c.code.ok());
  EXPECT_EQ(c.code.error().code, ErrorCode::SandboxExecFailed);
}

// Fragmented messages arrive whole, and a slow reader loses nothing: the queue bound makes
// the session stop reading the socket, not drop output.
TEST_F(ExecSessionTest, LargeFragmentedOutputArrivesIntactWithASmallQueue) {
  std::string expected;
  for (int i = 0; i < 3 * (1 << 20); ++i)
    expected.push_back(static_cast<char>((i * 131) & 0xff));
  FakeWsApiserver server([&](FakeExchange& ex) {
    auto& ws = ex.accept("v5.channel.k8s.io");
    ws.auto_fragment(true);
    ws.write_buffer_bytes(4096);
    for (std::size_t pos = 0; pos < expected.size(); pos += 1 << 20)
      ex.send(1, expected.substr(pos, 1 << 20));
    ex.send(3, kSuccess);
    ex.close();
  });
  ExecSpec sp = spec({"cat"});
  sp.maxQueuedBytes = 64 << 10;
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok());
  auto c = drain(*s.value());
  ASSERT_TRUE(c.code.ok()) << c.code.error().describe();
  EXPECT_TRUE(c.out == expected);
}

TEST_F(ExecSessionTest, MessageOverTheBoundFailsTheSession) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.send(1, std::string(4096, 'x'));
    ex.send(3, kSuccess);
    ex.close();
  });
  ExecSpec sp = spec({"true"});
  sp.maxMessageBytes = 1024;
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok());
  auto c = drain(*s.value());
  ASSERT_FALSE(c.code.ok());
  EXPECT_EQ(c.code.error().code, ErrorCode::SandboxExecFailed);
}

TEST_F(ExecSessionTest, TimeoutReportsExecTimeout) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.receive();  // blocks until the client closes the connection
  });
  ExecSpec sp = spec({"sleep", "100"});
  sp.timeout = std::chrono::milliseconds(300);
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok());
  auto r = s.value()->read();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout);
  auto w = s.value()->wait();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::ExecTimeout);
  EXPECT_NE(server.targets().at(0).find("command=timeout&command=-s&command=KILL&command=0.300"),
            std::string::npos);
}

TEST_F(ExecSessionTest, CancelFromAnotherThreadUnblocksRead) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.send(1, "started");
    ex.receive();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"sleep", "100"}));
  ASSERT_TRUE(s.ok());
  auto first = s.value()->read();
  ASSERT_TRUE(first.ok() && first.value());
  EXPECT_EQ(first.value()->data, "started");
  std::thread t([&] { s.value()->cancel(); });
  auto r = s.value()->read();
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("reason"), "canceled");
  s.value()->cancel();  // idempotent
  EXPECT_FALSE(s.value()->wait().ok());
}

TEST_F(ExecSessionTest, WaitBeforeTheEndIsRefused) {
  FakeWsApiserver server([&](FakeExchange& ex) {
    ex.accept("v5.channel.k8s.io");
    ex.receive();
  });
  auto s = openExec(io_, configFor(server.port()), spec({"true"}));
  ASSERT_TRUE(s.ok());
  auto w = s.value()->wait();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::ValidationError);
}

// Pings on a quiet stream: with a short interval the server sees pings (Beast answers them
// itself and reports them through the control callback) while nothing else is sent.
TEST_F(ExecSessionTest, QuietStreamIsPinged) {
  std::promise<void> pinged;
  auto pingedF = pinged.get_future();
  std::atomic<bool> once{false};
  FakeWsApiserver server([&](FakeExchange& ex) {
    auto& ws = ex.accept("v5.channel.k8s.io");
    ws.control_callback([&](testing::websocket::frame_type kind, testing::beast::string_view) {
      if (kind == testing::websocket::frame_type::ping && !once.exchange(true)) pinged.set_value();
    });
    ex.receive();  // returns once the client goes away; pings are seen meanwhile
  });
  ExecSpec sp = spec({"sleep", "100"});
  sp.pingInterval = std::chrono::milliseconds(50);
  auto s = openExec(io_, configFor(server.port()), sp);
  ASSERT_TRUE(s.ok());
  pingedF.wait();  // would hang (test timeout) without pings
  s.value()->cancel();
}

}  // namespace
}  // namespace agentpane::k8s
