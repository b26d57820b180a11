// RFC 3339 over Howard Hinnant's date: the forms the Docker engine and Kubernetes write.
#include <gtest/gtest.h>

#include "common/time.hpp"

namespace agentpane {
namespace {

TEST(Rfc3339, ParsesFractionsAndOffsets) {
  EXPECT_EQ(parseRfc3339Unix("1970-01-01T00:00:00Z").value(), 0);
  EXPECT_EQ(parseRfc3339Unix("2024-05-01T12:34:56Z").value(), 1714566896);
  EXPECT_EQ(parseRfc3339Unix("2024-05-01T14:34:56+02:00").value(), 1714566896);
  EXPECT_EQ(parseRfc3339Unix("2024-05-01T07:04:56-05:30").value(), 1714566896);
  EXPECT_EQ(parseRfc3339Unix("2024-05-01t12:34:56z").value(), 1714566896);
  auto nano = parseRfc3339("2024-05-01T12:34:56.123456789Z");
  ASSERT_TRUE(nano.ok()) << nano.error().message;
  EXPECT_EQ(nano.value(), (Timestamp{1714566896, 123456789}));
  auto half = parseRfc3339("2024-05-01T12:34:56.5+00:00");
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half.value(), (Timestamp{1714566896, 500000000}));
  EXPECT_EQ(parseRfc3339Unix("2024-02-29T23:59:59Z").value(), 1709251199);    // leap day
  EXPECT_EQ(parseRfc3339Unix("0001-01-01T00:00:00Z").value(), -62135596800);  // Go's zero time
}

TEST(Rfc3339, RefusesOtherShapes) {
  for (const char* bad :
       {"", "yesterday", "2024-05-01", "2024-05-01 12:34:56Z", "2024-05-01T12:34:56",
        "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01T25:00:00Z",
        "2024-05-01T12:60:00Z", "2024-05-01T12:34:56.Z", "2024-05-01T12:34:56.1234567890Z",
        "2024-05-01T12:34:56+0200", "2024-05-01T12:34:56+24:00", "2024-05-01T12:34:56Zjunk",
        "24-05-01T12:34:56Z", "+2024-05-01T12:34:56Z"}) {
    auto t = parseRfc3339(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.error().code, ErrorCode::ValidationError) << bad;
  }
}

TEST(Rfc3339, FormatsInUtcAndRoundTrips) {
  Timestamp t{1714566896, 120000000};
  EXPECT_EQ(formatRfc3339(t), "2024-05-01T12:34:56Z");
  EXPECT_EQ(formatRfc3339(t, 3), "2024-05-01T12:34:56.120Z");
  EXPECT_EQ(formatRfc3339(t, 9), "2024-05-01T12:34:56.120000000Z");
  EXPECT_EQ(formatRfc3339Unix(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(parseRfc3339(formatRfc3339(t, 9)).value(), t);
  Timestamp before{-1, 250000000};  // 1969-12-31T23:59:59.25
  EXPECT_EQ(formatRfc3339(before, 2), "1969-12-31T23:59:59.25Z");
  EXPECT_EQ(parseRfc3339(formatRfc3339(before, 9)).value(), before);
  EXPECT_EQ(formatRfc3339(Timestamp{-62135596800, 0}), "0001-01-01T00:00:00Z");
  using namespace std::chrono;
  EXPECT_EQ(toTimestamp(system_clock::time_point(seconds(5) + nanoseconds(7))), (Timestamp{5, 7}));
}

}  // namespace
}  // namespace agentpane
