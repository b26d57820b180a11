#include "cli/command_commands.hpp"

#include <cstdio>
#include <iostream>

#include "cli/output.hpp"
#include "common/base64.hpp"
#include "net/url.hpp"

namespace agentpane::cli {

using nlohmann::json;

CommandCommands::CommandCommands(CLI::App& app, CLI::App& exec) {
  exec.add_flag(
      "--detach", detach_,
      "Start the command detached (it outlives this CLI and the server) and print its id");
  logs_ = app.add_subcommand("logs", "Output of a detached command: logs [-f] ID CMD_ID");
  logs_->add_flag("-f,--follow", follow_, "Follow to the end; exit with the command's exit code");
  logs_->add_option("id", sandboxId_)->required();
  logs_->add_option("cmd_id", commandId_)->required();
  ps_ = app.add_subcommand("ps", "Detached commands of a sandbox: ps ID [--json]");
  ps_->add_option("id", sandboxId_)->required();
  ps_->add_flag("--json", json_, "Print the API's JSON");
}

int CommandCommands::runDetach(const ApiClient& api, const std::string& sandboxId,
                               const std::vector<std::string>& command, int timeoutSeconds) {
  json body{{"argv", command}};
  if (timeoutSeconds > 0) body["timeoutSeconds"] = timeoutSeconds;
  auto r = api.call("POST", "/api/sandboxes/" + net::percentEncode(sandboxId) + "/commands", body);
  if (!r.ok()) return fail(r.error());
  std::cout << cell(*r, "id") << "\n";
  return 0;
}

int CommandCommands::runLogs(const ApiClient& api) {
  const std::string base = "/api/sandboxes/" + net::percentEncode(sandboxId_) + "/commands/" +
                           net::percentEncode(commandId_);
  std::uint64_t cursor = 0;
  for (;;) {
    std::string target = base + "?cursor=" + std::to_string(cursor);
    if (follow_) target += "&wait=20000";  // long poll: the server answers on output or the end
    auto r = api.call("GET", target);
    if (!r.ok()) return fail(r.error());
    for (const auto& c : r->value("chunks", json::array())) {
      auto data = base64Decode(c.value("data", std::string()));
      if (!data) continue;
      std::FILE* to = c.value("stream", std::string()) == "stderr" ? stderr : stdout;
      std::fwrite(data->data(), 1, data->size(), to);
      std::fflush(to);
    }
    cursor = r->value("nextCursor", cursor);
    const json& cmd = (*r)["command"];
    const bool running = cmd.value("running", false);
    if (!follow_) return 0;
    if (!running) {
      const json& code = cmd["exitCode"];
      return code.is_number_integer() ? code.get<int>() : 1;
    }
  }
}

int CommandCommands::runPs(const ApiClient& api) {
  auto r = api.call("GET", "/api/sandboxes/" + net::percentEncode(sandboxId_) + "/commands");
  if (!r.ok()) return fail(r.error());
  if (json_) {
    std::cout << r->dump(2) << "\n";
    return 0;
  }
  std::printf("%-26s %-9s %-5s %-10s %s\n", "ID", "STATE", "EXIT", "BYTES", "COMMAND");
  for (const auto& c : *r) {
    std::string argv;
    for (const auto& a : c.value("argv", json::array())) {
      argv += (argv.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : std::string());
    }
    std::printf("%-26s %-9s %-5s %-10s %s\n", cell(c, "id").c_str(), cell(c, "state").c_str(),
                cell(c, "exitCode").c_str(), cell(c, "endCursor").c_str(), argv.c_str());
  }
  return 0;
}

}  // namespace agentpane::cli
