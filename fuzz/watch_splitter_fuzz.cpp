// libFuzzer target: the watch-event splitter (src/k8s/watch_splitter.hpp).
//
// Input layout: byte 0 = number of cuts (low 3 bits) and the object bound (high bits pick
// 16, 64, 256 or 1 MiB bytes); then one byte per cut (its position, scaled to the stream);
// the rest is the stream. Checks beyond "no crash, no leak, no UB": the stream fed whole and
// fed in pieces gives the same objects and the same success; every object starts with '{',
// ends with '}' and respects the bound.
//
// fuzz-sources: src/k8s/watch_splitter.cpp src/common/errors.cpp
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "k8s/watch_splitter.hpp"

using agentpane::k8s::JsonObjectSplitter;

namespace {

struct Outcome {
  std::vector<std::string> objects;
  bool ok = true;
};

Outcome run(std::string_view stream, const std::vector<std::size_t>& cuts, std::size_t bound) {
  JsonObjectSplitter sp(bound);
  Outcome o;
  std::size_t prev = 0;
  auto feed = [&](std::string_view piece) {
    if (!o.ok) return;
    if (!sp.feed(piece, o.objects).ok()) o.ok = false;
  };
  for (std::size_t c : cuts) {
    feed(stream.substr(prev, c - prev));
    prev = c;
  }
  feed(stream.substr(prev));
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t ncuts = data[0] & 7;
  static constexpr std::size_t kBounds[] = {16, 64, 256, 1u << 20};
  const std::size_t bound = kBounds[(data[0] >> 3) & 3];
  if (size < 1 + ncuts) return 0;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1 + ncuts), size - 1 - ncuts);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < ncuts; ++i)
    cuts.push_back(stream.empty() ? 0 : data[1 + i] * stream.size() / 255);
  std::sort(cuts.begin(), cuts.end());

  const Outcome whole = run(stream, {}, bound);
  const Outcome pieces = run(stream, cuts, bound);
  if (whole.ok != pieces.ok || whole.objects != pieces.objects) std::abort();
  for (const auto& o : whole.objects) {
    if (o.size() < 2 || o.front() != '{' || o.back() != '}' || o.size() > bound) std::abort();
  }
  return 0;
}
