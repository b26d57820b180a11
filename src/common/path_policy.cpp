#include "common/path_policy.hpp"

#include <algorithm>
#include <cstdlib>
#include <system_error>

namespace agentpane {

namespace fs = std::filesystem;

namespace {

// Directories that hold nothing a sandbox may see, refused with everything inside them.
const std::vector<std::string> kSystem = {
    "/etc",       "/usr",       "/bin",      "/sbin",        "/lib",  "/lib32",     "/lib64",
    "/libx32",    "/boot",      "/dev",      "/proc",        "/sys",  "/var/lib",   "/var/log",
    "/var/spool", "/var/cache", "/var/mail", "/var/backups", "/snap", "/lost+found"};
// Refused themselves only: their children are where projects usually live.
const std::vector<std::string> kSystemExact = {"/",    "/home", "/var", "/tmp",   "/var/tmp",
                                               "/opt", "/srv",  "/mnt", "/media", "/root"};
// Where container engines keep their API sockets (Docker, containerd, Podman, CRI-O,
// rootless engines under /run/user) and state: mounting one gives the sandbox the host.
const std::vector<std::string> kEngine = {"/run", "/var/run", "/var/lib/docker",
                                          "/var/lib/containerd", "/var/lib/kubelet"};

fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::path(p), ec);
  return ec ? fs::path(p).lexically_normal() : c;
}

Error refuse(ErrorCode code, const std::string& field, std::string_view path, const char* rule,
             const std::string& message) {
  return {code, message, {{"field", field}, {"rule", rule}, {"path", std::string(path)}}};
}

std::vector<std::string> splitColons(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= s.size()) {
    auto colon = s.find(':', from);
    std::string part = s.substr(from, colon == std::string::npos ? colon : colon - from);
    if (!part.empty()) out.push_back(part);
    if (colon == std::string::npos) break;
    from = colon + 1;
  }
  return out;
}

}  // namespace

bool isSameOrInside(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool isStrictlyInside(const fs::path& inner, const fs::path& outer) {
  return isSameOrInside(inner, outer) &&
         std::distance(inner.begin(), inner.end()) > std::distance(outer.begin(), outer.end());
}

const std::vector<std::string>& PathPolicy::systemDirectories() {
  return kSystem;
}
const std::vector<std::string>& PathPolicy::engineSocketDirectories() {
  return kEngine;
}

PathPolicy::PathPolicy(Settings settings) {
  for (const auto& r : settings.roots) {
    std::error_code ec;
    fs::path c = fs::canonical(fs::path(r), ec);
    if (ec || !fs::path(r).is_absolute() || !fs::is_directory(c, ec)) {
      dropped_.push_back(r);
      continue;
    }
    if (std::find(roots_.begin(), roots_.end(), c) == roots_.end()) roots_.push_back(c);
  }
  if (!settings.userHome.empty()) userHome_ = resolved(settings.userHome);
  if (!settings.serverHome.empty()) serverHome_ = resolved(settings.serverHome);
  for (const auto& d : settings.extraDenied)
    extraDenied_.push_back(resolved(d));
}

PathPolicy::Settings PathPolicy::settingsFromEnvironment(std::vector<std::string> flagRoots,
                                                         std::string serverHome) {
  Settings s;
  const char* home = std::getenv("HOME");
  s.userHome = home != nullptr ? home : "";
  s.serverHome = std::move(serverHome);
  if (!flagRoots.empty()) {
    s.roots = std::move(flagRoots);
  } else if (const char* env = std::getenv("AGENTPANE_PROJECT_ROOTS"); env && *env) {
    s.roots = splitColons(env);
  } else {
    if (!s.userHome.empty()) s.roots.push_back(s.userHome);
    std::error_code ec;
    auto tmp = fs::temp_directory_path(ec);
    if (!ec) s.roots.push_back(tmp.string());
  }
  return s;
}

Result<fs::path> PathPolicy::check(std::string_view path, const std::string& field,
                                   ErrorCode invalid) const {
  fs::path p{std::string(path)};
  // A NUL would cut the path short in every system call: what is checked must be all of it.
  if (path.empty() || !p.is_absolute() || path.find('\0') != std::string_view::npos) {
    return refuse(invalid, field, path, path_rule::kNotAbsolute,
                  field + " must be an absolute path");
  }
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec) {
    return refuse(invalid, field, path, path_rule::kNotFound,
                  field + " " + std::string(path) + ": " + ec.message());
  }
  const std::string shown = c == p ? c.string() : std::string(path) + " (" + c.string() + ")";
  if (!serverHome_.empty() && isSameOrInside(c, serverHome_)) {
    return refuse(
        ErrorCode::PathForbidden, field, path, path_rule::kServerState,
        field + " " + shown + " is in the server's state directory " + serverHome_.string());
  }
  if (!userHome_.empty() && c == userHome_) {
    return refuse(
        ErrorCode::PathForbidden, field, path, path_rule::kServerHome,
        field + " " + shown + " is the server's home directory; use a directory inside it");
  }
  for (const auto& d : kEngine) {
    if (isSameOrInside(c, d)) {
      return refuse(
          ErrorCode::PathForbidden, field, path, path_rule::kEngineSocketDirectory,
          field + " " + shown + " is in " + d + ", where container engines keep their sockets");
    }
  }
  for (const auto& d : extraDenied_) {
    if (isSameOrInside(c, d)) {
      return refuse(ErrorCode::PathForbidden, field, path, path_rule::kEngineSocketDirectory,
                    field + " " + shown + " is in " + d.string() +
                        ", the container engine's socket directory");
    }
  }
  for (const auto& d : kSystem) {
    if (isSameOrInside(c, d)) {
      return refuse(ErrorCode::PathForbidden, field, path, path_rule::kSystemDirectory,
                    field + " " + shown + " is in the system directory " + d);
    }
  }
  for (const auto& d : kSystemExact) {
    if (c == fs::path(d)) {
      return refuse(ErrorCode::PathForbidden, field, path, path_rule::kSystemDirectory,
                    field + " " + shown + " is a system directory");
    }
  }
  for (const auto& root : roots_) {
    if (isStrictlyInside(c, root)) return c;
  }
  std::string list;
  for (const auto& root : roots_)
    list += (list.empty() ? "" : ", ") + root.string();
  return refuse(ErrorCode::PathForbidden, field, path, path_rule::kOutsideRoots,
                field + " " + shown + " is not inside a project root (" +
                    (list.empty() ? "none configured" : list) +
                    "); start the server with --project-root DIR or AGENTPANE_PROJECT_ROOTS");
}

}  // namespace agentpane
