// Where the Docker engine is, the way the docker CLI decides it: DOCKER_HOST (default
// unix:///var/run/docker.sock); TLS when DOCKER_CERT_PATH or DOCKER_TLS_VERIFY is set, with
// ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH (default ~/.docker); the peer is
// verified only when DOCKER_TLS_VERIFY is non-empty (as the CLI does).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "agentpane/result.hpp"
#include "net/endpoint.hpp"

namespace agentpane::docker {

inline constexpr const char* kDefaultDockerHost = "unix:///var/run/docker.sock";

using GetEnv = std::function<std::optional<std::string>(const char* name)>;
GetEnv processEnv();  // std::getenv; unset and empty both mean "not set"

// ValidationError for a DOCKER_HOST we cannot use (ssh://, npipe://, junk).
Result<net::Endpoint> dockerEndpointFromEnv(const GetEnv& env = processEnv());

}  // namespace agentpane::docker
