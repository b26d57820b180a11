// The Pod Security agreement table: every pod of test/cluster/data/pod-security/pods.yaml is
// judged by our validator (k8s/pod_security.hpp) and by the test cluster's own PodSecurity
// admission — a dryRun=All create, as the least-privilege ServiceAccount, into the two
// namespaces scripts/cluster/rbac.yaml makes for it, enforcing `baseline` and `restricted`
// (the only place the ServiceAccount may create pods outside its own namespace) — and every
// row must agree: the verdict, upstream's list of reasons and the whole refusal text. The
// table is printed. A dry run leaves nothing behind.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "cluster/cluster_clients.hpp"
#include "k8s/kubeconfig.hpp"
#include "k8s/pod_security.hpp"
#include "k8s/rest_client.hpp"
#include "k8s/watch.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;

// What the apiserver said of one pod at one level.
struct Theirs {
  bool allowed = false;
  std::string summary;  // the refusal's "reason (detail), …" part
  std::string error;    // anything but an admission or a PodSecurity refusal
};

// Upstream's aggregate "reason (detail), reason (detail)" split back into its reasons.
std::vector<std::string> reasonsOf(const std::string& summary) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  bool inReason = true;
  for (std::size_t i = 0; i < summary.size(); ++i) {
    const char ch = summary[i];
    if (ch == '(') {
      if (depth++ == 0) inReason = false;
      continue;
    }
    if (ch == ')') {
      --depth;
      continue;
    }
    if (depth > 0) continue;
    if (ch == ',' && i + 1 < summary.size() && summary[i + 1] == ' ') {
      out.push_back(cur);
      cur.clear();
      inReason = true;
      ++i;
      continue;
    }
    if (inReason) cur += ch;
  }
  if (!cur.empty()) out.push_back(cur);
  for (auto& r : out)
    while (!r.empty() && r.back() == ' ')
      r.pop_back();
  return out;
}

class PodSecurityAgreement : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = testing::clientFromEnv();
    ASSERT_TRUE(client_);
    for (auto level : {pss::Level::Baseline, pss::Level::Restricted})
      namespaces_[level] = "agentpane-pss-" + std::string(pss::levelName(level));
    // The ServiceAccount admission refuses pods in a namespace until the controller has made
    // its "default" ServiceAccount: wait for it (watched, not polled).
    for (const auto& [level, ns] : namespaces_)
      ASSERT_NO_FATAL_FAILURE(waitForDefaultServiceAccount(ns));
  }

  void waitForDefaultServiceAccount(const std::string& ns) {
    WatchOptions wo;
    wo.selectors.fieldSelector = "metadata.name=default";
    Watcher w(client_, resourcePath("v1", "serviceaccounts", ns), wo);
    // A bound on the whole wait: close() makes a blocked next() return.
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread guard([&] {
      std::unique_lock lk(mu);
      if (!cv.wait_for(lk, std::chrono::seconds(60), [&] { return done; })) w.close();
    });
    bool seen = false;
    while (!seen) {
      auto ev = w.next();
      if (!ev.ok()) {
        ADD_FAILURE() << "waiting for " << ns << "/default: " << ev.error().describe();
        break;
      }
      if (ev->type == WatchEvent::Type::Synced) seen = !ev->items.empty();
      if (ev->type == WatchEvent::Type::Added) seen = true;
    }
    {
      std::lock_guard lk(mu);
      done = true;
    }
    cv.notify_all();
    guard.join();
  }

  Theirs askApiserver(json pod, pss::Level level) {
    const std::string& ns = namespaces_.at(level);
    pod["metadata"]["namespace"] = ns;
    WriteOptions dry;
    dry.dryRun = true;
    auto r = client_->create(resourcePath("v1", "pods", ns), pod, dry);
    Theirs t;
    if (r.ok()) {
      t.allowed = true;
      return t;
    }
    const std::string marker = "violates PodSecurity \"";
    const std::string& m = r.error().message;
    const auto at = m.find(marker);
    const auto colon = at == std::string::npos ? at : m.find("\": ", at + marker.size());
    if (r.error().code != ErrorCode::K8sPodSecurityViolation || colon == std::string::npos) {
      t.error = r.error().describe();
      return t;
    }
    t.summary = m.substr(colon + 3);
    return t;
  }

  std::shared_ptr<RestClient> client_;
  std::map<pss::Level, std::string> namespaces_;
};

std::vector<json> loadPods() {
  std::ifstream in(std::string(AP_SOURCE_DIR) + "/test/cluster/data/pod-security/pods.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  auto docs = pss::parseDocuments(ss.str());
  if (!docs.ok()) {
    ADD_FAILURE() << docs.error().describe();
    return {};
  }
  return docs.value();
}

TEST_F(PodSecurityAgreement, ValidatorAgreesWithPodSecurityAdmissionOnEveryRow) {
  const auto pods = loadPods();
  ASSERT_GE(pods.size(), 40u) << "the table needs at least 40 pod specs";
  std::set<std::string> names;
  struct Row {
    std::string name;
    std::map<pss::Level, std::pair<pss::Verdict, Theirs>> cells;
    bool agree = true;
  };
  std::vector<Row> rows;
  std::map<pss::Level, int> allowed, refused;
  std::set<std::string> checksSeen;
  for (const auto& pod : pods) {
    Row row;
    row.name = pod["metadata"]["name"].get<std::string>();
    EXPECT_TRUE(names.insert(row.name).second) << "duplicate row " << row.name;
    for (auto level : {pss::Level::Baseline, pss::Level::Restricted}) {
      pss::Verdict ours = pss::checkPod(pod, level);
      Theirs theirs = askApiserver(pod, level);
      const std::string where = row.name + " at " + std::string(pss::levelName(level));
      EXPECT_TRUE(theirs.error.empty())
          << where << ": the apiserver did not judge it: " << theirs.error;
      EXPECT_EQ(ours.allowed(), theirs.allowed) << where << ": ours " << ours.summary();
      EXPECT_EQ(ours.reasons(), reasonsOf(theirs.summary)) << where;
      EXPECT_EQ(ours.summary(), theirs.summary) << where;
      row.agree = row.agree && theirs.error.empty() && ours.allowed() == theirs.allowed &&
                  ours.summary() == theirs.summary;
      (ours.allowed() ? allowed : refused)[level]++;
      for (const auto& f : ours.failures)
        checksSeen.insert(f.check);
      row.cells.emplace(level, std::make_pair(std::move(ours), std::move(theirs)));
    }
    rows.push_back(std::move(row));
  }

  // The table.
  auto verdict = [](bool ok) { return ok ? "allow" : "REFUSE"; };
  std::printf("\n%-3s %-40s %-16s %-16s %-5s %s\n", "#", "pod", "baseline ours/k8s",
              "restricted ours/k8s", "agree", "reasons at restricted (ours)");
  int agreeing = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const auto& b = r.cells.at(pss::Level::Baseline);
    const auto& s = r.cells.at(pss::Level::Restricted);
    std::string reasons;
    for (const auto& x : s.first.reasons())
      reasons += (reasons.empty() ? "" : "; ") + x;
    std::printf("%-3zu %-40s %-6s/%-9s %-6s/%-12s %-5s %s\n", i + 1, r.name.c_str(),
                verdict(b.first.allowed()), verdict(b.second.allowed), verdict(s.first.allowed()),
                verdict(s.second.allowed), r.agree ? "yes" : "NO", reasons.c_str());
    agreeing += r.agree ? 1 : 0;
  }
  std::printf(
      "%d of %zu rows agree (baseline: %d allowed, %d refused; restricted: %d allowed, "
      "%d refused)\n\n",
      agreeing, rows.size(), allowed[pss::Level::Baseline], refused[pss::Level::Baseline],
      allowed[pss::Level::Restricted], refused[pss::Level::Restricted]);
  EXPECT_EQ(agreeing, static_cast<int>(rows.size()));

  // The table exercises both outcomes at both levels and every check this apiserver can show.
  for (auto level : {pss::Level::Baseline, pss::Level::Restricted}) {
    EXPECT_GT(allowed[level], 0);
    EXPECT_GT(refused[level], 0);
  }
  for (const char* check :
       {"appArmorProfile", "capabilities_baseline", "hostNamespaces", "hostPathVolumes",
        "hostPorts", "privileged", "seLinuxOptions", "seccompProfile_baseline", "sysctls",
        "allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot",
        "runAsUser", "seccompProfile_restricted"})
    EXPECT_TRUE(checksSeen.count(check)) << "no row fails " << check;
}

TEST(PodSecurityReasons, SplitsUpstreamsAggregate) {
  EXPECT_EQ(reasonsOf("host namespaces (hostNetwork=true), hostPort (container \"a\" uses "
                      "hostPorts 80, 81), runAsUser=0 (pod must not set runAsUser=0)"),
            (std::vector<std::string>{"host namespaces", "hostPort", "runAsUser=0"}));
  EXPECT_TRUE(reasonsOf("").empty());
}

}  // namespace
}  // namespace agentpane::k8s
