// Exec round-trip of `true` through the in-sandbox agent channel (issue 11), against every
// other client of the same sandbox, on both providers in one run, interleaved in blocks so
// that machine noise hits every path alike.
//
// Docker sandbox (--docker ID):
//   - API POST /api/sandboxes/:id/exec over one kept-alive connection (the server's channel)
//   - the channel in process (ChannelProvider over the Docker provider, no HTTP)
//   - the Docker provider's native exec in process (create + start + inspect)
//   - `docker exec <container> true`, one CLI process per run
//   - dockerode (bench/exec_bench_dockerode.js --serve, one Node process for the whole run)
// Kubernetes sandbox (--k8s ID, made through the server on the test cluster):
//   - API POST /api/sandboxes/:id/exec over the same kept-alive connection
//   - the channel in process (ChannelProvider over the Kubernetes provider)
//   - the Kubernetes provider's native exec in process (GET of the pod, WebSocket exec)
//   - `kubectl exec <pod> -- true`, one CLI process per run
//   - @kubernetes/client-node (bench/k8s_bench_client_node.mjs --serve, one Node process)
//
//   channel_exec_bench --url URL --token TOKEN [--docker ID] [--k8s ID --kubeconfig F
//                      [--namespace NS] --home SERVER_HOME] [--runs N] [--block N] [--node-dir DIR]
// Prints median and p95 of each path and ratios. Driven by bench/run-channel-exec-bench.sh.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "channel/channel_provider.hpp"
#include "docker/docker_provider.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"
#include "net/http_client.hpp"
#include "service/composition.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace agentpane;
using bench_util::msSince;
using bench_util::Stats;
using bench_util::summarize;

// One way of running `true`: a block runner returning that many samples (ms), or none when a
// run failed.
struct Path {
  std::string provider;  // "docker" or "kubernetes"
  std::string name;
  std::function<std::vector<double>(int)> block;
  bool reference = false;  // the provider's CLI: ratios are to this one
  std::vector<double> samples;
};

std::function<std::vector<double>(int)> timedEach(std::string what, std::function<bool()> once) {
  return [what = std::move(what), once = std::move(once)](int n) {
    std::vector<double> out;
    out.reserve(n);
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      if (!once()) {
        std::fprintf(stderr, "%s: a run failed\n", what.c_str());
        return std::vector<double>{};
      }
      out.push_back(msSince(t0));
    }
    return out;
  };
}

// A Node client in its --serve mode: one line per block, samples timed inside Node.
std::function<std::vector<double>(int)> nodeBlocks(std::string what,
                                                   std::shared_ptr<bench_util::LineChild> child) {
  return [what = std::move(what), child = std::move(child)](int n) {
    auto reply = child->ask(std::to_string(n));
    auto doc = nlohmann::json::parse(reply, nullptr, false);
    if (!doc.is_object() || !doc["samples"].is_array() ||
        doc["samples"].size() != static_cast<std::size_t>(n)) {
      std::fprintf(stderr, "%s: no samples (the Node client failed; see its stderr)\n",
                   what.c_str());
      return std::vector<double>{};
    }
    return doc["samples"].get<std::vector<double>>();
  };
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --url URL --token TOKEN [--docker ID] [--k8s ID --kubeconfig F "
               "[--namespace NS] --home SERVER_HOME] [--runs N] [--block N] [--node-dir DIR]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, token, dockerId, k8sId, kubeconfig, ns = "agentpane-sandboxes";
  std::string nodeDir = "bench", home;
  int runs = 1000, block = 50;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--url")
      url = next();
    else if (a == "--token")
      token = next();
    else if (a == "--docker")
      dockerId = next();
    else if (a == "--k8s")
      k8sId = next();
    else if (a == "--kubeconfig")
      kubeconfig = next();
    else if (a == "--namespace")
      ns = next();
    else if (a == "--runs")
      runs = std::atoi(next().c_str());
    else if (a == "--block")
      block = std::atoi(next().c_str());
    else if (a == "--home")
      home = next();
    else if (a == "--node-dir")
      nodeDir = next();
    else
      return usage(argv[0]);
  }
  if (url.empty() || token.empty() || (dockerId.empty() && k8sId.empty()) ||
      (!k8sId.empty() && (kubeconfig.empty() || home.empty())) || block < 1)
    return usage(argv[0]);
  runs = std::max(block, runs / block * block);

  auto endpoint = net::parseEndpoint(url);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "%s\n", endpoint.error().describe().c_str());
    return 2;
  }
  auto io = net::IoThread::create();
  auto created = net::HttpClient::create(endpoint.value(), io);
  if (!created.ok()) return 2;
  std::shared_ptr<net::HttpClient> http = std::move(created).value();
  ExecRequest er;
  er.argv = {"true"};
  channel::ChannelProviderOptions co;
  co.agentBinary = channel::defaultAgentBinary();

  std::vector<Path> paths;
  auto add = [&](std::string provider, std::string name,
                 std::function<std::vector<double>(int)> block, bool reference = false) {
    paths.push_back({std::move(provider), std::move(name), std::move(block), reference, {}});
  };
  // One kept-alive connection for both sandboxes' API runs.
  auto addApi = [&](const std::string& provider, const std::string& id) {
    net::HttpRequest req;
    req.method = "POST";
    req.target = "/api/sandboxes/" + id + "/exec";
    req.headers = {{"Authorization", "Bearer " + token}};
    req.contentType = "application/json";
    req.body = R"({"argv":["true"]})";
    auto client = http;
    add(provider, "API POST /exec (agent channel)", timedEach(provider + " api", [client, req] {
          auto r = client->request(req);
          if (!r.ok() || r->status != 200) return false;
          auto j = nlohmann::json::parse(r->body, nullptr, false);
          return j.is_object() && j["data"].value("exitCode", -1) == 0;
        }));
  };
  auto addProviderPaths = [&](const std::string& provider, std::shared_ptr<SandboxProvider> native,
                              const std::string& id, const std::string& nativeName) {
    auto viaChannel = std::make_shared<channel::ChannelProvider>(native, co);
    SandboxRef ref;  // the server's sandbox, found by its name (agentpane-<id>)
    ref.instance = native->instance();
    ref.sandboxId = id;
    add(provider, "channel in process (ChannelProvider)",
        timedEach(provider + " channel", [viaChannel, ref, er] {
          auto r = viaChannel->exec(ref, er);
          if (!r.ok()) std::fprintf(stderr, "%s\n", r.error().describe().c_str());
          return r.ok() && r->exitCode == 0;
        }));
    add(provider, nativeName, timedEach(provider + " native", [native, ref, er] {
          auto r = native->exec(ref, er);
          if (!r.ok()) std::fprintf(stderr, "%s\n", r.error().describe().c_str());
          return r.ok() && r->exitCode == 0;
        }));
  };

  std::vector<std::shared_ptr<bench_util::LineChild>> nodeClients;
  if (!dockerId.empty()) {
    auto docker = docker::DockerProvider::create();
    if (!docker.ok()) {
      std::fprintf(stderr, "docker: %s\n", docker.error().describe().c_str());
      return 2;
    }
    const std::string container = "agentpane-" + dockerId;
    addApi("docker", dockerId);
    addProviderPaths("docker", std::shared_ptr<SandboxProvider>(std::move(docker).value()),
                     dockerId, "Docker provider native exec");
    auto node = std::make_shared<bench_util::LineChild>(std::vector<std::string>{
        "node", nodeDir + "/exec_bench_dockerode.js", "--serve", container});
    if (!node->ok()) return 2;
    nodeClients.push_back(node);
    add("docker", "dockerode (Node, in process)", nodeBlocks("dockerode", node));
    const std::vector<std::string> cli{"docker", "exec", container, "true"};
    add("docker", "docker exec (CLI)",
        timedEach("docker exec", [cli] { return bench_util::spawnWait(cli, nullptr) == 0; }), true);
  }
  if (!k8sId.empty()) {
    k8s::LoadingRules rules;
    rules.explicitPath = kubeconfig;
    k8s::DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    if (!cfg.ok()) {
      std::fprintf(stderr, "kubeconfig: %s\n", cfg.error().describe().c_str());
      return 2;
    }
    k8s::K8sProviderOptions ko;
    ko.rest = cfg.value();
    ko.namespaceName = ns;
    ko.createNamespace = false;
    // The server's pods carry its instance label (made from its home): the provider here
    // must have the same scope to see them.
    ko.scopeLabels = {{labels::kInstance, instanceIdForHome(home)}};
    auto k8sProvider = k8s::K8sProvider::create(std::move(ko));
    if (!k8sProvider.ok()) {
      std::fprintf(stderr, "kubernetes: %s\n", k8sProvider.error().describe().c_str());
      return 2;
    }
    const std::string pod = "agentpane-" + k8sId;
    addApi("kubernetes", k8sId);
    addProviderPaths("kubernetes", std::shared_ptr<SandboxProvider>(std::move(k8sProvider).value()),
                     k8sId, "Kubernetes provider native exec");
    auto node = std::make_shared<bench_util::LineChild>(std::vector<std::string>{
        "node", nodeDir + "/k8s_bench_client_node.mjs", "--serve", kubeconfig, ns, pod, "sandbox"});
    if (!node->ok()) return 2;
    nodeClients.push_back(node);
    add("kubernetes", "@kubernetes/client-node Exec", nodeBlocks("client-node", node));
    const std::vector<std::string> cli{"kubectl", "--kubeconfig", kubeconfig, "-n", ns,    "exec",
                                       pod,       "-c",           "sandbox",  "--", "true"};
    add("kubernetes", "kubectl exec (CLI)",
        timedEach("kubectl exec", [cli] { return bench_util::spawnWait(cli, nullptr) == 0; }),
        true);
  }

  // Warm-up: connections, channels (the agents start), Node's modules and JIT.
  for (auto& p : paths) {
    if (p.block(10).empty()) return 1;
  }
  if (channel::counters().channelExecs.load() == 0) {
    std::fprintf(stderr, "the in-process channel did not start\n");
    return 1;
  }
  for (int done = 0; done < runs; done += block) {
    for (auto& p : paths) {
      auto t = p.block(block);
      if (t.empty()) return 1;
      p.samples.insert(p.samples.end(), t.begin(), t.end());
    }
  }

  std::printf(
      "exec `true`, %d runs per path, interleaved in blocks of %d (all paths of both "
      "providers in turn)\n",
      runs, block);
  for (const std::string provider : {"docker", "kubernetes"}) {
    std::vector<const Path*> rows;
    const Path* ref = nullptr;
    const Path* api = nullptr;
    for (const auto& p : paths) {
      if (p.provider != provider) continue;
      rows.push_back(&p);
      if (p.reference) ref = &p;
      if (api == nullptr) api = &p;  // the first path of a provider is the API
    }
    if (rows.empty()) continue;
    auto refStats = summarize("", ref->samples);
    auto apiStats = summarize("", api->samples);
    std::printf("\n%s sandbox\n", provider.c_str());
    std::printf("| %-40s | %9s | %7s | %7s | %12s | %12s |\n", "path", "median ms", "p95 ms",
                "min ms", "CLI/this", "this/API");
    std::printf("|%s|----------:|--------:|--------:|-------------:|-------------:|\n",
                std::string(42, '-').c_str());
    for (const auto* p : rows) {
      auto s = summarize(p->name, p->samples);
      std::printf("| %-40s | %9.2f | %7.2f | %7.2f | %11.1fx | %11.1fx |\n", s.name.c_str(),
                  s.median, s.p95, s.min, refStats.median / s.median, s.median / apiStats.median);
    }
    std::printf("API target (median <= 5 ms, p95 <= 10 ms): %s\n",
                apiStats.median <= 5 && apiStats.p95 <= 10 ? "met" : "NOT met");
  }
  std::printf("\nchannel execs counted in this process: %llu, native fallbacks: %llu\n",
              static_cast<unsigned long long>(channel::counters().channelExecs.load()),
              static_cast<unsigned long long>(channel::counters().nativeExecs.load()));
  return 0;
}
