#include "cli/profile_commands.hpp"
#include "cli/output.hpp"

#include <cstdio>
#include <iostream>

#include "net/url.hpp"

namespace agentpane::cli {

using json = nlohmann::json;

namespace {

void printProfile(const json& c) {
  for (const auto& [k, v] : c.items())
    std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
}

void printProfiles(const json& list) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "ID", "PROVIDER", "IMAGE", "MEMORY_MB", "CPU", "DEFAULT", "ROOT_EXEC"});
  for (const auto& c : list) {
    rows.push_back({cell(c, "name"), cell(c, "id"), cell(c, "providerType"), cell(c, "image"),
                    cell(c, "memoryMb"), cell(c, "cpu"), cell(c, "isDefault"),
                    cell(c, "allowRootExec")});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

}  // namespace

Result<json> findProfile(const ApiClient& api, const std::string& ref) {
  auto list = api.call("GET", "/api/sandbox-configs");
  if (!list.ok()) return list.takeError();
  const json* byName = nullptr;
  for (const auto& c : list.value()) {
    if (c.value("id", "") == ref) return c;
    if (c.value("name", "") == ref) byName = &c;
  }
  if (byName != nullptr) return *byName;
  return Error(ErrorCode::SandboxConfigNotFound, "no profile named or with the id '" + ref + "'",
               {{"profile", ref}});
}

ProfileCommands::ProfileCommands(CLI::App& app) {
  profile_ = app.add_subcommand("profile", "Resource profiles (sandbox configs), by name or id");
  profile_->require_subcommand(1);
  ls_ = profile_->add_subcommand("ls", "List profiles");
  get_ = profile_->add_subcommand("get", "Show one profile");
  create_ = profile_->add_subcommand("create", "Create a profile: create NAME [flags]");
  set_ = profile_->add_subcommand("set", "Change fields of a profile: set NAME|ID [flags]");
  rm_ = profile_->add_subcommand("rm", "Remove a profile (refused while a sandbox uses it)");
  for (auto* c : {ls_, get_, create_, set_})
    c->add_flag("--json", json_, "Print the API's JSON");
  get_->add_option("profile", ref_, "Name or id")->required();
  create_->add_option("name", ref_, "Name of the new profile")->required();
  set_->add_option("profile", ref_, "Name or id")->required();
  rm_->add_option("profile", ref_, "Name or id")->required();
  for (auto* c : {create_, set_}) {
    auto add = [&](const char* field, CLI::Option* o) { given_[field].push_back(o); };
    add("description", c->add_option("--description", description_));
    add("image", c->add_option("--image", image_));
    add("providerType",
        c->add_option("--provider", provider_)->check(CLI::IsMember({"docker", "kubernetes"})));
    add("network",
        c->add_option("--network", network_)->check(CLI::IsMember({"none", "internal", "bridge"})));
    add("memoryMb", c->add_option("--memory-mb", memoryMb_));
    add("cpu", c->add_option("--cpu", cpu_));
    add("pidsLimit", c->add_option("--pids-limit", pidsLimit_));
    add("timeoutMinutes", c->add_option("--timeout-minutes", timeoutMinutes_,
                                        "Idle minutes before the sandbox stops"));
    add("isDefault",
        c->add_option("--default", isDefault_, "true|false: the profile used when none is named"));
    add("allowRootExec",
        c->add_option("--allow-root-exec", allowRootExec_, "true|false: allow `exec --root`"));
    c->add_option("--set", sets_, "FIELD=VALUE for any config field (JSON value or text)");
  }
}

bool ProfileCommands::parsed() const {
  return profile_->parsed();
}

Result<json> ProfileCommands::fieldsFromFlags() const {
  json f = json::object();
  auto given = [&](const char* field) {
    for (const auto* o : given_.at(field)) {
      if (o->count() > 0) return true;
    }
    return false;
  };
  if (given("description")) f["description"] = description_;
  if (given("image")) f["image"] = image_;
  if (given("providerType")) f["providerType"] = provider_;
  if (given("network")) f["network"] = network_;
  if (given("memoryMb")) f["memoryMb"] = memoryMb_;
  if (given("cpu")) f["cpu"] = cpu_;
  if (given("pidsLimit")) f["pidsLimit"] = pidsLimit_;
  if (given("timeoutMinutes")) f["timeoutMinutes"] = timeoutMinutes_;
  if (given("isDefault")) f["isDefault"] = isDefault_;
  if (given("allowRootExec")) f["allowRootExec"] = allowRootExec_;
  for (const auto& kv : sets_) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(ErrorCode::ValidationError, "--set takes FIELD=VALUE, got '" + kv + "'");
    }
    // A value that parses as JSON (numbers, true/false, lists) is sent as such; anything
    // else is a string, so `--set image=repo/x:1` needs no quotes.
    auto value = json::parse(kv.substr(eq + 1), nullptr, false);
    f[kv.substr(0, eq)] = value.is_discarded() ? json(kv.substr(eq + 1)) : value;
  }
  return f;
}

int ProfileCommands::run(const ApiClient& api) {
  auto show = [&](const json& c) {
    if (json_) {
      std::cout << c.dump() << "\n";
    } else {
      printProfile(c);
    }
    return 0;
  };
  if (ls_->parsed()) {
    auto r = api.call("GET", "/api/sandbox-configs");
    if (!r.ok()) return fail(r.error());
    if (json_) {
      std::cout << r->dump() << "\n";
    } else {
      printProfiles(r.value());
    }
    return 0;
  }
  if (get_->parsed()) {
    auto c = findProfile(api, ref_);
    return c.ok() ? show(c.value()) : fail(c.error());
  }
  auto fields = fieldsFromFlags();
  if (!fields.ok()) return fail(fields.error());
  if (create_->parsed()) {
    json body = fields.value();
    body["name"] = ref_;
    auto r = api.call("POST", "/api/sandbox-configs", body);
    if (!r.ok()) return fail(r.error());
    if (json_) return show(r.value());
    std::cout << r->value("id", "") << "\n";
    return 0;
  }
  auto found = findProfile(api, ref_);
  if (!found.ok()) return fail(found.error());
  const std::string target = "/api/sandbox-configs/" + net::percentEncode(found->value("id", ""));
  if (set_->parsed()) {
    if (fields->empty()) {
      return fail(Error(ErrorCode::ValidationError, "nothing to change: give a flag or --set"));
    }
    auto r = api.call("PATCH", target, fields.value());
    return r.ok() ? show(r.value()) : fail(r.error());
  }
  if (rm_->parsed()) {
    auto r = api.call("DELETE", target);
    return r.ok() ? 0 : fail(r.error());
  }
  return 2;
}

}  // namespace agentpane::cli
