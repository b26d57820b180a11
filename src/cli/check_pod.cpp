// `agentpane k8s check-pod FILE [--level baseline|restricted] [--json]`: the Pod Security
// validator (k8s/pod_security.hpp) over a local file, without a server or a cluster.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "k8s/pod_security.hpp"

namespace agentpane::cli {

namespace {

constexpr std::size_t kMaxFileBytes = 16u << 20;

}  // namespace

int runCheckPod(const std::string& file, const std::string& levelName, bool asJson) {
  auto level = k8s::pss::levelFromString(levelName);
  if (!level) {
    return fail(
        Error(ErrorCode::ValidationError,
              "--level must be privileged, baseline or restricted, not '" + levelName + "'"));
  }
  std::string text;
  if (file == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail(Error(ErrorCode::ValidationError, "cannot read " + file));
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  if (text.size() > kMaxFileBytes)
    return fail(Error(ErrorCode::ValidationError, file + " is larger than 16 MiB"));
  auto docs = k8s::pss::parseDocuments(text);
  if (!docs.ok()) {
    Error e = docs.takeError();
    e.message = file + ": " + e.message;
    return fail(e);
  }
  if (docs->empty()) return fail(Error(ErrorCode::ValidationError, file + " holds no object"));

  nlohmann::json report = nlohmann::json::array();
  int refused = 0;
  std::size_t violations = 0;
  for (std::size_t i = 0; i < docs->size(); ++i) {
    auto pod = k8s::pss::podFromObject((*docs)[i]);
    if (!pod.ok()) {
      Error e = pod.takeError();
      e.message = file + " (object " + std::to_string(i + 1) + "): " + e.message;
      return fail(e);
    }
    const auto verdict = k8s::pss::checkPod(*pod, *level);
    const std::string what = pod->kind + "/" + (pod->name.empty() ? "(unnamed)" : pod->name);
    if (!verdict.allowed()) ++refused;
    violations += verdict.violations.size();
    if (asJson) {
      nlohmann::json vs = nlohmann::json::array();
      for (const auto& v : verdict.violations)
        vs.push_back({{"field", v.field}, {"check", v.check}, {"message", v.message}});
      report.push_back({{"kind", pod->kind},
                        {"name", pod->name},
                        {"allowed", verdict.allowed()},
                        {"reasons", verdict.reasons()},
                        {"summary", verdict.summary()},
                        {"violations", vs}});
      continue;
    }
    std::printf("%s: %s at %s\n", what.c_str(), verdict.allowed() ? "allowed" : "refused",
                levelName.c_str());
    for (const auto& v : verdict.violations)
      std::printf("  %s: %s [%s]\n", v.field.c_str(), v.message.c_str(), v.check.c_str());
  }
  if (asJson) {
    std::cout << nlohmann::json{{"level", levelName}, {"objects", report}}.dump(2) << "\n";
  }
  if (refused == 0) return 0;
  return fail(Error(ErrorCode::K8sPodSecurityViolation,
                    std::to_string(refused) + " of " + std::to_string(docs->size()) + " pod" +
                        (docs->size() == 1 ? "" : "s") + " in " + file +
                        " would be refused at PodSecurity level " + levelName + " (" +
                        std::to_string(violations) + " violation" + (violations == 1 ? "" : "s") +
                        ")"));
}

}  // namespace agentpane::cli
