// Runs one credential plugin process: argv and environment exactly as given (posix_spawn, never
// a shell), stdin from /dev/null, stdout and stderr captured up to a bound, a deadline after
// which the whole process group is killed. Blocking: call it from a worker thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::k8s {

struct ProcessSpec {
  std::string program;            // contains '/': run that file; otherwise looked up in PATH
  std::vector<std::string> args;  // argv[1..]; argv[0] is the program as written
  std::vector<std::string> env;   // "K=V" entries: the child's complete environment
  std::chrono::milliseconds timeout{30000};
  std::size_t maxStdout = 1024 * 1024;  // more than this: the child is killed, outputTooLarge
  std::size_t maxStderr = 64 * 1024;    // beyond this only the first bytes are kept
};

struct ProcessOutcome {
  int exitCode = -1;  // valid when signal == 0 and !timedOut
  int signal = 0;     // the signal that ended the child, 0 when it exited
  bool timedOut = false;
  bool outputTooLarge = false;
  std::string out;
  std::string err;
};

// Err (Internal) only when the process cannot be started at all (program not found or not
// executable: NotFound). A child that fails, times out or floods is an outcome, not an error.
Result<ProcessOutcome> runProcess(const ProcessSpec& spec);

// The current process's environment as "K=V" entries.
std::vector<std::string> hostEnvironment();

}  // namespace agentpane::k8s
