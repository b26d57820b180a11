#include "docker/exec_session.hpp"

#include <vector>

#include "net/errors.hpp"

namespace agentpane::docker {

namespace {
net::Deadline deadlineFor(std::chrono::milliseconds timeout) {
  return timeout.count() > 0 ? net::Clock::now() + timeout : net::kNoDeadline;
}

Error exitedError() {
  return Error(ErrorCode::SandboxExecFailed, "stdin: the process has exited",
               {{"reason", "exited"}});
}

Error canceledError() {
  return Error(ErrorCode::SandboxExecFailed, "exec canceled", {{"reason", "canceled"}});
}
}  // namespace

DockerExecSession::DockerExecSession(std::unique_ptr<net::ByteStream> stream,
                                     std::unique_ptr<ExecControl> control,
                                     std::chrono::milliseconds timeout, bool attachStdin)
    : stream_(std::move(stream)),
      control_(std::move(control)),
      timeout_(timeout),
      deadline_(deadlineFor(timeout)),
      attachStdin_(attachStdin) {}

DockerExecSession::~DockerExecSession() {
  stream_->close();
}

void DockerExecSession::killOnce() {
  if (killed_.exchange(true)) return;
  control_->killProcessTree();
}

Error DockerExecSession::timedOut() {
  return Error(
      ErrorCode::ExecTimeout,
      "command exceeded its timeout of " + std::to_string(timeout_.count()) + " ms and was killed",
      {{"timeoutMs", std::to_string(timeout_.count())}});
}

Result<void> DockerExecSession::writeStdin(std::string_view data) {
  if (!attachStdin_) return Error(ErrorCode::ValidationError, "exec was opened without stdin");
  std::lock_guard lock(writeMu_);
  if (stdinClosed_) return Error(ErrorCode::ValidationError, "stdin already closed");
  if (canceled_) return canceledError();
  if (timedOut_) return timedOut();
  if (eof_) return exitedError();
  auto r = stream_->writeAll(data, deadline_);
  if (r.ok()) return r;
  if (net::netKind(r.error()) == net::kTimeout) {
    // The reader may be blocked too; make sure the process dies and everyone wakes up.
    timedOut_ = true;
    killOnce();
    stream_->close();
    return timedOut();
  }
  if (canceled_) return canceledError();
  if (timedOut_) return timedOut();
  if (eof_) return exitedError();
  return Error(ErrorCode::SandboxExecFailed, "writing stdin: " + r.error().message);
}

Result<void> DockerExecSession::closeStdin() {
  std::lock_guard lock(writeMu_);
  if (stdinClosed_ || !attachStdin_) return {};
  stdinClosed_ = true;
  auto r = stream_->shutdownWrite();
  if (r.ok() || canceled_ || timedOut_ || eof_) return {};
  return Error(ErrorCode::SandboxExecFailed, "closing stdin: " + r.error().message);
}

Result<std::optional<ExecChunk>> DockerExecSession::read() {
  using Out = std::optional<ExecChunk>;
  std::lock_guard lock(readMu_);
  if (readError_) return *readError_;
  std::vector<MuxPiece> pieces;
  std::string buf(kReadSize, '\0');
  while (pending_.empty()) {
    if (eof_) return Out();
    if (canceled_) return *(readError_ = canceledError());
    if (timedOut_) return *(readError_ = timedOut());
    auto n = stream_->readSome(buf.data(), buf.size(), deadline_);
    // A cancel that raced with the end of the stream still reads as a cancel.
    if (canceled_) return *(readError_ = canceledError());
    if (!n.ok()) {
      if (net::netKind(n.error()) == net::kTimeout || timedOut_) {
        timedOut_ = true;
        killOnce();
        stream_->close();
        return *(readError_ = timedOut());
      }
      if (canceled_) return *(readError_ = canceledError());
      return *(readError_ =
                   Error(ErrorCode::SandboxExecFailed, "exec stream: " + n.error().message));
    }
    if (n.value() == 0) {
      if (!parser_.atFrameBoundary()) {
        return *(readError_ =
                     Error(ErrorCode::SandboxExecFailed, "exec stream ended inside a frame"));
      }
      eof_ = true;
      // Both output streams ended: the process is gone. The engine keeps our stdin side
      // open (unread) for minutes, so a pending stdin write would block: end it now.
      stream_->close();
      continue;
    }
    pieces.clear();
    auto fed = parser_.feed(std::string_view(buf.data(), n.value()), pieces);
    if (!fed.ok()) return *(readError_ = fed.takeError());
    for (const auto& p : pieces) {
      if (p.stream == MuxStream::System) {
        return *(readError_ =
                     Error(ErrorCode::SandboxExecFailed, "engine: " + std::string(p.data)));
      }
      if (p.stream == MuxStream::Stdin) continue;  // only echoed with a TTY; never expected here
      ExecStream s = p.stream == MuxStream::Stdout ? ExecStream::Stdout : ExecStream::Stderr;
      // One read of the socket usually holds several frames; merge neighbours of one stream.
      if (!pending_.empty() && pending_.back().stream == s) {
        pending_.back().data.append(p.data);
      } else {
        pending_.push_back({s, std::string(p.data)});
      }
    }
  }
  ExecChunk c = std::move(pending_.front());
  pending_.pop_front();
  return Out(std::move(c));
}

Result<int> DockerExecSession::wait() {
  std::lock_guard lock(readMu_);
  if (exitCode_) return *exitCode_;
  if (timedOut_) return timedOut();
  if (canceled_) return canceledError();
  if (readError_) return *readError_;
  if (!eof_ || !pending_.empty()) {
    return Error(ErrorCode::ValidationError, "wait() before read() reported the end of output");
  }
  auto code = control_->exitCode();
  if (!code.ok()) return code.takeError();
  exitCode_ = code.value();
  return code.value();
}

void DockerExecSession::cancel() {
  if (canceled_.exchange(true)) return;
  stream_->close();  // unblocks read() and writeStdin() at once
  if (!eof_) killOnce();
}

}  // namespace agentpane::docker
