// `agentpane serve`: state, service, providers and the server, wired together and run until
// SIGTERM/SIGINT.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace agentpane::server {

struct ServeOptions {
  std::string listen = "127.0.0.1:7300";
  std::filesystem::path home;  // empty: AGENTPANE_HOME, else ~/.agentpane
  int networkThreads = 1;
  int workerThreads = 4;
  std::chrono::seconds reconcileEvery{30};
  std::chrono::seconds orphanGrace{60};
  std::chrono::seconds shutdownGrace{10};
  int maxStreams = 0;      // ServerOptions::maxStreams
  int maxExecs = 32;       // ServerOptions::maxBufferedExecs
  int warmPoolLimit = 50;  // ServiceOptions::warmPoolLimit
  // ENABLE_K8S_SANDBOX=true in the environment turns this on as well.
  bool enableK8s = false;
  // Project roots (--project-root); empty: AGENTPANE_PROJECT_ROOTS, else $HOME and the temp
  // directory. See common/path_policy.hpp.
  std::vector<std::string> projectRoots;
  // The built web page (--web-root); empty: AGENTPANE_WEB_ROOT, else web/dist next to the
  // binary's directory (build/agentpane -> web/dist), else `<binary dir>/web`.
  std::filesystem::path webRoot;
};

// The directory the web page is served from (see ServeOptions::webRoot).
std::filesystem::path resolveWebRoot(const std::filesystem::path& webRoot);

// The home directory `serve` uses for `home` (AGENTPANE_HOME, else ~/.agentpane).
std::filesystem::path resolveHome(const std::filesystem::path& home);

// The audit ledger of a server home: <home>/audit (docs/audit.md).
std::filesystem::path ledgerDir(const std::filesystem::path& home);

// Runs the server; returns the process exit code (0 after a clean signal-driven stop).
// Writes `<home>/address` ("http://host:port", the bound port when listening on port 0)
// once it accepts connections, and removes it on a clean stop.
int runServe(const ServeOptions& options);

}  // namespace agentpane::server
