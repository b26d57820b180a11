// Warm pool (issue 13): claim to first exec through the server's API, as a user sees it —
// from sending POST /api/sandboxes until POST /api/sandboxes/:id/exec {argv:["true"]} has
// answered — against a cold create to first exec in the same run:
//   - sequential claims: between claims (untimed) wait until GET /api/sandbox/pool shows a
//     warm sandbox; each claimed sandbox is removed (untimed);
//   - parallel claims: wait until PAR are warm, fire PAR create+exec at once, one connection
//     each; ROUNDS rounds;
//   - cold: the same create with a memoryMb the warm ones do not have (a miss), then exec.
// Only claims that were hits (fromPool true) are counted; misses are reported.
// The server's default profile is the pooled one. Driven by bench/run-pool-bench.sh.
//
//   pool_bench URL TOKEN PROJECT_DIR LABEL [--seq N] [--prewarm N] [--par K] [--rounds R]
//              [--cold N] [--cold-memory-mb M]
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"

#include "bench_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using bench_util::msSince;
using bench_util::Stats;
using bench_util::summarize;
using json = nlohmann::json;
using namespace agentpane;
using namespace std::chrono_literals;

struct Api {
  std::unique_ptr<net::HttpClient> http;
  std::string token;

  std::optional<json> call(const std::string& method, const std::string& target,
                           const std::string& body = "") {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    req.headers = {{"Authorization", "Bearer " + token}};
    if (!body.empty()) {
      req.contentType = "application/json";
      req.body = body;
    }
    net::CallOptions o;
    o.timeout = 180s;
    auto r = http->request(req, o);
    if (!r.ok()) {
      std::cerr << method << " " << target << ": " << r.error().describe() << "\n";
      return std::nullopt;
    }
    auto j = json::parse(r->body, nullptr, false);
    if (r->status / 100 != 2 || !j.is_object()) {
      std::cerr << method << " " << target << ": " << r->status << " " << r->body << "\n";
      return std::nullopt;
    }
    return j.contains("data") ? j["data"] : j;
  }
};

std::unique_ptr<net::HttpClient> client(const net::Endpoint& ep,
                                        const std::shared_ptr<net::IoThread>& io) {
  auto c = net::HttpClient::create(ep, io);
  if (!c.ok()) {
    std::cerr << c.error().describe() << "\n";
    std::exit(2);
  }
  return std::move(c).value();
}

std::string projectDir(const std::string& root) {
  static std::atomic<int> n{0};
  auto dir = root + "/p" + std::to_string(n++);
  std::filesystem::create_directories(dir);
  if (::chown(dir.c_str(), 1000, 1000) != 0) std::cerr << "cannot chown " << dir << "\n";
  return dir;
}

int warmCount(Api& api) {
  auto j = api.call("GET", "/api/sandbox/pool");
  if (!j) return -1;
  for (const auto& p : (*j)["pools"]) {
    if (p.value("profile", "") == "default") return p.value("warm", 0);
  }
  return 0;
}

bool waitWarm(Api& api, int n) {
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < 600s) {
    if (warmCount(api) >= n) return true;
    std::this_thread::sleep_for(20ms);
  }
  std::cerr << "timed out waiting for " << n << " warm sandboxes\n";
  return false;
}

struct Run {
  bool ok = false, hit = false;
  double ms = 0, createMs = 0;
  std::string id;
};

// Create (+ memoryMb when given) then exec `true`; timed from sending the create to the
// exec's answer. The sandbox is left for the caller to remove.
Run createThenExec(Api& api, const std::string& dir, int memoryMb) {
  json body{{"projectPath", dir}};
  if (memoryMb > 0) body["memoryMb"] = memoryMb;
  Run run;
  const auto t0 = Clock::now();
  auto made = api.call("POST", "/api/sandboxes", body.dump());
  if (!made) return run;
  const json& sb = made->contains("sandbox") ? (*made)["sandbox"] : *made;
  run.id = sb.value("id", "");
  run.hit = sb.value("fromPool", false);
  run.createMs = msSince(t0);
  auto ex = api.call("POST", "/api/sandboxes/" + run.id + "/exec", R"({"argv":["true"]})");
  run.ms = msSince(t0);
  run.ok = ex.has_value() && ex->value("exitCode", -1) == 0;
  return run;
}

void removeSandbox(Api& api, const std::string& id) {
  if (!id.empty()) api.call("DELETE", "/api/sandboxes/" + id);
}

void printRow(const Stats& s, double base) {
  std::printf("| %-34s | %5zu | %9.1f | %7.1f | %7.1f | %10.1fx |\n", s.name.c_str(), s.runs,
              s.median, s.p95, s.min, s.median > 0 ? base / s.median : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: pool_bench URL TOKEN PROJECT_DIR LABEL [--seq N] [--prewarm N] "
                 "[--par K] [--rounds R] [--cold N] [--cold-memory-mb M] [--settle-ms T]\n";
    return 2;
  }
  const std::string url = argv[1], token = argv[2], root = argv[3], label = argv[4];
  int seq = 100, prewarm = 10, par = 20, rounds = 5, cold = 20, coldMemory = 768, settleMs = 0;
  for (int i = 5; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::stoi(argv[i + 1]);
    if (a == "--seq")
      seq = v;
    else if (a == "--prewarm")
      prewarm = v;
    else if (a == "--par")
      par = v;
    else if (a == "--rounds")
      rounds = v;
    else if (a == "--cold")
      cold = v;
    else if (a == "--cold-memory-mb")
      coldMemory = v;
    else if (a == "--settle-ms")
      settleMs = v;
  }
  auto ep = net::parseEndpoint(url);
  if (!ep.ok()) {
    std::cerr << ep.error().describe() << "\n";
    return 2;
  }
  auto io = net::IoThread::create();
  Api api{client(ep.value(), io), token};
  int failures = 0;

  // Sequential claims, a pool of `prewarm`; one cold create after every 5 claims (interleaved
  // so that noise hits both alike; the cold one misses the pool by its memoryMb).
  if (!api.call("POST", "/api/sandbox/pool/prewarm",
                json{{"count", prewarm}, {"profile", "default"}}.dump()))
    return 1;
  std::vector<double> seqMs, coldMs, seqCreate, coldCreate;
  int seqMiss = 0, coldHit = 0;
  const int coldEvery = cold > 0 ? std::max(1, seq / cold) : 0;
  for (int i = 0; i < seq; ++i) {
    if (!waitWarm(api, 1)) return 1;
    auto r = createThenExec(api, projectDir(root), 0);
    if (!r.ok)
      ++failures;
    else if (r.hit)
      seqMs.push_back(r.ms), seqCreate.push_back(r.createMs);
    else
      ++seqMiss;
    removeSandbox(api, r.id);
    if (coldEvery > 0 && static_cast<int>(coldMs.size()) + coldHit < cold &&
        (i + 1) % coldEvery == 0) {
      auto c = createThenExec(api, projectDir(root), coldMemory);
      if (!c.ok)
        ++failures;
      else if (c.hit)
        ++coldHit;
      else
        coldMs.push_back(c.ms), coldCreate.push_back(c.createMs);
      removeSandbox(api, c.id);
    }
    std::fprintf(stderr, "\rsequential %d/%d", i + 1, seq);
  }
  std::fprintf(stderr, "\n");

  // Parallel: `par` warm, `par` create+exec at once, each on its own connection.
  if (!api.call("POST", "/api/sandbox/pool/prewarm",
                json{{"count", par}, {"profile", "default"}}.dump()))
    return 1;
  std::vector<Api> clients;
  for (int k = 0; k < par; ++k)
    clients.push_back(Api{client(ep.value(), io), token});
  std::vector<double> parMs, parCreate;
  int parMiss = 0;
  for (int round = 0; round < rounds; ++round) {
    if (!waitWarm(api, par)) return 1;
    // The refill of the round before has just made its last sandbox Ready: its tail (status
    // updates, policy syncs, removals of the claimed ones) can be let settle first (untimed).
    std::this_thread::sleep_for(std::chrono::milliseconds(settleMs));
    for (auto& c : clients)
      warmCount(c);  // connections open, as a client that holds one (untimed)
    std::vector<std::string> dirs;
    for (int k = 0; k < par; ++k)
      dirs.push_back(projectDir(root));
    std::vector<Run> runs(par);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int k = 0; k < par; ++k) {
      threads.emplace_back([&, k] {
        ++ready;
        while (!go.load())
          std::this_thread::yield();
        runs[k] = createThenExec(clients[k], dirs[k], 0);
      });
    }
    while (ready.load() < par)
      std::this_thread::yield();
    go = true;
    for (auto& t : threads)
      t.join();
    for (auto& r : runs) {
      if (!r.ok)
        ++failures;
      else if (r.hit)
        parMs.push_back(r.ms), parCreate.push_back(r.createMs);
      else
        ++parMiss;
      removeSandbox(api, r.id);
    }
    std::fprintf(stderr, "\rparallel round %d/%d", round + 1, rounds);
  }
  std::fprintf(stderr, "\n");
  api.call("POST", "/api/sandbox/pool/prewarm", json{{"count", 0}, {"profile", "default"}}.dump());

  auto sCold = summarize("cold create -> first exec", coldMs);
  auto sSeq = summarize("claim -> first exec, sequential", seqMs);
  auto sPar = summarize("claim -> first exec, " + std::to_string(par) + " parallel", parMs);
  std::printf("%s\n", label.c_str());
  std::printf("| %-34s | %5s | %9s | %7s | %7s | %11s |\n", "create to first exec `true`", "runs",
              "median ms", "p95 ms", "min ms", "cold/this");
  std::printf("|%s|------:|----------:|--------:|--------:|------------:|\n",
              std::string(36, '-').c_str());
  printRow(sSeq, sCold.median);
  printRow(sPar, sCold.median);
  printRow(sCold, sCold.median);
  // Where the time goes: the create's answer alone (the claim), the rest is the first exec.
  auto cCold = summarize("  of which the create's answer", coldCreate);
  printRow(summarize("  of which the claim's answer", seqCreate), cCold.median);
  printRow(summarize("  of which the claims' answers", parCreate), cCold.median);
  printRow(cCold, cCold.median);
  std::printf(
      "misses (not counted): sequential %d, parallel %d; cold runs that hit: %d; "
      "failures: %d\n",
      seqMiss, parMiss, coldHit, failures);
  return failures == 0 ? 0 : 1;
}
