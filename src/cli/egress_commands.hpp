// `agentpane sandbox egress ID --allow HOST[:PORT]... | --none [--json]`: replaces a running
// sandbox's egress allowlist (PATCH /api/sandboxes/:id), in force when it returns, and prints
// what is enforced. Names that did not resolve are reported (stderr), never dropped.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/api_client.hpp"

namespace agentpane::cli {

class EgressCommand {
 public:
  // Adds `egress` to the `sandbox` command.
  explicit EgressCommand(CLI::App& sandbox);
  [[nodiscard]] bool parsed() const;
  int run(const ApiClient& api);

 private:
  CLI::App* cmd_ = nullptr;
  std::string id_;
  std::vector<std::string> allow_;
  bool none_ = false;
  bool json_ = false;
};

// Writes "warning: egress: NAME did not resolve (...)" to stderr for each unresolved name of
// a sandbox object's "egress", and a note when its provider enforces no allowlist.
void warnAboutEgress(const nlohmann::json& sandbox);

}  // namespace agentpane::cli
