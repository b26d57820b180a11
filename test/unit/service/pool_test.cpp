// The warm pools (service_pool.cpp) over the fake provider: fill, claim, misses and why,
// concurrency, bounds, drains, restarts.
#include <sys/stat.h>

#include <set>
#include <thread>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

namespace st = sandbox_status;

class PoolTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    docker->warmPool = true;
  }

  WarmPoolInfo pool() {
    auto pools = svc->warmPools();
    EXPECT_TRUE(pools.ok());
    for (auto& p : pools.value())  // pools lives on: a named Result
      if (p.configName == "default") return p;
    ADD_FAILURE() << "no pool for the default profile";
    return {};
  }
  std::vector<SandboxRecord> rowsWith(const std::string& status) {
    std::vector<SandboxRecord> out;
    auto rows = store->listSandboxes(false);
    for (auto& r : rows.value())
      if (r.status == status) out.push_back(r);
    return out;
  }
  void prewarm(int n) {
    auto r = svc->prewarm("", n, "api");
    ASSERT_TRUE(r.ok()) << r.error().describe();
    ASSERT_TRUE(svc->maintainPools(true).ok());
  }
  CreateSandboxOutcome create(const std::string& projectName,
                              std::vector<std::pair<std::string, std::string>> env = {}) {
    auto req = request(mkdir(projectName));
    req.env = std::move(env);
    auto out = svc->createSandbox(req, "api");
    EXPECT_TRUE(out.ok()) << out.error().describe();
    return out.ok() ? std::move(out).value() : CreateSandboxOutcome{};
  }
};

TEST_F(PoolTest, PrewarmFillsThePoolAndACreateClaimsAWarmSandbox) {
  prewarm(3);
  auto warm = rowsWith(st::kWarm);
  ASSERT_EQ(warm.size(), 3u);
  EXPECT_EQ(docker->callCount("createWarm"), 3);
  for (const auto& spec : docker->createdSpecs()) {
    EXPECT_EQ(spec.extraLabels.at(labels::kWarmPool), "true");
    EXPECT_EQ(spec.extraLabels.at(labels::kWarmPoolState), "warm");
    EXPECT_TRUE(spec.projectPath.empty());
    EXPECT_EQ(spec.warmUid, ::getuid());
  }
  EXPECT_EQ(pool().warm, 3);
  // Nobody's yet: not listed, not reachable.
  EXPECT_TRUE(svc->listSandboxes().value().empty());
  EXPECT_EQ(svc->getSandbox(warm[0].info.id).error().code, ErrorCode::SandboxNotFound);

  std::vector<CreateProgress> phases;
  CreateControl control;
  control.onProgress = [&](const CreateProgress& p) { phases.push_back(p); };
  auto req = request(mkdir("claimer"));
  req.env = {{"TOKEN", "s3cret"}, {"LANG", "C"}};
  auto out = svc->createSandbox(req, "api", control);
  ASSERT_TRUE(out.ok()) << out.error().describe();
  const auto& sb = out->sandbox;
  EXPECT_TRUE(sb.fromPool);
  EXPECT_EQ(sb.status, st::kRunning);
  EXPECT_EQ(sb.info.projectPath, req.projectPath);
  EXPECT_EQ(docker->callCount("create") - docker->callCount("createWarm"), 0);  // no cold one
  ASSERT_EQ(docker->claims().size(), 1u);
  EXPECT_EQ(docker->claims()[0].projectPath, req.projectPath);
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.front().phase, "accepted");
  EXPECT_EQ(phases.back().phase, "ready");
  EXPECT_EQ(phases.back().sandboxId, sb.info.id);
  // The claim's environment reaches every command, under the command's own.
  std::vector<std::pair<std::string, std::string>> seen;
  docker->execHandler = [&](const std::string&, const std::vector<std::string>&,
                            const ExecOptions& o) {
    seen = o.env;
    return Result<ExecResult>(ExecResult{0, "", ""});
  };
  ExecRequest ex;
  ex.argv = {"env"};
  ex.options.env = {{"LANG", "en"}};
  ASSERT_TRUE(svc->exec(sb.info.id, ex, "api").ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"TOKEN", "s3cret"},
                                                                    {"LANG", "en"}}));
  // Audited as a create that hit the pool.
  auto creates = auditOf(sb.info.id, "sandbox.create");
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_NE(creates[0].detail.find("\"warmPool\":\"hit\""), std::string::npos) << creates[0].detail;
  // The row survives a restart with its environment.
  restart();
  EXPECT_EQ(store->getSandbox(sb.info.id).value().execEnv, req.env);
  // And the pool refills.
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 3u);
  auto p = pool();
  EXPECT_EQ(p.hits, 0);  // counters are the process's; the claimed count is the state's
  EXPECT_EQ(p.claimed, 1);
}

TEST_F(PoolTest, AMissMakesAColdSandboxAndSaysWhy) {
  // No warm sandbox yet.
  docker->failNext("createWarm", Error(ErrorCode::SandboxImageNotFound, "no image"), -1);
  ASSERT_TRUE(svc->prewarm("", 1, "api").ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  auto p = pool();
  EXPECT_NE(p.lastError.find("no image"), std::string::npos) << p.lastError;
  std::vector<CreateProgress> phases;
  CreateControl control;
  control.onProgress = [&](const CreateProgress& c) { phases.push_back(c); };
  auto out = svc->createSandbox(request(mkdir("a")), "api", control);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->sandbox.fromPool);
  ASSERT_FALSE(phases.empty());
  EXPECT_NE(phases.front().message.find("warm pool miss: no warm sandbox"), std::string::npos)
      << phases.front().message;
  EXPECT_EQ(pool().misses, 1);
  // A failing warm create backs off rather than retrying at once.
  const int tries = docker->callCount("createWarm");
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(docker->callCount("createWarm"), tries);
  docker->clearFailures();
  advance(std::chrono::seconds(6));
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 1u);

  // Another image or resources than the pool's: a miss, and the warm one stays.
  auto req = request(mkdir("b"));
  req.memoryMb = 4096;
  auto other = svc->createSandbox(req, "api");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->sandbox.fromPool);
  EXPECT_EQ(rowsWith(st::kWarm).size(), 1u);
  // A project owned by someone else than the warm user: a miss too.
  auto foreign = mkdir("c");
  ASSERT_EQ(::chown(foreign.c_str(), ::getuid() + 4242, ::getgid()), 0);
  auto f = svc->createSandbox(request(foreign), "api");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->sandbox.fromPool);
  EXPECT_EQ(rowsWith(st::kWarm).size(), 1u);
}

TEST_F(PoolTest, TwentyConcurrentCreatesOnAPoolOfFiveGetFiveHitsAndNoSandboxTwice) {
  prewarm(5);
  ASSERT_EQ(rowsWith(st::kWarm).size(), 5u);
  std::vector<std::string> paths;
  for (int i = 0; i < 20; ++i)
    paths.push_back(mkdir("p" + std::to_string(i)));
  std::mutex mu;
  std::vector<SandboxRecord> made;
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      auto out = svc->createSandbox(request(paths[i]), "api");
      ASSERT_TRUE(out.ok()) << out.error().describe();
      std::lock_guard lk(mu);
      made.push_back(out->sandbox);
    });
  }
  for (auto& t : threads)
    t.join();
  ASSERT_EQ(made.size(), 20u);
  std::set<std::string> ids;
  int hits = 0;
  for (const auto& r : made) {
    ids.insert(r.info.id);
    hits += r.fromPool ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(hits, 5);
  EXPECT_EQ(docker->claims().size(), 5u);
  std::set<std::string> claimedProjects;
  for (const auto& c : docker->claims())
    claimedProjects.insert(c.projectPath);
  EXPECT_EQ(claimedProjects.size(), 5u);
  EXPECT_EQ(pool().hits, 5);
  EXPECT_EQ(pool().misses, 15);
  // Refilled to its size (max = min = 5: the burst cannot grow it).
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 5u);
}

TEST_F(PoolTest, MaxHoldsUnderABurstOfClaimsAndIdleExtrasGo) {
  auto cfg = svc->defaultConfig().value();
  cfg.warmPoolMin = 2;
  cfg.warmPoolMax = 4;
  cfg.warmPoolIdleTtlSeconds = 60;
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 2u);
  for (int i = 0; i < 10; ++i) {
    (void)create("burst" + std::to_string(i));
    ASSERT_TRUE(svc->maintainPools(true).ok());
    EXPECT_LE(rowsWith(st::kWarm).size() + rowsWith(st::kWarming).size(), 4u);
  }
  auto p = pool();
  EXPECT_EQ(p.target, 4);  // claims came fast: up to max
  EXPECT_EQ(rowsWith(st::kWarm).size(), 4u);
  // A quiet minute later the target is min again, and the extras go once idle for the TTL.
  advance(std::chrono::seconds(61));
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(pool().target, 2);
  EXPECT_EQ(rowsWith(st::kWarm).size(), 2u);
  EXPECT_EQ(docker->size(), 10u + 2u);  // the claimed ten and two warm; the rest removed
}

TEST_F(PoolTest, AProfileChangeDrainsThePoolAndItRefillsWithTheNewSettings) {
  prewarm(2);
  auto old = rowsWith(st::kWarm);
  ASSERT_EQ(old.size(), 2u);
  auto cfg = svc->defaultConfig().value();
  cfg.memoryMb = 4096;
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  for (const auto& r : old) {
    EXPECT_FALSE(docker->exists(r.info.id));
    EXPECT_EQ(store->getSandbox(r.info.id).value().status, st::kRemoved);
  }
  ASSERT_TRUE(svc->maintainPools(true).ok());
  auto fresh = rowsWith(st::kWarm);
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(docker->createdSpecs().back().memoryMb, 4096);
  // Changing only the pool's size keeps what is warm.
  cfg = svc->defaultConfig().value();
  cfg.warmPoolMax = 5;
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  EXPECT_TRUE(docker->exists(fresh[0].info.id));
  // Asking for fewer removes the extras at once; 0 empties the pool.
  ASSERT_TRUE(svc->prewarm("", 1, "api").ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 1u);
  ASSERT_TRUE(svc->prewarm("", 0, "api").ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_TRUE(rowsWith(st::kWarm).empty());
  EXPECT_EQ(docker->size(), 0u);
}

TEST_F(PoolTest, TheServersLimitHoldsOverEveryPool) {
  warmPoolLimit = 3;
  restart();
  ASSERT_TRUE(svc->prewarm("", 5, "api").ok());
  SandboxConfig other;
  other.name = "other";
  other.warmPoolMin = 5;
  ASSERT_TRUE(svc->createConfig(other).ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(rowsWith(st::kWarm).size(), 3u);
  // A pool held back by the limit says so.
  auto pools = svc->warmPools();
  ASSERT_TRUE(pools.ok());
  int saying = 0;
  for (const auto& p : pools.value())
    saying += p.lastError.find("warm pool limit (3") != std::string::npos ? 1 : 0;
  EXPECT_GE(saying, 1);
}

TEST_F(PoolTest, AFailedClaimRemovesTheSandboxAndTheCreateGoesOn) {
  prewarm(2);
  docker->failNext("claimWarm", Error(ErrorCode::SandboxProviderUnavailable, "engine hiccup"));
  auto out = create("x");
  EXPECT_TRUE(out.sandbox.fromPool);  // the second warm one
  EXPECT_EQ(rowsWith(st::kWarm).size(), 0u);
  EXPECT_EQ(docker->callCount("remove"), 1);
  // The provider finding the project unfit (not its owner) leaves the sandbox warm.
  prewarm(2);
  docker->failNext("claimWarm", Error(ErrorCode::SandboxProjectPathInvalid, "not the owner"));
  auto cold = create("y");
  EXPECT_FALSE(cold.sandbox.fromPool);
  EXPECT_EQ(rowsWith(st::kWarm).size(), 2u);
}

TEST_F(PoolTest, ARestartLosesLeaksAndDoubleClaimsNothing) {
  prewarm(3);
  auto claimed = create("kept", {{"A", "1"}});
  ASSERT_TRUE(claimed.sandbox.fromPool);
  // A claim in flight when the server dies: its row says claiming.
  auto warm = rowsWith(st::kWarm);
  ASSERT_EQ(warm.size(), 2u);
  auto mid = warm[0];
  mid.status = st::kClaiming;
  mid.info.projectId = "p-midclaim";
  ASSERT_TRUE(store->updateSandbox(mid, std::string(st::kWarm)).value());
  restart();
  ASSERT_TRUE(svc->reconcile().ok());
  // The claimed one is as it was; the interrupted claim is removed (its caller never got an
  // answer); the warm one is still warm and claimable once.
  EXPECT_EQ(svc->getSandbox(claimed.sandbox.info.id).value().status, st::kRunning);
  EXPECT_FALSE(docker->exists(mid.info.id));
  EXPECT_EQ(store->getSandbox(mid.info.id).value().status, st::kRemoved);
  ASSERT_EQ(rowsWith(st::kWarm).size(), 1u);
  auto again = create("after");
  EXPECT_TRUE(again.sandbox.fromPool);
  EXPECT_EQ(again.sandbox.info.id, warm[1].info.id);
  std::set<std::string> ids;
  for (const auto& c : docker->claims())
    ids.insert(c.projectPath);
  EXPECT_EQ(ids.size(), docker->claims().size());
}

TEST_F(PoolTest, ProvidersWithoutWarmSandboxesRefusePrewarmWithTheReason) {
  docker->warmPool = false;
  auto r = svc->prewarm("", 2, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::WarmPoolDisabled);
  EXPECT_NE(r.error().message.find("keeps no warm sandboxes"), std::string::npos);
  EXPECT_EQ(svc->prewarm("nope", 1, "api").error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(svc->prewarm("", 51, "api").error().code, ErrorCode::ValidationError);
}

}  // namespace
}  // namespace agentpane::fakes

namespace agentpane::fakes {
namespace {

TEST_F(PoolTest, ADockerProfileWithANetworkButNoAllowlistHasNoPool) {
  auto cfg = svc->defaultConfig().value();
  cfg.network = NetworkMode::Bridge;
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  auto r = svc->prewarm("", 2, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::WarmPoolDisabled);
  EXPECT_NE(r.error().message.find("network 'bridge'"), std::string::npos) << r.error().message;
  // With an allowlist its cold sandboxes are filtered as warm ones are: pooled.
  cfg = svc->defaultConfig().value();
  cfg.allowedEgressHosts = {"10.1.2.3:443"};
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  EXPECT_TRUE(svc->prewarm("", 1, "api").ok());
}

}  // namespace
}  // namespace agentpane::fakes

namespace agentpane::fakes {
namespace {

// Reconcile reads the rows, then lists the provider: a claim or create that finishes in
// between must keep what it made (the row is compared-and-set before anything is removed).
TEST_F(PoolTest, ReconcileKeepsWhatAClaimOrCreateFinishedWhileItListed) {
  prewarm(1);
  auto warm = rowsWith(st::kWarm);
  ASSERT_EQ(warm.size(), 1u);
  auto claiming = warm[0];
  claiming.status = st::kClaiming;
  claiming.info.projectId = "p-claimed";
  ASSERT_TRUE(store->updateSandbox(claiming, std::string(st::kWarm)).value());
  // A cold create whose object exists but has not started yet when it is listed.
  auto made =
      FakeProvider::makeInfo("sbx-late00000001", "p-late", SandboxState::Creating, nowSec());
  docker->seed(made);
  SandboxRecord creating;
  creating.info.id = made.id;
  creating.info.projectId = "p-late";
  creating.status = st::kCreating;
  creating.createdAtUnix = creating.lastActivityUnix = nowSec();
  ASSERT_TRUE(store->insertSandbox(creating).ok());
  bool fired = false;
  docker->onList = [&] {
    if (std::exchange(fired, true)) return;
    ASSERT_TRUE(
        store->setSandboxStatus(claiming.info.id, st::kRunning, "", std::string(st::kClaiming))
            .value());
    ASSERT_TRUE(
        store->setSandboxStatus(made.id, st::kRunning, "", std::string(st::kCreating)).value());
  };
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_TRUE(docker->exists(claiming.info.id));
  EXPECT_TRUE(docker->exists(made.id));
  EXPECT_EQ(store->getSandbox(claiming.info.id).value().status, st::kRunning);
  EXPECT_EQ(store->getSandbox(made.id).value().status, st::kRunning);
}

// Min 0 is no pool, whatever the max and however many claims came within the minute: a
// pass that still finds warm sandboxes of a profile set to 0 (prewarm 0 racing the upkeep
// loop; here the row changed behind the service's back) starts no refill. It did (target =
// the claims of the minute), and a server stopped next leaked the refill: seen in PoolE2E's
// teardown, 1 run in 5. A pool set to 0 also reports target 0.
TEST_F(PoolTest, MinZeroWithRecentClaimsStartsNoRefill) {
  auto cfg = svc->defaultConfig().value();
  cfg.warmPoolMin = 3;
  cfg.warmPoolMax = 6;
  ASSERT_TRUE(svc->updateConfig(cfg).ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  ASSERT_EQ(rowsWith(st::kWarm).size(), 3u);
  (void)create("claimed-a");
  (void)create("claimed-b");
  ASSERT_EQ(rowsWith(st::kWarm).size(), 1u);
  const std::size_t engine = docker->size();
  auto zero = store->getConfig(cfg.id).value();
  zero.warmPoolMin = 0;
  ASSERT_TRUE(store->updateConfig(zero).ok());
  ASSERT_TRUE(svc->maintainPools(true).ok());
  EXPECT_EQ(docker->size(), engine) << "no refill started";
  EXPECT_EQ(pool().target, 0);
}

}  // namespace
}  // namespace agentpane::fakes
