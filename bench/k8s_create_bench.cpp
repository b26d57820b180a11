// Cold create-to-first-exec on the test cluster, in one run, interleaved so that noise hits
// every client alike:
//   - ours: K8sProvider::create (namespace check, workspace, pod, Ready by watch) and one
//     exec of `true`, with the default workspace (a claim bound to a hostPath volume over the
//     project directory) and with an emptyDir workspace (the same objects kubectl makes);
//   - kubectl: `kubectl run` (a restricted pod) + `kubectl wait --for=condition=Ready` +
//     `kubectl exec … true`, three processes as a user would type them.
// Removal is not timed. Prints median/p95/min and ratios. See bench/README.md.
//
//   k8s_create_bench --kubeconfig F [--namespace NS] [--runs N] [--image I]
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"

#include "bench_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using bench_util::msSince;
using bench_util::spawnWait;
using bench_util::Stats;
using bench_util::summarize;
using namespace agentpane;

std::string randomId() {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 8; ++i)
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  return s;
}

// Create + first exec with the provider; removes the sandbox afterwards (untimed).
double oursOnce(k8s::K8sProvider& p, const std::string& dir, const std::string& image,
                const std::string& workspace, bool& ok) {
  SandboxSpec s;
  s.id = "bench-" + randomId();
  s.projectId = "bench";
  s.agentId = "bench";
  s.projectPath = dir;
  s.image = image;
  s.memoryMb = 256;
  s.cpu = 0.5;
  s.kubernetes.workspaceVolume = workspace;
  const auto t0 = Clock::now();
  auto made = p.create(s);
  double ms = 0;
  ok = made.ok();
  if (made.ok()) {
    ExecRequest req;
    req.argv = {"true"};
    auto r = p.exec(sandboxRef(*made), req);
    ok = r.ok() && r->exitCode == 0;
    ms = msSince(t0);
    (void)p.remove(sandboxRef(*made));
  } else {
    std::cerr << "create failed: " << made.error().describe() << "\n";
    (void)p.remove(SandboxRef{p.instance(), p.namespaceName(), "", "", s.id});
  }
  return ms;
}

double kubectlOnce(const std::string& kcfg, const std::string& ns, const std::string& image,
                   bool& ok) {
  const std::string name = "bench-kubectl-" + randomId();
  const std::string overrides =
      R"({"spec":{"automountServiceAccountToken":false,"terminationGracePeriodSeconds":0,)"
      R"("securityContext":{"runAsNonRoot":true,"runAsUser":1000,"runAsGroup":1000,)"
      R"("seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":")" +
      name + R"(","image":")" + image +
      R"(","imagePullPolicy":"Never","command":["sleep","infinity"],)"
      R"("resources":{"limits":{"cpu":"500m","memory":"256Mi"}},)"
      R"("securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}})";
  const auto t0 = Clock::now();
  ok = spawnWait({"kubectl", "--kubeconfig", kcfg, "-n", ns, "run", name, "--image", image,
                  "--restart", "Never", "--image-pull-policy", "Never", "--overrides", overrides},
                 nullptr) == 0 &&
       spawnWait({"kubectl", "--kubeconfig", kcfg, "-n", ns, "wait", "--for=condition=Ready",
                  "pod/" + name, "--timeout", "120s"},
                 nullptr) == 0 &&
       spawnWait({"kubectl", "--kubeconfig", kcfg, "-n", ns, "exec", name, "--", "true"},
                 nullptr) == 0;
  const double ms = msSince(t0);
  spawnWait({"kubectl", "--kubeconfig", kcfg, "-n", ns, "delete", "pod", name, "--wait=true",
             "--grace-period", "1"},
            nullptr);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kcfg, ns = "agentpane-sandboxes", image = "agentpane/sandbox:latest";
  int runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--kubeconfig")
      kcfg = argv[i + 1];
    else if (a == "--namespace")
      ns = argv[i + 1];
    else if (a == "--runs")
      runs = std::stoi(argv[i + 1]);
    else if (a == "--image")
      image = argv[i + 1];
  }
  if (kcfg.empty()) {
    std::cerr << "usage: k8s_create_bench --kubeconfig F [--namespace NS] [--runs N]\n";
    return 2;
  }
  k8s::LoadingRules rules;
  rules.explicitPath = kcfg;
  k8s::DeferredClientConfig deferred(rules);
  auto cfg = deferred.restConfig();
  if (!cfg.ok()) {
    std::cerr << cfg.error().describe() << "\n";
    return 1;
  }
  k8s::K8sProviderOptions o;
  o.rest = std::move(cfg).value();
  o.namespaceName = ns;
  o.imagePullPolicy = "Never";
  o.createNamespace = false;
  o.scopeLabels = {{"agentpane.io/bench", "create"}};
  auto provider = k8s::K8sProvider::create(std::move(o));
  if (!provider.ok()) {
    std::cerr << provider.error().describe() << "\n";
    return 1;
  }
  auto& p = **provider;
  const std::string dir =
      std::filesystem::temp_directory_path() / ("agentpane-bench-" + randomId());
  std::filesystem::create_directories(dir);
  if (::chown(dir.c_str(), 1000, 1000) != 0) std::cerr << "cannot chown " << dir << "\n";

  std::vector<double> pvc, emptyDir, kubectl;
  int failures = 0;
  // One warm-up of each (first watch, first TLS session, kubectl's discovery cache).
  bool ok = false;
  oursOnce(p, dir, image, "pvc", ok);
  oursOnce(p, dir, image, "emptyDir", ok);
  kubectlOnce(kcfg, ns, image, ok);
  for (int i = 0; i < runs; ++i) {
    double ms = oursOnce(p, dir, image, "pvc", ok);
    ok ? pvc.push_back(ms) : (void)++failures;
    ms = oursOnce(p, dir, image, "emptyDir", ok);
    ok ? emptyDir.push_back(ms) : (void)++failures;
    ms = kubectlOnce(kcfg, ns, image, ok);
    ok ? kubectl.push_back(ms) : (void)++failures;
    std::fprintf(stderr, "\rrun %d/%d", i + 1, runs);
  }
  std::fprintf(stderr, "\n");
  std::filesystem::remove_all(dir);

  std::vector<Stats> rows = {summarize("agentpane, claim + hostPath PV workspace", pvc),
                             summarize("agentpane, emptyDir workspace", emptyDir),
                             summarize("kubectl run + wait + exec", kubectl)};
  const double base = rows[2].median;
  std::printf("| %-40s | %4s | %9s | %7s | %7s | %14s |\n", "cold create to first exec", "runs",
              "median ms", "p95 ms", "min ms", "median/kubectl");
  std::printf("|%s|-----:|----------:|--------:|--------:|---------------:|\n",
              std::string(42, '-').c_str());
  for (const auto& r : rows) {
    std::printf("| %-40s | %4zu | %9.1f | %7.1f | %7.1f | %13.2fx |\n", r.name.c_str(), r.runs,
                r.median, r.p95, r.min, base > 0 ? r.median / base : 0.0);
  }
  if (failures > 0) std::printf("failures: %d\n", failures);
  return failures == 0 ? 0 : 1;
}
