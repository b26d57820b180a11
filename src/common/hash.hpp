// Small digests shared by every area (ids derived from paths, instance scopes).
#pragma once

#include <string>
#include <string_view>

namespace agentpane {

// Lower-case hex SHA-256 of data (64 characters).
std::string sha256Hex(std::string_view data);

}  // namespace agentpane
