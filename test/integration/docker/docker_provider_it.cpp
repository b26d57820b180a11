// Docker-specific behaviour on the real engine, beyond the shared contract suite:
// negotiation, events, network modes, health warnings, exec edge cases.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <random>
#include <thread>

#include "docker/docker_provider.hpp"

namespace agentpane::docker {
namespace {

using namespace std::chrono_literals;

std::string rnd() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

class DockerIt : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = "it" + rnd();
    DockerProviderOptions o;
    o.scopeLabels = {{"agentpane.io/test-run", run_}};
    o.stopTimeoutSeconds = 1;
    auto p = DockerProvider::create(o);
    ASSERT_TRUE(p.ok());
    provider_ = std::move(p.value());
    auto v = provider_->client().version();
    ASSERT_TRUE(v.ok()) << "no Docker engine (run scripts/start-docker.sh): "
                        << v.error().describe();
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-it-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    std::filesystem::permissions(dir_, std::filesystem::perms::all);
  }
  void TearDown() override {
    if (!provider_) return;
    auto left = provider_->list(ListFilter{});
    if (left.ok()) {
      for (const auto& s : *left)
        (void)provider_->remove(sandboxRef(s));
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  SandboxSpec spec(const std::string& suffix) {
    SandboxSpec s;
    s.id = run_ + "-" + suffix;
    s.projectId = run_;
    s.agentId = "it";
    s.projectPath = dir_;
    s.memoryMb = 512;
    s.cpu = 1;
    return s;
  }
  std::string run_;
  std::string dir_;
  std::unique_ptr<DockerProvider> provider_;
};

TEST_F(DockerIt, NegotiatesWithTheRealEngine) {
  auto v = provider_->client().version();
  ASSERT_TRUE(v.ok());
  auto api = provider_->client().apiVersion();
  ASSERT_TRUE(api.ok());
  auto serverMax = ApiVersion::parse(v->apiVersion);
  ASSERT_TRUE(serverMax.has_value());
  EXPECT_EQ(*api, std::min(kMaxApiVersion, *serverMax));
}

TEST_F(DockerIt, EventsOfOurSandboxes) {
  auto events = provider_->subscribeEvents();
  ASSERT_TRUE(events.ok()) << events.error().describe();
  auto made = provider_->create(spec("ev"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ASSERT_TRUE(provider_->remove(sandboxRef(*made)).ok());
  std::vector<std::string> actions;
  // A watchdog that never hangs the suite: it closes the stream after 20 s unless told the
  // loop is over, and it is joined before anything it touches goes out of scope.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread guard([&] {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, 20s, [&] { return done; })) events.value()->close();
  });
  while (true) {
    auto ev = events.value()->next();
    if (!ev.ok() || !ev.value()) break;
    EXPECT_EQ(ev.value()->sandboxId, made->id);
    actions.push_back(ev.value()->action);
    if (ev.value()->action == "destroy") break;
  }
  {
    std::lock_guard lk(mu);
    done = true;
  }
  cv.notify_all();
  guard.join();
  events.value()->close();
  ASSERT_FALSE(actions.empty());
  EXPECT_EQ(actions.front(), "create");
  EXPECT_NE(std::find(actions.begin(), actions.end(), "start"), actions.end());
  EXPECT_EQ(actions.back(), "destroy");
}

TEST_F(DockerIt, NetworkModes) {
  SandboxSpec none = spec("none");
  auto a = provider_->create(none);
  ASSERT_TRUE(a.ok()) << a.error().describe();
  ExecRequest req;
  req.argv = {"sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"};
  auto ifs = provider_->exec(sandboxRef(*a), req);
  ASSERT_TRUE(ifs.ok());
  EXPECT_EQ(ifs->stdoutData, "lo ");

  SandboxSpec internal = spec("internal");
  internal.network = NetworkMode::Internal;
  auto b = provider_->create(internal);
  ASSERT_TRUE(b.ok()) << b.error().describe();
  // A network of its own (no sandbox shares one with another), internal.
  auto net = provider_->client().call("GET", "/networks/agentpane-" + internal.id);
  ASSERT_TRUE(net.ok());
  EXPECT_EQ((*net)["Internal"], true);
  auto ifs2 = provider_->exec(sandboxRef(*b), req);
  ASSERT_TRUE(ifs2.ok());
  EXPECT_EQ(ifs2->stdoutData, "eth0 lo ");
  // Attached to the internal network only (no traffic is sent: isolation is the engine's).
  auto inspected = provider_->client().call(
      "GET", "/containers/" + DockerProvider::containerName(internal.id) + "/json");
  ASSERT_TRUE(inspected.ok());
  const auto& nets = (*inspected)["NetworkSettings"]["Networks"];
  ASSERT_EQ(nets.size(), 1u);
  EXPECT_TRUE(nets.contains("agentpane-" + internal.id));

  SandboxSpec bridge = spec("bridge");
  bridge.network = NetworkMode::Bridge;
  auto c = provider_->create(bridge);
  ASSERT_TRUE(c.ok()) << c.error().describe();
  auto inspected2 = provider_->client().call(
      "GET", "/containers/" + DockerProvider::containerName(bridge.id) + "/json");
  ASSERT_TRUE(inspected2.ok());
  EXPECT_TRUE((*inspected2)["NetworkSettings"]["Networks"].contains("agentpane-" + bridge.id));
  // Removed with their sandboxes.
  ASSERT_TRUE(provider_->remove(sandboxRef(*b)).ok());
  ASSERT_TRUE(provider_->remove(sandboxRef(*c)).ok());
  for (const auto& id : {internal.id, bridge.id}) {
    auto gone = provider_->client().call("GET", "/networks/agentpane-" + id);
    ASSERT_FALSE(gone.ok()) << id;
    EXPECT_EQ(httpStatus(gone.error()), 404);
  }
}

TEST_F(DockerIt, HardeningIsInPlace) {
  auto made = provider_->create(spec("hard"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ExecRequest req;
  req.argv = {
      "sh", "-c",
      "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t ' ' '; cat /proc/1/comm"};
  auto r = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->stdoutData.find("CapEff: 0000000000000000"), std::string::npos) << r->stdoutData;
  EXPECT_NE(r->stdoutData.find("NoNewPrivs: 1"), std::string::npos) << r->stdoutData;
  EXPECT_NE(r->stdoutData.find("init"), std::string::npos) << r->stdoutData;  // docker-init (tini)
  req.argv = {"sh", "-c",
              "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"};
  auto pids = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(pids->stdoutData, "512\n");
}

TEST_F(DockerIt, ExecEdgeCases) {
  auto made = provider_->create(spec("edge"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ExecRequest req;
  req.argv = {"/no/such/binary"};
  auto missing = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(missing.ok()) << missing.error().describe();
  EXPECT_TRUE(missing->exitCode == 126 || missing->exitCode == 127) << missing->exitCode;

  // 16 MiB through cat while its output is read: no deadlock on full pipes.
  std::string data(16u << 20, '\0');
  std::mt19937 rng(1);
  for (auto& c : data)
    c = static_cast<char>(rng());
  req.argv = {"cat"};
  req.stdinData = data;
  auto echoed = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(echoed.ok()) << echoed.error().describe();
  EXPECT_TRUE(echoed->stdoutData == data);

  // A process that never reads stdin still finishes; the write error is not the exec's.
  req.argv = {"sh", "-c", "exit 7"};
  auto ignored = provider_->exec(sandboxRef(*made), req);
  ASSERT_TRUE(ignored.ok()) << ignored.error().describe();
  EXPECT_EQ(ignored->exitCode, 7);

  // Output limit.
  req.stdinData.reset();
  req.argv = {"head", "-c", "2000000", "/dev/zero"};
  req.maxOutputBytes = 1000000;
  auto capped = provider_->exec(sandboxRef(*made), req);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code, ErrorCode::ExecOutputTooLarge);
}

TEST_F(DockerIt, MoreCpusThanTheHostHasIsTheCallersError) {
  auto s = spec("cpus");
  s.cpu = std::thread::hardware_concurrency() + 1;
  auto made = provider_->create(s);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, ErrorCode::ValidationError) << made.error().describe();
  EXPECT_EQ(errorInfo(made.error().code).httpStatus, 400);
  EXPECT_NE(made.error().message.find("CPU"), std::string::npos) << made.error().message;
  EXPECT_EQ(made.error().details.at("field"), "cpu");
  auto left = provider_->list(ListFilter{});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());  // nothing made
}

// Another server's provider (another instance scope) never touches our container, even
// given a ref with its exact id and name: get/stop/exec are not found, remove is a no-op.
TEST_F(DockerIt, RefsOutsideTheInstanceScopeTouchNothing) {
  auto made = provider_->create(spec("scope"));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  const SandboxRef ref = sandboxRef(*made);
  ASSERT_FALSE(ref.uid.empty());

  DockerProviderOptions o;
  o.scopeLabels = {{"agentpane.io/test-run", run_ + "-other"}};
  auto other = DockerProvider::create(o);
  ASSERT_TRUE(other.ok());
  for (const SandboxRef& r : {ref, SandboxRef{"docker", "", "", "", ref.sandboxId}}) {
    EXPECT_EQ(other.value()->get(r).error().code, ErrorCode::SandboxNotFound);
    EXPECT_EQ(other.value()->stop(r).error().code, ErrorCode::SandboxNotFound);
    ExecRequest req;
    req.argv = {"true"};
    EXPECT_EQ(other.value()->exec(r, req).error().code, ErrorCode::SandboxNotFound);
    EXPECT_TRUE(other.value()->remove(r).ok());
  }
  // A ref whose id names a different sandbox than the container's labels is not found either.
  SandboxRef mismatched = ref;
  mismatched.sandboxId = run_ + "-someone-else";
  EXPECT_EQ(provider_->get(mismatched).error().code, ErrorCode::SandboxNotFound);
  EXPECT_TRUE(provider_->remove(mismatched).ok());

  auto still = provider_->get(ref);
  ASSERT_TRUE(still.ok()) << still.error().describe();
  EXPECT_EQ(still->state, SandboxState::Running);
  ASSERT_TRUE(provider_->remove(ref).ok());
}

TEST_F(DockerIt, HealthWarnsAboutAMissingDefaultImage) {
  DockerProviderOptions o;
  o.defaultImage = "agentpane/missing:" + rnd();
  auto p = DockerProvider::create(o);
  ASSERT_TRUE(p.ok());
  auto h = p.value()->healthCheck();
  EXPECT_TRUE(h.reachable);
  bool warned = false;
  for (const auto& w : h.warnings)
    warned = warned || w.find(o.defaultImage) != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(DockerIt, CleanupStoppedAndByAge) {
  auto a = provider_->create(spec("stopped"));
  auto b = provider_->create(spec("running"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(provider_->stop(sandboxRef(*a)).ok());
  CleanupFilter f;  // defaults: stopped and failed
  auto r = provider_->cleanup(f);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->removedIds, std::vector<std::string>{a->id});
  CleanupFilter age;
  age.createdBeforeUnix = b->createdAtUnix + 1;
  auto r2 = provider_->cleanup(age);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->removedIds, std::vector<std::string>{b->id});
}

}  // namespace
}  // namespace agentpane::docker
