// What every CLI command prints the same way: an error (code and message on stderr, the
// catalogue's exit code) and a table cell from a JSON field.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "agentpane/errors.hpp"
#include "agentpane/result.hpp"

namespace agentpane::cli {

inline int fail(const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.describe().c_str());
  return errorInfo(e.code).cliExitCode;
}

// A field as text: "-" when missing or null, strings bare, anything else as JSON.
inline std::string cell(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

}  // namespace agentpane::cli
