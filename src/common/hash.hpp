// Small digests shared by every area (ids derived from paths, instance scopes).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace agentpane {

// Lower-case hex SHA-256 of data (64 characters).
std::string sha256Hex(std::string_view data);

// `bytes` random bytes (OpenSSL's generator) as lower-case hex: exec markers, ids.
std::string randomHex(std::size_t bytes);

}  // namespace agentpane
