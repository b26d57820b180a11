#include "agentpane/sandbox.hpp"

#include <algorithm>
#include <cctype>

namespace agentpane {

const char* toString(ProviderType t) {
  return t == ProviderType::Docker ? "docker" : "kubernetes";
}

std::optional<ProviderType> providerTypeFromString(const std::string& s) {
  if (s == "docker") return ProviderType::Docker;
  if (s == "kubernetes" || s == "k8s") return ProviderType::Kubernetes;
  return std::nullopt;
}

const char* toString(SandboxState s) {
  switch (s) {
    case SandboxState::Creating:
      return "creating";
    case SandboxState::Running:
      return "running";
    case SandboxState::Stopped:
      return "stopped";
    case SandboxState::Failed:
      return "failed";
    case SandboxState::Unknown:
      break;
  }
  return "unknown";
}

SandboxState sandboxStateFromString(std::string_view s) {
  for (auto st : {SandboxState::Creating, SandboxState::Running, SandboxState::Stopped,
                  SandboxState::Failed}) {
    if (s == toString(st)) return st;
  }
  return SandboxState::Unknown;
}

std::map<std::string, std::string> sandboxLabels(
    const SandboxSpec& spec, const std::map<std::string, std::string>& scopeLabels) {
  std::map<std::string, std::string> out(spec.extraLabels.begin(), spec.extraLabels.end());
  for (const auto& [k, v] : scopeLabels)
    out[k] = v;
  out[labels::kSandbox] = "true";
  out[labels::kManaged] = "true";
  out[labels::kSandboxId] = spec.id;
  out[labels::kProjectId] = spec.projectId;
  out[labels::kAgentId] = spec.agentId;
  return out;
}

SandboxRef sandboxRef(const SandboxInfo& info) {
  SandboxRef ref;
  ref.instance = info.instance;
  ref.sandboxId = info.id;
  if (info.provider == ProviderType::Kubernetes) {
    ref.scope = info.podNamespace;
    ref.objectName = info.podName;
    ref.uid = info.podUid;
  } else {
    ref.uid = info.containerId;
  }
  return ref;
}

const char* toString(NetworkMode m) {
  switch (m) {
    case NetworkMode::None:
      return "none";
    case NetworkMode::Bridge:
      return "bridge";
    case NetworkMode::Internal:
      return "internal";
  }
  return "none";
}

std::optional<NetworkMode> networkModeFromString(const std::string& s) {
  if (s == "none") return NetworkMode::None;
  if (s == "bridge") return NetworkMode::Bridge;
  if (s == "internal") return NetworkMode::Internal;
  return std::nullopt;
}

bool isValidSandboxId(const std::string& id) {
  if (id.empty() || id.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  if (!std::all_of(id.begin(), id.end(), ok)) return false;
  return id.front() != '-' && id.back() != '-';
}

bool isValidLabelValue(const std::string& v) {
  if (v.empty()) return true;
  if (v.size() > 63) return false;
  auto alnum = [](unsigned char c) { return std::isalnum(c) != 0; };
  if (!alnum(v.front()) || !alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [&](unsigned char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace agentpane
