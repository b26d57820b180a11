// TLS end to end against a local TLS server with a certificate made on the fly: CA file and
// inline PEM, host name verification, client certificates, and the Upgrade hand-over with
// a half-close under TLS (a TCP FIN below the TLS layer, as the docker CLI does).
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "net/errors.hpp"
#include "net/http_client.hpp"
#include "unit/test_certs.hpp"

namespace agentpane::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

using testing::Pem;
Pem makeCert(const char* cn) {
  return testing::makeSelfSignedCert(cn);
}

// One connection at a time; the handler gets the TLS stream after the request was read.
class TlsServer {
 public:
  using Handler =
      std::function<void(ssl::stream<asio::ip::tcp::socket>&, const std::string& request)>;
  TlsServer(const Pem& server, const Pem* clientCa, Handler h)
      : ctx_(ssl::context::tls_server),
        acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}),
        handler_(std::move(h)) {
    ctx_.use_certificate_chain(asio::buffer(server.cert));
    ctx_.use_private_key(asio::buffer(server.key), ssl::context::pem);
    if (clientCa != nullptr) {
      ctx_.add_certificate_authority(asio::buffer(clientCa->cert));
      ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { loop(); });
  }
  ~TlsServer() {
    stop_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  unsigned short port() const { return port_; }
  std::string lastError() const {
    std::lock_guard l(mu_);
    return lastError_;
  }

 private:
  void loop() {
    while (!stop_) {
      ssl::stream<asio::ip::tcp::socket> s(io_, ctx_);
      boost::system::error_code ec;
      acceptor_.accept(s.lowest_layer(), ec);
      if (stop_ || ec) return;
      s.handshake(ssl::stream_base::server, ec);
      if (ec) {
        std::lock_guard l(mu_);
        lastError_ = ec.message();
        continue;
      }
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        std::size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        req.append(buf, n);
      }
      if (!ec) handler_(s, req);
      s.lowest_layer().close(ec);
    }
  }

  asio::io_context io_;
  ssl::context ctx_;
  asio::ip::tcp::acceptor acceptor_;
  Handler handler_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string lastError_;
};

void writeAllTls(ssl::stream<asio::ip::tcp::socket>& s, const std::string& data) {
  boost::system::error_code ec;
  asio::write(s, asio::buffer(data), ec);
}

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = makeCert("localhost");
    client_ = makeCert("agentpane-client");
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-tls-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    std::ofstream(dir_ + "/ca.pem") << server_.cert;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  Pem server_, client_;
  std::string dir_;
};

TEST_F(Tls, VerifiedRequestWithCaFileAndClientCertificate) {
  TlsServer srv(server_, &client_, [](auto& s, const std::string&) {
    writeAllTls(s, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
  });
  TlsOptions tls;
  tls.caFile = dir_ + "/ca.pem";
  tls.certPem = client_.cert;
  tls.keyPem = client_.key;
  for (const char* host : {"localhost", "127.0.0.1"}) {
    auto c = HttpClient::create(Endpoint::tlsTcp(host, srv.port(), tls), IoThread::create(1));
    ASSERT_TRUE(c.ok()) << c.error().describe();
    auto r = c.value()->request({});
    ASSERT_TRUE(r.ok()) << host << ": " << r.error().describe() << " / server: " << srv.lastError();
    EXPECT_EQ(r->body, "secure");
  }
}

TEST_F(Tls, WrongNameUnknownCaAndMissingClientCertFail) {
  TlsServer srv(server_, &client_, [](auto& s, const std::string&) {
    writeAllTls(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });
  TlsOptions tls;
  tls.caPem = server_.cert;
  tls.certPem = client_.cert;
  tls.keyPem = client_.key;
  tls.serverName = "docker.example.com";  // not in the certificate
  auto wrongName =
      HttpClient::create(Endpoint::tlsTcp("127.0.0.1", srv.port(), tls), IoThread::create(1));
  auto r1 = wrongName.value()->request({});
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(netKind(r1.error()), kTls) << r1.error().describe();

  TlsOptions otherCa;
  otherCa.caPem = client_.cert;  // trusts the wrong CA
  otherCa.certPem = client_.cert;
  otherCa.keyPem = client_.key;
  auto untrusted =
      HttpClient::create(Endpoint::tlsTcp("localhost", srv.port(), otherCa), IoThread::create(1));
  auto r2 = untrusted.value()->request({});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, ErrorCode::ServerUnreachable);

  TlsOptions noClientCert;
  noClientCert.caPem = server_.cert;
  auto anonymous = HttpClient::create(Endpoint::tlsTcp("localhost", srv.port(), noClientCert),
                                      IoThread::create(1));
  auto r3 = anonymous.value()->request({});
  EXPECT_FALSE(r3.ok());

  // Verification off (DOCKER_CERT_PATH without DOCKER_TLS_VERIFY): any certificate will do.
  TlsOptions insecure = otherCa;
  insecure.verifyPeer = false;
  auto lax =
      HttpClient::create(Endpoint::tlsTcp("127.0.0.1", srv.port(), insecure), IoThread::create(1));
  auto r4 = lax.value()->request({});
  EXPECT_TRUE(r4.ok()) << r4.error().describe();
}

TEST_F(Tls, UpgradeAndHalfCloseUnderTls) {
  std::string serverGot;
  bool sawEnd = false;
  TlsServer srv(server_, nullptr, [&](auto& s, const std::string& req) {
    writeAllTls(s, "HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\nready");
    std::string in = req.substr(req.find("\r\n\r\n") + 4);
    char buf[4096];
    for (;;) {
      boost::system::error_code ec;
      std::size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) {
        // A TCP FIN without close_notify: stream_truncated, the end of input for us.
        sawEnd = ec == ssl::error::stream_truncated || ec == asio::error::eof;
        break;
      }
      in.append(buf, n);
    }
    serverGot = in;
    writeAllTls(s, "got " + std::to_string(in.size()));
  });
  TlsOptions tls;
  tls.caPem = server_.cert;
  auto c = HttpClient::create(Endpoint::tlsTcp("localhost", srv.port(), tls), IoThread::create(1));
  ASSERT_TRUE(c.ok());
  auto up = c.value()->upgrade({});
  ASSERT_TRUE(up.ok()) << up.error().describe();
  ASSERT_NE(up->stream, nullptr);
  auto& s = *up->stream;
  std::string got;
  char buf[256];
  std::thread reader([&] {
    for (;;) {
      auto n = s.readSome(buf, sizeof buf, Clock::now() + std::chrono::seconds(10));
      if (!n.ok() || n.value() == 0) break;
      got.append(buf, n.value());
    }
  });
  std::string payload(200000, 's');
  ASSERT_TRUE(s.writeAll(payload).ok());
  ASSERT_TRUE(s.shutdownWrite().ok());
  reader.join();
  EXPECT_TRUE(sawEnd);
  EXPECT_EQ(serverGot, payload);
  EXPECT_EQ(got, "readygot 200000");
}

// A new connection to the same server offers the last session: the server resumes it (no
// certificate exchange). A server reached under another name gets a full handshake.
TEST_F(Tls, ANewConnectionResumesTheLastSessionOfThatServer) {
  std::mutex mu;
  std::vector<bool> reused;
  TlsServer srv(server_, nullptr, [&](auto& s, const std::string&) {
    {
      std::lock_guard lk(mu);
      reused.push_back(SSL_session_reused(s.native_handle()) == 1);
    }
    writeAllTls(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
  });
  TlsOptions tls;
  tls.caPem = server_.cert;
  auto io = IoThread::create(1);
  auto c = HttpClient::create(Endpoint::tlsTcp("localhost", srv.port(), tls), io);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = c.value()->request({});
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe() << " / server: " << srv.lastError();
    EXPECT_EQ(r->body, "ok");
  }
  auto other = HttpClient::create(Endpoint::tlsTcp("127.0.0.1", srv.port(), tls), io);
  ASSERT_TRUE(other.ok());
  auto r = other.value()->request({});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  std::lock_guard lk(mu);
  EXPECT_EQ(reused, (std::vector<bool>{false, true, true, false}));
}

}  // namespace
}  // namespace agentpane::net
