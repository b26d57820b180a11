// URL pieces that every client builds: percent-encoding and query strings.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace agentpane::net {

// RFC 3986: everything but unreserved characters (A-Z a-z 0-9 - . _ ~) becomes %XX.
std::string percentEncode(std::string_view s);

// "?k=v&k2=v2" with both sides encoded; "" when empty.
std::string queryString(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace agentpane::net
