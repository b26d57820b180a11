// SandboxService: exec (buffered and streaming). Every exec is audited and touches the
// sandbox's last activity (the idle clock).
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include "common/exec_forwarding.hpp"
#include "common/hash.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;

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

namespace {

std::int64_t msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

// Wraps a provider's session: when it ends (wait() or destruction) the exec is audited with
// its exit code and duration, and the sandbox's activity is touched.
class AuditedExecSession : public ForwardingExecSession {
 public:
  AuditedExecSession(std::unique_ptr<ExecSession> inner, std::shared_ptr<Auditor> auditor,
                     std::shared_ptr<SandboxProvider> provider, std::string sandboxId,
                     std::string actor, json detail)
      : ForwardingExecSession(std::move(inner)),
        auditor_(std::move(auditor)),
        provider_(std::move(provider)),
        sandboxId_(std::move(sandboxId)),
        actor_(std::move(actor)),
        detail_(std::move(detail)),
        start_(std::chrono::steady_clock::now()) {
    auditor_->beginWork(sandboxId_);
  }

  ~AuditedExecSession() override {
    std::optional<Outcome> outcome;
    {
      std::lock_guard lock(mu_);
      outcome = std::move(outcome_);
    }
    if (outcome) {
      finish(outcome->exitCode, outcome->error);
    } else if (!finished_.load()) {
      inner_->cancel();
      finish(std::nullopt,
             Error(ErrorCode::SandboxExecFailed, "session closed before the process exited"));
    }
  }

  // agentpane::ExecSession
  Result<std::optional<ExecChunk>> read() override {
    auto r = inner_->read();
    count(r);
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

  // The asynchronous form runs on I/O threads, where no SQLite write may happen: the
  // outcome is remembered and audited when the session is destroyed (the caller destroys
  // it off the I/O threads; see sandbox_service.hpp).
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    inner_->asyncRead([this, done = std::move(done)](Result<std::optional<ExecChunk>> r) {
      count(r);
      if (!r.ok() && r.error().code == ErrorCode::ExecTimeout) remember({std::nullopt, r.error()});
      done(std::move(r));
    });
  }
  void asyncWait(ExecHandler<int> done) override {
    inner_->asyncWait([this, done = std::move(done)](Result<int> r) {
      if (r.ok())
        remember({r.value(), std::nullopt});
      else
        remember({std::nullopt, r.error()});
      done(std::move(r));
    });
  }

 private:
  struct Outcome {
    std::optional<int> exitCode;
    std::optional<Error> error;
  };
  // What the command wrote, as it passes to the caller: the audit entry carries its size
  // and SHA-256 per stream.
  struct Output {
    std::uint64_t bytes = 0;
    Sha256 sha;
  };
  void count(const Result<std::optional<ExecChunk>>& r) {
    if (!r.ok() || !r.value()) return;
    const ExecChunk& c = *r.value();
    std::lock_guard lock(outMu_);
    Output& o = c.stream == ExecStream::Stderr ? stderr_ : stdout_;
    o.bytes += c.data.size();
    o.sha.update(c.data);
  }

  void remember(Outcome o) {
    std::lock_guard lock(mu_);
    if (!outcome_) outcome_ = std::move(o);
  }

  void finish(std::optional<int> exitCode, std::optional<Error> err) {
    if (finished_.exchange(true)) return;
    auditor_->endWork(sandboxId_);
    json detail = detail_;
    detail["durationMs"] = msSince(start_);
    if (exitCode) detail["exitCode"] = *exitCode;
    if (err) detail["error"] = errorDetail(*err);
    {
      std::lock_guard lock(outMu_);
      detail["stdoutBytes"] = stdout_.bytes;
      detail["stderrBytes"] = stderr_.bytes;
      detail["stdoutSha256"] = stdout_.sha.hex();
      detail["stderrSha256"] = stderr_.sha.hex();
    }
    auditor_->touch(sandboxId_);
    auditor_->write(sandboxId_, actor_, "exec", detail, exitCode.has_value());
  }

  std::shared_ptr<Auditor> auditor_;
  std::shared_ptr<SandboxProvider> provider_;  // keeps the provider alive for the session
  std::string sandboxId_;
  std::string actor_;
  json detail_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  std::optional<Outcome> outcome_;  // asynchronous form: audited at destruction
  std::mutex outMu_;
  Output stdout_, stderr_;
};

}  // namespace

Result<void> SandboxService::Impl::checkRootExec(const SandboxRecord& row) {
  std::optional<SandboxConfig> config;
  if (!row.configId.empty()) {
    auto c = store.getConfig(row.configId);
    if (c.ok()) config = std::move(c.value());
  }
  if (config && config->allowRootExec) return {};
  return Error(ErrorCode::SandboxRootExecForbidden,
               config ? "root exec is not allowed by the sandbox's profile '" + config->name +
                            "' (set allowRootExec on it to allow it)"
                      : "root exec is not allowed: the sandbox has no profile that allows it",
               {{"field", "root"}, {"configId", row.configId}});
}

Result<ExecResult> SandboxService::exec(const std::string& id, const ExecRequest& req,
                                        const std::string& actor) {
  auto& I = *impl_;
  AP_TRY(validateExec(req.argv, req.options));
  auto rs = I.runningSandbox(id);
  if (!rs.ok()) return rs.takeError();
  if (req.options.root) AP_TRY(I.checkRootExec(rs->row));
  auto& prov = rs->provider;
  I.auditor->touch(id);
  WorkGuard working(I.auditor, id);  // a long buffered exec keeps the sandbox from idling
  auto t0 = std::chrono::steady_clock::now();
  auto r = prov->exec(rs->ref, req);
  json detail{{"argv", auditArgv(req.argv)},
              {"root", req.options.root},
              {"durationMs", msSince(t0)},
              {"timeoutMs", static_cast<std::int64_t>(req.options.timeout.count())}};
  if (r.ok()) {
    detail["exitCode"] = r->exitCode;
    detail["stdoutBytes"] = r->stdoutData.size();
    detail["stderrBytes"] = r->stderrData.size();
    detail["stdoutSha256"] = sha256Hex(r->stdoutData);
    detail["stderrSha256"] = sha256Hex(r->stderrData);
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
  if (opts.root) AP_TRY(I.checkRootExec(rs->row));
  auto prov = rs->provider;
  I.auditor->touch(id);
  json detail{{"argv", auditArgv(argv)},
              {"root", opts.root},
              {"stream", true},
              {"timeoutMs", static_cast<std::int64_t>(opts.timeout.count())}};
  auto session = prov->openExec(rs->ref, argv, opts);
  if (!session.ok()) {
    detail["error"] = errorDetail(session.error());
    I.audit(id, actor, "exec", detail, false);
    return session.takeError();
  }
  return std::unique_ptr<ExecSession>(std::make_unique<AuditedExecSession>(
      std::move(session).value(), I.auditor, prov, id, actor, std::move(detail)));
}

namespace {

class ExecEnvProvider final : public SandboxProvider {
 public:
  ExecEnvProvider(std::shared_ptr<SandboxProvider> inner,
                  std::vector<std::pair<std::string, std::string>> env)
      : inner_(std::move(inner)), env_(std::move(env)) {}

  using SandboxLifecycle::create;
  Result<SandboxInfo> create(const SandboxSpec& s, const CreateControl& c) override {
    return inner_->create(s, c);
  }
  Result<SandboxInfo> get(const SandboxRef& r) override { return inner_->get(r); }
  Result<std::vector<SandboxInfo>> list(const ListFilter& f) override { return inner_->list(f); }
  Result<SandboxInfo> start(const SandboxRef& r) override { return inner_->start(r); }
  Result<void> stop(const SandboxRef& r) override { return inner_->stop(r); }
  Result<void> remove(const SandboxRef& r) override { return inner_->remove(r); }
  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& r,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& o) override {
    return inner_->openExec(r, argv, layered(o));
  }
  Result<ExecResult> exec(const SandboxRef& r, const ExecRequest& req) override {
    ExecRequest q = req;
    q.options = layered(req.options);
    return inner_->exec(r, q);
  }
  Result<SandboxMetrics> metrics(const SandboxRef& r) override { return inner_->metrics(r); }
  Result<EgressStatus> applyEgress(const SandboxRef& r,
                                   const std::vector<std::string>& a) override {
    return inner_->applyEgress(r, a);
  }
  Result<void> warmSupported() override { return inner_->warmSupported(); }
  Result<SandboxInfo> createWarm(const SandboxSpec& s, const CreateControl& c) override {
    return inner_->createWarm(s, c);
  }
  Result<SandboxInfo> claimWarm(const SandboxRef& r, const WarmClaim& c) override {
    return inner_->claimWarm(r, c);
  }
  [[nodiscard]] ProviderType type() const override { return inner_->type(); }
  [[nodiscard]] std::string instance() const override { return inner_->instance(); }
  HealthStatus healthCheck() override { return inner_->healthCheck(); }
  Result<CleanupReport> cleanup(const CleanupFilter& f) override { return inner_->cleanup(f); }

 private:
  ExecOptions layered(const ExecOptions& o) const {
    ExecOptions out = o;
    out.env = env_;
    for (const auto& kv : o.env) {
      auto same = [&](const auto& e) { return e.first == kv.first; };
      std::erase_if(out.env, same);
      out.env.push_back(kv);
    }
    return out;
  }
  std::shared_ptr<SandboxProvider> inner_;
  std::vector<std::pair<std::string, std::string>> env_;
};

}  // namespace

std::shared_ptr<SandboxProvider> withExecEnv(std::shared_ptr<SandboxProvider> inner,
                                             std::vector<std::pair<std::string, std::string>> env) {
  return std::make_shared<ExecEnvProvider>(std::move(inner), std::move(env));
}

std::shared_ptr<void> SandboxService::holdActive(const std::string& id) {
  return std::make_shared<WorkGuard>(impl_->auditor, id);
}

}  // namespace agentpane
