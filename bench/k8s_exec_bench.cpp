// Kubernetes exec round-trip of `true` and a warm GET of one pod, against one pod of the
// test cluster, in one run: ours (k8s::openExec over WebSocket), `kubectl exec` (a process
// per call, the cluster's own kubectl) and @kubernetes/client-node (Node, in process).
// Prints median/p95 and ratios. See bench/README.md and bench/run-k8s-bench.sh.
//
//   k8s_exec_bench --kubeconfig F --namespace NS --pod P [--container C] [--runs N]
//                  [--warmup N] [--client-node bench/k8s_bench_client_node.mjs]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "k8s/exec_session.hpp"
#include "k8s/kubeconfig_loader.hpp"

#if __has_include("k8s/rest_client.hpp")
#include "k8s/rest_client.hpp"
#define AP_HAVE_REST_CLIENT 1
#endif

extern char** environ;

#include "bench_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;

using bench_util::msSince;
using bench_util::spawnWait;
using bench_util::Stats;
using bench_util::summarize;

void printTable(const std::string& title, const std::vector<Stats>& rows) {
  std::printf("\n%s\n", title.c_str());
  std::printf("| %-34s | %5s | %9s | %7s | %7s | %12s |\n", "client", "runs", "median ms", "p95 ms",
              "min ms", "median/ours");
  std::printf("|%s|------:|----------:|--------:|--------:|-------------:|\n",
              std::string(36, '-').c_str());
  for (const auto& r : rows) {
    std::printf("| %-34s | %5zu | %9.1f | %7.1f | %7.1f | %11.2fx |\n", r.name.c_str(), r.runs,
                r.median, r.p95, r.min,
                rows.front().median > 0 ? r.median / rows.front().median : 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string kubeconfig, ns, pod, container = "main";
  std::string clientNode = "bench/k8s_bench_client_node.mjs";
  int runs = 200;
  int warmup = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--kubeconfig")
      kubeconfig = next();
    else if (a == "--namespace")
      ns = next();
    else if (a == "--pod")
      pod = next();
    else if (a == "--container")
      container = next();
    else if (a == "--runs")
      runs = std::stoi(next());
    else if (a == "--warmup")
      warmup = std::stoi(next());
    else if (a == "--client-node")
      clientNode = next();
    else {
      std::cerr << "usage: k8s_exec_bench --kubeconfig F --namespace NS --pod P [--container C] "
                   "[--runs N] [--warmup N] [--client-node SCRIPT]\n";
      return 2;
    }
  }
  if (kubeconfig.empty() || ns.empty() || pod.empty()) {
    std::cerr << "error: --kubeconfig, --namespace and --pod are required\n";
    return 2;
  }

  agentpane::k8s::LoadingRules rules;
  rules.explicitPath = kubeconfig;
  agentpane::k8s::DeferredClientConfig deferred(rules);
  auto cfg = deferred.restConfig();
  if (!cfg.ok()) {
    std::cerr << "error: " << cfg.error().describe() << "\n";
    return 1;
  }
  auto io = agentpane::net::IoThread::create(1);
  agentpane::k8s::ExecSpec spec;
  spec.namespaceName = ns;
  spec.pod = pod;
  spec.container = container;
  spec.argv = {"true"};
  agentpane::ExecRequest req;
  req.argv = spec.argv;

  // 1. Ours: open (connect, TLS, upgrade) then read to the close handshake and the status.
  std::vector<double> ours, oursOpen, oursStream;
  for (int i = 0; i < warmup + runs; ++i) {
    auto t0 = Clock::now();
    auto s = agentpane::k8s::openExec(io, cfg.value(), spec);
    if (!s.ok()) {
      std::cerr << "error: ours: " << s.error().describe() << "\n";
      return 1;
    }
    const double opened = msSince(t0);
    auto r = agentpane::runToCompletion(*s.value(), req);
    const double total = msSince(t0);
    if (!r.ok() || r->exitCode != 0) {
      std::cerr << "error: ours: "
                << (r.ok() ? "exit " + std::to_string(r->exitCode) : r.error().describe()) << "\n";
      return 1;
    }
    if (i >= warmup) {
      ours.push_back(total);
      oursOpen.push_back(opened);
      oursStream.push_back(total - opened);
    }
  }

  // 2. kubectl exec, a process per call.
  std::vector<double> kubectl;
  const std::vector<std::string> kargv = {
      "kubectl", "--kubeconfig", kubeconfig, "-n", ns, "exec", pod, "-c", container, "--", "true"};
  for (int i = 0; i < warmup + runs; ++i) {
    auto t0 = Clock::now();
    int rc = spawnWait(kargv, nullptr);
    double ms = msSince(t0);
    if (rc != 0) {
      std::cerr << "error: kubectl exec exited " << rc << "\n";
      return 1;
    }
    if (i >= warmup) kubectl.push_back(ms);
  }

  // 3. @kubernetes/client-node: exec, then GET, timed inside Node.
  std::string out;
  int rc = spawnWait({"node", clientNode, kubeconfig, ns, pod, container, std::to_string(runs),
                      std::to_string(warmup)},
                     &out);
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (rc != 0 || !doc.is_object()) {
    std::cerr << "error: client-node bench failed (exit " << rc << ")\n";
    return 1;
  }
  auto nodeExec = doc["exec"].get<std::vector<double>>();
  auto nodeGet = doc["get"].get<std::vector<double>>();

  // 4. Ours: GET of the pod over a warm client.
  std::vector<double> oursGet;
#ifdef AP_HAVE_REST_CLIENT
  {
    auto client = agentpane::k8s::RestClient::create(cfg.value());
    if (!client.ok()) {
      std::cerr << "error: RestClient: " << client.error().describe() << "\n";
      return 1;
    }
    const std::string path = "/api/v1/namespaces/" + ns + "/pods/" + pod;
    for (int i = 0; i < warmup + runs; ++i) {
      auto t0 = Clock::now();
      auto got = client.value()->get(path);
      double ms = msSince(t0);
      if (!got.ok()) {
        std::cerr << "error: ours GET: " << got.error().describe() << "\n";
        return 1;
      }
      if (i >= warmup) oursGet.push_back(ms);
    }
  }
#endif

  std::vector<Stats> execRows = {summarize("agentpane k8s::openExec", ours),
                                 summarize("kubectl exec", kubectl),
                                 summarize("@kubernetes/client-node Exec", nodeExec)};
  printTable("exec `true` (" + std::to_string(runs) + " runs each after " + std::to_string(warmup) +
                 " warm-up)",
             execRows);
  auto open = summarize("", oursOpen);
  auto stream = summarize("", oursStream);
  std::printf(
      "\nours, split: open (connect + TLS + upgrade) median %.1f ms, p95 %.1f; "
      "stream to status + close median %.1f ms, p95 %.1f\n",
      open.median, open.p95, stream.median, stream.p95);
  std::vector<Stats> getRows;
  if (!oursGet.empty()) {
    getRows.push_back(summarize("agentpane k8s::RestClient::get", oursGet));
  } else {
    std::printf("\n(ours GET not measured: k8s::RestClient is not in this tree)\n");
    getRows.push_back(summarize("(ours: not measured)", {}));
  }
  getRows.push_back(summarize("@kubernetes/client-node readNamespacedPod", nodeGet));
  printTable("GET one pod over a warm client", getRows);

  std::printf(
      "\nratios: kubectl/ours %.2fx (target >= 2), client-node/ours exec %.2fx (target >= 1)",
      execRows[1].median / execRows[0].median, execRows[2].median / execRows[0].median);
  if (!oursGet.empty()) {
    std::printf(", client-node/ours GET %.2fx (target >= 1)",
                getRows[1].median / getRows[0].median);
  }
  std::printf("\n");
  return 0;
}
