// ExecSession over Docker's hijacked exec stream. The session owns the raw stream and asks
// an ExecControl for what the stream cannot tell (exit code, killing the process tree), so
// the protocol logic is tested with fake streams and controls, without an engine.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "agentpane/exec.hpp"
#include "docker/multiplex.hpp"
#include "net/byte_stream.hpp"

namespace agentpane::docker {

class ExecControl {
 public:
  virtual ~ExecControl() = default;
  // The exit code once the engine reports the exec finished (polls briefly).
  virtual Result<int> exitCode() = 0;
  // Kills the exec's process and its children. Best effort, bounded in time.
  virtual void killProcessTree() = 0;
  // Coroutine forms, awaited on the session stream's strand; they never block the loop.
  virtual boost::asio::awaitable<Result<int>> asyncExitCode() = 0;
  virtual boost::asio::awaitable<void> asyncKillProcessTree() = 0;
  // The exec's terminal to rows x cols (POST /exec/{id}/resize). The default refuses.
  virtual boost::asio::awaitable<Result<void>> asyncResize(int rows, int cols);
};

class DockerExecSession final : public ExecSession {
 public:
  static constexpr std::size_t kReadSize = 64u << 10;

  // tty: the stream carries a terminal's bytes (no multiplex headers), all as Stdout.
  DockerExecSession(std::unique_ptr<net::ByteStream> stream, std::unique_ptr<ExecControl> control,
                    std::chrono::milliseconds timeout, bool attachStdin, bool tty = false);
  ~DockerExecSession() override;

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override;
  Result<void> closeStdin() override;
  Result<std::optional<ExecChunk>> read() override;
  Result<int> wait() override;
  void cancel() override;
  void asyncWriteStdin(std::string data, ExecHandler<void> done) override;
  void asyncCloseStdin(ExecHandler<void> done) override;
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override;
  void asyncWait(ExecHandler<int> done) override;
  void asyncCancel(ExecHandler<void> done) override;
  void asyncResize(int rows, int cols, ExecHandler<void> done) override;

 private:
  Error timedOut();
  void killOnce();
  // The asynchronous operations; all run on stream_->executor().
  boost::asio::awaitable<Result<void>> writeOp(std::string data);
  boost::asio::awaitable<Result<void>> closeStdinOp();
  boost::asio::awaitable<Result<std::optional<ExecChunk>>> readOp();
  boost::asio::awaitable<Result<int>> waitOp();
  boost::asio::awaitable<Result<void>> cancelOp();
  boost::asio::awaitable<void> killOnceAsync();
  // Shared by both forms. A read of n bytes (0: end of stream): frames into pending_, or
  // the error that ends the session.
  std::optional<Error> absorb(std::string_view bytes);
  // The error a failed stream read or write turns into (net error `e`); `kill` says the
  // caller must kill the process tree (a timeout) before reporting it.
  Error streamFailure(const Error& e, const std::string& what, bool* kill);
  std::optional<Error> stdinRefusal();
  std::optional<Error> exitRefusal();  // why wait() cannot ask for the exit code yet

  std::unique_ptr<net::ByteStream> stream_;
  std::unique_ptr<ExecControl> control_;
  const std::chrono::milliseconds timeout_;
  const net::Deadline deadline_;
  const bool attachStdin_;
  const bool tty_;

  std::mutex readMu_;  // read() and wait()
  MultiplexParser parser_;
  std::deque<ExecChunk> pending_;
  std::atomic<bool> eof_{false};    // written under readMu_, read by cancel()
  std::optional<Error> readError_;  // sticky
  std::optional<int> exitCode_;
  std::string readBuf_;  // async reads (one at a time)

  std::mutex writeMu_;
  bool stdinClosed_ = false;

  std::atomic<bool> timedOut_{false};
  std::atomic<bool> canceled_{false};
  std::atomic<bool> killed_{false};
};

}  // namespace agentpane::docker
