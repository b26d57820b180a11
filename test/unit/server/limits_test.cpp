// Bounds: body and header size, and what the connection does after a refusal.
#include <gtest/gtest.h>

#include "unit/server/fake_server_fixture.hpp"

#include <algorithm>
#include <random>

namespace agentpane::testing {
namespace {

using LimitsTest = FakeServerTest;

TEST_F(LimitsTest, RandomMethodsBeforeAuthenticationDoNotGrowMetrics) {
  auto c = ts->client();
  auto series = [&] {
    auto r = c.get("/metrics");
    EXPECT_EQ(r.status, 200);
    return std::count(r.body.begin(), r.body.end(), '\n');
  };
  HttpConnection conn(c.port());
  ASSERT_TRUE(conn.connect());
  std::mt19937 rng(7);
  auto burst = [&](int n) {
    std::string all;
    for (int i = 0; i < n; ++i) {
      std::string method;
      for (int k = 0; k < 8; ++k)
        method += static_cast<char>('A' + rng() % 26);
      all += method + " /api/sandboxes HTTP/1.1\r\nHost: " + c.host() + "\r\n\r\n";
    }
    ASSERT_TRUE(conn.sendRaw(all));
    for (int i = 0; i < n; ++i) {
      auto r = conn.readResponse();
      ASSERT_EQ(r.status, 405) << r.error;
    }
  };
  // Every series this test will see exists before the baseline: the "other" method of the
  // refused requests, and /metrics itself (a scrape is counted after it has been rendered,
  // so the first scrape shows no /metrics series and the second does).
  burst(1);
  (void)series();
  const auto before = series();
  for (int i = 0; i < 100; ++i)
    burst(100);  // 10,000 requests, each with a method of its own
  EXPECT_EQ(series(), before);
  auto text = c.get("/metrics").body;
  EXPECT_NE(text.find("method=\"other\""), std::string::npos);
  // A failed audit write is counted, not silent.
  EXPECT_NE(text.find("agentpane_audit_write_failures_total{sink=\"ledger\"} "), std::string::npos);
  EXPECT_NE(text.find("agentpane_audit_write_failures_total{sink=\"index\"} "), std::string::npos);
  EXPECT_NE(text.find("agentpane_audit_prune_failures_total "), std::string::npos);
}

TEST_F(LimitsTest, TwentyMegabyteBodyIs413) {
  auto c = ts->client();
  std::string big(20u << 20, 'x');
  auto r = c.postRaw("/api/sandboxes", big);
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.code(), "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(fake->calls().size(), 0u);
}

TEST_F(LimitsTest, OversizedContentLengthIsRefusedBeforeTheBodyIsSent) {
  auto c = ts->client();
  HttpConnection conn(c.port());
  ASSERT_TRUE(conn.connect());
  ASSERT_TRUE(conn.sendRaw(
      "POST /api/sandboxes HTTP/1.1\r\nHost: " + c.host() + "\r\nAuthorization: Bearer " +
      ts->token() + "\r\nContent-Type: application/json\r\nContent-Length: 20971520\r\n\r\n"));
  // No body byte was sent: the reply comes from the header alone.
  auto r = conn.readResponse();
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.code(), "PAYLOAD_TOO_LARGE");
}

TEST_F(LimitsTest, OversizedChunkedBodyIs413) {
  auto c = ts->client();
  HttpConnection conn(c.port());
  ASSERT_TRUE(conn.connect());
  std::string req = "POST /api/sandboxes HTTP/1.1\r\nHost: " + c.host() +
                    "\r\nAuthorization: Bearer " + ts->token() +
                    "\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(1u << 20, 'y');
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  ASSERT_TRUE(conn.sendRaw(req));
  for (int i = 0; i < 17; ++i) {
    if (!conn.sendRaw(std::string(size) + chunk + "\r\n")) break;  // the server may stop reading
  }
  conn.sendRaw("0\r\n\r\n");
  auto r = conn.readResponse();
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.code(), "PAYLOAD_TOO_LARGE");
}

TEST_F(LimitsTest, BodyJustUnderTheLimitIsRead) {
  auto c = ts->client();
  // Valid JSON of ~15 MiB: parsed, then refused for its content, not its size.
  std::string body = "{\"projectPath\":\"" + std::string(15u << 20, 'a') + "\"}";
  auto r = c.postRaw("/api/sandboxes", body);
  EXPECT_EQ(r.status, 400) << r.error;
  EXPECT_EQ(r.code(), "SANDBOX_PROJECT_PATH_INVALID");
}

TEST_F(LimitsTest, HugeHeaderIsRefused) {
  auto c = ts->client();
  c.headers = {{"X-Padding", std::string(20u << 10, 'p')}};
  auto r = c.get("/api/health");
  EXPECT_EQ(r.status, 400) << r.error;
  EXPECT_EQ(r.code(), "VALIDATION_ERROR");
}

TEST_F(LimitsTest, RefusalWithAnUnreadBodyClosesTheConnection) {
  auto c = ts->client();
  HttpConnection conn(c.port());
  c.sendToken = false;
  auto r = conn.send(
      c.make(http::verb::post, "/api/sandboxes", std::string("{\"projectPath\":\"/x\"}")));
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(conn.connected());
  // Without a body the connection stays usable.
  HttpConnection conn2(c.port());
  EXPECT_EQ(conn2.send(c.make(http::verb::get, "/api/sandboxes")).status, 401);
  EXPECT_TRUE(conn2.connected());
  EXPECT_EQ(conn2.send(c.make(http::verb::get, "/api/health")).status, 200);
}

TEST_F(LimitsTest, MalformedRequestsGetA400BeforeTheConnectionCloses) {
  // Closing without an answer leaves a client with "connection closed without response" (what
  // schemathesis saw for a NUL byte in a header): the parser's refusal is a coded 400.
  auto c = ts->client();
  const std::string nul(1, '\0');
  for (const std::string& raw :
       {std::string("NOT HTTP AT ALL\r\n\r\n"),
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Probe: a" + nul + "b\r\n\r\n",
        std::string("GET /api/health HTTP/1.1\r\nHost: x\r\nCookie: a=\x01\r\n\r\n"),
        std::string("GET /api/he alth HTTP/1.1\r\nHost: x\r\n\r\n"),
        std::string("GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n"),
        std::string("POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        std::string("POST /api/session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    "\r\nzz\r\n")}) {
    HttpConnection conn(c.port());
    ASSERT_TRUE(conn.connect());
    ASSERT_TRUE(conn.sendRaw(raw));
    auto r = conn.readResponse();
    EXPECT_EQ(r.status, 400) << r.error << " for " << raw;
    EXPECT_EQ(r.code(), "VALIDATION_ERROR") << r.body;
    EXPECT_NE(r.body.find("malformed HTTP request"), std::string::npos) << r.body;
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(conn.closedByPeer()) << raw;
  }
  EXPECT_EQ(c.get("/api/health").status, 200);
}

}  // namespace
}  // namespace agentpane::testing
