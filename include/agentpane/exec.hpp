// Exec contract: a command is its own object (CRI style): openExec() gives a session with
// stdin, separate stdout/stderr, and an exit code. Docker implements it on the hijacked
// multiplexed socket, Kubernetes on the v5.channel.k8s.io WebSocket channels.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane {

struct ExecOptions {
  // Run as root. Providers that cannot (a restricted pod) MUST refuse with ValidationError,
  // never silently run as the sandbox user.
  bool root = false;
  bool attachStdin = false;
  // 0 = no limit. On expiry the remote process (and its children) MUST be killed and the
  // session reports ExecTimeout.
  std::chrono::milliseconds timeout{0};
  std::string workingDir = "/workspace";
  std::vector<std::pair<std::string, std::string>> env;
};

enum class ExecStream { Stdout = 1, Stderr = 2 };

struct ExecChunk {
  ExecStream stream = ExecStream::Stdout;
  std::string data;  // raw bytes, binary-safe
};

// One running command. Thread-safety: writeStdin/closeStdin MAY be called from one thread
// while another thread calls read(); implementations MUST make that safe. cancel() MAY be
// called from any thread at any time.
class ExecSession {
 public:
  virtual ~ExecSession() = default;

  // Sends bytes to the process stdin (only when opened with attachStdin).
  virtual Result<void> writeStdin(std::string_view data) = 0;
  // The process sees EOF on stdin. MUST be idempotent.
  virtual Result<void> closeStdin() = 0;
  // Blocks for the next chunk of output, in arrival order. Returns std::nullopt once both
  // streams have ended. Returns ExecTimeout when the timeout expired (process killed).
  virtual Result<std::optional<ExecChunk>> read() = 0;
  // After read() returned std::nullopt: the exact exit code, 0-255; a process killed by
  // signal N reports 128+N.
  virtual Result<int> wait() = 0;
  // Kills the remote process and unblocks read(). Idempotent.
  virtual void cancel() = 0;
};

struct ExecResult {
  int exitCode = -1;
  std::string stdoutData;
  std::string stderrData;
};

struct ExecRequest {
  std::vector<std::string> argv;  // never interpreted by a shell unless argv asks for one
  ExecOptions options;
  std::optional<std::string> stdinData;     // written then closed (EOF) when set
  std::size_t maxOutputBytes = 256u << 20;  // per stream; beyond it the exec fails
};

// Runs a session to completion: feeds stdinData on a separate thread (so full pipes never
// deadlock), collects both streams, returns the exit code. Shared by every provider.
Result<ExecResult> runToCompletion(ExecSession& session, const ExecRequest& req);

}  // namespace agentpane
