#include "agentpane/exec.hpp"

#include <thread>

#include "agentpane/provider.hpp"

namespace agentpane {

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
      return Error(ErrorCode::SandboxExecFailed,
                   "output exceeds the limit of " + std::to_string(req.maxOutputBytes) + " bytes");
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

}  // namespace agentpane
