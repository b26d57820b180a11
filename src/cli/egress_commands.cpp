#include "cli/egress_commands.hpp"

#include <cstdio>
#include <iostream>

#include "cli/output.hpp"

namespace agentpane::cli {

using nlohmann::json;

EgressCommand::EgressCommand(CLI::App& sandbox) {
  cmd_ = sandbox.add_subcommand(
      "egress", "Replace a running sandbox's egress allowlist (in force when it returns)");
  cmd_->add_option("id", id_)->required();
  auto* allow = cmd_->add_option("--allow", allow_,
                                 "HOST[:PORT], IP[:PORT] or CIDR[:PORT] (repeatable; IPv6 as "
                                 "[ADDR]:PORT)");
  auto* none = cmd_->add_flag("--none", none_, "Allow nothing but DNS");
  allow->excludes(none);
  cmd_->add_flag("--json", json_);
}

bool EgressCommand::parsed() const {
  return cmd_->parsed();
}

void warnAboutEgress(const json& sandbox) {
  if (!sandbox.contains("egress") || !sandbox["egress"].is_object()) return;
  const json& eg = sandbox["egress"];
  for (const auto& h : eg.value("hosts", json::array())) {
    if (h.contains("error")) {
      std::fprintf(stderr, "warning: egress: %s: %s\n", cell(h, "host").c_str(),
                   cell(h, "error").c_str());
    }
  }
  if (!eg.value("allowlist", json::array()).empty() && !eg.value("enforced", false)) {
    std::fprintf(stderr,
                 "warning: egress: this sandbox's provider does not enforce its allowlist "
                 "(see README, \"Egress\")\n");
  }
}

int EgressCommand::run(const ApiClient& api) {
  if (allow_.empty() && !none_) {
    return fail(Error(ErrorCode::ValidationError,
                      "give the new allowlist with --allow (repeatable), or --none"));
  }
  auto r = api.call("PATCH", "/api/sandboxes/" + id_, json{{"allowEgress", allow_}});
  if (!r.ok()) return fail(r.error());
  if (json_) {
    std::cout << (*r)["egress"].dump(2) << "\n";
  } else {
    const json& eg = (*r)["egress"];
    std::cout << "allowed: DNS";
    for (const auto& rule : eg.value("rules", json::array()))
      std::cout << "; " << rule.get<std::string>();
    std::cout << "\n";
  }
  warnAboutEgress(*r);
  return 0;
}

}  // namespace agentpane::cli
