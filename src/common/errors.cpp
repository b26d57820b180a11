#include "agentpane/errors.hpp"

#include <array>

namespace agentpane {
namespace {

struct Entry {
  ErrorCode code;
  ErrorInfo info;
};

// CLI exit codes: 2 bad input, 3 auth, 4 not found, 5 conflict, 6 timeout,
// 7 unavailable, 8 internal/provider failure, 9 busy (a concurrency bound: retry later).
constexpr std::array kCatalogue = {
    Entry{ErrorCode::ValidationError, {"VALIDATION_ERROR", 400, 2}},
    Entry{ErrorCode::Unauthorized, {"UNAUTHORIZED", 401, 3}},
    Entry{ErrorCode::Forbidden, {"FORBIDDEN", 403, 3}},
    Entry{ErrorCode::NotFound, {"NOT_FOUND", 404, 4}},
    Entry{ErrorCode::MethodNotAllowed, {"METHOD_NOT_ALLOWED", 405, 2}},
    Entry{ErrorCode::PayloadTooLarge, {"PAYLOAD_TOO_LARGE", 413, 2}},
    Entry{ErrorCode::Conflict, {"CONFLICT", 409, 5}},
    Entry{ErrorCode::Internal, {"INTERNAL_ERROR", 500, 8}},
    Entry{ErrorCode::ServerUnreachable, {"SERVER_UNREACHABLE", 503, 7}},
    Entry{ErrorCode::Timeout, {"TIMEOUT", 504, 6}},
    Entry{ErrorCode::PathForbidden, {"PATH_FORBIDDEN", 403, 3}},
    Entry{ErrorCode::TooManyRequests, {"TOO_MANY_REQUESTS", 429, 9}},
    Entry{ErrorCode::SandboxNotFound, {"SANDBOX_NOT_FOUND", 404, 4}},
    Entry{ErrorCode::SandboxAlreadyExists, {"SANDBOX_ALREADY_EXISTS", 409, 5}},
    Entry{ErrorCode::SandboxNotRunning, {"SANDBOX_NOT_RUNNING", 409, 5}},
    Entry{ErrorCode::SandboxCreateFailed, {"SANDBOX_CREATE_FAILED", 500, 8}},
    Entry{ErrorCode::SandboxCreateCancelled, {"SANDBOX_CREATE_CANCELLED", 503, 7}},
    Entry{ErrorCode::SandboxProjectPathInvalid, {"SANDBOX_PROJECT_PATH_INVALID", 400, 2}},
    Entry{ErrorCode::SandboxImageNotFound, {"SANDBOX_IMAGE_NOT_FOUND", 400, 2}},
    Entry{ErrorCode::SandboxProviderUnavailable, {"SANDBOX_PROVIDER_UNAVAILABLE", 503, 7}},
    Entry{ErrorCode::SandboxProviderError, {"SANDBOX_PROVIDER_ERROR", 502, 8}},
    Entry{ErrorCode::SandboxExecFailed, {"SANDBOX_EXEC_FAILED", 500, 8}},
    Entry{ErrorCode::SandboxRootExecForbidden, {"SANDBOX_ROOT_EXEC_FORBIDDEN", 403, 3}},
    Entry{ErrorCode::ExecTimeout, {"EXEC_TIMEOUT", 504, 6}},
    Entry{ErrorCode::ExecOutputTooLarge, {"EXEC_OUTPUT_TOO_LARGE", 422, 2}},
    Entry{ErrorCode::SandboxConfigNotFound, {"SANDBOX_CONFIG_NOT_FOUND", 404, 4}},
    Entry{ErrorCode::SandboxConfigInUse, {"SANDBOX_CONFIG_IN_USE", 409, 5}},
    Entry{ErrorCode::SandboxConfigNameConflict, {"SANDBOX_CONFIG_NAME_CONFLICT", 409, 5}},
    Entry{ErrorCode::TmuxNameInvalid, {"SANDBOX_TMUX_NAME_INVALID", 400, 2}},
    Entry{ErrorCode::TmuxSessionExists, {"SANDBOX_TMUX_SESSION_EXISTS", 409, 5}},
    Entry{ErrorCode::TmuxSessionNotFound, {"SANDBOX_TMUX_SESSION_NOT_FOUND", 404, 4}},
    Entry{ErrorCode::TmuxFailed, {"SANDBOX_TMUX_FAILED", 500, 8}},
    Entry{ErrorCode::K8sDisabled, {"K8S_DISABLED", 400, 2}},
    Entry{ErrorCode::K8sUnreachable, {"K8S_CLUSTER_UNREACHABLE", 503, 7}},
    Entry{ErrorCode::K8sKubeconfigInvalid, {"K8S_KUBECONFIG_INVALID", 400, 2}},
    Entry{ErrorCode::K8sContextNotFound, {"K8S_CONTEXT_NOT_FOUND", 400, 2}},
    Entry{ErrorCode::K8sAuthFailed, {"K8S_AUTH_FAILED", 502, 3}},
    Entry{ErrorCode::K8sForbidden, {"K8S_FORBIDDEN", 403, 3}},
    Entry{ErrorCode::K8sApiError, {"K8S_API_ERROR", 502, 8}},
    Entry{ErrorCode::K8sNotFound, {"K8S_NOT_FOUND", 404, 4}},
    Entry{ErrorCode::K8sConflict, {"K8S_CONFLICT", 409, 5}},
    Entry{ErrorCode::K8sResourceExpired, {"K8S_RESOURCE_EXPIRED", 410, 5}},
    Entry{ErrorCode::K8sInvalid, {"K8S_INVALID", 422, 2}},
    Entry{ErrorCode::K8sNamespaceError, {"K8S_NAMESPACE_ERROR", 500, 8}},
    Entry{ErrorCode::K8sPodSecurityViolation, {"K8S_POD_SECURITY_VIOLATION", 422, 2}},
    Entry{ErrorCode::K8sPodStartupTimeout, {"K8S_POD_STARTUP_TIMEOUT", 504, 6}},
    Entry{ErrorCode::K8sPodNotRunning, {"K8S_POD_NOT_RUNNING", 409, 5}},
    Entry{ErrorCode::K8sImagePullBackoff, {"K8S_IMAGE_PULL_BACKOFF", 502, 8}},
    Entry{ErrorCode::K8sInsufficientResources, {"K8S_INSUFFICIENT_RESOURCES", 503, 7}},
    Entry{ErrorCode::WarmPoolDisabled, {"WARM_POOL_DISABLED", 400, 2}},
    Entry{ErrorCode::WarmPoolExhausted, {"WARM_POOL_EXHAUSTED", 503, 7}},
    Entry{ErrorCode::WarmPoolPrewarmFailed, {"WARM_POOL_PREWARM_FAILED", 500, 8}},
};

}  // namespace

const ErrorInfo& errorInfo(ErrorCode code) {
  for (const auto& e : kCatalogue) {
    if (e.code == code) return e.info;
  }
  return kCatalogue[7].info;  // INTERNAL_ERROR; unreachable while the table is complete
}

std::string_view errorName(ErrorCode code) {
  return errorInfo(code).name;
}

ErrorCode errorFromName(std::string_view name) {
  for (const auto& e : kCatalogue) {
    if (e.info.name == name) return e.code;
  }
  return ErrorCode::Internal;
}

std::string Error::describe() const {
  std::string s(errorName(code));
  s += ": ";
  s += message;
  return s;
}

}  // namespace agentpane
