#include "docker/docker_client.hpp"

#include "net/errors.hpp"

namespace agentpane::docker {

using nlohmann::json;

Result<std::unique_ptr<DockerClient>> DockerClient::create(DockerClientOptions opts,
                                                           std::shared_ptr<net::IoThread> io) {
  auto http = net::HttpClient::create(opts.endpoint, std::move(io));
  if (!http.ok()) return http.takeError();
  return std::unique_ptr<DockerClient>(new DockerClient(std::move(opts), std::move(http.value())));
}

DockerClient::DockerClient(DockerClientOptions opts, std::unique_ptr<net::HttpClient> http)
    : opts_(std::move(opts)), http_(std::move(http)) {}

std::string DockerClient::unavailableMessage(const std::string& cause) const {
  return "the Docker engine is not running or not reachable at " + endpoint().describe() + " (" +
         cause +
         "). Start it (`bash scripts/start-docker.sh`, or `sudo systemctl start docker`) or point "
         "DOCKER_HOST at a running engine.";
}

Error DockerClient::mapNetError(const Error& e, const std::string& what) const {
  std::string kind = net::netKind(e);
  if (kind == net::kConnect || kind == net::kTls) {
    return Error(ErrorCode::SandboxProviderUnavailable, unavailableMessage(e.message),
                 {{"endpoint", endpoint().describe()}});
  }
  if (kind == net::kTimeout) {
    return Error(ErrorCode::Timeout, "the Docker engine did not answer " + what + " in time",
                 {{"endpoint", endpoint().describe()}});
  }
  return Error(ErrorCode::SandboxProviderError, "docker " + what + ": " + e.message);
}

Error DockerClient::engineError(const net::HttpResponse& r, const std::string& what) const {
  std::string message;
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    message = j["message"].get<std::string>();
  } else {
    message = r.body.substr(0, 512);
  }
  return Error(ErrorCode::SandboxProviderError,
               "docker " + what + " failed (HTTP " + std::to_string(r.status) + "): " + message,
               {{"httpStatus", std::to_string(r.status)}, {"engineMessage", message}});
}

int httpStatus(const Error& e) {
  auto it = e.details.find("httpStatus");
  if (it == e.details.end()) return 0;
  try {
    return std::stoi(it->second);
  } catch (const std::exception&) {
    return 0;
  }
}

Result<EngineVersion> DockerClient::version() {
  net::CallOptions co;
  co.timeout = opts_.callTimeout;
  co.maxBodyBytes = 1u << 20;
  auto r = http_->request({"GET", "/version", {}, {}, {}}, co);
  if (!r.ok()) return mapNetError(r.error(), "GET /version");
  if (r->status != 200) return engineError(r.value(), "GET /version");
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object())
    return Error(ErrorCode::SandboxProviderError, "docker GET /version: not JSON");
  EngineVersion v;
  v.version = j.value("Version", std::string());
  v.apiVersion = j.value("ApiVersion", std::string());
  v.minApiVersion = j.value("MinAPIVersion", std::string());
  v.os = j.value("Os", std::string());
  v.arch = j.value("Arch", std::string());
  return v;
}

Result<ApiVersion> DockerClient::apiVersion() {
  {
    std::lock_guard lock(mu_);
    if (api_) return *api_;
  }
  std::optional<ApiVersion> serverMax;
  std::optional<ApiVersion> serverMin;
  auto v = version();
  if (v.ok()) {
    serverMax = ApiVersion::parse(v->apiVersion);
    serverMin = ApiVersion::parse(v->minApiVersion);
  } else if (v.error().code != ErrorCode::SandboxProviderError) {
    return v.takeError();  // unreachable or timed out: /_ping would not do better
  }
  if (!serverMax) {
    net::CallOptions co;
    co.timeout = opts_.callTimeout;
    co.maxBodyBytes = 4096;
    auto ping = http_->request({"GET", "/_ping", {}, {}, {}}, co);
    if (!ping.ok()) return mapNetError(ping.error(), "GET /_ping");
    if (auto h = ping->header("API-Version")) serverMax = ApiVersion::parse(*h);
  }
  auto chosen = negotiateApiVersion(opts_.maxApi, serverMax, serverMin);
  if (!chosen.ok()) return chosen.takeError();
  std::lock_guard lock(mu_);
  api_ = chosen.value();
  return *api_;
}

std::optional<ApiVersion> DockerClient::negotiated() {
  std::lock_guard lock(mu_);
  return api_;
}

net::HttpRequest DockerClient::jsonRequest(const ApiVersion& api, std::string_view method,
                                           const std::string& pathAndQuery,
                                           const json* body) const {
  net::HttpRequest req;
  req.method = std::string(method);
  req.target = "/v" + api.toString() + pathAndQuery;
  if (body != nullptr) {
    req.body = body->dump();
    req.contentType = "application/json";
  }
  return req;
}

Result<json> DockerClient::jsonAnswer(Result<net::HttpResponse> r, const std::string& what) const {
  if (!r.ok()) return mapNetError(r.error(), what);
  if (r->status < 200 || r->status >= 300) return engineError(r.value(), what);
  if (r->body.empty()) return json();
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    return Error(ErrorCode::SandboxProviderError, "docker " + what + ": answer is not JSON");
  return j;
}

net::HttpRequest DockerClient::startExecRequest(const ApiVersion& api, const std::string& execId,
                                                bool tty) const {
  net::HttpRequest req;
  req.method = "POST";
  req.target = "/v" + api.toString() + "/exec/" + execId + "/start";
  req.body = tty ? R"({"Detach":false,"Tty":true})" : R"({"Detach":false,"Tty":false})";
  req.contentType = "application/json";
  req.headers = {{"Connection", "Upgrade"}, {"Upgrade", "tcp"}};
  return req;
}

Result<json> DockerClient::call(std::string_view method, const std::string& pathAndQuery,
                                const json* body, std::chrono::milliseconds timeout) {
  auto api = apiVersion();
  if (!api.ok()) return api.takeError();
  net::HttpRequest req = jsonRequest(api.value(), method, pathAndQuery, body);
  net::CallOptions co;
  co.timeout = timeout.count() > 0 ? timeout : opts_.callTimeout;
  co.maxBodyBytes = opts_.maxBodyBytes;
  const std::string what = req.method + " " + pathAndQuery.substr(0, pathAndQuery.find('?'));
  return jsonAnswer(http_->request(req, co), what);
}

boost::asio::awaitable<Result<json>> DockerClient::asyncCall(std::string method,
                                                             std::string pathAndQuery,
                                                             std::optional<json> body,
                                                             std::chrono::milliseconds timeout) {
  auto api = negotiated();
  if (!api) co_return Error(ErrorCode::Internal, "docker API version not negotiated yet");
  net::HttpRequest req = jsonRequest(*api, method, pathAndQuery, body ? &*body : nullptr);
  net::CallOptions co;
  co.timeout = timeout.count() > 0 ? timeout : opts_.callTimeout;
  co.maxBodyBytes = opts_.maxBodyBytes;
  const std::string what = req.method + " " + pathAndQuery.substr(0, pathAndQuery.find('?'));
  auto op = http_->asyncRequest(std::move(req), co);
  auto r = co_await std::move(op);
  co_return jsonAnswer(std::move(r), what);
}

Result<std::unique_ptr<net::ByteStream>> DockerClient::startExec(const std::string& execId,
                                                                 bool tty) {
  auto api = apiVersion();
  if (!api.ok()) return api.takeError();
  net::CallOptions co;
  co.timeout = opts_.callTimeout;
  co.maxBodyBytes = 1u << 20;
  auto r = http_->upgrade(startExecRequest(api.value(), execId, tty), co);
  if (!r.ok()) return mapNetError(r.error(), "POST /exec/{id}/start");
  if (!r->stream) return engineError(r->response, "POST /exec/{id}/start");
  return std::move(r->stream);
}

boost::asio::awaitable<Result<std::unique_ptr<net::ByteStream>>> DockerClient::asyncStartExec(
    std::string execId) {
  auto api = negotiated();
  if (!api) co_return Error(ErrorCode::Internal, "docker API version not negotiated yet");
  net::CallOptions co;
  co.timeout = opts_.callTimeout;
  co.maxBodyBytes = 1u << 20;
  auto op = http_->asyncUpgrade(startExecRequest(*api, execId, false), co);
  auto r = co_await std::move(op);
  if (!r.ok()) co_return mapNetError(r.error(), "POST /exec/{id}/start");
  if (!r->stream) co_return engineError(r->response, "POST /exec/{id}/start");
  co_return std::move(r->stream);
}

Result<std::unique_ptr<EventStream>> DockerClient::events(const std::string& filtersQueryValue) {
  auto api = apiVersion();
  if (!api.ok()) return api.takeError();
  net::HttpRequest req;
  req.target = "/v" + api->toString() + "/events?filters=" + filtersQueryValue;
  net::CallOptions co;
  co.timeout = opts_.callTimeout;
  auto r = http_->openStream(req, co);
  if (!r.ok()) return mapNetError(r.error(), "GET /events");
  if (!r->body) return engineError(r->response, "GET /events");
  return std::make_unique<EventStream>(std::move(r->body));
}

}  // namespace agentpane::docker
