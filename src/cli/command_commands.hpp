// Durable commands from the CLI (issue 11): `agentpane exec --detach ID -- CMD...` prints the
// command id; `agentpane logs [-f] ID CMD_ID` prints its output so far (-f follows it to its
// end and exits with its exit code); `agentpane ps ID` lists the sandbox's commands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/api_client.hpp"

namespace agentpane::cli {

class CommandCommands {
 public:
  // Adds `logs` and `ps` to `app`, and --detach to `exec`.
  CommandCommands(CLI::App& app, CLI::App& exec);

  [[nodiscard]] bool detachParsed() const { return detach_; }
  int runDetach(const ApiClient& api, const std::string& sandboxId,
                const std::vector<std::string>& command, int timeoutSeconds);
  [[nodiscard]] bool logsParsed() const { return logs_->parsed(); }
  int runLogs(const ApiClient& api);
  [[nodiscard]] bool psParsed() const { return ps_->parsed(); }
  int runPs(const ApiClient& api);

 private:
  CLI::App *logs_ = nullptr, *ps_ = nullptr;
  bool detach_ = false, follow_ = false, json_ = false;
  std::string sandboxId_, commandId_;
};

}  // namespace agentpane::cli
