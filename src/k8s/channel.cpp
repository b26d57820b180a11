#include "k8s/channel.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace agentpane::k8s {

namespace {

Error protocolError(std::string message) {
  return Error(ErrorCode::SandboxExecFailed, "exec stream: " + std::move(message),
               {{"reason", "protocol"}});
}

}  // namespace

bool mentionsMissingContainer(std::string_view message) {
  return message.find("container not found") != std::string_view::npos ||
         message.find("is not valid for pod") != std::string_view::npos;
}

std::string encodeStdin(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 1);
  out.push_back(static_cast<char>(kChannelStdin));
  out.append(data);
  return out;
}

std::string encodeCloseSignal(std::uint8_t channel) {
  return {static_cast<char>(kChannelClose), static_cast<char>(channel)};
}

std::string encodeResize(std::uint16_t width, std::uint16_t height) {
  std::string out(1, static_cast<char>(kChannelResize));
  out += R"({"Width":)" + std::to_string(width) + R"(,"Height":)" + std::to_string(height) + "}";
  return out;
}

Result<ChannelEvent> ChannelReader::fail(std::string message) {
  failed_ = protocolError(std::move(message));
  return *failed_;
}

Result<ChannelEvent> ChannelReader::feed(std::string_view message) {
  if (failed_) return *failed_;
  if (message.empty()) return fail("empty message (no channel byte)");
  const auto channel = static_cast<std::uint8_t>(message.front());
  const std::string_view payload = message.substr(1);

  if (channel == kChannelClose) {
    if (protocol_ != ChannelProtocol::V5) return fail("close signal on the v4 protocol");
    if (payload.size() != 1) {
      return fail("close signal of " + std::to_string(message.size()) + " bytes (expected 2)");
    }
    const auto closed = static_cast<std::uint8_t>(payload.front());
    if (closed == kChannelStdout)
      return ChannelEvent{ChannelEvent::Kind::StreamClosed, ExecStream::Stdout, {}};
    if (closed == kChannelStderr) {
      return ChannelEvent{ChannelEvent::Kind::StreamClosed, ExecStream::Stderr, {}};
    }
    if (closed <= kChannelResize) return ChannelEvent{};  // nothing we read from
    return fail("close signal for unknown channel " + std::to_string(closed));
  }
  if (channel > kChannelResize) return fail("unknown channel " + std::to_string(channel));
  // A lone channel byte is the server's "ready" signal on that channel.
  if (payload.empty()) return ChannelEvent{};

  switch (channel) {
    case kChannelStdout:
      return ChannelEvent{ChannelEvent::Kind::Output, ExecStream::Stdout, payload};
    case kChannelStderr:
      return ChannelEvent{ChannelEvent::Kind::Output, ExecStream::Stderr, payload};
    case kChannelStatus:
      if (status_.size() + payload.size() > kMaxStatusBytes) {
        return fail("status larger than " + std::to_string(kMaxStatusBytes) + " bytes");
      }
      status_.append(payload);
      return ChannelEvent{ChannelEvent::Kind::Status, ExecStream::Stdout, {}};
    default:  // stdin and resize flow from client to server only
      return fail("data from the server on channel " + std::to_string(channel));
  }
}

Result<int> ChannelReader::exitCode() const {
  if (failed_) return *failed_;
  if (status_.empty()) return protocolError("ended without an exit status");
  return exitCodeFromStatus(status_);
}

Result<int> exitCodeFromStatus(std::string_view json) {
  auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return protocolError("status is not a JSON object");
  auto str = [](const nlohmann::json& o, const char* key) -> std::string {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string status = str(doc, "status");
  if (status == "Success") return 0;
  if (status != "Failure") return protocolError("status is neither Success nor Failure");

  const std::string reason = str(doc, "reason");
  const std::string message = str(doc, "message");
  if (reason == "NonZeroExitCode") {
    auto details = doc.find("details");
    if (details != doc.end() && details->is_object()) {
      auto causes = details->find("causes");
      if (causes != details->end() && causes->is_array()) {
        for (const auto& cause : *causes) {
          if (!cause.is_object() || str(cause, "reason") != "ExitCode") continue;
          const std::string text = str(cause, "message");
          int code = -1;
          auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
          if (ec != std::errc() || end != text.data() + text.size() || code < 0 || code > 255) {
            return protocolError("exit code \"" + text + "\" is not a number from 0 to 255");
          }
          return code;
        }
      }
    }
    return protocolError("NonZeroExitCode status without an ExitCode cause");
  }
  std::map<std::string, std::string> info{{"k8sReason", reason}};
  if (mentionsMissingContainer(message)) {
    info["reason"] = "ContainerNotFound";
    return Error(ErrorCode::K8sNotFound, "exec: " + message, std::move(info));
  }
  return Error(ErrorCode::K8sApiError,
               "exec failed: " + (message.empty() ? std::string("(no message)") : message),
               std::move(info));
}

}  // namespace agentpane::k8s
