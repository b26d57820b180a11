// What the server's cluster routes and `agentpane doctor` ask of a cluster: is it there, which
// version, does the sandbox namespace exist, how many sandbox pods run; the contexts of a
// kubeconfig; the namespaces the credentials see. REST clients are built per (kubeconfig,
// context) and reused, so a warm status costs three round trips on kept-alive connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agentpane/result.hpp"
#include "k8s/kubeconfig_loader.hpp"

namespace agentpane::k8s {

class RestClient;

inline constexpr std::string_view kSandboxNamespace = "agentpane-sandboxes";
inline constexpr std::string_view kSandboxSelector = "agentpane.io/sandbox=true";

// Which cluster: a kubeconfig path ("" = discovery of SPEC), a context ("" = current) and the
// namespace sandboxes live in ("" = the context's, else agentpane-sandboxes).
struct ClusterTarget {
  std::string kubeconfigPath;
  std::string context;
  std::string namespaceName;
};

struct ClusterStatus {
  bool connected = false;
  std::string context;  // "" in-cluster
  std::string server;
  std::string version;  // gitVersion, e.g. v1.30.14
  std::string namespaceName;
  bool namespaceExists = false;
  int podsRunning = 0;  // pods labelled agentpane.io/sandbox=true, phase Running
  int podsTotal = 0;
  std::string credentialType;    // CredentialSource::kind()
  std::string kubeconfigSource;  // "explicit", "KUBECONFIG", "in-cluster", …
};

struct NamespaceInfo {
  std::string name;
  std::string phase;  // Active | Terminating
};

struct ClusterInfoOptions {
  LoadingRules rules;  // explicitPath is replaced by the target's path when one is given
  ResolveOptions resolve;
  // Connecting gives up after this: a cluster that is down answers K8sUnreachable in
  // seconds, not after a TCP timeout.
  std::chrono::milliseconds connectTimeout{3000};
  std::chrono::milliseconds callTimeout{5000};
  std::size_t maxClients = 8;  // (kubeconfig, context) pairs kept; least recently used goes
  // Exec plugins in a kubeconfig a target names (the API's) are refused unless this is set;
  // the server's own discovery (`rules`) may use them.
  bool allowExecInTargetKubeconfigs = false;
};

// Thread-safe. Every method blocks (files, plugins, network): worker threads only.
class ClusterInfo {
 public:
  explicit ClusterInfo(ClusterInfoOptions options);
  ~ClusterInfo();

  // The cluster's state. Unreachable: K8sUnreachable; kubeconfig faults: their codes; a
  // namespace that does not exist is namespaceExists=false (not an error).
  Result<ClusterStatus> status(const ClusterTarget& target);
  // Contexts of the merged kubeconfig, or of kubeconfigPath alone when it is given.
  Result<ContextList> contexts(const std::string& kubeconfigPath);
  Result<std::vector<NamespaceInfo>> namespaces(const ClusterTarget& target);

  // The client for (kubeconfig, context), built on first use and reused. A client whose
  // kubeconfig failed is not kept: a fixed file is read again on the next call.
  Result<std::shared_ptr<RestClient>> client(const ClusterTarget& target);

  [[nodiscard]] std::size_t cachedClients() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<RestClient> client;
    std::string source;
  };
  Result<Entry> entryFor(const ClusterTarget& target);

  const ClusterInfoOptions options_;
  mutable std::mutex mu_;
  std::list<Entry> clients_;  // most recently used first
};

}  // namespace agentpane::k8s
