// A pod's usage from the cluster's metrics API (metrics.k8s.io, served by metrics-server), and
// the quantity strings it speaks. The provider prefers it for CPU and memory where the cluster
// has it (no 200 ms CPU sample in the pod) and reads the container's cgroup otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agentpane/result.hpp"
#include "k8s/rest_client.hpp"

namespace agentpane::k8s {

// A Kubernetes quantity ("250m", "1234567n", "2", "512Ki", "1Gi", "1e3") in base units
// (cores, bytes); nullopt when it is not one.
std::optional<double> parseQuantity(const std::string& q);

struct PodUsage {
  double cpuPercent = 0;          // of one core = 100
  std::uint64_t memoryBytes = 0;  // working set
};

// GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods/POD, the usage of `container`. The
// client's error when the API is absent (404, 503) or refused (403); Internal (reason
// badMetrics) when the answer has no such container or quantities that do not parse.
Result<PodUsage> metricsApiUsage(RestClient& client, const std::string& ns, const std::string& pod,
                                 const std::string& container);

}  // namespace agentpane::k8s
