#include "agentpane/exec.hpp"

#include <thread>

#include "agentpane/provider.hpp"

namespace agentpane {

namespace {
Error noAsyncForm() {
  return Error(ErrorCode::Internal, "this exec session has no asynchronous form",
               {{"reason", "noAsyncForm"}});
}
}  // namespace

void ExecSession::asyncWriteStdin(std::string, ExecHandler<void> done) {
  done(noAsyncForm());
}
void ExecSession::asyncCloseStdin(ExecHandler<void> done) {
  done(noAsyncForm());
}
void ExecSession::asyncRead(ExecHandler<std::optional<ExecChunk>> done) {
  done(noAsyncForm());
}
void ExecSession::asyncWait(ExecHandler<int> done) {
  done(noAsyncForm());
}
void ExecSession::asyncCancel(ExecHandler<void> done) {
  // Cancelling still works: the blocking form's cancel() is all a caller can get here.
  cancel();
  done(Result<void>());
}

void ExecSession::asyncResize(int, int, ExecHandler<void> done) {
  done(Error(ErrorCode::ValidationError, "this exec has no terminal to resize",
             {{"reason", "resizeUnsupported"}}));
}

Result<ExecResult> runToCompletion(ExecSession& session, const ExecRequest& req) {
  // Stdin is written on its own thread: a process that fills stdout before reading all of
  // its stdin would otherwise deadlock against us.
  std::thread feeder;
  Result<void> feedResult;
  if (req.options.attachStdin) {
    feeder = std::thread([&] {
      if (req.stdinData && !req.stdinData->empty()) {
        feedResult = session.writeStdin(*req.stdinData);
      }
      auto closed = session.closeStdin();
      if (feedResult.ok() && !closed.ok()) feedResult = closed;
    });
  }
  auto joinFeeder = [&] {
    if (feeder.joinable()) feeder.join();
  };

  ExecResult out;
  for (;;) {
    auto chunk = session.read();
    if (!chunk.ok()) {
      session.cancel();
      joinFeeder();
      return chunk.takeError();
    }
    if (!chunk.value()) break;
    auto& target = chunk.value()->stream == ExecStream::Stdout ? out.stdoutData : out.stderrData;
    if (target.size() + chunk.value()->data.size() > req.maxOutputBytes) {
      session.cancel();
      joinFeeder();
      const std::string limit = std::to_string(req.maxOutputBytes);
      return Error(ErrorCode::ExecOutputTooLarge,
                   "output exceeds the limit of " + limit +
                       " bytes per stream; stream larger outputs (GET …/exec/stream)",
                   {{"limit", limit}});
    }
    target += chunk.value()->data;
  }
  joinFeeder();
  auto code = session.wait();
  if (!code.ok()) return code.takeError();
  out.exitCode = code.value();
  // A process that exits without reading its stdin makes writes fail (EPIPE); that is the
  // process's choice, not an exec failure.
  return out;
}

Result<ExecResult> SandboxExecutor::exec(const SandboxRef& ref, const ExecRequest& req) {
  ExecOptions opts = req.options;
  if (req.stdinData) opts.attachStdin = true;
  auto session = openExec(ref, req.argv, opts);
  if (!session.ok()) return session.takeError();
  ExecRequest effective = req;
  effective.options = opts;
  return runToCompletion(*session.value(), effective);
}

// The warm pool's defaults: a provider that keeps no warm sandboxes says so.
namespace {
Error noWarmPool() {
  return Error(ErrorCode::WarmPoolDisabled, "this provider keeps no warm sandboxes");
}
}  // namespace

Result<void> SandboxWarmPool::warmSupported() {
  return noWarmPool();
}
Result<SandboxInfo> SandboxWarmPool::createWarm(const SandboxSpec&, const CreateControl&) {
  return noWarmPool();
}
Result<SandboxInfo> SandboxWarmPool::claimWarm(const SandboxRef&, const WarmClaim&) {
  return noWarmPool();
}

}  // namespace agentpane
