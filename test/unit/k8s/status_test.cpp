// The Status -> error catalogue mapping, and transport failures -> K8S_CLUSTER_UNREACHABLE.
#include <gtest/gtest.h>

#include "k8s/status.hpp"
#include "net/errors.hpp"

namespace agentpane::k8s {
namespace {

using nlohmann::json;

json status(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
          {"code", code},     {"reason", reason},   {"message", message}};
}

TEST(K8sStatus, EachHttpCodeMapsToItsCatalogueCodeKeepingTheMessage) {
  struct Case {
    int code;
    const char* reason;
    ErrorCode want;
  };
  for (const auto& c : {Case{401, "Unauthorized", ErrorCode::K8sAuthFailed},
                        Case{403, "Forbidden", ErrorCode::K8sForbidden},
                        Case{404, "NotFound", ErrorCode::K8sNotFound},
                        Case{409, "AlreadyExists", ErrorCode::K8sConflict},
                        Case{410, "Expired", ErrorCode::K8sResourceExpired},
                        Case{422, "Invalid", ErrorCode::K8sInvalid},
                        Case{500, "InternalError", ErrorCode::K8sApiError},
                        Case{429, "TooManyRequests", ErrorCode::K8sApiError}}) {
    std::string msg = std::string("apiserver says ") + c.reason;
    Error e = responseError(c.code, status(c.code, c.reason, msg).dump(), "GET /api/v1/x");
    EXPECT_EQ(e.code, c.want) << c.code;
    EXPECT_EQ(e.message, msg);
    EXPECT_EQ(e.details["reason"], c.reason);
    EXPECT_EQ(e.details["code"], std::to_string(c.code));
    EXPECT_EQ(e.details["request"], "GET /api/v1/x");
  }
}

TEST(K8sStatus, PodSecurityRefusalIsItsOwnCode) {
  const std::string msg =
      "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": privileged "
      "(container \"main\" must not set securityContext.privileged=true)";
  Error e = responseError(403, status(403, "Forbidden", msg).dump(), "POST pods");
  EXPECT_EQ(e.code, ErrorCode::K8sPodSecurityViolation);
  EXPECT_EQ(errorName(e.code), "K8S_POD_SECURITY_VIOLATION");
  EXPECT_EQ(e.message, msg);
}

TEST(K8sStatus, DetailsNameTheObjectAndTheCauses) {
  json s = status(422, "Invalid", "ConfigMap \"Bad\" is invalid");
  s["details"] = {
      {"name", "Bad"},
      {"kind", "configmaps"},
      {"causes", json::array({{{"field", "metadata.name"}, {"message", "must be lowercase"}},
                              {{"message", "second"}}})}};
  Error e = statusError(s, 0, "");
  EXPECT_EQ(e.code, ErrorCode::K8sInvalid);
  EXPECT_EQ(e.details["name"], "Bad");
  EXPECT_EQ(e.details["kind"], "configmaps");
  EXPECT_EQ(e.details["causes"], "metadata.name: must be lowercase; second");
  EXPECT_EQ(e.details.count("request"), 0u);
}

TEST(K8sStatus, StatusCodeWinsOverTheHttpStatusForWatchErrors) {
  // A watch ERROR event arrives in a 200 stream: the Status's own code decides.
  json s = status(410, "Expired", "too old resource version: 1 (5)");
  EXPECT_EQ(statusError(s, 200, "watch").code, ErrorCode::K8sResourceExpired);
  EXPECT_TRUE(isExpiredStatus(s));
  json gone = {{"kind", "Status"}, {"reason", "Gone"}};
  EXPECT_TRUE(isExpiredStatus(gone));
  EXPECT_FALSE(isExpiredStatus(status(500, "InternalError", "x")));
  EXPECT_FALSE(isExpiredStatus(json("text")));
}

TEST(K8sStatus, NonStatusBodyKeepsTheHttpStatusAndQuotesTheBody) {
  Error e = responseError(503, "service unavailable\n", "GET /readyz");
  EXPECT_EQ(e.code, ErrorCode::K8sApiError);
  EXPECT_NE(e.message.find("HTTP 503"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("service unavailable"), std::string::npos) << e.message;
  Error big = responseError(404, std::string(100000, 'x'), "GET /x");
  EXPECT_EQ(big.code, ErrorCode::K8sNotFound);
  EXPECT_LT(big.message.size(), 2000u);  // bounded quote
}

TEST(K8sStatus, TransportFailuresMapToClusterUnreachableOrTimeout) {
  for (const char* kind : {net::kConnect, net::kTls, net::kIo}) {
    Error e = transportError(net::netError(kind, "cannot connect"), "https://10.0.0.1:6443");
    EXPECT_EQ(e.code, ErrorCode::K8sUnreachable) << kind;
    EXPECT_EQ(errorName(e.code), "K8S_CLUSTER_UNREACHABLE");
    EXPECT_EQ(e.details["server"], "https://10.0.0.1:6443");
    EXPECT_NE(e.message.find("https://10.0.0.1:6443"), std::string::npos);
  }
  EXPECT_EQ(transportError(net::netError(net::kTimeout, "slow"), "s").code, ErrorCode::Timeout);
  EXPECT_EQ(transportError(net::netError(net::kTooLarge, "big"), "s").code,
            ErrorCode::PayloadTooLarge);
}

}  // namespace
}  // namespace agentpane::k8s
