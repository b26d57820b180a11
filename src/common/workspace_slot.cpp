#include "common/workspace_slot.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "agentpane/sandbox.hpp"

namespace agentpane {
namespace fs = std::filesystem;

namespace {

// One mount operation at a time in this process: prepare's check-then-mount and bind's
// check-then-mount must not interleave.
std::mutex& mountMutex() {
  static std::mutex mu;
  return mu;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(oct, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct MountEntry {
  std::string mountPoint;
  bool shared = false;  // an optional field "shared:N"
};

std::vector<MountEntry> mounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string id, parent, devs, root, mountPoint, options, field;
    if (!(ss >> id >> parent >> devs >> root >> mountPoint >> options)) continue;
    MountEntry e;
    e.mountPoint = unescape(mountPoint);
    while (ss >> field && field != "-")
      e.shared = e.shared || field.rfind("shared:", 0) == 0;
    out.push_back(std::move(e));
  }
  return out;
}

// The top mount at `path`, if any mount has it as its mount point (later entries are on top).
std::optional<MountEntry> topMountAt(const fs::path& path) {
  std::optional<MountEntry> top;
  for (auto& e : mounts())
    if (e.mountPoint == path.string()) top = std::move(e);
  return top;
}

// Whether something is mounted on `path`: one statx (the path is then the root of a mount),
// where reading mountinfo took milliseconds with a few dozen pods' mounts on the host, under
// the mount mutex, for every claim. mountinfo when the kernel does not say (before 5.8).
bool mountedOn(const fs::path& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
      (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
    return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
  return topMountAt(path).has_value();
}

Error mountError(const std::string& what, int err) {
  if (err == EPERM || err == EACCES) {
    return Error(ErrorCode::WarmPoolDisabled,
                 what + ": " + std::strerror(err) +
                     "; binding a project into a running sandbox needs the privilege to mount "
                     "(run the server as root)");
  }
  return Error(ErrorCode::Internal, what + ": " + std::strerror(err));
}

Result<void> checkId(const std::string& id) {
  if (!isValidSandboxId(id)) {
    return Error(ErrorCode::ValidationError, "invalid sandbox id '" + id + "' for a workspace slot",
                 {{"id", id}});
  }
  return {};
}

}  // namespace

WorkspaceSlots::WorkspaceSlots(fs::path root) {
  // mountinfo shows real paths: compare with the canonical form of the existing prefix.
  std::error_code ec;
  auto canonical = fs::weakly_canonical(fs::absolute(root, ec), ec);
  root_ = ec ? std::move(root) : std::move(canonical);
}

fs::path WorkspaceSlots::pathOf(const std::string& sandboxId) const {
  return root_ / sandboxId;
}

Result<void> WorkspaceSlots::prepare() {
  std::lock_guard lk(mountMutex());
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Error(ErrorCode::Internal, "cannot make " + root_.string() + ": " + ec.message());
  ::chmod(root_.c_str(), 0755);
  auto top = topMountAt(root_);
  if (top && top->shared) return {};
  if (!top && ::mount(root_.c_str(), root_.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return mountError("bind mount of " + root_.string() + " onto itself", errno);
  }
  if (::mount(nullptr, root_.c_str(), nullptr, MS_SHARED | MS_REC, nullptr) != 0) {
    return mountError("making " + root_.string() + " a shared mount", errno);
  }
  return {};
}

Result<fs::path> WorkspaceSlots::make(const std::string& sandboxId, uid_t uid, gid_t gid) {
  AP_TRY(checkId(sandboxId));
  const fs::path p = pathOf(sandboxId);
  if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error(ErrorCode::Internal,
                 "cannot make slot " + p.string() + ": " + std::strerror(errno));
  }
  if (::chown(p.c_str(), uid, gid) != 0 || ::chmod(p.c_str(), 0755) != 0) {
    return Error(ErrorCode::Internal, "cannot give slot " + p.string() + " to " +
                                          std::to_string(uid) + ":" + std::to_string(gid) + ": " +
                                          std::strerror(errno));
  }
  return p;
}

Result<void> WorkspaceSlots::bind(const std::string& sandboxId, const std::string& projectPath) {
  AP_TRY(checkId(sandboxId));
  std::lock_guard lk(mountMutex());
  const fs::path p = pathOf(sandboxId);
  struct stat slot {
  }, project{};
  if (::stat(p.c_str(), &slot) != 0 || !S_ISDIR(slot.st_mode)) {
    return Error(ErrorCode::SandboxNotFound, "sandbox " + sandboxId + " has no workspace slot",
                 {{"id", sandboxId}});
  }
  if (::stat(projectPath.c_str(), &project) != 0 || !S_ISDIR(project.st_mode)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "project path '" + projectPath + "' is not a directory",
                 {{"projectPath", projectPath}});
  }
  if (mountedOn(p)) {
    // Bound already: the slot's path now names the bound directory.
    if (slot.st_dev == project.st_dev && slot.st_ino == project.st_ino) return {};
    return Error(ErrorCode::Conflict,
                 "the workspace slot of sandbox " + sandboxId + " is bound to another project",
                 {{"id", sandboxId}});
  }
  if (::mount(projectPath.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return mountError("bind mount of " + projectPath + " onto " + p.string(), errno);
  }
  return {};
}

bool WorkspaceSlots::isBound(const std::string& sandboxId) const {
  return isValidSandboxId(sandboxId) && mountedOn(pathOf(sandboxId));
}

Result<void> WorkspaceSlots::release(const std::string& sandboxId) {
  AP_TRY(checkId(sandboxId));
  std::lock_guard lk(mountMutex());
  const fs::path p = pathOf(sandboxId);
  // Detach every mount stacked on the slot (a bind is one; more would be someone else's
  // doing): the project's files are never touched.
  for (int i = 0; i < 16 && mountedOn(p); ++i) {
    if (::umount2(p.c_str(), MNT_DETACH) != 0) {
      return mountError("unmounting the workspace slot " + p.string(), errno);
    }
  }
  if (::rmdir(p.c_str()) != 0 && errno != ENOENT) {
    // rmdir, never a recursive delete: a slot that is not empty is left as it is.
    return Error(ErrorCode::Internal,
                 "workspace slot " + p.string() + " is left in place: " + std::strerror(errno));
  }
  return {};
}

std::vector<std::string> WorkspaceSlots::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory(ec) && isValidSandboxId(name)) out.push_back(name);
  }
  return out;
}

Result<std::vector<std::string>> WorkspaceSlots::sweep(const std::set<std::string>& keep) {
  std::vector<std::string> released;
  for (const auto& id : list()) {
    if (keep.count(id) != 0) continue;
    AP_TRY(release(id));
    released.push_back(id);
  }
  return released;
}

}  // namespace agentpane
