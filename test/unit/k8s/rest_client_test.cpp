// RestClient against a scripted apiserver: credentials on each call and the 401 retry,
// status mapping end to end, query options (selectors, paging, apply, dry-run, delete),
// connection reuse (counted on the server), bounded connects and responses.
#include <gtest/gtest.h>

#include <map>

#include "k8s/rest_client.hpp"
#include "unit/k8s/fake_apiserver.hpp"
#include "unit/k8s/test_support.hpp"

namespace agentpane::k8s {
namespace {

using agentpane::testing::FakeApiServer;
using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using nlohmann::json;
using testing::clientFor;
using testing::ScriptedTokens;

const std::string kPod = R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"p1"}})";

std::string statusBody(int code, const std::string& reason, const std::string& msg) {
  return json{{"kind", "Status"},
              {"status", "Failure"},
              {"code", code},
              {"reason", reason},
              {"message", msg}}
      .dump();
}

// Path and decoded-enough query of a request target: "a=b&c=d" -> map.
std::map<std::string, std::string> queryOf(const std::string& target) {
  std::map<std::string, std::string> q;
  auto qm = target.find('?');
  if (qm == std::string::npos) return q;
  std::string rest = target.substr(qm + 1);
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    auto amp = rest.find('&', pos);
    if (amp == std::string::npos) amp = rest.size();
    std::string kv = rest.substr(pos, amp - pos);
    auto eq = kv.find('=');
    if (eq != std::string::npos) q[kv.substr(0, eq)] = kv.substr(eq + 1);
    pos = amp + 1;
  }
  return q;
}

TEST(RestClient, GetSendsTheBearerTokenAndParsesJson) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, kPod));
    return true;
  });
  auto creds = std::make_shared<ScriptedTokens>(std::vector<std::string>{"tok-1"});
  auto client = clientFor(server.port(), creds);
  ASSERT_TRUE(client);
  auto r = client->get(resourcePath("v1", "pods", "ns1", "p1"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["metadata"]["name"], "p1");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/api/v1/namespaces/ns1/pods/p1");
  EXPECT_EQ(seen[0].headers["authorization"], "Bearer tok-1");
  EXPECT_EQ(seen[0].headers["accept"], "application/json");
}

TEST(RestClient, ResourcePaths) {
  EXPECT_EQ(resourcePath("v1", "namespaces"), "/api/v1/namespaces");
  EXPECT_EQ(resourcePath("apps/v1", "deployments", "a", "b", "scale"),
            "/apis/apps/v1/namespaces/a/deployments/b/scale");
  EXPECT_EQ(resourcePath("v1", "pods", "ns", "p", "exec"), "/api/v1/namespaces/ns/pods/p/exec");
}

TEST(RestClient, A401InvalidatesAndRetriesOnceWithFreshCredentials) {
  FakeApiServer server([](const FakeRequest& r, FakeConn& c) {
    if (r.headers.at("authorization") == "Bearer fresh")
      c.write(FakeHttpServer::response(200, kPod));
    else
      c.write(FakeHttpServer::response(401, statusBody(401, "Unauthorized", "Unauthorized")));
    return true;
  });
  auto creds = std::make_shared<ScriptedTokens>(std::vector<std::string>{"stale", "fresh"});
  auto client = clientFor(server.port(), creds);
  auto r = client->get("/api/v1/namespaces/ns/pods/p1");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(creds->invalidations.load(), 1);
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].headers["authorization"], "Bearer stale");
  EXPECT_EQ(seen[1].headers["authorization"], "Bearer fresh");
}

TEST(RestClient, A401IsRetriedOnlyOnceAndNotWhenNothingWouldChange) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(401, statusBody(401, "Unauthorized", "Unauthorized")));
    return true;
  });
  {
    // invalidate() says a retry may help, every time: still one retry only.
    auto creds = std::make_shared<ScriptedTokens>(std::vector<std::string>{"a", "b", "c"});
    auto r = clientFor(server.port(), creds)->get("/api/v1/namespaces");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::K8sAuthFailed);
    EXPECT_EQ(r.error().message, "Unauthorized");
    EXPECT_EQ(server.requests().size(), 2u);
  }
  {
    // A static token: invalidate() returns false, so no retry.
    auto creds = std::make_shared<ScriptedTokens>(std::vector<std::string>{"static"});
    auto r = clientFor(server.port(), creds)->get("/api/v1/namespaces");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::K8sAuthFailed);
    EXPECT_EQ(creds->invalidations.load(), 1);
    EXPECT_EQ(server.requests().size(), 3u);
  }
}

TEST(RestClient, ErrorsCarryTheApiserversMessageAndCode) {
  FakeApiServer server([](const FakeRequest& r, FakeConn& c) {
    if (r.target.find("/missing") != std::string::npos)
      c.write(
          FakeHttpServer::response(404, statusBody(404, "NotFound", "pods \"missing\" not found")));
    else if (r.method == "POST")
      c.write(FakeHttpServer::response(
          409, statusBody(409, "AlreadyExists", "configmaps \"c\" already exists")));
    else
      c.write(FakeHttpServer::response(
          403, statusBody(403, "Forbidden",
                          "pods is forbidden: violates PodSecurity \"restricted:latest\"")));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  auto nf = client->get("/api/v1/namespaces/ns/pods/missing");
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error().code, ErrorCode::K8sNotFound);
  EXPECT_EQ(nf.error().message, "pods \"missing\" not found");
  EXPECT_EQ(nf.error().details.at("reason"), "NotFound");
  auto conflict = client->create("/api/v1/namespaces/ns/configmaps", json{{"kind", "ConfigMap"}});
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, ErrorCode::K8sConflict);
  auto psa = client->apply("/api/v1/namespaces/ns/pods/p", json{{"kind", "Pod"}});
  ASSERT_FALSE(psa.ok());
  EXPECT_EQ(psa.error().code, ErrorCode::K8sPodSecurityViolation);
}

TEST(RestClient, ListSendsSelectorsAndListAllFollowsContinueTokens) {
  // Three pages of two items; the first page's resourceVersion is the list's.
  FakeApiServer server([](const FakeRequest& r, FakeConn& c) {
    auto q = queryOf(r.target);
    std::string cont = q.count("continue") ? q["continue"] : "";
    int page = cont.empty() ? 0 : std::stoi(cont.substr(4));
    json items = json::array();
    for (int i = 0; i < 2; ++i)
      items.push_back({{"metadata", {{"name", "cm-" + std::to_string(page * 2 + i)}}}});
    json meta = {{"resourceVersion", std::to_string(100 + page)}};
    if (page < 2) meta["continue"] = "page" + std::to_string(page + 1);
    c.write(FakeHttpServer::response(
        200, json{{"kind", "ConfigMapList"}, {"metadata", meta}, {"items", items}}.dump()));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  ListOptions opts;
  opts.labelSelector = "app=web,tier!=db";
  opts.fieldSelector = "metadata.name=x";
  opts.limit = 2;
  auto one = client->list("/api/v1/namespaces/ns/configmaps", opts);
  ASSERT_TRUE(one.ok()) << one.error().describe();
  EXPECT_EQ((*one)["metadata"]["continue"], "page1");
  auto q = queryOf(server.requests().at(0).target);
  EXPECT_EQ(q["labelSelector"], "app%3Dweb%2Ctier%21%3Ddb");
  EXPECT_EQ(q["fieldSelector"], "metadata.name%3Dx");
  EXPECT_EQ(q["limit"], "2");

  auto all = client->listAll("/api/v1/namespaces/ns/configmaps", opts);
  ASSERT_TRUE(all.ok()) << all.error().describe();
  ASSERT_EQ((*all)["items"].size(), 6u);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ((*all)["items"][i]["metadata"]["name"], "cm-" + std::to_string(i));
  EXPECT_EQ((*all)["metadata"]["resourceVersion"], "100");
  EXPECT_FALSE((*all)["metadata"].contains("continue"));
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(queryOf(seen[2].target)["continue"], "page1");
  EXPECT_EQ(queryOf(seen[3].target)["continue"], "page2");
  EXPECT_EQ(queryOf(seen[3].target)["labelSelector"], "app%3Dweb%2Ctier%21%3Ddb");
}

TEST(RestClient, ApplyDryRunPatchAndDeleteOptionsOnTheWire) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, R"({"kind":"ConfigMap"})"));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  const std::string cm = "/api/v1/namespaces/ns/configmaps/c";
  json obj = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "c"}}}};
  ASSERT_TRUE(client->apply(cm, obj).ok());
  ApplyOptions dry;
  dry.dryRun = true;
  ASSERT_TRUE(client->apply(cm, obj, dry).ok());
  ASSERT_TRUE(client->patch(cm, json{{"data", {{"k", "v"}}}}, PatchType::Merge).ok());
  DeleteOptions del;
  del.gracePeriodSeconds = 0;
  del.propagationPolicy = "Foreground";
  ASSERT_TRUE(client->remove(cm, del).ok());
  WriteOptions w;
  w.dryRun = true;
  ASSERT_TRUE(client->create("/api/v1/namespaces/ns/configmaps", obj, w).ok());

  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].method, "PATCH");
  EXPECT_EQ(seen[0].headers["content-type"], "application/apply-patch+yaml");
  EXPECT_EQ(json::parse(seen[0].body), obj);
  auto q0 = queryOf(seen[0].target);
  EXPECT_EQ(q0["fieldManager"], "agentpane");
  EXPECT_EQ(q0["force"], "true");
  EXPECT_EQ(q0.count("dryRun"), 0u);
  EXPECT_EQ(queryOf(seen[1].target)["dryRun"], "All");
  EXPECT_EQ(seen[2].headers["content-type"], "application/merge-patch+json");
  EXPECT_EQ(seen[3].method, "DELETE");
  auto q3 = queryOf(seen[3].target);
  EXPECT_EQ(q3["gracePeriodSeconds"], "0");
  EXPECT_EQ(q3["propagationPolicy"], "Foreground");
  EXPECT_EQ(seen[4].method, "POST");
  EXPECT_EQ(queryOf(seen[4].target)["dryRun"], "All");
}

TEST(RestClient, AWarmClientReusesOneConnection) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, kPod));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  for (int i = 0; i < 25; ++i) {
    auto r = client->get("/api/v1/namespaces/ns/pods/p1");
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
  }
  EXPECT_EQ(server.requests().size(), 25u);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(client->connectionsOpened(), 1u);
}

TEST(RestClient, ConnectionCloseFromTheServerIsHonoured) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, kPod, "Connection: close\r\n"));
    return false;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(client->get("/api/v1/x").ok());
  EXPECT_EQ(server.connections(), 3);
}

TEST(RestClient, AnIdleConnectionTheServerDroppedIsReplacedTransparently) {
  // The server closes each connection right after answering, without saying so: the next
  // call finds the pooled connection dead (or fails on it) and uses a fresh one.
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, kPod));
    return false;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  for (int i = 0; i < 5; ++i) {
    auto r = client->get("/api/v1/x");
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
  }
  EXPECT_EQ(server.requests().size(), 5u);
  EXPECT_EQ(server.connections(), 5);
}

TEST(RestClient, AReusedConnectionClosedUnderTheRequestIsRetriedOnlyWhenIdempotent) {
  // Each connection answers its first request and closes on the second without a word: the
  // race where the server drops an idle connection as the client reuses it (the liveness
  // check before reuse cannot see it yet). Each connection has its own server thread.
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    thread_local int served = 0;
    if (served++ > 0) return false;
    c.write(FakeHttpServer::response(200, kPod));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  ASSERT_TRUE(client->get("/api/v1/x").ok());
  server.waitForRequests(1);
  auto again = client->get("/api/v1/x");  // reused, cut, sent again on a fresh connection
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(server.connections(), 2);
  // A POST is not sent twice: it fails as the connection did.
  auto post = client->create("/api/v1/namespaces/ns/configmaps", json{{"kind", "ConfigMap"}});
  ASSERT_FALSE(post.ok());
  EXPECT_EQ(post.error().code, ErrorCode::K8sUnreachable) << post.error().describe();
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.connections(), 2);
}

TEST(RestClient, ConcurrentCallsEachGetAnAnswer) {
  FakeApiServer server([](const FakeRequest& r, FakeConn& c) {
    c.write(FakeHttpServer::response(200, json{{"path", r.target}}.dump()));
    return true;
  });
  auto client =
      clientFor(server.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string p = "/api/v1/t" + std::to_string(t) + "/" + std::to_string(i);
        auto r = client->get(p);
        if (r.ok() && (*r)["path"] == p) ++good;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(good.load(), 40);
  EXPECT_LE(server.connections(), 4);  // never more connections than calls in flight
}

TEST(RestClient, ResponsesAreBounded) {
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, std::string(4096, ' ') + "{}"));
    return true;
  });
  RestClientOptions opts;
  opts.maxResponseBytes = 1024;
  auto client = clientFor(server.port(),
                          std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}), opts);
  auto r = client->get("/api/v1/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::PayloadTooLarge);
}

TEST(RestClient, NothingListeningIsClusterUnreachable) {
  unsigned short port = 0;
  {
    FakeApiServer gone([](const FakeRequest&, FakeConn&) { return false; });
    port = gone.port();
  }  // closed: connecting is refused
  auto client = clientFor(port, std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  auto r = client->get("/api/v1/namespaces");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sUnreachable);
  EXPECT_EQ(errorName(r.error().code), "K8S_CLUSTER_UNREACHABLE");
}

TEST(RestClient, AServerThatNeverFinishesTheHandshakeIsUnreachableNotATimeout) {
  // Accepts TCP and never answers the TLS ClientHello. The call's own deadline is long: only
  // the separate connect bound can make this K8sUnreachable.
  FakeHttpServer silent([](const FakeRequest&, FakeConn&) {}, FakeHttpServer::Kind::Tcp);
  RestConfig cfg = testing::configFor(
      silent.port(), std::make_shared<ScriptedTokens>(std::vector<std::string>{"t"}));
  net::TlsOptions tls;
  tls.verifyPeer = false;
  cfg.endpoint = net::Endpoint::tlsTcp("127.0.0.1", silent.port(), tls);
  cfg.timeout = std::chrono::minutes(5);
  RestClientOptions opts;
  opts.connectTimeout = std::chrono::milliseconds(300);
  auto client = RestClient::create(cfg, opts);
  ASSERT_TRUE(client.ok());
  auto r = client.value()->get("/api/v1/namespaces");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sUnreachable) << r.error().describe();
}

TEST(RestClient, CredentialFailuresAreAuthErrors) {
  class Failing final : public CredentialSource {
   public:
    Result<Credentials> current() override {
      return Error(ErrorCode::Internal, "exec plugin exited with 1");
    }
    bool invalidate() override { return false; }
    [[nodiscard]] std::string kind() const override { return "exec"; }
  };
  FakeApiServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, "{}"));
    return true;
  });
  auto client = clientFor(server.port(), std::make_shared<Failing>());
  auto r = client->get("/api/v1/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sAuthFailed);
  EXPECT_EQ(server.requests().size(), 0u);
}

}  // namespace
}  // namespace agentpane::k8s
