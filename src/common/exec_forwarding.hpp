// An ExecSession that passes every call, blocking and asynchronous, to another: decorators
// (auditing, a provider's kill) derive from it and override only what they add.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "agentpane/exec.hpp"

namespace agentpane {

class ForwardingExecSession : public ExecSession {
 public:
  explicit ForwardingExecSession(std::unique_ptr<ExecSession> inner) : inner_(std::move(inner)) {}

  Result<void> writeStdin(std::string_view data) override { return inner_->writeStdin(data); }
  Result<void> closeStdin() override { return inner_->closeStdin(); }
  Result<std::optional<ExecChunk>> read() override { return inner_->read(); }
  Result<int> wait() override { return inner_->wait(); }
  void cancel() override { inner_->cancel(); }

  void asyncWriteStdin(std::string data, ExecHandler<void> done) override {
    inner_->asyncWriteStdin(std::move(data), std::move(done));
  }
  void asyncCloseStdin(ExecHandler<void> done) override {
    inner_->asyncCloseStdin(std::move(done));
  }
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    inner_->asyncRead(std::move(done));
  }
  void asyncWait(ExecHandler<int> done) override { inner_->asyncWait(std::move(done)); }
  void asyncCancel(ExecHandler<void> done) override { inner_->asyncCancel(std::move(done)); }
  void asyncResize(int rows, int cols, ExecHandler<void> done) override {
    inner_->asyncResize(rows, cols, std::move(done));
  }

 protected:
  std::unique_ptr<ExecSession> inner_;
};

}  // namespace agentpane
