#include <gtest/gtest.h>

#include "docker/container_info.hpp"
#include "docker/docker_provider.hpp"
#include "docker/engine_json.hpp"
#include "docker/events.hpp"

namespace agentpane::docker {
namespace {

TEST(LabelFilter, UrlEncodedJson) {
  EXPECT_EQ(labelFilterQuery({{"agentpane.io/sandbox", "true"}}),
            "%7B%22label%22%3A%5B%22agentpane.io%2Fsandbox%3Dtrue%22%5D%7D");
  // Values with spaces, quotes and '&' cannot break out of the parameter or the JSON.
  std::string q = labelFilterQuery(
      {{"agentpane.io/sandbox", "true"}, {"agentpane.io/project-id", "p 1&x=\"y\""}},
      {"container"});
  EXPECT_EQ(q,
            "%7B%22label%22%3A%5B%22agentpane.io%2Fsandbox%3Dtrue%22%2C%22agentpane.io%2Fproject-"
            "id%3Dp%201%26x%3D%5C%22y"
            "%5C%22%22%5D%2C%22type%22%3A%5B%22container%22%5D%7D");
  EXPECT_EQ(q.find_first_of(" &=\"{}[]"), std::string::npos);
}

// Trimmed from a real `stats?stream=false` answer of engine 20.10 on a cgroup v1 host.
constexpr const char* kStatsV1 = R"({
  "read": "2024-05-01T10:00:01.5Z", "preread": "2024-05-01T10:00:00.5Z",
  "pids_stats": {"current": 7, "limit": 512},
  "cpu_stats": {"cpu_usage": {"total_usage": 2500000000, "percpu_usage": [1250000000, 1250000000]},
                "system_cpu_usage": 200000000000, "online_cpus": 2},
  "precpu_stats": {"cpu_usage": {"total_usage": 2000000000}, "system_cpu_usage": 198000000000},
  "memory_stats": {"usage": 104857600, "limit": 805306368,
                   "stats": {"cache": 20971520, "total_inactive_file": 10485760}},
  "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 200}, "eth1": {"rx_bytes": 24, "tx_bytes": 6}}
})";

constexpr const char* kStatsV2 = R"({
  "pids_stats": {"current": 3},
  "cpu_stats": {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 5000, "online_cpus": 4},
  "precpu_stats": {"cpu_usage": {"total_usage": 500}, "system_cpu_usage": 4000},
  "memory_stats": {"usage": 50000, "limit": 100000, "stats": {"inactive_file": 10000}}
})";

TEST(Stats, CgroupV1) {
  auto m = parseStats(kStatsV1);
  ASSERT_TRUE(m.ok());
  // (0.5e9 / 2e9) * 2 CPUs * 100
  EXPECT_DOUBLE_EQ(m->cpuPercent, 50.0);
  EXPECT_EQ(m->memoryBytes, 104857600u - 10485760u);
  EXPECT_EQ(m->memoryLimitBytes, 805306368u);
  EXPECT_EQ(m->networkRxBytes, 1024u);
  EXPECT_EQ(m->networkTxBytes, 206u);
  EXPECT_EQ(m->pids, 7u);
}

TEST(Stats, CgroupV2AndEdgeCases) {
  auto m = parseStats(kStatsV2);
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(m->cpuPercent, 200.0);  // (500/1000) * 4 * 100
  EXPECT_EQ(m->memoryBytes, 40000u);
  EXPECT_EQ(m->networkRxBytes, 0u);  // network none: no "networks"

  // A stopped container: zeros everywhere, no division by zero.
  auto z = parseStats(R"({"cpu_stats":{},"precpu_stats":{},"memory_stats":{},"pids_stats":{}})");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->cpuPercent, 0.0);
  EXPECT_EQ(z->memoryBytes, 0u);

  EXPECT_FALSE(parseStats("not json").ok());
  EXPECT_FALSE(parseStats("[1,2]").ok());
  // Wrong types are ignored, not fatal.
  EXPECT_TRUE(parseStats(R"({"memory_stats":{"usage":"lots"},"networks":[]})").ok());
}

TEST(Rfc3339, Forms) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2024-05-01T12:34:56.123456789Z"), 1714566896);
  EXPECT_EQ(parseRfc3339("2024-05-01T14:34:56+02:00"), 1714566896);
  EXPECT_FALSE(parseRfc3339("0001-01-01T00:00:00Z").has_value());  // Docker's "never"
  EXPECT_FALSE(parseRfc3339("yesterday").has_value());
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:34:56").has_value());
}

TEST(ContainerInfo, StateMapping) {
  EXPECT_EQ(stateFromDocker("running", std::nullopt, false), SandboxState::Running);
  EXPECT_EQ(stateFromDocker("created", std::nullopt, false), SandboxState::Creating);
  EXPECT_EQ(stateFromDocker("exited", 0, false), SandboxState::Stopped);
  EXPECT_EQ(stateFromDocker("exited", 137, false), SandboxState::Stopped);
  EXPECT_EQ(stateFromDocker("exited", 143, false), SandboxState::Stopped);
  EXPECT_EQ(stateFromDocker("exited", 1, false), SandboxState::Failed);
  EXPECT_EQ(stateFromDocker("exited", 137, true), SandboxState::Failed);
  EXPECT_EQ(stateFromDocker("dead", std::nullopt, false), SandboxState::Failed);
  EXPECT_EQ(stateFromDocker("paused", std::nullopt, false), SandboxState::Unknown);
  EXPECT_EQ(stateFromDocker("something-new", std::nullopt, false), SandboxState::Unknown);
  EXPECT_EQ(exitCodeFromStatusText("Exited (137) 5 seconds ago"), 137);
  EXPECT_EQ(exitCodeFromStatusText("Up 2 minutes"), std::nullopt);
}

TEST(ContainerInfo, ListEntryAndInspectRebuildTheSandbox) {
  auto entry = nlohmann::json::parse(R"({
    "Id": "abc123", "Names": ["/agentpane-s1"], "Image": "sha256:deadbeef", "State": "exited",
    "Status": "Exited (2) 1 minute ago", "Created": 1714566896,
    "Labels": {"agentpane.io/sandbox": "true", "agentpane.io/sandbox-id": "s1", "agentpane.io/project-id": "p",
               "agentpane.io/agent-id": "a", "agentpane.io/project-path": "/home/u/proj",
               "agentpane.io/image": "agentpane/sandbox:latest"}})");
  SandboxInfo s = sandboxFromListEntry(entry);
  EXPECT_EQ(s.id, "s1");
  EXPECT_EQ(s.containerId, "abc123");
  EXPECT_EQ(s.projectPath, "/home/u/proj");
  EXPECT_EQ(s.image, "agentpane/sandbox:latest");
  EXPECT_EQ(s.state, SandboxState::Failed);
  EXPECT_EQ(s.createdAtUnix, 1714566896);

  auto inspect = nlohmann::json::parse(R"({
    "Id": "abc123", "Created": "2024-05-01T12:34:56.5Z",
    "State": {"Status": "running", "Running": true, "ExitCode": 0, "OOMKilled": false, "Error": ""},
    "Config": {"Image": "agentpane/sandbox:latest", "Labels": {"agentpane.io/sandbox": "true",
               "agentpane.io/sandbox-id": "s1"}}})");
  SandboxInfo i = sandboxFromInspect(inspect);
  EXPECT_EQ(i.id, "s1");
  EXPECT_EQ(i.state, SandboxState::Running);
  EXPECT_EQ(i.createdAtUnix, 1714566896);
  EXPECT_EQ(i.image, "agentpane/sandbox:latest");

  SandboxInfo junk = sandboxFromInspect(nlohmann::json::parse(R"({"State": 5, "Config": null})"));
  EXPECT_EQ(junk.state, SandboxState::Unknown);
  EXPECT_TRUE(junk.id.empty());
}

TEST(Events, DecoderSplitsAtEveryByte) {
  const std::string stream =
      R"({"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"agentpane.io/sandbox-id":"s1","name":"agentpane-s1"}},"time":1,"timeNano":1000})"
      "\n"
      R"({"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{}},"timeNano":2})"
      "\n"
      R"({"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"137","agentpane.io/sandbox-id":"s1"}},"timeNano":3000})"
      "\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    EventDecoder d;
    std::vector<ContainerEvent> out;
    ASSERT_TRUE(d.feed(std::string_view(stream).substr(0, cut), out).ok());
    ASSERT_TRUE(d.feed(std::string_view(stream).substr(cut), out).ok());
    ASSERT_EQ(out.size(), 2u) << cut;
    EXPECT_EQ(out[0].action, "start");
    EXPECT_EQ(out[0].sandboxId, "s1");
    EXPECT_EQ(out[0].containerId, "c1");
    EXPECT_EQ(out[0].timeNano, 1000);
    EXPECT_FALSE(out[0].exitCode.has_value());
    EXPECT_EQ(out[1].action, "die");
    EXPECT_EQ(out[1].exitCode, 137);
  }
}

TEST(Events, MalformedAndOversizedLines) {
  EventDecoder d;
  std::vector<ContainerEvent> out;
  EXPECT_FALSE(d.feed("{not json}\n", out).ok());
  EventDecoder big;
  EXPECT_FALSE(big.feed(std::string(EventDecoder::kMaxLine + 1, 'x'), out).ok());
  EventDecoder blank;
  EXPECT_TRUE(blank.feed("\n\r\n  \n", out).ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace agentpane::docker
