// K8sProvider::claimWarm against a scripted apiserver: the atomic step is a merge patch that
// carries the resourceVersion the GET saw, and a 409 for it is Conflict; a sandbox claimed
// already, or a project of another owner, is refused before any write. (The cluster test
// test/cluster/k8s_provider/warm_cluster_test.cpp shows the whole claim on a real cluster.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "k8s/k8s_provider.hpp"
#include "unit/k8s/fake_apiserver.hpp"
#include "unit/k8s/test_support.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;
using agentpane::testing::FakeApiServer;
using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using nlohmann::json;

json warmPod(const std::string& state, bool slot) {
  json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", "agentpane-sb-1"},
        {"namespace", "ns"},
        {"resourceVersion", "42"},
        {"labels",
         {{labels::kSandbox, "true"},
          {labels::kSandboxId, "sb-1"},
          {labels::kInstance, "kubernetes"},
          {labels::kWarmPool, "true"},
          {labels::kWarmPoolState, state}}},
        {"annotations", json::object()}}},
      {"spec", {{"securityContext", {{"runAsUser", 1000}, {"runAsGroup", 1000}}}}},
      {"status",
       {{"phase", "Running"},
        {"conditions", {{{"type", "Ready"}, {"status", "True"}}}},
        {"containerStatuses", {{{"name", "sandbox"}, {"state", {{"running", json::object()}}}}}}}}};
  if (slot) pod["metadata"]["annotations"][k8s_annotations::kWorkspaceSlot] = "/slots/sb-1";
  return pod;
}

std::string conflictBody() {
  return json{{"kind", "Status"},
              {"status", "Failure"},
              {"code", 409},
              {"reason", "Conflict"},
              {"message",
               "the object has been modified; please apply your changes to the latest "
               "version and try again"}}
      .dump();
}

struct Fixture {
  explicit Fixture(json pod)
      : pod_(std::move(pod)), server_([this](const FakeRequest& r, FakeConn& c) {
          std::lock_guard lock(mu_);
          if (r.method == "GET") {
            c.write(FakeHttpServer::response(200, pod_.dump()));
          } else if (r.method == "PATCH") {
            patches.push_back(r);
            c.write(FakeHttpServer::response(409, conflictBody()));
          } else {
            c.write(FakeHttpServer::response(405, "{}"));
          }
          return true;
        }) {
    K8sProviderOptions o;
    o.rest = testing::configFor(
        server_.port(), std::make_shared<testing::ScriptedTokens>(std::vector<std::string>{"tok"}));
    o.namespaceName = "ns";
    o.warmSlots = std::make_shared<WorkspaceSlots>("/nonexistent/warm-slots");
    provider = std::move(K8sProvider::create(std::move(o))).value();
  }

  std::mutex mu_;
  json pod_;
  FakeApiServer server_;
  std::vector<FakeRequest> patches;
  std::unique_ptr<K8sProvider> provider;
};

SandboxRef ref() {
  SandboxRef r;
  r.instance = "kubernetes";
  r.scope = "ns";
  r.objectName = "agentpane-sb-1";
  r.sandboxId = "sb-1";
  return r;
}

WarmClaim claimOf(const fs::path& project) {
  WarmClaim c;
  c.projectId = "proj";
  c.agentId = "agent";
  c.projectPath = project.string();
  return c;
}

TEST(WarmClaim, TheLabelPatchCarriesTheResourceVersionAnd409IsConflict) {
  Fixture f(warmPod("warm", false));  // emptyDir: nothing to bind, no owner check
  auto r = f.provider->claimWarm(ref(), claimOf(fs::temp_directory_path()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::Conflict) << r.error().describe();
  ASSERT_EQ(f.patches.size(), 1u);
  const FakeRequest& p = f.patches[0];
  EXPECT_EQ(p.headers.at("content-type"), "application/merge-patch+json");
  json body = json::parse(p.body);
  EXPECT_EQ(body["metadata"]["resourceVersion"], "42");
  EXPECT_EQ(body["metadata"]["labels"][labels::kWarmPoolState], "allocated");
  EXPECT_EQ(body["metadata"]["labels"][labels::kProjectId], "proj");
  EXPECT_EQ(body["metadata"]["labels"][labels::kAgentId], "agent");
}

TEST(WarmClaim, AClaimedSandboxIsConflictWithoutAWrite) {
  Fixture f(warmPod("allocated", true));
  auto r = f.provider->claimWarm(ref(), claimOf(fs::temp_directory_path()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::Conflict);
  EXPECT_TRUE(f.patches.empty());
}

TEST(WarmClaim, AProjectOfAnotherOwnerIsRefusedWithoutAWrite) {
  const fs::path dir = fs::temp_directory_path() / ("warm-claim-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  ASSERT_NE(st.st_uid, 1000u) << "the test needs a directory not owned by the pod's uid 1000";
  Fixture f(warmPod("warm", true));
  auto r = f.provider->claimWarm(ref(), claimOf(dir));
  fs::remove(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProjectPathInvalid) << r.error().describe();
  EXPECT_TRUE(f.patches.empty());
}

}  // namespace
}  // namespace agentpane::k8s
