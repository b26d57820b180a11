// Provider instances: rows record the instance they live on, and calls go to that instance
// (with a ref built from the row), never to another provider of the same type.
#include <gtest/gtest.h>

#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

TEST_F(ServiceTest, RowsRecordTheirProviderInstance) {
  auto s = createOk();
  EXPECT_EQ(s.info.instance, docker->instance());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().info.instance, docker->instance());
}

TEST_F(ServiceTest, ASandboxOnAnUnregisteredInstanceIsUnavailableNotSearchedElsewhere) {
  auto s = createOk();
  // The server restarts with another Docker instance only (another engine).
  auto other = std::make_shared<FakeProvider>(ProviderType::Docker);
  other->instanceName = "docker-elsewhere";
  svc.reset();
  svc = std::make_unique<SandboxService>(*store, options());
  svc->registerProvider(other);

  ExecRequest req;
  req.argv = {"true"};
  auto r = svc->exec(s.info.id, req, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderUnavailable) << r.error().describe();
  EXPECT_EQ(other->callCount("exec"), 0);

  // Reconcile of the other instance does not take the row for vanished.
  ASSERT_TRUE(svc->reconcile().ok());
  EXPECT_EQ(svc->getSandbox(s.info.id).value().status, "running");

  // New sandboxes of the type go to the instance that is there.
  auto t = createOk(request(mkdir("second")));
  EXPECT_EQ(t.info.instance, "docker-elsewhere");
  EXPECT_EQ(other->callCount("create"), 1);
}

}  // namespace
}  // namespace agentpane::fakes
