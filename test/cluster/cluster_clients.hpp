// REST clients for the cluster tests, from the kubeconfigs scripts/test-cluster writes
// (`eval "$(scripts/test-cluster env)"` sets AGENTPANE_TEST_SA_KUBECONFIG and the others).
// A failure is a gtest failure and a null client.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "k8s/kubeconfig.hpp"
#include "k8s/rest_client.hpp"

namespace agentpane::testing {

inline std::shared_ptr<k8s::RestClient> clientForKubeconfig(const std::string& path,
                                                            k8s::ResolveOptions options = {}) {
  auto kc = k8s::loadKubeconfigFile(path);
  if (!kc.ok()) {
    ADD_FAILURE() << kc.error().describe();
    return nullptr;
  }
  auto rc = k8s::resolveContext(kc.value(), "", options);
  if (!rc.ok()) {
    ADD_FAILURE() << rc.error().describe();
    return nullptr;
  }
  auto c = k8s::RestClient::create(rc.value());
  if (!c.ok()) {
    ADD_FAILURE() << c.error().describe();
    return nullptr;
  }
  return c.value();
}

// The kubeconfig named by an environment variable (the least-privilege ServiceAccount's by
// default).
inline std::shared_ptr<k8s::RestClient> clientFromEnv(
    const char* var = "AGENTPANE_TEST_SA_KUBECONFIG", k8s::ResolveOptions options = {}) {
  const char* path = std::getenv(var);
  if (path == nullptr || *path == '\0') {
    ADD_FAILURE() << var
                  << " is not set: run under scripts/test.sh or eval \"$(scripts/test-cluster "
                     "env)\"";
    return nullptr;
  }
  return clientForKubeconfig(path, options);
}

}  // namespace agentpane::testing
