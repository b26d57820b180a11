// Idle stop leaves running work alone: an open exec, a held terminal, a tmux session that
// printed lately. Injected clock; no sleeps.
#include <gtest/gtest.h>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using std::chrono::minutes;

SandboxConfig quickConfig() {
  SandboxConfig c;
  c.name = "quick";
  c.timeoutMinutes = 5;
  return c;
}

class IdleTest : public ServiceTest {
 protected:
  SandboxRecord createQuick() {
    auto cfg = svc->createConfig(quickConfig());
    EXPECT_TRUE(cfg.ok());
    auto req = request();
    req.configId = cfg->id;
    return createOk(req);
  }
  std::string status(const std::string& id) { return svc->getSandbox(id).value().status; }
};

TEST_F(IdleTest, ACommandThatOutlivesTheTimeoutKeepsItsSandbox) {
  auto s = createQuick();
  auto session = svc->openExec(s.info.id, {"sleep", "3600"}, ExecOptions{}, "api");
  ASSERT_TRUE(session.ok()) << session.error().describe();

  advance(minutes(30));  // six timeouts with the command still running
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "running");
  EXPECT_EQ(docker->callCount("stop"), 0);

  // The command ends: the idle clock starts from its end.
  ASSERT_TRUE(session.value()->wait().ok());
  session.value().reset();
  advance(minutes(5));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "running");
  advance(minutes(1));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "stopped");
}

TEST_F(IdleTest, AHeldTerminalKeepsItsSandbox) {
  auto s = createQuick();
  auto hold = svc->holdActive(s.info.id);
  advance(minutes(30));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "running");
  hold.reset();
  advance(minutes(6));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "stopped");
}

TEST_F(IdleTest, RecentTmuxOutputKeepsItsSandbox) {
  auto s = createQuick();
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "job", {"make"}, "api").ok());
  advance(minutes(30));
  // The job printed a minute ago: not idle.
  docker->setTmuxActivity(s.info.id, "job", nowSec() - 60);
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "running");

  // Silent for longer than the timeout: idle, whatever tmux holds.
  advance(minutes(10));
  ASSERT_TRUE(svc->stopIdle().ok());
  EXPECT_EQ(status(s.info.id), "stopped");
}

}  // namespace
}  // namespace agentpane::fakes
