// The Watcher against a scripted apiserver: list then watch from the list's version, events
// split across chunks, bookmarks moving the version, resuming after the server ends a watch,
// relisting on an Expired ERROR event and on a 410 answer, retrying a 5xx, close() from
// another thread.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <thread>

#include "k8s/watch.hpp"
#include "unit/k8s/fake_apiserver.hpp"
#include "unit/k8s/test_support.hpp"

namespace agentpane::k8s {
namespace {

using agentpane::testing::FakeApiServer;
using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using nlohmann::json;
using testing::clientFor;
using testing::ScriptedTokens;
using Type = WatchEvent::Type;

std::map<std::string, std::string> queryOf(const std::string& target) {
  std::map<std::string, std::string> q;
  auto qm = target.find('?');
  if (qm == std::string::npos) return q;
  std::string rest = target.substr(qm + 1) + "&";
  std::size_t pos = 0;
  for (auto amp = rest.find('&'); amp != std::string::npos; amp = rest.find('&', pos)) {
    std::string kv = rest.substr(pos, amp - pos);
    auto eq = kv.find('=');
    if (eq != std::string::npos) q[kv.substr(0, eq)] = kv.substr(eq + 1);
    pos = amp + 1;
  }
  return q;
}

json cm(const std::string& name, const std::string& rv) {
  return {{"kind", "ConfigMap"}, {"metadata", {{"name", name}, {"resourceVersion", rv}}}};
}
std::string event(const std::string& type, const json& obj) {
  return json{{"type", type}, {"object", obj}}.dump() + "\n";
}
std::string listBody(const std::string& rv, const std::vector<json>& items) {
  return json{{"kind", "ConfigMapList"}, {"metadata", {{"resourceVersion", rv}}}, {"items", items}}
      .dump();
}

void startChunked(FakeConn& c) {
  c.write(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
}
void chunk(FakeConn& c, const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  c.write(size + data + "\r\n");
}
void endChunked(FakeConn& c) {
  c.write("0\r\n\r\n");
}
// Holds a watch open until the client goes away.
void holdUntilClientCloses(FakeConn& c) {
  while (!c.readSome().empty()) {
  }
}

WatchOptions fastOptions() {
  WatchOptions o;
  o.selectors.labelSelector = "app=t";
  o.minBackoff = std::chrono::milliseconds(1);
  o.maxBackoff = std::chrono::milliseconds(5);
  return o;
}

TEST(Watcher, ListsWatchesResumesFromBookmarksAndRelistsWhenExpired) {
  std::atomic<int> n{0};
  FakeApiServer server([&](const FakeRequest&, FakeConn& c) {
    switch (n++) {
      case 0:  // the first list
        c.write(FakeHttpServer::response(200, listBody("10", {cm("a", "5")})));
        return true;
      case 1: {  // watch from 10: an event cut in three chunks, a bookmark; then the end
        startChunked(c);
        std::string added = event("ADDED", cm("b", "11"));
        chunk(c, added.substr(0, 7));
        chunk(c, added.substr(7, 20));
        chunk(c, added.substr(27) + event("BOOKMARK", {{"kind", "ConfigMap"},
                                                       {"metadata", {{"resourceVersion", "15"}}}})
                                        .substr(0, 10));
        chunk(c,
              event("BOOKMARK", {{"kind", "ConfigMap"}, {"metadata", {{"resourceVersion", "15"}}}})
                  .substr(10));
        endChunked(c);
        return false;
      }
      case 2:  // resumed from the bookmark's 15: a change, then "too old"
        startChunked(c);
        chunk(c, event("MODIFIED", cm("b", "16")) +
                     event("ERROR", {{"kind", "Status"},
                                     {"code", 410},
                                     {"reason", "Expired"},
                                     {"message", "too old resource version: 16 (18)"}}));
        endChunked(c);
        return false;
      case 3:  // relist
        c.write(FakeHttpServer::response(200, listBody("20", {cm("b", "16"), cm("c", "19")})));
        return true;
      case 4:  // watch from 20 refused as expired
        c.write(FakeHttpServer::response(
            410, json{{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}, {"message", "gone"}}
                     .dump()));
        return true;
      case 5:
        c.write(FakeHttpServer::response(200, listBody("21", {cm("b", "16"), cm("c", "19")})));
        return true;
      default:  // watch from 21: one deletion, then silence until closed
        startChunked(c);
        chunk(c, event("DELETED", cm("b", "22")));
        holdUntilClientCloses(c);
        return false;
    }
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  Watcher w(client, "/api/v1/namespaces/ns/configmaps", fastOptions());

  struct Want {
    Type type;
    std::string rv;
    std::string name;
  };
  const std::vector<Want> want = {{Type::Synced, "10", ""},   {Type::Added, "11", "b"},
                                  {Type::Bookmark, "15", ""}, {Type::Modified, "16", "b"},
                                  {Type::Synced, "20", ""},   {Type::Synced, "21", ""},
                                  {Type::Deleted, "22", "b"}};
  for (const auto& wv : want) {
    auto ev = w.next();
    ASSERT_TRUE(ev.ok()) << ev.error().describe();
    EXPECT_EQ(ev->type, wv.type) << wv.rv;
    EXPECT_EQ(ev->resourceVersion, wv.rv);
    if (!wv.name.empty()) {
      EXPECT_EQ(ev->object["metadata"]["name"], wv.name);
    }
    if (wv.type == Type::Synced && wv.rv == "20") {
      EXPECT_EQ(ev->items.size(), 2u);
    }
    EXPECT_EQ(w.resourceVersion(), wv.rv);
  }

  // next() is blocked on the held-open watch: close() from another thread ends it.
  auto blocked = std::async(std::launch::async, [&] { return w.next(); });
  server.waitForRequests(7);
  w.close();
  auto last = blocked.get();
  ASSERT_FALSE(last.ok());

  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 7u);
  std::vector<std::string> watchRvs;
  for (const auto& r : seen) {
    auto q = queryOf(r.target);
    EXPECT_EQ(q["labelSelector"], "app%3Dt") << r.target;
    if (q.count("watch")) {
      EXPECT_EQ(q["watch"], "1");
      EXPECT_EQ(q["allowWatchBookmarks"], "true");
      watchRvs.push_back(q["resourceVersion"]);
    } else {
      EXPECT_EQ(q.count("resourceVersion"), 0u) << "a relist reads the newest state";
    }
  }
  EXPECT_EQ(watchRvs, (std::vector<std::string>{"10", "15", "20", "21"}));
  auto st = w.stats();
  EXPECT_EQ(st.lists, 3u);
  EXPECT_EQ(st.expired, 2u);
  EXPECT_EQ(st.watches, 3u);
}

TEST(Watcher, StartsFromAGivenVersionAndRetriesServerErrors) {
  std::atomic<int> n{0};
  FakeApiServer server([&](const FakeRequest&, FakeConn& c) {
    switch (n++) {
      case 0:
        c.write(FakeHttpServer::response(
            503, json{{"kind", "Status"}, {"code", 503}, {"message", "starting"}}.dump()));
        return true;
      case 1:
        c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        return false;  // cut before any event
      default:
        startChunked(c);
        chunk(c, event("ADDED", cm("x", "8")));
        holdUntilClientCloses(c);
        return false;
    }
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  WatchOptions o = fastOptions();
  o.resourceVersion = "7";
  Watcher w(client, "/api/v1/namespaces/ns/configmaps", o);
  auto ev = w.next();
  ASSERT_TRUE(ev.ok()) << ev.error().describe();
  EXPECT_EQ(ev->type, Type::Added);
  EXPECT_EQ(ev->resourceVersion, "8");
  w.close();
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& r : seen)
    EXPECT_EQ(queryOf(r.target)["resourceVersion"], "7");
  EXPECT_EQ(w.stats().lists, 0u);
  EXPECT_EQ(w.stats().failures, 2u);
}

// After an apiserver restart its authorizer may refuse for a moment what it allowed just
// before: a watch that was allowed retries a 403 (briefly), and goes on from its version.
TEST(Watcher, AForbiddenRightAfterAnAllowedWatchIsRetried) {
  std::atomic<int> n{0};
  FakeApiServer server([&](const FakeRequest&, FakeConn& c) {
    const int i = n++;
    if (i == 0) {  // allowed: one event, then the stream ends (the apiserver went away)
      startChunked(c);
      chunk(c, event("ADDED", cm("a", "8")));
      endChunked(c);
      return true;
    }
    if (i <= 2) {  // back, but its authorizer is not ready yet
      c.write(FakeHttpServer::response(
          403, json{{"kind", "Status"}, {"code", 403}, {"message", "cannot watch"}}.dump()));
      return true;
    }
    startChunked(c);
    chunk(c, event("ADDED", cm("b", "9")));
    holdUntilClientCloses(c);
    return false;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  WatchOptions o = fastOptions();
  o.resourceVersion = "7";
  Watcher w(client, "/api/v1/namespaces/ns/configmaps", o);
  auto first = w.next();
  ASSERT_TRUE(first.ok()) << first.error().describe();
  auto second = w.next();
  ASSERT_TRUE(second.ok()) << second.error().describe();
  EXPECT_EQ(second->resourceVersion, "9");
  w.close();
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(queryOf(seen[3].target)["resourceVersion"], "8");
}

TEST(Watcher, PermanentErrorsAndOversizedEventsAreReturned) {
  FakeApiServer server([&](const FakeRequest& r, FakeConn& c) {
    if (r.target.find("/forbidden") != std::string::npos) {
      c.write(FakeHttpServer::response(
          403, json{{"kind", "Status"}, {"code", 403}, {"message", "no list for you"}}.dump()));
      return true;
    }
    startChunked(c);
    chunk(c, event("ADDED", {{"metadata", {{"name", std::string(4096, 'n')}}}}));
    holdUntilClientCloses(c);
    return false;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  Watcher denied(client, "/forbidden", fastOptions());
  auto e = denied.next();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, ErrorCode::K8sForbidden);
  EXPECT_EQ(e.error().message, "no list for you");

  WatchOptions o = fastOptions();
  o.resourceVersion = "1";
  o.maxEventBytes = 1024;
  Watcher big(client, "/big", o);
  auto b = big.next();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::PayloadTooLarge);
}

TEST(Watcher, CloseStopsARetryLoopAgainstADeadServer) {
  unsigned short port = 0;
  {
    FakeApiServer gone([](const FakeRequest&, FakeConn&) { return false; });
    port = gone.port();
  }
  auto client = clientFor(port, std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  WatchOptions o = fastOptions();
  o.minBackoff = std::chrono::milliseconds(50);
  o.maxBackoff = std::chrono::milliseconds(50);
  Watcher w(client, "/api/v1/namespaces/ns/configmaps", o);
  auto blocked = std::async(std::launch::async, [&] { return w.next(); });
  // Wait (on the watcher's own counter) until it has failed and is retrying.
  while (w.stats().failures < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  w.close();
  auto r = blocked.get();
  ASSERT_FALSE(r.ok());
}

}  // namespace
}  // namespace agentpane::k8s
