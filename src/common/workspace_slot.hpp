// Workspace slots: how a running sandbox gets a project it was not created with (the warm
// pool). A running container's mounts are fixed, so a warm sandbox mounts, at /workspace,
// an empty directory of its own under a root that is an rshared mount point, with slave
// propagation (Docker: bind propagation "rslave"; Kubernetes: a hostPath volume over the
// slot with mountPropagation HostToContainer, which PodSecurity "restricted" allows). A
// claim then bind-mounts the project directory onto the slot on the host, and the mount
// propagates into the running sandbox: the live project appears at /workspace without a
// restart. Both providers use this one implementation; the host is the Docker host or the
// node of a local cluster (as for hostPath workspaces).
//
// Safety: nothing here ever deletes inside a slot. Releasing unmounts what is bound (so the
// project is untouched) and removes the slot with rmdir, which fails on a non-empty
// directory rather than deleting anything.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane {

class WorkspaceSlots {
 public:
  explicit WorkspaceSlots(std::filesystem::path root);

  [[nodiscard]] const std::filesystem::path& root() const { return root_; }
  // root/<sandboxId> (no check that it exists).
  [[nodiscard]] std::filesystem::path pathOf(const std::string& sandboxId) const;

  // Makes the root (0755) and makes it an rshared mount point (a bind mount of itself, once),
  // so that mounts made under it later propagate to slave copies in sandboxes. Idempotent and
  // safe to call from several threads and processes. Without the privilege to mount
  // (CAP_SYS_ADMIN in the host's mount namespace): WarmPoolDisabled saying so.
  Result<void> prepare();

  // Makes the empty slot of a sandbox, owned by uid:gid, mode 0755; idempotent. Invalid id
  // (not [a-z0-9-]{1,63}): ValidationError.
  Result<std::filesystem::path> make(const std::string& sandboxId, uid_t uid, gid_t gid);

  // Bind-mounts projectPath (an existing directory) onto the slot, recursively, so that it is
  // live in the sandbox. Idempotent when the same directory is bound already; a different
  // one bound already: Conflict. No slot: SandboxNotFound.
  Result<void> bind(const std::string& sandboxId, const std::string& projectPath);

  // Whether something is mounted on the slot (from /proc/self/mountinfo).
  [[nodiscard]] bool isBound(const std::string& sandboxId) const;

  // Unmounts whatever is bound on the slot (detaching, so a busy sandbox cannot block it) and
  // removes the empty slot directory. Idempotent: a missing slot succeeds.
  Result<void> release(const std::string& sandboxId);

  // The ids of every slot under the root.
  [[nodiscard]] std::vector<std::string> list() const;
  // Releases every slot whose id is not in `keep` (what a crash left); returns their ids.
  Result<std::vector<std::string>> sweep(const std::set<std::string>& keep);

 private:
  std::filesystem::path root_;
};

}  // namespace agentpane
