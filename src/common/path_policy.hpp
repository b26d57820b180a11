// Which host paths the API may hand to a sandbox (a project directory bind-mounted into a
// container) or read for a client (a kubeconfig given through the API, which can name a
// command to run). The API is not root on the host: a path is accepted only strictly inside
// one of the server's project roots, after symlinks are resolved, and never when it is (or is
// inside) a system directory, a container engine's socket directory or the server's own
// state, whatever the roots say.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane {

// The rule that refused a path, as details["rule"] of the error.
namespace path_rule {
inline constexpr const char* kNotAbsolute = "not-absolute";
inline constexpr const char* kNotFound = "not-found";
inline constexpr const char* kOutsideRoots = "outside-project-roots";
inline constexpr const char* kSystemDirectory = "system-directory";
inline constexpr const char* kEngineSocketDirectory = "engine-socket-directory";
inline constexpr const char* kServerHome = "server-home";
inline constexpr const char* kServerState = "server-state";
}  // namespace path_rule

class PathPolicy {
 public:
  struct Settings {
    // Project roots as given (--project-root, AGENTPANE_PROJECT_ROOTS). Empty: the serving
    // user's home and the system temp directory.
    std::vector<std::string> roots;
    std::string userHome;    // the serving user's home ($HOME): refused itself
    std::string serverHome;  // AGENTPANE_HOME (token, database): refused with all inside it
    // More directories refused with all inside them (an engine socket's directory taken from
    // DOCKER_HOST, say), on top of the built-in list.
    std::vector<std::string> extraDenied;
  };

  // Roots are resolved once here; a root that does not exist is dropped (see roots()).
  explicit PathPolicy(Settings settings);

  // The built-in defaults for this process: roots from AGENTPANE_PROJECT_ROOTS (colon-separated)
  // when set and `flagRoots` is empty, else `flagRoots`, else $HOME and the temp directory.
  static Settings settingsFromEnvironment(std::vector<std::string> flagRoots,
                                          std::string serverHome);

  // Checks `path` (as the client gave it) and returns it resolved (canonical, symlinks
  // followed). It MUST exist. Failures: `invalid` (SandboxProjectPathInvalid unless given) for
  // a path that is not absolute or does not exist; PathForbidden (403) for a policy refusal.
  // Both carry details {"field": field, "rule": path_rule::..., "path": path}. Callers use the
  // returned path, not the one given, so that what is checked is what is used.
  Result<std::filesystem::path> check(
      std::string_view path, const std::string& field,
      ErrorCode invalid = ErrorCode::SandboxProjectPathInvalid) const;

  // The resolved roots in use, and the ones given that could not be resolved.
  [[nodiscard]] const std::vector<std::filesystem::path>& roots() const { return roots_; }
  [[nodiscard]] const std::vector<std::string>& droppedRoots() const { return dropped_; }

  // The built-in refused directories (system and engine socket directories).
  static const std::vector<std::string>& systemDirectories();
  static const std::vector<std::string>& engineSocketDirectories();

 private:
  std::vector<std::filesystem::path> roots_;
  std::vector<std::string> dropped_;
  std::filesystem::path userHome_;
  std::filesystem::path serverHome_;
  std::vector<std::filesystem::path> extraDenied_;
};

// True when `inner` is `outer` or below it (both canonical).
bool isSameOrInside(const std::filesystem::path& inner, const std::filesystem::path& outer);
// True when `inner` is strictly below `outer` (both canonical).
bool isStrictlyInside(const std::filesystem::path& inner, const std::filesystem::path& outer);

}  // namespace agentpane
