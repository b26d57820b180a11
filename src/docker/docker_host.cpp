#include "docker/docker_host.hpp"

#include <cstdlib>

namespace agentpane::docker {

GetEnv processEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Result<net::Endpoint> dockerEndpointFromEnv(const GetEnv& env) {
  std::string host = env("DOCKER_HOST").value_or(kDefaultDockerHost);
  auto certPath = env("DOCKER_CERT_PATH");
  bool verify = env("DOCKER_TLS_VERIFY").has_value();
  bool tls = verify || certPath.has_value();

  if (host.rfind("unix://", 0) == 0) {
    auto ep = net::parseEndpoint(host);
    if (!ep.ok()) return Error(ErrorCode::ValidationError, "DOCKER_HOST: " + ep.error().message);
    return ep;
  }
  if (host.rfind("tcp://", 0) != 0) {
    return Error(
        ErrorCode::ValidationError,
        "DOCKER_HOST '" + host + "' is not supported (use unix:///path or tcp://host:port)");
  }
  auto ep = net::parseEndpoint(host, tls ? 2376 : 2375);
  if (!ep.ok()) return Error(ErrorCode::ValidationError, "DOCKER_HOST: " + ep.error().message);
  if (!tls) return ep;

  std::string dir;
  if (certPath) {
    dir = *certPath;
  } else {
    dir = env("HOME").value_or("") + "/.docker";
  }
  net::TlsOptions opts;
  opts.caFile = dir + "/ca.pem";
  opts.certFile = dir + "/cert.pem";
  opts.keyFile = dir + "/key.pem";
  opts.verifyPeer = verify;
  ep.value().kind = net::Endpoint::Kind::Tls;
  ep.value().tls = std::move(opts);
  return ep;
}

}  // namespace agentpane::docker
