// The Kubernetes remote-command channel protocol (v4.channel.k8s.io / v5.channel.k8s.io)
// over WebSocket, as pure code: no sockets, no threads, so it is swept byte by byte in unit
// tests and fuzzed (fuzz/exec_channel_fuzz.cpp).
//
// Every binary WebSocket message starts with one channel byte: 0 stdin, 1 stdout, 2 stderr,
// 3 status (a metav1.Status as JSON), 4 resize. A message that is only the channel byte is a
// "ready" signal and carries nothing. v5 adds the close signal, the two bytes [255, n],
// which closes stream n; [255, 0] is how a client sends EOF on stdin. v4 has no such signal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agentpane/exec.hpp"
#include "agentpane/result.hpp"

namespace agentpane::k8s {

enum class ChannelProtocol { V4, V5 };

// The Sec-WebSocket-Protocol names.
inline constexpr std::string_view kChannelV4 = "v4.channel.k8s.io";
inline constexpr std::string_view kChannelV5 = "v5.channel.k8s.io";

inline constexpr std::uint8_t kChannelStdin = 0;
inline constexpr std::uint8_t kChannelStdout = 1;
inline constexpr std::uint8_t kChannelStderr = 2;
inline constexpr std::uint8_t kChannelStatus = 3;
inline constexpr std::uint8_t kChannelResize = 4;
inline constexpr std::uint8_t kChannelClose = 255;  // v5 only

// ---- writer -------------------------------------------------------------------------------

// One stdin message: the channel byte then the bytes, unchanged (binary-safe).
std::string encodeStdin(std::string_view data);
// The v5 close signal for one stream ([255, channel]).
std::string encodeCloseSignal(std::uint8_t channel);
// A terminal resize message (channel 4, {"Width":W,"Height":H}).
std::string encodeResize(std::uint16_t width, std::uint16_t height);

// ---- reader -------------------------------------------------------------------------------

struct ChannelEvent {
  enum class Kind {
    Ignored,       // a ready signal (a lone channel byte), or a close of a stream we never read
    Output,        // stdout or stderr bytes (never empty)
    StreamClosed,  // v5: the server closed stdout or stderr
    Status,        // bytes of the status channel were taken in (see ChannelReader::exitCode)
  };
  Kind kind = Kind::Ignored;
  ExecStream stream = ExecStream::Stdout;  // Output and StreamClosed
  std::string_view data;                   // Output: points into the message given to feed()
};

// Reads the messages a server sends, one whole WebSocket message at a time, in order.
// Errors are SandboxExecFailed with details["reason"] = "protocol" and leave the reader
// failed (every later feed() returns the same error): an empty message, an unknown channel,
// data on a channel the server never writes (stdin, resize), a close signal on v4 or one of
// the wrong length, or a status larger than kMaxStatusBytes.
class ChannelReader {
 public:
  // A Status is a few hundred bytes; this bound keeps a hostile server from growing it.
  static constexpr std::size_t kMaxStatusBytes = 64u << 10;

  explicit ChannelReader(ChannelProtocol protocol) : protocol_(protocol) {}

  Result<ChannelEvent> feed(std::string_view message);

  // True once any status bytes arrived (the process has finished).
  [[nodiscard]] bool statusSeen() const { return !status_.empty(); }
  // The raw status bytes received so far (normally one JSON object).
  [[nodiscard]] const std::string& statusBytes() const { return status_; }
  // Once the stream has ended: the exit code from the status (see exitCodeFromStatus), or an
  // error when no status came at all (a connection cut before the end must never look like
  // a success).
  [[nodiscard]] Result<int> exitCode() const;

 private:
  Result<ChannelEvent> fail(std::string message);

  ChannelProtocol protocol_;
  std::string status_;
  std::optional<Error> failed_;
};

// Interprets a metav1.Status sent on channel 3:
//  - "status":"Success"                                  -> 0
//  - "status":"Failure","reason":"NonZeroExitCode"       -> the number in the message of the
//    details.causes[] entry whose reason is "ExitCode" (0-255, else a protocol error)
//  - any other Failure is an error of its own that keeps the apiserver's message and its
//    reason in details["k8sReason"]: a container that does not exist -> K8sNotFound (details
//    reason "ContainerNotFound"), anything else -> K8sApiError.
//  - not JSON / not a Status -> SandboxExecFailed (reason "protocol").
Result<int> exitCodeFromStatus(std::string_view json);

// True when an apiserver or kubelet message says the container is not in the pod:
// `container not found ("x")` (kubelet) or `container x is not valid for pod p` (apiserver).
bool mentionsMissingContainer(std::string_view message);

}  // namespace agentpane::k8s
