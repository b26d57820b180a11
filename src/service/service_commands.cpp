// SandboxService: durable commands, run by the sandbox's agent (agentpane/commands.hpp).
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;

namespace {

struct Runner {
  std::shared_ptr<SandboxProvider> provider;  // keeps the runner alive
  CommandRunner* runner = nullptr;
  SandboxRef ref;
};

// A template: SandboxService::Impl is private, and deduction does not name it.
template <typename ImplT>
Result<Runner> runnerOf(ImplT& I, const std::string& id) {
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  auto* runner = dynamic_cast<CommandRunner*>(rs->provider.get());
  if (runner == nullptr) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 "durable commands need the in-sandbox agent channel, which this server runs "
                 "without (AGENTPANE_EXEC_CHANNEL=0)",
                 {{"id", id}, {"reason", "execChannelUnavailable"}});
  }
  return Runner{rs->provider, runner, rs->ref};
}

}  // namespace

Result<CommandStatus> SandboxService::commandStart(const std::string& id,
                                                   const std::vector<std::string>& argv,
                                                   const ExecOptions& opts,
                                                   const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateExec(argv, opts));
  auto r = runnerOf(I, id);
  if (!r.ok()) return r.takeError();
  I.auditor->touch(id);
  auto started = r->runner->startCommand(r->ref, argv, opts);
  json detail{{"argv", auditArgv(argv)},
              {"timeoutMs", static_cast<std::int64_t>(opts.timeout.count())}};
  if (started.ok()) {
    detail["commandId"] = started->id;
  } else {
    detail["error"] = errorDetail(started.error());
  }
  I.audit(id, actor, "command.start", detail, started.ok());
  return started;
}

Result<std::vector<CommandStatus>> SandboxService::commandList(const std::string& id) {
  auto r = runnerOf(*impl_, id);
  if (!r.ok()) return r.takeError();
  return r->runner->listCommands(r->ref);
}

Result<CommandOutput> SandboxService::commandOutput(const std::string& id,
                                                    const std::string& commandId,
                                                    std::uint64_t cursor,
                                                    std::chrono::milliseconds wait) {
  auto r = runnerOf(*impl_, id);
  if (!r.ok()) return r.takeError();
  return r->runner->commandOutput(r->ref, commandId, cursor, wait);
}

Result<std::unique_ptr<CommandFollow>> SandboxService::commandFollow(const std::string& id,
                                                                     const std::string& commandId,
                                                                     std::uint64_t cursor,
                                                                     CommandEvents events) {
  auto r = runnerOf(*impl_, id);
  if (!r.ok()) return r.takeError();
  return r->runner->followCommand(r->ref, commandId, cursor, std::move(events));
}

Result<CommandStatus> SandboxService::commandKill(const std::string& id,
                                                  const std::string& commandId,
                                                  const std::string& actor) {
  auto& I = *impl_;
  auto r = runnerOf(I, id);
  if (!r.ok()) return r.takeError();
  auto killed = r->runner->killCommand(r->ref, commandId);
  json detail{{"commandId", commandId}};
  if (killed.ok()) {
    if (killed->exitCode) detail["exitCode"] = *killed->exitCode;
    detail["state"] = killed->state;
  } else {
    detail["error"] = errorDetail(killed.error());
  }
  if (killed.ok() || killed.error().code != ErrorCode::NotFound) {
    I.audit(id, actor, "command.kill", detail, killed.ok());
  }
  return killed;
}

}  // namespace agentpane
