// SandboxService: the warm pools. One pool per profile with warmPoolMin > 0, on the provider
// instance the profile's sandboxes go to.
//
//   warming  a warm sandbox being made (row first, as for every create: a crash leaves a row
//            that reconcile settles by removing the sandbox)
//   warm     ready: running, no project, no egress, its agent channel started
//   claiming a create took it (one SQLite compare-and-set from warm: two creates never get
//            the same row) and the provider binds the project (claimWarm, itself atomic on
//            Kubernetes through a resourceVersion precondition); then running, fromPool
//
// Sizes: the pool keeps `target` sandboxes warm or warming, where target is min plus the
// claims of the last minute (so a burst refills faster), never above max; min 0 is no pool. A warm
// sandbox beyond the target and unclaimed for the idle TTL is removed. Failed warm creates back off
// (5 s doubling to 5 min) so a broken profile never becomes a storm of creates. A profile
// change drains its pool (the warm sandboxes were made for the old profile) and refills it.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

namespace {

constexpr int kMaxWarmingPerPool = 4;  // creates in flight per pool
// A refill after claims waits until none is under way and none ended for kRefillQuiet: a
// claim's first command (traced at up to 74 ms when a refill's pod started beside it, 10 ms
// alone) then has the engine or the apiserver and kubelet to itself. Never longer than
// kRefillDeferral, so that a steady stream of claims still refills.
constexpr auto kRefillQuiet = std::chrono::milliseconds(250);
constexpr auto kRefillDeferral = std::chrono::milliseconds(1000);
constexpr std::int64_t kAutoscaleWindowMs = 60'000;
constexpr std::int64_t kBackoffFirstMs = 5'000, kBackoffMaxMs = 300'000;

int effectiveMax(const SandboxConfig& c) {
  return std::max(c.warmPoolMin, c.warmPoolMax);
}

}  // namespace

SandboxService::Impl::PoolState& SandboxService::Impl::poolState(const std::string& configId) {
  auto& p = pools[configId];
  if (p.claimBuckets.empty()) p.claimBuckets.assign(std::size(kClaimBucketsMs) + 1, 0);
  return p;
}

void SandboxService::Impl::wakePools() {
  {
    std::lock_guard lk(poolMu);
    poolWake = true;
  }
  poolCv.notify_all();
}

Result<std::shared_ptr<SandboxProvider>> SandboxService::Impl::poolProvider(
    const SandboxConfig& cfg) {
  if (cfg.providerType == ProviderType::Docker) {
    // A warm Docker sandbox is made before its egress is known: no network, or (egress
    // firewall) a network of its own that the claim's allowlist opens. A profile whose cold
    // sandboxes get a bridge or internal network without an allowlist would get less.
    if (cfg.network != NetworkMode::None && cfg.allowedEgressHosts.empty()) {
      return Error(ErrorCode::WarmPoolDisabled,
                   std::string("warm Docker sandboxes have no network but their allowlist; "
                               "profile '") +
                       cfg.name + "' has network '" + toString(cfg.network) +
                       "' without one (set network none, or an allowedEgressHosts allowlist)");
    }
    auto p = providerFor(ProviderType::Docker);
    if (!p) return Error(ErrorCode::SandboxProviderUnavailable, "no Docker provider");
    return p;
  }
  if (!opts.enableK8s && !cfg.enableK8s) {
    return Error(ErrorCode::K8sDisabled, "Kubernetes sandboxes are disabled");
  }
  auto k = kubernetesFor(cfg);
  if (!k.ok()) return k.takeError();
  if (!k.value()) {
    return Error(ErrorCode::SandboxProviderUnavailable,
                 "the Kubernetes provider is not configured");
  }
  return std::move(k).value();
}

SandboxSpec SandboxService::Impl::specFor(const SandboxConfig& cfg, const std::string& id) {
  SandboxSpec spec;
  spec.id = id;
  spec.image = cfg.image;
  spec.memoryMb = cfg.memoryMb;
  spec.cpu = cfg.cpu;
  spec.pidsLimit = cfg.pidsLimit;
  spec.network = cfg.network;
  spec.kubernetes.kubeConfigPath = cfg.kubeConfigPath;  // a create checks it (the path rule)
  spec.kubernetes.kubeContext = cfg.kubeContext;
  spec.kubernetes.kubeNamespace = cfg.kubeNamespace;
  spec.kubernetes.networkPolicyEnabled = cfg.networkPolicyEnabled;
  spec.kubernetes.workspaceVolume = cfg.workspaceVolume;
  spec.kubernetes.storageClass = cfg.storageClass;
  spec.kubernetes.workspaceSizeGi = cfg.workspaceSizeGi;
  spec.kubernetes.startupTimeoutSeconds = cfg.startupTimeoutSeconds;
  spec.warmUid = opts.warmUid;
  spec.warmGid = opts.warmGid;
  return spec;
}

// One warm create, on a thread of its own (the pool's upkeep starts it and goes on).
void SandboxService::Impl::warmOne(const SandboxConfig& cfg,
                                   const std::shared_ptr<SandboxProvider>& prov,
                                   std::stop_token stop) {
  SandboxSpec spec = specFor(cfg, newId("sbx"));
  spec.extraLabels[labels::kWarmPool] = "true";
  spec.extraLabels[labels::kWarmPoolState] = "warm";
  SandboxRecord row;
  row.info.id = spec.id;
  row.info.provider = prov->type();
  row.info.instance = prov->instance();
  row.info.state = SandboxState::Creating;
  row.info.image = spec.image;
  row.configId = cfg.id;
  row.status = st::kWarming;
  row.createdAtUnix = row.info.createdAtUnix = nowSec();
  row.lastActivityUnix = row.createdAtUnix;

  InflightGuard guard(*this, spec.id);
  auto failed = [&](const Error& e) {
    spdlog::warn("warm pool {}: warm sandbox {}: {}", cfg.name, spec.id, e.describe());
    std::lock_guard lk(poolMu);
    auto& p = poolState(cfg.id);
    p.lastError = e.describe();
    p.failures++;
    const std::int64_t wait =
        std::min(kBackoffMaxMs, kBackoffFirstMs << std::min(p.failures - 1, 10));
    p.retryAtMs = nowMs() + wait;
  };
  if (auto ins = store.insertSandbox(row); !ins.ok()) {
    failed(ins.error());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  CreateControl control;
  control.stop = stop;
  auto made = prov->createWarm(spec, control);
  if (made.ok() && stop.stop_requested()) made = createCancelledError(spec.id);
  if (!made.ok()) {
    (void)store.setSandboxStatus(spec.id, st::kRemoved, made.error().message,
                                 std::string(st::kWarming));
    if (auto rm = prov->remove(sandboxRef(row.info)); !rm.ok()) {
      spdlog::warn("warm sandbox {}: cleanup: {} (reconcile retries)", spec.id,
                   rm.error().describe());
    }
    if (made.error().code != ErrorCode::SandboxCreateCancelled) failed(made.error());
    return;
  }
  row.status = st::kWarm;
  row.info.state = SandboxState::Running;
  row.info.containerId = made->containerId;
  row.info.podName = made->podName;
  row.info.podNamespace = made->podNamespace;
  row.info.podUid = made->podUid;
  row.lastActivityUnix = nowSec();  // the idle TTL counts from here
  auto upd = store.updateSandbox(row, std::string(st::kWarming));
  if (!upd.ok() || !upd.value()) {
    // Drained (profile changed) while it was made.
    (void)prov->remove(sandboxRef(row.info));
    return;
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  spdlog::info("warm pool {}: sandbox {} warm in {} ms", cfg.name, spec.id, ms);
  std::lock_guard lk(poolMu);
  auto& p = poolState(cfg.id);
  p.failures = 0;
  p.lastError.clear();
}

// Removes a pool row's sandbox (drain, idle TTL): the row CAS first, so a claim racing it
// wins or loses cleanly.
void SandboxService::Impl::retireWarm(const SandboxRecord& row, const std::string& why) {
  auto cas = store.setSandboxStatus(row.info.id, st::kRemoved, why, row.status);
  if (!cas.ok() || !cas.value()) return;  // claimed meanwhile
  auto prov = providerOf(row);
  if (!prov) return;  // reconcile removes it once the instance is back
  if (auto rm = prov->remove(sandboxRef(row.info)); !rm.ok()) {
    spdlog::warn("warm sandbox {}: remove ({}): {} (reconcile retries)", row.info.id, why,
                 rm.error().describe());
  }
  audit(row.info.id, "pool", "pool.retire", json{{"reason", why}, {"configId", row.configId}},
        true);
}

void SandboxService::Impl::drainPool(const std::string& configId, const std::string& why,
                                     bool wait) {
  // Held while waiting: no upkeep pass starts another create for this pool meanwhile, nor
  // erases a thread being joined.
  std::unique_lock upkeep(poolUpkeepMu, std::defer_lock);
  if (wait) upkeep.lock();
  std::vector<std::jthread*> stopping;
  {
    std::lock_guard lk(poolMu);
    for (auto& w : warmers) {
      if (w.configId != configId) continue;
      w.thread.request_stop();  // a warming one ends removed
      stopping.push_back(&w.thread);
    }
  }
  if (wait) {
    for (auto* t : stopping)
      if (t->joinable()) t->join();
  }
  auto rows = store.listSandboxes(false);
  if (rows.ok()) {
    for (const auto& r : rows.value()) {
      if (r.configId == configId && r.status == st::kWarm) retireWarm(r, why);
    }
  }
  wakePools();
}

Result<void> SandboxService::Impl::maintainPools(bool wait) {
  // Waiting, pass again until a pass starts nothing: a pool fills beyond the creates one pass
  // may have in flight.
  for (;;) {
    auto started = maintainOnce(wait);
    if (!started.ok()) return started.takeError();
    if (!wait || started.value() == 0) return {};
  }
}

Result<int> SandboxService::Impl::maintainOnce(bool wait) {
  std::lock_guard one(poolUpkeepMu);
  int startedCount = 0;
  // Finished creates first.
  {
    std::lock_guard lk(poolMu);
    std::erase_if(warmers, [](const Warmer& w) { return w.done->load(); });
  }
  // Creates in flight are counted before the rows are read: one that ends in between is then
  // counted twice (never not at all), so the bounds hold.
  std::map<std::string, int> inFlight;
  int total = 0;  // the server-wide bound over every pool: warm rows and creates in flight
  {
    std::lock_guard lk(poolMu);
    for (const auto& w : warmers) {
      if (w.done->load()) continue;
      ++inFlight[w.configId];
      ++total;
    }
  }
  // Waiting, a pass that found creates in flight is followed by another (they may have been
  // counted twice, which held back a start).
  startedCount = total;
  auto configs = store.listConfigs();
  if (!configs.ok()) return configs.takeError();
  auto rows = store.listSandboxes(false);
  if (!rows.ok()) return rows.takeError();
  const std::int64_t now = nowMs();
  std::vector<std::jthread*> started;  // list nodes: stable
  for (const auto& r : rows.value())
    total += r.status == st::kWarm ? 1 : 0;

  for (const auto& cfg : configs.value()) {
    std::vector<const SandboxRecord*> warm;
    for (const auto& r : rows.value()) {
      if (r.configId == cfg.id && r.status == st::kWarm) warm.push_back(&r);
    }
    if (cfg.warmPoolMin <= 0 && warm.empty()) {
      std::lock_guard lk(poolMu);
      if (auto it = pools.find(cfg.id); it != pools.end()) it->second.target = 0;
      continue;
    }
    auto prov = poolProvider(cfg);
    if (prov.ok()) {
      if (auto ok = prov.value()->warmSupported(); !ok.ok()) prov = ok.takeError();
    }
    std::lock_guard lk(poolMu);
    auto& p = poolState(cfg.id);
    if (!prov.ok()) {
      p.available = false;
      p.lastError = prov.error().describe();
      continue;
    }
    p.available = true;
    p.instance = prov.value()->instance();
    while (!p.claimTimesMs.empty() && now - p.claimTimesMs.front() > kAutoscaleWindowMs)
      p.claimTimesMs.pop_front();
    const int max = effectiveMax(cfg);
    // Min 0 is no pool: recent claims never start one (a prewarm 0 right after claims did,
    // and the refill outlived it).
    p.target = cfg.warmPoolMin == 0
                   ? 0
                   : std::min(max, cfg.warmPoolMin + static_cast<int>(p.claimTimesMs.size()));
    const int warming = inFlight[cfg.id];
    // Warm sandboxes on another instance (the profile now names another cluster) or beyond
    // the target and idle for the TTL go; the oldest first.
    std::vector<const SandboxRecord*> retire;
    int kept = 0;
    for (const auto* r : warm) {
      const bool elsewhere = r->info.instance != p.instance;
      const bool idle = now / 1000 - r->lastActivityUnix >= cfg.warmPoolIdleTtlSeconds;
      if (elsewhere || (kept + warming >= p.target && idle))
        retire.push_back(r);
      else
        ++kept;
    }
    int need = p.target - kept - warming;
    if (need > 0 && now >= p.retryAtMs) {
      need = std::min({need, kMaxWarmingPerPool - warming, opts.warmPoolLimit - total});
      if (need <= 0 && total >= opts.warmPoolLimit) {
        p.lastError = "the server's warm pool limit (" + std::to_string(opts.warmPoolLimit) +
                      " sandboxes over all pools) is reached";
      }
      total += std::max(need, 0);
      for (int i = 0; i < need; ++i) {
        auto done = std::make_shared<std::atomic<bool>>(false);
        Warmer w;
        w.configId = cfg.id;
        w.done = done;
        w.thread = std::jthread([this, cfg, prv = prov.value(), done](std::stop_token stop) {
          try {
            warmOne(cfg, prv, stop);
          } catch (const std::exception& e) {
            spdlog::error("warm pool {}: {}", cfg.name, e.what());
          }
          done->store(true);
        });
        warmers.push_back(std::move(w));
        ++startedCount;
      }
    }
    if (!retire.empty()) {
      // Outside poolMu: removes are provider calls.
      poolMu.unlock();
      for (const auto* r : retire)
        retireWarm(*r, r->info.instance != p.instance ? "profile moved to another instance"
                                                      : "idle beyond the pool's target");
      poolMu.lock();
    }
  }
  if (wait) {
    // Every create in flight, also those an earlier pass started (list nodes stay put: only
    // this function, under poolUpkeepMu, erases them).
    {
      std::lock_guard lk(poolMu);
      for (auto& w : warmers)
        started.push_back(&w.thread);
    }
    for (auto* t : started)
      if (t->joinable()) t->join();
  }
  return startedCount;
}

void SandboxService::Impl::poolLoop() {
  std::unique_lock lk(poolMu);
  while (!poolStop) {
    poolCv.wait_for(lk, std::chrono::seconds(1), [this] { return poolStop || poolWake; });
    if (poolStop) break;
    poolWake = false;
    // After claims: none under way and none for kRefillQuiet (the claimed sandboxes' first
    // commands), kRefillDeferral at most.
    const auto deadline = std::chrono::steady_clock::now() + kRefillDeferral;
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (poolStop || now >= deadline) break;
      const auto quietAt = lastClaimEnd + kRefillQuiet;
      if (claimsInFlight == 0 && now >= quietAt) break;
      poolCv.wait_until(lk, claimsInFlight == 0 ? std::min(deadline, quietAt) : deadline);
    }
    if (poolStop) break;
    lk.unlock();
    try {
      if (auto r = maintainPools(false); !r.ok())
        spdlog::warn("warm pool upkeep: {}", r.error().describe());
    } catch (const std::exception& e) {
      spdlog::error("warm pool upkeep threw: {}", e.what());
    }
    lk.lock();
  }
}

void SandboxService::Impl::stopPools() {
  std::thread t;
  std::list<Warmer> ws;
  {
    std::lock_guard lk(poolMu);
    poolStop = true;
    t = std::move(poolThread);
  }
  poolCv.notify_all();
  if (t.joinable()) t.join();
  {
    std::lock_guard lk(poolMu);
    ws = std::move(warmers);
    warmers.clear();
  }
  // Each jthread is asked to stop and joined: a create in flight removes what it made.
  ws.clear();
}

// A create's try at the pool; nullopt: a miss (why in *missReason), the caller makes a cold
// sandbox. An Error is the create's answer (the project has a live sandbox already).
std::optional<Result<SandboxRecord>> SandboxService::Impl::claimFromPool(
    const SandboxConfig& cfg, SandboxProvider& prov, const SandboxSpec& want,
    const std::string& actor, const CreateControl& control, std::string* missReason) {
  auto miss = [&](std::string why) -> std::optional<Result<SandboxRecord>> {
    *missReason = std::move(why);
    std::lock_guard lk(poolMu);
    auto& p = poolState(cfg.id);
    p.misses++;
    p.claimTimesMs.push_back(nowMs());  // a miss is demand too
    return std::nullopt;
  };
  struct stat sb {};
  if (::stat(want.projectPath.c_str(), &sb) == 0 &&
      (sb.st_uid != opts.warmUid || (sb.st_gid != opts.warmGid && sb.st_gid != 0))) {
    return miss("the project is owned by " + std::to_string(sb.st_uid) + ":" +
                std::to_string(sb.st_gid) + ", warm sandboxes run as " +
                std::to_string(opts.warmUid) + ":" + std::to_string(opts.warmGid));
  }
  {
    std::lock_guard lk(poolMu);
    ++claimsInFlight;
  }
  struct ClaimEnds {
    Impl& impl;
    ~ClaimEnds() {
      {
        std::lock_guard lk(impl.poolMu);
        --impl.claimsInFlight;
        impl.lastClaimEnd = std::chrono::steady_clock::now();
      }
      impl.poolCv.notify_all();
    }
  } claimEnds{*this};
  auto rows = store.listSandboxes(false);
  if (!rows.ok()) return miss("state table: " + rows.error().message);
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& cand : rows.value()) {
    if (cand.configId != cfg.id || cand.status != st::kWarm ||
        cand.info.instance != prov.instance()) {
      continue;
    }
    SandboxRecord row = cand;
    row.status = st::kClaiming;
    row.info.state = SandboxState::Creating;
    row.info.projectId = want.projectId;
    row.info.agentId = want.agentId;
    row.info.projectPath = want.projectPath;
    row.execEnv = want.env;
    row.fromPool = true;
    row.lastActivityUnix = nowSec();
    auto cas = store.updateSandbox(row, std::string(st::kWarm));
    if (!cas.ok()) return Result<SandboxRecord>(cas.takeError());  // the project has one
    if (!cas.value()) continue;                                    // another create took it
    InflightGuard guard(*this, row.info.id);
    auto progress = [&](const char* phase, const std::string& message) {
      if (control.onProgress) control.onProgress(CreateProgress{phase, message, row.info.id});
    };
    progress("accepted", "sandbox " + row.info.id + " on " + toString(prov.type()) + " (" +
                             prov.instance() + "), warm, from the pool of profile '" + cfg.name +
                             "'");
    WarmClaim claim{want.projectId, want.agentId, want.projectPath, want.allowedEgressHosts};
    auto got = prov.claimWarm(sandboxRef(cand.info), claim);
    if (!got.ok()) {
      const Error& e = got.error();
      if (e.code == ErrorCode::SandboxProjectPathInvalid) {
        // Nothing changed on the provider: it is warm again.
        (void)store.updateSandbox(cand, std::string(st::kClaiming));
        return miss(e.message);
      }
      spdlog::warn("warm pool {}: claim of {} failed: {}; it is removed", cfg.name, row.info.id,
                   e.describe());
      (void)store.setSandboxStatus(row.info.id, st::kRemoved, e.message,
                                   std::string(st::kClaiming));
      (void)prov.remove(sandboxRef(cand.info));
      audit(row.info.id, actor, "pool.claim", json{{"error", errorDetail(e)}}, false);
      continue;
    }
    noteReachable(prov.instance());  // the claim was answered: no check for a while
    row.status = st::kRunning;
    row.info.state = SandboxState::Running;
    auto done = store.updateSandbox(row, std::string(st::kClaiming));
    if (!done.ok() || !done.value()) {
      (void)prov.remove(sandboxRef(cand.info));
      return Result<SandboxRecord>(
          Error(ErrorCode::SandboxCreateFailed,
                "sandbox " + row.info.id + " was removed while it was being claimed"));
    }
    if (got->egress) saveEgress(row.info.id, want.allowedEgressHosts, *got->egress);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard lk(poolMu);
      auto& p = poolState(cfg.id);
      p.hits++;
      p.claimTimesMs.push_back(nowMs());
      p.claimSumMs += ms;
      std::size_t b = 0;
      while (b < std::size(kClaimBucketsMs) && ms > kClaimBucketsMs[b])
        ++b;
      p.claimBuckets[b]++;
    }
    progress("ready", "warm sandbox " + row.info.id + " claimed in " +
                          std::to_string(static_cast<int>(ms)) + " ms");
    wakePools();  // refill
    return Result<SandboxRecord>(std::move(row));
  }
  return miss("no warm sandbox of profile '" + cfg.name + "' is ready");
}

Result<std::vector<WarmPoolInfo>> SandboxService::warmPools() {
  auto& I = *impl_;
  auto configs = I.store.listConfigs();
  if (!configs.ok()) return configs.takeError();
  auto rows = I.store.listSandboxes(false);
  if (!rows.ok()) return rows.takeError();
  std::vector<WarmPoolInfo> out;
  std::lock_guard lk(I.poolMu);
  for (const auto& cfg : configs.value()) {
    auto it = I.pools.find(cfg.id);
    int warm = 0, warming = 0, claimed = 0;
    for (const auto& r : rows.value()) {
      if (r.configId != cfg.id) continue;
      if (r.status == st::kWarm) ++warm;
      if (r.status == st::kWarming) ++warming;
      if (r.fromPool && isLiveSandboxStatus(r.status)) ++claimed;
    }
    if (cfg.warmPoolMin <= 0 && it == I.pools.end() && warm + warming + claimed == 0) continue;
    WarmPoolInfo info;
    info.configId = cfg.id;
    info.configName = cfg.name;
    info.provider = toString(cfg.providerType);
    info.min = cfg.warmPoolMin;
    info.max = effectiveMax(cfg);
    info.idleTtlSeconds = cfg.warmPoolIdleTtlSeconds;
    info.warm = warm;
    info.starting = warming;
    info.claimed = claimed;
    info.target = cfg.warmPoolMin;
    info.claimBuckets.assign(std::size(kClaimBucketsMs) + 1, 0);
    if (it != I.pools.end()) {
      const auto& p = it->second;
      info.instance = p.instance;
      info.target = p.target;
      info.hits = p.hits;
      info.misses = p.misses;
      info.claimBuckets = p.claimBuckets;
      info.claimSumMs = p.claimSumMs;
      info.available = p.available;
      info.lastError = p.lastError;
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<WarmPoolInfo> SandboxService::prewarm(const std::string& configRef, int count,
                                             const std::string& actor) {
  auto& I = *impl_;
  if (count < 0 || count > config_limits::kWarmPoolMax) {
    return Error(ErrorCode::ValidationError,
                 "count must be 0.." + std::to_string(config_limits::kWarmPoolMax),
                 {{"field", "count"}});
  }
  Result<SandboxConfig> cfg = Error(ErrorCode::SandboxConfigNotFound, "");
  if (configRef.empty()) {
    cfg = I.ensureDefaultConfig();
  } else {
    cfg = I.store.getConfig(configRef);
    if (!cfg.ok() && cfg.error().code == ErrorCode::SandboxConfigNotFound) {
      auto all = I.store.listConfigs();
      if (!all.ok()) return all.takeError();
      for (const auto& c : all.value()) {
        if (c.name == configRef) cfg = c;
      }
    }
  }
  if (!cfg.ok()) {
    Error e = cfg.takeError();
    e.details["field"] = "profile";
    return e;
  }
  SandboxConfig c = cfg.value();
  // Refused up front when this provider can keep no warm sandboxes.
  auto prov = I.poolProvider(c);
  if (prov.ok()) {
    if (auto ok = prov.value()->warmSupported(); !ok.ok()) prov = ok.takeError();
  }
  if (!prov.ok() && count > 0) {
    Error e = prov.takeError();
    if (e.code != ErrorCode::WarmPoolDisabled) {
      e = Error(ErrorCode::WarmPoolDisabled,
                "profile '" + c.name + "' cannot have a warm pool: " + e.message,
                {{"profile", c.name}});
    }
    I.audit("", actor, "pool.prewarm",
            json{{"configId", c.id}, {"count", count}, {"error", errorDetail(e)}}, false);
    return e;
  }
  c.warmPoolMin = count;
  if (c.warmPoolMax != 0 && c.warmPoolMax < count) c.warmPoolMax = count;
  c.updatedAtUnix = I.nowSec();
  AP_TRY(I.store.updateConfig(c));
  {
    std::lock_guard lk(I.poolMu);
    auto& p = I.poolState(c.id);
    p.retryAtMs = 0;  // an explicit ask retries now
    p.failures = 0;
  }
  I.audit("", actor, "pool.prewarm", json{{"configId", c.id}, {"name", c.name}, {"count", count}},
          true);
  // Asked for fewer: the extras go now, not after the idle TTL (the oldest are kept).
  if (auto rows = I.store.listSandboxes(false); rows.ok()) {
    int kept = 0;
    for (const auto& r : rows.value()) {
      if (r.configId != c.id || r.status != sandbox_status::kWarm) continue;
      if (kept < count)
        ++kept;
      else
        I.retireWarm(r, "pool of profile '" + c.name + "' set to " + std::to_string(count));
    }
  }
  // Emptied: once this returns, nothing of the pool is left or still being made.
  if (count == 0) I.drainPool(c.id, "pool of profile '" + c.name + "' set to 0", true);
  AP_TRY(I.maintainPools(false));
  auto pools = warmPools();
  if (!pools.ok()) return pools.takeError();
  for (auto& p : pools.value()) {
    if (p.configId == c.id) return p;
  }
  WarmPoolInfo none;
  none.configId = c.id;
  none.configName = c.name;
  none.provider = toString(c.providerType);
  return none;
}

Result<void> SandboxService::maintainPools(bool wait) {
  return impl_->maintainPools(wait);
}

}  // namespace agentpane
