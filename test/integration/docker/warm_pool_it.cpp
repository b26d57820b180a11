// The Docker provider's warm pool on the real engine (docker_warm.cpp): a warm sandbox has an
// empty /workspace and the warm labels; a claim binds the project live into the running
// sandbox (both ways), refuses a project of another owner without changing anything, wins
// once against concurrent claims; remove releases the slot and leaves the project; with the
// egress firewall the claim's allowlist is enforced when claimWarm returns.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "docker/docker_provider.hpp"

namespace agentpane::docker {
namespace {

namespace fs = std::filesystem;

std::string rnd() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

std::string readLine(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

class DockerWarmPoolIt : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the warm pool mounts on the host: root (CI runs as root)";
    run_ = "warm" + rnd();
    std::string tmpl = (fs::temp_directory_path() / "ap-warm-it-XXXXXX").string();
    base_ = ::mkdtemp(tmpl.data());
    slots_ = std::make_shared<WorkspaceSlots>(base_ / "slots");
    provider_ = makeProvider(slots_);
    ASSERT_NE(provider_, nullptr);
    auto v = provider_->client().version();
    ASSERT_TRUE(v.ok()) << "no Docker engine (run scripts/start-docker.sh): "
                        << v.error().describe();
    project_ = makeProject("project", 1000, 1000);
  }
  void TearDown() override {
    if (provider_) {
      auto left = provider_->list(ListFilter{});
      if (left.ok()) {
        for (const auto& s : *left)
          EXPECT_TRUE(provider_->remove(sandboxRef(s)).ok());
      }
    }
    if (slots_) {
      EXPECT_TRUE(slots_->sweep({}).ok());
      const std::string root = slots_->root().string();
      while (::umount2(root.c_str(), MNT_DETACH) == 0) {
      }
    }
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }

  // What a restarted server makes: a fresh provider, and fresh slots on the same root.
  std::unique_ptr<DockerProvider> makeProvider(std::shared_ptr<WorkspaceSlots> slots) {
    DockerProviderOptions o;
    o.scopeLabels = {{"agentpane.io/test-run", run_}};
    o.stopTimeoutSeconds = 1;
    o.egressFirewall = GetParam();
    o.warmSlots = std::move(slots);
    auto p = DockerProvider::create(o);
    return p.ok() ? std::move(p.value()) : nullptr;
  }

  std::string makeProject(const std::string& name, uid_t uid, gid_t gid) {
    const fs::path dir = base_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "hello.txt") << "from the host";
    EXPECT_EQ(::chown((dir / "hello.txt").c_str(), uid, gid), 0);
    EXPECT_EQ(::chmod(dir.c_str(), 0755), 0);
    EXPECT_EQ(::chown(dir.c_str(), uid, gid), 0);
    return dir.string();
  }

  SandboxRef createWarm(const std::string& suffix) {
    SandboxSpec s;
    s.id = run_ + "-" + suffix;
    s.memoryMb = 256;
    s.cpu = 1;
    s.warmUid = 1000;
    s.warmGid = 1000;
    auto made = provider_->createWarm(s, CreateControl{});
    EXPECT_TRUE(made.ok()) << made.error().describe();
    if (!made.ok()) return {};
    EXPECT_EQ(made->labels[labels::kWarmPool], "true");
    EXPECT_EQ(made->labels[labels::kWarmPoolState], "warm");
    EXPECT_EQ(made->labels["agentpane.io/uid-gid"], "1000:1000");
    EXPECT_EQ(made->state, SandboxState::Running);
    return sandboxRef(*made);
  }

  ExecResult run(const SandboxRef& ref, std::vector<std::string> argv) {
    ExecRequest req;
    req.argv = std::move(argv);
    auto r = provider_->exec(ref, req);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? r.value() : ExecResult{};
  }

  WarmClaim claimOf(const std::string& path) {
    WarmClaim c;
    c.projectId = "proj-" + run_;
    c.agentId = "agent-it";
    c.projectPath = path;
    return c;
  }

  std::string run_;
  fs::path base_;
  std::string project_;
  std::shared_ptr<WorkspaceSlots> slots_;
  std::unique_ptr<DockerProvider> provider_;
};

TEST_P(DockerWarmPoolIt, AWarmSandboxHasAnEmptyWorkspaceAndNoEgress) {
  ASSERT_TRUE(provider_->warmSupported().ok());
  auto ref = createWarm("a");
  ASSERT_FALSE(ref.sandboxId.empty());
  auto ls = run(ref, {"ls", "-A", "/workspace"});
  EXPECT_EQ(ls.exitCode, 0);
  EXPECT_EQ(ls.stdoutData, "");
  EXPECT_EQ(run(ref, {"id", "-u"}).stdoutData, "1000\n");
  EXPECT_TRUE(fs::is_directory(slots_->pathOf(ref.sandboxId)));
  EXPECT_FALSE(slots_->isBound(ref.sandboxId));
  auto raw = provider_->client().call("GET", "/containers/" + ref.uid + "/json");
  ASSERT_TRUE(raw.ok());
  const auto mode = (*raw)["HostConfig"].value("NetworkMode", "");
  if (GetParam()) {
    EXPECT_EQ(mode, "agentpane-" + ref.sandboxId);  // filtered, empty allowlist: DNS only
  } else {
    EXPECT_EQ(mode, "none");
  }
  auto got = provider_->get(ref);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels[labels::kWarmPoolState], "warm");
}

TEST_P(DockerWarmPoolIt, AClaimBindsTheProjectLiveAndRemoveLeavesIt) {
  auto ref = createWarm("b");
  ASSERT_FALSE(ref.sandboxId.empty());
  auto t0 = std::chrono::steady_clock::now();
  auto claimed = provider_->claimWarm(ref, claimOf(project_));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  std::printf("[ measure  ] claimWarm took %lld ms (firewall %s)\n", static_cast<long long>(ms),
              GetParam() ? "on" : "off");
  EXPECT_EQ(claimed->projectId, "proj-" + run_);
  EXPECT_EQ(claimed->agentId, "agent-it");
  EXPECT_EQ(claimed->projectPath, project_);
  EXPECT_EQ(claimed->labels[labels::kWarmPoolState], "allocated");
  ASSERT_TRUE(claimed->egress.has_value());
  EXPECT_TRUE(claimed->egress->enforced);

  auto cat = run(ref, {"cat", "/workspace/hello.txt"});
  EXPECT_EQ(cat.exitCode, 0);
  EXPECT_EQ(cat.stdoutData, "from the host");
  auto w = run(ref, {"sh", "-c", "echo from the sandbox > /workspace/inside.txt"});
  EXPECT_EQ(w.exitCode, 0) << w.stderrData;
  EXPECT_EQ(readLine(fs::path(project_) / "inside.txt"), "from the sandbox");
  struct stat st {};
  ASSERT_EQ(::stat((fs::path(project_) / "inside.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  // After a restart (a fresh provider), the claim is still seen: the bound slot.
  auto restarted = makeProvider(std::make_shared<WorkspaceSlots>(slots_->root()));
  ASSERT_NE(restarted, nullptr);
  auto got = restarted->get(ref);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels[labels::kWarmPoolState], "allocated");

  ASSERT_TRUE(provider_->remove(ref).ok());
  EXPECT_EQ(provider_->get(ref).error().code, ErrorCode::SandboxNotFound);
  EXPECT_FALSE(fs::exists(slots_->pathOf(ref.sandboxId)));
  EXPECT_EQ(readLine(fs::path(project_) / "hello.txt"), "from the host");
  EXPECT_EQ(readLine(fs::path(project_) / "inside.txt"), "from the sandbox");
  ASSERT_TRUE(provider_->remove(ref).ok());  // idempotent
}

TEST_P(DockerWarmPoolIt, AProjectOfAnotherOwnerIsRefusedAndTheSandboxStaysClaimable) {
  auto ref = createWarm("c");
  ASSERT_FALSE(ref.sandboxId.empty());
  const std::string other = makeProject("other-owner", 1234, 1234);
  auto refused = provider_->claimWarm(ref, claimOf(other));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::SandboxProjectPathInvalid);
  EXPECT_FALSE(slots_->isBound(ref.sandboxId));
  auto missing = provider_->claimWarm(ref, claimOf((base_ / "missing").string()));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::SandboxProjectPathInvalid);
  EXPECT_EQ(run(ref, {"ls", "-A", "/workspace"}).stdoutData, "");

  auto claimed = provider_->claimWarm(ref, claimOf(project_));
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  EXPECT_EQ(run(ref, {"cat", "/workspace/hello.txt"}).stdoutData, "from the host");
}

TEST_P(DockerWarmPoolIt, ConcurrentClaimsExactlyOneWins) {
  auto ref = createWarm("d");
  ASSERT_FALSE(ref.sandboxId.empty());
  const std::string second = makeProject("second", 1000, 1000);
  constexpr int kClaims = 6;
  std::vector<std::optional<Result<SandboxInfo>>> results(kClaims);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClaims; ++i) {
    threads.emplace_back([&, i] {
      // Even the same project twice: one claim only.
      results[i].emplace(provider_->claimWarm(ref, claimOf(i % 2 ? project_ : second)));
    });
  }
  for (auto& t : threads)
    t.join();
  int won = 0, conflict = 0;
  std::string winner;
  for (auto& r : results) {
    if (r->ok()) {
      ++won;
      winner = (*r)->projectPath;
    } else if (r->error().code == ErrorCode::Conflict) {
      ++conflict;
    } else {
      ADD_FAILURE() << r->error().describe();
    }
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(conflict, kClaims - 1);
  auto ls = run(ref, {"ls", "/workspace"});
  EXPECT_EQ(ls.stdoutData, "hello.txt\n");
  // A later claim after a restart: still Conflict.
  auto restarted = makeProvider(std::make_shared<WorkspaceSlots>(slots_->root()));
  ASSERT_NE(restarted, nullptr);
  auto late = restarted->claimWarm(ref, claimOf(winner));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::Conflict);
}

TEST_P(DockerWarmPoolIt, CleanupReleasesTheSlotOfAContainerGoneBehindOurBack) {
  auto ref = createWarm("e");
  ASSERT_FALSE(ref.sandboxId.empty());
  ASSERT_TRUE(provider_->claimWarm(ref, claimOf(project_)).ok());
  auto kept = createWarm("f");
  ASSERT_FALSE(kept.sandboxId.empty());
  ASSERT_TRUE(provider_->client().call("DELETE", "/containers/" + ref.uid + "?force=1").ok());
  ASSERT_TRUE(slots_->isBound(ref.sandboxId));
  auto report = provider_->cleanup(CleanupFilter{});
  ASSERT_TRUE(report.ok()) << report.error().describe();
  EXPECT_FALSE(fs::exists(slots_->pathOf(ref.sandboxId)));
  EXPECT_TRUE(fs::exists(slots_->pathOf(kept.sandboxId)));
  EXPECT_EQ(readLine(fs::path(project_) / "hello.txt"), "from the host");
}

TEST_P(DockerWarmPoolIt, TheClaimsAllowlistIsEnforcedWhenItReturns) {
  auto ref = createWarm("g");
  ASSERT_FALSE(ref.sandboxId.empty());
  WarmClaim c = claimOf(project_);
  c.allowedEgressHosts = {"1.1.1.1:443"};
  auto t0 = std::chrono::steady_clock::now();
  auto claimed = provider_->claimWarm(ref, c);
  std::printf("[ measure  ] claimWarm with an allowlist took %lld ms (firewall %s)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - t0)
                                         .count()),
              GetParam() ? "on" : "off");
  if (!GetParam()) {
    // No firewall: refused before anything changes.
    ASSERT_FALSE(claimed.ok());
    EXPECT_EQ(claimed.error().code, ErrorCode::ValidationError);
    EXPECT_EQ(claimed.error().details.at("reason"), "EGRESS_ENFORCEMENT_UNAVAILABLE");
    EXPECT_FALSE(slots_->isBound(ref.sandboxId));
    return;
  }
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  ASSERT_TRUE(claimed->egress.has_value());
  EXPECT_TRUE(claimed->egress->enforced);
  EXPECT_EQ(claimed->egress->allowlist, c.allowedEgressHosts);
  bool listed = false;
  for (const auto& r : claimed->egress->rules)
    listed = listed || r.find("1.1.1.1") != std::string::npos;
  EXPECT_TRUE(listed) << "the claim's allowlist is not among the enforced rules";
}

TEST_P(DockerWarmPoolIt, AFailedCreateWarmLeavesNoSlot) {
  SandboxSpec s;
  s.id = run_ + "-h";
  s.image = "agentpane/no-such-image-" + run_ + ":latest";
  s.memoryMb = 256;
  s.cpu = 1;
  auto made = provider_->createWarm(s, CreateControl{});
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::SandboxImageNotFound);
  EXPECT_FALSE(fs::exists(slots_->pathOf(s.id)));
}

INSTANTIATE_TEST_SUITE_P(Firewall, DockerWarmPoolIt, ::testing::Bool(), [](const auto& info) {
  return info.param ? "FirewallOn" : "FirewallOff";
});

TEST(DockerWarmPoolDisabled, NoSlotsMeansWarmPoolDisabled) {
  auto p = DockerProvider::create(DockerProviderOptions{});
  ASSERT_TRUE(p.ok());
  auto s = (*p)->warmSupported();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::WarmPoolDisabled);
  SandboxSpec spec;
  spec.id = "warm-disabled-" + rnd();
  auto made = (*p)->createWarm(spec, CreateControl{});
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::WarmPoolDisabled);
}

}  // namespace
}  // namespace agentpane::docker
