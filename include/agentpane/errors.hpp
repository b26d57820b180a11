// The one error catalogue of AgentPane: every failure a caller can see is an ErrorCode,
// mapped once to its wire name, HTTP status and CLI exit code (see errors.cpp).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace agentpane {

enum class ErrorCode {
  // General
  ValidationError,    // VALIDATION_ERROR          400
  Unauthorized,       // UNAUTHORIZED              401
  Forbidden,          // FORBIDDEN                 403
  NotFound,           // NOT_FOUND                 404 (route or generic resource)
  MethodNotAllowed,   // METHOD_NOT_ALLOWED        405
  PayloadTooLarge,    // PAYLOAD_TOO_LARGE         413
  Conflict,           // CONFLICT                  409
  Internal,           // INTERNAL_ERROR            500
  ServerUnreachable,  // SERVER_UNREACHABLE        (CLI only; 503 if ever sent)
  Timeout,            // TIMEOUT                   504 (a call to a dependency timed out)
  PathForbidden,      // PATH_FORBIDDEN            403 (a host path outside the policy)
  TooManyRequests,    // TOO_MANY_REQUESTS         429 (a concurrency bound; retry later)
  // Sandboxes
  SandboxNotFound,             // SANDBOX_NOT_FOUND            404
  SandboxAlreadyExists,        // SANDBOX_ALREADY_EXISTS       409
  SandboxNotRunning,           // SANDBOX_NOT_RUNNING          409
  SandboxCreateFailed,         // SANDBOX_CREATE_FAILED        500
  SandboxCreateCancelled,      // SANDBOX_CREATE_CANCELLED     503 (client gone, server stopping)
  SandboxProjectPathInvalid,   // SANDBOX_PROJECT_PATH_INVALID 400
  SandboxImageNotFound,        // SANDBOX_IMAGE_NOT_FOUND      400
  SandboxProviderUnavailable,  // SANDBOX_PROVIDER_UNAVAILABLE 503
  SandboxProviderError,        // SANDBOX_PROVIDER_ERROR       502 (engine answered with an error)
  SandboxExecFailed,           // SANDBOX_EXEC_FAILED          500
  SandboxRootExecForbidden,    // SANDBOX_ROOT_EXEC_FORBIDDEN  403 (the profile does not allow it)
  ExecTimeout,                 // EXEC_TIMEOUT                 504
  ExecOutputTooLarge,          // EXEC_OUTPUT_TOO_LARGE        422 (buffered exec; use the stream)
  SandboxConfigNotFound,       // SANDBOX_CONFIG_NOT_FOUND     404
  SandboxConfigInUse,          // SANDBOX_CONFIG_IN_USE        409
  SandboxConfigNameConflict,   // SANDBOX_CONFIG_NAME_CONFLICT 409
  TmuxNameInvalid,             // SANDBOX_TMUX_NAME_INVALID    400
  TmuxSessionExists,           // SANDBOX_TMUX_SESSION_EXISTS  409
  TmuxSessionNotFound,         // SANDBOX_TMUX_SESSION_NOT_FOUND 404
  TmuxFailed,                  // SANDBOX_TMUX_FAILED          500
  // Kubernetes
  K8sDisabled,               // K8S_DISABLED                 400
  K8sUnreachable,            // K8S_CLUSTER_UNREACHABLE      503 (connect refused/timed out)
  K8sKubeconfigInvalid,      // K8S_KUBECONFIG_INVALID       400
  K8sContextNotFound,        // K8S_CONTEXT_NOT_FOUND        400
  K8sAuthFailed,             // K8S_AUTH_FAILED              502
  K8sForbidden,              // K8S_FORBIDDEN                403
  K8sApiError,               // K8S_API_ERROR                502 (any other apiserver failure)
  K8sNotFound,               // K8S_NOT_FOUND                404 (apiserver 404)
  K8sConflict,               // K8S_CONFLICT                 409 (AlreadyExists, Conflict)
  K8sResourceExpired,        // K8S_RESOURCE_EXPIRED         410 (Gone/Expired resourceVersion)
  K8sInvalid,                // K8S_INVALID                  422 (apiserver validation)
  K8sNamespaceError,         // K8S_NAMESPACE_ERROR          500
  K8sPodSecurityViolation,   // K8S_POD_SECURITY_VIOLATION   422
  K8sPodStartupTimeout,      // K8S_POD_STARTUP_TIMEOUT      504
  K8sPodNotRunning,          // K8S_POD_NOT_RUNNING          409
  K8sImagePullBackoff,       // K8S_IMAGE_PULL_BACKOFF       502
  K8sInsufficientResources,  // K8S_INSUFFICIENT_RESOURCES   503
  // Warm pool
  WarmPoolDisabled,       // WARM_POOL_DISABLED           400
  WarmPoolExhausted,      // WARM_POOL_EXHAUSTED          503
  WarmPoolPrewarmFailed,  // WARM_POOL_PREWARM_FAILED     500
};

struct ErrorInfo {
  std::string_view name;  // wire code, e.g. "SANDBOX_NOT_FOUND"
  int httpStatus;
  int cliExitCode;
};

// Catalogue lookup. Every enumerator has an entry (checked by a unit test).
const ErrorInfo& errorInfo(ErrorCode code);
std::string_view errorName(ErrorCode code);
// Reverse lookup of a wire name (used by the CLI on API responses). Unknown names map to Internal.
ErrorCode errorFromName(std::string_view name);

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  std::map<std::string, std::string> details;

  Error() = default;
  Error(ErrorCode c, std::string msg) : code(c), message(std::move(msg)) {}
  Error(ErrorCode c, std::string msg, std::map<std::string, std::string> d)
      : code(c), message(std::move(msg)), details(std::move(d)) {}

  // "CODE: message", the CLI's form.
  [[nodiscard]] std::string describe() const;
};

}  // namespace agentpane
