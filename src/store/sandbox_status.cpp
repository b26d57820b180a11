// The one mapping between the statuses of table sandboxes and provider states.
#include "store/records.hpp"

namespace agentpane {

namespace st = sandbox_status;

bool isLiveSandboxStatus(std::string_view status) {
  return status != st::kStopped && status != st::kGone && status != st::kRemoved &&
         status != st::kError && status != st::kMigrating && !isPoolStatus(status);
}

bool isPoolStatus(std::string_view status) {
  return status == st::kWarming || status == st::kWarm;
}

SandboxState stateFromStatus(std::string_view status) {
  if (status == st::kCreating || status == st::kWarming || status == st::kClaiming) {
    return SandboxState::Creating;
  }
  if (status == st::kRunning || status == st::kStopping || status == st::kMigrating ||
      status == st::kWarm) {
    return SandboxState::Running;
  }
  if (status == st::kStopped) return SandboxState::Stopped;
  if (status == st::kError) return SandboxState::Failed;
  return SandboxState::Unknown;
}

std::optional<std::string> statusFromState(SandboxState s) {
  switch (s) {
    case SandboxState::Running:
      return std::string(st::kRunning);
    case SandboxState::Stopped:
      return std::string(st::kStopped);
    case SandboxState::Failed:
      return std::string(st::kError);
    case SandboxState::Creating:
    case SandboxState::Unknown:
      break;
  }
  return std::nullopt;
}

}  // namespace agentpane
