#include "agent/agent.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/protocol.hpp"
#include "agent/spawn.hpp"

namespace agentpane::agent {

namespace {

int g_signalPipe = -1;

void onSignal(int) {
  int saved = errno;
  char b = 1;
  [[maybe_unused]] auto n = ::write(g_signalPipe, &b, 1);
  errno = saved;
}

std::uint64_t nowUnixMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::int64_t nowSteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Chunk {
  std::uint8_t stream;
  std::uint64_t offset;
  std::string data;
};

struct Command {
  std::string id;
  std::vector<std::string> argv;
  SpawnedProcess proc;
  bool tty = false;
  std::string stdinQueue;
  bool stdinCloseRequested = false;
  bool stdinClosed = false;   // no more Stdin frames accepted
  std::int64_t deadline = 0;  // steady ms; 0: none
  bool timedOut = false;
  int killSignal = 0;   // a Kill frame's signal, once sent
  bool waited = false;  // the leader's status is in
  int status = 0;
  bool finished = false;  // Exit sent: status in, pipes drained
  std::int32_t code = -1;
  ExitReason reason = ExitReason::Exited;
  std::uint64_t startedAtMs = 0;
  std::uint64_t endedAtMs = 0;
  std::deque<Chunk> ring;
  std::size_t ringBytes = 0;
  std::uint64_t end = 0;  // cursor past the last byte
  std::set<std::uint64_t> subscribers;
  std::uint64_t heldBy = 0;         // the client whose Hold stops reading its output; 0: none
  std::uint64_t stdinFrom = 0;      // the client that sent the last Stdin
  std::uint64_t stdinConsumed = 0;  // Stdin bytes that left stdinQueue, in total
  std::uint64_t stdinAcked = 0;     // the last StdinAck's count

  [[nodiscard]] std::uint64_t firstCursor() const {
    return ring.empty() ? end : ring.front().offset;
  }
};

struct Client {
  int in = -1;
  int out = -1;
  FrameDecoder decoder;
  std::string queue;
  std::size_t queuePos = 0;
  bool inputEnded = false;
  bool broken = false;
  [[nodiscard]] std::size_t pending() const { return queue.size() - queuePos; }
};

class Agent {
 public:
  Agent(const AgentOptions& options, bool daemon) : opt_(options), daemon_(daemon) {
    std::uint64_t id = 0;
    if (::getrandom(&id, sizeof id, 0) != sizeof id) id = nowUnixMs() ^ ::getpid();
    bootId_ = id;
  }

  std::uint64_t addClient(int in, int out) {
    auto key = nextClient_++;
    auto& c = clients_[key];
    c.in = in;
    c.out = out;
    ::fcntl(out, F_SETFL, ::fcntl(out, F_GETFL) | O_NONBLOCK);
    ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
    send(key, Hello{kProtocolVersion, static_cast<std::uint32_t>(::getpid()),
                    static_cast<std::uint32_t>(::getuid()), bootId_,
                    static_cast<std::uint32_t>(opt_.stdinQueueLimit)});
    return key;
  }

  int run(int listenFd, int readyFd) {
    listenFd_ = listenFd;
    if (readyFd >= 0) {
      char b = 'R';
      [[maybe_unused]] auto n = ::write(readyFd, &b, 1);
      ::close(readyFd);
    }
    for (;;) {
      if (!daemon_ && clients_.empty()) break;
      pollOnce();
    }
    // The stdio client is gone: its commands die with it.
    for (auto& [id, c] : commands_) {
      if (!c->finished) signalCommand(c->proc, SIGKILL);
    }
    for (auto& [id, c] : commands_) {
      if (!c->finished && !c->waited) ::waitpid(c->proc.pid, nullptr, 0);
    }
    return 0;
  }

 private:
  enum class Kind { Signal, Listen, ClientIn, ClientOut, CmdOut, CmdErr, CmdIn };
  struct Slot {
    Kind kind;
    std::uint64_t client = 0;
    Command* cmd = nullptr;
  };

  void pollOnce() {
    std::vector<pollfd> fds;
    std::vector<Slot> slots;
    auto add = [&](int fd, short events, Slot s) {
      fds.push_back(pollfd{fd, events, 0});
      slots.push_back(s);
    };
    add(sigRead_, POLLIN, {Kind::Signal});
    if (listenFd_ >= 0) add(listenFd_, POLLIN, {Kind::Listen});
    bool outputPaused = false;
    for (auto& [key, c] : clients_) {
      if (c.pending() > opt_.clientQueueLimit) outputPaused = true;
    }
    // Input is always read: stdin is bounded per command by its credit window (Hello's
    // stdinWindow), so one command's unread stdin never stops the frames of the others.
    for (auto& [key, c] : clients_) {
      if (!c.inputEnded) add(c.in, POLLIN, {Kind::ClientIn, key});
      if (c.pending() > 0) add(c.out, POLLOUT, {Kind::ClientOut, key});
    }
    std::int64_t nearest = -1;
    for (auto& [id, cp] : commands_) {
      Command& c = *cp;
      if (!outputPaused && c.heldBy == 0) {
        if (c.proc.stdoutFd >= 0) add(c.proc.stdoutFd, POLLIN, {Kind::CmdOut, 0, &c});
        if (c.proc.stderrFd >= 0) add(c.proc.stderrFd, POLLIN, {Kind::CmdErr, 0, &c});
      }
      if (c.proc.stdinFd >= 0 && !c.tty && (!c.stdinQueue.empty() || c.stdinCloseRequested)) {
        add(c.proc.stdinFd, POLLOUT, {Kind::CmdIn, 0, &c});
      }
      if (c.tty && c.proc.stdinFd >= 0 && !c.stdinQueue.empty()) {
        add(c.proc.stdinFd, POLLOUT, {Kind::CmdIn, 0, &c});
      }
      if (c.deadline > 0 && !c.timedOut && !c.finished) {
        if (nearest < 0 || c.deadline < nearest) nearest = c.deadline;
      }
    }
    int timeout = -1;
    if (nearest >= 0)
      timeout = static_cast<int>(std::max<std::int64_t>(0, nearest - nowSteadyMs()));
    if (lingering_) timeout = timeout < 0 ? 5 : std::min(timeout, 5);
    lingering_ = false;
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) return;
    if (n > 0) {
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        handle(slots[i], fds[i].revents);
      }
    }
    checkDeadlines();
    finishCommands();
    dropClients();
    evictFinished();
  }

  void handle(const Slot& s, short revents) {
    switch (s.kind) {
      case Kind::Signal: {
        char buf[64];
        while (::read(sigRead_, buf, sizeof buf) > 0) {
        }
        reap();
        break;
      }
      case Kind::Listen:
        acceptClients();
        break;
      case Kind::ClientIn:
        readClient(s.client);
        break;
      case Kind::ClientOut:
        flush(s.client);
        break;
      case Kind::CmdOut:
        readOutput(*s.cmd, s.cmd->proc.stdoutFd, 1);
        break;
      case Kind::CmdErr:
        readOutput(*s.cmd, s.cmd->proc.stderrFd, 2);
        break;
      case Kind::CmdIn:
        writeStdin(*s.cmd);
        break;
    }
  }

  // --- clients -----------------------------------------------------------------------------
  void acceptClients() {
    for (;;) {
      int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          (cred.uid != ::getuid() && cred.uid != 0)) {
        ::close(fd);
        continue;
      }
      addClient(fd, fd);
    }
  }

  void readClient(std::uint64_t key) {
    auto it = clients_.find(key);
    if (it == clients_.end()) return;
    char buf[64 << 10];
    ssize_t n = ::read(it->second.in, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      it->second.inputEnded = true;
      return;
    }
    if (n < 0) return;
    it->second.decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    for (;;) {
      auto cit = clients_.find(key);
      if (cit == clients_.end()) return;
      auto frame = cit->second.decoder.next();
      if (!frame) break;
      if (auto* err = std::get_if<DecodeError>(&*frame)) {
        send(key, ErrorReply{err->id, err->code, err->message});
        continue;
      }
      dispatch(key, std::get<Message>(std::move(*frame)));
    }
  }

  void send(std::uint64_t key, const Message& m) {
    auto it = clients_.find(key);
    if (it == clients_.end() || it->second.broken) return;
    encodeTo(it->second.queue, m);
  }

  void flush(std::uint64_t key) {
    auto it = clients_.find(key);
    if (it == clients_.end()) return;
    Client& c = it->second;
    while (c.pending() > 0) {
      ssize_t n = ::write(c.out, c.queue.data() + c.queuePos, c.pending());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        c.broken = true;
        c.inputEnded = true;
        break;
      }
      c.queuePos += static_cast<std::size_t>(n);
    }
    if (c.queuePos == c.queue.size()) {
      c.queue.clear();
      c.queuePos = 0;
    } else if (c.queuePos > (1u << 20)) {
      c.queue.erase(0, c.queuePos);
      c.queuePos = 0;
    }
  }

  void dropClients() {
    for (auto it = clients_.begin(); it != clients_.end();) {
      Client& c = it->second;
      // A client whose input ended goes once what it is owed is written (or cannot be).
      if (c.inputEnded && (c.pending() == 0 || c.broken)) {
        if (c.pending() > 0 && !c.broken) {
          ++it;
          continue;
        }
        for (auto& [id, cmd] : commands_) {
          cmd->subscribers.erase(it->first);
          if (cmd->heldBy == it->first) cmd->heldBy = 0;  // no one left to release it
        }
        if (c.in >= 0) ::close(c.in);
        if (c.out >= 0 && c.out != c.in) ::close(c.out);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // --- frames ------------------------------------------------------------------------------
  void dispatch(std::uint64_t key, Message m) {
    std::visit(
        [&](auto& f) {
          using T = std::decay_t<decltype(f)>;
          if constexpr (std::is_same_v<T, StartCommand>) {
            start(key, std::move(f));
          } else if constexpr (std::is_same_v<T, StdinData>) {
            Command* c = running(key, f.id);
            if (!c) return;
            if (c->proc.stdinFd < 0 || c->stdinClosed) {
              send(key, ErrorReply{f.id, kErrBadRequest, "stdin of '" + f.id + "' is not open"});
              return;
            }
            if (c->stdinQueue.size() + f.data.size() > opt_.stdinQueueLimit) {
              // Past the window the client was granted: refused, never buffered without end.
              send(key, ErrorReply{f.id, kErrStdinOverflow,
                                   "stdin of '" + f.id + "' sent past its window of " +
                                       std::to_string(opt_.stdinQueueLimit) + " bytes"});
              return;
            }
            c->stdinQueue += f.data;
            c->stdinFrom = key;
          } else if constexpr (std::is_same_v<T, CloseStdin>) {
            Command* c = running(key, f.id);
            if (!c) return;
            c->stdinClosed = true;
            c->stdinCloseRequested = true;
            if (c->tty && c->proc.stdinFd >= 0 && c->stdinQueue.empty()) {
              char eot = 4;  // a terminal's EOF is ^D
              [[maybe_unused]] auto n = ::write(c->proc.stdinFd, &eot, 1);
            }
          } else if constexpr (std::is_same_v<T, KillCommand>) {
            Command* c = running(key, f.id);
            if (!c) return;
            if (f.signal == 0 || f.signal >= 65) {
              send(key, ErrorReply{f.id, kErrBadRequest, "bad signal " + std::to_string(f.signal)});
              return;
            }
            c->killSignal = static_cast<int>(f.signal);
            c->heldBy = 0;  // its pipes must drain for its Exit
            signalCommand(c->proc, static_cast<int>(f.signal));
          } else if constexpr (std::is_same_v<T, FetchOutput>) {
            fetch(key, f);
          } else if constexpr (std::is_same_v<T, ListCommands>) {
            ListReply reply{f.tag, {}};
            for (const auto& id : order_)
              reply.commands.push_back(info(*commands_.at(id)));
            send(key, reply);
          } else if constexpr (std::is_same_v<T, ResizeTty>) {
            Command* c = running(key, f.id);
            if (!c) return;
            if (!c->tty) {
              send(key, ErrorReply{f.id, kErrBadRequest, "'" + f.id + "' has no terminal"});
              return;
            }
            struct winsize ws {};
            ws.ws_row = f.rows;
            ws.ws_col = f.cols;
            ::ioctl(c->proc.stdoutFd, TIOCSWINSZ, &ws);
          } else if constexpr (std::is_same_v<T, Ping>) {
            send(key, Pong{f.tag});
          } else if constexpr (std::is_same_v<T, HoldOutput>) {
            Command* c = find(key, f.id);
            if (!c) return;
            // A killed command is never held: its pipes must drain for its Exit.
            c->heldBy = f.hold && c->killSignal == 0 && !c->timedOut ? key : 0;
          } else {
            send(key, ErrorReply{{}, kErrUnexpected, "the agent does not accept this frame type"});
          }
        },
        m);
  }

  Command* find(std::uint64_t key, const std::string& id) {
    if (!validId(id)) {
      send(key, ErrorReply{{}, kErrBadId, "invalid command id"});
      return nullptr;
    }
    auto it = commands_.find(id);
    if (it == commands_.end()) {
      send(key, ErrorReply{id, kErrUnknownId, "no command '" + id + "'"});
      return nullptr;
    }
    return it->second.get();
  }

  Command* running(std::uint64_t key, const std::string& id) {
    Command* c = find(key, id);
    if (c && c->finished) {
      send(key, ErrorReply{id, kErrNotRunning, "command '" + id + "' has ended"});
      return nullptr;
    }
    return c;
  }

  void start(std::uint64_t key, StartCommand f) {
    if (!validId(f.id)) {
      send(key, ErrorReply{{}, kErrBadId, "command ids are 1-64 of [A-Za-z0-9_.-]"});
      return;
    }
    if (commands_.count(f.id)) {
      send(key, ErrorReply{f.id, kErrDuplicateId, "command '" + f.id + "' exists"});
      return;
    }
    std::size_t live = 0;
    for (auto& [id, c] : commands_)
      live += c->finished ? 0 : 1;
    if (live >= opt_.maxRunning) {
      send(key, ErrorReply{f.id, kErrTooManyCommands,
                           std::to_string(live) + " commands are running already"});
      return;
    }
    auto spawned = spawnCommand(f);
    if (auto* e = std::get_if<SpawnError>(&spawned)) {
      send(key, ErrorReply{f.id, e->code, e->message});
      return;
    }
    auto c = std::make_unique<Command>();
    c->id = f.id;
    c->argv = std::move(f.argv);
    c->proc = std::get<SpawnedProcess>(spawned);
    c->tty = f.tty;
    if (!f.attachStdin && !f.tty) c->stdinClosed = true;
    if (f.timeoutMs > 0) c->deadline = nowSteadyMs() + f.timeoutMs;
    c->startedAtMs = nowUnixMs();
    c->subscribers.insert(key);
    send(key, Started{c->id, static_cast<std::uint32_t>(c->proc.pid)});
    byPid_[c->proc.pid] = c->id;
    order_.push_back(c->id);
    commands_[c->id] = std::move(c);
  }

  void fetch(std::uint64_t key, const FetchOutput& f) {
    Command* c = find(key, f.id);
    if (!c) return;
    std::uint64_t cursor = std::max(f.cursor, c->firstCursor());
    for (const auto& chunk : c->ring) {
      std::uint64_t chunkEnd = chunk.offset + chunk.data.size();
      if (chunkEnd <= cursor) continue;
      std::size_t skip =
          cursor > chunk.offset ? static_cast<std::size_t>(cursor - chunk.offset) : 0;
      send(key, Output{c->id, chunk.stream, chunk.offset + skip, chunk.data.substr(skip)});
    }
    send(key, FetchEnd{info(*c), c->end});
    if (f.follow) {
      if (c->finished) {
        send(key, Exit{c->id, c->code, c->reason, c->end});
      } else {
        c->subscribers.insert(key);
      }
    }
  }

  CommandInfo info(const Command& c) const {
    CommandInfo i;
    i.id = c.id;
    i.argv = c.argv;
    i.pid = static_cast<std::uint32_t>(c.proc.pid);
    i.running = !c.finished;
    i.exitCode = c.finished ? c.code : -1;
    i.reason = c.reason;
    i.firstCursor = c.firstCursor();
    i.endCursor = c.end;
    i.startedAtMs = c.startedAtMs;
    i.endedAtMs = c.endedAtMs;
    return i;
  }

  // --- commands ----------------------------------------------------------------------------
  void readOutput(Command& c, int& fd, std::uint8_t stream) {
    char buf[kMaxOutputChunk];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // EOF, or EIO from a terminal whose last holder closed it
      if (c.tty && c.proc.stdinFd >= 0) {
        ::close(c.proc.stdinFd);
        c.proc.stdinFd = -1;
      }
      ::close(fd);
      fd = -1;
      return;
    }
    Chunk chunk{stream, c.end, std::string(buf, static_cast<std::size_t>(n))};
    c.end += static_cast<std::uint64_t>(n);
    for (auto key : c.subscribers)
      send(key, Output{c.id, stream, chunk.offset, chunk.data});
    c.ringBytes += chunk.data.size();
    c.ring.push_back(std::move(chunk));
    while (c.ringBytes > opt_.ringBytes && c.ring.size() > 1) {
      c.ringBytes -= c.ring.front().data.size();
      c.ring.pop_front();
    }
  }

  // Counts `n` bytes out of the stdin queue and returns credit to the client: at once when the
  // queue is empty (a small write is acknowledged right away), else every quarter window.
  void consumeStdin(Command& c, std::size_t n) {
    c.stdinConsumed += n;
    if (c.stdinConsumed == c.stdinAcked) return;
    if (c.stdinQueue.empty() || c.stdinConsumed - c.stdinAcked >= opt_.stdinQueueLimit / 4) {
      c.stdinAcked = c.stdinConsumed;
      send(c.stdinFrom, StdinAck{c.id, c.stdinConsumed});
    }
  }

  void dropStdin(Command& c) {
    const auto n = c.stdinQueue.size();
    c.stdinQueue.clear();
    consumeStdin(c, n);
  }

  void writeStdin(Command& c) {
    int& fd = c.proc.stdinFd;
    bool broken = false;
    while (!c.stdinQueue.empty()) {
      ssize_t n = ::write(fd, c.stdinQueue.data(), c.stdinQueue.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        dropStdin(c);  // the process closed its stdin (EPIPE): nothing more to give
        broken = true;
        break;
      }
      c.stdinQueue.erase(0, static_cast<std::size_t>(n));
      consumeStdin(c, static_cast<std::size_t>(n));
    }
    if (c.tty) {
      if (c.stdinCloseRequested) {
        char eot = 4;
        [[maybe_unused]] auto n = ::write(fd, &eot, 1);
        c.stdinCloseRequested = false;
      }
      return;
    }
    if (c.stdinCloseRequested || broken) {
      ::close(fd);
      fd = -1;
    }
  }

  void reap() {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = byPid_.find(pid);
      if (it == byPid_.end()) continue;  // an orphan handed to us as subreaper
      auto cit = commands_.find(it->second);
      byPid_.erase(it);
      if (cit == commands_.end()) continue;
      cit->second->waited = true;
      cit->second->status = status;
    }
  }

  void checkDeadlines() {
    auto now = nowSteadyMs();
    for (auto& [id, c] : commands_) {
      if (c->deadline > 0 && !c->timedOut && !c->finished && now >= c->deadline) {
        c->timedOut = true;
        c->heldBy = 0;  // its pipes must drain for its Exit
        signalCommand(c->proc, SIGKILL);
      }
    }
  }

  void finishCommands() {
    for (auto& [id, cp] : commands_) {
      Command& c = *cp;
      if (c.finished || !c.waited || c.proc.stdoutFd >= 0 || c.proc.stderrFd >= 0) continue;
      // A timed-out (or SIGKILLed) command ends when nothing of its session is left alive:
      // its Exit is the promise that the whole tree is dead. Looked at again on the next turn of
      // the loop.
      if ((c.timedOut || c.killSignal == SIGKILL) && signalCommand(c.proc, SIGKILL) > 0) {
        lingering_ = true;
        continue;
      }
      if (c.proc.stdinFd >= 0) {
        ::close(c.proc.stdinFd);
        c.proc.stdinFd = -1;
      }
      dropStdin(c);
      c.finished = true;
      c.endedAtMs = nowUnixMs();
      if (WIFEXITED(c.status)) {
        c.code = WEXITSTATUS(c.status);
        c.reason = ExitReason::Exited;
      } else if (WIFSIGNALED(c.status)) {
        c.code = 128 + WTERMSIG(c.status);
        c.reason = ExitReason::Signaled;
        if (c.killSignal == WTERMSIG(c.status)) c.reason = ExitReason::Killed;
      }
      if (c.timedOut) c.reason = ExitReason::TimedOut;
      for (auto key : c.subscribers)
        send(key, Exit{c.id, c.code, c.reason, c.end});
      c.subscribers.clear();
    }
  }

  void evictFinished() {
    std::size_t finished = 0;
    for (auto& [id, c] : commands_)
      finished += c->finished ? 1 : 0;
    for (auto it = order_.begin(); finished > opt_.maxFinished && it != order_.end();) {
      auto cit = commands_.find(*it);
      if (cit->second->finished) {
        commands_.erase(cit);
        it = order_.erase(it);
        --finished;
      } else {
        ++it;
      }
    }
  }

 public:
  void setSignalPipe(int readFd) { sigRead_ = readFd; }

 private:
  AgentOptions opt_;
  bool daemon_;
  std::uint64_t bootId_ = 0;
  int sigRead_ = -1;
  int listenFd_ = -1;
  bool lingering_ = false;  // a timed-out command waits for its last processes to die
  std::uint64_t nextClient_ = 1;
  std::map<std::uint64_t, Client> clients_;
  std::map<std::string, std::unique_ptr<Command>> commands_;
  std::deque<std::string> order_;
  std::map<pid_t, std::string> byPid_;
};

void installSignals(Agent& agent) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
  g_signalPipe = p[1];
  agent.setSignalPipe(p[0]);
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGCHLD, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // Descendants whose parent died come to us, so that none is left a zombie and a timeout
  // still finds them in /proc.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

}  // namespace

int serveStdio(int inFd, int outFd, const AgentOptions& options) {
  Agent agent(options, false);
  installSignals(agent);
  agent.addClient(inFd, outFd);
  return agent.run(-1, -1);
}

int serveDaemon(int listenFd, int readyFd, const AgentOptions& options) {
  Agent agent(options, true);
  installSignals(agent);
  ::fcntl(listenFd, F_SETFL, ::fcntl(listenFd, F_GETFL) | O_NONBLOCK);
  return agent.run(listenFd, readyFd);
}

}  // namespace agentpane::agent
