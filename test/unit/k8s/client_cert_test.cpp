// Client certificates from the CredentialSource: the TLS context is built with the current
// certificate and rebuilt when it changes (an exec plugin handing out a new one after a
// 401). A TLS server that requires a client certificate answers with the certificate's CN.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "k8s/rest_client.hpp"
#include "unit/test_certs.hpp"

namespace agentpane::k8s {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

using testing::Pem;
Pem makeCert(const char* cn) {
  return testing::makeSelfSignedCert(cn);
}

// One request per connection; answers 401 to the CN `refused`, else 200 with the CN.
class CertEchoServer {
 public:
  CertEchoServer(const Pem& server, const std::vector<Pem>& clients, std::string refused)
      : ctx_(ssl::context::tls_server),
        acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}),
        refused_(std::move(refused)) {
    ctx_.use_certificate_chain(asio::buffer(server.cert));
    ctx_.use_private_key(asio::buffer(server.key), ssl::context::pem);
    for (const auto& c : clients)
      ctx_.add_certificate_authority(asio::buffer(c.cert));
    ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { loop(); });
  }
  ~CertEchoServer() {
    stop_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  unsigned short port() const { return port_; }
  std::vector<std::string> seen() const {
    std::lock_guard l(mu_);
    return seen_;
  }

 private:
  void loop() {
    while (!stop_) {
      ssl::stream<asio::ip::tcp::socket> s(io_, ctx_);
      boost::system::error_code ec;
      acceptor_.accept(s.lowest_layer(), ec);
      if (stop_ || ec) return;
      s.handshake(ssl::stream_base::server, ec);
      if (ec) continue;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        std::size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        req.append(buf, n);
      }
      if (ec) continue;
      std::string cn;
      if (X509* peer = SSL_get_peer_certificate(s.native_handle())) {
        char name[256] = {0};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
        cn = name;
        X509_free(peer);
      }
      {
        std::lock_guard l(mu_);
        seen_.push_back(cn);
      }
      std::string body = "{\"cn\":\"" + cn + "\"}";
      std::string status = cn == refused_ ? "401 Unauthorized" : "200 OK";
      std::string resp = "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\n" +
                         "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\n\r\n" + body;
      asio::write(s, asio::buffer(resp), ec);
      s.lowest_layer().close(ec);
    }
  }

  asio::io_context io_;
  ssl::context ctx_;
  asio::ip::tcp::acceptor acceptor_;
  std::string refused_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::string> seen_;
};

// Hands out certificate `first` until invalidate(), then `second` (an exec plugin's rotation).
class RotatingCert final : public CredentialSource {
 public:
  RotatingCert(Pem first, Pem second) : first_(std::move(first)), second_(std::move(second)) {}
  Result<Credentials> current() override {
    Credentials c;
    const Pem& p = rotated_ ? second_ : first_;
    c.certPem = p.cert;
    c.keyPem = p.key;
    return c;
  }
  bool invalidate() override {
    bool was = rotated_.exchange(true);
    return !was;
  }
  [[nodiscard]] std::string kind() const override { return "exec"; }

 private:
  Pem first_, second_;
  std::atomic<bool> rotated_{false};
};

TEST(RestClientCert, TheTlsContextFollowsTheCurrentClientCertificate) {
  Pem server = makeCert("localhost");
  Pem oldCert = makeCert("old-client");
  Pem newCert = makeCert("new-client");
  CertEchoServer srv(server, {oldCert, newCert}, "old-client");

  RestConfig cfg;
  cfg.server = "https://127.0.0.1:" + std::to_string(srv.port());
  net::TlsOptions tls;
  tls.caPem = server.cert;
  cfg.endpoint = net::Endpoint::tlsTcp("127.0.0.1", srv.port(), tls);
  cfg.credentials = std::make_shared<RotatingCert>(oldCert, newCert);
  auto client = RestClient::create(cfg);
  ASSERT_TRUE(client.ok()) << client.error().describe();

  // The old certificate is refused with a 401; the source rotates; the retry presents the
  // new certificate, which needs a new TLS context.
  auto r = client.value()->get("/api/v1/namespaces");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["cn"], "new-client");
  EXPECT_EQ(srv.seen(), (std::vector<std::string>{"old-client", "new-client"}));
  // And it stays in use.
  auto again = client.value()->get("/api/v1/namespaces");
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ((*again)["cn"], "new-client");
}

}  // namespace
}  // namespace agentpane::k8s
