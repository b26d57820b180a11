#include "k8s/pod_template.hpp"

#include <cmath>

#include "common/time.hpp"

namespace agentpane::k8s {

using nlohmann::json;

std::optional<WorkspaceKind> workspaceKindFromString(const std::string& s) {
  if (s == "pvc" || s.empty()) return WorkspaceKind::Claim;
  if (s == "emptyDir") return WorkspaceKind::EmptyDir;
  if (s == "hostPath") return WorkspaceKind::HostPath;
  return std::nullopt;
}

std::string podName(const std::string& sandboxId) {
  return "agentpane-" + sandboxId;
}
std::string claimName(const std::string& sandboxId) {
  return "agentpane-" + sandboxId + "-workspace";
}
std::string volumeName(const std::string& namespaceName, const std::string& sandboxId) {
  return "agentpane-" + namespaceName + "-" + sandboxId;
}

std::string scopeSelector(const std::map<std::string, std::string>& scopeLabels,
                          const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all = {{labels::kSandbox, "true"}};
  for (const auto& [k, v] : scopeLabels)
    all[k] = v;
  for (const auto& [k, v] : extra)
    all[k] = v;
  std::string out;
  for (const auto& [k, v] : all) {
    if (!out.empty()) out += ',';
    out += k + "=" + v;
  }
  return out;
}

std::string memoryQuantity(std::int64_t mib) {
  return std::to_string(mib) + "Mi";
}

std::string cpuQuantity(double cores) {
  auto milli = static_cast<std::int64_t>(std::llround(cores * 1000.0));
  if (milli < 1) milli = 1;
  return std::to_string(milli) + "m";
}

namespace {

// The host directory behind the workspace: the project's, or a warm sandbox's slot.
const std::string& hostDirectory(const SandboxSpec& spec, const PodTemplateOptions& opts) {
  return opts.workspaceSlot.empty() ? spec.projectPath : opts.workspaceSlot;
}

json workspaceVolume(const SandboxSpec& spec, const PodTemplateOptions& opts) {
  switch (opts.workspace) {
    case WorkspaceKind::EmptyDir:
      return {{"name", "workspace"}, {"emptyDir", json::object()}};
    case WorkspaceKind::HostPath:
      return {{"name", "workspace"},
              {"hostPath", {{"path", hostDirectory(spec, opts)}, {"type", "Directory"}}}};
    case WorkspaceKind::Claim:
      break;
  }
  return {{"name", "workspace"}, {"persistentVolumeClaim", {{"claimName", claimName(spec.id)}}}};
}

// The labels of every object of the sandbox; a warm sandbox's have no project or agent yet,
// and its pod (only: a claim patches the pod) says whether it is still warm.
json objectLabels(const SandboxSpec& spec, const PodTemplateOptions& opts, bool pod) {
  json lbls = sandboxLabels(spec, opts.scopeLabels);
  if (opts.warm) {
    if (spec.projectId.empty()) lbls.erase(labels::kProjectId);
    if (spec.agentId.empty()) lbls.erase(labels::kAgentId);
    lbls[labels::kWarmPool] = "true";
    if (pod) {
      lbls[labels::kWarmPoolState] = "warm";
    } else {
      lbls.erase(labels::kWarmPoolState);
    }
  }
  return lbls;
}

json objectAnnotations(const SandboxSpec& spec, const PodTemplateOptions& opts) {
  json a = {{k8s_annotations::kProjectPath, spec.projectPath}};
  if (!opts.workspaceSlot.empty()) a[k8s_annotations::kWorkspaceSlot] = opts.workspaceSlot;
  return a;
}

}  // namespace

json podManifest(const SandboxSpec& spec, const PodTemplateOptions& opts) {
  json env = json::array();
  for (const auto& [k, v] : spec.env)
    env.push_back({{"name", k}, {"value", v}});
  // The image's own user has uid 1000 and a home; another owner's uid has no passwd entry,
  // so HOME would be "/", which it cannot write.
  if (opts.uid != 1000) env.push_back({{"name", "HOME"}, {"value", "/tmp"}});

  const std::int64_t mib = spec.memoryMb;
  json container = {
      {"name", kSandboxContainer},
      {"image", spec.image},
      {"imagePullPolicy", opts.imagePullPolicy},
      {"command", {"sleep", "infinity"}},
      {"workingDir", kWorkspaceMount},
      {"env", env},
      {"resources",
       {{"limits", {{"memory", memoryQuantity(mib)}, {"cpu", cpuQuantity(spec.cpu)}}},
        {"requests",
         {{"memory", memoryQuantity(std::max<std::int64_t>(1, mib / 2))},
          {"cpu", cpuQuantity(spec.cpu * opts.cpuRequestPercent / 100.0)}}}}},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"capabilities", {{"drop", {"ALL"}}}},
        {"runAsNonRoot", true},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"volumeMounts", {{{"name", "workspace"}, {"mountPath", kWorkspaceMount}}}},
  };
  // Mounts made on the slot later (a claim's bind) reach the container; none go back.
  if (!opts.workspaceSlot.empty())
    container["volumeMounts"][0]["mountPropagation"] = "HostToContainer";
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", podName(spec.id)},
        {"namespace", opts.namespaceName},
        {"labels", objectLabels(spec, opts, true)},
        {"annotations", objectAnnotations(spec, opts)}}},
      {"spec",
       {{"automountServiceAccountToken", false},
        {"enableServiceLinks", false},
        {"shareProcessNamespace", true},
        {"restartPolicy", "Never"},
        {"terminationGracePeriodSeconds", opts.terminationGraceSeconds},
        {"securityContext",
         {{"runAsNonRoot", true},
          {"runAsUser", opts.uid},
          {"runAsGroup", opts.gid},
          {"fsGroup", opts.gid},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
        {"containers", {container}},
        {"volumes", {workspaceVolume(spec, opts)}}}},
  };
}

json claimManifest(const SandboxSpec& spec, const PodTemplateOptions& opts, const json& pod) {
  json claimSpec = {
      {"accessModes", {"ReadWriteOnce"}},
      {"resources", {{"requests", {{"storage", std::to_string(opts.workspaceSizeGi) + "Gi"}}}}},
  };
  if (opts.storageClass.empty()) {
    // Bound to the sandbox's own PV only: "" turns dynamic provisioning off.
    claimSpec["storageClassName"] = "";
    claimSpec["volumeName"] = volumeName(opts.namespaceName, spec.id);
  } else {
    claimSpec["storageClassName"] = opts.storageClass;
  }
  return {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata",
       {{"name", claimName(spec.id)},
        {"namespace", opts.namespaceName},
        {"labels", objectLabels(spec, opts, false)},
        {"annotations",
         [&] {
           json a = objectAnnotations(spec, opts);
           a[k8s_annotations::kPodTemplate] = pod.dump();
           return a;
         }()}}},
      {"spec", claimSpec},
  };
}

json volumeManifest(const SandboxSpec& spec, const PodTemplateOptions& opts) {
  return {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolume"},
      {"metadata",
       {{"name", volumeName(opts.namespaceName, spec.id)},
        {"labels", objectLabels(spec, opts, false)},
        {"annotations", objectAnnotations(spec, opts)}}},
      {"spec",
       {{"capacity", {{"storage", std::to_string(opts.workspaceSizeGi) + "Gi"}}},
        {"accessModes", {"ReadWriteOnce"}},
        // Retain: deleting the claim must never touch the project directory.
        {"persistentVolumeReclaimPolicy", "Retain"},
        {"storageClassName", ""},
        {"claimRef",
         {{"namespace", opts.namespaceName},
          {"name", claimName(spec.id)},
          {"kind", "PersistentVolumeClaim"},
          {"apiVersion", "v1"}}},
        {"hostPath", {{"path", hostDirectory(spec, opts)}, {"type", "Directory"}}}}},
  };
}

namespace {

std::string str(const json& j, const json::json_pointer& p) {
  if (!j.contains(p)) return {};
  const auto& v = j.at(p);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::map<std::string, std::string> labelMap(const json& obj) {
  std::map<std::string, std::string> out;
  auto it = obj.find("metadata");
  if (it == obj.end() || !it->is_object()) return out;
  auto l = it->find("labels");
  if (l == it->end() || !l->is_object()) return out;
  for (const auto& [k, v] : l->items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

SandboxInfo baseInfo(const json& obj, const std::string& instance) {
  SandboxInfo info;
  info.provider = ProviderType::Kubernetes;
  info.instance = instance;
  info.labels = labelMap(obj);
  auto get = [&](const char* k) {
    auto it = info.labels.find(k);
    return it == info.labels.end() ? std::string() : it->second;
  };
  info.id = get(labels::kSandboxId);
  info.projectId = get(labels::kProjectId);
  info.agentId = get(labels::kAgentId);
  info.projectPath =
      str(obj, json::json_pointer("/metadata/annotations/agentpane.io~1project-path"));
  info.podNamespace = str(obj, json::json_pointer("/metadata/namespace"));
  info.podName = podName(info.id);
  auto created = parseRfc3339Unix(str(obj, json::json_pointer("/metadata/creationTimestamp")));
  if (created.ok()) info.createdAtUnix = *created;
  return info;
}

std::string imageOfPod(const json& pod) {
  return str(pod, json::json_pointer("/spec/containers/0/image"));
}

const json* containerStatus(const json& pod) {
  static const json::json_pointer p("/status/containerStatuses");
  if (!pod.contains(p) || !pod.at(p).is_array()) return nullptr;
  for (const auto& c : pod.at(p))
    if (c.value("name", "") == kSandboxContainer) return &c;
  return nullptr;
}

bool conditionTrue(const json& pod, const std::string& type) {
  static const json::json_pointer p("/status/conditions");
  if (!pod.contains(p) || !pod.at(p).is_array()) return false;
  for (const auto& c : pod.at(p))
    if (c.value("type", "") == type) return c.value("status", "") == "True";
  return false;
}

}  // namespace

SandboxInfo infoFromPod(const json& pod, const std::string& instance) {
  SandboxInfo info = baseInfo(pod, instance);
  info.podName = str(pod, json::json_pointer("/metadata/name"));
  info.podUid = str(pod, json::json_pointer("/metadata/uid"));
  info.image = imageOfPod(pod);
  const std::string phase = str(pod, json::json_pointer("/status/phase"));
  const bool deleting = pod.contains(json::json_pointer("/metadata/deletionTimestamp"));
  PodProgress p = podProgress(pod);
  if (deleting) {
    info.state = SandboxState::Stopped;
    info.stateDetail = "terminating";
  } else if (phase == "Running" && p.started) {
    info.state = SandboxState::Running;
    info.stateDetail = p.ready ? "Running" : "Running, not ready";
  } else if (phase == "Pending" || (phase == "Running" && !p.started)) {
    info.state = p.failure ? SandboxState::Failed : SandboxState::Creating;
    info.stateDetail = p.failure ? p.failure->message : "Pending";
  } else if (phase == "Failed") {
    info.state = SandboxState::Failed;
    info.stateDetail = p.failure ? p.failure->message : "Failed";
  } else if (phase == "Succeeded") {
    info.state = SandboxState::Stopped;
    info.stateDetail = "Succeeded";
  } else {
    info.state = SandboxState::Unknown;
    info.stateDetail = phase.empty() ? "no status yet" : phase;
  }
  return info;
}

SandboxInfo infoFromClaim(const json& claim, const std::string& instance) {
  SandboxInfo info = baseInfo(claim, instance);
  info.state = SandboxState::Stopped;
  info.stateDetail = "pod deleted, workspace claim kept";
  auto tmpl = json::parse(
      str(claim, json::json_pointer("/metadata/annotations/agentpane.io~1pod-template")), nullptr,
      false);
  if (!tmpl.is_discarded()) info.image = imageOfPod(tmpl);
  return info;
}

PodProgress podProgress(const json& pod) {
  PodProgress p;
  p.phase = str(pod, json::json_pointer("/status/phase"));
  p.scheduled = conditionTrue(pod, "PodScheduled");
  p.ready = conditionTrue(pod, "Ready");
  if (p.phase == "Failed" || p.phase == "Succeeded") {
    std::string why = str(pod, json::json_pointer("/status/message"));
    if (why.empty()) why = str(pod, json::json_pointer("/status/reason"));
    p.failure = Error(ErrorCode::K8sPodNotRunning,
                      "pod " + str(pod, json::json_pointer("/metadata/name")) + " is " + p.phase +
                          (why.empty() ? "" : ": " + why),
                      {{"phase", p.phase}});
    return p;
  }
  // The scheduler's verdict: "0/1 nodes are available: 1 Insufficient memory."
  if (pod.contains(json::json_pointer("/status/conditions"))) {
    for (const auto& c : pod.at(json::json_pointer("/status/conditions"))) {
      if (c.value("type", "") != "PodScheduled" || c.value("status", "") != "False") continue;
      const std::string msg = c.value("message", "");
      if (c.value("reason", "") == "Unschedulable" &&
          msg.find("Insufficient") != std::string::npos) {
        p.failure = Error(ErrorCode::K8sInsufficientResources,
                          "no node can hold the sandbox: " + msg, {{"reason", "Unschedulable"}});
      }
    }
  }
  if (const json* cs = containerStatus(pod)) {
    const json& state = cs->value("state", json::object());
    if (state.contains("running")) p.started = true;
    if (state.contains("waiting")) {
      const std::string reason = state["waiting"].value("reason", "");
      const std::string msg = state["waiting"].value("message", "");
      if (reason == "ErrImagePull" || reason == "ImagePullBackOff" ||
          reason == "ErrImageNeverPull" || reason == "InvalidImageName") {
        p.failure = Error(ErrorCode::K8sImagePullBackoff,
                          "image " + cs->value("image", std::string()) + " cannot be pulled (" +
                              reason + (msg.empty() ? "" : ": " + msg) + ")",
                          {{"reason", reason}, {"image", cs->value("image", std::string())}});
      } else if (reason == "CreateContainerConfigError" || reason == "CreateContainerError" ||
                 reason == "RunContainerError") {
        p.failure = Error(
            ErrorCode::K8sPodNotRunning,
            "the sandbox container cannot start (" + reason + (msg.empty() ? "" : ": " + msg) + ")",
            {{"reason", reason}});
      }
    }
    if (state.contains("terminated")) {
      const json& t = state["terminated"];
      p.failure = Error(ErrorCode::K8sPodNotRunning,
                        "the sandbox container exited (" + t.value("reason", std::string("?")) +
                            ", exit code " + std::to_string(t.value("exitCode", -1)) + ")",
                        {{"reason", t.value("reason", std::string())}});
    }
  }
  return p;
}

bool ownedBy(const json& object, const std::string& sandboxId,
             const std::map<std::string, std::string>& scopeLabels) {
  auto l = labelMap(object);
  auto is = [&](const std::string& k, const std::string& v) {
    auto it = l.find(k);
    return it != l.end() && it->second == v;
  };
  if (!is(labels::kSandbox, "true") || !is(labels::kSandboxId, sandboxId)) return false;
  for (const auto& [k, v] : scopeLabels)
    if (!is(k, v)) return false;
  return true;
}

}  // namespace agentpane::k8s
