// Splits a watch body — JSON objects one after another, chunked however the server and
// the network like — into whole objects. Pure and incremental: a chunk may end anywhere
// (inside a string, an escape, between objects), and the objects come out the same.
// Unit-tested by splitting a stream at every byte position, and fuzzed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::k8s {

class JsonObjectSplitter {
 public:
  explicit JsonObjectSplitter(std::size_t maxObjectBytes) : max_(maxObjectBytes) {}

  // Appends to `out` every object that `bytes` completes (its exact text, without the
  // whitespace around it). Whitespace between objects is skipped. Fails, and keeps failing
  // until reset(), on a top-level byte that cannot start an object or a bracket that closes
  // the wrong opener (ValidationError), or an object longer than maxObjectBytes
  // (PayloadTooLarge). It does not validate the JSON inside an object beyond brackets and
  // strings: the parser that reads the object does that.
  Result<void> feed(std::string_view bytes, std::vector<std::string>& out);

  // True while part of an object has been fed and its end has not.
  [[nodiscard]] bool midObject() const { return !closers_.empty(); }
  void reset();

 private:
  std::size_t max_;
  std::string cur_;      // the object being received
  std::string closers_;  // the closing bracket each open one expects, innermost last
  bool inString_ = false;
  bool escape_ = false;
  bool failed_ = false;
};

}  // namespace agentpane::k8s
