// The REST API of a real `agentpane serve` with the real Docker provider, over real HTTP:
// configs with validation, error envelopes and codes for bad input, audit and metrics.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "common/base64.hpp"
#include "integration/server/process.hpp"
#include "net/endpoint.hpp"
#include "net/http_client.hpp"

namespace agentpane::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

class ApiE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(std::random_device{}());
    projectId_ = "api-e2e-" + std::to_string(rng() % 1000000000);
    root_ = fs::temp_directory_path() / projectId_;
    home_ = root_ / "home";
    project_ = root_ / "project";
    fs::create_directories(home_);
    fs::create_directories(project_);
    ASSERT_EQ(chown(project_.c_str(), 1000, 1000), 0);
    server_ = std::make_unique<Background>(
        std::vector<std::string>{agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home",
                                 home_.string()},
        std::map<std::string, std::string>{}, (root_ / "server.log").string());
    for (int i = 0; i < 300 && !fs::exists(home_ / "address"); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(home_ / "address"));
    std::string url;
    std::getline(std::ifstream(home_ / "address"), url);
    std::getline(std::ifstream(home_ / "token"), token_);
    auto ep = net::parseEndpoint(url);
    ASSERT_TRUE(ep.ok());
    auto c = net::HttpClient::create(ep.value(), net::IoThread::create());
    ASSERT_TRUE(c.ok());
    http_ = std::move(c.value());
  }

  void TearDown() override {
    if (!sandboxId_.empty()) call("DELETE", "/api/sandboxes/" + sandboxId_);
    server_.reset();
    // Nothing of this test's project may outlive it, whatever failed above.
    auto left =
        run({"docker", "ps", "-aq", "--filter", "label=agentpane.io/project-id=" + projectId_});
    EXPECT_TRUE(left.out.empty()) << "leaked containers: " << left.out;
    std::istringstream ids(left.out);
    for (std::string cid; std::getline(ids, cid);) {
      if (!cid.empty()) run({"docker", "rm", "-f", cid});
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  struct Reply {
    int status = 0;
    json body;
    [[nodiscard]] std::string code() const {
      return body.is_object() && body.contains("error") ? body["error"].value("code", "") : "";
    }
  };

  Reply raw(const std::string& method, const std::string& target, const std::string& body,
            bool withToken = true, const std::string& token = "") {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    if (withToken) req.headers = {{"Authorization", "Bearer " + (token.empty() ? token_ : token)}};
    if (!body.empty()) {
      req.contentType = "application/json";
      req.body = body;
    }
    auto r = http_->request(req);
    if (!r.ok()) return {0, json{{"transport", r.error().describe()}}};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  Reply call(const std::string& method, const std::string& target, const json& body = nullptr) {
    return raw(method, target, body.is_null() ? "" : body.dump());
  }

  fs::path root_, home_, project_;
  std::string projectId_, token_, sandboxId_;
  std::unique_ptr<Background> server_;
  std::unique_ptr<net::HttpClient> http_;
};

TEST_F(ApiE2E, ConfigsValidateAndConflict) {
  auto small = call("POST", "/api/sandbox-configs",
                    {{"name", "small"},
                     {"memoryMb", 512},
                     {"cpu", 0.5},
                     {"pidsLimit", 32},
                     {"timeoutMinutes", 1},
                     {"kubeNamespace", "team-a"},
                     {"allowedEgressHosts", {"packages.example.test:443"}}});
  ASSERT_EQ(small.status, 201) << small.body.dump();
  auto id = small.body["data"].value("id", "");
  EXPECT_EQ(small.body["data"].value("kubeNamespace", ""), "team-a");
  EXPECT_EQ(small.body["data"]["allowedEgressHosts"], json({"packages.example.test:443"}));

  for (const auto& [field, value] :
       std::vector<std::pair<std::string, json>>{{"memoryMb", 511},
                                                 {"memoryMb", 32769},
                                                 {"cpu", 0.4},
                                                 {"cpu", 16.5},
                                                 {"pidsLimit", 31},
                                                 {"pidsLimit", 4097},
                                                 {"timeoutMinutes", 0},
                                                 {"timeoutMinutes", 1441}}) {
    auto r = call("POST", "/api/sandbox-configs", {{"name", "bad-" + field}, {field, value}});
    EXPECT_EQ(r.status, 400) << field << "=" << value.dump();
    EXPECT_EQ(r.code(), "VALIDATION_ERROR");
  }
  auto dup = call("POST", "/api/sandbox-configs", {{"name", "small"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.code(), "SANDBOX_CONFIG_NAME_CONFLICT");

  auto created =
      call("POST", "/api/sandboxes",
           {{"projectPath", project_.string()}, {"projectId", projectId_}, {"configId", id}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  sandboxId_ = created.body["data"].value("id", "");
  ASSERT_FALSE(sandboxId_.empty()) << created.body.dump();
  auto inUse = call("DELETE", "/api/sandbox-configs/" + id);
  EXPECT_EQ(inUse.status, 409);
  EXPECT_EQ(inUse.code(), "SANDBOX_CONFIG_IN_USE");

  // The config's limits reach the engine: 512 MiB is what the cgroup says inside.
  auto mem = call("POST", "/api/sandboxes/" + sandboxId_ + "/exec",
                  {{"argv",
                    {"sh", "-c",
                     "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat "
                     "/sys/fs/cgroup/memory.max"}}});
  ASSERT_EQ(mem.status, 200) << mem.body.dump();
  EXPECT_EQ(mem.body["data"].value("stdout", ""), "536870912\n");

  EXPECT_EQ(call("DELETE", "/api/sandboxes/" + sandboxId_).status, 200);
  sandboxId_.clear();
  EXPECT_EQ(call("DELETE", "/api/sandbox-configs/" + id).status, 200);
  EXPECT_EQ(call("GET", "/api/sandbox-configs/" + id).code(), "SANDBOX_CONFIG_NOT_FOUND");
}

TEST_F(ApiE2E, BadInputGetsCodedErrors) {
  EXPECT_EQ(raw("GET", "/api/health", "", false).status, 200);
  auto noToken = raw("GET", "/api/sandboxes", "", false);
  EXPECT_EQ(noToken.status, 401);
  EXPECT_EQ(noToken.code(), "UNAUTHORIZED");
  EXPECT_EQ(raw("GET", "/metrics", "", true, "wrong").code(), "UNAUTHORIZED");

  auto badJson = raw("POST", "/api/sandboxes", "{\"projectPath\":");
  EXPECT_EQ(badJson.status, 400);
  EXPECT_EQ(badJson.code(), "VALIDATION_ERROR");
  auto unknown =
      call("POST", "/api/sandboxes", {{"projectPath", project_.string()}, {"colour", "red"}});
  EXPECT_EQ(unknown.code(), "VALIDATION_ERROR");
  auto wrongType = call("POST", "/api/sandboxes", {{"projectPath", 42}});
  EXPECT_EQ(wrongType.code(), "VALIDATION_ERROR");
  auto missing = call("POST", "/api/sandboxes", {{"projectPath", (root_ / "nope").string()}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.code(), "SANDBOX_PROJECT_PATH_INVALID");
  auto image = call("POST", "/api/sandboxes",
                    {{"projectPath", project_.string()},
                     {"projectId", projectId_},
                     {"image", "agentpane/no-such-image:1"}});
  EXPECT_EQ(image.code(), "SANDBOX_IMAGE_NOT_FOUND") << image.body.dump();
  for (const std::string hostile : {"a;id", "$(id)", "..%2F..%2Fetc", "A%20B"}) {
    auto r = call("GET", "/api/sandboxes/" + hostile);
    EXPECT_EQ(r.status, 400) << hostile;
  }
  EXPECT_EQ(call("GET", "/api/sandboxes/sbx-000000000000").code(), "SANDBOX_NOT_FOUND");
  auto huge = raw("POST", "/api/sandboxes", std::string(20u << 20, ' '));
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(huge.code(), "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(call("GET", "/api/nope").status, 404);
}

// Stopped is not the end: a stopped sandbox starts again with its workspace and what it
// wrote inside; a create that failed leaves no row in the list.
TEST_F(ApiE2E, AStoppedSandboxStartsAgainWithItsWorkspace) {
  auto created = call("POST", "/api/sandboxes",
                      {{"projectPath", project_.string()}, {"projectId", projectId_}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  sandboxId_ = created.body["data"].value("id", "");
  const std::string sb = "/api/sandboxes/" + sandboxId_;
  auto wrote = call(
      "POST", sb + "/exec",
      {{"argv", {"sh", "-c", "echo kept > /workspace/start-e2e && echo inside > /tmp/inside"}}});
  ASSERT_EQ(wrote.status, 200) << wrote.body.dump();
  ASSERT_EQ(wrote.body["data"].value("exitCode", -1), 0) << wrote.body.dump();

  auto stopped = call("POST", sb + "/stop");
  ASSERT_EQ(stopped.status, 200) << stopped.body.dump();
  EXPECT_EQ(stopped.body["data"].value("status", ""), "stopped");
  auto refused = call("POST", sb + "/exec", {{"argv", {"true"}}});
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.code(), "SANDBOX_NOT_RUNNING");

  auto started = call("POST", sb + "/start");
  ASSERT_EQ(started.status, 200) << started.body.dump();
  EXPECT_EQ(started.body["data"].value("status", ""), "running");
  auto read =
      call("POST", sb + "/exec", {{"argv", {"sh", "-c", "cat /workspace/start-e2e /tmp/inside"}}});
  ASSERT_EQ(read.status, 200) << read.body.dump();
  EXPECT_EQ(read.body["data"].value("stdout", ""), "kept\ninside\n");
  auto again = call("POST", sb + "/start");  // idempotent
  EXPECT_EQ(again.status, 200) << again.body.dump();

  // A create that fails (an image the engine lacks) leaves nothing in the list.
  fs::path other = root_ / "other";
  fs::create_directories(other);
  auto failed = call("POST", "/api/sandboxes",
                     {{"projectPath", other.string()},
                      {"projectId", projectId_ + "-x"},
                      {"image", "agentpane/no-such-image:e2e"}});
  EXPECT_EQ(failed.status, 400) << failed.body.dump();
  auto listed = call("GET", "/api/sandboxes");
  ASSERT_EQ(listed.status, 200);
  for (const auto& s : listed.body["data"]) {
    EXPECT_EQ(s.value("projectId", "") == projectId_ + "-x", false) << s.dump();
  }
}

TEST_F(ApiE2E, ExecIsAuditedAndCounted) {
  auto created = call("POST", "/api/sandboxes",
                      {{"projectPath", project_.string()}, {"projectId", projectId_}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  sandboxId_ = created.body["data"].value("id", "");
  auto bin = call("POST", "/api/sandboxes/" + sandboxId_ + "/exec",
                  {{"argv", {"printf", "\\377\\000ok"}}, {"encoding", "base64"}});
  ASSERT_EQ(bin.status, 200) << bin.body.dump();
  EXPECT_EQ(bin.body["data"].value("stdoutBase64", ""), "/wBvaw==");
  auto timeout = call("POST", "/api/sandboxes/" + sandboxId_ + "/exec",
                      {{"argv", {"sleep", "30"}}, {"timeoutSeconds", 1}});
  EXPECT_EQ(timeout.status, 504);
  EXPECT_EQ(timeout.code(), "EXEC_TIMEOUT");

  auto audit = call("GET", "/api/audit?sandboxId=" + sandboxId_);
  ASSERT_EQ(audit.status, 200);
  std::set<std::string> actions;
  for (const auto& e : audit.body["data"])
    actions.insert(e.value("action", ""));
  EXPECT_TRUE(actions.count("sandbox.create")) << audit.body.dump();
  EXPECT_TRUE(actions.count("exec")) << audit.body.dump();

  net::HttpRequest req;
  req.target = "/metrics";
  req.headers = {{"Authorization", "Bearer " + token_}};
  auto m = http_->request(req);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->body.find("agentpane_sandboxes{provider=\"docker\",status=\"running\"} 1"),
            std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("agentpane_exec_total{provider=\"docker\""), std::string::npos);
  // The server's execs went through the in-sandbox agent (the agent copied in from build/),
  // and none fell back to the native exec.
  EXPECT_EQ(m->body.find("agentpane_exec_path_total{path=\"channel\"} 0\n"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("agentpane_exec_path_total{path=\"native_fallback\"} 0\n"),
            std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find(
                "agentpane_http_request_duration_seconds_bucket{route=\"/api/sandboxes/:id/exec\""),
            std::string::npos);
}

TEST_F(ApiE2E, HostPathsOutsideTheRulesAreRefused) {
  // The server inherits this process's HOME; its default roots are that and the temp dir.
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  auto outside = fs::path("/var/tmp") / (projectId_ + "-outside");
  fs::create_directories(outside);
  fs::create_directory_symlink("/etc", project_ / "etc-link");
  struct Case {
    std::string path, rule;
  };
  for (const Case& c : {Case{outside.string(), "outside-project-roots"},
                        Case{"/var/run", "engine-socket-directory"},
                        Case{(project_ / "etc-link").string(), "system-directory"},
                        Case{home, "server-home"}, Case{home_.string(), "server-state"}}) {
    auto r = call("POST", "/api/sandboxes", {{"projectPath", c.path}, {"projectId", projectId_}});
    EXPECT_EQ(r.status, 403) << c.path << " " << r.body.dump();
    EXPECT_EQ(r.code(), "PATH_FORBIDDEN") << c.path;
    EXPECT_EQ(r.body["error"]["details"].value("rule", ""), c.rule) << r.body.dump();
    EXPECT_EQ(r.body["error"]["details"].value("field", ""), "projectPath");
  }
  fs::remove_all(outside);
  auto left =
      run({"docker", "ps", "-aq", "--filter", "label=agentpane.io/project-id=" + projectId_});
  EXPECT_TRUE(left.out.empty()) << left.out;
}

TEST_F(ApiE2E, RootExecIsAPermissionOfTheProfile) {
  auto cfg = call("POST", "/api/sandbox-configs", {{"name", "rooty-" + projectId_}});
  ASSERT_EQ(cfg.status, 201) << cfg.body.dump();
  EXPECT_EQ(cfg.body["data"].value("allowRootExec", true), false);
  auto cfgId = cfg.body["data"].value("id", "");
  auto created =
      call("POST", "/api/sandboxes",
           {{"projectPath", project_.string()}, {"projectId", projectId_}, {"configId", cfgId}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  sandboxId_ = created.body["data"].value("id", "");
  const std::string exec = "/api/sandboxes/" + sandboxId_ + "/exec";

  auto refused = call("POST", exec, {{"argv", {"id", "-u"}}, {"root", true}});
  EXPECT_EQ(refused.status, 403) << refused.body.dump();
  EXPECT_EQ(refused.code(), "SANDBOX_ROOT_EXEC_FORBIDDEN");
  auto user = call("POST", exec, {{"argv", {"id", "-u"}}});
  EXPECT_EQ(user.body["data"].value("stdout", ""), "1000\n") << user.body.dump();

  auto allow = call("PATCH", "/api/sandbox-configs/" + cfgId, {{"allowRootExec", true}});
  ASSERT_EQ(allow.status, 200) << allow.body.dump();
  auto root = call("POST", exec, {{"argv", {"id", "-u"}}, {"root", true}});
  ASSERT_EQ(root.status, 200) << root.body.dump();
  EXPECT_EQ(root.body["data"].value("stdout", ""), "0\n");

  EXPECT_EQ(call("DELETE", "/api/sandboxes/" + sandboxId_).status, 200);
  sandboxId_.clear();
  EXPECT_EQ(call("DELETE", "/api/sandbox-configs/" + cfgId).status, 200);
}

// Durable commands (issue 11) through the API: start, output from a cursor (base64 chunks
// with offsets), the long-poll wait, list, kill, and coded refusals.
TEST_F(ApiE2E, DurableCommandsRunReplayAndDie) {
  auto created = call("POST", "/api/sandboxes",
                      {{"projectPath", project_.string()}, {"projectId", projectId_}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  sandboxId_ = created.body["data"].value("id", "");
  const std::string base = "/api/sandboxes/" + sandboxId_ + "/commands";

  auto started = call("POST", base, {{"argv", {"sh", "-c", "printf abc; printf def >&2; exit 3"}}});
  ASSERT_EQ(started.status, 201) << started.body.dump();
  const std::string cid = started.body["data"].value("id", "");
  ASSERT_FALSE(cid.empty());
  // Wait (long poll) until it has ended; then replay from cursor 2.
  json out;
  for (int i = 0; i < 20; ++i) {
    auto r = call("GET", base + "/" + cid + "?cursor=0&wait=5000");
    ASSERT_EQ(r.status, 200) << r.body.dump();
    out = r.body["data"];
    if (!out["command"].value("running", true)) break;
  }
  ASSERT_FALSE(out["command"].value("running", true)) << out.dump();
  EXPECT_EQ(out["command"]["exitCode"], 3);
  EXPECT_EQ(out["command"]["state"], "exited");
  auto replay = call("GET", base + "/" + cid + "?cursor=2");
  ASSERT_EQ(replay.status, 200) << replay.body.dump();
  std::string stdoutText, stderrText;
  std::uint64_t expect = 2;
  for (const auto& c : replay.body["data"]["chunks"]) {
    EXPECT_EQ(c.value("offset", 0ull), expect);
    auto data = base64Decode(c.value("data", std::string()));
    ASSERT_TRUE(data.has_value());
    expect += data->size();
    (c.value("stream", "") == "stderr" ? stderrText : stdoutText) += *data;
  }
  EXPECT_EQ(stdoutText, "c");
  EXPECT_EQ(stderrText, "def");
  EXPECT_EQ(replay.body["data"].value("nextCursor", 0), 6);

  // A long one, killed: its whole tree dies and the state says so.
  auto sleeper = call("POST", base, {{"argv", {"sh", "-c", "sleep 3000 & sleep 3001; wait"}}});
  ASSERT_EQ(sleeper.status, 201) << sleeper.body.dump();
  const std::string sid = sleeper.body["data"].value("id", "");
  auto list = call("GET", base);
  ASSERT_EQ(list.status, 200) << list.body.dump();
  std::set<std::string> ids;
  for (const auto& c : list.body["data"])
    ids.insert(c.value("id", ""));
  EXPECT_TRUE(ids.count(cid) && ids.count(sid)) << list.body.dump();
  auto killed = call("DELETE", base + "/" + sid);
  ASSERT_EQ(killed.status, 200) << killed.body.dump();
  EXPECT_EQ(killed.body["data"]["state"], "killed");
  EXPECT_EQ(killed.body["data"]["exitCode"], 137);
  auto ps = call("POST", "/api/sandboxes/" + sandboxId_ + "/exec",
                 {{"argv", {"sh", "-c", "ps -eo args | grep -c '^sleep 300[01]' || true"}}});
  ASSERT_EQ(ps.status, 200) << ps.body.dump();
  EXPECT_EQ(ps.body["data"].value("stdout", ""), "0\n");

  // Refusals, each with its code.
  EXPECT_EQ(call("GET", base + "/nosuchcommand").code(), "NOT_FOUND");
  EXPECT_EQ(call("DELETE", base + "/nosuchcommand").code(), "NOT_FOUND");
  EXPECT_EQ(call("GET", base + "/bad%20id").code(), "VALIDATION_ERROR");
  EXPECT_EQ(call("GET", base + "/" + cid + "?cursor=-1").code(), "VALIDATION_ERROR");
  EXPECT_EQ(call("GET", base + "/" + cid + "?wait=999999").code(), "VALIDATION_ERROR");
  EXPECT_EQ(call("POST", base, {{"argv", json::array()}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(call("POST", base, {{"argv", {"true"}}, {"root", true}}).code(), "VALIDATION_ERROR");
  EXPECT_EQ(call("GET", "/api/sandboxes/no-such-sandbox/commands").code(), "SANDBOX_NOT_FOUND");

  auto audit = call("GET", "/api/audit?sandboxId=" + sandboxId_ + "&event=command.*");
  ASSERT_EQ(audit.status, 200) << audit.body.dump();
  std::multiset<std::string> actions;
  for (const auto& e : audit.body["data"])
    actions.insert(e.value("action", ""));
  EXPECT_EQ(actions.count("command.start"), 2u) << audit.body.dump();
  EXPECT_EQ(actions.count("command.kill"), 1u) << audit.body.dump();
}

}  // namespace
}  // namespace agentpane::testing
