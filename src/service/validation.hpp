// Input checks shared by the service and its JSON layer. Every check is a pure function of
// its argument; the service turns failures into ValidationError with details["field"].
#pragma once

#include <string>
#include <string_view>

#include "agentpane/result.hpp"

namespace agentpane {

// Ranges of a SandboxConfig (SPEC / plan).
namespace config_limits {
inline constexpr int kMemoryMbMin = 512, kMemoryMbMax = 32768;
inline constexpr double kCpuMin = 0.5, kCpuMax = 16.0;
inline constexpr int kPidsMin = 32, kPidsMax = 4096;
inline constexpr int kWarmPoolMax = 50;  // per profile: never a storm of sandboxes
inline constexpr int kWarmPoolTtlMin = 10, kWarmPoolTtlMax = 86400;
inline constexpr int kTimeoutMinutesMin = 1, kTimeoutMinutesMax = 1440;
inline constexpr int kWorkspaceSizeGiMin = 1, kWorkspaceSizeGiMax = 1024;
inline constexpr int kStartupTimeoutMin = 10, kStartupTimeoutMax = 3600;
inline constexpr std::size_t kMaxEgressHosts = 256;
}  // namespace config_limits

bool isValidConfigName(std::string_view name);     // [A-Za-z0-9 _.-]{1,64}
bool isValidEnvKey(std::string_view key);          // [A-Za-z_][A-Za-z0-9_]*, <= 256
bool isValidDns1123Label(std::string_view s);      // [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
bool isValidDns1123Subdomain(std::string_view s);  // dot-separated labels, <= 253
bool isValidHostname(std::string_view s);          // RFC 1123 host name, not all-numeric TLD
bool isValidImageRef(std::string_view s);          // printable, no spaces, <= 512
// One allowlist entry: host name, IPv4/IPv6 address or CIDR, optionally ":PORT"
// (IPv6 with a port is written "[addr]:PORT").
bool isValidEgressHost(std::string_view entry);

// Helpers that build the ValidationError the API returns.
Error validationError(const std::string& field, const std::string& message);

}  // namespace agentpane
