// The Kubernetes provider's own promises beyond the shared contract, on the real test cluster
// as the least-privilege ServiceAccount: failures are classified and leave nothing behind,
// pods are restricted as admitted, a root-owned project is refused, an apiserver outage during
// a create gives a coded error in bounded time and nothing leaks once it is back.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "cluster/cluster_script.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string shortRandom() {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  return s;
}

class K8sProviderCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(path != nullptr && *path != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster env)\"";
    LoadingRules rules;
    rules.explicitPath = path;
    DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
    runId_ = "kp" + shortRandom();
    K8sProviderOptions o;
    o.rest = std::move(cfg).value();
    o.scopeLabels = {{"agentpane.io/test-run", runId_}};
    o.imagePullPolicy = "Never";
    o.startupTimeout = 60s;
    o.createNamespace = false;
    auto p = K8sProvider::create(std::move(o));
    ASSERT_TRUE(p.ok()) << p.error().describe();
    provider_ = std::move(p).value();
    dir_ = fs::temp_directory_path() / ("agentpane-kp-" + shortRandom());
    fs::create_directories(dir_);
    ASSERT_EQ(::chown(dir_.c_str(), 1000, 1000), 0);
  }

  void TearDown() override {
    if (provider_) {
      // Whatever a test made must be gone: pods, claims and volumes of this run.
      CleanupFilter all;
      all.knownIds = std::vector<std::string>{};
      auto r = provider_->cleanup(all);
      EXPECT_TRUE(r.ok()) << r.error().describe();
      if (r.ok()) {
        EXPECT_TRUE(r->removedIds.empty()) << "left behind: " << r->removedIds.front();
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  SandboxSpec spec(const std::string& what) const {
    SandboxSpec s;
    s.id = "kp-" + runId_ + "-" + what + "-" + shortRandom();
    s.projectId = runId_;
    s.agentId = "test";
    s.projectPath = dir_.string();
    s.image = "agentpane/sandbox:latest";
    s.memoryMb = 256;
    s.cpu = 0.5;
    return s;
  }

  // Objects of this run left in the cluster (pods, claims, volumes).
  int leftovers() {
    ListOptions lo;
    lo.labelSelector = "agentpane.io/test-run=" + runId_;
    int n = 0;
    for (const auto& path :
         {resourcePath("v1", "pods", provider_->namespaceName()),
          resourcePath("v1", "persistentvolumeclaims", provider_->namespaceName()),
          resourcePath("v1", "persistentvolumes")}) {
      auto l = provider_->client().list(path, lo);
      if (!l.ok()) return -1;
      n += static_cast<int>(l->value("items", json::array()).size());
    }
    return n;
  }

  std::string runId_;
  std::unique_ptr<K8sProvider> provider_;
  fs::path dir_;
};

TEST_F(K8sProviderCluster, PodIsRestrictedAndRunsAsTheProjectOwner) {
  ASSERT_EQ(::chown(dir_.c_str(), 1234, 1235), 0);
  auto made = provider_->create(spec("owner"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  auto pod = provider_->client().get(resourcePath("v1", "pods", made->podNamespace, made->podName));
  ASSERT_TRUE(pod.ok()) << pod.error().describe();
  const json& ps = (*pod)["spec"];
  EXPECT_EQ(ps["securityContext"]["runAsUser"], 1234);
  EXPECT_EQ(ps["securityContext"]["runAsGroup"], 1235);
  EXPECT_EQ(ps["automountServiceAccountToken"], false);
  EXPECT_EQ(ps["containers"][0]["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));

  ExecRequest req;
  req.argv = {"sh", "-c", "id -u; id -g; echo from-pod > /workspace/owned.txt; cd && pwd"};
  auto r = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0) << r->stderrData;
  EXPECT_EQ(r->stdoutData, "1234\n1235\n/tmp\n");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "owned.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 1235u);
  EXPECT_TRUE(provider_->remove(sandboxRef(*made)).ok());
  EXPECT_EQ(leftovers(), 0);
}

TEST_F(K8sProviderCluster, RootOwnedProjectIsRefusedWithAReason) {
  ASSERT_EQ(::chown(dir_.c_str(), 0, 0), 0);
  auto made = provider_->create(spec("root"));
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::SandboxProjectPathInvalid);
  EXPECT_NE(made.error().message.find("owned by root"), std::string::npos) << made.error().message;
  EXPECT_NE(made.error().message.find("chown"), std::string::npos);
  EXPECT_EQ(leftovers(), 0);
}

// The namespace enforces restricted: a hostPath workspace is refused by the provider's own
// Pod Security check, by field, before anything is made (no volume, claim or pod).
TEST_F(K8sProviderCluster, HostPathWorkspaceIsRefusedByFieldBeforeAnythingIsMade) {
  SandboxSpec s = spec("hostpath");
  s.kubernetes.workspaceVolume = "hostPath";
  auto made = provider_->create(s);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::K8sPodSecurityViolation) << made.error().describe();
  EXPECT_NE(made.error().message.find("spec.volumes[0].hostPath"), std::string::npos)
      << made.error().message;
  EXPECT_EQ(made.error().details.at("level"), "restricted");
  // Our verdict, not the apiserver's: its refusal would carry the apiserver's wording.
  EXPECT_EQ(made.error().message.find("violates PodSecurity"), std::string::npos);
  EXPECT_EQ(leftovers(), 0);
}

TEST_F(K8sProviderCluster, ImpossibleMemoryIsInsufficientResourcesAndLeavesNothing) {
  SandboxSpec s = spec("huge");
  s.memoryMb = 64 * 1024 * 1024;  // 64 TiB: no node has it
  auto made = provider_->create(s);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::K8sInsufficientResources) << made.error().describe();
  EXPECT_EQ(leftovers(), 0);
}

TEST_F(K8sProviderCluster, MissingImageIsImagePullBackoffAndLeavesNothing) {
  SandboxSpec s = spec("img");
  s.image = "agentpane/no-such-image:" + shortRandom();
  auto made = provider_->create(s);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::K8sImagePullBackoff) << made.error().describe();
  EXPECT_NE(made.error().message.find("no-such-image"), std::string::npos);
  EXPECT_EQ(leftovers(), 0);
}

// A create reports its phases in order, from the workspace to the ready pod; the pod's own
// events (scheduled, pulled: the image is already on the node) come through the
// least-privilege credentials.
TEST_F(K8sProviderCluster, CreateReportsItsPhasesInOrder) {
  std::mutex mu;
  std::vector<std::string> phases;
  CreateControl control;
  control.onProgress = [&](const CreateProgress& p) {
    std::lock_guard lk(mu);
    phases.push_back(p.phase);
  };
  SandboxSpec s = spec("phases");
  auto made = provider_->create(s, control);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  std::lock_guard lk(mu);
  std::string all;
  for (const auto& p : phases)
    all += p + " ";
  auto at = [&](const std::string& p) {
    auto it = std::find(phases.begin(), phases.end(), p);
    return it == phases.end() ? -1 : static_cast<int>(it - phases.begin());
  };
  for (const char* p : {"volume", "claim", "bound", "pod", "scheduled", "pulled", "ready"})
    EXPECT_GE(at(p), 0) << p << " missing from: " << all;
  EXPECT_LT(at("volume"), at("claim")) << all;
  EXPECT_LT(at("claim"), at("bound")) << all;
  EXPECT_LT(at("bound"), at("pod")) << all;
  EXPECT_LT(at("pod"), at("scheduled")) << all;
  EXPECT_EQ(phases.back(), "ready") << all;
  EXPECT_EQ(std::count(phases.begin(), phases.end(), "scheduled"), 1) << all;
  EXPECT_TRUE(provider_->remove(SandboxRef{provider_->instance(), "", "", "", s.id}).ok());
  EXPECT_EQ(leftovers(), 0);
}

// Cancelled at each wait of a create (the volume, the claim, the pod), the create ends
// promptly with SandboxCreateCancelled and leaves nothing in the cluster.
TEST_F(K8sProviderCluster, ACancelledCreateEndsAndLeavesNothing) {
  for (const std::string at : {"volume", "claim", "pod"}) {
    SCOPED_TRACE("cancelled at " + at);
    std::stop_source stop;
    CreateControl control;
    control.stop = stop.get_token();
    control.onProgress = [&](const CreateProgress& p) {
      if (p.phase == at) stop.request_stop();
    };
    auto t0 = std::chrono::steady_clock::now();
    auto made = provider_->create(spec("cancel-" + at), control);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().code, ErrorCode::SandboxCreateCancelled) << made.error().describe();
    // Bounded by the removal (a pod's grace), far below the 60 s startup budget.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 40s);
    EXPECT_EQ(leftovers(), 0);
  }
}

TEST_F(K8sProviderCluster, RootExecIsRefused) {
  auto made = provider_->create(spec("root-exec"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ExecRequest req;
  req.argv = {"id", "-u"};
  req.options.root = true;
  auto r = provider_->exec(sandboxRef(*made), req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
  EXPECT_NE(r.error().message.find("restricted"), std::string::npos);
  EXPECT_TRUE(provider_->remove(sandboxRef(*made)).ok());
}

TEST_F(K8sProviderCluster, ADroppedSessionLeavesNoProcess) {
  auto made = provider_->create(spec("drop"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  const SandboxRef ref = sandboxRef(*made);
  {
    // A child in the background: what the runtime does to the exec's own process when its
    // stream goes does not reach it.
    auto session = provider_->openExec(ref, {"sh", "-c", "sleep 3134 & wait"}, {});
    ASSERT_TRUE(session.ok()) << session.error().describe();
  }  // dropped unread, as by a client that went away: the kill runs in the background
  std::string ps;
  for (int i = 0; i < 100; ++i) {
    ExecRequest req;
    req.argv = {"ps", "-eo", "args"};
    auto r = provider_->exec(ref, req);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    ps = r->stdoutData;
    if (ps.find("sleep 3134") == std::string::npos) break;
    std::this_thread::sleep_for(100ms);  // the background kill is an exec of its own
  }
  EXPECT_EQ(ps.find("sleep 3134"), std::string::npos) << ps;
  EXPECT_TRUE(provider_->remove(ref).ok());
}

TEST_F(K8sProviderCluster, ApiserverDownDuringCreateIsACodedErrorAndNothingLeaksAfter) {
  const std::string script = testing::testClusterScript();
  ASSERT_FALSE(script.empty()) << "scripts/test-cluster not found above the test binary";
  // The apiserver goes away for a while shortly after the create has begun.
  int restartStatus = -1;
  std::thread outage([&] {
    std::this_thread::sleep_for(300ms);
    restartStatus = testing::runScript({script, "restart", "kube-apiserver", "--down", "20"});
  });
  SandboxSpec s = spec("outage");
  const auto t0 = std::chrono::steady_clock::now();
  auto made = provider_->create(s);
  const auto took = std::chrono::steady_clock::now() - t0;
  outage.join();
  ASSERT_EQ(restartStatus, 0) << "scripts/test-cluster restart failed";
  if (made.ok()) {
    // The pod was ready before the apiserver left: a valid outcome; it must still go.
    EXPECT_TRUE(provider_->remove(sandboxRef(*made)).ok());
  } else {
    const ErrorCode c = made.error().code;
    EXPECT_TRUE(c == ErrorCode::K8sUnreachable || c == ErrorCode::K8sPodStartupTimeout ||
                c == ErrorCode::Timeout)
        << made.error().describe();
    EXPECT_LT(took, 120s);
  }
  // Once the apiserver is back, cleanup (what a server's reaper runs) leaves nothing.
  CleanupFilter f;
  f.knownIds = std::vector<std::string>{};
  auto r = provider_->cleanup(f);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(leftovers(), 0);
}

}  // namespace
}  // namespace agentpane::k8s
