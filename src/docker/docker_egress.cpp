// Egress of the Docker provider: a network of each sandbox's own (so that no sandbox shares
// a network with another) and, with the firewall on, iptables rules on the host that allow
// exactly the allowlist (egress_firewall.hpp). Host names are resolved inside the sandbox
// with its own resolver (Docker's DNS, forwarding to the host's), as on Kubernetes.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/egress.hpp"
#include "docker/docker_provider.hpp"
#include "docker/engine_json.hpp"

namespace agentpane::docker {

using nlohmann::json;

Result<void> DockerProvider::makeSandboxNetwork(const SandboxSpec& spec, bool internal,
                                                bool filtered) {
  json lbls = sandboxLabels(spec, opts_.scopeLabels);
  json body = {{"Name", networkName(spec.id)},
               {"Driver", "bridge"},
               {"Internal", internal},
               {"CheckDuplicate", true},
               {"Labels", lbls}};
  if (filtered) {
    // A known interface name, so that the host rules can name it before the container runs.
    body["Options"] = {{"com.docker.network.bridge.name", sandboxBridgeName(spec.id)}};
  }
  auto made = client_->call("POST", "/networks/create", &body);
  if (!made.ok()) {
    if (httpStatus(made.error()) == 409) {
      return Error(ErrorCode::SandboxAlreadyExists,
                   "a network of sandbox '" + spec.id + "' already exists",
                   {{"id", spec.id}, {"network", networkName(spec.id)}});
    }
    return made.takeError();
  }
  return {};
}

Result<void> DockerProvider::removeSandboxNetwork(const std::string& sandboxId) {
  const std::string name = networkName(sandboxId);
  auto got = client_->call("GET", "/networks/" + name);
  if (!got.ok()) {
    if (httpStatus(got.error()) == 404) return {};
    return got.takeError();
  }
  const json netLabels = got->value("Labels", json::object());
  auto label = [&](const std::string& k) {
    return netLabels.is_object() && netLabels.contains(k) && netLabels[k].is_string()
               ? netLabels[k].get<std::string>()
               : std::string();
  };
  if (label(labels::kSandboxId) != sandboxId) return {};
  for (const auto& [k, v] : opts_.scopeLabels)
    if (label(k) != v) return {};  // another server's: not ours to touch
  if (firewall_) {
    AP_TRY(firewall_->remove(sandboxId, sandboxBridgeName(sandboxId)));
    std::lock_guard lock(egressMu_);
    appliedRules_.erase(sandboxId);
  }
  // Anything still attached (the sandbox's container is gone by now) would keep the network.
  const json attached = got->value("Containers", json::object());
  if (attached.is_object()) {
    for (const auto& [cid, _] : attached.items()) {
      json body = {{"Container", cid}, {"Force", true}};
      auto d = client_->call("POST", "/networks/" + name + "/disconnect", &body);
      if (!d.ok() && httpStatus(d.error()) != 404)
        spdlog::warn("network {}: disconnecting {}: {}", name, cid, d.error().describe());
    }
  }
  auto r = client_->call("DELETE", "/networks/" + name);
  if (!r.ok() && httpStatus(r.error()) != 404) return r.takeError();
  return {};
}

std::vector<std::string> DockerProvider::sweepNetworks() {
  std::vector<std::string> swept;
  auto nets = client_->call("GET", "/networks?filters=" + labelFilterQuery(scopeSelector()));
  if (!nets.ok() || !nets->is_array()) {
    if (!nets.ok()) spdlog::warn("docker: networks not swept: {}", nets.error().describe());
    return swept;
  }
  for (const auto& n : *nets) {
    const json l = n.value("Labels", json::object());
    if (!l.is_object() || !l.contains(labels::kSandboxId) || !l[labels::kSandboxId].is_string())
      continue;
    const std::string id = l[labels::kSandboxId].get<std::string>();
    if (!isValidSandboxId(id) || n.value("Name", "") != networkName(id)) continue;
    {
      // In flight: its container may not exist yet. (A create registers before it makes
      // its network, so one that finished has its container by now: looked at next.)
      std::lock_guard lock(creatingMu_);
      if (creating_.count(id) != 0) continue;
    }
    auto c = client_->call("GET", "/containers/" + containerName(id) + "/json");
    if (c.ok() || httpStatus(c.error()) != 404) continue;
    auto rm = removeSandboxNetwork(id);
    if (!rm.ok()) {
      spdlog::warn("docker: network of sandbox {} (its container is gone): {}", id,
                   rm.error().describe());
      continue;
    }
    spdlog::info("docker: removed the network and rules of sandbox {} (its container is gone)", id);
    swept.push_back(id);
  }
  return swept;
}

std::vector<std::string> DockerProvider::effectiveAllowlist(
    const std::vector<std::string>& allowlist, bool open) {
  if (open && allowlist.empty()) return {"0.0.0.0/0"};  // the blocked ranges carved out
  return allowlist;
}

Result<EgressStatus> DockerProvider::applyFirewall(const std::string& sandboxId,
                                                   const std::vector<std::string>& allowlist,
                                                   const SandboxRef* running) {
  auto entries = egress::parseAllowlist(allowlist);
  if (!entries.ok()) return entries.takeError();
  std::vector<std::string> hosts;
  for (const auto& e : *entries)
    if (e.kind == egress::EntryKind::Host &&
        std::find(hosts.begin(), hosts.end(), e.host) == hosts.end())
      hosts.push_back(e.host);
  std::map<std::string, Result<std::vector<egress::Network>>> answers;
  if (!hosts.empty() && running != nullptr) {
    ExecRequest req;
    req.argv = egress::resolveCommand(hosts);
    req.options.timeout = std::chrono::seconds(20);
    req.options.workingDir = "/";
    req.maxOutputBytes = 1u << 20;
    auto r = exec(*running, req);
    if (!r.ok()) return r.takeError();
    if (r->exitCode != 0) {
      return Error(ErrorCode::SandboxExecFailed,
                   "resolving the allowlist's names in the sandbox failed (exit " +
                       std::to_string(r->exitCode) + ")",
                   {{"id", sandboxId}});
    }
    answers = egress::parseResolveOutput(r->stdoutData);
  }
  auto resolved = egress::resolveAllowlist(
      *entries, [&](const std::string& h) -> Result<std::vector<egress::Network>> {
        if (running == nullptr) {
          return Error(ErrorCode::ValidationError, "resolved once the sandbox runs");
        }
        auto it = answers.find(h);
        if (it == answers.end()) return Error(ErrorCode::ValidationError, "no answer");
        return it->second;
      });
  FirewallInput in;
  in.sandboxId = sandboxId;
  in.bridge = sandboxBridgeName(sandboxId);
  in.resolved = resolved;
  in.dnsServers = EgressFirewall::hostDnsServers();
  EgressStatus st = egress::statusOf(allowlist, resolved);
  const std::string text = firewallRules(in);
  std::lock_guard lock(egressMu_);
  auto it = appliedRules_.find(sandboxId);
  if (it != appliedRules_.end() && it->second == text) return st;
  AP_TRY(firewall_->apply(in));
  appliedRules_[sandboxId] = text;
  st.changed = true;
  std::string rules;
  for (const auto& r : st.rules)
    rules += (rules.empty() ? "" : "; ") + r;
  spdlog::info("egress: sandbox {}: host rules {} applied: DNS + [{}]", sandboxId,
               sandboxChainName(sandboxId), rules);
  return st;
}

Result<EgressStatus> DockerProvider::applyEgress(const SandboxRef& ref,
                                                 const std::vector<std::string>& allowlist) {
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  if (info->state != SandboxState::Running) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox '" + ref.sandboxId + "' is not running",
                 {{"id", ref.sandboxId}});
  }
  auto entries = egress::parseAllowlist(allowlist);
  if (!entries.ok()) return entries.takeError();
  // Only a sandbox made on a filtered network of its own can change its egress.
  auto net = client_->call("GET", "/networks/" + networkName(ref.sandboxId));
  const bool filtered =
      firewall_ && net.ok() &&
      net->value("Options", json::object()).value("com.docker.network.bridge.name", "") ==
          sandboxBridgeName(ref.sandboxId);
  if (!filtered) {
    if (allowlist.empty()) {
      EgressStatus st;
      st.enforced = true;  // no network, or an internal one: nothing leaves it
      return st;
    }
    return Error(ErrorCode::ValidationError,
                 "sandbox '" + ref.sandboxId +
                     "' was not made on a filtered network of its own (the server enforces "
                     "Docker egress only when it runs as root), so its allowlist cannot change",
                 {{"field", "allowEgress"}, {"reason", "EGRESS_ENFORCEMENT_UNAVAILABLE"}});
  }
  const SandboxRef running = sandboxRef(*info);
  auto lbl = info->labels.find(docker_labels::kEgressOpen);
  const bool open = lbl != info->labels.end() && lbl->second == "1";
  return applyFirewall(ref.sandboxId, effectiveAllowlist(allowlist, open), &running);
}

}  // namespace agentpane::docker
