// Shared by the k8s unit tests: a CredentialSource scripted by the test, and a RestConfig for
// a fake apiserver on 127.0.0.1 (plain HTTP: TLS is net's concern, tested there).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "k8s/rest_client.hpp"

namespace agentpane::k8s::testing {

// Hands out tokens[0] until invalidate(), then tokens[1], ...; invalidate() returns
// whether another token is left.
class ScriptedTokens final : public CredentialSource {
 public:
  explicit ScriptedTokens(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}
  Result<Credentials> current() override {
    std::lock_guard lock(mu_);
    ++currentCalls;
    Credentials c;
    c.bearerToken = tokens_.at(index_);
    return c;
  }
  bool invalidate() override {
    std::lock_guard lock(mu_);
    ++invalidations;
    if (index_ + 1 >= tokens_.size()) return false;
    ++index_;
    return true;
  }
  [[nodiscard]] std::string kind() const override { return "token"; }
  std::atomic<int> currentCalls{0};
  std::atomic<int> invalidations{0};

 private:
  std::mutex mu_;
  std::vector<std::string> tokens_;
  std::size_t index_ = 0;
};

inline RestConfig configFor(unsigned short port, std::shared_ptr<CredentialSource> creds) {
  RestConfig c;
  c.server = "http://127.0.0.1:" + std::to_string(port);
  c.endpoint = net::Endpoint::tcp("127.0.0.1", port);
  c.credentials = std::move(creds);
  c.namespaceName = "default";
  return c;
}

inline std::shared_ptr<RestClient> clientFor(unsigned short port,
                                             std::shared_ptr<CredentialSource> creds,
                                             RestClientOptions opts = {}) {
  auto c = RestClient::create(configFor(port, std::move(creds)), std::move(opts));
  if (!c.ok()) return nullptr;
  return c.value();
}

}  // namespace agentpane::k8s::testing
