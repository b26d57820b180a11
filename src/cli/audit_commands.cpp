#include "cli/audit_commands.hpp"
#include "cli/output.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audit/ledger.hpp"
#include "common/time.hpp"
#include "net/url.hpp"
#include "server/serve_main.hpp"

namespace agentpane::cli {

using json = nlohmann::json;

namespace {

// One line of detail for the table: an exec's argv and exit code, else the detail's JSON.
std::string summary(const json& e) {
  const json& d = e.contains("detail") ? e["detail"] : json();
  std::string out;
  if (e.value("action", "") == "exec" && d.is_object() && d.contains("argv") &&
      d["argv"].is_array()) {
    for (const auto& a : d["argv"])
      out += (out.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
    if (d.contains("exitCode")) out += "  -> " + d["exitCode"].dump();
    if (d.contains("error")) out += "  -> " + d["error"].value("code", std::string("error"));
  } else {
    out = d.is_null() ? "" : d.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (out.size() > 100) out = out.substr(0, 97) + "...";
  return out;
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::int64_t> parseAuditTime(const std::string& text, std::int64_t nowUnixMs) {
  auto bad = [&] {
    return Error(ErrorCode::ValidationError,
                 "'" + text +
                     "' is not a time: give RFC 3339 (2026-12-04T20:00:00Z), Unix "
                     "milliseconds, or an age such as 90s, 15m, 2h, 7d");
  };
  if (text.empty()) return bad();
  const bool digits =
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    if (text.size() > 18) return bad();
    return static_cast<std::int64_t>(std::stoll(text));
  }
  const char unit = text.back();
  const std::string count = text.substr(0, text.size() - 1);
  if (!count.empty() && count.size() <= 9 &&
      std::all_of(count.begin(), count.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t n = std::stoll(count);
    std::int64_t unitMs = unit == 's'   ? 1000
                          : unit == 'm' ? 60'000
                          : unit == 'h' ? 3'600'000
                          : unit == 'd' ? 86'400'000
                                        : 0;
    if (unitMs > 0) return std::max<std::int64_t>(0, nowUnixMs - n * unitMs);
  }
  auto t = parseRfc3339(text);
  if (!t.ok() || t->unixSeconds < 0) return bad();
  return t->unixSeconds * 1000 + t->nanos / 1000000;
}

AuditCommands::AuditCommands(CLI::App& app) {
  audit_ = app.add_subcommand("audit", "The audit ledger");
  audit_->require_subcommand(1);
  verify_ = audit_->add_subcommand(
      "verify", "Check the ledger's hash chain; name the first edited, deleted or moved entry");
  verify_->add_option("--dir", dir_,
                      "Ledger directory (default: the audit folder of AGENTPANE_HOME or "
                      "~/.agentpane)");
  verify_->add_option("--expect-head", expectHead_,
                      "SEQ:HASH of a head printed by an earlier verify and kept elsewhere: "
                      "that entry must still be there, unchanged (finds entries deleted from "
                      "the end)");
  verify_->add_flag("--json", json_);
  ls_ = audit_->add_subcommand("ls", "Audit entries, newest first");
  ls_->add_option("--sandbox", sandbox_, "Only this sandbox's entries");
  ls_->add_option("--event", event_,
                  "Only this event (exec, sandbox.create) or family (sandbox.*)");
  ls_->add_option("--since", since_, "From this time: RFC 3339, Unix ms, or an age (15m, 2h, 7d)");
  ls_->add_option("--until", until_, "Up to this time (same forms as --since)");
  ls_->add_option("--limit", limit_, "At most this many entries")->check(CLI::Range(1, 1000));
  ls_->add_flag("--json", json_);
}

bool AuditCommands::verifyParsed() const {
  return verify_->parsed();
}

bool AuditCommands::listParsed() const {
  return ls_->parsed();
}

int AuditCommands::runVerify() {
  const std::filesystem::path dir =
      dir_.empty() ? server::ledgerDir(server::resolveHome({})) : std::filesystem::path(dir_);
  std::int64_t wantSeq = 0;
  std::string wantHash;
  if (!expectHead_.empty()) {
    auto colon = expectHead_.find(':');
    const std::string seqText = expectHead_.substr(0, colon);
    if (colon != std::string::npos) wantHash = expectHead_.substr(colon + 1);
    const bool digits =
        !seqText.empty() && seqText.size() <= 18 &&
        std::all_of(seqText.begin(), seqText.end(), [](char c) { return c >= '0' && c <= '9'; });
    const bool hex =
        wantHash.size() == 64 && std::all_of(wantHash.begin(), wantHash.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        });
    if (!digits || !hex || std::stoll(seqText) <= 0) {
      return fail(Error(ErrorCode::ValidationError,
                        "--expect-head takes SEQ:HASH (a sequence number and 64 lowercase hex "
                        "digits, as `audit verify` prints them), not '" +
                            expectHead_ + "'"));
    }
    wantSeq = std::stoll(seqText);
  }
  auto v = audit::verifyLedger(dir, wantSeq);
  if (!v.ok()) return fail(v.error());
  // The kept head: the chain may be intact and still shorter than it was.
  std::optional<std::string> headProblem;
  std::optional<std::string> headNote;
  if (wantSeq > 0 && !v->firstBad) {
    if (wantSeq <= v->prunedThroughSeq) {
      // Its hash went with the pruned files: only that the ledger goes on past it is shown.
      headNote = "the expected head seq " + std::to_string(wantSeq) + " was pruned (entries 1.." +
                 std::to_string(v->prunedThroughSeq) +
                 "): its hash cannot be checked; the ledger goes on to seq " +
                 std::to_string(v->headSeq);
    } else if (v->headSeq < wantSeq) {
      headProblem = "the ledger ends at seq " + std::to_string(v->headSeq) +
                    ", before the expected head " + std::to_string(wantSeq) +
                    ": entries were removed from its end";
    } else if (v->witnessHash != wantHash) {
      headProblem = "entry " + std::to_string(wantSeq) + " has hash " +
                    v->witnessHash.value_or("?") + ", not the expected " + wantHash +
                    ": the ledger was rewritten up to there";
    }
  }
  auto problem = [](const audit::LedgerProblem& p) {
    return json{{"file", p.file}, {"line", p.line}, {"seq", p.seq}, {"reason", p.reason}};
  };
  if (json_) {
    json out{{"ok", v->ok},           {"dir", dir.string()},   {"files", v->files},
             {"entries", v->entries}, {"headSeq", v->headSeq}, {"headHash", v->headHash}};
    if (v->firstBad) out["firstBad"] = problem(*v->firstBad);
    if (v->torn) out["torn"] = problem(*v->torn);
    if (v->prunedThroughSeq > 0) out["prunedThroughSeq"] = v->prunedThroughSeq;
    if (wantSeq > 0) {
      out["expectedHead"] = {{"seq", wantSeq}, {"hash", wantHash}, {"found", !headProblem}};
      if (headProblem) {
        out["ok"] = false;
        out["expectedHead"]["reason"] = *headProblem;
      }
      if (headNote) out["expectedHead"]["note"] = *headNote;
    }
    std::cout << out.dump(2) << "\n";
  } else if (v->ok && !headProblem) {
    std::cout << "ledger " << dir.string() << ": " << v->entries << " entries in " << v->files
              << " file(s) verified\n"
              << "head: seq " << v->headSeq << " hash " << v->headHash << "\n";
    if (v->prunedThroughSeq > 0) {
      std::cout << "entries 1.." << v->prunedThroughSeq
                << " were pruned by retention (a ledger.pruned entry names them)\n";
    }
    if (headNote)
      std::cout << *headNote << "\n";
    else if (wantSeq > 0)
      std::cout << "expected head seq " << wantSeq << " found unchanged\n";
  }
  if (v->torn) {
    std::fprintf(stderr, "warning: %s line %lld: %s\n", v->torn->file.c_str(),
                 static_cast<long long>(v->torn->line), v->torn->reason.c_str());
  }
  if (headProblem) {
    std::fprintf(stderr, "error: AUDIT_LEDGER_BROKEN: %s\n", headProblem->c_str());
    return 1;
  }
  if (v->firstBad) {
    const auto& p = *v->firstBad;
    std::string where = p.file + (p.line > 0 ? " line " + std::to_string(p.line) : "") +
                        (p.seq > 0 ? " (seq " + std::to_string(p.seq) + ")" : "");
    std::fprintf(stderr,
                 "error: AUDIT_LEDGER_BROKEN: first bad entry: %s: %s (%lld entries before it "
                 "verified)\n",
                 where.c_str(), p.reason.c_str(), static_cast<long long>(v->entries));
    return 1;
  }
  return 0;
}

int AuditCommands::runList(const ApiClient& api) {
  std::string query = "?limit=" + std::to_string(limit_);
  if (!sandbox_.empty()) query += "&sandboxId=" + net::percentEncode(sandbox_);
  if (!event_.empty()) query += "&event=" + net::percentEncode(event_);
  const std::int64_t now = nowMs();
  for (auto [flag, value, name] :
       {std::tuple{"--since", &since_, "since"}, std::tuple{"--until", &until_, "until"}}) {
    if (value->empty()) continue;
    auto t = parseAuditTime(*value, now);
    if (!t.ok())
      return fail(Error(ErrorCode::ValidationError, std::string(flag) + ": " + t.error().message));
    query += std::string("&") + name + "=" + std::to_string(t.value());
  }
  auto r = api.call("GET", "/api/audit" + query);
  if (!r.ok()) return fail(r.error());
  if (json_) {
    std::cout << r->dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"SEQ", "TIME", "EVENT", "ACTOR", "SANDBOX", "OK", "DETAIL"});
  for (const auto& e : r.value()) {
    std::int64_t ms = e.value("atMs", std::int64_t{0});
    rows.push_back(
        {cell(e, "seq"), formatRfc3339Unix(ms / 1000), cell(e, "action"), cell(e, "actor"),
         e.value("sandboxId", std::string()).empty() ? "-" : e.value("sandboxId", std::string()),
         e.value("ok", false) ? "yes" : "no", summary(e)});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
  return 0;
}

}  // namespace agentpane::cli
