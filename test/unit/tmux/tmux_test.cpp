#include <gtest/gtest.h>

#include <deque>

#include "agentpane/tmux.hpp"

namespace agentpane {
namespace {

// Records every argv and answers from a queue of canned results.
class RecordingExecutor : public SandboxExecutor {
 public:
  std::vector<std::vector<std::string>> calls;
  std::deque<ExecResult> answers;

  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef&, const std::vector<std::string>&,
                                                const ExecOptions&) override {
    return Error(ErrorCode::Internal, "not used");
  }
  Result<ExecResult> exec(const SandboxRef&, const ExecRequest& req) override {
    calls.push_back(req.argv);
    if (answers.empty()) return ExecResult{0, "", ""};
    auto r = answers.front();
    answers.pop_front();
    return r;
  }
};

TEST(TmuxNames, Validation) {
  EXPECT_TRUE(isValidTmuxName("dev"));
  EXPECT_TRUE(isValidTmuxName("A-b_9"));
  EXPECT_TRUE(isValidTmuxName(std::string(64, 'x')));
  EXPECT_FALSE(isValidTmuxName(std::string(65, 'x')));
  EXPECT_FALSE(isValidTmuxName(""));
  for (const char* bad : {"a;id", "$(id)", "a b", "a:b", "a.b", "`id`", "x\n", "=x", "é"}) {
    EXPECT_FALSE(isValidTmuxName(bad)) << bad;
  }
}

const SandboxRef kSbx{"docker", "", "", "", "sbx"};

TEST(TmuxController, HostileNamesNeverReachTheSandbox) {
  RecordingExecutor exec;
  TmuxController tmux(exec);
  for (const std::string& bad :
       std::vector<std::string>{"a;id", "$(id)", std::string(65, 'a'), ""}) {
    auto c = tmux.create(kSbx, bad);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(tmux.kill(kSbx, bad).error().code, ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(tmux.sendKeys(kSbx, bad, "x").error().code, ErrorCode::TmuxNameInvalid);
    EXPECT_EQ(tmux.capture(kSbx, bad).error().code, ErrorCode::TmuxNameInvalid);
  }
  EXPECT_TRUE(exec.calls.empty());
}

TEST(TmuxController, CreateUsesArgvAndExactTargets) {
  RecordingExecutor exec;
  exec.answers.push_back({0, "", ""});
  exec.answers.push_back({0, "dev\t1\t1700000000\t0\n", ""});
  TmuxController tmux(exec);
  auto s = tmux.create(kSbx, "dev", {"python3", "-c", "print('a; b')"});
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(s->name, "dev");
  EXPECT_EQ(s->createdUnix, 1700000000);
  ASSERT_EQ(exec.calls.size(), 2u);
  std::vector<std::string> want = {"tmux", "new-session", "-d", "-s",           "dev",
                                   "-c",   "/workspace",  "-x", "200",          "-y",
                                   "50",   "python3",     "-c", "print('a; b')"};
  EXPECT_EQ(exec.calls[0], want);
}

TEST(TmuxController, OneElementCommandIsNotGivenToAShell) {
  RecordingExecutor exec;
  exec.answers.push_back({0, "", ""});
  exec.answers.push_back({0, "dev\t1\t1700000000\t0\n", ""});
  TmuxController tmux(exec);
  ASSERT_TRUE(tmux.create(kSbx, "dev", {"my prog; id"}).ok());
  ASSERT_FALSE(exec.calls.empty());
  const auto& argv = exec.calls[0];
  ASSERT_GE(argv.size(), 3u);
  // tmux gets more than one argument, so it execs them: env runs "my prog; id" as a name.
  std::vector<std::string> tail(argv.end() - 3, argv.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"env", "--", "my prog; id"}));
}

TEST(TmuxController, DuplicateIsAConflict) {
  RecordingExecutor exec;
  exec.answers.push_back({1, "", "duplicate session: dev\n"});
  TmuxController tmux(exec);
  auto s = tmux.create(kSbx, "dev");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::TmuxSessionExists);
}

TEST(TmuxController, NoServerMeansNoSessions) {
  RecordingExecutor exec;
  exec.answers.push_back({1, "", "no server running on /tmp/tmux-1000/default\n"});
  TmuxController tmux(exec);
  auto l = tmux.list(kSbx);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->empty());
}

TEST(TmuxController, SendKeysIsLiteralThenEnter) {
  RecordingExecutor exec;
  TmuxController tmux(exec);
  ASSERT_TRUE(tmux.sendKeys(kSbx, "dev", "C-c; echo $(id)").ok());
  ASSERT_EQ(exec.calls.size(), 2u);
  std::vector<std::string> literal = {"tmux", "send-keys",      "-t", "=dev:", "-l",
                                      "--",   "C-c; echo $(id)"};
  EXPECT_EQ(exec.calls[0], literal);
  std::vector<std::string> enter = {"tmux", "send-keys", "-t", "=dev:", "Enter"};
  EXPECT_EQ(exec.calls[1], enter);
  exec.calls.clear();
  ASSERT_TRUE(tmux.sendKeys(kSbx, "dev", "ls", false).ok());
  EXPECT_EQ(exec.calls.size(), 1u);
}

TEST(TmuxController, MissingSessionIsNotFound) {
  RecordingExecutor exec;
  exec.answers.push_back({1, "", "can't find session: =nope\n"});
  TmuxController tmux(exec);
  auto r = tmux.kill(kSbx, "nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::TmuxSessionNotFound);
}

TEST(TmuxController, CaptureBoundsLines) {
  RecordingExecutor exec;
  TmuxController tmux(exec);
  EXPECT_EQ(tmux.capture(kSbx, "dev", 0).error().code, ErrorCode::ValidationError);
  EXPECT_EQ(tmux.capture(kSbx, "dev", 10001).error().code, ErrorCode::ValidationError);
  EXPECT_TRUE(exec.calls.empty());
}

TEST(TmuxParse, ListSessions) {
  auto s =
      tmux_detail::parseListSessions("a\t1\t100\t0\nweird line\nb\t3\t200\t2\r\n\nc\tx\t1\t0\n");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "a");
  EXPECT_EQ(s[0].windows, 1);
  EXPECT_FALSE(s[0].attached);
  EXPECT_EQ(s[1].name, "b");
  EXPECT_EQ(s[1].windows, 3);
  EXPECT_EQ(s[1].createdUnix, 200);
  EXPECT_TRUE(s[1].attached);
}

TEST(TmuxParse, LastLines) {
  EXPECT_EQ(tmux_detail::lastLines("a\nb\nc\n\n\n", 2), "b\nc\n");
  EXPECT_EQ(tmux_detail::lastLines("a\nb\nc", 5), "a\nb\nc\n");
  EXPECT_EQ(tmux_detail::lastLines("\n\n", 3), "");
  EXPECT_EQ(tmux_detail::lastLines("only", 1), "only\n");
}

}  // namespace
}  // namespace agentpane
