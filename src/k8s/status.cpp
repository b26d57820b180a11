#include "k8s/status.hpp"

#include "net/errors.hpp"

namespace agentpane::k8s {

namespace {

constexpr std::size_t kMaxQuotedBody = 512;  // of a non-Status error body, in a message

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

ErrorCode codeForStatus(int httpStatus, std::string_view message) {
  switch (httpStatus) {
    case 401:
      return ErrorCode::K8sAuthFailed;
    case 403:
      return message.find("violates PodSecurity") != std::string_view::npos
                 ? ErrorCode::K8sPodSecurityViolation
                 : ErrorCode::K8sForbidden;
    case 404:
      return ErrorCode::K8sNotFound;
    case 409:
      return ErrorCode::K8sConflict;
    case 410:
      return ErrorCode::K8sResourceExpired;
    case 422:
      return ErrorCode::K8sInvalid;
    default:
      return ErrorCode::K8sApiError;
  }
}

Error statusError(const nlohmann::json& status, int httpStatus, std::string_view what) {
  int code = httpStatus;
  std::map<std::string, std::string> details;
  std::string message;
  if (status.is_object()) {
    if (auto it = status.find("code"); it != status.end() && it->is_number_integer()) {
      int c = it->get<int>();
      if (c > 0) code = c;
    }
    message = str(status, "message");
    if (auto reason = str(status, "reason"); !reason.empty()) details["reason"] = reason;
    if (auto it = status.find("details"); it != status.end() && it->is_object()) {
      if (auto v = str(*it, "kind"); !v.empty()) details["kind"] = v;
      if (auto v = str(*it, "name"); !v.empty()) details["name"] = v;
      if (auto c = it->find("causes"); c != it->end() && c->is_array()) {
        std::string causes;
        for (const auto& cause : *c) {
          if (!cause.is_object()) continue;
          std::string one = str(cause, "field");
          std::string m = str(cause, "message");
          if (!one.empty() && !m.empty()) one += ": ";
          one += m;
          if (one.empty()) continue;
          if (!causes.empty()) causes += "; ";
          causes += one;
        }
        if (!causes.empty()) details["causes"] = causes;
      }
    }
  }
  if (message.empty()) message = std::string(what) + ": HTTP " + std::to_string(code);
  details["code"] = std::to_string(code);
  if (!what.empty()) details["request"] = std::string(what);
  const ErrorCode ec = codeForStatus(code, message);
  return {ec, std::move(message), std::move(details)};
}

Error responseError(int httpStatus, std::string_view body, std::string_view what) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && str(j, "kind") == "Status")
    return statusError(j, httpStatus, what);
  std::string quoted(body.substr(0, kMaxQuotedBody));
  while (!quoted.empty() && (quoted.back() == '\n' || quoted.back() == ' '))
    quoted.pop_back();
  nlohmann::json none;
  Error e = statusError(none, httpStatus, what);
  if (!quoted.empty()) e.message += ": " + quoted;
  e.code = codeForStatus(httpStatus, quoted);
  return e;
}

Error transportError(Error netError, std::string_view server) {
  const std::string kind = net::netKind(netError);
  netError.details["server"] = std::string(server);
  if (kind == net::kConnect || kind == net::kTls || kind == net::kIo) {
    netError.code = ErrorCode::K8sUnreachable;
    netError.message =
        "Kubernetes cluster " + std::string(server) + " is unreachable: " + netError.message;
  } else if (kind == net::kTimeout) {
    netError.code = ErrorCode::Timeout;
  }
  return netError;
}

bool isExpiredStatus(const nlohmann::json& status) {
  if (!status.is_object()) return false;
  if (auto it = status.find("code");
      it != status.end() && it->is_number_integer() && it->get<int>() == 410)
    return true;
  auto reason = str(status, "reason");
  return reason == "Expired" || reason == "Gone";
}

}  // namespace agentpane::k8s
