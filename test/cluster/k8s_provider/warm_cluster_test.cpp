// The Kubernetes provider's warm pool on the real test cluster, as the least-privilege
// ServiceAccount (k8s_provider_warm.cpp): a warm pod is admitted under PodSecurity
// "restricted" with its empty slot at /workspace; a claim makes the project live there (both
// ways), enforces its NetworkPolicy before it returns, is refused for a project of another
// owner, and is atomic between concurrent claims; remove leaves nothing (the project is
// untouched); cleanup sweeps slots whose sandbox is gone. The slots are bind mounts on this
// host, the cluster's node: the test runs as root, as CI does.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"
#include "k8s/network_policy.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string shortRandom() {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  return s;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class WarmCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0) << "workspace slots are bind mounts on the node: run as root";
    const char* path = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(path != nullptr && *path != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster env)\"";
    LoadingRules rules;
    rules.explicitPath = path;
    DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
    runId_ = "wm" + shortRandom();
    dir_ = fs::temp_directory_path() / ("agentpane-wm-" + runId_);
    fs::create_directories(dir_);
    slots_ = std::make_shared<WorkspaceSlots>(dir_ / "slots");
    K8sProviderOptions o;
    o.rest = std::move(cfg).value();
    o.scopeLabels = {{"agentpane.io/test-run", runId_}};
    o.imagePullPolicy = "Never";
    o.startupTimeout = 90s;
    o.createNamespace = false;
    o.warmSlots = slots_;
    auto p = K8sProvider::create(std::move(o));
    ASSERT_TRUE(p.ok()) << p.error().describe();
    provider_ = std::move(p).value();
    ns_ = provider_->namespaceName();
  }

  void TearDown() override {
    if (!provider_) return;
    for (const auto& ref : sandboxes_)
      EXPECT_TRUE(provider_->remove(ref).ok());
    for (const auto& id : slots_->list()) {
      ADD_FAILURE() << "slot " << id << " outlived its sandbox";
      (void)slots_->release(id);
    }
    // The root's own bind mount (WorkspaceSlots::prepare), then the files.
    if (fs::exists(dir_ / "slots") && ::umount2((dir_ / "slots").c_str(), MNT_DETACH) != 0 &&
        errno != EINVAL) {
      ADD_FAILURE() << "umount " << (dir_ / "slots") << ": " << std::strerror(errno);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path project(const std::string& name, uid_t owner) {
    fs::path p = dir_ / name;
    fs::create_directories(p);
    std::ofstream(p / "hello.txt") << "hello from " << name << "\n";
    EXPECT_EQ(::chown(p.c_str(), owner, owner), 0);
    EXPECT_EQ(::chown((p / "hello.txt").c_str(), owner, owner), 0);
    return p;
  }

  SandboxInfo warm(const std::string& what, const std::string& workspace = "pvc") {
    SandboxSpec s;
    s.kubernetes.workspaceVolume = workspace;
    s.id = "wm-" + runId_ + "-" + what;
    s.image = "agentpane/sandbox:latest";
    s.memoryMb = 256;
    s.cpu = 0.5;
    s.warmUid = 1000;
    s.warmGid = 1000;
    auto made = provider_->createWarm(s, CreateControl{});
    EXPECT_TRUE(made.ok()) << made.error().describe();
    if (!made.ok()) return {};
    sandboxes_.push_back(sandboxRef(*made));
    return *made;
  }

  json pod(const std::string& id) {
    auto got = provider_->client().get(resourcePath("v1", "pods", ns_, podName(id)));
    EXPECT_TRUE(got.ok()) << got.error().describe();
    return got.ok() ? *got : json::object();
  }

  std::string label(const json& obj, const char* key) {
    return obj["metadata"]["labels"].value(key, std::string("<none>"));
  }

  ExecResult run(const SandboxRef& ref, std::vector<std::string> argv) {
    ExecRequest req;
    req.argv = std::move(argv);
    auto r = provider_->exec(ref, req);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? *r : ExecResult{};
  }

  bool exists(const std::string& path) {
    auto got = provider_->client().get(path);
    if (got.ok()) return true;
    EXPECT_EQ(got.error().code, ErrorCode::K8sNotFound) << got.error().describe();
    return false;
  }

  std::string runId_, ns_;
  fs::path dir_;
  std::shared_ptr<WorkspaceSlots> slots_;
  std::unique_ptr<K8sProvider> provider_;
  std::vector<SandboxRef> sandboxes_;
};

TEST_F(WarmCluster, ClaimBindsTheProjectLiveWithItsPolicyAndRemoveLeavesNothing) {
  ASSERT_TRUE(provider_->warmSupported().ok()) << provider_->warmSupported().error().describe();
  const SandboxInfo w = warm("a");
  ASSERT_FALSE(w.id.empty());
  EXPECT_EQ(w.state, SandboxState::Running);
  const SandboxRef ref = sandboxRef(w);

  // Warm: admitted under restricted, labelled warm, no project, the slot with propagation.
  json p = pod(w.id);
  EXPECT_EQ(label(p, labels::kWarmPool), "true");
  EXPECT_EQ(label(p, labels::kWarmPoolState), "warm");
  EXPECT_EQ(label(p, labels::kProjectId), "<none>");
  EXPECT_EQ(p["spec"]["securityContext"]["runAsUser"], 1000);
  EXPECT_EQ(p["spec"]["containers"][0]["volumeMounts"][0]["mountPropagation"], "HostToContainer");
  EXPECT_TRUE(fs::is_directory(slots_->pathOf(w.id)));
  EXPECT_EQ(run(ref, {"ls", "-A", "/workspace"}).stdoutData, "");
  EXPECT_EQ(run(ref, {"id", "-u"}).stdoutData, "1000\n");
  const std::string policyPath =
      resourcePath("networking.k8s.io/v1", "networkpolicies", ns_, sandboxPolicyName(w.id));
  auto before = provider_->client().get(policyPath);
  ASSERT_TRUE(before.ok()) << "a warm sandbox has its own (empty) policy";
  EXPECT_EQ(before->dump().find("203.0.113.7"), std::string::npos);

  // The claim.
  const fs::path proj = project("proj-a", 1000);
  WarmClaim c;
  c.projectId = "proj-" + runId_;
  c.agentId = "agent-a";
  c.projectPath = proj.string();
  c.allowedEgressHosts = {"203.0.113.7:443"};
  spdlog::set_level(spdlog::level::debug);  // the claim's breakdown (patch, bind, policy)
  const auto t0 = Clock::now();
  auto claimed = provider_->claimWarm(ref, c);
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
  spdlog::set_level(spdlog::level::info);
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  std::printf("claimWarm took %lld us\n", static_cast<long long>(took.count()));
  EXPECT_EQ(claimed->projectId, c.projectId);
  EXPECT_EQ(claimed->agentId, c.agentId);
  EXPECT_EQ(claimed->projectPath, c.projectPath);
  ASSERT_TRUE(claimed->egress.has_value());
  // The policy of the claim is what the cluster holds when claimWarm returns.
  auto after = provider_->client().get(policyPath);
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->dump().find("203.0.113.7/32"), std::string::npos) << after->dump();
  // Labelled allocated, with its project; never warm again.
  p = pod(w.id);
  EXPECT_EQ(label(p, labels::kWarmPoolState), "allocated");
  EXPECT_EQ(label(p, labels::kProjectId), c.projectId);
  EXPECT_EQ(label(p, labels::kAgentId), c.agentId);
  auto listed = provider_->get(ref);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->projectPath, c.projectPath);
  EXPECT_EQ(listed->projectId, c.projectId);

  // Live both ways.
  EXPECT_EQ(run(ref, {"cat", "/workspace/hello.txt"}).stdoutData, "hello from proj-a\n");
  EXPECT_EQ(run(ref, {"sh", "-c", "echo written-in-pod > /workspace/out.txt"}).exitCode, 0);
  EXPECT_EQ(slurp(proj / "out.txt"), "written-in-pod\n");
  struct stat st {};
  ASSERT_EQ(::stat((proj / "out.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  std::ofstream(proj / "from-host.txt") << "host\n";
  EXPECT_EQ(run(ref, {"cat", "/workspace/from-host.txt"}).stdoutData, "host\n");

  // A second claim of the same sandbox: Conflict, nothing changed.
  auto again = provider_->claimWarm(ref, c);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::Conflict);

  // Remove: pod, claim, volume, policy and slot gone; the project untouched.
  ASSERT_TRUE(provider_->remove(ref).ok());
  sandboxes_.clear();
  EXPECT_FALSE(exists(resourcePath("v1", "pods", ns_, podName(w.id))));
  EXPECT_FALSE(exists(resourcePath("v1", "persistentvolumeclaims", ns_, claimName(w.id))));
  EXPECT_FALSE(exists(resourcePath("v1", "persistentvolumes", {}, volumeName(ns_, w.id))));
  EXPECT_FALSE(exists(policyPath));
  EXPECT_FALSE(fs::exists(slots_->pathOf(w.id)));
  EXPECT_EQ(slurp(proj / "hello.txt"), "hello from proj-a\n");
  EXPECT_EQ(slurp(proj / "out.txt"), "written-in-pod\n");
  EXPECT_EQ(slurp(proj / "from-host.txt"), "host\n");
  EXPECT_TRUE(provider_->remove(ref).ok()) << "remove is idempotent";
}

TEST_F(WarmCluster, WrongOwnerIsRefusedThenExactlyOneOfTwoConcurrentClaimsWins) {
  const SandboxInfo w = warm("b");
  ASSERT_FALSE(w.id.empty());
  const SandboxRef ref = sandboxRef(w);

  // A project of another owner: refused before anything changes.
  const fs::path other = project("proj-other", 1001);
  WarmClaim bad;
  bad.projectId = "other";
  bad.agentId = "agent";
  bad.projectPath = other.string();
  auto refused = provider_->claimWarm(ref, bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::SandboxProjectPathInvalid)
      << refused.error().describe();
  json p = pod(w.id);
  EXPECT_EQ(label(p, labels::kWarmPoolState), "warm");
  EXPECT_EQ(label(p, labels::kProjectId), "<none>");
  EXPECT_FALSE(slots_->isBound(w.id));

  // Two claims at once: one wins, the other is Conflict and binds nothing.
  const fs::path p1 = project("proj-1", 1000);
  const fs::path p2 = project("proj-2", 1000);
  std::barrier start(2);
  std::optional<Result<SandboxInfo>> r1, r2;
  auto claimer = [&](const fs::path& proj, std::optional<Result<SandboxInfo>>& out) {
    WarmClaim c;
    c.projectId = proj.filename().string();
    c.agentId = "agent";
    c.projectPath = proj.string();
    start.arrive_and_wait();
    out.emplace(provider_->claimWarm(ref, c));
  };
  std::thread t1(claimer, std::cref(p1), std::ref(r1));
  std::thread t2(claimer, std::cref(p2), std::ref(r2));
  t1.join();
  t2.join();
  ASSERT_TRUE(r1 && r2);
  ASSERT_NE(r1->ok(), r2->ok()) << "exactly one claim wins: " << (r1->ok() ? "both" : "neither");
  const Result<SandboxInfo>& winner = r1->ok() ? *r1 : *r2;
  const Result<SandboxInfo>& loser = r1->ok() ? *r2 : *r1;
  EXPECT_EQ(loser.error().code, ErrorCode::Conflict) << loser.error().describe();
  p = pod(w.id);
  EXPECT_EQ(label(p, labels::kWarmPoolState), "allocated");
  EXPECT_EQ(label(p, labels::kProjectId), winner->projectId);
  const std::string wantFile =
      "hello from " + fs::path(winner->projectPath).filename().string() + "\n";
  EXPECT_EQ(run(ref, {"cat", "/workspace/hello.txt"}).stdoutData, wantFile);
}

// A claim in the process that made the sandbox does not read the pod first: it patches with
// the version it saw Ready. A pod changed since (here an annotation) fails that precondition,
// and the claim reads the pod and claims it; one claimed meanwhile by another server is
// Conflict and binds nothing.
TEST_F(WarmCluster, APodChangedSinceItWasSeenReadyIsReadAgainBeforeTheClaim) {
  const SandboxInfo touched = warm("t");
  const SandboxInfo taken = warm("x");
  ASSERT_FALSE(touched.id.empty());
  ASSERT_FALSE(taken.id.empty());
  const std::string before = pod(touched.id)["metadata"].value("resourceVersion", "");
  auto bumped = provider_->client().patch(
      resourcePath("v1", "pods", ns_, podName(touched.id)),
      json{{"metadata", {{"annotations", {{"agentpane.io/test-touch", "1"}}}}}}, PatchType::Merge);
  ASSERT_TRUE(bumped.ok()) << bumped.error().describe();
  ASSERT_NE((*bumped)["metadata"].value("resourceVersion", ""), before);
  auto other = provider_->client().patch(
      resourcePath("v1", "pods", ns_, podName(taken.id)),
      json{{"metadata", {{"labels", {{labels::kWarmPoolState, "allocated"}}}}}}, PatchType::Merge);
  ASSERT_TRUE(other.ok()) << other.error().describe();

  const fs::path proj = project("proj-t", 1000);
  WarmClaim c;
  c.projectId = "proj-t";
  c.agentId = "agent";
  c.projectPath = proj.string();
  auto claimed = provider_->claimWarm(sandboxRef(touched), c);
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  json p = pod(touched.id);
  EXPECT_EQ(label(p, labels::kWarmPoolState), "allocated");
  EXPECT_EQ(label(p, labels::kProjectId), "proj-t");
  EXPECT_EQ(p["metadata"]["annotations"].value("agentpane.io/test-touch", ""), "1");
  EXPECT_EQ(run(sandboxRef(touched), {"cat", "/workspace/hello.txt"}).stdoutData,
            "hello from proj-t\n");

  auto refused = provider_->claimWarm(sandboxRef(taken), c);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::Conflict) << refused.error().describe();
  EXPECT_FALSE(slots_->isBound(taken.id));
  EXPECT_EQ(label(pod(taken.id), labels::kProjectId), "<none>");
}

// emptyDir: no slot; a claim binds nothing (the workspace stays empty, as a cold emptyDir
// sandbox's) but labels the pod and applies its policy.
TEST_F(WarmCluster, EmptyDirWarmPodHasNoSlotAndItsClaimBindsNothing) {
  const SandboxInfo w = warm("e", "emptyDir");
  ASSERT_FALSE(w.id.empty());
  const SandboxRef ref = sandboxRef(w);
  EXPECT_FALSE(fs::exists(slots_->pathOf(w.id)));
  json p = pod(w.id);
  EXPECT_FALSE(p["spec"]["containers"][0]["volumeMounts"][0].contains("mountPropagation"));
  EXPECT_EQ(label(p, labels::kWarmPoolState), "warm");
  const fs::path proj = project("proj-e", 1001);  // not checked: nothing is bound
  WarmClaim c;
  c.projectId = "proj-e";
  c.agentId = "agent";
  c.projectPath = proj.string();
  auto claimed = provider_->claimWarm(ref, c);
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  EXPECT_EQ(label(pod(w.id), labels::kWarmPoolState), "allocated");
  EXPECT_EQ(run(ref, {"ls", "-A", "/workspace"}).stdoutData, "");
}

// Stopped, a claimed sandbox keeps its project (listed with it); started again (even after
// the host lost the slot's bind, as a reboot does), its pod has the project's labels and
// /workspace is the project again; it never goes back to the pool.
TEST_F(WarmCluster, AClaimedSandboxStoppedAndStartedKeepsItsProject) {
  const SandboxInfo w = warm("s");
  ASSERT_FALSE(w.id.empty());
  const SandboxRef ref = sandboxRef(w);
  const fs::path proj = project("proj-s", 1000);
  WarmClaim c;
  c.projectId = "proj-s-" + runId_;
  c.agentId = "agent-s";
  c.projectPath = proj.string();
  auto claimed = provider_->claimWarm(ref, c);
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();

  ASSERT_TRUE(provider_->stop(ref).ok());
  auto stopped = provider_->get(ref);
  ASSERT_TRUE(stopped.ok()) << stopped.error().describe();
  EXPECT_EQ(stopped->state, SandboxState::Stopped);
  EXPECT_EQ(stopped->projectId, c.projectId);
  EXPECT_EQ(stopped->agentId, c.agentId);
  EXPECT_EQ(stopped->projectPath, c.projectPath);
  ListFilter byProject;
  byProject.projectId = c.projectId;
  auto listed = provider_->list(byProject);
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, w.id);

  // What a reboot of the host does to the bind (the slot itself is kept with the claim).
  ASSERT_TRUE(slots_->isBound(w.id));
  ASSERT_EQ(::umount2(slots_->pathOf(w.id).c_str(), MNT_DETACH), 0) << std::strerror(errno);
  ASSERT_FALSE(slots_->isBound(w.id));

  auto started = provider_->start(ref);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  EXPECT_EQ(started->state, SandboxState::Running);
  EXPECT_EQ(started->projectId, c.projectId);
  EXPECT_EQ(started->projectPath, c.projectPath);
  json p = pod(w.id);
  EXPECT_EQ(label(p, labels::kWarmPoolState), "allocated");
  EXPECT_EQ(label(p, labels::kProjectId), c.projectId);
  EXPECT_EQ(label(p, labels::kAgentId), c.agentId);
  const SandboxRef again = sandboxRef(*started);
  EXPECT_EQ(run(again, {"cat", "/workspace/hello.txt"}).stdoutData, "hello from proj-s\n");
  EXPECT_EQ(run(again, {"sh", "-c", "echo after-start > /workspace/after.txt"}).exitCode, 0);
  EXPECT_EQ(slurp(proj / "after.txt"), "after-start\n");
  auto reclaim = provider_->claimWarm(again, c);
  ASSERT_FALSE(reclaim.ok());
  EXPECT_EQ(reclaim.error().code, ErrorCode::Conflict);
}

TEST_F(WarmCluster, CleanupSweepsSlotsWhoseSandboxIsGone) {
  ASSERT_TRUE(slots_->prepare().ok());
  const std::string stray = "wm-" + runId_ + "-stray";
  ASSERT_TRUE(slots_->make(stray, 1000, 1000).ok());
  const fs::path proj = project("proj-stray", 1000);
  ASSERT_TRUE(slots_->bind(stray, proj.string()).ok());
  auto report = provider_->cleanup(CleanupFilter{});
  ASSERT_TRUE(report.ok()) << report.error().describe();
  EXPECT_FALSE(fs::exists(slots_->pathOf(stray)));
  EXPECT_EQ(slurp(proj / "hello.txt"), "hello from proj-stray\n") << "the project is untouched";
}

}  // namespace
}  // namespace agentpane::k8s
