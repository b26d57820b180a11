// The warm pool of the Kubernetes provider (provider.hpp SandboxWarmPool).
//
// A warm sandbox is a sandbox made by createSandbox(warm): its pod runs as the warm uid:gid,
// carries kWarmPool=true and kWarmPoolState=warm and no project labels, may reach nothing
// (the namespace's default deny and its own policy with an empty allowlist), and mounts at
// /workspace its slot (common/workspace_slot.hpp) — a hostPath PV over
// <slots root>/<sandbox id>, bound to its claim — with mountPropagation HostToContainer,
// which PodSecurity "restricted" allows. The host is the cluster's node (a local cluster, as
// for hostPath workspaces).
//
// A claim, in this order:
//   1. GET the pod: it must be ours, running and labelled warm; the project must be a
//      directory owned by the pod's uid (else SandboxProjectPathInvalid, nothing changed).
//   2. The atomic step: a merge patch of the pod's labels (allocated, project, agent) that
//      carries metadata.resourceVersion as the GET saw it. The apiserver refuses it with 409
//      when the pod changed since — another claim patched it first — so exactly one claim
//      wins; the others get Conflict and change nothing.
//   3. Bind the project onto the slot on the host: it is live at /workspace in the pod.
//   4. Apply the sandbox's NetworkPolicy for the claim's allowlist (in force on return).
// A failure after step 2 leaves the pod allocated: the caller removes it.
//
// An emptyDir workspace has no slot: a claim of such a warm sandbox binds nothing and its
// /workspace stays empty, as a cold emptyDir sandbox's is (the project is not mounted there
// either); the claim still labels it, and applies its allowlist.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>

#include "k8s/k8s_provider.hpp"
#include "k8s/object_fields.hpp"

namespace agentpane::k8s {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

long long microsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

Error disabled(const std::string& why) {
  return Error(ErrorCode::WarmPoolDisabled, "no warm pool on this Kubernetes provider: " + why);
}

}  // namespace

Result<void> K8sProvider::warmSupported() {
  if (!opts_.warmSlots) {
    return disabled(
        "binding a project into a running pod needs workspace slots, bind mounts on the "
        "cluster's node, which this server makes only when it runs as root on that node (a "
        "local cluster)");
  }
  AP_TRY(opts_.warmSlots->prepare());
  // emptyDir: a claim binds nothing (the workspace stays empty, as a cold one's).
  if (opts_.workspace == WorkspaceKind::EmptyDir) return {};
  if (opts_.workspace == WorkspaceKind::Claim &&
      (!opts_.persistentVolumes || !opts_.storageClass.empty())) {
    return disabled(
        "the workspace slot of a warm pod is a hostPath PersistentVolume, and this server "
        "makes none (a storage class, or AGENTPANE_K8S_WORKSPACE is not pvc)");
  }
  return {};
}

Result<void> K8sProvider::warmTemplate(const SandboxSpec& spec, PodTemplateOptions& t) {
  if (spec.warmUid == 0) {
    return Error(ErrorCode::ValidationError,
                 "a warm sandbox cannot run as uid 0: PodSecurity 'restricted' refuses root",
                 {{"field", "warmUid"}});
  }
  if (!spec.projectPath.empty()) {
    return Error(ErrorCode::ValidationError, "a warm sandbox has no project yet (a claim binds it)",
                 {{"field", "projectPath"}});
  }
  t.warm = true;
  t.uid = spec.warmUid;
  t.gid = spec.warmGid == 0 ? spec.warmUid : spec.warmGid;
  if (t.workspace == WorkspaceKind::EmptyDir) return {};  // no slot: see the file's head
  if (!opts_.warmSlots) return warmSupported().takeError();
  if (t.workspace == WorkspaceKind::Claim && !t.storageClass.empty()) {
    return disabled("a volume of storage class '" + t.storageClass +
                    "' cannot be a workspace slot (the slot is a hostPath volume on the node)");
  }
  AP_TRY(opts_.warmSlots->prepare());
  t.workspaceSlot = opts_.warmSlots->pathOf(spec.id).string();
  return {};
}

Result<SandboxInfo> K8sProvider::createWarm(const SandboxSpec& spec, const CreateControl& control) {
  auto made = createSandbox(spec, control, true);
  if (!made.ok() && made.error().code == ErrorCode::K8sNotFound) namespaceSeen_ = false;
  return made;
}

Result<SandboxInfo> K8sProvider::claimWarm(const SandboxRef& ref, const WarmClaim& claim) {
  const auto t0 = Clock::now();
  if (!isValidSandboxId(ref.sandboxId)) {
    return Error(ErrorCode::SandboxNotFound, "sandbox '" + ref.sandboxId + "' not found",
                 {{"id", ref.sandboxId}});
  }
  const std::string ns = nsOf(ref);
  const std::string& id = ref.sandboxId;
  // The project, before anything changes: a directory, owned by the uid the pod runs as
  // (files written in the sandbox belong to the project's owner on the host).
  struct stat st {};
  if (::stat(claim.projectPath.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "project path '" + claim.projectPath + "' is not a directory",
                 {{"projectPath", claim.projectPath}});
  }
  // The pod as this process saw it Ready, if it made it: no read before the patch.
  std::optional<WarmSeen> seen;
  {
    std::lock_guard lock(warmMu_);
    if (auto it = warmSeen_.find(id); it != warmSeen_.end()) seen = it->second;
  }
  json pod;
  bool fresh = !seen;
  if (seen) {
    pod = seen->pod;
  } else {
    auto got = ownPod(ns, id);
    if (!got.ok()) return got.takeError();
    pod = std::move(got).value();
  }
  auto refusal = [&](const json& p) -> std::optional<Error> {
    if (labelOf(p, labels::kWarmPool) != "true") {
      return Error(ErrorCode::ValidationError, "sandbox '" + id + "' is not a warm sandbox",
                   {{"id", id}});
    }
    if (labelOf(p, labels::kWarmPoolState) != "warm") {
      return Error(ErrorCode::Conflict, "warm sandbox '" + id + "' is claimed already",
                   {{"id", id}, {"state", labelOf(p, labels::kWarmPoolState)}});
    }
    const SandboxInfo before = infoFromPod(p, instance());
    if (before.state != SandboxState::Running) {
      return Error(ErrorCode::SandboxNotRunning,
                   "warm sandbox '" + id + "' is not running (" + before.stateDetail + ")",
                   {{"id", id}});
    }
    if (annotationOf(p, k8s_annotations::kWorkspaceSlot).empty()) return std::nullopt;
    const json::json_pointer uidAt("/spec/securityContext/runAsUser");
    const auto podUid = p.contains(uidAt) && p.at(uidAt).is_number_integer()
                            ? p.at(uidAt).get<std::int64_t>()
                            : std::int64_t{0};
    if (podUid <= 0 || static_cast<std::int64_t>(st.st_uid) != podUid) {
      return Error(ErrorCode::SandboxProjectPathInvalid,
                   "project directory '" + claim.projectPath + "' is owned by uid " +
                       std::to_string(st.st_uid) + ", and warm sandbox '" + id + "' runs as uid " +
                       std::to_string(podUid) + ": only a project of that owner can claim it",
                   {{"projectPath", claim.projectPath},
                    {"owner", std::to_string(st.st_uid)},
                    {"warmUid", std::to_string(podUid)}});
    }
    if (!opts_.warmSlots) return warmSupported().takeError();
    return std::nullopt;
  };

  // The atomic step: the pod as it was read (or seen Ready), or 409.
  const auto tRead = Clock::now();
  json labelPatch = {{labels::kWarmPoolState, "allocated"},
                     {labels::kProjectId, claim.projectId},
                     {labels::kAgentId, claim.agentId}};
  Result<json> patched = Error(ErrorCode::Internal, "not patched");
  for (;;) {
    if (auto e = refusal(pod)) return *e;
    json patch = {
        {"metadata",
         {{"resourceVersion", stringAt(pod, json::json_pointer("/metadata/resourceVersion"))},
          {"labels", labelPatch},
          {"annotations", {{k8s_annotations::kProjectPath, claim.projectPath}}}}}};
    patched = client_->patch(podPath(ns, podName(id)), patch, PatchType::Merge);
    if (patched.ok() || fresh || patched.error().code != ErrorCode::K8sConflict) break;
    // The pod changed since it was seen Ready (a status update, or another claim): read it.
    auto got = ownPod(ns, id);
    if (!got.ok()) return got.takeError();
    pod = std::move(got).value();
    fresh = true;
  }
  if (!patched.ok()) {
    if (patched.error().code == ErrorCode::K8sConflict) {
      return Error(ErrorCode::Conflict,
                   "warm sandbox '" + id + "' was claimed (or changed) by someone else first",
                   {{"id", id}});
    }
    if (patched.error().code == ErrorCode::K8sNotFound) {
      return Error(ErrorCode::SandboxNotFound, "sandbox '" + id + "' not found", {{"id", id}});
    }
    return patched.takeError();
  }
  {
    std::lock_guard lock(warmMu_);
    warmSeen_.erase(id);  // claimed: never warm again
  }
  const auto t1 = Clock::now();

  const std::string slot = annotationOf(pod, k8s_annotations::kWorkspaceSlot);
  if (!slot.empty()) AP_TRY(opts_.warmSlots->bind(id, claim.projectPath));
  const auto t2 = Clock::now();

  SandboxInfo info = infoFromPod(*patched, instance());
  const SandboxRef running = sandboxRef(info);
  auto parsed = egress::parseAllowlist(claim.allowedEgressHosts);
  if (!parsed.ok()) return parsed.takeError();
  auto eg = applySandboxPolicy(ns, id, claim.allowedEgressHosts,
                               egress::hasHostNames(*parsed) ? &running : nullptr,
                               seen ? &seen->policyDigest : nullptr);
  if (!eg.ok()) return eg.takeError();
  info.egress = std::move(eg).value();
  const auto t3 = Clock::now();
  spdlog::debug(
      "k8s: warm sandbox {} claimed for project {} in {} us (read and checks {} us, label patch "
      "{} us{}, bind {} us, network policy {} us{})",
      id, claim.projectId, microsBetween(t0, t3), microsBetween(t0, tRead),
      microsBetween(tRead, t1), seen && fresh ? ", read again" : "", microsBetween(t1, t2),
      microsBetween(t2, t3), info.egress && info.egress->changed ? ", applied" : "");
  info.projectPath = claim.projectPath;
  info.projectId = claim.projectId;
  info.agentId = claim.agentId;
  return info;
}

Result<void> K8sProvider::keepClaimedProject(const std::string& ns, const json& pod) {
  if (labelOf(pod, labels::kWarmPool) != "true" || labelOf(pod, labels::kWarmPoolState) == "warm")
    return {};
  const std::string id = labelOf(pod, labels::kSandboxId);
  auto claim = ownClaim(ns, id);
  if (!claim.ok()) {
    if (claim.error().code == ErrorCode::SandboxNotFound) return {};
    return claim.takeError();
  }
  const std::string projectPath = annotationOf(pod, k8s_annotations::kProjectPath);
  json claimLabels = {{labels::kWarmPoolState, "allocated"},
                      {labels::kProjectId, labelOf(pod, labels::kProjectId)},
                      {labels::kAgentId, labelOf(pod, labels::kAgentId)}};
  json annotations = {{k8s_annotations::kProjectPath, projectPath}};
  auto tmpl = json::parse(annotationOf(*claim, k8s_annotations::kPodTemplate), nullptr, false);
  if (tmpl.is_object()) {
    for (const auto& [k, v] : claimLabels.items())
      tmpl["metadata"]["labels"][k] = v;
    tmpl["metadata"]["annotations"][k8s_annotations::kProjectPath] = projectPath;
    annotations[k8s_annotations::kPodTemplate] = tmpl.dump();
  }
  json patch = {{"metadata", {{"labels", claimLabels}, {"annotations", annotations}}}};
  auto patched = client_->patch(claimPath(ns, claimName(id)), patch, PatchType::Merge);
  if (!patched.ok() && patched.error().code != ErrorCode::K8sNotFound) return patched.takeError();
  return {};
}

Result<void> K8sProvider::rebindSlot(const json& tmpl) {
  const std::string slot = annotationOf(tmpl, k8s_annotations::kWorkspaceSlot);
  const std::string projectPath = annotationOf(tmpl, k8s_annotations::kProjectPath);
  if (slot.empty() || projectPath.empty()) return {};
  if (!opts_.warmSlots) return warmSupported().takeError();
  const std::string id = labelOf(tmpl, labels::kSandboxId);
  const json::json_pointer uidAt("/spec/securityContext/runAsUser");
  const json::json_pointer gidAt("/spec/securityContext/runAsGroup");
  const auto idAt = [&](const json::json_pointer& at, std::int64_t fallback) {
    return tmpl.contains(at) && tmpl.at(at).is_number_integer() ? tmpl.at(at).get<std::int64_t>()
                                                                : fallback;
  };
  const std::int64_t uid = idAt(uidAt, 0);
  const std::int64_t gid = idAt(gidAt, uid);
  if (uid <= 0 || gid < 0) {
    return Error(ErrorCode::SandboxNotRunning,
                 "the pod template of warm sandbox '" + id + "' has no non-root uid to start as",
                 {{"id", id}});
  }
  AP_TRY(opts_.warmSlots->prepare());
  AP_TRY(opts_.warmSlots->make(id, static_cast<uid_t>(uid), static_cast<gid_t>(gid)));
  return opts_.warmSlots->bind(id, projectPath);
}

Result<void> K8sProvider::releaseSlot(const std::string& sandboxId) {
  if (!opts_.warmSlots) return {};
  return opts_.warmSlots->release(sandboxId);
}

void K8sProvider::sweepSlots() {
  if (!opts_.warmSlots) return;
  // Held while listing and sweeping: a warm create registers its slot (SlotInFlight) before
  // making it, so one that started earlier is either listed now or still in flight.
  std::lock_guard lock(warmMu_);
  if (!warmCreating_.empty()) return;  // the next cleanup sweeps
  ListOptions lo;
  lo.labelSelector = scopeSelector(opts_.scopeLabels);
  const std::string& ns = opts_.namespaceName;
  std::set<std::string> present;
  std::vector<std::string> collections = {podPath(ns), claimPath(ns)};
  if (opts_.persistentVolumes) collections.push_back(volumePath());
  for (const auto& c : collections) {
    auto items = client_->listAll(c, lo);
    if (!items.ok()) {
      spdlog::warn("k8s: workspace slots not swept: {}", items.error().describe());
      return;
    }
    // Even objects being deleted: the remove that deletes them releases their slot.
    for (const auto& o : items->value("items", json::array()))
      present.insert(labelOf(o, labels::kSandboxId));
  }
  auto swept = opts_.warmSlots->sweep(present);
  if (!swept.ok()) {
    spdlog::warn("k8s: sweeping workspace slots: {}", swept.error().describe());
  } else if (!swept->empty()) {
    spdlog::info("k8s: released {} workspace slot(s) whose sandbox is gone", swept->size());
  }
}

}  // namespace agentpane::k8s
