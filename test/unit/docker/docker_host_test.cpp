#include <gtest/gtest.h>

#include <map>

#include "docker/docker_host.hpp"

namespace agentpane::docker {
namespace {

GetEnv envOf(std::map<std::string, std::string> m) {
  return [m](const char* name) -> std::optional<std::string> {
    auto it = m.find(name);
    if (it == m.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

TEST(DockerHost, DefaultsToTheLocalSocket) {
  auto ep = dockerEndpointFromEnv(envOf({}));
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->kind, net::Endpoint::Kind::Unix);
  EXPECT_EQ(ep->path, "/var/run/docker.sock");
  auto empty = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", ""}}));
  EXPECT_EQ(empty->path, "/var/run/docker.sock");
}

TEST(DockerHost, UnixAndPlainTcp) {
  auto u = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "unix:///run/user/1000/docker.sock"}}));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->path, "/run/user/1000/docker.sock");

  auto t = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "tcp://10.1.2.3:2375"}}));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, net::Endpoint::Kind::Tcp);
  EXPECT_EQ(t->host, "10.1.2.3");
  EXPECT_EQ(t->port, 2375);

  auto noPort = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "tcp://docker"}}));
  ASSERT_TRUE(noPort.ok());
  EXPECT_EQ(noPort->port, 2375);
}

TEST(DockerHost, TlsFromCertPathAndVerify) {
  auto v = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "tcp://docker.example:2376"},
                                        {"DOCKER_TLS_VERIFY", "1"},
                                        {"DOCKER_CERT_PATH", "/certs"}}));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, net::Endpoint::Kind::Tls);
  EXPECT_EQ(v->tls.caFile, "/certs/ca.pem");
  EXPECT_EQ(v->tls.certFile, "/certs/cert.pem");
  EXPECT_EQ(v->tls.keyFile, "/certs/key.pem");
  EXPECT_TRUE(v->tls.verifyPeer);

  // Cert path without TLS_VERIFY: TLS, but the server is not verified (as the CLI does).
  auto nv =
      dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "tcp://d:2376"}, {"DOCKER_CERT_PATH", "/c"}}));
  ASSERT_TRUE(nv.ok());
  EXPECT_EQ(nv->kind, net::Endpoint::Kind::Tls);
  EXPECT_FALSE(nv->tls.verifyPeer);

  // TLS_VERIFY without a cert path: ~/.docker, default port 2376.
  auto home = dockerEndpointFromEnv(
      envOf({{"DOCKER_HOST", "tcp://d"}, {"DOCKER_TLS_VERIFY", "1"}, {"HOME", "/home/u"}}));
  ASSERT_TRUE(home.ok());
  EXPECT_EQ(home->tls.caFile, "/home/u/.docker/ca.pem");
  EXPECT_EQ(home->port, 2376);

  // A unix socket ignores the TLS variables.
  auto u =
      dockerEndpointFromEnv(envOf({{"DOCKER_HOST", "unix:///s.sock"}, {"DOCKER_TLS_VERIFY", "1"}}));
  EXPECT_EQ(u->kind, net::Endpoint::Kind::Unix);
}

TEST(DockerHost, RefusesUnsupportedHosts) {
  for (const char* bad : {"ssh://me@host", "npipe:////./pipe/docker_engine", "fd://", "docker.sock",
                          "tcp://h:99999", "tcp://h:2375/path", "unix://"}) {
    auto r = dockerEndpointFromEnv(envOf({{"DOCKER_HOST", bad}}));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << bad;
    EXPECT_NE(r.error().message.find("DOCKER_HOST"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace agentpane::docker
