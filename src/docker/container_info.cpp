#include "docker/container_info.hpp"

#include "docker/docker_provider.hpp"
#include "docker/engine_json.hpp"

namespace agentpane::docker {

using nlohmann::json;

SandboxState stateFromDocker(const std::string& status, std::optional<int> exitCode,
                             bool oomKilled) {
  if (status == "running") return SandboxState::Running;
  if (status == "created") return SandboxState::Creating;
  if (status == "removing") return SandboxState::Stopped;
  if (status == "dead") return SandboxState::Failed;
  if (status == "exited") {
    if (oomKilled) return SandboxState::Failed;
    int code = exitCode.value_or(0);
    return (code == 0 || code == 137 || code == 143) ? SandboxState::Stopped : SandboxState::Failed;
  }
  return SandboxState::Unknown;  // paused, restarting, or a state we do not model
}

std::optional<int> exitCodeFromStatusText(const std::string& text) {
  auto open = text.find('(');
  auto close = text.find(')', open == std::string::npos ? 0 : open);
  if (text.rfind("Exited", 0) != 0 || open == std::string::npos || close == std::string::npos)
    return std::nullopt;
  try {
    return std::stoi(text.substr(open + 1, close - open - 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

namespace {

std::map<std::string, std::string> labelsOf(const json& labels) {
  std::map<std::string, std::string> out;
  if (!labels.is_object()) return out;
  for (const auto& [k, v] : labels.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

void fillFromLabels(SandboxInfo& info) {
  auto get = [&](const char* key) {
    auto it = info.labels.find(key);
    return it == info.labels.end() ? std::string() : it->second;
  };
  info.id = get(labels::kSandboxId);
  info.projectId = get(labels::kProjectId);
  info.agentId = get(labels::kAgentId);
  info.projectPath = get(docker_labels::kProjectPath);
  std::string image = get(docker_labels::kImage);
  if (!image.empty()) info.image = image;
}

}  // namespace

SandboxInfo sandboxFromListEntry(const json& entry) {
  SandboxInfo info;
  info.provider = ProviderType::Docker;
  info.containerId = entry.value("Id", std::string());
  info.image = entry.value("Image", std::string());
  if (auto it = entry.find("Labels"); it != entry.end()) info.labels = labelsOf(*it);
  fillFromLabels(info);
  std::string status = entry.value("State", std::string());
  info.stateDetail = entry.value("Status", std::string());
  info.state = stateFromDocker(status, exitCodeFromStatusText(info.stateDetail), false);
  if (auto c = entry.find("Created"); c != entry.end() && c->is_number_integer()) {
    info.createdAtUnix = c->get<std::int64_t>();
  }
  return info;
}

SandboxInfo sandboxFromInspect(const json& inspect) {
  SandboxInfo info;
  info.provider = ProviderType::Docker;
  info.containerId = inspect.value("Id", std::string());
  if (auto cfg = inspect.find("Config"); cfg != inspect.end() && cfg->is_object()) {
    info.image = cfg->value("Image", std::string());
    if (auto it = cfg->find("Labels"); it != cfg->end()) info.labels = labelsOf(*it);
  }
  fillFromLabels(info);
  if (auto st = inspect.find("State"); st != inspect.end() && st->is_object()) {
    std::string status = st->value("Status", std::string());
    std::optional<int> code;
    if (auto c = st->find("ExitCode"); c != st->end() && c->is_number_integer())
      code = c->get<int>();
    bool oom = st->value("OOMKilled", false);
    info.state = stateFromDocker(status, code, oom);
    info.stateDetail = status;
    if (status == "exited" && code) info.stateDetail += " (" + std::to_string(*code) + ")";
    if (oom) info.stateDetail += ", OOM killed";
    std::string err = st->value("Error", std::string());
    if (!err.empty()) info.stateDetail += ": " + err;
  }
  if (auto c = inspect.find("Created"); c != inspect.end() && c->is_string()) {
    info.createdAtUnix = parseRfc3339(c->get<std::string>()).value_or(0);
  }
  return info;
}

}  // namespace agentpane::docker
