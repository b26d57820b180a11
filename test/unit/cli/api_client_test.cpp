#include "cli/api_client.hpp"
#include "net/url.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace agentpane::cli {
namespace {

TEST(ServerUrl, Forms) {
  auto a = parseServerUrl("http://127.0.0.1:7300");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "7300");
  auto b = parseServerUrl("http://localhost/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, "80");
  auto v6 = parseServerUrl("http://[::1]:9000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"https://x:1", "ftp://x", "127.0.0.1:7300", "http://x:port",
                          "http://x:1/path", "http://u:p@x:1", "http://x:1?q", "http://x y:1"}) {
    auto r = parseServerUrl(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
  }
}

TEST(Token, FromEnvironmentOrHomeFile) {
  auto dir = std::filesystem::temp_directory_path() / "agentpane-cli-token-test";
  std::filesystem::create_directories(dir);
  unsetenv("AGENTPANE_TOKEN");
  auto missing = discoverToken(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::Unauthorized);
  { std::ofstream(dir / "token") << "abc123\n"; }
  auto fromFile = discoverToken(dir.string());
  ASSERT_TRUE(fromFile.ok());
  EXPECT_EQ(fromFile.value(), "abc123");
  setenv("AGENTPANE_TOKEN", "from-env", 1);
  EXPECT_EQ(discoverToken(dir.string()).value(), "from-env");
  unsetenv("AGENTPANE_TOKEN");
  std::filesystem::remove_all(dir);
}

TEST(UrlEncode, EscapesEverythingOutsideUnreserved) {
  EXPECT_EQ(net::percentEncode("a-b_c.d~"), "a-b_c.d~");
  EXPECT_EQ(net::percentEncode("a;id/../$(x)"), "a%3Bid%2F..%2F%24%28x%29");
}

}  // namespace
}  // namespace agentpane::cli
