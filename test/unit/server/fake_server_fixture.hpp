// The fixture most server tests share: a real Server on port 0 over one ServerFake provider.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {

class FakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake = std::make_shared<ServerFake>(ProviderType::Docker);
    ts = std::make_unique<TestServer>(std::vector<std::shared_ptr<SandboxProvider>>{fake});
  }
  void TearDown() override { ts.reset(); }

  std::shared_ptr<ServerFake> fake;
  std::unique_ptr<TestServer> ts;
};

}  // namespace agentpane::testing
