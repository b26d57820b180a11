// Egress on the real test cluster (kube-router enforces NetworkPolicy), as the
// least-privilege ServiceAccount. Every target is a pod this test starts in the sandbox
// namespace; the sandbox opens TCP with bash's /dev/tcp. That private ranges and the
// metadata address stay blocked is shown on the generated policy, never by traffic.
// Enforcement is asynchronous (kube-router syncs its rules from the policy): each expected
// state is polled for, with a bound.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "k8s/k8s_provider.hpp"
#include "k8s/kubeconfig_loader.hpp"
#include "k8s/network_policy.hpp"

namespace agentpane::k8s {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kPort = 8080;
constexpr auto kBound = 45s;  // kube-router applies a policy change within this

std::string shortRandom() {
  static std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  return s;
}

class EgressCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("AGENTPANE_TEST_SA_KUBECONFIG");
    ASSERT_TRUE(path != nullptr && *path != '\0')
        << "AGENTPANE_TEST_SA_KUBECONFIG is not set: eval \"$(scripts/test-cluster env)\"";
    LoadingRules rules;
    rules.explicitPath = path;
    DeferredClientConfig deferred(rules);
    auto cfg = deferred.restConfig();
    ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
    runId_ = "eg" + shortRandom();
    K8sProviderOptions o;
    o.rest = std::move(cfg).value();
    o.scopeLabels = {{"agentpane.io/test-run", runId_}};
    o.imagePullPolicy = "Never";
    o.startupTimeout = 90s;
    o.createNamespace = false;
    o.workspace = WorkspaceKind::EmptyDir;
    auto p = K8sProvider::create(std::move(o));
    ASSERT_TRUE(p.ok()) << p.error().describe();
    provider_ = std::move(p).value();
    ns_ = provider_->namespaceName();
    dir_ = fs::temp_directory_path() / ("agentpane-eg-" + shortRandom());
    fs::create_directories(dir_);
    ASSERT_EQ(::chown(dir_.c_str(), 1000, 1000), 0);
  }

  void TearDown() override {
    for (const auto& ref : sandboxes_)
      EXPECT_TRUE(provider_->remove(ref).ok());
    for (const auto& path : made_) {
      auto r = provider_->client().remove(path);
      if (!r.ok()) {
        EXPECT_EQ(r.error().code, ErrorCode::K8sNotFound) << r.error().describe();
      }
    }
    if (provider_) {
      ListOptions lo;
      lo.labelSelector = "agentpane.io/test-run=" + runId_;
      auto l = provider_->client().list(
          resourcePath("networking.k8s.io/v1", "networkpolicies", ns_), lo);
      ASSERT_TRUE(l.ok());
      EXPECT_TRUE((*l)["items"].empty()) << "a sandbox's policy outlived it";
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  SandboxRef create(const std::string& what, std::vector<std::string> allow = {}) {
    SandboxSpec s;
    s.id = "eg-" + runId_ + "-" + what;
    s.projectId = runId_ + what;
    s.agentId = "test";
    s.projectPath = dir_.string();
    s.image = "agentpane/sandbox:latest";
    s.memoryMb = 256;
    s.cpu = 0.5;
    s.kubernetes.workspaceVolume = "emptyDir";
    s.allowedEgressHosts = std::move(allow);
    auto made = provider_->create(s);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    if (!made.ok()) return {};
    lastCreateEgress_ = made->egress;
    sandboxes_.push_back(sandboxRef(*made));
    return sandboxes_.back();
  }

  // A restricted pod serving TCP on kPort (python3 of the sandbox image), with label
  // app=<label>; an ingress policy lets other pods reach it (the namespace denies by default).
  // Returns its IP once it runs.
  std::string startTarget(const std::string& name, const std::string& label) {
    json pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", name},
          {"namespace", ns_},
          {"labels", {{"agentpane.io/test-run", runId_}, {"egress-target", label}}}}},
        {"spec",
         {{"automountServiceAccountToken", false},
          {"terminationGracePeriodSeconds", 0},
          {"securityContext",
           {{"runAsNonRoot", true},
            {"runAsUser", 1000},
            {"runAsGroup", 1000},
            {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
          {"containers",
           {{{"name", "server"},
             {"image", "agentpane/sandbox:latest"},
             {"imagePullPolicy", "Never"},
             {"command", {"python3", "-m", "http.server", std::to_string(kPort), "-d", "/tmp"}},
             {"securityContext",
              {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}}}}}}}}};
    const std::string path = resourcePath("v1", "pods", ns_, name);
    auto made = provider_->client().create(resourcePath("v1", "pods", ns_), pod);
    EXPECT_TRUE(made.ok()) << made.error().describe();
    made_.push_back(path);
    ensureTargetIngress();
    const auto deadline = Clock::now() + 90s;
    while (Clock::now() < deadline) {
      auto got = provider_->client().get(path);
      if (got.ok() && (*got)["status"].value("phase", "") == "Running") {
        for (const auto& c : (*got)["status"].value("conditions", json::array()))
          if (c.value("type", "") == "Ready" && c.value("status", "") == "True")
            return (*got)["status"].value("podIP", "");
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "target pod " << name << " did not become Ready";
    return {};
  }

  void ensureTargetIngress() {
    if (ingressMade_) return;
    json np = {{"apiVersion", "networking.k8s.io/v1"},
               {"kind", "NetworkPolicy"},
               {"metadata",
                {{"name", "egress-target-" + runId_},
                 {"namespace", ns_},
                 {"labels", {{"agentpane.io/test-run-target", runId_}}}}},
               {"spec",
                {{"podSelector",
                  {{"matchExpressions",
                    json::array({{{"key", "egress-target"}, {"operator", "Exists"}}})}}},
                 {"policyTypes", {"Ingress"}},
                 {"ingress", json::array({json::object()})}}}};
    const std::string path =
        resourcePath("networking.k8s.io/v1", "networkpolicies", ns_, "egress-target-" + runId_);
    auto r = provider_->client().apply(path, np);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    made_.push_back(path);
    ingressMade_ = true;
  }

  // A headless Service `name` over pods egress-target=<label>: its name resolves to their
  // addresses (a ClusterIP would be translated by kube-proxy before the policy sees it).
  std::string headlessService(const std::string& name, const std::string& label) {
    json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}, {"namespace", ns_}}},
                {"spec",
                 {{"clusterIP", "None"},
                  {"selector", {{"egress-target", label}}},
                  {"ports", {{{"port", kPort}, {"protocol", "TCP"}}}}}}};
    auto r = provider_->client().create(resourcePath("v1", "services", ns_), svc);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    made_.push_back(resourcePath("v1", "services", ns_, name));
    return name + "." + ns_ + ".svc.cluster.local";
  }

  // Opens TCP from the sandbox: 0 connected, anything else not.
  int connect(const SandboxRef& ref, const std::string& host, int port = kPort) {
    ExecRequest req;
    req.argv = {"timeout",           "5", "bash", "-c", "exec 3<>\"/dev/tcp/$0/$1\"", host,
                std::to_string(port)};
    auto r = provider_->exec(ref, req);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? r->exitCode : -1;
  }

  // Polls until connecting gives `open` (true: connected), within kBound.
  bool eventually(const SandboxRef& ref, const std::string& host, bool open) {
    const auto deadline = Clock::now() + kBound;
    do {
      if ((connect(ref, host) == 0) == open) return true;
    } while (Clock::now() < deadline);
    return false;
  }

  json policyOf(const SandboxRef& ref) {
    auto p = provider_->client().get(resourcePath("networking.k8s.io/v1", "networkpolicies", ns_,
                                                  sandboxPolicyName(ref.sandboxId)));
    EXPECT_TRUE(p.ok()) << p.error().describe();
    return p.ok() ? *p : json();
  }

  // DNS works from the sandbox: the cluster's own API Service name resolves.
  void expectDns(const SandboxRef& ref) {
    ExecRequest req;
    req.argv = {"getent", "hosts", "kubernetes.default.svc.cluster.local"};
    auto r = provider_->exec(ref, req);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->exitCode, 0) << "DNS from the sandbox failed: " << r->stderrData;
  }

  std::string runId_, ns_;
  std::unique_ptr<K8sProvider> provider_;
  fs::path dir_;
  std::vector<SandboxRef> sandboxes_;
  std::vector<std::string> made_;
  bool ingressMade_ = false;
  std::optional<EgressStatus> lastCreateEgress_;
};

TEST_F(EgressCluster, NamespaceDeniesByDefaultAndTheSandboxPolicyKeepsPrivateRangesBlocked) {
  auto sb = create("policy", {"0.0.0.0/0:443"});
  auto deny = provider_->client().get(
      resourcePath("networking.k8s.io/v1", "networkpolicies", ns_, kDefaultDenyPolicyName));
  ASSERT_TRUE(deny.ok()) << deny.error().describe();
  EXPECT_EQ((*deny)["spec"]["podSelector"], json::object());
  EXPECT_EQ((*deny)["spec"]["policyTypes"], json({"Ingress", "Egress"}));
  json p = policyOf(sb);
  // Ingress in policyTypes and no ingress rule: every ingress denied.
  EXPECT_EQ(p["spec"]["policyTypes"], json({"Ingress", "Egress"}));
  EXPECT_TRUE(!p["spec"].contains("ingress") || p["spec"]["ingress"].empty());
  ASSERT_EQ(p["spec"]["egress"].size(), 2u);
  EXPECT_EQ(p["spec"]["egress"][0], dnsEgressRule());
  // The wide entry carries every always-blocked range the cluster stored back: private,
  // loopback, link-local (the metadata address 169.254.169.254 is inside it).
  const json block = p["spec"]["egress"][1]["to"][0]["ipBlock"];
  EXPECT_EQ(block["cidr"], "0.0.0.0/0");
  EXPECT_EQ(block["except"], json({"0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12",
                                   "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}));
  expectDns(sb);
  // Applying the same list again changes nothing (the cluster's copy is compared by digest).
  auto again = provider_->applyEgress(sb, {"0.0.0.0/0:443"});
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_FALSE(again->changed);
}

TEST_F(EgressCluster, AddressAllowlistOpensThePathAndAChangeAtRunTimeClosesIt) {
  const std::string ip = startTarget("egress-target-" + runId_ + "-a", runId_ + "-a");
  ASSERT_FALSE(ip.empty());
  auto sb = create("addr");
  EXPECT_TRUE(eventually(sb, ip, false)) << "no allowlist, yet " << ip << " is reachable";
  expectDns(sb);

  auto opened = provider_->applyEgress(sb, {ip + ":" + std::to_string(kPort)});
  ASSERT_TRUE(opened.ok()) << opened.error().describe();
  EXPECT_TRUE(opened->changed);
  EXPECT_TRUE(eventually(sb, ip, true)) << ip << " allowlisted, yet not reachable";
  expectDns(sb);
  // Another port of the same address stays closed.
  EXPECT_NE(connect(sb, ip, kPort + 1), 0);

  auto closed = provider_->applyEgress(sb, {});
  ASSERT_TRUE(closed.ok()) << closed.error().describe();
  EXPECT_TRUE(closed->changed);
  EXPECT_TRUE(eventually(sb, ip, false)) << ip << " removed from the allowlist, still reachable";
  expectDns(sb);
}

TEST_F(EgressCluster, HostNameIsResolvedInTheSandboxAndThePolicyFollowsItsAddress) {
  const std::string label = runId_ + "-h";
  const std::string ip1 = startTarget("egress-target-" + runId_ + "-h1", label);
  ASSERT_FALSE(ip1.empty());
  const std::string name = headlessService("egress-" + runId_, label);
  const std::string missing = "nothing-" + runId_ + "." + ns_ + ".svc.cluster.local";
  auto sb = create("host", {name + ":" + std::to_string(kPort), missing});
  ASSERT_TRUE(lastCreateEgress_.has_value());
  // The name that does not resolve is reported, not dropped.
  EXPECT_EQ(lastCreateEgress_->unresolved, std::vector<std::string>{missing});
  EXPECT_TRUE(eventually(sb, name, true)) << name << " allowlisted, yet not reachable";

  // The name moves: a new pod behind the Service, the old one gone.
  const std::string ip2 = startTarget("egress-target-" + runId_ + "-h2", label);
  ASSERT_FALSE(ip2.empty());
  ASSERT_NE(ip1, ip2);
  auto del = provider_->client().remove(
      resourcePath("v1", "pods", ns_, "egress-target-" + runId_ + "-h1"));
  ASSERT_TRUE(del.ok()) << del.error().describe();
  // Until the cluster DNS drops the old address, a refresh may still see both: poll the
  // refresh (what the server's schedule does) until the policy holds ip2 alone.
  const auto deadline = Clock::now() + kBound;
  json rules;
  bool followed = false;
  while (!followed && Clock::now() < deadline) {
    auto r = provider_->applyEgress(sb, {name + ":" + std::to_string(kPort), missing});
    ASSERT_TRUE(r.ok()) << r.error().describe();
    rules = r->rules;
    followed = r->rules == std::vector<std::string>{ip2 + "/32 ports " + std::to_string(kPort)};
  }
  EXPECT_TRUE(followed) << rules.dump();
  json p = policyOf(sb);
  EXPECT_EQ(p["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"], ip2 + "/32");
  EXPECT_TRUE(eventually(sb, ip2, true));
  expectDns(sb);
}

TEST_F(EgressCluster, OneSandboxCannotReachAnotherEvenWhenItListsIt) {
  auto a = create("a");
  auto b = create("b");
  // B serves on kPort (it answers itself on loopback, which no policy touches).
  ExecRequest serve;
  serve.argv = {"sh", "-c",
                "setsid -f python3 -m http.server \"$0\" -d /tmp </dev/null >/dev/null 2>&1",
                std::to_string(kPort)};
  auto s = provider_->exec(b, serve);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  const auto deadline = Clock::now() + 20s;
  while (connect(b, "127.0.0.1") != 0 && Clock::now() < deadline) {
  }
  ASSERT_EQ(connect(b, "127.0.0.1"), 0) << "B's server did not start";
  auto bInfo = provider_->get(b);
  ASSERT_TRUE(bInfo.ok());
  auto bPod = provider_->client().get(resourcePath("v1", "pods", ns_, bInfo->podName));
  ASSERT_TRUE(bPod.ok());
  const std::string bIp = (*bPod)["status"].value("podIP", "");
  ASSERT_FALSE(bIp.empty());
  EXPECT_TRUE(eventually(a, bIp, false));
  // A lists B and a target pod. Once A reaches the target, A's new policy is in force; B's own
  // policy still denies every ingress.
  const std::string ip = startTarget("egress-target-" + runId_ + "-ab", runId_ + "-ab");
  ASSERT_FALSE(ip.empty());
  ASSERT_TRUE(provider_->applyEgress(a, {bIp, ip}).ok());
  ASSERT_TRUE(eventually(a, ip, true)) << "A's allowlist never came into force";
  EXPECT_NE(connect(a, bIp), 0) << "sandbox A reached sandbox B";
}

}  // namespace
}  // namespace agentpane::k8s
