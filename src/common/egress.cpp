#include "common/egress.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace agentpane::egress {
namespace {

constexpr std::size_t kMaxEntryLength = 300;
constexpr std::size_t kMaxPorts = 16;

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isAlnum(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool validHostName(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  std::string_view last;
  std::size_t start = 0;
  for (;;) {
    auto dot = s.find('.', start);
    auto label = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return isAlnum(c) || c == '-'; }))
      return false;
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // "300.1.1.1" is a broken address, not a host name.
  return !std::all_of(last.begin(), last.end(), isDigit);
}

Error failure(ParseFailure f, std::string_view text, const std::string& field,
              const std::string& why) {
  return Error(ErrorCode::ValidationError, field + ": '" + std::string(text) + "' " + why,
               {{"field", field}, {"value", std::string(text)}, {"reason", reasonCode(f)}});
}

// "80,443" -> ports; nullopt when any is not 1-65535 or there are too many.
std::optional<std::vector<std::uint16_t>> parsePorts(std::string_view s) {
  std::vector<std::uint16_t> out;
  std::size_t start = 0;
  for (;;) {
    auto comma = s.find(',', start);
    auto p = s.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), isDigit)) return std::nullopt;
    unsigned v = 0;
    std::from_chars(p.data(), p.data() + p.size(), v);
    if (v < 1 || v > 65535) return std::nullopt;
    out.push_back(static_cast<std::uint16_t>(v));
    if (out.size() > kMaxPorts) return std::nullopt;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<Network> parseAddress(std::string_view s) {
  std::string a(s);
  Network n;
  if (inet_pton(AF_INET, a.c_str(), n.bytes.data()) == 1) {
    n.prefix = 32;
    return n;
  }
  if (inet_pton(AF_INET6, a.c_str(), n.bytes.data()) == 1) {
    n.v6 = true;
    n.prefix = 128;
    return n;
  }
  return std::nullopt;
}

bool hostBitsZero(const Network& n) {
  for (int bit = n.prefix; bit < n.maxPrefix(); ++bit) {
    if (n.bytes[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

// Address or CIDR text (no brackets, no port).
Result<Network> parseNetwork(std::string_view s, std::string_view text, const std::string& field) {
  auto slash = s.find('/');
  auto addr = parseAddress(s.substr(0, slash));
  if (!addr) {
    return failure(ParseFailure::BadAddress, text, field, "is not an IPv4 or IPv6 address or CIDR");
  }
  if (slash == std::string_view::npos) return *addr;
  auto p = s.substr(slash + 1);
  int prefix = -1;
  if (!p.empty() && p.size() <= 3 && std::all_of(p.begin(), p.end(), isDigit)) {
    std::from_chars(p.data(), p.data() + p.size(), prefix);
  }
  if (prefix < 0 || prefix > addr->maxPrefix()) {
    return failure(ParseFailure::BadPrefix, text, field,
                   "has a prefix length outside 0-" + std::to_string(addr->maxPrefix()));
  }
  addr->prefix = prefix;
  if (!hostBitsZero(*addr)) {
    return failure(
        ParseFailure::HostBitsSet, text,
        field, "has address bits past its prefix; write the network address (" + [&] {
          Network z = *addr;
          for (int bit = z.prefix; bit < z.maxPrefix(); ++bit)
            z.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
          return z.cidr();
        }() + ")");
  }
  return *addr;
}

Network net(std::string_view cidr) {
  return *Network::parse(cidr);
}

}  // namespace

std::optional<Network> Network::parse(std::string_view cidrOrAddress) {
  auto r = parseNetwork(cidrOrAddress, cidrOrAddress, "network");
  if (!r.ok()) return std::nullopt;
  return r.value();
}

std::string Network::address() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

std::string Network::cidr() const {
  return address() + "/" + std::to_string(prefix);
}

bool Network::contains(const Network& other) const {
  if (v6 != other.v6 || other.prefix < prefix) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    std::uint8_t mask = 0x80 >> (bit % 8);
    if ((bytes[bit / 8] & mask) != (other.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

const char* reasonCode(ParseFailure f) {
  switch (f) {
    case ParseFailure::Empty:
      return "EGRESS_ENTRY_EMPTY";
    case ParseFailure::TooLong:
      return "EGRESS_ENTRY_TOO_LONG";
    case ParseFailure::BadBrackets:
      return "EGRESS_BRACKETS_INVALID";
    case ParseFailure::BadPort:
      return "EGRESS_PORT_INVALID";
    case ParseFailure::BadAddress:
      return "EGRESS_ADDRESS_INVALID";
    case ParseFailure::BadPrefix:
      return "EGRESS_PREFIX_INVALID";
    case ParseFailure::HostBitsSet:
      return "EGRESS_CIDR_HOST_BITS";
    case ParseFailure::BadHostName:
      return "EGRESS_HOST_INVALID";
  }
  return "EGRESS_ENTRY_INVALID";
}

Result<Entry> parseEntry(std::string_view text, const std::string& field) {
  if (text.empty()) return failure(ParseFailure::Empty, text, field, "is empty");
  if (text.size() > kMaxEntryLength) {
    return failure(ParseFailure::TooLong, text.substr(0, 40), field,
                   "is longer than 300 characters");
  }
  Entry e;
  e.text = std::string(text);
  std::string_view hostPart = text;
  std::optional<std::string_view> portPart;
  bool bracketed = false;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      return failure(ParseFailure::BadBrackets, text, field, "opens '[' without closing it");
    }
    hostPart = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return failure(ParseFailure::BadBrackets, text, field,
                       "has text after ']' that is not ':PORT'");
      }
      portPart = rest.substr(1);
    }
    bracketed = true;
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto c = text.find(':');
    hostPart = text.substr(0, c);
    portPart = text.substr(c + 1);
  }
  if (portPart) {
    auto ports = parsePorts(*portPart);
    if (!ports) {
      return failure(ParseFailure::BadPort, text, field,
                     "has a port that is not 1-65535 (at most 16, comma-separated)");
    }
    e.ports = std::move(*ports);
  }
  // Addresses and CIDRs are written in digits, dots, hex letters and colons; anything else
  // is judged as a host name.
  auto beforeSlash = hostPart.substr(0, hostPart.find('/'));
  bool numericChars =
      !beforeSlash.empty() && std::all_of(beforeSlash.begin(), beforeSlash.end(), [](char c) {
        return isDigit(c) || c == '.' || c == ':' || (c >= 'a' && c <= 'f') ||
               (c >= 'A' && c <= 'F');
      });
  bool looksNumeric =
      bracketed || beforeSlash.find(':') != std::string_view::npos ||
      (numericChars && (hostPart.find('/') != std::string_view::npos ||
                        std::all_of(beforeSlash.begin(), beforeSlash.end(),
                                    [](char c) { return isDigit(c) || c == '.'; })));
  if (looksNumeric) {
    auto n = parseNetwork(hostPart, text, field);
    if (!n.ok()) return n.takeError();
    if (bracketed && !n->v6) {
      return failure(ParseFailure::BadBrackets, text, field,
                     "puts an IPv4 address in brackets (brackets are for IPv6)");
    }
    e.network = n.value();
    e.kind = hostPart.find('/') == std::string_view::npos ? EntryKind::Address : EntryKind::Cidr;
    return e;
  }
  if (!validHostName(hostPart)) {
    return failure(ParseFailure::BadHostName, text, field,
                   "is not a host name, IP address or CIDR (optionally :PORT)");
  }
  std::string host(hostPart);
  if (host.back() == '.') host.pop_back();
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  e.kind = EntryKind::Host;
  e.host = std::move(host);
  return e;
}

Result<std::vector<Entry>> parseAllowlist(const std::vector<std::string>& entries,
                                          const std::string& field) {
  if (entries.size() > kMaxEntries) {
    return Error(ErrorCode::ValidationError, field + ": at most 256 egress entries",
                 {{"field", field}, {"reason", "EGRESS_TOO_MANY_ENTRIES"}});
  }
  std::vector<Entry> out;
  out.reserve(entries.size());
  for (const auto& s : entries) {
    auto e = parseEntry(s, field);
    if (!e.ok()) return e.takeError();
    out.push_back(std::move(e.value()));
  }
  return out;
}

const std::vector<BlockedRange>& alwaysBlocked() {
  static const std::vector<BlockedRange> ranges = {
      {net("0.0.0.0/8"), "this host (0.0.0.0/8)"},
      {net("127.0.0.0/8"), "loopback"},
      {net("10.0.0.0/8"), "private (RFC 1918)"},
      {net("172.16.0.0/12"), "private (RFC 1918)"},
      {net("192.168.0.0/16"), "private (RFC 1918)"},
      {net("100.64.0.0/10"), "private (carrier-grade NAT, RFC 6598)"},
      {net("169.254.0.0/16"), "link-local"},
      {net("169.254.169.254/32"), "cloud metadata"},
      {net("::1/128"), "loopback"},
      {net("::ffff:0:0/96"), "IPv4-mapped (reaches IPv4 ranges)"},
      {net("fc00::/7"), "private (IPv6 unique local)"},
      {net("fe80::/10"), "link-local"},
      {net("fd00:ec2::254/128"), "cloud metadata"},
  };
  return ranges;
}

bool isMetadataAddress(const Network& n) {
  static const Network v4 = net("169.254.169.254/32"), v6 = net("fd00:ec2::254/128");
  return n == v4 || n == v6;
}

bool isLinkLocal(const Network& n) {
  static const Network v4 = net("169.254.0.0/16"), v6 = net("fe80::/10");
  return v4.contains(n) || v6.contains(n);
}

std::vector<Network> carveOuts(const Network& n) {
  std::vector<Network> out;
  for (const auto& b : alwaysBlocked()) {
    if (b.network == n || !n.contains(b.network)) continue;
    // A blocked range inside one already carved out adds nothing.
    bool covered = std::any_of(out.begin(), out.end(),
                               [&](const Network& o) { return o.contains(b.network); });
    if (!covered) out.push_back(b.network);
  }
  return out;
}

bool hasHostNames(const std::vector<Entry>& entries) {
  return std::any_of(entries.begin(), entries.end(),
                     [](const Entry& e) { return e.kind == EntryKind::Host; });
}

std::vector<std::string> Resolved::unresolved() const {
  std::vector<std::string> out;
  for (const auto& h : hosts) {
    if (!h.error.empty()) out.push_back(h.host);
  }
  return out;
}

namespace {
auto ruleKey(const Rule& r) {
  std::vector<std::string> ex;
  for (const auto& e : r.except)
    ex.push_back(e.cidr());
  return std::tuple(r.network.v6, r.network.bytes, r.network.prefix, r.ports, ex, r.source);
}
}  // namespace

Resolved resolveAllowlist(const std::vector<Entry>& entries, const ResolveFn& resolve) {
  Resolved out;
  std::map<std::string, std::size_t> hostIndex;
  for (const auto& e : entries) {
    if (e.kind != EntryKind::Host) {
      out.rules.push_back(Rule{e.network, carveOuts(e.network), e.ports, e.text});
      continue;
    }
    auto it = hostIndex.find(e.host);
    if (it == hostIndex.end()) {
      HostResolution h;
      h.host = e.host;
      auto addrs = resolve(e.host);
      if (!addrs.ok()) {
        h.error = addrs.error().message.empty() ? "does not resolve" : addrs.error().message;
      } else if (addrs->empty()) {
        h.error = "resolves to no address";
      } else {
        for (auto a : addrs.value()) {
          a.prefix = a.maxPrefix();
          if (isLinkLocal(a) || isMetadataAddress(a)) {
            h.refused.push_back(a);
          } else {
            h.addresses.push_back(a);
          }
        }
        auto less = [](const Network& a, const Network& b) {
          return std::tie(a.v6, a.bytes) < std::tie(b.v6, b.bytes);
        };
        std::sort(h.addresses.begin(), h.addresses.end(), less);
        h.addresses.erase(std::unique(h.addresses.begin(), h.addresses.end()), h.addresses.end());
        std::sort(h.refused.begin(), h.refused.end(), less);
        h.refused.erase(std::unique(h.refused.begin(), h.refused.end()), h.refused.end());
      }
      it = hostIndex.emplace(e.host, out.hosts.size()).first;
      out.hosts.push_back(std::move(h));
    }
    for (const auto& a : out.hosts[it->second].addresses) {
      out.rules.push_back(Rule{a, {}, e.ports, e.text});
    }
  }
  std::sort(out.rules.begin(), out.rules.end(),
            [](const Rule& a, const Rule& b) { return ruleKey(a) < ruleKey(b); });
  out.rules.erase(
      std::unique(out.rules.begin(), out.rules.end(),
                  [](const Rule& a, const Rule& b) { return ruleKey(a) == ruleKey(b); }),
      out.rules.end());
  std::sort(out.hosts.begin(), out.hosts.end(),
            [](const HostResolution& a, const HostResolution& b) { return a.host < b.host; });
  return out;
}

std::vector<std::string> resolveCommand(const std::vector<std::string>& hosts) {
  std::vector<std::string> argv = {
      "sh", "-c", "for h; do echo \"@ $h\"; getent ahosts \"$h\" || echo \"! $h $?\"; done", "sh"};
  argv.insert(argv.end(), hosts.begin(), hosts.end());
  return argv;
}

std::map<std::string, Result<std::vector<Network>>> parseResolveOutput(const std::string& out) {
  std::map<std::string, Result<std::vector<Network>>> answers;
  std::istringstream in(out);
  std::string line, current;
  while (std::getline(in, line)) {
    if (line.rfind("@ ", 0) == 0) {
      current = line.substr(2);
      answers.insert_or_assign(current, std::vector<Network>{});
      continue;
    }
    if (line.rfind("! ", 0) == 0) {
      std::istringstream f(line.substr(2));
      std::string host, code;
      f >> host >> code;
      answers.insert_or_assign(
          host, Error(ErrorCode::ValidationError,
                      code == "2"
                          ? "the sandbox's DNS does not know this name"
                          : "the name did not resolve in the sandbox (getent exit " + code + ")"));
      continue;
    }
    auto it = answers.find(current);
    if (it == answers.end() || !it->second.ok()) continue;
    std::string addr = line.substr(0, line.find_first_of(" \t"));
    if (auto n = Network::parse(addr)) it->second.value().push_back(*n);
  }
  return answers;
}

std::string describeRule(const Rule& r) {
  std::string s = r.network.cidr();
  if (!r.except.empty()) {
    s += " except";
    for (std::size_t i = 0; i < r.except.size(); ++i)
      s += (i ? "," : " ") + r.except[i].cidr();
  }
  if (!r.ports.empty()) {
    s += " ports";
    for (std::size_t i = 0; i < r.ports.size(); ++i)
      s += (i ? "," : " ") + std::to_string(r.ports[i]);
  } else {
    s += " all ports";
  }
  return s;
}

EgressStatus statusOf(const std::vector<std::string>& allowlist, const Resolved& r) {
  EgressStatus st;
  st.allowlist = allowlist;
  st.enforced = true;
  for (const auto& rule : r.rules)
    st.rules.push_back(describeRule(rule));
  for (const auto& h : r.hosts) {
    EgressHostStatus hs{h.host, {}, h.error};
    for (const auto& a : h.addresses)
      hs.addresses.push_back(a.address());
    if (!h.refused.empty() && hs.error.empty()) {
      // Reported, not silently dropped: only a literal entry opens these.
      std::string refused;
      for (const auto& a : h.refused)
        refused += (refused.empty() ? "" : ", ") + a.address();
      hs.error = "resolves to link-local/metadata " + refused + " (only a literal entry opens it)";
    }
    st.hosts.push_back(std::move(hs));
  }
  st.unresolved = r.unresolved();
  return st;
}

Result<std::vector<Network>> resolveWithSystem(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return Error(ErrorCode::ValidationError, gai_strerror(rc), {{"host", host}});
  }
  std::vector<Network> out;
  for (auto* p = res; p; p = p->ai_next) {
    Network n;
    if (p->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(p->ai_addr);
      std::memcpy(n.bytes.data(), &sin->sin_addr, 4);
      n.prefix = 32;
    } else if (p->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(p->ai_addr);
      std::memcpy(n.bytes.data(), &sin6->sin6_addr, 16);
      n.v6 = true;
      n.prefix = 128;
    } else {
      continue;
    }
    out.push_back(n);
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace agentpane::egress
