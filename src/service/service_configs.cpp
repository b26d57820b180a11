// SandboxService: configs (resource profiles). The default config is made at first start.
#include <spdlog/spdlog.h>

#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

Result<SandboxConfig> SandboxService::Impl::ensureDefaultConfig() {
  auto def = store.getDefaultConfig();
  if (def.ok() || def.error().code != ErrorCode::SandboxConfigNotFound) return def;
  auto all = store.listConfigs();
  if (!all.ok()) return all.takeError();
  if (!all->empty()) {
    // Configs but no default (an older state, a hand edit): promote the first.
    SandboxConfig c = all->front();
    c.isDefault = true;
    c.updatedAtUnix = nowSec();
    AP_TRY(store.updateConfig(c));
    spdlog::warn("no default sandbox config; made '{}' the default", c.name);
    return c;
  }
  SandboxConfig c;
  c.id = newId("cfg");
  c.name = "default";
  c.description = "Created at first start";
  c.isDefault = true;
  c.createdAtUnix = c.updatedAtUnix = nowSec();
  auto r = store.insertConfig(c);
  if (!r.ok()) {
    // Another thread made it first.
    auto again = store.getDefaultConfig();
    if (again.ok()) return again;
    return r.takeError();
  }
  audit("", "system", "config.create", json{{"id", c.id}, {"name", c.name}, {"default", true}},
        true);
  return c;
}

Result<void> SandboxService::Impl::checkKubeconfigPath(const SandboxConfig& c) {
  if (c.kubeConfigPath.empty()) return {};  // the server's own discovery, not the API's path
  auto r = opts.pathPolicy->check(c.kubeConfigPath, "kubeConfigPath", ErrorCode::ValidationError);
  if (!r.ok()) return r.takeError();
  return {};
}

Result<std::vector<SandboxConfig>> SandboxService::listConfigs() {
  return impl_->store.listConfigs();
}

Result<SandboxConfig> SandboxService::getConfig(const std::string& id) {
  return impl_->store.getConfig(id);
}

Result<SandboxConfig> SandboxService::defaultConfig() {
  return impl_->ensureDefaultConfig();
}

Result<SandboxConfig> SandboxService::createConfig(SandboxConfig c) {
  c.id = impl_->newId("cfg");
  c.createdAtUnix = c.updatedAtUnix = impl_->nowSec();
  AP_TRY(validateConfig(c));
  AP_TRY(impl_->checkKubeconfigPath(c));
  auto count = impl_->store.countConfigs();
  if (!count.ok()) return count.takeError();
  if (count.value() == 0) c.isDefault = true;  // the first config is the default
  auto r = impl_->store.insertConfig(c);
  impl_->audit("", "api", "config.create",
               json{{"id", c.id}, {"name", c.name}, {"default", c.isDefault}}, r.ok());
  if (!r.ok()) return r.takeError();
  return impl_->store.getConfig(c.id);
}

Result<SandboxConfig> SandboxService::updateConfig(const SandboxConfig& in) {
  auto existing = impl_->store.getConfig(in.id);
  if (!existing.ok()) return existing.takeError();
  if (existing->isDefault && !in.isDefault) {
    return validationError(
        "isDefault",
        "the default config stays the default until another config is made the default");
  }
  SandboxConfig c = in;
  c.createdAtUnix = existing->createdAtUnix;
  c.updatedAtUnix = impl_->nowSec();
  AP_TRY(validateConfig(c));
  if (c.kubeConfigPath != existing->kubeConfigPath) AP_TRY(impl_->checkKubeconfigPath(c));
  auto r = impl_->store.updateConfig(c);
  impl_->audit("", "api", "config.update", json{{"id", c.id}, {"name", c.name}}, r.ok());
  if (!r.ok()) return r.takeError();
  // Warm sandboxes were made for the old settings: drained, and the pool refills. Only its
  // sizes, name, description or default mark changed: they stay.
  SandboxConfig same = existing.value();
  same.name = c.name;
  same.description = c.description;
  same.isDefault = c.isDefault;
  same.warmPoolMin = c.warmPoolMin;
  same.warmPoolMax = c.warmPoolMax;
  same.warmPoolIdleTtlSeconds = c.warmPoolIdleTtlSeconds;
  same.timeoutMinutes = c.timeoutMinutes;
  same.wakeOnUse = c.wakeOnUse;
  same.allowRootExec = c.allowRootExec;
  same.updatedAtUnix = c.updatedAtUnix;
  if (toJson(same) != toJson(c)) {
    impl_->drainPool(c.id, "profile '" + c.name + "' changed");
  } else {
    impl_->wakePools();
  }
  return impl_->store.getConfig(c.id);
}

Result<void> SandboxService::deleteConfig(const std::string& id) {
  auto existing = impl_->store.getConfig(id);
  if (!existing.ok()) return existing.takeError();
  if (existing->isDefault) {
    return Error(ErrorCode::SandboxConfigInUse,
                 "the default config cannot be deleted; make another config the default first",
                 {{"id", id}});
  }
  impl_->drainPool(id, "profile '" + existing->name + "' deleted");
  auto r = impl_->store.deleteConfig(id);
  impl_->audit("", "api", "config.delete", json{{"id", id}, {"name", existing->name}}, r.ok());
  return r;
}

}  // namespace agentpane
