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

#include "agentpane/provider.hpp"
#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"
#include "agentpane/tmux.hpp"

namespace agentpane {

class Store;  // src/store/store.hpp

// A resource profile (table sandbox_configs). Every Kubernetes field is stored and returned.
struct SandboxConfig {
  std::string id;
  std::string name;
  std::string description;
  ProviderType providerType = ProviderType::Docker;
  std::string image = "agentpane/sandbox:latest";
  int memoryMb = 2048;         // 512..32768
  double cpu = 2.0;            // 0.5..16
  int pidsLimit = 512;         // 32..4096
  int timeoutMinutes = 60;     // 1..1440, idle stop
  bool isDefault = false;
  NetworkMode network = NetworkMode::None;
  bool allowFallback = true;   // Kubernetes unreachable -> Docker
  bool enableK8s = false;      // per-config switch of the feature flag
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
  std::int64_t createdAtUnix = 0;
  std::int64_t updatedAtUnix = 0;
};

// Checks ranges and enums; ValidationError names the field in details["field"].
Result<void> validateConfig(const SandboxConfig& c);

// A row of table sandboxes, joined with what the provider last said.
struct SandboxRecord {
  SandboxInfo info;            // id, provider, state, project, container id / pod fields
  std::string configId;
  std::string status;          // creating|running|idle|stopping|stopped|error|gone
  std::string error;           // last error message when status == error
  std::int64_t createdAtUnix = 0;
  std::int64_t lastActivityUnix = 0;
};

struct CreateSandboxRequest {
  std::string projectPath;
  std::string projectId;       // default: derived from projectPath
  std::string agentId;
  std::optional<std::string> configId;  // default config when absent
  std::optional<ProviderType> provider; // overrides the config
  std::optional<std::string> image;
  std::optional<int> memoryMb;
  std::optional<double> cpu;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> allowEgress;
};

struct CreateSandboxOutcome {
  SandboxRecord sandbox;
  // Set when the request wanted Kubernetes and got Docker: why.
  std::optional<std::string> fallbackReason;
};

struct AuditEntry {
  std::int64_t id = 0;
  std::int64_t atUnixMs = 0;
  std::string sandboxId;       // may be empty
  std::string actor;           // "api", "cli", "reconcile", "idle"
  std::string action;          // "sandbox.create", "exec", "tmux.create", ...
  std::string detail;          // JSON text
  bool ok = true;
};

struct AuditQuery {
  std::optional<std::string> sandboxId;
  int limit = 100;
  std::int64_t beforeId = 0;   // paging; 0 = newest
};

// Lifecycle events (SPEC): creating, ready, idle, stopping, stopped, error,
// tmux.created, tmux.destroyed.
struct SandboxEvent {
  std::string type;
  std::string sandboxId;
  std::string detail;
  std::int64_t atUnixMs = 0;
};

struct ServiceOptions {
  bool enableK8s = false;                  // ENABLE_K8S_SANDBOX
  std::chrono::seconds reconcileEvery{30};
  std::chrono::seconds orphanGrace{60};    // unknown labelled sandboxes older than this go
  std::chrono::seconds idleCheckEvery{30};
};

class SandboxService {
 public:
  SandboxService(Store& store, ServiceOptions options);
  ~SandboxService();

  // Providers are registered at start (Docker always; Kubernetes when enabled/configured).
  void registerProvider(std::shared_ptr<SandboxProvider> provider);
  SandboxProvider* provider(ProviderType t);

  // Configs
  Result<std::vector<SandboxConfig>> listConfigs();
  Result<SandboxConfig> getConfig(const std::string& id);
  Result<SandboxConfig> createConfig(SandboxConfig c);          // 409 on duplicate name
  Result<SandboxConfig> updateConfig(const SandboxConfig& c);   // full replacement of a known id
  Result<void> deleteConfig(const std::string& id);             // 409 while in use

  // Sandboxes
  Result<CreateSandboxOutcome> createSandbox(const CreateSandboxRequest& req, const std::string& actor);
  Result<std::vector<SandboxRecord>> listSandboxes();
  Result<SandboxRecord> getSandbox(const std::string& id);
  Result<void> stopSandbox(const std::string& id, const std::string& actor);
  Result<void> removeSandbox(const std::string& id, const std::string& actor);  // idempotent

  // Exec (audited; touches lastActivity)
  Result<ExecResult> exec(const std::string& id, const ExecRequest& req, const std::string& actor);
  Result<std::unique_ptr<ExecSession>> openExec(const std::string& id,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& opts, const std::string& actor);

  // tmux (audited; sessions mirrored in table tmux_sessions)
  Result<TmuxSessionInfo> tmuxCreate(const std::string& id, const std::string& name,
                                     const std::vector<std::string>& command, const std::string& actor);
  Result<std::vector<TmuxSessionInfo>> tmuxList(const std::string& id);
  Result<void> tmuxKill(const std::string& id, const std::string& name, const std::string& actor);
  Result<void> tmuxSendKeys(const std::string& id, const std::string& name, const std::string& text,
                            bool enter, const std::string& actor);
  Result<std::string> tmuxCapture(const std::string& id, const std::string& name, int lines);

  // Audit
  Result<std::vector<AuditEntry>> audit(const AuditQuery& q);

  // Reconcile rows with providers: adopt labelled sandboxes, mark vanished rows "gone",
  // remove orphans older than the grace period. Called at start and periodically.
  Result<void> reconcile();
  // Stops sandboxes idle for longer than their config's timeout.
  Result<void> stopIdle();
  // Starts/stops the background reconcile + idle threads.
  void startBackground();
  void stopBackground();

  // Event subscription (metrics, logs, future WebSocket feed). Returns a token for unsubscribe.
  using EventSink = std::function<void(const SandboxEvent&)>;
  int subscribe(EventSink sink);
  void unsubscribe(int token);

  // Counts for /metrics: sandboxes by provider and status.
  std::map<std::pair<std::string, std::string>, int> sandboxCounts();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentpane
