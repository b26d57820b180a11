// The service helper's FakeProvider plus the streaming sessions the server's WebSocket tests
// need: `cat` echoes stdin to stdout until EOF, `block` runs until cancelled. Everything
// else is FakeProvider's (scripted results, tmux emulation, injected errors).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "unit/service/fake_provider.hpp"

namespace agentpane::testing {

// A process that copies stdin to stdout (EOF ends it with exit 0), or, with echo=false,
// waits for cancel() (exit 137). Its asynchronous read parks the handler until there is
// something to read, as a real session parks it on a socket.
class StreamingSession : public ExecSession {
 public:
  using Chunk = Result<std::optional<ExecChunk>>;
  explicit StreamingSession(bool echo, std::atomic<int>* cancels)
      : echo_(echo), cancels_(cancels) {}

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override {
    {
      std::lock_guard lk(mu_);
      if (stdinClosed_) return Error(ErrorCode::SandboxExecFailed, "stdin closed");
      if (echo_) pending_.emplace_back(data);
      cv_.notify_all();
    }
    wakeReader();
    return {};
  }
  Result<void> closeStdin() override {
    {
      std::lock_guard lk(mu_);
      stdinClosed_ = true;
      cv_.notify_all();
    }
    wakeReader();
    return {};
  }
  Result<std::optional<ExecChunk>> read() override {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return readyLocked(); });
    return takeLocked();
  }
  Result<int> wait() override {
    std::lock_guard lk(mu_);
    return cancelled_ ? 137 : 0;
  }
  void cancel() override {
    {
      std::lock_guard lk(mu_);
      if (!cancelled_ && cancels_ != nullptr) ++*cancels_;
      cancelled_ = true;
      cv_.notify_all();
    }
    wakeReader();
  }
  void asyncWriteStdin(std::string data, ExecHandler<void> done) override {
    done(writeStdin(data));
  }
  void asyncCloseStdin(ExecHandler<void> done) override { done(closeStdin()); }
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    {
      std::lock_guard lk(mu_);
      parked_ = std::move(done);
    }
    wakeReader();
  }
  void asyncWait(ExecHandler<int> done) override { done(wait()); }
  // A terminal (echo_) says its new size as output: "[size RxC]".
  void asyncResize(int rows, int cols, ExecHandler<void> done) override {
    if (!echo_) {
      ExecSession::asyncResize(rows, cols, std::move(done));
      return;
    }
    {
      std::lock_guard lk(mu_);
      pending_.push_back("[size " + std::to_string(rows) + "x" + std::to_string(cols) + "]");
    }
    wakeReader();
    done(Result<void>());
  }
  void asyncCancel(ExecHandler<void> done) override {
    cancel();
    done(Result<void>());
  }

 private:
  bool readyLocked() const { return cancelled_ || !pending_.empty() || (echo_ && stdinClosed_); }
  Chunk takeLocked() {
    if (cancelled_) return std::optional<ExecChunk>{};
    if (!pending_.empty()) {
      ExecChunk c{ExecStream::Stdout, std::move(pending_.front())};
      pending_.pop_front();
      return std::optional<ExecChunk>(std::move(c));
    }
    return std::optional<ExecChunk>{};
  }
  // Completes a parked asynchronous read once there is an answer (outside the lock).
  void wakeReader() {
    ExecHandler<std::optional<ExecChunk>> h;
    std::optional<Chunk> answer;
    {
      std::lock_guard lk(mu_);
      if (!parked_ || !readyLocked()) return;
      h = std::move(parked_);
      parked_ = nullptr;
      answer.emplace(takeLocked());
    }
    h(std::move(*answer));
  }

  bool echo_;
  std::atomic<int>* cancels_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;
  bool stdinClosed_ = false;
  bool cancelled_ = false;
  ExecHandler<std::optional<ExecChunk>> parked_;
};

class ServerFake : public fakes::FakeProvider {
 public:
  using FakeProvider::FakeProvider;

  std::atomic<int> opens{0};    // streaming sessions opened
  std::atomic<int> cancels{0};  // streaming sessions cancelled by the server
  std::atomic<int> lastAttachStdin{-1};
  std::atomic<int> attaches{0};  // terminal streams (tmux attach-session under a TTY)

  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override {
    const std::string& id = ref.sandboxId;
    lastAttachStdin = options.attachStdin ? 1 : 0;
    // A viewer's terminal: its keys come back as the pane's output (an echoing terminal).
    if (argv.size() == 4 && argv[0] == "tmux" && argv[1] == "attach-session" && options.tty) {
      if (tmuxSessions(id).count(argv[3].substr(1)) == 0)
        return Error(ErrorCode::TmuxSessionNotFound, "no session " + argv[3]);
      ++attaches;
      return std::unique_ptr<ExecSession>(std::make_unique<StreamingSession>(true, &cancels));
    }
    if (!argv.empty() && (argv[0] == "cat" || argv[0] == "block")) {
      if (!exists(id)) return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
      ++opens;
      return std::unique_ptr<ExecSession>(
          std::make_unique<StreamingSession>(argv[0] == "cat", &cancels));
    }
    return FakeProvider::openExec(ref, argv, options);
  }
};

}  // namespace agentpane::testing
