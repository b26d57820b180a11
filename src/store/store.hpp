// Store: the SQLite state of one server (<home>/state.db). WAL mode, numbered migrations,
// prepared statements with bound parameters only. One connection guarded by a mutex:
// every method is thread-safe and blocking (never call it on a network thread).
//
// Error mapping: duplicate config name -> SandboxConfigNameConflict; a second live sandbox
// for a project (or a duplicate id) -> SandboxAlreadyExists; unknown rows ->
// SandboxConfigNotFound / SandboxNotFound; any other SQLite failure -> Internal with
// SQLite's message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"
#include "store/records.hpp"

struct sqlite3;

namespace agentpane {

// One schema step. Applied in a transaction together with its schema_migrations row.
struct Migration {
  int version = 0;
  std::string name;
  std::string sql;
};

class Store {
 public:
  // The migrations this build knows, in order (migration 1 creates everything).
  static const std::vector<Migration>& builtinMigrations();
  static int latestSchemaVersion();

  // Opens (creating if needed) <home>/state.db; creates <home> when missing.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& home);
  // Opens a database file (":memory:" works) and migrates it to the newest known version.
  // A database whose schema is newer than any known migration is refused (Internal).
  static Result<std::unique_ptr<Store>> openFile(const std::string& path);
  // Test hook: the same with an explicit migration list.
  static Result<std::unique_ptr<Store>> openFile(const std::string& path,
                                                 const std::vector<Migration>& migrations);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Highest applied migration.
  Result<int> schemaVersion();
  Result<std::vector<int>> appliedMigrations();

  // --- sandbox_configs -----------------------------------------------------------------
  Result<std::vector<SandboxConfig>> listConfigs();  // default first, then by name
  Result<SandboxConfig> getConfig(const std::string& id);
  Result<SandboxConfig> getConfigByName(const std::string& name);
  Result<SandboxConfig> getDefaultConfig();  // SandboxConfigNotFound when none
  Result<int> countConfigs();
  // Inserts c as given (id and timestamps set by the caller). When c.isDefault, the previous
  // default is cleared in the same transaction.
  Result<void> insertConfig(const SandboxConfig& c);
  // Replaces every column but id and created_at. Same default rule as insertConfig.
  Result<void> updateConfig(const SandboxConfig& c);
  // SandboxConfigInUse while a live sandbox (creating/running/stopping) uses it; rows of
  // settled sandboxes keep a NULL config id.
  Result<void> deleteConfig(const std::string& id);

  // --- sandboxes -------------------------------------------------------------------------
  Result<void> insertSandbox(const SandboxRecord& r);
  // Replaces every column but id and created_at. With expectedStatus, only when the row is
  // still in that status (compare-and-set). Returns whether a row changed.
  Result<bool> updateSandbox(const SandboxRecord& r,
                             const std::optional<std::string>& expectedStatus = std::nullopt);
  // Status (and error) only; compare-and-set like updateSandbox.
  Result<bool> setSandboxStatus(const std::string& id, const std::string& status,
                                const std::string& error = {},
                                const std::optional<std::string>& expectedStatus = std::nullopt);
  Result<void> touchSandbox(const std::string& id, std::int64_t lastActivityUnix);
  // The egress column only (updateSandbox leaves it alone).
  Result<void> setSandboxEgress(const std::string& id, const std::string& egressJson);
  Result<SandboxRecord> getSandbox(const std::string& id);  // includes tombstones
  Result<std::vector<SandboxRecord>> listSandboxes(bool includeRemoved = false);
  Result<void> deleteSandbox(const std::string& id);  // hard delete (tmux rows cascade)
  // Rows by (provider type, status), tombstones excluded.
  Result<std::map<std::pair<std::string, std::string>, int>> sandboxCounts();

  // --- tmux_sessions ---------------------------------------------------------------------
  Result<void> upsertTmuxSession(const TmuxSessionRow& row);
  Result<void> deleteTmuxSession(const std::string& sandboxId, const std::string& name);
  Result<void> deleteTmuxSessions(const std::string& sandboxId);
  Result<std::vector<TmuxSessionRow>> listTmuxSessions(const std::string& sandboxId);

  // --- audit_log -------------------------------------------------------------------------
  Result<std::int64_t> appendAudit(const AuditEntry& e);            // returns the new id
  Result<std::vector<AuditEntry>> queryAudit(const AuditQuery& q);  // newest first

  // --- settings (key/value) --------------------------------------------------------------
  Result<std::optional<std::string>> getSetting(const std::string& key);
  Result<void> putSetting(const std::string& key, const std::string& value,
                          std::int64_t updatedAtUnix);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentpane
