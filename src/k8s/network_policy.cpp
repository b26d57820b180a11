#include "k8s/network_policy.hpp"

#include "agentpane/sandbox.hpp"
#include "common/hash.hpp"

namespace agentpane::k8s {

using nlohmann::json;

std::string sandboxPolicyName(const std::string& sandboxId) {
  return "agentpane-" + sandboxId + "-egress";
}

json defaultDenyPolicy(const std::string& namespaceName,
                       const std::map<std::string, std::string>& labels) {
  json meta = {{"name", kDefaultDenyPolicyName}, {"namespace", namespaceName}};
  json lbls = json::object();
  for (const auto& [k, v] : labels)
    lbls[k] = v;
  lbls[labels::kManaged] = "true";
  meta["labels"] = lbls;
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", meta},
          {"spec",
           {{"podSelector", json::object()}, {"policyTypes", json::array({"Ingress", "Egress"})}}}};
}

json dnsEgressRule() {
  json peer = {
      {"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", "kube-system"}}}}},
      {"podSelector", {{"matchLabels", {{"k8s-app", "kube-dns"}}}}}};
  return {{"to", json::array({peer})},
          {"ports", json::array({{{"protocol", "UDP"}, {"port", 53}},
                                 {{"protocol", "TCP"}, {"port", 53}}})}};
}

namespace {
json ruleJson(const egress::Rule& r) {
  json block = {{"cidr", r.network.cidr()}};
  if (!r.except.empty()) {
    json ex = json::array();
    for (const auto& e : r.except)
      ex.push_back(e.cidr());
    block["except"] = ex;
  }
  json rule = {{"to", json::array({{{"ipBlock", block}}})}};
  if (!r.ports.empty()) {
    json ports = json::array();
    for (auto p : r.ports) {
      ports.push_back({{"protocol", "TCP"}, {"port", p}});
      ports.push_back({{"protocol", "UDP"}, {"port", p}});
    }
    rule["ports"] = ports;
  }
  return rule;
}
}  // namespace

json resolutionJson(const egress::Resolved& r) {
  json rules = json::array();
  for (const auto& rule : r.rules) {
    json ex = json::array();
    for (const auto& e : rule.except)
      ex.push_back(e.cidr());
    rules.push_back({{"cidr", rule.network.cidr()},
                     {"except", ex},
                     {"ports", rule.ports},
                     {"source", rule.source}});
  }
  json hosts = json::array();
  for (const auto& h : r.hosts) {
    json addrs = json::array();
    for (const auto& a : h.addresses)
      addrs.push_back(a.address());
    json o = {{"host", h.host}, {"addresses", addrs}};
    if (!h.error.empty()) o["error"] = h.error;
    if (!h.refused.empty()) {
      json refused = json::array();
      for (const auto& a : h.refused)
        refused.push_back(a.address());
      o["refused"] = refused;
    }
    hosts.push_back(o);
  }
  return {{"rules", rules}, {"hosts", hosts}, {"unresolved", r.unresolved()}};
}

json sandboxPolicy(const SandboxPolicyInput& in) {
  json lbls = json::object();
  for (const auto& [k, v] : in.labels)
    lbls[k] = v;
  lbls[labels::kSandbox] = "true";
  lbls[labels::kSandboxId] = in.sandboxId;
  lbls[labels::kManaged] = "true";
  json egressRules = json::array({dnsEgressRule()});
  for (const auto& r : in.resolved.rules)
    egressRules.push_back(ruleJson(r));
  json resolution = resolutionJson(in.resolved);
  resolution.erase("rules");  // the spec says them
  // Ingress listed in policyTypes with no ingress rules: every ingress denied. (The apiserver
  // stores an empty list as no list, so none is sent.)
  json spec = {{"podSelector", {{"matchLabels", {{labels::kSandboxId, in.sandboxId}}}}},
               {"policyTypes", json::array({"Ingress", "Egress"})},
               {"egress", egressRules}};
  json annotations = {{egress_annotations::kAllowlist, json(in.allowlist).dump()},
                      {egress_annotations::kResolution, resolution.dump()}};
  // What the cluster holds is compared by this digest, not field by field (the apiserver
  // adds defaults to what it stores).
  annotations[egress_annotations::kDigest] = sha256Hex(spec.dump() + annotations.dump());
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata",
           {{"name", sandboxPolicyName(in.sandboxId)},
            {"namespace", in.namespaceName},
            {"labels", lbls},
            {"annotations", annotations}}},
          {"spec", spec}};
}

}  // namespace agentpane::k8s
