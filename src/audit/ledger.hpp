// The audit ledger: the tamper-evident record of what the server did (docs/audit.md).
//
// Append-only JSON lines in files <dir>/ledger-NNNNNN.jsonl, each line one entry:
//   {"seq":7,"at":"…Z","atMs":…,"event":"exec","actor":"api","sandboxId":"…","ok":true,
//    "detail":{…},"prev":"<sha256 of entry 6>","hash":"<sha256 of this entry>"}
// `hash` is the SHA-256 of the line's text without its `,"hash":"…"` tail (that is, of the
// entry as written, `prev` included), so every entry commits to the whole chain before it.
// The first entry's `prev` is 64 zeros. Files rotate by size; the chain and the sequence
// continue from one file into the next.
//
// Retention: with keepFiles set, once a rotation leaves more files than that the oldest go,
// and a `ledger.pruned` entry ({"files", "throughSeq", "throughHash"}) is appended to the chain
// first. verifyLedger then starts at the first entry kept and requires such an entry (later in
// the verified chain) naming the entry before it: deleting old files by hand is still found.
//
// Durability: one write(2) per entry, then fdatasync; a failed write is cut off again
// (ftruncate) so the file never keeps half an entry it did not report as written. A crash can
// still leave a torn last line (bytes without their newline): open() cuts it off, and records
// that it did in a `ledger.recovered` entry; verifyLedger() reports it as torn, not as tampering.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agentpane/result.hpp"

namespace agentpane::audit {

// Audit entries that could not be written, for /metrics
// (agentpane_audit_write_failures_total{sink}): the ledger, and the state table's index.
struct WriteFailures {
  std::atomic<std::uint64_t> ledger{0};
  std::atomic<std::uint64_t> index{0};
  // Retention passes that failed (the old files stay; the next rotation tries again):
  // agentpane_audit_prune_failures_total.
  std::atomic<std::uint64_t> prune{0};
};
WriteFailures& writeFailures();

// The `prev` of the first entry.
inline const std::string kGenesisHash(64, '0');

struct LedgerEvent {
  std::int64_t atUnixMs = 0;
  std::string event;      // "exec", "sandbox.create", "auth.failure", …
  std::string actor;      // "api", "reconcile", "idle", "system", …
  std::string sandboxId;  // may be empty
  bool ok = true;
  nlohmann::json detail = nlohmann::json::object();
};

struct LedgerOptions {
  std::filesystem::path dir;
  // A file is closed and the next begun before an entry would take it past this size (an
  // entry larger than this gets a file of its own).
  std::uint64_t maxFileBytes = 16u << 20;
  // Files kept (the newest, the one written included); 0 keeps every file. See Retention.
  int keepFiles = 0;
};

struct AppendedEntry {
  std::int64_t seq = 0;
  std::string hash;
};

// What open() found at the end of the newest file.
struct LedgerRecovery {
  std::string file;  // file name, relative to the ledger directory
  std::uint64_t tornBytes = 0;
  std::string tornSha256;
};

class Ledger {
 public:
  // Creates dir (0700) when missing, finds the newest entry and continues the chain after
  // it. A torn last line is cut off (and a ledger.recovered entry appended). Fails when the
  // newest complete entry is not an entry at all (no hash or sequence to continue from):
  // the chain cannot be continued honestly, see docs/audit.md.
  static Result<std::unique_ptr<Ledger>> open(LedgerOptions options, std::int64_t nowUnixMs = 0);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Writes one entry and syncs it to disk. Thread-safe: appends are serialized, so the
  // sequence and the chain follow the order in which they are written. Blocking (a write and
  // an fdatasync): never call it on a network thread.
  Result<AppendedEntry> append(const LedgerEvent& e);

  std::int64_t lastSeq() const;
  std::string lastHash() const;
  const std::filesystem::path& dir() const { return options_.dir; }
  // Set when open() cut off a torn last line.
  const std::optional<LedgerRecovery>& recovery() const { return recovery_; }

 private:
  explicit Ledger(LedgerOptions options);
  Result<void> openFile(int number, bool create);
  Result<void> rotate();
  Result<AppendedEntry> appendLocked(const LedgerEvent& e);  // mu_ held
  Result<void> pruneLocked(std::int64_t nowUnixMs);          // mu_ held

  LedgerOptions options_;
  mutable std::mutex mu_;
  int fd_ = -1;
  int fileNumber_ = 0;
  std::uint64_t fileSize_ = 0;
  std::int64_t seq_ = 0;
  std::string lastHash_ = kGenesisHash;
  std::optional<LedgerRecovery> recovery_;
};

// --- verification ------------------------------------------------------------------------

struct LedgerProblem {
  std::string file;       // file name, relative to the ledger directory
  std::int64_t line = 0;  // 1-based, within the file
  std::int64_t seq = 0;   // the sequence number the line claims (0 when it has none)
  std::string reason;
};

struct LedgerVerification {
  bool ok = false;           // no problem (a torn last line is not one)
  std::int64_t entries = 0;  // entries verified before the first problem
  int files = 0;
  std::int64_t headSeq = 0;  // the last good entry
  std::string headHash = kGenesisHash;
  std::optional<LedgerProblem> firstBad;
  std::optional<LedgerProblem> torn;  // an incomplete last line of the newest file
  // Entries 1..prunedThroughSeq were removed by retention (a ledger.pruned entry says so).
  std::int64_t prunedThroughSeq = 0;
  // The hash of entry witnessSeq (verifyLedger's argument) when the chain reached it intact.
  std::optional<std::string> witnessHash;
};

// Reads every ledger file of dir in order and checks each entry's hash, its sequence number
// and its link to the entry before. Stops at the first bad entry. Fails (the Result) only
// when dir cannot be read.
// With witnessSeq > 0, also reports that entry's hash: a head kept elsewhere (seq and hash
// from an earlier verify) shows entries deleted from the end, which the chain alone cannot.
Result<LedgerVerification> verifyLedger(const std::filesystem::path& dir,
                                        std::int64_t witnessSeq = 0);

// The ledger files of dir ("ledger-NNNNNN.jsonl"), by number.
Result<std::vector<std::pair<int, std::filesystem::path>>> ledgerFiles(
    const std::filesystem::path& dir);
std::string ledgerFileName(int number);

}  // namespace agentpane::audit
