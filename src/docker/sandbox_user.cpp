#include "docker/sandbox_user.hpp"

#include <charconv>

namespace agentpane::docker {

std::string SandboxUser::toString() const {
  return std::to_string(uid) + ":" + std::to_string(gid);
}

SandboxUser sandboxUserFor(uid_t owner, gid_t group) {
  // A root-owned project: the sandbox runs as root so that it can write the project without
  // anything on the host changing owner or mode. Of the ways to make such a directory
  // writable, this is the one that touches no user file and needs no engine configuration:
  //   - running as another uid would need the project chown'ed or given ACLs (it changes the
  //     user's files), or a user-namespace remap of the whole engine (userns-remap; Docker has
  //     no per-container id mapping of a bind mount);
  //   - root here holds no capability: CapDrop ALL empties the bounding set, so neither an
  //     execve nor a setuid binary gives any back, and no-new-privileges forbids gaining
  //     privileges on exec. Without CAP_DAC_OVERRIDE, CAP_FOWNER or CAP_CHOWN the permission
  //     bits bind it as they bind any uid (it writes what root, group 0 or everyone may
  //     write), it cannot chown, and it reaches the host only through /workspace (and the
  //     engine's read-only /sys and masked /proc).
  // What remains is that it is uid 0 of the host (no user namespace): a kernel or runtime
  // escape would start from uid 0. That is why root is used only for root-owned projects,
  // where the files it can touch are root's already.
  if (owner == 0) return SandboxUser{0, 0};
  return SandboxUser{static_cast<std::uint32_t>(owner),
                     static_cast<std::uint32_t>(group == 0 ? owner : group)};
}

std::optional<SandboxUser> parseSandboxUser(const std::string& text) {
  auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  auto num = [](const char* b, const char* e) -> std::optional<std::uint32_t> {
    std::uint32_t v = 0;
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p != e) return std::nullopt;
    return v;
  };
  const char* s = text.data();
  auto uid = num(s, s + colon);
  auto gid = num(s + colon + 1, s + text.size());
  if (!uid || !gid) return std::nullopt;
  return SandboxUser{*uid, *gid};
}

std::optional<std::string> homeFor(const SandboxUser& user) {
  if (user.uid == 0 || user.uid == kImageUserUid) return std::nullopt;
  return std::string("/tmp");
}

}  // namespace agentpane::docker
