// libFuzzer target: the kubeconfig loader (src/k8s/kubeconfig_parse.cpp and the pure parts of
// kubeconfig.cpp) and the ExecCredential reader of exec plugins.
//
// Input layout: the bytes up to the first NUL are a kubeconfig (YAML or JSON); what follows is
// an exec plugin's stdout. Nothing is read from disk and nothing is run: relative paths
// resolve against a directory that does not exist and contexts are not resolved (that reads
// files). Checks beyond "no crash, no leak, no UB, no exception": errors carry the
// K8S_KUBECONFIG_INVALID code with a field; a parsed file's contexts list is sorted and
// complete; merging a file with itself changes nothing.
//
// fuzz-sources: src/k8s/kubeconfig_parse.cpp src/k8s/kubeconfig.cpp src/k8s/credentials.cpp
// fuzz-sources: src/k8s/exec_plugin.cpp src/k8s/exec_plugin_process.cpp src/net/endpoint.cpp
// fuzz-sources: src/common/base64.cpp src/common/errors.cpp src/common/time.cpp src/net/url.cpp
// fuzz-libs: nlohmann_json::nlohmann_json yaml-cpp uriparser::uriparser date::date
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "k8s/exec_plugin.hpp"
#include "k8s/kubeconfig.hpp"

using namespace agentpane;
using namespace agentpane::k8s;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t nul = all.find('\0');
  std::string_view yaml = all.substr(0, nul);
  std::string_view rest = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);

  auto parsed = parseKubeconfig(yaml, "/nonexistent-fuzz-dir/config");
  if (!parsed.ok()) {
    if (parsed.error().code != ErrorCode::K8sKubeconfigInvalid) std::abort();
    if (parsed.error().details.count("field") == 0) std::abort();
  } else {
    const Kubeconfig& k = parsed.value();
    ContextList list = listContexts(k);
    if (list.contexts.size() != k.contexts.size()) std::abort();
    for (std::size_t i = 1; i < list.contexts.size(); ++i) {
      if (list.contexts[i - 1].name > list.contexts[i].name) std::abort();
    }
    Kubeconfig twice = mergeKubeconfigs({k, k});
    if (twice.contexts.size() != k.contexts.size() || twice.users.size() != k.users.size() ||
        twice.clusters.size() != k.clusters.size() || twice.currentContext != k.currentContext) {
      std::abort();
    }
    for (const auto& c : k.clusters)
      (void)parseServerUrl(c.server);
  }

  for (std::string_view api : {kExecApiV1, kExecApiV1beta1}) {
    auto cred = parseExecCredential(rest, api);
    if (cred.ok() && cred->bearerToken.empty() && cred->certPem.empty()) std::abort();
    if (!cred.ok() && cred.error().code != ErrorCode::K8sAuthFailed) std::abort();
  }
  (void)parseRfc3339(rest);
  return 0;
}
