// Docker's stream multiplexing for exec/attach without a TTY (moby's stdcopy): every frame
// is an 8-byte header [stream, 0, 0, 0, size as big-endian uint32] and `size` payload bytes.
// The parser is pure and incremental: bytes go in as they arrive, split anywhere (inside a
// header or a payload), and payload pieces come out without buffering whole frames, so a
// 64 MiB stream never sits in memory at once.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::docker {

enum class MuxStream : std::uint8_t { Stdin = 0, Stdout = 1, Stderr = 2, System = 3 };

struct MuxPiece {
  MuxStream stream = MuxStream::Stdout;
  std::string_view data;  // points into the bytes given to feed(); valid until they change
};

class MultiplexParser {
 public:
  static constexpr std::size_t kHeaderSize = 8;

  // Parses bytes, appending payload pieces (never empty) to `out` in order. A frame's payload
  // may come out as several pieces across feeds. A malformed header (unknown stream, non-zero
  // padding) is a SandboxExecFailed error and the parser stays failed.
  Result<void> feed(std::string_view bytes, std::vector<MuxPiece>& out);

  // True when no frame is half received (a clean place for the stream to end).
  [[nodiscard]] bool atFrameBoundary() const { return headerHave_ == 0 && payloadLeft_ == 0; }

 private:
  std::array<unsigned char, kHeaderSize> header_{};
  std::size_t headerHave_ = 0;
  std::uint32_t payloadLeft_ = 0;
  MuxStream current_ = MuxStream::Stdout;
  bool failed_ = false;
};

}  // namespace agentpane::docker
