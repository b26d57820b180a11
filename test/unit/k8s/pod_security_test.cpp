// The Pod Security validator (k8s/pod_security.hpp), check by check: each upstream check of
// baseline and restricted (v1.30) on a pod that passes restricted with one thing changed,
// the field it names, upstream's reason and (where the wording matters) its detail.
#include "k8s/pod_security.hpp"

#include <gtest/gtest.h>

#include "k8s/pod_template.hpp"

namespace agentpane::k8s::pss {
namespace {

using nlohmann::json;

// Passes restricted: what the provider's pods look like.
json goodPod() {
  return json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {
      "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                          "seccompProfile": {"type": "RuntimeDefault"}},
      "containers": [{"name": "main", "image": "busybox",
                      "securityContext": {"allowPrivilegeEscalation": false,
                                          "capabilities": {"drop": ["ALL"]}}}],
      "volumes": [{"name": "w", "emptyDir": {}}]
    }
  })");
}

json& c0(json& pod) {
  return pod["spec"]["containers"][0];
}

std::vector<std::string> fields(const Verdict& v) {
  std::vector<std::string> out;
  for (const auto& x : v.violations)
    out.push_back(x.field);
  return out;
}

std::vector<std::string> checks(const Verdict& v) {
  std::vector<std::string> out;
  for (const auto& f : v.failures)
    out.push_back(f.check);
  return out;
}

using Strings = std::vector<std::string>;

TEST(PodSecurity, GoodPodPassesBothLevels) {
  EXPECT_TRUE(checkPod(goodPod(), Level::Baseline).allowed());
  Verdict r = checkPod(goodPod(), Level::Restricted);
  EXPECT_TRUE(r.allowed()) << r.summary();
  EXPECT_TRUE(r.violations.empty());
}

TEST(PodSecurity, ProviderPodPassesRestricted) {
  SandboxSpec s;
  s.id = "sb-1";
  s.projectPath = "/home/u/p";
  s.image = "agentpane/sandbox:latest";
  PodTemplateOptions o;
  o.namespaceName = "ns";
  for (auto w : {WorkspaceKind::Claim, WorkspaceKind::EmptyDir}) {
    o.workspace = w;
    Verdict v = checkPod(podManifest(s, o), Level::Restricted);
    EXPECT_TRUE(v.allowed()) << v.summary();
  }
  o.workspace = WorkspaceKind::HostPath;
  Verdict v = checkPod(podManifest(s, o), Level::Restricted);
  EXPECT_EQ(checks(v), Strings{"restrictedVolumes"});
  EXPECT_EQ(checks(checkPod(podManifest(s, o), Level::Baseline)), Strings{"hostPathVolumes"});
  EXPECT_TRUE(checkPod(podManifest(s, o), Level::Privileged).allowed());
}

TEST(PodSecurity, EmptyPodFailsRestrictedOnlyForUnsetFields) {
  json pod = {{"spec", {{"containers", {{{"name", "c"}, {"image", "x"}}}}}}};
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());
  Verdict v = checkPod(pod, Level::Restricted);
  EXPECT_EQ(checks(v), (Strings{"allowPrivilegeEscalation", "capabilities_restricted",
                                "runAsNonRoot", "seccompProfile_restricted"}));
  EXPECT_EQ(v.summary(),
            "allowPrivilegeEscalation != false (container \"c\" must set "
            "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
            "(container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), "
            "runAsNonRoot != true (pod or container \"c\" must set "
            "securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set "
            "securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")");
  EXPECT_EQ(fields(v), (Strings{"spec.containers[0].securityContext.allowPrivilegeEscalation",
                                "spec.containers[0].securityContext.capabilities.drop",
                                "spec.containers[0].securityContext.runAsNonRoot",
                                "spec.containers[0].securityContext.seccompProfile.type"}));
}

TEST(PodSecurity, HostNamespaces) {
  json pod = goodPod();
  pod["spec"]["hostNetwork"] = true;
  pod["spec"]["hostIPC"] = true;
  pod["spec"]["hostPID"] = false;
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"hostNamespaces"});
  EXPECT_EQ(v.summary(), "host namespaces (hostNetwork=true, hostIPC=true)");
  EXPECT_EQ(fields(v), (Strings{"spec.hostNetwork", "spec.hostIPC"}));
  pod["spec"]["hostNetwork"] = false;
  pod["spec"]["hostIPC"] = nullptr;
  pod["spec"]["hostPID"] = true;
  EXPECT_EQ(fields(checkPod(pod, Level::Restricted)), Strings{"spec.hostPID"});
}

TEST(PodSecurity, Privileged) {
  json pod = goodPod();
  c0(pod)["securityContext"]["privileged"] = true;
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"privileged"});
  EXPECT_EQ(v.failures[0].detail,
            "container \"main\" must not set securityContext.privileged=true");
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.privileged"});
  c0(pod)["securityContext"]["privileged"] = false;
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
}

TEST(PodSecurity, CapabilitiesBaseline) {
  json pod = goodPod();
  c0(pod)["securityContext"]["capabilities"]["add"] = {"CHOWN", "NET_RAW", "SYS_ADMIN"};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"capabilities_baseline"});
  EXPECT_EQ(v.summary(),
            "non-default capabilities (container \"main\" must not include \"NET_RAW\", "
            "\"SYS_ADMIN\" in securityContext.capabilities.add)");
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.capabilities.add"});
  // Every capability of the default set may be added at baseline.
  c0(pod)["securityContext"]["capabilities"]["add"] = {
      "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER",  "FSETID", "KILL",      "MKNOD",
      "NET_BIND_SERVICE", "SETFCAP", "SETGID",       "SETPCAP", "SETUID", "SYS_CHROOT"};
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());
  // At restricted the restricted check replaces it: only NET_BIND_SERVICE.
  Verdict r = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(r), Strings{"capabilities_restricted"});
  EXPECT_NE(r.failures[0].detail.find("\"AUDIT_WRITE\""), std::string::npos);
}

TEST(PodSecurity, CapabilitiesRestricted) {
  json pod = goodPod();
  c0(pod)["securityContext"]["capabilities"] = {{"drop", {"NET_RAW"}},
                                                {"add", {"NET_BIND_SERVICE"}}};
  Verdict v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"capabilities_restricted"});
  EXPECT_EQ(v.failures[0].detail,
            "container \"main\" must set securityContext.capabilities.drop=[\"ALL\"]");
  c0(pod)["securityContext"]["capabilities"] = {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  c0(pod)["securityContext"]["capabilities"]["add"] = {"NET_BIND_SERVICE", "CHOWN"};
  v = checkPod(pod, Level::Restricted);
  EXPECT_EQ(v.failures.at(0).detail,
            "container \"main\" must not include \"CHOWN\" in securityContext.capabilities.add");
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.capabilities.add"});
  // "all" in lower case is not "ALL".
  c0(pod)["securityContext"]["capabilities"] = {{"drop", {"all"}}};
  EXPECT_FALSE(checkPod(pod, Level::Restricted).allowed());
  c0(pod)["securityContext"].erase("capabilities");
  EXPECT_EQ(fields(checkPod(pod, Level::Restricted)),
            Strings{"spec.containers[0].securityContext.capabilities.drop"});
}

TEST(PodSecurity, HostPathVolumesAndRestrictedVolumes) {
  json pod = goodPod();
  pod["spec"]["volumes"].push_back({{"name", "h"}, {"hostPath", {{"path", "/etc"}}}});
  Verdict b = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(b), Strings{"hostPathVolumes"});
  EXPECT_EQ(b.summary(), "hostPath volumes (volume \"h\")");
  EXPECT_EQ(fields(b), Strings{"spec.volumes[1].hostPath"});
  Verdict r = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(r), Strings{"restrictedVolumes"});  // replaces hostPathVolumes
  EXPECT_EQ(r.summary(),
            "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")");
}

TEST(PodSecurity, RestrictedVolumeTypes) {
  json pod = goodPod();
  json& vols = pod["spec"]["volumes"];
  for (const char* ok : {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                         "persistentVolumeClaim", "projected", "secret"})
    vols.push_back({{"name", std::string("ok-") + ok}, {ok, json::object()}});
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  vols.push_back({{"name", "n"}, {"nfs", {{"server", "s"}, {"path", "/"}}}});
  vols.push_back({{"name", "g"}, {"gitRepo", {{"repository", "r"}}}});
  vols.push_back({{"name", "u"}, {"somethingNew", json::object()}});
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());  // baseline only forbids hostPath
  Verdict r = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(r), Strings{"restrictedVolumes"});
  EXPECT_EQ(r.failures[0].detail,
            "volumes \"n\", \"g\", \"u\" use restricted volume types \"gitRepo\", \"nfs\", "
            "\"unknown\"");
  EXPECT_EQ(fields(r),
            (Strings{"spec.volumes[9].nfs", "spec.volumes[10].gitRepo", "spec.volumes[11]"}));
}

TEST(PodSecurity, HostPorts) {
  json pod = goodPod();
  c0(pod)["ports"] = {{{"containerPort", 80}, {"hostPort", 8080}},
                      {{"containerPort", 81}, {"hostPort", 0}},
                      {{"containerPort", 82}, {"hostPort", 8082}}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"hostPorts"});
  EXPECT_EQ(v.summary(), "hostPort (container \"main\" uses hostPorts 8080, 8082)");
  EXPECT_EQ(fields(v), (Strings{"spec.containers[0].ports[0].hostPort",
                                "spec.containers[0].ports[2].hostPort"}));
}

TEST(PodSecurity, AppArmorFieldsAndAnnotations) {
  json pod = goodPod();
  pod["spec"]["securityContext"]["appArmorProfile"] = {{"type", "RuntimeDefault"}};
  c0(pod)["securityContext"]["appArmorProfile"] = {{"type", "Localhost"},
                                                   {"localhostProfile", "p"}};
  pod["metadata"]["annotations"] = {
      {"container.apparmor.security.beta.kubernetes.io/main", "localhost/p"}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());

  pod["spec"]["securityContext"]["appArmorProfile"] = {{"type", "Unconfined"}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"appArmorProfile"});
  EXPECT_EQ(v.summary(),
            "forbidden AppArmor profile (pod must not set AppArmor profile type to "
            "\"Unconfined\")");
  EXPECT_EQ(fields(v), Strings{"spec.securityContext.appArmorProfile.type"});

  pod["spec"]["securityContext"].erase("appArmorProfile");
  c0(pod)["securityContext"]["appArmorProfile"] = {{"type", "Unconfined"}};
  pod["metadata"]["annotations"] = {
      {"container.apparmor.security.beta.kubernetes.io/main", "unconfined"}};
  v = checkPod(pod, Level::Baseline);
  EXPECT_EQ(v.summary(),
            "forbidden AppArmor profiles (container \"main\" and annotation must not set AppArmor "
            "profile type to \"Unconfined\", "
            "\"container.apparmor.security.beta.kubernetes.io/main=\"unconfined\"\")");
  EXPECT_EQ(fields(v),
            (Strings{"spec.containers[0].securityContext.appArmorProfile.type",
                     "metadata.annotations[\"container.apparmor.security.beta.kubernetes.io/"
                     "main\"]"}));
}

// The apiserver copies a container's AppArmor field into its annotation (and back) before
// admission: upstream's wording names both; the violations name what the pod file has.
TEST(PodSecurity, AppArmorVersionSkewAsTheApiserverApplies) {
  json pod = goodPod();
  pod["spec"]["securityContext"]["appArmorProfile"] = {{"type", "Unconfined"}};
  Verdict v = checkPod(pod, Level::Baseline);
  EXPECT_EQ(v.summary(),
            "forbidden AppArmor profiles (pod and annotation must not set AppArmor profile type "
            "to \"Unconfined\", "
            "\"container.apparmor.security.beta.kubernetes.io/main=\"unconfined\"\")");
  EXPECT_EQ(fields(v), Strings{"spec.securityContext.appArmorProfile.type"});
  pod = goodPod();
  pod["metadata"]["annotations"] = {
      {"container.apparmor.security.beta.kubernetes.io/main", "unconfined"}};
  v = checkPod(pod, Level::Baseline);
  EXPECT_EQ(v.summary(),
            "forbidden AppArmor profiles (container \"main\" and annotation must not set AppArmor "
            "profile type to \"Unconfined\", "
            "\"container.apparmor.security.beta.kubernetes.io/main=\"unconfined\"\")");
  EXPECT_EQ(
      fields(v),
      Strings{"metadata.annotations[\"container.apparmor.security.beta.kubernetes.io/main\"]"});
  // Windows pods are left alone.
  pod["spec"]["os"] = {{"name", "windows"}};
  EXPECT_EQ(checkPod(pod, Level::Baseline).failures.at(0).reason, "forbidden AppArmor profile");
}

TEST(PodSecurity, SELinuxOptions) {
  json pod = goodPod();
  pod["spec"]["securityContext"]["seLinuxOptions"] = {{"type", "container_init_t"},
                                                      {"level", "s0:c1"}};
  c0(pod)["securityContext"]["seLinuxOptions"] = {{"type", "container_kvm_t"}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  pod["spec"]["securityContext"]["seLinuxOptions"] = {{"type", "spc_t"}, {"user", "root"}};
  c0(pod)["securityContext"]["seLinuxOptions"] = {{"role", "sysadm_r"}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"seLinuxOptions"});
  EXPECT_EQ(v.summary(),
            "seLinuxOptions (pod and container \"main\" set forbidden "
            "securityContext.seLinuxOptions: type \"spc_t\"; user may not be set; role may not be "
            "set)");
  EXPECT_EQ(fields(v), (Strings{"spec.securityContext.seLinuxOptions.type",
                                "spec.securityContext.seLinuxOptions.user",
                                "spec.containers[0].securityContext.seLinuxOptions.role"}));
}

TEST(PodSecurity, ProcMount) {
  json pod = goodPod();
  c0(pod)["securityContext"]["procMount"] = "Default";
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  c0(pod)["securityContext"]["procMount"] = "Unmasked";
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"procMount"});
  EXPECT_EQ(v.failures[0].detail,
            "container \"main\" must not set securityContext.procMount to \"Unmasked\"");
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.procMount"});
}

TEST(PodSecurity, SeccompBaseline) {
  json pod = {{"spec", {{"containers", {{{"name", "c"}}}}}}};
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());  // unset is fine at baseline
  pod["spec"]["securityContext"]["seccompProfile"] = {{"type", "Unconfined"}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"seccompProfile_baseline"});
  EXPECT_EQ(v.summary(),
            "seccompProfile (pod must not set securityContext.seccompProfile.type to "
            "\"Unconfined\")");
  pod["spec"]["securityContext"]["seccompProfile"] = {{"type", "Localhost"},
                                                      {"localhostProfile", "x.json"}};
  pod["spec"]["containers"][0]["securityContext"]["seccompProfile"] = {{"type", "Unconfined"}};
  v = checkPod(pod, Level::Baseline);
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.seccompProfile.type"});
}

TEST(PodSecurity, SeccompRestrictedPodLevelCoversContainers) {
  json pod = goodPod();
  pod["spec"]["initContainers"] = {
      {{"name", "init"},
       {"securityContext",
        {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}}}}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  // Without the pod's profile every container needs its own.
  pod["spec"]["securityContext"].erase("seccompProfile");
  c0(pod)["securityContext"]["seccompProfile"] = {{"type", "RuntimeDefault"}};
  Verdict v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"seccompProfile_restricted"});
  EXPECT_EQ(v.failures[0].detail,
            "pod or container \"init\" must set securityContext.seccompProfile.type to "
            "\"RuntimeDefault\" or \"Localhost\"");
  EXPECT_EQ(fields(v), Strings{"spec.initContainers[0].securityContext.seccompProfile.type"});
  pod["spec"]["initContainers"][0]["securityContext"]["seccompProfile"] = {
      {"type", "Localhost"}, {"localhostProfile", "p"}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  // A bad pod-level value is reported as such, not as "must set".
  pod["spec"]["securityContext"]["seccompProfile"] = {{"type", "Unconfined"}};
  v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"seccompProfile_restricted"});  // replaces the baseline check
  EXPECT_EQ(v.failures[0].detail,
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"");
}

TEST(PodSecurity, Sysctls) {
  json pod = goodPod();
  pod["spec"]["securityContext"]["sysctls"] = {
      {{"name", "net.ipv4.tcp_keepalive_time"}, {"value", "60"}},
      {{"name", "net.ipv4.ip_local_reserved_ports"}, {"value", "1000"}},
      {{"name", "kernel.shm_rmid_forced"}, {"value", "1"}}};
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  pod["spec"]["securityContext"]["sysctls"].push_back({{"name", "kernel.msgmax"}, {"value", "1"}});
  pod["spec"]["securityContext"]["sysctls"].push_back(
      {{"name", "net.core.somaxconn"}, {"value", "1"}});
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"sysctls"});
  EXPECT_EQ(v.summary(), "forbidden sysctls (kernel.msgmax, net.core.somaxconn)");
  EXPECT_EQ(fields(v), (Strings{"spec.securityContext.sysctls[3].name",
                                "spec.securityContext.sysctls[4].name"}));
}

TEST(PodSecurity, WindowsHostProcessAndWindowsExemptions) {
  json pod = {{"spec",
               {{"os", {{"name", "windows"}}},
                {"securityContext", {{"runAsNonRoot", true}}},
                {"containers", {{{"name", "c"}}}}}}};
  // Windows pods need neither allowPrivilegeEscalation, capabilities nor seccomp.
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed())
      << checkPod(pod, Level::Restricted).summary();
  pod["spec"]["securityContext"]["windowsOptions"] = {{"hostProcess", true}};
  pod["spec"]["containers"][0]["securityContext"]["windowsOptions"] = {{"hostProcess", true}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"windowsHostProcess"});
  EXPECT_EQ(v.summary(),
            "hostProcess (pod and container \"c\" must not set "
            "securityContext.windowsOptions.hostProcess=true)");
}

TEST(PodSecurity, AllowPrivilegeEscalation) {
  json pod = goodPod();
  c0(pod)["securityContext"]["allowPrivilegeEscalation"] = true;
  Verdict v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"allowPrivilegeEscalation"});
  EXPECT_EQ(fields(v), Strings{"spec.containers[0].securityContext.allowPrivilegeEscalation"});
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());
  c0(pod)["securityContext"].erase("allowPrivilegeEscalation");
  v = checkPod(pod, Level::Restricted);
  EXPECT_EQ(v.violations.at(0).message, "must be set to false (unset means true)");
}

TEST(PodSecurity, RunAsNonRoot) {
  json pod = goodPod();
  // The container may leave it unset when the pod sets it.
  c0(pod)["securityContext"]["runAsNonRoot"] = false;
  Verdict v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"runAsNonRoot"});
  EXPECT_EQ(v.failures[0].detail,
            "container \"main\" must not set securityContext.runAsNonRoot=false");
  pod["spec"]["securityContext"]["runAsNonRoot"] = false;
  c0(pod)["securityContext"]["runAsNonRoot"] = true;
  v = checkPod(pod, Level::Restricted);
  EXPECT_EQ(v.failures.at(0).detail, "pod must not set securityContext.runAsNonRoot=false");
  EXPECT_EQ(fields(v), Strings{"spec.securityContext.runAsNonRoot"});
  // Every container setting it is enough without the pod.
  pod["spec"]["securityContext"].erase("runAsNonRoot");
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());
}

TEST(PodSecurity, RunAsUser) {
  json pod = goodPod();
  pod["spec"]["securityContext"]["runAsUser"] = 0;
  c0(pod)["securityContext"]["runAsUser"] = 0;
  Verdict v = checkPod(pod, Level::Restricted);
  ASSERT_EQ(checks(v), Strings{"runAsUser"});
  EXPECT_EQ(v.failures[0].detail, "pod and container \"main\" must not set runAsUser=0");
  EXPECT_EQ(fields(v), (Strings{"spec.securityContext.runAsUser",
                                "spec.containers[0].securityContext.runAsUser"}));
  EXPECT_TRUE(checkPod(pod, Level::Baseline).allowed());
  pod["spec"]["securityContext"]["runAsUser"] = 1;
  c0(pod)["securityContext"].erase("runAsUser");
  EXPECT_TRUE(checkPod(pod, Level::Restricted).allowed());
}

TEST(PodSecurity, InitAndEphemeralContainersAreChecked) {
  json pod = goodPod();
  pod["spec"]["initContainers"] = {{{"name", "i"}, {"securityContext", {{"privileged", true}}}}};
  pod["spec"]["ephemeralContainers"] = {
      {{"name", "e"}, {"securityContext", {{"privileged", true}}}}};
  Verdict v = checkPod(pod, Level::Baseline);
  ASSERT_EQ(checks(v), Strings{"privileged"});
  EXPECT_EQ(v.failures[0].detail,
            "containers \"i\", \"e\" must not set securityContext.privileged=true");
  EXPECT_EQ(fields(v), (Strings{"spec.initContainers[0].securityContext.privileged",
                                "spec.ephemeralContainers[0].securityContext.privileged"}));
}

TEST(PodSecurity, ChecksComeInUpstreamOrder) {
  json pod = goodPod();
  pod["spec"]["hostPID"] = true;
  c0(pod)["securityContext"] = {{"privileged", true}, {"runAsUser", 0}};
  Verdict v = checkPod(pod, Level::Restricted);
  EXPECT_EQ(v.reasons(),
            (Strings{"host namespaces", "privileged", "allowPrivilegeEscalation != false",
                     "unrestricted capabilities", "runAsUser=0"}));
}

TEST(PodSecurity, TemplatesOfWorkloads) {
  json dep = {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", {{"name", "d"}}},
              {"spec", {{"template", goodPod()}}}};
  dep["spec"]["template"]["spec"]["hostNetwork"] = true;
  auto view = podFromObject(dep);
  ASSERT_TRUE(view.ok()) << view.error().describe();
  EXPECT_EQ(fields(checkPod(*view, Level::Baseline)), Strings{"spec.template.spec.hostNetwork"});
  json cron = {{"kind", "CronJob"},
               {"spec", {{"jobTemplate", {{"spec", {{"template", goodPod()}}}}}}}};
  cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostIPC"] = true;
  view = podFromObject(cron);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(fields(checkPod(*view, Level::Baseline)),
            Strings{"spec.jobTemplate.spec.template.spec.hostIPC"});
  EXPECT_FALSE(podFromObject(json{{"kind", "ConfigMap"}}).ok());
  EXPECT_FALSE(podFromObject(json{{"kind", "Deployment"}, {"spec", json::object()}}).ok());
}

TEST(PodSecurity, YamlDocumentsWithKubernetesTyping) {
  auto docs = parseDocuments(R"(
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  hostNetwork: yes
  containers:
  - name: c
    securityContext:
      runAsUser: 0
      privileged: "true"
---
kind: Pod
spec: {containers: [{name: d}]}
)");
  ASSERT_TRUE(docs.ok()) << docs.error().describe();
  ASSERT_EQ(docs->size(), 2u);
  const json& a = (*docs)[0];
  EXPECT_EQ(a["spec"]["hostNetwork"], true);
  EXPECT_EQ(a["spec"]["containers"][0]["securityContext"]["runAsUser"], 0);
  EXPECT_EQ(a["spec"]["containers"][0]["securityContext"]["privileged"], "true");  // quoted
  EXPECT_FALSE(parseDocuments("a: [").ok());
  auto j = parseDocuments(R"([{"kind":"Pod","spec":{}}, {"kind":"Pod","spec":{}}])");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->size(), 2u);
}

TEST(PodSecurity, ViolationErrorListsEveryField) {
  json pod = goodPod();
  pod["spec"]["volumes"][0] = {{"name", "workspace"}, {"hostPath", {{"path", "/p"}}}};
  Verdict v = checkPod(pod, Level::Restricted);
  Error e = violationError(v, "ns", "agentpane-x");
  EXPECT_EQ(e.code, ErrorCode::K8sPodSecurityViolation);
  EXPECT_NE(e.message.find("spec.volumes[0].hostPath"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("\"restricted\" of namespace ns"), std::string::npos);
  EXPECT_EQ(e.details.at("level"), "restricted");
  EXPECT_EQ(e.details.at("reasons"),
            "restricted volume types (volume \"workspace\" uses restricted volume type "
            "\"hostPath\")");
}

TEST(PodSecurity, Levels) {
  EXPECT_EQ(levelFromString("baseline"), Level::Baseline);
  EXPECT_EQ(levelFromString("restricted"), Level::Restricted);
  EXPECT_EQ(levelFromString("privileged"), Level::Privileged);
  EXPECT_FALSE(levelFromString("Restricted"));
  EXPECT_EQ(levelName(Level::Baseline), "baseline");
}

}  // namespace
}  // namespace agentpane::k8s::pss
