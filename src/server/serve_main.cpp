#include "server/serve_main.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>

#include "common/hash.hpp"
#include "docker/docker_provider.hpp"
#include "server/auth.hpp"
#include "server/server.hpp"
#include "service/sandbox_service.hpp"
#include "store/store.hpp"

namespace agentpane::server {

namespace fs = std::filesystem;

namespace {
constexpr const char* kInstanceLabel = "agentpane.io/instance";
}  // namespace

namespace {

bool envTrue(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "TRUE" || s == "yes";
}

// What a client on this machine should dial: wildcard listen addresses become loopback.
std::string clientUrl(const std::string& listen, std::uint16_t port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return "http://" + host + ":" + std::to_string(port);
}

bool writeAddressFile(const fs::path& home, const std::string& url) {
  const fs::path tmp = home / "address.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << url << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  fs::rename(tmp, home / "address", ec);  // atomic: readers never see half a line
  return !ec;
}

}  // namespace

fs::path resolveHome(const fs::path& home) {
  if (!home.empty()) return home;
  if (const char* h = std::getenv("AGENTPANE_HOME"); h != nullptr && *h != '\0') return h;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return fs::path(h) / ".agentpane";
  return fs::path(".agentpane");
}

int runServe(const ServeOptions& options) {
  const fs::path home = resolveHome(options.home);
  // The home directory (0700) and token come first: the database lives in the same place.
  auto token = loadOrCreateToken(home);
  if (!token.ok()) {
    spdlog::error("cannot prepare {}: {}", home.string(), token.error().describe());
    return 1;
  }

  auto store = Store::open(home);
  if (!store.ok()) {
    spdlog::error("cannot open the state database in {}: {}", home.string(),
                  store.error().describe());
    return 1;
  }

  ServiceOptions so;
  so.enableK8s = options.enableK8s || envTrue("ENABLE_K8S_SANDBOX");
  so.reconcileEvery = options.reconcileEvery;
  so.orphanGrace = options.orphanGrace;
  SandboxService service(*store.value(), so);

  // Sandboxes carry the instance label of this server's home: several servers (or test runs)
  // on one engine then never adopt, or reap as orphans, each other's sandboxes. It is
  // derived from the home path, so it survives restarts and a lost database.
  docker::DockerProviderOptions dockerOptions;
  std::error_code canonEc;
  auto canonicalHome = fs::weakly_canonical(home, canonEc);
  dockerOptions.scopeLabels = {
      {kInstanceLabel, sha256Hex((canonEc ? home : canonicalHome).string()).substr(0, 12)}};
  auto docker = docker::DockerProvider::create(dockerOptions);
  if (!docker.ok()) {
    spdlog::error("docker provider: {}", docker.error().describe());
    return 1;
  }
  auto health = docker.value()->healthCheck();
  if (!health.reachable) {
    spdlog::warn("the Docker engine is not reachable now; sandboxes cannot start until it is");
  } else {
    spdlog::info("docker engine {} (API {})", health.version, health.apiVersion);
  }
  for (const auto& w : health.warnings)
    spdlog::warn("docker: {}", w);
  service.registerProvider(std::shared_ptr<SandboxProvider>(std::move(docker.value())));
  // TODO(k8s): register the Kubernetes provider here when so.enableK8s (later issue).

  if (auto r = service.reconcile(); !r.ok()) {
    spdlog::warn("initial reconcile failed: {}", r.error().describe());
  }
  service.startBackground();

  ServerOptions serverOptions;
  serverOptions.listen = options.listen;
  serverOptions.home = home;
  serverOptions.networkThreads = options.networkThreads;
  serverOptions.workerThreads = options.workerThreads;
  serverOptions.shutdownGrace = options.shutdownGrace;
  Server server(service, serverOptions);
  if (auto r = server.start(); !r.ok()) {
    spdlog::error("{}", r.error().describe());
    service.stopBackground();
    return 1;
  }
  const std::string url = clientUrl(options.listen, server.port());
  if (!writeAddressFile(home, url)) spdlog::warn("cannot write {}", (home / "address").string());
  spdlog::info("serving on {} (token in {})", url, (home / "token").string());

  server.runUntilSignal();
  service.stopBackground();
  std::error_code ec;
  fs::remove(home / "address", ec);
  spdlog::info("bye");
  return 0;
}

}  // namespace agentpane::server
