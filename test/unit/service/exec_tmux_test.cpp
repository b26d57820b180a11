#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hash.hpp"
#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using nlohmann::json;

ExecRequest argv(std::vector<std::string> a) {
  ExecRequest r;
  r.argv = std::move(a);
  return r;
}

void allowRootExec(SandboxService& svc, const SandboxRecord& s, bool allow = true) {
  auto c = svc.getConfig(s.configId.empty() ? svc.defaultConfig().value().id : s.configId);
  ASSERT_TRUE(c.ok());
  c.value().allowRootExec = allow;
  ASSERT_TRUE(svc.updateConfig(c.value()).ok());
}

TEST_F(ServiceTest, RootExecNeedsAProfileThatAllowsIt) {
  auto s = createOk();
  ASSERT_FALSE(s.configId.empty());
  auto root = argv({"id", "-u"});
  root.options.root = true;
  auto refused = svc->exec(s.info.id, root, "api");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::SandboxRootExecForbidden);
  EXPECT_EQ(errorInfo(refused.error().code).httpStatus, 403);
  EXPECT_EQ(refused.error().details.at("configId"), s.configId);
  auto stream = svc->openExec(s.info.id, {"sh"}, root.options, "api");
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code, ErrorCode::SandboxRootExecForbidden);
  EXPECT_EQ(docker->callCount("exec"), 0);
  EXPECT_EQ(docker->callCount("openExec"), 0);
  // Not root: allowed as before.
  EXPECT_TRUE(svc->exec(s.info.id, argv({"id", "-u"}), "api").ok());

  allowRootExec(*svc, s);
  EXPECT_TRUE(svc->exec(s.info.id, root, "api").ok());
  EXPECT_TRUE(svc->openExec(s.info.id, {"sh"}, root.options, "api").ok());
  allowRootExec(*svc, s, false);
  EXPECT_EQ(svc->exec(s.info.id, root, "api").error().code, ErrorCode::SandboxRootExecForbidden);
}

TEST_F(ServiceTest, ExecRunsAuditsAndTouchesActivity) {
  auto s = createOk();
  docker->execHandler = [](const std::string&, const std::vector<std::string>& a,
                           const ExecOptions& o) {
    return Result<ExecResult>(ExecResult{a.size() == 2 && a[1] == "fail" ? 3 : 0, "out:" + a.back(),
                                         o.root ? "root" : ""});
  };
  advance(std::chrono::seconds(90));
  auto req = argv({"echo", "hi there"});
  req.options.root = true;
  allowRootExec(*svc, s);
  auto r = svc->exec(s.info.id, req, "cli");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0);
  EXPECT_EQ(r->stdoutData, "out:hi there");
  EXPECT_EQ(r->stderrData, "root");
  EXPECT_EQ(svc->getSandbox(s.info.id).value().lastActivityUnix, nowSec());

  auto failing = svc->exec(s.info.id, argv({"x", "fail"}), "cli");
  ASSERT_TRUE(failing.ok());
  EXPECT_EQ(failing->exitCode, 3);

  auto audit = auditOf(s.info.id, "exec");
  ASSERT_EQ(audit.size(), 2u);
  auto d0 = json::parse(audit[1].detail);  // oldest last
  EXPECT_EQ(d0["argv"], (json{"echo", "hi there"}));
  EXPECT_EQ(d0["exitCode"], 0);
  EXPECT_EQ(d0["root"], true);
  EXPECT_TRUE(d0.contains("durationMs"));
  EXPECT_EQ(d0["stdoutBytes"], 12);
  EXPECT_EQ(d0["stdoutSha256"], sha256Hex("out:hi there"));
  EXPECT_EQ(d0["stderrSha256"], sha256Hex("root"));
  EXPECT_EQ(audit[1].actor, "cli");
  EXPECT_TRUE(audit[1].ok);
  EXPECT_EQ(json::parse(audit[0].detail)["exitCode"], 3);
}

TEST_F(ServiceTest, ExecErrorsAreAuditedAndMapped) {
  auto s = createOk();
  EXPECT_EQ(svc->exec(s.info.id, argv({}), "api").error().code, ErrorCode::ValidationError);
  auto badEnv = argv({"env"});
  badEnv.options.env = {{"BAD-KEY", "1"}};
  EXPECT_EQ(svc->exec(s.info.id, badEnv, "api").error().code, ErrorCode::ValidationError);
  EXPECT_EQ(svc->exec("sbx-nope", argv({"true"}), "api").error().code, ErrorCode::SandboxNotFound);
  docker->failNext("exec", Error(ErrorCode::ExecTimeout, "timed out"));
  auto r = svc->exec(s.info.id, argv({"sleep", "100"}), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout);
  auto audit = auditOf(s.info.id, "exec");
  ASSERT_EQ(audit.size(), 1u);  // validation failures never reach the sandbox
  EXPECT_FALSE(audit[0].ok);
  EXPECT_EQ(json::parse(audit[0].detail)["error"]["code"], "EXEC_TIMEOUT");

  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  auto stopped = svc->exec(s.info.id, argv({"true"}), "api");
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().code, ErrorCode::SandboxNotRunning);
}

TEST_F(ServiceTest, OpenExecIsAuditedWhenItEnds) {
  auto s = createOk();
  docker->execHandler = [](const std::string&, const std::vector<std::string>&,
                           const ExecOptions&) {
    return Result<ExecResult>(ExecResult{7, "abc", "err"});
  };
  auto session = svc->openExec(s.info.id, {"cat"}, ExecOptions{}, "ws");
  ASSERT_TRUE(session.ok()) << session.error().describe();
  EXPECT_TRUE(auditOf(s.info.id, "exec").empty());
  std::string out, err;
  for (;;) {
    auto chunk = session.value()->read();
    ASSERT_TRUE(chunk.ok());
    if (!chunk.value()) break;
    (chunk.value()->stream == ExecStream::Stdout ? out : err) += chunk.value()->data;
  }
  EXPECT_EQ(out, "abc");
  EXPECT_EQ(err, "err");
  EXPECT_EQ(session.value()->wait().value(), 7);
  auto audit = auditOf(s.info.id, "exec");
  ASSERT_EQ(audit.size(), 1u);
  auto d = json::parse(audit[0].detail);
  EXPECT_EQ(d["exitCode"], 7);
  EXPECT_EQ(d["stream"], true);
  EXPECT_EQ(d["argv"], json{"cat"});
  EXPECT_EQ(audit[0].actor, "ws");
  // What the command wrote, by size and digest.
  EXPECT_EQ(d["stdoutBytes"], 3);
  EXPECT_EQ(d["stdoutSha256"], sha256Hex("abc"));
  EXPECT_EQ(d["stderrBytes"], 3);
  EXPECT_EQ(d["stderrSha256"], sha256Hex("err"));
  session.value().reset();  // no second entry on destruction
  EXPECT_EQ(auditOf(s.info.id, "exec").size(), 1u);

  // A session dropped before exit is audited as such.
  auto dropped = svc->openExec(s.info.id, {"cat"}, ExecOptions{}, "ws");
  ASSERT_TRUE(dropped.ok());
  dropped.value().reset();
  auto after = auditOf(s.info.id, "exec");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_FALSE(after[0].ok);
}

// --- tmux -------------------------------------------------------------------------------------

TEST_F(ServiceTest, TmuxCreateListKillAreMirroredAndAudited) {
  auto s = createOk();
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) {
    if (e.type.rfind("tmux.", 0) == 0) events.push_back(e.type + ":" + e.detail);
  });
  auto created = svc->tmuxCreate(s.info.id, "main", {"bash", "-l"}, "api");
  ASSERT_TRUE(created.ok()) << created.error().describe();
  EXPECT_EQ(created->name, "main");
  EXPECT_EQ(created->createdUnix, nowSec());
  auto rows = store->listTmuxSessions(s.info.id).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].command, (std::vector<std::string>{"bash", "-l"}));

  auto dup = svc->tmuxCreate(s.info.id, "main", {}, "api");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::TmuxSessionExists);

  auto list = svc->tmuxList(s.info.id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);

  ASSERT_TRUE(svc->tmuxKill(s.info.id, "main", "api").ok());
  EXPECT_TRUE(store->listTmuxSessions(s.info.id).value().empty());
  EXPECT_EQ(svc->tmuxKill(s.info.id, "main", "api").error().code, ErrorCode::TmuxSessionNotFound);
  EXPECT_EQ(events, (std::vector<std::string>{"tmux.created:main", "tmux.destroyed:main"}));

  auto creates = auditOf(s.info.id, "tmux.create");
  ASSERT_EQ(creates.size(), 2u);
  EXPECT_FALSE(creates[0].ok);  // the duplicate
  EXPECT_TRUE(creates[1].ok);
  EXPECT_EQ(auditOf(s.info.id, "tmux.kill").size(), 2u);
}

TEST_F(ServiceTest, TmuxListTrustsTmuxOverTheTable) {
  auto s = createOk();
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "ours", {}, "api").ok());
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "ended", {}, "api").ok());
  // One session ends by itself, another is started by hand inside the sandbox.
  ASSERT_TRUE(TmuxController(*docker).kill(sandboxRef(s.info), "ended").ok());
  docker->addTmuxSession(s.info.id, "manual");
  auto list = svc->tmuxList(s.info.id);
  ASSERT_TRUE(list.ok()) << list.error().describe();
  std::vector<std::string> names;
  for (const auto& t : list.value())
    names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"manual", "ours"}));
  std::vector<std::string> rowNames;
  auto rows = store->listTmuxSessions(s.info.id).value();
  for (const auto& r : rows)
    rowNames.push_back(r.name);
  EXPECT_EQ(rowNames, (std::vector<std::string>{"manual", "ours"}));
}

TEST_F(ServiceTest, TmuxKeysAndCapture) {
  auto s = createOk();
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "dev", {}, "api").ok());
  advance(std::chrono::seconds(30));
  ASSERT_TRUE(svc->tmuxSendKeys(s.info.id, "dev", "echo secret", true, "cli").ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().lastActivityUnix, nowSec());
  auto pane = svc->tmuxCapture(s.info.id, "dev", 100);
  ASSERT_TRUE(pane.ok()) << pane.error().describe();
  EXPECT_NE(pane->find("echo secret"), std::string::npos);
  auto keys = auditOf(s.info.id, "tmux.keys");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].detail.find("secret"), std::string::npos);  // the text is not logged
  EXPECT_EQ(json::parse(keys[0].detail)["bytes"], 11);
  EXPECT_EQ(svc->tmuxCapture(s.info.id, "nope", 10).error().code, ErrorCode::TmuxSessionNotFound);
  EXPECT_EQ(svc->tmuxSendKeys(s.info.id, "nope", "x", true, "api").error().code,
            ErrorCode::TmuxSessionNotFound);
}

TEST_F(ServiceTest, TmuxNamesAreCheckedBeforeAnythingRuns) {
  auto s = createOk();
  int before = docker->callCount("exec");
  for (const std::string& bad :
       std::vector<std::string>{"a;b", "", "$(id)", std::string(65, 'x')}) {
    EXPECT_EQ(svc->tmuxCreate(s.info.id, bad, {}, "api").error().code, ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(svc->tmuxKill(s.info.id, bad, "api").error().code, ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(svc->tmuxSendKeys(s.info.id, bad, "x", true, "api").error().code,
              ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(svc->tmuxCapture(s.info.id, bad, 1).error().code, ErrorCode::TmuxNameInvalid);
  }
  EXPECT_EQ(docker->callCount("exec"), before);
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  EXPECT_EQ(svc->tmuxList(s.info.id).error().code, ErrorCode::SandboxNotRunning);
}

TEST_F(ServiceTest, EveryMutationIsAudited) {
  auto s = createOk();
  ASSERT_TRUE(svc->exec(s.info.id, argv({"true"}), "api").ok());
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "t", {}, "api").ok());
  ASSERT_TRUE(svc->tmuxSendKeys(s.info.id, "t", "ls", true, "api").ok());
  ASSERT_TRUE(svc->tmuxKill(s.info.id, "t", "api").ok());
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "api").ok());
  std::vector<std::string> actions;
  auto entries = auditOf(s.info.id);
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)
    actions.push_back(it->action);
  EXPECT_EQ(actions, (std::vector<std::string>{"sandbox.create", "exec", "tmux.create", "tmux.keys",
                                               "tmux.kill", "sandbox.stop", "sandbox.remove"}));
  for (const auto& e : entries) {
    EXPECT_TRUE(e.ok) << e.action;
    EXPECT_EQ(e.atUnixMs, nowMs.load());
    EXPECT_TRUE(json::accept(e.detail)) << e.detail;
  }
  // Config mutations too (no sandbox id).
  SandboxConfig c;
  c.name = "audited";
  ASSERT_TRUE(svc->createConfig(c).ok());
  auto all = svc->audit({.limit = 1}).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].action, "config.create");
}

}  // namespace
}  // namespace agentpane::fakes
