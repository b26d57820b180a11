// HttpClient against a scripted server: plain calls, limits, timeouts, unreachable servers,
// the Upgrade hand-over (leftover bytes, two-way use, half-close, concurrent read/write)
// and streamed bodies.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "net/errors.hpp"
#include "net/http_client.hpp"
#include "unit/net/fake_http_server.hpp"

namespace agentpane::net {
namespace {

using agentpane::testing::FakeConn;
using agentpane::testing::FakeHttpServer;
using agentpane::testing::FakeRequest;
using namespace std::chrono_literals;

std::unique_ptr<HttpClient> clientFor(const FakeHttpServer& s,
                                      FakeHttpServer::Kind kind = FakeHttpServer::Kind::Unix) {
  Endpoint ep = kind == FakeHttpServer::Kind::Unix ? Endpoint::unixSocket(s.socketPath())
                                                   : Endpoint::tcp("127.0.0.1", s.port());
  auto c = HttpClient::create(ep, IoThread::create(1));
  EXPECT_TRUE(c.ok());
  return std::move(c.value());
}

TEST(HttpClient, RequestAndResponseOverUnixAndTcp) {
  for (auto kind : {FakeHttpServer::Kind::Unix, FakeHttpServer::Kind::Tcp}) {
    FakeHttpServer server(
        [](const FakeRequest& r, FakeConn& c) {
          c.write(
              FakeHttpServer::response(201, "{\"echo\":\"" + r.body + "\"}", "X-Api: 1.41\r\n"));
        },
        kind);
    auto client = clientFor(server, kind);
    HttpRequest req;
    req.method = "POST";
    req.target = "/v1.41/things?x=1";
    req.body = "hello";
    req.contentType = "application/json";
    auto r = client->request(req);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->status, 201);
    EXPECT_EQ(r->body, "{\"echo\":\"hello\"}");
    EXPECT_EQ(r->header("x-api"), "1.41");
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].method, "POST");
    EXPECT_EQ(seen[0].target, "/v1.41/things?x=1");
    EXPECT_EQ(seen[0].headers["content-type"], "application/json");
    EXPECT_EQ(seen[0].headers["content-length"], "5");
    EXPECT_FALSE(seen[0].headers["host"].empty());
  }
}

TEST(HttpClient, ChunkedBody) {
  FakeHttpServer server([](const FakeRequest&, FakeConn& c) {
    c.write(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
        "world\r\n0\r\n\r\n");
  });
  auto r = clientFor(server)->request({});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->body, "hello world");
}

TEST(HttpClient, BodyLimit) {
  FakeHttpServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(200, std::string(2048, 'x')));
  });
  CallOptions opts;
  opts.maxBodyBytes = 1024;
  auto r = clientFor(server)->request({}, opts);
  ASSERT_FALSE(r.ok()) << r->status << " " << r->body.size();
  EXPECT_EQ(r.error().code, ErrorCode::PayloadTooLarge);
  EXPECT_EQ(netKind(r.error()), kTooLarge);

  FakeHttpServer chunked([](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; ++i)
      c.write("200\r\n" + std::string(512, 'y') + "\r\n");
    c.write("0\r\n\r\n");
  });
  auto r2 = clientFor(chunked)->request({}, opts);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::PayloadTooLarge);
}

TEST(HttpClient, TimeoutWhenTheServerNeverAnswers) {
  std::atomic<bool> release{false};
  FakeHttpServer server([&](const FakeRequest&, FakeConn& c) {
    while (!release)
      std::this_thread::sleep_for(5ms);
  });
  CallOptions opts;
  opts.timeout = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = clientFor(server)->request({}, opts);
  auto took = std::chrono::steady_clock::now() - t0;
  release = true;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::Timeout) << r.error().describe();
  EXPECT_LT(took, 2s);
}

TEST(HttpClient, ServerClosesWithoutAnswer) {
  FakeHttpServer server([](const FakeRequest&, FakeConn&) {});
  auto r = clientFor(server)->request({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(netKind(r.error()), kIo) << r.error().describe();
}

TEST(HttpClient, UnreachableServers) {
  auto io = IoThread::create(1);
  auto missing = HttpClient::create(Endpoint::unixSocket("/tmp/ap-no-such-dir/none.sock"), io);
  ASSERT_TRUE(missing.ok());
  auto r = missing.value()->request({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ServerUnreachable);
  EXPECT_EQ(netKind(r.error()), kConnect);

  // A port nobody listens on: bind one, note it, close it.
  unsigned short port = 0;
  {
    boost::asio::io_context ctx;
    boost::asio::ip::tcp::acceptor a(ctx, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto refused = HttpClient::create(Endpoint::tcp("127.0.0.1", port), io);
  auto r2 = refused.value()->request({});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::ServerUnreachable) << r2.error().describe();
}

TEST(HttpClient, BadTlsMaterialIsAConfigError) {
  TlsOptions tls;
  tls.caFile = "/nonexistent/ca.pem";
  auto c = HttpClient::create(Endpoint::tlsTcp("127.0.0.1", 1, tls), IoThread::create(1));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::ValidationError);
}

TEST(HttpClient, UpgradeHandsOverTheRawStream) {
  for (auto kind : {FakeHttpServer::Kind::Unix, FakeHttpServer::Kind::Tcp}) {
    std::string serverGot;
    FakeHttpServer server(
        [&](const FakeRequest& r, FakeConn& c) {
          // The first protocol bytes share the write with the 101 header.
          c.write("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello");
          std::string in = r.extra;
          for (;;) {
            std::string piece = c.readSome();
            if (piece.empty()) break;  // our client's half-close
            in += piece;
          }
          serverGot = in;
          c.write("pong:" + std::to_string(in.size()));
        },
        kind);
    auto client = clientFor(server, kind);
    HttpRequest req;
    req.method = "POST";
    req.target = "/exec/1/start";
    req.headers = {{"Connection", "Upgrade"}, {"Upgrade", "tcp"}};
    auto up = client->upgrade(req);
    ASSERT_TRUE(up.ok()) << up.error().describe();
    ASSERT_EQ(up->response.status, 101);
    ASSERT_NE(up->stream, nullptr);
    auto& s = *up->stream;
    char buf[64];
    auto n = s.readSome(buf, sizeof buf);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(std::string(buf, n.value()), "hello");

    // A reader blocked on one thread while another writes and half-closes.
    std::string got;
    std::thread reader([&] {
      for (;;) {
        auto m = s.readSome(buf, sizeof buf);
        if (!m.ok() || m.value() == 0) break;
        got.append(buf, m.value());
      }
    });
    std::string payload(100000, 'p');
    ASSERT_TRUE(s.writeAll(payload).ok());
    ASSERT_TRUE(s.shutdownWrite().ok());
    ASSERT_TRUE(s.shutdownWrite().ok());  // idempotent
    reader.join();
    EXPECT_EQ(serverGot, payload);
    EXPECT_EQ(got, "pong:100000");
    EXPECT_FALSE(s.writeAll("late").ok());
  }
}

TEST(HttpClient, UpgradeRefusedReturnsTheResponse) {
  FakeHttpServer server([](const FakeRequest&, FakeConn& c) {
    c.write(FakeHttpServer::response(404, "{\"message\":\"No such exec instance\"}"));
  });
  auto up = clientFor(server)->upgrade({});
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->response.status, 404);
  EXPECT_EQ(up->stream, nullptr);
  EXPECT_EQ(up->response.body, "{\"message\":\"No such exec instance\"}");
}

TEST(HttpClient, RawStreamDeadlineAndClose) {
  std::atomic<bool> release{false};
  FakeHttpServer server([&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 101 UPGRADED\r\n\r\n");
    while (!release)
      std::this_thread::sleep_for(5ms);
  });
  auto client = clientFor(server);
  auto up = client->upgrade({});
  ASSERT_TRUE(up.ok() && up->stream);
  char buf[16];
  auto t0 = std::chrono::steady_clock::now();
  auto n = up->stream->readSome(buf, sizeof buf, Clock::now() + 100ms);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, ErrorCode::Timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Torn down after a timeout.
  EXPECT_FALSE(up->stream->readSome(buf, sizeof buf).ok());

  auto up2 = client->upgrade({});
  ASSERT_TRUE(up2.ok() && up2->stream);
  std::thread closer([&] {
    std::this_thread::sleep_for(100ms);
    up2->stream->close();
  });
  auto m = up2->stream->readSome(buf, sizeof buf);
  closer.join();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(netKind(m.error()), kClosed);
  up2->stream->close();  // idempotent
  release = true;
}

TEST(HttpClient, StreamedBodyPiecesAndClose) {
  std::atomic<bool> release{false};
  FakeHttpServer server([&](const FakeRequest&, FakeConn& c) {
    c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.write("6\r\nfirst\n\r\n");
    std::this_thread::sleep_for(50ms);
    c.write("7\r\nsecond\n\r\n");
    while (!release)
      std::this_thread::sleep_for(5ms);
  });
  auto s = clientFor(server)->openStream({});
  ASSERT_TRUE(s.ok()) << s.error().describe();
  ASSERT_NE(s->body, nullptr);
  std::string got;
  while (got.size() < 13) {
    auto p = s->body->next();
    ASSERT_TRUE(p.ok()) << p.error().describe();
    ASSERT_TRUE(p.value().has_value());
    got += **p;
  }
  EXPECT_EQ(got, "first\nsecond\n");
  std::thread closer([&] {
    std::this_thread::sleep_for(100ms);
    s->body->close();
  });
  auto blocked = s->body->next();
  closer.join();
  EXPECT_FALSE(blocked.ok());
  release = true;
}

TEST(HttpClient, StreamedBodyEndsAndErrorsCarryTheirBody) {
  FakeHttpServer server([](const FakeRequest& r, FakeConn& c) {
    if (r.target == "/bad") {
      c.write(FakeHttpServer::response(400, "{\"message\":\"bad filter\"}"));
    } else {
      c.write(FakeHttpServer::response(200, "all of it"));
    }
  });
  auto client = clientFor(server);
  auto ok = client->openStream({});
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  ASSERT_TRUE(ok->body) << ok->response.status << ok->response.body;
  std::string got;
  for (;;) {
    auto p = ok->body->next();
    ASSERT_TRUE(p.ok());
    if (!*p) break;
    got += **p;
  }
  EXPECT_EQ(got, "all of it");
  HttpRequest bad;
  bad.target = "/bad";
  auto err = client->openStream(bad);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->body, nullptr);
  EXPECT_EQ(err->response.status, 400);
  EXPECT_EQ(err->response.body, "{\"message\":\"bad filter\"}");
}

TEST(HttpClient, BlockingCallFromTheLoopThreadIsRefused) {
  FakeHttpServer server(
      [](const FakeRequest&, FakeConn& c) { c.write(FakeHttpServer::response(200, "")); });
  auto client = clientFor(server);
  std::promise<Result<HttpResponse>> p;
  boost::asio::post(client->io()->context(), [&] { p.set_value(client->request({})); });
  auto r = p.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::Internal);
}

}  // namespace
}  // namespace agentpane::net
