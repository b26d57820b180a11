// Engine API version negotiation. We speak up to kMaxApiVersion and need at least
// kMinApiVersion (Debian 12's engine 20.10 is 1.41); the server says what it speaks
// (ApiVersion) and, since Engine 25-29, the oldest it still accepts (MinAPIVersion: 1.44 on
// Engine 29). We use the lower of the two maxima, but never below the server's minimum.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agentpane/result.hpp"

namespace agentpane::docker {

struct ApiVersion {
  int major = 1;
  int minor = 0;

  static std::optional<ApiVersion> parse(std::string_view text);  // "1.41"
  [[nodiscard]] std::string toString() const;
  friend auto operator<=>(const ApiVersion&, const ApiVersion&) = default;
};

inline constexpr ApiVersion kMaxApiVersion{1, 47};
inline constexpr ApiVersion kMinApiVersion{1, 41};

// serverMax/serverMin as the server reported them (absent: not reported). An engine older
// than kMinApiVersion, or one that reports nothing usable, is SandboxProviderUnavailable.
Result<ApiVersion> negotiateApiVersion(ApiVersion ours, std::optional<ApiVersion> serverMax,
                                       std::optional<ApiVersion> serverMin);

}  // namespace agentpane::docker
