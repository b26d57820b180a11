#include "docker/sandbox_user.hpp"

#include <gtest/gtest.h>

namespace agentpane::docker {
namespace {

TEST(SandboxUser, FollowsTheProjectOwner) {
  EXPECT_EQ(sandboxUserFor(1000, 1000), (SandboxUser{1000, 1000}));
  EXPECT_EQ(sandboxUserFor(1234, 5678), (SandboxUser{1234, 5678}));
  // Never gid 0 for a non-root sandbox (as on Kubernetes).
  EXPECT_EQ(sandboxUserFor(1234, 0), (SandboxUser{1234, 1234}));
  // Root-owned: root, whatever the group.
  EXPECT_EQ(sandboxUserFor(0, 0), (SandboxUser{0, 0}));
  EXPECT_EQ(sandboxUserFor(0, 5678), (SandboxUser{0, 0}));
  EXPECT_TRUE(sandboxUserFor(0, 0).isRoot());
  EXPECT_EQ(sandboxUserFor(4294967294u, 7).toString(), "4294967294:7");
}

TEST(SandboxUser, LabelRoundTrip) {
  for (SandboxUser u : {SandboxUser{0, 0}, SandboxUser{1000, 1000}, SandboxUser{1234, 5678},
                        SandboxUser{4294967295u, 4294967295u}}) {
    EXPECT_EQ(parseSandboxUser(u.toString()), u) << u.toString();
  }
  for (const char* bad : {"", ":", "1", "1:", ":1", "+1:1", "-1:1", "1:-1", "1 :1", "1:1 ", "1:1:1",
                          "a:b", "4294967296:1", "0x10:1"}) {
    EXPECT_FALSE(parseSandboxUser(bad).has_value()) << bad;
  }
}

TEST(SandboxUser, HomeOnlyWhereThereIsNoPasswdEntry) {
  EXPECT_FALSE(homeFor({0, 0}).has_value());        // /root
  EXPECT_FALSE(homeFor({1000, 1000}).has_value());  // the image's user: /home/agent
  EXPECT_FALSE(homeFor({1000, 100}).has_value());
  EXPECT_EQ(homeFor({1234, 1234}), "/tmp");
}

}  // namespace
}  // namespace agentpane::docker
