// A SandboxProvider that runs commands through the in-sandbox agent (AgentChannel) and
// delegates everything else to the provider it wraps. One channel per sandbox, started on
// the first exec: the agent baked into the image (kBakedAgentPath), or, for an image without
// it, the server's own agent binary copied in through one provider exec. A channel that
// cannot start, or has ended, means the provider's native exec for that command (counted in
// counters()); the next exec starts a new channel. Root execs always take the native exec:
// the agent runs as the sandbox user.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agentpane/commands.hpp"
#include "agentpane/provider.hpp"
#include "channel/agent_channel.hpp"

namespace agentpane::channel {

inline constexpr const char* kBakedAgentPath = "/usr/local/bin/agentpane-agent";

struct ChannelProviderOptions {
  // The agent binary on this host, copied into sandboxes that lack one; empty: never copy
  // (such sandboxes use the native exec).
  std::string agentBinary;
  std::chrono::milliseconds startTimeout{20'000};
  // After a failed start, the native exec is used for this long before trying again.
  std::chrono::milliseconds retryAfter{30'000};
};

// The agent binary next to the running executable (AGENTPANE_AGENT_BINARY wins), or empty.
std::string defaultAgentBinary();

class ChannelProvider final : public SandboxProvider, public CommandRunner {
 public:
  ChannelProvider(std::shared_ptr<SandboxProvider> inner, ChannelProviderOptions options);
  ~ChannelProvider() override;

  [[nodiscard]] SandboxProvider& inner() { return *inner_; }
  // The channel of a sandbox, started if needed (for tests and the durable commands).
  Result<std::shared_ptr<AgentChannel>> channelFor(const SandboxRef& ref);

  // agentpane::SandboxProvider
  using SandboxLifecycle::create;
  Result<SandboxInfo> create(const SandboxSpec& spec, const CreateControl& control) override {
    return inner_->create(spec, control);
  }
  Result<SandboxInfo> get(const SandboxRef& ref) override { return inner_->get(ref); }
  Result<std::vector<SandboxInfo>> list(const ListFilter& filter) override {
    return inner_->list(filter);
  }
  Result<SandboxInfo> start(const SandboxRef& ref) override;
  Result<void> stop(const SandboxRef& ref) override;
  Result<void> remove(const SandboxRef& ref) override;
  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override;
  Result<SandboxMetrics> metrics(const SandboxRef& ref) override { return inner_->metrics(ref); }
  Result<EgressStatus> applyEgress(const SandboxRef& ref,
                                   const std::vector<std::string>& allowlist) override {
    return inner_->applyEgress(ref, allowlist);
  }
  Result<void> warmSupported() override { return inner_->warmSupported(); }
  // The inner provider's warm sandbox, with its channel started now: a claim's first command
  // then finds the agent running.
  Result<SandboxInfo> createWarm(const SandboxSpec& spec, const CreateControl& control) override;
  Result<SandboxInfo> claimWarm(const SandboxRef& ref, const WarmClaim& claim) override {
    return inner_->claimWarm(ref, claim);
  }
  [[nodiscard]] ProviderType type() const override { return inner_->type(); }
  [[nodiscard]] std::string instance() const override { return inner_->instance(); }
  HealthStatus healthCheck() override { return inner_->healthCheck(); }
  Result<CleanupReport> cleanup(const CleanupFilter& filter) override {
    return inner_->cleanup(filter);
  }

  // agentpane::CommandRunner (the channel's agent keeps the commands; the server keeps
  // nothing, so they survive its restart)
  Result<CommandStatus> startCommand(const SandboxRef& ref, const std::vector<std::string>& argv,
                                     const ExecOptions& options) override;
  Result<std::vector<CommandStatus>> listCommands(const SandboxRef& ref) override;
  Result<CommandOutput> commandOutput(const SandboxRef& ref, const std::string& id,
                                      std::uint64_t cursor,
                                      std::chrono::milliseconds wait) override;
  Result<CommandStatus> killCommand(const SandboxRef& ref, const std::string& id) override;
  Result<std::unique_ptr<CommandFollow>> followCommand(const SandboxRef& ref, const std::string& id,
                                                       std::uint64_t cursor,
                                                       CommandEvents events) override;

 private:
  struct Slot {
    std::mutex startMutex;  // one start at a time per sandbox
    std::shared_ptr<AgentChannel> channel;
    std::chrono::steady_clock::time_point retryAt{};
  };
  Result<std::shared_ptr<AgentChannel>> startChannel(const SandboxRef& ref);
  // The channel for a durable-command call: SandboxProviderUnavailable (reason
  // execChannelUnavailable) when it cannot start.
  Result<std::shared_ptr<AgentChannel>> commandChannel(const SandboxRef& ref);
  Result<std::unique_ptr<ExecSession>> openAgentStream(const SandboxRef& ref,
                                                       const std::string& path);
  Result<std::string> install(const SandboxRef& ref);
  void drop(const SandboxRef& ref);

  std::shared_ptr<SandboxProvider> inner_;
  ChannelProviderOptions options_;
  std::mutex m_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
  std::once_flag binaryOnce_;
  std::string binary_;      // the agent binary's bytes
  std::string binaryName_;  // where a copy goes in a sandbox (by content hash)
};

}  // namespace agentpane::channel
