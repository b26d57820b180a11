// Value types shared by every provider: what a sandbox is asked to be, and what it is.
// No library types (Beast, JSON, YAML) appear here.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentpane {

enum class ProviderType { Docker, Kubernetes };
const char* toString(ProviderType t);  // "docker" | "kubernetes"
std::optional<ProviderType> providerTypeFromString(const std::string& s);

// CRI-style explicit states. Unknown MUST be reported when the provider cannot tell
// (engine unreachable, an object in a state we do not model) rather than guessing.
enum class SandboxState { Creating, Running, Stopped, Failed, Unknown };
const char* toString(SandboxState s);  // "creating" | "running" | "stopped" | "failed" | "unknown"
// The inverse of toString(SandboxState); any other word is Unknown. (Row statuses, which are
// not states, map through stateFromStatus() in store/records.hpp.)
SandboxState sandboxStateFromString(std::string_view s);

enum class NetworkMode {
  None,      // no network at all (Docker: NetworkMode "none")
  Bridge,    // default bridge with egress
  Internal,  // a provider-managed internal network: sandboxes only, no egress
};
const char* toString(NetworkMode m);
std::optional<NetworkMode> networkModeFromString(const std::string& s);

// Kubernetes-only settings of a config; ignored by Docker.
struct KubernetesOptions {
  std::string kubeConfigPath;  // empty: discovery order of SPEC
  std::string kubeContext;     // empty: current-context
  std::string kubeNamespace = "agentpane-sandboxes";
  bool networkPolicyEnabled = true;
  std::string workspaceVolume = "pvc";  // "pvc" | "emptyDir" | "hostPath"
  std::string storageClass;             // empty: a PV the provider makes for local clusters
  int workspaceSizeGi = 10;
  int startupTimeoutSeconds = 120;
};

// Labels every provider puts on what it creates (SPEC "Labels").
namespace labels {
inline constexpr const char* kSandbox = "agentpane.io/sandbox";  // "true"
inline constexpr const char* kSandboxId = "agentpane.io/sandbox-id";
inline constexpr const char* kProjectId = "agentpane.io/project-id";
inline constexpr const char* kAgentId = "agentpane.io/agent-id";
inline constexpr const char* kManaged = "agentpane.io/managed";                // "true"
inline constexpr const char* kWarmPool = "agentpane.io/warm-pool";             // "true"
inline constexpr const char* kWarmPoolState = "agentpane.io/warm-pool-state";  // warm|allocated
// The provider instance scope: the server that owns the sandbox (its home, hashed). Every
// provider MUST put it on what it creates, and list/cleanup/reconcile MUST see only objects
// that carry the provider's own value, so that servers sharing an engine or a cluster never
// touch each other's sandboxes.
inline constexpr const char* kInstance = "agentpane.io/instance";
}  // namespace labels

// What create() is asked for.
struct SandboxSpec {
  std::string id;  // assigned by the caller (the service); [a-z0-9-]{1,63}
  std::string projectId;
  std::string agentId;
  std::string projectPath;  // host directory mounted at /workspace; MUST exist
  std::string image = "agentpane/sandbox:latest";
  int memoryMb = 2048;
  double cpu = 2.0;
  int pidsLimit = 512;
  std::vector<std::pair<std::string, std::string>> env;
  NetworkMode network = NetworkMode::None;
  std::vector<std::string> allowedEgressHosts;     // HOST[:PORT], CIDR or IP
  std::map<std::string, std::string> extraLabels;  // e.g. warm-pool labels
  KubernetesOptions kubernetes;
  // Warm sandboxes (SandboxWarmPool::createWarm) have no project yet: they run as this
  // uid:gid, and only a project owned by it can claim them. create() ignores them.
  std::uint32_t warmUid = 1000;
  std::uint32_t warmGid = 1000;
};

// What a provider enforces of a sandbox's egress allowlist (the model: src/common/egress.hpp).
struct EgressHostStatus {
  std::string host;
  std::vector<std::string> addresses;  // what the rules allow for it now
  std::string error;                   // non-empty: it did not resolve (why)
};
struct EgressStatus {
  std::vector<std::string> allowlist;  // as given
  std::vector<std::string> rules;      // what is enforced, e.g. "10.1.2.3/32 ports 8080"
  std::vector<EgressHostStatus> hosts;
  std::vector<std::string> unresolved;  // names that resolved to nothing: reported, never dropped
  bool enforced = false;                // false: this provider enforces no allowlist here
  bool changed = false;                 // this call changed what is enforced
};

// What a provider reports about one sandbox. Built from the provider (labels), not memory.
struct SandboxInfo {
  std::string id;  // agentpane.io/sandbox-id
  ProviderType provider = ProviderType::Docker;
  std::string instance;  // the provider instance that reports it (SandboxProvider::instance())
  SandboxState state = SandboxState::Unknown;
  std::string projectId;
  std::string agentId;
  std::string projectPath;
  std::string image;
  std::string containerId;   // Docker
  std::string podName;       // Kubernetes
  std::string podNamespace;  // Kubernetes
  std::string podUid;        // Kubernetes
  std::int64_t createdAtUnix = 0;
  std::map<std::string, std::string> labels;
  std::string stateDetail;  // engine's words, e.g. "Exited (137) 2 seconds ago"
  // What create() enforced of spec.allowedEgressHosts (set by create only).
  std::optional<EgressStatus> egress;
};

// Where one sandbox lives, built from its row (sandboxRef()): what providers act on, so that
// none has to search a whole engine or cluster (which a namespaced Role cannot) for an id.
// Providers MUST check that what a ref names carries the sandbox-id label of ref.sandboxId
// and their instance scope (labels::kInstance), and treat anything else as not found.
struct SandboxRef {
  std::string instance;    // the provider instance (SandboxProvider::instance())
  std::string scope;       // Kubernetes: the namespace; Docker: empty (the instance is the engine)
  std::string objectName;  // Kubernetes: the pod; Docker: empty (agentpane-<sandboxId>)
  std::string uid;         // Kubernetes: the pod uid; Docker: the container id; empty: unknown yet
  std::string sandboxId;   // agentpane.io/sandbox-id
};
// The ref of a sandbox as a row or a provider reports it.
SandboxRef sandboxRef(const SandboxInfo& info);

// The labels every provider puts on what it makes for `spec` (labels:: above): the spec's
// extra labels, then the provider's scope labels, then the SPEC ones (which win).
std::map<std::string, std::string> sandboxLabels(
    const SandboxSpec& spec, const std::map<std::string, std::string>& scopeLabels);

struct ListFilter {
  std::optional<std::string> projectId;
  std::optional<std::string> agentId;
  std::map<std::string, std::string> labels;  // extra equality selectors
  bool includeStopped = true;
};

struct HealthStatus {
  bool reachable = false;
  std::string version;     // engine / cluster version
  std::string apiVersion;  // negotiated API version
  int running = 0;
  int total = 0;
  std::vector<std::string> warnings;
};

struct CleanupFilter {
  bool stopped = true;  // remove stopped sandboxes
  bool failed = true;   // remove failed sandboxes
  // Remove sandboxes whose id is not in this set (orphans), when set.
  std::optional<std::vector<std::string>> knownIds;
  // Remove running sandboxes created before this time (idle by age), when set.
  std::optional<std::int64_t> createdBeforeUnix;
};

struct CleanupReport {
  std::vector<std::string> removedIds;
  std::vector<std::string> failedIds;
};

struct SandboxMetrics {
  double cpuPercent = 0;  // of one core = 100
  std::uint64_t memoryBytes = 0;
  std::uint64_t memoryLimitBytes = 0;
  std::uint64_t networkRxBytes = 0;
  std::uint64_t networkTxBytes = 0;
  std::uint64_t pids = 0;
  std::int64_t uptimeSeconds = 0;
};

// Validation shared by every layer (ids reach labels, names reach shells).
bool isValidSandboxId(const std::string& id);  // [a-z0-9][a-z0-9-]{0,62}
bool isValidLabelValue(const std::string& v);  // Kubernetes label value rules

}  // namespace agentpane
