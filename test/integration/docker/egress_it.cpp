// Egress on the real Docker engine with the host firewall on (docker/egress_firewall.hpp).
// Every target is a container this test starts on a network of its own; the sandbox opens
// TCP with bash's /dev/tcp. Rules are in force when apply returns (iptables-restore), so each
// check is made once. That private ranges and the metadata address stay blocked is shown on
// the rules themselves, never by traffic.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "common/workspace_slot.hpp"
#include "docker/docker_provider.hpp"
#include "docker/egress_firewall.hpp"

extern char** environ;

namespace agentpane::docker {
namespace {

using nlohmann::json;
constexpr int kPort = 8080;

std::string rnd() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

// `iptables -S CHAIN` (argv, no shell).
std::string iptablesListing(const std::string& chain) {
  int out[2];
  if (::pipe(out) != 0) return {};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);  // "no such chain"
  std::vector<std::string> argv = {"iptables", "-w", "10", "-S", chain};
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  std::string text;
  if (posix_spawnp(&pid, "iptables", &fa, nullptr, args.data(), environ) == 0) {
    ::close(out[1]);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0)
      text.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    ::waitpid(pid, &st, 0);
  } else {
    ::close(out[1]);
  }
  ::close(out[0]);
  posix_spawn_file_actions_destroy(&fa);
  return text;
}

class DockerEgressIt : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the Docker egress firewall needs root";
    run_ = "eg" + rnd();
    DockerProviderOptions o;
    o.scopeLabels = {{"agentpane.io/test-run", run_}};
    o.stopTimeoutSeconds = 1;
    o.egressFirewall = true;
    std::string slotsTmpl = (std::filesystem::temp_directory_path() / "ap-eg-warm-XXXXXX").string();
    warmBase_ = ::mkdtemp(slotsTmpl.data());
    slots_ = std::make_shared<WorkspaceSlots>(std::filesystem::path(warmBase_) / "slots");
    o.warmSlots = slots_;
    auto p = DockerProvider::create(o);
    ASSERT_TRUE(p.ok());
    provider_ = std::move(p.value());
    auto v = provider_->client().version();
    ASSERT_TRUE(v.ok()) << "no Docker engine (run scripts/start-docker.sh)";
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-eg-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    std::filesystem::permissions(dir_, std::filesystem::perms::all);
    targetNet_ = "agentpane-egtest-" + run_;
    json net = {
        {"Name", targetNet_}, {"Driver", "bridge"}, {"Labels", {{"agentpane.io/test-run", run_}}}};
    auto made = provider_->client().call("POST", "/networks/create", &net);
    ASSERT_TRUE(made.ok()) << made.error().describe();
  }
  void TearDown() override {
    if (!provider_) return;
    auto left = provider_->list(ListFilter{});
    if (left.ok()) {
      for (const auto& s : *left)
        EXPECT_TRUE(provider_->remove(sandboxRef(s)).ok());
    }
    for (const auto& c : targets_)
      (void)provider_->client().call("DELETE", "/containers/" + c + "?force=1");
    if (slots_) {
      EXPECT_TRUE(slots_->sweep({}).ok());
      while (::umount2(slots_->root().c_str(), MNT_DETACH) == 0) {
      }
      std::error_code ec;
      std::filesystem::remove_all(warmBase_, ec);
    }
    (void)provider_->client().call("DELETE", "/networks/" + targetNet_);
    for (const auto& id : made_) {
      // Removed with the sandbox: its chains and its network.
      EXPECT_TRUE(iptablesListing(sandboxChainName(id)).empty()) << id;
      auto gone = provider_->client().call("GET", "/networks/agentpane-" + id);
      EXPECT_FALSE(gone.ok()) << id;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  SandboxRef create(const std::string& suffix, std::vector<std::string> allow = {},
                    NetworkMode network = NetworkMode::None) {
    SandboxSpec s;
    s.network = network;
    s.id = run_ + "-" + suffix;
    s.projectId = run_ + suffix;
    s.agentId = "it";
    s.projectPath = dir_;
    s.memoryMb = 512;
    s.cpu = 1;
    s.allowedEgressHosts = std::move(allow);
    auto made = provider_->create(s);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    if (!made.ok()) return {};
    made_.push_back(s.id);
    lastEgress_ = made->egress;
    return sandboxRef(*made);
  }

  // A container serving TCP on kPort on the test's network; its address there.
  std::string startTarget(const std::string& suffix) {
    const std::string name = "agentpane-egtarget-" + run_ + "-" + suffix;
    json body = {{"Image", "agentpane/sandbox:latest"},
                 {"Cmd", {"python3", "-m", "http.server", std::to_string(kPort), "-d", "/tmp"}},
                 {"User", "1000:1000"},
                 {"Labels", {{"agentpane.io/test-run", run_}}},
                 {"HostConfig", {{"NetworkMode", targetNet_}, {"CapDrop", {"ALL"}}}}};
    auto made = provider_->client().call("POST", "/containers/create?name=" + name, &body);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    targets_.push_back(name);
    auto started = provider_->client().call("POST", "/containers/" + name + "/start");
    EXPECT_TRUE(started.ok()) << started.error().describe();
    auto info = provider_->client().call("GET", "/containers/" + name + "/json");
    EXPECT_TRUE(info.ok());
    return info.ok() ? (*info)["NetworkSettings"]["Networks"][targetNet_].value("IPAddress", "")
                     : "";
  }

  // Waits (bounded) until the target answers from inside its own container.
  void waitServing(const std::string& name) {
    for (int i = 0; i < 200; ++i) {
      json exec = {{"Cmd", {"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"}},
                   {"AttachStdout", false}};
      auto e = provider_->client().call("POST", "/containers/" + name + "/exec", &exec);
      ASSERT_TRUE(e.ok());
      const std::string id = (*e)["Id"];
      json start = {{"Detach", true}};
      ASSERT_TRUE(provider_->client().call("POST", "/exec/" + id + "/start", &start).ok());
      for (int j = 0; j < 100; ++j) {
        auto st = provider_->client().call("GET", "/exec/" + id + "/json");
        ASSERT_TRUE(st.ok());
        if (!(*st)["Running"].get<bool>()) {
          if ((*st)["ExitCode"] == 0) return;
          break;
        }
      }
    }
    FAIL() << name << " never served";
  }

  int connect(const SandboxRef& ref, const std::string& host, int port = kPort) {
    ExecRequest req;
    req.argv = {"timeout",           "5", "bash", "-c", "exec 3<>\"/dev/tcp/$0/$1\"", host,
                std::to_string(port)};
    auto r = provider_->exec(ref, req);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? r->exitCode : -1;
  }

  void expectDns(const SandboxRef& ref) {
    // The sandbox's resolver (Docker's, in its network) answers: its own name resolves.
    ExecRequest req;
    req.argv = {"getent", "hosts", DockerProvider::containerName(ref.sandboxId)};
    auto r = provider_->exec(ref, req);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exitCode, 0) << r->stderrData;
  }

  std::string run_, dir_, targetNet_, warmBase_;
  std::shared_ptr<WorkspaceSlots> slots_;
  std::unique_ptr<DockerProvider> provider_;
  std::vector<std::string> targets_, made_;
  std::optional<EgressStatus> lastEgress_;
};

TEST_F(DockerEgressIt, NoAllowlistBlocksAndAChangeAtRunTimeOpensThenCloses) {
  const std::string ip = startTarget("a");
  ASSERT_FALSE(ip.empty());
  waitServing(targets_.back());
  auto sb = create("addr");
  // A network of its own, filtered: DNS only.
  EXPECT_NE(connect(sb, ip), 0) << "no allowlist, yet " << ip << " is reachable";
  expectDns(sb);

  auto opened = provider_->applyEgress(sb, {ip + ":" + std::to_string(kPort)});
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  EXPECT_TRUE(opened->changed);
  EXPECT_EQ(connect(sb, ip), 0) << ip << " allowlisted, yet not reachable";
  EXPECT_NE(connect(sb, ip, kPort + 1), 0) << "a port not listed is reachable";
  expectDns(sb);

  auto same = provider_->applyEgress(sb, {ip + ":" + std::to_string(kPort)});
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->changed);

  auto closed = provider_->applyEgress(sb, {});
  ASSERT_TRUE(closed.ok()) << closed.error().describe();
  EXPECT_NE(connect(sb, ip), 0) << ip << " removed, still reachable";
  expectDns(sb);
}

// A crash between a container's removal and its network's (or in the middle of a create)
// leaves a network and its rules: cleanup sweeps them, and leaves a live sandbox's alone.
TEST_F(DockerEgressIt, CleanupSweepsTheNetworkAndRulesOfAGoneContainer) {
  auto orphan = create("orph", {"192.0.2.10"});
  auto live = create("live", {"192.0.2.11"});
  ASSERT_FALSE(orphan.sandboxId.empty());
  ASSERT_FALSE(live.sandboxId.empty());
  ASSERT_FALSE(iptablesListing(sandboxChainName(orphan.sandboxId)).empty());
  // What a crash leaves: the container gone behind the provider's back.
  ASSERT_TRUE(provider_->client()
                  .call("DELETE", "/containers/" + DockerProvider::containerName(orphan.sandboxId) +
                                      "?force=1")
                  .ok());
  ASSERT_TRUE(provider_->client().call("GET", "/networks/agentpane-" + orphan.sandboxId).ok());
  auto report = provider_->cleanup(CleanupFilter{});
  ASSERT_TRUE(report.ok()) << report.error().describe();
  EXPECT_NE(std::find(report->removedIds.begin(), report->removedIds.end(), orphan.sandboxId),
            report->removedIds.end());
  EXPECT_FALSE(provider_->client().call("GET", "/networks/agentpane-" + orphan.sandboxId).ok());
  EXPECT_TRUE(iptablesListing(sandboxChainName(orphan.sandboxId)).empty());
  // The live one keeps its network and rules.
  EXPECT_TRUE(provider_->client().call("GET", "/networks/agentpane-" + live.sandboxId).ok());
  EXPECT_NE(iptablesListing(sandboxChainName(live.sandboxId)).find("192.0.2.11"),
            std::string::npos);
  EXPECT_EQ(std::find(report->removedIds.begin(), report->removedIds.end(), live.sandboxId),
            report->removedIds.end());
}

TEST_F(DockerEgressIt, AllowlistGivenAtCreateIsInForceAtOnce) {
  const std::string ip = startTarget("c");
  ASSERT_FALSE(ip.empty());
  waitServing(targets_.back());
  auto sb = create("created", {ip});
  EXPECT_EQ(connect(sb, ip), 0);
}

TEST_F(DockerEgressIt, HostNameResolvedInTheSandboxAndTheRulesFollowItsAddress) {
  // The name is an alias on the sandbox's own network, served by Docker's DNS there.
  auto sb = create("host");
  const std::string alias = "egress-target-" + run_;
  auto attach = [&](const std::string& container) {
    json body = {{"Container", container}, {"EndpointConfig", {{"Aliases", {alias}}}}};
    auto r =
        provider_->client().call("POST", "/networks/agentpane-" + sb.sandboxId + "/connect", &body);
    ASSERT_TRUE(r.ok()) << r.error().describe();
  };
  startTarget("h1");
  waitServing(targets_.back());
  attach(targets_.back());
  const std::string missing = "nothing-" + run_ + ".invalid";
  auto first = provider_->applyEgress(sb, {alias + ":" + std::to_string(kPort), missing});
  ASSERT_TRUE(first.ok()) << first.error().describe();
  EXPECT_EQ(first->unresolved, std::vector<std::string>{missing});  // reported, not dropped
  ASSERT_EQ(first->hosts.size(), 2u);
  const auto ip1 = first->hosts[0].addresses;
  ASSERT_EQ(ip1.size(), 1u);
  EXPECT_EQ(connect(sb, alias), 0);

  // The name moves to another container (attached first, so that it gets a new address).
  const std::string first1 = targets_.back();
  startTarget("h2");
  waitServing(targets_.back());
  attach(targets_.back());
  auto det = json{{"Container", first1}, {"Force", true}};
  ASSERT_TRUE(provider_->client()
                  .call("POST", "/networks/agentpane-" + sb.sandboxId + "/disconnect", &det)
                  .ok());
  auto moved = provider_->applyEgress(sb, {alias + ":" + std::to_string(kPort), missing});
  ASSERT_TRUE(moved.ok()) << moved.error().describe();
  ASSERT_EQ(moved->hosts[0].addresses.size(), 1u);
  ASSERT_NE(moved->hosts[0].addresses, ip1);
  EXPECT_TRUE(moved->changed);
  EXPECT_EQ(moved->rules, std::vector<std::string>{moved->hosts[0].addresses[0] + "/32 ports " +
                                                   std::to_string(kPort)});
  EXPECT_EQ(connect(sb, alias), 0);
  expectDns(sb);
}

TEST_F(DockerEgressIt, OneSandboxCannotReachAnotherEvenWhenItListsIt) {
  auto a = create("a");
  auto b = create("b");
  ExecRequest serve;
  serve.argv = {"sh", "-c",
                "setsid -f python3 -m http.server \"$0\" -d /tmp </dev/null >/dev/null 2>&1",
                std::to_string(kPort)};
  ASSERT_TRUE(provider_->exec(b, serve).ok());
  int tries = 0;
  while (connect(b, "127.0.0.1") != 0 && ++tries < 200) {
  }
  ASSERT_EQ(connect(b, "127.0.0.1"), 0) << "B's server did not start";
  auto bInfo = provider_->client().call(
      "GET", "/containers/" + DockerProvider::containerName(b.sandboxId) + "/json");
  ASSERT_TRUE(bInfo.ok());
  const std::string bIp =
      (*bInfo)["NetworkSettings"]["Networks"]["agentpane-" + b.sandboxId].value("IPAddress", "");
  ASSERT_FALSE(bIp.empty());
  const std::string ip = startTarget("ab");
  waitServing(targets_.back());
  ASSERT_TRUE(provider_->applyEgress(a, {bIp, ip}).ok());
  ASSERT_EQ(connect(a, ip), 0) << "A's allowlist is not in force";
  EXPECT_NE(connect(a, bIp), 0) << "sandbox A reached sandbox B";
}

TEST_F(DockerEgressIt, PrivateRangesAndMetadataStayBlockedInTheRules) {
  auto sb = create("wide", {"0.0.0.0/0:443"});
  const std::string chain = sandboxChainName(sb.sandboxId);
  const std::string rules = iptablesListing(chain);
  const std::string wide = iptablesListing(chain + "-w0");
  EXPECT_NE(rules.find("-j " + chain + "-w0"), std::string::npos) << rules;
  EXPECT_NE(rules.find("REJECT --reject-with tcp-reset"), std::string::npos) << rules;
  for (const char* r : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                        "100.64.0.0/10", "169.254.0.0/16", "0.0.0.0/8"}) {
    EXPECT_NE(wide.find(std::string("-d ") + r + " -j RETURN"), std::string::npos) << r << "\n"
                                                                                   << wide;
  }
  EXPECT_NE(wide.find("--dports 443 -j ACCEPT"), std::string::npos) << wide;
  // Listing the metadata address itself opens it, and only for the ports given.
  ASSERT_TRUE(provider_->applyEgress(sb, {"169.254.169.254:80"}).ok());
  const std::string meta = iptablesListing(chain);
  EXPECT_NE(meta.find("-d 169.254.169.254/32 -p tcp -m multiport --dports 80 -j ACCEPT"),
            std::string::npos)
      << meta;
}

// A Bridge profile without an allowlist asks for the network, not for the host's private
// networks or the cloud metadata address: it is filtered like any other, open to everything but
// the always-blocked ranges. Shown on the rules, and on real traffic to a target the test
// started on a private address of this machine (refused, until listed explicitly).
TEST_F(DockerEgressIt, ABridgeProfileWithoutAnAllowlistKeepsPrivateRangesAndMetadataBlocked) {
  auto sb = create("bridge", {}, NetworkMode::Bridge);
  ASSERT_TRUE(lastEgress_.has_value());
  const std::string chain = sandboxChainName(sb.sandboxId);
  const std::string rules = iptablesListing(chain);
  const std::string wide = iptablesListing(chain + "-w0");
  EXPECT_NE(rules.find("-j " + chain + "-w0"), std::string::npos) << rules;
  for (const char* r : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                        "100.64.0.0/10", "169.254.0.0/16", "0.0.0.0/8"}) {
    EXPECT_NE(wide.find(std::string("-d ") + r + " -j RETURN"), std::string::npos) << r << "\n"
                                                                                   << wide;
  }
  EXPECT_NE(wide.find("-j ACCEPT"), std::string::npos) << wide;
  const std::string ip = startTarget("bridge");
  ASSERT_FALSE(ip.empty());
  waitServing(targets_.back());
  expectDns(sb);
  EXPECT_NE(connect(sb, ip), 0) << "a private address was reachable without being listed";
  // Listed explicitly, it opens; the empty list again means open-but-blocked, not DNS only.
  ASSERT_TRUE(provider_->applyEgress(sb, {ip}).ok());
  EXPECT_EQ(connect(sb, ip), 0) << "the listed target is not reachable";
  EXPECT_EQ(iptablesListing(chain).find("-j " + chain + "-w0"), std::string::npos);
  ASSERT_TRUE(provider_->applyEgress(sb, {}).ok());
  EXPECT_NE(connect(sb, ip), 0);
  EXPECT_NE(iptablesListing(chain + "-w0").find("-d 169.254.0.0/16 -j RETURN"), std::string::npos);
}

// A warm sandbox (docker_warm.cpp) reaches nothing (DNS only) until claimed; the claim's
// allowlist is in force when claimWarm returns, on real traffic.
TEST_F(DockerEgressIt, AWarmSandboxReachesNothingUntilItsClaimOpensItsAllowlist) {
  const std::string ip = startTarget("w");
  ASSERT_FALSE(ip.empty());
  waitServing(targets_.back());
  SandboxSpec s;
  s.id = run_ + "-warm";
  s.memoryMb = 512;
  s.cpu = 1;
  auto made = provider_->createWarm(s, CreateControl{});
  ASSERT_TRUE(made.ok()) << made.error().describe();
  made_.push_back(s.id);
  const SandboxRef sb = sandboxRef(*made);
  EXPECT_NE(connect(sb, ip), 0) << "a warm sandbox reaches " << ip;
  expectDns(sb);

  const std::string project = warmBase_ + "/project";
  std::filesystem::create_directories(project);
  ASSERT_EQ(::chown(project.c_str(), 1000, 1000), 0);
  WarmClaim claim;
  claim.projectId = run_;
  claim.agentId = "it";
  claim.projectPath = project;
  claim.allowedEgressHosts = {ip + ":" + std::to_string(kPort)};
  auto claimed = provider_->claimWarm(sb, claim);
  ASSERT_TRUE(claimed.ok()) << claimed.error().describe();
  ASSERT_TRUE(claimed->egress.has_value());
  EXPECT_TRUE(claimed->egress->enforced);
  EXPECT_EQ(connect(sb, ip), 0) << ip << " allowlisted by the claim, yet not reachable";
  EXPECT_NE(connect(sb, ip, kPort + 1), 0) << "a port not listed is reachable";
}

}  // namespace
}  // namespace agentpane::docker
