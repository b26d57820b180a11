// The REST client and the watch against the real apiserver of the test cluster
// (scripts/test-cluster), with the least-privilege ServiceAccount kubeconfig
// (AGENTPANE_TEST_SA_KUBECONFIG): list, get, server-side apply (create, then update),
// dry-run (PodSecurity's verdict without storing), delete of a ConfigMap and of a Pod;
// connection reuse on a real TLS apiserver; a watch cut by restarting the apiserver that
// resumes and misses no change; K8S_CLUSTER_UNREACHABLE while it is down, and recovery.
// Every object made here carries the label agentpane-rest-test=<run> and is deleted.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "cluster/cluster_clients.hpp"
#include "k8s/kubeconfig.hpp"
#include "k8s/rest_client.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;

const std::string kNs = "agentpane-sandboxes";

std::string runId() {
  static const std::string id =
      "r" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 100000000) +
      "-" + std::to_string(::getpid());
  return id;
}

json configMap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata",
           {{"name", name}, {"namespace", kNs}, {"labels", {{"agentpane-rest-test", runId()}}}}},
          {"data", {{"k", value}}}};
}

// A pod that PodSecurity "restricted" admits (see test/cluster/run.sh).
json restrictedPod(const std::string& name, bool privileged = false) {
  json sc = {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}};
  if (privileged) sc = {{"privileged", true}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name}, {"namespace", kNs}, {"labels", {{"agentpane-rest-test", runId()}}}}},
          {"spec",
           {{"automountServiceAccountToken", false},
            {"terminationGracePeriodSeconds", 1},
            {"securityContext",
             {{"runAsNonRoot", true},
              {"runAsUser", 1000},
              {"runAsGroup", 1000},
              {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
            {"containers",
             {{{"name", "main"},
               {"image", "agentpane/sandbox:latest"},
               {"imagePullPolicy", "Never"},
               {"command", {"sleep", "3600"}},
               {"securityContext", sc}}}}}}};
}

class RestCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    sa_ = testing::clientFromEnv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(sa_);
  }
  void TearDown() override {
    if (!sa_) return;
    // Whatever a failed test left behind.
    for (const char* res : {"configmaps", "pods"}) {
      ListOptions lo;
      lo.labelSelector = "agentpane-rest-test=" + runId();
      auto l = sa_->list(resourcePath("v1", res, kNs), lo);
      if (!l.ok()) continue;
      DeleteOptions d;
      d.gracePeriodSeconds = 0;
      for (const auto& item : (*l)["items"])
        (void)sa_->remove(resourcePath("v1", res, kNs, item["metadata"]["name"].get<std::string>()),
                          d);
    }
  }
  std::shared_ptr<RestClient> sa_;
};

TEST_F(RestCluster, ConfigMapApplyGetListDryRunDelete) {
  const std::string name = "cm-" + runId();
  const std::string path = resourcePath("v1", "configmaps", kNs, name);

  ApplyOptions dry;
  dry.dryRun = true;
  auto d = sa_->apply(path, configMap(name, "dry"), dry);
  ASSERT_TRUE(d.ok()) << d.error().describe();
  auto absent = sa_->get(path);
  ASSERT_FALSE(absent.ok()) << "a dry run stored the object";
  EXPECT_EQ(absent.error().code, ErrorCode::K8sNotFound);
  EXPECT_EQ(absent.error().details.at("reason"), "NotFound");
  EXPECT_NE(absent.error().message.find(name), std::string::npos) << absent.error().message;

  auto created = sa_->apply(path, configMap(name, "one"));
  ASSERT_TRUE(created.ok()) << created.error().describe();
  EXPECT_EQ((*created)["data"]["k"], "one");
  auto updated = sa_->apply(path, configMap(name, "two"));
  ASSERT_TRUE(updated.ok()) << updated.error().describe();
  EXPECT_EQ((*updated)["data"]["k"], "two");
  EXPECT_NE((*updated)["metadata"]["resourceVersion"], (*created)["metadata"]["resourceVersion"]);
  bool managedByUs = false;
  for (const auto& mf : (*updated)["metadata"]["managedFields"])
    managedByUs |= mf.value("manager", "") == "agentpane" && mf.value("operation", "") == "Apply";
  EXPECT_TRUE(managedByUs);

  auto got = sa_->get(path);
  ASSERT_TRUE(got.ok()) << got.error().describe();
  EXPECT_EQ((*got)["data"]["k"], "two");

  auto again = sa_->create(resourcePath("v1", "configmaps", kNs), configMap(name, "x"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::K8sConflict);
  EXPECT_EQ(again.error().details.at("reason"), "AlreadyExists");

  ListOptions lo;
  lo.labelSelector = "agentpane-rest-test=" + runId();
  lo.fieldSelector = "metadata.name=" + name;
  auto l = sa_->list(resourcePath("v1", "configmaps", kNs), lo);
  ASSERT_TRUE(l.ok()) << l.error().describe();
  ASSERT_EQ((*l)["items"].size(), 1u);
  EXPECT_EQ((*l)["items"][0]["metadata"]["name"], name);

  DeleteOptions del;
  del.propagationPolicy = "Background";
  del.gracePeriodSeconds = 0;
  auto rm = sa_->remove(path, del);
  ASSERT_TRUE(rm.ok()) << rm.error().describe();
  auto gone = sa_->get(path);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::K8sNotFound);
  auto rm2 = sa_->remove(path, del);
  ASSERT_FALSE(rm2.ok());
  EXPECT_EQ(rm2.error().code, ErrorCode::K8sNotFound);
}

TEST_F(RestCluster, PagingOverRealContinueTokens) {
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    names.push_back("page-" + std::to_string(i) + "-" + runId());
    auto r = sa_->create(resourcePath("v1", "configmaps", kNs), configMap(names.back(), "p"));
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }
  ListOptions lo;
  lo.labelSelector = "agentpane-rest-test=" + runId();
  lo.limit = 2;
  auto first = sa_->list(resourcePath("v1", "configmaps", kNs), lo);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  EXPECT_EQ((*first)["items"].size(), 2u);
  EXPECT_FALSE((*first)["metadata"].value("continue", "").empty());
  auto all = sa_->listAll(resourcePath("v1", "configmaps", kNs), lo);
  ASSERT_TRUE(all.ok()) << all.error().describe();
  std::vector<std::string> got;
  for (const auto& item : (*all)["items"])
    got.push_back(item["metadata"]["name"]);
  std::sort(got.begin(), got.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(got, names);
}

TEST_F(RestCluster, PodApplyDryRunPodSecurityAndDelete) {
  const std::string name = "pod-" + runId();
  const std::string path = resourcePath("v1", "pods", kNs, name);

  // PodSecurity admission's verdict, asked without storing anything.
  WriteOptions dry;
  dry.dryRun = true;
  auto refused = sa_->create(resourcePath("v1", "pods", kNs), restrictedPod(name, true), dry);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::K8sPodSecurityViolation) << refused.error().describe();
  EXPECT_NE(refused.error().message.find("violates PodSecurity"), std::string::npos);
  auto admitted = sa_->create(resourcePath("v1", "pods", kNs), restrictedPod(name), dry);
  ASSERT_TRUE(admitted.ok()) << admitted.error().describe();
  EXPECT_FALSE(sa_->get(path).ok()) << "a dry run stored the pod";

  auto created = sa_->apply(path, restrictedPod(name));
  ASSERT_TRUE(created.ok()) << created.error().describe();
  json labelled = restrictedPod(name);
  labelled["metadata"]["labels"]["phase"] = "two";
  auto updated = sa_->apply(path, labelled);
  ASSERT_TRUE(updated.ok()) << updated.error().describe();
  EXPECT_EQ((*updated)["metadata"]["labels"]["phase"], "two");
  EXPECT_EQ((*updated)["metadata"]["uid"], (*created)["metadata"]["uid"]);

  DeleteOptions del;
  del.gracePeriodSeconds = 0;
  del.propagationPolicy = "Background";
  auto rm = sa_->remove(path, del);
  ASSERT_TRUE(rm.ok()) << rm.error().describe();
  auto after = sa_->get(path);
  // Gone, or on its way out (the kubelet may still be stopping it).
  if (after.ok())
    EXPECT_TRUE((*after)["metadata"].contains("deletionTimestamp"));
  else
    EXPECT_EQ(after.error().code, ErrorCode::K8sNotFound);
}

TEST_F(RestCluster, AWarmClientReusesItsConnection) {
  auto before = sa_->get(resourcePath("v1", "namespaces", "", kNs));
  ASSERT_TRUE(before.ok()) << before.error().describe();
  const auto opened = sa_->connectionsOpened();
  for (int i = 0; i < 20; ++i) {
    auto r = sa_->get(resourcePath("v1", "namespaces", "", kNs));
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }
  EXPECT_EQ(sa_->connectionsOpened(), opened);
}

TEST_F(RestCluster, ForbiddenIsK8sForbidden) {
  auto r = sa_->list(resourcePath("v1", "secrets", kNs));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sForbidden);
  EXPECT_EQ(r.error().details.at("code"), "403");
}

}  // namespace
}  // namespace agentpane::k8s
