// `agentpane audit ls --since/--until`: the times the CLI accepts.
#include <gtest/gtest.h>

#include "cli/audit_commands.hpp"

namespace agentpane::cli {
namespace {

constexpr std::int64_t kNow = 1'796'416'000'000;

TEST(AuditTime, AgesCountBackFromNow) {
  EXPECT_EQ(parseAuditTime("90s", kNow).value(), kNow - 90'000);
  EXPECT_EQ(parseAuditTime("15m", kNow).value(), kNow - 15 * 60'000);
  EXPECT_EQ(parseAuditTime("2h", kNow).value(), kNow - 2 * 3'600'000);
  EXPECT_EQ(parseAuditTime("7d", kNow).value(), kNow - 7 * 86'400'000LL);
}

TEST(AuditTime, Rfc3339AndUnixMilliseconds) {
  EXPECT_EQ(parseAuditTime("1970-01-01T00:00:01.5Z", kNow).value(), 1500);
  EXPECT_EQ(parseAuditTime("2026-12-04T20:00:00+01:00", kNow).value(), 1'796'410'800'000);
  EXPECT_EQ(parseAuditTime("1234", kNow).value(), 1234);
}

TEST(AuditTime, AnythingElseIsRefused) {
  for (const char* bad :
       {"", "yesterday", "5w", "m", "-5m", "2026-13-01T00:00:00Z", "99999999999999999999"}) {
    auto r = parseAuditTime(bad, kNow);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << bad;
  }
}

}  // namespace
}  // namespace agentpane::cli
