// The buffered exec (POST /api/sandboxes/:id/exec) is bounded: it ends with its client (the
// process is cancelled when the connection goes), its output is capped (EXEC_OUTPUT_TOO_LARGE)
// and concurrent execs are bounded per sandbox and per server (TOO_MANY_REQUESTS, 429).
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Waits (bounded) until `cond` holds; the server acts on other threads.
template <typename Cond>
bool eventually(Cond cond) {
  const auto deadline = std::chrono::steady_clock::now() + kIoDeadline;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class ExecBoundsTest : public ::testing::Test {
 protected:
  void start(server::ServerOptions o = testServerOptions()) {
    fake = std::make_shared<ServerFake>(ProviderType::Docker);
    ts = std::make_unique<TestServer>(std::vector<std::shared_ptr<SandboxProvider>>{fake}, o);
  }
  void TearDown() override { ts.reset(); }

  // A buffered exec whose request is sent and left waiting for its answer.
  std::unique_ptr<HttpConnection> startExec(const std::string& id, const json& body) {
    auto c = ts->client();
    auto conn = std::make_unique<HttpConnection>(c.port());
    EXPECT_TRUE(conn->connect());
    const std::string payload = body.dump();
    EXPECT_TRUE(conn->sendRaw("POST /api/sandboxes/" + id + "/exec HTTP/1.1\r\nHost: " + c.host() +
                              "\r\nAuthorization: Bearer " + ts->token() +
                              "\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(payload.size()) + "\r\n\r\n" + payload));
    return conn;
  }

  std::shared_ptr<ServerFake> fake;
  std::unique_ptr<TestServer> ts;
};

TEST_F(ExecBoundsTest, ABufferedExecEndsWithItsClient) {
  start();
  const std::string id = ts->createSandbox();
  auto conn = startExec(id, {{"argv", {"block"}}});
  ASSERT_TRUE(eventually([&] { return fake->opens.load() == 1; }));
  EXPECT_EQ(fake->cancels.load(), 0);
  conn.reset();  // the client goes away before the command ends
  EXPECT_TRUE(eventually([&] { return fake->cancels.load() == 1; }));
  // Its slot is free again and the server answers as before.
  auto r = ts->client().post("/api/sandboxes/" + id + "/exec", {{"argv", {"true"}}});
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(ExecBoundsTest, OutputOverTheCapIsRefusedWithItsCode) {
  auto o = testServerOptions();
  o.maxBufferedOutputBytes = 1000;
  start(o);
  const std::string id = ts->createSandbox();
  fake->execHandler = [](auto&, auto& argv, auto&) -> Result<ExecResult> {
    return ExecResult{0, std::string(argv.at(1) == "big" ? 1001 : 1000, 'x'), ""};
  };
  auto c = ts->client();
  auto big = c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"print", "big"}}});
  EXPECT_EQ(big.status, 422) << big.body;
  EXPECT_EQ(big.code(), "EXEC_OUTPUT_TOO_LARGE");
  auto fits = c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"print", "fits"}}});
  ASSERT_EQ(fits.status, 200) << fits.body;
  EXPECT_EQ(fits.data()["stdout"].get<std::string>().size(), 1000u);
}

TEST_F(ExecBoundsTest, ABurstBeyondTheBoundsGetsTooManyRequests) {
  auto o = testServerOptions();
  o.maxBufferedExecsPerSandbox = 2;
  o.maxBufferedExecs = 3;
  start(o);
  const std::string a = ts->createSandbox("a");
  const std::string b = ts->createSandbox("b");
  const std::string c3 = ts->createSandbox("c");
  std::vector<std::unique_ptr<HttpConnection>> held;
  held.push_back(startExec(a, {{"argv", {"block"}}}));
  held.push_back(startExec(a, {{"argv", {"block"}}}));
  ASSERT_TRUE(eventually([&] { return fake->opens.load() == 2; }));
  auto c = ts->client();
  auto perSandbox = c.post("/api/sandboxes/" + a + "/exec", {{"argv", {"true"}}});
  EXPECT_EQ(perSandbox.status, 429) << perSandbox.body;
  EXPECT_EQ(perSandbox.code(), "TOO_MANY_REQUESTS");
  held.push_back(startExec(b, {{"argv", {"block"}}}));
  ASSERT_TRUE(eventually([&] { return fake->opens.load() == 3; }));
  auto serverWide = c.post("/api/sandboxes/" + c3 + "/exec", {{"argv", {"true"}}});
  EXPECT_EQ(serverWide.status, 429) << serverWide.body;
  EXPECT_EQ(serverWide.code(), "TOO_MANY_REQUESTS");
  held.clear();  // the clients leave: their commands are cancelled, the slots come back
  ASSERT_TRUE(eventually([&] { return fake->cancels.load() == 3; }));
  bool ok = eventually([&] {
    return c.post("/api/sandboxes/" + a + "/exec", {{"argv", {"true"}}}).status == 200;
  });
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace agentpane::testing
