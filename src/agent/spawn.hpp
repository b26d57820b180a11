// Starting one command for the agent: fork, a new session (so its own process group), the
// user, the working directory, stdio on pipes or a pseudo-terminal, execve along PATH.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "agent/protocol.hpp"

namespace agentpane::agent {

// The environment variable that tags a command's processes (SpawnedProcess::tag).
inline constexpr const char* kCommandTagVar = "AGENTPANE_COMMAND_TAG";

struct SpawnedProcess {
  pid_t pid = -1;
  int stdinFd = -1;   // -1 without attachStdin; the terminal's master with tty
  int stdoutFd = -1;  // the terminal's master with tty
  int stderrFd = -1;  // -1 with tty
  // The command's tag, "AGENTPANE_COMMAND_TAG=<unique in this agent>", in its environment and
  // so in every descendant's (/proc/<pid>/environ keeps a process's first environment):
  // how a kill finds those that left its session (setsid).
  std::string tag;
  // Processes a kill found alive (pid -> start time, to tell a reused pid apart): one that is
  // dying may have released its memory, environment included, before it is a zombie, and is
  // still counted alive until it is one.
  std::map<pid_t, unsigned long long> signalled;
};

struct SpawnError {
  std::string code;  // kErrBadRequest, kErrUserNotAllowed, kErrSpawnFailed
  std::string message;
};

// Starts the command. A command that cannot be executed (no such file, no permission, a
// missing working directory) still starts: the child writes why to its stderr and exits
// 127 (not found) or 126, as a shell would. Descriptors are non-blocking and close-on-exec.
std::variant<SpawnedProcess, SpawnError> spawnCommand(const StartCommand& start);

// Sends `sig` to the command's process group, to every process still in its session (one
// that left the group with setpgid), and to every process that carries its tag (one that
// started a session of its own, setsid, and did not clear its environment). Never to anything
// else. Returns how many of those were still alive (not zombies) when it looked, counting
// those an earlier call found until they are zombies or gone.
int signalCommand(SpawnedProcess& command, int sig);

}  // namespace agentpane::agent
