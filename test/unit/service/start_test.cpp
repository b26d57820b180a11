// Stopped is not the end: start, wake on use after idle stop, and no wake after an explicit
// stop or when the config says so. Injected clock; no sleeps.
#include <gtest/gtest.h>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using std::chrono::minutes;

class StartTest : public ServiceTest {
 protected:
  SandboxRecord createWithTimeout(bool wakeOnUse) {
    SandboxConfig c;
    c.name = wakeOnUse ? "wakes" : "sleeps";
    c.timeoutMinutes = 5;
    c.wakeOnUse = wakeOnUse;
    auto cfg = svc->createConfig(c);
    EXPECT_TRUE(cfg.ok());
    auto req = request();
    req.configId = cfg->id;
    return createOk(req);
  }
  void idleStop(const std::string& id) {
    advance(minutes(6));
    ASSERT_TRUE(svc->stopIdle().ok());
    ASSERT_EQ(svc->getSandbox(id).value().status, "stopped");
    ASSERT_EQ(svc->getSandbox(id).value().stopReason, "idle");
  }
  ExecRequest trueReq() {
    ExecRequest r;
    r.argv = {"true"};
    return r;
  }
};

TEST_F(StartTest, AStoppedSandboxStartsAgain) {
  auto s = createOk();
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().stopReason, "requested");
  auto started = svc->startSandbox(s.info.id, "api");
  ASSERT_TRUE(started.ok()) << started.error().describe();
  EXPECT_EQ(started->status, "running");
  EXPECT_EQ(started->stopReason, "");
  EXPECT_EQ(docker->find(s.info.id)->state, SandboxState::Running);
  EXPECT_TRUE(svc->exec(s.info.id, trueReq(), "api").ok());
  // Idempotent on a running sandbox: no second provider start.
  ASSERT_TRUE(svc->startSandbox(s.info.id, "api").ok());
  EXPECT_EQ(docker->callCount("start"), 1);
  auto audit = auditOf(s.info.id, "sandbox.start");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].ok);
}

TEST_F(StartTest, AnIdleStoppedSandboxWakesOnExec) {
  auto s = createWithTimeout(/*wakeOnUse=*/true);
  idleStop(s.info.id);
  auto r = svc->exec(s.info.id, trueReq(), "api");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0);
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");
  EXPECT_EQ(docker->callCount("start", s.info.id), 1);
  auto audit = auditOf(s.info.id, "sandbox.start");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "wake");
}

TEST_F(StartTest, AnIdleStoppedSandboxWakesOnTmux) {
  auto s = createWithTimeout(/*wakeOnUse=*/true);
  idleStop(s.info.id);
  auto made = svc->tmuxCreate(s.info.id, "dev", {}, "api");
  ASSERT_TRUE(made.ok()) << made.error().describe();
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");
}

TEST_F(StartTest, NoWakeAfterAnExplicitStopOrWhenTheConfigSaysSo) {
  auto s = createWithTimeout(/*wakeOnUse=*/false);
  idleStop(s.info.id);
  auto r = svc->exec(s.info.id, trueReq(), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxNotRunning);
  EXPECT_EQ(docker->callCount("start"), 0);

  auto other = createOk(request(mkdir("other")));
  ASSERT_TRUE(svc->stopSandbox(other.info.id, "api").ok());
  auto r2 = svc->exec(other.info.id, trueReq(), "api");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::SandboxNotRunning);
  EXPECT_EQ(docker->callCount("start"), 0);
}

TEST_F(StartTest, StartOfASandboxThatVanishedMarksItGone) {
  auto s = createOk();
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  docker->vanish(s.info.id);
  auto r = svc->startSandbox(s.info.id, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxNotFound);
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "gone");
}

}  // namespace
}  // namespace agentpane::fakes
