// The Docker provider's warm pool (SandboxWarmPool, common/workspace_slot.hpp): a warm
// sandbox is an ordinary sandbox whose /workspace is an empty slot mounted with propagation
// rslave; a claim bind-mounts the project onto the slot on the host, so that it is live in
// the running container at once.
//
// Docker labels cannot change after creation: a claimed sandbox keeps the labels it was made
// with (kWarmPoolState=warm, no project). get/list report kWarmPoolState=allocated while its
// slot is bound (the bound slot is the claim's marker, across restarts too), but its project
// id, agent id and path are in the service's row only: the row is the truth.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "docker/docker_provider.hpp"

namespace agentpane::docker {

namespace {

Error notWarm(const std::string& id) {
  return Error(ErrorCode::ValidationError, "sandbox '" + id + "' is not a warm sandbox",
               {{"id", id}});
}

bool isWarm(const SandboxInfo& info) {
  auto it = info.labels.find(labels::kWarmPool);
  return it != info.labels.end() && it->second == "true";
}

}  // namespace

Result<void> DockerProvider::warmSupported() {
  if (!opts_.warmSlots) {
    return Error(ErrorCode::WarmPoolDisabled,
                 "the Docker provider '" + opts_.instanceName +
                     "' keeps no warm sandboxes: binding a project into a running sandbox "
                     "mounts on the host, which the server does only when it runs as root");
  }
  return opts_.warmSlots->prepare();
}

Result<SandboxInfo> DockerProvider::createWarm(const SandboxSpec& specIn,
                                               const CreateControl& control) {
  AP_TRY(validateSpec(specIn));
  AP_TRY(warmSupported());
  SandboxSpec spec = specIn;
  spec.projectPath.clear();         // none until claimed
  spec.allowedEgressHosts.clear();  // no egress until claimed
  spec.extraLabels[labels::kWarmPool] = "true";
  spec.extraLabels[labels::kWarmPoolState] = "warm";
  const SandboxUser user{spec.warmUid, spec.warmGid};
  auto slot = opts_.warmSlots->make(spec.id, user.uid, user.gid);
  if (!slot.ok()) return slot.takeError();
  auto made = createContainer(spec, control, Workspace{slot->string(), user, true});
  // A create that failed removed what it made; its slot goes too (not when a sandbox of that
  // id exists already: the slot is then that sandbox's).
  if (!made.ok() && made.error().code != ErrorCode::SandboxAlreadyExists) {
    auto released = releaseSlot(spec.id);
    if (!released.ok()) spdlog::warn("sandbox {}: {}", spec.id, released.error().describe());
  }
  return made;
}

Result<SandboxInfo> DockerProvider::claimWarm(const SandboxRef& ref, const WarmClaim& claim) {
  AP_TRY(warmSupported());
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  if (!isWarm(*info)) return notWarm(ref.sandboxId);
  // Everything refusable is refused before anything changes.
  if (!claim.allowedEgressHosts.empty() && !firewall_) {
    return Error(ErrorCode::ValidationError,
                 "this server does not enforce egress allowlists on Docker (it enforces them with "
                 "host iptables rules, which needs it to run as root)",
                 {{"field", "allowEgress"}, {"reason", "EGRESS_ENFORCEMENT_UNAVAILABLE"}});
  }
  const auto user = parseSandboxUser(info->labels[docker_labels::kUidGid]);
  struct stat st {};
  if (claim.projectPath.empty() || claim.projectPath.front() != '/' ||
      ::stat(claim.projectPath.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "project path '" + claim.projectPath + "' is not an existing absolute directory",
                 {{"projectPath", claim.projectPath}});
  }
  if (!user || st.st_uid != user->uid) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "project path '" + claim.projectPath + "' is owned by uid " +
                     std::to_string(st.st_uid) + ", not by the warm sandbox's uid " +
                     (user ? std::to_string(user->uid) : std::string("(unknown)")),
                 {{"projectPath", claim.projectPath}, {"id", ref.sandboxId}});
  }
  {
    // The atomic step: the bound slot is the marker, in this process and after a restart.
    std::lock_guard lock(claimMu_);
    if (opts_.warmSlots->isBound(ref.sandboxId)) {
      return Error(ErrorCode::Conflict, "warm sandbox '" + ref.sandboxId + "' is claimed already",
                   {{"id", ref.sandboxId}});
    }
    AP_TRY(opts_.warmSlots->bind(ref.sandboxId, claim.projectPath));
  }
  // From here on the sandbox is allocated: a failure leaves it so (the caller removes it).
  auto egress = applyEgress(sandboxRef(*info), claim.allowedEgressHosts);
  if (!egress.ok()) return egress.takeError();
  SandboxInfo out = std::move(info).value();
  out.projectId = claim.projectId;
  out.agentId = claim.agentId;
  out.projectPath = claim.projectPath;
  out.labels[labels::kWarmPoolState] = "allocated";
  out.egress = std::move(egress).value();
  return out;
}

Result<void> DockerProvider::releaseSlot(const std::string& sandboxId) {
  if (!opts_.warmSlots) return {};
  return opts_.warmSlots->release(sandboxId);
}

void DockerProvider::sweepSlots(const std::set<std::string>& existing) {
  if (!opts_.warmSlots) return;
  auto swept = opts_.warmSlots->sweep(existing);
  if (!swept.ok()) {
    spdlog::warn("docker {}: sweeping warm slots: {}", opts_.instanceName,
                 swept.error().describe());
    return;
  }
  for (const auto& id : swept.value())
    spdlog::info("docker {}: released the slot of sandbox {} (its container is gone)",
                 opts_.instanceName, id);
}

void DockerProvider::markClaimed(SandboxInfo& info) const {
  if (opts_.warmSlots && isWarm(info) && opts_.warmSlots->isBound(info.id))
    info.labels[labels::kWarmPoolState] = "allocated";
}

}  // namespace agentpane::docker
