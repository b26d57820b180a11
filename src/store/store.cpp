#include "store/store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace agentpane {

namespace {

Error sqlError(sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  return Error(ErrorCode::Internal, std::move(msg));
}

bool isUniqueViolation(sqlite3* db) {
  int ext = sqlite3_extended_errcode(db);
  return ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY;
}

bool messageMentions(sqlite3* db, std::string_view what) {
  return std::string_view(sqlite3_errmsg(db)).find(what) != std::string_view::npos;
}

// A cached prepared statement in use: bound on construction, reset on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void bind(int i, std::nullptr_t) { note(sqlite3_bind_null(s_, i)); }
  void bind(int i, std::string_view v) {
    note(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind(int i, const std::string& v) { bind(i, std::string_view(v)); }
  void bind(int i, const char* v) { bind(i, std::string_view(v)); }
  void bind(int i, int v) { note(sqlite3_bind_int(s_, i, v)); }
  void bind(int i, std::int64_t v) { note(sqlite3_bind_int64(s_, i, v)); }
  void bind(int i, double v) { note(sqlite3_bind_double(s_, i, v)); }
  void bind(int i, bool v) { note(sqlite3_bind_int(s_, i, v ? 1 : 0)); }
  void bind(int i, const std::optional<std::int64_t>& v) {
    if (v)
      bind(i, *v);
    else
      bind(i, nullptr);
  }
  void bind(int i, const std::optional<std::string>& v) {
    if (v)
      bind(i, *v);
    else
      bind(i, nullptr);
  }

  template <typename... Args>
  void bindAll(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
  }

  // SQLITE_ROW, SQLITE_DONE or an error code (bind failures surface here).
  int step() { return bindRc_ != SQLITE_OK ? bindRc_ : sqlite3_step(s_); }

  std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(s_, col)))
                        : std::string();
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  int i32(int col) const { return sqlite3_column_int(s_, col); }
  double dbl(int col) const { return sqlite3_column_double(s_, col); }
  bool boolean(int col) const { return sqlite3_column_int(s_, col) != 0; }

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && bindRc_ == SQLITE_OK) bindRc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
  int bindRc_ = SQLITE_OK;
};

constexpr const char* kConfigColumns =
    "id, name, description, provider_type, image, memory_mb, cpu, pids_limit, timeout_minutes, "
    "is_default, network, allow_fallback, enable_k8s, kube_config_path, kube_context, "
    "kube_namespace, network_policy_enabled, allowed_egress_hosts, workspace_volume, "
    "storage_class, workspace_size_gi, startup_timeout_seconds, created_at, updated_at, "
    "wake_on_use, allow_root_exec, warm_pool_min, warm_pool_max, warm_pool_idle_ttl_seconds";

constexpr const char* kSandboxColumns =
    "id, config_id, provider_type, status, project_id, agent_id, project_path, image, "
    "container_id, pod_name, pod_namespace, pod_uid, error, created_at, last_activity_at, "
    "provider_instance, stop_reason, egress, exec_env, from_pool";

// Rows written without an instance (older callers, tests) live on the default instance of
// their provider type, named like the type (the Docker provider's default is "docker").
std::string instanceOrDefault(const SandboxInfo& info) {
  return info.instance.empty() ? std::string(toString(info.provider)) : info.instance;
}

std::string egressToText(const std::vector<std::string>& hosts) {
  return nlohmann::json(hosts).dump();
}

// exec_env: [["K","V"], ...]; unreadable text reads as none (it is written only here).
std::string envToText(const std::vector<std::pair<std::string, std::string>>& env) {
  return nlohmann::json(env).dump();
}
std::vector<std::pair<std::string, std::string>> envFromText(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& kv : j) {
    if (kv.is_array() && kv.size() == 2 && kv[0].is_string() && kv[1].is_string())
      out.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
  }
  return out;
}

}  // namespace

struct Store::Impl {
  sqlite3* db = nullptr;
  std::mutex mu;
  std::unordered_map<std::string, sqlite3_stmt*> cache;

  ~Impl() {
    for (auto& [sql, s] : cache)
      sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // Caller holds mu.
  Result<sqlite3_stmt*> prepare(const std::string& sql) {
    auto it = cache.find(sql);
    if (it != cache.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &s, nullptr) != SQLITE_OK) {
      return sqlError(db, "prepare");
    }
    cache.emplace(sql, s);
    return s;
  }

  Result<void> execScript(const std::string& sql, std::string_view what) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg(what);
      msg += ": ";
      msg += err != nullptr ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      return Error(ErrorCode::Internal, std::move(msg));
    }
    return {};
  }

  // Runs a statement that returns no rows; the error mapping for constraint failures is
  // the caller's (onUnique).
  template <typename... Args>
  Result<int> run(const std::string& sql, std::string_view what, const Args&... args) {
    auto s = prepare(sql);
    if (!s.ok()) return s.takeError();
    Stmt st(db, s.value());
    st.bindAll(args...);
    int rc = st.step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqlError(db, what);
    return sqlite3_changes(db);
  }

  template <typename... Args>
  Result<std::int64_t> scalar(const std::string& sql, std::string_view what, const Args&... args) {
    auto s = prepare(sql);
    if (!s.ok()) return s.takeError();
    Stmt st(db, s.value());
    st.bindAll(args...);
    int rc = st.step();
    if (rc == SQLITE_ROW) return st.i64(0);
    if (rc == SQLITE_DONE) return std::int64_t{0};
    return sqlError(db, what);
  }

  // BEGIN IMMEDIATE ... COMMIT; rolled back unless committed.
  class Txn {
   public:
    explicit Txn(Impl& impl) : impl_(impl) {}
    ~Txn() {
      if (begun_ && !done_) (void)impl_.execScript("ROLLBACK", "rollback");
    }
    Result<void> begin() {
      AP_TRY(impl_.execScript("BEGIN IMMEDIATE", "begin transaction"));
      begun_ = true;
      return {};
    }
    Result<void> commit() {
      AP_TRY(impl_.execScript("COMMIT", "commit"));
      done_ = true;
      return {};
    }

   private:
    Impl& impl_;
    bool begun_ = false;
    bool done_ = false;
  };

  Result<SandboxConfig> readConfig(const Stmt& st) {
    SandboxConfig c;
    c.id = st.text(0);
    c.name = st.text(1);
    c.description = st.text(2);
    auto pt = providerTypeFromString(st.text(3));
    if (!pt) return Error(ErrorCode::Internal, "config " + c.id + ": unknown provider_type");
    c.providerType = *pt;
    c.image = st.text(4);
    c.memoryMb = st.i32(5);
    c.cpu = st.dbl(6);
    c.pidsLimit = st.i32(7);
    c.timeoutMinutes = st.i32(8);
    c.isDefault = st.boolean(9);
    auto nm = networkModeFromString(st.text(10));
    if (!nm) return Error(ErrorCode::Internal, "config " + c.id + ": unknown network");
    c.network = *nm;
    c.allowFallback = st.boolean(11);
    c.enableK8s = st.boolean(12);
    c.kubeConfigPath = st.text(13);
    c.kubeContext = st.text(14);
    c.kubeNamespace = st.text(15);
    c.networkPolicyEnabled = st.boolean(16);
    auto hosts = nlohmann::json::parse(st.text(17), nullptr, false);
    if (hosts.is_discarded() || !hosts.is_array()) {
      return Error(ErrorCode::Internal,
                   "config " + c.id + ": allowed_egress_hosts is not a JSON list");
    }
    for (const auto& h : hosts) {
      if (!h.is_string()) {
        return Error(ErrorCode::Internal,
                     "config " + c.id + ": allowed_egress_hosts holds a non-string");
      }
      c.allowedEgressHosts.push_back(h.get<std::string>());
    }
    c.workspaceVolume = st.text(18);
    c.storageClass = st.text(19);
    c.workspaceSizeGi = st.i32(20);
    c.startupTimeoutSeconds = st.i32(21);
    c.createdAtUnix = st.i64(22);
    c.updatedAtUnix = st.i64(23);
    c.wakeOnUse = st.boolean(24);
    c.allowRootExec = st.boolean(25);
    c.warmPoolMin = st.i32(26);
    c.warmPoolMax = st.i32(27);
    c.warmPoolIdleTtlSeconds = st.i32(28);
    return c;
  }

  Result<std::vector<SandboxConfig>> queryConfigs(const std::string& where,
                                                  const std::optional<std::string>& arg) {
    std::string sql = std::string("SELECT ") + kConfigColumns + " FROM sandbox_configs " + where;
    auto s = prepare(sql);
    if (!s.ok()) return s.takeError();
    Stmt st(db, s.value());
    if (arg) st.bind(1, *arg);
    std::vector<SandboxConfig> out;
    for (;;) {
      int rc = st.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sqlError(db, "read sandbox_configs");
      auto c = readConfig(st);
      if (!c.ok()) return c.takeError();
      out.push_back(std::move(c).value());
    }
    return out;
  }

  Result<SandboxConfig> oneConfig(const std::string& where, const std::string& arg,
                                  const std::string& what) {
    auto rows = queryConfigs(where, arg);
    if (!rows.ok()) return rows.takeError();
    if (rows->empty()) {
      return Error(ErrorCode::SandboxConfigNotFound, "sandbox config " + what + " not found");
    }
    return std::move(rows->front());
  }

  static SandboxRecord readSandbox(const Stmt& st) {
    SandboxRecord r;
    r.info.id = st.text(0);
    r.configId = st.text(1);
    r.info.provider = providerTypeFromString(st.text(2)).value_or(ProviderType::Docker);
    r.status = st.text(3);
    r.info.state = stateFromStatus(r.status);
    r.info.projectId = st.text(4);
    r.info.agentId = st.text(5);
    r.info.projectPath = st.text(6);
    r.info.image = st.text(7);
    r.info.containerId = st.text(8);
    r.info.podName = st.text(9);
    r.info.podNamespace = st.text(10);
    r.info.podUid = st.text(11);
    r.error = st.text(12);
    r.createdAtUnix = st.i64(13);
    r.info.createdAtUnix = r.createdAtUnix;
    r.lastActivityUnix = st.i64(14);
    r.info.instance = st.text(15);
    r.stopReason = st.text(16);
    r.egressJson = st.text(17);
    r.execEnv = envFromText(st.text(18));
    r.fromPool = st.boolean(19);
    return r;
  }

  Result<void> clearDefaultExcept(const std::string& id) {
    auto r = run("UPDATE sandbox_configs SET is_default = 0 WHERE is_default = 1 AND id <> ?1",
                 "clear default config", id);
    if (!r.ok()) return r.takeError();
    return {};
  }

  Error configWriteError(const SandboxConfig& c, std::string_view what) {
    if (isUniqueViolation(db) && messageMentions(db, "sandbox_configs.name")) {
      return Error(ErrorCode::SandboxConfigNameConflict,
                   "a sandbox config named '" + c.name + "' already exists", {{"field", "name"}});
    }
    if (isUniqueViolation(db) && messageMentions(db, "sandbox_configs.id")) {
      return Error(ErrorCode::Conflict, "a sandbox config with id '" + c.id + "' already exists",
                   {{"field", "id"}});
    }
    return sqlError(db, what);
  }

  Error sandboxWriteError(const SandboxRecord& r, std::string_view what) {
    if (isUniqueViolation(db)) {
      if (messageMentions(db, "sandboxes.project_id")) {
        return Error(ErrorCode::SandboxAlreadyExists,
                     "project " + r.info.projectId + " already has a live sandbox",
                     {{"projectId", r.info.projectId}});
      }
      return Error(ErrorCode::SandboxAlreadyExists, "sandbox " + r.info.id + " already exists",
                   {{"id", r.info.id}});
    }
    if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Error(ErrorCode::SandboxConfigNotFound, "sandbox config " + r.configId + " not found",
                   {{"field", "configId"}});
    }
    return sqlError(db, what);
  }

  Result<void> migrate(const std::vector<Migration>& migrations) {
    AP_TRY(
        execScript("CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                   "create schema_migrations"));
    int latest = 0;
    for (const auto& m : migrations)
      latest = std::max(latest, m.version);
    auto current =
        scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", "read schema version");
    if (!current.ok()) return current.takeError();
    if (current.value() > latest) {
      return Error(
          ErrorCode::Internal,
          "state.db has schema version " + std::to_string(current.value()) +
              " but this agentpane knows versions up to " + std::to_string(latest) +
              "; it was written by a newer agentpane — upgrade agentpane or use another home",
          {{"schemaVersion", std::to_string(current.value())},
           {"supportedVersion", std::to_string(latest)}});
    }
    std::vector<const Migration*> ordered;
    for (const auto& m : migrations)
      ordered.push_back(&m);
    std::sort(ordered.begin(), ordered.end(),
              [](const Migration* a, const Migration* b) { return a->version < b->version; });
    for (const Migration* m : ordered) {
      if (m->version <= current.value()) continue;
      Txn txn(*this);
      AP_TRY(txn.begin());
      // Another process may have applied it between our read and BEGIN IMMEDIATE.
      auto already =
          scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", "read schema version");
      if (!already.ok()) return already.takeError();
      if (already.value() >= m->version) continue;
      auto r = execScript(m->sql, "migration " + std::to_string(m->version) + " (" + m->name + ")");
      if (!r.ok()) return r.takeError();
      auto ins = run(
          "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
          "record migration", m->version, m->name, static_cast<std::int64_t>(std::time(nullptr)));
      if (!ins.ok()) return ins.takeError();
      AP_TRY(txn.commit());
    }
    return {};
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& home) {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool made = fs::create_directories(home, ec);
  if (ec) {
    return Error(ErrorCode::Internal,
                 "cannot create home directory " + home.string() + ": " + ec.message());
  }
  if (made) fs::permissions(home, fs::perms::owner_all, fs::perm_options::replace, ec);
  // The audit log holds every argv: the database is the owner's only. SQLite gives the
  // -wal and -shm files the mode of the database file.
  auto db = home / "state.db";
  int fd = ::open(db.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error(ErrorCode::Internal, "cannot create " + db.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
  return openFile(db.string());
}

Result<std::unique_ptr<Store>> Store::openFile(const std::string& path) {
  return openFile(path, builtinMigrations());
}

Result<std::unique_ptr<Store>> Store::openFile(const std::string& path,
                                               const std::vector<Migration>& migrations) {
  auto impl = std::make_unique<Impl>();
  int rc =
      sqlite3_open_v2(path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return sqlError(impl->db, "open " + path);
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, 5000);
  AP_TRY(impl->execScript("PRAGMA journal_mode = WAL", "enable WAL"));
  AP_TRY(impl->execScript("PRAGMA synchronous = NORMAL", "set synchronous"));
  AP_TRY(impl->execScript("PRAGMA foreign_keys = ON", "enable foreign keys"));
  AP_TRY(impl->migrate(migrations));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<int> Store::schemaVersion() {
  std::lock_guard lk(impl_->mu);
  auto v = impl_->scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                         "read schema version");
  if (!v.ok()) return v.takeError();
  return static_cast<int>(v.value());
}

Result<std::vector<int>> Store::appliedMigrations() {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare("SELECT version FROM schema_migrations ORDER BY version");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  std::vector<int> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlError(impl_->db, "read schema_migrations");
    out.push_back(st.i32(0));
  }
  return out;
}

// --- sandbox_configs ---------------------------------------------------------------------

Result<std::vector<SandboxConfig>> Store::listConfigs() {
  std::lock_guard lk(impl_->mu);
  return impl_->queryConfigs("ORDER BY is_default DESC, name", std::nullopt);
}

Result<SandboxConfig> Store::getConfig(const std::string& id) {
  std::lock_guard lk(impl_->mu);
  return impl_->oneConfig("WHERE id = ?1", id, id);
}

Result<SandboxConfig> Store::getConfigByName(const std::string& name) {
  std::lock_guard lk(impl_->mu);
  return impl_->oneConfig("WHERE name = ?1", name, "named '" + name + "'");
}

Result<SandboxConfig> Store::getDefaultConfig() {
  std::lock_guard lk(impl_->mu);
  auto rows = impl_->queryConfigs("WHERE is_default = 1", std::nullopt);
  if (!rows.ok()) return rows.takeError();
  if (rows->empty()) return Error(ErrorCode::SandboxConfigNotFound, "no default sandbox config");
  return std::move(rows->front());
}

Result<int> Store::countConfigs() {
  std::lock_guard lk(impl_->mu);
  auto n = impl_->scalar("SELECT COUNT(*) FROM sandbox_configs", "count sandbox_configs");
  if (!n.ok()) return n.takeError();
  return static_cast<int>(n.value());
}

Result<void> Store::insertConfig(const SandboxConfig& c) {
  std::lock_guard lk(impl_->mu);
  Impl::Txn txn(*impl_);
  AP_TRY(txn.begin());
  if (c.isDefault) AP_TRY(impl_->clearDefaultExcept(c.id));
  auto r = impl_->run(
      std::string("INSERT INTO sandbox_configs (") + kConfigColumns +
          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
          "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)",
      "insert sandbox config", c.id, c.name, c.description, toString(c.providerType), c.image,
      c.memoryMb, c.cpu, c.pidsLimit, c.timeoutMinutes, c.isDefault, toString(c.network),
      c.allowFallback, c.enableK8s, c.kubeConfigPath, c.kubeContext, c.kubeNamespace,
      c.networkPolicyEnabled, egressToText(c.allowedEgressHosts), c.workspaceVolume, c.storageClass,
      c.workspaceSizeGi, c.startupTimeoutSeconds, c.createdAtUnix, c.updatedAtUnix, c.wakeOnUse,
      c.allowRootExec, c.warmPoolMin, c.warmPoolMax, c.warmPoolIdleTtlSeconds);
  if (!r.ok()) return impl_->configWriteError(c, "insert sandbox config");
  return txn.commit();
}

Result<void> Store::updateConfig(const SandboxConfig& c) {
  std::lock_guard lk(impl_->mu);
  Impl::Txn txn(*impl_);
  AP_TRY(txn.begin());
  if (c.isDefault) AP_TRY(impl_->clearDefaultExcept(c.id));
  auto r = impl_->run(
      "UPDATE sandbox_configs SET name = ?2, description = ?3, provider_type = ?4, image = ?5, "
      "memory_mb = ?6, cpu = ?7, pids_limit = ?8, timeout_minutes = ?9, is_default = ?10, "
      "network = ?11, allow_fallback = ?12, enable_k8s = ?13, kube_config_path = ?14, "
      "kube_context = ?15, kube_namespace = ?16, network_policy_enabled = ?17, "
      "allowed_egress_hosts = ?18, workspace_volume = ?19, storage_class = ?20, "
      "workspace_size_gi = ?21, startup_timeout_seconds = ?22, updated_at = ?23, wake_on_use = "
      "?24, "
      "allow_root_exec = ?25, warm_pool_min = ?26, warm_pool_max = ?27, "
      "warm_pool_idle_ttl_seconds = ?28 WHERE id = ?1",
      "update sandbox config", c.id, c.name, c.description, toString(c.providerType), c.image,
      c.memoryMb, c.cpu, c.pidsLimit, c.timeoutMinutes, c.isDefault, toString(c.network),
      c.allowFallback, c.enableK8s, c.kubeConfigPath, c.kubeContext, c.kubeNamespace,
      c.networkPolicyEnabled, egressToText(c.allowedEgressHosts), c.workspaceVolume, c.storageClass,
      c.workspaceSizeGi, c.startupTimeoutSeconds, c.updatedAtUnix, c.wakeOnUse, c.allowRootExec,
      c.warmPoolMin, c.warmPoolMax, c.warmPoolIdleTtlSeconds);
  if (!r.ok()) return impl_->configWriteError(c, "update sandbox config");
  if (r.value() == 0) {
    return Error(ErrorCode::SandboxConfigNotFound, "sandbox config " + c.id + " not found");
  }
  return txn.commit();
}

Result<void> Store::deleteConfig(const std::string& id) {
  std::lock_guard lk(impl_->mu);
  Impl::Txn txn(*impl_);
  AP_TRY(txn.begin());
  auto exists =
      impl_->scalar("SELECT COUNT(*) FROM sandbox_configs WHERE id = ?1", "find config", id);
  if (!exists.ok()) return exists.takeError();
  if (exists.value() == 0) {
    return Error(ErrorCode::SandboxConfigNotFound, "sandbox config " + id + " not found");
  }
  auto inUse = impl_->scalar(
      "SELECT COUNT(*) FROM sandboxes WHERE config_id = ?1 "
      "AND status NOT IN ('stopped', 'gone', 'removed', 'error', 'warming', 'warm')",
      "count sandboxes of config", id);
  if (!inUse.ok()) return inUse.takeError();
  if (inUse.value() > 0) {
    return Error(ErrorCode::SandboxConfigInUse,
                 "sandbox config " + id + " is used by " + std::to_string(inUse.value()) +
                     " live sandbox(es)",
                 {{"sandboxes", std::to_string(inUse.value())}});
  }
  auto r = impl_->run("DELETE FROM sandbox_configs WHERE id = ?1", "delete sandbox config", id);
  if (!r.ok()) return r.takeError();
  return txn.commit();
}

// --- sandboxes ---------------------------------------------------------------------------

Result<void> Store::insertSandbox(const SandboxRecord& r) {
  std::lock_guard lk(impl_->mu);
  std::optional<std::string> configId;
  if (!r.configId.empty()) configId = r.configId;
  auto res = impl_->run(
      std::string("INSERT INTO sandboxes (") + kSandboxColumns +
          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
          "?18, ?19, ?20)",
      "insert sandbox", r.info.id, configId, toString(r.info.provider), r.status, r.info.projectId,
      r.info.agentId, r.info.projectPath, r.info.image, r.info.containerId, r.info.podName,
      r.info.podNamespace, r.info.podUid, r.error, r.createdAtUnix, r.lastActivityUnix,
      instanceOrDefault(r.info), r.stopReason, r.egressJson.empty() ? "{}" : r.egressJson,
      envToText(r.execEnv), r.fromPool);
  if (!res.ok()) return impl_->sandboxWriteError(r, "insert sandbox");
  return {};
}

Result<bool> Store::updateSandbox(const SandboxRecord& r,
                                  const std::optional<std::string>& expectedStatus) {
  std::lock_guard lk(impl_->mu);
  std::optional<std::string> configId;
  if (!r.configId.empty()) configId = r.configId;
  auto res = impl_->run(
      "UPDATE sandboxes SET config_id = ?2, provider_type = ?3, status = ?4, project_id = ?5, "
      "agent_id = ?6, project_path = ?7, image = ?8, container_id = ?9, pod_name = ?10, "
      "pod_namespace = ?11, pod_uid = ?12, error = ?13, last_activity_at = ?14, "
      "provider_instance = ?16, stop_reason = ?17, exec_env = ?18, from_pool = ?19 "
      "WHERE id = ?1 AND (?15 IS NULL OR status = ?15)",
      "update sandbox", r.info.id, configId, toString(r.info.provider), r.status, r.info.projectId,
      r.info.agentId, r.info.projectPath, r.info.image, r.info.containerId, r.info.podName,
      r.info.podNamespace, r.info.podUid, r.error, r.lastActivityUnix, expectedStatus,
      instanceOrDefault(r.info), r.stopReason, envToText(r.execEnv), r.fromPool);
  if (!res.ok()) return impl_->sandboxWriteError(r, "update sandbox");
  return res.value() > 0;
}

Result<bool> Store::setSandboxStatus(const std::string& id, const std::string& status,
                                     const std::string& error,
                                     const std::optional<std::string>& expectedStatus) {
  std::lock_guard lk(impl_->mu);
  auto res = impl_->run(
      "UPDATE sandboxes SET status = ?2, error = ?3 WHERE id = ?1 AND (?4 IS NULL OR status = ?4)",
      "update sandbox status", id, status, error, expectedStatus);
  if (!res.ok()) {
    if (isUniqueViolation(impl_->db)) {
      // Reviving a settled row whose project meanwhile got another live sandbox.
      return Error(ErrorCode::SandboxAlreadyExists,
                   "sandbox " + id + ": its project already has another live sandbox",
                   {{"id", id}});
    }
    return res.takeError();
  }
  return res.value() > 0;
}

Result<void> Store::setSandboxEgress(const std::string& id, const std::string& egressJson) {
  std::lock_guard lk(impl_->mu);
  auto res = impl_->run("UPDATE sandboxes SET egress = ?2 WHERE id = ?1", "set sandbox egress", id,
                        egressJson);
  if (!res.ok()) return res.takeError();
  if (res.value() == 0) return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
  return {};
}

Result<void> Store::touchSandbox(const std::string& id, std::int64_t lastActivityUnix) {
  std::lock_guard lk(impl_->mu);
  auto res =
      impl_->run("UPDATE sandboxes SET last_activity_at = MAX(last_activity_at, ?2) WHERE id = ?1",
                 "touch sandbox", id, lastActivityUnix);
  if (!res.ok()) return res.takeError();
  if (res.value() == 0) return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
  return {};
}

Result<SandboxRecord> Store::getSandbox(const std::string& id) {
  std::lock_guard lk(impl_->mu);
  auto s =
      impl_->prepare(std::string("SELECT ") + kSandboxColumns + " FROM sandboxes WHERE id = ?1");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  st.bind(1, id);
  int rc = st.step();
  if (rc == SQLITE_ROW) return Impl::readSandbox(st);
  if (rc == SQLITE_DONE) return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
  return sqlError(impl_->db, "read sandbox");
}

Result<std::vector<SandboxRecord>> Store::listSandboxes(bool includeRemoved) {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare(std::string("SELECT ") + kSandboxColumns +
                          " FROM sandboxes WHERE (?1 = 1 OR status <> 'removed') "
                          "ORDER BY created_at, id");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  st.bind(1, includeRemoved);
  std::vector<SandboxRecord> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlError(impl_->db, "list sandboxes");
    out.push_back(Impl::readSandbox(st));
  }
  return out;
}

Result<void> Store::deleteSandbox(const std::string& id) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run("DELETE FROM sandboxes WHERE id = ?1", "delete sandbox", id);
  if (!r.ok()) return r.takeError();
  return {};
}

Result<std::map<std::pair<std::string, std::string>, int>> Store::sandboxCounts() {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare(
      "SELECT provider_type, status, COUNT(*) FROM sandboxes WHERE status <> 'removed' "
      "GROUP BY provider_type, status");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  std::map<std::pair<std::string, std::string>, int> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlError(impl_->db, "count sandboxes");
    out[{st.text(0), st.text(1)}] = st.i32(2);
  }
  return out;
}

// --- tmux_sessions -----------------------------------------------------------------------

Result<void> Store::upsertTmuxSession(const TmuxSessionRow& row) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run(
      "INSERT INTO tmux_sessions (sandbox_id, name, command, created_at) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (sandbox_id, name) DO UPDATE SET command = excluded.command, "
      "created_at = excluded.created_at",
      "upsert tmux session", row.sandboxId, row.name, nlohmann::json(row.command).dump(),
      row.createdAtUnix);
  if (!r.ok()) {
    if (sqlite3_extended_errcode(impl_->db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Error(ErrorCode::SandboxNotFound, "sandbox " + row.sandboxId + " not found");
    }
    return r.takeError();
  }
  return {};
}

Result<void> Store::deleteTmuxSession(const std::string& sandboxId, const std::string& name) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run("DELETE FROM tmux_sessions WHERE sandbox_id = ?1 AND name = ?2",
                      "delete tmux session", sandboxId, name);
  if (!r.ok()) return r.takeError();
  return {};
}

Result<void> Store::deleteTmuxSessions(const std::string& sandboxId) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run("DELETE FROM tmux_sessions WHERE sandbox_id = ?1", "delete tmux sessions",
                      sandboxId);
  if (!r.ok()) return r.takeError();
  return {};
}

Result<std::vector<TmuxSessionRow>> Store::listTmuxSessions(const std::string& sandboxId) {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare(
      "SELECT sandbox_id, name, command, created_at FROM tmux_sessions WHERE sandbox_id = ?1 "
      "ORDER BY name");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  st.bind(1, sandboxId);
  std::vector<TmuxSessionRow> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlError(impl_->db, "list tmux sessions");
    TmuxSessionRow row;
    row.sandboxId = st.text(0);
    row.name = st.text(1);
    auto cmd = nlohmann::json::parse(st.text(2), nullptr, false);
    if (cmd.is_array()) {
      for (const auto& a : cmd) {
        if (a.is_string()) row.command.push_back(a.get<std::string>());
      }
    }
    row.createdAtUnix = st.i64(3);
    out.push_back(std::move(row));
  }
  return out;
}

// --- audit_log ---------------------------------------------------------------------------

Result<std::int64_t> Store::appendAudit(const AuditEntry& e) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run(
      "INSERT INTO audit_log (at_ms, sandbox_id, actor, action, detail, ok, ledger_seq) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      "append audit entry", e.atUnixMs, e.sandboxId, e.actor, e.action,
      e.detail.empty() ? std::string("{}") : e.detail, e.ok, e.ledgerSeq);
  if (!r.ok()) return r.takeError();
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(impl_->db));
}

Result<std::vector<AuditEntry>> Store::queryAudit(const AuditQuery& q) {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare(
      "SELECT id, at_ms, sandbox_id, actor, action, detail, ok, ledger_seq FROM audit_log "
      "WHERE (?1 IS NULL OR sandbox_id = ?1) AND (?2 <= 0 OR id < ?2) "
      "AND (?4 IS NULL OR action = ?4) "
      "AND (?5 IS NULL OR substr(action, 1, length(?5)) = ?5) "
      "AND (?6 IS NULL OR at_ms >= ?6) AND (?7 IS NULL OR at_ms <= ?7) "
      "ORDER BY id DESC LIMIT ?3");
  if (!s.ok()) return s.takeError();
  // "sandbox.*" is the family: every action that begins with "sandbox.".
  std::optional<std::string> exact, prefix;
  if (q.action && q.action->size() >= 2 && q.action->substr(q.action->size() - 2) == ".*")
    prefix = q.action->substr(0, q.action->size() - 1);
  else
    exact = q.action;
  Stmt st(impl_->db, s.value());
  st.bindAll(q.sandboxId, q.beforeId, std::clamp(q.limit, 1, 1000), exact, prefix, q.sinceMs,
             q.untilMs);
  std::vector<AuditEntry> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlError(impl_->db, "read audit log");
    AuditEntry e;
    e.id = st.i64(0);
    e.atUnixMs = st.i64(1);
    e.sandboxId = st.text(2);
    e.actor = st.text(3);
    e.action = st.text(4);
    e.detail = st.text(5);
    e.ok = st.boolean(6);
    e.ledgerSeq = st.i64(7);
    out.push_back(std::move(e));
  }
  return out;
}

// --- settings --------------------------------------------------------------------------------

Result<std::optional<std::string>> Store::getSetting(const std::string& key) {
  std::lock_guard lk(impl_->mu);
  auto s = impl_->prepare("SELECT value FROM settings WHERE key = ?1");
  if (!s.ok()) return s.takeError();
  Stmt st(impl_->db, s.value());
  st.bindAll(key);
  int rc = st.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(st.text(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return sqlError(impl_->db, "read setting");
}

Result<void> Store::putSetting(const std::string& key, const std::string& value,
                               std::int64_t updatedAtUnix) {
  std::lock_guard lk(impl_->mu);
  auto r = impl_->run(
      "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      "write setting", key, value, updatedAtUnix);
  if (!r.ok()) return r.takeError();
  return {};
}

}  // namespace agentpane
