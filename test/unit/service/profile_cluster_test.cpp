// A profile that names a cluster (kubeConfigPath or kubeContext) gets a provider instance of
// its own: its sandboxes live there, rows record it, and after a restart the instance is made
// again so that they are found, used and reconciled.
#include <gtest/gtest.h>

#include <fstream>

#include "service/composition.hpp"
#include "unit/service/service_fixture.hpp"
#include "unit/temp_dir.hpp"

namespace agentpane::fakes {
namespace {

namespace st = sandbox_status;

class ProfileClusterTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    enableK8s = true;
    // The "clusters": one fake per instance name, kept across restarts as a cluster would be.
    kubernetesInstance = [this](
                             const KubernetesTarget& t,
                             const std::string& name) -> Result<std::shared_ptr<SandboxProvider>> {
      std::lock_guard lk(mu);
      targets.push_back(t);
      if (t.context == "broken") {
        return Error(ErrorCode::K8sKubeconfigInvalid, "context \"broken\" not found");
      }
      auto& fake = clusters[name];
      if (!fake) {
        fake = std::make_shared<FakeProvider>(ProviderType::Kubernetes);
        fake->instanceName = name;
      }
      return std::shared_ptr<SandboxProvider>(fake);
    };
    restart();
    kubeconfig = (dir.path() / "team.kubeconfig").string();
    std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\n";
  }

  std::string profile(const std::string& name, const std::string& path, const std::string& ctx) {
    SandboxConfig c;
    c.name = name;
    c.providerType = ProviderType::Kubernetes;
    c.kubeConfigPath = path;
    c.kubeContext = ctx;
    c.allowFallback = false;
    auto made = svc->createConfig(c);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    return made.ok() ? made->id : "";
  }

  CreateSandboxRequest requestFor(const std::string& configId) {
    auto r = request();
    r.configId = configId;
    return r;
  }

  std::mutex mu;
  std::vector<KubernetesTarget> targets;
  std::map<std::string, std::shared_ptr<FakeProvider>> clusters;
  std::string kubeconfig;
};

TEST_F(ProfileClusterTest, SandboxesGoToTheClusterTheProfileNames) {
  const std::string cfg = profile("team", kubeconfig, "staging");
  auto out = svc->createSandbox(requestFor(cfg), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  const KubernetesTarget want{kubeconfig, "staging", "agentpane-sandboxes"};
  const std::string name = kubernetesInstanceName(want);
  EXPECT_EQ(out->sandbox.info.instance, name);
  EXPECT_EQ(name.rfind("kubernetes-", 0), 0u) << name;
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].kubeconfigPath, kubeconfig);
  EXPECT_EQ(targets[0].context, "staging");
  EXPECT_EQ(targets[0].namespaceName, "agentpane-sandboxes");
  EXPECT_EQ(clusters.at(name)->callCount("create"), 1);
  EXPECT_EQ(k8s->callCount("create"), 0);  // not the server's own cluster

  // A second sandbox of the profile reuses the instance.
  auto second = svc->createSandbox(
      [&] {
        auto r = requestFor(cfg);
        r.projectPath = mkdir("other");
        return r;
      }(),
      "api");
  ASSERT_TRUE(second.ok()) << second.error().describe();
  EXPECT_EQ(targets.size(), 1u);
  EXPECT_EQ(clusters.at(name)->callCount("create"), 2);
}

TEST_F(ProfileClusterTest, AfterARestartItsSandboxesAreFoundAndKept) {
  const std::string cfg = profile("team", kubeconfig, "staging");
  auto out = svc->createSandbox(requestFor(cfg), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  const std::string id = out->sandbox.info.id;
  restart();  // the instance is not registered yet
  ASSERT_TRUE(svc->reconcile().ok());
  auto row = svc->getSandbox(id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, st::kRunning);  // listed on its cluster, not "gone"
  auto exec = svc->exec(id, ExecRequest{{"true"}, {}, {}, 1024}, "api");
  ASSERT_TRUE(exec.ok()) << exec.error().describe();
  EXPECT_EQ(clusters.begin()->second->callCount("exec", id), 1);
  ASSERT_TRUE(svc->removeSandbox(id, "api").ok());
  EXPECT_FALSE(clusters.begin()->second->exists(id));
}

// The instance is remembered by name: a profile changed since does not strand its sandboxes.
TEST_F(ProfileClusterTest, AProfileChangedLaterDoesNotStrandItsSandboxes) {
  const std::string cfg = profile("team", kubeconfig, "staging");
  auto out = svc->createSandbox(requestFor(cfg), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  auto c = svc->getConfig(cfg).value();
  c.kubeContext = "production";
  ASSERT_TRUE(svc->updateConfig(c).ok());
  restart();
  ASSERT_TRUE(svc->reconcile().ok());
  auto row = svc->getSandbox(out->sandbox.info.id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, st::kRunning);
  EXPECT_EQ(targets.back().context, "staging");
  ASSERT_TRUE(svc->removeSandbox(out->sandbox.info.id, "api").ok());
}

TEST_F(ProfileClusterTest, AClusterThatCannotBeOpenedIsAClearError) {
  auto broken = svc->createSandbox(requestFor(profile("broken", "", "broken")), "api");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_NE(broken.error().message.find("profile 'broken'"), std::string::npos)
      << broken.error().message;
  EXPECT_TRUE(svc->listSandboxes().value().empty());

  // A kubeconfig outside the project roots is refused at each use, too.
  const std::string cfg = profile("moved", kubeconfig, "staging");
  std::filesystem::remove(kubeconfig);
  std::filesystem::create_symlink("/etc/passwd", kubeconfig);
  auto refused = svc->createSandbox(requestFor(cfg), "api");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::PathForbidden) << refused.error().describe();
}

TEST_F(ProfileClusterTest, WithoutAFactoryAProfileClusterIsRefused) {
  kubernetesInstance = nullptr;
  restart();
  auto r = svc->createSandbox(requestFor(profile("team", "", "staging")), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_EQ(r.error().details.at("field"), "kubeContext");
}

TEST(KubernetesInstanceName, StableAndDistinct) {
  KubernetesTarget a{"/p/kc", "ctx", "ns"};
  EXPECT_EQ(kubernetesInstanceName(a), kubernetesInstanceName(a));
  EXPECT_NE(kubernetesInstanceName(a), kubernetesInstanceName({"/p/kc", "ctx2", "ns"}));
  EXPECT_NE(kubernetesInstanceName(a), kubernetesInstanceName({"/p/kc", "ctx", "ns2"}));
  EXPECT_NE(kubernetesInstanceName(a), kubernetesInstanceName({"/p/kc2", "ctx", "ns"}));
  EXPECT_EQ(kubernetesInstanceName(a).size(), std::string("kubernetes-").size() + 12);
}

// The server's composition makes a profile's cluster provider from the profile's kubeconfig,
// which came through the API: an exec plugin in it is refused before anything runs, unless
// the operator allows it (AGENTPANE_K8S_API_KUBECONFIG_EXEC=1).
TEST(KubernetesComposition, AProfilesKubeconfigMayNotRunAnExecPluginUnlessAllowed) {
  testing::TempDir dir;
  const auto marker = dir.path() / "plugin-ran";
  const auto plugin = dir.path() / "plugin.sh";
  std::ofstream(plugin) << "#!/bin/sh\ntouch '" << marker.string() << "'\nexit 1\n";
  std::filesystem::permissions(plugin, std::filesystem::perms::owner_all);
  const auto kc = dir.path() / "kubeconfig";
  std::ofstream(kc) << "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n"
                       "  cluster: {server: \"http://127.0.0.1:9\"}\ncontexts:\n- name: c\n"
                       "  context: {cluster: k, user: u}\nusers:\n- name: u\n  user:\n"
                       "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                       "      command: "
                    << plugin.string() << "\n      interactiveMode: Never\n";
  CompositionOptions options{dir.path(), true, {}};
  KubernetesTarget target{kc.string(), "", "agentpane-sandboxes"};
  auto refused = buildKubernetesProvider(options, target, kubernetesInstanceName(target));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::K8sKubeconfigInvalid) << refused.error().describe();
  EXPECT_EQ(refused.error().details.at("field"), "users[0].user.exec");
  EXPECT_FALSE(std::filesystem::exists(marker));

  options.kubernetes.allowApiKubeconfigExec = true;
  auto allowed = buildKubernetesProvider(options, target, kubernetesInstanceName(target));
  // Allowed, the plugin is what runs (and fails: it prints no credential); nothing listens on
  // port 9 either. Either way, not the refusal.
  if (!allowed.ok()) {
    EXPECT_EQ(allowed.error().message.find("refused in a kubeconfig given through the API"),
              std::string::npos)
        << allowed.error().describe();
  }
}

TEST(CompositionSettings, CpuRequestPercentIsAWholeNumberFrom1To100) {
  EXPECT_EQ(cpuRequestPercent("").value(), 0);  // the default
  EXPECT_EQ(cpuRequestPercent("1").value(), 1);
  EXPECT_EQ(cpuRequestPercent("100").value(), 100);
  for (const char* bad : {"0", "101", "-5", "50%", "1.5", " 5", "x"}) {
    auto r = cpuRequestPercent(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << bad;
    EXPECT_NE(r.error().message.find("AGENTPANE_K8S_CPU_REQUEST_PERCENT"), std::string::npos);
  }
}

}  // namespace
}  // namespace agentpane::fakes
