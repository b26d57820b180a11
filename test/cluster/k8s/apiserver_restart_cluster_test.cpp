// The apiserver of the test cluster is stopped for a few seconds and started again
// (scripts/test-cluster restart kube-apiserver --down N) while a watch runs:
// - while it is down, calls fail with K8S_CLUSTER_UNREACHABLE (the call deadline is a minute:
//   only the client's connect bound can make it that code rather than a Timeout);
// - once it is back, the same warm client works again;
// - the watch resumes (or relists) and misses no change: the store built from its events
//   equals the apiserver's list at the end, including changes made after the restart.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "cluster/cluster_clients.hpp"
#include "cluster/cluster_script.hpp"
#include "k8s/kubeconfig.hpp"
#include "k8s/rest_client.hpp"
#include "k8s/watch.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kNs = "agentpane-sandboxes";
const std::string kLabel = "agentpane-restart-test";

std::string runId() {
  static const std::string id = "w" + std::to_string(::getpid());
  return id;
}

using agentpane::testing::runScript;
using agentpane::testing::testClusterScript;

std::shared_ptr<RestClient> saClient(std::chrono::milliseconds timeout) {
  ResolveOptions ro;
  ro.timeout = timeout;
  return testing::clientFromEnv("AGENTPANE_TEST_SA_KUBECONFIG", ro);
}

json configMap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", kNs}, {"labels", {{kLabel, runId()}}}}},
          {"data", {{"k", value}}}};
}

// What the watch says the collection is: name -> resourceVersion.
class Store {
 public:
  void apply(const WatchEvent& ev) {
    std::lock_guard lock(mu_);
    auto name = [](const json& o) { return o["metadata"]["name"].get<std::string>(); };
    switch (ev.type) {
      case WatchEvent::Type::Synced:
        objects_.clear();
        for (const auto& o : ev.items)
          objects_[name(o)] = o["metadata"]["resourceVersion"];
        break;
      case WatchEvent::Type::Added:
      case WatchEvent::Type::Modified:
        objects_[name(ev.object)] = ev.resourceVersion;
        break;
      case WatchEvent::Type::Deleted:
        objects_.erase(name(ev.object));
        break;
      case WatchEvent::Type::Bookmark:
        break;
    }
    cv_.notify_all();
  }
  bool waitFor(const std::map<std::string, std::string>& want, std::chrono::seconds within) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, within, [&] { return objects_ == want; });
  }
  std::map<std::string, std::string> snapshot() {
    std::lock_guard lock(mu_);
    return objects_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> objects_;
};

std::map<std::string, std::string> listed(RestClient& c) {
  ListOptions lo;
  lo.labelSelector = kLabel + "=" + runId();
  auto l = c.listAll(resourcePath("v1", "configmaps", kNs), lo);
  std::map<std::string, std::string> out;
  EXPECT_TRUE(l.ok()) << l.error().describe();
  if (!l.ok()) return out;
  for (const auto& o : (*l)["items"])
    out[o["metadata"]["name"]] = o["metadata"]["resourceVersion"];
  return out;
}

TEST(ApiserverRestart, UnreachableWhileDownThenRecoversAndTheWatchMissesNothing) {
  const std::string script = testClusterScript();
  ASSERT_FALSE(script.empty()) << "scripts/test-cluster not found above the test binary";
  auto client = saClient(60s);
  ASSERT_TRUE(client);
  const std::string coll = resourcePath("v1", "configmaps", kNs);
  auto cmPath = [&](const std::string& n) { return resourcePath("v1", "configmaps", kNs, n); };
  const std::string a = "a-" + runId(), b = "b-" + runId(), c = "c-" + runId();

  ASSERT_TRUE(client->apply(cmPath(a), configMap(a, "1")).ok());

  WatchOptions wo;
  wo.selectors.labelSelector = kLabel + "=" + runId();
  wo.maxBackoff = 1000ms;
  Watcher watcher(client, coll, wo);
  Store store;
  std::thread consumer([&] {
    for (;;) {
      auto ev = watcher.next();
      if (!ev.ok()) return;
      store.apply(ev.value());
    }
  });
  ASSERT_TRUE(store.waitFor(listed(*client), 60s)) << "initial sync";
  ASSERT_TRUE(client->apply(cmPath(b), configMap(b, "1")).ok());
  ASSERT_TRUE(store.waitFor(listed(*client), 60s)) << "event before the restart";
  const auto watchesBefore = watcher.stats().watches;

  // Cut: the apiserver goes away for 5 s, then comes back.
  int restartStatus = -1;
  std::atomic<bool> restartDone{false};
  std::thread restart([&] {
    restartStatus = runScript({script, "restart", "kube-apiserver", "--down", "5"});
    restartDone = true;
  });
  // While it is down: K8S_CLUSTER_UNREACHABLE, never a Timeout of the minute-long deadline.
  // (While it shuts down it may still answer, or answer 5xx: those are not the check.)
  bool sawUnreachable = false;
  while (!sawUnreachable && !restartDone) {
    auto r = client->get(resourcePath("v1", "namespaces", "", kNs));
    if (!r.ok()) {
      EXPECT_NE(r.error().code, ErrorCode::Timeout) << r.error().describe();
      sawUnreachable = r.error().code == ErrorCode::K8sUnreachable;
    }
    if (!sawUnreachable) std::this_thread::sleep_for(100ms);  // polling the real cluster
  }
  restart.join();
  ASSERT_EQ(restartStatus, 0) << "scripts/test-cluster restart kube-apiserver failed";
  EXPECT_TRUE(sawUnreachable);

  // Back: the same warm client works on its first call.
  auto back = client->get(resourcePath("v1", "namespaces", "", kNs));
  ASSERT_TRUE(back.ok()) << back.error().describe();

  // Changes after the cut: an update, a new object, a deletion.
  ASSERT_TRUE(client->apply(cmPath(a), configMap(a, "2")).ok());
  ASSERT_TRUE(client->apply(cmPath(c), configMap(c, "1")).ok());
  DeleteOptions del;
  del.gracePeriodSeconds = 0;
  ASSERT_TRUE(client->remove(cmPath(b), del).ok());
  auto want = listed(*client);
  ASSERT_EQ(want.size(), 2u);
  const bool converged = store.waitFor(want, 90s);
  auto got = store.snapshot();
  watcher.close();
  consumer.join();
  EXPECT_TRUE(converged) << "the watch's store differs from the apiserver's list";
  EXPECT_EQ(got, want);
  auto st = watcher.stats();
  EXPECT_GT(st.watches, watchesBefore) << "the watch was not re-established";
  EXPECT_GE(st.failures, 1u) << "the watch never saw the cut";

  for (const auto& n : {a, b, c})
    (void)client->remove(cmPath(n), del);
}

}  // namespace
}  // namespace agentpane::k8s
