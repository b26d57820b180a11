// The Kubernetes API verbs the server uses, and a check of them against a cluster with
// SelfSubjectAccessReview (POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews: "may
// I do this?", answered for the credentials that ask). `agentpane doctor` names every verb
// that is missing; a unit test holds scripts/cluster/rbac.yaml to exactly this list.
#pragma once

#include <string>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::k8s {

class RestClient;

struct Permission {
  std::string resource;     // plural: "pods", "persistentvolumes", "networkpolicies"
  std::string subresource;  // "exec" or empty
  std::string verb;
  bool clusterScoped = false;  // namespaces, persistentvolumes
  std::string why;             // what the server does with it
  std::string group;           // the API group; empty: core

  // "create pods/exec" / "list persistentvolumes (cluster-wide)" /
  // "patch networkpolicies.networking.k8s.io".
  [[nodiscard]] std::string describe() const;
};

struct PermissionOptions {
  // The namespace does not exist yet: the server creates it at the first create
  // (namespaces create), which a least-privilege deployment does not grant.
  bool namespaceMissing = false;
  // The workspace is a hostPath PersistentVolume (claim without a storage class): the
  // cluster-wide persistentvolumes verbs. Off (emptyDir, or a storage class that provisions
  // volumes) the server never touches PersistentVolumes.
  bool persistentVolumes = true;
};

// Every verb the Kubernetes provider and the server's cluster routes use: the one list that
// `agentpane doctor` checks and `agentpane manifests` (manifests.hpp) grants. The hostPath
// PersistentVolume of the default workspace needs the persistentvolumes verbs (list and
// cleanup also look for the volume an interrupted create left); without PV workspaces
// (options.persistentVolumes false) the provider never touches volumes.
std::vector<Permission> requiredPermissions(const PermissionOptions& options = {});

struct AccessCheck {
  Permission permission;
  bool allowed = false;
  std::string reason;  // the authorizer's, when it gives one
};

// One SelfSubjectAccessReview per permission (namespaced ones in `namespaceName`). An error
// only when a review cannot be made at all (unreachable, refused).
Result<std::vector<AccessCheck>> checkPermissions(RestClient& client,
                                                  const std::string& namespaceName,
                                                  const std::vector<Permission>& permissions);

}  // namespace agentpane::k8s
