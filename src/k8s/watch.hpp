// A watch on one collection that survives disconnects, in the manner of client-go's
// Reflector (tools/cache): list, then watch from the list's resourceVersion; after a cut,
// watch again from the last resourceVersion seen (bookmarks included); when that version is
// too old (HTTP 410, or an ERROR event whose Status has code 410 / reason Expired), list
// again and go on from the new list's version.
//
// Contract:
// - next() MUST deliver every change of the collection once the watcher has synced: either
//   as an Added/Modified/Deleted event, or inside a Synced event (a full list that replaces
//   what the caller knew — after it, objects missing from it are gone).
// - Events are split by JSON object, not by chunk; an event larger than maxEventBytes fails
//   next() with PayloadTooLarge.
// - Transient failures (cluster unreachable, stream cut, timeouts, 5xx, 429) are retried with
//   a bounded exponential backoff, resuming from the last version; permanent ones (401 after
//   the client's retry, 403, 404, 422) are returned by next().
// - next() is called from one thread at a time and blocks; close() MAY be called from any
//   thread and makes a blocked or later next() return an error promptly (a connect or list in
//   progress ends within its own bound).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agentpane/result.hpp"
#include "k8s/rest_client.hpp"
#include "k8s/watch_splitter.hpp"

namespace agentpane::k8s {

struct WatchEvent {
  enum class Type { Added, Modified, Deleted, Bookmark, Synced };
  Type type = Type::Added;
  nlohmann::json object;        // the object (Bookmark: only its metadata.resourceVersion matters)
  nlohmann::json items;         // Synced only: every object of the collection (an array)
  std::string resourceVersion;  // the version this event brings the watcher to
};

struct WatchOptions {
  ListOptions selectors;        // labelSelector and fieldSelector; limit = relist page size
  std::string resourceVersion;  // where to start; empty: list first (a Synced event)
  std::chrono::seconds serverTimeout{300};  // timeoutSeconds asked of the apiserver per watch
  std::size_t maxEventBytes = 16u << 20;
  std::chrono::milliseconds minBackoff{100};
  std::chrono::milliseconds maxBackoff{5000};
};

class Watcher {
 public:
  Watcher(std::shared_ptr<RestClient> client, std::string collectionPath, WatchOptions options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  Result<WatchEvent> next();
  void close();

  // The last resourceVersion seen (list, event or bookmark).
  [[nodiscard]] std::string resourceVersion() const;

  struct Stats {
    std::uint64_t watches = 0;   // watch requests answered 200
    std::uint64_t lists = 0;     // full lists (the first one and every relist)
    std::uint64_t expired = 0;   // 410s / Expired ERROR events seen
    std::uint64_t failures = 0;  // transient failures retried
  };
  [[nodiscard]] Stats stats() const;

 private:
  enum class Step { Continue, Deliver, Fail };
  Result<WatchEvent> listNow();
  Result<void> openWatch();
  Result<void> readSome();                    // reads one piece of the stream and queues its events
  bool handleEvent(const std::string& text);  // false: the stream must be dropped
  void dropStream();
  bool backoff();  // false when closed while waiting
  bool closed() const;
  static bool transient(const Error& e);
  // A 403 for what this watch was allowed before, within a short grace: retried (see .cpp).
  bool authorizerWarmingUp(const Error& e);

  std::shared_ptr<RestClient> client_;
  std::string path_;
  WatchOptions opts_;
  JsonObjectSplitter splitter_;
  std::deque<WatchEvent> pending_;
  bool needList_;
  std::chrono::milliseconds delay_{0};
  bool allowedBefore_ = false;
  std::optional<std::chrono::steady_clock::time_point> forbiddenSince_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;                      // under mu_
  std::shared_ptr<net::BodyStream> stream_;  // under mu_ (close() closes it)
  std::string rv_;                           // under mu_
  Stats stats_;                              // under mu_
};

}  // namespace agentpane::k8s
