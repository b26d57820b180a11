// The rows the store keeps (and the service hands out): configs, sandboxes, tmux sessions,
// audit entries. Plain values, no SQLite or JSON types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/sandbox.hpp"

namespace agentpane {

// A resource profile (table sandbox_configs). Every Kubernetes field is stored and returned.
struct SandboxConfig {
  std::string id;
  std::string name;
  std::string description;
  ProviderType providerType = ProviderType::Docker;
  std::string image = "agentpane/sandbox:latest";
  int memoryMb = 2048;      // 512..32768
  double cpu = 2.0;         // 0.5..16
  int pidsLimit = 512;      // 32..4096
  int timeoutMinutes = 60;  // 1..1440, idle stop
  bool isDefault = false;
  NetworkMode network = NetworkMode::None;
  bool allowFallback = true;  // Kubernetes unreachable -> Docker
  bool enableK8s = false;     // per-config switch of the feature flag
  // Kubernetes fields
  std::string kubeConfigPath;
  std::string kubeContext;
  std::string kubeNamespace = "agentpane-sandboxes";
  bool networkPolicyEnabled = true;
  std::vector<std::string> allowedEgressHosts;
  std::string workspaceVolume = "pvc";
  std::string storageClass;
  int workspaceSizeGi = 10;
  int startupTimeoutSeconds = 120;
  // A sandbox this config's idle stop stopped starts again on its next exec, tmux call or
  // attach (instead of SANDBOX_NOT_RUNNING).
  bool wakeOnUse = true;
  // Execs with root=true are refused (SandboxRootExecForbidden) unless the profile allows
  // them: a root shell in a sandbox is one step from the host's mounts.
  bool allowRootExec = false;
  // The warm pool of this profile (service/warm_pool.hpp): at least warmPoolMin sandboxes are
  // kept ready (0: no pool), never more than warmPoolMax (0: the same as min) however fast
  // they are claimed; one idle beyond min for warmPoolIdleTtlSeconds is removed.
  int warmPoolMin = 0;               // 0..50
  int warmPoolMax = 0;               // 0 or min..50
  int warmPoolIdleTtlSeconds = 600;  // 10..86400
  std::int64_t createdAtUnix = 0;
  std::int64_t updatedAtUnix = 0;
};

// Row states of table sandboxes. A row is "live" (counts for the one-sandbox-per-project
// rule) while creating, running or stopping; the rest are settled.
namespace sandbox_status {
inline constexpr const char* kCreating = "creating";  // row written, provider.create in flight
inline constexpr const char* kRunning = "running";
inline constexpr const char* kStopping = "stopping";
inline constexpr const char* kStopped = "stopped";
inline constexpr const char* kError = "error";  // create failed, or the provider reports failure
inline constexpr const char* kGone = "gone";    // vanished from the provider behind our back
inline constexpr const char* kRemoved =
    "removed";  // tombstone: removed through us; hidden from API
// Still running on its provider while its replacement on another provider is made
// (SandboxService::migrateSandbox); not live for the one-per-project rule, so that the
// replacement can be. Exec and tmux refuse it; it ends removed, or back where it was.
inline constexpr const char* kMigrating = "migrating";
// The warm pool (service/warm_pool.hpp). A warm sandbox has no project: it is being made
// (warming), ready (warm), or being bound to a project by a create (claiming, live: it holds
// the project's one live sandbox). None is listed by the API; a claim that a crash
// interrupted is removed by reconcile, as is a warming one.
inline constexpr const char* kWarming = "warming";
inline constexpr const char* kWarm = "warm";
inline constexpr const char* kClaiming = "claiming";
}  // namespace sandbox_status

// A warm-pool row that is not (yet) a project's sandbox: warming or warm.
bool isPoolStatus(std::string_view status);

bool isLiveSandboxStatus(std::string_view status);

// The one mapping between row statuses and provider states (store/sandbox_status.cpp).
// A row's state: creating -> Creating, running, stopping and migrating -> Running, stopped ->
// Stopped, error -> Failed, the rest (gone, removed, unknown words) -> Unknown.
SandboxState stateFromStatus(std::string_view status);
// The status a provider state settles a row to; nullopt when the state says nothing
// (Creating, Unknown).
std::optional<std::string> statusFromState(SandboxState s);

// A row of table sandboxes, joined with what the provider last said.
struct SandboxRecord {
  SandboxInfo info;        // id, provider, state, project, container id / pod fields
  std::string configId;    // empty: unknown (adopted)
  std::string status;      // see sandbox_status
  std::string error;       // last error message when status == error
  std::string stopReason;  // why it is stopped: "idle", "requested" (empty: not stopped by us)
  std::int64_t createdAtUnix = 0;
  std::int64_t lastActivityUnix = 0;
  // {"allowlist":[..],"status":{..}} (service_egress.cpp); written by setSandboxEgress only.
  std::string egressJson = "{}";
  // Environment laid over every command (a claimed warm sandbox: the create's env, which its
  // processes did not start with).
  std::vector<std::pair<std::string, std::string>> execEnv;
  bool fromPool = false;  // made warm and claimed (its configId names the pool)
};

// A row of table tmux_sessions: what we created; tmux itself is the truth.
struct TmuxSessionRow {
  std::string sandboxId;
  std::string name;
  std::vector<std::string> command;
  std::int64_t createdAtUnix = 0;
};

struct AuditEntry {
  std::int64_t id = 0;
  std::int64_t atUnixMs = 0;
  std::string sandboxId;  // may be empty
  std::string actor;      // "api", "cli", "reconcile", "idle"
  std::string action;     // "sandbox.create", "exec", "tmux.create", ...
  std::string detail;     // JSON text
  bool ok = true;
  std::int64_t ledgerSeq = 0;  // its entry in the audit ledger; 0 when none was written
};

struct AuditQuery {
  std::optional<std::string> sandboxId;
  int limit = 100;            // clamped to 1..1000
  std::int64_t beforeId = 0;  // paging; 0 = newest
  // An exact action ("exec"), or a family by its prefix and ".*" ("sandbox.*").
  std::optional<std::string> action;
  std::optional<std::int64_t> sinceMs;  // at_ms >= sinceMs
  std::optional<std::int64_t> untilMs;  // at_ms <= untilMs
};

}  // namespace agentpane
