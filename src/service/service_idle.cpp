// SandboxService: idle stop, and the background thread that runs reconcile and idle stop.
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

namespace st = sandbox_status;

std::optional<std::int64_t> SandboxService::Impl::lastTmuxActivity(const SandboxRecord& row) {
  auto prov = providerOf(row);
  if (!prov) return std::nullopt;
  TmuxController tmux(*prov);
  auto sessions = tmux.list(sandboxRef(row.info));
  if (!sessions.ok()) {
    spdlog::warn("idle {}: tmux sessions: {}", row.info.id, sessions.error().describe());
    return std::nullopt;
  }
  std::optional<std::int64_t> last;
  for (const auto& s : sessions.value()) {
    if (s.activityUnix > 0 && (!last || s.activityUnix > *last)) last = s.activityUnix;
  }
  return last;
}

Result<void> SandboxService::Impl::stopIdle() {
  auto rows = store.listSandboxes();
  if (!rows.ok()) return rows.takeError();
  auto configs = store.listConfigs();
  if (!configs.ok()) return configs.takeError();
  int defaultTimeout = SandboxConfig{}.timeoutMinutes;
  std::map<std::string, int> timeoutById;
  for (const auto& c : configs.value()) {
    timeoutById[c.id] = c.timeoutMinutes;
    if (c.isDefault) defaultTimeout = c.timeoutMinutes;
  }
  const std::int64_t now = nowSec();
  for (const auto& row : rows.value()) {
    if (row.status != st::kRunning) continue;
    auto it = timeoutById.find(row.configId);
    int minutes = it == timeoutById.end() ? defaultTimeout : it->second;
    const std::int64_t limit = static_cast<std::int64_t>(minutes) * 60;
    if (now - row.lastActivityUnix <= limit) continue;
    // Recorded activity is only the start and end of calls: a command still running, an
    // attached terminal or a tmux job that printed lately is use too.
    if (auditor->workInProgress(row.info.id) > 0) {
      auditor->touch(row.info.id);
      continue;
    }
    if (auto last = lastTmuxActivity(row); last && now - *last <= limit) {
      auto r = store.touchSandbox(row.info.id, *last);
      if (!r.ok()) spdlog::warn("idle {}: {}", row.info.id, r.error().describe());
      continue;
    }
    emit("idle", row.info.id, std::to_string(now - row.lastActivityUnix) + "s");
    auto r =
        stop(row.info.id, "idle", "idle for more than " + std::to_string(minutes) + " minutes");
    if (!r.ok()) spdlog::warn("idle stop {}: {}", row.info.id, r.error().describe());
  }
  return {};
}

void SandboxService::Impl::backgroundLoop() {
  using clock = std::chrono::steady_clock;
  auto runGuarded = [](const char* what, auto&& fn) {
    try {
      auto r = fn();
      if (!r.ok()) spdlog::warn("{}: {}", what, r.error().describe());
    } catch (const std::exception& e) {
      spdlog::error("{} threw: {}", what, e.what());
    }
  };
  const bool reconcileOn = opts.reconcileEvery.count() > 0;
  const bool idleOn = opts.idleCheckEvery.count() > 0;
  const bool egressOn = opts.egressRefreshEvery.count() > 0;
  auto nextReconcile = clock::now();  // at start, then periodically
  auto nextIdle = clock::now() + opts.idleCheckEvery;
  auto nextEgress = clock::now() + opts.egressRefreshEvery;
  std::unique_lock lk(bgMu);
  while (!bgStop) {
    auto now = clock::now();
    if (reconcileOn && now >= nextReconcile) {
      lk.unlock();
      runGuarded("reconcile", [this] { return reconcile(); });
      lk.lock();
      nextReconcile = clock::now() + opts.reconcileEvery;
      continue;
    }
    if (idleOn && now >= nextIdle) {
      lk.unlock();
      runGuarded("idle stop", [this] { return stopIdle(); });
      lk.lock();
      nextIdle = clock::now() + opts.idleCheckEvery;
      continue;
    }
    if (egressOn && now >= nextEgress) {
      lk.unlock();
      runGuarded("egress refresh", [this] { return refreshEgress(); });
      lk.lock();
      nextEgress = clock::now() + opts.egressRefreshEvery;
      continue;
    }
    auto wake = clock::time_point::max();
    if (reconcileOn) wake = std::min(wake, nextReconcile);
    if (idleOn) wake = std::min(wake, nextIdle);
    if (egressOn) wake = std::min(wake, nextEgress);
    if (wake == clock::time_point::max())
      bgCv.wait(lk, [this] { return bgStop; });
    else
      bgCv.wait_until(lk, wake, [this] { return bgStop; });
  }
}

Result<void> SandboxService::stopIdle() {
  return impl_->stopIdle();
}

void SandboxService::startBackground() {
  std::lock_guard lk(impl_->bgMu);
  if (impl_->bg.joinable()) return;
  impl_->bgStop = false;
  impl_->bg = std::thread([this] { impl_->backgroundLoop(); });
  std::lock_guard pl(impl_->poolMu);
  impl_->poolStop = false;
  impl_->poolThread = std::thread([this] { impl_->poolLoop(); });
}

void SandboxService::stopBackground() {
  std::thread t;
  {
    std::lock_guard lk(impl_->bgMu);
    impl_->bgStop = true;
    t = std::move(impl_->bg);
  }
  impl_->bgCv.notify_all();
  if (t.joinable()) t.join();
  impl_->stopPools();
}

}  // namespace agentpane
