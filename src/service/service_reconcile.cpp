// SandboxService: reconcile (rows against what the providers report).
//
// Reconcile rules, per registered provider whose list() answered (an unreachable provider is
// skipped: unreachable is not vanished):
//   row removed (tombstone)  + object exists  -> remove the object (we no longer own it)
//   row creating, not in flight in this process (a crash mid-create):
//                             object running  -> running
//                             object not running -> remove it, row error
//                             no object, older than orphanGrace -> error
//   row error + object, never recorded as created (no container/pod) -> remove the leftover
//   row running/stopping/stopped + no object  -> gone
//   row stopping + object no longer running   -> stopped
//   row migrating (a migrate a crash interrupted):
//                             the project's replacement runs -> object removed, row removed
//                             the project has no live sandbox -> status follows the object
//   row running/stopped + object in another state -> status follows the object (a stopped
//                                                    row does not turn into error)
//   row gone + object back   -> status follows the object
//   row warming/claiming, not in flight (a crash) -> object removed, row removed
//   row warm + object running                 -> left to the pool
//   row warm + no object or not running       -> object removed, row removed
//   object without a row:
//     state unknown                           -> looked at again next time
//     labels complete (valid id, project id), running/stopped/failed -> adopted (row inserted)
//     otherwise (incomplete labels, never started, a pool leftover, a second live sandbox
//     for a project)                          -> removed as an orphan once older than orphanGrace
#include <spdlog/spdlog.h>

#include <chrono>

#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

namespace {

std::string labelOf(const SandboxInfo& info, const char* key) {
  auto it = info.labels.find(key);
  return it == info.labels.end() ? std::string() : it->second;
}

constexpr const char* kActor = "reconcile";

}  // namespace

Result<void> SandboxService::Impl::reconcile() {
  std::lock_guard lk(reconcileMu);
  // Rows are read before the providers are listed: a row that exists now has its object
  // already made (or is in flight), so "listed without it" really means vanished.
  auto rows = store.listSandboxes(/*includeRemoved=*/true);
  if (!rows.ok()) return rows.takeError();
  restoreInstancesOf(rows.value());  // the clusters profiles named are listed too
  std::map<std::string, const SandboxRecord*> rowById;
  for (const auto& r : rows.value())
    rowById[r.info.id] = &r;

  std::set<std::string> listedIds;
  bool allListed = true;
  for (const auto& prov : allProviders()) {
    ListFilter filter;
    filter.includeStopped = true;
    auto listed = prov->list(filter);
    if (!listed.ok()) {
      spdlog::warn("reconcile: provider {} list failed, skipped: {}", prov->instance(),
                   listed.error().describe());
      allListed = false;
      continue;
    }
    std::map<std::string, const SandboxInfo*> found;
    for (const auto& info : listed.value()) {
      if (info.id.empty()) {
        spdlog::warn("reconcile: a labelled {} sandbox without a sandbox id ({}{}) is ignored",
                     toString(prov->type()), info.containerId, info.podName);
        continue;
      }
      found[info.id] = &info;
      listedIds.insert(info.id);
    }
    for (const auto& row : rows.value()) {
      if (row.info.instance != prov->instance() || isInflight(row.info.id)) continue;
      auto it = found.find(row.info.id);
      settleRow(row, it == found.end() ? nullptr : it->second, *prov);
    }
    for (const auto& [id, info] : found) {
      if (rowById.count(id) != 0 || isInflight(id)) continue;
      // Made after our snapshot of the rows (a create that finished meanwhile)?
      if (store.getSandbox(id).ok()) continue;
      handleUnknown(*info, *prov);
    }
  }

  // Forget first-seen times of orphans that went away by themselves.
  if (allListed) {
    std::lock_guard ol(orphansMu);
    for (auto it = orphanFirstSeen.begin(); it != orphanFirstSeen.end();) {
      if (listedIds.count(it->first) == 0)
        it = orphanFirstSeen.erase(it);
      else
        ++it;
    }
  }
  return {};
}

void SandboxService::Impl::settleRow(const SandboxRecord& row, const SandboxInfo* found,
                                     SandboxProvider& prov) {
  const std::string& id = row.info.id;
  const std::string& status = row.status;
  const std::int64_t grace = opts.orphanGrace.count();
  // A compare-and-set from the status reconcile read: false when the row changed meanwhile
  // (a request, a create or claim that has just finished), which wins.
  auto setStatus = [&](const std::string& to, const std::string& error, const char* event) {
    auto r = store.setSandboxStatus(id, to, error, status);
    if (!r.ok()) {
      spdlog::warn("reconcile: sandbox {} {} -> {}: {}", id, status, to, r.error().describe());
      return false;
    }
    if (!r.value()) return false;
    audit(id, kActor, "reconcile.status", json{{"from", status}, {"to", to}, {"error", error}},
          true);
    if (event != nullptr) emit(event, id, error);
    return true;
  };
  auto removeObject = [&](const std::string& why) {
    auto r = prov.remove(found != nullptr ? sandboxRef(*found) : sandboxRef(row.info));
    audit(id, kActor, "reconcile.remove",
          r.ok() ? json{{"reason", why}} : json{{"reason", why}, {"error", errorDetail(r.error())}},
          r.ok());
    if (!r.ok()) spdlog::warn("reconcile: remove {} ({}): {}", id, why, r.error().describe());
    return r.ok();
  };

  if (status == st::kRemoved) {
    if (found != nullptr) removeObject("removed through the API");
    return;
  }
  if (status == st::kWarming || status == st::kClaiming) {
    // Not in flight here: a crash interrupted it. A claim's caller never got an answer, so
    // neither is anybody's: removed (never warm again, never claimed twice).
    const std::string why =
        status == st::kWarming ? "warm create was interrupted" : "claim was interrupted";
    // The row first: the rows were read before the providers were listed, and a create or
    // claim that finished since must keep what it made. (A failed remove is retried: a
    // removed row's object goes.)
    if (setStatus(st::kRemoved, why, nullptr) && found != nullptr) removeObject(why);
    return;
  }
  if (status == st::kWarm) {
    if (found != nullptr && found->state == SandboxState::Running) return;  // the pool's
    const std::string why = found == nullptr ? "warm sandbox vanished from the provider"
                                             : "warm sandbox is no longer running";
    if (setStatus(st::kRemoved, why, nullptr) && found != nullptr) removeObject(why);
    return;
  }
  if (status == st::kCreating) {
    if (found != nullptr && found->state == SandboxState::Running) {
      SandboxRecord updated = row;
      updated.status = st::kRunning;
      updated.info.containerId = found->containerId;
      updated.info.podName = found->podName;
      updated.info.podNamespace = found->podNamespace;
      updated.info.podUid = found->podUid;
      updated.lastActivityUnix = nowSec();
      auto r = store.updateSandbox(updated, std::string(st::kCreating));
      if (r.ok() && r.value()) {
        audit(id, kActor, "reconcile.status", json{{"from", status}, {"to", st::kRunning}}, true);
        emit("ready", id);
      }
    } else if (found != nullptr) {
      // Listed before a create in flight had started its object: only once the row says
      // error (nobody finished it meanwhile) does the object go.
      if (setStatus(st::kError, "create was interrupted", "error"))
        removeObject("create was interrupted");
    } else if (nowSec() - row.createdAtUnix > grace) {
      setStatus(st::kError, "create was interrupted; nothing was made on the provider", "error");
    }
    return;
  }
  if (status == st::kError) {
    if (found != nullptr && row.info.containerId.empty() && row.info.podName.empty()) {
      removeObject("leftover of a failed create");
    }
    return;
  }
  if (found == nullptr) {
    if (status != st::kGone) setStatus(st::kGone, "vanished from the provider", "gone");
    return;
  }
  auto follows = statusFromState(found->state);
  if (status == st::kMigrating) {
    // A migrate a crash interrupted: done once the project's replacement runs (the old one
    // goes); abandoned when the project has no live sandbox (it is back where it was).
    auto siblings = store.listSandboxes(/*includeRemoved=*/false);
    if (!siblings.ok()) return;
    for (const auto& other : siblings.value()) {
      if (other.info.id == id || other.info.projectId != row.info.projectId ||
          !isLiveSandboxStatus(other.status)) {
        continue;
      }
      if (other.status != st::kRunning) return;  // its create is still settling
      if (removeObject("migrated to sandbox " + other.info.id)) {
        setStatus(st::kRemoved, "", "removed");
        (void)store.deleteTmuxSessions(id);
      }
      return;
    }
    if (follows) setStatus(*follows, "", *follows == st::kRunning ? "ready" : "stopped");
    return;
  }
  if (status == st::kStopping) {
    // A stop in flight, or one a crash interrupted: settled once the object has stopped.
    if (follows && *follows != st::kRunning) setStatus(st::kStopped, "", "stopped");
    return;
  }
  if (!follows || *follows == status) return;
  // A sandbox we stopped may exit non-zero (SIGTERM/SIGKILL); that is not a failure.
  if (status == st::kStopped && *follows == st::kError) return;
  const char* event = *follows == st::kRunning   ? "ready"
                      : *follows == st::kStopped ? "stopped"
                                                 : "error";
  setStatus(*follows, *follows == st::kError ? found->stateDetail : std::string(), event);
}

void SandboxService::Impl::handleUnknown(const SandboxInfo& info, SandboxProvider& prov) {
  const std::string& id = info.id;
  // Every warm sandbox has its row before it is made: one without is a leftover.
  bool pool = labelOf(info, labels::kWarmPool) == "true";
  std::string orphanWhy = pool ? "warm-pool sandbox without a row" : "incomplete labels";
  auto status = statusFromState(info.state);
  if (!pool && !status) {
    // Made but never started, with no row: a create that died before writing anything we
    // know of. Unknown (paused, restarting...) is not ours to judge: look again next time.
    if (info.state != SandboxState::Creating) return;
    orphanWhy = "a create that never finished";
  } else if (!pool && isValidSandboxId(id) && !info.projectId.empty()) {
    SandboxRecord row;
    row.info = info;
    row.info.provider = prov.type();
    row.info.instance = prov.instance();
    row.status = *status;
    row.error = *status == st::kError ? info.stateDetail : std::string();
    row.createdAtUnix = row.info.createdAtUnix =
        info.createdAtUnix > 0 ? info.createdAtUnix : nowSec();
    row.lastActivityUnix = nowSec();  // the idle clock starts at adoption
    auto r = store.insertSandbox(row);
    if (r.ok()) {
      audit(id, kActor, "reconcile.adopt",
            json{{"provider", toString(prov.type())},
                 {"projectId", info.projectId},
                 {"status", *status}},
            true);
      emit("adopted", id, *status);
      return;
    }
    if (r.error().code != ErrorCode::SandboxAlreadyExists) {
      spdlog::warn("reconcile: adopt {}: {}", id, r.error().describe());
      return;
    }
    orphanWhy = "project " + info.projectId + " already has a live sandbox";
  }

  std::int64_t now = nowSec();
  std::int64_t since = info.createdAtUnix;
  if (since <= 0) {
    std::lock_guard lk(orphansMu);
    since = orphanFirstSeen.try_emplace(id, now).first->second;
  }
  if (now - since < opts.orphanGrace.count()) return;
  auto r = prov.remove(sandboxRef(info));
  json detail{
      {"provider", toString(prov.type())}, {"instance", prov.instance()}, {"reason", orphanWhy}};
  if (!r.ok()) detail["error"] = errorDetail(r.error());
  audit(id, kActor, "reconcile.orphan_remove", detail, r.ok());
  if (r.ok()) {
    std::lock_guard lk(orphansMu);
    orphanFirstSeen.erase(id);
  } else {
    spdlog::warn("reconcile: orphan {}: {}", id, r.error().describe());
  }
}

Result<void> SandboxService::reconcile() {
  return impl_->reconcile();
}

}  // namespace agentpane
