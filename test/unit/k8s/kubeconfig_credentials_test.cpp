// Credentials from kubeconfig users and the in-cluster service account: exec plugins (real
// scripts the tests write, run as argv), their cache, expiry and re-run after a 401, and token
// files that change.
#include <nlohmann/json.hpp>

#include "unit/k8s/kubeconfig_fixture.hpp"

namespace agentpane::k8s {
namespace {

using testing::KubeconfigTest;

// Counts its runs in a file next to itself, records what it was given, and prints a token
// that expires at 2030-01-01T00:00:00Z (the fixture's clock starts an hour before).
constexpr const char* kCountingPlugin = R"(#!/bin/sh
dir=$(dirname "$0")
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$dir/count"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/info.json"
printf '%s|' "$@" > "$dir/args"
printf '%s|%s' "$FROM_KUBECONFIG" "$HOST_VAR" > "$dir/env"
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"tok-%s","expirationTimestamp":"2030-01-01T00:00:00Z"}}' "$API" "$n"
)";

class ExecPluginTest : public KubeconfigTest {
 protected:
  // A kubeconfig in dir/kube/ whose user runs ./bin/plugin.sh relative to it.
  Result<RestConfig> load(const std::string& apiVersion, const std::string& plugin,
                          const std::string& extraExec = "") {
    write("kube/bin/plugin.sh", plugin, /*executable=*/true);
    std::string k = write("kube/config", R"(
current-context: x
clusters:
- name: c
  cluster:
    server: https://10.0.0.1:6443
    tls-server-name: api.internal
    certificate-authority-data: Q0E=
contexts:
- {name: x, context: {cluster: c, user: u}}
users:
- name: u
  user:
    exec:
      apiVersion: )" + apiVersion + R"(
      command: ./bin/plugin.sh
      args: ["--one", "two words"]
      env:
      - {name: FROM_KUBECONFIG, value: kube-value}
      - {name: API, value: )" + apiVersion + R"(}
      installHint: install the test plugin
)" + extraExec);
    auto cfg = loadKubeconfigFile(k);
    if (!cfg.ok()) return cfg.takeError();
    auto opts = options();
    opts.exec.baseEnvironment = [] {
      return std::vector<std::string>{"PATH=/usr/bin:/bin", "HOST_VAR=host-value",
                                      "FROM_KUBECONFIG=overridden"};
    };
    opts.exec.timeout = timeout_;
    return resolveContext(cfg.value(), "", opts);
  }
  int runs() { return std::stoi(read(path("kube/bin/count"))); }
  std::chrono::milliseconds timeout_{20000};
};

TEST_F(ExecPluginTest, RunsTheCommandWithArgsAndEnvAndCachesUntilExpiry) {
  auto rc = load("client.authentication.k8s.io/v1", kCountingPlugin,
                 "      interactiveMode: IfAvailable\n      provideClusterInfo: true\n");
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->credentials->kind(), "exec");
  EXPECT_FALSE(std::filesystem::exists(path("kube/bin/count")));  // not run at resolve time

  auto first = rc->credentials->current();
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->bearerToken, "tok-1");
  ASSERT_TRUE(first->expiry.has_value());
  EXPECT_EQ(*first->expiry, std::chrono::system_clock::from_time_t(1893456000));
  EXPECT_EQ(read(path("kube/bin/args")), "--one|two words|");
  EXPECT_EQ(read(path("kube/bin/env")), "kube-value|host-value");
  auto info = nlohmann::json::parse(read(path("kube/bin/info.json")));
  EXPECT_EQ(info["apiVersion"], "client.authentication.k8s.io/v1");
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://10.0.0.1:6443");
  EXPECT_EQ(info["spec"]["cluster"]["tls-server-name"], "api.internal");
  EXPECT_EQ(info["spec"]["cluster"]["certificate-authority-data"], "Q0E=");

  // Cached while the clock is before the expiry.
  advance(std::chrono::seconds(3599));
  EXPECT_EQ(rc->credentials->current()->bearerToken, "tok-1");
  EXPECT_EQ(runs(), 1);
  // At the expiry it runs again.
  advance(std::chrono::seconds(1));
  EXPECT_EQ(rc->credentials->current()->bearerToken, "tok-2");
  EXPECT_EQ(runs(), 2);
}

TEST_F(ExecPluginTest, AfterA401ItRunsAgainOnce) {
  auto rc = load("client.authentication.k8s.io/v1beta1", kCountingPlugin);
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  ASSERT_EQ(rc->credentials->current()->bearerToken, "tok-1");
  auto info = nlohmann::json::parse(read(path("kube/bin/info.json")));
  EXPECT_FALSE(info["spec"].contains("cluster"));  // provideClusterInfo not set

  // Two requests saw the same 401: one new run serves both retries.
  EXPECT_TRUE(rc->credentials->invalidate());
  EXPECT_TRUE(rc->credentials->invalidate());
  EXPECT_EQ(rc->credentials->current()->bearerToken, "tok-2");
  EXPECT_EQ(rc->credentials->current()->bearerToken, "tok-2");
  EXPECT_EQ(runs(), 2);
  // The next 401 makes the next one.
  EXPECT_TRUE(rc->credentials->invalidate());
  EXPECT_EQ(rc->credentials->current()->bearerToken, "tok-3");
  EXPECT_EQ(runs(), 3);
}

TEST_F(ExecPluginTest, AFailingPluginIsAClearErrorAndIsNotCached) {
  auto rc = load("client.authentication.k8s.io/v1beta1", R"(#!/bin/sh
dir=$(dirname "$0")
n=$(cat "$dir/count" 2>/dev/null || echo 0)
echo $((n+1)) > "$dir/count"
echo "error: you must log in first" >&2
exit 3
)");
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  auto c = rc->credentials->current();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::K8sAuthFailed);
  const std::string& m = c.error().message;
  EXPECT_NE(m.find("exited with code 3"), std::string::npos) << m;
  EXPECT_NE(m.find("you must log in first"), std::string::npos) << m;
  EXPECT_NE(m.find("install the test plugin"), std::string::npos) << m;
  EXPECT_NE(m.find("users[0].user.exec"), std::string::npos) << m;
  EXPECT_FALSE(rc->credentials->current().ok());
  EXPECT_EQ(runs(), 2);
}

TEST_F(ExecPluginTest, BadOutputMissingCommandAndHangsAreErrors) {
  // Wrong apiVersion in the output.
  auto wrong = load("client.authentication.k8s.io/v1beta1",
                    "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                    "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n");
  ASSERT_TRUE(wrong.ok());
  auto w = wrong->credentials->current();
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message.find("apiVersion"), std::string::npos) << w.error().message;
  // A certificate without its key.
  auto half = load("client.authentication.k8s.io/v1beta1",
                   "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                   "\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":\"C\"}}'\n");
  auto h = half->credentials->current();
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().message.find("without clientKeyData"), std::string::npos);
  // Not executable / not there.
  std::filesystem::remove(path("kube/bin/plugin.sh"));
  auto gone = wrong->credentials->current();
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::K8sAuthFailed);
  EXPECT_NE(gone.error().message.find(path("kube/bin/plugin.sh")), std::string::npos);
  // A plugin that never answers is killed at the deadline.
  timeout_ = std::chrono::milliseconds(300);
  auto hang = load("client.authentication.k8s.io/v1beta1", "#!/bin/sh\nexec sleep 600\n");
  auto hc = hang->credentials->current();
  ASSERT_FALSE(hc.ok());
  EXPECT_NE(hc.error().message.find("did not finish"), std::string::npos) << hc.error().message;
}

TEST_F(ExecPluginTest, ClientCertificateFromThePlugin) {
  auto rc = load("client.authentication.k8s.io/v1beta1",
                 "#!/bin/sh\nprintf '%s' '{\"apiVersion\":\"client.authentication.k8s.io/"
                 "v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":"
                 "\"-----BEGIN CERTIFICATE-----\\nX\\n\",\"clientKeyData\":\"K\"}}'\n");
  ASSERT_TRUE(rc.ok());
  auto c = rc->credentials->current();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->certPem, "-----BEGIN CERTIFICATE-----\nX\n");
  EXPECT_EQ(c->keyPem, "K");
  EXPECT_TRUE(c->bearerToken.empty());
  EXPECT_FALSE(c->expiry.has_value());
}

TEST_F(ExecPluginTest, InteractiveModeAlwaysIsRefused) {
  auto rc =
      load("client.authentication.k8s.io/v1", kCountingPlugin, "      interactiveMode: Always\n");
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_EQ(rc.error().details.at("field"), "users[0].user.exec.interactiveMode");
}

TEST(Rfc3339, ParsesZuluOffsetsAndFractions) {
  using std::chrono::system_clock;
  EXPECT_EQ(parseRfc3339("2030-01-01T00:00:00Z"), system_clock::from_time_t(1893456000));
  EXPECT_EQ(parseRfc3339("2030-01-01T01:30:00+01:30"), system_clock::from_time_t(1893456000));
  EXPECT_EQ(parseRfc3339("2029-12-31T23:00:00-01:00"), system_clock::from_time_t(1893456000));
  auto frac = parseRfc3339("2030-01-01T00:00:00.25Z");
  ASSERT_TRUE(frac.has_value());
  EXPECT_EQ(*frac - system_clock::from_time_t(1893456000), std::chrono::milliseconds(250));
  EXPECT_FALSE(parseRfc3339("2030-01-01 00:00:00").has_value());
  EXPECT_FALSE(parseRfc3339("2030-13-01T00:00:00Z").has_value());
  EXPECT_FALSE(parseRfc3339("tomorrow").has_value());
  // Beyond what 64-bit nanoseconds hold (found by fuzz/kubeconfig_fuzz.cpp): "never".
  EXPECT_EQ(parseRfc3339("3793-01-01T00:00:00.5+01:00"), system_clock::time_point::max());
  EXPECT_EQ(parseRfc3339("0001-01-01T00:00:00Z"), system_clock::time_point::min());
}

TEST_F(KubeconfigTest, InClusterReadsTheServiceAccountAndRereadsTheRotatingToken) {
  write("serviceaccount/token", "token-1\n");
  write("serviceaccount/ca.crt", "CA");
  write("serviceaccount/namespace", "team-a\n");
  vars_["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";
  vars_["KUBERNETES_SERVICE_PORT"] = "443";
  DeferredClientConfig deferred(rules(), "", "", options());
  auto rc = deferred.restConfig();
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->server, "https://10.96.0.1:443");
  EXPECT_EQ(rc->endpoint.kind, net::Endpoint::Kind::Tls);
  EXPECT_EQ(rc->endpoint.tls.caFile, path("serviceaccount/ca.crt"));
  EXPECT_EQ(rc->namespaceName, "team-a");
  EXPECT_EQ(rc->contextName, "");
  auto& creds = *rc->credentials;
  EXPECT_EQ(creds.kind(), "in-cluster");
  EXPECT_EQ(creds.current()->bearerToken, "token-1");

  // The kubelet rotates the token: within the minute the cached one is used...
  write("serviceaccount/token", "token-2\n");
  advance(std::chrono::seconds(30));
  EXPECT_EQ(creds.current()->bearerToken, "token-1");
  // ...after a 401 the file is read again,
  EXPECT_TRUE(creds.invalidate());
  EXPECT_EQ(creds.current()->bearerToken, "token-2");
  // and once a minute has passed it is read again without one.
  write("serviceaccount/token", "token-3");
  advance(std::chrono::seconds(59));
  EXPECT_EQ(creds.current()->bearerToken, "token-2");
  advance(std::chrono::seconds(1));
  EXPECT_EQ(creds.current()->bearerToken, "token-3");

  // An emptied token file is an error naming the file, not an empty bearer token.
  write("serviceaccount/token", "");
  EXPECT_TRUE(creds.invalidate());
  auto empty = creds.current();
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::K8sAuthFailed);
  EXPECT_NE(empty.error().message.find(path("serviceaccount/token")), std::string::npos);
}

TEST_F(KubeconfigTest, InClusterNamespaceFallbacksAndContextOverride) {
  write("serviceaccount/token", "t");
  vars_["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  vars_["KUBERNETES_SERVICE_PORT"] = "6443";
  auto rc = inClusterConfig(rules(), options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->server, "https://[fd00::1]:6443");
  EXPECT_EQ(rc->endpoint.host, "fd00::1");
  EXPECT_EQ(rc->namespaceName, "default");
  EXPECT_TRUE(rc->endpoint.tls.caFile.empty());  // no ca.crt: the system trust store
  vars_["POD_NAMESPACE"] = "from-env";
  EXPECT_EQ(inClusterConfig(rules(), options())->namespaceName, "from-env");
  // A context asked for by name cannot be met by in-cluster credentials.
  DeferredClientConfig named(rules(), "prod", "", options());
  auto r = named.restConfig();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sContextNotFound);
  EXPECT_NE(r.error().message.find("'prod'"), std::string::npos);
  // Without the token the in-cluster config is refused.
  std::filesystem::remove(path("serviceaccount/token"));
  auto none = inClusterConfig(rules(), options());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::K8sKubeconfigInvalid);
}

TEST_F(KubeconfigTest, TokenFileOfAUserIsRereadAfterA401) {
  write("tok", "first");
  std::string k = write("config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {tokenFile: tok}}]
)");
  auto rc = resolveContext(loadKubeconfigFile(k).value(), "", options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->credentials->current()->bearerToken, "first");
  write("tok", "second");
  EXPECT_EQ(rc->credentials->current()->bearerToken, "first");
  EXPECT_TRUE(rc->credentials->invalidate());
  EXPECT_EQ(rc->credentials->current()->bearerToken, "second");
}

}  // namespace
}  // namespace agentpane::k8s
