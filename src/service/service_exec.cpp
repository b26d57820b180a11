// SandboxService: exec (buffered and streaming) and tmux. Every exec and every tmux mutation
// is audited; both touch the sandbox's last activity (the idle clock).
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;

namespace {

// The argv as recorded in the audit log: every argument, each cut at 1 KiB, at most 256
// arguments, so that one exec cannot blow up the log.
json auditArgv(const std::vector<std::string>& argv) {
  json out = json::array();
  for (std::size_t i = 0; i < argv.size() && i < 256; ++i) {
    const auto& a = argv[i];
    out.push_back(a.size() > 1024 ? a.substr(0, 1024) + "…" : a);
  }
  if (argv.size() > 256) out.push_back("… " + std::to_string(argv.size() - 256) + " more");
  return out;
}

Result<void> validateExec(const std::vector<std::string>& argv, const ExecOptions& opts) {
  if (argv.empty()) return validationError("argv", "argv must not be empty");
  for (const auto& [k, v] : opts.env) {
    if (!isValidEnvKey(k)) {
      return Error(ErrorCode::ValidationError,
                   "environment variable name '" + k + "' must match [A-Za-z_][A-Za-z0-9_]*",
                   {{"field", "env"}, {"key", k}});
    }
  }
  return {};
}

std::int64_t msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

// Wraps a provider's session: when it ends (wait() or destruction) the exec is audited with
// its exit code and duration, and the sandbox's activity is touched.
class AuditedExecSession : public ExecSession {
 public:
  AuditedExecSession(std::unique_ptr<ExecSession> inner, std::shared_ptr<Auditor> auditor,
                     std::shared_ptr<SandboxProvider> provider, std::string sandboxId,
                     std::string actor, json detail)
      : inner_(std::move(inner)),
        auditor_(std::move(auditor)),
        provider_(std::move(provider)),
        sandboxId_(std::move(sandboxId)),
        actor_(std::move(actor)),
        detail_(std::move(detail)),
        start_(std::chrono::steady_clock::now()) {}

  ~AuditedExecSession() override {
    if (!finished_.load()) {
      inner_->cancel();
      finish(std::nullopt,
             Error(ErrorCode::SandboxExecFailed, "session closed before the process exited"));
    }
  }

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override { return inner_->writeStdin(data); }
  Result<void> closeStdin() override { return inner_->closeStdin(); }
  Result<std::optional<ExecChunk>> read() override {
    auto r = inner_->read();
    if (!r.ok() && r.error().code == ErrorCode::ExecTimeout) {
      finish(std::nullopt, r.error());
    }
    return r;
  }
  Result<int> wait() override {
    auto r = inner_->wait();
    if (r.ok())
      finish(r.value(), std::nullopt);
    else
      finish(std::nullopt, r.error());
    return r;
  }
  void cancel() override { inner_->cancel(); }

 private:
  void finish(std::optional<int> exitCode, std::optional<Error> err) {
    if (finished_.exchange(true)) return;
    json detail = detail_;
    detail["durationMs"] = msSince(start_);
    if (exitCode) detail["exitCode"] = *exitCode;
    if (err) detail["error"] = errorDetail(*err);
    auditor_->touch(sandboxId_);
    auditor_->write(sandboxId_, actor_, "exec", detail, exitCode.has_value());
  }

  std::unique_ptr<ExecSession> inner_;
  std::shared_ptr<Auditor> auditor_;
  std::shared_ptr<SandboxProvider> provider_;  // keeps the provider alive for the session
  std::string sandboxId_;
  std::string actor_;
  json detail_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> finished_{false};
};

}  // namespace

Result<ExecResult> SandboxService::exec(const std::string& id, const ExecRequest& req,
                                        const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateExec(req.argv, req.options));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  auto& prov = rs.value().second;
  I.auditor->touch(id);
  auto t0 = std::chrono::steady_clock::now();
  auto r = prov->exec(id, req);
  json detail{{"argv", auditArgv(req.argv)},
              {"root", req.options.root},
              {"durationMs", msSince(t0)},
              {"timeoutMs", static_cast<std::int64_t>(req.options.timeout.count())}};
  if (r.ok()) {
    detail["exitCode"] = r->exitCode;
    detail["stdoutBytes"] = r->stdoutData.size();
    detail["stderrBytes"] = r->stderrData.size();
  } else {
    detail["error"] = errorDetail(r.error());
  }
  I.auditor->touch(id);
  I.audit(id, actor, "exec", detail, r.ok());
  return r;
}

Result<std::unique_ptr<ExecSession>> SandboxService::openExec(const std::string& id,
                                                              const std::vector<std::string>& argv,
                                                              const ExecOptions& opts,
                                                              const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateExec(argv, opts));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  auto prov = rs.value().second;
  I.auditor->touch(id);
  json detail{{"argv", auditArgv(argv)},
              {"root", opts.root},
              {"stream", true},
              {"timeoutMs", static_cast<std::int64_t>(opts.timeout.count())}};
  auto session = prov->openExec(id, argv, opts);
  if (!session.ok()) {
    detail["error"] = errorDetail(session.error());
    I.audit(id, actor, "exec", detail, false);
    return session.takeError();
  }
  return std::unique_ptr<ExecSession>(std::make_unique<AuditedExecSession>(
      std::move(session).value(), I.auditor, prov, id, actor, std::move(detail)));
}

// --- tmux ------------------------------------------------------------------------------------

Result<TmuxSessionInfo> SandboxService::tmuxCreate(const std::string& id, const std::string& name,
                                                   const std::vector<std::string>& command,
                                                   const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateTmuxName(name));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  TmuxController tmux(*rs.value().second);
  auto r = tmux.create(id, name, command);
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
  TmuxController tmux(*rs.value().second);
  auto live = tmux.list(id);
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
  TmuxController tmux(*rs.value().second);
  auto r = tmux.kill(id, name);
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
  TmuxController tmux(*rs.value().second);
  auto r = tmux.sendKeys(id, name, text, enter);
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
  TmuxController tmux(*rs.value().second);
  return tmux.capture(id, name, lines);
}

}  // namespace agentpane
