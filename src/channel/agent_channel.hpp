// The server's side of the fast exec channel: one long-lived provider exec stream running
// agentpane-agent in a sandbox (src/agent), and commands multiplexed over it as protocol
// frames (agent/protocol.hpp). Each command is an ExecSession, so that everything above the
// provider contract (the API's exec, the WebSocket exec, tmux) uses it unchanged.
//
// The channel drives the stream through its asynchronous form only: no thread of its own;
// frames are read and dispatched on the provider's I/O loop, writes are queued with one in
// flight. A stream that ends fails every command still running on it with a clear error
// (SandboxExecFailed, reason "channelLost"); the ChannelProvider then starts a new one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/protocol.hpp"
#include "agentpane/commands.hpp"
#include "agentpane/exec.hpp"

namespace agentpane::channel {

struct CommandState;

class AgentChannel : public std::enable_shared_from_this<AgentChannel> {
 public:
  // Takes an exec stream that runs the agent (relay mode) and waits, at most `timeout`, for
  // its Hello. An agent that is not there ends the stream first: SandboxExecFailed with
  // detail reason=agentMissing and the stream's exit code.
  static Result<std::shared_ptr<AgentChannel>> open(std::unique_ptr<ExecSession> stream,
                                                    std::chrono::milliseconds timeout);
  ~AgentChannel();

  AgentChannel(const AgentChannel&) = delete;
  AgentChannel& operator=(const AgentChannel&) = delete;

  // Hello received and the stream has not ended.
  [[nodiscard]] bool up() const { return up_.load(); }
  [[nodiscard]] const agent::Hello& hello() const { return hello_; }
  // Output of this channel's attached commands that arrived and was not read yet (bounded
  // per command by the HoldOutput back-pressure).
  [[nodiscard]] std::size_t queuedOutputBytes() const;

  // Starts argv in the agent. ExecOptions::root is not this channel's business (the agent
  // runs as the sandbox user): the caller routes root execs elsewhere.
  Result<std::unique_ptr<ExecSession>> startCommand(const std::vector<std::string>& argv,
                                                    const ExecOptions& options);

  // Durable commands (agentpane/commands.hpp), answered by the agent over this stream.
  // Blocking, each bounded; a command the agent does not know is NotFound (reason commandNotFound).
  Result<CommandStatus> startDetached(const std::vector<std::string>& argv,
                                      const ExecOptions& options);
  Result<std::vector<CommandStatus>> list();
  Result<CommandOutput> fetch(const std::string& id, std::uint64_t cursor,
                              std::chrono::milliseconds wait);
  Result<CommandStatus> kill(const std::string& id);
  // Follows a command live (CommandRunner::followCommand): events run on this channel's
  // reader thread. The handle's stop() must not be called from inside an event.
  std::unique_ptr<CommandFollow> follow(const std::string& id, std::uint64_t cursor,
                                        CommandEvents events);

  // Ends the stream (the agent daemon and its commands stay; commands of this stream fail
  // with channelLost). Returns once the stream's handlers have all run (bounded).
  void close();

  // For sessions: queue one frame; `done` (may be empty) runs once it is written or failed.
  void write(std::string frame, ExecHandler<void> done);
  void forget(const std::string& id);

  // The error commands of a lost channel fail with.
  [[nodiscard]] Error lostError() const;

 private:
  explicit AgentChannel(std::unique_ptr<ExecSession> stream);
  void readNext();
  void onRead(Result<std::optional<ExecChunk>> r);
  struct Follower;
  class FollowHandle;
  void onFrame(agent::Message m);
  void handleFrame(agent::Message m, std::vector<std::shared_ptr<Follower>>& live);
  // Delivers what a live follower has gathered; ends it on its Exit, an error or the
  // channel's end. Called outside m_.
  void pump(const std::shared_ptr<Follower>& f);
  void eraseFollower(const std::shared_ptr<Follower>& f);  // under m_
  void dropFollower(const std::shared_ptr<Follower>& f);
  void fail(Error e);
  void writeNext();

  std::unique_ptr<ExecSession> stream_;
  agent::FrameDecoder decoder_;
  agent::Hello hello_;
  std::atomic<bool> up_{false};

  mutable std::mutex m_;
  std::condition_variable cv_;
  bool helloSeen_ = false;
  bool ended_ = false;     // the stream's read side is over (handlers may still run)
  bool readDone_ = false;  // no read pending any more
  bool writing_ = false;
  bool notAgent_ = false;  // the stream spoke before a Hello, and not the protocol
  std::optional<Error> failure_;
  int streamExit_ = -1;
  std::string agentStderr_;  // what the relay said before it ended (bounded)
  std::deque<std::pair<std::string, ExecHandler<void>>> writes_;
  std::map<std::string, std::weak_ptr<CommandState>> commands_;

  std::multimap<std::string, std::shared_ptr<Follower>> followers_;
  std::map<std::string, std::optional<Result<std::uint32_t>>> starts_;  // id -> Started/Error
  std::map<std::uint64_t, std::optional<agent::ListReply>> lists_;
  std::uint64_t nextTag_ = 1;
};

// The status of a command as the agent reports it.
CommandStatus statusOf(const agent::CommandInfo& info);

// Counters for /metrics.
struct ChannelCounters {
  std::atomic<std::uint64_t> channelExecs{0};   // commands run through the agent channel
  std::atomic<std::uint64_t> nativeExecs{0};    // commands that fell back to the provider's exec
  std::atomic<std::uint64_t> rootExecs{0};      // root commands (always the provider's exec)
  std::atomic<std::uint64_t> starts{0};         // channels started
  std::atomic<std::uint64_t> startFailures{0};  // starts that failed (fallback to native)
  std::atomic<std::uint64_t> installs{0};       // agent binaries copied into a sandbox
  std::atomic<std::uint64_t> lost{0};           // channels that ended while in use
  std::atomic<std::uint64_t> outputHolds{0};    // commands whose unread output held the agent
  std::atomic<std::uint64_t> stdinWaits{0};     // stdin writes that waited for the agent's window
};
ChannelCounters& counters();

}  // namespace agentpane::channel
