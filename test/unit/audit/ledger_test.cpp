#include "audit/ledger.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/hash.hpp"
#include "unit/temp_dir.hpp"

namespace agentpane::audit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using TempDir = agentpane::testing::TempDir;

std::vector<std::string> readLines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(in, l))
    out.push_back(l);
  return out;
}

void writeLines(const fs::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  for (const auto& l : lines)
    out << l << "\n";
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

LedgerEvent execEvent(int i) {
  LedgerEvent e;
  e.atUnixMs = 1764876000000 + i;
  e.event = "exec";
  e.actor = "api";
  e.sandboxId = "sbx-0123456789ab";
  e.detail = {{"argv", {"echo", "n" + std::to_string(i)}}, {"exitCode", i % 3}};
  return e;
}

std::unique_ptr<Ledger> openLedger(const fs::path& dir, std::uint64_t maxFileBytes = 16u << 20,
                                   int keepFiles = 0) {
  LedgerOptions o;
  o.dir = dir;
  o.maxFileBytes = maxFileBytes;
  o.keepFiles = keepFiles;
  auto l = Ledger::open(o, 1764876000000);
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().describe());
  return l.ok() ? std::move(l).value() : nullptr;
}

// A ledger of n exec entries in one file; returns the file.
fs::path writeLedger(const fs::path& dir, int n) {
  auto l = openLedger(dir);
  for (int i = 1; i <= n; ++i)
    EXPECT_TRUE(l->append(execEvent(i)).ok());
  return dir / ledgerFileName(1);
}

LedgerVerification verify(const fs::path& dir) {
  auto v = verifyLedger(dir);
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().describe());
  return v.ok() ? v.value() : LedgerVerification{};
}

TEST(Ledger, EachEntryCarriesTheHashOfTheOneBefore) {
  TempDir d;
  auto file = writeLedger(d.path(), 5);
  auto lines = readLines(file);
  ASSERT_EQ(lines.size(), 5u);
  std::string prev = kGenesisHash;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    json j = json::parse(lines[i]);
    EXPECT_EQ(j["seq"], static_cast<int>(i + 1));
    EXPECT_EQ(j["prev"], prev);
    EXPECT_EQ(j["event"], "exec");
    EXPECT_EQ(j["detail"]["argv"][1], "n" + std::to_string(i + 1));
    // The hash is of the line without its hash field.
    std::string body = lines[i].substr(0, lines[i].find(",\"hash\":")) + "}";
    EXPECT_EQ(j["hash"], sha256Hex(body));
    prev = j["hash"];
  }
  auto v = verify(d.path());
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.entries, 5);
  EXPECT_EQ(v.headSeq, 5);
  EXPECT_EQ(v.headHash, prev);
  EXPECT_FALSE(v.firstBad);
  EXPECT_FALSE(v.torn);
}

TEST(Ledger, TheChainContinuesAfterAReopen) {
  TempDir d;
  writeLedger(d.path(), 3);
  {
    auto l = openLedger(d.path());
    EXPECT_EQ(l->lastSeq(), 3);
    auto r = l->append(execEvent(4));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->seq, 4);
  }
  auto v = verify(d.path());
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.entries, 4);
}

TEST(Ledger, BytesThatAreNotUtf8AreWrittenNotRefused) {
  TempDir d;
  auto l = openLedger(d.path());
  LedgerEvent e = execEvent(1);
  e.detail["argv"] = {"printf", std::string("\xff\xfe\x00z", 4)};
  ASSERT_TRUE(l->append(e).ok());
  EXPECT_TRUE(verify(d.path()).ok);
}

TEST(LedgerVerify, AnEditedLineIsNamed) {
  TempDir d;
  auto file = writeLedger(d.path(), 5);
  auto lines = readLines(file);
  auto at = lines[2].find("\"exitCode\":0");
  ASSERT_NE(at, std::string::npos);
  lines[2].replace(at, 12, "\"exitCode\":1");
  writeLines(file, lines);
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->file, ledgerFileName(1));
  EXPECT_EQ(v.firstBad->line, 3);
  EXPECT_EQ(v.firstBad->seq, 3);
  EXPECT_NE(v.firstBad->reason.find("edited"), std::string::npos) << v.firstBad->reason;
  EXPECT_EQ(v.entries, 2);
}

TEST(LedgerVerify, AnEditWithItsHashRecomputedBreaksTheNextLink) {
  TempDir d;
  auto file = writeLedger(d.path(), 5);
  auto lines = readLines(file);
  auto at = lines[2].find("\"exitCode\":0");
  ASSERT_NE(at, std::string::npos);
  lines[2].replace(at, 12, "\"exitCode\":1");
  std::string body = lines[2].substr(0, lines[2].find(",\"hash\":")) + "}";
  lines[2] = body.substr(0, body.size() - 1) + ",\"hash\":\"" + sha256Hex(body) + "\"}";
  writeLines(file, lines);
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->line, 4);
  EXPECT_EQ(v.firstBad->seq, 4);
  EXPECT_NE(v.firstBad->reason.find("prev hash"), std::string::npos) << v.firstBad->reason;
  EXPECT_NE(v.firstBad->reason.find("entry 3"), std::string::npos) << v.firstBad->reason;
}

TEST(LedgerVerify, ADeletedLineIsNamed) {
  TempDir d;
  auto file = writeLedger(d.path(), 5);
  auto lines = readLines(file);
  lines.erase(lines.begin() + 2);
  writeLines(file, lines);
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->line, 3);
  EXPECT_EQ(v.firstBad->seq, 4);
  EXPECT_NE(v.firstBad->reason.find("entry 3 is missing"), std::string::npos) << v.firstBad->reason;
}

TEST(LedgerVerify, SwappedLinesAreNamed) {
  TempDir d;
  auto file = writeLedger(d.path(), 5);
  auto lines = readLines(file);
  std::swap(lines[1], lines[2]);
  writeLines(file, lines);
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->line, 2);
  EXPECT_EQ(v.firstBad->seq, 3);
  EXPECT_NE(v.firstBad->reason.find("reordered"), std::string::npos) << v.firstBad->reason;
}

TEST(LedgerVerify, ALineThatIsNotAnEntryIsNamed) {
  TempDir d;
  auto file = writeLedger(d.path(), 3);
  auto lines = readLines(file);
  lines.insert(lines.begin() + 1, "{\"seq\":2}");
  writeLines(file, lines);
  auto v = verify(d.path());
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->line, 2);
  EXPECT_NE(v.firstBad->reason.find("not a ledger entry"), std::string::npos);
}

// A crash in the middle of a write leaves a prefix of the last line. Every cut point of it:
// verify reports the ledger good up to the entry before, with a torn line (not tampering);
// the next open cuts it off, records that, and the chain goes on.
TEST(LedgerVerify, ATornLastLineIsTornNotTamperingAndTheNextStartContinues) {
  TempDir whole;
  auto file = writeLedger(whole.path(), 4);
  const std::string text = readFile(file);
  const std::size_t lastStart = text.rfind('\n', text.size() - 2) + 1;
  for (std::size_t cut = lastStart + 1; cut < text.size(); ++cut) {
    SCOPED_TRACE("cut at byte " + std::to_string(cut));
    TempDir d;
    {
      std::ofstream out(d.path() / ledgerFileName(1), std::ios::binary);
      out << text.substr(0, cut);
    }
    auto v = verify(d.path());
    EXPECT_TRUE(v.ok);
    EXPECT_EQ(v.entries, 3);
    EXPECT_FALSE(v.firstBad);
    ASSERT_TRUE(v.torn);
    EXPECT_EQ(v.torn->line, 4);
    EXPECT_NE(v.torn->reason.find("torn"), std::string::npos);

    auto l = openLedger(d.path());
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->recovery());
    EXPECT_EQ(l->recovery()->tornBytes, cut - lastStart);
    EXPECT_EQ(l->lastSeq(), 4);  // entry 4 is the ledger.recovered record
    ASSERT_TRUE(l->append(execEvent(5)).ok());
    auto after = verify(d.path());
    EXPECT_TRUE(after.ok);
    EXPECT_FALSE(after.torn);
    EXPECT_EQ(after.entries, 5);
    auto lines = readLines(d.path() / ledgerFileName(1));
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(json::parse(lines[3])["event"], "ledger.recovered");
  }
}

TEST(LedgerVerify, AnIncompleteLineInAnOlderFileIsTampering) {
  TempDir d;
  {
    auto l = openLedger(d.path(), 700);
    for (int i = 1; i <= 6; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  auto first = d.path() / ledgerFileName(1);
  std::string t = readFile(first);
  std::filesystem::resize_file(first, t.size() - 10);
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->file, ledgerFileName(1));
  EXPECT_FALSE(v.torn);
}

TEST(LedgerRotation, FilesRotateBySizeAndTheChainCrossesThem) {
  TempDir d;
  const std::uint64_t kMax = 1000;
  {
    auto l = openLedger(d.path(), kMax);
    for (int i = 1; i <= 20; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  auto files = ledgerFiles(d.path());
  ASSERT_TRUE(files.ok());
  ASSERT_GE(files->size(), 5u);
  std::string prev = kGenesisHash;
  int seq = 0;
  for (const auto& [n, p] : files.value()) {
    EXPECT_LE(fs::file_size(p), kMax);
    for (const auto& line : readLines(p)) {
      json j = json::parse(line);
      EXPECT_EQ(j["seq"], ++seq);
      EXPECT_EQ(j["prev"], prev);
      prev = j["hash"];
    }
  }
  EXPECT_EQ(seq, 20);
  auto v = verify(d.path());
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.entries, 20);
  EXPECT_EQ(v.files, static_cast<int>(files->size()));

  // A reopen continues in the newest file.
  {
    auto l = openLedger(d.path(), kMax);
    ASSERT_TRUE(l->append(execEvent(21)).ok());
  }
  EXPECT_EQ(verify(d.path()).entries, 21);
}

TEST(LedgerRotation, AMissingMiddleFileIsNamed) {
  TempDir d;
  {
    auto l = openLedger(d.path(), 1000);
    for (int i = 1; i <= 20; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  fs::remove(d.path() / ledgerFileName(2));
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->file, ledgerFileName(3));
  EXPECT_NE(v.firstBad->reason.find(ledgerFileName(2)), std::string::npos);
}

TEST(LedgerRotation, AMissingFirstFileIsNamed) {
  TempDir d;
  {
    auto l = openLedger(d.path(), 1000);
    for (int i = 1; i <= 20; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  fs::remove(d.path() / ledgerFileName(1));
  auto v = verify(d.path());
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.firstBad);
  EXPECT_EQ(v.firstBad->file, ledgerFileName(2));
  EXPECT_EQ(v.firstBad->line, 1);
  EXPECT_NE(v.firstBad->reason.find("no ledger.pruned entry accounts for entries 1.."),
            std::string::npos)
      << v.firstBad->reason;
}

// Retention: the oldest files go once more than keepFiles are there; the chain says so and
// still verifies. Files deleted by hand beyond that are found.
TEST(LedgerRetention, TheOldestFilesGoAndAPrunedEntrySaysWhich) {
  TempDir d;
  {
    auto l = openLedger(d.path(), 1000, /*keepFiles=*/3);
    ASSERT_TRUE(l);
    for (int i = 1; i <= 40; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  auto files = ledgerFiles(d.path());
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 3u);
  EXPECT_GT(files->front().first, 1);
  auto v = verify(d.path());
  EXPECT_TRUE(v.ok) << (v.firstBad ? v.firstBad->reason : "");
  EXPECT_GT(v.prunedThroughSeq, 0);
  // The newest exec is there, and the ledger.pruned entries that account for the rest.
  int pruned = 0;
  bool sawLast = false;
  for (const auto& [n, p] : files.value()) {
    for (const auto& line : readLines(p)) {
      json j = json::parse(line);
      if (j["event"] == "exec" && j["detail"]["argv"][1] == "n40") sawLast = true;
      if (j["event"] == "ledger.pruned") {
        ++pruned;
        EXPECT_TRUE(j["detail"]["files"].is_array());
        EXPECT_GT(j["detail"]["throughSeq"].get<std::int64_t>(), 0);
      }
    }
  }
  EXPECT_TRUE(sawLast);
  EXPECT_GE(pruned, 1);
  EXPECT_EQ(v.headSeq, v.prunedThroughSeq + v.entries);

  // The oldest file kept, deleted by hand: the ledger.pruned entries name other entries.
  fs::remove(files->front().second);
  auto cut = verify(d.path());
  EXPECT_FALSE(cut.ok);
  ASSERT_TRUE(cut.firstBad);
  EXPECT_NE(cut.firstBad->reason.find("older files were deleted"), std::string::npos)
      << cut.firstBad->reason;
}

// A pruning that cannot read the entry the kept chain starts after removes nothing, fails no
// append and is counted; the next rotation tries again.
TEST(LedgerRetention, AFailedPruningKeepsTheFilesAndIsCounted) {
  TempDir d;
  auto l = openLedger(d.path(), 1000, /*keepFiles=*/2);
  ASSERT_TRUE(l);
  int i = 0;
  auto filesNow = [&] { return ledgerFiles(d.path()).value().size(); };
  while (filesNow() < 2)
    ASSERT_TRUE(l->append(execEvent(++i)).ok());
  // The file that will be the first kept one loses its first line's end: no entry to link to.
  const fs::path second = d.path() / ledgerFileName(2);
  auto lines = readLines(second);
  ASSERT_FALSE(lines.empty());
  {
    std::ofstream out(second, std::ios::binary | std::ios::trunc);
    out << "not an entry\n";
    for (std::size_t k = 1; k < lines.size(); ++k)
      out << lines[k] << "\n";
  }
  const auto failedBefore = writeFailures().prune.load();
  while (filesNow() < 3)
    ASSERT_TRUE(l->append(execEvent(++i)).ok());
  EXPECT_EQ(writeFailures().prune.load(), failedBefore + 1);
  EXPECT_TRUE(fs::exists(d.path() / ledgerFileName(1)));  // nothing removed
}

TEST(LedgerRetention, WithoutKeepFilesEveryFileStays) {
  TempDir d;
  {
    auto l = openLedger(d.path(), 1000);
    for (int i = 1; i <= 40; ++i)
      ASSERT_TRUE(l->append(execEvent(i)).ok());
  }
  auto files = ledgerFiles(d.path());
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->front().first, 1);
  EXPECT_EQ(verify(d.path()).prunedThroughSeq, 0);
}

// Many threads append at once (with rotation): every entry is written whole, once, and the
// chain is one unbroken sequence.
TEST(LedgerConcurrency, ConcurrentAppendsMakeOneChain) {
  TempDir d;
  constexpr int kThreads = 8, kEach = 150;
  auto l = openLedger(d.path(), 64 * 1024);
  std::vector<std::thread> threads;
  std::vector<std::vector<std::int64_t>> seqs(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        LedgerEvent e = execEvent(i);
        e.actor = "thread-" + std::to_string(t);
        auto r = l->append(e);
        ASSERT_TRUE(r.ok());
        seqs[t].push_back(r->seq);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  std::set<std::int64_t> all;
  for (const auto& s : seqs) {
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(s.begin(), s.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(*all.rbegin(), kThreads * kEach);
  auto v = verify(d.path());
  EXPECT_TRUE(v.ok) << (v.firstBad ? v.firstBad->reason : "");
  EXPECT_EQ(v.entries, kThreads * kEach);
  EXPECT_GT(v.files, 1);
}

TEST(Ledger, ANewestLineThatIsNoEntryStopsTheOpen) {
  TempDir d;
  auto file = writeLedger(d.path(), 2);
  {
    std::ofstream out(file, std::ios::binary | std::ios::app);
    out << "garbage\n";
  }
  LedgerOptions o;
  o.dir = d.path();
  auto l = Ledger::open(o);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message.find("audit verify"), std::string::npos);
}

TEST(Ledger, TheDirectoryAndFilesAreTheOwnersOnly) {
  TempDir d;
  writeLedger(d.path() / "audit", 1);
  auto dirPerms = fs::status(d.path() / "audit").permissions();
  EXPECT_EQ(dirPerms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  auto filePerms = fs::status(d.path() / "audit" / ledgerFileName(1)).permissions();
  EXPECT_EQ(filePerms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

}  // namespace
}  // namespace agentpane::audit
