// WorkspaceSlots: real mounts (the suite runs as root, as CI does), including the
// propagation a running sandbox relies on: a slave copy of a slot (what Docker's "rslave" and
// Kubernetes' HostToContainer make) sees a project bound after it was made.
#include "common/workspace_slot.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>

#include "unit/temp_dir.hpp"

namespace agentpane {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class WorkspaceSlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting needs root (CI runs as root)";
    slots = std::make_unique<WorkspaceSlots>(base.path() / "slots");
    ASSERT_TRUE(slots->prepare().ok());
    project = projects.mkdir("proj");
    std::ofstream(fs::path(project) / "README") << "hello";
  }
  void TearDown() override {
    if (!slots) return;
    // Nothing may stay mounted under a directory the TempDir deletes recursively.
    for (const auto& v : views)
      ::umount2(v.c_str(), MNT_DETACH);
    (void)slots->sweep({});
    ::umount2(slots->root().c_str(), MNT_DETACH);
  }

  testing::TempDir base;
  testing::TempDir projects;
  std::unique_ptr<WorkspaceSlots> slots;
  std::string project;
  std::vector<fs::path> views;
};

TEST_F(WorkspaceSlotsTest, ABoundProjectIsLiveThroughTheSlotAndReleaseLeavesItUntouched) {
  auto slot = slots->make("sbx-aaaaaaaaaaaa", 1000, 1000);
  ASSERT_TRUE(slot.ok()) << slot.error().describe();
  EXPECT_TRUE(fs::is_empty(*slot));
  EXPECT_FALSE(slots->isBound("sbx-aaaaaaaaaaaa"));
  ASSERT_TRUE(slots->bind("sbx-aaaaaaaaaaaa", project).ok());
  EXPECT_TRUE(slots->isBound("sbx-aaaaaaaaaaaa"));
  EXPECT_EQ(readFile(*slot / "README"), "hello");
  std::ofstream(*slot / "written-in-sandbox") << "back";
  EXPECT_EQ(readFile(fs::path(project) / "written-in-sandbox"), "back");

  ASSERT_TRUE(slots->release("sbx-aaaaaaaaaaaa").ok());
  EXPECT_FALSE(fs::exists(*slot));
  EXPECT_EQ(readFile(fs::path(project) / "README"), "hello");
  EXPECT_EQ(readFile(fs::path(project) / "written-in-sandbox"), "back");
  EXPECT_TRUE(slots->release("sbx-aaaaaaaaaaaa").ok());  // idempotent
}

TEST_F(WorkspaceSlotsTest, ASlaveCopyMadeBeforeTheBindSeesTheProject) {
  auto slot = slots->make("sbx-bbbbbbbbbbbb", 0, 0);
  ASSERT_TRUE(slot.ok());
  // What a container runtime does at start: bind the (empty) slot, then make it a slave.
  const fs::path view = base.mkdir("view");
  ASSERT_EQ(::mount(slot->c_str(), view.c_str(), nullptr, MS_BIND, nullptr), 0);
  views.push_back(view);
  ASSERT_EQ(::mount(nullptr, view.c_str(), nullptr, MS_SLAVE, nullptr), 0);
  EXPECT_TRUE(fs::is_empty(view));
  // The claim: the project appears in the running "sandbox".
  ASSERT_TRUE(slots->bind("sbx-bbbbbbbbbbbb", project).ok());
  EXPECT_EQ(readFile(view / "README"), "hello");
  // Released: gone from the sandbox too, the project kept.
  ASSERT_TRUE(slots->release("sbx-bbbbbbbbbbbb").ok());
  EXPECT_FALSE(fs::exists(view / "README"));
  EXPECT_EQ(readFile(fs::path(project) / "README"), "hello");
}

TEST_F(WorkspaceSlotsTest, BindIsIdempotentForTheSameProjectAndRefusesAnother) {
  ASSERT_TRUE(slots->make("sbx-cccccccccccc", 0, 0).ok());
  ASSERT_TRUE(slots->make("sbx-cccccccccccc", 0, 0).ok());  // idempotent
  ASSERT_TRUE(slots->bind("sbx-cccccccccccc", project).ok());
  EXPECT_TRUE(slots->bind("sbx-cccccccccccc", project).ok());
  auto other = slots->bind("sbx-cccccccccccc", projects.mkdir("other"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::Conflict);
  EXPECT_EQ(slots->bind("sbx-dddddddddddd", project).error().code, ErrorCode::SandboxNotFound);
  ASSERT_TRUE(slots->make("sbx-dddddddddddd", 0, 0).ok());
  EXPECT_EQ(slots->bind("sbx-dddddddddddd", project + "/README").error().code,
            ErrorCode::SandboxProjectPathInvalid);
  EXPECT_TRUE(slots->prepare().ok());  // again: nothing changes
}

TEST_F(WorkspaceSlotsTest, HostileIdsAreRefused) {
  for (const std::string& id :
       std::vector<std::string>{"", "..", "../etc", "a/b", "UPPER", std::string(64, 'a')}) {
    EXPECT_EQ(slots->make(id, 0, 0).error().code, ErrorCode::ValidationError) << id;
    EXPECT_EQ(slots->bind(id, project).error().code, ErrorCode::ValidationError) << id;
    EXPECT_EQ(slots->release(id).error().code, ErrorCode::ValidationError) << id;
    EXPECT_FALSE(slots->isBound(id));
  }
}

TEST_F(WorkspaceSlotsTest, SweepReleasesEverySlotButTheKeptOnes) {
  for (const char* id : {"sbx-a00000000001", "sbx-a00000000002", "sbx-a00000000003"})
    ASSERT_TRUE(slots->make(id, 0, 0).ok());
  ASSERT_TRUE(slots->bind("sbx-a00000000001", project).ok());
  auto swept = slots->sweep({"sbx-a00000000002"});
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->size(), 2u);
  EXPECT_EQ(slots->list(), std::vector<std::string>{"sbx-a00000000002"});
  EXPECT_EQ(readFile(fs::path(project) / "README"), "hello");
}

TEST_F(WorkspaceSlotsTest, ASlotThatIsNotEmptyIsLeftRatherThanDeleted) {
  auto slot = slots->make("sbx-eeeeeeeeeeee", 0, 0);
  ASSERT_TRUE(slot.ok());
  std::ofstream(*slot / "stray") << "x";  // written into the slot itself, not a project
  auto r = slots->release("sbx-eeeeeeeeeeee");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(fs::exists(*slot / "stray"));
  fs::remove(*slot / "stray");
}

}  // namespace
}  // namespace agentpane
