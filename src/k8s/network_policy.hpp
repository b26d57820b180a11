// The NetworkPolicies that enforce egress (common/egress.hpp) on Kubernetes, as manifests.
// Pure functions; the provider applies them by server-side apply (k8s_provider.cpp) and
// `agentpane manifests` prints defaultDenyPolicy.
//
// In the sandbox namespace:
//   - agentpane-default-deny: every pod of the namespace, no ingress and no egress. A pod the
//     provider did not make (or one whose own policy is missing) reaches nothing.
//   - agentpane-<id>-egress, one per sandbox, removed with it: its pod only; ingress denied;
//     egress to the cluster DNS (pods k8s-app=kube-dns in the namespace named kube-system,
//     UDP and TCP 53) and to the allowlist's rules (ipBlock, with the always-blocked ranges a
//     wide entry contains as `except`). Policies add up: the pod may reach exactly the union.
// Core NetworkPolicy has no host names: the provider resolves them and re-applies this policy
// when their addresses change (EgressController). The allowlist and the resolution are kept
// on the policy as annotations, so that a restarted server knows what it enforced.
//
// Note for Service names: with kube-proxy, traffic to a ClusterIP is translated to a pod
// address before the policy sees it, so allowlisting a ClusterIP opens nothing; a headless
// Service's name resolves to the pod addresses themselves and works.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "common/egress.hpp"

namespace agentpane::k8s {

inline constexpr const char* kDefaultDenyPolicyName = "agentpane-default-deny";
namespace egress_annotations {
inline constexpr const char* kAllowlist = "agentpane.io/egress-allowlist";    // JSON list
inline constexpr const char* kResolution = "agentpane.io/egress-resolution";  // JSON object
inline constexpr const char* kDigest = "agentpane.io/egress-digest";          // of spec + the above
}  // namespace egress_annotations

std::string sandboxPolicyName(const std::string& sandboxId);

// The namespace-wide default deny (ingress and egress) for `namespaceName`.
nlohmann::json defaultDenyPolicy(const std::string& namespaceName,
                                 const std::map<std::string, std::string>& labels = {});

struct SandboxPolicyInput {
  std::string namespaceName;
  std::string sandboxId;
  std::map<std::string, std::string> labels;  // the sandbox's (ownership, scope)
  std::vector<std::string> allowlist;         // as written (kept as an annotation)
  egress::Resolved resolved;                  // its rules and host resolutions
};

// The policy of one sandbox: its pod (label sandbox-id), ingress denied, egress to DNS and
// the rules.
nlohmann::json sandboxPolicy(const SandboxPolicyInput& in);

// The egress rule that lets a pod use the cluster DNS (kube-dns, UDP and TCP 53).
nlohmann::json dnsEgressRule();

// The resolution as JSON (the annotation, and the API's "egress" object):
// {"rules":[{"cidr","except":[..],"ports":[..],"source"}],
//  "hosts":[{"host","addresses":[..],"error"?,"refused"?:[..]}], "unresolved":[..]}
nlohmann::json resolutionJson(const egress::Resolved& r);

}  // namespace agentpane::k8s
