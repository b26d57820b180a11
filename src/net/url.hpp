// URLs, the one place that reads and writes them: request targets (the server's router),
// endpoint URLs (DOCKER_HOST, AGENTPANE_URL, kubeconfig `server:`), query strings. Parsing is
// RFC 3986 by uriparser; its types stay in url.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::net {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// One parsed URI reference. Text fields are as written (still percent-encoded) unless the
// name says decoded.
struct Url {
  std::string scheme;         // lower-cased; empty for a relative reference
  bool hasAuthority = false;  // "//" was present (unix:///x has one, with an empty host)
  std::string userInfo;       // before '@'; non-empty means credentials were given
  std::string host;           // IPv6 without brackets, IPv4/names as written
  bool hostIsIpv6 = false;
  std::optional<std::uint16_t> port;  // absent when not written; "h:" (empty port) refused
  bool absolutePath = false;          // the path starts with '/'
  std::vector<std::string> segments;  // decoded path segments; a trailing '/' adds ""
  std::optional<std::string> query;   // after '?', without it
  std::optional<std::string> fragment;

  // The path as written ("" or "/a/b"), from the raw segments.
  std::string rawPath;
};

// Parses an absolute URI or a relative reference (RFC 3986). Refused (ValidationError,
// message naming the offset): characters URIs cannot hold (space, control bytes, '{', '"'
// …), bad %XX escapes, a port that is not 0-65535.
Result<Url> parseUrl(std::string_view text);

// Decodes %XX escapes (and '+' as a space when asked). Refused: a '%' not followed by two
// hex digits. NUL and control bytes decode as they are: callers that must refuse them do.
Result<std::string> percentDecode(std::string_view s, bool plusIsSpace = false);

// application/x-www-form-urlencoded pairs ("a=1&b=x+y"), in order, decoded, '+' as space.
// Empty pairs ("a=1&&b") are skipped; "k" alone gives ("k", "").
Result<QueryParams> parseQuery(std::string_view raw);

// RFC 3986: everything but unreserved characters (A-Z a-z 0-9 - . _ ~) becomes %XX, so the
// result is safe as a path segment or a query key or value.
std::string percentEncode(std::string_view s);

// "?k=v&k2=v2" with both sides encoded; "" when empty.
std::string queryString(const QueryParams& params);

}  // namespace agentpane::net
