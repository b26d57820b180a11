#include "k8s/network_policy.hpp"

#include <gtest/gtest.h>

namespace agentpane::k8s {
namespace {

using nlohmann::json;

TEST(NetworkPolicy, DefaultDenyCoversTheNamespace) {
  auto p = defaultDenyPolicy("agentpane-sandboxes");
  EXPECT_EQ(p["apiVersion"], "networking.k8s.io/v1");
  EXPECT_EQ(p["kind"], "NetworkPolicy");
  EXPECT_EQ(p["metadata"]["name"], "agentpane-default-deny");
  EXPECT_EQ(p["metadata"]["namespace"], "agentpane-sandboxes");
  EXPECT_EQ(p["spec"]["podSelector"], json::object());
  EXPECT_EQ(p["spec"]["policyTypes"], json({"Ingress", "Egress"}));
  EXPECT_FALSE(p["spec"].contains("ingress"));
  EXPECT_FALSE(p["spec"].contains("egress"));
}

egress::Resolved resolve(const std::vector<std::string>& list) {
  auto entries = egress::parseAllowlist(list);
  EXPECT_TRUE(entries.ok());
  return egress::resolveAllowlist(
      *entries, [](const std::string& h) -> Result<std::vector<egress::Network>> {
        if (h == "target.ns.svc.cluster.local")
          return std::vector<egress::Network>{*egress::Network::parse("10.244.0.12")};
        return Error(ErrorCode::ValidationError, "NXDOMAIN");
      });
}

TEST(NetworkPolicy, SandboxPolicyDeniesIngressAllowsDnsAndTheAllowlist) {
  SandboxPolicyInput in;
  in.namespaceName = "ns";
  in.sandboxId = "sbx-1";
  in.labels = {{"agentpane.io/instance", "abc"}};
  in.allowlist = {"target.ns.svc.cluster.local:8080", "0.0.0.0/0", "nowhere.example.test"};
  in.resolved = resolve(in.allowlist);
  auto p = sandboxPolicy(in);
  EXPECT_EQ(p["metadata"]["name"], "agentpane-sbx-1-egress");
  EXPECT_EQ(p["metadata"]["labels"]["agentpane.io/sandbox-id"], "sbx-1");
  EXPECT_EQ(p["metadata"]["labels"]["agentpane.io/instance"], "abc");
  EXPECT_EQ(p["spec"]["podSelector"],
            json({{"matchLabels", {{"agentpane.io/sandbox-id", "sbx-1"}}}}));
  EXPECT_EQ(p["spec"]["policyTypes"], json({"Ingress", "Egress"}));
  EXPECT_FALSE(p["spec"].contains("ingress"));  // Ingress in policyTypes, no rule: all denied
  const auto& eg = p["spec"]["egress"];
  ASSERT_EQ(eg.size(), 3u);
  // DNS: kube-dns pods in the namespace named kube-system, UDP and TCP 53.
  EXPECT_EQ(
      eg[0],
      json::parse(
          R"({"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},
      "podSelector":{"matchLabels":{"k8s-app":"kube-dns"}}}],
      "ports":[{"protocol":"UDP","port":53},{"protocol":"TCP","port":53}]})"));
  // 0.0.0.0/0 keeps every private, loopback, link-local range (and so metadata) blocked.
  EXPECT_EQ(eg[1], json::parse(R"({"to":[{"ipBlock":{"cidr":"0.0.0.0/0","except":["0.0.0.0/8",
      "127.0.0.0/8","10.0.0.0/8","172.16.0.0/12","192.168.0.0/16","100.64.0.0/10",
      "169.254.0.0/16"]}}]})"));
  EXPECT_EQ(eg[2], json::parse(R"({"to":[{"ipBlock":{"cidr":"10.244.0.12/32"}}],
      "ports":[{"protocol":"TCP","port":8080},{"protocol":"UDP","port":8080}]})"));
  // What it enforced, and the name that did not resolve, stay on the policy.
  auto ann = p["metadata"]["annotations"];
  EXPECT_EQ(json::parse(ann["agentpane.io/egress-allowlist"].get<std::string>()),
            json(in.allowlist));
  auto res = json::parse(ann["agentpane.io/egress-resolution"].get<std::string>());
  EXPECT_EQ(res["unresolved"], json({"nowhere.example.test"}));
  EXPECT_EQ(res["hosts"][1]["host"], "target.ns.svc.cluster.local");
  EXPECT_EQ(res["hosts"][1]["addresses"], json({"10.244.0.12"}));
}

TEST(NetworkPolicy, NoAllowlistIsDnsOnly) {
  SandboxPolicyInput in;
  in.namespaceName = "ns";
  in.sandboxId = "sbx-2";
  auto p = sandboxPolicy(in);
  ASSERT_EQ(p["spec"]["egress"].size(), 1u);
  EXPECT_EQ(p["spec"]["egress"][0], dnsEgressRule());
  // Equal inputs, equal digest; another allowlist, another digest.
  const std::string digest = p["metadata"]["annotations"]["agentpane.io/egress-digest"];
  EXPECT_EQ(sandboxPolicy(in)["metadata"]["annotations"]["agentpane.io/egress-digest"], digest);
  in.allowlist = {"10.0.0.1"};
  in.resolved = resolve(in.allowlist);
  EXPECT_NE(sandboxPolicy(in)["metadata"]["annotations"]["agentpane.io/egress-digest"], digest);
}

TEST(NetworkPolicy, MetadataOnlyWhenListedLiterally) {
  SandboxPolicyInput in;
  in.namespaceName = "ns";
  in.sandboxId = "sbx-3";
  in.allowlist = {"169.254.0.0/16"};
  in.resolved = resolve(in.allowlist);
  auto p = sandboxPolicy(in);
  EXPECT_EQ(p["spec"]["egress"][1]["to"][0]["ipBlock"],
            json::parse(R"({"cidr":"169.254.0.0/16","except":["169.254.169.254/32"]})"));
  in.allowlist = {"169.254.169.254:80"};
  in.resolved = resolve(in.allowlist);
  p = sandboxPolicy(in);
  EXPECT_EQ(p["spec"]["egress"][1]["to"][0]["ipBlock"],
            json::parse(R"({"cidr":"169.254.169.254/32"})"));
}

}  // namespace
}  // namespace agentpane::k8s
