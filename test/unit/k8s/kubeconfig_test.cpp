// kubeconfig loading rules, merge, relative paths, TLS settings and coded errors, on files the
// tests write.
#include "common/base64.hpp"
#include "unit/k8s/kubeconfig_fixture.hpp"

namespace agentpane::k8s {
namespace {

using testing::KubeconfigTest;

std::string detail(const Error& e, const std::string& key) {
  auto it = e.details.find(key);
  return it == e.details.end() ? "" : it->second;
}

// Three files: A sets no current-context; B sets ctx-b; C sets ctx-c and redefines what A and
// B define. The first file to define a name wins, whole.
class MergeTest : public KubeconfigTest {
 protected:
  void SetUp() override {
    KubeconfigTest::SetUp();
    a_ = write("a/config", R"(apiVersion: v1
kind: Config
clusters:
- name: shared
  cluster:
    server: https://a.example:6443
users:
- name: alice
  user:
    token: token-from-a
)");
    b_ = write("b/config", R"(apiVersion: v1
kind: Config
current-context: ctx-b
clusters:
- name: shared
  cluster:
    server: https://b.example:6443
- name: only-b
  cluster:
    server: https://only-b.example
contexts:
- name: ctx-b
  context:
    cluster: shared
    user: alice
    namespace: from-b
users:
- name: alice
  user:
    token: token-from-b
)");
    c_ = write("c/config", R"(apiVersion: v1
kind: Config
current-context: ctx-c
contexts:
- name: ctx-b
  context:
    cluster: only-b
    user: alice
    namespace: from-c
- name: ctx-c
  context:
    cluster: only-b
    user: carol
users:
- name: carol
  user:
    token: token-from-c
)");
  }
  std::string a_, b_, c_;
};

TEST_F(MergeTest, FirstFileToSetAValueWinsAndCurrentContextComesFromTheFirstThatSetsIt) {
  vars_["KUBECONFIG"] = a_ + ":" + path("missing/config") + ":" + b_ + "::" + c_;
  auto loaded = loadKubeconfig(rules());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->source, KubeconfigSource::KubeconfigEnv);
  const Kubeconfig& k = loaded->config;
  EXPECT_EQ(k.files, (std::vector<std::string>{a_, b_, c_}));
  EXPECT_EQ(k.currentContext, "ctx-b");
  EXPECT_EQ(k.currentContextFile, b_);

  auto list = listContexts(k);
  EXPECT_EQ(list.current, "ctx-b");
  ASSERT_EQ(list.contexts.size(), 2u);
  EXPECT_EQ(list.contexts[0].name, "ctx-b");
  EXPECT_EQ(list.contexts[0].cluster, "shared");  // B's ctx-b, not C's
  EXPECT_EQ(list.contexts[0].namespaceName, "from-b");
  EXPECT_EQ(list.contexts[1].name, "ctx-c");
  EXPECT_EQ(list.contexts[1].user, "carol");

  auto rc = resolveContext(k, "", options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->server, "https://a.example:6443");  // cluster "shared" from A
  EXPECT_EQ(rc->endpoint.host, "a.example");
  EXPECT_EQ(rc->endpoint.port, 6443);
  EXPECT_EQ(rc->namespaceName, "from-b");
  EXPECT_EQ(rc->contextName, "ctx-b");
  EXPECT_EQ(rc->credentials->kind(), "token");
  EXPECT_EQ(rc->credentials->current()->bearerToken, "token-from-a");

  auto c = resolveContext(k, "ctx-c", options());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->endpoint.port, 443);  // https without a port
  EXPECT_EQ(c->credentials->current()->bearerToken, "token-from-c");
  EXPECT_EQ(c->namespaceName, "");
}

TEST_F(MergeTest, AnExplicitPathIsThatOneFileWithoutMerging) {
  vars_["KUBECONFIG"] = a_ + ":" + b_;
  auto r = rules();
  r.explicitPath = c_;
  auto loaded = loadKubeconfig(r);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->source, KubeconfigSource::ExplicitPath);
  EXPECT_EQ(loaded->config.files, std::vector<std::string>{c_});
  auto list = listContexts(r);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->current, "ctx-c");
  ASSERT_EQ(list->contexts.size(), 2u);
  EXPECT_EQ(list->contexts[0].cluster, "only-b");  // C's own ctx-b
  // only-b is not defined in C alone.
  auto rc = resolveContext(loaded->config, "", options());
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_NE(rc.error().message.find("only-b"), std::string::npos) << rc.error().message;
}

TEST_F(MergeTest, DiscoveryOrder) {
  // ~/.kube/config when nothing is set.
  std::string home = write("home/.kube/config", "current-context: from-home\n");
  auto h = loadKubeconfig(rules());
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(h->source, KubeconfigSource::HomeFile);
  EXPECT_EQ(h->config.files, std::vector<std::string>{home});
  // KUBECONFIG beats the home file; K8S_KUBECONFIG beats KUBECONFIG; explicit beats both.
  vars_["KUBECONFIG"] = b_;
  EXPECT_EQ(loadKubeconfig(rules())->config.currentContext, "ctx-b");
  vars_["K8S_KUBECONFIG"] = c_;
  auto k = loadKubeconfig(rules());
  EXPECT_EQ(k->source, KubeconfigSource::K8sKubeconfigEnv);
  EXPECT_EQ(k->config.currentContext, "ctx-c");
  auto r = rules();
  r.explicitPath = a_;
  EXPECT_EQ(loadKubeconfig(r)->config.currentContext, "");
  // An explicit path that does not exist is an error, not a fall-through.
  r.explicitPath = path("nope/config");
  auto missing = loadKubeconfig(r);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_NE(missing.error().message.find(path("nope/config")), std::string::npos);
}

TEST_F(KubeconfigTest, NothingFoundIsACodedErrorAndInClusterIsTheLastResort) {
  auto none = loadKubeconfig(rules());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_NE(none.error().message.find(".kube/config"), std::string::npos);
  vars_["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";
  vars_["KUBERNETES_SERVICE_PORT"] = "443";
  auto in = loadKubeconfig(rules());
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->source, KubeconfigSource::InCluster);
}

TEST_F(KubeconfigTest, RelativePathsResolveAgainstTheFileThatNamesThem) {
  write("certs/ca.crt", "CA PEM");
  write("one/certs/client.crt", "CLIENT CERT");
  write("one/certs/client.key", "CLIENT KEY");
  write("two/token", "tok-two\n");
  std::string one = write("one/config", R"(
current-context: cert
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ../certs/ca.crt
contexts:
- {name: cert, context: {cluster: c, user: cert-user}}
- {name: tok, context: {cluster: c, user: token-user}}
users:
- name: cert-user
  user:
    client-certificate: certs/client.crt
    client-key: ./certs/client.key
)");
  // The second file defines a user whose tokenFile is relative to *its* directory.
  std::string two = write("two/config", R"(
users:
- name: token-user
  user:
    tokenFile: token
)");
  vars_["KUBECONFIG"] = one + ":" + two;
  auto loaded = loadKubeconfig(rules());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  auto rc = resolveContext(loaded->config, "", options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->endpoint.kind, net::Endpoint::Kind::Tls);
  EXPECT_EQ(rc->endpoint.tls.caFile, path("certs/ca.crt"));
  EXPECT_TRUE(rc->endpoint.tls.verifyPeer);
  EXPECT_EQ(rc->credentials->kind(), "client-certificate");
  auto creds = rc->credentials->current();
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  EXPECT_EQ(creds->certPem, "CLIENT CERT");
  EXPECT_EQ(creds->keyPem, "CLIENT KEY");
  EXPECT_TRUE(creds->bearerToken.empty());

  auto tok = resolveContext(loaded->config, "tok", options());
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok->credentials->kind(), "token-file");
  EXPECT_EQ(tok->credentials->current()->bearerToken, "tok-two");
}

TEST_F(KubeconfigTest, DataFieldsWinOverFilesAndTokenWinsOverTokenFile) {
  std::string k = write("config", R"(
current-context: x
clusters:
- name: c
  cluster:
    server: https://k.example:6443/prefix/
    certificate-authority: does-not-exist.crt
    certificate-authority-data: )" + base64Encode("CA DATA") +
                                      R"(
    tls-server-name: kubernetes.default
contexts:
- {name: x, context: {cluster: c, user: u, namespace: ns1}}
users:
- name: u
  user:
    client-certificate: missing.crt
    client-certificate-data: )" + base64Encode("CERT DATA") +
                                      R"(
    client-key: missing.key
    client-key-data: )" + base64Encode("KEY DATA") +
                                      R"(
    token: static-token
    tokenFile: missing-token
)");
  auto cfg = loadKubeconfigFile(k);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto rc = resolveContext(cfg.value(), "", options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(rc->endpoint.tls.caPem, "CA DATA");
  EXPECT_EQ(rc->endpoint.tls.serverName, "kubernetes.default");
  EXPECT_EQ(rc->pathPrefix, "/prefix");
  EXPECT_EQ(rc->namespaceName, "ns1");
  auto creds = rc->credentials->current();
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  EXPECT_EQ(creds->certPem, "CERT DATA");
  EXPECT_EQ(creds->keyPem, "KEY DATA");
  EXPECT_EQ(creds->bearerToken, "static-token");
  EXPECT_EQ(rc->credentials->kind(), "token");
  // Nothing of it comes from a file: a 401 cannot be cured by asking again.
  EXPECT_FALSE(rc->credentials->invalidate());
}

TEST_F(KubeconfigTest, InsecureSkipTlsVerify) {
  std::string k = write("config", R"(
current-context: x
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
contexts:
- {name: x, context: {cluster: c}}
)");
  auto rc = resolveContext(loadKubeconfigFile(k).value(), "", options());
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_FALSE(rc->endpoint.tls.verifyPeer);
  EXPECT_EQ(rc->credentials->kind(), "none");  // a context without a user is anonymous
}

TEST_F(KubeconfigTest, ConflictingTlsSettingsAreRefusedNamingFileAndField) {
  write("ca.crt", "CA");
  std::string k = write("config", R"(
current-context: x
clusters:
- name: other
  cluster: {server: "https://o:1"}
- name: c
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority: ca.crt
    insecure-skip-tls-verify: true
contexts:
- {name: x, context: {cluster: c}}
)");
  auto rc = resolveContext(loadKubeconfigFile(k).value(), "", options());
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_EQ(detail(rc.error(), "file"), k);
  EXPECT_EQ(detail(rc.error(), "field"), "clusters[1].cluster.insecure-skip-tls-verify");
  EXPECT_NE(rc.error().message.find(k), std::string::npos);
  EXPECT_NE(rc.error().message.find("clusters[1].cluster.insecure-skip-tls-verify"),
            std::string::npos);
}

TEST_F(KubeconfigTest, MalformedYamlNamesTheFileAndTheLine) {
  std::string k = write("config", "clusters:\n- name: c\n  cluster: {server: [unclosed\n");
  auto cfg = loadKubeconfigFile(k);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_NE(cfg.error().message.find(k), std::string::npos);
  EXPECT_NE(cfg.error().message.find("line "), std::string::npos) << cfg.error().message;
  // A bad file in a KUBECONFIG list fails the whole load.
  std::string good = write("good", "current-context: a\n");
  vars_["KUBECONFIG"] = good + ":" + k;
  auto loaded = loadKubeconfig(rules());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(detail(loaded.error(), "file"), k);
}

TEST_F(KubeconfigTest, WrongTypesAndBadBase64NameTheField) {
  struct Case {
    std::string yaml;
    std::string field;
  };
  std::vector<Case> cases = {
      {"users:\n- name: a\n  user: {}\n- name: b\n  user:\n    client-key: {nested: 1}\n",
       "users[1].user.client-key"},
      {"users:\n- name: a\n  user: {}\n- name: b\n  user:\n    client-key-data: '%%%'\n",
       "users[1].user.client-key-data"},
      {"clusters: {a: b}\n", "clusters"},
      {"contexts:\n- context: {cluster: c}\n", "contexts[0].name"},
      {"contexts:\n- name: x\n- name: x\n", "contexts[1].name"},
      {"clusters:\n- name: c\n  cluster: {insecure-skip-tls-verify: maybe}\n",
       "clusters[0].cluster.insecure-skip-tls-verify"},
      {"users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1, "
       "command: x}\n",
       "users[0].user.exec.interactiveMode"},
      {"users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1alpha1,"
       " command: x}\n",
       "users[0].user.exec.apiVersion"},
      {"users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1beta1,"
       " command: x, env: [{value: 1}]}\n",
       "users[0].user.exec.env[0].name"},
  };
  for (const auto& c : cases) {
    std::string k = write("config", c.yaml);
    auto cfg = loadKubeconfigFile(k);
    ASSERT_FALSE(cfg.ok()) << c.yaml;
    EXPECT_EQ(cfg.error().code, ErrorCode::K8sKubeconfigInvalid) << c.yaml;
    EXPECT_EQ(detail(cfg.error(), "field"), c.field) << cfg.error().message;
    EXPECT_EQ(detail(cfg.error(), "file"), k);
    EXPECT_NE(cfg.error().message.find(k + ": " + c.field), std::string::npos)
        << cfg.error().message;
  }
}

TEST_F(KubeconfigTest, UnusableEntriesOfTheChosenContextNameTheField) {
  write("only.crt", "CERT");
  std::string k = write("config", R"(
current-context: x
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443"}
- name: noserver
  cluster: {}
contexts:
- {name: x, context: {cluster: c, user: u}}
- {name: y, context: {cluster: noserver}}
- {name: z, context: {cluster: c, user: nokey}}
- {name: w, context: {cluster: c, user: legacy}}
users:
- name: nokey
  user: {client-certificate: only.crt}
- name: u
  user: {client-certificate: only.crt, client-key: missing.key}
- name: legacy
  user: {auth-provider: {name: gcp}}
)");
  auto cfg = loadKubeconfigFile(k);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  struct Case {
    std::string context;
    std::string field;
  };
  for (const Case& c :
       {Case{"x", "users[1].user.client-key"}, Case{"y", "clusters[1].cluster.server"},
        Case{"z", "users[0].user.client-key"}, Case{"w", "users[2].user.auth-provider"}}) {
    auto rc = resolveContext(cfg.value(), c.context, options());
    ASSERT_FALSE(rc.ok()) << c.context;
    EXPECT_EQ(rc.error().code, ErrorCode::K8sKubeconfigInvalid) << rc.error().message;
    EXPECT_EQ(detail(rc.error(), "field"), c.field) << rc.error().message;
    EXPECT_EQ(detail(rc.error(), "file"), k);
  }
}

TEST_F(KubeconfigTest, MissingContextUserAndClusterAreNamed) {
  std::string k = write("config", R"(
current-context: ghost
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443"}
contexts:
- {name: nouser, context: {cluster: c, user: bob}}
- {name: nocluster, context: {cluster: gone, user: bob}}
)");
  auto cfg = loadKubeconfigFile(k);
  ASSERT_TRUE(cfg.ok());
  auto ghost = resolveContext(cfg.value(), "", options());
  ASSERT_FALSE(ghost.ok());
  EXPECT_EQ(ghost.error().code, ErrorCode::K8sContextNotFound);
  EXPECT_NE(ghost.error().message.find("'ghost'"), std::string::npos);
  EXPECT_EQ(detail(ghost.error(), "context"), "ghost");

  auto user = resolveContext(cfg.value(), "nouser", options());
  ASSERT_FALSE(user.ok());
  EXPECT_EQ(user.error().code, ErrorCode::K8sKubeconfigInvalid);
  EXPECT_EQ(detail(user.error(), "field"), "contexts[0].context.user");
  EXPECT_EQ(detail(user.error(), "user"), "bob");
  EXPECT_NE(user.error().message.find("user 'bob'"), std::string::npos);
  EXPECT_NE(user.error().message.find(k), std::string::npos);

  auto cluster = resolveContext(cfg.value(), "nocluster", options());
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(detail(cluster.error(), "field"), "contexts[1].context.cluster");
  EXPECT_EQ(detail(cluster.error(), "cluster"), "gone");
}

TEST_F(KubeconfigTest, DeferredConfigReadsNothingUntilAskedAndKeepsItsCredentials) {
  auto r = rules();
  r.explicitPath = path("later/config");
  DeferredClientConfig deferred(r, "", "override-ns", options());
  // The file does not exist yet: constructing read nothing, asking fails, then recovers.
  auto early = deferred.restConfig();
  ASSERT_FALSE(early.ok());
  write("later/config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "http://127.0.0.1:8080"}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]
users: [{name: u, user: {token: t}}]
)");
  auto a = deferred.restConfig();
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->endpoint.kind, net::Endpoint::Kind::Tcp);
  EXPECT_EQ(a->namespaceName, "override-ns");
  auto b = deferred.restConfig();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->credentials.get(), b->credentials.get());
}

TEST(ServerUrl, SplitsHostPortAndPrefix) {
  auto a = parseServerUrl("https://[::1]:6443");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first.host, "::1");
  EXPECT_EQ(a->second, "");
  auto b = parseServerUrl("http://proxy:8001/k8s/clusters/c-1/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first.kind, net::Endpoint::Kind::Tcp);
  EXPECT_EQ(b->second, "/k8s/clusters/c-1");
  EXPECT_FALSE(parseServerUrl("ftp://x").ok());
  EXPECT_FALSE(parseServerUrl("https://x/p?q=1").ok());
}

}  // namespace
}  // namespace agentpane::k8s
