// Durable commands: commands that outlive the connection (and the server) that started them.
// Each has an id; its output is kept in a bounded ring addressed by a cursor (the byte offset
// in its combined stdout+stderr), and its exit code once it ended. A provider that can run
// them (the in-sandbox agent channel, src/channel) implements CommandRunner besides
// SandboxProvider; the service finds it by dynamic_cast.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
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

// What a live follower of one command receives (CommandRunner::followCommand), in this order:
// `begin` once (where the replay starts: above the asked cursor when the ring dropped those
// bytes), `chunk` for each piece of output (replayed, then live; an offset above the end of
// the previous chunk means the ring dropped bytes between), then `end` exactly once with the
// final status, or with an error (the command unknown, the channel lost). They run on the
// runner's own thread and must not block (post to an executor).
struct CommandEvents {
  std::function<void(std::uint64_t cursor, const CommandStatus& status)> begin;
  std::function<void(CommandChunk chunk)> chunk;
  std::function<void(Result<CommandStatus> final)> end;
};

// A follower's handle. After stop() returns, no event is delivered; destroying it stops.
class CommandFollow {
 public:
  virtual ~CommandFollow() = default;
  virtual void stop() = 0;
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
  // Follows a command live from `cursor` without holding a thread: events arrive as the
  // output does. Fails at once only when the runner cannot be reached; an unknown command is
  // an `end` with NotFound (reason commandNotFound).
  virtual Result<std::unique_ptr<CommandFollow>> followCommand(const SandboxRef& ref,
                                                               const std::string& id,
                                                               std::uint64_t cursor,
                                                               CommandEvents events) = 0;
};

}  // namespace agentpane
