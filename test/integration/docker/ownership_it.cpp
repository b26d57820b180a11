// Who owns the files (README "Who owns the files"), on the real engine: a sandbox runs as its
// project directory's owner, so that it can write the project (mode 0755: by ownership, not
// by everyone's write bit) and what it writes belongs to that owner on the host. Owners: the
// image's user (1000), a uid without a passwd entry in the image (1234), and root (root
// without capabilities). The user survives a server restart (a fresh provider reads the
// container's label) and a stop/start, and the kill of a timed-out exec runs as it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "agentpane/tmux.hpp"
#include "docker/docker_provider.hpp"

namespace agentpane::docker {
namespace {

using namespace std::chrono_literals;

struct Owner {
  uid_t uid;
  gid_t gid;
};

std::string rnd() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

class DockerOwnership : public ::testing::TestWithParam<Owner> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "giving the project to another uid needs root";
    run_ = "own" + rnd();
    provider_ = makeProvider();
    ASSERT_NE(provider_, nullptr);
    auto v = provider_->client().version();
    ASSERT_TRUE(v.ok()) << "no Docker engine (run scripts/start-docker.sh): "
                        << v.error().describe();
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-own-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    ASSERT_EQ(::chown(dir_.c_str(), GetParam().uid, GetParam().gid), 0);
  }
  void TearDown() override {
    if (provider_) {
      auto left = provider_->list(ListFilter{});
      if (left.ok()) {
        for (const auto& s : *left)
          EXPECT_TRUE(provider_->remove(sandboxRef(s)).ok());
      }
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // A provider of this run's scope: what a restarted server makes.
  std::unique_ptr<DockerProvider> makeProvider() {
    DockerProviderOptions o;
    o.scopeLabels = {{"agentpane.io/test-run", run_}};
    o.stopTimeoutSeconds = 1;
    o.killTimeout = 5s;
    auto p = DockerProvider::create(o);
    if (!p.ok()) return nullptr;
    return std::move(p.value());
  }
  SandboxRef create() {
    SandboxSpec s;
    s.id = run_ + "-s";
    s.projectId = run_;
    s.agentId = "it";
    s.projectPath = dir_;
    s.memoryMb = 256;
    s.cpu = 1;
    auto made = provider_->create(s);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    if (!made.ok()) return {};
    EXPECT_EQ(made->labels["agentpane.io/uid-gid"], expectedUser());
    return sandboxRef(*made);
  }
  // The sandbox user this owner gets: itself, root for root.
  std::string expectedUser() const {
    const Owner o = GetParam();
    return std::to_string(o.uid) + ":" + std::to_string(o.uid == 0 ? 0 : o.gid);
  }
  Result<ExecResult> sh(DockerProvider& p, const SandboxRef& ref, const std::string& script,
                        std::chrono::milliseconds timeout = 0ms) {
    ExecRequest req;
    req.argv = {"sh", "-c", script};
    req.options.timeout = timeout;
    return p.exec(ref, req);
  }
  std::string out(DockerProvider& p, const SandboxRef& ref, const std::string& script) {
    auto r = sh(p, ref, script);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    if (!r.ok()) return {};
    EXPECT_EQ(r->exitCode, 0) << script << ": " << r->stderrData;
    return r->stdoutData;
  }
  void expectOwnedByTheProjectOwner(const std::string& path) {
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid), expectedUser()) << path;
  }

  std::string run_;
  std::string dir_;
  std::unique_ptr<DockerProvider> provider_;
};

TEST_P(DockerOwnership, WritesBelongToTheProjectOwner) {
  const SandboxRef ref = create();
  ASSERT_FALSE(ref.sandboxId.empty());
  EXPECT_EQ(out(*provider_, ref, "echo $(id -u):$(id -g)"), expectedUser() + "\n");
  EXPECT_EQ(out(*provider_, ref,
                "echo hi > /workspace/f.txt && mkdir /workspace/d && touch /workspace/d/g && "
                "cat /workspace/f.txt"),
            "hi\n");
  expectOwnedByTheProjectOwner(dir_ + "/f.txt");
  expectOwnedByTheProjectOwner(dir_ + "/d");
  expectOwnedByTheProjectOwner(dir_ + "/d/g");
  // A file the owner made on the host is the sandbox's to change.
  { std::ofstream(dir_ + "/host.txt") << "from host\n"; }
  ASSERT_EQ(::chown((dir_ + "/host.txt").c_str(), GetParam().uid, GetParam().gid), 0);
  ASSERT_EQ(::chmod((dir_ + "/host.txt").c_str(), 0644), 0);
  out(*provider_, ref, "echo more >> /workspace/host.txt");
  std::ifstream in(dir_ + "/host.txt");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "from host\nmore\n");
  // HOME exists and is writable, with or without a passwd entry (/home/agent, /tmp, /root).
  std::string home = out(*provider_, ref, "touch \"$HOME/.probe\" && echo $HOME");
  EXPECT_EQ(home, GetParam().uid == 0      ? "/root\n"
                  : GetParam().uid == 1000 ? "/home/agent\n"
                                           : "/tmp\n");
  // Root when asked is still root.
  ExecRequest root;
  root.argv = {"id", "-u"};
  root.options.root = true;
  auto r = provider_->exec(ref, root);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "0\n");
}

// After a server restart (a fresh provider, which only has the container) and after a stop
// and start, execs run as the same user.
TEST_P(DockerOwnership, TheUserSurvivesRestartAndStopStart) {
  const SandboxRef ref = create();
  ASSERT_FALSE(ref.sandboxId.empty());
  auto restarted = makeProvider();
  ASSERT_NE(restarted, nullptr);
  EXPECT_EQ(out(*restarted, ref, "echo $(id -u):$(id -g)"), expectedUser() + "\n");
  ASSERT_TRUE(restarted->stop(ref).ok());
  auto started = restarted->start(ref);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  EXPECT_EQ(out(*restarted, ref, "echo $(id -u):$(id -g); touch /workspace/after"),
            expectedUser() + "\n");
  expectOwnedByTheProjectOwner(dir_ + "/after");
}

// The marker kill runs as the exec's user: with every capability dropped, no other uid
// could signal the timed-out process tree.
TEST_P(DockerOwnership, TimedOutExecIsKilledAsTheSameUser) {
  const SandboxRef ref = create();
  ASSERT_FALSE(ref.sandboxId.empty());
  auto t0 = std::chrono::steady_clock::now();
  auto r = sh(*provider_, ref, "sleep 3133 & sleep 3134; wait", 500ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout) << r.error().describe();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  std::string ps = out(*provider_, ref, "ps -eo user:12,args");
  EXPECT_EQ(ps.find("sleep 313"), std::string::npos) << ps;
}

// tmux through the shared code: its socket (/tmp/tmux-<uid>), its shell (sh when the uid has
// no passwd entry) and what it writes in /workspace.
TEST_P(DockerOwnership, TmuxWorks) {
  const SandboxRef ref = create();
  ASSERT_FALSE(ref.sandboxId.empty());
  TmuxController tmux(*provider_);
  auto made = tmux.create(ref, "own");
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ASSERT_TRUE(
      tmux.sendKeys(ref, "own", "echo tmux-$((6*7)) $(id -u) > /workspace/from-tmux.txt").ok());
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir_ + "/from-tmux.txt");
    std::getline(in, text);
    if (!text.empty()) break;
    std::this_thread::sleep_for(50ms);  // polling the host file, bounded by the deadline
  }
  EXPECT_EQ(text, "tmux-42 " + std::to_string(GetParam().uid));
  expectOwnedByTheProjectOwner(dir_ + "/from-tmux.txt");
  auto listed = tmux.list(ref);
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name, "own");
  EXPECT_TRUE(tmux.kill(ref, "own").ok());
}

INSTANTIATE_TEST_SUITE_P(Owners, DockerOwnership,
                         ::testing::Values(Owner{1000, 1000}, Owner{1234, 1234}, Owner{0, 0}),
                         [](const ::testing::TestParamInfo<Owner>& i) {
                           return i.param.uid == 0 ? std::string("Root")
                                                   : "Uid" + std::to_string(i.param.uid);
                         });

// Root-owned projects run as root without capabilities: the permission bits bind it as any
// uid (no reading or writing another uid's 0600 file), it cannot chown, and nothing gives
// privileges back.
class DockerRootOwnedProject : public DockerOwnership {};

TEST_P(DockerRootOwnedProject, RootHasNoPrivilegeBeyondItsFiles) {
  const SandboxRef ref = create();
  ASSERT_FALSE(ref.sandboxId.empty());
  std::string status = out(*provider_, ref,
                           "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' "
                           "/proc/self/status | tr -s '\\t ' ' '");
  for (const char* line :
       {"CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000",
        "CapBnd: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1"}) {
    EXPECT_NE(status.find(line), std::string::npos) << line << " in " << status;
  }
  { std::ofstream(dir_ + "/secret") << "not root's\n"; }
  ASSERT_EQ(::chown((dir_ + "/secret").c_str(), 1234, 1234), 0);
  ASSERT_EQ(::chmod((dir_ + "/secret").c_str(), 0600), 0);
  auto read = sh(*provider_, ref, "cat /workspace/secret");
  ASSERT_TRUE(read.ok()) << read.error().describe();
  EXPECT_NE(read->exitCode, 0) << read->stdoutData;
  EXPECT_EQ(read->stdoutData, "");
  auto write = sh(*provider_, ref, "echo x >> /workspace/secret");
  ASSERT_TRUE(write.ok());
  EXPECT_NE(write->exitCode, 0);
  auto chown = sh(*provider_, ref, "touch /workspace/mine && chown 1234:1234 /workspace/mine");
  ASSERT_TRUE(chown.ok());
  EXPECT_NE(chown->exitCode, 0);
  expectOwnedByTheProjectOwner(dir_ + "/mine");
}

INSTANTIATE_TEST_SUITE_P(Root, DockerRootOwnedProject, ::testing::Values(Owner{0, 0}),
                         [](const ::testing::TestParamInfo<Owner>&) { return "Root"; });

}  // namespace
}  // namespace agentpane::docker
