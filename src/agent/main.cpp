// agentpane-agent: the in-sandbox command runner (agent/agent.hpp).
//
//   agentpane-agent [--socket NAME]   connect to this sandbox's agent daemon, starting it if
//                                     none runs, and relay the protocol between stdin/stdout
//                                     and it (the server's long-lived exec stream runs this)
//   agentpane-agent --stdio           serve the protocol on stdin/stdout directly; commands
//                                     die when stdin ends
//   agentpane-agent --version
// Options: --ring-bytes N (output kept per command).
//
// The daemon listens on an abstract Unix socket (no file in the sandbox), named
// "agentpane-agent-v<protocol>-<uid>" unless --socket or AGENTPANE_AGENT_SOCKET says otherwise.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/agent.hpp"
#include "agent/protocol.hpp"
#include "common/exec_marker.hpp"

namespace {

using agentpane::agent::AgentOptions;

sockaddr_un abstractAddress(const std::string& name, socklen_t& len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  addr.sun_path[0] = '\0';
  std::size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return addr;
}

int connectTo(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  socklen_t len = 0;
  auto addr = abstractAddress(name, len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Forks the daemon (detached: its own session, reparented away from us) and waits until it
// listens, or found another one listening first.
void startDaemon(const std::string& name, const AgentOptions& options) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return;
  pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    ::close(ready[0]);
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    auto addr = abstractAddress(name, len);
    if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(lfd, 128) != 0) {
      ::_exit(0);  // another daemon won the race; the caller connects to it
    }
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      if (devnull > 2) ::close(devnull);
    }
    // Start afresh without the exec marker of the stream that started us
    // (common/exec_marker.hpp): the provider kills that stream's processes by it, and the
    // daemon and its commands must outlive the stream. /proc/<pid>/environ shows a process's
    // first environment whatever unsetenv does, hence the exec.
    std::vector<std::string> envs;
    for (char** e = environ; e && *e; ++e) {
      std::string kv = *e;
      if (kv.rfind(std::string(agentpane::kExecMarkerVar) + "=", 0) != 0) envs.push_back(kv);
    }
    std::vector<char*> envp;
    for (auto& e : envs)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args{"agentpane-agent",   "--serve-daemon",
                                  std::to_string(lfd), std::to_string(ready[1]),
                                  "--ring-bytes",      std::to_string(options.ringBytes)};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::fcntl(lfd, F_SETFD, 0);
    ::fcntl(ready[1], F_SETFD, 0);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::fcntl(lfd, F_SETFD, FD_CLOEXEC);
    ::fcntl(ready[1], F_SETFD, FD_CLOEXEC);
    ::_exit(agentpane::agent::serveDaemon(lfd, ready[1], options));
  }
  ::close(ready[1]);
  ::waitpid(pid, nullptr, 0);
  char b;
  while (::read(ready[0], &b, 1) < 0 && errno == EINTR) {
  }
  ::close(ready[0]);
}

bool writeAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Copies stdin to the daemon and the daemon to stdout until either side ends.
int relay(int sock) {
  char buf[64 << 10];
  pollfd fds[2] = {{0, POLLIN, 0}, {sock, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents != 0) {
      ssize_t n = ::read(sock, buf, sizeof buf);
      if (n <= 0) {
        std::fprintf(stderr, "agentpane-agent: the agent daemon closed the connection\n");
        return 3;
      }
      if (!writeAll(1, buf, static_cast<std::size_t>(n))) return 0;
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) return 0;  // our client is gone; the daemon and its commands stay
      if (!writeAll(sock, buf, static_cast<std::size_t>(n))) {
        std::fprintf(stderr, "agentpane-agent: the agent daemon closed the connection\n");
        return 3;
      }
    }
  }
}

void raiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  AgentOptions options;
  bool stdio = false;
  int serveFds[2] = {-1, -1};
  std::string name;
  if (const char* env = std::getenv("AGENTPANE_AGENT_SOCKET")) name = env;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--stdio") {
      stdio = true;
    } else if (a == "--version") {
      std::printf("agentpane-agent protocol %u\n", agentpane::agent::kProtocolVersion);
      return 0;
    } else if (a == "--serve-daemon" && i + 2 < argc) {  // internal: see startDaemon
      serveFds[0] = std::atoi(argv[++i]);
      serveFds[1] = std::atoi(argv[++i]);
    } else if (a == "--socket" && i + 1 < argc) {
      name = argv[++i];
    } else if (a == "--ring-bytes" && i + 1 < argc) {
      options.ringBytes = std::strtoull(argv[++i], nullptr, 10);
      if (options.ringBytes == 0) options.ringBytes = 1;
    } else {
      std::fprintf(stderr, "usage: agentpane-agent [--stdio] [--socket NAME] [--ring-bytes N]\n");
      return 2;
    }
  }
  raiseFileLimit();
  if (serveFds[0] >= 0) {
    ::fcntl(serveFds[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(serveFds[1], F_SETFD, FD_CLOEXEC);
    return agentpane::agent::serveDaemon(serveFds[0], serveFds[1], options);
  }
  if (stdio) return agentpane::agent::serveStdio(0, 1, options);
  if (name.empty()) {
    name = "agentpane-agent-v" + std::to_string(agentpane::agent::kProtocolVersion) + "-" +
           std::to_string(::getuid());
  }
  int sock = connectTo(name);
  if (sock < 0) {
    startDaemon(name, options);
    sock = connectTo(name);
  }
  if (sock < 0) {
    std::fprintf(stderr, "agentpane-agent: cannot reach or start the agent daemon: %s\n",
                 std::strerror(errno));
    return 3;
  }
  return relay(sock);
}
