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
// waits for cancel() (exit 137).
class StreamingSession : public ExecSession {
 public:
  explicit StreamingSession(bool echo, std::atomic<int>* cancels)
      : echo_(echo), cancels_(cancels) {}

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override {
    std::lock_guard lk(mu_);
    if (stdinClosed_) return Error(ErrorCode::SandboxExecFailed, "stdin closed");
    if (echo_) pending_.emplace_back(data);
    cv_.notify_all();
    return {};
  }
  Result<void> closeStdin() override {
    std::lock_guard lk(mu_);
    stdinClosed_ = true;
    cv_.notify_all();
    return {};
  }
  Result<std::optional<ExecChunk>> read() override {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return cancelled_ || !pending_.empty() || (echo_ && stdinClosed_); });
    if (cancelled_) return std::optional<ExecChunk>{};
    if (!pending_.empty()) {
      ExecChunk c{ExecStream::Stdout, std::move(pending_.front())};
      pending_.pop_front();
      return std::optional<ExecChunk>(std::move(c));
    }
    return std::optional<ExecChunk>{};
  }
  Result<int> wait() override {
    std::lock_guard lk(mu_);
    return cancelled_ ? 137 : 0;
  }
  void cancel() override {
    std::lock_guard lk(mu_);
    if (!cancelled_ && cancels_ != nullptr) ++*cancels_;
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  bool echo_;
  std::atomic<int>* cancels_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;
  bool stdinClosed_ = false;
  bool cancelled_ = false;
};

class ServerFake : public fakes::FakeProvider {
 public:
  using FakeProvider::FakeProvider;

  std::atomic<int> opens{0};    // streaming sessions opened
  std::atomic<int> cancels{0};  // streaming sessions cancelled by the server
  std::atomic<int> lastAttachStdin{-1};

  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override {
    const std::string& id = ref.sandboxId;
    lastAttachStdin = options.attachStdin ? 1 : 0;
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
