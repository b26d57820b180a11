// The metrics API reader: Kubernetes quantities, and a pod's usage from a scripted apiserver
// (present, absent as on a cluster without metrics-server, refused, and malformed).
#include "k8s/pod_metrics.hpp"

#include <gtest/gtest.h>

#include "unit/k8s/fake_apiserver.hpp"
#include "unit/k8s/test_support.hpp"

namespace agentpane::k8s {
namespace {

using agentpane::testing::FakeApiServer;
using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using testing::clientFor;
using testing::ScriptedTokens;

TEST(Quantity, ParsesTheSuffixesTheMetricsApiUses) {
  EXPECT_DOUBLE_EQ(*parseQuantity("250m"), 0.25);
  EXPECT_DOUBLE_EQ(*parseQuantity("1234567n"), 0.001234567);
  EXPECT_DOUBLE_EQ(*parseQuantity("2"), 2.0);
  EXPECT_DOUBLE_EQ(*parseQuantity("512Ki"), 524288.0);
  EXPECT_DOUBLE_EQ(*parseQuantity("3Mi"), 3.0 * 1048576);
  EXPECT_DOUBLE_EQ(*parseQuantity("1Gi"), 1073741824.0);
  EXPECT_DOUBLE_EQ(*parseQuantity("5M"), 5e6);
  EXPECT_DOUBLE_EQ(*parseQuantity("1e3"), 1000.0);
  for (const char* bad : {"", "m", "Ki", "-1", "1x", "one", "1.5.2"})
    EXPECT_FALSE(parseQuantity(bad).has_value()) << bad;
}

const std::string kMetricsPath =
    "/apis/metrics.k8s.io/v1beta1/namespaces/agentpane-sandboxes/pods/sbx-1";

TEST(MetricsApi, UsageOfTheSandboxContainer) {
  FakeApiServer server([](const FakeRequest& req, FakeConn& c) {
    EXPECT_EQ(req.target, kMetricsPath);
    c.write(FakeHttpServer::response(
        200, R"({"kind":"PodMetrics","containers":[)"
             R"({"name":"sidecar","usage":{"cpu":"1","memory":"1Gi"}},)"
             R"({"name":"main","usage":{"cpu":"125000000n","memory":"65536Ki"}}]})"));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  ASSERT_TRUE(client);
  auto u = metricsApiUsage(*client, "agentpane-sandboxes", "sbx-1", "main");
  ASSERT_TRUE(u.ok()) << u.error().describe();
  EXPECT_DOUBLE_EQ(u->cpuPercent, 12.5);
  EXPECT_EQ(u->memoryBytes, 64u << 20);
}

TEST(MetricsApi, AbsentRefusedOrMalformedIsAnErrorNotZeros) {
  struct Case {
    int status;
    std::string body;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {404,
       R"({"kind":"Status","code":404,"reason":"NotFound","message":"the server could not find the requested resource"})",
       ErrorCode::K8sNotFound},
      {403, R"({"kind":"Status","code":403,"reason":"Forbidden","message":"forbidden"})",
       ErrorCode::K8sForbidden},
      {200, R"({"kind":"PodMetrics","containers":[{"name":"main","usage":{"cpu":"lots"}}]})",
       ErrorCode::Internal},
      {200,
       R"({"kind":"PodMetrics","containers":[{"name":"other","usage":{"cpu":"1","memory":"1"}}]})",
       ErrorCode::Internal},
  };
  for (const auto& c : cases) {
    FakeApiServer server([&](const FakeRequest&, FakeConn& conn) {
      conn.write(FakeHttpServer::response(c.status, c.body));
      return true;
    });
    auto client =
        clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
    ASSERT_TRUE(client);
    auto u = metricsApiUsage(*client, "agentpane-sandboxes", "sbx-1", "main");
    ASSERT_FALSE(u.ok()) << c.body;
    EXPECT_EQ(u.error().code, c.code) << c.body << ": " << u.error().describe();
  }
}

}  // namespace
}  // namespace agentpane::k8s
