#include "audit/ledger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/hash.hpp"
#include "common/time.hpp"

namespace agentpane::audit {

WriteFailures& writeFailures() {
  static WriteFailures f;
  return f;
}

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kHashKey = ",\"hash\":\"";
// `,"hash":"` + 64 hex digits + `"}`
constexpr std::size_t kHashTail = kHashKey.size() + 64 + 2;

Error ioError(const std::string& what, const fs::path& p, int err) {
  return Error(ErrorCode::Internal, what + " " + p.string() + ": " + std::strerror(err));
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// One line split into the entry it claims to be. `why` is empty when the line is
// well-formed and its hash matches its text.
struct ParsedLine {
  std::int64_t seq = 0;
  std::string prev;
  std::string hash;
  std::string why;
};

ParsedLine parseLine(std::string_view line) {
  ParsedLine p;
  if (line.size() < kHashTail + 2 || line.substr(line.size() - 2) != "\"}" ||
      line.substr(line.size() - kHashTail, kHashKey.size()) != kHashKey) {
    p.why = "not a ledger entry (no hash at its end)";
    return p;
  }
  p.hash = std::string(line.substr(line.size() - 66, 64));
  if (!isHex64(p.hash)) {
    p.why = "not a ledger entry (its hash is not 64 hex digits)";
    return p;
  }
  std::string body(line.substr(0, line.size() - kHashTail));
  body += '}';
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    p.why = "not a ledger entry (not a JSON object)";
    return p;
  }
  if (auto it = j.find("seq"); it != j.end() && it->is_number_integer())
    p.seq = it->get<std::int64_t>();
  if (auto it = j.find("prev"); it != j.end() && it->is_string()) p.prev = it->get<std::string>();
  if (p.seq <= 0 || !isHex64(p.prev)) {
    p.why = "not a ledger entry (no sequence number or prev hash)";
    return p;
  }
  if (sha256Hex(body) != p.hash)
    p.why = "its content does not match its hash (the entry was edited)";
  return p;
}

Result<std::string> readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return ioError("cannot read", p, errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> syncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot open", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ioError("cannot sync", dir, err);
  return {};
}

std::string jsonString(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string ledgerFileName(int number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ledger-%06d.jsonl", number);
  return buf;
}

Result<std::vector<std::pair<int, fs::path>>> ledgerFiles(const fs::path& dir) {
  std::vector<std::pair<int, fs::path>> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error(ErrorCode::Internal, "cannot read " + dir.string() + ": " + ec.message());
  for (const auto& e : it) {
    const std::string name = e.path().filename().string();
    if (name.size() < 13 || name.rfind("ledger-", 0) != 0 ||
        name.substr(name.size() - 6) != ".jsonl")
      continue;
    std::string digits = name.substr(7, name.size() - 13);
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    out.emplace_back(std::stoi(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Ledger::Ledger(LedgerOptions options) : options_(std::move(options)) {}

Ledger::~Ledger() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> Ledger::openFile(int number, bool create) {
  const fs::path p = options_.dir / ledgerFileName(number);
  int flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = ::open(p.c_str(), flags, 0600);
  if (fd < 0) return ioError("cannot open", p, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ioError("cannot stat", p, err);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  fileNumber_ = number;
  fileSize_ = static_cast<std::uint64_t>(st.st_size);
  if (create) return syncDir(options_.dir);
  return {};
}

Result<void> Ledger::rotate() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0)
    return ioError("cannot sync", options_.dir / ledgerFileName(fileNumber_), errno);
  return openFile(fileNumber_ + 1, /*create=*/true);
}

Result<std::unique_ptr<Ledger>> Ledger::open(LedgerOptions options, std::int64_t nowUnixMs) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec)
    return Error(ErrorCode::Internal,
                 "cannot create " + options.dir.string() + ": " + ec.message());
  fs::permissions(options.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  std::unique_ptr<Ledger> l(new Ledger(options));

  auto files = ledgerFiles(options.dir);
  if (!files.ok()) return files.takeError();
  if (files->empty()) {
    AP_TRY(l->openFile(1, /*create=*/true));
    return l;
  }

  // The newest complete entry: the last line of the newest file that has one.
  bool found = false;
  for (auto it = files->rbegin(); it != files->rend() && !found; ++it) {
    auto text = readAll(it->second);
    if (!text.ok()) return text.takeError();
    std::string& t = text.value();
    const bool newest = it == files->rbegin();
    std::size_t end = t.rfind('\n');
    std::size_t complete = end == std::string::npos ? 0 : end + 1;
    if (newest && complete < t.size()) {
      // A torn last line: what a crash in the middle of a write leaves. Cut it off.
      LedgerRecovery rec;
      rec.file = it->second.filename().string();
      rec.tornBytes = t.size() - complete;
      rec.tornSha256 = sha256Hex(std::string_view(t).substr(complete));
      if (::truncate(it->second.c_str(), static_cast<off_t>(complete)) != 0)
        return ioError("cannot cut the torn last line of", it->second, errno);
      l->recovery_ = rec;
      t.resize(complete);
    }
    if (newest) AP_TRY(l->openFile(it->first, /*create=*/false));
    if (complete == 0) continue;
    std::size_t start = t.rfind('\n', complete - 2);
    start = start == std::string::npos ? 0 : start + 1;
    std::string_view last(t.data() + start, complete - 1 - start);
    ParsedLine p = parseLine(last);
    if (p.seq <= 0 || p.hash.empty()) {
      return Error(ErrorCode::Internal,
                   "the newest audit ledger entry (" + it->second.string() +
                       ", its last line) is not a ledger entry: the chain cannot be continued. "
                       "Run `agentpane audit verify` and move the damaged file aside");
    }
    // An entry edited in place still carries its place in the chain; verify names it.
    l->seq_ = p.seq;
    l->lastHash_ = p.hash;
    found = true;
  }
  if (!found) {
    l->seq_ = 0;
    l->lastHash_ = kGenesisHash;
  }
  if (l->recovery_) {
    LedgerEvent e;
    e.atUnixMs = nowUnixMs;
    e.event = "ledger.recovered";
    e.actor = "system";
    e.detail = {{"file", l->recovery_->file},
                {"tornBytes", l->recovery_->tornBytes},
                {"tornSha256", l->recovery_->tornSha256},
                {"reason", "an incomplete last line (a write cut short) was removed at start"}};
    auto r = l->append(e);
    if (!r.ok()) return r.takeError();
  }
  return l;
}

Result<AppendedEntry> Ledger::append(const LedgerEvent& e) {
  std::lock_guard lk(mu_);
  const int fileBefore = fileNumber_;
  auto r = appendLocked(e);
  if (r.ok() && fileNumber_ != fileBefore && options_.keepFiles > 0) {
    // The entry is written whatever becomes of the pruning; a failed one is tried again at the
    // next rotation (the files stay, and so does the chain).
    if (auto pruned = pruneLocked(e.atUnixMs); !pruned.ok()) writeFailures().prune++;
  }
  return r;
}

Result<void> Ledger::pruneLocked(std::int64_t nowUnixMs) {
  auto files = ledgerFiles(options_.dir);
  if (!files.ok()) return files.takeError();
  const auto keep = static_cast<std::size_t>(options_.keepFiles);
  if (files->size() <= keep) return {};
  const std::vector<std::pair<int, fs::path>> gone(files->begin(), files->end() - keep);
  // The entry the kept chain begins after, as the first kept entry names it (its seq - 1 and
  // its prev): exactly what verifyLedger will look for. One line read, not a whole old file.
  const fs::path& firstKept = (*files)[gone.size()].second;
  std::ifstream in(firstKept, std::ios::binary);
  std::string firstLine;
  if (!std::getline(in, firstLine) || in.eof())
    return Error(ErrorCode::Internal, firstKept.string() + " does not begin with an entry");
  const ParsedLine first = parseLine(firstLine);
  if (first.seq <= 1 || first.prev.empty() || !first.why.empty())
    return Error(ErrorCode::Internal, firstKept.string() + " does not begin with an entry");
  LedgerEvent pe;
  pe.atUnixMs = nowUnixMs;
  pe.event = "ledger.pruned";
  pe.actor = "system";
  json names = json::array();
  for (const auto& g : gone)
    names.push_back(g.second.filename().string());
  pe.detail = {{"files", names},
               {"throughSeq", first.seq - 1},
               {"throughHash", first.prev},
               {"keepFiles", options_.keepFiles}};
  auto said = appendLocked(pe);
  if (!said.ok()) return said.takeError();
  for (const auto& g : gone) {
    if (::unlink(g.second.c_str()) != 0 && errno != ENOENT)
      return ioError("cannot remove the old ledger file", g.second, errno);
  }
  return syncDir(options_.dir);
}

Result<AppendedEntry> Ledger::appendLocked(const LedgerEvent& e) {
  if (fd_ < 0) return Error(ErrorCode::Internal, "the audit ledger is not open");
  const std::int64_t seq = seq_ + 1;
  const std::int64_t secs = e.atUnixMs >= 0 ? e.atUnixMs / 1000 : (e.atUnixMs - 999) / 1000;
  Timestamp ts{secs, static_cast<std::uint32_t>((e.atUnixMs - secs * 1000) * 1000000)};
  std::string body;
  body.reserve(256);
  body += "{\"seq\":" + std::to_string(seq);
  body += ",\"at\":" + jsonString(formatRfc3339(ts, 3));
  body += ",\"atMs\":" + std::to_string(e.atUnixMs);
  body += ",\"event\":" + jsonString(e.event);
  body += ",\"actor\":" + jsonString(e.actor);
  body += ",\"sandboxId\":" + jsonString(e.sandboxId);
  body += std::string(",\"ok\":") + (e.ok ? "true" : "false");
  // Argv and messages may hold bytes that are not UTF-8: replaced, never a failed write.
  body += ",\"detail\":" + e.detail.dump(-1, ' ', false, json::error_handler_t::replace);
  body += ",\"prev\":\"" + lastHash_ + "\"}";
  const std::string hash = sha256Hex(body);
  std::string line = body.substr(0, body.size() - 1);
  line += kHashKey;
  line += hash;
  line += "\"}\n";

  if (fileSize_ > 0 && fileSize_ + line.size() > options_.maxFileBytes) AP_TRY(rotate());
  const fs::path path = options_.dir / ledgerFileName(fileNumber_);
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      // Never leave half an entry behind: the next append would follow a torn line.
      if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(fileSize_)) != 0) {
        return ioError("cannot write (and cannot cut back) entry " + std::to_string(seq) + " to",
                       path, err);
      }
      return ioError("cannot write entry " + std::to_string(seq) + " to", path, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    int err = errno;
    (void)::ftruncate(fd_, static_cast<off_t>(fileSize_));
    return ioError("cannot sync entry " + std::to_string(seq) + " of", path, err);
  }
  fileSize_ += line.size();
  seq_ = seq;
  lastHash_ = hash;
  return AppendedEntry{seq, hash};
}

std::int64_t Ledger::lastSeq() const {
  std::lock_guard lk(mu_);
  return seq_;
}

std::string Ledger::lastHash() const {
  std::lock_guard lk(mu_);
  return lastHash_;
}

// --- verification ------------------------------------------------------------------------

Result<LedgerVerification> verifyLedger(const fs::path& dir, std::int64_t witnessSeq) {
  LedgerVerification v;
  auto files = ledgerFiles(dir);
  if (!files.ok()) return files.takeError();
  v.files = static_cast<int>(files->size());
  std::int64_t expectSeq = 1;
  std::string prevHash = kGenesisHash;
  // A ledger whose first entry is not entry 1 was pruned: it is anchored at that entry's prev,
  // which a ledger.pruned entry further on must name (else older files were deleted by hand).
  std::optional<LedgerProblem> anchor;
  std::string anchorHash;
  bool anchored = false;
  bool first = true;
  int expectFile = files->empty() ? 1 : files->front().first;
  for (std::size_t f = 0; f < files->size(); ++f) {
    const auto& [number, path] = (*files)[f];
    const std::string name = path.filename().string();
    const bool newest = f + 1 == files->size();
    if (number != expectFile) {
      v.firstBad = LedgerProblem{name, 0, 0,
                                 "file " + ledgerFileName(expectFile) +
                                     " is missing before it (files are numbered without gaps)"};
      return v;
    }
    ++expectFile;
    auto text = readAll(path);
    if (!text.ok()) return text.takeError();
    const std::string& t = text.value();
    std::size_t pos = 0;
    std::int64_t lineNo = 0;
    while (pos < t.size()) {
      ++lineNo;
      std::size_t nl = t.find('\n', pos);
      if (nl == std::string::npos) {
        LedgerProblem p{name, lineNo, 0, ""};
        ParsedLine parsed = parseLine(std::string_view(t).substr(pos));
        p.seq = parsed.seq;
        if (newest) {
          p.reason =
              "torn: the last line has no end (" + std::to_string(t.size() - pos) +
              " bytes; a write cut short by a crash); the server removes it at its next start";
          v.torn = p;
        } else {
          p.reason =
              "an incomplete line at the end of a file that is not the newest "
              "(the file was cut or edited)";
          v.firstBad = p;
          return v;
        }
        break;
      }
      std::string_view line(t.data() + pos, nl - pos);
      pos = nl + 1;
      ParsedLine p = parseLine(line);
      auto bad = [&](std::string reason) {
        v.firstBad = LedgerProblem{name, lineNo, p.seq, std::move(reason)};
        return v;
      };
      if (!p.why.empty() && p.seq <= 0) return bad(p.why);
      if (first && p.seq > 1 && p.why.empty()) {
        expectSeq = p.seq;
        prevHash = p.prev;
        anchorHash = p.prev;
        anchor = LedgerProblem{name, lineNo, p.seq, ""};
      }
      first = false;
      if (p.seq != expectSeq) {
        if (p.seq > expectSeq) {
          return bad("sequence " + std::to_string(expectSeq) + " expected, found " +
                     std::to_string(p.seq) + ": " +
                     (p.seq == expectSeq + 1 ? "entry " + std::to_string(expectSeq) + " is"
                                             : "entries " + std::to_string(expectSeq) + ".." +
                                                   std::to_string(p.seq - 1) + " are") +
                     " missing here (deleted, or lines reordered)");
        }
        return bad("sequence " + std::to_string(expectSeq) + " expected, found " +
                   std::to_string(p.seq) + ": an earlier entry again (lines reordered or copied)");
      }
      if (!p.why.empty()) return bad(p.why);
      if (p.prev != prevHash) {
        return bad("its prev hash does not match the hash of entry " +
                   std::to_string(expectSeq - 1) +
                   " before it (that entry was rewritten, or entries were removed or reordered)");
      }
      prevHash = p.hash;
      if (anchor && !anchored &&
          line.find("\"event\":\"ledger.pruned\"") != std::string_view::npos) {
        auto entry = json::parse(line, nullptr, false);
        const json* d = entry.is_object() &&
                                entry.value("event", std::string()) == "ledger.pruned" &&
                                entry.contains("detail")
                            ? &entry["detail"]
                            : nullptr;
        anchored = d != nullptr && d->is_object() &&
                   d->value("throughSeq", std::int64_t{0}) == anchor->seq - 1 &&
                   d->value("throughHash", std::string()) == anchorHash;
      }
      if (p.seq == witnessSeq) v.witnessHash = p.hash;
      v.headSeq = p.seq;
      v.headHash = p.hash;
      ++v.entries;
      ++expectSeq;
    }
  }
  if (anchor && !anchored) {
    anchor->reason = "the ledger starts at entry " + std::to_string(anchor->seq) +
                     " and no ledger.pruned entry accounts for entries 1.." +
                     std::to_string(anchor->seq - 1) + " (older files were deleted)";
    v.firstBad = anchor;
    return v;
  }
  if (anchor) v.prunedThroughSeq = anchor->seq - 1;
  v.ok = true;
  return v;
}

}  // namespace agentpane::audit
