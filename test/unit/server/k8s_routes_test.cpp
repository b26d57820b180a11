// The cluster routes on a real Server, talking through the real REST client to a scripted
// apiserver (FakeHttpServer) named by a kubeconfig the test writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/path_policy.hpp"
#include "k8s/cluster_info.hpp"
#include "net/url.hpp"
#include "unit/net/fake_http_server.hpp"
#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {
namespace {

std::string kubeconfigFor(const std::string& server, const std::string& current) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
         "\nclusters:\n- name: fake\n  cluster: {server: \"" + server +
         "\"}\ncontexts:\n- name: fake-ctx\n  context: {cluster: fake, user: tester, namespace: "
         "team}\n- name: other\n  context: {cluster: fake}\nusers:\n- name: tester\n  user: "
         "{token: sekret}\n";
}

class K8sRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    apiserver = std::make_unique<FakeHttpServer>(
        [this](const FakeRequest& req, FakeConn& conn) { answer(req, conn); },
        FakeHttpServer::Kind::Tcp);
    kubeconfig = (dir.path() / "kubeconfig").string();
    write(kubeconfig,
          kubeconfigFor("http://127.0.0.1:" + std::to_string(apiserver->port()), "fake-ctx"));
    start(kubeconfig);
  }
  void TearDown() override {
    ts.reset();
    apiserver.reset();
  }

  void start(const std::string& k8sKubeconfig, bool serverEnables = true,
             ServiceOptions serviceOptions = {}) {
    ts.reset();
    k8s::ClusterInfoOptions o;
    o.rules.env = [k8sKubeconfig](const char* name) -> std::optional<std::string> {
      if (std::string(name) == "K8S_KUBECONFIG") return k8sKubeconfig;
      return std::nullopt;
    };
    o.rules.allowInCluster = false;
    o.allowExecInTargetKubeconfigs = allowTargetExec;
    cluster = std::make_shared<k8s::ClusterInfo>(o);
    auto so = testServerOptions();
    so.enableK8s = serverEnables;
    so.cluster = cluster;
    ts = std::make_unique<TestServer>(
        std::vector<std::shared_ptr<SandboxProvider>>{
            std::make_shared<ServerFake>(ProviderType::Docker)},
        so, std::move(serviceOptions));
  }

  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }

  void answer(const FakeRequest& req, FakeConn& conn) {
    const std::string close = "Connection: close\r\n";
    if (req.headers.count("authorization") == 0 ||
        req.headers.at("authorization") != "Bearer sekret") {
      conn.write(FakeHttpServer::response(401, R"({"kind":"Status","code":401})", close));
      return;
    }
    const std::string& t = req.target;
    if (t == "/version") {
      conn.write(FakeHttpServer::response(200, R"({"gitVersion":"v1.30.99"})", close));
    } else if (t == "/api/v1/namespaces/agentpane-sandboxes") {
      if (namespaceMissing) {
        conn.write(FakeHttpServer::response(
            404,
            R"({"kind":"Status","status":"Failure","reason":"NotFound","code":404,)"
            R"("message":"namespaces \"agentpane-sandboxes\" not found"})",
            close));
      } else {
        conn.write(FakeHttpServer::response(
            200, R"({"kind":"Namespace","metadata":{"name":"agentpane-sandboxes"}})", close));
      }
    } else if (t.rfind("/api/v1/namespaces/agentpane-sandboxes/pods?", 0) == 0) {
      conn.write(FakeHttpServer::response(
          200,
          R"({"kind":"PodList","metadata":{"resourceVersion":"7"},"items":[)"
          R"({"metadata":{"name":"a"},"status":{"phase":"Running"}},)"
          R"({"metadata":{"name":"b"},"status":{"phase":"Pending"}},)"
          R"({"metadata":{"name":"c"},"status":{"phase":"Running"}}]})",
          close));
    } else if (t.rfind("/api/v1/namespaces", 0) == 0) {
      conn.write(FakeHttpServer::response(
          200,
          R"({"kind":"NamespaceList","metadata":{"resourceVersion":"9"},"items":[)"
          R"({"metadata":{"name":"default"},"status":{"phase":"Active"}},)"
          R"({"metadata":{"name":"agentpane-sandboxes"},"status":{"phase":"Active"}}]})",
          close));
    } else {
      conn.write(FakeHttpServer::response(404, R"({"kind":"Status","code":404})", close));
    }
  }

  std::vector<std::string> targets() const {
    std::vector<std::string> out;
    for (const auto& r : apiserver->requests())
      out.push_back(r.target);
    return out;
  }

  TempDir dir;
  std::unique_ptr<FakeHttpServer> apiserver;
  std::string kubeconfig;
  std::shared_ptr<k8s::ClusterInfo> cluster;
  std::unique_ptr<TestServer> ts;
  std::atomic<bool> namespaceMissing{false};
  bool allowTargetExec = false;
};

TEST_F(K8sRoutesTest, StatusReportsVersionNamespaceAndSandboxPods) {
  auto c = ts->client();
  auto r = c.get("/api/sandbox/k8s/status");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.data();
  EXPECT_EQ(d["connected"], true);
  EXPECT_EQ(d["context"], "fake-ctx");
  EXPECT_EQ(d["server"], "http://127.0.0.1:" + std::to_string(apiserver->port()));
  EXPECT_EQ(d["version"], "v1.30.99");
  // The profile's namespace (the default profile: agentpane-sandboxes), not the context's.
  EXPECT_EQ(d["namespace"], "agentpane-sandboxes");
  EXPECT_EQ(d["namespaceExists"], true);
  EXPECT_EQ(d["pods"]["running"], 2);
  EXPECT_EQ(d["pods"]["total"], 3);
  EXPECT_EQ(d["credentialType"], "token");
  EXPECT_EQ(d["kubeconfigSource"], "K8S_KUBECONFIG");
  // The pods were asked for by the sandbox label.
  bool sawSelector = false;
  for (const auto& t : targets()) {
    sawSelector =
        sawSelector || (t.find("/pods?") != std::string::npos &&
                        t.find("labelSelector=agentpane.io%2Fsandbox%3Dtrue") != std::string::npos);
  }
  EXPECT_TRUE(sawSelector);

  // A second call reuses the client of (kubeconfig, context).
  ASSERT_EQ(c.get("/api/sandbox/k8s/status").status, 200);
  EXPECT_EQ(cluster->cachedClients(), 1u);
}

TEST_F(K8sRoutesTest, AMissingNamespaceIsAnAnswerNotAnError) {
  namespaceMissing = true;
  auto r = ts->client().get("/api/sandbox/k8s/status");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.data()["namespaceExists"], false);
  EXPECT_EQ(r.data()["pods"]["total"], 0);
}

TEST_F(K8sRoutesTest, ContextsOfTheDiscoveredKubeconfigOrOfOneFile) {
  auto c = ts->client();
  auto r = c.get("/api/sandbox/k8s/contexts");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.data();
  EXPECT_EQ(d["current"], "fake-ctx");
  ASSERT_EQ(d["contexts"].size(), 2u);
  EXPECT_EQ(d["contexts"][0]["name"], "fake-ctx");
  EXPECT_EQ(d["contexts"][0]["cluster"], "fake");
  EXPECT_EQ(d["contexts"][0]["user"], "tester");
  EXPECT_EQ(d["contexts"][0]["namespace"], "team");
  EXPECT_EQ(d["contexts"][1]["name"], "other");

  std::string other = (dir.path() / "other-kubeconfig").string();
  write(other, kubeconfigFor("https://elsewhere:6443", "other"));
  auto one = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + other);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.data()["current"], "other");

  EXPECT_EQ(c.get("/api/sandbox/k8s/contexts?kubeconfigPath=relative/config").code(),
            "VALIDATION_ERROR");
  EXPECT_EQ(c.get("/api/sandbox/k8s/contexts?other=1").code(), "VALIDATION_ERROR");
  auto missing = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + other + "-gone");
  EXPECT_EQ(missing.code(), errorName(ErrorCode::K8sKubeconfigInvalid));
  write(other, "clusters: [unclosed\n");
  auto bad = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + other);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.code(), errorName(ErrorCode::K8sKubeconfigInvalid));
  EXPECT_NE(bad.body.find("other-kubeconfig"), std::string::npos) << bad.body;
}

TEST_F(K8sRoutesTest, NamespacesVisibleToTheCredentials) {
  auto r = ts->client().get("/api/sandbox/k8s/namespaces");
  ASSERT_EQ(r.status, 200) << r.body;
  auto ns = r.data()["namespaces"];
  ASSERT_EQ(ns.size(), 2u);
  EXPECT_EQ(ns[0]["name"], "default");
  EXPECT_EQ(ns[1]["name"], "agentpane-sandboxes");
  EXPECT_EQ(ns[1]["phase"], "Active");
}

TEST_F(K8sRoutesTest, AnUnreachableClusterIsCodedAndAMissingContextNamed) {
  // A port nothing listens on: bind one, note it, close it.
  unsigned short port = 0;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  std::string down = (dir.path() / "down").string();
  write(down, kubeconfigFor("http://127.0.0.1:" + std::to_string(port), "fake-ctx"));
  start(down);
  auto c = ts->client();
  auto r = c.get("/api/sandbox/k8s/status");
  EXPECT_EQ(r.code(), errorName(ErrorCode::K8sUnreachable)) << r.body;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(c.get("/api/sandbox/k8s/namespaces").code(), errorName(ErrorCode::K8sUnreachable));
  // Listing contexts needs no cluster.
  EXPECT_EQ(c.get("/api/sandbox/k8s/contexts").status, 200);

  std::string ghost = (dir.path() / "ghost").string();
  write(ghost, kubeconfigFor("http://127.0.0.1:1", "ghost-ctx"));
  start(ghost);
  auto g = ts->client().get("/api/sandbox/k8s/status");
  EXPECT_EQ(g.code(), errorName(ErrorCode::K8sContextNotFound));
  EXPECT_NE(g.body.find("ghost-ctx"), std::string::npos);
}

TEST_F(K8sRoutesTest, OffUnlessTheServerOrTheDefaultProfileTurnsItOn) {
  start(kubeconfig, /*serverEnables=*/false);
  auto c = ts->client();
  for (const char* path :
       {"/api/sandbox/k8s/status", "/api/sandbox/k8s/contexts", "/api/sandbox/k8s/namespaces"}) {
    EXPECT_EQ(c.get(path).code(), "K8S_DISABLED") << path;
  }
  EXPECT_TRUE(apiserver->requests().empty());  // nothing was asked of the cluster
  // The default profile's switch turns the feature on without a restart.
  auto configs = c.get("/api/sandbox-configs");
  ASSERT_EQ(configs.status, 200) << configs.body;
  std::string id;
  for (const auto& cfg : configs.data()) {
    if (cfg.value("isDefault", false)) id = cfg.value("id", "");
  }
  ASSERT_FALSE(id.empty()) << configs.body;
  auto patched = c.request(boost::beast::http::verb::patch, "/api/sandbox-configs/" + id,
                           R"({"enableK8s":true})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  auto r = c.get("/api/sandbox/k8s/status");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.data()["version"], "v1.30.99");
}

TEST_F(K8sRoutesTest, KubeconfigPathsGivenThroughTheApiFollowTheProjectPathRule) {
  // A kubeconfig can name a command to run and credentials to use: a path the API gives (the
  // contexts query, a profile's kubeConfigPath) must lie inside a project root, like a
  // project. The server's own discovery (K8S_KUBECONFIG here, outside the roots) is not the
  // API's and stays allowed.
  namespace fs = std::filesystem;
  const fs::path roots = dir.path() / "roots";
  fs::create_directories(roots / "team");
  const std::string inside = (roots / "team" / "kubeconfig").string();
  write(inside, kubeconfigFor("http://127.0.0.1:" + std::to_string(apiserver->port()), "fake-ctx"));
  fs::create_symlink(kubeconfig, roots / "team" / "link-out");
  fs::create_symlink("/etc", roots / "team" / "etc-link");
  PathPolicy::Settings settings;
  settings.roots = {roots.string()};
  ServiceOptions so;
  so.pathPolicy = std::make_shared<PathPolicy>(settings);
  start(kubeconfig, /*serverEnables=*/true, so);
  auto c = ts->client();
  const std::string contexts = "/api/sandbox/k8s/contexts?kubeconfigPath=";

  auto ok = c.get(contexts + inside);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.data()["current"], "fake-ctx");
  struct Case {
    std::string path;
    const char* rule;
  };
  for (const Case& k :
       {Case{kubeconfig, path_rule::kOutsideRoots},
        Case{(roots / "team" / "link-out").string(), path_rule::kOutsideRoots},
        Case{(roots / "team" / ".." / ".." / "kubeconfig").string(), path_rule::kOutsideRoots},
        Case{"/etc/passwd", path_rule::kSystemDirectory},
        Case{(roots / "team" / "etc-link" / "passwd").string(), path_rule::kSystemDirectory}}) {
    auto r = c.get(contexts + net::percentEncode(k.path));
    EXPECT_EQ(r.status, 403) << k.path << ": " << r.body;
    EXPECT_EQ(r.code(), "PATH_FORBIDDEN") << k.path;
    EXPECT_EQ(r.json()["error"]["details"]["rule"], k.rule) << r.body;
    EXPECT_EQ(r.json()["error"]["details"]["field"], "kubeconfigPath") << r.body;
  }
  EXPECT_EQ(c.get(contexts + inside + "-gone").code(), "K8S_KUBECONFIG_INVALID");

  // A profile's kubeConfigPath: checked when written ...
  auto out = c.post("/api/sandbox-configs", {{"name", "kc-out"}, {"kubeConfigPath", kubeconfig}});
  EXPECT_EQ(out.status, 403) << out.body;
  EXPECT_EQ(out.code(), "PATH_FORBIDDEN");
  auto rel = c.post("/api/sandbox-configs", {{"name", "kc-rel"}, {"kubeConfigPath", "kc"}});
  EXPECT_EQ(rel.code(), "VALIDATION_ERROR") << rel.body;
  auto good = c.post("/api/sandbox-configs", {{"name", "kc-in"}, {"kubeConfigPath", inside}});
  EXPECT_EQ(good.status, 201) << good.body;

  std::string id;
  for (const auto& cfg : c.get("/api/sandbox-configs").data()) {
    if (cfg.value("isDefault", false)) id = cfg.value("id", "");
  }
  ASSERT_FALSE(id.empty());
  auto patchOut = c.patch("/api/sandbox-configs/" + id, {{"kubeConfigPath", "/etc/passwd"}});
  EXPECT_EQ(patchOut.code(), "PATH_FORBIDDEN") << patchOut.body;
  auto patched = c.patch("/api/sandbox-configs/" + id, {{"kubeConfigPath", inside}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  auto st = c.get("/api/sandbox/k8s/status");
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_EQ(st.data()["context"], "fake-ctx");

  // ... and again at each use: the file swapped for a link out of the roots is refused.
  fs::remove(inside);
  fs::create_symlink(kubeconfig, inside);
  auto swapped = c.get("/api/sandbox/k8s/status");
  EXPECT_EQ(swapped.status, 403) << swapped.body;
  EXPECT_EQ(swapped.code(), "PATH_FORBIDDEN");
  EXPECT_EQ(c.get("/api/sandbox/k8s/namespaces").code(), "PATH_FORBIDDEN");
}

// An exec plugin names a command the server runs on its host. In a kubeconfig the API names
// (a profile's kubeConfigPath) a token holder may have written it into a project folder, so
// it is refused, naming the field, and never runs; the server's own kubeconfig (its operator's)
// may use one, and so may the API's once the operator allows it.
TEST_F(K8sRoutesTest, ExecPluginsRunOnlyFromTheServersOwnKubeconfigUnlessAllowed) {
  namespace fs = std::filesystem;
  const fs::path roots = dir.path() / "roots";
  fs::create_directories(roots / "team");
  const fs::path marker = dir.path() / "plugin-ran";
  const fs::path plugin = roots / "team" / "plugin.sh";
  write(plugin.string(), "#!/bin/sh\ntouch '" + marker.string() +
                             "'\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                             "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"sekret\"}}'\n");
  fs::permissions(plugin, fs::perms::owner_all);
  auto withPlugin = [&](const std::string& ctx) {
    return "apiVersion: v1\nkind: Config\ncurrent-context: " + ctx +
           "\nclusters:\n- name: fake\n  cluster: {server: \"http://127.0.0.1:" +
           std::to_string(apiserver->port()) + "\"}\ncontexts:\n- name: " + ctx +
           "\n  context: {cluster: fake, user: plug}\nusers:\n- name: plug\n  user:\n    exec:\n"
           "      apiVersion: client.authentication.k8s.io/v1\n      command: " +
           plugin.string() + "\n      interactiveMode: Never\n";
  };
  const std::string given = (roots / "team" / "kubeconfig").string();
  write(given, withPlugin("given-ctx"));
  PathPolicy::Settings settings;
  settings.roots = {roots.string()};
  ServiceOptions so;
  so.pathPolicy = std::make_shared<PathPolicy>(settings);
  start(kubeconfig, /*serverEnables=*/true, so);
  auto defaultProfile = [](auto& client) {
    for (const auto& cfg : client.get("/api/sandbox-configs").data()) {
      if (cfg.value("isDefault", false)) return cfg.value("id", std::string());
    }
    return std::string();
  };
  auto c = ts->client();
  const std::string id = defaultProfile(c);
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(c.patch("/api/sandbox-configs/" + id, {{"kubeConfigPath", given}}).status, 200);
  auto refused = c.get("/api/sandbox/k8s/status");
  EXPECT_EQ(refused.code(), "K8S_KUBECONFIG_INVALID") << refused.body;
  EXPECT_EQ(refused.json()["error"]["details"]["field"], "users[0].user.exec") << refused.body;
  EXPECT_NE(refused.json()["error"]["message"].get<std::string>().find(
                "AGENTPANE_K8S_API_KUBECONFIG_EXEC"),
            std::string::npos)
      << refused.body;
  EXPECT_FALSE(fs::exists(marker)) << "the plugin of an API-given kubeconfig ran";
  // Listing its contexts runs nothing and stays allowed.
  auto contexts = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + given);
  ASSERT_EQ(contexts.status, 200) << contexts.body;
  EXPECT_EQ(contexts.data()["current"], "given-ctx");
  EXPECT_FALSE(fs::exists(marker));

  // The server's own kubeconfig (K8S_KUBECONFIG here) may use the same plugin.
  const std::string own = (dir.path() / "own-kubeconfig").string();
  write(own, withPlugin("own-ctx"));
  start(own, /*serverEnables=*/true, so);
  auto c2 = ts->client();
  auto ownStatus = c2.get("/api/sandbox/k8s/status");
  ASSERT_EQ(ownStatus.status, 200) << ownStatus.body;
  EXPECT_EQ(ownStatus.data()["version"], "v1.30.99") << ownStatus.body;
  EXPECT_TRUE(fs::exists(marker));

  // And the API's, once the operator allows it.
  fs::remove(marker);
  allowTargetExec = true;
  start(kubeconfig, /*serverEnables=*/true, so);
  auto c3 = ts->client();
  ASSERT_EQ(
      c3.patch("/api/sandbox-configs/" + defaultProfile(c3), {{"kubeConfigPath", given}}).status,
      200);
  auto allowed = c3.get("/api/sandbox/k8s/status");
  ASSERT_EQ(allowed.status, 200) << allowed.body;
  EXPECT_TRUE(fs::exists(marker));
}

}  // namespace
}  // namespace agentpane::testing
