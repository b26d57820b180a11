// Builds Docker multiplexed-stream frames for the tests: [stream, 0, 0, 0, size (BE u32)].
#pragma once

#include <cstdint>
#include <string>

namespace agentpane::docker::testing {

inline std::string frame(std::uint8_t stream, const std::string& payload) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(stream);
  auto n = static_cast<std::uint32_t>(payload.size());
  h[4] = static_cast<char>(n >> 24);
  h[5] = static_cast<char>(n >> 16);
  h[6] = static_cast<char>(n >> 8);
  h[7] = static_cast<char>(n);
  return h + payload;
}

}  // namespace agentpane::docker::testing
