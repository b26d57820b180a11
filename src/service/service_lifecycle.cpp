// SandboxService: the sandbox lifecycle: create, stop, remove, list and get.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

Result<void> SandboxService::Impl::stop(const std::string& id, const std::string& actor,
                                        const std::string& reason) {
  auto row = visibleRow(id);
  if (!row.ok()) return row.takeError();
  const std::string prev = row->status;
  // Settled sandboxes have nothing to stop: stopping is idempotent.
  if (prev == st::kStopped || prev == st::kGone || prev == st::kError) return {};
  if (prev == st::kCreating || prev == st::kMigrating) {
    return Error(ErrorCode::SandboxNotRunning,
                 "sandbox " + id + " is still being " +
                     (prev == st::kCreating ? "created" : "migrated to another provider"),
                 {{"status", prev}});
  }
  auto prov = providerOf(row.value());
  if (!prov) return providerMissing(row.value());
  if (prev != st::kStopping) {
    auto cas = store.setSandboxStatus(id, st::kStopping, "", prev);
    if (!cas.ok()) return cas.takeError();
    if (!cas.value()) return Error(ErrorCode::Conflict, "sandbox " + id + " changed state; retry");
  }
  emit("stopping", id, reason);
  auto r = prov->stop(sandboxRef(row->info));
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
  if (auto stopped = store.getSandbox(id); stopped.ok() && stopped->status == st::kStopped) {
    // Why it stopped decides whether use wakes it (idle) or not (an explicit stop).
    stopped->stopReason = actor == "idle" ? "idle" : "requested";
    auto why = store.updateSandbox(stopped.value(), std::string(st::kStopped));
    if (!why.ok()) spdlog::warn("sandbox {}: stop reason: {}", id, why.error().describe());
  }
  audit(id, actor, "sandbox.stop", detail, true);
  emit("stopped", id, reason);
  return {};
}

namespace {

// The cluster's health check as a reason not to use it ("" when it can be used).
std::string checkCluster(SandboxProvider& cluster) {
  try {
    auto health = cluster.healthCheck();
    if (health.reachable) return {};
    std::string why = "the Kubernetes cluster is unreachable";
    if (!health.warnings.empty()) why += ": " + health.warnings.front();
    return why;
  } catch (const std::exception& e) {
    return std::string("the Kubernetes cluster's health check failed: ") + e.what();
  }
}

}  // namespace

void SandboxService::Impl::noteReachable(const std::string& instance) {
  std::lock_guard lk(reachMu);
  reachability[instance].at = std::chrono::steady_clock::now();
}

std::string SandboxService::Impl::clusterUnusable(const std::shared_ptr<SandboxProvider>& cluster) {
  const auto now = std::chrono::steady_clock::now();
  const std::string instance = cluster->instance();
  std::promise<std::string> mine;
  std::shared_future<std::string> answer;
  bool asks = false;
  {
    std::lock_guard lk(reachMu);
    auto& r = reachability[instance];
    const bool seen = r.at != std::chrono::steady_clock::time_point{};
    if (seen && now - r.at < opts.clusterFreshFor) return {};
    if (seen && now - r.at < opts.clusterTrustedFor) {
      // Seen reachable a while ago: this create goes on, one check runs beside it.
      if (!r.pending.valid() && (!r.ahead.valid() || r.ahead.wait_for(std::chrono::seconds(0)) ==
                                                         std::future_status::ready)) {
        auto ahead = std::make_shared<std::promise<std::string>>();
        r.pending = ahead->get_future().share();
        r.ahead = std::async(std::launch::async, [this, cluster, instance, ahead] {
          std::string why = checkCluster(*cluster);
          {
            std::lock_guard lk2(reachMu);
            auto& r2 = reachability[instance];
            r2.pending = {};
            // Unreachable: the next creates wait for a check of their own (and fall back).
            r2.at = why.empty() ? std::chrono::steady_clock::now()
                                : std::chrono::steady_clock::time_point{};
          }
          ahead->set_value(why);
        });
      }
      return {};
    }
    if (!r.pending.valid()) {
      r.pending = mine.get_future().share();
      asks = true;
    }
    answer = r.pending;
  }
  if (asks) {
    std::string why = checkCluster(*cluster);
    {
      std::lock_guard lk(reachMu);
      auto& r = reachability[instance];
      r.pending = {};
      if (why.empty()) r.at = std::chrono::steady_clock::now();
    }
    mine.set_value(why);
  }
  return answer.get();
}

Result<CreateSandboxOutcome> SandboxService::createSandbox(const CreateSandboxRequest& req,
                                                           const std::string& actor,
                                                           const CreateControl& control) {
  auto& I = *impl_;
  auto valid = validateCreateRequest(req, *impl_->opts.pathPolicy);
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
    auto k8sFor = I.kubernetesFor(cfg);  // the profile's cluster, or the server's
    if (!k8sFor.ok()) return k8sFor.takeError();
    auto k8s = std::move(k8sFor).value();
    if (!k8s) {
      why = "the Kubernetes provider is not configured";
    } else {
      why = I.clusterUnusable(k8s);
    }
    if (why.empty()) {
      prov = std::move(k8s);
    } else if (auto docker = I.providerFor(ProviderType::Docker);
               docker && cfg.allowFallback && !req.noFallback) {
      fallbackReason = why + "; created on Docker instead";
      spdlog::warn("sandbox for project {}: {}", valid->projectId, *fallbackReason);
      prov = std::move(docker);
    } else {
      return Error(k8s ? ErrorCode::K8sUnreachable : ErrorCode::SandboxProviderUnavailable,
                   why + (req.noFallback      ? ""
                          : cfg.allowFallback ? " and no Docker provider is available"
                                              : " (fallback to Docker is off in the config)"));
    }
  } else {
    prov = I.providerFor(ProviderType::Docker);
    if (!prov)
      return Error(ErrorCode::SandboxProviderUnavailable, "the Docker provider is not available");
  }

  // The profile's sandbox (as a warm one is made), then what the request asks for.
  SandboxSpec spec = I.specFor(cfg, I.newId("sbx"));
  if (!isValidSandboxId(spec.id)) {
    return Error(ErrorCode::Internal, "generated sandbox id '" + spec.id + "' is invalid");
  }
  spec.projectId = valid->projectId;
  spec.agentId = req.agentId;
  spec.projectPath = valid->projectPath;
  spec.image = req.image.value_or(cfg.image);
  spec.memoryMb = req.memoryMb.value_or(cfg.memoryMb);
  spec.cpu = req.cpu.value_or(cfg.cpu);
  spec.env = req.env;
  spec.allowedEgressHosts = req.egressExactly.value_or(cfg.allowedEgressHosts);
  for (const auto& h : req.allowEgress) {
    if (std::find(spec.allowedEgressHosts.begin(), spec.allowedEgressHosts.end(), h) ==
        spec.allowedEgressHosts.end()) {
      spec.allowedEgressHosts.push_back(h);
    }
  }
  spec.kubernetes.kubeConfigPath.clear();
  if (prov->type() == ProviderType::Kubernetes && !cfg.kubeConfigPath.empty()) {
    // A profile's kubeconfig came through the API: the path rule holds at each use.
    auto kc = I.opts.pathPolicy->check(cfg.kubeConfigPath, "kubeConfigPath",
                                       ErrorCode::K8sKubeconfigInvalid);
    if (!kc.ok()) return kc.takeError();
    spec.kubernetes.kubeConfigPath = kc->string();
  }

  json detail{{"provider", toString(prov->type())},
              {"instance", prov->instance()},
              {"projectId", spec.projectId},
              {"configId", cfg.id},
              {"image", spec.image},
              {"memoryMb", spec.memoryMb},
              {"cpu", spec.cpu}};
  if (fallbackReason) detail["fallbackReason"] = *fallbackReason;

  // A warm sandbox of this profile, when the request asks for nothing it lacks.
  std::optional<std::string> poolMiss;
  if (cfg.warmPoolMin > 0 && !req.noFallback) {
    std::string why;
    if (fallbackReason || prov->type() != cfg.providerType) {
      why = "the profile's provider is not available";
    } else if (spec.image != cfg.image || spec.memoryMb != cfg.memoryMb || spec.cpu != cfg.cpu) {
      why = "the request asks for another image or other resources than the pool's";
    } else {
      auto claimed = I.claimFromPool(cfg, *prov, spec, actor, control, &why);
      if (claimed) {
        if (!claimed->ok()) {
          Error e = claimed->takeError();
          detail["error"] = errorDetail(e);
          I.audit("", actor, "sandbox.create", detail, false);
          return e;
        }
        SandboxRecord got = std::move(*claimed).value();
        detail["warmPool"] = "hit";
        detail["sandboxId"] = got.info.id;
        detail["containerId"] = got.info.containerId;
        if (!got.info.podName.empty()) detail["podName"] = got.info.podName;
        I.audit(got.info.id, actor, "sandbox.create", detail, true);
        I.emit("ready", got.info.id, toString(prov->type()));
        CreateSandboxOutcome out;
        out.sandbox = std::move(got);
        return out;
      }
    }
    poolMiss = "warm pool miss: " + why + "; creating a sandbox";
    detail["warmPool"] = "miss: " + why;
  }

  SandboxRecord row;
  row.info.id = spec.id;
  row.info.provider = prov->type();
  row.info.instance = prov->instance();
  row.info.state = SandboxState::Creating;
  row.info.projectId = spec.projectId;
  row.info.agentId = spec.agentId;
  row.info.projectPath = spec.projectPath;
  row.info.image = spec.image;
  row.configId = cfg.id;
  row.status = st::kCreating;
  row.createdAtUnix = row.info.createdAtUnix = I.nowSec();
  row.lastActivityUnix = row.createdAtUnix;

  if (control.cancelled()) return createCancelledError(spec.id);
  CreateControl inner;
  inner.stop = control.stop;
  if (control.onProgress) {
    inner.onProgress = [&control, id = spec.id](const CreateProgress& p) {
      CreateProgress q = p;
      q.sandboxId = id;
      control.onProgress(q);
    };
  }

  Impl::InflightGuard guard(I, spec.id);
  // The row comes first: the unique index settles concurrent creates for one project, and a
  // crash during provider.create leaves a row that reconcile settles.
  auto ins = I.store.insertSandbox(row);
  if (!ins.ok()) {
    detail["error"] = errorDetail(ins.error());
    I.audit(spec.id, actor, "sandbox.create", detail, false);
    return ins.takeError();
  }
  I.emit("creating", spec.id, toString(prov->type()));
  inner.progress("accepted", "sandbox " + spec.id + " on " + toString(prov->type()) + " (" +
                                 prov->instance() + ")" +
                                 (fallbackReason ? "; " + *fallbackReason : std::string()) +
                                 (poolMiss ? "; " + *poolMiss : std::string()));

  auto created = prov->create(spec, inner);
  if (created.ok() && control.cancelled()) {
    // Made, but nobody wants it any more: the failure path below removes it.
    created = createCancelledError(spec.id);
  }
  if (!created.ok()) {
    Error err = created.takeError();
    // A create that failed leaves no row in the list: the tombstone (hidden) still tells
    // reconcile that whatever the provider kept of it is not ours. The audit log keeps why.
    row.status = st::kRemoved;
    row.error = err.message;
    auto upd = I.store.updateSandbox(row, std::string(st::kCreating));
    if (!upd.ok())
      spdlog::error("sandbox {}: cannot record the failed create: {}", spec.id,
                    upd.error().describe());
    // The provider contract says a failed create cleans up; remove anyway so nothing leaks.
    auto rm = prov->remove(sandboxRef(row.info));
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
    auto rm = prov->remove(sandboxRef(row.info));
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
  {
    // What the provider enforced of the allowlist (a provider that reports nothing enforces
    // none of it: recorded so, and shown so).
    EgressStatus eg;
    if (info.egress) {
      eg = *info.egress;
    } else {
      eg.allowlist = spec.allowedEgressHosts;
    }
    I.saveEgress(spec.id, spec.allowedEgressHosts, eg);
    row.egressJson = json{{"allowlist", spec.allowedEgressHosts}, {"status", toJson(eg)}}.dump();
    if (!spec.allowedEgressHosts.empty()) {
      detail["egress"] = {{"allowlist", spec.allowedEgressHosts},
                          {"enforced", eg.enforced},
                          {"unresolved", eg.unresolved}};
    }
  }
  I.noteReachable(prov->instance());  // it answered the whole create
  I.audit(spec.id, actor, "sandbox.create", detail, true);
  I.emit("ready", spec.id, toString(prov->type()));
  return CreateSandboxOutcome{row, fallbackReason};
}

bool SandboxService::Impl::wakesOnUse(const SandboxRecord& row) {
  if (row.status != st::kStopped || row.stopReason != "idle") return false;
  auto cfg = row.configId.empty() ? ensureDefaultConfig() : store.getConfig(row.configId);
  return cfg.ok() && cfg->wakeOnUse;
}

Result<SandboxRecord> SandboxService::Impl::start(const std::string& id, const std::string& actor,
                                                  const std::string& reason) {
  auto row = visibleRow(id);
  if (!row.ok()) return row.takeError();
  const std::string prev = row->status;
  if (prev == st::kRunning) return row;
  if (prev == st::kCreating || prev == st::kStopping || prev == st::kMigrating) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox " + id + " is " + prev + "; retry",
                 {{"status", prev}});
  }
  auto prov = providerOf(row.value());
  if (!prov) return providerMissing(row.value());
  json detail{{"reason", reason}, {"previousStatus", prev}};
  auto started = prov->start(sandboxRef(row->info));
  if (!started.ok()) {
    detail["error"] = errorDetail(started.error());
    audit(id, actor, "sandbox.start", detail, false);
    if (started.error().code == ErrorCode::SandboxNotFound && prev != st::kGone) {
      (void)store.setSandboxStatus(id, st::kGone, "vanished from the provider", prev);
      emit("gone", id);
    }
    return started.takeError();
  }
  SandboxRecord updated = row.value();
  updated.status = st::kRunning;
  updated.info.state = SandboxState::Running;
  updated.error.clear();
  updated.stopReason.clear();
  if (!started->containerId.empty()) updated.info.containerId = started->containerId;
  updated.lastActivityUnix = nowSec();
  auto upd = store.updateSandbox(updated, prev);
  if (!upd.ok()) {
    // The project got another live sandbox while this one was stopped: it stays stopped.
    (void)prov->stop(sandboxRef(updated.info));
    detail["error"] = errorDetail(upd.error());
    audit(id, actor, "sandbox.start", detail, false);
    return upd.takeError();
  }
  if (!upd.value()) return Error(ErrorCode::Conflict, "sandbox " + id + " changed state; retry");
  audit(id, actor, "sandbox.start", detail, true);
  emit("ready", id, reason);
  return visibleRow(id);
}

Result<SandboxRecord> SandboxService::startSandbox(const std::string& id,
                                                   const std::string& actor) {
  return impl_->start(id, actor, "requested");
}

Result<std::vector<SandboxRecord>> SandboxService::listSandboxes() {
  auto rows = impl_->store.listSandboxes(/*includeRemoved=*/false);
  if (!rows.ok()) return rows;
  std::erase_if(rows.value(), [](const SandboxRecord& r) { return isPoolStatus(r.status); });
  return rows;
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
  auto prov = I.providerOf(row.value());
  if (!prov) return I.providerMissing(row.value());
  auto r = prov->remove(sandboxRef(row->info));
  json detail{{"provider", toString(row->info.provider)},
              {"instance", row->info.instance},
              {"previousStatus", row->status}};
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

}  // namespace agentpane
