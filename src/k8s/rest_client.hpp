// A REST client for one Kubernetes cluster, in the room of client-go's `rest`: it knows paths,
// verbs, query options, credentials and errors, and nothing of particular resources.
//
// Contract:
// - Every call MUST end within its deadline (RestConfig::timeout unless the request says
//   otherwise) and MUST NOT read more than the response bound; connecting has its own,
//   shorter bound (RestClientOptions::connectTimeout) so that a cluster that is down fails
//   with K8sUnreachable (K8S_CLUSTER_UNREACHABLE) within seconds.
// - Credentials MUST be taken from the CredentialSource on every call: a bearer token goes
//   in the Authorization header; a client certificate goes in the TLS context, rebuilt
//   (with a fresh connection pool) whenever the certificate changes.
// - On a 401 the client calls invalidate() and, when it returns true, sends the request
//   again once with fresh credentials; a second 401 is K8sAuthFailed.
// - Connections are kept alive and reused: a call on a warm client is one round trip.
// - Errors map as described in status.hpp (the apiserver's message is kept).
// - Thread-safe: any number of threads may call at once. Blocking calls MUST NOT be made
//   from the I/O thread (they would wait for themselves; refused with Internal).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"
#include "k8s/rest_config.hpp"
#include "net/http_client.hpp"
#include "net/io_thread.hpp"

namespace agentpane::k8s {

using Query = std::vector<std::pair<std::string, std::string>>;

struct RestRequest {
  std::string method = "GET";
  std::string path;  // e.g. /api/v1/namespaces/ns/pods/name (the config's prefix is added)
  Query query;       // encoded for you
  std::string body;
  std::string contentType;               // sent with a body
  std::chrono::milliseconds timeout{0};  // 0: RestConfig::timeout
  std::string accept = "application/json";
};

struct RestResponse {
  int status = 0;
  std::string body;
  std::string contentType;
};

// Collection reads. Empty strings and 0 mean "not sent".
struct ListOptions {
  std::string labelSelector;  // e.g. "app=web,tier!=db"
  std::string fieldSelector;  // e.g. "status.phase=Running"
  std::int64_t limit = 0;     // page size; the answer's metadata.continue names the next page
  std::string continueToken;
  std::string resourceVersion;  // "0": any version the apiserver's cache has
};

struct WriteOptions {
  bool dryRun = false;  // dryRun=All: admission and validation run, nothing is stored
};

// Server-side apply: PATCH application/apply-patch+yaml (JSON is YAML). Creates the object
// when it does not exist.
struct ApplyOptions {
  bool dryRun = false;
  std::string fieldManager = "agentpane";
  bool force = true;  // take over fields other managers own
};

struct DeleteOptions {
  bool dryRun = false;
  std::optional<std::int64_t> gracePeriodSeconds;
  std::string propagationPolicy;  // "Foreground" | "Background" | "Orphan" | "" (server's)
};

enum class PatchType { Merge, StrategicMerge, Json };

struct RestClientOptions {
  std::shared_ptr<net::IoThread> io;  // null: the client makes its own, of ioThreads threads
  // Threads for every request, watch and exec stream of the client (TLS included). One: in
  // a burst of 20 warm claims it used 20-30 ms of CPU, and two moved no measured figure.
  int ioThreads = 1;
  std::chrono::milliseconds connectTimeout{3000};
  std::size_t maxResponseBytes = 64u << 20;
  // Idle connections kept for reuse: a burst of claims or creates (20 at once) otherwise
  // opens most of its connections anew, each a TLS handshake with the apiserver.
  std::size_t maxIdleConnections = 32;
};

// "/api/v1" for "v1", "/apis/apps/v1" for "apps/v1"; then namespaces/<ns>/ when ns is set,
// the resource (plural), the name and the subresource when set.
std::string resourcePath(std::string_view apiVersion, std::string_view resource,
                         std::string_view namespaceName = {}, std::string_view name = {},
                         std::string_view subresource = {});
// The paths of the core objects a sandbox is made of.
inline std::string podPath(const std::string& ns, const std::string& name = {}) {
  return resourcePath("v1", "pods", ns, name);
}
inline std::string claimPath(const std::string& ns, const std::string& name = {}) {
  return resourcePath("v1", "persistentvolumeclaims", ns, name);
}
inline std::string volumePath(const std::string& name = {}) {
  return resourcePath("v1", "persistentvolumes", {}, name);
}

class RestClient {
 public:
  // Fails on bad TLS material (ValidationError) only; never connects here.
  static Result<std::shared_ptr<RestClient>> create(RestConfig config,
                                                    RestClientOptions options = {});
  ~RestClient();
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  [[nodiscard]] const RestConfig& config() const { return config_; }
  [[nodiscard]] const std::shared_ptr<net::IoThread>& io() const { return io_; }

  // Any request; a non-2xx answer is an error (mapped), a 2xx one comes back as it is.
  Result<RestResponse> call(const RestRequest& req);

  // JSON verbs. `path` names the object (get, apply, patch, remove) or the collection
  // (list, create).
  Result<nlohmann::json> get(const std::string& path);
  // One page: items plus metadata.resourceVersion and, when more remain, metadata.continue.
  Result<nlohmann::json> list(const std::string& path, const ListOptions& opts = {});
  // Every page, following continue tokens (page size opts.limit, 500 when 0). The answer
  // has all items and the resourceVersion of the first page (what a watch resumes from).
  Result<nlohmann::json> listAll(const std::string& path, ListOptions opts = {});
  Result<nlohmann::json> create(const std::string& path, const nlohmann::json& obj,
                                const WriteOptions& opts = {});
  Result<nlohmann::json> apply(const std::string& path, const nlohmann::json& obj,
                               const ApplyOptions& opts = {});
  Result<nlohmann::json> patch(const std::string& path, const nlohmann::json& patch, PatchType type,
                               const WriteOptions& opts = {});
  // The apiserver answers with the object (being deleted) or a Status.
  Result<nlohmann::json> remove(const std::string& path, const DeleteOptions& opts = {});

  // Sends req and returns once the header of a 2xx answer is in; the body is read piece by
  // piece (watches). Same credentials, 401 retry and error mapping as call(). The stream
  // uses a connection of its own (never a pooled one).
  Result<net::StreamResult> openStream(const RestRequest& req);

  // Connections opened so far over every transport this client has had (tests, bench).
  [[nodiscard]] std::uint64_t connectionsOpened() const;

 private:
  RestClient(RestConfig config, RestClientOptions options, std::shared_ptr<net::IoThread> io);
  // The HTTP client for these credentials (rebuilt when the client certificate changes).
  Result<std::shared_ptr<net::HttpClient>> transportFor(const Credentials& creds);
  Result<net::HttpRequest> toHttp(const RestRequest& req, const Credentials& creds) const;
  Result<Credentials> credentials();
  template <typename T, typename Send>
  Result<T> withAuth(const RestRequest& req, Send send);
  Result<nlohmann::json> callJson(const RestRequest& req);

  RestConfig config_;
  RestClientOptions options_;
  std::shared_ptr<net::IoThread> io_;
  mutable std::mutex mu_;
  std::shared_ptr<net::HttpClient> http_;  // under mu_
  std::string httpCert_;                   // the client certificate http_ was built with
  std::string httpKey_;
  std::uint64_t retiredConnections_ = 0;  // opened by transports replaced since
};

}  // namespace agentpane::k8s
