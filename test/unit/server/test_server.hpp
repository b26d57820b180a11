// TestServer: a real Server on 127.0.0.1:0 over a temporary home (token, state.db) and the
// providers a test gives it: the fake for unit tests, the real Docker provider for
// integration tests.
//
//   TestServer ts({fake});
//   auto c = ts.client();
//   auto r = c.get("/api/sandboxes");
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agentpane/provider.hpp"
#include "server/server.hpp"
#include "service/sandbox_service.hpp"
#include "store/store.hpp"
#include "unit/server/test_client.hpp"
#include "unit/temp_dir.hpp"

namespace agentpane::testing {

// Options tuned for tests: short timeouts and polls, so nothing waits on wall-clock time.
inline server::ServerOptions testServerOptions() {
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.networkThreads = 2;
  o.workerThreads = 4;
  o.maxStreams = 8;
  o.shutdownGrace = std::chrono::seconds(5);
  o.wsStartTimeout = std::chrono::seconds(5);
  return o;
}

class TestServer {
 public:
  explicit TestServer(std::vector<std::shared_ptr<SandboxProvider>> providers,
                      server::ServerOptions options = testServerOptions(),
                      ServiceOptions serviceOptions = {}) {
    home_ = dir_.path() / "home";
    auto store = Store::openFile((dir_.path() / "state.db").string());
    if (!store.ok()) throw std::runtime_error(store.error().describe());
    store_ = std::move(store).value();
    service_ = std::make_unique<SandboxService>(*store_, std::move(serviceOptions));
    for (auto& p : providers)
      service_->registerProvider(p);
    options.home = home_;
    server_ = std::make_unique<server::Server>(*service_, options);
    auto started = server_->start();
    if (!started.ok()) throw std::runtime_error(started.error().describe());
  }

  ~TestServer() {
    server_.reset();
    service_->stopBackground();
    service_.reset();
    store_.reset();
  }

  [[nodiscard]] std::uint16_t port() const { return server_->port(); }
  [[nodiscard]] const std::string& token() const { return server_->token(); }
  [[nodiscard]] const std::filesystem::path& home() const { return home_; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  server::Server& server() { return *server_; }
  SandboxService& service() { return *service_; }

  TestClient client() const { return TestClient(port(), token()); }
  // Headers that authorise a WebSocket upgrade.
  std::vector<std::pair<std::string, std::string>> wsAuth() const {
    return {{"Authorization", "Bearer " + token()}};
  }

  // Creates a sandbox through the API; returns its id ("" on failure, with a gtest failure).
  std::string createSandbox(const std::string& projectName = "proj") {
    auto c = client();
    auto r = c.post("/api/sandboxes", {{"projectPath", dir_.mkdir(projectName)}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? r.data().value("id", "") : "";
  }

 private:
  TempDir dir_;
  std::filesystem::path home_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SandboxService> service_;
  std::unique_ptr<server::Server> server_;
};

}  // namespace agentpane::testing
