// The server's Prometheus series, rendered in the text exposition format (version 0.0.4).
// Route labels are route patterns (`/api/sandboxes/:id`), never raw ids, so the number of
// series stays bounded.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "service/sandbox_service.hpp"

namespace agentpane::server {

class Histogram {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  60};
  void observe(double seconds);
  // Appends `name_bucket{labels,le=…}`, `name_sum{labels}` and `name_count{labels}` lines.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::uint64_t, kBuckets.size()> counts_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void recordRequest(const std::string& route, const std::string& method, int status,
                     double seconds);
  // result: ok | nonzero | timeout | error
  void recordExec(const std::string& provider, const std::string& result, double seconds);

  // Renders every series; `sandboxes` is sandboxCounts() ({provider, status} -> n), `pools`
  // is warmPools().
  std::string render(const std::map<std::pair<std::string, std::string>, int>& sandboxes,
                     const std::vector<WarmPoolInfo>& pools = {}) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> requestDurations_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> execs_;
  std::map<std::string, Histogram> execDurations_;
};

// Escapes a label value (backslash, double quote, newline).
std::string escapeLabelValue(const std::string& v);
// The method label of a request: one of the HTTP methods, or "other" (bounded label set).
std::string methodLabel(std::string_view method);

}  // namespace agentpane::server
