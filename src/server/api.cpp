#include "server/api.hpp"

#include <cmath>

namespace agentpane::server {
using nlohmann::json;

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Reply okReply(json data, int status) {
  Reply r;
  r.status = status;
  r.body = dumpJson(json{{"ok", true}, {"data", std::move(data)}});
  return r;
}

json errorJson(const Error& e) {
  json details = json::object();
  for (const auto& [k, v] : e.details)
    details[k] = v;
  return json{
      {"code", std::string(errorName(e.code))}, {"message", e.message}, {"details", details}};
}

Reply errorReply(const Error& e) {
  Reply r;
  r.status = errorInfo(e.code).httpStatus;
  r.body = dumpJson(json{{"ok", false}, {"error", errorJson(e)}});
  return r;
}

Reply errorReply(ErrorCode code, std::string message) {
  return errorReply(Error(code, std::move(message)));
}

Error fieldError(const std::string& field, const std::string& message) {
  return {ErrorCode::ValidationError, message, {{"field", field}}};
}

Result<json> parseJsonObject(std::string_view body) {
  if (body.empty()) return Error(ErrorCode::ValidationError, "a JSON object body is required");
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::ValidationError, "the body is not valid JSON");
  if (!j.is_object()) return Error(ErrorCode::ValidationError, "the body must be a JSON object");
  return j;
}

Result<JsonFields> JsonFields::of(const json& obj,
                                  std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) return Error(ErrorCode::ValidationError, "expected a JSON object");
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (auto a : allowed)
      known = known || a == key;
    if (!known) return fieldError(key, "unknown field '" + key + "'");
  }
  return JsonFields(obj);
}

bool JsonFields::has(const std::string& name) const {
  return obj_->contains(name) && !(*obj_)[name].is_null();
}

Result<std::string> JsonFields::requiredString(const std::string& name) const {
  if (!has(name)) return fieldError(name, "'" + name + "' is required");
  const auto& v = (*obj_)[name];
  if (!v.is_string()) return fieldError(name, "'" + name + "' must be a string");
  return v.get<std::string>();
}

Result<std::optional<std::string>> JsonFields::optionalString(const std::string& name) const {
  if (!has(name)) return std::optional<std::string>{};
  const auto& v = (*obj_)[name];
  if (!v.is_string()) return fieldError(name, "'" + name + "' must be a string");
  return std::optional<std::string>(v.get<std::string>());
}

Result<std::optional<bool>> JsonFields::optionalBool(const std::string& name) const {
  if (!has(name)) return std::optional<bool>{};
  const auto& v = (*obj_)[name];
  if (!v.is_boolean()) return fieldError(name, "'" + name + "' must be true or false");
  return std::optional<bool>(v.get<bool>());
}

Result<std::optional<std::int64_t>> JsonFields::optionalInt(const std::string& name,
                                                            std::int64_t min,
                                                            std::int64_t max) const {
  if (!has(name)) return std::optional<std::int64_t>{};
  const auto& v = (*obj_)[name];
  std::int64_t n = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      return fieldError(name, "'" + name + "' is out of range");
    }
    n = v.get<std::int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9e15) {
    n = static_cast<std::int64_t>(v.get<double>());
  } else {
    return fieldError(name, "'" + name + "' must be an integer");
  }
  if (n < min || n > max) {
    return fieldError(name, "'" + name + "' must be between " + std::to_string(min) + " and " +
                                std::to_string(max));
  }
  return std::optional<std::int64_t>(n);
}

Result<std::optional<double>> JsonFields::optionalNumber(const std::string& name, double min,
                                                         double max) const {
  if (!has(name)) return std::optional<double>{};
  const auto& v = (*obj_)[name];
  if (!v.is_number()) return fieldError(name, "'" + name + "' must be a number");
  double d = v.get<double>();
  if (!(d >= min && d <= max)) return fieldError(name, "'" + name + "' is out of range");
  return std::optional<double>(d);
}

Result<std::optional<std::vector<std::string>>> JsonFields::optionalStringArray(
    const std::string& name, bool nonEmpty) const {
  using Out = std::optional<std::vector<std::string>>;
  if (!has(name)) return Out{};
  const auto& v = (*obj_)[name];
  if (!v.is_array()) return fieldError(name, "'" + name + "' must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) return fieldError(name, "'" + name + "' must be an array of strings");
    out.push_back(e.get<std::string>());
  }
  if (nonEmpty && out.empty()) return fieldError(name, "'" + name + "' must not be empty");
  return Out(std::move(out));
}

Result<std::optional<std::vector<std::pair<std::string, std::string>>>>
JsonFields::optionalStringMap(const std::string& name) const {
  using Out = std::optional<std::vector<std::pair<std::string, std::string>>>;
  if (!has(name)) return Out{};
  const auto& v = (*obj_)[name];
  if (!v.is_object()) return fieldError(name, "'" + name + "' must be an object of strings");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, e] : v.items()) {
    if (!e.is_string()) return fieldError(name, "'" + name + "." + k + "' must be a string");
    out.emplace_back(k, e.get<std::string>());
  }
  return Out(std::move(out));
}

}  // namespace agentpane::server
