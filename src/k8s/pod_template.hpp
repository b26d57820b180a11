// What a Kubernetes sandbox is made of, as manifests, and what a pod's status means for it.
// Pure functions (JSON in, JSON or values out): the provider (k8s_provider.hpp) sends these
// to the apiserver; unit tests check them without a cluster.
//
// One sandbox <id> in namespace <ns> is:
//   - the pod        agentpane-<id>            (namespaced)
//   - the claim      agentpane-<id>-workspace  (namespaced; workspace "pvc" only)
//   - the volume     agentpane-<ns>-<id>       (cluster-scoped; a hostPath PV over the project
//                                               directory, when no storage class is named)
// All three carry the SPEC labels and the provider's scope labels. The claim also keeps the
// pod's manifest (annotation kPodTemplate), so that a stopped sandbox — pod deleted, claim
// kept — can be started again exactly as it was created.
//
// The pod passes PodSecurity "restricted" as it is: non-root uid/gid (the project
// directory's owner, so that files written in the sandbox belong to that owner on the host),
// seccomp RuntimeDefault, no privilege escalation, every capability dropped, no service
// account token. shareProcessNamespace puts the pause process at PID 1, so that zombies of
// exec'd commands are reaped and `sleep infinity` ends at once on SIGTERM.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "agentpane/errors.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane::k8s {

namespace k8s_annotations {
inline constexpr const char* kProjectPath = "agentpane.io/project-path";
inline constexpr const char* kPodTemplate = "agentpane.io/pod-template";
// A warm sandbox's workspace slot on the host (common/workspace_slot.hpp): its volume's path.
inline constexpr const char* kWorkspaceSlot = "agentpane.io/workspace-slot";
}  // namespace k8s_annotations

inline constexpr const char* kSandboxContainer = "sandbox";
inline constexpr const char* kWorkspaceMount = "/workspace";

enum class WorkspaceKind { Claim, EmptyDir, HostPath };
std::optional<WorkspaceKind> workspaceKindFromString(
    const std::string& s);  // pvc|emptyDir|hostPath

struct PodTemplateOptions {
  std::string namespaceName;
  std::map<std::string, std::string> scopeLabels;  // instance scope, test-run labels
  std::string imagePullPolicy = "IfNotPresent";    // Never for images imported into the node
  // The CPU a sandbox requests, in percent of its limit (the profile's cpu): below 100 the
  // node is overcommitted for CPU, which mostly idle sandboxes allow. Memory requests half.
  int cpuRequestPercent = 50;
  WorkspaceKind workspace = WorkspaceKind::Claim;
  std::string storageClass;  // empty: a hostPath PV over the project directory
  int workspaceSizeGi = 10;
  int terminationGraceSeconds = 5;
  std::uint32_t uid = 1000;  // the sandbox user: the project directory's owner
  std::uint32_t gid = 1000;
  // A warm sandbox (SandboxWarmPool::createWarm): labelled kWarmPool=true (its pod also
  // kWarmPoolState=warm) and without the empty project and agent labels. Its workspace is the
  // slot directory `workspaceSlot` instead of the project directory (a hostPath PV, or a
  // hostPath volume), mounted with mountPropagation HostToContainer so that the project a
  // claim bind-mounts onto the slot on the host appears in the running pod. An emptyDir
  // workspace has no slot (empty here).
  bool warm = false;
  std::string workspaceSlot;
};

std::string podName(const std::string& sandboxId);
std::string claimName(const std::string& sandboxId);
std::string volumeName(const std::string& namespaceName, const std::string& sandboxId);

// "k=v,k=v" selecting everything of this scope (plus `extra`).
std::string scopeSelector(const std::map<std::string, std::string>& scopeLabels,
                          const std::map<std::string, std::string>& extra = {});

nlohmann::json podManifest(const SandboxSpec& spec, const PodTemplateOptions& opts);
nlohmann::json claimManifest(const SandboxSpec& spec, const PodTemplateOptions& opts,
                             const nlohmann::json& pod);
nlohmann::json volumeManifest(const SandboxSpec& spec, const PodTemplateOptions& opts);

// Kubernetes quantities of the spec: memory "768Mi", cpu "1500m"; requests are half.
std::string memoryQuantity(std::int64_t mib);
std::string cpuQuantity(double cores);

// True when the object carries labels::kSandboxId == sandboxId and every scope label.
bool ownedBy(const nlohmann::json& object, const std::string& sandboxId,
             const std::map<std::string, std::string>& scopeLabels);

// SandboxInfo of a pod (state from its phase, conditions and deletion), or of a claim whose
// pod is gone (a stopped sandbox).
SandboxInfo infoFromPod(const nlohmann::json& pod, const std::string& instance);
SandboxInfo infoFromClaim(const nlohmann::json& claim, const std::string& instance);

// Where a starting pod is, read from its status.
struct PodProgress {
  bool scheduled = false;
  bool started = false;  // the sandbox container is running
  bool ready = false;
  std::string phase;
  std::optional<Error> failure;  // a state it will not leave by itself
};
// Classifies without waiting: image errors (ErrImagePull, ImagePullBackOff,
// ErrImageNeverPull, InvalidImageName) -> K8sImagePullBackoff; a scheduler verdict of
// "Insufficient <resource>" -> K8sInsufficientResources; the container terminated or the pod
// Failed/Succeeded -> K8sPodNotRunning. A pod waiting for its claim to bind is not a failure.
PodProgress podProgress(const nlohmann::json& pod);

}  // namespace agentpane::k8s
