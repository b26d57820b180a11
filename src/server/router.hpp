// Request targets and route patterns. Path parameters are validated here, by kind, so that
// a hostile id (`a;id`, `$(id)`, `../x`) is a 400 before any handler or the service sees it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::server {

struct Target {
  std::vector<std::string> segments;  // percent-decoded path segments
  std::map<std::string, std::string> query;
};

// Splits and percent-decodes a request target. Refused (ValidationError): a target not
// starting with '/', what RFC 3986 does not allow in a URI (net::parseUrl), bad escapes, NUL
// or control bytes, "." and ".." segments, empty inner segments. A trailing slash is ignored.
Result<Target> parseTarget(std::string_view target);

// Path parameter kinds, spelled in patterns as `{sandbox}`, `{config}`, `{tmux}`.
enum class ParamKind { SandboxId, ConfigId, TmuxName, CommandId };

// Config ids: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}.
bool isValidConfigId(std::string_view id);

struct PatternMatch {
  std::map<std::string, std::string> params;  // "id" (sandbox or config), "name" (tmux)
};

// A route pattern such as "/api/sandboxes/{sandbox}/tmux/{tmux}/keys". Its metrics label
// is the same pattern with `:id` / `:name`.
class RoutePattern {
 public:
  explicit RoutePattern(std::string_view pattern);

  // nullopt: the path has another shape. A match whose parameter is malformed is an Error
  // (ValidationError, or TmuxNameInvalid for tmux names).
  std::optional<Result<PatternMatch>> match(const std::vector<std::string>& segments) const;
  [[nodiscard]] const std::string& label() const { return label_; }

 private:
  struct Segment {
    bool param = false;
    ParamKind kind = ParamKind::SandboxId;
    std::string literal;
  };
  std::vector<Segment> segments_;
  std::string label_;
};

}  // namespace agentpane::server
