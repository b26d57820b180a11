// Container JSON (list entries and inspect answers) -> SandboxInfo, and Docker's container
// states -> our SandboxState. Pure, so the mapping is unit-tested on recorded payloads.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "agentpane/sandbox.hpp"

namespace agentpane::docker {

// Docker status word ("running", "exited", ...) and exit code -> our state. An exit by
// 0, SIGTERM (143) or SIGKILL (137, `docker stop` after its grace period) is a stop; any
// other exit, an OOM kill or "dead" is a failure.
SandboxState stateFromDocker(const std::string& status, std::optional<int> exitCode,
                             bool oomKilled);

// The exit code in a list entry's Status text ("Exited (137) 5 seconds ago").
std::optional<int> exitCodeFromStatusText(const std::string& text);

// GET /containers/json entry. Identity comes from our labels.
SandboxInfo sandboxFromListEntry(const nlohmann::json& entry);
// GET /containers/{id}/json answer.
SandboxInfo sandboxFromInspect(const nlohmann::json& inspect);

}  // namespace agentpane::docker
