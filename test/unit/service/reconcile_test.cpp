#include <gtest/gtest.h>

#include <condition_variable>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

// A row written by a process that crashed during provider.create.
SandboxRecord creatingRow(const std::string& id, const std::string& project,
                          std::int64_t createdAt) {
  SandboxRecord r;
  r.info.id = id;
  r.info.projectId = project;
  r.info.provider = ProviderType::Docker;
  r.status = sandbox_status::kCreating;
  r.createdAtUnix = createdAt;
  r.lastActivityUnix = createdAt;
  return r;
}

std::vector<std::string> actionsOf(const std::vector<AuditEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries)
    out.push_back(e.action);
  return out;
}

TEST_F(ServiceTest, ReconcileAdoptsLabelledSandboxesWithoutARow) {
  auto info =
      FakeProvider::makeInfo("sbx-adopt000001", "p-adopted", SandboxState::Running, nowSec() - 5);
  info.image = "img:2";
  docker->seed(info);
  docker->seed(
      FakeProvider::makeInfo("sbx-adopt000002", "p-stopped", SandboxState::Stopped, nowSec() - 5));
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type + ":" + e.sandboxId); });
  ASSERT_TRUE(svc->reconcile().ok());
  auto row = svc->getSandbox("sbx-adopt000001");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, "running");
  EXPECT_EQ(row->info.projectId, "p-adopted");
  EXPECT_EQ(row->info.image, "img:2");
  EXPECT_EQ(row->info.containerId, "ctr-sbx-adopt000001");
  EXPECT_EQ(row->lastActivityUnix, nowSec());
  EXPECT_EQ(svc->getSandbox("sbx-adopt000002").value().status, "stopped");
  EXPECT_EQ(actionsOf(auditOf("sbx-adopt000001")), std::vector<std::string>{"reconcile.adopt"});
  EXPECT_EQ(auditOf("sbx-adopt000001")[0].actor, "reconcile");
  EXPECT_EQ(docker->callCount("remove"), 0);
  EXPECT_EQ(events.size(), 2u);
  // Adopted sandboxes are usable.
  ExecRequest req;
  req.argv = {"true"};
  EXPECT_TRUE(svc->exec("sbx-adopt000001", req, "api").ok());
  // A second pass changes nothing.
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(auditOf("sbx-adopt000001").size(), 2u);  // adopt + exec
}

TEST_F(ServiceTest, ReconcileMarksVanishedSandboxesGone) {
  auto s = createOk();
  auto stopped = createOk(request(mkdir("b")));
  ASSERT_TRUE(svc->stopSandbox(stopped.info.id, "api").ok());
  docker->vanish(s.info.id);
  docker->vanish(stopped.info.id);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "gone");
  EXPECT_EQ(svc->getSandbox(stopped.info.id).value().status, "gone");
  EXPECT_EQ(auditOf(s.info.id, "reconcile.status").size(), 1u);
  // The project is free for a new sandbox.
  EXPECT_TRUE(svc->createSandbox(request(), "api").ok());
}

TEST_F(ServiceTest, ReconcileSkipsAProviderThatCannotList) {
  auto s = createOk();
  docker->vanish(s.info.id);
  docker->failNext("list", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");  // unreachable is not vanished
}

TEST_F(ServiceTest, ReconcileFollowsTheProviderState) {
  auto s = createOk();
  docker->setState(s.info.id, SandboxState::Stopped);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "stopped");
  docker->setState(s.info.id, SandboxState::Failed);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "stopped");  // settled rows stay settled...
  docker->setState(s.info.id, SandboxState::Running);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");  // ...unless it runs again
  docker->setState(s.info.id, SandboxState::Failed);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "error");
}

TEST_F(ServiceTest, ReconcileSettlesAStopThatACrashInterrupted) {
  auto s = createOk();
  ASSERT_TRUE(store->setSandboxStatus(s.info.id, sandbox_status::kStopping).value());
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status,
            "stopping");  // still running: maybe in flight
  docker->setState(s.info.id, SandboxState::Stopped);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "stopped");
}

TEST_F(ServiceTest, ReconcileRemovesOrphansOnlyAfterTheGracePeriod) {
  // Labels incomplete (no project id): not adoptable.
  auto orphan = FakeProvider::makeInfo("sbx-orphan00001", "", SandboxState::Running, nowSec() - 30);
  docker->seed(orphan);
  // No creation time at all: the grace period counts from when reconcile first saw it.
  auto ageless = FakeProvider::makeInfo("sbx-orphan00002", "", SandboxState::Running, 0);
  docker->seed(ageless);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_TRUE(docker->exists(orphan.id));
  EXPECT_TRUE(docker->exists(ageless.id));
  advance(std::chrono::seconds(31));  // the first is now 61 s old
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(orphan.id));
  EXPECT_TRUE(docker->exists(ageless.id));
  advance(std::chrono::seconds(30));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(ageless.id));
  auto audit = auditOf(orphan.id, "reconcile.orphan_remove");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].ok);
  EXPECT_EQ(svc->getSandbox(orphan.id).error().code, ErrorCode::SandboxNotFound);
}

TEST_F(ServiceTest, ReconcileRemovesNeverStartedSandboxesWithoutARowAfterGrace) {
  auto created = FakeProvider::makeInfo("sbx-created0001", "p-c", SandboxState::Creating, nowSec());
  auto unknown = FakeProvider::makeInfo("sbx-unknown0001", "p-u", SandboxState::Unknown, nowSec());
  docker->seed(created);
  docker->seed(unknown);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_TRUE(docker->exists(created.id));
  advance(std::chrono::seconds(61));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(created.id));
  EXPECT_TRUE(docker->exists(unknown.id));  // not ours to judge
  EXPECT_EQ(store->getSandbox(unknown.id).error().code, ErrorCode::SandboxNotFound);
}

TEST_F(ServiceTest, ReconcileKeepsWarmRowsAndRemovesWhatThePoolLeft) {
  auto pooled = [&](const std::string& id, const char* state, const char* status) {
    auto info = FakeProvider::makeInfo(id, "", SandboxState::Running, nowSec() - 3600);
    info.labels[labels::kWarmPool] = "true";
    info.labels[labels::kWarmPoolState] = state;
    docker->seed(info);
    if (status == nullptr) return;
    auto row = creatingRow(id, "", nowSec() - 3600);
    row.status = status;
    ASSERT_TRUE(store->insertSandbox(row).ok());
  };
  pooled("sbx-warm0000001", "warm", sandbox_status::kWarm);      // ready: the pool's
  pooled("sbx-warm0000002", "warm", nullptr);                    // no row: a leftover
  pooled("sbx-warm0000003", "allocated", nullptr);               // no row: a leftover
  pooled("sbx-warm0000004", "warm", sandbox_status::kWarming);   // a crash mid-create
  pooled("sbx-warm0000005", "warm", sandbox_status::kClaiming);  // a crash mid-claim
  // A warm row whose sandbox vanished.
  auto gone = creatingRow("sbx-warm0000006", "", nowSec() - 3600);
  gone.status = sandbox_status::kWarm;
  ASSERT_TRUE(store->insertSandbox(gone).ok());

  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_TRUE(docker->exists("sbx-warm0000001"));
  EXPECT_EQ(store->getSandbox("sbx-warm0000001").value().status, sandbox_status::kWarm);
  for (const char* id :
       {"sbx-warm0000002", "sbx-warm0000003", "sbx-warm0000004", "sbx-warm0000005"}) {
    EXPECT_FALSE(docker->exists(id)) << id;
  }
  for (const char* id : {"sbx-warm0000004", "sbx-warm0000005", "sbx-warm0000006"}) {
    EXPECT_EQ(store->getSandbox(id).value().status, sandbox_status::kRemoved) << id;
  }
  // None is adopted as a project's sandbox, and none is listed.
  EXPECT_EQ(store->getSandbox("sbx-warm0000002").error().code, ErrorCode::SandboxNotFound);
  EXPECT_TRUE(svc->listSandboxes().value().empty());
}

TEST_F(ServiceTest, ReconcileRemovesADuplicateForAProjectInsteadOfAdopting) {
  auto s = createOk();
  auto dup = FakeProvider::makeInfo("sbx-dup00000001", s.info.projectId, SandboxState::Running,
                                    nowSec() - 600);
  docker->seed(dup);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(dup.id));
  EXPECT_TRUE(docker->exists(s.info.id));
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");
}

TEST_F(ServiceTest, ReconcileSettlesRowsLeftInCreating) {
  // Crash after the container was made: it runs, so the row becomes running.
  ASSERT_TRUE(store->insertSandbox(creatingRow("sbx-crash0000001", "p-a", nowSec() - 5)).ok());
  docker->seed(
      FakeProvider::makeInfo("sbx-crash0000001", "p-a", SandboxState::Running, nowSec() - 5));
  // Crash after the container was made but before it started: removed, row error.
  ASSERT_TRUE(store->insertSandbox(creatingRow("sbx-crash0000002", "p-b", nowSec() - 5)).ok());
  docker->seed(
      FakeProvider::makeInfo("sbx-crash0000002", "p-b", SandboxState::Stopped, nowSec() - 5));
  // Crash before anything was made: error once older than the grace period.
  ASSERT_TRUE(store->insertSandbox(creatingRow("sbx-crash0000003", "p-c", nowSec() - 5)).ok());

  ASSERT_TRUE(svc->reconcile().ok());
  auto a = svc->getSandbox("sbx-crash0000001").value();
  EXPECT_EQ(a.status, "running");
  EXPECT_EQ(a.info.containerId, "ctr-sbx-crash0000001");
  EXPECT_EQ(svc->getSandbox("sbx-crash0000002").value().status, "error");
  EXPECT_FALSE(docker->exists("sbx-crash0000002"));
  EXPECT_EQ(svc->getSandbox("sbx-crash0000003").value().status, "creating");

  advance(std::chrono::seconds(60));
  ASSERT_TRUE(svc->reconcile().ok());
  auto c = svc->getSandbox("sbx-crash0000003").value();
  EXPECT_EQ(c.status, "error");
  EXPECT_FALSE(c.error.empty());
}

TEST_F(ServiceTest, ReconcileLeavesACreateInFlightAlone) {
  std::mutex mu;
  std::condition_variable cv;
  bool inProvider = false, reconciled = false;
  std::string id;
  docker->onCreate = [&](const SandboxSpec& spec) {
    std::unique_lock lk(mu);
    id = spec.id;
    inProvider = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(10), [&] { return reconciled; });
  };
  advance(std::chrono::seconds(3600));  // well past the grace period while creating
  Result<CreateSandboxOutcome> created = Error(ErrorCode::Internal, "not run");
  std::thread t([&] { created = svc->createSandbox(request(), "api"); });
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return inProvider; }));
  }
  advance(std::chrono::seconds(3600));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(store->getSandbox(id).value().status, "creating");
  {
    std::lock_guard lk(mu);
    reconciled = true;
  }
  cv.notify_all();
  t.join();
  ASSERT_TRUE(created.ok()) << created.error().describe();
  EXPECT_EQ(svc->getSandbox(id).value().status, "running");
}

TEST_F(ServiceTest, ReconcileRemovesWhatIsTombstoned) {
  auto s = createOk();
  docker->failNext("remove", Error(ErrorCode::SandboxProviderUnavailable, "down"));
  ASSERT_FALSE(svc->removeSandbox(s.info.id, "api").ok());
  // Removed through the API, but the object came back (or a partial remove left it).
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "api").ok());
  docker->seed(
      FakeProvider::makeInfo(s.info.id, s.info.projectId, SandboxState::Running, nowSec()));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(s.info.id));
  EXPECT_EQ(store->getSandbox(s.info.id).value().status, "removed");
}

TEST_F(ServiceTest, ReconcileCoversEveryProvider) {
  enableK8s = true;
  restart();
  k8s->seed(FakeProvider::makeInfo("sbx-k8s00000001", "p-k", SandboxState::Running, nowSec()));
  ASSERT_TRUE(svc->reconcile().ok());
  auto row = svc->getSandbox("sbx-k8s00000001");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->info.provider, ProviderType::Kubernetes);
}

// --- idle ---------------------------------------------------------------------------------------

TEST_F(ServiceTest, IdleSandboxesAreStoppedAfterTheirConfigTimeout) {
  SandboxConfig quick;
  quick.name = "quick";
  quick.timeoutMinutes = 5;
  auto cfg = svc->createConfig(quick).value();
  auto req = request();
  req.configId = cfg.id;
  auto s = createOk(req);
  auto longLived = createOk(request(mkdir("long")));  // default config: 60 minutes
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type + ":" + e.sandboxId); });

  advance(std::chrono::minutes(5));  // exactly the timeout: not yet
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");

  ExecRequest touch;
  touch.argv = {"true"};
  ASSERT_TRUE(svc->exec(s.info.id, touch, "api").ok());  // activity resets the clock
  advance(std::chrono::minutes(5));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");

  advance(std::chrono::seconds(1));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "stopped");
  EXPECT_EQ(svc->getSandbox(longLived.info.id).value().status, "running");
  EXPECT_EQ(events, (std::vector<std::string>{"idle:" + s.info.id, "stopping:" + s.info.id,
                                              "stopped:" + s.info.id}));
  auto audit = auditOf(s.info.id, "sandbox.stop");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "idle");

  advance(std::chrono::minutes(60));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(svc->getSandbox(longLived.info.id).value().status, "stopped");
}

TEST_F(ServiceTest, BackgroundReconcileRunsAtStartAndStopsCleanly) {
  docker->seed(FakeProvider::makeInfo("sbx-bg000000001", "p-bg", SandboxState::Running, nowSec()));
  std::mutex mu;
  std::condition_variable cv;
  bool adopted = false;
  svc->subscribe([&](const SandboxEvent& e) {
    if (e.type != "adopted") return;
    std::lock_guard lk(mu);
    adopted = true;
    cv.notify_all();
  });
  svc->startBackground();
  svc->startBackground();  // a second start is a no-op
  {
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return adopted; }));
  }
  svc->stopBackground();
  svc->stopBackground();  // idempotent
  EXPECT_TRUE(svc->getSandbox("sbx-bg000000001").ok());
  // Restartable, and the destructor stops it.
  svc->startBackground();
  svc.reset();
}

}  // namespace
}  // namespace agentpane::fakes
