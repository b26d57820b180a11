// Egress allowlists of running sandboxes: replacing one (PATCH /api/sandboxes/:id), and the
// scheduled re-resolution of host names whose addresses move (refreshEgress). The model is
// common/egress.hpp; each provider enforces it (SandboxEgress in provider.hpp).
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/egress.hpp"
#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "store/store.hpp"

namespace agentpane {

using nlohmann::json;

namespace {

std::vector<std::string> allowlistOf(const SandboxRecord& row) {
  auto j = json::parse(row.egressJson.empty() ? "{}" : row.egressJson, nullptr, false);
  std::vector<std::string> out;
  if (!j.is_object() || !j.contains("allowlist") || !j["allowlist"].is_array()) return out;
  for (const auto& e : j["allowlist"])
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

}  // namespace

std::optional<std::vector<std::string>> storedAllowlist(const SandboxRecord& row) {
  auto j = json::parse(row.egressJson.empty() ? "{}" : row.egressJson, nullptr, false);
  if (!j.is_object() || !j.contains("allowlist")) return std::nullopt;
  return allowlistOf(row);
}

namespace {

// host -> addresses, for saying what moved.
std::map<std::string, std::vector<std::string>> addressesOf(const json& status) {
  std::map<std::string, std::vector<std::string>> out;
  if (!status.is_object() || !status.contains("hosts")) return out;
  for (const auto& h : status["hosts"]) {
    std::vector<std::string> a;
    for (const auto& x : h.value("addresses", json::array()))
      a.push_back(x.get<std::string>());
    out[h.value("host", "")] = a;
  }
  return out;
}

}  // namespace

void SandboxService::Impl::saveEgress(const std::string& id,
                                      const std::vector<std::string>& allowlist,
                                      const EgressStatus& status) {
  json j = {{"allowlist", allowlist}, {"status", toJson(status)}};
  auto r = store.setSandboxEgress(id, j.dump());
  if (!r.ok()) spdlog::error("sandbox {}: cannot record its egress: {}", id, r.error().describe());
}

Result<SandboxRecord> SandboxService::setEgress(const std::string& id,
                                                const std::vector<std::string>& allowlist,
                                                const std::string& actor) {
  auto& I = *impl_;
  auto parsed = egress::parseAllowlist(allowlist, "allowEgress");
  if (!parsed.ok()) return parsed.takeError();
  std::lock_guard lock(I.egressMu);
  auto live = I.runningSandbox(id);
  if (!live.ok()) return live.takeError();
  const std::vector<std::string> before = allowlistOf(live->row);
  json detail = {{"allowlist", allowlist}, {"previous", before}};
  auto applied = live->provider->applyEgress(live->ref, allowlist);
  if (!applied.ok()) {
    detail["error"] = errorDetail(applied.error());
    I.audit(id, actor, "sandbox.egress", detail, false);
    return applied.takeError();
  }
  I.saveEgress(id, allowlist, *applied);
  detail["rules"] = applied->rules;
  detail["unresolved"] = applied->unresolved;
  detail["changed"] = applied->changed;
  I.audit(id, actor, "sandbox.egress", detail, true);
  spdlog::info(
      "egress: sandbox {}: allowlist replaced by {} ({} rules{})", id, actor, applied->rules.size(),
      applied->unresolved.empty() ? "" : ", unresolved: " + json(applied->unresolved).dump());
  return I.visibleRow(id);
}

Result<void> SandboxService::refreshEgress() {
  return impl_->refreshEgress();
}

Result<void> SandboxService::Impl::refreshEgress() {
  auto rows = store.listSandboxes();
  if (!rows.ok()) return rows.takeError();
  for (const auto& row : rows.value()) {
    if (row.status != sandbox_status::kRunning || isInflight(row.info.id)) continue;
    const auto allowlist = allowlistOf(row);
    auto parsed = egress::parseAllowlist(allowlist);
    if (!parsed.ok() || !egress::hasHostNames(*parsed)) continue;
    auto prov = providerOf(row);
    if (!prov) continue;
    std::lock_guard lock(egressMu);
    // Re-read under the lock: a PATCH may have replaced the list meanwhile.
    auto fresh = store.getSandbox(row.info.id);
    if (!fresh.ok() || fresh->status != sandbox_status::kRunning ||
        allowlistOf(*fresh) != allowlist)
      continue;
    auto applied = prov->applyEgress(sandboxRef(fresh->info), allowlist);
    if (!applied.ok()) {
      spdlog::warn("egress: sandbox {}: re-resolving its allowlist failed: {}", row.info.id,
                   applied.error().describe());
      continue;
    }
    const json old = json::parse(fresh->egressJson, nullptr, false);
    const json oldStatus = old.is_object() ? old.value("status", json::object()) : json::object();
    const json newStatus = toJson(*applied);
    saveEgress(row.info.id, allowlist, *applied);
    // A provider that re-applies what it already enforced (its memory of it lost with a
    // restart) has changed nothing worth recording.
    if (!applied->changed || (oldStatus.value("rules", json::array()) == newStatus["rules"] &&
                              addressesOf(oldStatus) == addressesOf(newStatus)))
      continue;
    json detail = {{"allowlist", allowlist},
                   {"before", addressesOf(oldStatus)},
                   {"after", addressesOf(newStatus)},
                   {"rules", applied->rules},
                   {"unresolved", applied->unresolved}};
    spdlog::info("egress: sandbox {}: host addresses changed {} -> {}; rules updated", row.info.id,
                 detail["before"].dump(), detail["after"].dump());
    audit(row.info.id, "egress", "egress.updated", detail, true);
  }
  return {};
}

}  // namespace agentpane
