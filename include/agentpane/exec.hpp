// Exec contract: a command is its own object (CRI style): openExec() gives a session with
// stdin, separate stdout/stderr, and an exit code. Docker implements it on the hijacked
// multiplexed socket, Kubernetes on the v5.channel.k8s.io WebSocket channels.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
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
  // Run under a pseudo-terminal of ttyRows x ttyColumns (interactive programs such as
  // `tmux attach`): output then arrives as Stdout only, as the terminal wrote it. A provider
  // that cannot give a terminal MUST refuse with ValidationError.
  bool tty = false;
  int ttyRows = 24;
  int ttyColumns = 80;
};

enum class ExecStream { Stdout = 1, Stderr = 2 };

struct ExecChunk {
  ExecStream stream = ExecStream::Stdout;
  std::string data;  // raw bytes, binary-safe
};

// Completion handler of the asynchronous form of ExecSession.
template <typename T>
using ExecHandler = std::function<void(Result<T>)>;

// One running command, in two forms: blocking calls for worker threads, and the same
// operations asynchronously for servers that multiplex many streams on a few I/O threads
// (the WebSocket exec, the Kubernetes exec, the in-sandbox channel). One session is driven
// through one form only; mixing them is unsupported.
//
// Blocking form. Thread-safety: writeStdin/closeStdin MAY be called from one thread while
// another thread calls read(); implementations MUST make that safe. cancel() MAY be called
// from any thread at any time.
//
// Asynchronous form (async*). It is written with plain completion handlers, not a
// networking library's types, so that this contract stays library-free (STYLE: library
// types stay in their room); src/common/exec_async.hpp turns each call into a Boost.Asio
// awaitable that resumes on the caller's own executor, and helps implementations built on
// coroutines. Rules:
//  - An async* call MUST return at once: no engine call, no waiting for the process, no
//    lock held across I/O. The work runs on the implementation's own I/O loop.
//  - Its handler MUST be called exactly once, on a thread of that loop or (for sessions
//    that never wait, such as in-memory fakes) before the call returns. A handler MUST NOT
//    block; callers hop back to their own executor.
//  - At most one output operation (asyncRead or asyncWait) and one input operation
//    (asyncWriteStdin or asyncCloseStdin) MAY be pending at a time; they MAY overlap.
//  - asyncCancel MAY be called at any time, also while other operations are pending: it
//    fails them (they complete with an error) and its own handler runs once the remote
//    process is dead or the kill gave up (bounded, like every provider call).
//  - The caller MUST keep the session alive until every handler it started has run.
//  - Semantics (timeouts, exit codes, EOF, errors) are those of the blocking calls.
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
  // Kills the remote process and unblocks read(). Idempotent. Blocks while killing.
  virtual void cancel() = 0;

  // Asynchronous form: writeStdin, closeStdin, read, wait and cancel without a thread.
  // Every provider's session MUST override all five (the contract suite drives them). The
  // defaults exist only so that a session written before this form fails loudly
  // (Internal, reason "noAsyncForm") instead of blocking a network thread.
  virtual void asyncWriteStdin(std::string data, ExecHandler<void> done);
  virtual void asyncCloseStdin(ExecHandler<void> done);
  virtual void asyncRead(ExecHandler<std::optional<ExecChunk>> done);
  virtual void asyncWait(ExecHandler<int> done);
  // Idempotent: a later call completes at once, without waiting for the first kill.
  virtual void asyncCancel(ExecHandler<void> done);
  // Resizes the terminal of a session opened with ExecOptions::tty to rows x cols (each
  // 1..1000); the process gets SIGWINCH. Without a terminal, or on a session that cannot
  // resize: ValidationError (details reason "resizeUnsupported"). Never blocks the caller.
  virtual void asyncResize(int rows, int cols, ExecHandler<void> done);
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
