#include "k8s/permissions.hpp"

#include <nlohmann/json.hpp>

#include "k8s/rest_client.hpp"

namespace agentpane::k8s {

std::string Permission::describe() const {
  std::string s = verb + " " + resource;
  if (!group.empty()) s += "." + group;
  if (!subresource.empty()) s += "/" + subresource;
  if (clusterScoped) s += " (cluster-wide)";
  return s;
}

std::vector<Permission> requiredPermissions(const PermissionOptions& options) {
  std::vector<Permission> out;
  auto add = [&](const char* resource, const char* sub, std::initializer_list<const char*> verbs,
                 bool cluster, const char* why) {
    for (const char* v : verbs)
      out.push_back({resource, sub, v, cluster, why, ""});
  };
  add("pods", "", {"get", "list", "watch", "create", "delete", "patch"}, false,
      "sandbox pods: create and watch until Ready, list, stop, remove, cleanup, health; patch "
      "labels a warm pod claimed (a merge patch with its resourceVersion)");
  // A WebSocket exec is a GET upgrade, authorised as get and (from 1.35) also create.
  add("pods", "exec", {"get", "create"}, false, "exec, tmux and metrics in a sandbox");
  add("persistentvolumeclaims", "", {"get", "list", "watch", "create", "delete", "patch"}, false,
      "the workspace claim; patch nudges a stalled bind");
  add("events", "", {"list", "watch"}, false,
      "a create's progress (scheduled, pulling, pulled, started) from its pod's events");
  add("namespaces", "", {"get", "list"}, true,
      "the sandbox namespace's PodSecurity level; `agentpane k8s namespaces`");
  if (options.namespaceMissing)
    add("namespaces", "", {"create"}, true, "making the missing sandbox namespace");
  if (options.persistentVolumes) {
    add("persistentvolumes", "", {"get", "list", "watch", "create", "delete"}, true,
        "the hostPath volume over each project directory; orphans of interrupted creates");
  }
  // Server-side apply (patch, and create where it makes the object) makes and updates them;
  // get and list read back what a
  // restarted server enforced (the policies' annotations) for re-resolution.
  for (const char* v : {"get", "list", "create", "patch", "delete"}) {
    out.push_back({"networkpolicies", "", v, false,
                   "egress: the namespace's default deny and each sandbox's allowlist policy",
                   "networking.k8s.io"});
  }
  return out;
}

Result<std::vector<AccessCheck>> checkPermissions(RestClient& client,
                                                  const std::string& namespaceName,
                                                  const std::vector<Permission>& permissions) {
  std::vector<AccessCheck> out;
  out.reserve(permissions.size());
  for (const auto& p : permissions) {
    nlohmann::json attrs = {{"group", p.group}, {"resource", p.resource}, {"verb", p.verb}};
    if (!p.subresource.empty()) attrs["subresource"] = p.subresource;
    if (!p.clusterScoped) attrs["namespace"] = namespaceName;
    nlohmann::json review = {{"apiVersion", "authorization.k8s.io/v1"},
                             {"kind", "SelfSubjectAccessReview"},
                             {"spec", {{"resourceAttributes", attrs}}}};
    auto r = client.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review);
    if (!r.ok()) return r.takeError();
    const auto status = r->value("status", nlohmann::json::object());
    AccessCheck c;
    c.permission = p;
    c.allowed = status.value("allowed", false) && !status.value("denied", false);
    c.reason = status.value("reason", std::string());
    if (c.reason.empty()) c.reason = status.value("evaluationError", std::string());
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace agentpane::k8s
