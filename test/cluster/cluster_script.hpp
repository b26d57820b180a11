// scripts/test-cluster for tests that act on the cluster itself (an apiserver outage).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace agentpane::testing {

// scripts/test-cluster, found from this binary upwards (build/ sits in the checkout).
inline std::string testClusterScript() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::canonical("/proc/self/exe", ec).parent_path();
  for (; !p.empty() && p != p.root_path(); p = p.parent_path()) {
    if (fs::exists(p / "scripts" / "test-cluster"))
      return (p / "scripts" / "test-cluster").string();
  }
  return {};
}

// Runs `bash <args…>` with fixed arguments (no shell line); returns its exit status.
inline int runScript(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>("bash"));
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp("bash", argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace agentpane::testing
