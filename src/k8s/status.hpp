// How answers of the apiserver, and failures to reach it, become errors of the catalogue.
// One place, so that the REST client, the watch and the exec session agree.
//
// An apiserver error (a metav1.Status body, or any non-2xx answer) maps by HTTP code:
//   401 -> K8sAuthFailed, 403 -> K8sForbidden (K8sPodSecurityViolation when the message
//   says "violates PodSecurity": that is PodSecurity admission refusing a pod),
//   404 -> K8sNotFound, 409 -> K8sConflict, 410 -> K8sResourceExpired, 422 -> K8sInvalid,
//   anything else -> K8sApiError.
// The apiserver's message is kept as the error's message; details carry "code" (the HTTP
// code), "reason" (Status.reason, e.g. AlreadyExists), and "kind"/"name"/"causes" when the
// Status names them.
//
// A transport failure (net error) maps: connect refused, connect timeout, TLS failure, a
// connection cut mid-call -> K8sUnreachable (K8S_CLUSTER_UNREACHABLE, with details["server"]);
// the call's deadline -> Timeout; a body over the limit -> PayloadTooLarge; the rest kept.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "agentpane/errors.hpp"

namespace agentpane::k8s {

// The catalogue code for an HTTP status of the apiserver (message decides PodSecurity).
ErrorCode codeForStatus(int httpStatus, std::string_view message);

// From a metav1.Status object (a watch ERROR event's object, or a parsed error body).
// Status.code wins over httpStatus when it is set (watch events have no HTTP status).
Error statusError(const nlohmann::json& status, int httpStatus, std::string_view what);

// From a raw error answer: a Status body when it parses as one, else the HTTP status and
// the start of the body (bounded) as the message.
Error responseError(int httpStatus, std::string_view body, std::string_view what);

// From a failure of ap_net talking to `server`.
Error transportError(Error netError, std::string_view server);

// True for a metav1.Status that says a resourceVersion is too old (code 410, or reason
// Expired/Gone): the caller must list again.
bool isExpiredStatus(const nlohmann::json& status);

}  // namespace agentpane::k8s
