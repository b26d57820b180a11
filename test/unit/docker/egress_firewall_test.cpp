// The host rules a Docker sandbox's allowlist becomes (docker/egress_firewall.hpp), as text.
#include "docker/egress_firewall.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace agentpane::docker {
namespace {

FirewallInput input(const std::vector<std::string>& allow) {
  FirewallInput in;
  in.sandboxId = "sbx-1";
  in.bridge = sandboxBridgeName("sbx-1");
  auto entries = egress::parseAllowlist(allow);
  EXPECT_TRUE(entries.ok());
  in.resolved = egress::resolveAllowlist(
      *entries, [](const std::string&) -> Result<std::vector<egress::Network>> {
        return std::vector<egress::Network>{*egress::Network::parse("192.0.2.7")};
      });
  in.dnsServers = {*egress::Network::parse("10.255.255.53")};
  return in;
}

TEST(EgressFirewall, NamesFitTheKernelsLimits) {
  EXPECT_LE(sandboxBridgeName(std::string(63, 'a')).size(), 15u);
  EXPECT_LE(sandboxChainName(std::string(63, 'a')).size() + 4, 28u);  // plus "-w99"/"-IN"
  EXPECT_NE(sandboxChainName("a"), sandboxChainName("b"));
}

TEST(EgressFirewall, NoAllowlistIsDnsOnlyThenReject) {
  const std::string c = sandboxChainName("sbx-1");
  EXPECT_EQ(firewallRules(input({})),
            "*filter\n"
            ":" +
                c +
                " - [0:0]\n"
                ":" +
                c +
                "-IN - [0:0]\n"
                "-A " +
                c +
                " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                "-A " +
                c +
                " -d 10.255.255.53/32 -p tcp -m multiport --dports 53 -j ACCEPT\n"
                "-A " +
                c +
                " -d 10.255.255.53/32 -p udp -m multiport --dports 53 -j ACCEPT\n"
                "-A " +
                c +
                " -p tcp -j REJECT --reject-with tcp-reset\n"
                "-A " +
                c +
                " -j REJECT --reject-with icmp-port-unreachable\n"
                "-A " +
                c +
                "-IN -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                "-A " +
                c +
                "-IN -d 10.255.255.53/32 -p tcp -m multiport --dports 53 -j ACCEPT\n"
                "-A " +
                c +
                "-IN -d 10.255.255.53/32 -p udp -m multiport --dports 53 -j ACCEPT\n"
                "-A " +
                c +
                "-IN -j DROP\n"
                "COMMIT\n");
}

// Private ranges, loopback, link-local (and so the metadata address) stay blocked inside a
// wide entry: its sub-chain RETURNs for each before it accepts.
TEST(EgressFirewall, WideEntriesReturnForEveryBlockedRange) {
  const std::string c = sandboxChainName("sbx-1");
  const std::string text =
      firewallRules(input({"0.0.0.0/0:443", "api.example.test", "10.1.2.3:22"}));
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n---\n" << text;
  };
  has(":" + c + "-w0 - [0:0]");
  has("-A " + c + " -d 0.0.0.0/0 -j " + c + "-w0");
  for (const char* r : {"0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                        "100.64.0.0/10", "169.254.0.0/16"})
    has("-A " + c + "-w0 -d " + std::string(r) + " -j RETURN");
  has("-A " + c + "-w0 -p tcp -m multiport --dports 443 -j ACCEPT");
  has("-A " + c + " -d 10.1.2.3/32 -p tcp -m multiport --dports 22 -j ACCEPT");
  has("-A " + c + " -d 192.0.2.7/32 -j ACCEPT");  // the name's address, every port
  // The metadata address opens only when it is listed itself.
  EXPECT_EQ(text.find("169.254.169.254"), std::string::npos);
  const std::string meta = firewallRules(input({"169.254.169.254:80"}));
  EXPECT_NE(
      meta.find("-A " + c + " -d 169.254.169.254/32 -p tcp -m multiport --dports 80 -j ACCEPT"),
      std::string::npos)
      << meta;
  // Reject comes last: nothing after it.
  EXPECT_LT(text.find("-d 192.0.2.7/32"), text.find("REJECT --reject-with tcp-reset"));
}

TEST(EgressFirewall, HostDnsServersFromResolvConf) {
  const std::string path = ::testing::TempDir() + "/resolv-egress-test.conf";
  {
    std::ofstream f(path);
    f << "# comment\nsearch example.test\nnameserver 10.255.255.53\nnameserver ::1\n"
         "nameserver 192.0.2.53\n";
  }
  auto dns = EgressFirewall::hostDnsServers(path);
  ASSERT_EQ(dns.size(), 2u);
  EXPECT_EQ(dns[0].address(), "10.255.255.53");
  EXPECT_EQ(dns[1].address(), "192.0.2.53");
}

}  // namespace
}  // namespace agentpane::docker
