// The check after a server killed mid-create and restarted, shared by the Docker and the
// Kubernetes end-to-end tests: reconcile settles every row against the backend.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

namespace agentpane::testing {

// Polls (every 100 ms, at most `tries` times) until no row is "creating" and the ids of the
// live rows (running, idle, stopped) are exactly the backend's sandbox ids. `last` says what
// was seen last, for the failure message.
inline bool rowsSettleOnBackend(const std::function<nlohmann::json()>& rows,
                                const std::function<std::set<std::string>()>& backendIds, int tries,
                                std::string& last) {
  for (int i = 0; i < tries; ++i) {
    const auto listed = rows();
    std::set<std::string> live;
    bool creating = false;
    for (const auto& s : listed) {
      const auto st = s.value("status", "");
      if (st == "creating") creating = true;
      if (st == "running" || st == "idle" || st == "stopped") live.insert(s.value("id", ""));
    }
    const auto backend = backendIds();
    if (!creating && live == backend) return true;
    last = listed.dump() + " backend=" + std::to_string(backend.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace agentpane::testing
