// The deployment's manifests (k8s/manifests.hpp): RBAC is exactly requiredPermissions(), the
// PersistentVolume verbs appear only with PV workspaces, the server's pod passes PodSecurity
// "restricted" (our validator; test/cluster/incluster/ asks the real apiserver), the YAML reads
// back as the objects, and k8s/manifests/ in the tree is the output with the defaults.
#include "k8s/manifests.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "k8s/network_policy.hpp"
#include "k8s/pod_security.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const json* find(const std::vector<json>& objects, const std::string& kind) {
  for (const auto& o : objects)
    if (o.value("kind", "") == kind) return &o;
  return nullptr;
}

// "<group>|<resource>|<verb>" granted by a Role or ClusterRole's rules.
std::set<std::string> grants(const json& role) {
  std::set<std::string> out;
  for (const auto& rule : role.at("rules"))
    for (const auto& g : rule.at("apiGroups"))
      for (const auto& r : rule.at("resources"))
        for (const auto& v : rule.at("verbs"))
          out.insert(g.get<std::string>() + "|" + r.get<std::string>() + "|" +
                     v.get<std::string>());
  return out;
}

std::set<std::string> wanted(const PermissionOptions& po, bool cluster) {
  std::set<std::string> out;
  for (const auto& p : requiredPermissions(po)) {
    if (p.clusterScoped != cluster) continue;
    out.insert(p.group + "|" + p.resource + (p.subresource.empty() ? "" : "/" + p.subresource) +
               "|" + p.verb);
  }
  return out;
}

TEST(Manifests, RbacGrantsExactlyTheVerbsTheServerUses) {
  for (const auto& [workspace, storageClass] : std::vector<std::pair<std::string, std::string>>{
           {"emptyDir", ""}, {"pvc", ""}, {"pvc", "fast"}}) {
    ManifestOptions o;
    o.workspace = workspace;
    o.storageClass = storageClass;
    const auto objects = manifests(o);
    const json* role = find(objects, "Role");
    const json* clusterRole = find(objects, "ClusterRole");
    ASSERT_TRUE(role && clusterRole);
    const auto po = permissionOptions(o);
    EXPECT_EQ(grants(*role), wanted(po, false)) << workspace << " " << storageClass;
    EXPECT_EQ(grants(*clusterRole), wanted(po, true)) << workspace << " " << storageClass;
    bool pv = false;
    for (const auto& g : grants(*clusterRole))
      pv = pv || g.find("|persistentvolumes|") != std::string::npos;
    EXPECT_EQ(pv, workspace == "pvc" && storageClass.empty()) << workspace << " " << storageClass;
    // The ClusterRole only reads namespaces (and, with PV workspaces, manages volumes).
    for (const auto& g : grants(*clusterRole)) {
      if (g.rfind("|namespaces|", 0) == 0) {
        EXPECT_TRUE(g == "|namespaces|get" || g == "|namespaces|list") << g;
      }
    }
  }
}

TEST(Manifests, BindingsNameTheServiceAccountAndClusterObjectsCarryTheNamespace) {
  ManifestOptions o;
  o.namespaceName = "team-a";
  const auto objects = manifests(o);
  ASSERT_EQ(objects.front().value("kind", ""), "Namespace");
  for (const auto& obj : objects) {
    const std::string kind = obj.value("kind", "");
    const json& m = obj.at("metadata");
    if (kind == "Namespace") {
      EXPECT_EQ(m.at("name"), "team-a");
    } else if (kind == "ClusterRole" || kind == "ClusterRoleBinding") {
      EXPECT_FALSE(m.contains("namespace"));
      EXPECT_EQ(m.at("name"), "agentpane:team-a");
    } else {
      EXPECT_EQ(m.at("namespace"), "team-a") << kind;
    }
    if (kind == "RoleBinding" || kind == "ClusterRoleBinding") {
      EXPECT_EQ(
          obj.at("subjects"),
          json::parse(R"([{"kind":"ServiceAccount","name":"agentpane","namespace":"team-a"}])"));
    }
  }
  const json* sa = find(objects, "ServiceAccount");
  ASSERT_TRUE(sa);
  EXPECT_EQ(sa->at("automountServiceAccountToken"), false);
}

TEST(Manifests, NamespaceIsRestrictedAndIsWhatTheProviderCreates) {
  const json ns = namespaceManifest("x");
  for (const char* mode : {"enforce", "warn", "audit"}) {
    EXPECT_EQ(ns["metadata"]["labels"][std::string("pod-security.kubernetes.io/") + mode],
              "restricted");
  }
  ManifestOptions o;
  o.namespaceName = "x";
  json fromList = manifests(o).front();
  for (const auto& [k, v] : ns["metadata"]["labels"].items())
    EXPECT_EQ(fromList["metadata"]["labels"][k], v) << k;
}

TEST(Manifests, ServerPodPassesRestrictedAndUsesItsServiceAccount) {
  ManifestOptions o;
  o.image = "registry.example/agentpane:1";
  const auto objects = manifests(o);
  const json* d = find(objects, "Deployment");
  ASSERT_TRUE(d);
  auto pod = pss::podFromObject(*d);
  ASSERT_TRUE(pod.ok()) << pod.error().describe();
  auto verdict = pss::checkPod(*pod, pss::Level::Restricted);
  EXPECT_TRUE(verdict.allowed()) << verdict.summary();
  const json& spec = d->at("spec").at("template").at("spec");
  EXPECT_EQ(spec.at("serviceAccountName"), "agentpane");
  EXPECT_EQ(spec.at("automountServiceAccountToken"), true);
  const json& c = spec.at("containers").at(0);
  EXPECT_EQ(c.at("image"), "registry.example/agentpane:1");
  std::map<std::string, std::string> env;
  for (const auto& e : c.at("env"))
    if (e.contains("value")) env[e.at("name")] = e.at("value");
  EXPECT_EQ(env["ENABLE_K8S_SANDBOX"], "true");
  EXPECT_EQ(env["AGENTPANE_K8S_NAMESPACE"], o.namespaceName);
  EXPECT_EQ(env["AGENTPANE_K8S_WORKSPACE"], "emptyDir");
  EXPECT_FALSE(env["AGENTPANE_TOKEN_FILE"].empty());
  bool secret = false;
  for (const auto& v : spec.at("volumes"))
    secret = secret || v.value("secret", json::object()).value("secretName", "") == o.tokenSecret;
  EXPECT_TRUE(secret);
  const json* svc = find(objects, "Service");
  ASSERT_TRUE(svc);
  EXPECT_EQ(svc->at("spec").at("selector"), d->at("spec").at("selector").at("matchLabels"));
}

// The namespace's default deny is the provider's own (network_policy.hpp); the one other policy
// selects the server's pod only and opens its port.
TEST(Manifests, DefaultDenyForTheNamespaceAndAnOpeningForTheServerOnly) {
  ManifestOptions o;
  o.namespaceName = "team-b";
  const auto objects = manifests(o);
  std::vector<const json*> policies;
  for (const auto& obj : objects)
    if (obj.value("kind", "") == "NetworkPolicy") policies.push_back(&obj);
  ASSERT_EQ(policies.size(), 2u);
  json deny = *policies[0];
  EXPECT_EQ(deny["metadata"]["name"], kDefaultDenyPolicyName);
  EXPECT_EQ(deny["spec"], defaultDenyPolicy("team-b")["spec"]);
  const json& server = *policies[1];
  const json* d = find(objects, "Deployment");
  ASSERT_TRUE(d);
  EXPECT_EQ(server["spec"]["podSelector"]["matchLabels"],
            d->at("spec").at("selector").at("matchLabels"));
  EXPECT_EQ(server["spec"]["ingress"][0]["ports"][0]["port"], o.port);
  // Sandbox pods do not carry the server's component label.
  EXPECT_EQ(server["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], "server");
}

// Without the apiserver's endpoints the server's egress is open; with them, it is the cluster
// DNS and exactly those addresses and ports. A host name or an endpoint without a port is
// refused: a policy cannot hold it.
TEST(Manifests, TheServersEgressIsDnsAndTheApiserverWhenItsEndpointsAreGiven) {
  auto serverPolicyOf = [](const ManifestOptions& o) {
    for (const auto& obj : manifests(o))
      if (obj.value("kind", "") == "NetworkPolicy" &&
          obj["metadata"]["name"] == std::string(kServerName))
        return obj;
    return json();
  };
  ManifestOptions open;
  EXPECT_EQ(serverPolicyOf(open)["spec"]["egress"], json::array({json::object()}));
  ManifestOptions closed;
  closed.apiserverEndpoints = {"10.0.0.5:6443", "[fd00::5]:443"};
  ASSERT_TRUE(checkManifestOptions(closed).ok());
  const json egress = serverPolicyOf(closed)["spec"]["egress"];
  ASSERT_EQ(egress.size(), 3u);
  EXPECT_EQ(egress[0], dnsEgressRule());
  EXPECT_EQ(egress[1], json::parse(R"({"to":[{"ipBlock":{"cidr":"10.0.0.5/32"}}],
                                       "ports":[{"protocol":"TCP","port":6443}]})"));
  EXPECT_EQ(egress[2]["to"][0]["ipBlock"]["cidr"], "fd00::5/128");
  for (const char* bad : {"kubernetes.default:443", "10.0.0.5", "10.0.0.5:99999", ""}) {
    ManifestOptions o;
    o.apiserverEndpoints = {bad};
    auto r = checkManifestOptions(o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << bad;
  }
}

TEST(Manifests, YamlReadsBackAsTheObjects) {
  ManifestOptions o;
  o.workspace = "pvc";
  const auto objects = manifests(o);
  const std::string text = toYamlStream(objects, manifestsHeader(o));
  auto back = pss::parseDocuments(text);
  ASSERT_TRUE(back.ok()) << back.error().describe();
  ASSERT_EQ(back->size(), objects.size());
  for (std::size_t i = 0; i < objects.size(); ++i)
    EXPECT_EQ((*back)[i], objects[i]) << i;
}

TEST(Manifests, QuotesStringsYamlWouldReadAsSomethingElse) {
  const json o = {{"a", "true"}, {"b", "50"}, {"c", ""}, {"d", "no"}, {"e", "1.5"}, {"f", "8Gi"}};
  auto back = pss::parseDocuments(toYamlStream({o}, ""));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->at(0), o);
}

TEST(Manifests, CheckedInFilesAreTheGeneratedOutput) {
  const fs::path dir = fs::path(AP_SOURCE_DIR) / "k8s" / "manifests";
  std::set<std::string> onDisk;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") onDisk.insert(e.path().filename().string());
  std::set<std::string> made;
  for (const auto& [name, text] : manifestFiles({})) {
    made.insert(name);
    std::ifstream in(dir / name);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), text) << name
                              << " differs from the generator: build/agentpane manifests "
                                 "--out-dir k8s/manifests";
  }
  EXPECT_EQ(onDisk, made) << "regenerate: build/agentpane manifests --out-dir k8s/manifests";
}

}  // namespace
}  // namespace agentpane::k8s
