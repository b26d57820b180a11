#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/path_policy.hpp"
#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using nlohmann::json;

json detailOf(const AuditEntry& e) {
  return json::parse(e.detail);
}

// --- create ---------------------------------------------------------------------------------

TEST_F(ServiceTest, CreateRecordsARunningSandbox) {
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type + ":" + e.sandboxId); });
  auto req = request();
  req.agentId = "agent-7";
  req.image = "custom:1";
  req.memoryMb = 1024;
  req.env = {{"FOO", "bar"}};
  req.allowEgress = {"github.com:443"};
  auto out = svc->createSandbox(req, "cli");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  const auto& rec = out->sandbox;
  EXPECT_TRUE(std::regex_match(rec.info.id, std::regex("sbx-[0-9a-f]{12}"))) << rec.info.id;
  EXPECT_TRUE(std::regex_match(rec.info.projectId, std::regex("p-[0-9a-f]{12}")))
      << rec.info.projectId;
  EXPECT_EQ(rec.status, "running");
  EXPECT_EQ(rec.info.state, SandboxState::Running);
  EXPECT_EQ(rec.info.provider, ProviderType::Docker);
  EXPECT_EQ(rec.info.containerId, "ctr-" + rec.info.id);
  EXPECT_EQ(rec.info.projectPath, project);
  EXPECT_EQ(rec.configId, svc->defaultConfig().value().id);
  EXPECT_FALSE(out->fallbackReason);

  auto specs = docker->createdSpecs();
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].id, rec.info.id);
  EXPECT_EQ(specs[0].image, "custom:1");
  EXPECT_EQ(specs[0].memoryMb, 1024);
  EXPECT_EQ(specs[0].agentId, "agent-7");
  EXPECT_EQ(specs[0].env, (std::vector<std::pair<std::string, std::string>>{{"FOO", "bar"}}));
  EXPECT_EQ(specs[0].allowedEgressHosts, std::vector<std::string>{"github.com:443"});

  auto got = svc->getSandbox(rec.info.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "running");
  EXPECT_EQ(got->info.containerId, rec.info.containerId);
  EXPECT_EQ(svc->listSandboxes().value().size(), 1u);

  auto audit = auditOf(rec.info.id, "sandbox.create");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].ok);
  EXPECT_EQ(audit[0].actor, "cli");
  EXPECT_EQ(detailOf(audit[0])["provider"], "docker");
  EXPECT_EQ(events, (std::vector<std::string>{"creating:" + rec.info.id, "ready:" + rec.info.id}));
}

TEST_F(ServiceTest, ProjectIdIsDerivedFromThePathStably) {
  auto a = createOk();
  ASSERT_TRUE(svc->removeSandbox(a.info.id, "api").ok());
  // The same directory through a different spelling is the same project.
  auto b = createOk(request(project + "/./"));
  EXPECT_EQ(a.info.projectId, b.info.projectId);
  auto other = createOk(request(mkdir("other")));
  EXPECT_NE(other.info.projectId, a.info.projectId);
  auto req = request(mkdir("third"));
  req.projectId = "my-project";
  EXPECT_EQ(createOk(req).info.projectId, "my-project");
}

TEST_F(ServiceTest, ProjectPathMustBeAnExistingAbsoluteDirectory) {
  std::ofstream(dir.path() / "file.txt") << "x";
  for (const std::string& bad :
       {std::string("relative/dir"), std::string(""), (dir.path() / "missing").string(),
        (dir.path() / "file.txt").string()}) {
    CreateSandboxRequest req;
    req.projectPath = bad;
    auto r = svc->createSandbox(req, "api");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::SandboxProjectPathInvalid) << bad;
    EXPECT_EQ(r.error().details.at("field"), "projectPath");
  }
  EXPECT_EQ(docker->callCount("create"), 0);
  EXPECT_TRUE(svc->listSandboxes().value().empty());
}

TEST_F(ServiceTest, ProjectPathMustBeInsideAProjectRootAndNotASystemDirectory) {
  // The server's home is dir/home (refused itself); its only root is dir/roots.
  auto home = mkdir("home");
  auto roots = mkdir("roots");
  auto inside = mkdir("roots/proj");
  auto outside = mkdir("outside");
  std::filesystem::create_directory_symlink("/etc", dir.path() / "roots" / "etc-link");
  std::filesystem::create_directory_symlink(home, dir.path() / "roots" / "home-link");
  PathPolicy::Settings settings;
  settings.roots = {roots, home, "/"};  // even a root of "/" leaves system directories out
  settings.userHome = home;
  auto o = options();
  o.pathPolicy = std::make_shared<PathPolicy>(settings);
  svc = std::make_unique<SandboxService>(*store, o);
  svc->registerProvider(docker);

  struct Case {
    std::string path;
    const char* rule;
  };
  settings.roots = {roots, home};
  auto o2 = options();
  o2.pathPolicy = std::make_shared<PathPolicy>(settings);
  SandboxService narrow(*store, o2);
  narrow.registerProvider(docker);
  EXPECT_EQ(narrow.createSandbox(request(outside), "api").error().details.at("rule"),
            path_rule::kOutsideRoots);

  for (const Case& c :
       {Case{"/var/run", path_rule::kEngineSocketDirectory},
        Case{"/run", path_rule::kEngineSocketDirectory}, Case{"/etc", path_rule::kSystemDirectory},
        Case{"/", path_rule::kSystemDirectory},
        Case{roots + "/etc-link", path_rule::kSystemDirectory}, Case{home, path_rule::kServerHome},
        Case{roots + "/home-link", path_rule::kServerHome}}) {
    auto r = svc->createSandbox(request(c.path), "api");
    ASSERT_FALSE(r.ok()) << c.path;
    EXPECT_EQ(r.error().code, ErrorCode::PathForbidden) << c.path;
    EXPECT_EQ(errorInfo(r.error().code).httpStatus, 403);
    EXPECT_EQ(r.error().details.at("rule"), c.rule) << c.path << ": " << r.error().message;
    EXPECT_EQ(r.error().details.at("field"), "projectPath");
  }
  EXPECT_EQ(docker->callCount("create"), 0);
  auto ok = createOk(request(inside));
  EXPECT_EQ(ok.info.projectPath, inside);
}

TEST_F(ServiceTest, CreateValidatesEnvIdsImageAndEgress) {
  struct Bad {
    std::function<void(CreateSandboxRequest&)> mutate;
    std::string field;
  };
  std::vector<Bad> cases = {
      {[](auto& r) {
         r.env = {{"1BAD", "x"}};
       },
       "env"},
      {[](auto& r) {
         r.env = {{"A-B", "x"}};
       },
       "env"},
      {[](auto& r) {
         r.env = {{"", "x"}};
       },
       "env"},
      {[](auto& r) {
         r.env = {{"OK", std::string("a\0b", 3)}};
       },
       "env"},
      {[](auto& r) { r.projectId = "bad id"; }, "projectId"},
      {[](auto& r) { r.projectId = std::string(64, 'p'); }, "projectId"},
      {[](auto& r) { r.agentId = "-agent"; }, "agentId"},
      {[](auto& r) { r.image = "has space"; }, "image"},
      {[](auto& r) { r.memoryMb = 511; }, "memoryMb"},
      {[](auto& r) { r.cpu = 16.5; }, "cpu"},
      {[](auto& r) { r.allowEgress = {"not a host"}; }, "allowEgress"},
      {[](auto& r) { r.configId = ""; }, "configId"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto req = request();
    cases[i].mutate(req);
    auto r = svc->createSandbox(req, "api");
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << i;
    EXPECT_EQ(r.error().details.at("field"), cases[i].field) << i;
  }
  auto unknownConfig = request();
  unknownConfig.configId = "cfg-missing";
  auto r = svc->createSandbox(unknownConfig, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(docker->callCount("create"), 0);
}

TEST_F(ServiceTest, ConcurrentCreatesForOneProjectLetExactlyOneThrough) {
  // The first create is held inside provider.create until the second one has finished:
  // the second must be refused by the row the first wrote before calling the provider.
  std::mutex mu;
  std::condition_variable cv;
  bool secondDone = false;
  bool firstInProvider = false;
  docker->onCreate = [&](const SandboxSpec&) {
    std::unique_lock lk(mu);
    firstInProvider = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(10), [&] { return secondDone; });
  };
  Result<CreateSandboxOutcome> first = Error(ErrorCode::Internal, "not run");
  std::thread t([&] { first = svc->createSandbox(request(), "api"); });
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return firstInProvider; }));
  }
  docker->onCreate =
      nullptr;  // only the first create blocks (the fake copies the hook under its lock)
  auto second = svc->createSandbox(request(), "api");
  {
    std::lock_guard lk(mu);
    secondDone = true;
  }
  cv.notify_all();
  t.join();
  ASSERT_TRUE(first.ok()) << first.error().describe();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::SandboxAlreadyExists);
  EXPECT_EQ(errorInfo(second.error().code).httpStatus, 409);
  EXPECT_EQ(docker->callCount("create"), 1);
}

TEST_F(ServiceTest, ManyConcurrentCreatesForOneProjectYieldOneSandbox) {
  constexpr int kThreads = 8;
  std::atomic<int> ok{0}, exists{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = svc->createSandbox(request(), "api");
      if (r.ok())
        ++ok;
      else if (r.error().code == ErrorCode::SandboxAlreadyExists)
        ++exists;
      else
        ++other;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(exists.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(docker->size(), 1u);
  // Refused creates are audited as failures.
  int refused = 0;
  auto entries = svc->audit({.limit = 1000}).value();
  for (const auto& e : entries) {
    if (e.action == "sandbox.create" && !e.ok) ++refused;
  }
  EXPECT_EQ(refused, kThreads - 1);
}

TEST_F(ServiceTest, ProviderCreateFailureLeavesNoRowInTheListAndCleansUp) {
  docker->failNext("create", Error(ErrorCode::SandboxImageNotFound, "no such image"));
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type); });
  auto r = svc->createSandbox(request(), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxImageNotFound);
  EXPECT_TRUE(svc->listSandboxes().value().empty());
  ASSERT_EQ(docker->createdSpecs().size(), 1u);
  const std::string id = docker->createdSpecs()[0].id;
  EXPECT_EQ(svc->getSandbox(id).error().code, ErrorCode::SandboxNotFound);
  EXPECT_EQ(docker->callCount("remove", id), 1);
  auto audit = auditOf(id, "sandbox.create");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_FALSE(audit[0].ok);
  EXPECT_EQ(detailOf(audit[0])["error"]["code"], "SANDBOX_IMAGE_NOT_FOUND");
  EXPECT_EQ(events, (std::vector<std::string>{"creating", "error"}));
  // The project is free again.
  auto next = createOk();
  EXPECT_EQ(next.status, "running");
}

TEST_F(ServiceTest, CleanupFailureAfterFailedCreateIsRetriedByReconcile) {
  docker->failNext("create", Error(ErrorCode::SandboxProviderError, "engine said no"));
  docker->failNext("remove", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
  auto r = svc->createSandbox(request(), "api");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(docker->createdSpecs().size(), 1u);
  const std::string id = docker->createdSpecs()[0].id;
  // What the failed create left behind, and its cleanup could not remove.
  docker->seed(FakeProvider::makeInfo(id, "p-leftover", SandboxState::Stopped, nowSec()));
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_FALSE(docker->exists(id));
  EXPECT_EQ(svc->getSandbox(id).error().code, ErrorCode::SandboxNotFound);
  EXPECT_TRUE(svc->listSandboxes().value().empty());
}

// --- provider choice, feature flag, fallback ------------------------------------------------

class ProviderChoiceTest : public ServiceTest {
 protected:
  std::string k8sConfig(bool allowFallback, bool enableInConfig = false) {
    SandboxConfig c;
    c.name = "k8s-" + std::to_string(counter++);
    c.providerType = ProviderType::Kubernetes;
    c.allowFallback = allowFallback;
    c.enableK8s = enableInConfig;
    c.kubeNamespace = "team-ns";
    auto made = svc->createConfig(c);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    return made.ok() ? made->id : std::string();
  }
  CreateSandboxRequest k8sRequest(const std::string& configId) {
    auto r = request(mkdir("p" + std::to_string(counter++)));
    r.configId = configId;
    return r;
  }
  int counter = 0;
};

TEST_F(ProviderChoiceTest, KubernetesRefusedWhileTheFlagIsOff) {
  auto r = svc->createSandbox(k8sRequest(k8sConfig(true)), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sDisabled);
  // A request override is refused the same way.
  auto over = request();
  over.provider = ProviderType::Kubernetes;
  auto r2 = svc->createSandbox(over, "api");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::K8sDisabled);
  EXPECT_EQ(k8s->callCount("create") + docker->callCount("create"), 0);
}

TEST_F(ProviderChoiceTest, ConfigSwitchEnablesKubernetes) {
  auto out = svc->createSandbox(k8sRequest(k8sConfig(true, /*enableInConfig=*/true)), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(out->sandbox.info.provider, ProviderType::Kubernetes);
  EXPECT_FALSE(out->fallbackReason);
  EXPECT_EQ(out->sandbox.info.podName, "sbx-pod-" + out->sandbox.info.id);
  EXPECT_EQ(out->sandbox.info.podNamespace, "team-ns");
  EXPECT_EQ(k8s->createdSpecs().at(0).kubernetes.kubeNamespace, "team-ns");
  auto row = svc->getSandbox(out->sandbox.info.id).value();
  EXPECT_EQ(row.info.podUid, "uid-" + row.info.id);
}

TEST_F(ProviderChoiceTest, AProfilesKubeconfigFollowsThePathRuleWhenWrittenAndAtEachCreate) {
  namespace fs = std::filesystem;
  // The profile's cluster: an instance of its own (profile_cluster_test.cpp).
  auto team = std::make_shared<FakeProvider>(ProviderType::Kubernetes);
  kubernetesInstance = [team](const KubernetesTarget&,
                              const std::string& name) -> Result<std::shared_ptr<SandboxProvider>> {
    team->instanceName = name;
    return std::shared_ptr<SandboxProvider>(team);
  };
  restart();
  const std::string kc = (dir.path() / "team-kubeconfig").string();  // in the temp root
  std::ofstream(kc) << "apiVersion: v1\nkind: Config\n";
  SandboxConfig forbidden;
  forbidden.name = "kc-etc";
  forbidden.kubeConfigPath = "/etc/passwd";
  auto refused = svc->createConfig(forbidden);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::PathForbidden);
  EXPECT_EQ(refused.error().details.at("field"), "kubeConfigPath");

  SandboxConfig c;
  c.name = "kc-team";
  c.providerType = ProviderType::Kubernetes;
  c.enableK8s = true;
  c.kubeConfigPath = kc;
  auto made = svc->createConfig(c);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  auto out = svc->createSandbox(k8sRequest(made->id), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(team->createdSpecs().at(0).kubernetes.kubeConfigPath, fs::canonical(kc).string());

  // The file swapped for a link to a system file after the profile was written.
  fs::remove(kc);
  fs::create_symlink("/etc/passwd", kc);
  auto r = svc->createSandbox(k8sRequest(made->id), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::PathForbidden);
  EXPECT_EQ(r.error().details.at("rule"), path_rule::kSystemDirectory);
  EXPECT_EQ(team->callCount("create"), 1);
  EXPECT_EQ(k8s->callCount("create"), 0);
}

// A cluster seen reachable is not asked again by the next creates (its health check lists
// pods), and creates that arrive together share one check; an unreachable one is asked by
// every create (it may come back).
TEST_F(ProviderChoiceTest, CreatesShareTheClustersHealthCheck) {
  enableK8s = true;
  restart();
  const std::string cfg = k8sConfig(true);
  k8s->healthDelay = std::chrono::milliseconds(300);
  std::vector<CreateSandboxRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(k8sRequest(cfg));
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (const auto& req : reqs) {
    ts.emplace_back([&, req] {
      if (svc->createSandbox(req, "api").ok()) ++ok;
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(k8s->callCount("healthCheck"), 1);
  EXPECT_EQ(k8s->callCount("create"), 6);

  ASSERT_TRUE(svc->createSandbox(k8sRequest(cfg), "api").ok());
  EXPECT_EQ(k8s->callCount("healthCheck"), 1);  // seen reachable a moment ago
}

TEST_F(ProviderChoiceTest, AClusterSeenReachableAWhileAgoIsCheckedBesideTheCreate) {
  enableK8s = true;
  clusterFreshFor = std::chrono::milliseconds(0);
  clusterTrustedFor = std::chrono::milliseconds(60'000);
  restart();
  const std::string cfg = k8sConfig(true);
  ASSERT_TRUE(svc->createSandbox(k8sRequest(cfg), "api").ok());  // waits for the first check
  EXPECT_EQ(k8s->callCount("healthCheck"), 1);

  // Seen reachable, no longer fresh: the create does not wait for the (slow) check.
  k8s->healthDelay = std::chrono::milliseconds(2000);
  const auto t0 = std::chrono::steady_clock::now();
  auto made = svc->createSandbox(k8sRequest(cfg), "api");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(made.ok()) << made.error().describe();
  EXPECT_EQ(made->sandbox.info.provider, ProviderType::Kubernetes);
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  // The check it started finds the cluster gone: the next create waits for a check of its
  // own and falls back to Docker.
  k8s->reachable = false;
  for (int i = 0; i < 300 && k8s->callCount("healthCheck") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(k8s->callCount("healthCheck"), 2);
  k8s->healthDelay = std::chrono::milliseconds(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the check ends
  auto next = svc->createSandbox(k8sRequest(cfg), "api");
  ASSERT_TRUE(next.ok()) << next.error().describe();
  EXPECT_EQ(next->sandbox.info.provider, ProviderType::Docker);
  EXPECT_EQ(k8s->callCount("healthCheck"), 3);
}

TEST_F(ProviderChoiceTest, FallsBackToDockerWhenTheClusterIsUnreachable) {
  enableK8s = true;
  restart();
  k8s->reachable = false;
  k8s->healthWarnings = {"dial tcp 127.0.0.1:6443: connection refused"};
  auto out = svc->createSandbox(k8sRequest(k8sConfig(true)), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(out->sandbox.info.provider, ProviderType::Docker);
  ASSERT_TRUE(out->fallbackReason);
  EXPECT_NE(out->fallbackReason->find("unreachable"), std::string::npos) << *out->fallbackReason;
  EXPECT_NE(out->fallbackReason->find("connection refused"), std::string::npos);
  EXPECT_EQ(k8s->callCount("create"), 0);
  EXPECT_EQ(docker->callCount("create"), 1);
  auto audit = auditOf(out->sandbox.info.id, "sandbox.create");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(detailOf(audit[0]).contains("fallbackReason"));
}

TEST_F(ProviderChoiceTest, FallsBackWhenNoKubernetesProviderIsRegistered) {
  enableK8s = true;
  restart(/*registerK8s=*/false);
  auto out = svc->createSandbox(k8sRequest(k8sConfig(true)), "api");
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(out->sandbox.info.provider, ProviderType::Docker);
  ASSERT_TRUE(out->fallbackReason);
  EXPECT_NE(out->fallbackReason->find("not configured"), std::string::npos);
}

TEST_F(ProviderChoiceTest, NoFallbackWhenTheConfigForbidsIt) {
  enableK8s = true;
  restart();
  k8s->reachable = false;
  auto r = svc->createSandbox(k8sRequest(k8sConfig(false)), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sUnreachable);
  EXPECT_EQ(docker->callCount("create"), 0);
}

TEST_F(ProviderChoiceTest, HealthyClusterIsUsedAndRequestCanPickDocker) {
  enableK8s = true;
  restart();
  auto cfg = k8sConfig(true);
  auto onK8s = svc->createSandbox(k8sRequest(cfg), "api");
  ASSERT_TRUE(onK8s.ok());
  EXPECT_EQ(onK8s->sandbox.info.provider, ProviderType::Kubernetes);
  auto req = k8sRequest(cfg);
  req.provider = ProviderType::Docker;
  auto onDocker = svc->createSandbox(req, "api");
  ASSERT_TRUE(onDocker.ok());
  EXPECT_EQ(onDocker->sandbox.info.provider, ProviderType::Docker);
  EXPECT_EQ(k8s->callCount("healthCheck"), 1);
}

TEST_F(ServiceTest, NoDockerProviderIsUnavailable) {
  svc = std::make_unique<SandboxService>(*store, options());
  auto r = svc->createSandbox(request(), "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderUnavailable);
}

// --- stop and remove ------------------------------------------------------------------------

TEST_F(ServiceTest, StopIsIdempotentAndAudited) {
  auto s = createOk();
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type); });
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "cli").ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "stopped");
  EXPECT_EQ(svc->getSandbox(s.info.id).value().info.state, SandboxState::Stopped);
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "cli").ok());
  EXPECT_EQ(docker->callCount("stop"), 1);
  EXPECT_EQ(events, (std::vector<std::string>{"stopping", "stopped"}));
  auto audit = auditOf(s.info.id, "sandbox.stop");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, "cli");
  EXPECT_EQ(svc->stopSandbox("sbx-000000000000", "cli").error().code, ErrorCode::SandboxNotFound);
  // A stopped sandbox frees its project.
  EXPECT_TRUE(svc->createSandbox(request(), "api").ok());
}

TEST_F(ServiceTest, StopFailureKeepsTheSandboxRunning) {
  auto s = createOk();
  docker->failNext("stop", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
  auto r = svc->stopSandbox(s.info.id, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderUnavailable);
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");
  auto audit = auditOf(s.info.id, "sandbox.stop");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_FALSE(audit[0].ok);
}

TEST_F(ServiceTest, StoppingAVanishedSandboxMarksItGone) {
  auto s = createOk();
  docker->vanish(s.info.id);
  ASSERT_TRUE(svc->stopSandbox(s.info.id, "api").ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "gone");
}

TEST_F(ServiceTest, RemoveLeavesATombstoneAndIsIdempotent) {
  auto s = createOk();
  ASSERT_TRUE(svc->tmuxCreate(s.info.id, "main", {}, "api").ok());
  std::vector<std::string> events;
  svc->subscribe([&](const SandboxEvent& e) { events.push_back(e.type); });
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "cli").ok());
  EXPECT_FALSE(docker->exists(s.info.id));
  EXPECT_EQ(svc->getSandbox(s.info.id).error().code, ErrorCode::SandboxNotFound);
  EXPECT_TRUE(svc->listSandboxes().value().empty());
  EXPECT_EQ(store->getSandbox(s.info.id).value().status, "removed");
  EXPECT_TRUE(store->listTmuxSessions(s.info.id).value().empty());
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "cli").ok());
  ASSERT_TRUE(svc->removeSandbox("sbx-unknown", "cli").ok());
  EXPECT_EQ(docker->callCount("remove"), 1);
  EXPECT_EQ(events, std::vector<std::string>{"removed"});
  auto audit = auditOf(s.info.id, "sandbox.remove");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].ok);
  EXPECT_EQ(audit[0].actor, "cli");
  ExecRequest exec;
  exec.argv = {"true"};
  EXPECT_EQ(svc->exec(s.info.id, exec, "api").error().code, ErrorCode::SandboxNotFound);
}

TEST_F(ServiceTest, RemoveFailureKeepsTheRow) {
  auto s = createOk();
  docker->failNext("remove", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
  auto r = svc->removeSandbox(s.info.id, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");
  EXPECT_FALSE(auditOf(s.info.id, "sandbox.remove").at(0).ok);
  ASSERT_TRUE(svc->removeSandbox(s.info.id, "api").ok());
}

TEST_F(ServiceTest, RemovingWhileCreatingDiscardsTheNewSandbox) {
  std::mutex mu;
  std::condition_variable cv;
  bool inProvider = false, removed = false;
  std::string id;
  docker->onCreate = [&](const SandboxSpec& spec) {
    std::unique_lock lk(mu);
    id = spec.id;
    inProvider = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(10), [&] { return removed; });
  };
  Result<CreateSandboxOutcome> created = Error(ErrorCode::Internal, "not run");
  std::thread t([&] { created = svc->createSandbox(request(), "api"); });
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return inProvider; }));
  }
  ASSERT_TRUE(svc->removeSandbox(id, "api").ok());
  {
    std::lock_guard lk(mu);
    removed = true;
  }
  cv.notify_all();
  t.join();
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().code, ErrorCode::SandboxCreateFailed);
  EXPECT_FALSE(docker->exists(id));
  EXPECT_EQ(store->getSandbox(id).value().status, "removed");
}

TEST_F(ServiceTest, SandboxCounts) {
  createOk();
  auto b = createOk(request(mkdir("b")));
  ASSERT_TRUE(svc->stopSandbox(b.info.id, "api").ok());
  auto c = createOk(request(mkdir("c")));
  ASSERT_TRUE(svc->removeSandbox(c.info.id, "api").ok());
  auto counts = svc->sandboxCounts();
  EXPECT_EQ((counts[{"docker", "running"}]), 1);
  EXPECT_EQ((counts[{"docker", "stopped"}]), 1);
  EXPECT_EQ(counts.count({"docker", "removed"}), 0u);
}

TEST_F(ServiceTest, EventsStopAfterUnsubscribe) {
  int n = 0;
  int token = svc->subscribe([&](const SandboxEvent&) { ++n; });
  svc->subscribe([](const SandboxEvent&) { throw std::runtime_error("bad sink"); });
  createOk();
  EXPECT_EQ(n, 2);
  svc->unsubscribe(token);
  createOk(request(mkdir("x")));
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace agentpane::fakes
