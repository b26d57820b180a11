#include "docker/events.hpp"

#include <nlohmann/json.hpp>

#include "agentpane/sandbox.hpp"

namespace agentpane::docker {

using nlohmann::json;

Result<std::optional<ContainerEvent>> parseEvent(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::SandboxProviderError, "docker events: malformed event");
  }
  // Engines before 1.22 used "status"/"id"; we need 1.41+, which always sends Type/Action.
  if (j.value("Type", std::string()) != "container") return std::optional<ContainerEvent>();
  ContainerEvent ev;
  ev.action = j.value("Action", std::string());
  if (auto a = j.find("Actor"); a != j.end() && a->is_object()) {
    ev.containerId = a->value("ID", std::string());
    if (auto attrs = a->find("Attributes"); attrs != a->end() && attrs->is_object()) {
      for (const auto& [k, v] : attrs->items()) {
        if (v.is_string()) ev.attributes[k] = v.get<std::string>();
      }
    }
  }
  if (auto it = ev.attributes.find(labels::kSandboxId); it != ev.attributes.end())
    ev.sandboxId = it->second;
  if (auto it = ev.attributes.find("exitCode"); it != ev.attributes.end()) {
    try {
      ev.exitCode = std::stoi(it->second);
    } catch (const std::exception&) {  // a non-number is simply no exit code
    }
  }
  if (auto t = j.find("timeNano"); t != j.end() && t->is_number_integer())
    ev.timeNano = t->get<std::int64_t>();
  return std::optional<ContainerEvent>(std::move(ev));
}

Result<void> EventDecoder::feed(std::string_view bytes, std::vector<ContainerEvent>& out) {
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    if (partial_.size() + piece.size() > kMaxLine) {
      return Error(ErrorCode::SandboxProviderError, "docker events: event larger than 1 MiB");
    }
    partial_.append(piece);
    if (nl == std::string_view::npos) break;
    bytes.remove_prefix(nl + 1);
    std::string line = std::move(partial_);
    partial_.clear();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto ev = parseEvent(line);
    if (!ev.ok()) return ev.takeError();
    if (ev.value()) out.push_back(std::move(*ev.value()));
  }
  return {};
}

Result<std::optional<ContainerEvent>> EventStream::next() {
  using Out = std::optional<ContainerEvent>;
  while (pos_ >= pending_.size()) {
    pending_.clear();
    pos_ = 0;
    auto piece = body_->next();
    if (!piece.ok()) return piece.takeError();
    if (!piece.value()) return Out();
    auto fed = decoder_.feed(*piece.value(), pending_);
    if (!fed.ok()) return fed.takeError();
  }
  return Out(std::move(pending_[pos_++]));
}

}  // namespace agentpane::docker
