// `agentpane profile ls|get|create|set|rm`: resource profiles (the API's sandbox configs)
// from the command line, addressed by name or id.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agentpane/result.hpp"
#include "cli/api_client.hpp"

namespace agentpane::cli {

class ProfileCommands {
 public:
  // Adds `profile` and its subcommands to `app`.
  explicit ProfileCommands(CLI::App& app);

  // True when one of the profile subcommands was given on the command line.
  [[nodiscard]] bool parsed() const;
  // Runs the parsed subcommand; returns the process exit code.
  int run(const ApiClient& api);

 private:
  // The config fields the typed flags set, then --set KEY=VALUE (JSON value, else a string).
  Result<nlohmann::json> fieldsFromFlags() const;

  CLI::App* profile_ = nullptr;
  CLI::App *ls_ = nullptr, *get_ = nullptr, *create_ = nullptr, *set_ = nullptr, *rm_ = nullptr;
  std::string ref_;  // name or id
  bool json_ = false;
  // Typed flags: sent only when given (the CLI::Option counts say which were), so that `set`
  // changes nothing else.
  std::string description_, image_, provider_, network_;
  int memoryMb_ = 0, pidsLimit_ = 0, timeoutMinutes_ = 0;
  double cpu_ = 0;
  bool isDefault_ = false, allowRootExec_ = false;
  std::map<std::string, std::vector<CLI::Option*>> given_;  // JSON field -> its flags
  std::vector<std::string> sets_;
};

// The config whose name or id is `ref` (a name wins only if no config has that id, and a
// name matching two configs cannot happen: names are unique). SandboxConfigNotFound otherwise.
Result<nlohmann::json> findProfile(const ApiClient& api, const std::string& ref);

}  // namespace agentpane::cli
