// The JSON envelope of the API and strict readers for request bodies.
//   success: {"ok":true,"data":…}
//   failure: {"ok":false,"error":{"code","message","details"}} with errorInfo(code).httpStatus
#pragma once

#include <boost/beast/http/status.hpp>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::server {

struct Reply {
  int status = 200;
  std::string body;
  std::string contentType = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Set-Cookie, Allow
  // Set by a handler that wrote its response itself (a chunked stream; `status` is what it
  // sent): the server only counts it, and keeps the connection only when this is true (the
  // stream was finished whole).
  std::optional<bool> streamed;
};

// JSON text that never throws on bytes that are not UTF-8 (they become U+FFFD).
std::string dumpJson(const nlohmann::json& j);

Reply okReply(nlohmann::json data, int status = 200);
Reply errorReply(const Error& e);
Reply errorReply(ErrorCode code, std::string message);
nlohmann::json errorJson(const Error& e);

template <typename T, typename ToJson>
Reply replyFrom(Result<T>& r, ToJson&& toJson, int status = 200) {
  if (!r.ok()) return errorReply(r.error());
  return okReply(toJson(r.value()), status);
}

// Parses a request body that must be one JSON object. Empty or malformed: ValidationError.
Result<nlohmann::json> parseJsonObject(std::string_view body);

// A strict view of a JSON object: unknown fields and wrong types are ValidationErrors naming
// the field (details["field"]).
class JsonFields {
 public:
  // Fails when `obj` holds a field not in `allowed`.
  static Result<JsonFields> of(const nlohmann::json& obj,
                               std::initializer_list<std::string_view> allowed);

  [[nodiscard]] bool has(const std::string& name) const;
  Result<std::string> requiredString(const std::string& name) const;
  Result<std::optional<std::string>> optionalString(const std::string& name) const;
  Result<std::optional<bool>> optionalBool(const std::string& name) const;
  Result<std::optional<std::int64_t>> optionalInt(const std::string& name, std::int64_t min,
                                                  std::int64_t max) const;
  Result<std::optional<double>> optionalNumber(const std::string& name, double min,
                                               double max) const;
  // Array of strings; `nonEmpty` refuses [].
  Result<std::optional<std::vector<std::string>>> optionalStringArray(const std::string& name,
                                                                      bool nonEmpty = false) const;
  // Object of string values, in key order.
  Result<std::optional<std::vector<std::pair<std::string, std::string>>>> optionalStringMap(
      const std::string& name) const;

 private:
  explicit JsonFields(const nlohmann::json& obj) : obj_(&obj) {}
  const nlohmann::json* obj_;
};

Error fieldError(const std::string& field, const std::string& message);

}  // namespace agentpane::server
