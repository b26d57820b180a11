// SandboxService: server-wide settings (the default provider the web page selects).

#include <nlohmann/json.hpp>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

namespace {
constexpr const char* kDefaultProviderKey = "default_provider";
}

bool SandboxService::k8sEnabled() {
  if (impl_->opts.enableK8s) return true;
  auto cfg = defaultConfig();
  return cfg.ok() && cfg->enableK8s;
}

Result<ProviderType> SandboxService::defaultProvider() {
  auto v = impl_->store.getSetting(kDefaultProviderKey);
  if (!v.ok()) return v.takeError();
  if (v->has_value()) {
    if (auto t = providerTypeFromString(**v)) {
      // A Kubernetes choice made while the feature was on falls back while it is off.
      if (*t != ProviderType::Kubernetes || k8sEnabled()) return *t;
    }
  }
  return ProviderType::Docker;
}

Result<void> SandboxService::setDefaultProvider(ProviderType t) {
  if (t == ProviderType::Kubernetes && !k8sEnabled()) {
    return Error(ErrorCode::K8sDisabled,
                 "the Kubernetes provider is off: start the server with ENABLE_K8S_SANDBOX=true "
                 "to select it");
  }
  auto before = defaultProvider();
  auto r = impl_->store.putSetting(kDefaultProviderKey, toString(t), impl_->nowSec());
  // A settings change is a mutation like a config change: the ledger records who changed
  // what, and the value it replaced.
  nlohmann::json detail{{"key", kDefaultProviderKey}, {"to", toString(t)}};
  if (before.ok()) detail["from"] = toString(before.value());
  if (!r.ok()) detail["error"] = r.error().message;
  impl_->audit("", "api", "settings.update", detail, r.ok());
  return r;
}

}  // namespace agentpane
