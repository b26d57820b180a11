// Pieces of the server that need no socket: targets, patterns, auth helpers, sessions,
// metrics text, strict JSON fields.
#include <gtest/gtest.h>

#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/metrics.hpp"
#include "server/router.hpp"

namespace agentpane::server {
namespace {

TEST(ParseTarget, SplitsDecodesAndReadsTheQuery) {
  auto t = parseTarget("/api/sandboxes/sbx-1/tmux/main%2Dx/capture?lines=10&a=b+c");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->segments,
            (std::vector<std::string>{"api", "sandboxes", "sbx-1", "tmux", "main-x", "capture"}));
  EXPECT_EQ(t->query.at("lines"), "10");
  EXPECT_EQ(t->query.at("a"), "b c");
}

TEST(ParseTarget, RefusesDotSegmentsBadEscapesAndControls) {
  EXPECT_FALSE(parseTarget("/api/sandboxes/../x").ok());
  EXPECT_FALSE(parseTarget("/api/./sandboxes").ok());
  EXPECT_FALSE(parseTarget("/api/sandboxes/%2e%2e").ok());
  EXPECT_FALSE(parseTarget("/api/sandboxes/%zz").ok());
  EXPECT_FALSE(parseTarget("/api/sandboxes/%4").ok());
  EXPECT_FALSE(parseTarget("/api/sandboxes/a%00b").ok());
  EXPECT_FALSE(parseTarget("/api//sandboxes").ok());
  EXPECT_FALSE(parseTarget("api/sandboxes").ok());
  EXPECT_FALSE(parseTarget("/api/audit?limit=1&limit=2").ok());
  EXPECT_TRUE(parseTarget("/api/sandboxes/").ok());  // trailing slash ignored
}

TEST(RoutePattern, MatchesAndLabelsWithoutIds) {
  RoutePattern p("/api/sandboxes/{sandbox}/tmux/{tmux}/keys");
  EXPECT_EQ(p.label(), "/api/sandboxes/:id/tmux/:name/keys");
  auto m = p.match({"api", "sandboxes", "sbx-1", "tmux", "main", "keys"});
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(m->value().params.at("id"), "sbx-1");
  EXPECT_EQ(m->value().params.at("name"), "main");
  EXPECT_FALSE(p.match({"api", "sandboxes", "sbx-1", "tmux", "main"}).has_value());
  EXPECT_FALSE(p.match({"api", "sandboxes", "sbx-1", "tmux", "main", "other"}).has_value());
}

TEST(RoutePattern, RefusesHostileParameters) {
  RoutePattern sb("/api/sandboxes/{sandbox}");
  for (const std::string& bad :
       std::vector<std::string>{"a;id", "$(id)", "../x", "A", "-a", std::string(64, 'a'), "a b"}) {
    auto m = sb.match({"api", "sandboxes", bad});
    ASSERT_TRUE(m.has_value()) << bad;
    ASSERT_FALSE(m->ok()) << bad;
    EXPECT_EQ(m->error().code, ErrorCode::ValidationError) << bad;
  }
  RoutePattern tm("/api/sandboxes/{sandbox}/tmux/{tmux}");
  for (const std::string& bad :
       std::vector<std::string>{"a;id", "$(id)", "../x", std::string(65, 'a'), "a.b", ""}) {
    auto m = tm.match({"api", "sandboxes", "sbx-1", "tmux", bad});
    ASSERT_TRUE(m.has_value()) << bad;
    ASSERT_FALSE(m->ok()) << bad;
    EXPECT_EQ(m->error().code, ErrorCode::TmuxNameInvalid) << bad;
  }
  EXPECT_TRUE(tm.match({"api", "sandboxes", "sbx-1", "tmux", std::string(64, 'a')})->ok());
  RoutePattern cfg("/api/sandbox-configs/{config}");
  EXPECT_TRUE(cfg.match({"api", "sandbox-configs", "cfg-0a1b2c"})->ok());
  EXPECT_FALSE(cfg.match({"api", "sandbox-configs", "$(id)"})->ok());
  EXPECT_FALSE(cfg.match({"api", "sandbox-configs", "a;b"})->ok());
}

TEST(Auth, BearerCookieAndOrigin) {
  EXPECT_EQ(bearerToken("Bearer abc").value(), "abc");
  EXPECT_EQ(bearerToken("bearer abc").value(), "abc");
  EXPECT_FALSE(bearerToken("Basic abc").has_value());
  EXPECT_FALSE(bearerToken("Bearer ").has_value());
  EXPECT_TRUE(constantTimeEquals("abc", "abc"));
  EXPECT_FALSE(constantTimeEquals("abc", "abd"));
  EXPECT_FALSE(constantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(constantTimeEquals("", ""));
  EXPECT_EQ(cookieValue("a=1; agentpane_session=xyz; b=2", "agentpane_session").value(), "xyz");
  EXPECT_FALSE(cookieValue("a=1", "agentpane_session").has_value());
  EXPECT_TRUE(originAllowed("", "127.0.0.1:7300"));
  EXPECT_TRUE(originAllowed("http://127.0.0.1:7300", "127.0.0.1:7300"));
  EXPECT_FALSE(originAllowed("http://evil.example", "127.0.0.1:7300"));
  EXPECT_FALSE(originAllowed("https://127.0.0.1:7300", "127.0.0.1:7300"));
  EXPECT_FALSE(originAllowed("null", "127.0.0.1:7300"));
  EXPECT_FALSE(originAllowed("http://127.0.0.1:7300", ""));
  EXPECT_EQ(randomHex(32).size(), 64u);
  EXPECT_NE(randomHex(32), randomHex(32));
}

TEST(SessionStore, SessionsExpireOnTheInjectedClock) {
  auto now = SessionStore::Clock::time_point{};
  SessionStore s(
      std::chrono::seconds(60), [&] { return now; }, /*maxSessions=*/2);
  auto a = s.create();
  EXPECT_TRUE(s.valid(a));
  EXPECT_FALSE(s.valid("nope"));
  now += std::chrono::seconds(59);
  EXPECT_TRUE(s.valid(a));
  now += std::chrono::seconds(1);
  EXPECT_FALSE(s.valid(a));
  // Bounded: the session closest to expiry makes room.
  auto b = s.create();
  now += std::chrono::seconds(1);
  auto c = s.create();
  auto d = s.create();
  EXPECT_FALSE(s.valid(b));
  EXPECT_TRUE(s.valid(c));
  EXPECT_TRUE(s.valid(d));
  s.remove(c);
  EXPECT_FALSE(s.valid(c));
}

TEST(Metrics, RendersPrometheusText) {
  Metrics m;
  m.recordRequest("/api/sandboxes/:id", "GET", 200, 0.003);
  m.recordRequest("/api/sandboxes/:id", "GET", 200, 0.2);
  m.recordRequest("/api/sandboxes/:id", "DELETE", 404, 0.001);
  m.recordExec("docker", "ok", 0.05);
  auto text = m.render({{{"docker", "running"}, 2}});
  EXPECT_NE(text.find("# TYPE agentpane_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("agentpane_http_requests_total{route=\"/api/sandboxes/"
                      ":id\",method=\"GET\",status=\"200\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("agentpane_http_request_duration_seconds_bucket{route=\"/api/sandboxes/"
                      ":id\",le=\"0.005\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("agentpane_http_request_duration_seconds_bucket{route=\"/api/sandboxes/"
                      ":id\",le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("agentpane_http_request_duration_seconds_count{route=\"/api/sandboxes/:id\"} 3\n"),
      std::string::npos);
  EXPECT_NE(text.find("agentpane_sandboxes{provider=\"docker\",status=\"running\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("agentpane_exec_total{provider=\"docker\",result=\"ok\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE agentpane_exec_duration_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(JsonFields, StrictTypesAndUnknownFields) {
  auto obj = parseJsonObject(R"({"a":"x","n":5,"b":true,"arr":["p"],"m":{"K":"V"}})");
  ASSERT_TRUE(obj.ok());
  auto f = JsonFields::of(obj.value(), {"a", "n", "b", "arr", "m"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->requiredString("a").value(), "x");
  EXPECT_FALSE(f->requiredString("n").ok());
  EXPECT_EQ(*f->optionalInt("n", 0, 10).value(), 5);
  EXPECT_FALSE(f->optionalInt("n", 6, 10).ok());
  EXPECT_FALSE(f->optionalInt("a", 0, 10).ok());
  EXPECT_TRUE(*f->optionalBool("b").value());
  EXPECT_EQ(f->optionalStringArray("arr").value()->at(0), "p");
  EXPECT_EQ(f->optionalStringMap("m").value()->at(0).second, "V");
  auto strict = JsonFields::of(obj.value(), {"a"});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.error().details.at("field"), "arr");
  EXPECT_FALSE(parseJsonObject("{").ok());
  EXPECT_FALSE(parseJsonObject("[]").ok());
  EXPECT_FALSE(parseJsonObject("").ok());
}

TEST(Envelope, ErrorsCarryCodeStatusAndDetails) {
  auto r = errorReply(Error(ErrorCode::SandboxNotFound, "gone", {{"id", "sbx-1"}}));
  EXPECT_EQ(r.status, 404);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["code"], "SANDBOX_NOT_FOUND");
  EXPECT_EQ(j["error"]["message"], "gone");
  EXPECT_EQ(j["error"]["details"]["id"], "sbx-1");
  auto ok = okReply(nlohmann::json{{"x", std::string("\xff")}});
  EXPECT_EQ(nlohmann::json::parse(ok.body)["ok"], true);  // invalid UTF-8 never throws
}

}  // namespace
}  // namespace agentpane::server
