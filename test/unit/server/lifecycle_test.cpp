// Start and stop: listen errors, port 0, graceful stop with work in flight, WebSockets
// closed with a close frame, the shutdown deadline.
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <thread>

#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A gate the fake's exec handler waits on, so that a request is provably in flight.
struct Gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
};

std::shared_ptr<ServerFake> makeFake() {
  return std::make_shared<ServerFake>(ProviderType::Docker);
}

bool canConnect(std::uint16_t port) {
  HttpConnection c(port);
  return c.connect();
}

TEST(ServerLifecycle, PortZeroReportsTheBoundPort) {
  TestServer ts({makeFake()});
  EXPECT_NE(ts.port(), 0);
  EXPECT_EQ(ts.client().get("/api/health").status, 200);
}

TEST(ServerLifecycle, BadListenAddressesFailStart) {
  TempDir dir;
  auto store = Store::openFile((dir.path() / "s.db").string());
  ASSERT_TRUE(store.ok());
  SandboxService svc(*store.value(), {});
  for (const std::string& listen : std::vector<std::string>{"nonsense", "127.0.0.1:notaport",
                                                            "127.0.0.1:70000", "example.com:80"}) {
    auto o = testServerOptions();
    o.listen = listen;
    o.home = dir.path() / "home";
    server::Server s(svc, o);
    auto r = s.start();
    ASSERT_FALSE(r.ok()) << listen;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << listen;
  }
  // A port already taken.
  TestServer first({makeFake()});
  auto o = testServerOptions();
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  o.home = dir.path() / "home";
  server::Server s(svc, o);
  auto r = s.start();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::Internal);
  EXPECT_NE(r.error().message.find("cannot listen"), std::string::npos);
}

TEST(ServerLifecycle, GracefulStopLetsAnInFlightRequestFinish) {
  auto fake = makeFake();
  TestServer ts({fake});
  const std::string id = ts.createSandbox();
  auto gate = std::make_shared<Gate>();
  fake->execHandler = [gate](auto&, auto&, auto&) {
    gate->entered.set_value();
    gate->released.wait();
    return Result<ExecResult>(ExecResult{0, "finished", ""});
  };
  auto c = ts.client();
  auto inFlight = std::async(std::launch::async, [&] {
    return c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"work"}}});
  });
  gate->entered.get_future().wait();

  auto stopped = std::async(std::launch::async, [&] { ts.server().stop(); });
  // New connections are refused once the acceptor is closed...
  bool refused = false;
  for (int i = 0; i < 500 && !refused; ++i) {
    refused = !canConnect(ts.port());
    if (!refused) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(stopped.wait_for(0ms), std::future_status::timeout)
      << "stop() must wait for the request";
  // ...while the request in flight still gets its answer.
  gate->release.set_value();
  auto r = inFlight.get();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.data()["stdout"], "finished");
  EXPECT_EQ(r.header("connection"), "close");
  stopped.get();
}

TEST(ServerLifecycle, StopClosesIdleKeepAliveConnectionsAndWebSocketsWithACloseFrame) {
  auto fake = makeFake();
  TestServer ts({fake});
  const std::string id = ts.createSandbox();
  auto c = ts.client();
  HttpConnection idle(c.port());
  ASSERT_EQ(idle.send(c.make(http::verb::get, "/api/health")).status, 200);
  ASSERT_TRUE(idle.connected());

  WsClient ws(ts.port());
  ASSERT_TRUE(ws.connect("/api/sandboxes/" + id + "/exec/stream", ts.wsAuth()));
  ASSERT_TRUE(ws.write(true, R"({"argv":["block"]})"));
  // Stop only once the command runs: the point is what happens to a live stream.
  for (int i = 0; i < 500 && fake->opens.load() == 0; ++i)
    std::this_thread::sleep_for(2ms);
  ASSERT_EQ(fake->opens.load(), 1);

  auto stopped = std::async(std::launch::async, [&] { ts.server().stop(); });
  // The stream gets a going-away close frame; the command is cancelled.
  auto msgs = ws.readAll();
  EXPECT_TRUE(ws.closedNormally()) << ws.lastError.message();
  EXPECT_EQ(ws.closeCode(), 1001);
  EXPECT_TRUE(idle.closedByPeer(5s));
  stopped.get();
  EXPECT_EQ(fake->cancels.load(), 1);
}

TEST(ServerLifecycle, StopGivesUpOnRequestsPastTheDeadline) {
  auto fake = makeFake();
  auto options = testServerOptions();
  options.shutdownGrace = 200ms;
  TestServer ts({fake}, options);
  const std::string id = ts.createSandbox();
  auto gate = std::make_shared<Gate>();
  fake->execHandler = [gate](auto&, auto&, auto&) {
    gate->entered.set_value();
    gate->released.wait();
    return Result<ExecResult>(ExecResult{0, "late", ""});
  };
  auto c = ts.client();
  auto inFlight = std::async(std::launch::async, [&] {
    return c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"work"}}});
  });
  gate->entered.get_future().wait();
  auto stopped = std::async(std::launch::async, [&] { ts.server().stop(); });
  // Past the grace period the connection is closed without an answer.
  auto r = inFlight.get();
  EXPECT_EQ(r.status, 0);
  // The blocking call itself cannot be interrupted; stop() returns once it ends.
  gate->release.set_value();
  stopped.get();
}

TEST(ServerLifecycle, StopIsIdempotentAndSafeBeforeStart) {
  TempDir dir;
  auto store = Store::openFile((dir.path() / "s.db").string());
  ASSERT_TRUE(store.ok());
  SandboxService svc(*store.value(), {});
  auto o = testServerOptions();
  o.home = dir.path() / "home";
  {
    server::Server never(svc, o);
    never.stop();
  }
  server::Server s(svc, o);
  ASSERT_TRUE(s.start().ok());
  s.stop();
  s.stop();
  EXPECT_FALSE(canConnect(s.port()));
}

TEST(ServerLifecycle, RunUntilSignalStopsOnSigterm) {
  TestServer ts({makeFake()});
  auto running = std::async(std::launch::async, [&] { ts.server().runUntilSignal(); });
  // Signal only once the handler is installed (the default action would end the test run).
  bool installed = false;
  for (int i = 0; i < 1000 && !installed; ++i) {
    struct sigaction current {};
    ::sigaction(SIGTERM, nullptr, &current);
    installed = current.sa_handler != SIG_DFL;
    if (!installed) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(installed);
  ::kill(::getpid(), SIGTERM);
  EXPECT_EQ(running.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(canConnect(ts.port()));
}

}  // namespace
}  // namespace agentpane::testing
