#include "k8s/pod_metrics.hpp"

#include <charconv>
#include <utility>

namespace agentpane::k8s {

std::optional<double> parseQuantity(const std::string& q) {
  static const std::pair<const char*, double> kSuffixes[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"n", 1e-9},    {"u", 1e-6},       {"m", 1e-3},          {"k", 1e3},
      {"M", 1e6},     {"G", 1e9},        {"T", 1e12}};
  double factor = 1;
  std::string number = q;
  for (const auto& [suffix, f] : kSuffixes) {
    const std::string sfx(suffix);
    if (number.size() > sfx.size() &&
        number.compare(number.size() - sfx.size(), sfx.size(), sfx) == 0) {
      number.resize(number.size() - sfx.size());
      factor = f;
      break;
    }
  }
  double v = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (ec != std::errc() || end != number.data() + number.size() || v < 0) return std::nullopt;
  return v * factor;
}

Result<PodUsage> metricsApiUsage(RestClient& client, const std::string& ns, const std::string& pod,
                                 const std::string& container) {
  auto r = client.get("/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods/" + pod);
  if (!r.ok()) return r.takeError();
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::Internal, "the metrics API's answer for pod " + pod + ": " + why,
                 {{"reason", "badMetrics"}});
  };
  const auto containers = r->value("containers", nlohmann::json::array());
  if (!containers.is_array()) return bad("no containers");
  for (const auto& c : containers) {
    if (!c.is_object() || c.value("name", "") != container) continue;
    const auto usage = c.value("usage", nlohmann::json::object());
    auto cpu = parseQuantity(usage.is_object() ? usage.value("cpu", "") : "");
    auto mem = parseQuantity(usage.is_object() ? usage.value("memory", "") : "");
    if (!cpu || !mem) return bad("container " + container + " has no cpu or memory quantity");
    return PodUsage{*cpu * 100.0, static_cast<std::uint64_t>(*mem)};
  }
  return bad("no container " + container);
}

}  // namespace agentpane::k8s
