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

// A long-lived child (a Node comparison client in its "--serve" mode) driven one line at a
// time: send a request line, read one reply line. Lets a benchmark interleave an in-process
// client of another runtime with its own paths in blocks.
class LineChild {
 public:
  explicit LineChild(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    int rc = posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
      pid_ = -1;
      ::close(in[1]);
      ::close(out[0]);
      return;
    }
    to_ = in[1];
    from_ = out[0];
  }
  LineChild(const LineChild&) = delete;
  LineChild& operator=(const LineChild&) = delete;
  ~LineChild() {
    if (to_ >= 0) ::close(to_);  // EOF on its stdin: the child exits
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  [[nodiscard]] bool ok() const { return pid_ > 0; }

  // Sends `line` (a newline is added) and returns the reply line; empty when the child died.
  std::string ask(const std::string& line) {
    std::string msg = line + "\n";
    for (std::size_t off = 0; off < msg.size();) {
      ssize_t n = ::write(to_, msg.data() + off, msg.size() - off);
      if (n <= 0) return {};
      off += static_cast<std::size_t>(n);
    }
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string reply = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return reply;
      }
      char chunk[65536];
      ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n <= 0) return {};
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

}  // namespace bench_util
