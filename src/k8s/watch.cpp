#include "k8s/watch.hpp"

#include <algorithm>

#include "k8s/status.hpp"
#include "net/errors.hpp"

namespace agentpane::k8s {

using nlohmann::json;

namespace {

// How long one read of the stream may wait: the server ends a watch after serverTimeout and
// sends bookmarks about every minute meanwhile; silence well past that means a dead link.
constexpr std::chrono::seconds kReadSlack{60};

std::string rvOf(const json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return {};
  auto rv = m->find("resourceVersion");
  return rv != m->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

Error closedError() {
  return net::netError(net::kClosed, "watch closed");
}

}  // namespace

Watcher::Watcher(std::shared_ptr<RestClient> client, std::string collectionPath,
                 WatchOptions options)
    : client_(std::move(client)),
      path_(std::move(collectionPath)),
      opts_(std::move(options)),
      splitter_(opts_.maxEventBytes),
      needList_(opts_.resourceVersion.empty()),
      rv_(opts_.resourceVersion) {}

Watcher::~Watcher() {
  close();
}

void Watcher::close() {
  std::shared_ptr<net::BodyStream> s;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    s = stream_;
  }
  cv_.notify_all();
  if (s) s->close();
}

bool Watcher::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::string Watcher::resourceVersion() const {
  std::lock_guard lock(mu_);
  return rv_;
}

Watcher::Stats Watcher::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Watcher::transient(const Error& e) {
  switch (e.code) {
    case ErrorCode::K8sUnreachable:
    case ErrorCode::Timeout:
      return true;
    case ErrorCode::K8sApiError: {
      auto it = e.details.find("code");
      if (it == e.details.end()) return true;
      int code = std::atoi(it->second.c_str());
      return code >= 500 || code == 429 || code == 0;
    }
    case ErrorCode::Internal: {
      auto kind = net::netKind(e);
      return kind == net::kIo || kind == net::kProtocol || kind == net::kClosed;
    }
    default:
      return false;
  }
}

// Right after an apiserver restart its RBAC authorizer can answer 403 until its caches are
// filled (seen on the test cluster: "cannot watch persistentvolumeclaims" just after the
// restart, for the ServiceAccount that had watched them a moment before). A list or watch
// this watcher was allowed before is therefore retried for a short grace; then the 403 stands.
bool Watcher::authorizerWarmingUp(const Error& e) {
  constexpr auto kGrace = std::chrono::seconds(15);
  if (e.code != ErrorCode::K8sForbidden || !allowedBefore_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!forbiddenSince_) forbiddenSince_ = now;
  return now - *forbiddenSince_ < kGrace;
}

bool Watcher::backoff() {
  delay_ = delay_.count() == 0 ? opts_.minBackoff : std::min(delay_ * 2, opts_.maxBackoff);
  std::unique_lock lock(mu_);
  ++stats_.failures;
  return !cv_.wait_for(lock, delay_, [this] { return closed_; });
}

void Watcher::dropStream() {
  std::shared_ptr<net::BodyStream> s;
  {
    std::lock_guard lock(mu_);
    s = std::move(stream_);
  }
  if (s) s->close();
  splitter_.reset();
}

Result<WatchEvent> Watcher::listNow() {
  ListOptions lo = opts_.selectors;
  lo.continueToken.clear();
  lo.resourceVersion.clear();  // a consistent read: the newest state
  auto all = client_->listAll(path_, lo);
  if (!all.ok()) return all.takeError();
  WatchEvent ev;
  ev.type = WatchEvent::Type::Synced;
  ev.resourceVersion = rvOf(all.value());
  ev.items = all.value().contains("items") ? all.value()["items"] : json::array();
  {
    std::lock_guard lock(mu_);
    ++stats_.lists;
    rv_ = ev.resourceVersion;
  }
  needList_ = false;
  allowedBefore_ = true;
  forbiddenSince_.reset();
  return ev;
}

Result<void> Watcher::openWatch() {
  RestRequest req;
  req.path = path_;
  req.query = {{"watch", "1"},
               {"resourceVersion", resourceVersion()},
               {"allowWatchBookmarks", "true"},
               {"timeoutSeconds", std::to_string(opts_.serverTimeout.count())}};
  if (!opts_.selectors.labelSelector.empty())
    req.query.emplace_back("labelSelector", opts_.selectors.labelSelector);
  if (!opts_.selectors.fieldSelector.empty())
    req.query.emplace_back("fieldSelector", opts_.selectors.fieldSelector);
  auto r = client_->openStream(req);
  if (!r.ok()) return r.takeError();
  std::shared_ptr<net::BodyStream> body(std::move(r->body));
  std::lock_guard lock(mu_);
  if (closed_) {
    body->close();
    return closedError();
  }
  stream_ = std::move(body);
  ++stats_.watches;
  allowedBefore_ = true;
  forbiddenSince_.reset();
  splitter_.reset();
  return {};
}

// Queues the event; false when the stream must be dropped (expired, server error, garbage).
bool Watcher::handleEvent(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string())
    return false;
  const std::string type = j["type"].get<std::string>();
  json obj = j.contains("object") ? std::move(j["object"]) : json::object();
  if (type == "ERROR") {
    if (isExpiredStatus(obj)) {
      std::lock_guard lock(mu_);
      ++stats_.expired;
      needList_ = true;
    }
    return false;
  }
  WatchEvent ev;
  if (type == "ADDED")
    ev.type = WatchEvent::Type::Added;
  else if (type == "MODIFIED")
    ev.type = WatchEvent::Type::Modified;
  else if (type == "DELETED")
    ev.type = WatchEvent::Type::Deleted;
  else if (type == "BOOKMARK")
    ev.type = WatchEvent::Type::Bookmark;
  else
    return false;
  ev.resourceVersion = rvOf(obj);
  ev.object = std::move(obj);
  if (!ev.resourceVersion.empty()) {
    std::lock_guard lock(mu_);
    rv_ = ev.resourceVersion;
  }
  pending_.push_back(std::move(ev));
  return true;
}

Result<void> Watcher::readSome() {
  std::shared_ptr<net::BodyStream> s;
  {
    std::lock_guard lock(mu_);
    s = stream_;
  }
  if (!s) return {};
  auto piece = s->next(net::Clock::now() + opts_.serverTimeout + kReadSlack);
  if (!piece.ok()) {
    dropStream();
    if (closed()) return closedError();
    return piece.takeError();
  }
  if (!piece.value()) {  // the server ended this watch: resume from the last version
    dropStream();
    return {};
  }
  std::vector<std::string> objects;
  auto fed = splitter_.feed(*piece.value(), objects);
  for (const auto& o : objects) {
    if (!handleEvent(o)) {
      dropStream();
      return net::netError(net::kProtocol, "watch stream: ERROR event or unreadable event");
    }
  }
  if (!fed.ok()) {
    dropStream();
    return fed.takeError();
  }
  delay_ = std::chrono::milliseconds(0);  // the stream works: the next failure starts afresh
  return {};
}

Result<WatchEvent> Watcher::next() {
  for (;;) {
    if (closed()) return closedError();
    if (!pending_.empty()) {
      WatchEvent ev = std::move(pending_.front());
      pending_.pop_front();
      return ev;
    }
    if (needList_) {
      dropStream();
      auto l = listNow();
      if (l.ok()) return l;
      if (!transient(l.error()) && !authorizerWarmingUp(l.error())) return l.takeError();
      if (!backoff()) return closedError();
      continue;
    }
    bool haveStream = false;
    {
      std::lock_guard lock(mu_);
      haveStream = stream_ != nullptr;
    }
    if (!haveStream) {
      auto o = openWatch();
      if (o.ok()) continue;
      if (closed()) return closedError();
      if (o.error().code == ErrorCode::K8sResourceExpired) {
        std::lock_guard lock(mu_);
        ++stats_.expired;
        needList_ = true;
        continue;
      }
      if (!transient(o.error()) && !authorizerWarmingUp(o.error())) return o.takeError();
      if (!backoff()) return closedError();
      continue;
    }
    auto r = readSome();
    if (r.ok()) continue;
    if (closed()) return closedError();
    if (r.error().code == ErrorCode::PayloadTooLarge) return r.takeError();
    if (needList_) continue;  // an Expired ERROR event: relist right away
    // A cut stream or a server-side ERROR: reconnect from the last version, after a pause.
    if (!backoff()) return closedError();
  }
}

}  // namespace agentpane::k8s
