// What every call to one Kubernetes cluster needs, resolved from a kubeconfig context (or
// in-cluster credentials): where the apiserver is, how TLS is checked, and the credentials.
// Produced by the kubeconfig loader (kubeconfig.hpp); consumed by the REST client, the
// watch and the exec-over-WebSocket session, so that all three authenticate the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "agentpane/result.hpp"
#include "net/endpoint.hpp"

namespace agentpane::k8s {

// One set of credentials at a point in time. A bearer token, a client certificate, or
// neither (anonymous). Exec plugins may return either and may expire.
struct Credentials {
  std::string bearerToken;  // sent as "Authorization: Bearer <token>" when non-empty
  std::string certPem;      // client certificate + key for mutual TLS when non-empty
  std::string keyPem;
  std::optional<std::chrono::system_clock::time_point> expiry;  // exec plugins only
};

// Where credentials come from. Thread-safe: called from any thread, concurrently.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // The credentials to use now. May block (runs an exec plugin, reads a token file):
  // never call it from an I/O thread. Cached sources return the cached value until expiry.
  virtual Result<Credentials> current() = 0;
  // After a 401: forget cached credentials so that the next current() fetches fresh ones.
  // Returns true when a retry may succeed (an exec plugin or token file may give a new
  // one), false when nothing would change (a static token or certificate).
  virtual bool invalidate() = 0;
  // "client-certificate" | "token" | "token-file" | "exec" | "in-cluster" | "none"
  [[nodiscard]] virtual std::string kind() const = 0;
};

struct RestConfig {
  std::string server;      // as written in the kubeconfig, e.g. https://127.0.0.1:6443
  net::Endpoint endpoint;  // parsed from server; TLS options (CA, SNI, verify) filled in
  std::string pathPrefix;  // a server URL may carry a path prefix (proxies); "" usually
  std::shared_ptr<CredentialSource> credentials;  // never null ("none" source when anonymous)
  std::string contextName;                        // empty for in-cluster
  std::string clusterName;
  std::string userName;
  std::string namespaceName;  // the context's namespace; empty when it names none
  std::string sourceFile;     // the kubeconfig file (first of a merged set), for messages
  std::chrono::milliseconds timeout{10000};  // default per-call deadline
};

}  // namespace agentpane::k8s
