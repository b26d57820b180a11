#include "server/router.hpp"

#include <algorithm>
#include <stdexcept>

#include "agentpane/sandbox.hpp"
#include "agentpane/tmux.hpp"
#include "net/url.hpp"

namespace agentpane::server {
namespace {

bool hasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

Error badTarget(const std::string& why) {
  return {ErrorCode::ValidationError, "invalid request target: " + why};
}

}  // namespace

Result<Target> parseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return badTarget("must start with '/'");
  // "//host/x" would parse as an authority: an origin-form target never has one.
  if (target.substr(0, 2) == "//") return badTarget("empty path segment");
  auto url = net::parseUrl(target);
  if (!url.ok()) return badTarget(url.error().message);
  Target t;
  auto segs = std::move(url->segments);
  if (!segs.empty() && segs.back().empty()) segs.pop_back();  // a trailing slash is ignored
  for (auto& seg : segs) {
    if (seg.empty()) return badTarget("empty path segment");
    if (seg == "." || seg == "..") return badTarget("dot segments are not allowed");
    if (hasControl(seg)) return badTarget("control characters in the path");
    t.segments.push_back(std::move(seg));
    if (t.segments.size() > 16) return badTarget("too many path segments");
  }
  if (!url->query) return t;
  auto query = net::parseQuery(*url->query);
  if (!query.ok()) return badTarget(query.error().message + " in the query");
  for (auto& [key, value] : query.value()) {
    if (hasControl(key) || hasControl(value)) return badTarget("control characters in the query");
    if (t.query.count(key)) return badTarget("query parameter '" + key + "' given twice");
    t.query.emplace(std::move(key), std::move(value));
    if (t.query.size() > 32) return badTarget("too many query parameters");
  }
  return t;
}

bool isValidConfigId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(id.front())) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

RoutePattern::RoutePattern(std::string_view pattern) {
  std::string_view p = pattern;
  if (p.empty() || p.front() != '/')
    throw std::invalid_argument("route pattern must start with '/'");
  p.remove_prefix(1);
  while (!p.empty()) {
    auto slash = p.find('/');
    auto raw = p.substr(0, slash);
    p = slash == std::string_view::npos ? std::string_view{} : p.substr(slash + 1);
    Segment s;
    if (raw == "{sandbox}") {
      s.param = true;
      s.kind = ParamKind::SandboxId;
      label_ += "/:id";
    } else if (raw == "{config}") {
      s.param = true;
      s.kind = ParamKind::ConfigId;
      label_ += "/:id";
    } else if (raw == "{tmux}") {
      s.param = true;
      s.kind = ParamKind::TmuxName;
      label_ += "/:name";
    } else if (raw == "{command}") {
      s.param = true;
      s.kind = ParamKind::CommandId;
      label_ += "/:cid";
    } else {
      s.literal = std::string(raw);
      label_ += "/" + s.literal;
    }
    segments_.push_back(std::move(s));
  }
  if (label_.empty()) label_ = "/";
}

std::optional<Result<PatternMatch>> RoutePattern::match(
    const std::vector<std::string>& segs) const {
  if (segs.size() != segments_.size()) return std::nullopt;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (!segments_[i].param && segments_[i].literal != segs[i]) return std::nullopt;
  }
  PatternMatch m;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& s = segments_[i];
    if (!s.param) continue;
    const std::string& v = segs[i];
    switch (s.kind) {
      case ParamKind::SandboxId:
        if (!isValidSandboxId(v)) {
          return Result<PatternMatch>(Error(ErrorCode::ValidationError,
                                            "invalid sandbox id (expected [a-z0-9][a-z0-9-]{0,62})",
                                            {{"field", "id"}}));
        }
        m.params["id"] = v;
        break;
      case ParamKind::ConfigId:
        if (!isValidConfigId(v)) {
          return Result<PatternMatch>(
              Error(ErrorCode::ValidationError, "invalid config id", {{"field", "id"}}));
        }
        m.params["id"] = v;
        break;
      case ParamKind::TmuxName:
        if (auto valid = validateTmuxName(v); !valid.ok()) {
          return Result<PatternMatch>(valid.takeError());
        }
        m.params["name"] = v;
        break;
      case ParamKind::CommandId: {
        bool ok = !v.empty() && v.size() <= 64;
        for (char c : v) {
          ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.');
        }
        if (!ok) {
          return Result<PatternMatch>(Error(ErrorCode::ValidationError,
                                            "invalid command id (expected [A-Za-z0-9_.-]{1,64})",
                                            {{"field", "cid"}}));
        }
        m.params["cid"] = v;
        break;
      }
    }
  }
  return Result<PatternMatch>(std::move(m));
}

}  // namespace agentpane::server
