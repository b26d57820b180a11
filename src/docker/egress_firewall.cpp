#include "docker/egress_firewall.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/hash.hpp"

extern char** environ;

namespace agentpane::docker {
namespace {

std::string idHash(const std::string& sandboxId) {
  return sha256Hex(sandboxId).substr(0, 12);
}

std::string portsList(const std::vector<std::uint16_t>& ports) {
  std::string s;
  for (auto p : ports)
    s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

// "-A CHAIN MATCH... -j ACCEPT" for each protocol the ports name (all traffic when none).
void acceptLines(std::ostringstream& out, const std::string& chain, const std::string& match,
                 const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) {
    out << "-A " << chain << match << " -j ACCEPT\n";
    return;
  }
  for (const char* proto : {"tcp", "udp"}) {
    out << "-A " << chain << match << " -p " << proto << " -m multiport --dports "
        << portsList(ports) << " -j ACCEPT\n";
  }
}

// Runs argv (no shell) with `input` on stdin; returns the exit status, stderr in *err.
int runProcess(const std::vector<std::string>& argv, const std::string& input, std::string* err,
               std::string* out = nullptr) {
  int in[2], errPipe[2], outPipe[2] = {-1, -1};
  auto closeOut = [&] {
    if (out == nullptr) return;
    ::close(outPipe[0]);
    ::close(outPipe[1]);
  };
  if (out != nullptr && ::pipe2(outPipe, O_CLOEXEC) != 0) return -1;
  if (::pipe2(in, O_CLOEXEC) != 0) {
    closeOut();
    return -1;
  }
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    closeOut();
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, errPipe[1], 2);
  if (out != nullptr) {
    posix_spawn_file_actions_adddup2(&fa, outPipe[1], 1);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(errPipe[1]);
  if (out != nullptr) ::close(outPipe[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(errPipe[0]);
    if (out != nullptr) ::close(outPipe[0]);
    if (err) *err = std::string(argv[0]) + ": " + std::strerror(rc);
    return -1;
  }
  // The rule text is small (well under a pipe's buffer), but write it all anyway.
  std::size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  // Both streams at once (iptables -S can print more than a pipe holds).
  std::string e;
  char buf[8192];
  pollfd fds[2] = {{errPipe[0], POLLIN, 0}, {out != nullptr ? outPipe[0] : -1, POLLIN, 0}};
  int streams = out != nullptr ? 2 : 1;
  while (streams > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --streams;
        continue;
      }
      if (i == 0) {
        if (e.size() < 16384) e.append(buf, static_cast<std::size_t>(n));
      } else {
        out->append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (err) *err = e;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Error unavailable(const std::string& why) {
  return Error(ErrorCode::SandboxProviderError,
               "egress allowlists on Docker are enforced with iptables on the host, which "
               "failed here: " +
                   why + " (the server needs root and the iptables command)",
               {{"reason", "EGRESS_ENFORCEMENT_UNAVAILABLE"}});
}

}  // namespace

std::string sandboxBridgeName(const std::string& sandboxId) {
  return "ap-" + idHash(sandboxId);
}
std::string sandboxChainName(const std::string& sandboxId) {
  return "AP-" + idHash(sandboxId);
}

std::string firewallRules(const FirewallInput& in) {
  const std::string chain = sandboxChainName(in.sandboxId);
  const std::string inChain = chain + "-IN";
  std::ostringstream out;
  out << "*filter\n";
  // Declared chains are flushed by iptables-restore --noflush: the rules below replace them.
  out << ":" << chain << " - [0:0]\n:" << inChain << " - [0:0]\n";
  std::vector<std::string> wide;
  for (std::size_t i = 0; i < in.resolved.rules.size(); ++i) {
    if (!in.resolved.rules[i].except.empty()) {
      wide.push_back(chain + "-w" + std::to_string(i));
      out << ":" << wide.back() << " - [0:0]\n";
    }
  }
  out << "-A " << chain << " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
  for (const auto& dns : in.dnsServers) {
    if (dns.v6) continue;
    acceptLines(out, chain, " -d " + dns.cidr(), {53});
  }
  std::size_t w = 0;
  for (const auto& rule : in.resolved.rules) {
    if (rule.network.v6) continue;  // no IPv6 on these networks: nothing to open
    if (rule.except.empty()) {
      acceptLines(out, chain, " -d " + rule.network.cidr(), rule.ports);
      continue;
    }
    const std::string& sub = wide[w++];
    out << "-A " << chain << " -d " << rule.network.cidr() << " -j " << sub << "\n";
    for (const auto& ex : rule.except)
      out << "-A " << sub << " -d " << ex.cidr() << " -j RETURN\n";
    acceptLines(out, sub, "", rule.ports);
  }
  out << "-A " << chain << " -p tcp -j REJECT --reject-with tcp-reset\n";
  out << "-A " << chain << " -j REJECT --reject-with icmp-port-unreachable\n";
  // To the host itself: replies, and DNS when the host is a resolver; nothing else.
  out << "-A " << inChain << " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
  for (const auto& dns : in.dnsServers) {
    if (dns.v6) continue;
    acceptLines(out, inChain, " -d " + dns.cidr(), {53});
  }
  out << "-A " << inChain << " -j DROP\n";
  out << "COMMIT\n";
  return out.str();
}

EgressFirewall::EgressFirewall(std::string iptablesRestore, std::string iptables)
    : restoreCmd_(std::move(iptablesRestore)), iptablesCmd_(std::move(iptables)) {}

int EgressFirewall::iptables(const std::vector<std::string>& args, std::string* err) {
  std::vector<std::string> argv = {iptablesCmd_, "-w", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv, {}, err);
}

Result<void> EgressFirewall::restore(const std::string& text) {
  std::string err;
  int rc = runProcess({restoreCmd_, "-w", "10", "--noflush"}, text, &err);
  if (rc != 0) return unavailable(restoreCmd_ + " exited " + std::to_string(rc) + ": " + err);
  return {};
}

Result<void> EgressFirewall::ensureBaseChains() {
  std::string err;
  if (iptables({"-S", kEgressChain}, &err) != 0) {
    if (iptables({"-N", kEgressChain}, &err) != 0 && iptables({"-S", kEgressChain}) != 0)
      return unavailable("cannot make chain " + std::string(kEgressChain) + ": " + err);
  }
  if (iptables({"-C", "DOCKER-USER", "-j", kEgressChain}) != 0) {
    if (iptables({"-S", "DOCKER-USER"}) != 0) {
      // An engine that has not made DOCKER-USER yet: make it (the engine keeps it).
      if (iptables({"-N", "DOCKER-USER"}, &err) != 0)
        return unavailable("cannot make chain DOCKER-USER: " + err);
    }
    if (iptables({"-I", "DOCKER-USER", "1", "-j", kEgressChain}, &err) != 0)
      return unavailable("cannot jump from DOCKER-USER: " + err);
  }
  return {};
}

Result<void> EgressFirewall::apply(const FirewallInput& in) {
  std::lock_guard lock(mu_);
  // (The -wN chains of a wider earlier rule set stay, unreferenced, until remove().)
  const std::string chain = sandboxChainName(in.sandboxId);
  // Another process's ruleset change (the engine's, a cluster's network policy agent) can
  // land between our restore and our jumps and, with the nf_tables backend, lose the chains we
  // had just made ("Chain ... does not exist"): the restore is made again, a few times.
  for (int attempt = 1;; ++attempt) {
    auto done = applyOnce(in, chain);
    if (done.ok() || attempt == 3 ||
        done.error().message.find("does not exist") == std::string::npos) {
      return done;
    }
    spdlog::warn("egress firewall: sandbox {}: {}; applying again", in.sandboxId,
                 done.error().message);
  }
}

Result<void> EgressFirewall::applyOnce(const FirewallInput& in, const std::string& chain) {
  if (auto base = ensureBaseChains(); !base.ok()) return base;
  AP_TRY(restore(firewallRules(in)));
  // The jumps: added once per sandbox (checked first, so a re-apply adds nothing).
  // What comes in to a sandbox is decided first (inserted at the top, the reply rule above the
  // drop), so that another sandbox's allowlist can never open this one; its own traffic out
  // goes to its chain (appended).
  struct Jump {
    std::vector<std::string> rule;
    bool top;
  };
  const std::vector<Jump> jumps = {
      {{kEgressChain, "!", "-i", in.bridge, "-o", in.bridge, "-j", "DROP"}, true},
      {{kEgressChain, "-o", in.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j",
        "ACCEPT"},
       true},
      {{kEgressChain, "-i", in.bridge, "-j", chain}, false},
      {{"INPUT", "-i", in.bridge, "-j", chain + "-IN"}, true},
  };
  for (const auto& [j, top] : jumps) {
    std::vector<std::string> check = {"-C"};
    check.insert(check.end(), j.begin(), j.end());
    if (iptables(check) == 0) continue;
    std::vector<std::string> add = {top ? "-I" : "-A", j[0]};
    if (top) add.push_back("1");
    add.insert(add.end(), j.begin() + 1, j.end());
    std::string err;
    if (iptables(add, &err) != 0) return unavailable("cannot add a rule: " + err);
  }
  return {};
}

Result<void> EgressFirewall::remove(const std::string& sandboxId, const std::string& bridge) {
  std::lock_guard lock(mu_);
  const std::string chain = sandboxChainName(sandboxId);
  const std::vector<std::vector<std::string>> jumps = {
      {kEgressChain, "-i", bridge, "-j", chain},
      {kEgressChain, "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j",
       "ACCEPT"},
      {kEgressChain, "!", "-i", bridge, "-o", bridge, "-j", "DROP"},
      {"INPUT", "-i", bridge, "-j", chain + "-IN"},
  };
  for (const auto& j : jumps) {
    std::vector<std::string> del = {"-D"};
    del.insert(del.end(), j.begin(), j.end());
    while (iptables(del) == 0) {
    }
  }
  // Every chain of the sandbox (its own, -IN, and the -wN of wide rules): flush, then delete.
  std::string listing;
  (void)runProcess({iptablesCmd_, "-w", "10", "-S"}, {}, nullptr, &listing);
  std::vector<std::string> chains;
  std::istringstream lines(listing);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("-N " + chain, 0) == 0) chains.push_back(line.substr(3));
  }
  for (const auto& c : chains)
    (void)iptables({"-F", c});
  for (const auto& c : chains) {
    std::string err;
    if (iptables({"-X", c}, &err) != 0) return unavailable("cannot delete chain " + c + ": " + err);
  }
  return {};
}

std::vector<egress::Network> EgressFirewall::hostDnsServers(const std::string& resolvConf) {
  std::vector<egress::Network> out;
  std::ifstream f(resolvConf);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream l(line);
    std::string key, addr;
    l >> key >> addr;
    if (key != "nameserver") continue;
    auto n = egress::Network::parse(addr);
    if (n && !n->v6) out.push_back(*n);
  }
  return out;
}

}  // namespace agentpane::docker
