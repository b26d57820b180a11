// End to end on Kubernetes: the real `agentpane serve` with the Kubernetes provider on the test
// cluster (as the least-privilege ServiceAccount, AGENTPANE_TEST_SA_KUBECONFIG), driven by the
// real CLI exactly as on Docker; a SIGKILL of the server in the middle of a create leaves no
// pod, claim or volume the table does not know; with the cluster unreachable, a create falls
// back to Docker and says so.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <yaml-cpp/yaml.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "integration/server/process.hpp"
#include "integration/server/reconcile_check.hpp"
#include "k8s/kubeconfig_loader.hpp"
#include "k8s/rest_client.hpp"
#include "service/composition.hpp"

namespace agentpane::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string randomHex(int n) {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "0123456789abcdef"[rng() % 16];
  return s;
}

class K8sE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* sa = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(sa != nullptr && *sa != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster env)\"";
    kubeconfig_ = sa;
    root_ = fs::temp_directory_path() / ("agentpane-k8s-e2e-" + randomHex(8));
    home_ = root_ / "home";
    project_ = root_ / "project";
    fs::create_directories(home_);
    fs::create_directories(project_);
    ASSERT_EQ(chown(project_.c_str(), 1000, 1000), 0);
    projectId_ = "k8s-e2e-" + randomHex(10);
    k8s::LoadingRules rules;
    rules.explicitPath = kubeconfig_;
    k8s::DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
    auto client = k8s::RestClient::create(std::move(cfg).value());
    ASSERT_TRUE(client.ok());
    api_ = std::move(client).value();
    startServer();
  }

  void TearDown() override {
    // A warm pool a failed test left is emptied through the server (its pods carry no project
    // label, so the check below would not see them).
    if (server_ && !url_.empty()) cli({"pool", "prewarm", "0"});
    server_.reset();
    // Warm pools' slot roots are mounts that outlive the server (docs/warm-pool.md).
    for (const char* inst : {"kubernetes", "docker"})
      ::umount2((home_ / "warm-slots" / inst).c_str(), MNT_DETACH);
    auto left = clusterObjects();
    EXPECT_TRUE(left.empty()) << "leaked objects for " << projectId_ << ": " << *left.begin();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void startServer(std::map<std::string, std::string> extraEnv = {}) {
    fs::remove(home_ / "address");
    std::map<std::string, std::string> env = {{"ENABLE_K8S_SANDBOX", "true"},
                                              {"K8S_KUBECONFIG", kubeconfig_},
                                              {"AGENTPANE_K8S_IMAGE_PULL_POLICY", "Never"}};
    for (auto& [k, v] : extraEnv)
      env[k] = v;
    server_ = std::make_unique<Background>(
        std::vector<std::string>{agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home",
                                 home_.string(), "--orphan-grace-seconds", "2",
                                 "--reconcile-seconds", "1"},
        env, (root_ / "server.log").string());
    for (int i = 0; i < 300 && !fs::exists(home_ / "address"); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(home_ / "address")) << serverLog();
    std::ifstream in(home_ / "address");
    std::getline(in, url_);
    ASSERT_FALSE(url_.empty());
  }

  std::string serverLog() const {
    std::ifstream in(root_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  ProcResult cli(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin(), agentpaneBin());
    return run(std::move(args), {{"AGENTPANE_URL", url_}, {"AGENTPANE_HOME", home_.string()}},
               input);
  }

  json createJson() const {
    auto r = cli({"sandbox", "create", "--provider", "kubernetes", "--project-path",
                  project_.string(), "--project-id", projectId_, "--memory-mb", "512", "--json"});
    EXPECT_EQ(r.exitCode, 0) << r.err << serverLog();
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r.out;
    return j.is_object() ? j : json::object();
  }

  // "kind/name" of every pod, claim and volume of this test's project in the cluster.
  std::set<std::string> clusterObjects() const {
    std::set<std::string> out;
    k8s::ListOptions lo;
    lo.labelSelector = "agentpane.io/project-id=" + projectId_;
    const std::string ns = "agentpane-sandboxes";
    for (const auto& [kind, path] : std::vector<std::pair<std::string, std::string>>{
             {"pod", k8s::resourcePath("v1", "pods", ns)},
             {"pvc", k8s::resourcePath("v1", "persistentvolumeclaims", ns)},
             {"pv", k8s::resourcePath("v1", "persistentvolumes")}}) {
      auto l = api_->list(path, lo);
      if (!l.ok()) {
        out.insert("error:" + l.error().describe());
        continue;
      }
      for (const auto& item : l->value("items", json::array()))
        out.insert(kind + "/" + item["metadata"].value("name", ""));
    }
    return out;
  }

  json listSandboxes() const {
    auto r = cli({"sandbox", "ls", "--json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::string kubeconfig_;
  fs::path root_, home_, project_;
  std::string projectId_, url_;
  std::shared_ptr<k8s::RestClient> api_;
  std::unique_ptr<Background> server_;
};

TEST_F(K8sE2E, CliLifecycleExecAndTmuxOnAPod) {
  json made = createJson();
  const std::string id = made.value("id", "");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(made.value("provider", ""), "kubernetes") << made.dump();
  EXPECT_FALSE(made.contains("fallbackReason")) << made.dump();
  EXPECT_EQ(clusterObjects().count("pod/agentpane-" + id), 1u);

  auto e = cli({"exec", id, "--", "sh", "-c", "printf out; printf err >&2; exit 42"});
  EXPECT_EQ(e.exitCode, 42) << e.err;
  EXPECT_EQ(e.out, "out");
  EXPECT_EQ(e.err, "err");
  auto wc = cli({"exec", "-i", id, "--", "wc", "-c"}, std::string(100000, 'x'));
  EXPECT_EQ(wc.exitCode, 0) << wc.err;
  EXPECT_EQ(wc.out, "100000\n");
  EXPECT_EQ(cli({"exec", id, "--", "id", "-u"}).out, "1000\n");
  // Root exec is a permission of the profile (off by default); a profile that allows it
  // still meets the pod's restricted security context.
  auto root = cli({"exec", "--root", id, "--", "id", "-u"});
  EXPECT_NE(root.exitCode, 0);
  EXPECT_NE(root.err.find("SANDBOX_ROOT_EXEC_FORBIDDEN"), std::string::npos) << root.err;
  ASSERT_EQ(cli({"profile", "set", "default", "--allow-root-exec", "true"}).exitCode, 0);
  root = cli({"exec", "--root", id, "--", "id", "-u"});
  EXPECT_NE(root.exitCode, 0);
  EXPECT_NE(root.err.find("restricted"), std::string::npos) << root.err;

  auto written = cli({"exec", id, "--", "sh", "-c", "echo hi > /workspace/from-pod.txt"});
  EXPECT_EQ(written.exitCode, 0) << written.err;
  struct stat st {};
  ASSERT_EQ(::stat((project_ / "from-pod.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  auto timeout = cli({"exec", "--timeout", "1", id, "--", "sleep", "30"});
  EXPECT_NE(timeout.exitCode, 0);
  EXPECT_NE(timeout.err.find("EXEC_TIMEOUT"), std::string::npos) << timeout.err;

  ASSERT_EQ(cli({"tmux", "new", id, "dev"}).exitCode, 0);
  ASSERT_EQ(cli({"tmux", "send", id, "dev", "echo marker-$((6*7))"}).exitCode, 0);
  std::string captured;
  for (int i = 0; i < 50 && captured.find("marker-42") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    captured = cli({"tmux", "capture", id, "dev", "--lines", "20"}).out;
  }
  EXPECT_NE(captured.find("marker-42"), std::string::npos) << captured;
  EXPECT_EQ(cli({"tmux", "kill", id, "dev"}).exitCode, 0);

  // Stop keeps the workspace claim; start brings the pod back with its files.
  EXPECT_EQ(cli({"sandbox", "stop", id}).exitCode, 0);
  auto objs = clusterObjects();
  EXPECT_EQ(objs.count("pod/agentpane-" + id), 0u);
  EXPECT_EQ(objs.count("pvc/agentpane-" + id + "-workspace"), 1u);
  auto started = cli({"sandbox", "start", id});
  EXPECT_EQ(started.exitCode, 0) << started.err;
  EXPECT_EQ(cli({"exec", id, "--", "cat", "/workspace/from-pod.txt"}).out, "hi\n");

  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_TRUE(clusterObjects().empty());
}

// The warm pool on the cluster through the server: warm pods of the profile, a create that
// claims one gets the live project and its environment, writes back as 1000, and the pool
// refills; emptied, no pod of the pool is left.
TEST_F(K8sE2E, AWarmPodClaimedGetsTheLiveProjectAndTheEnvironment) {
  ASSERT_EQ(cli({"profile", "set", "default", "--provider", "kubernetes", "--memory-mb", "512",
                 "--cpu", "0.5"})
                .exitCode,
            0);
  auto pre = cli({"pool", "prewarm", "2"});
  ASSERT_EQ(pre.exitCode, 0) << pre.err << serverLog();
  auto warmCount = [&] {
    auto j = json::parse(cli({"pool", "status", "--json"}).out, nullptr, false);
    return j.is_object() && !j["pools"].empty() ? j["pools"][0].value("warm", 0) : -1;
  };
  for (int i = 0; i < 1200 && warmCount() < 2; ++i)
    std::this_thread::sleep_for(100ms);
  ASSERT_EQ(warmCount(), 2) << cli({"pool", "status", "--json"}).out << serverLog();
  {
    std::ofstream readme(project_ / "README");
    readme << "on the cluster";
  }
  ASSERT_EQ(chown((project_ / "README").c_str(), 1000, 1000), 0);
  auto r = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                projectId_, "--env", "AGENT_TOKEN=k8s-t0ken", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err << serverLog();
  auto made = json::parse(r.out, nullptr, false);
  const std::string id = made.value("id", "");
  EXPECT_TRUE(made.value("fromPool", false)) << r.out;
  EXPECT_EQ(made.value("provider", ""), "kubernetes");
  EXPECT_EQ(cli({"exec", id, "--", "cat", "/workspace/README"}).out, "on the cluster");
  EXPECT_EQ(cli({"exec", id, "--", "printenv", "AGENT_TOKEN"}).out, "k8s-t0ken\n");
  ASSERT_EQ(cli({"exec", id, "--", "sh", "-c", "echo back > /workspace/from-warm-pod"}).exitCode,
            0);
  struct stat st {};
  ASSERT_EQ(::stat((project_ / "from-warm-pod").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  // Its pod is labelled allocated and this project's now.
  auto pod = api_->get(k8s::resourcePath("v1", "pods", "agentpane-sandboxes") + "/agentpane-" + id);
  ASSERT_TRUE(pod.ok()) << pod.error().describe();
  EXPECT_EQ((*pod)["metadata"]["labels"].value("agentpane.io/warm-pool-state", ""), "allocated");
  EXPECT_EQ((*pod)["metadata"]["labels"].value("agentpane.io/project-id", ""), projectId_);
  for (int i = 0; i < 1200 && warmCount() < 2; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(warmCount(), 2);

  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_EQ(cli({"pool", "prewarm", "0"}).exitCode, 0);
  EXPECT_EQ(warmCount(), 0);
  EXPECT_TRUE(fs::exists(project_ / "from-warm-pod"));
  // No pod of this server is left (warm ones carry no project label: by instance).
  k8s::ListOptions lo;
  lo.labelSelector =
      "agentpane.io/warm-pool=true,agentpane.io/instance=" + instanceIdForHome(home_);
  auto left = api_->list(k8s::resourcePath("v1", "pods", "agentpane-sandboxes"), lo);
  ASSERT_TRUE(left.ok());
  for (int i = 0; i < 300 && !(*left)["items"].empty(); ++i) {  // pods end with a grace period
    std::this_thread::sleep_for(100ms);
    left = api_->list(k8s::resourcePath("v1", "pods", "agentpane-sandboxes"), lo);
    ASSERT_TRUE(left.ok());
  }
  EXPECT_TRUE((*left)["items"].empty()) << left->dump();
}

// `sandbox migrate`: Docker to Kubernetes and back, for the same project; the new sandbox
// runs with the project's files and the tmux sessions by name, the old one is gone.
TEST_F(K8sE2E, MigrateMovesASandboxBetweenProvidersAndBack) {
  auto made = cli({"sandbox", "create", "--provider", "docker", "--project-path", project_.string(),
                   "--project-id", projectId_, "--json"});
  ASSERT_EQ(made.exitCode, 0) << made.err << serverLog();
  const std::string onDocker = json::parse(made.out).value("id", "");
  ASSERT_EQ(
      cli({"exec", onDocker, "--", "sh", "-c", "echo kept > /workspace/migrated.txt"}).exitCode, 0);
  ASSERT_EQ(cli({"tmux", "new", onDocker, "dev"}).exitCode, 0);

  auto moved = cli({"sandbox", "migrate", onDocker, "--to", "kubernetes", "--json"});
  ASSERT_EQ(moved.exitCode, 0) << moved.err << serverLog();
  json k = json::parse(moved.out);
  const std::string onK8s = k.value("id", "");
  EXPECT_NE(onK8s, onDocker);
  EXPECT_EQ(k.value("provider", ""), "kubernetes") << k.dump();
  EXPECT_EQ(k.value("migratedFrom", ""), onDocker);
  EXPECT_FALSE(k.contains("warnings")) << k.dump();
  EXPECT_EQ(clusterObjects().count("pod/agentpane-" + onK8s), 1u);
  auto gone = cli({"sandbox", "get", onDocker});
  EXPECT_NE(gone.err.find("SANDBOX_NOT_FOUND"), std::string::npos) << gone.err;
  EXPECT_EQ(cli({"exec", onK8s, "--", "cat", "/workspace/migrated.txt"}).out, "kept\n");
  auto sessions = cli({"tmux", "ls", onK8s, "--json"});
  EXPECT_NE(sessions.out.find("\"dev\""), std::string::npos) << sessions.out << sessions.err;

  // The phases of the new create are shown, as a create shows them.
  auto back = cli({"sandbox", "migrate", onK8s, "--to", "docker"});
  ASSERT_EQ(back.exitCode, 0) << back.err << serverLog();
  EXPECT_NE(back.err.find("migrating"), std::string::npos) << back.err;
  EXPECT_NE(back.err.find("removing"), std::string::npos) << back.err;
  std::string onDockerAgain = back.out.substr(0, back.out.find('\n'));
  json list = listSandboxes();
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0].value("id", ""), onDockerAgain);
  EXPECT_EQ(list[0].value("provider", ""), "docker");
  EXPECT_EQ(clusterObjects().count("pod/agentpane-" + onK8s), 0u);
  EXPECT_EQ(cli({"exec", onDockerAgain, "--", "cat", "/workspace/migrated.txt"}).out, "kept\n");

  auto same = cli({"sandbox", "migrate", onDockerAgain, "--to", "docker"});
  EXPECT_NE(same.exitCode, 0);
  EXPECT_NE(same.err.find("VALIDATION_ERROR"), std::string::npos) << same.err;
  EXPECT_EQ(cli({"sandbox", "rm", onDockerAgain}).exitCode, 0);
}

// A profile that names a cluster (its own kubeconfig and context) sends its sandboxes there,
// on a provider instance of their own that a server restart makes again.
TEST_F(K8sE2E, AProfileSendsItsSandboxesToTheClusterItNames) {
  // The ServiceAccount's kubeconfig with a second context: the profile's "cluster".
  YAML::Node kc = YAML::LoadFile(kubeconfig_);
  YAML::Node team = YAML::Clone(kc["contexts"][0]);
  team["name"] = "team";
  kc["contexts"].push_back(team);
  const fs::path kcPath = root_ / "team.kubeconfig";
  std::ofstream(kcPath) << YAML::Dump(kc);
  auto made = cli({"profile", "create", "team", "--provider", "kubernetes", "--set",
                   "kubeConfigPath=" + kcPath.string(), "--set", "kubeContext=team", "--set",
                   "enableK8s=true", "--set", "allowFallback=false"});
  ASSERT_EQ(made.exitCode, 0) << made.err;

  auto created = cli({"sandbox", "create", "--profile", "team", "--project-path", project_.string(),
                      "--project-id", projectId_, "--json"});
  ASSERT_EQ(created.exitCode, 0) << created.err << serverLog();
  json s = json::parse(created.out);
  const std::string id = s.value("id", "");
  const std::string instance = s.value("providerInstance", "");
  EXPECT_EQ(s.value("provider", ""), "kubernetes");
  EXPECT_EQ(instance.rfind("kubernetes-", 0), 0u) << s.dump();
  EXPECT_EQ(clusterObjects().count("pod/agentpane-" + id), 1u);
  EXPECT_EQ(cli({"exec", id, "--", "echo", "on the team cluster"}).out, "on the team cluster\n");

  // Restarted, the server makes the instance again: the sandbox is running and usable, not
  // "gone" and not reaped as an orphan.
  server_.reset();
  startServer();
  auto got = cli({"sandbox", "get", id, "--json"});
  ASSERT_EQ(got.exitCode, 0) << got.err;
  json again = json::parse(got.out);
  EXPECT_EQ(again.value("status", ""), "running") << again.dump();
  EXPECT_EQ(again.value("providerInstance", ""), instance);
  auto e = cli({"exec", id, "--", "echo", "still there"});
  EXPECT_EQ(e.out, "still there\n") << e.err << serverLog();
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_EQ(clusterObjects().count("pod/agentpane-" + id), 0u);

  // A context the kubeconfig does not have is a clear error naming the profile.
  ASSERT_EQ(cli({"profile", "set", "team", "--set", "kubeContext=nowhere"}).exitCode, 0);
  auto bad = cli({"sandbox", "create", "--profile", "team", "--project-path", project_.string(),
                  "--project-id", projectId_});
  EXPECT_NE(bad.exitCode, 0);
  EXPECT_NE(bad.err.find("K8S_CONTEXT_NOT_FOUND"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("profile 'team'"), std::string::npos) << bad.err;
}

TEST_F(K8sE2E, KillDashNineDuringCreateLeaksNothing) {
  auto pending = std::async(std::launch::async, [&] {
    return cli({"sandbox", "create", "--provider", "kubernetes", "--project-path",
                project_.string(), "--project-id", projectId_});
  });
  // Kill the server the moment the cluster has the sandbox's first object.
  bool made = false;
  for (int i = 0; i < 1000 && !made; ++i) {
    made = !clusterObjects().empty();
    if (!made) std::this_thread::sleep_for(10ms);
  }
  server_->signal(SIGKILL);
  auto r = pending.get();
  // The window is between the first object and the end of the create: a create that failed
  // before making anything does not test what this test is about.
  ASSERT_TRUE(made) << "no object appeared; the create said: " << r.err << serverLog();
  EXPECT_NE(r.exitCode, 0) << "create finished before the kill; the test did not hit its window";

  startServer();
  // Reconcile settles every row against the cluster: no row stays "creating", and every
  // labelled pod is a live row.
  std::string last;
  const bool consistent = rowsSettleOnBackend([&] { return listSandboxes(); },
                                              [&] {
                                                std::set<std::string> pods;
                                                for (const auto& o : clusterObjects())
                                                  if (o.rfind("pod/agentpane-", 0) == 0)
                                                    pods.insert(o.substr(14));
                                                return pods;
                                              },
                                              600, last);
  EXPECT_TRUE(consistent) << last << serverLog();
  for (const auto& s : listSandboxes())
    cli({"sandbox", "rm", s.value("id", "")});
  // Claims and volumes of removed rows go too.
  for (int i = 0; i < 300 && !clusterObjects().empty(); ++i)
    std::this_thread::sleep_for(100ms);
}

TEST_F(K8sE2E, UnreachableClusterFallsBackToDockerAndSaysSo) {
  // The same credentials, at a port where nothing listens.
  std::ifstream in(kubeconfig_);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto at = text.find("server: https://127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << text;
  auto eol = text.find('\n', at);
  text.replace(at, eol - at, "server: https://127.0.0.1:1");
  const fs::path dead = root_ / "unreachable.kubeconfig";
  std::ofstream(dead) << text;
  server_.reset();
  startServer({{"K8S_KUBECONFIG", dead.string()}});

  auto r = cli({"sandbox", "create", "--provider", "kubernetes", "--project-path",
                project_.string(), "--project-id", projectId_, "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err << serverLog();
  auto j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j.value("provider", ""), "docker");
  EXPECT_NE(j.value("fallbackReason", "").find("unreachable"), std::string::npos) << j.dump();
  EXPECT_EQ(cli({"sandbox", "rm", j.value("id", "")}).exitCode, 0);
}

}  // namespace
}  // namespace agentpane::testing
