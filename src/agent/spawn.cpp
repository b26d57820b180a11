#include "agent/spawn.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <variant>

extern char** environ;

namespace agentpane::agent {

namespace {

struct UserEntry {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
  std::vector<gid_t> groups;
};

std::vector<std::string> splitColon(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto p = line.find(':', start);
    out.push_back(line.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

std::optional<unsigned long> number(std::string_view s) {
  unsigned long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v > 0x7fffffffUL) {
    return std::nullopt;
  }
  return v;
}

// The agent is linked statically: no NSS, so /etc/passwd and /etc/group are read directly.
std::optional<UserEntry> lookupUser(const std::string& spec) {
  std::string who = spec;
  std::optional<unsigned long> gidOverride;
  if (auto colon = spec.find(':'); colon != std::string::npos) {
    who = spec.substr(0, colon);
    gidOverride = number(spec.substr(colon + 1));
    if (!gidOverride) return std::nullopt;
  }
  auto uidNum = number(who);
  std::optional<UserEntry> found;
  std::ifstream passwd("/etc/passwd");
  for (std::string line; std::getline(passwd, line);) {
    auto f = splitColon(line);
    if (f.size() < 7) continue;
    auto uid = number(f[2]);
    auto gid = number(f[3]);
    if (!uid || !gid) continue;
    if ((uidNum && *uid == *uidNum) || (!uidNum && f[0] == who)) {
      found = UserEntry{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid), f[0], f[5], {}};
      break;
    }
  }
  if (!found) {
    if (!uidNum) return std::nullopt;  // a name that does not exist
    found = UserEntry{static_cast<uid_t>(*uidNum), static_cast<gid_t>(*uidNum), "", "/", {}};
  }
  if (gidOverride) found->gid = static_cast<gid_t>(*gidOverride);
  if (!found->name.empty()) {
    std::ifstream group("/etc/group");
    for (std::string line; std::getline(group, line);) {
      auto f = splitColon(line);
      if (f.size() < 4) continue;
      auto gid = number(f[2]);
      if (!gid) continue;
      std::size_t start = 0;
      const std::string& members = f[3];
      while (start <= members.size()) {
        auto comma = members.find(',', start);
        auto m =
            members.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (m == found->name) found->groups.push_back(static_cast<gid_t>(*gid));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
  }
  return found;
}

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void closeIf(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Writes all of `s` to fd 2 of the child (best effort; the child exits right after).
void childSay(const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(2, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::variant<SpawnedProcess, SpawnError> spawnCommand(const StartCommand& start) {
  if (start.argv.empty() || start.argv[0].empty()) {
    return SpawnError{kErrBadRequest, "argv must not be empty"};
  }
  for (const auto& a : start.argv) {
    if (a.find('\0') != std::string::npos)
      return SpawnError{kErrBadRequest, "argv holds a NUL byte"};
  }
  // The environment: the agent's own, with the request's entries laid over it.
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::map<std::string, std::string> requested;
  for (const auto& kv : start.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || kv.find('\0') != std::string::npos) {
      return SpawnError{kErrBadRequest, "environment entries must be K=V"};
    }
    requested[kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  std::optional<UserEntry> user;
  if (!start.user.empty()) {
    user = lookupUser(start.user);
    if (!user) return SpawnError{kErrBadRequest, "unknown user '" + start.user + "'"};
    if (::geteuid() != 0 && user->uid != ::geteuid()) {
      return SpawnError{kErrUserNotAllowed, "the agent runs as uid " + std::to_string(::geteuid()) +
                                                " and cannot run commands as '" + start.user + "'"};
    }
    if (::geteuid() != 0) user.reset();  // already that user
  }
  if (user) {
    if (!user->home.empty()) env["HOME"] = user->home;
    if (!user->name.empty()) {
      env["USER"] = user->name;
      env["LOGNAME"] = user->name;
    }
  }
  for (auto& [k, v] : requested)
    env[k] = v;
  if (start.tty && !env.count("TERM")) env["TERM"] = "xterm";
  // Last, so that no request replaces it.
  // Unique beyond this agent too: a later agent may get the same pid, and what an earlier
  // one's commands left (a tmux server) keeps its tag.
  static const std::string prefix =
      std::to_string(::getpid()) + "-" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  static unsigned long long spawned = 0;
  const std::string tag = prefix + "-" + std::to_string(++spawned);
  env[kCommandTagVar] = tag;

  std::vector<std::string> envStrings;
  envStrings.reserve(env.size());
  for (const auto& [k, v] : env)
    envStrings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : envStrings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argvCopy = start.argv;
  std::vector<char*> argv;
  for (auto& s : argvCopy)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  // Where to look for argv[0]: as given when it holds a '/', else along the command's PATH.
  std::vector<std::string> candidates;
  const std::string& prog = start.argv[0];
  if (prog.find('/') != std::string::npos) {
    candidates.push_back(prog);
  } else {
    std::string path = env.count("PATH")
                           ? env["PATH"]
                           : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    std::size_t s = 0;
    for (;;) {
      auto c = path.find(':', s);
      std::string dir = path.substr(s, c == std::string::npos ? std::string::npos : c - s);
      candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + prog);
      if (c == std::string::npos) break;
      s = c + 1;
    }
  }

  SpawnedProcess p;
  p.tag = std::string(kCommandTagVar) + "=" + tag;
  int childIn = -1, childOut = -1, childErr = -1;
  std::string slaveName;
  auto fail = [&](const char* what) {
    int e = errno;
    closeIf(childIn);
    closeIf(childOut);
    closeIf(childErr);
    closeIf(p.stdinFd);
    closeIf(p.stdoutFd);
    closeIf(p.stderrFd);
    return SpawnError{kErrSpawnFailed, std::string(what) + ": " + std::strerror(e)};
  };
  if (start.tty) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return fail("posix_openpt");
    p.stdoutFd = master;
    if (::grantpt(master) != 0 || ::unlockpt(master) != 0) return fail("unlockpt");
    char name[128];
    if (::ptsname_r(master, name, sizeof name) != 0) return fail("ptsname");
    slaveName = name;
    struct winsize ws {};
    ws.ws_row = start.rows;
    ws.ws_col = start.cols;
    ::ioctl(master, TIOCSWINSZ, &ws);
    p.stdinFd = ::fcntl(master, F_DUPFD_CLOEXEC, 3);
    if (p.stdinFd < 0) return fail("dup");
  } else {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail("pipe");
    p.stdoutFd = fds[0];
    childOut = fds[1];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail("pipe");
    p.stderrFd = fds[0];
    childErr = fds[1];
    if (start.attachStdin) {
      if (::pipe2(fds, O_CLOEXEC) != 0) return fail("pipe");
      childIn = fds[0];
      p.stdinFd = fds[1];
    } else {
      childIn = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (childIn < 0) return fail("open /dev/null");
    }
  }

  // The child closes its end once it leads its own session, so that a Kill arriving right
  // after the Started reply finds the process group.
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) return fail("pipe");
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sync[0]);
    ::close(sync[1]);
    return fail("fork");
  }
  if (pid == 0) {
    // The child. The agent is single-threaded, so nothing is half-locked here.
    sigset_t all;
    ::sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig : {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT})
      ::signal(sig, SIG_DFL);
    ::setsid();
    ::close(sync[1]);
    if (start.tty) {
      int slave = ::open(slaveName.c_str(), O_RDWR);
      if (slave < 0) ::_exit(126);
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      if (slave > 2) ::close(slave);
    } else {
      ::dup2(childIn, 0);
      ::dup2(childOut, 1);
      ::dup2(childErr, 2);
    }
    if (user) {
      if (::setgroups(user->groups.size(), user->groups.data()) != 0 || ::setgid(user->gid) != 0 ||
          ::setuid(user->uid) != 0) {
        childSay("agentpane-agent: cannot switch to user '" + start.user +
                 "': " + std::strerror(errno) + "\n");
        ::_exit(126);
      }
    }
    if (!start.cwd.empty() && ::chdir(start.cwd.c_str()) != 0) {
      childSay("agentpane-agent: chdir " + start.cwd + ": " + std::strerror(errno) + "\n");
      ::_exit(126);
    }
    int err = ENOENT;
    bool denied = false;
    for (const auto& c : candidates) {
      ::execve(c.c_str(), argv.data(), envp.data());
      err = errno;
      if (err != ENOENT && err != ENOTDIR) denied = true;
    }
    childSay("agentpane-agent: " + prog + ": " + std::strerror(denied ? EACCES : err) + "\n");
    ::_exit(denied ? 126 : 127);
  }
  ::close(sync[1]);
  char b;
  while (::read(sync[0], &b, 1) < 0 && errno == EINTR) {
  }
  ::close(sync[0]);
  closeIf(childIn);
  closeIf(childOut);
  closeIf(childErr);
  p.pid = pid;
  for (int fd : {p.stdinFd, p.stdoutFd, p.stderrFd}) {
    if (fd >= 0) setNonBlocking(fd);
  }
  return p;
}

namespace {
// Whether /proc/<pid>/environ holds `entry` ("K=V") as one of its entries. Unreadable (another
// user's process): no.
bool carries(const std::string& pid, const std::string& entry) {
  std::ifstream in("/proc/" + pid + "/environ", std::ios::binary);
  for (std::string e; std::getline(in, e, '\0');)
    if (e == entry) return true;
  return false;
}
}  // namespace

int signalCommand(SpawnedProcess& command, int sig) {
  const pid_t leader = command.pid;
  if (leader <= 0) return 0;
  ::kill(-leader, sig);
  int alive = 0;
  // A process may leave the group (setpgid) but stays in the session unless it starts its
  // own; find those through /proc (field 6 of stat is the session id).
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    auto pid = number(e->d_name);
    if (!pid || static_cast<pid_t>(*pid) == ::getpid()) continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    // After ") ": state ppid pgrp session, ..., starttime (field 22)
    std::string rest = line.substr(close + 2);
    char state = 0;
    long ppid = 0, pgrp = 0, session = 0;
    unsigned long long start = 0;
    if (std::sscanf(
            rest.c_str(),
            "%c %ld %ld %ld %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
            &state, &ppid, &pgrp, &session, &start) != 5) {
      continue;
    }
    const auto p = static_cast<pid_t>(*pid);
    auto seen = command.signalled.find(p);
    const bool known = seen != command.signalled.end() && seen->second == start;
    if (session != leader && !known &&
        (command.tag.empty() || state == 'Z' || !carries(e->d_name, command.tag))) {
      continue;
    }
    if (state != 'Z' && state != 'X') {
      ++alive;
      command.signalled[p] = start;
    }
    ::kill(p, sig);
  }
  ::closedir(d);
  return alive;
}

}  // namespace agentpane::agent
