// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "docker/exec_session.hpp"

#include <boost/asio/post.hpp>

#include <vector>

#include "common/exec_async.hpp"
#include "net/errors.hpp"

namespace agentpane::docker {

namespace asio = boost::asio;

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
                                     std::chrono::milliseconds timeout, bool attachStdin, bool tty)
    : stream_(std::move(stream)),
      control_(std::move(control)),
      timeout_(timeout),
      deadline_(deadlineFor(timeout)),
      attachStdin_(attachStdin),
      tty_(tty) {}

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

std::optional<Error> DockerExecSession::stdinRefusal() {
  if (!attachStdin_) return Error(ErrorCode::ValidationError, "exec was opened without stdin");
  if (stdinClosed_) return Error(ErrorCode::ValidationError, "stdin already closed");
  if (canceled_) return canceledError();
  if (timedOut_) return timedOut();
  if (eof_) return exitedError();
  return std::nullopt;
}

Error DockerExecSession::streamFailure(const Error& e, const std::string& what, bool* kill) {
  *kill = false;
  if (canceled_) return canceledError();
  if (net::netKind(e) == net::kTimeout || timedOut_) {
    // The other direction may be waiting too; the process must die and everyone wake up.
    timedOut_ = true;
    *kill = true;
    return timedOut();
  }
  if (eof_ && what == "writing stdin") return exitedError();
  return Error(ErrorCode::SandboxExecFailed, what + ": " + e.message);
}

std::optional<Error> DockerExecSession::absorb(std::string_view bytes) {
  if (tty_ && !bytes.empty()) {  // a terminal: bytes as they are, no frames
    if (!pending_.empty()) {
      pending_.back().data.append(bytes);
    } else {
      pending_.push_back({ExecStream::Stdout, std::string(bytes)});
    }
    return std::nullopt;
  }
  if (bytes.empty()) {
    if (!tty_ && !parser_.atFrameBoundary())
      return Error(ErrorCode::SandboxExecFailed, "exec stream ended inside a frame");
    eof_ = true;
    // Both output streams ended: the process is gone. The engine keeps our stdin side
    // open (unread) for minutes, so a pending stdin write would block: end it now.
    stream_->close();
    return std::nullopt;
  }
  std::vector<MuxPiece> pieces;
  auto fed = parser_.feed(bytes, pieces);
  if (!fed.ok()) return fed.takeError();
  for (const auto& p : pieces) {
    if (p.stream == MuxStream::System)
      return Error(ErrorCode::SandboxExecFailed, "engine: " + std::string(p.data));
    if (p.stream == MuxStream::Stdin) continue;  // only echoed with a TTY; never expected here
    ExecStream s = p.stream == MuxStream::Stdout ? ExecStream::Stdout : ExecStream::Stderr;
    // One read of the socket usually holds several frames; merge neighbours of one stream.
    if (!pending_.empty() && pending_.back().stream == s) {
      pending_.back().data.append(p.data);
    } else {
      pending_.push_back({s, std::string(p.data)});
    }
  }
  return std::nullopt;
}

std::optional<Error> DockerExecSession::exitRefusal() {
  if (timedOut_) return timedOut();
  if (canceled_) return canceledError();
  if (readError_) return *readError_;
  if (!eof_ || !pending_.empty()) {
    return Error(ErrorCode::ValidationError, "wait() before read() reported the end of output");
  }
  return std::nullopt;  // the engine knows the code
}

// --- blocking form ----------------------------------------------------------------------------

Result<void> DockerExecSession::writeStdin(std::string_view data) {
  if (!attachStdin_) return Error(ErrorCode::ValidationError, "exec was opened without stdin");
  std::lock_guard lock(writeMu_);
  if (auto refused = stdinRefusal()) return *refused;
  auto r = stream_->writeAll(data, deadline_);
  if (r.ok()) return r;
  bool kill = false;
  Error e = streamFailure(r.error(), "writing stdin", &kill);
  if (kill) {
    killOnce();
    stream_->close();
  }
  return e;
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
  std::string buf(kReadSize, '\0');
  while (pending_.empty()) {
    if (eof_) return Out();
    if (canceled_) return *(readError_ = canceledError());
    if (timedOut_) return *(readError_ = timedOut());
    auto n = stream_->readSome(buf.data(), buf.size(), deadline_);
    // A cancel that raced with the end of the stream still reads as a cancel.
    if (canceled_) return *(readError_ = canceledError());
    if (!n.ok()) {
      bool kill = false;
      readError_ = streamFailure(n.error(), "exec stream", &kill);
      if (kill) {
        killOnce();
        stream_->close();
      }
      return *readError_;
    }
    if (auto e = absorb(std::string_view(buf.data(), n.value()))) return *(readError_ = e);
  }
  ExecChunk c = std::move(pending_.front());
  pending_.pop_front();
  return Out(std::move(c));
}

Result<int> DockerExecSession::wait() {
  std::lock_guard lock(readMu_);
  if (exitCode_) return *exitCode_;
  if (auto refused = exitRefusal()) return *refused;
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

// --- asynchronous form ------------------------------------------------------------------------
// Every operation is a coroutine on the stream's strand, so the state they share needs no
// lock; only cancel()/asyncCancel() may come from elsewhere, and they touch atomics and the
// stream's close(), which is thread-safe.

asio::awaitable<void> DockerExecSession::killOnceAsync() {
  if (killed_.exchange(true)) co_return;
  auto op = control_->asyncKillProcessTree();
  co_await std::move(op);
}

asio::awaitable<Result<void>> DockerExecSession::writeOp(std::string data) {
  if (auto refused = stdinRefusal()) co_return *refused;
  auto op = stream_->asyncWriteAll(data, deadline_);
  auto r = co_await std::move(op);
  if (r.ok()) co_return r;
  bool kill = false;
  Error e = streamFailure(r.error(), "writing stdin", &kill);
  if (kill) {
    auto k = killOnceAsync();
    co_await std::move(k);
    stream_->close();
  }
  co_return e;
}

asio::awaitable<Result<void>> DockerExecSession::closeStdinOp() {
  if (stdinClosed_ || !attachStdin_) co_return Result<void>();
  stdinClosed_ = true;
  auto op = stream_->asyncShutdownWrite();
  auto r = co_await std::move(op);
  if (r.ok() || canceled_ || timedOut_ || eof_) co_return Result<void>();
  co_return Error(ErrorCode::SandboxExecFailed, "closing stdin: " + r.error().message);
}

asio::awaitable<Result<std::optional<ExecChunk>>> DockerExecSession::readOp() {
  using Out = std::optional<ExecChunk>;
  if (readError_) co_return *readError_;
  if (readBuf_.size() != kReadSize) readBuf_.assign(kReadSize, '\0');
  while (pending_.empty()) {
    if (eof_) co_return Out();
    if (canceled_) co_return *(readError_ = canceledError());
    if (timedOut_) co_return *(readError_ = timedOut());
    auto op = stream_->asyncReadSome(readBuf_.data(), readBuf_.size(), deadline_);
    auto n = co_await std::move(op);
    if (canceled_) co_return *(readError_ = canceledError());
    if (!n.ok()) {
      bool kill = false;
      readError_ = streamFailure(n.error(), "exec stream", &kill);
      if (kill) {
        auto k = killOnceAsync();
        co_await std::move(k);
        stream_->close();
      }
      co_return *readError_;
    }
    if (auto e = absorb(std::string_view(readBuf_.data(), n.value()))) co_return *(readError_ = e);
  }
  ExecChunk c = std::move(pending_.front());
  pending_.pop_front();
  co_return Out(std::move(c));
}

asio::awaitable<Result<int>> DockerExecSession::waitOp() {
  if (exitCode_) co_return *exitCode_;
  if (auto refused = exitRefusal()) co_return *refused;
  auto op = control_->asyncExitCode();
  auto code = co_await std::move(op);
  if (!code.ok()) co_return code.takeError();
  exitCode_ = code.value();
  co_return code.value();
}

asio::awaitable<Result<void>> DockerExecSession::cancelOp() {
  if (!eof_) {
    auto k = killOnceAsync();
    co_await std::move(k);
  }
  co_return Result<void>();
}

void DockerExecSession::asyncWriteStdin(std::string data, ExecHandler<void> done) {
  completeWith(stream_->executor(), writeOp(std::move(data)), std::move(done));
}

void DockerExecSession::asyncCloseStdin(ExecHandler<void> done) {
  completeWith(stream_->executor(), closeStdinOp(), std::move(done));
}

void DockerExecSession::asyncRead(ExecHandler<std::optional<ExecChunk>> done) {
  completeWith(stream_->executor(), readOp(), std::move(done));
}

void DockerExecSession::asyncWait(ExecHandler<int> done) {
  completeWith(stream_->executor(), waitOp(), std::move(done));
}

boost::asio::awaitable<Result<void>> ExecControl::asyncResize(int, int) {
  co_return Error(ErrorCode::ValidationError, "this exec cannot be resized",
                  {{"reason", "resizeUnsupported"}});
}

void DockerExecSession::asyncResize(int rows, int cols, ExecHandler<void> done) {
  if (!tty_) {
    ExecSession::asyncResize(rows, cols, std::move(done));
    return;
  }
  completeWith(stream_->executor(), control_->asyncResize(rows, cols), std::move(done));
}

void DockerExecSession::asyncCancel(ExecHandler<void> done) {
  if (canceled_.exchange(true)) {
    asio::post(stream_->executor(), [done = std::move(done)] { done(Result<void>()); });
    return;
  }
  stream_->close();  // fails a pending read or write at once
  completeWith(stream_->executor(), cancelOp(), std::move(done));
}

}  // namespace agentpane::docker
