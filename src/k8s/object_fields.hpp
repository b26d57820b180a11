// Reading fields of Kubernetes objects (nlohmann::json) that may be missing or of another
// type: each answers "" then, never throws.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace agentpane::k8s {

// The string at `pointer` ("/metadata/name"); "" when absent or not a string.
inline std::string stringAt(const nlohmann::json& obj,
                            const nlohmann::json::json_pointer& pointer) {
  if (!obj.contains(pointer) || !obj.at(pointer).is_string()) return {};
  return obj.at(pointer).get<std::string>();
}

namespace detail {
inline std::string metadataEntry(const nlohmann::json& obj, const char* map, const char* key) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return {};
  auto entries = m->find(map);
  if (entries == m->end() || !entries->is_object()) return {};
  auto v = entries->find(key);
  return v != entries->end() && v->is_string() ? v->get<std::string>() : std::string();
}
}  // namespace detail

inline std::string labelOf(const nlohmann::json& obj, const char* key) {
  return detail::metadataEntry(obj, "labels", key);
}

inline std::string annotationOf(const nlohmann::json& obj, const char* key) {
  return detail::metadataEntry(obj, "annotations", key);
}

}  // namespace agentpane::k8s
