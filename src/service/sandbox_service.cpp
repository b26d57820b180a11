// SandboxService: configs, sandbox lifecycle (create/stop/remove), providers, events.
// Exec and tmux live in service_exec.cpp, reconcile and idle in service_reconcile.cpp.
#include "service/sandbox_service.hpp"
#include "common/hash.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "service/service_impl.hpp"
#include "service/validation.hpp"

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
  return o;
}

}  // namespace

json errorDetail(const Error& e) {
  return json{{"code", std::string(errorName(e.code))}, {"message", e.message}};
}

std::optional<std::string> statusFromState(SandboxState s) {
  switch (s) {
    case SandboxState::Running:
      return std::string(st::kRunning);
    case SandboxState::Stopped:
      return std::string(st::kStopped);
    case SandboxState::Failed:
      return std::string(st::kError);
    case SandboxState::Creating:
    case SandboxState::Unknown:
      break;
  }
  return std::nullopt;
}

// --- Auditor --------------------------------------------------------------------------------

void Auditor::write(const std::string& sandboxId, const std::string& actor,
                    const std::string& action, const json& detail, bool ok) {
  AuditEntry e;
  e.atUnixMs = nowMs_();
  e.sandboxId = sandboxId;
  e.actor = actor;
  e.action = action;
  // Argv and messages may hold bytes that are not UTF-8; they must not make the write fail.
  e.detail = detail.dump(-1, ' ', false, json::error_handler_t::replace);
  e.ok = ok;
  auto r = store_.appendAudit(e);
  if (!r.ok()) spdlog::error("audit {} {}: {}", action, sandboxId, r.error().describe());
}

void Auditor::touch(const std::string& sandboxId) {
  auto r = store_.touchSandbox(sandboxId, nowMs_() / 1000);
  if (!r.ok() && r.error().code != ErrorCode::SandboxNotFound) {
    spdlog::warn("touch {}: {}", sandboxId, r.error().describe());
  }
}

// --- Impl -----------------------------------------------------------------------------------

SandboxService::Impl::Impl(Store& s, ServiceOptions o)
    : store(s),
      opts(withDefaults(std::move(o))),
      auditor(std::make_shared<Auditor>(s, opts.nowUnixMs)) {}

std::shared_ptr<SandboxProvider> SandboxService::Impl::providerFor(ProviderType t) {
  std::lock_guard lk(providersMu);
  auto it = providers.find(t);
  return it == providers.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<SandboxProvider>> SandboxService::Impl::allProviders() {
  std::lock_guard lk(providersMu);
  std::vector<std::shared_ptr<SandboxProvider>> out;
  for (auto& [t, p] : providers)
    out.push_back(p);
  return out;
}

void SandboxService::Impl::emit(const std::string& type, const std::string& sandboxId,
                                const std::string& detail) {
  SandboxEvent ev{type, sandboxId, detail, nowMs()};
  std::vector<EventSink> targets;
  {
    std::lock_guard lk(eventsMu);
    for (auto& [token, sink] : sinks)
      targets.push_back(sink);
  }
  // Sinks run outside the lock so that one may unsubscribe itself.
  for (auto& sink : targets) {
    try {
      sink(ev);
    } catch (const std::exception& e) {
      spdlog::warn("event sink threw on {}: {}", type, e.what());
    } catch (...) {
      spdlog::warn("event sink threw on {}", type);
    }
  }
}

bool SandboxService::Impl::isInflight(const std::string& id) {
  std::lock_guard lk(inflightMu);
  return inflight.count(id) != 0;
}

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

Result<SandboxRecord> SandboxService::Impl::visibleRow(const std::string& id) {
  auto row = store.getSandbox(id);
  if (!row.ok()) return row.takeError();
  if (row->status == st::kRemoved)
    return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
  return row;
}

Result<std::pair<SandboxRecord, std::shared_ptr<SandboxProvider>>>
SandboxService::Impl::runningSandbox(const std::string& id) {
  auto row = visibleRow(id);
  if (!row.ok()) return row.takeError();
  if (row->status != st::kRunning) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox " + id + " is " + row->status,
                 {{"status", row->status}});
  }
  auto prov = providerFor(row->info.provider);
  if (!prov) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 std::string("the ") + toString(row->info.provider) + " provider is not available");
  }
  return std::make_pair(std::move(row).value(), std::move(prov));
}

Result<void> SandboxService::Impl::stop(const std::string& id, const std::string& actor,
                                        const std::string& reason) {
  auto row = visibleRow(id);
  if (!row.ok()) return row.takeError();
  const std::string prev = row->status;
  // Settled sandboxes have nothing to stop: stopping is idempotent.
  if (prev == st::kStopped || prev == st::kGone || prev == st::kError) return {};
  if (prev == st::kCreating) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox " + id + " is still being created",
                 {{"status", prev}});
  }
  auto prov = providerFor(row->info.provider);
  if (!prov) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 std::string("the ") + toString(row->info.provider) + " provider is not available");
  }
  if (prev != st::kStopping) {
    auto cas = store.setSandboxStatus(id, st::kStopping, "", prev);
    if (!cas.ok()) return cas.takeError();
    if (!cas.value()) return Error(ErrorCode::Conflict, "sandbox " + id + " changed state; retry");
  }
  emit("stopping", id, reason);
  auto r = prov->stop(id);
  json detail{{"reason", reason}};
  if (!r.ok() && r.error().code == ErrorCode::SandboxNotFound) {
    (void)store.setSandboxStatus(id, st::kGone, "vanished from the provider",
                                 std::string(st::kStopping));
    detail["vanished"] = true;
    audit(id, actor, "sandbox.stop", detail, true);
    emit("gone", id);
    return {};
  }
  if (!r.ok()) {
    (void)store.setSandboxStatus(id, prev, "", std::string(st::kStopping));
    detail["error"] = errorDetail(r.error());
    audit(id, actor, "sandbox.stop", detail, false);
    emit("error", id, r.error().describe());
    return r.takeError();
  }
  auto done = store.setSandboxStatus(id, st::kStopped, "", std::string(st::kStopping));
  if (!done.ok()) return done.takeError();
  audit(id, actor, "sandbox.stop", detail, true);
  emit("stopped", id, reason);
  return {};
}

// --- SandboxService: providers, configs ------------------------------------------------------

SandboxService::SandboxService(Store& store, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {
  auto def = impl_->ensureDefaultConfig();
  if (!def.ok())
    spdlog::error("cannot create the default sandbox config: {}", def.error().describe());
}

SandboxService::~SandboxService() {
  stopBackground();
}

void SandboxService::registerProvider(std::shared_ptr<SandboxProvider> provider) {
  if (!provider) return;
  std::lock_guard lk(impl_->providersMu);
  impl_->providers[provider->type()] = std::move(provider);
}

SandboxProvider* SandboxService::provider(ProviderType t) {
  return impl_->providerFor(t).get();
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
  auto r = impl_->store.updateConfig(c);
  impl_->audit("", "api", "config.update", json{{"id", c.id}, {"name", c.name}}, r.ok());
  if (!r.ok()) return r.takeError();
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
  auto r = impl_->store.deleteConfig(id);
  impl_->audit("", "api", "config.delete", json{{"id", id}, {"name", existing->name}}, r.ok());
  return r;
}

// --- SandboxService: sandboxes ---------------------------------------------------------------

namespace {

struct ValidatedCreate {
  std::string projectPath;  // canonical
  std::string projectId;
};

Result<ValidatedCreate> validateCreate(const CreateSandboxRequest& req) {
  namespace fs = std::filesystem;
  ValidatedCreate v;
  fs::path p(req.projectPath);
  std::error_code ec;
  if (req.projectPath.empty() || !p.is_absolute()) {
    return Error(ErrorCode::SandboxProjectPathInvalid, "projectPath must be an absolute path",
                 {{"field", "projectPath"}});
  }
  if (!fs::is_directory(p, ec)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "projectPath " + req.projectPath + " is not an existing directory",
                 {{"field", "projectPath"}});
  }
  auto canon = fs::canonical(p, ec);
  if (ec) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "projectPath " + req.projectPath + ": " + ec.message(),
                 {{"field", "projectPath"}});
  }
  v.projectPath = canon.string();
  if (req.projectId.empty()) {
    v.projectId = "p-" + sha256Hex(v.projectPath).substr(0, 12);
  } else {
    if (!isValidLabelValue(req.projectId)) {
      return validationError(
          "projectId",
          "projectId must be 1-63 letters, digits, '-', '_' or '.', starting and "
          "ending with a letter or digit");
    }
    v.projectId = req.projectId;
  }
  if (!isValidLabelValue(req.agentId)) {
    return validationError(
        "agentId",
        "agentId must be at most 63 letters, digits, '-', '_' or '.', starting and "
        "ending with a letter or digit");
  }
  if (req.configId && req.configId->empty())
    return validationError("configId", "configId is empty");
  if (req.image && !isValidImageRef(*req.image)) {
    return validationError("image", "image must be a non-empty image reference without spaces");
  }
  namespace L = config_limits;
  if (req.memoryMb && (*req.memoryMb < L::kMemoryMbMin || *req.memoryMb > L::kMemoryMbMax)) {
    return validationError("memoryMb", "memoryMb must be between 512 and 32768 MB");
  }
  if (req.cpu && !(*req.cpu >= L::kCpuMin && *req.cpu <= L::kCpuMax)) {
    return validationError("cpu", "cpu must be between 0.5 and 16 cores");
  }
  if (req.env.size() > 256) return validationError("env", "at most 256 environment variables");
  for (const auto& [k, val] : req.env) {
    if (!isValidEnvKey(k)) {
      return Error(ErrorCode::ValidationError,
                   "environment variable name '" + k + "' must match [A-Za-z_][A-Za-z0-9_]*",
                   {{"field", "env"}, {"key", k}});
    }
    if (val.find('\0') != std::string::npos || val.size() > 32768) {
      return Error(ErrorCode::ValidationError,
                   "environment variable " + k + " has an invalid value",
                   {{"field", "env"}, {"key", k}});
    }
  }
  if (req.allowEgress.size() > L::kMaxEgressHosts) {
    return validationError("allowEgress", "at most 256 egress entries");
  }
  for (const auto& h : req.allowEgress) {
    if (!isValidEgressHost(h)) {
      return Error(
          ErrorCode::ValidationError,
          "allowEgress: '" + h + "' is not a host name, IP address or CIDR (optionally :PORT)",
          {{"field", "allowEgress"}, {"value", h}});
    }
  }
  return v;
}

// Removes an id from the in-flight set when the create ends, however it ends.
class InflightGuard {
 public:
  InflightGuard(std::mutex& mu, std::set<std::string>& set, std::string id)
      : mu_(mu), set_(set), id_(std::move(id)) {
    std::lock_guard lk(mu_);
    set_.insert(id_);
  }
  ~InflightGuard() {
    std::lock_guard lk(mu_);
    set_.erase(id_);
  }
  InflightGuard(const InflightGuard&) = delete;
  InflightGuard& operator=(const InflightGuard&) = delete;

 private:
  std::mutex& mu_;
  std::set<std::string>& set_;
  std::string id_;
};

}  // namespace

Result<CreateSandboxOutcome> SandboxService::createSandbox(const CreateSandboxRequest& req,
                                                           const std::string& actor) {
  auto& I = *impl_;
  auto valid = validateCreate(req);
  if (!valid.ok()) return valid.takeError();

  Result<SandboxConfig> cfgR =
      req.configId ? I.store.getConfig(*req.configId) : I.ensureDefaultConfig();
  if (!cfgR.ok()) {
    Error e = cfgR.takeError();
    if (req.configId) e.details["field"] = "configId";
    return e;
  }
  const SandboxConfig& cfg = cfgR.value();

  // Provider choice: the request overrides the config; Kubernetes needs the feature flag and
  // falls back to Docker when it is missing or unreachable and the config allows it.
  ProviderType want = req.provider.value_or(cfg.providerType);
  std::shared_ptr<SandboxProvider> prov;
  std::optional<std::string> fallbackReason;
  if (want == ProviderType::Kubernetes) {
    if (!I.opts.enableK8s && !cfg.enableK8s) {
      return Error(ErrorCode::K8sDisabled,
                   "Kubernetes sandboxes are disabled: set ENABLE_K8S_SANDBOX=true or enableK8s in "
                   "the config",
                   {{"field", "provider"}});
    }
    std::string why;
    auto k8s = I.providerFor(ProviderType::Kubernetes);
    if (!k8s) {
      why = "the Kubernetes provider is not configured";
    } else {
      auto health = k8s->healthCheck();
      if (!health.reachable) {
        why = "the Kubernetes cluster is unreachable";
        if (!health.warnings.empty()) why += ": " + health.warnings.front();
      }
    }
    if (why.empty()) {
      prov = std::move(k8s);
    } else if (auto docker = I.providerFor(ProviderType::Docker); docker && cfg.allowFallback) {
      fallbackReason = why + "; created on Docker instead";
      spdlog::warn("sandbox for project {}: {}", valid->projectId, *fallbackReason);
      prov = std::move(docker);
    } else {
      return Error(k8s ? ErrorCode::K8sUnreachable : ErrorCode::SandboxProviderUnavailable,
                   why + (cfg.allowFallback ? " and no Docker provider is available"
                                            : " (fallback to Docker is off in the config)"));
    }
  } else {
    prov = I.providerFor(ProviderType::Docker);
    if (!prov)
      return Error(ErrorCode::SandboxProviderUnavailable, "the Docker provider is not available");
  }

  SandboxSpec spec;
  spec.id = I.newId("sbx");
  if (!isValidSandboxId(spec.id)) {
    return Error(ErrorCode::Internal, "generated sandbox id '" + spec.id + "' is invalid");
  }
  spec.projectId = valid->projectId;
  spec.agentId = req.agentId;
  spec.projectPath = valid->projectPath;
  spec.image = req.image.value_or(cfg.image);
  spec.memoryMb = req.memoryMb.value_or(cfg.memoryMb);
  spec.cpu = req.cpu.value_or(cfg.cpu);
  spec.pidsLimit = cfg.pidsLimit;
  spec.env = req.env;
  spec.network = cfg.network;
  spec.allowedEgressHosts = cfg.allowedEgressHosts;
  for (const auto& h : req.allowEgress) {
    if (std::find(spec.allowedEgressHosts.begin(), spec.allowedEgressHosts.end(), h) ==
        spec.allowedEgressHosts.end()) {
      spec.allowedEgressHosts.push_back(h);
    }
  }
  spec.kubernetes.kubeConfigPath = cfg.kubeConfigPath;
  spec.kubernetes.kubeContext = cfg.kubeContext;
  spec.kubernetes.kubeNamespace = cfg.kubeNamespace;
  spec.kubernetes.networkPolicyEnabled = cfg.networkPolicyEnabled;
  spec.kubernetes.workspaceVolume = cfg.workspaceVolume;
  spec.kubernetes.storageClass = cfg.storageClass;
  spec.kubernetes.workspaceSizeGi = cfg.workspaceSizeGi;
  spec.kubernetes.startupTimeoutSeconds = cfg.startupTimeoutSeconds;

  json detail{{"provider", toString(prov->type())},
              {"projectId", spec.projectId},
              {"configId", cfg.id},
              {"image", spec.image},
              {"memoryMb", spec.memoryMb},
              {"cpu", spec.cpu}};
  if (fallbackReason) detail["fallbackReason"] = *fallbackReason;

  SandboxRecord row;
  row.info.id = spec.id;
  row.info.provider = prov->type();
  row.info.state = SandboxState::Creating;
  row.info.projectId = spec.projectId;
  row.info.agentId = spec.agentId;
  row.info.projectPath = spec.projectPath;
  row.info.image = spec.image;
  row.configId = cfg.id;
  row.status = st::kCreating;
  row.createdAtUnix = row.info.createdAtUnix = I.nowSec();
  row.lastActivityUnix = row.createdAtUnix;

  InflightGuard guard(I.inflightMu, I.inflight, spec.id);
  // The row comes first: the unique index settles concurrent creates for one project, and a
  // crash during provider.create leaves a row that reconcile settles.
  auto ins = I.store.insertSandbox(row);
  if (!ins.ok()) {
    detail["error"] = errorDetail(ins.error());
    I.audit(spec.id, actor, "sandbox.create", detail, false);
    return ins.takeError();
  }
  I.emit("creating", spec.id, toString(prov->type()));

  auto created = prov->create(spec);
  if (!created.ok()) {
    Error err = created.takeError();
    row.status = st::kError;
    row.error = err.message;
    auto upd = I.store.updateSandbox(row, std::string(st::kCreating));
    if (!upd.ok())
      spdlog::error("sandbox {}: cannot record the failed create: {}", spec.id,
                    upd.error().describe());
    // The provider contract says a failed create cleans up; remove anyway so nothing leaks.
    auto rm = prov->remove(spec.id);
    if (!rm.ok()) {
      spdlog::warn("sandbox {}: cleanup after failed create: {} (reconcile retries)", spec.id,
                   rm.error().describe());
    }
    detail["error"] = errorDetail(err);
    I.audit(spec.id, actor, "sandbox.create", detail, false);
    I.emit("error", spec.id, err.describe());
    return err;
  }

  const SandboxInfo& info = created.value();
  row.status = st::kRunning;
  row.info.state = SandboxState::Running;
  row.info.containerId = info.containerId;
  row.info.podName = info.podName;
  row.info.podNamespace = info.podNamespace;
  row.info.podUid = info.podUid;
  if (!info.image.empty()) row.info.image = info.image;
  row.lastActivityUnix = I.nowSec();
  auto upd = I.store.updateSandbox(row, std::string(st::kCreating));
  if (!upd.ok() || !upd.value()) {
    // Removed (or settled) while we were creating: what we made is not wanted.
    auto rm = prov->remove(spec.id);
    if (!rm.ok()) spdlog::warn("sandbox {}: cleanup: {}", spec.id, rm.error().describe());
    Error err = upd.ok() ? Error(ErrorCode::SandboxCreateFailed,
                                 "sandbox " + spec.id + " was removed while it was being created")
                         : upd.takeError();
    detail["error"] = errorDetail(err);
    I.audit(spec.id, actor, "sandbox.create", detail, false);
    return err;
  }
  detail["containerId"] = row.info.containerId;
  if (!row.info.podName.empty()) detail["podName"] = row.info.podName;
  I.audit(spec.id, actor, "sandbox.create", detail, true);
  I.emit("ready", spec.id, toString(prov->type()));
  return CreateSandboxOutcome{row, fallbackReason};
}

Result<std::vector<SandboxRecord>> SandboxService::listSandboxes() {
  return impl_->store.listSandboxes(/*includeRemoved=*/false);
}

Result<SandboxRecord> SandboxService::getSandbox(const std::string& id) {
  return impl_->visibleRow(id);
}

Result<void> SandboxService::stopSandbox(const std::string& id, const std::string& actor) {
  return impl_->stop(id, actor, "requested");
}

Result<void> SandboxService::removeSandbox(const std::string& id, const std::string& actor) {
  auto& I = *impl_;
  auto row = I.store.getSandbox(id);
  if (!row.ok()) {
    if (row.error().code == ErrorCode::SandboxNotFound) return {};  // idempotent
    return row.takeError();
  }
  if (row->status == st::kRemoved) return {};
  auto prov = I.providerFor(row->info.provider);
  if (!prov) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 std::string("the ") + toString(row->info.provider) + " provider is not available");
  }
  auto r = prov->remove(id);
  json detail{{"provider", toString(row->info.provider)}, {"previousStatus", row->status}};
  if (!r.ok()) {
    detail["error"] = errorDetail(r.error());
    I.audit(id, actor, "sandbox.remove", detail, false);
    I.emit("error", id, r.error().describe());
    return r.takeError();
  }
  auto mark = I.store.setSandboxStatus(id, st::kRemoved, "");
  if (!mark.ok()) return mark.takeError();
  auto tm = I.store.deleteTmuxSessions(id);
  if (!tm.ok()) spdlog::warn("sandbox {}: {}", id, tm.error().describe());
  I.audit(id, actor, "sandbox.remove", detail, true);
  I.emit("removed", id);
  return {};
}

// --- audit, events, counts -------------------------------------------------------------------

Result<std::vector<AuditEntry>> SandboxService::audit(const AuditQuery& q) {
  return impl_->store.queryAudit(q);
}

int SandboxService::subscribe(EventSink sink) {
  std::lock_guard lk(impl_->eventsMu);
  int token = impl_->nextToken++;
  impl_->sinks.emplace(token, std::move(sink));
  return token;
}

void SandboxService::unsubscribe(int token) {
  std::lock_guard lk(impl_->eventsMu);
  impl_->sinks.erase(token);
}

std::map<std::pair<std::string, std::string>, int> SandboxService::sandboxCounts() {
  auto r = impl_->store.sandboxCounts();
  if (!r.ok()) {
    spdlog::warn("sandbox counts: {}", r.error().describe());
    return {};
  }
  return std::move(r).value();
}

}  // namespace agentpane
