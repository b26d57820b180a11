// The service writes every audit entry to the ledger first; the state table's row names it.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using nlohmann::json;

TEST_F(ServiceTest, AuditEntriesGoToTheLedgerAndTheRowsNameThem) {
  AuditQuery q;
  q.limit = 1000;
  // Rows written before the ledger was attached (the default profile) name no entry.
  const std::size_t before = svc->audit(q).value().size();
  audit::LedgerOptions lo;
  lo.dir = dir.path() / "audit";
  auto opened = audit::Ledger::open(lo, nowMs.load());
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  ledger = std::shared_ptr<audit::Ledger>(std::move(opened).value());
  restart();

  auto s = createOk();
  docker->execHandler = [](const std::string&, const std::vector<std::string>&,
                           const ExecOptions&) {
    return Result<ExecResult>(ExecResult{2, "o", ""});
  };
  ExecRequest req;
  req.argv = {"ls", "-l"};
  ASSERT_TRUE(svc->exec(s.info.id, req, "cli").ok());
  svc->recordEvent("", "anonymous", "auth.failure", R"({"route":"/api/sandboxes"})", false);
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "api").ok());

  std::vector<json> lines;
  std::ifstream in(lo.dir / audit::ledgerFileName(1));
  for (std::string l; std::getline(in, l);)
    lines.push_back(json::parse(l));
  ASSERT_GE(lines.size(), 4u);
  auto all = svc->audit(q).value();
  ASSERT_EQ(all.size(), lines.size() + before);
  const std::vector<AuditEntry> rows(all.begin(), all.begin() + static_cast<long>(lines.size()));
  for (const auto& row : rows) {
    ASSERT_GT(row.ledgerSeq, 0) << row.action;
    const json& entry = lines.at(static_cast<std::size_t>(row.ledgerSeq - 1));
    EXPECT_EQ(entry["seq"], row.ledgerSeq);
    EXPECT_EQ(entry["event"], row.action);
    EXPECT_EQ(entry["sandboxId"], row.sandboxId);
    EXPECT_EQ(entry["actor"], row.actor);
    EXPECT_EQ(entry["ok"], row.ok);
    EXPECT_EQ(entry["atMs"], row.atUnixMs);
    EXPECT_EQ(entry["detail"], json::parse(row.detail));
  }
  bool sawExec = false, sawAuth = false;
  for (const auto& e : lines) {
    if (e["event"] == "exec") {
      sawExec = true;
      EXPECT_EQ(e["detail"]["argv"], (json{"ls", "-l"}));
      EXPECT_EQ(e["detail"]["exitCode"], 2);
      EXPECT_EQ(e["actor"], "cli");
    }
    sawAuth = sawAuth || (e["event"] == "auth.failure" && e["ok"] == false);
  }
  EXPECT_TRUE(sawExec);
  EXPECT_TRUE(sawAuth);
  auto v = audit::verifyLedger(lo.dir);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->entries, static_cast<std::int64_t>(lines.size()));
}

// A ledger write that fails (here: its directory gone when it rotates) does not fail the
// caller, keeps the index row (naming no entry), and is counted for /metrics.
TEST_F(ServiceTest, AFailedLedgerWriteIsCountedAndTheIndexKeepsTheEntry) {
  audit::LedgerOptions lo;
  lo.dir = dir.path() / "audit";
  lo.maxFileBytes = 1;  // every entry after the first rotates to a new file
  auto opened = audit::Ledger::open(lo, nowMs.load());
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  ledger = std::shared_ptr<audit::Ledger>(std::move(opened).value());
  restart();
  svc->recordEvent("", "anonymous", "auth.failure", R"({"n":1})", false);
  std::filesystem::rename(lo.dir, dir.path() / "audit-moved");
  std::ofstream(lo.dir) << "not a directory";
  const auto before = audit::writeFailures().ledger.load();
  svc->recordEvent("", "anonymous", "auth.failure", R"({"n":2})", false);
  EXPECT_EQ(audit::writeFailures().ledger.load(), before + 1);
  AuditQuery q;
  q.action = "auth.failure";
  auto rows = svc->audit(q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ(rows->front().ledgerSeq, 0) << rows->front().detail;  // newest first
  EXPECT_GT(rows->back().ledgerSeq, 0);
}

}  // namespace
}  // namespace agentpane::fakes
