// `agentpane audit verify [--dir D]`: checks the audit ledger's hash chain on this machine
// (no server needed), and `agentpane audit ls [--sandbox ID] [--event E] [--since T]`: the
// audit entries through the API (docs/audit.md).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "agentpane/result.hpp"
#include "cli/api_client.hpp"

namespace agentpane::cli {

class AuditCommands {
 public:
  // Adds `audit` and its subcommands to `app`.
  explicit AuditCommands(CLI::App& app);

  // `audit verify` was given: it runs locally, before any server is looked for.
  [[nodiscard]] bool verifyParsed() const;
  int runVerify();
  // `audit ls` was given.
  [[nodiscard]] bool listParsed() const;
  int runList(const ApiClient& api);

 private:
  CLI::App *audit_ = nullptr, *verify_ = nullptr, *ls_ = nullptr;
  std::string dir_;
  std::string expectHead_;  // SEQ:HASH
  bool json_ = false;
  std::string sandbox_, event_, since_, until_;
  int limit_ = 100;
};

// A time for --since/--until: RFC 3339, Unix milliseconds, or an age ("90s", "15m", "2h",
// "7d") before nowUnixMs. Returns Unix milliseconds.
Result<std::int64_t> parseAuditTime(const std::string& text, std::int64_t nowUnixMs);

}  // namespace agentpane::cli
