// Runs the real agentpane-agent binary as a subprocess and talks the protocol to it over
// pipes, for the agent tests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agent/protocol.hpp"

namespace agentpane::agent::test {

// A unique abstract-socket name per test, so that daemons of parallel tests never meet.
inline std::string uniqueSocketName() {
  std::random_device rd;
  return "agentpane-agent-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

class AgentProcess {
 public:
  // args: e.g. {"--stdio"}; env: extra "K=V" entries.
  explicit AgentProcess(std::vector<std::string> args, std::vector<std::string> env = {}) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe");
    }
    std::vector<std::string> argvS{AP_AGENT_BINARY};
    argvS.insert(argvS.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argvS)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> envS;
    for (char** e = environ; *e; ++e)
      envS.emplace_back(*e);
    envS.insert(envS.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : envS)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(120);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    toAgent_ = in[1];
    fromAgent_ = out[0];
    stderr_ = err[0];
    hello_ = std::get<Hello>(nextMessage());
  }

  ~AgentProcess() {
    closeInput();
    if (fromAgent_ >= 0) ::close(fromAgent_);
    if (stderr_ >= 0) ::close(stderr_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  [[nodiscard]] const Hello& hello() const { return hello_; }

  void sendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::write(toAgent_, bytes.data(), bytes.size());
      if (n <= 0) throw std::runtime_error("write to agent failed");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void send(const Message& m) { sendRaw(encode(m)); }

  void closeInput() {
    if (toAgent_ >= 0) ::close(toAgent_);
    toAgent_ = -1;
  }

  // The next frame from the agent; std::nullopt at the end of its output. The bound only
  // keeps a broken agent from hanging the suite.
  std::optional<std::variant<Message, DecodeError>> next() {
    for (;;) {
      if (auto f = decoder_.next()) return f;
      pollfd p{fromAgent_, POLLIN, 0};
      int r = ::poll(&p, 1, 60'000);
      if (r == 0) throw std::runtime_error("the agent sent nothing for 60 s");
      char buf[65536];
      ssize_t n = ::read(fromAgent_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }

  Message nextMessage() {
    auto f = next();
    if (!f) throw std::runtime_error("the agent's output ended");
    if (auto* e = std::get_if<DecodeError>(&*f))
      throw std::runtime_error("undecodable frame: " + e->message);
    return std::get<Message>(std::move(*f));
  }

  template <typename T>
  T expect() {
    Message m = nextMessage();
    // Stdin credit comes back whenever the agent writes stdin; skipped unless asked for.
    if constexpr (!std::is_same_v<T, StdinAck>) {
      while (std::holds_alternative<StdinAck>(m))
        m = nextMessage();
    }
    if (auto* e = std::get_if<ErrorReply>(&m); e && !std::is_same_v<T, ErrorReply>) {
      throw std::runtime_error("agent error " + e->code + ": " + e->message);
    }
    if (!std::holds_alternative<T>(m)) throw std::runtime_error("unexpected frame type");
    return std::get<T>(std::move(m));
  }

  // Waits for the process to end; its exit status, and what it wrote to stderr.
  int waitExit(std::string* errText = nullptr) {
    std::string all;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stderr_, buf, sizeof buf)) > 0)
      all.append(buf, static_cast<std::size_t>(n));
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (errText) *errText = all;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int toAgent_ = -1;
  int fromAgent_ = -1;
  int stderr_ = -1;
  FrameDecoder decoder_;
  Hello hello_;
};

struct Collected {
  std::string out;
  std::string err;
  std::optional<Exit> exit;
  std::vector<ErrorReply> errors;
};

// Reads frames until every id in `ids` has exited (or was refused), sorting output by id.
inline std::map<std::string, Collected> collect(AgentProcess& agent, std::vector<std::string> ids) {
  std::map<std::string, Collected> out;
  std::size_t open = ids.size();
  for (auto& id : ids)
    out[id];
  while (open > 0) {
    Message m = agent.nextMessage();
    if (auto* o = std::get_if<Output>(&m)) {
      auto& c = out[o->id];
      auto& dst = o->stream == 1 ? c.out : c.err;
      EXPECT_EQ(o->offset, c.out.size() + c.err.size()) << "cursor gap in " << o->id;
      dst += o->data;
    } else if (auto* x = std::get_if<Exit>(&m)) {
      out[x->id].exit = *x;
      --open;
    } else if (auto* e = std::get_if<ErrorReply>(&m)) {
      auto it = out.find(e->id);
      if (it == out.end()) throw std::runtime_error("agent error " + e->code + ": " + e->message);
      it->second.errors.push_back(*e);
      --open;
    }
  }
  return out;
}

inline Collected run(AgentProcess& agent, StartCommand start) {
  std::string id = start.id;
  agent.send(start);
  return collect(agent, {id})[id];
}

}  // namespace agentpane::agent::test
