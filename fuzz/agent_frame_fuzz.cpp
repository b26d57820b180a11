// libFuzzer target: the agent protocol's frame decoder (src/agent/protocol.hpp), the code
// that reads whatever arrives on the in-sandbox agent's stdin and on the server's channel.
//
// Input layout: byte 0 picks the split size of the stream (1..64 bytes per feed); the rest
// is the byte stream. Checks beyond "no crash, no leak, no UB": every decoded message
// encodes to a frame that decodes to the same message; the decoder never holds more than
// one frame's worth of bytes beyond what it has returned; an error carries a known code.
//
// fuzz-sources: src/agent/protocol.cpp
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "agent/protocol.hpp"

using namespace agentpane::agent;

namespace {

constexpr std::size_t kMaxBody = 4096;  // small, so that oversized frames are common

bool knownCode(const std::string& c) {
  for (const char* k : {kErrFrameEmpty, kErrFrameTooLarge, kErrUnknownType, kErrMalformed}) {
    if (c == k) return true;
  }
  return false;
}

void check(const std::variant<Message, DecodeError>& f) {
  if (auto* e = std::get_if<DecodeError>(&f)) {
    if (!knownCode(e->code)) std::abort();
    return;
  }
  const Message& m = std::get<Message>(f);
  std::string again = encode(m);
  FrameDecoder d(again.size());
  d.feed(again);
  auto back = d.next();
  if (!back || !std::holds_alternative<Message>(*back) || !(std::get<Message>(*back) == m)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = 1 + (data[0] % 64);
  FrameDecoder decoder(kMaxBody);
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (!rest.empty()) {
    auto piece = rest.substr(0, step);
    rest.remove_prefix(piece.size());
    decoder.feed(piece);
    while (auto f = decoder.next())
      check(*f);
    if (decoder.buffered() > kHeaderBytes + kMaxBody + step) std::abort();
  }
  return 0;
}
