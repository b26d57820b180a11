// The host-path rule: only strictly inside a project root, never system directories, engine
// sockets, the server's home or its state, with symlinks resolved first.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/path_policy.hpp"

namespace agentpane {
namespace {

namespace fs = std::filesystem;

class PathPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    base = fs::canonical(fs::temp_directory_path()) /
           ("ap-path-policy-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(base / "root" / "proj" / "sub");
    fs::create_directories(base / "home" / ".agentpane");
    fs::create_directories(base / "elsewhere");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  PathPolicy policy(std::vector<std::string> roots = {}) {
    PathPolicy::Settings s;
    s.roots = roots.empty()
                  ? std::vector<std::string>{(base / "root").string(), (base / "home").string()}
                  : std::move(roots);
    s.userHome = (base / "home").string();
    s.serverHome = (base / "home" / ".agentpane").string();
    return PathPolicy(s);
  }

  void expectRefused(const PathPolicy& p, const std::string& path, ErrorCode code,
                     const std::string& rule) {
    auto r = p.check(path, "projectPath");
    ASSERT_FALSE(r.ok()) << path << " was accepted as " << r.value();
    EXPECT_EQ(r.error().code, code) << path << ": " << r.error().message;
    EXPECT_EQ(r.error().details.at("rule"), rule) << path << ": " << r.error().message;
    EXPECT_EQ(r.error().details.at("field"), "projectPath");
  }

  fs::path base;
};

TEST_F(PathPolicyTest, AcceptsOnlyStrictlyInsideARoot) {
  auto p = policy();
  auto ok = p.check((base / "root" / "proj").string(), "projectPath");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value(), base / "root" / "proj");
  EXPECT_TRUE(p.check((base / "root" / "proj" / "sub").string(), "projectPath").ok());
  expectRefused(p, (base / "root").string(), ErrorCode::PathForbidden,
                path_rule::kOutsideRoots);  // the root itself
  expectRefused(p, (base / "elsewhere").string(), ErrorCode::PathForbidden,
                path_rule::kOutsideRoots);
  expectRefused(p, (base / "root" / ".." / "elsewhere").string(), ErrorCode::PathForbidden,
                path_rule::kOutsideRoots);
  expectRefused(p, "relative/dir", ErrorCode::SandboxProjectPathInvalid, path_rule::kNotAbsolute);
  expectRefused(p, (base / "root" / "missing").string(), ErrorCode::SandboxProjectPathInvalid,
                path_rule::kNotFound);
}

TEST_F(PathPolicyTest, ServerHomeAndStateAreRefused) {
  auto p = policy();
  expectRefused(p, (base / "home").string(), ErrorCode::PathForbidden, path_rule::kServerHome);
  expectRefused(p, (base / "home" / ".agentpane").string(), ErrorCode::PathForbidden,
                path_rule::kServerState);
  fs::create_directories(base / "home" / "code");
  EXPECT_TRUE(p.check((base / "home" / "code").string(), "projectPath").ok());
}

TEST_F(PathPolicyTest, SystemAndEngineDirectoriesAreRefusedWhateverTheRoots) {
  auto p = policy({"/"});  // a root of "/" would allow everything but the deny list
  expectRefused(p, "/", ErrorCode::PathForbidden, path_rule::kSystemDirectory);
  expectRefused(p, "/etc", ErrorCode::PathForbidden, path_rule::kSystemDirectory);
  expectRefused(p, "/usr/lib", ErrorCode::PathForbidden, path_rule::kSystemDirectory);
  expectRefused(p, "/proc/self", ErrorCode::PathForbidden, path_rule::kSystemDirectory);
  expectRefused(p, "/var/run", ErrorCode::PathForbidden, path_rule::kEngineSocketDirectory);
  expectRefused(p, "/run", ErrorCode::PathForbidden, path_rule::kEngineSocketDirectory);
  expectRefused(p, "/tmp", ErrorCode::PathForbidden, path_rule::kSystemDirectory);
  EXPECT_TRUE(p.check((base / "root" / "proj").string(), "projectPath").ok());
}

TEST_F(PathPolicyTest, SymlinksAreResolvedBeforeTheRules) {
  auto p = policy();
  fs::create_directory_symlink("/etc", base / "root" / "etc-link");
  expectRefused(p, (base / "root" / "etc-link").string(), ErrorCode::PathForbidden,
                path_rule::kSystemDirectory);
  fs::create_directory_symlink(base / "elsewhere", base / "root" / "out-link");
  expectRefused(p, (base / "root" / "out-link").string(), ErrorCode::PathForbidden,
                path_rule::kOutsideRoots);
  fs::create_directory_symlink(base / "home", base / "root" / "home-link");
  expectRefused(p, (base / "root" / "home-link").string(), ErrorCode::PathForbidden,
                path_rule::kServerHome);
  // A link from outside into a root is fine: what counts is where it leads.
  fs::create_directory_symlink(base / "root" / "proj", base / "elsewhere" / "in-link");
  auto in = p.check((base / "elsewhere" / "in-link").string(), "projectPath");
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ(in.value(), base / "root" / "proj");
}

TEST_F(PathPolicyTest, ExtraDeniedDirectoriesAndDroppedRoots) {
  PathPolicy::Settings s;
  s.roots = {(base / "root").string(), (base / "nope").string(), "relative"};
  s.extraDenied = {(base / "root" / "proj").string()};
  PathPolicy p(s);
  ASSERT_EQ(p.roots().size(), 1u);
  EXPECT_EQ(p.droppedRoots(), (std::vector<std::string>{(base / "nope").string(), "relative"}));
  expectRefused(p, (base / "root" / "proj" / "sub").string(), ErrorCode::PathForbidden,
                path_rule::kEngineSocketDirectory);
}

TEST_F(PathPolicyTest, RootsFromFlagsThenEnvironmentThenHomeAndTemp) {
  const char* oldHome = std::getenv("HOME");
  std::string savedHome = oldHome ? oldHome : "";
  setenv("HOME", (base / "home").c_str(), 1);
  unsetenv("AGENTPANE_PROJECT_ROOTS");
  auto dflt = PathPolicy::settingsFromEnvironment({}, "");
  EXPECT_EQ(dflt.roots, (std::vector<std::string>{(base / "home").string(),
                                                  fs::temp_directory_path().string()}));
  EXPECT_EQ(dflt.userHome, (base / "home").string());
  setenv("AGENTPANE_PROJECT_ROOTS", "/a::/b:", 1);
  EXPECT_EQ(PathPolicy::settingsFromEnvironment({}, "").roots,
            (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(PathPolicy::settingsFromEnvironment({"/c"}, "").roots,
            (std::vector<std::string>{"/c"}));
  unsetenv("AGENTPANE_PROJECT_ROOTS");
  if (oldHome) setenv("HOME", savedHome.c_str(), 1);
}

TEST(PathHelpers, InsideIsByComponentsNotPrefix) {
  EXPECT_TRUE(isSameOrInside("/a/b", "/a"));
  EXPECT_TRUE(isSameOrInside("/a", "/a"));
  EXPECT_FALSE(isSameOrInside("/ab", "/a"));
  EXPECT_FALSE(isStrictlyInside("/a", "/a"));
  EXPECT_TRUE(isStrictlyInside("/a/b", "/a"));
  EXPECT_TRUE(isStrictlyInside("/a", "/"));
  EXPECT_FALSE(isStrictlyInside("/runx", "/run"));
}

}  // namespace
}  // namespace agentpane
