// SandboxService: tmux sessions (created, listed, killed, typed into, captured). Mutations
// are audited and touch the sandbox's last activity; sessions are mirrored in table
// tmux_sessions, with tmux itself the truth.
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;

Result<TmuxSessionInfo> SandboxService::tmuxCreate(const std::string& id, const std::string& name,
                                                   const std::vector<std::string>& command,
                                                   const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateTmuxName(name));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  TmuxController tmux(*rs->provider);
  auto r = tmux.create(rs->ref, name, command);
  json detail{{"name", name}, {"command", auditArgv(command)}};
  if (!r.ok()) {
    detail["error"] = errorDetail(r.error());
    I.audit(id, actor, "tmux.create", detail, false);
    return r.takeError();
  }
  TmuxSessionRow row{id, name, command, r->createdUnix != 0 ? r->createdUnix : I.nowSec()};
  auto up = I.store.upsertTmuxSession(row);
  if (!up.ok()) spdlog::warn("sandbox {}: tmux row {}: {}", id, name, up.error().describe());
  I.auditor->touch(id);
  I.audit(id, actor, "tmux.create", detail, true);
  I.emit("tmux.created", id, name);
  return r;
}

Result<std::vector<TmuxSessionInfo>> SandboxService::tmuxList(const std::string& id) {
  auto& I = *impl_;
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  TmuxController tmux(*rs->provider);
  auto live = tmux.list(rs->ref);
  if (!live.ok()) return live.takeError();
  auto rows = I.store.listTmuxSessions(id);
  if (!rows.ok()) return rows.takeError();
  // tmux is the truth: rows of sessions that ended go, sessions we did not know (made by
  // hand inside the sandbox, or before a restart) are recorded.
  std::map<std::string, const TmuxSessionRow*> known;
  for (const auto& row : rows.value())
    known[row.name] = &row;
  std::set<std::string> seen;
  for (auto& s : live.value()) {
    seen.insert(s.name);
    auto it = known.find(s.name);
    if (it == known.end()) {
      auto up = I.store.upsertTmuxSession(
          {id, s.name, {}, s.createdUnix != 0 ? s.createdUnix : I.nowSec()});
      if (!up.ok()) spdlog::warn("sandbox {}: tmux row {}: {}", id, s.name, up.error().describe());
    } else if (s.createdUnix == 0) {
      s.createdUnix = it->second->createdAtUnix;
    }
  }
  for (const auto& row : rows.value()) {
    if (seen.count(row.name) == 0) {
      auto del = I.store.deleteTmuxSession(id, row.name);
      if (!del.ok())
        spdlog::warn("sandbox {}: tmux row {}: {}", id, row.name, del.error().describe());
    }
  }
  return live;
}

Result<void> SandboxService::tmuxKill(const std::string& id, const std::string& name,
                                      const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateTmuxName(name));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  TmuxController tmux(*rs->provider);
  auto r = tmux.kill(rs->ref, name);
  json detail{{"name", name}};
  if (r.ok() || r.error().code == ErrorCode::TmuxSessionNotFound) {
    auto del = I.store.deleteTmuxSession(id, name);
    if (!del.ok()) spdlog::warn("sandbox {}: tmux row {}: {}", id, name, del.error().describe());
  }
  if (!r.ok()) {
    detail["error"] = errorDetail(r.error());
    I.audit(id, actor, "tmux.kill", detail, false);
    return r;
  }
  I.auditor->touch(id);
  I.audit(id, actor, "tmux.kill", detail, true);
  I.emit("tmux.destroyed", id, name);
  return {};
}

Result<void> SandboxService::tmuxSendKeys(const std::string& id, const std::string& name,
                                          const std::string& text, bool enter,
                                          const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateTmuxName(name));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  TmuxController tmux(*rs->provider);
  auto r = tmux.sendKeys(rs->ref, name, text, enter);
  // The text itself is not logged (it may be a password typed into a prompt); its size is.
  json detail{{"name", name}, {"bytes", text.size()}, {"enter", enter}};
  if (!r.ok()) detail["error"] = errorDetail(r.error());
  I.auditor->touch(id);
  I.audit(id, actor, "tmux.keys", detail, r.ok());
  return r;
}

Result<std::string> SandboxService::tmuxCapture(const std::string& id, const std::string& name,
                                                int lines) {
  auto& I = *impl_;
  AP_TRY(validateTmuxName(name));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  // A read: not audited, and it does not count as activity (a page polling the pane must not
  // keep a sandbox alive forever).
  TmuxController tmux(*rs->provider);
  return tmux.capture(rs->ref, name, lines);
}

}  // namespace agentpane
