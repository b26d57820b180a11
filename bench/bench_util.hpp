// Helpers shared by the benchmarks: timing, a child process without a shell, and the
// median/p95/min summary every bench/README.md table reports.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

extern char** environ;

namespace bench_util {

inline double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Runs argv (no shell); returns its exit status and, when capture is set, its stdout.
inline int spawnWait(const std::vector<std::string>& argv, std::string* capture) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fds[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (capture != nullptr) {
    if (::pipe(fds) != 0) return -1;
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (capture != nullptr) ::close(fds[1]);
  if (rc != 0) {
    if (capture != nullptr) ::close(fds[0]);
    return -1;
  }
  if (capture != nullptr) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
      capture->append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Stats {
  std::string name;
  std::size_t runs = 0;
  double median = 0, p95 = 0, min = 0;
};

inline Stats summarize(std::string name, std::vector<double> s) {
  Stats out;
  out.name = std::move(name);
  out.runs = s.size();
  if (s.empty()) return out;
  std::sort(s.begin(), s.end());
  auto at = [&](double q) {
    return s[std::min(s.size() - 1, static_cast<std::size_t>(q * static_cast<double>(s.size())))];
  };
  out.median = s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  out.p95 = at(0.95);
  out.min = s.front();
  return out;
}

}  // namespace bench_util
