// End to end: the audit ledger of the real `agentpane serve` on the real Docker engine. An
// exec appears in the ledger with its argv, exit code and output digest; a wrong token is
// recorded; `agentpane audit verify` passes, then names the line the test edits; a torn last
// line left by a crash is cut off at the next start and the chain goes on.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "common/hash.hpp"
#include "integration/server/process.hpp"

namespace agentpane::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string randomSuffix() {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 10; ++i)
    s += "0123456789abcdef"[rng() % 16];
  return s;
}

class AuditE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("agentpane-audit-e2e-" + randomSuffix());
    home_ = root_ / "home";
    project_ = root_ / "project";
    fs::create_directories(home_);
    fs::create_directories(project_);
    ASSERT_EQ(chown(project_.c_str(), 1000, 1000), 0);  // the sandbox user
    projectId_ = "audit-e2e-" + randomSuffix();
    startServer();
  }

  void TearDown() override {
    server_.reset();
    auto r =
        run({"docker", "ps", "-aq", "--filter", "label=agentpane.io/project-id=" + projectId_});
    std::istringstream in(r.out);
    bool leaked = false;
    for (std::string id; std::getline(in, id);) {
      if (id.empty()) continue;
      leaked = true;
      run({"docker", "rm", "-f", id});
    }
    EXPECT_FALSE(leaked) << "leaked containers for " << projectId_;
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void startServer() {
    fs::remove(home_ / "address");
    server_ = std::make_unique<Background>(
        std::vector<std::string>{agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home",
                                 home_.string(), "--project-root", root_.string()},
        serverEnv_, (root_ / "server.log").string());
    for (int i = 0; i < 300 && !fs::exists(home_ / "address"); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(home_ / "address")) << serverLog();
    std::ifstream in(home_ / "address");
    std::getline(in, url_);
  }

  // SIGTERM: the server drains and stops writing.
  void stopServer() {
    ASSERT_TRUE(server_);
    int status = server_->signal(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << serverLog();
    server_.reset();
  }

  std::string serverLog() const {
    std::ifstream in(root_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  ProcResult cli(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const {
    args.insert(args.begin(), agentpaneBin());
    env.emplace("AGENTPANE_URL", url_);
    env.emplace("AGENTPANE_HOME", home_.string());
    return run(std::move(args), env);
  }

  fs::path ledgerFile() const { return home_ / "audit" / "ledger-000001.jsonl"; }

  std::vector<std::string> ledgerLines() const {
    std::ifstream in(ledgerFile(), std::ios::binary);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);)
      out.push_back(l);
    return out;
  }

  // The index of the first ledger line that `match` accepts, waiting (bounded) for it: an
  // exec is recorded when its session is released, which may be just after the client has
  // its exit code.
  template <typename Match>
  int waitForLine(Match match) const {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto lines = ledgerLines();
      for (std::size_t i = 0; i < lines.size(); ++i) {
        json j = json::parse(lines[i], nullptr, false);
        if (j.is_object() && match(j)) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

  ProcResult verify() const {
    return run({agentpaneBin(), "audit", "verify", "--dir", (home_ / "audit").string()});
  }

  fs::path root_, home_, project_;
  std::string projectId_, url_;
  std::unique_ptr<Background> server_;
  std::map<std::string, std::string> serverEnv_;  // set, then startServer()
};

TEST_F(AuditE2E, AnExecIsInTheLedgerAndVerifyFindsAnEditedLine) {
  auto created = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                      projectId_, "--json"});
  ASSERT_EQ(created.exitCode, 0) << created.err;
  const std::string id = json::parse(created.out).value("id", "");
  ASSERT_FALSE(id.empty());

  const std::vector<std::string> argv = {"sh", "-c", "printf hello; printf oops >&2; exit 3"};
  std::vector<std::string> execArgs = {"exec", id, "--"};
  execArgs.insert(execArgs.end(), argv.begin(), argv.end());
  auto ex = cli(execArgs);
  EXPECT_EQ(ex.exitCode, 3) << ex.err;
  EXPECT_EQ(ex.out, "hello");

  // A wrong token is an auth failure, recorded too.
  auto denied = cli({"sandbox", "ls"}, {{"AGENTPANE_TOKEN", "not-the-token"}});
  EXPECT_NE(denied.exitCode, 0);

  auto rm = cli({"sandbox", "rm", id});
  EXPECT_EQ(rm.exitCode, 0) << rm.err;

  const int execLine = waitForLine([&](const json& j) {
    return j.value("event", "") == "exec" && j.value("sandboxId", "") == id;
  });
  ASSERT_GE(execLine, 0) << "no exec entry in the ledger";
  const json entry = json::parse(ledgerLines()[execLine]);
  EXPECT_EQ(entry["detail"]["argv"], json(argv));
  EXPECT_EQ(entry["detail"]["exitCode"], 3);
  EXPECT_EQ(entry["actor"], "api");
  EXPECT_EQ(entry["detail"]["stdoutBytes"], 5);
  EXPECT_EQ(entry["detail"]["stdoutSha256"], sha256Hex("hello"));
  EXPECT_EQ(entry["detail"]["stderrBytes"], 4);
  EXPECT_EQ(entry["detail"]["stderrSha256"], sha256Hex("oops"));
  EXPECT_TRUE(entry["detail"].contains("durationMs"));
  const std::int64_t seq = entry["seq"];

  EXPECT_GE(waitForLine([](const json& j) { return j.value("event", "") == "auth.failure"; }), 0);
  for (const char* event : {"sandbox.create", "sandbox.remove"}) {
    EXPECT_GE(waitForLine([&](const json& j) {
                return j.value("event", "") == event && j.value("sandboxId", "") == id;
              }),
              0)
        << event;
  }

  // The query index names the same entry; the filters narrow it down.
  auto ls = cli({"audit", "ls", "--sandbox", id, "--event", "exec", "--since", "1h", "--json"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  json listed = json::parse(ls.out);
  ASSERT_EQ(listed.size(), 1u) << ls.out;
  EXPECT_EQ(listed[0]["seq"], seq);
  EXPECT_EQ(listed[0]["detail"]["exitCode"], 3);
  auto family = cli({"audit", "ls", "--sandbox", id, "--event", "sandbox.*", "--json"});
  ASSERT_EQ(family.exitCode, 0) << family.err;
  std::set<std::string> actions;
  for (const auto& e : json::parse(family.out))
    actions.insert(e.value("action", ""));
  EXPECT_TRUE(actions.count("sandbox.create") && actions.count("sandbox.remove")) << family.out;
  for (const auto& a : actions)
    EXPECT_EQ(a.rfind("sandbox.", 0), 0u) << a;
  auto future = cli({"audit", "ls", "--since", "2999-01-01T00:00:00Z", "--json"});
  ASSERT_EQ(future.exitCode, 0) << future.err;
  EXPECT_TRUE(json::parse(future.out).empty());
  auto table = cli({"audit", "ls", "--sandbox", id, "--event", "exec"});
  EXPECT_EQ(table.exitCode, 0) << table.err;
  EXPECT_NE(table.out.find("printf hello"), std::string::npos) << table.out;

  stopServer();
  auto good = verify();
  EXPECT_EQ(good.exitCode, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("verified"), std::string::npos) << good.out;

  // Rewrite the exit code of the exec: verify fails and names that line.
  auto lines = ledgerLines();
  auto at = lines[execLine].find("\"exitCode\":3");
  ASSERT_NE(at, std::string::npos);
  lines[execLine].replace(at, 12, "\"exitCode\":0");
  {
    std::ofstream out(ledgerFile(), std::ios::binary | std::ios::trunc);
    for (const auto& l : lines)
      out << l << "\n";
  }
  auto bad = verify();
  EXPECT_NE(bad.exitCode, 0);
  EXPECT_NE(bad.err.find("ledger-000001.jsonl line " + std::to_string(execLine + 1) + " (seq " +
                         std::to_string(seq) + ")"),
            std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find("edited"), std::string::npos) << bad.err;
}

// Entries deleted from the end leave a shorter chain that verifies; a head kept elsewhere
// (`--expect-head SEQ:HASH` from an earlier verify) finds them.
TEST_F(AuditE2E, AKeptHeadFindsEntriesDeletedFromTheEnd) {
  ASSERT_EQ(cli({"profile", "create", "audit-head-" + randomSuffix()}).exitCode, 0);
  ASSERT_GE(waitForLine([](const json& j) { return j.value("event", "") == "config.create"; }), 0);
  stopServer();
  auto before =
      run({agentpaneBin(), "audit", "verify", "--json", "--dir", (home_ / "audit").string()});
  ASSERT_EQ(before.exitCode, 0) << before.err;
  const json head = json::parse(before.out);
  const std::string kept = std::to_string(head["headSeq"].get<std::int64_t>()) + ":" +
                           head["headHash"].get<std::string>();
  auto withHead = [&](const std::string& h) {
    return run({agentpaneBin(), "audit", "verify", "--dir", (home_ / "audit").string(),
                "--expect-head", h});
  };
  auto same = withHead(kept);
  EXPECT_EQ(same.exitCode, 0) << same.err;
  EXPECT_NE(same.out.find("found unchanged"), std::string::npos) << same.out;

  // The newest entry deleted: the chain alone is fine, the kept head is not.
  auto lines = ledgerLines();
  ASSERT_GE(lines.size(), 2u);
  lines.pop_back();
  {
    std::ofstream out(ledgerFile(), std::ios::binary | std::ios::trunc);
    for (const auto& l : lines)
      out << l << "\n";
  }
  EXPECT_EQ(verify().exitCode, 0);
  auto cut = withHead(kept);
  EXPECT_EQ(cut.exitCode, 1);
  EXPECT_NE(cut.err.find("entries were removed from its end"), std::string::npos) << cut.err;

  // A head whose hash differs: the ledger was rewritten up to there.
  std::string other = kept;
  other.back() = other.back() == '0' ? '1' : '0';
  const std::string earlier =
      std::to_string(head["headSeq"].get<std::int64_t>() - 1) + other.substr(other.find(':'));
  auto rewritten = withHead(earlier);
  EXPECT_EQ(rewritten.exitCode, 1);
  EXPECT_NE(rewritten.err.find("rewritten"), std::string::npos) << rewritten.err;

  for (const char* bad : {"12", "x:abc", "0:", "5:XYZ"}) {
    auto r = withHead(bad);
    EXPECT_NE(r.exitCode, 0) << bad;
    EXPECT_NE(r.err.find("VALIDATION_ERROR"), std::string::npos) << bad << ": " << r.err;
  }
}

TEST_F(AuditE2E, ATornLastLineIsCutAtTheNextStartAndTheChainGoesOn) {
  // A profile change is recorded; then the server stops and a write is cut short.
  auto made = cli({"profile", "create", "audit-e2e-" + randomSuffix()});
  ASSERT_EQ(made.exitCode, 0) << made.err;
  ASSERT_GE(waitForLine([](const json& j) { return j.value("event", "") == "config.create"; }), 0);
  stopServer();
  const std::size_t complete = ledgerLines().size();
  {
    std::ofstream out(ledgerFile(), std::ios::binary | std::ios::app);
    out << R"({"seq":)" << complete + 1 << R"(,"at":"2026-12-04T20:00:00.000Z","event":"ex)";
  }
  auto torn = verify();
  EXPECT_EQ(torn.exitCode, 0) << torn.err;
  EXPECT_NE(torn.err.find("torn"), std::string::npos) << torn.err;

  startServer();
  ASSERT_GE(waitForLine([](const json& j) { return j.value("event", "") == "ledger.recovered"; }),
            0);
  auto again = cli({"profile", "create", "audit-e2e-" + randomSuffix()});
  ASSERT_EQ(again.exitCode, 0) << again.err;
  stopServer();
  auto after = verify();
  EXPECT_EQ(after.exitCode, 0) << after.err;
  EXPECT_EQ(after.err.find("torn"), std::string::npos) << after.err;
  auto lines = ledgerLines();
  ASSERT_GT(lines.size(), complete + 1);
  EXPECT_EQ(json::parse(lines[complete]).value("event", ""), "ledger.recovered");
}

// Retention through the server's settings: 1 MiB files, two kept. Execs with long argvs fill
// them; the oldest files go, a ledger.pruned entry says so, and verify still passes and says
// what was pruned. A setting out of range stops the server before it serves.
TEST_F(AuditE2E, RetentionKeepsTheNewestFilesAndVerifyStillPasses) {
  stopServer();
  serverEnv_ = {{"AGENTPANE_AUDIT_FILE_MB", "1"}, {"AGENTPANE_AUDIT_KEEP_FILES", "2"}};
  startServer();
  auto created = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                      projectId_, "--json"});
  ASSERT_EQ(created.exitCode, 0) << created.err;
  const std::string id = json::parse(created.out).value("id", "");
  // Each exec's entry records 200 arguments of 1000 bytes: about 200 KB.
  std::vector<std::string> args = {"exec", id, "--", "true"};
  for (int i = 0; i < 200; ++i)
    args.push_back(std::string(1000, static_cast<char>('a' + i % 26)));
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(cli(args).exitCode, 0);
  ASSERT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  stopServer();

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(home_ / "audit"))
    files.push_back(e.path());
  EXPECT_EQ(files.size(), 2u);
  EXPECT_FALSE(fs::exists(ledgerFile()));  // ledger-000001.jsonl went first
  auto v = verify();
  EXPECT_EQ(v.exitCode, 0) << v.err;
  EXPECT_NE(v.out.find("were pruned by retention"), std::string::npos) << v.out;

  // The older of the two kept files deleted by hand as well: found.
  std::sort(files.begin(), files.end());
  fs::remove(files.front());
  auto cut = verify();
  EXPECT_EQ(cut.exitCode, 1);
  EXPECT_NE(cut.err.find("no ledger.pruned entry accounts for"), std::string::npos) << cut.err;

  auto bad = run({agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home", home_.string()},
                 {{"AGENTPANE_AUDIT_KEEP_FILES", "-1"}});
  EXPECT_EQ(bad.exitCode, 2);
  EXPECT_NE((bad.out + bad.err).find("AGENTPANE_AUDIT_KEEP_FILES"), std::string::npos)
      << bad.out << bad.err;
  auto loud = run({agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home", home_.string()},
                  {{"AGENTPANE_LOG_LEVEL", "loud"}});
  EXPECT_EQ(loud.exitCode, 2);
  EXPECT_NE((loud.out + loud.err).find("AGENTPANE_LOG_LEVEL"), std::string::npos)
      << loud.out << loud.err;
}

}  // namespace
}  // namespace agentpane::testing
