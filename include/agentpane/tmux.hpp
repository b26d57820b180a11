// tmux sessions inside a sandbox, implemented once over SandboxExecutor so that every
// provider behaves identically. Names are validated here and never reach a shell: every
// tmux call is an argv vector.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentpane/provider.hpp"

namespace agentpane {

struct TmuxSessionInfo {
  std::string name;
  int windows = 0;
  std::int64_t createdUnix = 0;
  bool attached = false;
  std::int64_t activityUnix = 0;  // last input or output in the session (0: not reported)
};

// [A-Za-z0-9_-]{1,64}
bool isValidTmuxName(std::string_view name);
// The same as a Result: TmuxNameInvalid with details{"field":"name"} when refused.
Result<void> validateTmuxName(std::string_view name);

class TmuxController {
 public:
  explicit TmuxController(SandboxExecutor& exec) : exec_(exec) {}

  // Detached session in /workspace running `command` (argv; empty = login shell).
  // Invalid name: TmuxNameInvalid. Duplicate: TmuxSessionExists.
  Result<TmuxSessionInfo> create(const SandboxRef& sandbox, const std::string& name,
                                 const std::vector<std::string>& command = {});
  // All sessions (none running is an empty list, not an error).
  Result<std::vector<TmuxSessionInfo>> list(const SandboxRef& sandbox);
  // Unknown session: TmuxSessionNotFound.
  Result<void> kill(const SandboxRef& sandbox, const std::string& name);
  // Literal text (tmux send-keys -l), then Enter unless enter=false.
  Result<void> sendKeys(const SandboxRef& sandbox, const std::string& name, const std::string& text,
                        bool enter = true);
  // Last `lines` lines of the pane (default 100, 1..10000).
  Result<std::string> capture(const SandboxRef& sandbox, const std::string& name, int lines = 100);

 private:
  SandboxExecutor& exec_;
};

namespace tmux_detail {
// Parses `tmux list-sessions -F` output produced by the format the controller uses.
std::vector<TmuxSessionInfo> parseListSessions(std::string_view out);
// The last `lines` lines of a captured pane, without the pane's empty bottom.
std::string lastLines(std::string_view text, int lines);
}  // namespace tmux_detail

}  // namespace agentpane
