// End to end: the real `agentpane serve` on port 0 with the real Docker provider, driven by
// the real CLI. Covers the CLI forms of SPEC, exit codes, auth, concurrent creates, and
// crash/restart reconciliation against what the engine reports.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "integration/server/process.hpp"
#include "integration/server/reconcile_check.hpp"

namespace agentpane::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string randomHex(int n) {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "0123456789abcdef"[rng() % 16];
  return s;
}

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("agentpane-e2e-" + randomHex(8));
    home_ = root_ / "home";
    project_ = root_ / "project";
    fs::create_directories(home_);
    fs::create_directories(project_);
    // The sandbox user is uid 1000; the project must be writable by it.
    ASSERT_EQ(chown(project_.c_str(), 1000, 1000), 0);
    projectId_ = "e2e-" + randomHex(10);
    startServer();
  }

  void TearDown() override {
    server_.reset();
    // Nothing carrying this test's project label may survive the test.
    auto ids = containerIds();
    for (const auto& id : ids)
      run({"docker", "rm", "-f", id});
    EXPECT_TRUE(ids.empty()) << "leaked containers for " << projectId_;
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void startServer() {
    fs::remove(home_ / "address");
    server_ = std::make_unique<Background>(
        std::vector<std::string>{agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home",
                                 home_.string(), "--orphan-grace-seconds", "2",
                                 "--reconcile-seconds", "1"},
        std::map<std::string, std::string>{}, (root_ / "server.log").string());
    for (int i = 0; i < 300 && !fs::exists(home_ / "address"); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(home_ / "address")) << serverLog();
    std::ifstream in(home_ / "address");
    std::getline(in, url_);
    ASSERT_FALSE(url_.empty());
  }

  std::string serverLog() const {
    std::ifstream in(root_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::map<std::string, std::string> cliEnv() const {
    return {{"AGENTPANE_URL", url_}, {"AGENTPANE_HOME", home_.string()}};
  }

  ProcResult cli(std::vector<std::string> args, const std::string& input = "",
                 std::map<std::string, std::string> env = {}) const {
    args.insert(args.begin(), agentpaneBin());
    auto e = cliEnv();
    for (auto& [k, v] : env)
      e[k] = v;
    return run(std::move(args), e, input);
  }

  std::string create() const {
    auto r = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                  projectId_, "--json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r.out;
    return j.is_object() ? j.value("id", "") : "";
  }

  std::vector<std::string> containerIds() const {
    auto r =
        run({"docker", "ps", "-aq", "--filter", "label=agentpane.io/project-id=" + projectId_});
    std::vector<std::string> ids;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) ids.push_back(line);
    }
    return ids;
  }

  // sandbox-id labels of this test's containers, running ones only when asked.
  std::set<std::string> labelledSandboxIds(bool runningOnly) const {
    // No -q: it would override --format.
    std::vector<std::string> argv = {"docker",   "ps",
                                     "--filter", "label=agentpane.io/project-id=" + projectId_,
                                     "--format", "{{.Label \"agentpane.io/sandbox-id\"}}"};
    if (!runningOnly) argv.insert(argv.begin() + 2, "-a");
    auto r = run(argv);
    std::set<std::string> ids;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) ids.insert(line);
    }
    return ids;
  }

  json listSandboxes() const {
    auto r = cli({"sandbox", "ls", "--json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  fs::path root_, home_, project_;
  std::string projectId_, url_;
  std::unique_ptr<Background> server_;
};

TEST_F(E2E, CliLifecycleExecAndTmux) {
  auto id = create();
  ASSERT_FALSE(id.empty());

  auto ls = cli({"sandbox", "ls", "--json"});
  ASSERT_EQ(ls.exitCode, 0);
  EXPECT_NE(ls.out.find(id), std::string::npos);
  auto get = cli({"sandbox", "get", id, "--json"});
  ASSERT_EQ(get.exitCode, 0) << get.err;
  auto sj = json::parse(get.out);
  EXPECT_EQ(sj.value("provider", ""), "docker");
  EXPECT_EQ(sj.value("status", ""), "running");

  auto e = cli({"exec", id, "--", "sh", "-c", "printf out; printf err >&2; exit 42"});
  EXPECT_EQ(e.exitCode, 42);
  EXPECT_EQ(e.out, "out");
  EXPECT_EQ(e.err, "err");

  auto wc = cli({"exec", "-i", id, "--", "wc", "-c"}, std::string(100000, 'x'));
  EXPECT_EQ(wc.exitCode, 0) << wc.err;
  EXPECT_EQ(wc.out, "100000\n");

  auto whoami = cli({"exec", id, "--", "id", "-u"});
  EXPECT_EQ(whoami.out, "1000\n");
  // The default profile does not allow root exec.
  auto root = cli({"exec", "--root", id, "--", "id", "-u"});
  EXPECT_EQ(root.exitCode, 3) << root.err;
  EXPECT_NE(root.err.find("SANDBOX_ROOT_EXEC_FORBIDDEN"), std::string::npos) << root.err;
  EXPECT_EQ(root.out, "");

  auto written = cli({"exec", id, "--", "sh", "-c", "echo hi > /workspace/from-sandbox.txt"});
  EXPECT_EQ(written.exitCode, 0) << written.err;
  EXPECT_TRUE(fs::exists(project_ / "from-sandbox.txt"));

  auto timeout = cli({"exec", "--timeout", "1", id, "--", "sleep", "30"});
  EXPECT_NE(timeout.exitCode, 0);
  EXPECT_NE(timeout.err.find("EXEC_TIMEOUT"), std::string::npos) << timeout.err;

  ASSERT_EQ(cli({"tmux", "new", id, "dev"}).exitCode, 0);
  auto dup = cli({"tmux", "new", id, "dev"});
  EXPECT_EQ(dup.exitCode, 5);
  EXPECT_NE(dup.err.find("error: SANDBOX_TMUX_SESSION_EXISTS"), std::string::npos) << dup.err;
  auto bad = cli({"tmux", "new", id, "a;id"});
  EXPECT_EQ(bad.exitCode, 2);
  EXPECT_NE(bad.err.find("error: "), std::string::npos);
  ASSERT_EQ(cli({"tmux", "send", id, "dev", "echo marker-$((6*7))"}).exitCode, 0);
  std::string captured;
  for (int i = 0; i < 50 && captured.find("marker-42") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    captured = cli({"tmux", "capture", id, "dev", "--lines", "20"}).out;
  }
  EXPECT_NE(captured.find("marker-42"), std::string::npos) << captured;
  auto tls = cli({"tmux", "ls", id, "--json"});
  EXPECT_NE(tls.out.find("\"dev\""), std::string::npos) << tls.out;
  EXPECT_EQ(cli({"tmux", "kill", id, "dev"}).exitCode, 0);
  EXPECT_EQ(cli({"tmux", "kill", id, "dev"}).exitCode, 4);

  EXPECT_EQ(cli({"sandbox", "stop", id}).exitCode, 0);
  EXPECT_EQ(cli({"sandbox", "stop", id}).exitCode, 0);
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  auto gone = cli({"sandbox", "get", id});
  EXPECT_EQ(gone.exitCode, 4);
  EXPECT_NE(gone.err.find("error: SANDBOX_NOT_FOUND"), std::string::npos) << gone.err;
  EXPECT_TRUE(containerIds().empty());
}

// Egress from the CLI on Docker (the server runs as root: host rules). No traffic is sent: the
// rules are what is shown. An allowlist given at create and one replaced on the running
// sandbox; a name that does not resolve is reported on stderr; a bad entry is refused.
TEST_F(E2E, EgressAllowlistFromTheCli) {
  auto r = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                projectId_, "--allow-egress", "192.0.2.10:443", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto created = json::parse(r.out);
  const std::string id = created.value("id", "");
  EXPECT_EQ(created["egress"]["allowlist"], json({"192.0.2.10:443"}));
  EXPECT_EQ(created["egress"]["enforced"], true);
  EXPECT_EQ(created["egress"]["rules"], json({"192.0.2.10/32 ports 443"}));

  const std::string missing = "nothing-" + randomHex(6) + ".invalid";
  auto e = cli({"sandbox", "egress", id, "--allow", "192.0.2.20:80", "--allow", missing});
  ASSERT_EQ(e.exitCode, 0) << e.err;
  EXPECT_EQ(e.out, "allowed: DNS; 192.0.2.20/32 ports 80\n");
  EXPECT_NE(e.err.find("warning: egress: " + missing), std::string::npos) << e.err;
  auto get = cli({"sandbox", "get", id, "--json"});
  ASSERT_EQ(get.exitCode, 0);
  auto g = json::parse(get.out);
  EXPECT_EQ(g["egress"]["allowlist"], json({"192.0.2.20:80", missing}));
  EXPECT_EQ(g["egress"]["unresolved"], json({missing}));

  auto bad = cli({"sandbox", "egress", id, "--allow", "192.0.2.1/8"});
  EXPECT_EQ(bad.exitCode, 2);
  EXPECT_NE(bad.err.find("VALIDATION_ERROR"), std::string::npos) << bad.err;
  auto none = cli({"sandbox", "egress", id, "--none"});
  ASSERT_EQ(none.exitCode, 0) << none.err;
  EXPECT_EQ(none.out, "allowed: DNS\n");
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
}

TEST_F(E2E, ProfilesFromTheCliByNameOrId) {
  const std::string name = "root-ok-" + projectId_;
  auto made = cli(
      {"profile", "create", name, "--memory-mb", "1024", "--allow-root-exec", "true", "--json"});
  ASSERT_EQ(made.exitCode, 0) << made.err;
  auto mj = json::parse(made.out, nullptr, false);
  ASSERT_TRUE(mj.is_object()) << made.out;
  EXPECT_EQ(mj.value("name", ""), name);
  EXPECT_EQ(mj.value("memoryMb", 0), 1024);
  EXPECT_EQ(mj.value("allowRootExec", false), true);
  const std::string id = mj.value("id", "");
  ASSERT_FALSE(id.empty());

  auto ls = cli({"profile", "ls"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  EXPECT_NE(ls.out.find(name), std::string::npos) << ls.out;
  auto lsj = json::parse(cli({"profile", "ls", "--json"}).out, nullptr, false);
  ASSERT_TRUE(lsj.is_array());
  EXPECT_EQ(lsj.size(), 2u) << lsj.dump();  // the default profile and ours
  EXPECT_EQ(json::parse(cli({"profile", "get", name, "--json"}).out).value("id", ""), id);
  EXPECT_EQ(json::parse(cli({"profile", "get", id, "--json"}).out).value("name", ""), name);

  auto set = cli({"profile", "set", name, "--cpu", "1", "--set", "description=for root work",
                  "--set", "pidsLimit=256", "--json"});
  ASSERT_EQ(set.exitCode, 0) << set.err;
  auto sj = json::parse(set.out);
  EXPECT_EQ(sj.value("cpu", 0.0), 1.0);
  EXPECT_EQ(sj.value("description", ""), "for root work");
  EXPECT_EQ(sj.value("pidsLimit", 0), 256);
  EXPECT_EQ(sj.value("memoryMb", 0), 1024);  // untouched
  auto bad = cli({"profile", "set", name, "--memory-mb", "1"});
  EXPECT_EQ(bad.exitCode, 2);
  EXPECT_NE(bad.err.find("VALIDATION_ERROR"), std::string::npos) << bad.err;
  auto nothing = cli({"profile", "set", name});
  EXPECT_EQ(nothing.exitCode, 2) << nothing.err;
  auto missing = cli({"profile", "get", "no-such-profile"});
  EXPECT_EQ(missing.exitCode, 4);
  EXPECT_NE(missing.err.find("SANDBOX_CONFIG_NOT_FOUND"), std::string::npos) << missing.err;
  auto dup = cli({"profile", "create", name});
  EXPECT_EQ(dup.exitCode, 5);
  EXPECT_NE(dup.err.find("SANDBOX_CONFIG_NAME_CONFLICT"), std::string::npos) << dup.err;

  auto noProfile = cli(
      {"sandbox", "create", "--project-path", project_.string(), "--profile", "no-such-profile"});
  EXPECT_EQ(noProfile.exitCode, 4) << noProfile.err;
  EXPECT_TRUE(containerIds().empty());

  // A sandbox made with the profile by name gets its limits and its root permission.
  auto created = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                      projectId_, "--profile", name, "--json"});
  ASSERT_EQ(created.exitCode, 0) << created.err;
  auto cj = json::parse(created.out);
  EXPECT_EQ(cj.value("configId", ""), id);
  const std::string sandboxId = cj.value("id", "");
  auto root = cli({"exec", "--root", sandboxId, "--", "id", "-u"});
  EXPECT_EQ(root.exitCode, 0) << root.err;
  EXPECT_EQ(root.out, "0\n");

  auto inUse = cli({"profile", "rm", name});
  EXPECT_EQ(inUse.exitCode, 5);
  EXPECT_NE(inUse.err.find("SANDBOX_CONFIG_IN_USE"), std::string::npos) << inUse.err;
  ASSERT_EQ(cli({"sandbox", "rm", sandboxId}).exitCode, 0);
  EXPECT_EQ(cli({"profile", "rm", id}).exitCode, 0);
  EXPECT_EQ(cli({"profile", "get", name}).exitCode, 4);
}

// `sandbox create` shows the create's phases on stderr as they happen (stdout keeps the id);
// --json stays quiet. The phases are the Docker provider's, through the streamed API.
TEST_F(E2E, CreateShowsItsPhasesOnStderr) {
  auto r =
      cli({"sandbox", "create", "--project-path", project_.string(), "--project-id", projectId_});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(id.rfind("sbx", 0), 0u) << r.out;
  std::size_t at = 0;
  for (const char* phase : {"accepted", "image", "created", "started"}) {
    auto found = r.err.find(phase, at);
    EXPECT_NE(found, std::string::npos) << phase << " not shown (in order) in:\n" << r.err;
    if (found != std::string::npos) at = found;
  }
  EXPECT_NE(r.err.find(id), std::string::npos) << r.err;  // "accepted" names the sandbox
  ASSERT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);

  auto quiet = cli({"sandbox", "create", "--project-path", project_.string(), "--project-id",
                    projectId_, "--json"});
  ASSERT_EQ(quiet.exitCode, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  auto j = json::parse(quiet.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << quiet.out;
  EXPECT_EQ(j.value("status", ""), "running");
  ASSERT_EQ(cli({"sandbox", "rm", j.value("id", "")}).exitCode, 0);
}

TEST_F(E2E, AuthIsRequired) {
  auto wrong = cli({"sandbox", "ls"}, "", {{"AGENTPANE_TOKEN", "not-the-token"}});
  EXPECT_EQ(wrong.exitCode, 3);
  EXPECT_NE(wrong.err.find("error: UNAUTHORIZED"), std::string::npos) << wrong.err;

  // A token from another server home is not this server's token.
  auto other = root_ / "other-home";
  fs::create_directories(other);
  {
    std::ofstream(other / "token")
        << "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
  }
  auto foreign = cli({"sandbox", "ls"}, "", {{"AGENTPANE_HOME", other.string()}});
  EXPECT_EQ(foreign.exitCode, 3) << foreign.err;

  auto perms = fs::status(home_ / "token").permissions();
  EXPECT_EQ(perms & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(E2E, UnreachableServerIsAClearError) {
  auto r = run({agentpaneBin(), "sandbox", "ls"},
               {{"AGENTPANE_URL", "http://127.0.0.1:1"}, {"AGENTPANE_HOME", home_.string()}});
  EXPECT_EQ(r.exitCode, 7);
  EXPECT_NE(r.err.find("error: SERVER_UNREACHABLE"), std::string::npos) << r.err;
}

TEST_F(E2E, ConcurrentCreatesForOneProjectGiveOneSandboxAndOneConflict) {
  auto a = std::async(std::launch::async, [&] {
    return cli(
        {"sandbox", "create", "--project-path", project_.string(), "--project-id", projectId_});
  });
  auto b = std::async(std::launch::async, [&] {
    return cli(
        {"sandbox", "create", "--project-path", project_.string(), "--project-id", projectId_});
  });
  auto ra = a.get();
  auto rb = b.get();
  std::multiset<int> codes = {ra.exitCode, rb.exitCode};
  EXPECT_EQ(codes, (std::multiset<int>{0, 5})) << ra.err << rb.err;
  const auto& loser = ra.exitCode == 5 ? ra : rb;
  EXPECT_NE(loser.err.find("SANDBOX_ALREADY_EXISTS"), std::string::npos) << loser.err;
  EXPECT_EQ(containerIds().size(), 1u);
  for (const auto& s : listSandboxes())
    cli({"sandbox", "rm", s.value("id", "")});
}

TEST_F(E2E, RestartAdoptsRunningSandboxes) {
  auto id = create();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(cli({"tmux", "new", id, "keep"}).exitCode, 0);

  // Graceful restart: rows and sandboxes both survive.
  server_->signal(SIGTERM);
  startServer();
  auto e = cli({"exec", id, "--", "echo", "still-here"});
  EXPECT_EQ(e.exitCode, 0) << e.err << serverLog();
  EXPECT_EQ(e.out, "still-here\n");
  EXPECT_NE(cli({"tmux", "ls", id, "--json"}).out.find("keep"), std::string::npos);

  // Crash and lose the database: the labelled container is adopted from the engine.
  server_->signal(SIGKILL);
  fs::remove(home_ / "state.db");
  fs::remove(home_ / "state.db-wal");
  fs::remove(home_ / "state.db-shm");
  startServer();
  bool adopted = false;
  for (int i = 0; i < 100 && !adopted; ++i) {
    for (const auto& s : listSandboxes())
      adopted = adopted || s.value("id", "") == id;
    if (!adopted) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(adopted) << serverLog();
  auto after = cli({"exec", id, "--", "echo", "adopted"});
  EXPECT_EQ(after.out, "adopted\n") << after.err;
  EXPECT_NE(cli({"tmux", "ls", id, "--json"}).out.find("keep"), std::string::npos);
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
}

TEST_F(E2E, KillDashNineDuringCreateLeaksNothing) {
  auto pending = std::async(std::launch::async, [&] {
    return cli(
        {"sandbox", "create", "--project-path", project_.string(), "--project-id", projectId_});
  });
  // Kill the server the moment the engine has the container: the row says "creating".
  for (int i = 0; i < 400 && containerIds().empty(); ++i)
    std::this_thread::sleep_for(10ms);
  server_->signal(SIGKILL);
  auto r = pending.get();
  EXPECT_NE(r.exitCode, 0) << "create finished before the kill; the test did not hit its window";

  startServer();
  // Reconcile settles every row against the engine: no row stays "creating", and every
  // labelled container is a row that is alive (or has been removed).
  std::string last;
  const bool consistent = rowsSettleOnBackend([&] { return listSandboxes(); },
                                              [&] { return labelledSandboxIds(false); }, 200, last);
  EXPECT_TRUE(consistent) << last << serverLog();
  for (const auto& s : listSandboxes())
    cli({"sandbox", "rm", s.value("id", "")});
}

TEST_F(E2E, AnotherServersSandboxesAreLeftAlone) {
  // A second server with its own home shares the engine.
  auto otherHome = root_ / "other-home";
  fs::create_directories(otherHome);
  Background other(
      {agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home", otherHome.string()}, {},
      (root_ / "other.log").string());
  for (int i = 0; i < 300 && !fs::exists(otherHome / "address"); ++i)
    std::this_thread::sleep_for(50ms);
  std::string otherUrl;
  std::getline(std::ifstream(otherHome / "address"), otherUrl);
  ASSERT_FALSE(otherUrl.empty());
  auto made = run({agentpaneBin(), "sandbox", "create", "--project-path", project_.string(),
                   "--project-id", projectId_},
                  {{"AGENTPANE_URL", otherUrl}, {"AGENTPANE_HOME", otherHome.string()}});
  ASSERT_EQ(made.exitCode, 0) << made.err;
  std::string otherId = made.out.substr(0, made.out.find('\n'));

  // Ours reconciles every second with a 2 s orphan grace: give it several rounds.
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(labelledSandboxIds(true), std::set<std::string>{otherId}) << serverLog();
  EXPECT_EQ(listSandboxes().dump().find(otherId), std::string::npos);
  auto rm = run({agentpaneBin(), "sandbox", "rm", otherId},
                {{"AGENTPANE_URL", otherUrl}, {"AGENTPANE_HOME", otherHome.string()}});
  EXPECT_EQ(rm.exitCode, 0) << rm.err;
}

// Durable commands (issue 11) through the CLI: a detached command runs on while the server
// is killed with SIGKILL; after the restart `logs` replays its output from the start and
// `logs -f` follows it to its end and exits with its exit code.
TEST_F(E2E, DetachedCommandSurvivesAServerCrash) {
  auto id = create();
  ASSERT_FALSE(id.empty());
  // It waits for a file the test makes only after the crash: it is running while the server dies.
  auto d = cli({"exec", "--detach", id, "--", "sh", "-c",
                "echo before; while [ ! -e /tmp/.go ]; do sleep 0.05; done; echo after; "
                "echo err >&2; exit 7"});
  ASSERT_EQ(d.exitCode, 0) << d.err << serverLog();
  std::string cid = d.out;
  while (!cid.empty() && cid.back() == '\n')
    cid.pop_back();
  ASSERT_FALSE(cid.empty());
  std::string seen;
  for (int i = 0; i < 200 && seen.empty(); ++i) {
    seen = cli({"logs", id, cid}).out;
    if (seen.empty()) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(seen, "before\n");

  server_->signal(SIGKILL);
  startServer();

  auto ps = cli({"ps", id, "--json"});
  ASSERT_EQ(ps.exitCode, 0) << ps.err << serverLog();
  auto list = json::parse(ps.out, nullptr, false);
  ASSERT_TRUE(list.is_array()) << ps.out;
  bool running = false;
  for (const auto& c : list)
    running = running || (c.value("id", "") == cid && c.value("running", false));
  EXPECT_TRUE(running) << ps.out;
  EXPECT_EQ(cli({"logs", id, cid}).out, "before\n");

  ASSERT_EQ(cli({"exec", id, "--", "touch", "/tmp/.go"}).exitCode, 0);
  auto follow = cli({"logs", "-f", id, cid});
  EXPECT_EQ(follow.exitCode, 7) << follow.err << serverLog();
  EXPECT_EQ(follow.out, "before\nafter\n");
  EXPECT_EQ(follow.err, "err\n");
  EXPECT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
}

}  // namespace
}  // namespace agentpane::testing
