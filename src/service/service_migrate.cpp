// SandboxService: moving a sandbox to the other provider (`agentpane sandbox migrate`).
//
// The order keeps something usable at every step: the old sandbox is set aside (status
// "migrating": still running, not the project's live sandbox), the new one is created as any
// create is, its tmux sessions are made again, and only then is the old one removed. A
// crash in between is settled by reconcile (service_reconcile.cpp): a migrating row whose
// project has a running sandbox is removed; one whose project has none goes back to the
// state of its object.
#include <spdlog/spdlog.h>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

Result<CreateSandboxOutcome> SandboxService::migrateSandbox(const std::string& id, ProviderType to,
                                                            const std::string& actor,
                                                            const CreateControl& control) {
  auto& I = *impl_;
  auto row = I.visibleRow(id);
  if (!row.ok()) return row.takeError();
  const SandboxRecord old = row.value();
  if (old.info.provider == to) {
    return Error(ErrorCode::ValidationError,
                 "sandbox " + id + " is already on " + toString(to) + "; nothing to migrate",
                 {{"field", "to"}});
  }
  const std::string prev = old.status;
  if (prev != st::kRunning && prev != st::kStopped) {
    return Error(
        ErrorCode::SandboxNotRunning,
        "sandbox " + id + " is " + prev + "; only a running or stopped sandbox can be migrated",
        {{"status", prev}});
  }

  // The tmux sessions to make again: tmux is the truth while it runs (tmuxList records
  // sessions made by hand too); a stopped sandbox has only its rows.
  if (prev == st::kRunning) {
    auto live = tmuxList(id);
    if (!live.ok()) {
      spdlog::warn("sandbox {}: migrate: tmux sessions not listed: {}", id,
                   live.error().describe());
    }
  }
  auto sessions = I.store.listTmuxSessions(id);
  if (!sessions.ok()) return sessions.takeError();

  Impl::InflightGuard guard(I, id);  // reconcile leaves the old row alone meanwhile
  if (prev == st::kRunning) {
    auto cas = I.store.setSandboxStatus(id, st::kMigrating, "", prev);
    if (!cas.ok()) return cas.takeError();
    if (!cas.value()) return Error(ErrorCode::Conflict, "sandbox " + id + " changed state; retry");
  }
  json detail{{"from", toString(old.info.provider)},
              {"fromInstance", old.info.instance},
              {"to", toString(to)},
              {"previousStatus", prev}};
  auto putBack = [&] {
    if (prev != st::kRunning) return;
    auto back = I.store.setSandboxStatus(id, prev, "", std::string(st::kMigrating));
    if (!back.ok() || !back.value()) {
      spdlog::warn("sandbox {}: migrate: status not restored (reconcile settles it)", id);
    }
  };
  control.progress("migrating", "sandbox " + id + " is set aside while its replacement on " +
                                    toString(to) + " is made");

  CreateSandboxRequest req;
  req.projectPath = old.info.projectPath;
  req.projectId = old.info.projectId;
  req.agentId = old.info.agentId;
  if (!old.configId.empty()) req.configId = old.configId;
  req.provider = to;
  if (!old.info.image.empty()) req.image = old.info.image;
  req.noFallback = true;  // landing back where it came from is no migration
  req.egressExactly = storedAllowlist(old);
  auto made = createSandbox(req, actor, control);
  if (!made.ok()) {
    Error err = made.takeError();
    putBack();
    detail["error"] = errorDetail(err);
    I.audit(id, actor, "sandbox.migrate", detail, false);
    return err;
  }
  CreateSandboxOutcome out = std::move(made).value();
  const std::string newId = out.sandbox.info.id;
  out.migratedFrom = id;
  detail["newId"] = newId;

  json remade = json::array();
  for (const auto& s : sessions.value()) {
    if (control.cancelled()) {
      out.warnings.push_back("tmux session '" + s.name + "' not made again: cancelled");
      continue;
    }
    control.progress("tmux", "tmux session '" + s.name + "' made again in " + newId);
    auto r = tmuxCreate(newId, s.name, s.command, actor);
    if (r.ok()) {
      remade.push_back(s.name);
    } else {
      out.warnings.push_back("tmux session '" + s.name +
                             "' not made again: " + r.error().describe());
    }
  }
  detail["tmuxSessions"] = remade;

  control.progress("removing", "removing the old sandbox " + id);
  auto rm = removeSandbox(id, actor);
  if (!rm.ok()) {
    // The new sandbox serves the project; the old row stays "migrating", which reconcile
    // removes once it can reach the old provider.
    out.warnings.push_back("the old sandbox " + id +
                           " is not removed yet (reconcile retries): " + rm.error().describe());
    detail["removeError"] = errorDetail(rm.error());
  }
  if (!out.warnings.empty()) detail["warnings"] = out.warnings;
  I.audit(id, actor, "sandbox.migrate", detail, true);
  I.emit("migrated", id, newId);
  return out;
}

}  // namespace agentpane
