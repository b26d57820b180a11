// DockerClient and DockerProvider against a scripted engine on a unix socket: version
// negotiation, error mapping, the exec flow (create, hijacked start, inspect) including the
// timeout kill, and create's clean-up on every failure. The fake records every request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "unit/docker/frames.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <thread>

#include "docker/docker_provider.hpp"
#include "unit/net/fake_http_server.hpp"

namespace agentpane::docker {
namespace {

using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using nlohmann::json;
using namespace std::chrono_literals;

using agentpane::docker::testing::frame;

bool startsWith(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// Routes by "METHOD /path" (version prefix stripped); unrouted requests get a 500.
struct FakeEngine {
  std::string apiVersion = "1.41";
  std::string minApiVersion = "1.12";
  std::map<std::string, std::function<void(const FakeRequest&, FakeConn&)>> routes;
  std::map<std::string, std::string> inspectLabels;  // added to the unrouted inspect's labels
  std::unique_ptr<FakeHttpServer> server;

  FakeEngine() {
    server = std::make_unique<FakeHttpServer>(
        [this](const FakeRequest& r, FakeConn& c) { handle(r, c); });
  }
  void handle(const FakeRequest& r, FakeConn& c) {
    std::string path = r.target.substr(0, r.target.find('?'));
    if (path == "/version") {
      c.write(FakeHttpServer::response(
          200,
          json{{"Version", "fake"}, {"ApiVersion", apiVersion}, {"MinAPIVersion", minApiVersion}}
              .dump()));
      return;
    }
    if (startsWith(path, "/v1.")) path = path.substr(path.find('/', 1));
    auto it = routes.find(r.method + " " + path);
    if (it == routes.end() && r.method == "GET" && startsWith(path, "/containers/agentpane-") &&
        path.size() > 5 && path.substr(path.size() - 5) == "/json") {
      // The provider checks the labels of every container it touches: an unrouted inspect
      // answers a running sandbox of ours, whose id echoes its name so that routes keyed by
      // name keep matching.
      std::string name = path.substr(12, path.size() - 12 - 5);
      json labels = {{"agentpane.io/sandbox", "true"},
                     {"agentpane.io/sandbox-id", name.substr(10)},
                     {"agentpane.io/project-id", "p"}};
      for (const auto& [k, v] : inspectLabels)
        labels[k] = v;
      c.write(FakeHttpServer::response(
          200, json{{"Id", name},
                    {"Config", {{"Labels", labels}, {"Image", "agentpane/sandbox:latest"}}},
                    {"State", {{"Status", "running"}, {"Running", true}, {"ExitCode", 0}}}}
                   .dump()));
      return;
    }
    if (it == routes.end()) {
      c.write(FakeHttpServer::response(500,
                                       R"({"message":"unrouted )" + r.method + " " + path + "\"}"));
      return;
    }
    it->second(r, c);
  }
  std::vector<std::string> seen() const {
    std::vector<std::string> out;
    for (const auto& r : server->requests())
      out.push_back(r.method + " " + r.target);
    return out;
  }
  std::unique_ptr<DockerProvider> provider() {
    DockerProviderOptions o;
    o.endpoint = net::Endpoint::unixSocket(server->socketPath());
    o.killTimeout = 2s;
    auto p = DockerProvider::create(o);
    EXPECT_TRUE(p.ok());
    return std::move(p.value());
  }
};

void reply(FakeConn& c, int status, const std::string& body) {
  c.write(FakeHttpServer::response(status, body));
}

TEST(FakeEngine, NegotiatedVersionPrefixesEveryCall) {
  struct Case {
    const char* max;
    const char* min;
    const char* prefix;
  };
  for (const Case& k : {Case{"1.41", "1.12", "/v1.41/"}, Case{"1.51", "1.44", "/v1.47/"},
                        Case{"1.52", "1.48", "/v1.48/"}}) {
    FakeEngine e;
    e.apiVersion = k.max;
    e.minApiVersion = k.min;
    e.routes["GET /containers/json"] = [](const FakeRequest&, FakeConn& c) { reply(c, 200, "[]"); };
    auto p = e.provider();
    auto listed = p->list(ListFilter{});
    ASSERT_TRUE(listed.ok()) << listed.error().describe();
    auto seen = e.seen();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], "GET /version");
    EXPECT_TRUE(
        startsWith(seen[1], "GET " + std::string(k.prefix) + "containers/json?all=1&filters="))
        << seen[1];
    ASSERT_TRUE(p->list(ListFilter{}).ok());
    EXPECT_EQ(e.seen().size(), 3u);  // negotiated once
  }
}

TEST(FakeEngine, FallsBackToPingWhenVersionFails) {
  FakeEngine e;
  e.routes["GET /_ping"] = [](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 200 OK\r\nAPI-Version: 1.43\r\nContent-Length: 2\r\n\r\nOK");
  };
  e.routes["GET /containers/json"] = [](const FakeRequest&, FakeConn& c) { reply(c, 200, "[]"); };
  // Make /version fail by reporting garbage.
  e.apiVersion = "garbage";
  auto p = e.provider();
  ASSERT_TRUE(p->list(ListFilter{}).ok());
  auto seen = e.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1], "GET /_ping");
  EXPECT_TRUE(startsWith(seen[2], "GET /v1.43/containers/json"));
}

TEST(FakeEngine, EngineNotRunningSaysHowToStartIt) {
  DockerProviderOptions o;
  o.endpoint = net::Endpoint::unixSocket("/tmp/ap-none-" + std::to_string(::getpid()) + ".sock");
  auto p = DockerProvider::create(o);
  ASSERT_TRUE(p.ok());
  auto r = p.value()->list(ListFilter{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderUnavailable);
  EXPECT_NE(r.error().message.find("not running"), std::string::npos);
  EXPECT_NE(r.error().message.find("start-docker.sh"), std::string::npos);
  auto h = p.value()->healthCheck();
  EXPECT_FALSE(h.reachable);
  ASSERT_FALSE(h.warnings.empty());
}

TEST(FakeEngine, ExecFlowAndExitCode) {
  FakeEngine e;
  json execBody;
  e.routes["POST /containers/agentpane-s1/exec"] = [&](const FakeRequest& r, FakeConn& c) {
    execBody = json::parse(r.body);
    reply(c, 201, R"({"Id":"e1"})");
  };
  e.routes["POST /exec/e1/start"] = [](const FakeRequest& r, FakeConn& c) {
    EXPECT_EQ(r.headers.at("upgrade"), "tcp");
    c.write(
        "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: "
        "Upgrade\r\n"
        "Upgrade: tcp\r\n\r\n" +
        frame(1, "hello ") + frame(2, "oops"));
    c.write(frame(1, "world"));
  };
  int inspects = 0;
  e.routes["GET /exec/e1/json"] = [&](const FakeRequest&, FakeConn& c) {
    // Still running on the first look: the session must poll.
    reply(c, 200,
          ++inspects == 1 ? R"({"Running":true,"ExitCode":null})"
                          : R"({"Running":false,"ExitCode":3})");
  };
  auto p = e.provider();
  ExecRequest req;
  req.argv = {"sh", "-c", "echo $(id)"};
  req.options.env = {{"A", "b c"}};
  auto r = p->exec(SandboxRef{"docker", "", "", "", "s1"}, req);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "hello world");
  EXPECT_EQ(r->stderrData, "oops");
  EXPECT_EQ(r->exitCode, 3);
  EXPECT_EQ(execBody["Cmd"], json({"sh", "-c", "echo $(id)"}));
  EXPECT_EQ(execBody["User"], "1000:1000");
  EXPECT_EQ(execBody["WorkingDir"], "/workspace");
  EXPECT_EQ(execBody["AttachStdin"], false);
  EXPECT_EQ(execBody["Tty"], false);
  EXPECT_EQ(execBody["Env"][0], "A=b c");
  EXPECT_TRUE(startsWith(execBody["Env"][1].get<std::string>(), "AGENTPANE_EXEC_ID="));

  req.options.root = true;
  ASSERT_TRUE(p->exec(SandboxRef{"docker", "", "", "", "s1"}, req).ok());
  EXPECT_EQ(execBody["User"], "0:0");
}

TEST(FakeEngine, ExecErrorsMapToSandboxCodes) {
  FakeEngine e;
  e.routes["POST /containers/agentpane-gone/exec"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 404, R"({"message":"No such container: agentpane-gone"})");
  };
  e.routes["POST /containers/agentpane-off/exec"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 409, R"({"message":"Container abc is not running"})");
  };
  auto p = e.provider();
  ExecRequest req;
  req.argv = {"true"};
  EXPECT_EQ(p->exec(SandboxRef{"docker", "", "", "", "gone"}, req).error().code,
            ErrorCode::SandboxNotFound);
  EXPECT_EQ(p->exec(SandboxRef{"docker", "", "", "", "off"}, req).error().code,
            ErrorCode::SandboxNotRunning);
  req.argv = {};
  EXPECT_EQ(p->exec(SandboxRef{"docker", "", "", "", "off"}, req).error().code,
            ErrorCode::ValidationError);
  req.argv = {"true"};
  EXPECT_EQ(p->exec(SandboxRef{"docker", "", "", "", "../../x"}, req).error().code,
            ErrorCode::SandboxNotFound);
  req.options.env = {{"BAD=KEY", "v"}};
  EXPECT_EQ(p->exec(SandboxRef{"docker", "", "", "", "off"}, req).error().code,
            ErrorCode::ValidationError);
}

TEST(FakeEngine, TimeoutRunsTheMarkerKillAsTheSameUser) {
  FakeEngine e;
  std::vector<json> execs;
  std::mutex mu;
  std::atomic<bool> killed{false};
  e.routes["POST /containers/agentpane-s1/exec"] = [&](const FakeRequest& r, FakeConn& c) {
    std::lock_guard lock(mu);
    execs.push_back(json::parse(r.body));
    reply(c, 201, execs.size() == 1 ? R"({"Id":"slow"})" : R"({"Id":"killer"})");
  };
  e.routes["POST /exec/slow/start"] = [&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 101 UPGRADED\r\n\r\n");
    while (!killed)
      std::this_thread::sleep_for(5ms);  // a process that never ends by itself
  };
  e.routes["POST /exec/killer/start"] = [&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 101 UPGRADED\r\n\r\n");
    killed = true;
  };
  auto p = e.provider();
  ExecRequest req;
  req.argv = {"sleep", "1000"};
  req.options.timeout = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = p->exec(SandboxRef{"docker", "", "", "", "s1"}, req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_TRUE(killed.load());
  std::lock_guard lock(mu);
  ASSERT_EQ(execs.size(), 2u);
  std::string markerEnv = execs[0]["Env"].back().get<std::string>();
  std::string marker = markerEnv.substr(markerEnv.find('=') + 1);
  EXPECT_EQ(marker.size(), 32u);
  EXPECT_EQ(marker.find_first_not_of("0123456789abcdef"), std::string::npos);
  const json& kill = execs[1];
  EXPECT_EQ(kill["User"], execs[0]["User"]);
  ASSERT_EQ(kill["Cmd"].size(), 5u);
  EXPECT_EQ(kill["Cmd"][0], "sh");
  EXPECT_EQ(kill["Cmd"][4], marker);  // an argument, never spliced into the script
  EXPECT_EQ(kill["Cmd"][2].get<std::string>().find(marker), std::string::npos);
}

// The user recorded at create (label agentpane.io/uid-gid) is the exec's and the kill's, in
// any provider (a restarted server's too); a container without it ran as 1000:1000.
TEST(FakeEngine, ExecRunsAsTheRecordedUser) {
  FakeEngine e;
  e.inspectLabels = {{"agentpane.io/uid-gid", "1234:5678"}};
  std::vector<json> execs;
  std::mutex mu;
  std::atomic<bool> killed{false};
  e.routes["POST /containers/agentpane-s1/exec"] = [&](const FakeRequest& r, FakeConn& c) {
    std::lock_guard lock(mu);
    execs.push_back(json::parse(r.body));
    reply(c, 201, execs.size() == 1 ? R"({"Id":"slow"})" : R"({"Id":"killer"})");
  };
  e.routes["POST /exec/slow/start"] = [&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 101 UPGRADED\r\n\r\n");
    while (!killed)
      std::this_thread::sleep_for(5ms);
  };
  e.routes["POST /exec/killer/start"] = [&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 101 UPGRADED\r\n\r\n");
    killed = true;
  };
  ExecRequest req;
  req.argv = {"sleep", "1000"};
  req.options.timeout = 200ms;
  auto r = e.provider()->exec(SandboxRef{"docker", "", "", "", "s1"}, req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout);
  std::lock_guard lock(mu);
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0]["User"], "1234:5678");
  EXPECT_EQ(execs[1]["User"], "1234:5678");  // the marker kill
}

TEST(FakeEngine, AnUnreadableUserLabelRunsNothing) {
  for (const char* bad :
       {"", "1234", "1234:", ":5", "-1:5", "a:b", "1234:5678:9", "99999999999:1"}) {
    FakeEngine e;
    e.inspectLabels = {{"agentpane.io/uid-gid", bad}};
    bool execed = false;
    e.routes["POST /containers/agentpane-s1/exec"] = [&](const FakeRequest&, FakeConn& c) {
      execed = true;
      reply(c, 500, "{}");
    };
    ExecRequest req;
    req.argv = {"true"};
    auto r = e.provider()->exec(SandboxRef{"docker", "", "", "", "s1"}, req);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::SandboxExecFailed) << bad;
    EXPECT_FALSE(execed) << bad;
  }
}

class FakeEngineCreate : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-proj-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    // The sandbox runs as the project's owner: the image's user, unless a test says otherwise.
    ASSERT_EQ(::chown(dir_.c_str(), 1000, 1000), 0) << "the unit tests run as root";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  SandboxSpec spec() {
    SandboxSpec s;
    s.id = "s1";
    s.projectId = "p";
    s.agentId = "a";
    s.projectPath = dir_;
    s.network = NetworkMode::Internal;
    s.extraLabels = {{"agentpane.io/warm-pool", "true"}, {labels::kSandboxId, "spoofed"}};
    return s;
  }
  std::string dir_;
};

TEST_F(FakeEngineCreate, BadProjectPathNeverTouchesTheEngine) {
  FakeEngine e;
  auto p = e.provider();
  for (std::string bad : {std::string(), std::string("relative/dir"), dir_ + "/missing"}) {
    SandboxSpec s = spec();
    s.projectPath = bad;
    EXPECT_EQ(p->create(s).error().code, ErrorCode::SandboxProjectPathInvalid) << bad;
  }
  EXPECT_TRUE(e.seen().empty());
}

TEST_F(FakeEngineCreate, UnknownImageMakesNothing) {
  FakeEngine e;
  e.routes["GET /images/agentpane/sandbox:latest/json"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 404, R"({"message":"No such image: agentpane/sandbox:latest"})");
  };
  auto p = e.provider();
  auto r = p->create(spec());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxImageNotFound);
  for (const auto& s : e.seen())
    EXPECT_EQ(s.find("containers/create"), std::string::npos) << s;
}

TEST_F(FakeEngineCreate, FailedStartRemovesTheContainer) {
  FakeEngine e;
  json created;
  bool deleted = false;
  e.routes["GET /images/agentpane/sandbox:latest/json"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 200, "{}");
  };
  e.routes["GET /networks/agentpane-s1"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 404, R"({"message":"network not found"})");
  };
  json network;
  e.routes["POST /networks/create"] = [&](const FakeRequest& r, FakeConn& c) {
    network = json::parse(r.body);
    reply(c, 201, R"({"Id":"n1"})");
  };
  e.routes["POST /containers/create"] = [&](const FakeRequest& r, FakeConn& c) {
    EXPECT_NE(r.target.find("name=agentpane-s1"), std::string::npos);
    created = json::parse(r.body);
    reply(c, 201, R"({"Id":"c1"})");
  };
  e.routes["POST /containers/agentpane-s1/start"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 500, R"({"message":"OCI runtime create failed"})");
  };
  e.routes["DELETE /containers/agentpane-s1"] = [&](const FakeRequest& r, FakeConn& c) {
    EXPECT_NE(r.target.find("force=1"), std::string::npos);
    EXPECT_NE(r.target.find("v=1"), std::string::npos);
    deleted = true;
    c.write("HTTP/1.1 204 No Content\r\n\r\n");
  };
  auto p = e.provider();
  auto r = p->create(spec());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxCreateFailed);
  EXPECT_NE(r.error().message.find("OCI runtime create failed"), std::string::npos);
  EXPECT_TRUE(deleted);

  // A network of its own: no sandbox shares one with another.
  EXPECT_EQ(network["Name"], "agentpane-s1");
  EXPECT_EQ(network["Internal"], true);
  const json& hc = created["HostConfig"];
  EXPECT_EQ(hc["CapDrop"], json({"ALL"}));
  EXPECT_EQ(hc["SecurityOpt"], json({"no-new-privileges"}));
  EXPECT_EQ(hc["Init"], true);
  EXPECT_EQ(hc["NetworkMode"], "agentpane-s1");
  EXPECT_EQ(hc["Memory"], 2048LL * 1024 * 1024);
  EXPECT_EQ(hc["NanoCpus"], 2000000000LL);
  EXPECT_EQ(hc["PidsLimit"], 512);
  EXPECT_EQ(hc["Mounts"][0]["Source"], dir_);
  EXPECT_EQ(hc["Mounts"][0]["Target"], "/workspace");
  EXPECT_EQ(created["User"], "1000:1000");
  for (const auto& kv : created["Env"])
    EXPECT_FALSE(startsWith(kv.get<std::string>(), "HOME=")) << kv;  // the image user's home
  const json& l = created["Labels"];
  EXPECT_EQ(l["agentpane.io/uid-gid"], "1000:1000");
  EXPECT_EQ(l["agentpane.io/sandbox"], "true");
  EXPECT_EQ(l["agentpane.io/managed"], "true");
  EXPECT_EQ(l["agentpane.io/sandbox-id"], "s1");  // extraLabels cannot spoof ours
  EXPECT_EQ(l["agentpane.io/warm-pool"], "true");
  EXPECT_EQ(l["agentpane.io/project-path"], dir_);
  EXPECT_EQ(l["agentpane.io/image"], "agentpane/sandbox:latest");
}

// The container's user follows the project directory's owner (sandbox_user.hpp).
TEST_F(FakeEngineCreate, RunsAsTheProjectDirectorysOwner) {
  struct Case {
    uid_t uid;
    gid_t gid;
    std::vector<std::pair<std::string, std::string>> env;
    const char* user;
    const char* home;  // nullptr: no HOME in the container's environment
  };
  for (const Case& k :
       {Case{1234, 5678, {}, "1234:5678", "HOME=/tmp"}, Case{1234, 0, {}, "1234:1234", "HOME=/tmp"},
        Case{1000, 100, {}, "1000:100", nullptr}, Case{0, 0, {}, "0:0", nullptr},
        Case{0, 5678, {}, "0:0", nullptr},
        Case{1234, 5678, {{"HOME", "/w"}}, "1234:5678", "HOME=/w"}}) {
    ASSERT_EQ(::chown(dir_.c_str(), k.uid, k.gid), 0);
    FakeEngine e;
    json created;
    e.routes["GET /images/agentpane/sandbox:latest/json"] = [](const FakeRequest&, FakeConn& c) {
      reply(c, 200, "{}");
    };
    e.routes["POST /containers/create"] = [&](const FakeRequest& r, FakeConn& c) {
      created = json::parse(r.body);
      reply(c, 500, R"({"message":"enough"})");
    };
    SandboxSpec s = spec();
    s.network = NetworkMode::None;
    s.env = k.env;
    EXPECT_EQ(e.provider()->create(s).error().code, ErrorCode::SandboxCreateFailed);
    EXPECT_EQ(created["User"], k.user) << k.uid << ":" << k.gid;
    EXPECT_EQ(created["Labels"]["agentpane.io/uid-gid"], k.user);
    std::vector<std::string> homes;
    for (const auto& kv : created["Env"]) {
      if (startsWith(kv.get<std::string>(), "HOME=")) homes.push_back(kv.get<std::string>());
    }
    if (k.home == nullptr) {
      EXPECT_TRUE(homes.empty()) << k.uid;
    } else {
      EXPECT_EQ(homes, std::vector<std::string>{k.home}) << k.uid;
    }
  }
}

TEST_F(FakeEngineCreate, DuplicateIdAndIdempotentRemove) {
  FakeEngine e;
  e.routes["GET /images/agentpane/sandbox:latest/json"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 200, "{}");
  };
  e.routes["POST /networks/create"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 201, R"({"Id":"n1"})");
  };
  bool networkRemoved = false;
  e.routes["GET /networks/agentpane-s1"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 200, R"({"Labels":{"agentpane.io/sandbox-id":"s1"}})");
  };
  e.routes["DELETE /networks/agentpane-s1"] = [&](const FakeRequest&, FakeConn& c) {
    networkRemoved = true;
    c.write("HTTP/1.1 204 No Content\r\n\r\n");
  };
  e.routes["POST /containers/create"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 409,
          R"({"message":"Conflict. The container name \"/agentpane-s1\" is already in use"})");
  };
  e.routes["DELETE /containers/agentpane-s1"] = [](const FakeRequest&, FakeConn& c) {
    reply(c, 404, R"({"message":"No such container: agentpane-s1"})");
  };
  auto p = e.provider();
  EXPECT_EQ(p->create(spec()).error().code, ErrorCode::SandboxAlreadyExists);
  EXPECT_TRUE(networkRemoved);  // the network this create made goes with it
  EXPECT_TRUE(p->remove(SandboxRef{"docker", "", "", "", "s1"}).ok());
}

TEST(FakeEngine, ResponsesOverTheBodyLimitFail) {
  FakeEngine e;
  e.routes["GET /containers/json"] = [](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n[");
  };
  auto p = e.provider();
  auto r = p->list(ListFilter{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderError);
}

}  // namespace
}  // namespace agentpane::docker
