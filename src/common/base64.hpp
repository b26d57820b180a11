// Standard base64 (RFC 4648, with padding), binary-safe. Used where raw bytes cross JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace agentpane {

std::string base64Encode(std::string_view bytes);
// Strict: the standard alphabet, length a multiple of 4, '=' only as final padding, and
// zero unused bits. Anything else (whitespace included) is std::nullopt.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace agentpane
