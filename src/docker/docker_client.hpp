// The Docker Engine API over ap_net: version negotiation, JSON calls with bounded bodies and
// timeouts, the hijacked exec stream and the events stream. It maps transport failures to
// the provider's codes once: engine unreachable -> SandboxProviderUnavailable (with how to
// start it), timeout -> Timeout, any engine error -> SandboxProviderError carrying the HTTP
// status in details["httpStatus"] for callers to refine (404 -> SandboxNotFound, ...).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "agentpane/result.hpp"
#include "docker/api_version.hpp"
#include "docker/events.hpp"
#include "net/byte_stream.hpp"
#include "net/endpoint.hpp"
#include "net/http_client.hpp"
#include "net/io_thread.hpp"

namespace agentpane::docker {

struct DockerClientOptions {
  net::Endpoint endpoint = net::Endpoint::unixSocket("/var/run/docker.sock");
  ApiVersion maxApi = kMaxApiVersion;
  std::chrono::milliseconds callTimeout{30000};
  std::size_t maxBodyBytes = 64u << 20;
};

struct EngineVersion {
  std::string version;        // "20.10.24+dfsg1"
  std::string apiVersion;     // what the engine speaks at most
  std::string minApiVersion;  // what it accepts at least
  std::string os;
  std::string arch;
};

class DockerClient {
 public:
  static Result<std::unique_ptr<DockerClient>> create(DockerClientOptions opts,
                                                      std::shared_ptr<net::IoThread> io);

  [[nodiscard]] const net::Endpoint& endpoint() const { return http_->endpoint(); }

  // Negotiated once (GET /version, falling back to /_ping's API-Version header), then cached;
  // a failure is not cached, so a later call retries once the engine is up.
  Result<ApiVersion> apiVersion();
  Result<EngineVersion> version();

  // A JSON call on /v<api><pathAndQuery>. 2xx: the parsed body (null when empty).
  // timeout 0: the default call timeout.
  Result<nlohmann::json> call(std::string_view method, const std::string& pathAndQuery,
                              const nlohmann::json* body = nullptr,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // POST /exec/{id}/start with Upgrade: tcp; on 101 the raw stream (multiplexed unless the
  // exec was made with a TTY, then the terminal's bytes as they are).
  Result<std::unique_ptr<net::ByteStream>> startExec(const std::string& execId, bool tty = false);

  // Coroutine forms of call() and startExec() for code on the I/O loop; awaited on a strand
  // of the client's IoThread (an exec session's stream strand). They never block: the API
  // version must be negotiated already (every session was opened by a blocking call that
  // did it), otherwise they fail with Internal.
  boost::asio::awaitable<Result<nlohmann::json>> asyncCall(std::string method,
                                                           std::string pathAndQuery,
                                                           std::optional<nlohmann::json> body,
                                                           std::chrono::milliseconds timeout);
  boost::asio::awaitable<Result<std::unique_ptr<net::ByteStream>>> asyncStartExec(
      std::string execId);

  // GET pathAndQuery as a stream of body pieces (events).
  Result<std::unique_ptr<EventStream>> events(const std::string& filtersQueryValue);

  // The message for an unreachable engine: says it is not running and how to start it.
  [[nodiscard]] std::string unavailableMessage(const std::string& cause) const;

 private:
  DockerClient(DockerClientOptions opts, std::unique_ptr<net::HttpClient> http);
  Error mapNetError(const Error& e, const std::string& what) const;
  Error engineError(const net::HttpResponse& r, const std::string& what) const;
  std::optional<ApiVersion> negotiated();
  net::HttpRequest jsonRequest(const ApiVersion& api, std::string_view method,
                               const std::string& pathAndQuery, const nlohmann::json* body) const;
  Result<nlohmann::json> jsonAnswer(Result<net::HttpResponse> r, const std::string& what) const;
  net::HttpRequest startExecRequest(const ApiVersion& api, const std::string& execId,
                                    bool tty) const;

  DockerClientOptions opts_;
  std::unique_ptr<net::HttpClient> http_;
  std::mutex mu_;
  std::optional<ApiVersion> api_;
};

// The HTTP status of an engine error made by DockerClient, 0 for any other error.
int httpStatus(const Error& e);

}  // namespace agentpane::docker
