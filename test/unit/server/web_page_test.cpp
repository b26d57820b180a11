// The web page's server side: built assets served at `/` (StaticFiles, and through a real
// Server), and GET/PUT /api/settings with the default provider persisted in the store.
#include <gtest/gtest.h>

#include <fstream>

#include "server/static_files.hpp"
#include "unit/server/fake_server_fixture.hpp"

namespace agentpane::testing {
namespace fs = std::filesystem;
using server::StaticFiles;

namespace {

void writeFile(const fs::path& p, const std::string& body) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << body;
}

std::string headerOf(const server::Reply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

// A dist/ as Vite writes it.
fs::path makeDist(const TempDir& dir) {
  fs::path dist = dir.path() / "dist";
  writeFile(dist / "index.html", "<!doctype html><title>AgentPane</title>");
  writeFile(dist / "assets" / "index-AbC123.js", "console.log(1)");
  writeFile(dist / "assets" / "index-AbC123.css", "body{}");
  writeFile(dist / "favicon.svg", "<svg/>");
  return dist;
}

}  // namespace

TEST(StaticFiles, ContentTypesAndCaching) {
  TempDir dir;
  auto files = StaticFiles::load(makeDist(dir));
  ASSERT_TRUE(files.available()) << files.problem();
  EXPECT_EQ(files.fileCount(), 4u);

  auto index = files.serve("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->contentType, "text/html; charset=utf-8");
  EXPECT_EQ(headerOf(*index, "Cache-Control"), "no-cache");
  EXPECT_NE(headerOf(*index, "Content-Security-Policy").find("default-src 'self'"),
            std::string::npos);

  auto js = files.serve("/assets/index-AbC123.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->body, "console.log(1)");
  EXPECT_EQ(js->contentType, "text/javascript; charset=utf-8");
  EXPECT_EQ(headerOf(*js, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(files.serve("/assets/index-AbC123.css")->contentType, "text/css; charset=utf-8");
  auto svg = files.serve("/favicon.svg");
  EXPECT_EQ(svg->contentType, "image/svg+xml");
  EXPECT_EQ(headerOf(*svg, "Cache-Control"), "no-cache");  // not hashed: revalidated
}

TEST(StaticFiles, PageRoutesFallBackToIndexMissingFilesAreNotFound) {
  TempDir dir;
  auto files = StaticFiles::load(makeDist(dir));
  auto route = files.serve("/sandboxes/sbx-1");
  ASSERT_TRUE(route);
  EXPECT_EQ(route->status, 200);
  EXPECT_EQ(route->body, "<!doctype html><title>AgentPane</title>");
  auto missing = files.serve("/assets/gone-123.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("NOT_FOUND"), std::string::npos);
}

TEST(StaticFiles, ApiAndMetricsAreNotThePages) {
  TempDir dir;
  auto files = StaticFiles::load(makeDist(dir));
  EXPECT_FALSE(files.serve("/api"));
  EXPECT_FALSE(files.serve("/api/nope"));
  EXPECT_FALSE(files.serve("/metrics"));
  EXPECT_TRUE(files.serve("/apis"));  // only the /api tree is excluded
}

TEST(StaticFiles, NotBuiltSaysHowToBuild) {
  TempDir dir;
  auto none = StaticFiles::load(dir.path() / "no-such-dir");
  EXPECT_FALSE(none.available());
  EXPECT_NE(none.problem().find("not a directory"), std::string::npos);
  auto r = none.serve("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("npm --prefix web"), std::string::npos);

  fs::create_directories(dir.path() / "empty");
  auto empty = StaticFiles::load(dir.path() / "empty");
  EXPECT_FALSE(empty.available());
  EXPECT_NE(empty.problem().find("no index.html"), std::string::npos);
}

TEST(StaticFiles, LinksOutOfTheRootAreNotServed) {
  TempDir dir;
  fs::path dist = makeDist(dir);
  writeFile(dir.path() / "secret.txt", "secret");
  fs::create_symlink(dir.path() / "secret.txt", dist / "secret.txt");
  auto files = StaticFiles::load(dist);
  auto r = files.serve("/secret.txt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST(StaticFiles, TooLargeATreeIsNotServed) {
  TempDir dir;
  auto files = StaticFiles::load(makeDist(dir), /*maxTotalBytes=*/16);
  EXPECT_FALSE(files.available());
  EXPECT_NE(files.problem().find("more than 16 bytes"), std::string::npos);
}

TEST(WebPageServer, ServedAtTheRootBesideTheApi) {
  TempDir dir;
  auto options = testServerOptions();
  options.webRoot = makeDist(dir);
  TestServer ts({std::make_shared<ServerFake>(ProviderType::Docker)}, options);
  auto c = ts.client();
  c.sendToken = false;  // the page loads before anyone logs in
  auto index = c.get("/");
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(index.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.header("cache-control"), "no-cache");
  auto js = c.get("/assets/index-AbC123.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.header("cache-control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(c.get("/profiles").status, 200);
  // The API is untouched: its 404s and 401s stay JSON.
  auto api = c.get("/api/nope");
  EXPECT_EQ(api.status, 404);
  EXPECT_EQ(api.header("content-type"), "application/json");
  EXPECT_EQ(c.get("/api/sandboxes").status, 401);
  EXPECT_EQ(c.get("/metrics").status, 401);
  // Only GET reads the page.
  EXPECT_EQ(c.post("/profiles", nlohmann::json::object()).status, 404);
}

TEST(WebPageServer, StartsWithoutTheBuiltPage) {
  TempDir dir;
  auto options = testServerOptions();
  options.webRoot = dir.path() / "web" / "dist";
  TestServer ts({std::make_shared<ServerFake>(ProviderType::Docker)}, options);
  auto c = ts.client();
  auto r = c.get("/");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("not built"), std::string::npos);
  EXPECT_EQ(c.get("/api/health").status, 200);
}

class SettingsTest : public FakeServerTest {};

TEST_F(SettingsTest, DockerByDefaultWithItsHealth) {
  auto c = ts->client();
  auto r = c.get("/api/settings");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.data()["defaultProvider"], "docker");
  EXPECT_EQ(r.data()["k8sEnabled"], false);
  EXPECT_EQ(r.data()["providers"]["docker"]["registered"], true);
  EXPECT_TRUE(r.data()["providers"]["docker"]["reachable"].is_boolean());
  EXPECT_EQ(r.data()["providers"]["kubernetes"]["registered"], false);
  auto anon = ts->client();
  anon.sendToken = false;
  EXPECT_EQ(anon.get("/api/settings").status, 401);
}

// The limits a page's controls hold to are the server's: a profile at each bound is accepted,
// one past it refused.
TEST_F(SettingsTest, LimitsAreTheOnesProfilesAreHeldTo) {
  auto c = ts->client();
  const auto limits = c.get("/api/settings").data()["limits"];
  for (const char* f : {"memoryMb", "cpu", "pidsLimit", "timeoutMinutes"}) {
    ASSERT_TRUE(limits.contains(f)) << limits.dump();
    ASSERT_LT(limits[f]["min"].get<double>(), limits[f]["max"].get<double>()) << f;
  }
  int n = 0;
  for (const char* f : {"memoryMb", "pidsLimit", "timeoutMinutes", "cpu"}) {
    for (const char* edge : {"min", "max"}) {
      nlohmann::json body{{"name", "edge-" + std::to_string(n++)}};
      body[f] = limits[f][edge];
      EXPECT_EQ(c.post("/api/sandbox-configs", body).status, 201) << f << " " << edge;
      const double past = limits[f][edge].get<double>() + (std::string(edge) == "min" ? -1 : 1);
      body["name"] = "past-" + std::to_string(n++);
      if (std::string(f) == "cpu") {
        body[f] = past;
      } else {
        body[f] = static_cast<long long>(past);
      }
      EXPECT_EQ(c.post("/api/sandbox-configs", body).code(), "VALIDATION_ERROR")
          << f << " " << edge;
    }
  }
}

TEST_F(SettingsTest, KubernetesRefusedWhileOff) {
  auto c = ts->client();
  auto r = c.request(boost::beast::http::verb::put, "/api/settings",
                     R"({"defaultProvider":"kubernetes"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["code"], "K8S_DISABLED");
  EXPECT_EQ(c.get("/api/settings").data()["defaultProvider"], "docker");
}

TEST_F(SettingsTest, BadBodiesAreValidationErrors) {
  auto c = ts->client();
  for (const char* body : {R"({"defaultProvider":"podman"})", R"({"defaultProvider":1})",
                           R"({"defaultProvider":"docker","x":1})", R"({})", "[]"}) {
    auto r = c.request(boost::beast::http::verb::put, "/api/settings", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_EQ(r.json()["error"]["code"], "VALIDATION_ERROR") << body;
  }
  EXPECT_EQ(c.get("/api/settings?x=1").status, 400);
}

TEST(Settings, KubernetesPersistedWhenOn) {
  ServiceOptions so;
  so.enableK8s = true;
  TestServer ts({std::make_shared<ServerFake>(ProviderType::Docker)}, testServerOptions(), so);
  auto c = ts.client();
  auto r = c.request(boost::beast::http::verb::put, "/api/settings",
                     R"({"defaultProvider":"kubernetes"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.data()["defaultProvider"], "kubernetes");
  EXPECT_EQ(r.data()["k8sEnabled"], true);
  EXPECT_EQ(c.get("/api/settings").data()["defaultProvider"], "kubernetes");
  auto stored = ts.service().defaultProvider();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored.value(), ProviderType::Kubernetes);
  // The change is audited with the value it replaced.
  auto audit = c.get("/api/audit?event=settings.update");
  ASSERT_EQ(audit.status, 200) << audit.body;
  const auto entries = audit.data();
  ASSERT_EQ(entries.size(), 1u) << audit.body;
  const auto& e = entries[0];
  EXPECT_EQ(e["ok"], true);
  EXPECT_EQ(e["actor"], "api");
  EXPECT_EQ(e["detail"]["from"], "docker");
  EXPECT_EQ(e["detail"]["to"], "kubernetes");
}

TEST(StoreSettings, PutGetAndOverwrite) {
  TempDir dir;
  auto s = Store::openFile((dir.path() / "state.db").string());
  ASSERT_TRUE(s.ok()) << s.error().describe();
  auto& store = *s.value();
  auto none = store.getSetting("default_provider");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store.putSetting("default_provider", "kubernetes", 10).ok());
  ASSERT_TRUE(store.putSetting("default_provider", "docker", 11).ok());
  auto v = store.getSetting("default_provider");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "docker");
}

}  // namespace agentpane::testing
