// Exec round-trip of `true`: through the server's API (POST /api/sandboxes/:id/exec) versus
// calling the Docker provider directly, against the same sandbox in one run.
//   api_exec_bench URL TOKEN SANDBOX_ID [RUNS]
// Prints median and p95 of each and the ratio. Driven by bench/server-bench.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "docker/docker_provider.hpp"
#include "net/http_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace agentpane;

struct Stats {
  double median, p95;
};

Stats summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))];
  };
  return {at(0.5), at(0.95)};
}

template <typename F>
std::vector<double> timeRuns(int runs, F&& fn) {
  std::vector<double> out;
  out.reserve(runs);
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    if (!fn()) {
      std::fprintf(stderr, "run %d failed\n", i);
      std::exit(1);
    }
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL TOKEN SANDBOX_ID [RUNS]\n", argv[0]);
    return 2;
  }
  std::string url = argv[1], token = argv[2], id = argv[3];
  int runs = argc > 4 ? std::atoi(argv[4]) : 200;

  auto endpoint = net::parseEndpoint(url);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "%s\n", endpoint.error().describe().c_str());
    return 2;
  }
  auto io = net::IoThread::create();
  auto http = net::HttpClient::create(endpoint.value(), io);
  if (!http.ok()) return 2;
  net::HttpRequest req;
  req.method = "POST";
  req.target = "/api/sandboxes/" + id + "/exec";
  req.headers = {{"Authorization", "Bearer " + token}};
  req.contentType = "application/json";
  req.body = R"({"argv":["true"]})";
  auto viaApi = [&] {
    auto r = http.value()->request(req);
    if (!r.ok() || r->status != 200) return false;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() && j["data"].value("exitCode", -1) == 0;
  };

  auto provider = docker::DockerProvider::create();
  if (!provider.ok()) return 2;
  ExecRequest er;
  er.argv = {"true"};
  SandboxRef ref;  // the server's sandbox, found by its name (agentpane-<id>) and labels
  ref.instance = provider.value()->instance();
  ref.sandboxId = id;
  auto direct = [&] {
    auto r = provider.value()->exec(ref, er);
    return r.ok() && r->exitCode == 0;
  };

  // Warm both paths, then interleave in blocks so that machine noise hits both alike.
  timeRuns(10, viaApi);
  timeRuns(10, direct);
  std::vector<double> api, prov;
  for (int done = 0; done < runs; done += 20) {
    auto a = timeRuns(20, viaApi);
    auto p = timeRuns(20, direct);
    api.insert(api.end(), a.begin(), a.end());
    prov.insert(prov.end(), p.begin(), p.end());
  }
  auto sa = summarize(api), sp = summarize(prov);
  std::printf("%-28s %10s %10s %8s\n", "exec `true`", "median ms", "p95 ms", "ratio");
  std::printf("%-28s %10.2f %10.2f %8.2f\n", "provider (direct)", sp.median, sp.p95, 1.0);
  std::printf("%-28s %10.2f %10.2f %8.2f\n", "API POST /exec", sa.median, sa.p95,
              sa.median / sp.median);
  return 0;
}
