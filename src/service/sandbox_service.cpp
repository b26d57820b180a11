// SandboxService: construction, ids and clocks, the registered providers, and the row
// lookups every concern shares. Each concern lives in a file of its own:
//   service_configs.cpp    configs (resource profiles)
//   service_lifecycle.cpp  create, stop, remove, list, get
//   service_exec.cpp       exec (buffered and streaming)
//   service_tmux.cpp       tmux sessions
//   service_audit.cpp      audit log, events, counts
//   service_reconcile.cpp  reconcile rows against the providers
//   service_idle.cpp       idle stop and the background thread
#include "service/sandbox_service.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

#include "common/hash.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

namespace {

std::string toHex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

std::string randomHex12() {
  unsigned char buf[6];
  if (RAND_bytes(buf, sizeof buf) != 1) {
    // The CSPRNG failing is near impossible; ids need uniqueness, not secrecy.
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    for (auto& b : buf)
      b = static_cast<unsigned char>(rng());
  }
  return toHex(buf, sizeof buf);
}

std::int64_t systemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ServiceOptions withDefaults(ServiceOptions o) {
  if (!o.nowUnixMs) o.nowUnixMs = systemNowMs;
  if (!o.newId) o.newId = [](const std::string& prefix) { return prefix + "-" + randomHex12(); };
  if (!o.pathPolicy) {
    o.pathPolicy = std::make_shared<PathPolicy>(PathPolicy::settingsFromEnvironment({}, ""));
  }
  return o;
}

}  // namespace

// --- Impl -----------------------------------------------------------------------------------

SandboxService::Impl::Impl(Store& s, ServiceOptions o)
    : store(s),
      opts(withDefaults(std::move(o))),
      auditor(std::make_shared<Auditor>(s, opts.nowUnixMs, opts.ledger)) {}

std::shared_ptr<SandboxProvider> SandboxService::Impl::providerFor(ProviderType t) {
  std::lock_guard lk(providersMu);
  for (const auto& name : instanceOrder) {
    auto& p = providers.at(name);
    if (p->type() == t) return p;
  }
  return nullptr;
}

std::shared_ptr<SandboxProvider> SandboxService::Impl::providerOf(const SandboxRecord& row) {
  {
    std::lock_guard lk(providersMu);
    auto it = providers.find(row.info.instance);
    if (it != providers.end()) return it->second;
  }
  if (row.info.provider != ProviderType::Kubernetes) return nullptr;
  return restoreInstance(row.info.instance);  // a profile's cluster, not made since the restart
}

std::string kubernetesInstanceName(const KubernetesTarget& t) {
  return "kubernetes-" +
         sha256Hex(t.kubeconfigPath + '\n' + t.context + '\n' + t.namespaceName).substr(0, 12);
}

namespace {

constexpr const char* kInstanceSettingPrefix = "kubernetes-instance/";

// The cluster a profile names, if it names one (a kubeconfig or a context).
std::optional<KubernetesTarget> targetOf(const SandboxConfig& cfg) {
  if (cfg.kubeConfigPath.empty() && cfg.kubeContext.empty()) return std::nullopt;
  return KubernetesTarget{cfg.kubeConfigPath, cfg.kubeContext, cfg.kubeNamespace};
}

}  // namespace

Result<std::shared_ptr<SandboxProvider>> SandboxService::Impl::makeInstance(
    KubernetesTarget target, const std::string& what) {
  if (!target.kubeconfigPath.empty()) {
    // A kubeconfig that came through the API: the path rule holds at each use.
    auto kc = opts.pathPolicy->check(target.kubeconfigPath, "kubeConfigPath",
                                     ErrorCode::K8sKubeconfigInvalid);
    if (!kc.ok()) return kc.takeError();
    target.kubeconfigPath = kc->string();
  }
  const std::string name = kubernetesInstanceName(target);
  std::lock_guard made(targetsMu);
  {
    std::lock_guard lk(providersMu);
    if (auto it = providers.find(name); it != providers.end()) return it->second;
  }
  if (!opts.kubernetesInstance) {
    return Error(ErrorCode::K8sKubeconfigInvalid,
                 what +
                     " names a cluster (kubeConfigPath or kubeContext), which this server "
                     "cannot open",
                 {{"field", target.kubeconfigPath.empty() ? "kubeContext" : "kubeConfigPath"}});
  }
  auto p = opts.kubernetesInstance(target, name);
  if (!p.ok()) {
    Error e = p.takeError();
    e.message = "the cluster of " + what + ": " + e.message;
    return e;
  }
  std::shared_ptr<SandboxProvider> provider = std::move(p).value();
  {
    std::lock_guard lk(providersMu);
    if (providers.count(name) == 0) instanceOrder.push_back(name);
    providers[name] = provider;
  }
  // Remembered by name, so that its sandboxes find it after a restart even when the profile
  // has changed since.
  json saved{{"kubeconfigPath", target.kubeconfigPath},
             {"context", target.context},
             {"namespace", target.namespaceName}};
  auto put = store.putSetting(kInstanceSettingPrefix + name, saved.dump(), nowSec());
  if (!put.ok()) spdlog::warn("instance {}: not remembered: {}", name, put.error().describe());
  spdlog::info("{}: Kubernetes instance {}", what, name);
  return provider;
}

Result<std::shared_ptr<SandboxProvider>> SandboxService::Impl::kubernetesFor(
    const SandboxConfig& cfg) {
  auto target = targetOf(cfg);
  if (!target) return providerFor(ProviderType::Kubernetes);
  return makeInstance(*target, "profile '" + cfg.name + "'");
}

std::shared_ptr<SandboxProvider> SandboxService::Impl::restoreInstance(const std::string& name) {
  auto saved = store.getSetting(kInstanceSettingPrefix + name);
  if (!saved.ok() || !saved->has_value()) return nullptr;  // not one we made
  json j = json::parse(**saved, nullptr, false);
  if (!j.is_object()) return nullptr;
  KubernetesTarget t{j.value("kubeconfigPath", ""), j.value("context", ""),
                     j.value("namespace", "")};
  auto p = makeInstance(t, "instance " + name);
  if (p.ok()) return p.value();
  std::lock_guard lk(targetsMu);
  if (failedTargets.insert(name).second) {
    spdlog::warn("Kubernetes instance {} cannot be made again: {}", name, p.error().describe());
  }
  return nullptr;
}

void SandboxService::Impl::restoreInstancesOf(const std::vector<SandboxRecord>& rows) {
  std::set<std::string> missing;
  {
    std::lock_guard lk(providersMu);
    for (const auto& r : rows) {
      if (r.info.provider == ProviderType::Kubernetes && providers.count(r.info.instance) == 0)
        missing.insert(r.info.instance);
    }
  }
  for (const auto& name : missing)
    (void)restoreInstance(name);
}

Error SandboxService::Impl::providerMissing(const SandboxRecord& row) {
  return Error(ErrorCode::SandboxProviderUnavailable,
               std::string("the ") + toString(row.info.provider) + " provider instance '" +
                   row.info.instance + "' is not available",
               {{"instance", row.info.instance}});
}

std::vector<std::shared_ptr<SandboxProvider>> SandboxService::Impl::allProviders() {
  std::lock_guard lk(providersMu);
  std::vector<std::shared_ptr<SandboxProvider>> out;
  for (const auto& name : instanceOrder)
    out.push_back(providers.at(name));
  return out;
}

bool SandboxService::Impl::isInflight(const std::string& id) {
  std::lock_guard lk(inflightMu);
  return inflight.count(id) != 0;
}

Result<SandboxRecord> SandboxService::Impl::visibleRow(const std::string& id) {
  auto row = store.getSandbox(id);
  if (!row.ok()) return row.takeError();
  // Warm-pool sandboxes are nobody's until claimed: no command may reach one before (what it
  // left would be the next project's).
  if (row->status == st::kRemoved || isPoolStatus(row->status))
    return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
  return row;
}

Result<SandboxService::Impl::Live> SandboxService::Impl::runningSandbox(const std::string& id) {
  auto row = visibleRow(id);
  if (!row.ok()) return row.takeError();
  if (row->status != st::kRunning && wakesOnUse(row.value())) {
    // Idle stop costs the user only this wait.
    auto woken = start(id, "wake", "used while idle-stopped");
    if (!woken.ok()) return woken.takeError();
    row = std::move(woken);
  }
  if (row->status != st::kRunning) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox " + id + " is " + row->status,
                 {{"status", row->status}});
  }
  auto prov = providerOf(row.value());
  if (!prov) return providerMissing(row.value());
  // A claimed warm sandbox's processes started before its create: its environment reaches
  // every command (tmux's included) instead.
  if (!row->execEnv.empty()) prov = withExecEnv(std::move(prov), row->execEnv);
  SandboxRef ref = sandboxRef(row->info);
  return Live{std::move(row).value(), std::move(prov), std::move(ref)};
}

// --- SandboxService: construction, providers -------------------------------------------------

SandboxService::SandboxService(Store& store, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {
  auto def = impl_->ensureDefaultConfig();
  if (!def.ok())
    spdlog::error("cannot create the default sandbox config: {}", def.error().describe());
}

SandboxService::~SandboxService() {
  stopBackground();
  // Cluster checks started beside creates touch the reachability map: they end first.
  std::vector<std::future<void>> ahead;
  {
    std::lock_guard lk(impl_->reachMu);
    for (auto& [instance, r] : impl_->reachability)
      if (r.ahead.valid()) ahead.push_back(std::move(r.ahead));
  }
  for (auto& f : ahead)
    f.wait();
}

void SandboxService::registerProvider(std::shared_ptr<SandboxProvider> provider) {
  if (!provider) return;
  std::lock_guard lk(impl_->providersMu);
  const std::string name = provider->instance();
  if (impl_->providers.count(name) == 0) impl_->instanceOrder.push_back(name);
  impl_->providers[name] = std::move(provider);
}

SandboxProvider* SandboxService::provider(ProviderType t) {
  return impl_->providerFor(t).get();
}

const PathPolicy& SandboxService::pathPolicy() const {
  return *impl_->opts.pathPolicy;
}

}  // namespace agentpane
