// What the cluster suites share: the RestConfig of the least-privilege kubeconfig
// (AGENTPANE_TEST_SA_KUBECONFIG, set by `scripts/test-cluster env`), a few raw API calls
// to make and delete the pods the tests exec into, and a restricted pod template of the
// sandbox image. A missing variable fails the test: a cluster suite never passes by
// skipping.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "k8s/kubeconfig_loader.hpp"
#include "net/http_client.hpp"

namespace agentpane::k8s::exectest {

inline constexpr const char* kNamespace = "agentpane-sandboxes";
inline constexpr const char* kImage = "agentpane/sandbox:latest";

inline std::string runSuffix() {
  std::random_device rd;
  return std::to_string(rd() % 100000000);
}

// A pod that PodSecurity "restricted" admits, sleeping so that tests can exec into it.
inline nlohmann::json restrictedPod(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", {{"agentpane-k8s-test", "exec"}}}}},
          {"spec",
           {{"automountServiceAccountToken", false},
            {"terminationGracePeriodSeconds", 0},
            {"securityContext",
             {{"runAsNonRoot", true},
              {"runAsUser", 1000},
              {"runAsGroup", 1000},
              {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
            {"containers", nlohmann::json::array(
                               {{{"name", "main"},
                                 {"image", kImage},
                                 {"imagePullPolicy", "Never"},
                                 {"command", {"sleep", "3600"}},
                                 {"resources", {{"limits", {{"cpu", "1"}, {"memory", "512Mi"}}}}},
                                 {"securityContext",
                                  {{"allowPrivilegeEscalation", false},
                                   {"capabilities", {{"drop", {"ALL"}}}}}}}})}}}};
}

class ClusterApi {
 public:
  // Fails the calling test (fatal) when the environment or the kubeconfig is not usable.
  static std::unique_ptr<ClusterApi> fromEnv() {
    const char* path = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    if (path == nullptr || *path == '\0') {
      ADD_FAILURE() << "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster "
                       "env)\" first";
      return nullptr;
    }
    LoadingRules rules;
    rules.explicitPath = path;
    DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    if (!cfg.ok()) {
      ADD_FAILURE() << cfg.error().describe();
      return nullptr;
    }
    auto api = std::unique_ptr<ClusterApi>(new ClusterApi(std::move(cfg.value())));
    auto creds = api->cfg_.credentials->current();
    if (!creds.ok()) {
      ADD_FAILURE() << creds.error().describe();
      return nullptr;
    }
    net::Endpoint ep = api->cfg_.endpoint;
    if (!creds->certPem.empty()) {
      ep.tls.certPem = creds->certPem;
      ep.tls.keyPem = creds->keyPem;
    }
    api->token_ = creds->bearerToken;
    auto http = net::HttpClient::create(ep, api->io_);
    if (!http.ok()) {
      ADD_FAILURE() << http.error().describe();
      return nullptr;
    }
    api->http_ = std::move(http.value());
    return api;
  }

  [[nodiscard]] const RestConfig& config() const { return cfg_; }
  [[nodiscard]] const std::shared_ptr<net::IoThread>& io() const { return io_; }

  Result<net::HttpResponse> call(const std::string& method, const std::string& path,
                                 const std::string& body = {}) {
    net::HttpRequest req;
    req.method = method;
    req.target = cfg_.pathPrefix + path;
    req.body = body;
    if (!body.empty()) req.contentType = "application/json";
    if (!token_.empty()) req.headers.emplace_back("Authorization", "Bearer " + token_);
    req.headers.emplace_back("Accept", "application/json");
    return http_->request(req);
  }

  std::string podsPath() const { return std::string("/api/v1/namespaces/") + kNamespace + "/pods"; }

  // Creates the pod and waits (bounded) until it is Running with its container ready.
  // Returns "" on success, else why not.
  std::string createRunningPod(const std::string& name) {
    auto created = call("POST", podsPath(), restrictedPod(name).dump());
    if (!created.ok()) return created.error().describe();
    if (created->status != 201) {
      return "create: HTTP " + std::to_string(created->status) + " " + created->body;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = call("GET", podsPath() + "/" + name);
      if (got.ok() && got->status == 200) {
        auto pod = nlohmann::json::parse(got->body, nullptr, false);
        last = pod.is_object() ? pod["status"].dump() : got->body;
        if (pod.is_object() && pod["status"].value("phase", "") == "Running") {
          for (const auto& c : pod["status"].value("containerStatuses", nlohmann::json::array())) {
            if (c.value("ready", false)) return {};
          }
        }
      }
      // Polling the pod (a watch belongs to the REST client of another part of this issue).
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return "pod not running after 120 s: " + last.substr(0, 600);
  }

  void deletePod(const std::string& name) {
    auto r = call("DELETE", podsPath() + "/" + name + "?gracePeriodSeconds=0");
    if (!r.ok() || (r->status != 200 && r->status != 202 && r->status != 404)) {
      ADD_FAILURE() << "deleting pod " << name << ": "
                    << (r.ok() ? std::to_string(r->status) + " " + r->body : r.error().describe());
    }
  }

 private:
  explicit ClusterApi(RestConfig cfg) : cfg_(std::move(cfg)) {}

  RestConfig cfg_;
  std::shared_ptr<net::IoThread> io_ = net::IoThread::create(1);
  std::unique_ptr<net::HttpClient> http_;
  std::string token_;
};

}  // namespace agentpane::k8s::exectest
