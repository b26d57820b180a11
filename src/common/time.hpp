// RFC 3339 timestamps ("2024-05-01T12:34:56.123456789Z", "…+02:00"), as the Docker engine
// and the Kubernetes API write them. Parsing and formatting are Howard Hinnant's date
// library; its types stay in time.cpp.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "agentpane/result.hpp"

namespace agentpane {

// Seconds and nanoseconds apart (as protobuf's Timestamp), so that Go's zero time
// (0001-01-01T00:00:00Z, what both Docker and Kubernetes write for "never") still fits:
// a nanosecond count in 64 bits ends in 1677.
struct Timestamp {
  std::int64_t unixSeconds = 0;
  std::uint32_t nanos = 0;  // 0..999'999'999, toward the future
  auto operator<=>(const Timestamp&) const = default;
};

// Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM). 'T'/'t' and 'Z'/'z' are both accepted
// (RFC 3339 §5.6); a fraction of 1 to 9 digits is kept to the nanosecond. Refused
// (ValidationError): any other shape, an out-of-range field (month 13, 25:00, Feb 30), an
// offset beyond ±23:59, trailing text.
Result<Timestamp> parseRfc3339(std::string_view text);

// Unix seconds of an RFC 3339 time (the fraction is dropped, toward the past).
Result<std::int64_t> parseRfc3339Unix(std::string_view text);

// Formats in UTC with a 'Z'. fractionDigits 0 gives whole seconds (Kubernetes'
// metav1.Time), 9 gives RFC3339Nano's precision without trimming; values in between cut.
std::string formatRfc3339(Timestamp t, int fractionDigits = 0);
std::string formatRfc3339Unix(std::int64_t unixSeconds);

// A wall-clock time to a Timestamp (for "now" and deadlines).
Timestamp toTimestamp(std::chrono::system_clock::time_point t);

}  // namespace agentpane
