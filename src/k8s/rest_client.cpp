#include "k8s/rest_client.hpp"

#include "k8s/status.hpp"
#include "net/url.hpp"

namespace agentpane::k8s {

using nlohmann::json;

namespace {

constexpr std::int64_t kDefaultPageSize = 500;

std::string describe(const RestRequest& req) {
  return req.method + " " + req.path;
}

Result<json> parseJson(const RestResponse& r, const RestRequest& req) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    return Error(ErrorCode::K8sApiError, describe(req) + ": the apiserver's answer is not JSON",
                 {{"code", std::to_string(r.status)}});
  }
  return j;
}

int statusOf(const net::HttpResponse& r) {
  return r.status;
}
int statusOf(const net::StreamResult& r) {
  return r.response.status;
}

void addDryRun(Query& q, bool dryRun) {
  if (dryRun) q.emplace_back("dryRun", "All");
}

}  // namespace

std::string resourcePath(std::string_view apiVersion, std::string_view resource,
                         std::string_view namespaceName, std::string_view name,
                         std::string_view subresource) {
  std::string p = apiVersion.find('/') == std::string_view::npos ? "/api/" : "/apis/";
  p += apiVersion;
  if (!namespaceName.empty()) {
    p += "/namespaces/";
    p += net::percentEncode(namespaceName);
  }
  p += "/";
  p += resource;
  if (!name.empty()) {
    p += "/";
    p += net::percentEncode(name);
  }
  if (!subresource.empty()) {
    p += "/";
    p += subresource;
  }
  return p;
}

Result<std::shared_ptr<RestClient>> RestClient::create(RestConfig config,
                                                       RestClientOptions options) {
  auto io = options.io ? options.io : net::IoThread::create(options.ioThreads, "ap-k8s-io");
  std::shared_ptr<RestClient> c(new RestClient(std::move(config), std::move(options), io));
  // Build the first transport now so that bad TLS material fails here, not on first use.
  Credentials none;
  auto t = c->transportFor(none);
  if (!t.ok()) return t.takeError();
  return c;
}

RestClient::RestClient(RestConfig config, RestClientOptions options,
                       std::shared_ptr<net::IoThread> io)
    : config_(std::move(config)), options_(std::move(options)), io_(std::move(io)) {}

RestClient::~RestClient() = default;

std::uint64_t RestClient::connectionsOpened() const {
  std::lock_guard lock(mu_);
  return retiredConnections_ + (http_ ? http_->connectionsOpened() : 0);
}

Result<std::shared_ptr<net::HttpClient>> RestClient::transportFor(const Credentials& creds) {
  std::lock_guard lock(mu_);
  // Certificates from the endpoint (kubeconfig files) stay; credentials may override them.
  const bool sameCert =
      creds.certPem.empty() || (creds.certPem == httpCert_ && creds.keyPem == httpKey_);
  if (http_ && sameCert) return http_;
  net::Endpoint ep = config_.endpoint;
  if (!creds.certPem.empty()) {
    ep.tls.certPem = creds.certPem;
    ep.tls.keyPem = creds.keyPem;
    ep.tls.certFile.clear();
    ep.tls.keyFile.clear();
  }
  net::ClientOptions co;
  co.keepAlive = true;
  co.maxIdle = options_.maxIdleConnections;
  auto h = net::HttpClient::create(std::move(ep), io_, co);
  if (!h.ok()) return h.takeError();
  if (http_) retiredConnections_ += http_->connectionsOpened();
  // Calls in flight keep the old client (and its connections) alive until they finish.
  http_ = std::shared_ptr<net::HttpClient>(std::move(h.value()));
  if (!creds.certPem.empty()) {
    httpCert_ = creds.certPem;
    httpKey_ = creds.keyPem;
  }
  return http_;
}

Result<Credentials> RestClient::credentials() {
  if (!config_.credentials) return Credentials{};
  auto c = config_.credentials->current();
  if (!c.ok()) {
    Error e = c.takeError();
    if (e.code == ErrorCode::Internal) e.code = ErrorCode::K8sAuthFailed;
    return e;
  }
  return c;
}

Result<net::HttpRequest> RestClient::toHttp(const RestRequest& req,
                                            const Credentials& creds) const {
  net::HttpRequest h;
  h.method = req.method;
  h.target = config_.pathPrefix + req.path + net::queryString(req.query);
  h.body = req.body;
  if (!req.body.empty()) h.contentType = req.contentType;
  if (!req.accept.empty()) h.headers.emplace_back("Accept", req.accept);
  if (!creds.bearerToken.empty())
    h.headers.emplace_back("Authorization", "Bearer " + creds.bearerToken);
  return h;
}

template <typename T, typename Send>
Result<T> RestClient::withAuth(const RestRequest& req, Send send) {
  for (int attempt = 0;; ++attempt) {
    auto creds = credentials();
    if (!creds.ok()) return creds.takeError();
    auto http = transportFor(creds.value());
    if (!http.ok()) return http.takeError();
    auto h = toHttp(req, creds.value());
    if (!h.ok()) return h.takeError();
    net::CallOptions opts;
    opts.timeout = req.timeout.count() > 0 ? req.timeout : config_.timeout;
    opts.connectTimeout = std::min(options_.connectTimeout, opts.timeout);
    opts.maxBodyBytes = options_.maxResponseBytes;
    Result<T> r = send(*http.value(), h.value(), opts);
    if (!r.ok()) return transportError(r.takeError(), config_.server);
    // Fresh credentials may help once (a rotated token, an exec plugin run again).
    if (statusOf(r.value()) == 401 && attempt == 0 && config_.credentials &&
        config_.credentials->invalidate())
      continue;
    return r;
  }
}

Result<RestResponse> RestClient::call(const RestRequest& req) {
  auto r = withAuth<net::HttpResponse>(
      req, [](net::HttpClient& http, const net::HttpRequest& h, const net::CallOptions& o) {
        return http.request(h, o);
      });
  if (!r.ok()) return r.takeError();
  if (r->status < 200 || r->status >= 300) return responseError(r->status, r->body, describe(req));
  RestResponse out;
  out.status = r->status;
  out.contentType = r->header("content-type").value_or("");
  out.body = std::move(r->body);
  return out;
}

Result<net::StreamResult> RestClient::openStream(const RestRequest& req) {
  auto r = withAuth<net::StreamResult>(
      req, [](net::HttpClient& http, const net::HttpRequest& h, const net::CallOptions& o) {
        return http.openStream(h, o);
      });
  if (!r.ok()) return r.takeError();
  const auto& resp = r->response;
  if (resp.status < 200 || resp.status >= 300)
    return responseError(resp.status, resp.body, describe(req));
  return r;
}

Result<json> RestClient::callJson(const RestRequest& req) {
  auto r = call(req);
  if (!r.ok()) return r.takeError();
  return parseJson(r.value(), req);
}

Result<json> RestClient::get(const std::string& path) {
  RestRequest req;
  req.path = path;
  return callJson(req);
}

Result<json> RestClient::list(const std::string& path, const ListOptions& opts) {
  RestRequest req;
  req.path = path;
  if (!opts.labelSelector.empty()) req.query.emplace_back("labelSelector", opts.labelSelector);
  if (!opts.fieldSelector.empty()) req.query.emplace_back("fieldSelector", opts.fieldSelector);
  if (opts.limit > 0) req.query.emplace_back("limit", std::to_string(opts.limit));
  if (!opts.continueToken.empty()) req.query.emplace_back("continue", opts.continueToken);
  if (!opts.resourceVersion.empty())
    req.query.emplace_back("resourceVersion", opts.resourceVersion);
  return callJson(req);
}

Result<json> RestClient::listAll(const std::string& path, ListOptions opts) {
  if (opts.limit <= 0) opts.limit = kDefaultPageSize;
  opts.continueToken.clear();
  json all;
  for (;;) {
    auto page = list(path, opts);
    if (!page.ok()) return page.takeError();
    json& p = page.value();
    if (all.is_null()) {
      all = p;
      all["items"] = json::array();
    }
    if (auto it = p.find("items"); it != p.end() && it->is_array()) {
      for (auto& item : *it)
        all["items"].push_back(std::move(item));
    }
    std::string next;
    if (auto m = p.find("metadata"); m != p.end() && m->is_object()) {
      if (auto c = m->find("continue"); c != m->end() && c->is_string())
        next = c->get<std::string>();
    }
    if (next.empty()) break;
    opts.continueToken = next;
    // Later pages come from the first page's snapshot; a version would be refused with it.
    opts.resourceVersion.clear();
  }
  if (all.contains("metadata") && all["metadata"].is_object()) all["metadata"].erase("continue");
  return all;
}

Result<json> RestClient::create(const std::string& path, const json& obj,
                                const WriteOptions& opts) {
  RestRequest req;
  req.method = "POST";
  req.path = path;
  req.body = obj.dump();
  req.contentType = "application/json";
  addDryRun(req.query, opts.dryRun);
  return callJson(req);
}

Result<json> RestClient::apply(const std::string& path, const json& obj, const ApplyOptions& opts) {
  RestRequest req;
  req.method = "PATCH";
  req.path = path;
  req.body = obj.dump();
  req.contentType = "application/apply-patch+yaml";
  req.query.emplace_back("fieldManager", opts.fieldManager);
  if (opts.force) req.query.emplace_back("force", "true");
  addDryRun(req.query, opts.dryRun);
  return callJson(req);
}

Result<json> RestClient::patch(const std::string& path, const json& patch, PatchType type,
                               const WriteOptions& opts) {
  RestRequest req;
  req.method = "PATCH";
  req.path = path;
  req.body = patch.dump();
  switch (type) {
    case PatchType::Merge:
      req.contentType = "application/merge-patch+json";
      break;
    case PatchType::StrategicMerge:
      req.contentType = "application/strategic-merge-patch+json";
      break;
    case PatchType::Json:
      req.contentType = "application/json-patch+json";
      break;
  }
  addDryRun(req.query, opts.dryRun);
  return callJson(req);
}

Result<json> RestClient::remove(const std::string& path, const DeleteOptions& opts) {
  RestRequest req;
  req.method = "DELETE";
  req.path = path;
  addDryRun(req.query, opts.dryRun);
  if (opts.gracePeriodSeconds)
    req.query.emplace_back("gracePeriodSeconds", std::to_string(*opts.gracePeriodSeconds));
  if (!opts.propagationPolicy.empty())
    req.query.emplace_back("propagationPolicy", opts.propagationPolicy);
  return callJson(req);
}

}  // namespace agentpane::k8s
