#include <gtest/gtest.h>

#include "net/endpoint.hpp"
#include "net/url.hpp"

namespace agentpane::net {

TEST(Endpoint, ParsesTheForms) {
  auto u = parseEndpoint("unix:///var/run/docker.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->kind, Endpoint::Kind::Unix);
  EXPECT_EQ(u->path, "/var/run/docker.sock");
  EXPECT_EQ(u->hostHeader(), "localhost");

  auto t = parseEndpoint("tcp://10.0.0.1:2375");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, Endpoint::Kind::Tcp);
  EXPECT_EQ(t->host, "10.0.0.1");
  EXPECT_EQ(t->port, 2375);
  EXPECT_EQ(t->describe(), "tcp://10.0.0.1:2375");

  auto h = parseEndpoint("https://api.example.com/");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->kind, Endpoint::Kind::Tls);
  EXPECT_EQ(h->port, 443);
  EXPECT_EQ(h->hostHeader(), "api.example.com:443");

  auto v6 = parseEndpoint("tcp://[::1]:2376");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 2376);
  EXPECT_EQ(v6->hostHeader(), "[::1]:2376");

  auto dflt = parseEndpoint("tcp://docker", 2375);
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->port, 2375);
}

TEST(Endpoint, RefusesWhatItCannotUse) {
  for (const char* bad :
       {"", "docker.sock", "unix://", "tcp://host", "tcp://:80", "tcp://h:0", "tcp://h:70000",
        "tcp://h:80/path", "tcp://user@h:80", "ssh://h", "npipe:////./pipe/docker", "tcp://[::1"}) {
    auto r = parseEndpoint(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << bad;
  }
}

TEST(Url, PercentEncodesAllButUnreserved) {
  EXPECT_EQ(percentEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(percentEncode("a b/c=d&{\"x\"}"), "a%20b%2Fc%3Dd%26%7B%22x%22%7D");
  EXPECT_EQ(percentEncode(std::string("\0\xff", 2)), "%00%FF");
  EXPECT_EQ(queryString({}), "");
  EXPECT_EQ(queryString({{"all", "1"}, {"f", "a=b"}}), "?all=1&f=a%3Db");
}

}  // namespace agentpane::net
