#include "docker/engine_json.hpp"

#include <nlohmann/json.hpp>

#include "common/time.hpp"
#include "net/url.hpp"

namespace agentpane::docker {

using nlohmann::json;

std::string labelFilterQuery(const std::vector<std::pair<std::string, std::string>>& labels,
                             const std::vector<std::string>& types) {
  json f = json::object();
  json arr = json::array();
  for (const auto& [k, v] : labels)
    arr.push_back(k + "=" + v);
  f["label"] = std::move(arr);
  if (!types.empty()) f["type"] = types;
  return net::percentEncode(f.dump());
}

namespace {

std::uint64_t u64(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer()) {
    auto v = it->get<std::int64_t>();
    return v < 0 ? 0 : static_cast<std::uint64_t>(v);
  }
  double d = it->get<double>();
  return d < 0 ? 0 : static_cast<std::uint64_t>(d);
}

const json& sub(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

}  // namespace

Result<SandboxMetrics> parseStats(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::SandboxProviderError, "docker stats: not a JSON object");
  }
  SandboxMetrics m;
  const json& cpu = sub(j, "cpu_stats");
  const json& pre = sub(j, "precpu_stats");
  std::uint64_t total = u64(sub(cpu, "cpu_usage"), "total_usage");
  std::uint64_t preTotal = u64(sub(pre, "cpu_usage"), "total_usage");
  std::uint64_t system = u64(cpu, "system_cpu_usage");
  std::uint64_t preSystem = u64(pre, "system_cpu_usage");
  std::uint64_t online = u64(cpu, "online_cpus");
  if (online == 0) {
    const json& per = sub(sub(cpu, "cpu_usage"), "percpu_usage");
    if (per.is_array()) online = per.size();
  }
  if (total > preTotal && system > preSystem && online > 0) {
    m.cpuPercent = static_cast<double>(total - preTotal) / static_cast<double>(system - preSystem) *
                   static_cast<double>(online) * 100.0;
  }

  const json& mem = sub(j, "memory_stats");
  std::uint64_t usage = u64(mem, "usage");
  const json& memStats = sub(mem, "stats");
  std::uint64_t cache = 0;
  if (memStats.is_object()) {
    if (memStats.contains("total_inactive_file"))
      cache = u64(memStats, "total_inactive_file");  // v1
    else if (memStats.contains("inactive_file"))
      cache = u64(memStats, "inactive_file");  // v2
    else
      cache = u64(memStats, "cache");
  }
  m.memoryBytes = usage > cache ? usage - cache : usage;
  m.memoryLimitBytes = u64(mem, "limit");

  const json& nets = sub(j, "networks");
  if (nets.is_object()) {
    for (const auto& [name, n] : nets.items()) {
      m.networkRxBytes += u64(n, "rx_bytes");
      m.networkTxBytes += u64(n, "tx_bytes");
    }
  }
  m.pids = u64(sub(j, "pids_stats"), "current");
  return m;
}

std::optional<std::int64_t> parseRfc3339(std::string_view text) {
  auto t = agentpane::parseRfc3339Unix(text);
  if (!t.ok() || t.value() < 0) return std::nullopt;  // Docker's zero time is year 1
  return t.value();
}

}  // namespace agentpane::docker
