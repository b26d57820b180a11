// The warm pool end to end on Docker: the real `agentpane serve` (as root: workspace slots
// are mounts), the real engine, driven by the real CLI. A claim gets the project's live files,
// the create's environment and writes back to the host; 20 creates share a pool of 5 without
// a sandbox claimed twice; a SIGKILL of the server loses, leaks and double-claims nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "integration/server/process.hpp"
#include "service/composition.hpp"

namespace agentpane::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

class PoolE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "warm pools need root (mounts); CI runs as root";
    std::random_device rd;
    root_ = fs::temp_directory_path() / ("agentpane-pool-e2e-" + std::to_string(rd()));
    home_ = root_ / "home";
    fs::create_directories(home_);
    instance_ = instanceIdForHome(home_);
    startServer();
  }

  void TearDown() override {
    if (!server_) return;
    // Empty the pool through the API (it waits for creates in flight), then nothing of this
    // server may be left on the engine.
    if (serverAlive_) cli({"pool", "prewarm", "0"});
    for (const auto& s : listSandboxes())
      cli({"sandbox", "rm", s.value("id", "")});
    server_.reset();
    auto left = containers();
    for (const auto& id : left)
      run({"docker", "rm", "-f", id});
    EXPECT_TRUE(left.empty()) << "leaked " << left.size() << " container(s)\n" << serverLog();
    // Slots are released: nothing stays mounted under the home we delete.
    std::ifstream mi("/proc/self/mountinfo");
    std::string all((std::istreambuf_iterator<char>(mi)), {});
    for (const auto& e : fs::directory_iterator(home_ / "warm-slots" / "docker", ec_))
      EXPECT_EQ(all.find(e.path().string() + " "), std::string::npos) << e.path();
    run({"umount", "-l", (home_ / "warm-slots" / "docker").string()});
    fs::remove_all(root_, ec_);
  }

  void startServer() {
    fs::remove(home_ / "address");
    server_ = std::make_unique<Background>(
        std::vector<std::string>{agentpaneBin(), "serve", "--listen", "127.0.0.1:0", "--home",
                                 home_.string(), "--project-root", root_.string(),
                                 "--orphan-grace-seconds", "2", "--reconcile-seconds", "1"},
        std::map<std::string, std::string>{}, (root_ / "server.log").string());
    for (int i = 0; i < 300 && !fs::exists(home_ / "address"); ++i)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(home_ / "address")) << serverLog();
    std::ifstream in(home_ / "address");
    std::getline(in, url_);
    serverAlive_ = true;
  }

  std::string serverLog() const {
    std::ifstream in(root_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  ProcResult cli(std::vector<std::string> args) const {
    args.insert(args.begin(), agentpaneBin());
    return run(std::move(args), {{"AGENTPANE_URL", url_}, {"AGENTPANE_HOME", home_.string()}});
  }

  // A project directory owned by the warm user (1000), with one file.
  fs::path project(const std::string& name) {
    auto p = root_ / "projects" / name;
    fs::create_directories(p);
    std::ofstream(p / "README") << "project " << name;
    EXPECT_EQ(::chown(p.c_str(), 1000, 1000), 0);
    EXPECT_EQ(::chown((p / "README").c_str(), 1000, 1000), 0);
    EXPECT_EQ(::chown(p.parent_path().c_str(), 1000, 1000), 0);
    return p;
  }

  json create(const fs::path& p, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"sandbox", "create", "--project-path", p.string(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cli(args);
    EXPECT_EQ(r.exitCode, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j : json::object();
  }

  json pool() const {
    auto r = cli({"pool", "status", "--json"});
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object() || j["pools"].empty()) return json::object();
    return j["pools"][0];
  }

  // Waits (up to 90 s: warm creates start containers and agents) until `warm` are ready.
  bool waitWarm(int warm) const {
    for (int i = 0; i < 900; ++i) {
      if (pool().value("warm", -1) >= warm) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  json listSandboxes() const {
    auto r = cli({"sandbox", "ls", "--json"});
    auto j = json::parse(r.out, nullptr, false);
    return j.is_array() ? j : json::array();
  }

  std::vector<std::string> containers() const {
    auto r = run({"docker", "ps", "-aq", "--filter", "label=agentpane.io/instance=" + instance_});
    std::vector<std::string> ids;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) ids.push_back(line);
    return ids;
  }

  fs::path root_, home_;
  std::string instance_, url_;
  std::unique_ptr<Background> server_;
  bool serverAlive_ = false;
  std::error_code ec_;
};

TEST_F(PoolE2E, AClaimGetsTheLiveProjectAndTheCreatesEnvironment) {
  auto pre = cli({"pool", "prewarm", "2"});
  ASSERT_EQ(pre.exitCode, 0) << pre.err << serverLog();
  ASSERT_TRUE(waitWarm(2)) << pool().dump() << serverLog();
  EXPECT_EQ(listSandboxes().size(), 0u);  // warm sandboxes are nobody's

  auto p = project("alpha");
  auto sb = create(p, {"--env", "AGENT_TOKEN=t0ken"});
  const std::string id = sb.value("id", "");
  ASSERT_FALSE(id.empty()) << sb.dump();
  EXPECT_TRUE(sb.value("fromPool", false)) << sb.dump();

  auto readme = cli({"exec", id, "--", "cat", "/workspace/README"});
  EXPECT_EQ(readme.out, "project alpha") << readme.err;
  auto env = cli({"exec", id, "--", "printenv", "AGENT_TOKEN"});
  EXPECT_EQ(env.out, "t0ken\n") << env.err;
  auto who = cli({"exec", id, "--", "id", "-u"});
  EXPECT_EQ(who.out, "1000\n");
  ASSERT_EQ(cli({"exec", id, "--", "sh", "-c", "echo back > /workspace/written"}).exitCode, 0);
  std::ifstream written(p / "written");
  std::string line;
  std::getline(written, line);
  EXPECT_EQ(line, "back");
  struct stat st {};
  ASSERT_EQ(::stat((p / "written").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  // A tmux session started after the claim has the environment too.
  ASSERT_EQ(cli({"tmux", "new", id, "work"}).exitCode, 0);
  auto tenv = cli({"exec", id, "--", "tmux", "show-environment", "-g", "AGENT_TOKEN"});
  EXPECT_EQ(tenv.out, "AGENT_TOKEN=t0ken\n") << tenv.err;

  // The pool refills; the claimed one counts as claimed.
  ASSERT_TRUE(waitWarm(2)) << pool().dump();
  EXPECT_EQ(pool().value("claimed", 0), 1);
  EXPECT_GE(pool().value("hits", 0), 1);
  auto metrics = run({"curl", "-fsS", "-H",
                      "Authorization: Bearer " +
                          [&] {
                            std::ifstream t(home_ / "token");
                            std::string s;
                            std::getline(t, s);
                            return s;
                          }(),
                      url_ + "/metrics"});
  EXPECT_NE(metrics.out.find("agentpane_warm_pool_claims_total{pool=\"default\",result=\"hit\"} 1"),
            std::string::npos)
      << metrics.out;

  // Removed: the project and what the sandbox wrote stay.
  ASSERT_EQ(cli({"sandbox", "rm", id}).exitCode, 0);
  EXPECT_TRUE(fs::exists(p / "README"));
  EXPECT_TRUE(fs::exists(p / "written"));
}

TEST_F(PoolE2E, TwentyCreatesOnAPoolOfFiveClaimNoSandboxTwice) {
  ASSERT_EQ(cli({"pool", "prewarm", "5"}).exitCode, 0);
  ASSERT_TRUE(waitWarm(5)) << pool().dump() << serverLog();
  std::vector<fs::path> projects;
  for (int i = 0; i < 20; ++i)
    projects.push_back(project("p" + std::to_string(i)));
  std::vector<std::future<json>> made;
  for (int i = 0; i < 20; ++i)
    made.push_back(std::async(std::launch::async, [&, i] { return create(projects[i]); }));
  std::set<std::string> ids;
  int hits = 0;
  for (auto& f : made) {
    auto j = f.get();
    ids.insert(j.value("id", ""));
    hits += j.value("fromPool", false) ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(ids.count(""), 0u);
  // Five were warm when the burst began; the pool refills while the cold creates run, so a
  // late create may claim a refilled one too.
  EXPECT_GE(hits, 5);
  // Each claimed sandbox shows its own project.
  for (const auto& s : listSandboxes()) {
    auto out = cli({"exec", s.value("id", ""), "--", "cat", "/workspace/README"});
    EXPECT_EQ(out.out, "project " + fs::path(s.value("projectPath", "")).filename().string())
        << out.err << " exit " << out.exitCode << " " << s.dump();
  }
  ASSERT_TRUE(waitWarm(5)) << pool().dump();
  EXPECT_LE(pool().value("warm", 0) + pool().value("starting", 0), 5);
}

TEST_F(PoolE2E, AKillDashNineLosesLeaksAndDoubleClaimsNothing) {
  ASSERT_EQ(cli({"pool", "prewarm", "3"}).exitCode, 0);
  ASSERT_TRUE(waitWarm(3)) << pool().dump() << serverLog();
  auto p = project("kept");
  auto claimed = create(p);
  const std::string id = claimed.value("id", "");
  ASSERT_TRUE(claimed.value("fromPool", false)) << claimed.dump();

  server_->signal(SIGKILL);
  serverAlive_ = false;
  startServer();
  // The claimed sandbox is as it was, with its project.
  auto after = cli({"exec", id, "--", "cat", "/workspace/README"});
  EXPECT_EQ(after.out, "project kept") << after.err << serverLog();
  // The warm ones are the pool's again; every claim gets another sandbox.
  ASSERT_TRUE(waitWarm(3)) << pool().dump() << serverLog();
  std::set<std::string> ids{id};
  for (int i = 0; i < 3; ++i) {
    auto j = create(project("after" + std::to_string(i)));
    EXPECT_TRUE(j.value("fromPool", false)) << j.dump();
    EXPECT_TRUE(ids.insert(j.value("id", "")).second) << "claimed twice: " << j.dump();
  }
  // Every container of this server is a listed sandbox or a warm/starting one of the pool
  // (looked at until the pool is still: it refills meanwhile).
  std::string last;
  bool consistent = false;
  for (int i = 0; i < 300 && !consistent; ++i) {
    const auto live = listSandboxes().size();
    const auto p = pool();
    const auto pooled = static_cast<std::size_t>(p.value("warm", 0) + p.value("starting", 0));
    const auto n = containers().size();
    consistent = n == live + pooled && p.value("starting", 0) == 0;
    last = std::to_string(n) + " containers, " + std::to_string(live) + " listed, " + p.dump();
    if (!consistent) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(consistent) << last << serverLog();
}

}  // namespace
}  // namespace agentpane::testing
