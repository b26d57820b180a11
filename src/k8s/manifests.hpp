// The Kubernetes objects a deployment of the server needs (`agentpane manifests`, checked in
// as k8s/manifests/): the sandbox namespace (PodSecurity "restricted"), the server's
// ServiceAccount, a Role + RoleBinding and a ClusterRole + ClusterRoleBinding granting exactly
// requiredPermissions() (permissions.hpp, the list `agentpane doctor` checks), a ResourceQuota
// and LimitRange for the sandboxes, the namespace's default-deny NetworkPolicy
// (network_policy.hpp, as the provider applies it) with one policy letting the server's own
// pod serve and reach the apiserver, and a Deployment + Service running the server itself
// with in-cluster credentials. The provider makes a missing namespace from namespaceManifest(), so
// what is printed is what the server would create.
//
// The server's API token is not generated (it is a secret): the Deployment reads it from the
// Secret `tokenSecret` (key "token", 64 hex digits) that the operator creates:
//   kubectl -n NS create secret generic agentpane-token --from-literal=token=$(openssl rand -hex
//   32)
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"
#include "k8s/permissions.hpp"

namespace agentpane::k8s {

struct ManifestOptions {
  std::string namespaceName = "agentpane-sandboxes";
  std::string image = "agentpane/server:latest";  // the server's image
  std::string imagePullPolicy = "IfNotPresent";
  std::string sandboxImagePullPolicy = "IfNotPresent";  // AGENTPANE_K8S_IMAGE_PULL_POLICY
  // The workspace of sandboxes made by the in-cluster server: "emptyDir" (the default: the
  // server has no project directories of its own to share) or "pvc" (with storageClass: a
  // provisioned volume; without: a hostPath PersistentVolume, which needs the cluster-wide
  // persistentvolumes verbs).
  std::string workspace = "emptyDir";
  std::string storageClass;
  std::string tokenSecret = "agentpane-token";
  int port = 7300;
  // Sandbox capacity of the namespace (ResourceQuota) and per-container defaults and bounds
  // (LimitRange; a pod without resources gets the defaults, so the quota can count it).
  int maxPods = 50;
  std::string quotaCpu = "32";       // limits.cpu of all pods together
  std::string quotaMemory = "64Gi";  // limits.memory
  std::string defaultCpu = "1";      // a container's limit when it names none
  std::string defaultMemory = "1Gi";
  std::string maxCpu = "8";  // the most one container may ask for
  std::string maxMemory = "16Gi";
  // Where the server's pod reaches the apiserver, "IP[/prefix]:PORT" each (the endpoints of the
  // `kubernetes` Service: a policy sees traffic after kube-proxy has translated the ClusterIP).
  // Given, the server's egress is DNS and these alone; empty, its egress is open.
  std::vector<std::string> apiserverEndpoints;
};

// Refuses options manifests() cannot honour (an endpoint that is a host name or has no port),
// with a ValidationError naming the field.
Result<void> checkManifestOptions(const ManifestOptions& options);

// The names of what manifests() makes (cluster-scoped ones carry the namespace, so that two
// deployments in two namespaces do not overwrite each other's bindings).
inline constexpr const char* kServerName = "agentpane-server";   // Deployment, Service, pod label
inline constexpr const char* kServiceAccountName = "agentpane";  // ServiceAccount, Role, bindings
std::string clusterRoleName(const std::string& namespaceName);   // "agentpane:<ns>"

// The namespace with PodSecurity "restricted" enforced, warned and audited (latest version).
nlohmann::json namespaceManifest(const std::string& namespaceName);

// What the server is granted, from requiredPermissions(): one rule per (group, resource) with
// its verbs in the order the list names them. Namespaced permissions for the Role, cluster-wide
// ones for the ClusterRole.
nlohmann::json roleRules(const std::vector<Permission>& permissions, bool clusterScoped);

// The PermissionOptions that the options' workspace needs.
PermissionOptions permissionOptions(const ManifestOptions& options);

// Every object, in the order `kubectl apply` needs them (namespace first).
std::vector<nlohmann::json> manifests(const ManifestOptions& options);

// One YAML stream ("---" between documents), keys sorted, strings that YAML would read as
// something else quoted. A header comment says how it was made.
std::string toYamlStream(const std::vector<nlohmann::json>& objects, const std::string& header);

// The file name under k8s/manifests/ of an object: "<NN>-<kind>-<name>.yaml", lower case.
std::string manifestFileName(std::size_t index, const nlohmann::json& object);

// The comment on top of every generated file: what made it, and the Secret to create.
std::string manifestsHeader(const ManifestOptions& options);

// manifests() as files: (manifestFileName, toYamlStream of that one object with the header).
std::vector<std::pair<std::string, std::string>> manifestFiles(const ManifestOptions& options);

}  // namespace agentpane::k8s
