// `agentpane doctor`'s RBAC check on the real test cluster: with the least-privilege
// ServiceAccount (AGENTPANE_TEST_SA_KUBECONFIG) every verb the server uses is granted; with a
// second ServiceAccount whose Role lacks one verb (made by this test with the admin kubeconfig,
// KUBECONFIG, and deleted at the end) doctor names exactly that verb. Doctor runs in this
// process with the environment `serve` would read; its other checks (token, server) are not
// looked at.
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "cluster/cluster_clients.hpp"
#include "k8s/kubeconfig.hpp"
#include "k8s/permissions.hpp"
#include "k8s/rest_client.hpp"
#include "store/store.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kNs = "agentpane-sandboxes";

// The doctor lines about RBAC ("ok    rbac …", "FAIL  rbac …").
std::vector<std::string> rbacLines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (l.find(" rbac ") != std::string::npos) lines.push_back(l);
  return lines;
}

class DoctorCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* sa = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    const char* admin = std::getenv("KUBECONFIG");
    ASSERT_TRUE(sa != nullptr && *sa != '\0' && admin != nullptr && *admin != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG and KUBECONFIG are not set: eval \"$(scripts/test-cluster "
           "env)\"";
    saKubeconfig_ = sa;
    admin_ = testing::clientForKubeconfig(admin);
    ASSERT_TRUE(admin_);
    run_ = "doctor-" + std::to_string(::getpid()) + "-" +
           std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
    home_ = fs::temp_directory_path() / ("agentpane-" + run_);
    fs::create_directories(home_);
  }

  void TearDown() override {
    if (admin_ && made_) {
      for (const auto& path :
           {resourcePath("rbac.authorization.k8s.io/v1", "rolebindings", kNs, run_),
            resourcePath("rbac.authorization.k8s.io/v1", "roles", kNs, run_),
            resourcePath("rbac.authorization.k8s.io/v1", "clusterrolebindings", {}, run_),
            resourcePath("v1", "serviceaccounts", kNs, run_)}) {
        auto r = admin_->remove(path);
        EXPECT_TRUE(r.ok()) << path << ": " << r.error().describe();
      }
    }
    std::error_code ec;
    fs::remove_all(home_, ec);
  }

  // runDoctor() as `agentpane doctor` with the Kubernetes provider on `kubeconfig`.
  std::string doctor(const std::string& kubeconfig) {
    ::setenv("ENABLE_K8S_SANDBOX", "true", 1);
    ::setenv("AGENTPANE_K8S_KUBECONFIG_PATH", kubeconfig.c_str(), 1);
    ::setenv("K8S_KUBECONFIG", kubeconfig.c_str(), 1);
    ::setenv("AGENTPANE_HOME", home_.c_str(), 1);
    ::setenv("AGENTPANE_URL", "http://127.0.0.1:1", 1);  // no server: only its line fails
    ::testing::internal::CaptureStdout();
    (void)cli::runDoctor();
    std::string out = ::testing::internal::GetCapturedStdout();
    for (const char* v : {"ENABLE_K8S_SANDBOX", "AGENTPANE_K8S_KUBECONFIG_PATH", "K8S_KUBECONFIG",
                          "AGENTPANE_HOME", "AGENTPANE_URL"})
      ::unsetenv(v);
    return out;
  }

  // A ServiceAccount with the server's Role minus `delete persistentvolumeclaims`, the
  // server's ClusterRole, and a kubeconfig with its token.
  std::string limitedKubeconfig() {
    made_ = true;
    const json sa = {{"apiVersion", "v1"},
                     {"kind", "ServiceAccount"},
                     {"metadata", {{"name", run_}, {"namespace", kNs}}}};
    auto r = admin_->create(resourcePath("v1", "serviceaccounts", kNs), sa);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    auto role =
        admin_->get(resourcePath("rbac.authorization.k8s.io/v1", "roles", kNs, "agentpane"));
    EXPECT_TRUE(role.ok()) << role.error().describe();
    if (!role.ok()) return {};
    json rules = json::array();
    for (auto rule : (*role)["rules"]) {
      if (rule["resources"] == json::array({"persistentvolumeclaims"})) {
        json verbs = json::array();
        for (const auto& v : rule["verbs"])
          if (v != "delete") verbs.push_back(v);
        rule["verbs"] = verbs;
      }
      rules.push_back(rule);
    }
    const json limited = {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                          {"kind", "Role"},
                          {"metadata", {{"name", run_}, {"namespace", kNs}}},
                          {"rules", rules}};
    r = admin_->create(resourcePath("rbac.authorization.k8s.io/v1", "roles", kNs), limited);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    const json subject = {{"kind", "ServiceAccount"}, {"name", run_}, {"namespace", kNs}};
    const json rb = {
        {"apiVersion", "rbac.authorization.k8s.io/v1"},
        {"kind", "RoleBinding"},
        {"metadata", {{"name", run_}, {"namespace", kNs}}},
        {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", run_}}},
        {"subjects", {subject}}};
    r = admin_->create(resourcePath("rbac.authorization.k8s.io/v1", "rolebindings", kNs), rb);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    const json crb = {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                      {"kind", "ClusterRoleBinding"},
                      {"metadata", {{"name", run_}}},
                      {"roleRef",
                       {{"apiGroup", "rbac.authorization.k8s.io"},
                        {"kind", "ClusterRole"},
                        {"name", "agentpane"}}},
                      {"subjects", {subject}}};
    r = admin_->create(resourcePath("rbac.authorization.k8s.io/v1", "clusterrolebindings"), crb);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    const json tr = {{"apiVersion", "authentication.k8s.io/v1"},
                     {"kind", "TokenRequest"},
                     {"spec", {{"expirationSeconds", 600}}}};
    auto token = admin_->create(resourcePath("v1", "serviceaccounts", kNs, run_, "token"), tr);
    EXPECT_TRUE(token.ok()) << token.error().describe();
    if (!token.ok()) return {};
    YAML::Node kc = YAML::LoadFile(saKubeconfig_);
    kc["users"][0]["user"] = YAML::Node(YAML::NodeType::Map);
    kc["users"][0]["user"]["token"] = (*token)["status"]["token"].get<std::string>();
    const fs::path path = home_ / "limited.kubeconfig";
    std::ofstream(path) << YAML::Dump(kc) << "\n";
    // The authorizer learns of new bindings through its informers, a moment after they are
    // stored: wait until it grants the new account both a namespaced and a cluster verb.
    auto limitedClient = testing::clientForKubeconfig(path.string());
    EXPECT_TRUE(limitedClient);
    if (!limitedClient) return {};
    const std::vector<Permission> probe = {{"pods", "", "get", false, ""},
                                           {"namespaces", "", "get", true, ""}};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      auto c = checkPermissions(*limitedClient, kNs, probe);
      EXPECT_TRUE(c.ok()) << c.error().describe();
      if (!c.ok()) return {};
      if ((*c)[0].allowed && (*c)[1].allowed) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the new ServiceAccount's bindings were not in force within 30 s";
        return {};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return path.string();
  }

  std::string saKubeconfig_;
  std::shared_ptr<RestClient> admin_;
  std::string run_;
  fs::path home_;
  bool made_ = false;
};

TEST_F(DoctorCluster, LeastPrivilegeServiceAccountHasEveryVerb) {
  const std::string out = doctor(saKubeconfig_);
  const auto lines = rbacLines(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_EQ(lines[0].rfind("ok    rbac      all ", 0), 0u) << out;
  EXPECT_NE(lines[0].find("verbs the server uses are granted"), std::string::npos) << out;
}

TEST_F(DoctorCluster, NamesTheVerbARoleLacks) {
  const std::string kc = limitedKubeconfig();
  ASSERT_FALSE(kc.empty());
  const std::string out = doctor(kc);
  const auto lines = rbacLines(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_EQ(lines[0],
            "FAIL  rbac      missing: delete persistentvolumeclaims in namespace "
            "agentpane-sandboxes (the workspace claim; patch nudges a stalled bind)")
      << out;
}

// A profile that names a cluster of its own (here: the same cluster through the limited
// ServiceAccount's kubeconfig) is checked like the server's: doctor says which profile lacks
// which verb, while the server's own credentials stay fine.
TEST_F(DoctorCluster, ChecksTheClusterEachProfileNames) {
  const std::string limited = limitedKubeconfig();
  ASSERT_FALSE(limited.empty());
  // Outside the server's home (which the path rule refuses), inside a project root (/tmp).
  const fs::path profileKc = fs::temp_directory_path() / (run_ + ".kubeconfig");
  fs::copy_file(limited, profileKc, fs::copy_options::overwrite_existing);
  {
    auto store = Store::open(home_);
    ASSERT_TRUE(store.ok()) << store.error().describe();
    SandboxConfig c;
    c.id = "cfg-" + run_;
    c.name = "team-limited";
    c.providerType = ProviderType::Kubernetes;
    c.enableK8s = true;
    c.kubeConfigPath = profileKc.string();
    c.kubeNamespace = kNs;
    ASSERT_TRUE((*store)->insertConfig(c).ok());
  }
  const std::string out = doctor(saKubeconfig_);
  fs::remove(profileKc);
  const auto lines = rbacLines(out);
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_EQ(lines[0].rfind("ok    rbac      all ", 0), 0u) << out;  // the server's own
  EXPECT_EQ(lines[1],
            "FAIL  rbac      profile team-limited: missing: delete persistentvolumeclaims in "
            "namespace agentpane-sandboxes (the workspace claim; patch nudges a stalled bind)")
      << out;
  EXPECT_NE(out.find("ok    cluster   profile team-limited: Kubernetes v1.30"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace agentpane::k8s
