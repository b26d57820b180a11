// SandboxService: the one place where configs, sandboxes, providers, state and audit meet.
// The HTTP server and (through it) the CLI call only this. Every method blocks (SQLite,
// provider calls): the server MUST call it from its worker pool, never a network thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agentpane/commands.hpp"
#include "agentpane/provider.hpp"
#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"
#include "agentpane/tmux.hpp"
#include "common/path_policy.hpp"
#include "store/records.hpp"

namespace agentpane {

class Store;  // src/store/store.hpp
namespace audit {
class Ledger;  // src/audit/ledger.hpp
}

// SandboxConfig, SandboxRecord, TmuxSessionRow, AuditEntry and AuditQuery live in
// store/records.hpp (the store owns its row types; this header re-exports them).

// Checks ranges and enums; ValidationError names the field in details["field"].
Result<void> validateConfig(const SandboxConfig& c);

struct CreateSandboxRequest {
  std::string projectPath;
  std::string projectId;  // default: derived from projectPath
  std::string agentId;
  std::optional<std::string> configId;   // default config when absent
  std::optional<ProviderType> provider;  // overrides the config
  std::optional<std::string> image;
  std::optional<int> memoryMb;
  std::optional<double> cpu;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> allowEgress;
  // Not from the API: a migrate wants the provider it names or nothing, and keeps the
  // allowlist the sandbox had (changes made at run time included) instead of the profile's.
  bool noFallback = false;
  std::optional<std::vector<std::string>> egressExactly;
};

struct CreateSandboxOutcome {
  SandboxRecord sandbox;
  // Set when the request wanted Kubernetes and got Docker: why.
  std::optional<std::string> fallbackReason;
  // A migrate's outcome: the sandbox this one replaces, and what did not carry over (a tmux
  // session that could not be made again, an old sandbox that reconcile must still remove).
  std::optional<std::string> migratedFrom;
  std::vector<std::string> warnings;
};

// One profile's warm pool (service_pool.cpp), as GET /api/sandbox/pool shows it.
struct WarmPoolInfo {
  std::string configId;
  std::string configName;
  std::string provider;  // "docker" | "kubernetes"
  std::string instance;  // the provider instance its sandboxes live on; empty: none
  int min = 0;
  int max = 0;     // effective (a config's 0 means min)
  int target = 0;  // what it keeps now: min, more while claims come fast, never above max
  int idleTtlSeconds = 0;
  int warm = 0;      // ready to claim
  int starting = 0;  // being made
  int claimed = 0;   // live sandboxes that came from this pool
  std::int64_t hits = 0;
  std::int64_t misses = 0;
  // Claim latencies (ms): counts per upper bound of kClaimBucketsMs, and the sum.
  std::vector<std::int64_t> claimBuckets;
  double claimSumMs = 0;
  bool available = true;  // false: the provider keeps no warm sandboxes (lastError says why)
  std::string lastError;  // the last failed warm create or why the pool is unavailable
};
// Upper bounds (ms) of the claim-latency histogram; the last bucket is +Inf.
inline constexpr double kClaimBucketsMs[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};

// Lifecycle events (SPEC): creating, ready, idle, stopping, stopped, error,
// tmux.created, tmux.destroyed; and removed, gone, adopted (reconcile).
struct SandboxEvent {
  std::string type;
  std::string sandboxId;
  std::string detail;
  std::int64_t atUnixMs = 0;
};

// A cluster a profile names: its kubeConfigPath (checked by the path rule), kubeContext and
// kubeNamespace. Sandboxes of such a profile live on a provider instance of their own.
struct KubernetesTarget {
  std::string kubeconfigPath;
  std::string context;
  std::string namespaceName;
};
// The instance name of a target's provider: "kubernetes-" and 12 hex digits of a hash of the
// three fields, so the same target has the same name after a restart (rows record it).
std::string kubernetesInstanceName(const KubernetesTarget& t);

struct ServiceOptions {
  bool enableK8s = false;                   // ENABLE_K8S_SANDBOX
  std::chrono::seconds reconcileEvery{30};  // 0: no periodic reconcile
  // Orphans (labelled, no row, not adoptable) older than this are removed; rows stuck in
  // "creating" with nothing on the provider for this long become "error".
  std::chrono::seconds orphanGrace{60};
  std::chrono::seconds idleCheckEvery{30};  // 0: no idle stop
  // Host names of egress allowlists are resolved again this often (0: never); where their
  // addresses moved the provider's rules follow (refreshEgress).
  std::chrono::seconds egressRefreshEvery{30};
  // Hooks for hermetic tests. Empty: the system clock / random ids.
  std::function<std::int64_t()> nowUnixMs;
  // Returns a fresh id for `prefix` ("sbx" for sandboxes, "cfg" for configs); the default
  // is prefix + "-" + 12 random hex digits. Sandbox ids MUST satisfy isValidSandboxId().
  std::function<std::string(const std::string& prefix)> newId;
  // Which host directories may become a project (see common/path_policy.hpp). Null: the
  // defaults of this process (AGENTPANE_PROJECT_ROOTS, else $HOME and the temp directory).
  std::shared_ptr<const PathPolicy> pathPolicy;
  // Makes the provider instance of a profile's cluster (see KubernetesTarget), named as
  // given; the service registers it and asks again after a restart. Null: a profile that
  // names a kubeconfig or context is refused (K8sKubeconfigInvalid).
  std::function<Result<std::shared_ptr<SandboxProvider>>(const KubernetesTarget& target,
                                                         const std::string& instanceName)>
      kubernetesInstance;
  // The audit ledger, the record every audit entry is written to first (the state table's
  // audit rows are its query index). Null: the state table only (tests).
  std::shared_ptr<audit::Ledger> ledger;
  // Who warm sandboxes run as: only a project owned by it can claim one (another owner's
  // create is a miss and gets a cold sandbox). The image's own user by default.
  std::uint32_t warmUid = 1000;
  std::uint32_t warmGid = 1000;
  // Warm and warming sandboxes of all pools together, at most: however profiles are set, the
  // pools never hold more of the machine than this (0: no warm sandboxes at all).
  int warmPoolLimit = 50;
  // A Kubernetes create checks the cluster first (it falls back to Docker when the cluster is
  // unreachable). A cluster seen reachable within clusterFreshFor is not asked; until
  // clusterTrustedFor the create goes on while one check runs beside it; after that (or once
  // seen unreachable) creates wait for the check. Anything the cluster answered for the
  // service (a warm claim, a create) counts as seen reachable.
  std::chrono::milliseconds clusterFreshFor{10'000};
  std::chrono::milliseconds clusterTrustedFor{60'000};
};

class SandboxService {
 public:
  SandboxService(Store& store, ServiceOptions options);
  ~SandboxService();

  // Providers are registered at start (Docker always; Kubernetes when enabled/configured).
  void registerProvider(std::shared_ptr<SandboxProvider> provider);
  SandboxProvider* provider(ProviderType t);
  // The host-path rule for projects; the same rule covers other paths the API is given.
  const PathPolicy& pathPolicy() const;

  // Configs
  Result<std::vector<SandboxConfig>> listConfigs();
  Result<SandboxConfig> getConfig(const std::string& id);
  Result<SandboxConfig> createConfig(SandboxConfig c);         // 409 on duplicate name
  Result<SandboxConfig> updateConfig(const SandboxConfig& c);  // full replacement of a known id
  Result<void> deleteConfig(const std::string& id);            // 409 while in use
  // The default config; made at first start ("default") when no config exists.
  Result<SandboxConfig> defaultConfig();

  // Settings. The default provider the web page preselects (Docker until one is chosen, and
  // while Kubernetes is off); choosing Kubernetes while it is off is K8S_DISABLED.
  Result<ProviderType> defaultProvider();
  // The Kubernetes feature: the service's option (ENABLE_K8S_SANDBOX) or the default config's
  // enableK8s. Blocking (SQLite).
  bool k8sEnabled();
  Result<void> setDefaultProvider(ProviderType t);

  // Sandboxes
  // Reports its phases through control (each with the new sandbox's id; the first is
  // "accepted"). Once control.stop is requested it stops, removes what it made and fails
  // with SandboxCreateCancelled — even when the provider had just finished.
  Result<CreateSandboxOutcome> createSandbox(const CreateSandboxRequest& req,
                                             const std::string& actor,
                                             const CreateControl& control = {});
  Result<std::vector<SandboxRecord>> listSandboxes();
  Result<SandboxRecord> getSandbox(const std::string& id);
  Result<void> stopSandbox(const std::string& id, const std::string& actor);
  // Starts a stopped sandbox again, with its workspace (the provider keeps it). Idempotent on
  // a running sandbox. Creating/stopping: SandboxNotRunning; its project got another live
  // sandbox meanwhile: SandboxAlreadyExists.
  Result<SandboxRecord> startSandbox(const std::string& id, const std::string& actor);
  // Moves a running or stopped sandbox to the other provider for the same project: a new
  // sandbox (same profile, image and project) is made and running, its tmux sessions are
  // made again by name (their commands, not their processes), and only then is the old one
  // removed. Meanwhile the old one stays up but refuses use (status "migrating"); a failed or
  // cancelled create puts it back as it was. Progress and cancellation as createSandbox.
  // Already there: ValidationError (field "to"); creating/stopping: SandboxNotRunning.
  Result<CreateSandboxOutcome> migrateSandbox(const std::string& id, ProviderType to,
                                              const std::string& actor,
                                              const CreateControl& control = {});
  // Idempotent. Removes the sandbox from its provider, then keeps the row as a "removed"
  // tombstone (hidden from list/get, SandboxNotFound) so that reconcile knows it is not ours.
  Result<void> removeSandbox(const std::string& id, const std::string& actor);

  // Exec (audited with argv, exit code, duration and actor; touches lastActivity). The sandbox
  // must be running (SandboxNotRunning otherwise), or idle-stopped under a config with
  // wakeOnUse: then it is started first (this holds for tmux calls and attach too). A root exec
  // MUST be refused with SandboxRootExecForbidden unless the sandbox's config has
  // allowRootExec. An openExec session is audited when it ends (wait() or destruction) and MUST
  // NOT outlive the Store.
  // Driven through its asynchronous form it is audited at destruction (a SQLite write, maybe
  // a kill): destroy it off the network threads.
  Result<ExecResult> exec(const std::string& id, const ExecRequest& req, const std::string& actor);
  Result<std::unique_ptr<ExecSession>> openExec(const std::string& id,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& opts, const std::string& actor);

  // Durable commands (agentpane/commands.hpp): run by the sandbox's agent, they outlive the
  // request and the server. Starts and kills are audited (command.start, command.kill). A
  // provider without the agent channel: SandboxProviderUnavailable (reason execChannelUnavailable).
  Result<CommandStatus> commandStart(const std::string& id, const std::vector<std::string>& argv,
                                     const ExecOptions& opts, const std::string& actor);
  Result<std::vector<CommandStatus>> commandList(const std::string& id);
  Result<CommandOutput> commandOutput(const std::string& id, const std::string& commandId,
                                      std::uint64_t cursor, std::chrono::milliseconds wait);
  Result<CommandStatus> commandKill(const std::string& id, const std::string& commandId,
                                    const std::string& actor);
  // Follows one live (the follow WebSocket): events as CommandEvents says, on the runner's
  // thread. Fails at once for an unknown sandbox or no agent; an unknown command ends.
  Result<std::unique_ptr<CommandFollow>> commandFollow(const std::string& id,
                                                       const std::string& commandId,
                                                       std::uint64_t cursor, CommandEvents events);

  // Keeps the sandbox from idle stop while the returned token lives (an attached terminal,
  // any long-lived use that is not an exec the service opened).
  std::shared_ptr<void> holdActive(const std::string& id);

  // tmux (audited; sessions mirrored in table tmux_sessions)
  Result<TmuxSessionInfo> tmuxCreate(const std::string& id, const std::string& name,
                                     const std::vector<std::string>& command,
                                     const std::string& actor);
  Result<std::vector<TmuxSessionInfo>> tmuxList(const std::string& id);
  Result<void> tmuxKill(const std::string& id, const std::string& name, const std::string& actor);
  Result<void> tmuxSendKeys(const std::string& id, const std::string& name, const std::string& text,
                            bool enter, const std::string& actor);
  Result<std::string> tmuxCapture(const std::string& id, const std::string& name, int lines);

  // Egress (service_egress.cpp). Replaces a running sandbox's allowlist (entries of
  // common/egress.hpp; a bad one is ValidationError with details reason) and returns the row,
  // whose egress says what the provider enforces now — unresolved names included, never
  // dropped. In force when it returns; audited ("sandbox.egress").
  Result<SandboxRecord> setEgress(const std::string& id, const std::vector<std::string>& allowlist,
                                  const std::string& actor);
  // Resolves the host names of every running sandbox's allowlist again; where addresses
  // moved the provider updates its rules, and the change is logged and audited
  // ("egress.updated"). Called by the background thread every egressRefreshEvery.
  Result<void> refreshEgress();

  // Audit
  Result<std::vector<AuditEntry>> audit(const AuditQuery& q);
  // Records an event the service did not make itself (an auth failure, a settings change):
  // ledger first, then the query index. detailJson is a JSON object's text. Never fails the
  // caller (a failed write is logged); blocking (a write and an fsync).
  void recordEvent(const std::string& sandboxId, const std::string& actor, const std::string& event,
                   const std::string& detailJson, bool ok);

  // Reconcile rows with providers: adopt labelled sandboxes, mark vanished rows "gone",
  // remove orphans older than the grace period. Called at start and periodically.
  Result<void> reconcile();
  // Stops sandboxes idle for longer than their config's timeout.
  Result<void> stopIdle();
  // Warm pools (service_pool.cpp): one per profile with warmPoolMin > 0. A create of such a
  // profile that asks for nothing the pool's sandboxes lack (no other image or resources)
  // claims a warm sandbox when one is ready; otherwise it makes a cold one and says why.
  Result<std::vector<WarmPoolInfo>> warmPools();
  // Sets a profile's warmPoolMin to count (raising warmPoolMax to it when below), and starts
  // filling the pool. configRef: id or name; empty: the default profile. count 0..50.
  Result<WarmPoolInfo> prewarm(const std::string& configRef, int count, const std::string& actor);
  // One pass of pool upkeep: drain sandboxes of a changed profile, start creates up to each
  // pool's target, retire idle ones beyond it. The background thread runs it on every claim
  // and every second; tests call it with wait = true to have its creates finished on return.
  Result<void> maintainPools(bool wait = false);

  // Starts/stops the background reconcile + idle threads.
  void startBackground();
  void stopBackground();

  // Event subscription (metrics, logs, future WebSocket feed). Returns a token for unsubscribe.
  using EventSink = std::function<void(const SandboxEvent&)>;
  int subscribe(EventSink sink);
  void unsubscribe(int token);

  // Counts for /metrics: sandboxes by (provider, status), tombstones excluded.
  std::map<std::pair<std::string, std::string>, int> sandboxCounts();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentpane
