// The manifests of a Kubernetes sandbox and how a pod's status reads, without a cluster.
#include "k8s/pod_template.hpp"

#include <gtest/gtest.h>

#include "k8s/pod_security.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;

SandboxSpec spec() {
  SandboxSpec s;
  s.id = "sb-1";
  s.projectId = "proj";
  s.agentId = "agent";
  s.projectPath = "/home/u/project";
  s.image = "agentpane/sandbox:latest";
  s.memoryMb = 768;
  s.cpu = 1.5;
  s.env = {{"A", "1"}};
  return s;
}

PodTemplateOptions opts() {
  PodTemplateOptions o;
  o.namespaceName = "ns";
  o.scopeLabels = {{labels::kInstance, "abc"}};
  o.uid = 1001;
  o.gid = 1002;
  return o;
}

TEST(PodTemplate, PodIsRestrictedAndLabelled) {
  json pod = podManifest(spec(), opts());
  EXPECT_EQ(pod["metadata"]["name"], "agentpane-sb-1");
  EXPECT_EQ(pod["metadata"]["namespace"], "ns");
  EXPECT_EQ(pod["metadata"]["labels"][labels::kSandboxId], "sb-1");
  EXPECT_EQ(pod["metadata"]["labels"][labels::kInstance], "abc");
  EXPECT_EQ(pod["metadata"]["labels"][labels::kManaged], "true");
  EXPECT_EQ(pod["metadata"]["annotations"][k8s_annotations::kProjectPath], "/home/u/project");
  const json& ps = pod["spec"];
  EXPECT_EQ(ps["automountServiceAccountToken"], false);
  EXPECT_EQ(ps["securityContext"]["runAsUser"], 1001);
  EXPECT_EQ(ps["securityContext"]["runAsGroup"], 1002);
  EXPECT_EQ(ps["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(ps["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  const json& c = ps["containers"][0];
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
  EXPECT_EQ(c["resources"]["limits"]["memory"], "768Mi");
  EXPECT_EQ(c["resources"]["limits"]["cpu"], "1500m");
  EXPECT_EQ(c["resources"]["requests"]["memory"], "384Mi");
  EXPECT_EQ(c["resources"]["requests"]["cpu"], "750m");
  EXPECT_EQ(ps["volumes"][0]["persistentVolumeClaim"]["claimName"], "agentpane-sb-1-workspace");
  // Another owner than the image's user gets a writable HOME.
  bool home = false;
  for (const auto& e : c["env"])
    home = home || (e["name"] == "HOME" && e["value"] == "/tmp");
  EXPECT_TRUE(home);
}

TEST(PodTemplate, ClaimBindsToItsOwnVolumeAndKeepsThePod) {
  json pod = podManifest(spec(), opts());
  json claim = claimManifest(spec(), opts(), pod);
  EXPECT_EQ(claim["spec"]["storageClassName"], "");
  EXPECT_EQ(claim["spec"]["volumeName"], "agentpane-ns-sb-1");
  EXPECT_EQ(json::parse(
                claim["metadata"]["annotations"][k8s_annotations::kPodTemplate].get<std::string>()),
            pod);
  json pv = volumeManifest(spec(), opts());
  EXPECT_EQ(pv["spec"]["hostPath"]["path"], "/home/u/project");
  EXPECT_EQ(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
  EXPECT_EQ(pv["spec"]["claimRef"]["name"], "agentpane-sb-1-workspace");
  EXPECT_EQ(pv["spec"]["claimRef"]["namespace"], "ns");
  SandboxInfo stopped = infoFromClaim(claim, "kubernetes");
  EXPECT_EQ(stopped.state, SandboxState::Stopped);
  EXPECT_EQ(stopped.id, "sb-1");
  EXPECT_EQ(stopped.image, "agentpane/sandbox:latest");
  EXPECT_EQ(stopped.projectPath, "/home/u/project");
}

// A warm sandbox: no project yet, the warm uid, its slot (a hostPath PV) mounted with
// HostToContainer propagation so that a claim's bind reaches the running pod; still restricted.
TEST(PodTemplate, WarmPodMountsItsSlotWithHostToContainerPropagation) {
  SandboxSpec s = spec();
  s.projectId.clear();
  s.agentId.clear();
  s.projectPath.clear();
  PodTemplateOptions o = opts();
  o.warm = true;
  o.uid = 1000;
  o.gid = 1000;
  o.workspaceSlot = "/var/lib/agentpane/warm-slots/kubernetes/sb-1";
  json pod = podManifest(s, o);
  const json& l = pod["metadata"]["labels"];
  EXPECT_EQ(l[labels::kWarmPool], "true");
  EXPECT_EQ(l[labels::kWarmPoolState], "warm");
  EXPECT_FALSE(l.contains(labels::kProjectId));
  EXPECT_FALSE(l.contains(labels::kAgentId));
  EXPECT_EQ(l[labels::kSandboxId], "sb-1");
  EXPECT_EQ(pod["metadata"]["annotations"][k8s_annotations::kWorkspaceSlot], o.workspaceSlot);
  EXPECT_EQ(pod["spec"]["securityContext"]["runAsUser"], 1000);
  EXPECT_EQ(pod["spec"]["securityContext"]["runAsGroup"], 1000);
  EXPECT_EQ(pod["spec"]["securityContext"]["fsGroup"], 1000);
  const json& mount = pod["spec"]["containers"][0]["volumeMounts"][0];
  EXPECT_EQ(mount["mountPath"], "/workspace");
  EXPECT_EQ(mount["mountPropagation"], "HostToContainer");
  EXPECT_TRUE(pss::checkPod(pod, pss::Level::Restricted).allowed());

  json pv = volumeManifest(s, o);
  EXPECT_EQ(pv["spec"]["hostPath"]["path"], o.workspaceSlot);
  EXPECT_EQ(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
  EXPECT_EQ(pv["metadata"]["labels"][labels::kWarmPool], "true");
  // The claim state lives on the pod only (a claim patches the pod).
  EXPECT_FALSE(pv["metadata"]["labels"].contains(labels::kWarmPoolState));
  json claim = claimManifest(s, o, pod);
  EXPECT_FALSE(claim["metadata"]["labels"].contains(labels::kWarmPoolState));
  EXPECT_EQ(claim["metadata"]["labels"][labels::kWarmPool], "true");

  // hostPath workspaces mount the slot directly.
  o.workspace = WorkspaceKind::HostPath;
  EXPECT_EQ(podManifest(s, o)["spec"]["volumes"][0]["hostPath"]["path"], o.workspaceSlot);
  // emptyDir: no slot, nothing propagated.
  o.workspace = WorkspaceKind::EmptyDir;
  o.workspaceSlot.clear();
  json empty = podManifest(s, o);
  EXPECT_FALSE(empty["spec"]["containers"][0]["volumeMounts"][0].contains("mountPropagation"));
  EXPECT_EQ(empty["metadata"]["labels"][labels::kWarmPoolState], "warm");
}

TEST(PodTemplate, ColdPodHasNoWarmLabelsNorPropagation) {
  json pod = podManifest(spec(), opts());
  EXPECT_FALSE(pod["metadata"]["labels"].contains(labels::kWarmPool));
  EXPECT_FALSE(pod["metadata"]["labels"].contains(labels::kWarmPoolState));
  EXPECT_EQ(pod["metadata"]["labels"][labels::kProjectId], "proj");
  EXPECT_FALSE(pod["metadata"]["annotations"].contains(k8s_annotations::kWorkspaceSlot));
  EXPECT_FALSE(pod["spec"]["containers"][0]["volumeMounts"][0].contains("mountPropagation"));
}

TEST(PodTemplate, StorageClassMeansDynamicProvisioning) {
  auto o = opts();
  o.storageClass = "fast";
  json claim = claimManifest(spec(), o, json::object());
  EXPECT_EQ(claim["spec"]["storageClassName"], "fast");
  EXPECT_FALSE(claim["spec"].contains("volumeName"));
}

TEST(PodTemplate, OwnershipNeedsEveryScopeLabel) {
  json pod = podManifest(spec(), opts());
  EXPECT_TRUE(ownedBy(pod, "sb-1", {{labels::kInstance, "abc"}}));
  EXPECT_FALSE(ownedBy(pod, "sb-2", {{labels::kInstance, "abc"}}));
  EXPECT_FALSE(ownedBy(pod, "sb-1", {{labels::kInstance, "other"}}));
  EXPECT_FALSE(ownedBy(json::object(), "sb-1", {}));
  EXPECT_EQ(scopeSelector({{labels::kInstance, "abc"}}, {{labels::kProjectId, "p"}}),
            "agentpane.io/instance=abc,agentpane.io/project-id=p,agentpane.io/sandbox=true");
}

json withStatus(json status) {
  json pod = podManifest(spec(), opts());
  pod["status"] = std::move(status);
  return pod;
}

TEST(PodTemplate, ProgressAndFailuresFromStatus) {
  auto running = withStatus(
      {{"phase", "Running"},
       {"conditions",
        {{{"type", "PodScheduled"}, {"status", "True"}}, {{"type", "Ready"}, {"status", "True"}}}},
       {"containerStatuses", {{{"name", "sandbox"}, {"state", {{"running", json::object()}}}}}}});
  auto p = podProgress(running);
  EXPECT_TRUE(p.scheduled && p.started && p.ready);
  EXPECT_FALSE(p.failure);
  EXPECT_EQ(infoFromPod(running, "k").state, SandboxState::Running);

  auto pull = withStatus(
      {{"phase", "Pending"},
       {"containerStatuses",
        {{{"name", "sandbox"},
          {"image", "x:1"},
          {"state",
           {{"waiting", {{"reason", "ErrImageNeverPull"}, {"message", "not present"}}}}}}}}});
  ASSERT_TRUE(podProgress(pull).failure);
  EXPECT_EQ(podProgress(pull).failure->code, ErrorCode::K8sImagePullBackoff);
  EXPECT_EQ(infoFromPod(pull, "k").state, SandboxState::Failed);

  auto noRoom = withStatus({{"phase", "Pending"},
                            {"conditions",
                             {{{"type", "PodScheduled"},
                               {"status", "False"},
                               {"reason", "Unschedulable"},
                               {"message", "0/1 nodes are available: 1 Insufficient memory."}}}}});
  ASSERT_TRUE(podProgress(noRoom).failure);
  EXPECT_EQ(podProgress(noRoom).failure->code, ErrorCode::K8sInsufficientResources);

  // Waiting for the claim to bind is not a failure.
  auto unbound = withStatus(
      {{"phase", "Pending"},
       {"conditions",
        {{{"type", "PodScheduled"},
          {"status", "False"},
          {"reason", "Unschedulable"},
          {"message",
           "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}}}});
  EXPECT_FALSE(podProgress(unbound).failure);
  EXPECT_EQ(infoFromPod(unbound, "k").state, SandboxState::Creating);

  auto exited =
      withStatus({{"phase", "Failed"},
                  {"containerStatuses",
                   {{{"name", "sandbox"},
                     {"state", {{"terminated", {{"reason", "Error"}, {"exitCode", 1}}}}}}}}});
  ASSERT_TRUE(podProgress(exited).failure);
  EXPECT_EQ(podProgress(exited).failure->code, ErrorCode::K8sPodNotRunning);
  EXPECT_EQ(infoFromPod(exited, "k").state, SandboxState::Failed);

  auto deleting = running;
  deleting["metadata"]["deletionTimestamp"] = "2026-12-04T10:00:00Z";
  EXPECT_EQ(infoFromPod(deleting, "k").state, SandboxState::Stopped);
}

// AGENTPANE_K8S_CPU_REQUEST_PERCENT: the CPU request is that share of the limit (the limit and
// the memory request do not move).
TEST(PodTemplate, CpuRequestIsItsPercentOfTheLimit) {
  auto o = opts();
  o.cpuRequestPercent = 10;
  const json c = podManifest(spec(), o)["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["limits"]["cpu"], "1500m");
  EXPECT_EQ(c["resources"]["requests"]["cpu"], "150m");
  EXPECT_EQ(c["resources"]["requests"]["memory"], "384Mi");
}

TEST(PodTemplate, Quantities) {
  EXPECT_EQ(memoryQuantity(2048), "2048Mi");
  EXPECT_EQ(cpuQuantity(2.0), "2000m");
  EXPECT_EQ(cpuQuantity(0.0001), "1m");
  EXPECT_EQ(workspaceKindFromString("emptyDir"), WorkspaceKind::EmptyDir);
  EXPECT_FALSE(workspaceKindFromString("nfs"));
}

}  // namespace
}  // namespace agentpane::k8s
