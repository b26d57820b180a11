// The workspace-slot design (common/workspace_slot.hpp) on the real engine, without the
// provider: a container from the sandbox image mounts an empty slot at /workspace with bind
// propagation "rslave"; once it runs, a project bound onto the slot on the host shows inside
// it, a file written inside lands in the project, and releasing the slot leaves the project.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/workspace_slot.hpp"
#include "docker/docker_provider.hpp"

namespace agentpane::docker {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string rnd() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

class WorkspaceSlotDockerIt : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "mounting needs root (CI runs as root)";
    run_ = "slot" + rnd();
    DockerProviderOptions o;
    o.scopeLabels = {{"agentpane.io/test-run", run_}};
    auto p = DockerProvider::create(o);
    ASSERT_TRUE(p.ok());
    provider_ = std::move(p.value());
    auto v = provider_->client().version();
    ASSERT_TRUE(v.ok()) << "no Docker engine (run scripts/start-docker.sh): "
                        << v.error().describe();
    std::string tmpl = (fs::temp_directory_path() / "ap-slot-it-XXXXXX").string();
    base_ = ::mkdtemp(tmpl.data());
    fs::create_directories(base_ / "project");
    ASSERT_EQ(::chown((base_ / "project").c_str(), 1000, 1000), 0);
    std::ofstream(base_ / "project" / "hello.txt") << "from the host";
    slots_ = std::make_unique<WorkspaceSlots>(base_ / "slots");
    auto prepared = slots_->prepare();
    ASSERT_TRUE(prepared.ok()) << prepared.error().describe();
  }
  void TearDown() override {
    if (!container_.empty()) {
      EXPECT_TRUE(
          provider_->client().call("DELETE", "/containers/" + container_ + "?force=1").ok());
    }
    if (slots_) {
      EXPECT_TRUE(slots_->sweep({}).ok());
      const std::string root = slots_->root().string();
      while (::umount2(root.c_str(), MNT_DETACH) == 0) {
      }
    }
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }

  // An exec in the container (detached); its exit code once it ends.
  int execCode(const std::vector<std::string>& argv) {
    // From / : the image's working directory is /workspace, gone once the slot is released.
    json exec = {
        {"Cmd", argv}, {"AttachStdout", false}, {"User", "1000:1000"}, {"WorkingDir", "/"}};
    auto e = provider_->client().call("POST", "/containers/" + container_ + "/exec", &exec);
    EXPECT_TRUE(e.ok());
    if (!e.ok()) return -1;
    const std::string id = (*e)["Id"];
    json start = {{"Detach", true}};
    auto started = provider_->client().call("POST", "/exec/" + id + "/start", &start);
    EXPECT_TRUE(started.ok()) << started.error().describe();
    for (int i = 0; i < 1000; ++i) {
      auto st = provider_->client().call("GET", "/exec/" + id + "/json");
      EXPECT_TRUE(st.ok());
      if (!st.ok()) return -1;
      if (!(*st)["Running"].get<bool>() && !(*st)["ExitCode"].is_null()) {
        return (*st)["ExitCode"].get<int>();
      }
    }
    return -1;
  }

  std::string run_;
  fs::path base_;
  std::unique_ptr<DockerProvider> provider_;
  std::unique_ptr<WorkspaceSlots> slots_;
  std::string container_;
};

TEST_F(WorkspaceSlotDockerIt, AProjectBoundAfterStartShowsInTheRunningContainer) {
  auto slot = slots_->make(run_ + "-sb", 1000, 1000);
  ASSERT_TRUE(slot.ok()) << slot.error().describe();
  const std::string name = "agentpane-slot-it-" + run_;
  json body = {{"Image", "agentpane/sandbox:latest"},
               {"Cmd", {"sleep", "infinity"}},
               {"User", "1000:1000"},
               {"Labels", {{"agentpane.io/test-run", run_}}},
               {"HostConfig",
                {{"NetworkMode", "none"},
                 {"CapDrop", {"ALL"}},
                 {"Mounts",
                  {{{"Type", "bind"},
                    {"Source", slot->string()},
                    {"Target", "/workspace"},
                    {"BindOptions", {{"Propagation", "rslave"}}}}}}}}};
  auto made = provider_->client().call("POST", "/containers/create?name=" + name, &body);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  container_ = name;
  auto started = provider_->client().call("POST", "/containers/" + name + "/start");
  ASSERT_TRUE(started.ok()) << started.error().describe();

  EXPECT_EQ(execCode({"sh", "-c", "[ -z \"$(ls -A /workspace)\" ]"}), 0) << "slot not empty";
  EXPECT_NE(execCode({"test", "-f", "/workspace/hello.txt"}), 0);

  ASSERT_TRUE(slots_->bind(run_ + "-sb", (base_ / "project").string()).ok());
  EXPECT_EQ(execCode({"sh", "-c", "ls /workspace | grep -qx hello.txt"}), 0)
      << "the bound project did not propagate into the running container";
  EXPECT_EQ(execCode({"grep", "-qx", "from the host", "/workspace/hello.txt"}), 0);
  EXPECT_EQ(execCode({"sh", "-c", "echo from the sandbox > /workspace/made-inside.txt"}), 0);
  std::ifstream in(base_ / "project" / "made-inside.txt");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "from the sandbox");
  struct stat st {};
  ASSERT_EQ(::stat((base_ / "project" / "made-inside.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  // Released while the container runs: gone inside, the project untouched.
  ASSERT_TRUE(slots_->release(run_ + "-sb").ok());
  EXPECT_NE(execCode({"test", "-f", "/workspace/hello.txt"}), 0);
  EXPECT_TRUE(fs::exists(base_ / "project" / "hello.txt"));
  EXPECT_TRUE(fs::exists(base_ / "project" / "made-inside.txt"));
}

}  // namespace
}  // namespace agentpane::docker
