// Pure functions over the engine's JSON: label filters, stats, timestamps. Kept apart from
// the client so they are unit-tested on recorded payloads without an engine.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane::docker {

// The URL-encoded value of a `filters` query parameter selecting containers by labels:
// {"label":["k=v",...]} (plus {"type":[...]} when given), keys in the order given.
std::string labelFilterQuery(const std::vector<std::pair<std::string, std::string>>& labels,
                             const std::vector<std::string>& types = {});

// One `GET /containers/{id}/stats?stream=false` answer -> metrics (uptime left at 0).
// CPU percent as the docker CLI computes it: (cpu delta / system delta) * online CPUs * 100,
// against precpu_stats. Memory is usage minus page cache (cgroup v1 `cache`, v2
// `inactive_file`), again as the CLI shows it.
Result<SandboxMetrics> parseStats(std::string_view json);

// RFC 3339 with optional fraction ("2024-05-01T12:34:56.123456789Z", "+02:00") -> Unix
// seconds. Docker's zero time (0001-01-01...) and junk give std::nullopt.
std::optional<std::int64_t> parseRfc3339(std::string_view text);

}  // namespace agentpane::docker
