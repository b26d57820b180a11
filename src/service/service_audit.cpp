// SandboxService: the audit log (writes through Auditor, reads through audit()), lifecycle
// events and their subscribers, and the counts /metrics reports.
#include <spdlog/spdlog.h>

#include "audit/ledger.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"

namespace agentpane {

using nlohmann::json;
namespace st = sandbox_status;

json errorDetail(const Error& e) {
  return json{{"code", std::string(errorName(e.code))}, {"message", e.message}};
}

// The argv as recorded in the audit log: every argument, each cut at 1 KiB, at most 256
// arguments, so that one exec cannot blow up the log.
json auditArgv(const std::vector<std::string>& argv) {
  json out = json::array();
  for (std::size_t i = 0; i < argv.size() && i < 256; ++i) {
    const auto& a = argv[i];
    out.push_back(a.size() > 1024 ? a.substr(0, 1024) + "…" : a);
  }
  if (argv.size() > 256) out.push_back("… " + std::to_string(argv.size() - 256) + " more");
  return out;
}

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
  if (ledger_) {
    audit::LedgerEvent le;
    le.atUnixMs = e.atUnixMs;
    le.event = action;
    le.actor = actor;
    le.sandboxId = sandboxId;
    le.ok = ok;
    le.detail = detail.is_object() ? detail : json{{"value", detail}};
    auto seq = ledger_->append(le);
    if (seq.ok()) {
      e.ledgerSeq = seq->seq;
    } else {
      audit::writeFailures().ledger++;
      spdlog::error("audit ledger: {} {} not recorded: {}", action, sandboxId,
                    seq.error().describe());
    }
  }
  auto r = store_.appendAudit(e);
  if (!r.ok()) {
    audit::writeFailures().index++;
    spdlog::error("audit {} {}: {}", action, sandboxId, r.error().describe());
  }
}

void Auditor::beginWork(const std::string& sandboxId) {
  std::lock_guard lk(workMu_);
  ++work_[sandboxId];
}

void Auditor::endWork(const std::string& sandboxId) {
  std::lock_guard lk(workMu_);
  auto it = work_.find(sandboxId);
  if (it == work_.end()) return;
  if (--it->second <= 0) work_.erase(it);
}

int Auditor::workInProgress(const std::string& sandboxId) const {
  std::lock_guard lk(workMu_);
  auto it = work_.find(sandboxId);
  return it == work_.end() ? 0 : it->second;
}

void Auditor::touch(const std::string& sandboxId) {
  auto r = store_.touchSandbox(sandboxId, nowMs_() / 1000);
  if (!r.ok() && r.error().code != ErrorCode::SandboxNotFound) {
    spdlog::warn("touch {}: {}", sandboxId, r.error().describe());
  }
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

Result<std::vector<AuditEntry>> SandboxService::audit(const AuditQuery& q) {
  return impl_->store.queryAudit(q);
}

void SandboxService::recordEvent(const std::string& sandboxId, const std::string& actor,
                                 const std::string& event, const std::string& detailJson, bool ok) {
  json detail = json::parse(detailJson, nullptr, /*allow_exceptions=*/false);
  if (detail.is_discarded() || !detail.is_object()) detail = json{{"text", detailJson}};
  impl_->audit(sandboxId, actor, event, detail, ok);
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
