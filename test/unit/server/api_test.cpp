// Every REST route over real HTTP on 127.0.0.1:0, against the fake provider.
#include <gtest/gtest.h>

#include "unit/server/fake_server_fixture.hpp"

namespace agentpane::testing {
namespace {

using nlohmann::json;

class ApiTest : public FakeServerTest {
 protected:
  TestClient client() { return ts->client(); }
};

TEST_F(ApiTest, HealthNeedsNoToken) {
  auto c = client();
  c.sendToken = false;
  auto r = c.get("/api/health");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["ok"], true);
  EXPECT_EQ(r.data()["status"], "ok");
  EXPECT_TRUE(r.data()["version"].is_string());
  EXPECT_EQ(r.header("content-type"), "application/json");
}

TEST_F(ApiTest, ConfigsCrud) {
  auto c = client();
  auto created =
      c.post("/api/sandbox-configs", {{"name", "small"}, {"memoryMb", 1024}, {"cpu", 1.0}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.data()["id"];
  EXPECT_EQ(created.data()["memoryMb"], 1024);
  EXPECT_EQ(created.data()["providerType"], "docker");

  auto list = c.get("/api/sandbox-configs");
  ASSERT_EQ(list.status, 200);
  bool found = false;
  for (const auto& cfg : list.data())
    found = found || cfg["id"] == id;
  EXPECT_TRUE(found) << list.body;

  auto one = c.get("/api/sandbox-configs/" + id);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.data()["name"], "small");

  auto patched =
      c.patch("/api/sandbox-configs/" + id, {{"memoryMb", 4096}, {"kubeNamespace", "team-a"}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.data()["memoryMb"], 4096);
  EXPECT_EQ(patched.data()["kubeNamespace"], "team-a");
  EXPECT_EQ(patched.data()["name"], "small");  // untouched fields stay
  EXPECT_EQ(c.get("/api/sandbox-configs/" + id).data()["memoryMb"], 4096);

  // Refusals: immutable field, wrong type, out of range, unknown field, duplicate name.
  EXPECT_EQ(c.patch("/api/sandbox-configs/" + id, {{"id", "other"}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.patch("/api/sandbox-configs/" + id, {{"memoryMb", "lots"}}).code(),
            "VALIDATION_ERROR");
  auto range = c.patch("/api/sandbox-configs/" + id, {{"memoryMb", 1}});
  EXPECT_EQ(range.status, 400);
  EXPECT_EQ(range.code(), "VALIDATION_ERROR");
  auto unknown = c.post("/api/sandbox-configs", {{"name", "x"}, {"colour", "blue"}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.json()["error"]["details"]["field"], "colour");
  auto dup = c.post("/api/sandbox-configs", {{"name", "small"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.code(), "SANDBOX_CONFIG_NAME_CONFLICT");
  EXPECT_EQ(c.patch("/api/sandbox-configs/cfg-missing", {{"memoryMb", 4096}}).code(),
            "SANDBOX_CONFIG_NOT_FOUND");

  auto del = c.del("/api/sandbox-configs/" + id);
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.data()["deleted"], true);
  auto gone = c.get("/api/sandbox-configs/" + id);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.code(), "SANDBOX_CONFIG_NOT_FOUND");
}

TEST_F(ApiTest, SandboxesLifecycle) {
  auto c = client();
  auto created =
      c.post("/api/sandboxes", {{"projectPath", ts->dir().mkdir("p1")}, {"agentId", "agent-7"}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.data()["id"];
  EXPECT_EQ(created.data()["provider"], "docker");
  EXPECT_EQ(created.data()["status"], "running");
  EXPECT_EQ(fake->callCount("create"), 1);

  auto list = c.get("/api/sandboxes");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.data().size(), 1u);
  EXPECT_EQ(list.data()[0]["id"], id);

  auto one = c.get("/api/sandboxes/" + id);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.data()["agentId"], "agent-7");

  auto stopped = c.post("/api/sandboxes/" + id + "/stop");
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_EQ(stopped.data()["status"], "stopped");
  EXPECT_EQ(fake->callCount("stop", id), 1);

  auto removed = c.del("/api/sandboxes/" + id);
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_FALSE(fake->exists(id));
  // Idempotent.
  EXPECT_EQ(c.del("/api/sandboxes/" + id).status, 200);

  auto missing = c.get("/api/sandboxes/sbx-000000000000");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.code(), "SANDBOX_NOT_FOUND");
  EXPECT_EQ(c.post("/api/sandboxes/sbx-000000000000/stop").code(), "SANDBOX_NOT_FOUND");
}

// PATCH /api/sandboxes/:id replaces the egress allowlist; the sandbox comes back with what is
// enforced and the names that did not resolve.
TEST_F(ApiTest, SandboxEgressPatch) {
  auto c = client();
  auto created = c.post("/api/sandboxes",
                        {{"projectPath", ts->dir().mkdir("pe")}, {"allowEgress", {"10.0.0.1:22"}}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.data()["id"];
  EXPECT_EQ(created.data()["egress"]["allowlist"], json({"10.0.0.1:22"}));
  fake->unresolvable = {"nowhere.example.test"};
  auto patched =
      c.patch("/api/sandboxes/" + id, {{"allowEgress", {"192.0.2.1:443", "nowhere.example.test"}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.data()["egress"]["allowlist"], json({"192.0.2.1:443", "nowhere.example.test"}));
  EXPECT_EQ(patched.data()["egress"]["unresolved"], json({"nowhere.example.test"}));
  EXPECT_EQ(c.get("/api/sandboxes/" + id).data()["egress"]["allowlist"],
            json({"192.0.2.1:443", "nowhere.example.test"}));
  auto bad = c.patch("/api/sandboxes/" + id, {{"allowEgress", {"a.com:0"}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["error"]["details"]["reason"], "EGRESS_PORT_INVALID");
  EXPECT_EQ(c.patch("/api/sandboxes/" + id, json::object()).status, 400);
  EXPECT_EQ(c.patch("/api/sandboxes/" + id, {{"allowEgress", {}}, {"other", 1}}).status, 400);
  EXPECT_EQ(c.patch("/api/sandboxes/sbx-000000000000", {{"allowEgress", json::array()}}).code(),
            "SANDBOX_NOT_FOUND");
}

TEST_F(ApiTest, SandboxCreateRefusals) {
  auto c = client();
  auto noPath = c.post("/api/sandboxes", json::object());
  EXPECT_EQ(noPath.status, 400);
  EXPECT_EQ(noPath.code(), "VALIDATION_ERROR");
  auto wrongType = c.post("/api/sandboxes", {{"projectPath", 5}});
  EXPECT_EQ(wrongType.status, 400);
  EXPECT_EQ(wrongType.json()["error"]["details"]["field"], "projectPath");
  auto unknown =
      c.post("/api/sandboxes", {{"projectPath", ts->dir().mkdir("p")}, {"privileged", true}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.json()["error"]["details"]["field"], "privileged");
  auto badPath = c.post("/api/sandboxes", {{"projectPath", "/does/not/exist/anywhere"}});
  EXPECT_EQ(badPath.status, 400);
  EXPECT_EQ(badPath.code(), "SANDBOX_PROJECT_PATH_INVALID");
  fake->failNext("create", Error(ErrorCode::SandboxImageNotFound, "no such image"));
  auto noImage = c.post("/api/sandboxes", {{"projectPath", ts->dir().mkdir("p2")}});
  EXPECT_EQ(noImage.status, 400);
  EXPECT_EQ(noImage.code(), "SANDBOX_IMAGE_NOT_FOUND");
  fake->failNext("create", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
  auto down = c.post("/api/sandboxes", {{"projectPath", ts->dir().mkdir("p3")}});
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.code(), "SANDBOX_PROVIDER_UNAVAILABLE");
}

TEST_F(ApiTest, BadJsonBodies) {
  auto c = client();
  for (const std::string& body :
       std::vector<std::string>{"{", "[]", "", "\"text\"", "{\"projectPath\": }", "nul"}) {
    auto r = c.postRaw("/api/sandboxes", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.code(), "VALIDATION_ERROR") << body;
  }
}

TEST_F(ApiTest, ExecBufferedTextBase64AndErrors) {
  const std::string id = ts->createSandbox();
  fake->execHandler = [](const std::string&, const std::vector<std::string>& argv,
                         const ExecOptions&) {
    if (argv[0] == "bin")
      return Result<ExecResult>(ExecResult{0, std::string("\x00\xff\x01", 3), ""});
    return Result<ExecResult>(ExecResult{3, "out\n", "err\n"});
  };
  auto c = client();
  auto r = c.post("/api/sandboxes/" + id + "/exec",
                  {{"argv", {"sh", "-c", "echo out; echo err >&2; exit 3"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.data()["exitCode"], 3);
  EXPECT_EQ(r.data()["stdout"], "out\n");
  EXPECT_EQ(r.data()["stderr"], "err\n");

  auto b64 = c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"x"}}, {"encoding", "base64"}});
  ASSERT_EQ(b64.status, 200) << b64.body;
  EXPECT_EQ(b64.data()["stdoutBase64"], "b3V0Cg==");
  EXPECT_EQ(b64.data()["stderrBase64"], "ZXJyCg==");

  auto bin = c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"bin"}}, {"stdin", "abc"}});
  ASSERT_EQ(bin.status, 200) << bin.body;
  EXPECT_EQ(bin.data()["stdoutBase64"], "AP8B");  // not UTF-8: sent byte-exact as base64

  for (const json& bad :
       {json{{"argv", json::array()}}, json{{"argv", "ls"}}, json::object(),
        json{{"argv", {"ls"}}, {"timeoutSeconds", "soon"}}, json{{"argv", {"ls"}}, {"shell", true}},
        json{{"argv", {"ls"}}, {"encoding", "hex"}}, json{{"argv", {1, 2}}}}) {
    auto e = c.post("/api/sandboxes/" + id + "/exec", bad);
    EXPECT_EQ(e.status, 400) << bad.dump() << " " << e.body;
    EXPECT_EQ(e.code(), "VALIDATION_ERROR") << bad.dump();
  }
  EXPECT_EQ(c.post("/api/sandboxes/sbx-000000000000/exec", {{"argv", {"ls"}}}).code(),
            "SANDBOX_NOT_FOUND");
  fake->failNext("exec", Error(ErrorCode::ExecTimeout, "timed out"));
  auto timeout =
      c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"sleep", "99"}}, {"timeoutSeconds", 1}});
  EXPECT_EQ(timeout.status, 504);
  EXPECT_EQ(timeout.code(), "EXEC_TIMEOUT");
}

TEST_F(ApiTest, TmuxRoutes) {
  const std::string id = ts->createSandbox();
  const std::string base = "/api/sandboxes/" + id + "/tmux";
  auto c = client();
  auto created = c.post(base, {{"name", "main"}});
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.data()["name"], "main");
  auto dup = c.post(base, {{"name", "main"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.code(), "SANDBOX_TMUX_SESSION_EXISTS");

  auto list = c.get(base);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.data().size(), 1u);
  EXPECT_EQ(list.data()[0]["name"], "main");

  auto keys = c.post(base + "/main/keys", {{"text", "echo hi"}});
  ASSERT_EQ(keys.status, 200) << keys.body;
  auto noEnter = c.post(base + "/main/keys", {{"text", "x"}, {"enter", false}});
  ASSERT_EQ(noEnter.status, 200);
  auto cap = c.get(base + "/main/capture?lines=10");
  ASSERT_EQ(cap.status, 200) << cap.body;
  EXPECT_EQ(cap.data()["content"], "echo hi\nx\n");
  EXPECT_EQ(cap.data()["lines"], 10);
  EXPECT_EQ(c.get(base + "/main/capture").status, 200);  // default lines

  EXPECT_EQ(c.get(base + "/main/capture?lines=0").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get(base + "/main/capture?lines=abc").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get(base + "/main/capture?colour=1").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.post(base + "/main/keys", {{"text", 5}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.post(base + "/main/keys", {{"text", "a"}, {"enter", "yes"}}).code(),
            "VALIDATION_ERROR");
  EXPECT_EQ(c.post(base + "/main/keys", json::object()).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.post(base, {{"name", "x"}, {"command", "bash"}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get(base + "/other/capture").code(), "SANDBOX_TMUX_SESSION_NOT_FOUND");

  auto killed = c.del(base + "/main");
  ASSERT_EQ(killed.status, 200) << killed.body;
  auto again = c.del(base + "/main");
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.code(), "SANDBOX_TMUX_SESSION_NOT_FOUND");
}

TEST_F(ApiTest, HostileTmuxNamesNeverReachTheProvider) {
  const std::string id = ts->createSandbox();
  const std::string base = "/api/sandboxes/" + id + "/tmux";
  auto c = client();
  const int execsBefore = fake->callCount("exec");
  for (const std::string& name :
       std::vector<std::string>{"a;id", "$(id)", "../x", std::string(65, 'a'), "a b", "x\ny"}) {
    auto r = c.post(base, {{"name", name}});
    EXPECT_EQ(r.status, 400) << name;
    EXPECT_EQ(r.code(), "SANDBOX_TMUX_NAME_INVALID") << name;
  }
  for (const std::string& enc :
       std::vector<std::string>{"a%3Bid", "%24%28id%29", "..%2Fx", std::string(65, 'a'), "a;id"}) {
    for (const std::string& suffix : std::vector<std::string>{"", "/capture", "/keys"}) {
      auto r = suffix == "/keys" ? c.post(base + "/" + enc + suffix, {{"text", "x"}})
                                 : (suffix.empty() ? c.del(base + "/" + enc + suffix)
                                                   : c.get(base + "/" + enc + suffix));
      EXPECT_EQ(r.status, 400) << enc << suffix << " " << r.body;
      EXPECT_EQ(r.code(), "SANDBOX_TMUX_NAME_INVALID") << enc << suffix;
    }
  }
  EXPECT_EQ(fake->callCount("exec"), execsBefore);
}

TEST_F(ApiTest, HostileSandboxAndConfigIds) {
  auto c = client();
  for (const std::string& id : std::vector<std::string>{"a;id", "%24%28id%29", "..%2Fx", "ABC",
                                                        "-x", std::string(64, 'a'), "a%20b"}) {
    for (const std::string& suffix : std::vector<std::string>{"", "/stop", "/exec", "/tmux"}) {
      auto r = suffix.empty() || suffix == "/tmux"
                   ? c.get("/api/sandboxes/" + id + suffix)
                   : c.post("/api/sandboxes/" + id + suffix, {{"argv", {"ls"}}});
      EXPECT_EQ(r.status, 400) << id << suffix << " " << r.body;
      EXPECT_EQ(r.code(), "VALIDATION_ERROR") << id << suffix;
    }
  }
  for (const std::string& id :
       std::vector<std::string>{"a;id", "%24%28id%29", "..%2Fx", "-x", "a%20b", "a%2Fb"}) {
    auto r = c.get("/api/sandbox-configs/" + id);
    EXPECT_EQ(r.status, 400) << id;
    EXPECT_EQ(r.code(), "VALIDATION_ERROR") << id;
    EXPECT_EQ(c.patch("/api/sandbox-configs/" + id, {{"memoryMb", 1024}}).status, 400) << id;
    EXPECT_EQ(c.del("/api/sandbox-configs/" + id).status, 400) << id;
  }
  // Dot segments are refused whole, before any routing.
  auto dots = c.get("/api/sandboxes/../sandbox-configs");
  EXPECT_EQ(dots.status, 400);
  EXPECT_EQ(c.get("/api/sandbox-configs/a;id").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/sandbox-configs/%24%28id%29").code(), "VALIDATION_ERROR");
  EXPECT_EQ(fake->callCount("get"), 0);
}

TEST_F(ApiTest, UnknownRoutesAndMethods) {
  auto c = client();
  auto nf = c.get("/api/nothing-here");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.code(), "NOT_FOUND");
  EXPECT_EQ(c.get("/").code(), "NOT_FOUND");
  auto wrong = c.request(http::verb::put, "/api/sandboxes", "{}");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.code(), "METHOD_NOT_ALLOWED");
  EXPECT_NE(wrong.header("allow").find("GET"), std::string::npos);
  EXPECT_NE(wrong.header("allow").find("POST"), std::string::npos);
  EXPECT_EQ(c.post("/api/health").status, 405);
  EXPECT_EQ(c.request(http::verb::put, "/api/sandboxes/sbx-1", "{}").code(), "METHOD_NOT_ALLOWED");
  // A WebSocket route asked for without the upgrade.
  auto plain = c.get("/api/sandboxes/sbx-1/exec/stream");
  EXPECT_EQ(plain.status, 400);
  EXPECT_EQ(plain.code(), "VALIDATION_ERROR");
}

TEST_F(ApiTest, KubernetesAndPoolRoutesSayTheyAreDisabled) {
  auto c = client();
  for (const std::string& path : std::vector<std::string>{
           "/api/sandbox/k8s/status", "/api/sandbox/k8s/contexts", "/api/sandbox/k8s/namespaces"}) {
    auto r = c.get(path);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_EQ(r.code(), "K8S_DISABLED") << path;
  }
  // No pool is configured; the fake provider keeps no warm sandboxes, so none can be.
  auto pools = c.get("/api/sandbox/pool");
  ASSERT_EQ(pools.status, 200) << pools.body;
  EXPECT_TRUE(pools.data()["pools"].empty()) << pools.body;
  auto pre = c.post("/api/sandbox/pool/prewarm", {{"count", 2}});
  EXPECT_EQ(pre.status, 400) << pre.body;
  EXPECT_EQ(pre.code(), "WARM_POOL_DISABLED") << pre.body;
  EXPECT_EQ(c.post("/api/sandbox/pool/prewarm", {{"count", 51}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.post("/api/sandbox/pool/prewarm", {{"count", 1}, {"extra", 1}}).code(),
            "VALIDATION_ERROR");
  EXPECT_EQ(c.post("/api/sandbox/pool/prewarm", {{"count", 1}, {"profile", "nope"}}).code(),
            "SANDBOX_CONFIG_NOT_FOUND");
  c.sendToken = false;
  EXPECT_EQ(c.get("/api/sandbox/k8s/status").code(), "UNAUTHORIZED");
}

TEST_F(ApiTest, AuditIsFilterableBySandbox) {
  const std::string a = ts->createSandbox("pa");
  const std::string b = ts->createSandbox("pb");
  auto c = client();
  ASSERT_EQ(c.post("/api/sandboxes/" + a + "/exec", {{"argv", {"true"}}}).status, 200);
  auto all = c.get("/api/audit");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_GE(all.data().size(), 3u);
  auto onlyA = c.get("/api/audit?sandboxId=" + a + "&limit=50");
  ASSERT_EQ(onlyA.status, 200);
  ASSERT_FALSE(onlyA.data().empty());
  bool sawExec = false;
  for (const auto& e : onlyA.data()) {
    EXPECT_EQ(e["sandboxId"], a);
    sawExec = sawExec || e["action"] == "exec";
  }
  EXPECT_TRUE(sawExec) << onlyA.body;
  EXPECT_EQ(c.get("/api/audit?sandboxId=" + b + "&limit=1").data().size(), 1u);
  EXPECT_EQ(c.get("/api/audit?limit=0").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?limit=many").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?sandboxId=a;id").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?colour=red").code(), "VALIDATION_ERROR");
}

TEST_F(ApiTest, AuditIsFilterableByEventAndTime) {
  const std::string a = ts->createSandbox("pe");
  auto c = client();
  ASSERT_EQ(c.post("/api/sandboxes/" + a + "/exec", {{"argv", {"true"}}}).status, 200);
  auto execs = c.get("/api/audit?event=exec");
  ASSERT_EQ(execs.status, 200) << execs.body;
  ASSERT_FALSE(execs.data().empty());
  for (const auto& e : execs.data())
    EXPECT_EQ(e["action"], "exec");
  auto family = c.get("/api/audit?event=sandbox.*&sandboxId=" + a);
  ASSERT_EQ(family.status, 200) << family.body;
  ASSERT_FALSE(family.data().empty());
  for (const auto& e : family.data())
    EXPECT_EQ(e["action"].get<std::string>().rfind("sandbox.", 0), 0u) << e;
  const std::int64_t newest = execs.data()[0]["atMs"];
  EXPECT_FALSE(c.get("/api/audit?since=" + std::to_string(newest)).data().empty());
  EXPECT_TRUE(c.get("/api/audit?since=" + std::to_string(newest + 1)).data().empty());
  EXPECT_FALSE(c.get("/api/audit?until=" + std::to_string(newest)).data().empty());
  EXPECT_TRUE(c.get("/api/audit?until=1970-01-01T00:00:00Z").data().empty());
  EXPECT_TRUE(c.get("/api/audit?since=2999-01-01T00:00:00.5Z").data().empty());
  EXPECT_EQ(c.get("/api/audit?since=yesterday").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?until=99999999999999999999").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?event=.*").code(), "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/audit?event=exec%27--").code(), "VALIDATION_ERROR");
}

TEST_F(ApiTest, MetricsUseRoutePatternsAndNeedTheToken) {
  const std::string id = ts->createSandbox();
  auto c = client();
  ASSERT_EQ(c.get("/api/sandboxes/" + id).status, 200);
  ASSERT_EQ(c.get("/api/sandboxes/sbx-000000000000").status, 404);
  ASSERT_EQ(c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"true"}}}).status, 200);
  fake->execHandler = [](auto&, auto&, auto&) { return Result<ExecResult>(ExecResult{2, "", ""}); };
  ASSERT_EQ(c.post("/api/sandboxes/" + id + "/exec", {{"argv", {"false"}}}).status, 200);

  auto m = c.get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& t = m.body;
  EXPECT_NE(t.find("agentpane_http_requests_total{route=\"/api/sandboxes/"
                   ":id\",method=\"GET\",status=\"200\"} 1"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("agentpane_http_requests_total{route=\"/api/sandboxes/"
                   ":id\",method=\"GET\",status=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("agentpane_http_requests_total{route=\"/api/"
                   "sandboxes\",method=\"POST\",status=\"201\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("agentpane_http_request_duration_seconds_bucket{route=\"/api/sandboxes/:id/"
                   "exec\",le=\"+Inf\"} 2"),
            std::string::npos);
  EXPECT_NE(t.find("agentpane_sandboxes{provider=\"docker\",status=\"running\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("agentpane_exec_total{provider=\"docker\",result=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(t.find("agentpane_exec_total{provider=\"docker\",result=\"nonzero\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("agentpane_exec_duration_seconds_count{provider=\"docker\"} 2"),
            std::string::npos);
  EXPECT_EQ(t.find(id), std::string::npos) << "raw ids never become labels";
  EXPECT_EQ(t.find("sbx-000000000000"), std::string::npos);

  c.sendToken = false;
  auto denied = c.get("/metrics");
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(denied.code(), "UNAUTHORIZED");
}

TEST_F(ApiTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto c = client();
  HttpConnection conn(c.port());
  for (int i = 0; i < 3; ++i) {
    auto r = conn.send(c.make(http::verb::get, "/api/health"));
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_TRUE(conn.connected());
  }
  // An error reply that did not need the body keeps the connection too.
  auto nf = conn.send(c.make(http::verb::get, "/api/none"));
  EXPECT_EQ(nf.status, 404);
  EXPECT_TRUE(conn.connected());
  EXPECT_EQ(conn.send(c.make(http::verb::get, "/api/sandboxes")).status, 200);
}

}  // namespace
}  // namespace agentpane::testing
