// The provider contract: small interfaces (lifecycle, exec, stats) composed into one.
// Every provider passes the one contract suite in test/contract/.
//
// General rules for every method:
//  - MUST be safe to call concurrently from several threads.
//  - MUST NOT hang: every engine/cluster call has a bounded timeout; an unreachable
//    backend is SandboxProviderUnavailable (Docker) or K8sUnreachable (Kubernetes).
//  - Blocking: callers on network threads MUST move calls to a worker pool.
//  - Sandboxes are named by a SandboxRef built from the caller's row, never searched for by
//    id; a ref whose object lacks the sandbox's labels or this instance's scope is
//    SandboxNotFound (and remove() of it succeeds without touching anything).
#pragma once

#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane {

// A phase a create has reached, for the people waiting on it. `phase` is a short word a
// client may match ("image", "volume", "claim", "scheduled", "pulling", "pulled",
// "created", "started", "ready", ...); `message` says it in words.
struct CreateProgress {
  std::string phase;
  std::string message;
  std::string sandboxId;  // filled in by the service
};

// What a create's caller hands it besides the spec.
struct CreateControl {
  // Called at each phase, from the creating thread or a watch of the provider's, never two
  // calls at once; may be empty.
  std::function<void(const CreateProgress&)> onProgress;
  // Once requested (the client went away, the server is stopping), the create stops at its
  // next step or wait, removes what it made, and fails with SandboxCreateCancelled.
  std::stop_token stop;

  void progress(std::string phase, std::string message) const {
    if (onProgress) onProgress(CreateProgress{std::move(phase), std::move(message), {}});
  }
  [[nodiscard]] bool cancelled() const { return stop.stop_requested(); }
};

// The error of a create that was cancelled through CreateControl::stop.
inline Error createCancelledError(const std::string& sandboxId) {
  return Error(ErrorCode::SandboxCreateCancelled,
               "the create of sandbox '" + sandboxId + "' was cancelled; what it made is removed",
               {{"id", sandboxId}});
}

class SandboxLifecycle {
 public:
  virtual ~SandboxLifecycle() = default;

  // Starts a sandbox and returns once commands can run in it (state Running).
  // MUST label it (labels:: in sandbox.hpp) so that list() finds it after a restart.
  // MUST refuse a missing projectPath (SandboxProjectPathInvalid) and an unknown image
  // (SandboxImageNotFound) without leaving anything behind; a failed create MUST remove
  // whatever it made. A second create with the same id is SandboxAlreadyExists. The result
  // MUST carry instance() in SandboxInfo::instance.
  // It reports its phases through control.progress and MUST notice control.stop at every
  // wait (watch, poll, pull), so that no cancelled create runs on to its deadline.
  virtual Result<SandboxInfo> create(const SandboxSpec& spec, const CreateControl& control) = 0;
  // Without progress and never cancelled. (Implementations: `using SandboxLifecycle::create;`.)
  Result<SandboxInfo> create(const SandboxSpec& spec) { return create(spec, CreateControl{}); }

  // Looks a sandbox up. Unknown: SandboxNotFound.
  virtual Result<SandboxInfo> get(const SandboxRef& ref) = 0;

  // Lists sandboxes carrying our labels and instance scope, from the engine/cluster (never
  // from memory), each with instance() in SandboxInfo::instance.
  virtual Result<std::vector<SandboxInfo>> list(const ListFilter& filter) = 0;

  // Starts a stopped sandbox again, with its workspace, and returns once commands can run in
  // it (state Running). MUST be idempotent: starting a running sandbox succeeds.
  // Unknown: SandboxNotFound; it cannot run again: SandboxNotRunning.
  virtual Result<SandboxInfo> start(const SandboxRef& ref) = 0;

  // Stops a sandbox. MUST be idempotent: stopping a stopped sandbox succeeds.
  // Unknown: SandboxNotFound.
  virtual Result<void> stop(const SandboxRef& ref) = 0;

  // Removes a sandbox and everything made for it (volumes, policies). MUST be idempotent:
  // removing an unknown or already removed sandbox succeeds.
  virtual Result<void> remove(const SandboxRef& ref) = 0;
};

class SandboxExecutor {
 public:
  virtual ~SandboxExecutor() = default;

  // Starts argv in the sandbox (see exec.hpp for semantics). Sandbox not running:
  // SandboxNotRunning; unknown: SandboxNotFound; empty argv: ValidationError. A command that
  // cannot be started (no such binary, not executable) MUST end with exit code 126 or 127,
  // as a shell reports it, never 0 and never an Error.
  virtual Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                        const std::vector<std::string>& argv,
                                                        const ExecOptions& options) = 0;

  // Buffered form: open, feed stdin, collect, wait. Default uses runToCompletion().
  virtual Result<ExecResult> exec(const SandboxRef& ref, const ExecRequest& req);
};

class SandboxStats {
 public:
  virtual ~SandboxStats() = default;
  // One sample from the engine's stats / metrics API.
  virtual Result<SandboxMetrics> metrics(const SandboxRef& ref) = 0;
};

class SandboxEgress {
 public:
  virtual ~SandboxEgress() = default;
  // Makes `allowlist` (entries of common/egress.hpp, already valid) what the running sandbox
  // may reach, resolving its host names again; in force when it returns, without a restart.
  // Enforcement MUST keep denying what is not listed (a failure leaves the previous rules, or
  // fewer, never more). `changed` says whether anything enforced changed, so that calling it
  // on a schedule re-resolves names and updates the rules only when addresses moved.
  // Unknown: SandboxNotFound; not running: SandboxNotRunning.
  virtual Result<EgressStatus> applyEgress(const SandboxRef& ref,
                                           const std::vector<std::string>& allowlist) = 0;
};

// What a claim binds to a warm sandbox.
struct WarmClaim {
  std::string projectId;
  std::string agentId;
  std::string projectPath;                      // canonical; live at /workspace once claimed
  std::vector<std::string> allowedEgressHosts;  // in force before claimWarm returns
};

// Warm sandboxes (the warm pool, service/warm_pool.hpp): made ready before anyone asks, and
// bound to a project when claimed. Providers that keep none leave the defaults, which answer
// WarmPoolDisabled.
class SandboxWarmPool {
 public:
  virtual ~SandboxWarmPool() = default;

  // Ok when this instance can keep warm sandboxes; otherwise WarmPoolDisabled saying why
  // (binding a project into a running sandbox needs mount privileges on this host, ...).
  virtual Result<void> warmSupported();

  // Makes a warm sandbox: as create(spec, control), but spec.projectPath is empty and it runs
  // as spec.warmUid:warmGid. Its /workspace is an empty slot that claimWarm binds a project
  // into (common/workspace_slot.hpp); it has no egress at all until claimed; it carries the
  // labels kWarmPool=true and kWarmPoolState=warm. list, stop, remove and cleanup treat it as
  // any other sandbox (remove also releases its slot).
  virtual Result<SandboxInfo> createWarm(const SandboxSpec& spec, const CreateControl& control);

  // Binds a warm sandbox to `claim`. Atomic against other claims of the same sandbox: exactly
  // one wins, the others get Conflict and leave it untouched. When it returns, the project
  // directory is live at /workspace (a file written there is on the host, and the other way
  // round), the allowlist is enforced, and the sandbox is marked allocated (Kubernetes: the
  // label kWarmPoolState=allocated; Docker's labels cannot change, its row says so). A
  // project not owned by the sandbox's warm uid is SandboxProjectPathInvalid before anything
  // changes (the caller makes a cold sandbox instead). A failure after the atomic step leaves
  // the sandbox allocated, never warm again: the caller removes it.
  virtual Result<SandboxInfo> claimWarm(const SandboxRef& ref, const WarmClaim& claim);
};

class SandboxProvider : public SandboxLifecycle,
                        public SandboxExecutor,
                        public SandboxStats,
                        public SandboxEgress,
                        public SandboxWarmPool {
 public:
  [[nodiscard]] virtual ProviderType type() const = 0;
  // The name of this instance (one engine; one cluster and context), unique among a server's
  // providers and stable across restarts: rows record it (Docker's default: "docker").
  [[nodiscard]] virtual std::string instance() const = 0;

  // Reachable? version, counts, warnings. MUST return (reachable=false) rather than fail
  // when the backend is down.
  virtual HealthStatus healthCheck() = 0;

  // Removes stopped, failed, idle (createdBefore) or orphaned (not in knownIds) sandboxes.
  virtual Result<CleanupReport> cleanup(const CleanupFilter& filter) = 0;
};

}  // namespace agentpane
