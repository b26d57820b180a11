#include "store/store.hpp"
#include "unit/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <thread>

namespace agentpane {
namespace {

namespace fs = std::filesystem;

using TempDir = agentpane::testing::TempDir;

SandboxConfig makeConfig(const std::string& id, const std::string& name, bool isDefault = false) {
  SandboxConfig c;
  c.id = id;
  c.name = name;
  c.isDefault = isDefault;
  c.createdAtUnix = 100;
  c.updatedAtUnix = 100;
  return c;
}

SandboxRecord makeSandbox(const std::string& id, const std::string& project,
                          const std::string& status = sandbox_status::kRunning,
                          const std::string& configId = {}) {
  SandboxRecord r;
  r.info.id = id;
  r.info.projectId = project;
  r.info.projectPath = "/tmp/" + project;
  r.info.provider = ProviderType::Docker;
  r.status = status;
  r.configId = configId;
  r.createdAtUnix = 10;
  r.lastActivityUnix = 10;
  return r;
}

std::unique_ptr<Store> openOrDie(const std::string& path) {
  auto s = Store::openFile(path);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().describe());
  return s.ok() ? std::move(s).value() : nullptr;
}

// Executes raw SQL on a database file, behind the store's back.
void rawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// --- opening and migrations -------------------------------------------------------------

TEST(StoreOpen, CreatesHomeAndStateDbInWalMode) {
  TempDir dir;
  auto home = dir.path() / "nested" / "home";
  auto s = Store::open(home);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(fs::exists(home / "state.db"));
  EXPECT_EQ(fs::status(home / "state.db").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(home).permissions() & fs::perms::all, fs::perms::owner_all);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((home / "state.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(StoreMigrations, AppliedOnceAndVersioned) {
  TempDir dir;
  auto path = (dir.path() / "state.db").string();
  {
    auto s = openOrDie(path);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->schemaVersion().value(), Store::latestSchemaVersion());
    ASSERT_TRUE(s->insertConfig(makeConfig("c1", "one", true)).ok());
  }
  {
    // Reopening applies nothing again and keeps the data.
    auto s = openOrDie(path);
    ASSERT_TRUE(s);
    std::vector<int> all;
    for (const auto& m : Store::builtinMigrations())
      all.push_back(m.version);
    EXPECT_EQ(s->appliedMigrations().value(), all);
    EXPECT_EQ(s->countConfigs().value(), 1);
  }
}

TEST(StoreMigrations, LaterMigrationAppliesOnTopInOrder) {
  TempDir dir;
  auto path = (dir.path() / "state.db").string();
  ASSERT_TRUE(openOrDie(path));
  const int n = Store::latestSchemaVersion();
  auto migrations = Store::builtinMigrations();
  std::vector<int> expected;
  for (const auto& m : migrations)
    expected.push_back(m.version);
  expected.push_back(n + 1);
  expected.push_back(n + 2);
  migrations.push_back({n + 2, "third", "ALTER TABLE sandboxes ADD COLUMN third TEXT"});
  migrations.push_back({n + 1, "second", "ALTER TABLE sandboxes ADD COLUMN second TEXT"});
  {
    auto s = Store::openFile(path, migrations);
    ASSERT_TRUE(s.ok()) << s.error().describe();
    EXPECT_EQ(s.value()->appliedMigrations().value(), expected);
  }
  {
    auto s = Store::openFile(path, migrations);  // idempotent
    ASSERT_TRUE(s.ok()) << s.error().describe();
    EXPECT_EQ(s.value()->schemaVersion().value(), n + 2);
  }
}

TEST(StoreMigrations, FailingMigrationRollsBackCompletely) {
  TempDir dir;
  auto path = (dir.path() / "state.db").string();
  const int n = Store::latestSchemaVersion();
  auto migrations = Store::builtinMigrations();
  migrations.push_back(
      {n + 1, "broken",
       "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);"});
  auto s = Store::openFile(path, migrations);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::Internal);
  EXPECT_NE(s.error().message.find("migration " + std::to_string(n + 1)), std::string::npos)
      << s.error().message;
  // The built-in migrations stay; nothing of the broken one is left.
  auto again = openOrDie(path);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->schemaVersion().value(), n);
  auto fixed = Store::builtinMigrations();
  fixed.push_back({n + 1, "fixed", "CREATE TABLE half_done (x INTEGER);"});
  EXPECT_TRUE(Store::openFile(path, fixed).ok());
}

TEST(StoreMigrations, RefusesADatabaseFromANewerVersion) {
  TempDir dir;
  auto path = (dir.path() / "state.db").string();
  ASSERT_TRUE(openOrDie(path));
  rawExec(path,
          "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)");
  auto s = Store::openFile(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::Internal);
  EXPECT_NE(s.error().message.find("newer"), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().details.at("schemaVersion"), "99");
}

TEST(StoreMigrations, ConfigsMadeBeforeMigration4DoNotAllowRootExec) {
  // A database at schema 3 (before root exec became a profile permission) with a config:
  // after migration 4 the config allows no root exec, and the column takes only 0 or 1.
  TempDir dir;
  auto path = (dir.path() / "state.db").string();
  std::vector<Migration> upTo3;
  for (const auto& m : Store::builtinMigrations()) {
    if (m.version <= 3) upTo3.push_back(m);
  }
  ASSERT_EQ(upTo3.size(), 3u);
  {
    auto s = Store::openFile(path, upTo3);
    ASSERT_TRUE(s.ok()) << s.error().describe();
  }
  rawExec(path,
          "INSERT INTO sandbox_configs (id, name, image, memory_mb, cpu, pids_limit, "
          "timeout_minutes, created_at, updated_at) VALUES ('old', 'old', 'img', 512, 1, 256, "
          "30, 1, 1)");
  auto s = openOrDie(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->schemaVersion().value(), Store::latestSchemaVersion());
  auto c = s->getConfig("old");
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_FALSE(c->allowRootExec);
  EXPECT_TRUE(c->wakeOnUse);  // migration 3's default is kept
  s.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_NE(
      sqlite3_exec(db, "UPDATE sandbox_configs SET allow_root_exec = 2", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
}

// --- configs ------------------------------------------------------------------------------

TEST(StoreConfigs, RoundTripsEveryField) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  SandboxConfig c = makeConfig("cfg-1", "k8s big");
  c.description = "desc";
  c.providerType = ProviderType::Kubernetes;
  c.image = "img:1";
  c.memoryMb = 4096;
  c.cpu = 3.5;
  c.pidsLimit = 1024;
  c.timeoutMinutes = 30;
  c.network = NetworkMode::Bridge;
  c.allowFallback = false;
  c.enableK8s = true;
  c.kubeConfigPath = "/k/config";
  c.kubeContext = "kind-x";
  c.kubeNamespace = "ns1";
  c.networkPolicyEnabled = false;
  c.allowedEgressHosts = {"github.com:443", "10.0.0.0/8"};
  c.workspaceVolume = "emptyDir";
  c.storageClass = "standard";
  c.workspaceSizeGi = 20;
  c.startupTimeoutSeconds = 300;
  c.allowRootExec = true;
  c.createdAtUnix = 5;
  c.updatedAtUnix = 6;
  ASSERT_TRUE(s->insertConfig(c).ok());
  auto got = s->getConfig("cfg-1");
  ASSERT_TRUE(got.ok());
  const auto& g = got.value();
  EXPECT_EQ(g.name, c.name);
  EXPECT_EQ(g.description, c.description);
  EXPECT_EQ(g.providerType, c.providerType);
  EXPECT_EQ(g.image, c.image);
  EXPECT_EQ(g.memoryMb, c.memoryMb);
  EXPECT_DOUBLE_EQ(g.cpu, c.cpu);
  EXPECT_EQ(g.pidsLimit, c.pidsLimit);
  EXPECT_EQ(g.timeoutMinutes, c.timeoutMinutes);
  EXPECT_EQ(g.network, c.network);
  EXPECT_EQ(g.allowFallback, c.allowFallback);
  EXPECT_EQ(g.enableK8s, c.enableK8s);
  EXPECT_EQ(g.kubeConfigPath, c.kubeConfigPath);
  EXPECT_EQ(g.kubeContext, c.kubeContext);
  EXPECT_EQ(g.kubeNamespace, c.kubeNamespace);
  EXPECT_EQ(g.networkPolicyEnabled, c.networkPolicyEnabled);
  EXPECT_EQ(g.allowedEgressHosts, c.allowedEgressHosts);
  EXPECT_EQ(g.workspaceVolume, c.workspaceVolume);
  EXPECT_EQ(g.storageClass, c.storageClass);
  EXPECT_EQ(g.workspaceSizeGi, c.workspaceSizeGi);
  EXPECT_EQ(g.startupTimeoutSeconds, c.startupTimeoutSeconds);
  EXPECT_TRUE(g.allowRootExec);
  EXPECT_EQ(g.createdAtUnix, 5);
  EXPECT_EQ(g.updatedAtUnix, 6);
  EXPECT_EQ(s->getConfigByName("k8s big").value().id, "cfg-1");
}

TEST(StoreConfigs, DuplicateNameIsANameConflict) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->insertConfig(makeConfig("a", "same")).ok());
  auto r = s->insertConfig(makeConfig("b", "same"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxConfigNameConflict);
  EXPECT_EQ(r.error().details.at("field"), "name");
  // Renaming onto a taken name too.
  ASSERT_TRUE(s->insertConfig(makeConfig("c", "other")).ok());
  auto renamed = makeConfig("c", "same");
  auto u = s->updateConfig(renamed);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, ErrorCode::SandboxConfigNameConflict);
}

TEST(StoreConfigs, OnlyOneDefault) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->insertConfig(makeConfig("a", "a", true)).ok());
  ASSERT_TRUE(s->insertConfig(makeConfig("b", "b", true)).ok());
  EXPECT_EQ(s->getDefaultConfig().value().id, "b");
  EXPECT_FALSE(s->getConfig("a").value().isDefault);
  auto a = s->getConfig("a").value();
  a.isDefault = true;
  ASSERT_TRUE(s->updateConfig(a).ok());
  EXPECT_EQ(s->getDefaultConfig().value().id, "a");
  EXPECT_FALSE(s->getConfig("b").value().isDefault);
  auto list = s->listConfigs().value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "a");  // default first
}

TEST(StoreConfigs, FailedInsertDoesNotClearTheDefault) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->insertConfig(makeConfig("a", "a", true)).ok());
  ASSERT_FALSE(s->insertConfig(makeConfig("b", "a", true)).ok());  // name conflict
  EXPECT_EQ(s->getDefaultConfig().value().id, "a");
}

TEST(StoreConfigs, NotFoundAndDeleteInUse) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->getConfig("nope").error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(s->getDefaultConfig().error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(s->deleteConfig("nope").error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(s->updateConfig(makeConfig("nope", "x")).error().code,
            ErrorCode::SandboxConfigNotFound);

  ASSERT_TRUE(s->insertConfig(makeConfig("c", "c")).ok());
  ASSERT_TRUE(s->insertSandbox(makeSandbox("s1", "p1", sandbox_status::kRunning, "c")).ok());
  auto d = s->deleteConfig("c");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::SandboxConfigInUse);

  // Once the sandbox is settled the config can go; the row keeps a NULL config.
  ASSERT_TRUE(s->setSandboxStatus("s1", sandbox_status::kStopped).value());
  ASSERT_TRUE(s->deleteConfig("c").ok());
  EXPECT_EQ(s->getSandbox("s1").value().configId, "");
}

// --- sandboxes ----------------------------------------------------------------------------

TEST(StoreSandboxes, RowsRecordTheirProviderInstance) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  auto a = makeSandbox("s1", "p1");
  a.info.instance = "docker-remote";
  ASSERT_TRUE(s->insertSandbox(a).ok());
  EXPECT_EQ(s->getSandbox("s1").value().info.instance, "docker-remote");
  // Written without one: the default instance of its type, named like the type.
  auto b = makeSandbox("s2", "p2");
  b.info.provider = ProviderType::Kubernetes;
  ASSERT_TRUE(s->insertSandbox(b).ok());
  EXPECT_EQ(s->getSandbox("s2").value().info.instance, "kubernetes");
  a.info.instance = "docker-other";
  ASSERT_TRUE(s->updateSandbox(a, std::nullopt).ok());
  EXPECT_EQ(s->getSandbox("s1").value().info.instance, "docker-other");
}

TEST(StoreSandboxes, OneLiveSandboxPerProject) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->insertSandbox(makeSandbox("s1", "p", sandbox_status::kCreating)).ok());
  auto dup = s->insertSandbox(makeSandbox("s2", "p", sandbox_status::kCreating));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::SandboxAlreadyExists);
  EXPECT_EQ(dup.error().details.at("projectId"), "p");
  // Same id is also SandboxAlreadyExists.
  auto sameId = s->insertSandbox(makeSandbox("s1", "q"));
  ASSERT_FALSE(sameId.ok());
  EXPECT_EQ(sameId.error().code, ErrorCode::SandboxAlreadyExists);

  for (const char* settled : {sandbox_status::kStopped, sandbox_status::kError,
                              sandbox_status::kGone, sandbox_status::kRemoved}) {
    ASSERT_TRUE(s->setSandboxStatus("s1", settled).value());
    auto next = makeSandbox(std::string("n-") + settled, "p");
    ASSERT_TRUE(s->insertSandbox(next).ok()) << settled;
    ASSERT_TRUE(s->setSandboxStatus(next.info.id, sandbox_status::kRemoved).value());
    ASSERT_TRUE(s->setSandboxStatus("s1", sandbox_status::kRunning).ok());
  }
  // Reviving a settled row while another is live is refused.
  ASSERT_TRUE(s->setSandboxStatus("s1", sandbox_status::kStopped).value());
  ASSERT_TRUE(s->insertSandbox(makeSandbox("s3", "p")).ok());
  auto revive = s->setSandboxStatus("s1", sandbox_status::kRunning);
  ASSERT_FALSE(revive.ok());
  EXPECT_EQ(revive.error().code, ErrorCode::SandboxAlreadyExists);
}

TEST(StoreSandboxes, ConcurrentInsertsForOneProjectLetExactlyOneIn) {
  TempDir dir;
  auto s = openOrDie((dir.path() / "state.db").string());
  ASSERT_TRUE(s);
  constexpr int kThreads = 8;
  std::atomic<int> ok{0}, conflict{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto r =
          s->insertSandbox(makeSandbox("s" + std::to_string(i), "proj", sandbox_status::kCreating));
      if (r.ok())
        ++ok;
      else if (r.error().code == ErrorCode::SandboxAlreadyExists)
        ++conflict;
      else
        ++other;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflict.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
}

TEST(StoreSandboxes, UpdateCompareAndSetTouchAndList) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  auto r = makeSandbox("s1", "p", sandbox_status::kCreating);
  ASSERT_TRUE(s->insertSandbox(r).ok());
  r.status = sandbox_status::kRunning;
  r.info.containerId = "abc";
  EXPECT_FALSE(s->updateSandbox(r, std::string(sandbox_status::kStopped)).value());
  EXPECT_TRUE(s->updateSandbox(r, std::string(sandbox_status::kCreating)).value());
  auto got = s->getSandbox("s1").value();
  EXPECT_EQ(got.status, "running");
  EXPECT_EQ(got.info.state, SandboxState::Running);
  EXPECT_EQ(got.info.containerId, "abc");

  ASSERT_TRUE(s->touchSandbox("s1", 50).ok());
  ASSERT_TRUE(s->touchSandbox("s1", 40).ok());  // never goes back
  EXPECT_EQ(s->getSandbox("s1").value().lastActivityUnix, 50);
  EXPECT_EQ(s->touchSandbox("nope", 1).error().code, ErrorCode::SandboxNotFound);
  EXPECT_EQ(s->getSandbox("nope").error().code, ErrorCode::SandboxNotFound);

  ASSERT_TRUE(s->insertSandbox(makeSandbox("s2", "q", sandbox_status::kRemoved)).ok());
  EXPECT_EQ(s->listSandboxes().value().size(), 1u);
  EXPECT_EQ(s->listSandboxes(true).value().size(), 2u);
  auto counts = s->sandboxCounts().value();
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ((counts[{"docker", "running"}]), 1);
}

TEST(StoreSandboxes, UnknownConfigIdIsRefused) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  auto r = s->insertSandbox(makeSandbox("s1", "p", sandbox_status::kRunning, "no-such-config"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxConfigNotFound);
}

TEST(StoreSandboxes, UserStringsAreBoundNotSpliced) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  std::string evil = "x'); DROP TABLE sandboxes; --";
  ASSERT_TRUE(s->insertSandbox(makeSandbox(evil, evil)).ok());
  EXPECT_EQ(s->getSandbox(evil).value().info.projectId, evil);
  EXPECT_EQ(s->listSandboxes().value().size(), 1u);
}

// --- tmux and audit -------------------------------------------------------------------------

TEST(StoreTmux, UpsertListDeleteAndCascade) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->insertSandbox(makeSandbox("s1", "p")).ok());
  ASSERT_TRUE(s->upsertTmuxSession({"s1", "main", {"bash", "-l"}, 7}).ok());
  ASSERT_TRUE(s->upsertTmuxSession({"s1", "aux", {}, 8}).ok());
  ASSERT_TRUE(s->upsertTmuxSession({"s1", "main", {"zsh"}, 9}).ok());
  auto rows = s->listTmuxSessions("s1").value();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "aux");
  EXPECT_EQ(rows[1].command, std::vector<std::string>{"zsh"});
  EXPECT_EQ(rows[1].createdAtUnix, 9);
  ASSERT_TRUE(s->deleteTmuxSession("s1", "aux").ok());
  EXPECT_EQ(s->listTmuxSessions("s1").value().size(), 1u);
  EXPECT_EQ(s->upsertTmuxSession({"nope", "x", {}, 1}).error().code, ErrorCode::SandboxNotFound);
  ASSERT_TRUE(s->deleteSandbox("s1").ok());
  EXPECT_TRUE(s->listTmuxSessions("s1").value().empty());
}

TEST(StoreAudit, AppendQueryFilterAndPage) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  for (int i = 0; i < 5; ++i) {
    AuditEntry e;
    e.atUnixMs = 1000 + i;
    e.sandboxId = i % 2 == 0 ? "s1" : "s2";
    e.actor = "api";
    e.action = "exec";
    e.detail = R"({"i":)" + std::to_string(i) + "}";
    e.ok = i != 3;
    auto id = s->appendAudit(e);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(id.value(), i + 1);
  }
  auto all = s->queryAudit({}).value();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].id, 5);  // newest first
  EXPECT_FALSE(all[1].ok);
  AuditQuery bySandbox;
  bySandbox.sandboxId = "s1";
  auto s1 = s->queryAudit(bySandbox).value();
  EXPECT_EQ(s1.size(), 3u);
  AuditQuery paged;
  paged.limit = 2;
  paged.beforeId = 4;
  auto page = s->queryAudit(paged).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, 3);
  EXPECT_EQ(page[1].id, 2);
  EXPECT_EQ(page[1].detail, R"({"i":1})");
}

// The index of the audit ledger: each row names its entry; filters by event (exact or a
// family) and by time.
TEST(StoreAudit, FiltersByEventAndTimeAndKeepsTheLedgerSeq) {
  auto s = openOrDie(":memory:");
  ASSERT_TRUE(s);
  const std::vector<std::string> actions = {"sandbox.create", "exec", "sandbox.stop", "exec",
                                            "sandboxes.odd"};
  for (std::size_t i = 0; i < actions.size(); ++i) {
    AuditEntry e;
    e.atUnixMs = 1000 * static_cast<std::int64_t>(i + 1);
    e.action = actions[i];
    e.ledgerSeq = static_cast<std::int64_t>(i) + 10;
    ASSERT_TRUE(s->appendAudit(e).ok());
  }
  AuditQuery q;
  q.action = "exec";
  auto execs = s->queryAudit(q).value();
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0].ledgerSeq, 13);
  EXPECT_EQ(execs[1].ledgerSeq, 11);
  q.action = "sandbox.*";  // the family, not "sandboxes.odd"
  auto family = s->queryAudit(q).value();
  ASSERT_EQ(family.size(), 2u);
  EXPECT_EQ(family[0].action, "sandbox.stop");
  EXPECT_EQ(family[1].action, "sandbox.create");
  q = AuditQuery{};
  q.sinceMs = 2000;
  q.untilMs = 4000;
  auto window = s->queryAudit(q).value();
  ASSERT_EQ(window.size(), 3u);
  EXPECT_EQ(window.front().atUnixMs, 4000);
  EXPECT_EQ(window.back().atUnixMs, 2000);
  q.action = "exec";
  EXPECT_EQ(s->queryAudit(q).value().size(), 2u);
}

}  // namespace
}  // namespace agentpane
