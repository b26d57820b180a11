#include "docker/multiplex.hpp"

#include <algorithm>
#include <cstdio>

namespace agentpane::docker {

Result<void> MultiplexParser::feed(std::string_view bytes, std::vector<MuxPiece>& out) {
  if (failed_) return Error(ErrorCode::SandboxExecFailed, "exec stream: parser already failed");
  while (!bytes.empty()) {
    if (payloadLeft_ > 0) {
      std::size_t n = std::min<std::size_t>(payloadLeft_, bytes.size());
      out.push_back({current_, bytes.substr(0, n)});
      bytes.remove_prefix(n);
      payloadLeft_ -= static_cast<std::uint32_t>(n);
      continue;
    }
    std::size_t n = std::min(kHeaderSize - headerHave_, bytes.size());
    std::copy_n(bytes.begin(), n, header_.begin() + static_cast<std::ptrdiff_t>(headerHave_));
    headerHave_ += n;
    bytes.remove_prefix(n);
    if (headerHave_ < kHeaderSize) break;
    headerHave_ = 0;
    if (header_[0] > 3 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0) {
      failed_ = true;
      char hex[64];
      std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", header_[0], header_[1], header_[2],
                    header_[3]);
      return Error(ErrorCode::SandboxExecFailed,
                   std::string("exec stream: malformed frame header (") + hex + ")");
    }
    current_ = static_cast<MuxStream>(header_[0]);
    payloadLeft_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                   (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
  }
  return {};
}

}  // namespace agentpane::docker
