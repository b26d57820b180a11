#include "service/composition.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "common/hash.hpp"
#include "docker/docker_provider.hpp"

namespace agentpane {

namespace fs = std::filesystem;

bool k8sEnabledByEnvironment() {
  const char* v = std::getenv("ENABLE_K8S_SANDBOX");
  if (v == nullptr) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "TRUE" || s == "yes";
}

std::string instanceIdForHome(const fs::path& home) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(home, ec);
  return sha256Hex((ec ? home : canonical).string()).substr(0, 12);
}

Result<std::vector<std::shared_ptr<SandboxProvider>>> buildProviders(
    const CompositionOptions& options) {
  std::vector<std::shared_ptr<SandboxProvider>> out;
  docker::DockerProviderOptions dockerOptions;
  dockerOptions.scopeLabels = {{labels::kInstance, instanceIdForHome(options.home)}};
  auto docker = docker::DockerProvider::create(dockerOptions);
  if (!docker.ok()) return docker.takeError();
  out.push_back(std::shared_ptr<SandboxProvider>(std::move(docker).value()));
  // The Kubernetes provider joins here when options.enableK8s (src/k8s, a later issue).
  if (options.enableK8s) spdlog::debug("Kubernetes provider: not built into this version yet");
  return out;
}

}  // namespace agentpane
