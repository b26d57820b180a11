#include "server/api.hpp"

#include <array>
#include <cmath>

namespace agentpane::server {
using nlohmann::json;

std::string dumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply okReply(json data, int status) {
  Reply r;
  r.status = status;
  r.body = dumpJson(json{{"ok", true}, {"data", std::move(data)}});
  return r;
}

json errorJson(const Error& e) {
  json details = json::object();
  for (const auto& [k, v] : e.details) details[k] = v;
  return json{{"code", std::string(errorName(e.code))}, {"message", e.message}, {"details", details}};
}

Reply errorReply(const Error& e) {
  Reply r;
  r.status = errorInfo(e.code).httpStatus;
  r.body = dumpJson(json{{"ok", false}, {"error", errorJson(e)}});
  return r;
}

Reply errorReply(ErrorCode code, std::string message) { return errorReply(Error(code, std::move(message))); }

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

Result<JsonFields> JsonFields::of(const json& obj, std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) return Error(ErrorCode::ValidationError, "expected a JSON object");
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (auto a : allowed) known = known || a == key;
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

Result<std::optional<std::int64_t>> JsonFields::optionalInt(const std::string& name, std::int64_t min,
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

Result<std::optional<std::vector<std::string>>> JsonFields::optionalStringArray(const std::string& name,
                                                                               bool nonEmpty) const {
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

Result<std::optional<std::vector<std::pair<std::string, std::string>>>> JsonFields::optionalStringMap(
    const std::string& name) const {
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

bool isValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    std::uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  std::size_t rest = data.size() - i;
  if (rest == 1) {
    std::uint32_t v = p[i] << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out += "==";
  } else if (rest == 2) {
    std::uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = i;
    return t;
  }();
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=') {
        // Padding only at the very end, at most two.
        if (i + 4 != text.size() || k < 2) return std::nullopt;
        v[k] = 0;
        ++pad;
      } else {
        if (pad > 0) return std::nullopt;
        v[k] = table[static_cast<unsigned char>(c)];
        if (v[k] < 0) return std::nullopt;
      }
    }
    std::uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

}  // namespace agentpane::server
