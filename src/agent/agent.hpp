// The in-sandbox agent: one single-threaded poll loop that runs commands (fork/exec, each in
// its own session and process group), streams their output to its clients as protocol
// frames (agent/protocol.hpp), keeps each command's output in a bounded ring with its exit
// code, and kills a command's whole process group on timeout.
//
// Two ways to serve:
//  - serveStdio: one client on a pair of descriptors (the exec stream itself); its commands
//    die with it.
//  - serveDaemon: clients connect to a listening Unix socket; commands outlive them, so that
//    a client that comes back (a restarted server, a new exec stream) fetches their output
//    from a cursor and their exit codes. Only peers of the agent's own uid (or root) are
//    accepted.
#pragma once

#include <cstddef>

namespace agentpane::agent {

struct AgentOptions {
  std::size_t ringBytes = 1u << 20;         // retained output per command
  std::size_t maxRunning = 4096;            // commands running at once
  std::size_t maxFinished = 256;            // finished commands kept for fetch/list
  std::size_t clientQueueLimit = 8u << 20;  // beyond it, command output is not read (backpressure)
  std::size_t stdinQueueLimit = 4u << 20;   // per command: the stdin window (Hello)
};

// Returns when the client's input ends (after killing its commands); the exit status.
int serveStdio(int inFd, int outFd, const AgentOptions& options);
// Runs until killed. `readyFd` (if >= 0) gets one byte and is closed once serving.
int serveDaemon(int listenFd, int readyFd, const AgentOptions& options);

}  // namespace agentpane::agent
