#include "k8s/exec_plugin_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;  // NOLINT: POSIX

namespace agentpane::k8s {

namespace {

using SteadyClock = std::chrono::steady_clock;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }
  int* out() { return &fd_; }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
  bool open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    *read.out() = fds[0];
    *write.out() = fds[1];
    return true;
  }
};

std::vector<char*> cStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v)
    out.push_back(const_cast<char*>(s.c_str()));  // NOLINT
  out.push_back(nullptr);
  return out;
}

// Kills the child's whole process group (a script's own children too) and reaps the child.
void killAndReap(pid_t pid, int* status) {
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::vector<std::string> hostEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    out.emplace_back(*e);
  return out;
}

Result<ProcessOutcome> runProcess(const ProcessSpec& spec) {
  Pipe outPipe;
  Pipe errPipe;
  if (!outPipe.open() || !errPipe.open()) {
    return Error(ErrorCode::Internal, std::string("pipe: ") + std::strerror(errno));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, outPipe.write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, errPipe.write.get(), 2);
  // Nothing of the server (sockets, the database) leaks into the plugin.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the server ignores SIGPIPE; the plugin should not inherit that
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // own group: a timeout kills its children as well
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> argvStrings;
  argvStrings.push_back(spec.program);
  argvStrings.insert(argvStrings.end(), spec.args.begin(), spec.args.end());
  auto argv = cStrings(argvStrings);
  auto envp = cStrings(spec.env);

  pid_t pid = -1;
  int rc =
      spec.program.find('/') != std::string::npos
          ? ::posix_spawn(&pid, spec.program.c_str(), &actions, &attr, argv.data(), envp.data())
          : ::posix_spawnp(&pid, spec.program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  outPipe.write.reset();
  errPipe.write.reset();
  if (rc != 0) {
    return Error(
        rc == ENOENT || rc == EACCES || rc == ENOEXEC ? ErrorCode::NotFound : ErrorCode::Internal,
        "cannot run " + spec.program + ": " + std::strerror(rc));
  }

  ProcessOutcome result;
  const auto deadline = SteadyClock::now() + spec.timeout;
  bool outOpen = true;
  bool errOpen = true;
  int status = 0;
  char buf[16384];
  while (outOpen || errOpen) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      result.timedOut = true;
      killAndReap(pid, &status);
      return result;
    }
    pollfd fds[2] = {{outPipe.read.get(), POLLIN, 0}, {errPipe.read.get(), POLLIN, 0}};
    if (!outOpen) fds[0].fd = -1;
    if (!errOpen) fds[1].fd = -1;
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      killAndReap(pid, &status);
      return Error(ErrorCode::Internal, std::string("poll: ") + std::strerror(errno));
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        (i == 0 ? outOpen : errOpen) = false;
        continue;
      }
      if (i == 0) {
        if (result.out.size() + static_cast<std::size_t>(got) > spec.maxStdout) {
          result.outputTooLarge = true;
          killAndReap(pid, &status);
          return result;
        }
        result.out.append(buf, static_cast<std::size_t>(got));
      } else if (result.err.size() < spec.maxStderr) {
        result.err.append(
            buf, std::min(static_cast<std::size_t>(got), spec.maxStderr - result.err.size()));
      }
    }
  }

  // Both streams are closed; the child normally exits right after. It may not (it closed its
  // output and went on): the same deadline holds.
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      return Error(ErrorCode::Internal, std::string("waitpid: ") + std::strerror(errno));
    }
    if (SteadyClock::now() >= deadline) {
      result.timedOut = true;
      killAndReap(pid, &status);
      return result;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) {
    result.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace agentpane::k8s
