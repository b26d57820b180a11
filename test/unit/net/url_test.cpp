// The URL wrapper over uriparser: what the router, the endpoint parser and the CLI rely on.
#include <gtest/gtest.h>

#include "net/url.hpp"

namespace agentpane::net {
namespace {

TEST(ParseUrl, SplitsAnAbsoluteUrl) {
  auto u = parseUrl("HTTPS://user:pw@Example.com:6443/api/v1/name%20spaces/?watch=1&x=a+b#frag");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->scheme, "https");
  EXPECT_TRUE(u->hasAuthority);
  EXPECT_EQ(u->userInfo, "user:pw");
  EXPECT_EQ(u->host, "Example.com");
  EXPECT_FALSE(u->hostIsIpv6);
  ASSERT_TRUE(u->port.has_value());
  EXPECT_EQ(*u->port, 6443);
  EXPECT_TRUE(u->absolutePath);
  EXPECT_EQ(u->rawPath, "/api/v1/name%20spaces/");
  EXPECT_EQ(u->segments, (std::vector<std::string>{"api", "v1", "name spaces", ""}));
  EXPECT_EQ(u->query, "watch=1&x=a+b");
  EXPECT_EQ(u->fragment, "frag");
}

TEST(ParseUrl, Ipv6UnixAndRelativeForms) {
  auto v6 = parseUrl("https://[fd00::1]:443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_TRUE(v6->hostIsIpv6);
  EXPECT_TRUE(v6->rawPath.empty());

  auto sock = parseUrl("unix:///var/run/docker.sock");
  ASSERT_TRUE(sock.ok());
  EXPECT_TRUE(sock->hasAuthority);
  EXPECT_TRUE(sock->host.empty());
  EXPECT_EQ(sock->rawPath, "/var/run/docker.sock");

  auto rel = parseUrl("/api/sandboxes?limit=5");
  ASSERT_TRUE(rel.ok());
  EXPECT_TRUE(rel->scheme.empty());
  EXPECT_FALSE(rel->hasAuthority);
  EXPECT_EQ(rel->segments, (std::vector<std::string>{"api", "sandboxes"}));
  EXPECT_EQ(rel->query, "limit=5");
  EXPECT_FALSE(rel->port.has_value());

  auto root = parseUrl("/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->rawPath, "/");
  EXPECT_TRUE(root->segments.empty());
}

TEST(ParseUrl, RefusesWhatAUriCannotHold) {
  for (const char* bad : {"/a b", "/a%zz", "/a%4", "/a{b}", "/\"x\"", "http://h:99999",
                          "http://h:", "http://h:port", "http://[::1", "/a\x01"}) {
    auto u = parseUrl(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.error().code, ErrorCode::ValidationError) << bad;
  }
}

TEST(PercentDecode, StrictAboutEscapesAndKeepsNul) {
  EXPECT_EQ(percentDecode("a%2Fb%7e").value(), "a/b~");
  EXPECT_EQ(percentDecode("a+b").value(), "a+b");
  EXPECT_EQ(percentDecode("a+b", true).value(), "a b");
  EXPECT_EQ(percentDecode("a%00b%00").value(), std::string("a\0b\0", 4));
  EXPECT_EQ(percentDecode("%2500").value(), "%00");
  for (const char* bad : {"%", "%4", "%zz", "a%g0"})
    EXPECT_FALSE(percentDecode(bad).ok()) << bad;
}

TEST(ParseQuery, FormEncodedPairsInOrder) {
  auto q = parseQuery("b=2&a=x+y%26z&&flag&e=");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q.value(), (QueryParams{{"b", "2"}, {"a", "x y&z"}, {"flag", ""}, {"e", ""}}));
  EXPECT_FALSE(parseQuery("a=%zz").ok());
}

TEST(PercentEncode, RoundTripsThroughTheParser) {
  std::string all;
  for (int c = 0; c < 256; ++c)
    all.push_back(static_cast<char>(c));
  std::string enc = percentEncode(all);
  EXPECT_EQ(
      enc.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%"),
      std::string::npos);
  EXPECT_EQ(percentDecode(enc).value(), all);
  auto q = parseQuery(queryString({{"k e", "v&=+/"}}).substr(1));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q.value(), (QueryParams{{"k e", "v&=+/"}}));
}

}  // namespace
}  // namespace agentpane::net
