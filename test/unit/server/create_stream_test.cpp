// POST /api/sandboxes: the streamed form (application/x-ndjson progress lines, then the
// outcome), cancellation when the client leaves or the server stops, and creates that wait
// without starving the worker pool.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "unit/server/server_fake.hpp"
#include "unit/server/test_server.hpp"

namespace agentpane::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::vector<json> lines(const std::string& body) {
  std::vector<json> out;
  std::istringstream in(body);
  for (std::string l; std::getline(in, l);) {
    auto j = json::parse(l, nullptr, false);
    EXPECT_TRUE(j.is_object()) << "not a JSON line: " << l;
    out.push_back(std::move(j));
  }
  return out;
}

// Holds every create inside the provider until the create's stop is requested or the test
// releases it; counts creates that entered and stops that were seen.
struct CreateHold {
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  int stopsSeen = 0;
  bool released = false;

  void install(ServerFake& fake) {
    fake.onCreateWithControl = [this](const SandboxSpec&, const CreateControl& control) {
      control.progress("waiting", "held by the test");
      std::unique_lock lk(mu);
      ++entered;
      cv.notify_all();
      std::stop_callback wake(control.stop, [this] {
        std::lock_guard l(mu);
        cv.notify_all();
      });
      cv.wait_for(lk, 20s, [&] { return released || control.cancelled(); });
      if (control.cancelled()) ++stopsSeen;
      cv.notify_all();
    };
  }
  bool waitEntered(int n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return entered >= n; });
  }
  bool waitStops(int n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return stopsSeen >= n; });
  }
  void release() {
    std::lock_guard lk(mu);
    released = true;
    cv.notify_all();
  }
};

class CreateStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake = std::make_shared<ServerFake>(ProviderType::Docker);
    ts = std::make_unique<TestServer>(std::vector<std::shared_ptr<SandboxProvider>>{fake});
  }
  void TearDown() override {
    hold.release();
    ts.reset();
  }
  http::request<http::string_body> streamedCreate(const std::string& project) {
    auto c = ts->client();
    auto req = c.make(http::verb::post, "/api/sandboxes",
                      json{{"projectPath", ts->dir().mkdir(project)}}.dump());
    req.set(http::field::accept, "application/x-ndjson");
    return req;
  }
  // Waits until the audit holds `n` failed creates with `code`: the creates have settled.
  bool auditedFailures(const std::string& code, int n) {
    for (int i = 0; i < 200; ++i) {
      auto audit = ts->client().get("/api/audit");
      int seen = 0;
      for (const auto& e : audit.data()) {
        if (e.value("action", "") == "sandbox.create" && !e.value("ok", true) &&
            e.dump().find(code) != std::string::npos)
          ++seen;
      }
      if (seen >= n) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::shared_ptr<ServerFake> fake;
  std::unique_ptr<TestServer> ts;
  CreateHold hold;
};

TEST_F(CreateStreamTest, StreamsPhasesThenTheOutcome) {
  HttpConnection conn(ts->port());
  auto res = conn.send(streamedCreate("p1"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.headers["content-type"], "application/x-ndjson");
  EXPECT_NE(res.headers["transfer-encoding"].find("chunked"), std::string::npos);
  auto ls = lines(res.body);
  ASSERT_GE(ls.size(), 3u) << res.body;
  EXPECT_EQ(ls.front()["type"], "progress");
  EXPECT_EQ(ls.front()["phase"], "accepted");
  const std::string id = ls.front().value("sandboxId", "");
  EXPECT_FALSE(id.empty());
  bool sawReady = false;
  for (std::size_t i = 0; i + 1 < ls.size(); ++i) {
    EXPECT_EQ(ls[i]["type"], "progress") << ls[i];
    EXPECT_EQ(ls[i].value("sandboxId", ""), id) << ls[i];
    EXPECT_TRUE(ls[i]["elapsedMs"].is_number()) << ls[i];
    sawReady = sawReady || ls[i]["phase"] == "ready";
  }
  EXPECT_TRUE(sawReady) << res.body;
  const json& result = ls.back();
  EXPECT_EQ(result["type"], "result");
  EXPECT_EQ(result["status"], 201);
  EXPECT_EQ(result["ok"], true);
  EXPECT_EQ(result["data"]["id"], id) << result;
  EXPECT_EQ(result["data"]["status"], "running") << result;
  // The connection is whole: the next request on it is answered.
  auto c = ts->client();
  auto next = conn.send(c.make(http::verb::get, "/api/sandboxes/" + id));
  EXPECT_EQ(next.status, 200) << next.body;
}

TEST_F(CreateStreamTest, PlainCreateIsOneEnvelopeAsBefore) {
  auto c = ts->client();
  auto r = c.post("/api/sandboxes", {{"projectPath", ts->dir().mkdir("p2")}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.data()["status"], "running");
}

TEST_F(CreateStreamTest, AFailureIsTheResultLineWithItsCodeAndStatus) {
  fake->failNext("create", Error(ErrorCode::SandboxImageNotFound, "no such image"));
  HttpConnection conn(ts->port());
  auto res = conn.send(streamedCreate("p3"));
  ASSERT_EQ(res.status, 200) << res.body;
  auto ls = lines(res.body);
  ASSERT_FALSE(ls.empty());
  const json& result = ls.back();
  EXPECT_EQ(result["type"], "result");
  EXPECT_EQ(result["ok"], false);
  EXPECT_EQ(result["status"], 400);
  EXPECT_EQ(result["error"]["code"], "SANDBOX_IMAGE_NOT_FOUND") << result;
  EXPECT_EQ(ts->client().get("/api/sandboxes").data().size(), 0u);
}

TEST_F(CreateStreamTest, AClientThatLeavesCancelsTheCreateAndNothingIsKept) {
  hold.install(*fake);
  for (bool streamed : {true, false}) {
    SCOPED_TRACE(streamed ? "streamed" : "plain");
    const int before = hold.stopsSeen;
    {
      HttpConnection conn(ts->port());
      ASSERT_TRUE(conn.connect());
      auto req = streamedCreate(streamed ? "leave-s" : "leave-p");
      if (!streamed) req.erase(http::field::accept);
      req.prepare_payload();
      std::ostringstream raw;
      raw << req;
      ASSERT_TRUE(conn.sendRaw(raw.str()));
      ASSERT_TRUE(hold.waitEntered(before + 1));
    }  // the client goes away mid-create
    ASSERT_TRUE(hold.waitStops(before + 1)) << "the create never saw its stop";
  }
  EXPECT_TRUE(auditedFailures("SANDBOX_CREATE_CANCELLED", 2));
  EXPECT_EQ(ts->client().get("/api/sandboxes").data().size(), 0u);
  EXPECT_EQ(fake->size(), 0u);
}

TEST_F(CreateStreamTest, WaitingCreatesDoNotStarveTheWorkers) {
  // More creates held than the server has workers (4): other requests are still answered.
  hold.install(*fake);
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 6; ++i) {
    auto conn = std::make_unique<HttpConnection>(ts->port());
    ASSERT_TRUE(conn->connect());
    auto req = streamedCreate("starve-" + std::to_string(i));
    req.prepare_payload();
    std::ostringstream raw;
    raw << req;
    ASSERT_TRUE(conn->sendRaw(raw.str()));
    conns.push_back(std::move(conn));
  }
  ASSERT_TRUE(hold.waitEntered(6));
  auto list = ts->client().get("/api/sandboxes");
  EXPECT_EQ(list.status, 200) << list.error;
  auto health = ts->client().get("/api/health");
  EXPECT_EQ(health.status, 200) << health.error;
  hold.release();
  for (auto& conn : conns) {
    auto res = conn->readResponse();
    ASSERT_EQ(res.status, 200) << res.error;
    auto ls = lines(res.body);
    ASSERT_FALSE(ls.empty());
    EXPECT_EQ(ls.back()["status"], 201) << ls.back();
    bool sawWaiting = false;
    for (const auto& l : ls)
      sawWaiting = sawWaiting || l.value("phase", "") == "waiting";
    EXPECT_TRUE(sawWaiting) << res.body;  // a provider's own phase reaches the client
  }
  EXPECT_EQ(ts->client().get("/api/sandboxes").data().size(), 6u);
}

TEST_F(CreateStreamTest, StoppingTheServerCancelsCreatesInFlight) {
  hold.install(*fake);
  HttpConnection conn(ts->port());
  ASSERT_TRUE(conn.connect());
  auto req = streamedCreate("stopping");
  req.prepare_payload();
  std::ostringstream raw;
  raw << req;
  ASSERT_TRUE(conn.sendRaw(raw.str()));
  ASSERT_TRUE(hold.waitEntered(1));
  std::thread stopper([&] { ts->server().stop(); });
  auto res = conn.readResponse();
  stopper.join();
  ASSERT_EQ(res.status, 200) << res.error;
  auto ls = lines(res.body);
  ASSERT_FALSE(ls.empty());
  EXPECT_EQ(ls.back()["error"]["code"], "SANDBOX_CREATE_CANCELLED") << res.body;
  EXPECT_EQ(ls.back()["status"], 503);
  EXPECT_EQ(hold.stopsSeen, 1);
  EXPECT_EQ(fake->size(), 0u);
}

}  // namespace
}  // namespace agentpane::testing
