// Egress of the Kubernetes provider (network_policy.hpp says what the policies are): the
// namespace's default deny, each sandbox's policy, and host names resolved inside the
// sandbox's own pod — through the cluster DNS the sandbox itself uses, so that the addresses
// allowed are the ones it will connect to (a name the server's host cannot resolve, such as
// a cluster Service, works too).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "k8s/k8s_provider.hpp"
#include "k8s/network_policy.hpp"

namespace agentpane::k8s {

using nlohmann::json;

namespace {

std::string policyPath(const std::string& ns, const std::string& name = {}) {
  return resourcePath("networking.k8s.io/v1", "networkpolicies", ns, name);
}

bool isCode(const Error& e, ErrorCode c) {
  return e.code == c;
}

}  // namespace

Result<void> K8sProvider::ensureDefaultDeny() {
  if (defaultDenySeen_.load()) return {};
  const std::string& ns = opts_.namespaceName;
  auto r = client_->apply(policyPath(ns, kDefaultDenyPolicyName), defaultDenyPolicy(ns));
  if (!r.ok()) return r.takeError();
  defaultDenySeen_ = true;
  return {};
}

Result<std::map<std::string, Result<std::vector<egress::Network>>>> K8sProvider::resolveInPod(
    const SandboxRef& ref, const std::vector<std::string>& hosts) {
  ExecRequest req;
  req.argv = egress::resolveCommand(hosts);
  req.options.timeout = opts_.egressResolveTimeout;
  req.options.workingDir = "/";
  req.maxOutputBytes = 1u << 20;
  auto r = exec(ref, req);
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    return Error(ErrorCode::SandboxExecFailed,
                 "resolving the allowlist's names in the sandbox failed (exit " +
                     std::to_string(r->exitCode) + "): " + r->stderrData.substr(0, 200),
                 {{"id", ref.sandboxId}});
  }
  return egress::parseResolveOutput(r->stdoutData);
}

Result<EgressStatus> K8sProvider::applySandboxPolicy(
    const std::string& ns, const std::string& sandboxId, const std::vector<std::string>& allowlist,
    const SandboxRef* running, const std::string* known, std::string* applied) {
  auto entries = egress::parseAllowlist(allowlist);
  if (!entries.ok()) return entries.takeError();
  std::vector<std::string> hosts;
  for (const auto& e : *entries)
    if (e.kind == egress::EntryKind::Host &&
        std::find(hosts.begin(), hosts.end(), e.host) == hosts.end())
      hosts.push_back(e.host);
  std::map<std::string, Result<std::vector<egress::Network>>> answers;
  if (!hosts.empty() && running != nullptr) {
    auto got = resolveInPod(*running, hosts);
    if (!got.ok()) return got.takeError();
    answers = std::move(got).value();
  }
  auto resolved = egress::resolveAllowlist(
      *entries, [&](const std::string& h) -> Result<std::vector<egress::Network>> {
        if (running == nullptr) {
          return Error(ErrorCode::ValidationError, "resolved once the sandbox's pod runs");
        }
        auto it = answers.find(h);
        if (it == answers.end()) return Error(ErrorCode::ValidationError, "no answer");
        return it->second;
      });
  SandboxPolicyInput in;
  in.namespaceName = ns;
  in.sandboxId = sandboxId;
  in.labels = opts_.scopeLabels;
  in.allowlist = allowlist;
  in.resolved = resolved;
  json policy = sandboxPolicy(in);
  EgressStatus st = egress::statusOf(allowlist, resolved);

  const std::string digest =
      policy["metadata"]["annotations"][egress_annotations::kDigest].get<std::string>();
  if (applied) *applied = digest;
  std::lock_guard lock(egressMu_);
  const std::string path = policyPath(ns, sandboxPolicyName(sandboxId));
  if (known && *known == digest) return st;  // as this process left it
  if (!known) {
    auto current = client_->get(path);
    if (current.ok()) {
      if (!ownedBy(*current, sandboxId, opts_.scopeLabels)) {
        return Error(ErrorCode::K8sConflict,
                     "NetworkPolicy " + sandboxPolicyName(sandboxId) + " is not this server's",
                     {{"id", sandboxId}});
      }
      const auto ann =
          current->value("metadata", json::object()).value("annotations", json::object());
      if (ann.value(egress_annotations::kDigest, "") == digest) return st;  // nothing moved
    } else if (!isCode(current.error(), ErrorCode::K8sNotFound)) {
      return current.takeError();
    }
  }
  auto put = client_->apply(path, policy);
  if (!put.ok()) return put.takeError();
  st.changed = true;
  std::string rules;
  for (const auto& r : st.rules)
    rules += (rules.empty() ? "" : "; ") + r;
  spdlog::info(
      "egress: sandbox {}: NetworkPolicy {} applied: DNS + [{}]{}", sandboxId,
      sandboxPolicyName(sandboxId), rules, st.unresolved.empty() ? "" : " (unresolved: " + [&] {
        std::string u;
        for (const auto& h : st.unresolved)
          u += (u.empty() ? "" : ", ") + h;
        return u;
      }() + ")");
  return st;
}

Result<void> K8sProvider::removeSandboxPolicy(const std::string& ns, const std::string& sandboxId) {
  const std::string path = policyPath(ns, sandboxPolicyName(sandboxId));
  auto current = client_->get(path);
  if (!current.ok()) {
    if (isCode(current.error(), ErrorCode::K8sNotFound)) return {};
    return current.takeError();
  }
  if (!ownedBy(*current, sandboxId, opts_.scopeLabels)) return {};
  auto r = client_->remove(path);
  if (!r.ok() && !isCode(r.error(), ErrorCode::K8sNotFound)) return r.takeError();
  return {};
}

Result<EgressStatus> K8sProvider::applyEgress(const SandboxRef& ref,
                                              const std::vector<std::string>& allowlist) {
  auto info = requireRunning(ref);
  if (!info.ok()) return info.takeError();
  const SandboxRef running = sandboxRef(*info);
  return applySandboxPolicy(nsOf(ref), ref.sandboxId, allowlist, &running);
}

}  // namespace agentpane::k8s
