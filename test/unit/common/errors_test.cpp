#include <gtest/gtest.h>

#include <set>

#include "agentpane/errors.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane {
namespace {

TEST(ErrorCatalogue, EveryCodeHasAUniqueNameStatusAndExitCode) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ErrorCode::WarmPoolPrewarmFailed); ++i) {
    auto code = static_cast<ErrorCode>(i);
    const auto& info = errorInfo(code);
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_GE(info.httpStatus, 400);
    EXPECT_LT(info.httpStatus, 600);
    EXPECT_NE(info.cliExitCode, 0);
    EXPECT_EQ(errorFromName(info.name), code);
  }
}

TEST(ErrorCatalogue, NamesCarryThePlanPrefixes) {
  EXPECT_EQ(errorName(ErrorCode::SandboxNotFound), "SANDBOX_NOT_FOUND");
  EXPECT_EQ(errorName(ErrorCode::K8sPodStartupTimeout), "K8S_POD_STARTUP_TIMEOUT");
  EXPECT_EQ(errorName(ErrorCode::K8sUnreachable), "K8S_CLUSTER_UNREACHABLE");
  EXPECT_EQ(errorInfo(ErrorCode::K8sUnreachable).httpStatus, 503);
  EXPECT_EQ(errorName(ErrorCode::WarmPoolExhausted), "WARM_POOL_EXHAUSTED");
  EXPECT_EQ(errorName(ErrorCode::ExecTimeout), "EXEC_TIMEOUT");
  EXPECT_EQ(errorInfo(ErrorCode::TmuxSessionExists).httpStatus, 409);
  EXPECT_EQ(errorFromName("NO_SUCH_CODE"), ErrorCode::Internal);
}

TEST(Validation, SandboxIds) {
  EXPECT_TRUE(isValidSandboxId("sbx-0a1b"));
  EXPECT_FALSE(isValidSandboxId(""));
  EXPECT_FALSE(isValidSandboxId("-a"));
  EXPECT_FALSE(isValidSandboxId("a;id"));
  EXPECT_FALSE(isValidSandboxId("A"));
  EXPECT_FALSE(isValidSandboxId(std::string(64, 'a')));
  EXPECT_FALSE(isValidSandboxId("../etc"));
}

TEST(Validation, LabelValues) {
  EXPECT_TRUE(isValidLabelValue(""));
  EXPECT_TRUE(isValidLabelValue("proj_1.x-y"));
  EXPECT_FALSE(isValidLabelValue("a b"));
  EXPECT_FALSE(isValidLabelValue("-a"));
  EXPECT_FALSE(isValidLabelValue(std::string(64, 'a')));
}

}  // namespace
}  // namespace agentpane
