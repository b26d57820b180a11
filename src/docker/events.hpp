// Container events from `GET /events`: a long-lived response carrying one JSON object per
// line. The decoder is pure and incremental (objects split across reads at any byte); the
// stream wraps it around the HTTP body.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"
#include "net/http_client.hpp"

namespace agentpane::docker {

struct ContainerEvent {
  std::string action;           // create, start, die, stop, kill, destroy, oom, exec_create: ...
  std::string containerId;      // Actor.ID
  std::string sandboxId;        // label agentpane.io/sandbox-id, when present
  std::optional<int> exitCode;  // "die" events
  std::int64_t timeNano = 0;
  std::map<std::string, std::string> attributes;  // labels, name, image, ...
};

class EventDecoder {
 public:
  static constexpr std::size_t kMaxLine = 1u << 20;  // one event is far smaller

  // Appends every complete event in bytes to `out`. Non-container events are skipped; a
  // malformed line or one over kMaxLine is a SandboxProviderError.
  Result<void> feed(std::string_view bytes, std::vector<ContainerEvent>& out);

 private:
  std::string partial_;
};

// Parses one event object; std::nullopt for events that are not about containers.
Result<std::optional<ContainerEvent>> parseEvent(std::string_view json);

class EventStream {
 public:
  explicit EventStream(std::unique_ptr<net::BodyStream> body) : body_(std::move(body)) {}
  // Blocks for the next event; std::nullopt when the engine ended the stream.
  Result<std::optional<ContainerEvent>> next();
  // Unblocks next() from any thread.
  void close() { body_->close(); }

 private:
  std::unique_ptr<net::BodyStream> body_;
  EventDecoder decoder_;
  std::vector<ContainerEvent> pending_;
  std::size_t pos_ = 0;
};

}  // namespace agentpane::docker
