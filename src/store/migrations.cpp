// The schema, as numbered migrations. Never edit a released migration: add the next one.
#include <algorithm>

#include "store/store.hpp"

namespace agentpane {

namespace {

// The settled statuses in sandboxes_one_live_per_project match isLiveSandboxStatus()
// (store.cpp); a status added later counts as live unless both are changed.
constexpr const char* kMigration1 = R"sql(
CREATE TABLE sandbox_configs (
  id                      TEXT PRIMARY KEY,
  name                    TEXT NOT NULL UNIQUE,
  description             TEXT NOT NULL DEFAULT '',
  provider_type           TEXT NOT NULL DEFAULT 'docker',
  image                   TEXT NOT NULL,
  memory_mb               INTEGER NOT NULL,
  cpu                     REAL NOT NULL,
  pids_limit              INTEGER NOT NULL,
  timeout_minutes         INTEGER NOT NULL,
  is_default              INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  network                 TEXT NOT NULL DEFAULT 'none',
  allow_fallback          INTEGER NOT NULL DEFAULT 1,
  enable_k8s              INTEGER NOT NULL DEFAULT 0,
  kube_config_path        TEXT NOT NULL DEFAULT '',
  kube_context            TEXT NOT NULL DEFAULT '',
  kube_namespace          TEXT NOT NULL DEFAULT 'agentpane-sandboxes',
  network_policy_enabled  INTEGER NOT NULL DEFAULT 1,
  allowed_egress_hosts    TEXT NOT NULL DEFAULT '[]',
  workspace_volume        TEXT NOT NULL DEFAULT 'pvc',
  storage_class           TEXT NOT NULL DEFAULT '',
  workspace_size_gi       INTEGER NOT NULL DEFAULT 10,
  startup_timeout_seconds INTEGER NOT NULL DEFAULT 120,
  created_at              INTEGER NOT NULL,
  updated_at              INTEGER NOT NULL
);
-- At most one default config.
CREATE UNIQUE INDEX sandbox_configs_one_default ON sandbox_configs (is_default)
  WHERE is_default = 1;

CREATE TABLE sandboxes (
  id               TEXT PRIMARY KEY,
  config_id        TEXT REFERENCES sandbox_configs (id) ON DELETE SET NULL,
  provider_type    TEXT NOT NULL,
  status           TEXT NOT NULL,
  project_id       TEXT NOT NULL,
  agent_id         TEXT NOT NULL DEFAULT '',
  project_path     TEXT NOT NULL DEFAULT '',
  image            TEXT NOT NULL DEFAULT '',
  container_id     TEXT NOT NULL DEFAULT '',
  pod_name         TEXT NOT NULL DEFAULT '',
  pod_namespace    TEXT NOT NULL DEFAULT '',
  pod_uid          TEXT NOT NULL DEFAULT '',
  error            TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  last_activity_at INTEGER NOT NULL
);
-- One live sandbox per project: the database, not the service, settles concurrent creates.
CREATE UNIQUE INDEX sandboxes_one_live_per_project ON sandboxes (project_id)
  WHERE status NOT IN ('stopped', 'gone', 'removed', 'error');
CREATE INDEX sandboxes_status ON sandboxes (status);
CREATE INDEX sandboxes_config ON sandboxes (config_id);

CREATE TABLE tmux_sessions (
  sandbox_id TEXT NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
  name       TEXT NOT NULL,
  command    TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (sandbox_id, name)
);

CREATE TABLE audit_log (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms      INTEGER NOT NULL,
  sandbox_id TEXT NOT NULL DEFAULT '',
  actor      TEXT NOT NULL DEFAULT '',
  action     TEXT NOT NULL,
  detail     TEXT NOT NULL DEFAULT '{}',
  ok         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX audit_log_sandbox ON audit_log (sandbox_id, id);
)sql";

// Item "provider instances": every row records the provider instance it lives on (a Docker
// engine; a cluster and context). Rows made before live on the default instance of their
// type, which is named like the type.
constexpr const char* kMigration2 = R"sql(
ALTER TABLE sandboxes ADD COLUMN provider_instance TEXT NOT NULL DEFAULT '';
UPDATE sandboxes SET provider_instance = provider_type WHERE provider_instance = '';
)sql";

// Stopped is not the end: why a sandbox was stopped (idle stop wakes on use), and the
// config switch for waking.
constexpr const char* kMigration3 = R"sql(
ALTER TABLE sandboxes ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE sandbox_configs ADD COLUMN wake_on_use INTEGER NOT NULL DEFAULT 1;
)sql";

// Root exec is a permission of the profile, off by default (also for configs made before).
constexpr const char* kMigration4 = R"sql(
ALTER TABLE sandbox_configs ADD COLUMN allow_root_exec INTEGER NOT NULL DEFAULT 0
  CHECK (allow_root_exec IN (0, 1));
)sql";

// Server-wide settings the web page changes (the default provider), as key/value rows.
constexpr const char* kMigrationSettings = R"sql(
CREATE TABLE settings (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
)sql";

// The audit ledger (src/audit) is the record; audit_log is its query index: each row names
// its ledger entry, and queries filter by event and time.
constexpr const char* kMigrationAuditLedger = R"sql(
ALTER TABLE audit_log ADD COLUMN ledger_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at_ms);
)sql";

// A sandbox being migrated stays running while its replacement is made: it no longer counts
// as the project's live sandbox (isLiveSandboxStatus).
constexpr const char* kMigrationMigrating = R"sql(
DROP INDEX sandboxes_one_live_per_project;
CREATE UNIQUE INDEX sandboxes_one_live_per_project ON sandboxes (project_id)
  WHERE status NOT IN ('stopped', 'gone', 'removed', 'error', 'migrating');
)sql";

// Each sandbox's egress allowlist as it runs (the profile's, the create request's, or a
// later PATCH) and what its provider last enforced: JSON {"allowlist":[..],"status":{..}}.
constexpr const char* kMigrationSandboxEgress = R"sql(
ALTER TABLE sandboxes ADD COLUMN egress TEXT NOT NULL DEFAULT '{}';
)sql";

// The warm pool: each profile's pool sizes, rows of warm sandboxes (no project yet, so not in
// the one-live-per-project index), and the environment a claimed sandbox lays over commands.
constexpr const char* kMigrationWarmPool = R"sql(
ALTER TABLE sandbox_configs ADD COLUMN warm_pool_min INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandbox_configs ADD COLUMN warm_pool_max INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandbox_configs ADD COLUMN warm_pool_idle_ttl_seconds INTEGER NOT NULL DEFAULT 600;
ALTER TABLE sandboxes ADD COLUMN exec_env TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sandboxes ADD COLUMN from_pool INTEGER NOT NULL DEFAULT 0;
DROP INDEX sandboxes_one_live_per_project;
CREATE UNIQUE INDEX sandboxes_one_live_per_project ON sandboxes (project_id)
  WHERE status NOT IN ('stopped', 'gone', 'removed', 'error', 'migrating', 'warming', 'warm');
CREATE INDEX sandboxes_pool ON sandboxes (config_id, status);
)sql";

}  // namespace

const std::vector<Migration>& Store::builtinMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial schema", kMigration1},
      {2, "sandboxes record their provider instance", kMigration2},
      {3, "stop reasons and wake on use", kMigration3},
      {4, "root exec a profile permission", kMigration4},
      {5, "server settings", kMigrationSettings},
      {6, "audit rows index the ledger", kMigrationAuditLedger},
      {7, "a migrating sandbox is not the project's live one", kMigrationMigrating},
      {8, "sandboxes keep their egress allowlist", kMigrationSandboxEgress},
      {9, "warm pools", kMigrationWarmPool},
  };
  return kMigrations;
}

int Store::latestSchemaVersion() {
  int v = 0;
  for (const auto& m : builtinMigrations())
    v = std::max(v, m.version);
  return v;
}

}  // namespace agentpane
