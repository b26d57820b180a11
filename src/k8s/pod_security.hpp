// Pod Security Standards, checked locally: every check of upstream's PodSecurity admission
// (k8s.io/pod-security-admission/policy, as of Kubernetes v1.30) for the levels `baseline`
// and `restricted`, as pure functions over a pod's JSON. A pod this validator admits at a
// level is one the apiserver's PodSecurity admission admits at that level, and the reverse;
// the agreement is shown on the real cluster by test/cluster/k8s/pod_security_cluster_test.cpp.
//
// What upstream does, and so what this does:
// - Containers are visited in the order initContainers, containers, ephemeralContainers.
// - Pod-level settings stand for containers that leave them unset where upstream says so
//   (runAsNonRoot and the restricted seccomp profile); elsewhere each level is checked.
// - At `restricted`, three checks replace their baseline counterparts (capabilities_restricted
//   replaces capabilities_baseline, restrictedVolumes replaces hostPathVolumes,
//   seccompProfile_restricted replaces seccompProfile_baseline).
// - A pod with spec.os.name=windows is exempt from allowPrivilegeEscalation,
//   capabilities_restricted and seccompProfile_restricted.
// - The relaxation for user-namespaced pods (hostUsers: false) is behind an alpha feature gate
//   that v1.30 leaves off: not applied.
// - Checks run in upstream's order: baseline checks sorted by id, then restricted ones; each
//   failed check carries upstream's reason ("allowPrivilegeEscalation != false", …), so the
//   list of reasons can be compared with an apiserver's refusal word for word.
//
// Violations name the field to change (e.g.
// spec.containers[0].securityContext.allowPrivilegeEscalation) and say what to set.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/errors.hpp"
#include "agentpane/result.hpp"

namespace agentpane::k8s::pss {

enum class Level { Privileged, Baseline, Restricted };

// "privileged" | "baseline" | "restricted"; anything else: nullopt.
std::optional<Level> levelFromString(std::string_view s);
std::string_view levelName(Level level);

struct Violation {
  std::string check;    // upstream check id, e.g. "allowPrivilegeEscalation"
  std::string field;    // e.g. spec.containers[0].securityContext.allowPrivilegeEscalation
  std::string message;  // what is wrong and what to set instead
};

// One failed check, in upstream's words (ForbiddenReason and ForbiddenDetail).
struct CheckFailure {
  std::string check;
  std::string reason;  // e.g. "allowPrivilegeEscalation != false"
  std::string detail;  // e.g. container "a" must set securityContext.allowPrivilegeEscalation=false
};

struct Verdict {
  Level level = Level::Restricted;
  std::vector<CheckFailure> failures;  // in upstream's order
  std::vector<Violation> violations;   // per field, grouped by check in the same order
  [[nodiscard]] bool allowed() const { return failures.empty(); }
  // The reasons, in order (what an apiserver's refusal lists before each detail).
  [[nodiscard]] std::vector<std::string> reasons() const;
  // "reason (detail), reason (detail)", upstream's aggregate form.
  [[nodiscard]] std::string summary() const;
};

// Where a pod's metadata and spec are inside a document, and their paths for violations.
struct PodView {
  nlohmann::json metadata = nlohmann::json::object();
  nlohmann::json spec = nlohmann::json::object();
  std::string metadataPath = "metadata";
  std::string specPath = "spec";
  std::string kind = "Pod";
  std::string name;
};

// The pod in an object: a Pod itself, the template of a PodTemplate, Deployment, ReplicaSet,
// StatefulSet, DaemonSet, ReplicationController or Job, or the job template's pod template
// of a CronJob. Anything else (or a malformed object): ValidationError.
Result<PodView> podFromObject(const nlohmann::json& object);

// The checks of `level` over a pod (Privileged: none).
Verdict checkPod(const PodView& pod, Level level);
// Same, for a Pod object ({metadata, spec}).
Verdict checkPod(const nlohmann::json& pod, Level level);

// The documents of a JSON or YAML text (YAML may hold several, separated by ---), as JSON
// with the typing Kubernetes' YAML reader gives plain scalars (true/false/yes/no/on/off,
// numbers, null). Malformed text: ValidationError naming the line.
Result<std::vector<nlohmann::json>> parseDocuments(std::string_view text);

// K8sPodSecurityViolation for a refused pod: the message lists every violation by field;
// details carry the level, the namespace and the reasons.
Error violationError(const Verdict& verdict, const std::string& namespaceName,
                     const std::string& podName);

}  // namespace agentpane::k8s::pss
