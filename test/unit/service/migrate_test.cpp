// SandboxService::migrateSandbox: the new sandbox runs before the old one goes, tmux sessions
// are made again by name, a failed create leaves the old one as it was, and reconcile
// finishes or undoes a migrate a crash interrupted.
#include <gtest/gtest.h>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

namespace st = sandbox_status;

class MigrateTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    enableK8s = true;
    restart();
  }
};

TEST_F(MigrateTest, MovesToTheOtherProviderWithItsTmuxSessions) {
  auto old = createOk();
  ASSERT_EQ(old.info.provider, ProviderType::Docker);
  ASSERT_TRUE(svc->tmuxCreate(old.info.id, "build", {"make", "watch"}, "api").ok());
  docker->addTmuxSession(old.info.id, "by-hand");

  std::vector<std::string> phases;
  CreateControl control;
  control.onProgress = [&](const CreateProgress& p) {
    phases.push_back(p.phase);
    // While the replacement is made, the old one is set aside, not yet removed.
    if (p.phase == "accepted") {
      auto row = store->getSandbox(old.info.id);
      ASSERT_TRUE(row.ok());
      EXPECT_EQ(row->status, st::kMigrating);
      EXPECT_TRUE(docker->exists(old.info.id));
    }
  };
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api", control);
  ASSERT_TRUE(out.ok()) << out.error().describe();
  const std::string newId = out->sandbox.info.id;
  EXPECT_NE(newId, old.info.id);
  EXPECT_EQ(out->sandbox.info.provider, ProviderType::Kubernetes);
  EXPECT_EQ(out->sandbox.status, st::kRunning);
  EXPECT_EQ(out->sandbox.info.projectPath, old.info.projectPath);
  EXPECT_EQ(out->sandbox.configId, old.configId);
  EXPECT_EQ(out->migratedFrom, old.info.id);
  EXPECT_TRUE(out->warnings.empty()) << out->warnings.front();
  EXPECT_EQ(phases.front(), "migrating");
  EXPECT_EQ(phases.back(), "removing");

  // Sessions made again by name: the recorded command, and the one started by hand.
  auto sessions = k8s->tmuxSessions(newId);
  EXPECT_EQ(sessions.size(), 2u);
  EXPECT_TRUE(sessions.count("build") == 1 && sessions.count("by-hand") == 1);
  auto spec = k8s->createdSpecs().at(0);
  EXPECT_EQ(spec.image, old.info.image);

  // The old one is gone from the engine and the list; the new one serves the project.
  EXPECT_FALSE(docker->exists(old.info.id));
  EXPECT_EQ(svc->getSandbox(old.info.id).error().code, ErrorCode::SandboxNotFound);
  auto list = svc->listSandboxes().value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].info.id, newId);

  auto audit = auditOf(old.info.id, "sandbox.migrate");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].ok);
  auto detail = nlohmann::json::parse(audit[0].detail);
  EXPECT_EQ(detail["newId"], newId);
  EXPECT_EQ(detail["from"], "docker");
  EXPECT_EQ(detail["to"], "kubernetes");
  EXPECT_EQ(detail["tmuxSessions"].size(), 2u);
}

// The allowlist moves as it is now (a change made at run time included), not the profile's.
TEST_F(MigrateTest, TheAllowlistMovesAsItIsNow) {
  auto r = request();
  r.allowEgress = {"10.1.2.3"};
  auto old = createOk(r);
  ASSERT_TRUE(svc->setEgress(old.info.id, {"10.9.9.9:443"}, "api").ok());
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(k8s->createdSpecs().at(0).allowedEgressHosts,
            (std::vector<std::string>{"10.9.9.9:443"}));
}

// The old one cannot be removed (its engine refuses): the new one serves the project, the
// answer says what is left, and reconcile removes the old one once it can.
TEST_F(MigrateTest, AnOldSandboxThatCannotBeRemovedIsLeftToReconcile) {
  auto old = createOk();
  docker->failNext("remove", Error(ErrorCode::SandboxProviderUnavailable, "engine is down"));
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  ASSERT_EQ(out->warnings.size(), 1u);
  EXPECT_NE(out->warnings[0].find("not removed yet"), std::string::npos) << out->warnings[0];
  EXPECT_TRUE(docker->exists(old.info.id));
  EXPECT_EQ(store->getSandbox(old.info.id)->status, st::kMigrating);
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(old.info.id));
  EXPECT_EQ(store->getSandbox(old.info.id)->status, st::kRemoved);
  EXPECT_EQ(svc->getSandbox(out->sandbox.info.id)->status, st::kRunning);
}

TEST_F(MigrateTest, AFailedCreateLeavesTheOldOneAsItWas) {
  auto old = createOk();
  ASSERT_TRUE(svc->tmuxCreate(old.info.id, "keep", {}, "api").ok());
  k8s->failNext("create", Error(ErrorCode::K8sImagePullBackoff, "no such image"));
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::K8sImagePullBackoff);
  auto row = svc->getSandbox(old.info.id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, st::kRunning);
  EXPECT_TRUE(docker->exists(old.info.id));
  EXPECT_EQ(docker->tmuxSessions(old.info.id).count("keep"), 1u);
  EXPECT_EQ(svc->listSandboxes().value().size(), 1u);
  ASSERT_TRUE(svc->exec(old.info.id, ExecRequest{{"true"}, {}, {}, 1024}, "api").ok());
  auto audit = auditOf(old.info.id, "sandbox.migrate");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_FALSE(audit[0].ok);
}

TEST_F(MigrateTest, NoFallbackToWhereItCameFrom) {
  auto old = createOk();  // under the default profile, which allows falling back to Docker
  ASSERT_TRUE(svc->defaultConfig()->allowFallback);
  k8s->reachable = false;
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::K8sUnreachable) << out.error().describe();
  EXPECT_EQ(docker->callCount("create"), 1);  // only the original
  EXPECT_EQ(svc->getSandbox(old.info.id)->status, st::kRunning);
}

TEST_F(MigrateTest, RefusesWhatCannotMove) {
  auto old = createOk();
  auto same = svc->migrateSandbox(old.info.id, ProviderType::Docker, "api");
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(same.error().details.at("field"), "to");
  EXPECT_EQ(svc->migrateSandbox("sbx-nope", ProviderType::Kubernetes, "api").error().code,
            ErrorCode::SandboxNotFound);

  enableK8s = false;
  restart();
  auto off = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_FALSE(off.ok());
  EXPECT_EQ(off.error().code, ErrorCode::K8sDisabled);
  EXPECT_EQ(svc->getSandbox(old.info.id)->status, st::kRunning);
}

TEST_F(MigrateTest, AStoppedSandboxMovesToo) {
  auto old = createOk();
  ASSERT_TRUE(svc->stopSandbox(old.info.id, "api").ok());
  auto out = svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(out->sandbox.status, st::kRunning);
  EXPECT_FALSE(docker->exists(old.info.id));
}

TEST_F(MigrateTest, WhileMigratingTheOldOneRefusesUse) {
  auto old = createOk();
  k8s->onCreate = [&](const SandboxSpec&) {
    auto exec = svc->exec(old.info.id, ExecRequest{{"true"}, {}, {}, 1024}, "api");
    ASSERT_FALSE(exec.ok());
    EXPECT_EQ(exec.error().code, ErrorCode::SandboxNotRunning);
    auto stop = svc->stopSandbox(old.info.id, "api");
    ASSERT_FALSE(stop.ok());
    EXPECT_EQ(stop.error().code, ErrorCode::SandboxNotRunning);
    EXPECT_EQ(svc->startSandbox(old.info.id, "api").error().code, ErrorCode::SandboxNotRunning);
    // Reconcile leaves a migrate in flight alone.
    ASSERT_TRUE(svc->reconcile().ok());
    EXPECT_EQ(store->getSandbox(old.info.id)->status, st::kMigrating);
  };
  ASSERT_TRUE(svc->migrateSandbox(old.info.id, ProviderType::Kubernetes, "api").ok());
}

// A crash after the replacement ran: reconcile removes the old one.
TEST_F(MigrateTest, ReconcileFinishesAnInterruptedMigrate) {
  auto old = createOk();
  ASSERT_TRUE(
      store->setSandboxStatus(old.info.id, st::kMigrating, "", std::string(st::kRunning)).value());
  auto repl = svc->createSandbox(
      [&] {
        auto r = request();
        r.provider = ProviderType::Kubernetes;
        return r;
      }(),
      "api");
  ASSERT_TRUE(repl.ok()) << repl.error().describe();
  restart();
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(old.info.id));
  EXPECT_EQ(store->getSandbox(old.info.id)->status, st::kRemoved);
  EXPECT_EQ(svc->getSandbox(repl->sandbox.info.id)->status, st::kRunning);
}

// A crash before the replacement existed: reconcile puts the old one back.
TEST_F(MigrateTest, ReconcileUndoesAMigrateThatMadeNothing) {
  auto old = createOk();
  ASSERT_TRUE(
      store->setSandboxStatus(old.info.id, st::kMigrating, "", std::string(st::kRunning)).value());
  restart();
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_TRUE(docker->exists(old.info.id));
  EXPECT_EQ(svc->getSandbox(old.info.id)->status, st::kRunning);
}

}  // namespace
}  // namespace agentpane::fakes
