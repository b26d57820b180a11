// Who a Docker sandbox runs as: the owner of its project directory (SPEC "Who owns the
// files", README). Pure, so the rule is unit-tested without an engine.
//
//   - owned by uid U != 0, group G: the container and every non-root exec run as U:G, so that
//     the sandbox can write the project and what it writes belongs to U on the host. A group
//     of root (G == 0) becomes U, as on Kubernetes: a non-root sandbox never gets gid 0.
//   - owned by root: the sandbox runs as 0:0, still with every capability dropped and
//     no-new-privileges (see sandboxUserFor in sandbox_user.cpp for why this and not another
//     uid).
//
// The choice is recorded in the container's label docker_labels::kUidGid ("U:G") when it is
// created, so that after a server restart execs (and the kill of a timed-out exec) run as
// the same user without looking at the directory again. A container made before the label
// existed ran as 1000:1000, and still does.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace agentpane::docker {

struct SandboxUser {
  std::uint32_t uid = 1000;
  std::uint32_t gid = 1000;

  [[nodiscard]] bool isRoot() const { return uid == 0; }
  // "U:G", as the engine's User field and the label take it.
  [[nodiscard]] std::string toString() const;
  friend bool operator==(const SandboxUser&, const SandboxUser&) = default;
};

// The uid of the image's own user (scripts/build-sandbox-image.sh): the one with a passwd
// entry and a home directory; also what a sandbox without the label runs as.
inline constexpr std::uint32_t kImageUserUid = 1000;

// The sandbox user for a project directory owned by owner:group.
SandboxUser sandboxUserFor(uid_t owner, gid_t group);

// "U:G" with decimal ids, as toString() writes it; anything else is nullopt.
std::optional<SandboxUser> parseSandboxUser(const std::string& text);

// The HOME to give the container, or nullopt to leave the image's: a uid other than root and
// the image's user has no passwd entry, so the engine would set HOME=/, which it cannot
// write; /tmp (mode 1777) is writable by any uid, as on Kubernetes.
std::optional<std::string> homeFor(const SandboxUser& user);

}  // namespace agentpane::docker
