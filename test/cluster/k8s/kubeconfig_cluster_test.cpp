// kubeconfig credentials against the real apiserver of the test cluster, as the least-privilege
// ServiceAccount (AGENTPANE_TEST_SA_KUBECONFIG from `scripts/test-cluster env`): an exec plugin
// whose first credential is refused (401 → one more run), in-cluster credentials built from the
// same token and CA, and the cluster status as the routes report it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base64.hpp"
#include "k8s/cluster_info.hpp"
#include "k8s/rest_client.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;

class KubeconfigClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* sa = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(sa != nullptr && *sa != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: run eval \"$(scripts/test-cluster env)\"";
    saKubeconfig = sa;
    auto cfg = loadKubeconfigFile(saKubeconfig);
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    auto rc = resolveContext(cfg.value(), "", {});
    ASSERT_TRUE(rc.ok()) << rc.error().message;
    sa_ = rc.value();
    auto creds = sa_.credentials->current();
    ASSERT_TRUE(creds.ok());
    token = creds->bearerToken;
    ASSERT_FALSE(token.empty());
    caPem = sa_.endpoint.tls.caPem;
    ASSERT_FALSE(caPem.empty()) << "the SA kubeconfig carries certificate-authority-data";

    std::string tmpl = (fs::temp_directory_path() / "ap-kc-cluster-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }

  std::string write(const std::string& rel, const std::string& text, bool exec = false) {
    auto p = fs::path(dir) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::trunc) << text;
    if (exec) ::chmod(p.c_str(), 0755);
    return p.string();
  }

  std::string saKubeconfig;
  RestConfig sa_;
  std::string token;
  std::string caPem;
  std::string dir;
};

TEST_F(KubeconfigClusterTest, ExecPluginRefusedOnceRunsAgainOnceAndSucceeds) {
  // First run prints a token the apiserver refuses; later runs print the ServiceAccount's.
  write("good-token", token);
  write("plugin.sh", R"(#!/bin/sh
dir=$(dirname "$0")
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$dir/count"
if [ "$n" = 1 ]; then tok=not-a-valid-token; else tok=$(cat "$dir/good-token"); fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$tok"
)",
        true);
  std::string kc =
      write("config",
            "current-context: x\nclusters:\n- name: c\n  cluster:\n"
            "    server: " +
                sa_.server + "\n    certificate-authority-data: " + base64Encode(caPem) +
                "\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                "users:\n- name: u\n  user:\n    exec:\n"
                "      apiVersion: client.authentication.k8s.io/v1\n"
                "      command: ./plugin.sh\n"
                "      interactiveMode: Never\n");
  auto cfg = loadKubeconfigFile(kc);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto rc = resolveContext(cfg.value(), "", {});
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  auto client = RestClient::create(rc.value());
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto pods =
      client.value()->list("/api/v1/namespaces/agentpane-sandboxes/pods", ListOptions{.limit = 1});
  ASSERT_TRUE(pods.ok()) << pods.error().describe();
  std::ifstream count(fs::path(dir) / "count");
  int runs = 0;
  count >> runs;
  EXPECT_EQ(runs, 2);  // the refused credential, then exactly one more
  // Cached from now on.
  ASSERT_TRUE(client.value()->get("/version").ok());
  std::ifstream again(fs::path(dir) / "count");
  again >> runs;
  EXPECT_EQ(runs, 2);
}

TEST_F(KubeconfigClusterTest, InClusterCredentialsFromAServiceAccountDirectory) {
  write("sa/token", token);
  write("sa/ca.crt", caPem);
  write("sa/namespace", "agentpane-sandboxes");
  LoadingRules rules;
  std::string host = sa_.endpoint.host;
  std::string port = std::to_string(sa_.endpoint.port);
  rules.env = [host, port](const char* name) -> std::optional<std::string> {
    std::string n = name;
    if (n == "KUBERNETES_SERVICE_HOST") return host;
    if (n == "KUBERNETES_SERVICE_PORT") return port;
    return std::nullopt;
  };
  rules.homeDir = dir;  // no ~/.kube/config there
  rules.serviceAccountDir = (fs::path(dir) / "sa").string();
  ClusterInfoOptions o;
  o.rules = rules;
  ClusterInfo info(o);
  auto s = info.status({});
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(s->connected);
  EXPECT_EQ(s->kubeconfigSource, "in-cluster");
  EXPECT_EQ(s->credentialType, "in-cluster");
  EXPECT_EQ(s->namespaceName, "agentpane-sandboxes");
  EXPECT_TRUE(s->namespaceExists);
  EXPECT_EQ(s->version.rfind("v1.", 0), 0u) << s->version;
}

TEST_F(KubeconfigClusterTest, StatusAndNamespacesAsTheLeastPrivilegedAccount) {
  ClusterInfoOptions o;
  o.rules.allowInCluster = false;
  ClusterInfo info(o);
  ClusterTarget t{saKubeconfig, "", ""};
  auto s = info.status(t);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(s->connected);
  EXPECT_EQ(s->context, "agentpane@agentpane-test");
  EXPECT_EQ(s->credentialType, "token");
  EXPECT_EQ(s->namespaceName, "agentpane-sandboxes");  // the context's namespace
  EXPECT_TRUE(s->namespaceExists);
  EXPECT_LE(s->podsRunning, s->podsTotal);

  // The same count through a list of our own.
  auto client = info.client(t);
  ASSERT_TRUE(client.ok());
  auto pods = client.value()->listAll("/api/v1/namespaces/agentpane-sandboxes/pods",
                                      ListOptions{.labelSelector = "agentpane.io/sandbox=true"});
  ASSERT_TRUE(pods.ok()) << pods.error().describe();
  EXPECT_EQ(static_cast<int>(pods.value()["items"].size()), s->podsTotal);

  auto ns = info.namespaces(t);
  ASSERT_TRUE(ns.ok()) << ns.error().describe();
  bool sawSandboxes = false, sawSystem = false;
  for (const auto& n : ns.value()) {
    sawSandboxes = sawSandboxes || n.name == "agentpane-sandboxes";
    sawSystem = sawSystem || n.name == "kube-system";
  }
  EXPECT_TRUE(sawSandboxes);
  EXPECT_TRUE(sawSystem);

  // A namespace that does not exist is reported, not an error.
  auto missing = info.status({saKubeconfig, "", "agentpane-no-such-namespace"});
  ASSERT_TRUE(missing.ok()) << missing.error().describe();
  EXPECT_FALSE(missing->namespaceExists);
  EXPECT_EQ(info.cachedClients(), 1u);  // one (kubeconfig, context), reused
}

TEST_F(KubeconfigClusterTest, AnApiserverThatIsNotThereIsUnreachableNotATimeout) {
  // The cluster's own address with a port nothing listens on.
  std::string kc = write("down",
                         "current-context: x\nclusters:\n- name: c\n  cluster:\n"
                         "    server: https://127.0.0.1:1\n"
                         "    certificate-authority-data: " +
                             base64Encode(caPem) +
                             "\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                             "users:\n- name: u\n  user: {token: " +
                             token + "}\n");
  ClusterInfo info{ClusterInfoOptions{}};
  auto s = info.status({kc, "", ""});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::K8sUnreachable) << s.error().describe();
}

}  // namespace
}  // namespace agentpane::k8s
