// A SandboxService over a temporary state.db, fake Docker and Kubernetes providers, and an
// injected clock. Shared by the service tests.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "audit/ledger.hpp"
#include "service/sandbox_service.hpp"
#include "store/store.hpp"
#include "unit/service/fake_provider.hpp"
#include "unit/temp_dir.hpp"

namespace agentpane::fakes {

using TempDir = agentpane::testing::TempDir;

class ServiceTest : public ::testing::Test {
 protected:
  static constexpr std::int64_t kStartMs = 1'700'000'000'000;

  void SetUp() override {
    project = mkdir("proj");
    auto s = Store::openFile((dir.path() / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.error().describe();
    store = std::move(s).value();
    docker = std::make_shared<FakeProvider>(ProviderType::Docker);
    k8s = std::make_shared<FakeProvider>(ProviderType::Kubernetes);
    docker->now = [this] { return nowSec(); };
    k8s->now = [this] { return nowSec(); };
    restart();
  }

  void TearDown() override {
    if (svc) svc->stopBackground();
    svc.reset();
  }

  ServiceOptions options() {
    ServiceOptions o;
    o.enableK8s = enableK8s;
    o.orphanGrace = std::chrono::seconds(60);
    o.nowUnixMs = [this] { return nowMs.load(); };
    o.ledger = ledger;
    o.kubernetesInstance = kubernetesInstance;
    // Warm sandboxes run as whoever owns the test's project directories.
    o.warmUid = ::getuid();
    o.warmGid = ::getgid();
    o.warmPoolLimit = warmPoolLimit;
    o.clusterFreshFor = clusterFreshFor;
    o.clusterTrustedFor = clusterTrustedFor;
    return o;
  }

  // A new service over the same store and providers (a server restart).
  void restart(bool registerK8s = true) {
    svc.reset();
    svc = std::make_unique<SandboxService>(*store, options());
    svc->registerProvider(docker);
    if (registerK8s) svc->registerProvider(k8s);
  }

  std::string mkdir(const std::string& name) {
    auto p = dir.path() / name;
    std::filesystem::create_directories(p);
    return std::filesystem::canonical(p).string();
  }

  std::int64_t nowSec() const { return nowMs.load() / 1000; }
  void advance(std::chrono::seconds s) { nowMs += s.count() * 1000; }

  CreateSandboxRequest request(const std::string& path = {}) {
    CreateSandboxRequest r;
    r.projectPath = path.empty() ? project : path;
    return r;
  }

  SandboxRecord createOk(const CreateSandboxRequest& r) {
    auto out = svc->createSandbox(r, "api");
    EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().describe());
    return out.ok() ? out->sandbox : SandboxRecord{};
  }
  SandboxRecord createOk() { return createOk(request()); }

  std::vector<AuditEntry> auditOf(const std::string& sandboxId) {
    AuditQuery q;
    q.sandboxId = sandboxId;
    q.limit = 1000;
    auto r = svc->audit(q);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r.value() : std::vector<AuditEntry>{};
  }
  std::vector<AuditEntry> auditOf(const std::string& sandboxId, const std::string& action) {
    std::vector<AuditEntry> out;
    for (auto& e : auditOf(sandboxId)) {
      if (e.action == action) out.push_back(e);
    }
    return out;
  }

  TempDir dir;
  std::string project;
  std::unique_ptr<Store> store;
  std::shared_ptr<FakeProvider> docker;
  std::shared_ptr<FakeProvider> k8s;
  std::unique_ptr<SandboxService> svc;
  std::atomic<std::int64_t> nowMs{kStartMs};
  bool enableK8s = false;
  int warmPoolLimit = 50;  // ServiceOptions::warmPoolLimit; set, then restart()
  // ServiceOptions::clusterFreshFor and clusterTrustedFor; set, then restart().
  std::chrono::milliseconds clusterFreshFor{10'000};
  std::chrono::milliseconds clusterTrustedFor{60'000};
  std::shared_ptr<audit::Ledger> ledger;  // set, then restart(): entries go to it too
  // ServiceOptions::kubernetesInstance; set, then restart().
  std::function<Result<std::shared_ptr<SandboxProvider>>(const KubernetesTarget&,
                                                         const std::string&)>
      kubernetesInstance;
};

}  // namespace agentpane::fakes
