// Who gets in: the token file, bearer tokens, browser sessions, the same-origin rule.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "server/auth.hpp"
#include "unit/server/fake_server_fixture.hpp"

namespace agentpane::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using AuthTest = FakeServerTest;

TEST_F(AuthTest, TokenFileIsCreatedPrivateAndReused) {
  const fs::path token = ts->home() / "token";
  struct stat st {};
  ASSERT_EQ(::stat(token.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(ts->home().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::ifstream in(token);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, ts->token());
  EXPECT_EQ(line.size(), 64u);
  // A second start over the same home finds the same token.
  auto again = server::loadOrCreateToken(ts->home());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), ts->token());
}

TEST_F(AuthTest, TokenFileReadableByOthersIsNarrowed) {
  TempDir dir;
  const fs::path home = dir.path() / "h";
  auto first = server::loadOrCreateToken(home);
  ASSERT_TRUE(first.ok());
  ::chmod((home / "token").c_str(), 0644);
  auto second = server::loadOrCreateToken(home);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), first.value());
  struct stat st {};
  ASSERT_EQ(::stat((home / "token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Garbage in the token file is an error, not an empty token.
  { std::ofstream(home / "token", std::ios::trunc) << "\n"; }
  EXPECT_FALSE(server::loadOrCreateToken(home).ok());
}

// In a pod the token is a mounted Secret: read as it is (mode left alone, nothing created in
// the home), a trailing newline dropped; anything that is not a token is refused.
TEST_F(AuthTest, TokenFileFromASecretIsReadAndNeverWritten) {
  TempDir dir;
  const fs::path home = dir.path() / "h";
  const fs::path secret = dir.path() / "token";
  const std::string token(64, 'a');
  { std::ofstream(secret) << token << "\n"; }
  ::chmod(secret.c_str(), 0440);
  auto got = server::loadServerToken(home, secret);
  ASSERT_TRUE(got.ok()) << got.error().describe();
  EXPECT_EQ(got.value(), token);
  EXPECT_FALSE(fs::exists(home / "token"));
  struct stat st {};
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0440u);
  { std::ofstream(secret, std::ios::trunc) << "not a token\n"; }
  auto bad = server::loadServerToken(home, secret);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::ValidationError);
  EXPECT_FALSE(server::loadServerToken(home, dir.path() / "missing").ok());
  // Without a file: the home's token, as before.
  auto fromHome = server::loadServerToken(home, {});
  ASSERT_TRUE(fromHome.ok());
  EXPECT_TRUE(fs::exists(home / "token"));
}

TEST_F(AuthTest, EveryRouteButHealthNeedsTheToken) {
  auto c = ts->client();
  c.sendToken = false;
  EXPECT_EQ(c.get("/api/health").status, 200);
  const std::vector<std::pair<http::verb, std::string>> routes = {
      {http::verb::get, "/api/sandboxes"},
      {http::verb::post, "/api/sandboxes"},
      {http::verb::get, "/api/sandboxes/sbx-1"},
      {http::verb::delete_, "/api/sandboxes/sbx-1"},
      {http::verb::post, "/api/sandboxes/sbx-1/stop"},
      {http::verb::post, "/api/sandboxes/sbx-1/exec"},
      {http::verb::get, "/api/sandboxes/sbx-1/tmux"},
      {http::verb::post, "/api/sandboxes/sbx-1/tmux"},
      {http::verb::post, "/api/sandboxes/sbx-1/tmux/main/keys"},
      {http::verb::get, "/api/sandboxes/sbx-1/tmux/main/capture"},
      {http::verb::delete_, "/api/sandboxes/sbx-1/tmux/main"},
      {http::verb::get, "/api/sandbox-configs"},
      {http::verb::post, "/api/sandbox-configs"},
      {http::verb::get, "/api/sandbox-configs/cfg-1"},
      {http::verb::patch, "/api/sandbox-configs/cfg-1"},
      {http::verb::delete_, "/api/sandbox-configs/cfg-1"},
      {http::verb::get, "/api/audit"},
      {http::verb::get, "/metrics"},
      {http::verb::get, "/api/sandbox/pool"},
  };
  for (const auto& [verb, path] : routes) {
    auto r = c.request(verb, path, "{}");
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_EQ(r.code(), "UNAUTHORIZED") << path;
    EXPECT_EQ(r.header("www-authenticate"), "Bearer") << path;
  }
  EXPECT_EQ(fake->calls().size(), 0u);
}

TEST_F(AuthTest, WrongTokensAreRefused) {
  auto c = ts->client();
  for (const std::string& value : std::vector<std::string>{
           "Bearer nope", "Bearer " + ts->token() + "x", "Bearer " + ts->token().substr(1),
           "Basic " + ts->token(), ts->token(), "Bearer"}) {
    c.headers = {{"Authorization", value}};
    auto r = c.get("/api/sandboxes");
    EXPECT_EQ(r.status, 401) << value;
    EXPECT_EQ(r.code(), "UNAUTHORIZED") << value;
  }
  c.headers = {{"Authorization", "bearer " + ts->token()}};
  EXPECT_EQ(c.get("/api/sandboxes").status, 200);
}

// A refused credential is an audit event (written on the worker pool, so it may land just
// after the 401: waited for, bounded).
TEST_F(AuthTest, AWrongTokenIsAudited) {
  auto c = ts->client();
  c.headers = {{"Authorization", "Bearer nope"}};
  ASSERT_EQ(c.get("/api/sandboxes").status, 401);
  auto ok = ts->client();
  nlohmann::json entries;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = ok.get("/api/audit?event=auth.failure");
    ASSERT_EQ(r.status, 200) << r.body;
    entries = r.data();
    if (!entries.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0]["ok"], false);
  EXPECT_EQ(entries[0]["detail"]["route"], "/api/sandboxes");
  EXPECT_EQ(entries[0]["detail"]["reason"], "wrong bearer token");
  EXPECT_EQ(entries[0]["detail"]["remote"], "127.0.0.1");
}

TEST_F(AuthTest, TokenOfAnotherHomeIsRefused) {
  auto other = std::make_shared<ServerFake>(ProviderType::Docker);
  TestServer second({other});
  ASSERT_NE(second.token(), ts->token());
  TestClient c(ts->port(), second.token());
  auto r = c.get("/api/sandboxes");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.code(), "UNAUTHORIZED");
  EXPECT_EQ(second.client().get("/api/sandboxes").status, 200);
}

TEST_F(AuthTest, SessionCookieAuthorisesAndLogsOut) {
  auto c = ts->client();
  c.sendToken = false;
  auto wrong = c.post("/api/session", {{"token", "nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.code(), "UNAUTHORIZED");
  EXPECT_EQ(c.post("/api/session", {{"token", 5}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.post("/api/session", {{"token", ts->token()}, {"x", 1}}).code(), "VALIDATION_ERROR");

  auto ok = c.post("/api/session", {{"token", ts->token()}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  const std::string cookie = ok.header("set-cookie");
  EXPECT_EQ(cookie.rfind("agentpane_session=", 0), 0u) << cookie;
  EXPECT_NE(cookie.find("; HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("; SameSite=Strict"), std::string::npos);
  EXPECT_NE(cookie.find("; Path=/"), std::string::npos);
  const std::string pair = cookie.substr(0, cookie.find(';'));

  c.headers = {{"Cookie", "theme=dark; " + pair}};
  EXPECT_EQ(c.get("/api/sandboxes").status, 200);
  c.headers = {{"Cookie", pair}, {"Origin", c.origin()}};
  EXPECT_EQ(c.get("/api/sandboxes").status, 200);
  c.headers = {{"Cookie", "agentpane_session=forged"}};
  EXPECT_EQ(c.get("/api/sandboxes").status, 401);

  c.headers = {{"Cookie", pair}};
  auto out = c.del("/api/session");
  ASSERT_EQ(out.status, 200);
  EXPECT_NE(out.header("set-cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(c.get("/api/sandboxes").status, 401);
}

TEST_F(AuthTest, CrossOriginRequestsAreForbidden) {
  auto c = ts->client();
  for (const std::string& origin : std::vector<std::string>{
           "http://evil.example", "https://" + c.host(), "null", "http://localhost:1"}) {
    c.headers = {{"Origin", origin}};
    auto r = c.get("/api/sandboxes");
    EXPECT_EQ(r.status, 403) << origin;
    EXPECT_EQ(r.code(), "FORBIDDEN") << origin;
    // Even logging in from another origin.
    EXPECT_EQ(c.post("/api/session", {{"token", ts->token()}}).status, 403) << origin;
    EXPECT_EQ(c.get("/api/health").status, 403) << origin;
  }
  c.headers = {{"Origin", c.origin()}};
  EXPECT_EQ(c.get("/api/sandboxes").status, 200);
}

TEST_F(AuthTest, WebSocketUpgradesNeedAuthAndTheSameOrigin) {
  const std::string id = ts->createSandbox();
  const std::string target = "/api/sandboxes/" + id + "/exec/stream";
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect(target, {}));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 401u);
  }
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect(target, {{"Authorization", "Bearer wrong"}}));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 401u);
  }
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect(
        target, {{"Authorization", "Bearer " + ts->token()}, {"Origin", "http://evil.example"}}));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 403u);
  }
  // A browser session from the page's own origin may upgrade.
  auto c = ts->client();
  auto login = c.post("/api/session", {{"token", ts->token()}});
  const std::string cookie =
      login.header("set-cookie").substr(0, login.header("set-cookie").find(';'));
  {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect(target, {{"Cookie", cookie},
                                    {"Origin", "http://127.0.0.1:" + std::to_string(ts->port())}}));
    ws.close();
  }
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect(target, {{"Cookie", cookie}, {"Origin", "http://evil.example"}}));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 403u);
  }
}

// A flood of wrong tokens is not a flood of ledger writes: at most N a second are recorded,
// and the next recorded one says how many were not.
TEST(AuthFailureThrottle, RecordsAtMostNASecondAndCountsTheRest) {
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  server::AuthFailureThrottle throttle(3, [&t] { return t; });
  for (int i = 0; i < 3; ++i) {
    auto a = throttle.admit();
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 0u);
  }
  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(throttle.admit());
  t += std::chrono::milliseconds(999);
  EXPECT_FALSE(throttle.admit());
  t += std::chrono::milliseconds(1);
  auto next = throttle.admit();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 6u);
  auto after = throttle.admit();
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, 0u);
}

}  // namespace
}  // namespace agentpane::testing
