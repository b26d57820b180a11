// The CLI's way to the server: JSON calls under /api with the bearer token, and the
// streaming exec WebSocket. Nothing here knows about providers.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agentpane/result.hpp"
#include "net/http_client.hpp"

namespace agentpane::cli {

struct ServerEndpoint {
  std::string host = "127.0.0.1";
  std::string port = "7300";
  std::string url() const { return "http://" + host + ":" + port; }
};

// Parses "http://host:port" (the form of AGENTPANE_URL). https is refused with a clear error.
Result<ServerEndpoint> parseServerUrl(const std::string& url);

// AGENTPANE_HOME, else ~/.agentpane.
std::string defaultHome();
// AGENTPANE_TOKEN, else the file `token` in the home directory.
Result<std::string> discoverToken(const std::string& home);

struct ExecStreamRequest {
  std::string sandboxId;
  std::vector<std::string> argv;
  bool root = false;
  int timeoutSeconds = 0;
  bool forwardStdin = false;  // -i: copy our stdin to the process, EOF included
};

class ApiClient {
 public:
  ApiClient(ServerEndpoint endpoint, std::string token)
      : endpoint_(std::move(endpoint)), token_(std::move(token)) {}

  // Builds a client from AGENTPANE_URL / AGENTPANE_TOKEN / AGENTPANE_HOME.
  static Result<ApiClient> fromEnvironment();

  // One request; returns the envelope's `data`, or its error as an Error.
  Result<nlohmann::json> call(const std::string& method, const std::string& target,
                              const std::optional<nlohmann::json>& body = std::nullopt) const;

  // A request answered with a stream of JSON lines (Accept: application/x-ndjson): each
  // {"type":"progress",…} line goes to onProgress as it arrives; the {"type":"result",…}
  // line ends it and is returned as call() returns an envelope. A server that answers with
  // one envelope instead is read as call() reads it.
  Result<nlohmann::json> callStreamed(
      const std::string& method, const std::string& target, const nlohmann::json& body,
      const std::function<void(const nlohmann::json&)>& onProgress) const;

  // Streaming exec over WebSocket: remote stdout/stderr go to ours, byte-exact; returns
  // the remote exit code.
  Result<int> execStream(const ExecStreamRequest& req) const;

  const ServerEndpoint& endpoint() const { return endpoint_; }

 private:
  Result<std::unique_ptr<net::HttpClient>> http() const;  // a client of its own per call
  Error callFailed(Error e) const;                        // worded for the CLI's user
  ServerEndpoint endpoint_;
  std::string token_;
};

}  // namespace agentpane::cli
