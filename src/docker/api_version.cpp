#include "docker/api_version.hpp"

#include <charconv>

namespace agentpane::docker {

std::optional<ApiVersion> ApiVersion::parse(std::string_view text) {
  auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  ApiVersion v;
  auto parseInt = [](std::string_view s, int& out) {
    if (s.empty() || s.size() > 4) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= 0;
  };
  if (!parseInt(text.substr(0, dot), v.major) || !parseInt(text.substr(dot + 1), v.minor))
    return std::nullopt;
  return v;
}

std::string ApiVersion::toString() const {
  return std::to_string(major) + "." + std::to_string(minor);
}

Result<ApiVersion> negotiateApiVersion(ApiVersion ours, std::optional<ApiVersion> serverMax,
                                       std::optional<ApiVersion> serverMin) {
  if (!serverMax) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 "the Docker engine did not report its API version");
  }
  ApiVersion chosen = std::min(ours, *serverMax);
  if (serverMin && chosen < *serverMin) chosen = *serverMin;
  if (chosen < kMinApiVersion) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 "the Docker engine speaks API " + serverMax->toString() + "; AgentPane needs " +
                     kMinApiVersion.toString() + " or newer (Docker Engine 20.10+)");
  }
  return chosen;
}

}  // namespace agentpane::docker
