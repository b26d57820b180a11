// SandboxService internals shared by its implementation files (one per concern, listed at
// the top of sandbox_service.cpp). Not for other areas.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "service/sandbox_service.hpp"
#include "store/store.hpp"

namespace agentpane {

// Writes audit entries and activity times. Shared with open exec sessions, which may end
// after the call that opened them (the Store must outlive them).
class Auditor {
 public:
  Auditor(Store& store, std::function<std::int64_t()> nowMs,
          std::shared_ptr<audit::Ledger> ledger = nullptr)
      : store_(store), nowMs_(std::move(nowMs)), ledger_(std::move(ledger)) {}

  // The ledger entry first (the record), then the state table's row (the query index).
  // Never fails the caller: a failed audit write is logged.
  void write(const std::string& sandboxId, const std::string& actor, const std::string& action,
             const nlohmann::json& detail, bool ok);
  void touch(const std::string& sandboxId);
  std::int64_t nowMs() const { return nowMs_(); }

  // Work in progress in a sandbox (a running exec, an attached terminal): while any is
  // open the sandbox is not idle, however long ago its last activity was recorded.
  void beginWork(const std::string& sandboxId);
  void endWork(const std::string& sandboxId);
  int workInProgress(const std::string& sandboxId) const;

 private:
  Store& store_;
  std::function<std::int64_t()> nowMs_;
  std::shared_ptr<audit::Ledger> ledger_;
  mutable std::mutex workMu_;
  std::map<std::string, int> work_;
};

// Counts one piece of work for as long as it lives.
class WorkGuard {
 public:
  WorkGuard(std::shared_ptr<Auditor> auditor, std::string sandboxId)
      : auditor_(std::move(auditor)), sandboxId_(std::move(sandboxId)) {
    auditor_->beginWork(sandboxId_);
  }
  ~WorkGuard() { auditor_->endWork(sandboxId_); }
  WorkGuard(const WorkGuard&) = delete;
  WorkGuard& operator=(const WorkGuard&) = delete;

 private:
  std::shared_ptr<Auditor> auditor_;
  std::string sandboxId_;
};

// The allowlist a row records (service_egress.cpp); nullopt for a row that records none (made
// before allowlists were stored).
std::optional<std::vector<std::string>> storedAllowlist(const SandboxRecord& row);

struct SandboxService::Impl {
  Impl(Store& s, ServiceOptions o);

  Store& store;
  ServiceOptions opts;
  std::shared_ptr<Auditor> auditor;

  std::mutex providersMu;
  // By instance name (SandboxProvider::instance()), in registration order for each type.
  std::map<std::string, std::shared_ptr<SandboxProvider>> providers;
  std::vector<std::string> instanceOrder;

  std::mutex eventsMu;
  std::map<int, EventSink> sinks;
  int nextToken = 1;

  // Sandboxes whose createSandbox is running in this process: reconcile leaves them alone.
  std::mutex inflightMu;
  std::set<std::string> inflight;

  // Labelled sandboxes with no row and no creation time: when reconcile first saw them.
  std::mutex orphansMu;
  std::map<std::string, std::int64_t> orphanFirstSeen;

  std::mutex reconcileMu;  // one reconcile at a time

  std::mutex bgMu;
  std::condition_variable bgCv;
  bool bgStop = false;
  std::thread bg;

  std::int64_t nowMs() const { return opts.nowUnixMs(); }
  std::int64_t nowSec() const { return opts.nowUnixMs() / 1000; }
  std::string newId(const std::string& prefix) const { return opts.newId(prefix); }

  // The first registered provider of a type (where new sandboxes of that type go).
  std::shared_ptr<SandboxProvider> providerFor(ProviderType t);
  // The provider instance a row lives on; nullptr when it is not registered.
  std::shared_ptr<SandboxProvider> providerOf(const SandboxRecord& row);
  static Error providerMissing(const SandboxRecord& row);
  // The Kubernetes instance a profile's sandboxes go to: the server's own, or, when the
  // profile names a kubeconfig or context, that cluster's instance (made and registered on
  // first use). Null when neither exists.
  Result<std::shared_ptr<SandboxProvider>> kubernetesFor(const SandboxConfig& cfg);
  // Makes (once) and registers the instance of a target; `what` names it in errors.
  Result<std::shared_ptr<SandboxProvider>> makeInstance(KubernetesTarget target,
                                                        const std::string& what);
  // Makes again, from the target remembered when it was first made, an instance a row names
  // (after a restart); null when unknown or failing (logged once).
  std::shared_ptr<SandboxProvider> restoreInstance(const std::string& name);
  // The same for every instance these rows name that is not registered (reconcile).
  void restoreInstancesOf(const std::vector<SandboxRecord>& rows);
  std::mutex targetsMu;  // one instance made at a time; failedTargets
  std::set<std::string> failedTargets;
  std::vector<std::shared_ptr<SandboxProvider>> allProviders();

  void audit(const std::string& sandboxId, const std::string& actor, const std::string& action,
             const nlohmann::json& detail, bool ok) {
    auditor->write(sandboxId, actor, action, detail, ok);
  }
  void emit(const std::string& type, const std::string& sandboxId, const std::string& detail = {});

  bool isInflight(const std::string& id);
  // Marks an id in flight (a create or a migrate running in this process) until it goes.
  class InflightGuard {
   public:
    InflightGuard(Impl& impl, std::string id) : impl_(impl), id_(std::move(id)) {
      std::lock_guard lk(impl_.inflightMu);
      impl_.inflight.insert(id_);
    }
    ~InflightGuard() {
      std::lock_guard lk(impl_.inflightMu);
      impl_.inflight.erase(id_);
    }
    InflightGuard(const InflightGuard&) = delete;
    InflightGuard& operator=(const InflightGuard&) = delete;

   private:
    Impl& impl_;
    std::string id_;
  };

  // service_configs.cpp
  Result<SandboxConfig> ensureDefaultConfig();
  // A row that is not a tombstone (removed rows are SandboxNotFound).
  Result<SandboxRecord> visibleRow(const std::string& id);
  // A running sandbox: its row, its provider instance and the ref the provider acts on.
  struct Live {
    SandboxRecord row;
    std::shared_ptr<SandboxProvider> provider;
    SandboxRef ref;
  };
  Result<Live> runningSandbox(const std::string& id);

  // service_egress.cpp: the row's egress column (allowlist and what was enforced).
  void saveEgress(const std::string& id, const std::vector<std::string>& allowlist,
                  const EgressStatus& status);
  std::mutex egressMu;  // one allowlist change or refresh at a time
  Result<void> refreshEgress();

  // service_lifecycle.cpp
  Result<void> stop(const std::string& id, const std::string& actor, const std::string& reason);
  Result<SandboxRecord> start(const std::string& id, const std::string& actor,
                              const std::string& reason);
  // An idle-stopped sandbox whose config wakes on use.
  bool wakesOnUse(const SandboxRecord& row);
  // A profile's kubeConfigPath (given through the API) under the project-path rule: a
  // kubeconfig can name a command to run. Empty (the server's own discovery) passes.
  Result<void> checkKubeconfigPath(const SandboxConfig& c);
  // SandboxRootExecForbidden unless the row's config allows root exec (a config removed
  // since the sandbox was made allows nothing).
  Result<void> checkRootExec(const SandboxRecord& row);

  // service_reconcile.cpp
  Result<void> reconcile();
  void settleRow(const SandboxRecord& row, const SandboxInfo* found, SandboxProvider& prov);
  void handleUnknown(const SandboxInfo& info, SandboxProvider& prov);

  // service_pool.cpp: the warm pools, by config id.
  struct PoolState {
    std::string instance;
    int target = 0;
    bool available = true;
    std::int64_t hits = 0, misses = 0;
    std::deque<std::int64_t> claimTimesMs;   // claims and misses of the autoscale window
    std::vector<std::int64_t> claimBuckets;  // kClaimBucketsMs + Inf
    double claimSumMs = 0;
    std::string lastError;
    int failures = 0;  // warm creates failed in a row (backoff)
    std::int64_t retryAtMs = 0;
  };
  struct Warmer {
    std::string configId;
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;  // asked to stop and joined when dropped
  };
  // Why a create cannot use this cluster ("" when it can). The health check behind it reads
  // the version and lists the sandboxes' pods: per create, that doubled a warm claim's time,
  // and 20 creates at once made 20 lists. So a cluster seen reachable is not asked again for
  // opts.clusterFreshFor, and creates that arrive together share one check; until
  // opts.clusterTrustedFor the check runs beside the create, not before it.
  std::string clusterUnusable(const std::shared_ptr<SandboxProvider>& cluster);
  void noteReachable(const std::string& instance);  // the cluster answered the service
  struct Reachability {
    std::chrono::steady_clock::time_point at{};  // last seen reachable
    std::shared_future<std::string> pending;     // a check under way
    std::future<void> ahead;                     // a check beside creates (joined on reuse)
  };
  std::mutex reachMu;
  std::map<std::string, Reachability> reachability;  // by instance, under reachMu

  std::mutex poolMu;  // pools, warmers, poolWake, poolStop, poolThread
  std::condition_variable poolCv;
  std::map<std::string, PoolState> pools;
  std::list<Warmer> warmers;
  bool poolWake = false;
  bool poolStop = false;
  // Claims under way: the refill they wake waits (a little) until they are over, so that a
  // burst of claims does not share the engine or the apiserver with the creates of its refill.
  int claimsInFlight = 0;  // under poolMu
  // When the last claim ended (under poolMu): the refill also lets the first commands in the
  // claimed sandboxes run before it starts creating (kRefillQuiet in service_pool.cpp).
  std::chrono::steady_clock::time_point lastClaimEnd{};
  std::thread poolThread;
  std::mutex poolUpkeepMu;                            // one maintainPools at a time
  PoolState& poolState(const std::string& configId);  // under poolMu
  void wakePools();
  Result<std::shared_ptr<SandboxProvider>> poolProvider(const SandboxConfig& cfg);
  SandboxSpec specFor(const SandboxConfig& cfg, const std::string& id);
  void warmOne(const SandboxConfig& cfg, const std::shared_ptr<SandboxProvider>& prov,
               std::stop_token stop);
  void retireWarm(const SandboxRecord& row, const std::string& why);
  // Removes a profile's warm sandboxes (its settings changed or it goes) and refills.
  // wait: also until its creates in flight have ended (and removed what they made).
  void drainPool(const std::string& configId, const std::string& why, bool wait = false);
  Result<void> maintainPools(bool wait);
  Result<int> maintainOnce(bool wait);  // creates it started (or, waiting, waited for)
  void poolLoop();
  void stopPools();
  std::optional<Result<SandboxRecord>> claimFromPool(const SandboxConfig& cfg,
                                                     SandboxProvider& prov, const SandboxSpec& want,
                                                     const std::string& actor,
                                                     const CreateControl& control,
                                                     std::string* missReason);

  // service_idle.cpp
  Result<void> stopIdle();
  // The newest activity of the sandbox's tmux sessions; nullopt when none reports one.
  std::optional<std::int64_t> lastTmuxActivity(const SandboxRecord& row);
  void backgroundLoop();
};

// `inner`, with `env` laid under the environment of every command it runs (a command's own
// variables win) (service_exec.cpp).
// argv present and environment names valid (service_exec.cpp): what an exec or a durable
// command must pass before it reaches a provider.
Result<void> validateExec(const std::vector<std::string>& argv, const ExecOptions& opts);

std::shared_ptr<SandboxProvider> withExecEnv(std::shared_ptr<SandboxProvider> inner,
                                             std::vector<std::pair<std::string, std::string>> env);

// "error" details for audit entries (service_audit.cpp).
nlohmann::json errorDetail(const Error& e);
// The argv as recorded in the audit log: each argument cut at 1 KiB, at most 256 of them.
nlohmann::json auditArgv(const std::vector<std::string>& argv);

// A create request that passed validateCreateRequest() (create_request.cpp).
struct ValidatedCreate {
  std::string projectPath;  // canonical
  std::string projectId;
};
// The project path must pass `policy` (project roots, refused directories).
Result<ValidatedCreate> validateCreateRequest(const CreateSandboxRequest& req,
                                              const PathPolicy& policy);

}  // namespace agentpane
