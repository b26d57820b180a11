#include "common/time.hpp"

#include <date/date.h>

#include <sstream>

namespace agentpane {
namespace {

Error invalid(std::string_view text, const char* why) {
  return {ErrorCode::ValidationError,
          "invalid RFC 3339 time '" + std::string(text.substr(0, 64)) + "': " + why};
}

bool digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

Result<Timestamp> parseRfc3339(std::string_view text) {
  // date::parse is lenient about widths ("%Y" takes 1-4 digits, "%S" any fraction length)
  // and ignores the letter case of nothing: the fixed RFC 3339 shape is checked first.
  if (text.size() < 20 || text.size() > 35) return invalid(text, "wrong length");
  if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') || text[13] != ':' ||
      text[16] != ':' || !digits(text.substr(0, 4)) || !digits(text.substr(5, 2)) ||
      !digits(text.substr(8, 2)) || !digits(text.substr(11, 2)) || !digits(text.substr(14, 2)) ||
      !digits(text.substr(17, 2))) {
    return invalid(text, "expected YYYY-MM-DDTHH:MM:SS");
  }
  std::string_view rest = text.substr(19);
  std::string_view fraction;
  if (rest.front() == '.') {
    auto end = rest.find_first_not_of("0123456789", 1);
    fraction = rest.substr(1, end == std::string_view::npos ? end : end - 1);
    if (fraction.empty() || fraction.size() > 9) return invalid(text, "fraction of 1-9 digits");
    rest = rest.substr(1 + fraction.size());
  }
  std::string zone;
  if (rest == "Z" || rest == "z") {
    zone = "+00:00";
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
             digits(rest.substr(1, 2)) && digits(rest.substr(4, 2))) {
    zone = std::string(rest);
  } else {
    return invalid(text, "expected Z or an offset ±HH:MM");
  }

  std::string normalized(text.substr(0, 19));
  normalized[10] = 'T';
  normalized += zone;
  std::istringstream in(normalized);
  date::sys_seconds tp;
  std::chrono::minutes offset{};
  in >> date::parse("%FT%T%Ez", tp, offset);
  if (in.fail() || in.peek() != std::char_traits<char>::eof()) {
    return invalid(text, "a field is out of range");
  }
  if (offset >= std::chrono::hours(24) || offset <= -std::chrono::hours(24))
    return invalid(text, "offset out of range");
  Timestamp out;
  // date::parse already subtracts the offset (%Ez) to give UTC.
  out.unixSeconds = tp.time_since_epoch().count();
  std::string nanos(fraction);
  nanos.append(9 - nanos.size(), '0');
  out.nanos = static_cast<std::uint32_t>(std::stoul(nanos));
  return out;
}

Result<std::int64_t> parseRfc3339Unix(std::string_view text) {
  auto t = parseRfc3339(text);
  if (!t.ok()) return t.takeError();
  return t->unixSeconds;
}

std::string formatRfc3339(Timestamp t, int fractionDigits) {
  std::string out = date::format("%FT%T", date::sys_seconds(std::chrono::seconds(t.unixSeconds)));
  if (fractionDigits > 0) {
    std::string frac = std::to_string(t.nanos % 1'000'000'000u);
    frac.insert(0, 9 - frac.size(), '0');
    out += "." + frac.substr(0, static_cast<std::size_t>(std::min(fractionDigits, 9)));
  }
  return out + "Z";
}

std::string formatRfc3339Unix(std::int64_t unixSeconds) {
  return formatRfc3339(Timestamp{unixSeconds, 0});
}

Timestamp toTimestamp(std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::time_point_cast<std::chrono::nanoseconds>(t);
  auto secs = std::chrono::floor<std::chrono::seconds>(ns);
  return {secs.time_since_epoch().count(), static_cast<std::uint32_t>((ns - secs).count())};
}

}  // namespace agentpane
