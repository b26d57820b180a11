// Exec round-trip of `true` against one sandbox container, three ways in one run:
// our DockerProvider (in process), the docker CLI (`docker exec`, a process per call) and
// dockerode (Node, in process). Prints median/p95 and ratios. See bench/README.md.
//
//   exec_bench [--runs N] [--warmup N] [--dockerode bench/exec_bench_dockerode.js]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "docker/docker_provider.hpp"

extern char** environ;

#include "bench_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using agentpane::ExecRequest;
using agentpane::docker::DockerProvider;

using bench_util::msSince;
using bench_util::spawnWait;
using bench_util::Stats;
using bench_util::summarize;

}  // namespace

int main(int argc, char** argv) {
  int runs = 200;
  int warmup = 10;
  std::string dockerodeScript = "bench/exec_bench_dockerode.js";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--runs")
      runs = std::stoi(next());
    else if (a == "--warmup")
      warmup = std::stoi(next());
    else if (a == "--dockerode")
      dockerodeScript = next();
    else {
      std::cerr << "usage: exec_bench [--runs N] [--warmup N] [--dockerode SCRIPT]\n";
      return 2;
    }
  }

  agentpane::docker::DockerProviderOptions opts;
  opts.scopeLabels = {{"agentpane.io/bench", "exec"}};
  auto made = DockerProvider::create(opts);
  if (!made.ok()) {
    std::cerr << "error: " << made.error().describe() << "\n";
    return 1;
  }
  auto& provider = *made.value();

  std::string dirTmpl =
      (std::filesystem::temp_directory_path() / "agentpane-bench-XXXXXX").string();
  std::string dir = ::mkdtemp(dirTmpl.data());
  std::random_device rd;
  agentpane::SandboxSpec spec;
  spec.id = "bench-" + std::to_string(rd() % 1000000);
  spec.projectId = "bench";
  spec.agentId = "bench";
  spec.projectPath = dir;
  auto t0 = Clock::now();
  auto sandbox = provider.create(spec);
  if (!sandbox.ok()) {
    std::cerr << "error: " << sandbox.error().describe() << "\n";
    return 1;
  }
  std::printf("sandbox %s created in %.0f ms (container %s)\n", spec.id.c_str(), msSince(t0),
              sandbox->containerId.substr(0, 12).c_str());
  const std::string container = DockerProvider::containerName(spec.id);
  const agentpane::SandboxRef ref = agentpane::sandboxRef(sandbox.value());

  int rc = 0;
  std::vector<Stats> results;
  ExecRequest req;
  req.argv = {"true"};

  // 1. Our provider.
  std::vector<double> ours;
  for (int i = 0; i < warmup + runs; ++i) {
    auto s = Clock::now();
    auto r = provider.exec(ref, req);
    double ms = msSince(s);
    if (!r.ok() || r->exitCode != 0) {
      std::cerr << "agentpane exec failed: "
                << (r.ok() ? "exit " + std::to_string(r->exitCode) : r.error().describe()) << "\n";
      rc = 1;
      break;
    }
    if (i >= warmup) ours.push_back(ms);
  }
  results.push_back(summarize("agentpane DockerProvider", ours));

  // 2. docker CLI: a process per exec, as a user would run it.
  std::vector<double> cli;
  for (int i = 0; i < warmup + runs; ++i) {
    auto s = Clock::now();
    int code = spawnWait({"docker", "exec", container, "true"}, nullptr);
    double ms = msSince(s);
    if (code != 0) {
      std::cerr << "docker exec failed (exit " << code << ")\n";
      rc = 1;
      break;
    }
    if (i >= warmup) cli.push_back(ms);
  }
  results.push_back(summarize("docker exec (CLI)", cli));

  // 3. dockerode, timed inside node.
  std::string out;
  int code = spawnWait(
      {"node", dockerodeScript, container, std::to_string(runs), std::to_string(warmup)}, &out);
  std::vector<double> node;
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (code == 0 && j.is_object() && j["samples"].is_array()) {
    for (const auto& v : j["samples"])
      node.push_back(v.get<double>());
  } else {
    std::cerr << "dockerode run failed (exit " << code << "); is bench/node_modules installed?\n";
    rc = 1;
  }
  results.push_back(summarize("dockerode", node));

  auto removed = provider.remove(ref);
  std::filesystem::remove_all(dir);
  if (!removed.ok()) std::cerr << "warning: " << removed.error().describe() << "\n";

  auto version = provider.healthCheck();
  std::printf(
      "\nexec round-trip of `true`, %d runs each (after %d warm-up), engine %s (API %s)\n\n", runs,
      warmup, version.version.c_str(), version.apiVersion.c_str());
  std::printf(
      "| client                   | runs | median ms | p95 ms | min ms | median vs agentpane |\n");
  std::printf(
      "|--------------------------|-----:|----------:|-------:|-------:|--------------------:|\n");
  const double base = results[0].median;
  for (const auto& s : results) {
    std::printf("| %-24s | %4zu | %9.1f | %6.1f | %6.1f | %18.2fx |\n", s.name.c_str(), s.runs,
                s.median, s.p95, s.min, base > 0 ? s.median / base : 0.0);
  }
  return rc;
}
