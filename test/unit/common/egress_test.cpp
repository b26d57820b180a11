#include "common/egress.hpp"

#include <gtest/gtest.h>

namespace agentpane::egress {
namespace {

Entry parsed(const std::string& s) {
  auto e = parseEntry(s);
  EXPECT_TRUE(e.ok()) << s << ": " << (e.ok() ? "" : e.error().message);
  return e.ok() ? e.value() : Entry{};
}

std::string reasonOf(const std::string& s) {
  auto e = parseEntry(s, "allowEgress");
  if (e.ok()) return "ok";
  EXPECT_EQ(e.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(e.error().details.at("field"), "allowEgress");
  if (s.size() <= 300) {
    EXPECT_EQ(e.error().details.at("value"), s);
  }
  return e.error().details.at("reason");
}

Network N(const std::string& s) {
  return *Network::parse(s);
}

TEST(EgressParse, KindsAndPorts) {
  auto h = parsed("API.Example.test.:443");
  EXPECT_EQ(h.kind, EntryKind::Host);
  EXPECT_EQ(h.host, "api.example.test");
  EXPECT_EQ(h.ports, std::vector<std::uint16_t>{443});

  auto a = parsed("10.1.2.3");
  EXPECT_EQ(a.kind, EntryKind::Address);
  EXPECT_EQ(a.network.cidr(), "10.1.2.3/32");
  EXPECT_TRUE(a.ports.empty());

  auto c = parsed("10.0.0.0/8:22,80,22");
  EXPECT_EQ(c.kind, EntryKind::Cidr);
  EXPECT_EQ(c.network.cidr(), "10.0.0.0/8");
  EXPECT_EQ(c.ports, (std::vector<std::uint16_t>{22, 80}));

  auto v6 = parsed("[2001:db8::/64]:443");
  EXPECT_EQ(v6.kind, EntryKind::Cidr);
  EXPECT_EQ(v6.network.cidr(), "2001:db8::/64");
  EXPECT_EQ(v6.ports, std::vector<std::uint16_t>{443});

  auto bare6 = parsed("2001:db8::1");
  EXPECT_EQ(bare6.kind, EntryKind::Address);
  EXPECT_TRUE(bare6.network.v6);
  EXPECT_TRUE(bare6.ports.empty());
  EXPECT_EQ(parsed("[::1]").network.cidr(), "::1/128");
}

TEST(EgressParse, EachFailureHasItsCode) {
  EXPECT_EQ(reasonOf(""), "EGRESS_ENTRY_EMPTY");
  EXPECT_EQ(reasonOf(std::string(301, 'a')), "EGRESS_ENTRY_TOO_LONG");
  EXPECT_EQ(reasonOf("[::1"), "EGRESS_BRACKETS_INVALID");
  EXPECT_EQ(reasonOf("[::1]443"), "EGRESS_BRACKETS_INVALID");
  EXPECT_EQ(reasonOf("[10.0.0.1]:80"), "EGRESS_BRACKETS_INVALID");
  for (const char* p : {"a.com:0", "a.com:65536", "a.com:", "a.com:http", "a.com:80,,81",
                        "a.com:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}) {
    EXPECT_EQ(reasonOf(p), "EGRESS_PORT_INVALID") << p;
  }
  EXPECT_EQ(reasonOf("300.1.1.1"), "EGRESS_ADDRESS_INVALID");
  EXPECT_EQ(reasonOf("1.2.3"), "EGRESS_ADDRESS_INVALID");
  EXPECT_EQ(reasonOf("host/8"), "EGRESS_HOST_INVALID");
  EXPECT_EQ(reasonOf("fe80::zz"), "EGRESS_ADDRESS_INVALID");
  EXPECT_EQ(reasonOf("abc/8"), "EGRESS_ADDRESS_INVALID");
  EXPECT_EQ(reasonOf("10.0.0.0/33"), "EGRESS_PREFIX_INVALID");
  EXPECT_EQ(reasonOf("10.0.0.1/-1"), "EGRESS_PREFIX_INVALID");
  EXPECT_EQ(reasonOf("2001:db8::/129"), "EGRESS_PREFIX_INVALID");
  EXPECT_EQ(reasonOf("10.1.2.3/8"), "EGRESS_CIDR_HOST_BITS");
  auto hb = parseEntry("10.1.2.3/8");
  EXPECT_NE(hb.error().message.find("10.0.0.0/8"), std::string::npos) << hb.error().message;
  for (const char* h : {"a b", "-bad.com", "bad-.com", "a..b", "*.github.com", "a_b.com",
                        "x;rm -rf /", "http://x.com"}) {
    EXPECT_EQ(reasonOf(h),
              h == std::string("http://x.com") ? "EGRESS_PORT_INVALID" : "EGRESS_HOST_INVALID")
        << h;
  }
  std::vector<std::string> many(257, "a.com");
  auto tooMany = parseAllowlist(many, "allowedEgressHosts");
  ASSERT_FALSE(tooMany.ok());
  EXPECT_EQ(tooMany.error().details.at("reason"), "EGRESS_TOO_MANY_ENTRIES");
  EXPECT_EQ(tooMany.error().details.at("field"), "allowedEgressHosts");
}

TEST(EgressNetwork, Contains) {
  EXPECT_TRUE(N("10.0.0.0/8").contains(N("10.1.2.3")));
  EXPECT_FALSE(N("10.0.0.0/8").contains(N("11.0.0.1")));
  EXPECT_FALSE(N("10.1.0.0/16").contains(N("10.0.0.0/8")));
  EXPECT_TRUE(N("0.0.0.0/0").contains(N("169.254.169.254")));
  EXPECT_FALSE(N("0.0.0.0/0").contains(N("::1")));  // families never mix
  EXPECT_TRUE(N("::/0").contains(N("fe80::1")));
}

std::vector<std::string> cidrs(const std::vector<Network>& v) {
  std::vector<std::string> out;
  for (const auto& n : v)
    out.push_back(n.cidr());
  return out;
}

// Private, link-local, loopback and metadata ranges stay blocked unless listed explicitly.
TEST(EgressBlocked, WideEntriesCarveOutEveryBlockedRange) {
  EXPECT_EQ(cidrs(carveOuts(N("0.0.0.0/0"))),
            (std::vector<std::string>{"0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12",
                                      "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}));
  EXPECT_EQ(cidrs(carveOuts(N("::/0"))),
            (std::vector<std::string>{"::1/128", "::ffff:0.0.0.0/96", "fc00::/7", "fe80::/10"}));
  // Listing a blocked range opens it, but not the metadata address inside it.
  EXPECT_TRUE(carveOuts(N("10.0.0.0/8")).empty());
  EXPECT_EQ(cidrs(carveOuts(N("169.254.0.0/16"))), std::vector<std::string>{"169.254.169.254/32"});
  EXPECT_EQ(cidrs(carveOuts(N("160.0.0.0/4"))),
            (std::vector<std::string>{"172.16.0.0/12", "169.254.0.0/16"}));
  // Listed explicitly: the entry itself is inside a blocked range.
  EXPECT_TRUE(carveOuts(N("169.254.169.254/32")).empty());
  EXPECT_TRUE(carveOuts(N("10.1.2.3/32")).empty());
  EXPECT_TRUE(carveOuts(N("8.8.0.0/16")).empty());
  EXPECT_TRUE(isMetadataAddress(N("169.254.169.254")));
  EXPECT_TRUE(isMetadataAddress(N("fd00:ec2::254")));
}

TEST(EgressResolve, RulesFromLiteralsAndNames) {
  auto entries =
      parseAllowlist({"svc.ns.svc.cluster.local:8080", "0.0.0.0/0:443", "10.9.8.7",
                      "gone.example.test", "meta.example.test", "svc.ns.svc.cluster.local"});
  ASSERT_TRUE(entries.ok());
  std::vector<std::string> asked;
  auto r = resolveAllowlist(*entries, [&](const std::string& h) -> Result<std::vector<Network>> {
    asked.push_back(h);
    if (h == "svc.ns.svc.cluster.local")
      return std::vector<Network>{N("10.244.0.9"), N("10.244.0.7"), N("10.244.0.9")};
    if (h == "meta.example.test") return std::vector<Network>{N("169.254.169.254"), N("192.0.2.1")};
    return Error(ErrorCode::ValidationError, "Name or service not known");
  });
  // Each name is asked once, however often it is listed.
  EXPECT_EQ(asked, (std::vector<std::string>{"svc.ns.svc.cluster.local", "gone.example.test",
                                             "meta.example.test"}));
  EXPECT_EQ(r.unresolved(), std::vector<std::string>{"gone.example.test"});
  ASSERT_EQ(r.hosts.size(), 3u);
  EXPECT_EQ(r.hosts[0].host, "gone.example.test");
  EXPECT_EQ(r.hosts[0].error, "Name or service not known");
  EXPECT_EQ(r.hosts[1].host, "meta.example.test");
  EXPECT_EQ(cidrs(r.hosts[1].refused), std::vector<std::string>{"169.254.169.254/32"});
  EXPECT_EQ(cidrs(r.hosts[2].addresses),
            (std::vector<std::string>{"10.244.0.7/32", "10.244.0.9/32"}));
  std::vector<std::string> got;
  for (const auto& rule : r.rules) {
    std::string s = rule.network.cidr();
    for (auto p : rule.ports)
      s += ":" + std::to_string(p);
    s += " except " + std::to_string(rule.except.size());
    got.push_back(s);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"0.0.0.0/0:443 except 7", "10.9.8.7/32 except 0",
                                           "10.244.0.7/32 except 0", "10.244.0.7/32:8080 except 0",
                                           "10.244.0.9/32 except 0", "10.244.0.9/32:8080 except 0",
                                           "192.0.2.1/32 except 0"}));
  // Same input, same output: the policy changes only when addresses do.
  auto again =
      resolveAllowlist(*entries, [&](const std::string& h) -> Result<std::vector<Network>> {
        if (h == "svc.ns.svc.cluster.local")
          return std::vector<Network>{N("10.244.0.9"), N("10.244.0.7")};
        if (h == "meta.example.test")
          return std::vector<Network>{N("192.0.2.1"), N("169.254.169.254")};
        return Error(ErrorCode::ValidationError, "Name or service not known");
      });
  EXPECT_EQ(again.rules.size(), r.rules.size());
  for (std::size_t i = 0; i < r.rules.size() && i < again.rules.size(); ++i)
    EXPECT_EQ(again.rules[i].network, r.rules[i].network);
}

TEST(EgressResolve, EmptyAnswerIsUnresolved) {
  auto entries = parseAllowlist({"empty.example.test"});
  auto r = resolveAllowlist(*entries, [](const std::string&) -> Result<std::vector<Network>> {
    return std::vector<Network>{};
  });
  EXPECT_EQ(r.unresolved(), std::vector<std::string>{"empty.example.test"});
  EXPECT_TRUE(r.rules.empty());
}

TEST(EgressResolve, SystemResolverAnswersLocalhost) {
  auto r = resolveWithSystem("localhost");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_FALSE(r->empty());
  bool loopback = false;
  for (const auto& n : r.value())
    loopback |= N("127.0.0.0/8").contains(n) || n == N("::1");
  EXPECT_TRUE(loopback);
  EXPECT_FALSE(resolveWithSystem("no-such-name.invalid").ok());
}

}  // namespace
}  // namespace agentpane::egress
