// The egress model both providers enforce: what an allowlist entry is, which ranges stay
// blocked unless listed explicitly, and the rules an allowlist becomes once its host names
// are resolved. Pure values and functions; the providers turn EgressRules into a
// NetworkPolicy (src/k8s/network_policy.hpp) or host firewall rules (src/docker/egress_*).
//
// An entry is one of
//   CIDR       10.1.0.0/16, 2001:db8::/32           (address bits past the prefix refused)
//   address    10.1.2.3, 2001:db8::1
//   host name  api.example.test, my-svc.ns.svc.cluster.local
// each optionally with ports: "HOST:PORT[,PORT...]", IPv6 as "[ADDR]:PORT" or
// "[CIDR]:PORT". No port: every TCP and UDP port.
//
// Always blocked unless listed explicitly (kAlwaysBlocked): loopback, the private ranges
// (RFC 1918, carrier-grade NAT, IPv6 unique local), link-local (which holds the cloud
// metadata address 169.254.169.254) and the metadata address itself. "Listed explicitly"
// means an entry whose own range lies inside the blocked range (10.1.2.3 or 10.0.0.0/8
// opens that much of 10.0.0.0/8); a wider entry (0.0.0.0/0) gets every blocked range it
// contains carved out. Addresses a host name resolves to count as listed (a cluster Service
// name resolves to a private address) except link-local and metadata ones, which only a
// literal entry opens: a name cannot be made to point at the metadata service.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane::egress {

// An IPv4 or IPv6 network: address bits past `prefix` are zero.
struct Network {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4
  int prefix = 0;

  static std::optional<Network> parse(std::string_view cidrOrAddress);  // host bits refused
  // "10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32" (always with the prefix).
  [[nodiscard]] std::string cidr() const;
  // The address alone ("10.1.2.3"), for single addresses.
  [[nodiscard]] std::string address() const;
  [[nodiscard]] int maxPrefix() const { return v6 ? 128 : 32; }
  [[nodiscard]] bool isSingleAddress() const { return prefix == maxPrefix(); }
  // Same family, and every address of `other` is in this network.
  [[nodiscard]] bool contains(const Network& other) const;
  bool operator==(const Network&) const = default;
};

enum class EntryKind { Cidr, Address, Host };

struct Entry {
  std::string text;  // as written
  EntryKind kind = EntryKind::Host;
  Network network;                   // Cidr, Address
  std::string host;                  // Host: lower case, no trailing dot
  std::vector<std::uint16_t> ports;  // empty: every port
};

// Why an entry is refused: the `reason` detail of the ValidationError.
enum class ParseFailure {
  Empty,        // EGRESS_ENTRY_EMPTY
  TooLong,      // EGRESS_ENTRY_TOO_LONG (over 300 characters)
  BadBrackets,  // EGRESS_BRACKETS_INVALID ("[" without "]", text after "]" not ":PORT")
  BadPort,      // EGRESS_PORT_INVALID (not 1-65535, empty, or more than 16 ports)
  BadAddress,   // EGRESS_ADDRESS_INVALID (neither IPv4 nor IPv6 where one is required)
  BadPrefix,    // EGRESS_PREFIX_INVALID (not 0-32 / 0-128)
  HostBitsSet,  // EGRESS_CIDR_HOST_BITS (10.1.2.3/8: write 10.0.0.0/8)
  BadHostName,  // EGRESS_HOST_INVALID (not an RFC 1123 host name)
};
const char* reasonCode(ParseFailure f);

// Parses one entry. The error is ValidationError with details field (the caller's `field`),
// value (the entry) and reason (reasonCode).
Result<Entry> parseEntry(std::string_view text, const std::string& field = "allowEgress");
// Parses a whole list (at most kMaxEntries); the first bad entry's error.
inline constexpr std::size_t kMaxEntries = 256;
Result<std::vector<Entry>> parseAllowlist(const std::vector<std::string>& entries,
                                          const std::string& field = "allowEgress");

struct BlockedRange {
  Network network;
  const char* why;  // "loopback", "private (RFC 1918)", "link-local", "cloud metadata", ...
};
// Every range blocked unless listed explicitly.
const std::vector<BlockedRange>& alwaysBlocked();
// The cloud metadata addresses (169.254.169.254, fd00:ec2::254).
bool isMetadataAddress(const Network& n);
bool isLinkLocal(const Network& n);

// One address a host name resolved to, or a literal entry, with its ports: the unit both
// providers enforce.
struct Rule {
  Network network;
  std::vector<Network> except;       // blocked ranges carved out of a wide entry
  std::vector<std::uint16_t> ports;  // empty: every port
  std::string source;                // the entry it came from
};

// What resolving an allowlist produced.
struct HostResolution {
  std::string host;
  std::vector<Network> addresses;  // single addresses, sorted, deduplicated
  std::string error;               // non-empty: the name did not resolve (why)
  // Addresses the name resolved to that only a literal entry may open (link-local,
  // metadata): left out of the rules and reported.
  std::vector<Network> refused;
};

struct Resolved {
  std::vector<Rule> rules;
  std::vector<HostResolution> hosts;  // one per distinct host name of the allowlist
  // Names that did not resolve (never dropped silently: the API and the CLI report them).
  [[nodiscard]] std::vector<std::string> unresolved() const;
};

// Resolves host names with `resolve` (name -> addresses or an error message) and builds the
// rules: literals with their carve-outs, host addresses as single-address rules. Rules are
// sorted, so equal inputs give equal outputs (the policy changes only when addresses do).
using ResolveFn = std::function<Result<std::vector<Network>>(const std::string& host)>;
Resolved resolveAllowlist(const std::vector<Entry>& entries, const ResolveFn& resolve);

// The system resolver (getaddrinfo, both families); blocking.
Result<std::vector<Network>> resolveWithSystem(const std::string& host);

// Blocked ranges strictly inside `n` that `n` does not itself name (the carve-outs of a wide
// entry), most general first.
std::vector<Network> carveOuts(const Network& n);

// Resolving inside the sandbox, with the sandbox's own resolver (what it will connect to):
// the argv of one exec that prints "@ HOST", then getent's answer or "! HOST CODE", for each
// host. The names are arguments of a fixed script, never part of it.
std::vector<std::string> resolveCommand(const std::vector<std::string>& hosts);
// Its output, per host: the addresses, or why the name did not resolve.
std::map<std::string, Result<std::vector<Network>>> parseResolveOutput(const std::string& out);

// "10.1.2.3/32 ports 8080", "0.0.0.0/0 except 10.0.0.0/8,... all ports".
std::string describeRule(const Rule& r);
// What a provider reports (provider.hpp's EgressStatus) for a resolved allowlist.
EgressStatus statusOf(const std::vector<std::string>& allowlist, const Resolved& r);

// True when any entry is a host name.
bool hasHostNames(const std::vector<Entry>& entries);

}  // namespace agentpane::egress
