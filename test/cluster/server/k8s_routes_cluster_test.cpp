// The cluster routes of a real Server against the real test cluster, as the least-privilege
// ServiceAccount (AGENTPANE_TEST_SA_KUBECONFIG from `scripts/test-cluster env`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "k8s/cluster_info.hpp"
#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {
namespace {

class K8sRoutesClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* sa = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(sa != nullptr && *sa != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: run eval \"$(scripts/test-cluster env)\"";
    std::string kc = sa;
    k8s::ClusterInfoOptions o;
    o.rules.env = [kc](const char* name) -> std::optional<std::string> {
      if (std::string(name) == "K8S_KUBECONFIG") return kc;
      return std::nullopt;
    };
    o.rules.allowInCluster = false;
    auto so = testServerOptions();
    so.enableK8s = true;
    so.cluster = std::make_shared<k8s::ClusterInfo>(o);
    ts = std::make_unique<TestServer>(
        std::vector<std::shared_ptr<SandboxProvider>>{
            std::make_shared<ServerFake>(ProviderType::Docker)},
        so);
    kubeconfig = kc;
  }
  void TearDown() override { ts.reset(); }

  std::unique_ptr<TestServer> ts;
  std::string kubeconfig;
};

TEST_F(K8sRoutesClusterTest, StatusContextsAndNamespaces) {
  auto c = ts->client();
  auto st = c.get("/api/sandbox/k8s/status");
  ASSERT_EQ(st.status, 200) << st.body;
  auto d = st.data();
  EXPECT_EQ(d["connected"], true);
  EXPECT_EQ(d["context"], "agentpane@agentpane-test");
  EXPECT_EQ(d["version"].get<std::string>().rfind("v1.", 0), 0u) << d.dump();
  EXPECT_EQ(d["namespace"], "agentpane-sandboxes");
  EXPECT_EQ(d["namespaceExists"], true);
  EXPECT_EQ(d["credentialType"], "token");
  EXPECT_LE(d["pods"]["running"].get<int>(), d["pods"]["total"].get<int>());

  // A kubeconfig path given through the API follows the project-path rule: the test
  // cluster's own file lives under /var/lib (a system directory) and is refused; a copy in a
  // project root (the temp directory, a default root) is read.
  auto refused = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + kubeconfig);
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(refused.code(), "PATH_FORBIDDEN");
  TempDir copyDir("ap-k8s-kubeconfig-");
  const auto copy = copyDir.path() / "kubeconfig";
  std::filesystem::copy_file(kubeconfig, copy);
  auto ctx = c.get("/api/sandbox/k8s/contexts?kubeconfigPath=" + copy.string());
  ASSERT_EQ(ctx.status, 200) << ctx.body;
  EXPECT_EQ(ctx.data()["current"], "agentpane@agentpane-test");
  ASSERT_EQ(ctx.data()["contexts"].size(), 1u);
  EXPECT_EQ(ctx.data()["contexts"][0]["namespace"], "agentpane-sandboxes");

  auto ns = c.get("/api/sandbox/k8s/namespaces");
  ASSERT_EQ(ns.status, 200) << ns.body;
  bool saw = false;
  const auto nsData = ns.data();  // data() is a value: keep it alive while iterating
  for (const auto& n : nsData["namespaces"])
    saw = saw || n["name"] == "agentpane-sandboxes";
  EXPECT_TRUE(saw) << ns.body;
}

}  // namespace
}  // namespace agentpane::testing
