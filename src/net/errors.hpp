// How ap_net reports failures: generic codes (the caller maps them to its own area's code,
// e.g. ServerUnreachable -> SandboxProviderUnavailable for Docker) plus details["net"]
// naming the phase, so callers need not parse messages.
#pragma once

#include <string>
#include <string_view>

#include "agentpane/errors.hpp"

namespace agentpane::net {

// details["net"] values
inline constexpr const char* kConnect = "connect";     // ServerUnreachable
inline constexpr const char* kTls = "tls";             // ServerUnreachable (handshake/verify)
inline constexpr const char* kTimeout = "timeout";     // Timeout
inline constexpr const char* kTooLarge = "too_large";  // PayloadTooLarge
inline constexpr const char* kClosed = "closed";       // Internal: closed by us (close()/cancel)
inline constexpr const char* kProtocol = "protocol";   // Internal: malformed HTTP
inline constexpr const char* kIo = "io";               // Internal: reset, broken pipe, ...
inline constexpr const char* kConfig = "config";       // ValidationError: bad TLS files etc.

Error netError(std::string_view kind, std::string message);
// The details["net"] of an error made by netError, or "" for other errors.
std::string netKind(const Error& e);

}  // namespace agentpane::net
