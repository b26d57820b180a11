// The verbs the server uses (k8s/permissions.hpp) are exactly what the least-privilege RBAC
// of scripts/cluster/rbac.yaml grants the server: Role agentpane and ClusterRole agentpane,
// nothing more and nothing less.
#include "k8s/permissions.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>

namespace agentpane::k8s {
namespace {

using Grants = std::set<std::string>;  // "<resource>[/<sub>] <verb> <scope>"

std::string key(const std::string& group, const std::string& resource, const std::string& verb,
                bool cluster) {
  return (group.empty() ? "" : group + "/") + resource + " " + verb +
         (cluster ? " cluster" : " namespaced");
}

Grants granted(const std::string& kind, const std::string& name) {
  Grants out;
  for (const auto& doc :
       YAML::LoadAllFromFile(std::string(AP_SOURCE_DIR) + "/scripts/cluster/rbac.yaml")) {
    if (!doc.IsMap() || doc["kind"].as<std::string>() != kind ||
        doc["metadata"]["name"].as<std::string>() != name)
      continue;
    for (const auto& rule : doc["rules"]) {
      for (const auto& g : rule["apiGroups"])
        for (const auto& r : rule["resources"])
          for (const auto& v : rule["verbs"])
            out.insert(key(g.as<std::string>(), r.as<std::string>(), v.as<std::string>(),
                           kind == "ClusterRole"));
    }
  }
  return out;
}

TEST(Permissions, RbacYamlGrantsExactlyWhatTheServerUses) {
  Grants want;
  for (const auto& p : requiredPermissions()) {
    const std::string res = p.resource + (p.subresource.empty() ? "" : "/" + p.subresource);
    EXPECT_TRUE(want.insert(key(p.group, res, p.verb, p.clusterScoped)).second)
        << "twice: " << p.describe();
  }
  Grants have = granted("Role", "agentpane");
  for (const auto& g : granted("ClusterRole", "agentpane"))
    have.insert(g);
  EXPECT_EQ(have, want);
}

TEST(Permissions, NamespaceCreateOnlyWhenTheNamespaceIsMissing) {
  auto count = [](const std::vector<Permission>& ps) {
    int n = 0;
    for (const auto& p : ps)
      n += p.resource == "namespaces" && p.verb == "create";
    return n;
  };
  EXPECT_EQ(count(requiredPermissions()), 0);
  EXPECT_EQ(count(requiredPermissions({.namespaceMissing = true})), 1);
}

TEST(Permissions, Describe) {
  EXPECT_EQ((Permission{"pods", "exec", "create", false, "", ""}).describe(), "create pods/exec");
  EXPECT_EQ((Permission{"persistentvolumes", "", "list", true, "", ""}).describe(),
            "list persistentvolumes (cluster-wide)");
  EXPECT_EQ((Permission{"networkpolicies", "", "patch", false, "", "networking.k8s.io"}).describe(),
            "patch networkpolicies.networking.k8s.io");
}

}  // namespace
}  // namespace agentpane::k8s
