// SandboxProvider on a Docker engine. One container per sandbox, named agentpane-<id>,
// labelled so that the engine alone (list by label) is the source of truth: besides the
// SPEC labels it stores the project path and image, so list() rebuilds SandboxInfo after a
// restart. Hardened by default: all capabilities dropped, no-new-privileges, the project
// directory's owner as the user (sandbox_user.hpp), memory/CPU/pids limits, tini as PID 1
// (reaps zombies; tmux needs it).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agentpane/provider.hpp"
#include "common/workspace_slot.hpp"
#include "docker/docker_client.hpp"
#include "docker/egress_firewall.hpp"
#include "docker/events.hpp"
#include "docker/sandbox_user.hpp"
#include "net/endpoint.hpp"
#include "net/io_thread.hpp"

namespace agentpane::docker {

// Labels only this provider sets (the SPEC ones are in agentpane/sandbox.hpp).
namespace docker_labels {
inline constexpr const char* kProjectPath = "agentpane.io/project-path";
inline constexpr const char* kImage = "agentpane.io/image";
// "U:G" the container runs as (sandbox_user.hpp); execs run as it after a restart too.
inline constexpr const char* kUidGid = "agentpane.io/uid-gid";
// The sandbox's own network (agentpane-<id>), removed with it; absent: no network of its own.
inline constexpr const char* kOwnNetwork = "agentpane.io/network";
// "1" on a Bridge sandbox without an allowlist: its empty allowlist means "open" (everything
// but the always-blocked ranges), at create and on each later change.
inline constexpr const char* kEgressOpen = "agentpane.io/egress-open";
}  // namespace docker_labels

struct DockerProviderOptions {
  std::optional<net::Endpoint> endpoint;  // default: DOCKER_HOST & co. (docker_host.hpp)
  std::string instanceName = "docker";    // SandboxProvider::instance()
  std::string defaultImage = "agentpane/sandbox:latest";  // healthCheck warns when missing
  // Added to every sandbox created, and required by list/cleanup/healthCheck counts: several
  // servers (or test runs) can share one engine without touching each other's sandboxes.
  std::map<std::string, std::string> scopeLabels;
  std::chrono::milliseconds callTimeout{30000};
  int stopTimeoutSeconds = 5;  // then SIGKILL
  // Egress allowlists (docker/egress_firewall.hpp): each sandbox on a network of its own
  // (agentpane-<id>), filtered by iptables rules on the host; a sandbox without an allowlist
  // then reaches DNS only, and its allowlist can change while it runs. Needs root; the server
  // turns it on when it runs as root. Off: a sandbox without a network profile has no network
  // at all ("none"), and an allowlist is refused (EGRESS_ENFORCEMENT_UNAVAILABLE).
  bool egressFirewall = false;
  std::chrono::milliseconds killTimeout{10000};  // bound on the process-tree kill exec
  std::shared_ptr<net::IoThread> io;             // default: a loop of our own
  // Warm pool (docker_warm.cpp): the slots of this instance's warm sandboxes, under a root of
  // its own (its sweep releases every slot there without a container). Null: no warm pool.
  // Binding a project into a running sandbox needs the privilege to mount (root).
  std::shared_ptr<WorkspaceSlots> warmSlots;
};

class DockerProvider final : public SandboxProvider {
 public:
  // Fails only on configuration (unusable DOCKER_HOST, bad TLS files); never calls the engine.
  static Result<std::unique_ptr<DockerProvider>> create(DockerProviderOptions opts = {});
  ~DockerProvider() override;

  // agentpane::SandboxLifecycle
  using SandboxLifecycle::create;
  Result<SandboxInfo> create(const SandboxSpec& spec, const CreateControl& control) override;
  Result<SandboxInfo> get(const SandboxRef& ref) override;
  Result<std::vector<SandboxInfo>> list(const ListFilter& filter) override;
  Result<SandboxInfo> start(const SandboxRef& ref) override;
  Result<void> stop(const SandboxRef& ref) override;
  Result<void> remove(const SandboxRef& ref) override;

  // agentpane::SandboxExecutor
  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override;

  // agentpane::SandboxStats
  Result<SandboxMetrics> metrics(const SandboxRef& ref) override;
  Result<EgressStatus> applyEgress(const SandboxRef& ref,
                                   const std::vector<std::string>& allowlist) override;

  // agentpane::SandboxWarmPool (docker_warm.cpp). A warm sandbox mounts its slot at
  // /workspace with propagation rslave and runs as warmUid:warmGid (the uid:gid label);
  // claimWarm bind-mounts the project onto the slot on the host. Docker labels cannot change
  // after creation: a claimed sandbox keeps the labels it was made with (no project id, agent
  // id or path; get/list report kWarmPoolState=allocated while its slot is bound), and the
  // service's row is the truth for its project.
  Result<void> warmSupported() override;
  Result<SandboxInfo> createWarm(const SandboxSpec& spec, const CreateControl& control) override;
  Result<SandboxInfo> claimWarm(const SandboxRef& ref, const WarmClaim& claim) override;

  // agentpane::SandboxProvider
  [[nodiscard]] ProviderType type() const override { return ProviderType::Docker; }
  [[nodiscard]] std::string instance() const override { return opts_.instanceName; }
  HealthStatus healthCheck() override;
  Result<CleanupReport> cleanup(const CleanupFilter& filter) override;

  // Container events (create, start, die, destroy, oom...) of the sandboxes in our scope.
  Result<std::unique_ptr<EventStream>> subscribeEvents();

  DockerClient& client() { return *client_; }
  static std::string containerName(const std::string& id) { return "agentpane-" + id; }

 private:
  DockerProvider(DockerProviderOptions opts, std::shared_ptr<net::IoThread> io,
                 std::shared_ptr<DockerClient> client);

  // What create and createWarm mount at /workspace and run as.
  struct Workspace {
    std::string source;  // the project (cold) or the slot (warm)
    SandboxUser user;
    bool warm = false;  // slot propagation rslave, no egress until claimed
  };
  Result<void> validateSpec(const SandboxSpec& spec) const;
  // The common part of create and createWarm: image, network, container, start, egress.
  Result<SandboxInfo> createContainer(const SandboxSpec& spec, const CreateControl& control,
                                      const Workspace& ws);
  // Warm pool helpers (docker_warm.cpp): releases a sandbox's slot (none: ok); releases
  // every slot whose sandbox is not in `existing`; marks a claimed warm sandbox's labels.
  Result<void> releaseSlot(const std::string& sandboxId);
  void sweepSlots(const std::set<std::string>& existing);
  void markClaimed(SandboxInfo& info) const;

  // Egress (docker_egress.cpp).
  static std::string networkName(const std::string& id) { return "agentpane-" + id; }
  // Makes the sandbox's own network (internal: no route out at all).
  Result<void> makeSandboxNetwork(const SandboxSpec& spec, bool internal, bool filtered);
  // Removes the sandbox's rules and network when they are ours; idempotent.
  Result<void> removeSandboxNetwork(const std::string& sandboxId);
  // Cleanup: the networks (and their rules) of ours whose container is gone and whose create
  // is not in flight — what a crash in the middle of a create or a remove left. Their ids.
  std::vector<std::string> sweepNetworks();
  // Installs the rules for `allowlist`; names resolved in `running`'s container, or left
  // pending (unresolved) before it runs (null).
  Result<EgressStatus> applyFirewall(const std::string& sandboxId,
                                     const std::vector<std::string>& allowlist,
                                     const SandboxRef* running);
  // What the rules enforce for a sandbox's allowlist: an open sandbox's empty one is
  // 0.0.0.0/0 (the always-blocked ranges carved out), anything else as it is.
  static std::vector<std::string> effectiveAllowlist(const std::vector<std::string>& allowlist,
                                                     bool open);
  // The container a ref names (its id, else agentpane-<sandboxId>), checked to be ours: the
  // sandbox labels with ref.sandboxId and every scope label. Anything else: SandboxNotFound.
  Result<SandboxInfo> resolve(const SandboxRef& ref);
  bool inScope(const SandboxInfo& info) const;
  std::vector<std::pair<std::string, std::string>> scopeSelector() const;

  DockerProviderOptions opts_;
  std::shared_ptr<net::IoThread> io_;
  std::shared_ptr<DockerClient> client_;      // shared with open exec sessions
  std::unique_ptr<EgressFirewall> firewall_;  // when opts_.egressFirewall
  std::mutex egressMu_;
  std::map<std::string, std::string> appliedRules_;  // sandbox id -> rule text last applied
  std::mutex claimMu_;                               // claimWarm's check-and-bind
  // Creates in flight (from before their network is made until they return): sweepNetworks
  // leaves their networks alone.
  std::mutex creatingMu_;
  std::set<std::string> creating_;
};

}  // namespace agentpane::docker
