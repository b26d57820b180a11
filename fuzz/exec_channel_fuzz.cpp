// libFuzzer target: the Kubernetes exec channel-frame reader (src/k8s/channel.hpp) and the
// exit-status parser behind it, fed a sequence of whole WebSocket messages.
//
// Input layout: byte 0 picks the protocol (even: v5, odd: v4); then messages, each a
// 2-byte little-endian length and that many bytes (a short tail is the last message).
// Checks beyond "no crash, no leak, no UB": output events carry exactly the message's
// payload and are never empty; a failed reader stays failed.
//
// fuzz-sources: src/k8s/channel.cpp src/common/errors.cpp
// fuzz-libs: nlohmann_json::nlohmann_json
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "k8s/channel.hpp"

using agentpane::k8s::ChannelEvent;
using agentpane::k8s::ChannelProtocol;
using agentpane::k8s::ChannelReader;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ChannelReader reader((data[0] & 1) != 0 ? ChannelProtocol::V4 : ChannelProtocol::V5);
  std::size_t pos = 1;
  bool failed = false;
  while (pos < size) {
    std::size_t len = data[pos];
    if (pos + 1 < size) len |= static_cast<std::size_t>(data[pos + 1]) << 8;
    pos += 2;
    if (pos > size) pos = size;
    if (len > size - pos) len = size - pos;
    const std::string_view message(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
    auto event = reader.feed(message);
    if (!event.ok()) {
      failed = true;
      continue;
    }
    if (failed) std::abort();  // a failed reader must stay failed
    if (event->kind == ChannelEvent::Kind::Output) {
      if (event->data.empty() || event->data != message.substr(1)) std::abort();
    }
  }
  auto code = reader.exitCode();
  if (code.ok() && (code.value() < 0 || code.value() > 255)) std::abort();
  // The status parser on its own, on the raw input as well.
  auto direct = agentpane::k8s::exitCodeFromStatus(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (direct.ok() && (direct.value() < 0 || direct.value() > 255)) std::abort();
  return 0;
}
