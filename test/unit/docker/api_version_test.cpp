#include <gtest/gtest.h>

#include "docker/api_version.hpp"

namespace agentpane::docker {
namespace {

TEST(ApiVersion, ParseAndCompare) {
  EXPECT_EQ(ApiVersion::parse("1.41"), (ApiVersion{1, 41}));
  EXPECT_EQ(ApiVersion::parse("1.9")->toString(), "1.9");
  EXPECT_LT(*ApiVersion::parse("1.9"), *ApiVersion::parse("1.10"));  // numeric, not text
  for (const char* bad : {"", "1", "1.", ".4", "a.b", "1.4x", "-1.2", "1.41.0"}) {
    EXPECT_FALSE(ApiVersion::parse(bad).has_value()) << bad;
  }
}

struct Case {
  const char* serverMax;  // "" = not reported
  const char* serverMin;
  const char* want;  // "" = refused
};

TEST(ApiVersion, NegotiationTable) {
  const Case cases[] = {
      {"1.41", "1.12", "1.41"},  // Debian 12's engine 20.10
      {"1.41", "", "1.41"},      // /_ping only: no minimum known
      {"1.43", "1.12", "1.43"},  // Engine 24
      {"1.47", "1.24", "1.47"},  // Engine 27: exactly ours
      {"1.51", "1.44", "1.47"},  // Engine 29 (min 1.44): ours is lower and allowed
      {"1.52", "1.48", "1.48"},  // a server that refuses ours: never below its minimum
      {"1.40", "1.12", ""},      // too old for us
      {"", "", ""},              // nothing reported
  };
  for (const auto& c : cases) {
    auto maxV = ApiVersion::parse(c.serverMax);
    auto minV = ApiVersion::parse(c.serverMin);
    auto r = negotiateApiVersion(kMaxApiVersion, maxV, minV);
    if (std::string(c.want).empty()) {
      ASSERT_FALSE(r.ok()) << c.serverMax;
      EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderUnavailable);
    } else {
      ASSERT_TRUE(r.ok()) << c.serverMax << ": " << r.error().describe();
      EXPECT_EQ(r->toString(), c.want) << c.serverMax << "/" << c.serverMin;
    }
  }
}

}  // namespace
}  // namespace agentpane::docker
