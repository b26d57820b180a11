// Egress enforcement for Docker sandboxes, on the host: each sandbox with an allowlist gets a
// network of its own (bridge interface ap-<hash>, made by the provider) and iptables rules in
// the filter table, reached from Docker's DOCKER-USER chain, which the engine evaluates
// before its own forwarding rules:
//
//   DOCKER-USER      -j AGENTPANE-EGRESS                       (first rule; ensured)
//   AGENTPANE-EGRESS -o ap-X -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT   (replies)
//                    ! -i ap-X -o ap-X -j DROP                 nothing else comes in
//                    (every sandbox's -o rules come before any -i rule: no allowlist of
//                    one sandbox can open another)
//                    -i ap-X -j AP-X                           sandbox -> anywhere routed
//   AP-X             RELATED,ESTABLISHED accept; the host's DNS servers on 53; each rule of
//                    the allowlist (a wide one through AP-X-wN, whose except ranges RETURN);
//                    then REJECT (tcp-reset) everything else
//   INPUT            -i ap-X jumps to AP-X-IN: replies and DNS to the host accepted, the rest
//                    dropped (the host's own services, the bridge gateway)
//
// A rule set is replaced in one iptables-restore --noflush transaction (declaring a chain
// flushes it), so a change is in force when apply() returns and there is no moment with
// neither the old nor the new rules. IPv4 only: Docker networks made here have no IPv6, so
// IPv6 entries open nothing. Needs root (CAP_NET_ADMIN) and the iptables command; without
// them apply() fails (EGRESS_ENFORCEMENT_UNAVAILABLE) and the sandbox is not made.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "agentpane/result.hpp"
#include "common/egress.hpp"

namespace agentpane::docker {

inline constexpr const char* kEgressChain = "AGENTPANE-EGRESS";

// ap-<12 hex of sha256(id)>: a Linux interface name (at most 15 characters).
std::string sandboxBridgeName(const std::string& sandboxId);
// AP-<12 hex>: the sandbox's chain (iptables allows 28 characters).
std::string sandboxChainName(const std::string& sandboxId);

struct FirewallInput {
  std::string sandboxId;
  std::string bridge;  // sandboxBridgeName()
  egress::Resolved resolved;
  std::vector<egress::Network> dnsServers;  // the host's resolvers (Docker's DNS forwards there)
};

// The iptables-restore text (filter table) that makes `in` what the sandbox may reach. Pure.
std::string firewallRules(const FirewallInput& in);

class EgressFirewall {
 public:
  explicit EgressFirewall(std::string iptablesRestore = "iptables-restore",
                          std::string iptables = "iptables");
  // Installs (or replaces) the sandbox's rules; in force when it returns.
  Result<void> apply(const FirewallInput& in);
  // Removes them; idempotent.
  Result<void> remove(const std::string& sandboxId, const std::string& bridge);
  // The host's DNS servers (nameserver lines of /etc/resolv.conf, IPv4).
  static std::vector<egress::Network> hostDnsServers(
      const std::string& resolvConf = "/etc/resolv.conf");

 private:
  Result<void> ensureBaseChains();
  Result<void> applyOnce(const FirewallInput& in, const std::string& chain);  // under mu_
  Result<void> restore(const std::string& text);
  // `iptables ARGS` (argv, no shell); exit code, stderr in `err`.
  int iptables(const std::vector<std::string>& args, std::string* err = nullptr);

  std::string restoreCmd_, iptablesCmd_;
  std::mutex mu_;
};

}  // namespace agentpane::docker
