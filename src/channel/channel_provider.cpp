#include "channel/channel_provider.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/hash.hpp"

namespace agentpane::channel {

namespace {

// Copies stdin to the path in $1 (atomically: a temporary name, then rename). Constant text;
// the path is ours and arrives as an argument, never as code.
constexpr const char* kInstallScript =
    "set -e; d=${1%/*}; mkdir -p \"$d\"; t=\"$1.$$\"; cat > \"$t\"; chmod 755 \"$t\"; "
    "mv -f \"$t\" \"$1\"";

std::string slotKey(const SandboxRef& ref) {
  return ref.instance + "\n" + ref.scope + "\n" + ref.objectName + "\n" + ref.sandboxId;
}

std::string detail(const Error& e, const std::string& key) {
  auto it = e.details.find(key);
  return it == e.details.end() ? std::string() : it->second;
}

}  // namespace

std::string defaultAgentBinary() {
  if (const char* env = std::getenv("AGENTPANE_AGENT_BINARY"); env && *env) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  auto candidate = self.parent_path() / "agentpane-agent";
  if (std::filesystem::is_regular_file(candidate, ec)) return candidate.string();
  return {};
}

ChannelProvider::ChannelProvider(std::shared_ptr<SandboxProvider> inner,
                                 ChannelProviderOptions options)
    : inner_(std::move(inner)), options_(std::move(options)) {}

ChannelProvider::~ChannelProvider() {
  std::map<std::string, std::shared_ptr<Slot>> slots;
  {
    std::lock_guard lk(m_);
    slots.swap(slots_);
  }
  for (auto& [key, slot] : slots) {
    std::lock_guard lk(slot->startMutex);
    if (slot->channel) slot->channel->close();
  }
}

Result<std::unique_ptr<ExecSession>> ChannelProvider::openExec(const SandboxRef& ref,
                                                               const std::vector<std::string>& argv,
                                                               const ExecOptions& options) {
  if (options.root || argv.empty()) {
    if (options.root) counters().rootExecs++;
    return inner_->openExec(ref, argv, options);
  }
  auto ch = channelFor(ref);
  if (ch.ok()) {
    auto session = (*ch)->startCommand(argv, options);
    if (session.ok()) {
      counters().channelExecs++;
      return session;
    }
  }
  counters().nativeExecs++;
  return inner_->openExec(ref, argv, options);
}

Result<std::shared_ptr<AgentChannel>> ChannelProvider::channelFor(const SandboxRef& ref) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(m_);
    auto& s = slots_[slotKey(ref)];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  std::lock_guard lk(slot->startMutex);
  if (slot->channel && slot->channel->up()) return slot->channel;
  if (slot->channel) {
    slot->channel->close();
    slot->channel.reset();
  }
  if (std::chrono::steady_clock::now() < slot->retryAt) {
    return Error(ErrorCode::SandboxExecFailed, "the sandbox agent failed to start recently",
                 {{"reason", "agentBackoff"}});
  }
  auto ch = startChannel(ref);
  if (!ch.ok()) {
    // A sandbox that is not running (or not there) is no fault of the agent: the native
    // exec reports it. Anything else holds the channel off for a while.
    const ErrorCode code = ch.error().code;
    if (code == ErrorCode::SandboxNotRunning || code == ErrorCode::SandboxNotFound) {
      return ch.takeError();
    }
    spdlog::warn("exec channel of sandbox {}: {} (the provider's exec is used)", ref.sandboxId,
                 ch.error().describe());
    counters().startFailures++;
    slot->retryAt = std::chrono::steady_clock::now() + options_.retryAfter;
    return ch.takeError();
  }
  counters().starts++;
  spdlog::info("exec channel of sandbox {} up (agent pid {})", ref.sandboxId, (*ch)->hello().pid);
  slot->channel = *ch;
  return slot->channel;
}

Result<std::unique_ptr<ExecSession>> ChannelProvider::openAgentStream(const SandboxRef& ref,
                                                                      const std::string& path) {
  ExecOptions opts;
  opts.attachStdin = true;
  opts.workingDir = "/";
  return inner_->openExec(ref, {path}, opts);
}

Result<std::shared_ptr<AgentChannel>> ChannelProvider::startChannel(const SandboxRef& ref) {
  auto stream = openAgentStream(ref, kBakedAgentPath);
  if (!stream.ok()) return stream.takeError();
  auto ch = AgentChannel::open(std::move(stream).value(), options_.startTimeout);
  if (ch.ok()) return ch;
  const std::string reason = detail(ch.error(), "reason");
  if (reason != "agentMissing" && reason != "agentVersion") return ch;
  // No agent in the image, or one that speaks another protocol (an image older than this
  // server): copy ours in.
  auto path = install(ref);
  if (!path.ok()) return path.takeError();
  stream = openAgentStream(ref, *path);
  if (!stream.ok()) return stream.takeError();
  return AgentChannel::open(std::move(stream).value(), options_.startTimeout);
}

Result<std::string> ChannelProvider::install(const SandboxRef& ref) {
  std::call_once(binaryOnce_, [this] {
    if (options_.agentBinary.empty()) return;
    std::ifstream f(options_.agentBinary, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (!f) return;
    binary_ = ss.str();
    binaryName_ = "/tmp/.agentpane/agentpane-agent-" + sha256Hex(binary_).substr(0, 16);
  });
  if (binary_.empty()) {
    return Error(ErrorCode::SandboxExecFailed,
                 "the sandbox has no agent and this server has no agent binary to copy in",
                 {{"reason", "agentMissing"}});
  }
  ExecRequest req;
  req.argv = {"sh", "-c", kInstallScript, "sh", binaryName_};
  req.options.workingDir = "/";
  req.stdinData = binary_;
  auto r = inner_->exec(ref, req);
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    return Error(ErrorCode::SandboxExecFailed,
                 "copying the agent into the sandbox failed (exit " + std::to_string(r->exitCode) +
                     "): " + r->stderrData.substr(0, 512),
                 {{"reason", "agentInstall"}});
  }
  counters().installs++;
  return binaryName_;
}

Result<std::shared_ptr<AgentChannel>> ChannelProvider::commandChannel(const SandboxRef& ref) {
  auto ch = channelFor(ref);
  if (ch.ok()) return ch;
  const ErrorCode code = ch.error().code;
  if (code == ErrorCode::SandboxNotRunning || code == ErrorCode::SandboxNotFound) return ch;
  auto details = ch.error().details;
  details["reason"] = "execChannelUnavailable";
  return Error(ErrorCode::SandboxProviderUnavailable,
               "durable commands need the sandbox's agent, which cannot run: " + ch.error().message,
               details);
}

Result<CommandStatus> ChannelProvider::startCommand(const SandboxRef& ref,
                                                    const std::vector<std::string>& argv,
                                                    const ExecOptions& options) {
  if (options.root || options.tty || options.attachStdin) {
    return Error(ErrorCode::ValidationError,
                 "durable commands run as the sandbox user, without a terminal or stdin");
  }
  auto ch = commandChannel(ref);
  if (!ch.ok()) return ch.takeError();
  return (*ch)->startDetached(argv, options);
}

Result<std::vector<CommandStatus>> ChannelProvider::listCommands(const SandboxRef& ref) {
  auto ch = commandChannel(ref);
  if (!ch.ok()) return ch.takeError();
  return (*ch)->list();
}

Result<CommandOutput> ChannelProvider::commandOutput(const SandboxRef& ref, const std::string& id,
                                                     std::uint64_t cursor,
                                                     std::chrono::milliseconds wait) {
  auto ch = commandChannel(ref);
  if (!ch.ok()) return ch.takeError();
  return (*ch)->fetch(id, cursor, wait);
}

Result<std::unique_ptr<CommandFollow>> ChannelProvider::followCommand(const SandboxRef& ref,
                                                                      const std::string& id,
                                                                      std::uint64_t cursor,
                                                                      CommandEvents events) {
  auto ch = commandChannel(ref);
  if (!ch.ok()) return ch.takeError();
  return (*ch)->follow(id, cursor, std::move(events));
}

Result<CommandStatus> ChannelProvider::killCommand(const SandboxRef& ref, const std::string& id) {
  auto ch = commandChannel(ref);
  if (!ch.ok()) return ch.takeError();
  return (*ch)->kill(id);
}

void ChannelProvider::drop(const SandboxRef& ref) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(m_);
    auto it = slots_.find(slotKey(ref));
    if (it == slots_.end()) return;
    slot = it->second;
    slots_.erase(it);
  }
  std::lock_guard lk(slot->startMutex);
  if (slot->channel) slot->channel->close();
}

Result<SandboxInfo> ChannelProvider::createWarm(const SandboxSpec& spec,
                                                const CreateControl& control) {
  auto made = inner_->createWarm(spec, control);
  if (!made.ok()) return made;
  // Not fatal: without a channel the claim's commands take the native exec.
  if (auto ch = channelFor(sandboxRef(*made)); !ch.ok()) {
    spdlog::warn("warm sandbox {}: agent channel not started: {}", spec.id, ch.error().describe());
  } else {
    control.progress("agent", "agent channel ready");
  }
  return made;
}

Result<SandboxInfo> ChannelProvider::start(const SandboxRef& ref) {
  drop(ref);  // a new start is a new chance for the agent
  return inner_->start(ref);
}

Result<void> ChannelProvider::stop(const SandboxRef& ref) {
  drop(ref);
  return inner_->stop(ref);
}

Result<void> ChannelProvider::remove(const SandboxRef& ref) {
  drop(ref);
  return inner_->remove(ref);
}

}  // namespace agentpane::channel
