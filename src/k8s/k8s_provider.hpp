// SandboxProvider on a Kubernetes cluster: one restricted pod per sandbox, its workspace a
// claim bound to a hostPath volume over the project directory (pod_template.hpp says what
// each object is). The cluster alone is the source of truth: list() rebuilds SandboxInfo from
// labels and annotations after a restart.
//
// - create: namespace check, claim + volume, pod; then waits for Ready by a watch on the
//   pod, classifying failures from its status (pod_template.hpp podProgress); on any failure
//   the pod, claim and volume are removed before the error returns.
// - stop deletes the pod (grace period) and keeps the claim; start re-creates the pod from
//   the manifest kept on the claim. Workspaces without a claim (emptyDir, hostPath) cannot be
//   started again once stopped (SandboxNotRunning).
// - exec: the WebSocket exec of exec_session.hpp. Kubernetes exec has no user, directory,
//   environment or kill: argv runs under `env -C DIR NAME=VALUE… -- argv` (arguments, never
//   a shell line), with a random marker in the environment by which cancel() kills the
//   process tree through a second exec, as the Docker provider does; the timeout is killed
//   in the pod by coreutils' `timeout`. Root is refused (ValidationError): the pod runs as a
//   non-root user under PodSecurity "restricted". The asynchronous form of a session runs on
//   the client's I/O loop; the kill of a cancelled one on a small pool of the provider's (its
//   exec is opened by a blocking call). A terminal (ExecOptions::tty) is the exec's own tty,
//   its size sent on the resize channel.
// - metrics: the container's own cgroup, read through an exec (the cluster's metrics API is
//   not assumed); memory, pids and CPU are kernel figures, never placeholders.
// - Every call is bounded (the REST client's deadlines; create and stop by their timeouts).
#pragma once

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "agentpane/provider.hpp"
#include "common/egress.hpp"
#include "common/workspace_slot.hpp"
#include "k8s/pod_template.hpp"
#include "k8s/rest_client.hpp"

namespace agentpane::k8s {

struct K8sProviderOptions {
  RestConfig rest;
  std::string instanceName = "kubernetes";  // SandboxProvider::instance()
  std::string namespaceName = "agentpane-sandboxes";
  // Added to everything created and required by list/cleanup (labels::kInstance, test runs).
  std::map<std::string, std::string> scopeLabels;
  std::string imagePullPolicy = "IfNotPresent";
  int cpuRequestPercent = 50;  // PodTemplateOptions::cpuRequestPercent (1..100)
  WorkspaceKind workspace = WorkspaceKind::Claim;
  std::string storageClass;  // empty: hostPath PV over the project directory
  // May the provider make hostPath PersistentVolumes (and look for the ones an interrupted
  // create left)? Off, it never touches PersistentVolumes — no cluster-wide verbs needed
  // (permissions.hpp) — and a claim workspace needs a storage class.
  bool persistentVolumes = true;
  std::chrono::seconds startupTimeout{120};
  std::chrono::seconds stopTimeout{60};
  int deleteGraceSeconds = 2;
  // Creates the namespace (with the restricted PodSecurity labels) when it is missing and the
  // credentials may; otherwise a missing namespace is K8sNamespaceError saying what to do.
  bool createNamespace = true;
  std::chrono::milliseconds killTimeout{10000};
  // Egress (network_policy.hpp): a default deny in the namespace and a policy per sandbox,
  // for sandboxes whose spec has kubernetes.networkPolicyEnabled. Host names are resolved
  // in the sandbox's pod (one exec, bounded by this).
  std::chrono::milliseconds egressResolveTimeout{20000};
  std::shared_ptr<net::IoThread> io;  // default: a loop of our own
  // The warm pool (k8s_provider_warm.cpp): where warm sandboxes' workspace slots live on the
  // host, which is the cluster's node (as for hostPath workspaces). Null: no warm pool
  // (warmSupported says why). One root per provider instance: cleanup sweeps it.
  std::shared_ptr<WorkspaceSlots> warmSlots;
};

class K8sProvider final : public SandboxProvider {
 public:
  // Fails only on configuration (bad TLS material); never calls the cluster.
  static Result<std::unique_ptr<K8sProvider>> create(K8sProviderOptions opts);
  ~K8sProvider() override;

  using SandboxLifecycle::create;
  Result<SandboxInfo> create(const SandboxSpec& spec, const CreateControl& control) override;
  Result<SandboxInfo> get(const SandboxRef& ref) override;
  Result<std::vector<SandboxInfo>> list(const ListFilter& filter) override;
  Result<SandboxInfo> start(const SandboxRef& ref) override;
  Result<void> stop(const SandboxRef& ref) override;
  Result<void> remove(const SandboxRef& ref) override;

  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override;
  Result<SandboxMetrics> metrics(const SandboxRef& ref) override;
  // Re-resolves the names in the pod and applies the sandbox's policy by server-side apply
  // when it differs from what the cluster holds (changed), creating it when missing.
  Result<EgressStatus> applyEgress(const SandboxRef& ref,
                                   const std::vector<std::string>& allowlist) override;

  // Warm pool (k8s_provider_warm.cpp). A warm pod mounts its slot (a hostPath PV over it) with
  // HostToContainer propagation and runs as spec.warmUid:warmGid; the claim is a merge patch
  // of its labels with the resourceVersion its GET saw (409: another claim won, Conflict),
  // then the bind of the project onto the slot, then the sandbox's NetworkPolicy.
  Result<void> warmSupported() override;
  Result<SandboxInfo> createWarm(const SandboxSpec& spec, const CreateControl& control) override;
  Result<SandboxInfo> claimWarm(const SandboxRef& ref, const WarmClaim& claim) override;

  [[nodiscard]] ProviderType type() const override { return ProviderType::Kubernetes; }
  [[nodiscard]] std::string instance() const override { return opts_.instanceName; }
  HealthStatus healthCheck() override;
  Result<CleanupReport> cleanup(const CleanupFilter& filter) override;

  [[nodiscard]] const std::string& namespaceName() const { return opts_.namespaceName; }
  [[nodiscard]] bool persistentVolumes() const { return opts_.persistentVolumes; }
  RestClient& client() { return *client_; }

 private:
  K8sProvider(K8sProviderOptions opts, std::shared_ptr<RestClient> client);

  Result<void> ensureNamespace();  // checkNamespace() once
  Result<void> checkNamespace();
  // create() and createWarm(): warm makes the pod over a workspace slot, as the warm uid, with
  // the warm labels and no egress.
  Result<SandboxInfo> createSandbox(const SandboxSpec& spec, const CreateControl& control,
                                    bool warm);
  // The pod a ref names, checked to be ours; 404 or not ours: SandboxNotFound. A claim
  // without its pod (a stopped sandbox) is reported as Stopped.
  Result<SandboxInfo> resolve(const SandboxRef& ref);
  Result<nlohmann::json> ownPod(const std::string& ns, const std::string& sandboxId);
  Result<nlohmann::json> ownClaim(const std::string& ns, const std::string& sandboxId);
  // Creates the pod and waits until it is Ready (or fails, or times out, or is cancelled),
  // reporting its phases (from its status and its events).
  Result<SandboxInfo> runPod(const nlohmann::json& pod, const std::string& sandboxId,
                             std::chrono::steady_clock::time_point deadline,
                             const CreateControl& control, nlohmann::json* readyPod = nullptr);
  // Watches one object from the version of `object`: decide() sees it first, then each new
  // version (nullptr once it is gone) and ends the wait with a verdict; at the deadline the
  // answer is timedOut(last version seen); once `stop` is requested, SandboxCreateCancelled.
  Result<void> watchObject(
      const std::string& collection, const nlohmann::json& object,
      std::chrono::steady_clock::time_point deadline,
      const std::function<std::optional<Result<void>>(const nlohmann::json*)>& decide,
      const std::function<Error(const nlohmann::json&)>& timedOut, std::stop_token stop = {});
  // Waits until the object (a claim or a volume) reaches one of `phases` (status.phase).
  Result<void> waitPhase(const std::string& collection, const nlohmann::json& object,
                         const std::set<std::string>& phases,
                         std::chrono::steady_clock::time_point deadline, std::stop_token stop);
  // Waits until the object `name` of `collection` no longer exists.
  Result<void> waitGone(const std::string& collection, const std::string& name,
                        std::chrono::steady_clock::time_point deadline);
  Result<void> removeEverything(const std::string& ns, const std::string& sandboxId, bool podOnly);
  std::string nsOf(const SandboxRef& ref) const;
  // Egress (k8s_provider_egress.cpp).
  Result<void> ensureDefaultDeny();  // once per provider
  Result<std::map<std::string, Result<std::vector<egress::Network>>>> resolveInPod(
      const SandboxRef& ref, const std::vector<std::string>& hosts);
  // Builds and applies the policy; names are resolved in `running`'s pod, or left pending
  // (unresolved) while there is no pod yet (null).
  // `known`: the digest of the policy as this process last applied it (then it is not read
  // first); `applied`, if given, receives the digest now in force.
  Result<EgressStatus> applySandboxPolicy(const std::string& ns, const std::string& sandboxId,
                                          const std::vector<std::string>& allowlist,
                                          const SandboxRef* running,
                                          const std::string* known = nullptr,
                                          std::string* applied = nullptr);
  Result<void> removeSandboxPolicy(const std::string& ns, const std::string& sandboxId);
  Result<SandboxInfo> requireRunning(const SandboxRef& ref);
  // Warm pool: releases a sandbox's workspace slot (none: nothing).
  Result<void> releaseSlot(const std::string& sandboxId);
  // Releases the slots of sandboxes with no object left in the cluster (what a crash left);
  // skipped while a warm create is in flight (its slot exists before its objects do).
  void sweepSlots();
  // A claimed warm sandbox's project lives on its pod (labels, annotation): stop copies it
  // onto the workspace claim and into the template kept there, so that stopped it lists with
  // its project and started again it comes back with it. No claim (emptyDir): nothing.
  Result<void> keepClaimedProject(const std::string& ns, const nlohmann::json& pod);
  // Start of a claimed warm sandbox from its template: its slot made and the project bound
  // again if a restart of the host lost the bind (idempotent when it is still there).
  Result<void> rebindSlot(const nlohmann::json& tmpl);
  // A warm create's template: the warm uid and labels, the slot (checks that it can be made).
  Result<void> warmTemplate(const SandboxSpec& spec, PodTemplateOptions& t);
  // While alive, a warm create's slot is in flight: cleanup's sweep keeps it.
  class SlotInFlight {
   public:
    SlotInFlight(K8sProvider& p, std::string id) : p_(p), id_(std::move(id)) {
      std::lock_guard lock(p_.warmMu_);
      p_.warmCreating_.insert(id_);
    }
    ~SlotInFlight() {
      std::lock_guard lock(p_.warmMu_);
      p_.warmCreating_.erase(id_);
    }
    SlotInFlight(const SlotInFlight&) = delete;
    SlotInFlight& operator=(const SlotInFlight&) = delete;

   private:
    K8sProvider& p_;
    std::string id_;
  };

  K8sProviderOptions opts_;
  std::shared_ptr<RestClient> client_;
  std::atomic<bool> namespaceSeen_{false};
  std::atomic<bool> defaultDenySeen_{false};
  std::mutex egressMu_;  // one policy read-compare-apply at a time
  std::mutex warmMu_;
  std::set<std::string> warmCreating_;  // slots made, their sandbox not yet listable
  // What a warm create of this process saw once its pod was Ready: the pod and its policy's
  // digest. A claim then neither reads the pod nor the policy first: its label patch keeps
  // the resourceVersion precondition (a pod changed since fails it, and the claim reads the
  // pod and tries once more), and the policy is applied only when the claim's differs.
  struct WarmSeen {
    nlohmann::json pod;
    std::string policyDigest;
  };
  std::map<std::string, WarmSeen> warmSeen_;  // under warmMu_
  // The namespace's PodSecurity enforce level (a pss::Level), read with it; -1 while unknown
  // (credentials that cannot read namespaces): then only the apiserver judges the pod.
  std::atomic<int> enforceLevel_{-1};
  // The metrics API (metrics.k8s.io) was absent or refused at this steady-clock time (ns
  // since epoch; 0: not seen so): asked again only a minute later.
  std::atomic<std::int64_t> metricsApiMissingAt_{0};
  // CPU (percent of one core) and memory (working set) of a pod from the metrics API, or
  // nullopt when the cluster does not serve it to these credentials.
  std::optional<std::pair<double, std::uint64_t>> podUsage(const std::string& ns,
                                                           const std::string& pod);
  // Kills of cancelled execs (each a blocking exec of its own, bounded by killTimeout), run
  // here by the asynchronous cancel so that it never blocks the I/O loop. Sessions share it.
  std::shared_ptr<boost::asio::thread_pool> killPool_ =
      std::make_shared<boost::asio::thread_pool>(2);
};

}  // namespace agentpane::k8s
