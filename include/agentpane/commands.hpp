// Durable commands: commands that outlive the connection (and the server) that started them.
// Each has an id; its output is kept in a bounded ring addressed by a cursor (the byte offset
// in its combined stdout+stderr), and its exit code once it ended. A provider that can run
// them (the in-sandbox agent channel, src/channel) implements CommandRunner besides
// SandboxProvider; the service finds it by dynamic_cast.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "agentpane/result.hpp"
#include "agentpane/sandbox.hpp"

namespace agentpane {

struct CommandStatus {
  std::string id;
  std::vector<std::string> argv;
  bool running = true;
  std::optional<int> exitCode;  // once ended: 0-255, 128+N for signal N
  // "running", "exited", "signaled", "timedOut", "killed", "lost"
  std::string state = "running";
  std::uint64_t firstCursor = 0;  // the oldest output still kept
  std::uint64_t endCursor = 0;    // output so far ends here
  std::int64_t startedAtMs = 0;   // Unix ms
  std::int64_t endedAtMs = 0;     // 0 while running
};

struct CommandChunk {
  ExecStream stream = ExecStream::Stdout;
  std::uint64_t offset = 0;
  std::string data;
};

struct CommandOutput {
  std::uint64_t cursor = 0;      // where the chunks start (> the asked cursor if it was dropped)
  std::uint64_t nextCursor = 0;  // ask again from here
  std::vector<CommandChunk> chunks;
  CommandStatus status;
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Starts argv detached: it runs on whether anyone follows it. Ids are the runner's.
  virtual Result<CommandStatus> startCommand(const SandboxRef& ref,
                                             const std::vector<std::string>& argv,
                                             const ExecOptions& options) = 0;
  virtual Result<std::vector<CommandStatus>> listCommands(const SandboxRef& ref) = 0;
  // Output from `cursor`. With wait > 0 and nothing new yet while the command runs, waits up
  // to `wait` for new output or its end. Unknown id: NotFound (reason commandNotFound).
  virtual Result<CommandOutput> commandOutput(const SandboxRef& ref, const std::string& id,
                                              std::uint64_t cursor,
                                              std::chrono::milliseconds wait) = 0;
  // SIGKILLs the command's process tree; returns its final status. Unknown: NotFound (reason
  // commandNotFound).
  virtual Result<CommandStatus> killCommand(const SandboxRef& ref, const std::string& id) = 0;
};

}  // namespace agentpane
