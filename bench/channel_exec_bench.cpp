// Exec round-trip of `true` through the in-sandbox agent channel (issue 11), against the
// same sandbox in one run, interleaved in blocks so that machine noise hits every path alike:
//   - API POST /api/sandboxes/:id/exec over one kept-alive connection (the server's channel)
//   - the channel in process (ChannelProvider over the Docker provider, no HTTP)
//   - the Docker provider's native exec in process (create + start + inspect)
//   - `docker exec <container> true`, one CLI process per run
//   channel_exec_bench URL TOKEN SANDBOX_ID [RUNS]
// Prints median and p95 of each and the ratio to `docker exec`. Driven by
// bench/run-channel-exec-bench.sh.
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "channel/channel_provider.hpp"
#include "docker/docker_provider.hpp"
#include "net/http_client.hpp"

extern char** environ;

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
std::vector<double> timeRuns(int runs, const char* what, F&& fn) {
  std::vector<double> out;
  out.reserve(runs);
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    if (!fn()) {
      std::fprintf(stderr, "%s: run %d failed\n", what, i);
      std::exit(1);
    }
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return out;
}

bool dockerCli(const std::string& container) {
  std::vector<std::string> args{"docker", "exec", container, "true"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "docker", nullptr, nullptr, argv.data(), environ) != 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL TOKEN SANDBOX_ID [RUNS]\n", argv[0]);
    return 2;
  }
  std::string url = argv[1], token = argv[2], id = argv[3];
  int runs = argc > 4 ? std::atoi(argv[4]) : 1000;
  constexpr int kBlock = 50;
  runs = std::max(kBlock, runs / kBlock * kBlock);

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

  auto docker = docker::DockerProvider::create();
  if (!docker.ok()) return 2;
  std::shared_ptr<SandboxProvider> native(std::move(docker).value());
  channel::ChannelProviderOptions co;
  co.agentBinary = channel::defaultAgentBinary();
  channel::ChannelProvider viaChannel(native, co);
  ExecRequest er;
  er.argv = {"true"};
  SandboxRef ref;  // the server's sandbox, found by its name (agentpane-<id>) and labels
  ref.instance = native->instance();
  ref.sandboxId = id;
  auto nativeExec = [&] {
    auto r = native->exec(ref, er);
    return r.ok() && r->exitCode == 0;
  };
  auto channelExec = [&] {
    auto r = viaChannel.exec(ref, er);
    return r.ok() && r->exitCode == 0;
  };
  const std::string container = "agentpane-" + id;
  auto cli = [&] { return dockerCli(container); };

  timeRuns(20, "api", viaApi);
  timeRuns(20, "channel", channelExec);
  timeRuns(10, "native", nativeExec);
  timeRuns(5, "docker exec", cli);
  if (channel::counters().channelExecs.load() == 0) {
    std::fprintf(stderr, "the in-process channel did not start\n");
    return 1;
  }
  std::vector<double> api, chan, nat, dcli;
  for (int done = 0; done < runs; done += kBlock) {
    for (auto* v : {&api, &chan, &nat, &dcli}) {
      std::vector<double> t;
      if (v == &api) t = timeRuns(kBlock, "api", viaApi);
      if (v == &chan) t = timeRuns(kBlock, "channel", channelExec);
      if (v == &nat) t = timeRuns(kBlock, "native", nativeExec);
      if (v == &dcli) t = timeRuns(kBlock, "docker exec", cli);
      v->insert(v->end(), t.begin(), t.end());
    }
  }
  auto sc = summarize(dcli);
  std::printf("exec `true`, %d runs each, same sandbox, interleaved in blocks of %d\n", runs,
              kBlock);
  std::printf("%-40s %10s %10s %14s\n", "path", "median ms", "p95 ms", "vs docker exec");
  auto row = [&](const char* name, const std::vector<double>& v) {
    auto s = summarize(v);
    std::printf("%-40s %10.2f %10.2f %13.1fx\n", name, s.median, s.p95, sc.median / s.median);
  };
  row("API POST /exec (agent channel)", api);
  row("channel in process (ChannelProvider)", chan);
  row("Docker provider native exec", nat);
  row("docker exec (CLI)", dcli);
  std::printf("channel execs counted in this process: %llu, native fallbacks: %llu\n",
              static_cast<unsigned long long>(channel::counters().channelExecs.load()),
              static_cast<unsigned long long>(channel::counters().nativeExecs.load()));
  return 0;
}
