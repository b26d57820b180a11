#include "channel/agent_channel.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <functional>
#include <future>
#include <utility>

namespace agentpane::channel {

namespace ag = agentpane::agent;

ChannelCounters& counters() {
  static ChannelCounters c;
  return c;
}

namespace {

// Stdin data per frame: well under the agent's frame limit.
constexpr std::size_t kStdinChunk = 256u << 10;
// A cancel's wait for the agent to report the process tree dead.
constexpr auto kCancelBound = std::chrono::seconds(15);
// Unread output of one command at which the agent is asked to hold it, and to go on.
constexpr std::size_t kHoldOutputAbove = 8u << 20;
constexpr std::size_t kReleaseOutputBelow = 2u << 20;

std::string newCommandId() {
  unsigned char b[12];
  RAND_bytes(b, sizeof b);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "x";
  for (unsigned char c : b) {
    id += kHex[c >> 4];
    id += kHex[c & 0xF];
  }
  return id;
}

Error channelLostError() {
  return Error(ErrorCode::SandboxExecFailed, "the sandbox agent's stream ended",
               {{"reason", "channelLost"}});
}

Error canceledError() {
  return Error(ErrorCode::SandboxExecFailed, "exec canceled", {{"reason", "canceled"}});
}

Error refused(const ag::ErrorReply& e) {
  ErrorCode code = ErrorCode::SandboxExecFailed;
  if (e.code == ag::kErrBadRequest || e.code == ag::kErrUserNotAllowed) {
    code = ErrorCode::ValidationError;
  }
  return Error(code, "the sandbox agent refused the command: " + e.message,
               {{"agentError", e.code}, {"commandId", e.id}});
}

}  // namespace

// One command's state, shared by its session and the channel's dispatch.
struct CommandState {
  std::string id;
  std::chrono::milliseconds timeout{0};
  std::mutex m;
  std::condition_variable cv;
  std::deque<ExecChunk> chunks;
  // Output back-pressure: past kHoldOutputAbove unread bytes the agent is asked to stop
  // reading this command's output (HoldOutput), below kReleaseOutputBelow to go on. What is
  // in flight when the hold lands adds to the bound (at most the agent's client queue, 8 MiB,
  // and the transport's buffers); other commands of the channel are not affected.
  std::size_t queuedBytes = 0;
  bool held = false;
  std::optional<bool> holdToSend;        // set under m, sent by sendHold() after it
  std::mutex holdM;                      // keeps the Hold frames in the order they were decided
  std::function<void(bool)> sendHoldFn;  // writes a HoldOutput frame for this command
  // Stdin by credit (protocol 3): the command's Stdin and CloseStdin frames go out one at a
  // time, each after the previous one is written, and a Stdin frame waits here while its bytes
  // would put more than the agent's window (Hello::stdinWindow) sent and not acknowledged by
  // a StdinAck. So a process that reads nothing holds only its own stdin: the agent never has
  // more than the window of it, and keeps reading the frames of the other commands.
  struct PendingStdin {
    std::string frame;
    std::size_t dataBytes = 0;  // stdin bytes in it (0: CloseStdin)
    ExecHandler<void> done;
  };
  std::mutex stdinM;
  std::uint64_t stdinWindow = 0;
  std::uint64_t stdinSent = 0;   // data bytes written to the channel
  std::uint64_t stdinAcked = 0;  // the agent's last StdinAck
  bool stdinWaiting = false;     // the front frame waits for credit
  bool stdinInFlight = false;
  bool stdinDone = false;  // the command ended: what waits is dropped
  std::deque<PendingStdin> stdinPending;
  bool ended = false;  // Exit arrived, or the command failed
  int code = -1;
  bool timedOut = false;
  std::optional<Error> error;  // refused, channel lost, canceled
  bool canceled = false;
  ExecHandler<std::optional<ExecChunk>> pendingRead;
  ExecHandler<int> pendingWait;
  std::vector<ExecHandler<void>> cancelWaiters;

  Error timeoutError() const {
    return Error(
        ErrorCode::ExecTimeout,
        "command exceeded its timeout of " + std::to_string(timeout.count()) + " ms and was killed",
        {{"timeoutMs", std::to_string(timeout.count())}});
  }

  // What a read returns now, if anything (lock held).
  std::optional<Result<std::optional<ExecChunk>>> readable() {
    if (canceled) return Result<std::optional<ExecChunk>>(canceledError());
    if (!chunks.empty()) {
      ExecChunk c = std::move(chunks.front());
      chunks.pop_front();
      queuedBytes -= c.data.size();
      if (held && queuedBytes <= kReleaseOutputBelow) {
        held = false;
        holdToSend = false;
      }
      return Result<std::optional<ExecChunk>>(std::optional<ExecChunk>(std::move(c)));
    }
    if (error) return Result<std::optional<ExecChunk>>(*error);
    if (ended) {
      if (timedOut) return Result<std::optional<ExecChunk>>(timeoutError());
      return Result<std::optional<ExecChunk>>(std::optional<ExecChunk>());
    }
    return std::nullopt;
  }
  std::optional<Result<int>> waitable() {
    if (canceled) return Result<int>(canceledError());
    if (error) return Result<int>(*error);
    if (timedOut) return Result<int>(timeoutError());
    if (ended) return Result<int>(code);
    return std::nullopt;
  }

  // Adds output (lock held); true when the agent must be told to hold.
  void addChunk(ExecChunk c) {
    queuedBytes += c.data.size();
    chunks.push_back(std::move(c));
    if (!held && queuedBytes > kHoldOutputAbove) {
      held = true;
      holdToSend = true;
      counters().outputHolds++;
    }
  }
  // Sends the hold decided last, if any. Called with the lock NOT held.
  void sendHold() {
    std::lock_guard order(holdM);
    std::optional<bool> h;
    {
      std::lock_guard lk(m);
      h.swap(holdToSend);
    }
    if (h && sendHoldFn) sendHoldFn(*h);
  }

  // Calls whatever handlers can complete now. Called with the lock NOT held.
  void settle() {
    ExecHandler<std::optional<ExecChunk>> read;
    std::optional<Result<std::optional<ExecChunk>>> readResult;
    ExecHandler<int> wait;
    std::optional<Result<int>> waitResult;
    std::vector<ExecHandler<void>> cancels;
    {
      std::lock_guard lk(m);
      if (pendingRead) {
        readResult = readable();
        if (readResult) {
          read = std::move(pendingRead);
          pendingRead = nullptr;
        }
      }
      if (pendingWait) {
        waitResult = waitable();
        if (waitResult) {
          wait = std::move(pendingWait);
          pendingWait = nullptr;
        }
      }
      if (ended) cancels.swap(cancelWaiters);
    }
    cv.notify_all();
    sendHold();
    if (read) read(std::move(*readResult));
    if (wait) wait(std::move(*waitResult));
    for (auto& c : cancels)
      c(Result<void>());
  }

  void end(std::optional<Error> e, int exitCode, bool timed) {
    {
      std::lock_guard lk(m);
      if (ended) return;
      ended = true;
      if (e && !error) error = e;
      code = exitCode;
      timedOut = timed;
    }
    // Stdin still waiting goes nowhere: as with a process that has exited, it is dropped.
    std::deque<PendingStdin> dropped;
    {
      std::lock_guard lk(stdinM);
      stdinDone = true;
      dropped.swap(stdinPending);
    }
    for (auto& p : dropped) {
      if (p.done) p.done(e ? Result<void>(*e) : Result<void>());
    }
    settle();
  }
};

namespace {

// Sends the next stdin frame of `state` unless one is being written or its bytes would go
// past the agent's window.
void pumpStdin(const std::shared_ptr<AgentChannel>& channel,
               const std::shared_ptr<CommandState>& state) {
  CommandState::PendingStdin next;
  {
    std::lock_guard lk(state->stdinM);
    if (state->stdinInFlight || state->stdinPending.empty()) return;
    const auto bytes = state->stdinPending.front().dataBytes;
    const auto outstanding = state->stdinSent - std::min(state->stdinAcked, state->stdinSent);
    if (bytes > 0 && outstanding > 0 && outstanding + bytes > state->stdinWindow) {
      if (!state->stdinWaiting) counters().stdinWaits++;
      state->stdinWaiting = true;
      return;
    }
    state->stdinWaiting = false;
    next = std::move(state->stdinPending.front());
    state->stdinPending.pop_front();
    state->stdinSent += bytes;
    state->stdinInFlight = true;
  }
  channel->write(std::move(next.frame),
                 [channel, state, done = std::move(next.done)](Result<void> r) {
                   {
                     std::lock_guard lk(state->stdinM);
                     state->stdinInFlight = false;
                   }
                   if (done) done(std::move(r));
                   pumpStdin(channel, state);
                 });
}

// Queues frames of `state`'s stdin (in order); `done` runs once the last one is written.
void queueStdin(const std::shared_ptr<AgentChannel>& channel,
                const std::shared_ptr<CommandState>& state,
                std::vector<CommandState::PendingStdin> frames, ExecHandler<void> done) {
  {
    std::lock_guard lk(state->stdinM);
    if (!state->stdinDone && !frames.empty()) {
      frames.back().done = std::move(done);
      done = nullptr;
      for (auto& f : frames)
        state->stdinPending.push_back(std::move(f));
    }
  }
  if (done) {  // the command has ended
    done(Result<void>());
    return;
  }
  pumpStdin(channel, state);
}

class ChannelExecSession final : public ExecSession {
 public:
  ChannelExecSession(std::shared_ptr<AgentChannel> channel, std::shared_ptr<CommandState> state,
                     bool attachStdin, bool tty)
      : channel_(std::move(channel)),
        state_(std::move(state)),
        attachStdin_(attachStdin),
        tty_(tty) {}

  ~ChannelExecSession() override {
    bool running;
    {
      std::lock_guard lk(state_->m);
      running = !state_->ended;
    }
    // A session dropped while its command runs takes the command with it, as a native exec
    // whose stream closes would.
    if (running) channel_->write(ag::encode(ag::KillCommand{state_->id, 9}), nullptr);
    channel_->forget(state_->id);
  }

  // agentpane::ExecSession (blocking form)
  Result<void> writeStdin(std::string_view data) override {
    if (auto e = stdinRefusal()) return *e;
    std::string copy(data);
    return blockingWrite(
        [&](ExecHandler<void> h) { asyncWriteStdin(std::move(copy), std::move(h)); });
  }
  Result<void> closeStdin() override {
    return blockingWrite([&](ExecHandler<void> h) { asyncCloseStdin(std::move(h)); });
  }
  Result<std::optional<ExecChunk>> read() override {
    std::optional<Result<std::optional<ExecChunk>>> r;
    {
      std::unique_lock lk(state_->m);
      while (!(r = state_->readable()))
        state_->cv.wait(lk);
    }
    state_->sendHold();
    return std::move(*r);
  }
  Result<int> wait() override {
    std::unique_lock lk(state_->m);
    for (;;) {
      if (auto r = state_->waitable()) return std::move(*r);
      state_->cv.wait(lk);
    }
  }
  void cancel() override {
    // Shared: on the bound's expiry the handler may still run later.
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    asyncCancel([done](Result<void>) { done->set_value(); });
    f.wait_for(kCancelBound);
  }

  // agentpane::ExecSession (asynchronous form)
  void asyncWriteStdin(std::string data, ExecHandler<void> done) override {
    if (auto e = stdinRefusal()) {
      done(*e);
      return;
    }
    if (data.empty()) {
      done(Result<void>());
      return;
    }
    // A frame never holds more than the window: it could never be sent.
    const std::size_t chunk = std::min<std::size_t>(kStdinChunk, state_->stdinWindow);
    std::vector<CommandState::PendingStdin> frames;
    for (std::size_t off = 0; off < data.size(); off += chunk) {
      auto part = data.substr(off, chunk);
      const auto n = part.size();
      frames.push_back({ag::encode(ag::StdinData{state_->id, std::move(part)}), n, nullptr});
    }
    queueStdin(channel_, state_, std::move(frames), std::move(done));
  }
  void asyncCloseStdin(ExecHandler<void> done) override {
    if (!attachStdin_ || stdinClosed_.exchange(true)) {
      done(Result<void>());
      return;
    }
    std::vector<CommandState::PendingStdin> frames;
    frames.push_back({ag::encode(ag::CloseStdin{state_->id}), 0, nullptr});
    queueStdin(channel_, state_, std::move(frames), std::move(done));
  }
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    {
      std::lock_guard lk(state_->m);
      state_->pendingRead = std::move(done);
    }
    state_->settle();
  }
  void asyncWait(ExecHandler<int> done) override {
    {
      std::lock_guard lk(state_->m);
      state_->pendingWait = std::move(done);
    }
    state_->settle();
  }
  void asyncCancel(ExecHandler<void> done) override {
    std::unique_lock lk(state_->m);
    const bool first = !state_->canceled;
    state_->canceled = true;
    if (!first || state_->ended) {
      lk.unlock();
      state_->settle();  // fails a pending read
      done(Result<void>());
      return;
    }
    state_->cancelWaiters.push_back(std::move(done));
    lk.unlock();
    // SIGKILL: the agent reports the Exit once nothing of the command's session is alive.
    auto state = state_;
    channel_->write(ag::encode(ag::KillCommand{state_->id, 9}), [state](Result<void> r) {
      if (!r.ok()) state->end(r.error(), -1, false);
    });
    state_->settle();
  }
  void asyncResize(int rows, int cols, ExecHandler<void> done) override {
    if (!tty_) {
      ExecSession::asyncResize(rows, cols, std::move(done));
      return;
    }
    // The agent sets the pty's window size (TIOCSWINSZ): the kernel signals the foreground
    // process group.
    channel_->write(
        ag::encode(ag::ResizeTty{state_->id, static_cast<std::uint16_t>(std::clamp(rows, 1, 1000)),
                                 static_cast<std::uint16_t>(std::clamp(cols, 1, 1000))}),
        std::move(done));
  }

 private:
  std::optional<Error> stdinRefusal() const {
    if (!attachStdin_) return Error(ErrorCode::ValidationError, "exec was opened without stdin");
    if (stdinClosed_) return Error(ErrorCode::ValidationError, "stdin already closed");
    return std::nullopt;
  }

  template <typename Start>
  Result<void> blockingWrite(Start start) {
    auto p = std::make_shared<std::promise<Result<void>>>();
    auto f = p->get_future();
    start([p](Result<void> r) { p->set_value(std::move(r)); });
    return f.get();
  }

  std::shared_ptr<AgentChannel> channel_;
  std::shared_ptr<CommandState> state_;
  bool attachStdin_;
  bool tty_;
  std::atomic<bool> stdinClosed_{false};
};

}  // namespace

// One fetch of a command's output (agentpane/commands.hpp). Frames for the command that
// arrive before the fetch's FetchEnd are kept by offset: the replay is the run of them from
// the fetch's start to FetchEnd's nextCursor (the agent queues the replay and its FetchEnd
// together, so live frames sent earlier can only repeat bytes below it). After FetchEnd,
// live frames extend the output in order.
struct AgentChannel::Follower {
  // Set for a live follower (follow()); a fetch() has none and is waited for on cv_.
  std::optional<CommandEvents> events;
  bool begun = false;     // `begin` delivered (under m_)
  bool finished = false;  // `end` taken (under m_)
  std::mutex deliver;     // held while events run, so that stop() can wait them out
  bool stopped = false;   // under `deliver`
  std::uint64_t cursor = 0;
  std::map<std::uint64_t, std::pair<std::uint8_t, std::string>> early;
  std::optional<ag::FetchEnd> end;
  std::optional<ag::Exit> exit;
  std::optional<Error> error;
  std::uint64_t start = 0;
  std::uint64_t pos = 0;
  std::vector<CommandChunk> chunks;

  void append(std::uint8_t stream, std::uint64_t offset, const std::string& data) {
    std::uint64_t endOff = offset + data.size();
    if (endOff <= pos || offset > pos) return;  // already have it / not contiguous
    auto skip = static_cast<std::size_t>(pos - offset);
    chunks.push_back(CommandChunk{stream == 2 ? ExecStream::Stderr : ExecStream::Stdout, pos,
                                  data.substr(skip)});
    pos = endOff;
  }
  void add(const ag::Output& o) {
    if (!end) {
      early[o.offset] = {o.stream, o.data};
    } else if (o.offset > pos) {  // the ring lost bytes between: say so by the offset
      pos = o.offset;
      append(o.stream, o.offset, o.data);
    } else {
      append(o.stream, o.offset, o.data);
    }
  }
  void finish(const ag::FetchEnd& fe) {
    end = fe;
    start = std::max(cursor, fe.info.firstCursor);
    start = std::min(start, fe.nextCursor);
    pos = start;
    for (auto& [offset, chunk] : early) {
      if (pos >= fe.nextCursor) break;
      append(chunk.first, offset, chunk.second);
    }
    early.clear();
  }
};

CommandStatus statusOf(const ag::CommandInfo& info) {
  CommandStatus s;
  s.id = info.id;
  s.argv = info.argv;
  s.running = info.running;
  if (!info.running) s.exitCode = info.exitCode;
  static constexpr const char* kStates[] = {"exited", "signaled", "timedOut", "killed", "lost"};
  s.state = info.running ? "running" : kStates[static_cast<int>(info.reason)];
  s.firstCursor = info.firstCursor;
  s.endCursor = info.endCursor;
  s.startedAtMs = static_cast<std::int64_t>(info.startedAtMs);
  s.endedAtMs = static_cast<std::int64_t>(info.endedAtMs);
  return s;
}

namespace {

// The command's status as a follower saw it: FetchEnd's, brought up to date by an Exit.
template <class F>
CommandStatus followerStatus(const F& f) {
  CommandStatus s = statusOf(f.end->info);
  if (f.exit) {
    s.running = false;
    s.exitCode = f.exit->code;
    static constexpr const char* kStates[] = {"exited", "signaled", "timedOut", "killed", "lost"};
    s.state = kStates[static_cast<int>(f.exit->reason)];
    s.endCursor = f.exit->endCursor;
  } else {
    s.endCursor = std::max(s.endCursor, f.pos);
  }
  return s;
}

}  // namespace

// A live follower's handle: stop() waits out an event being delivered, then detaches.
class AgentChannel::FollowHandle final : public CommandFollow {
 public:
  FollowHandle(std::weak_ptr<AgentChannel> ch, std::shared_ptr<Follower> f)
      : ch_(std::move(ch)), f_(std::move(f)) {}
  ~FollowHandle() override { FollowHandle::stop(); }
  void stop() override {
    {
      std::lock_guard d(f_->deliver);
      if (f_->stopped) return;
      f_->stopped = true;
    }
    if (auto ch = ch_.lock()) ch->dropFollower(f_);
  }

 private:
  std::weak_ptr<AgentChannel> ch_;
  std::shared_ptr<Follower> f_;
};

AgentChannel::AgentChannel(std::unique_ptr<ExecSession> stream) : stream_(std::move(stream)) {}

AgentChannel::~AgentChannel() = default;

Result<std::shared_ptr<AgentChannel>> AgentChannel::open(std::unique_ptr<ExecSession> stream,
                                                         std::chrono::milliseconds timeout) {
  std::shared_ptr<AgentChannel> ch(new AgentChannel(std::move(stream)));
  ch->readNext();
  std::unique_lock lk(ch->m_);
  bool settled = ch->cv_.wait_for(lk, timeout, [&] { return ch->helloSeen_ || ch->ended_; });
  if (ch->helloSeen_ && !ch->ended_) {
    if (ch->hello_.version != ag::kProtocolVersion) {
      lk.unlock();
      ch->close();
      return Error(ErrorCode::SandboxExecFailed,
                   "the sandbox agent speaks protocol " + std::to_string(ch->hello_.version) +
                       ", not " + std::to_string(ag::kProtocolVersion),
                   {{"reason", "agentVersion"}});
    }
    return ch;
  }
  if (!settled) {
    lk.unlock();
    ch->close();
    return Error(ErrorCode::SandboxExecFailed, "the sandbox agent did not answer in time",
                 {{"reason", "agentTimeout"}});
  }
  // The stream ended before a Hello: the agent is missing (exit 126/127) or broken.
  auto readDone = [&] { return ch->readDone_; };
  ch->cv_.wait_for(lk, std::chrono::seconds(10), readDone);
  Error e = ch->failure_.value_or(Error(ErrorCode::SandboxExecFailed, "the agent stream ended"));
  const int code = ch->streamExit_;
  const bool missing = code == 126 || code == 127;
  return Error(ErrorCode::SandboxExecFailed,
               missing ? "the sandbox has no agent binary"
                       : "the sandbox agent failed to start: " + e.message,
               {{"reason", missing ? "agentMissing" : "agentFailed"},
                {"exitCode", std::to_string(code)},
                {"stderr", ch->agentStderr_}});
}

void AgentChannel::readNext() {
  auto self = shared_from_this();
  stream_->asyncRead([self](Result<std::optional<ExecChunk>> r) { self->onRead(std::move(r)); });
}

void AgentChannel::onRead(Result<std::optional<ExecChunk>> r) {
  if (!r.ok()) {
    fail(r.error());
    std::lock_guard lk(m_);
    readDone_ = true;
    cv_.notify_all();
    return;
  }
  if (!*r) {
    // The relay ended: find out how, then fail what was running.
    auto self = shared_from_this();
    stream_->asyncWait([self](Result<int> code) {
      {
        std::lock_guard lk(self->m_);
        self->streamExit_ = code.ok() ? *code : -1;
      }
      self->fail(Error(ErrorCode::SandboxExecFailed,
                       "the sandbox agent's stream ended" +
                           (code.ok() ? " (exit " + std::to_string(*code) + ")" : std::string()),
                       {{"reason", "channelLost"}}));
      std::lock_guard lk(self->m_);
      self->readDone_ = true;
      self->cv_.notify_all();
    });
    return;
  }
  ExecChunk& chunk = **r;
  bool text;
  {
    std::lock_guard lk(m_);
    // Before its Hello, what the stream says is not the agent's (an engine's "no such
    // file" message, say): kept as text for the error, and the stream read to its end.
    text = chunk.stream == ExecStream::Stderr || notAgent_;
    if (text && agentStderr_.size() < 4096) agentStderr_ += chunk.data.substr(0, 4096);
  }
  if (!text) {
    decoder_.feed(chunk.data);
    while (auto f = decoder_.next()) {
      if (auto* e = std::get_if<ag::DecodeError>(&*f)) {
        bool beforeHello;
        {
          std::lock_guard lk(m_);
          beforeHello = !helloSeen_;
          if (beforeHello) {
            notAgent_ = true;
            agentStderr_ += chunk.data.substr(0, 4096);
          }
        }
        if (beforeHello) break;
        fail(Error(ErrorCode::SandboxExecFailed,
                   "the sandbox agent sent an undecodable frame: " + e->message,
                   {{"reason", "channelProtocol"}}));
        // The channel stays alive until the cancel has run (it may use the provider).
        auto self = shared_from_this();
        stream_->asyncCancel([self](Result<void>) {});
        return;
      }
      onFrame(std::get<ag::Message>(std::move(*f)));
    }
  }
  readNext();
}

void AgentChannel::onFrame(ag::Message m) {
  std::vector<std::shared_ptr<Follower>> live;
  handleFrame(std::move(m), live);
  for (auto& f : live)
    pump(f);
}

void AgentChannel::handleFrame(ag::Message m, std::vector<std::shared_ptr<Follower>>& live) {
  auto stateOf = [this](const std::string& id) -> std::shared_ptr<CommandState> {
    std::lock_guard lk(m_);
    auto it = commands_.find(id);
    return it == commands_.end() ? nullptr : it->second.lock();
  };
  if (auto* h = std::get_if<ag::Hello>(&m)) {
    std::lock_guard lk(m_);
    hello_ = *h;
    helloSeen_ = true;
    up_ = !ended_;
    cv_.notify_all();
  } else if (auto* o = std::get_if<ag::Output>(&m)) {
    {
      std::lock_guard lk(m_);
      auto [b, e] = followers_.equal_range(o->id);
      for (auto it = b; it != e; ++it) {
        it->second->add(*o);
        if (it->second->events) live.push_back(it->second);
      }
      if (b != e) cv_.notify_all();
    }
    if (auto s = stateOf(o->id)) {
      {
        std::lock_guard lk(s->m);
        s->addChunk(ExecChunk{o->stream == 2 ? ExecStream::Stderr : ExecStream::Stdout,
                              std::move(o->data)});
      }
      s->settle();
    }
  } else if (auto* x = std::get_if<ag::Exit>(&m)) {
    {
      std::lock_guard lk(m_);
      auto [b, e] = followers_.equal_range(x->id);
      for (auto it = b; it != e; ++it) {
        if (it->second->end) it->second->exit = *x;
        if (it->second->events) live.push_back(it->second);
      }
      if (b != e) cv_.notify_all();
    }
    if (auto s = stateOf(x->id))
      s->end(std::nullopt, x->code, x->reason == ag::ExitReason::TimedOut);
  } else if (auto* st = std::get_if<ag::Started>(&m)) {
    std::lock_guard lk(m_);
    if (auto it = starts_.find(st->id); it != starts_.end()) {
      it->second = Result<std::uint32_t>(st->pid);
      cv_.notify_all();
    }
  } else if (auto* lr = std::get_if<ag::ListReply>(&m)) {
    std::lock_guard lk(m_);
    if (auto it = lists_.find(lr->tag); it != lists_.end()) {
      it->second = std::move(*lr);
      cv_.notify_all();
    }
  } else if (auto* fe = std::get_if<ag::FetchEnd>(&m)) {
    std::lock_guard lk(m_);
    auto [b, e] = followers_.equal_range(fe->info.id);
    for (auto it = b; it != e; ++it) {
      if (!it->second->end) {
        it->second->finish(*fe);
        if (it->second->events) live.push_back(it->second);
        cv_.notify_all();
        break;
      }
    }
  } else if (auto* a = std::get_if<ag::StdinAck>(&m)) {
    if (auto s = stateOf(a->id)) {
      {
        std::lock_guard lk(s->stdinM);
        s->stdinAcked = std::max(s->stdinAcked, a->consumed);
      }
      pumpStdin(shared_from_this(), s);
    }
  } else if (auto* e = std::get_if<ag::ErrorReply>(&m)) {
    if (e->id.empty()) return;
    {
      std::lock_guard lk(m_);
      if (auto it = starts_.find(e->id); it != starts_.end() && !it->second) {
        it->second = Result<std::uint32_t>(refused(*e));
      }
      if (e->code == ag::kErrUnknownId) {
        auto [b, en] = followers_.equal_range(e->id);
        for (auto it = b; it != en; ++it) {
          it->second->error =
              Error(ErrorCode::NotFound, "no command '" + e->id + "' in this sandbox",
                    {{"reason", "commandNotFound"}, {"commandId", e->id}});
          if (it->second->events) live.push_back(it->second);
        }
      }
      cv_.notify_all();
    }
    if (auto s = stateOf(e->id)) {
      // Refusals of Start end the command; others (a Kill racing its Exit) change nothing.
      if (e->code != ag::kErrNotRunning && e->code != ag::kErrUnknownId)
        s->end(refused(*e), -1, false);
    }
  }
}

void AgentChannel::fail(Error e) {
  std::vector<std::shared_ptr<CommandState>> running;
  std::vector<std::shared_ptr<Follower>> live;
  std::deque<std::pair<std::string, ExecHandler<void>>> writes;
  {
    std::lock_guard lk(m_);
    if (ended_) return;
    ended_ = true;
    if (up_) counters().lost++;
    up_ = false;
    failure_ = e;
    for (auto& [id, w] : commands_) {
      if (auto s = w.lock()) running.push_back(s);
    }
    for (auto& [id, f] : followers_) {
      if (f->events) live.push_back(f);
    }
    if (!writing_) writes.swap(writes_);
    cv_.notify_all();
  }
  for (auto& s : running)
    s->end(e, -1, false);
  for (auto& f : live)
    pump(f);
  for (auto& [frame, done] : writes) {
    if (done) done(e);
  }
}

Error AgentChannel::lostError() const {
  std::lock_guard lk(m_);
  return failure_.value_or(Error(ErrorCode::SandboxExecFailed, "the sandbox agent's stream ended",
                                 {{"reason", "channelLost"}}));
}

void AgentChannel::write(std::string frame, ExecHandler<void> done) {
  std::unique_lock lk(m_);
  if (!ended_) {
    writes_.emplace_back(std::move(frame), std::move(done));
    const bool start = !writing_;
    writing_ = true;
    lk.unlock();
    if (start) writeNext();
    return;
  }
  Error closed = failure_.value_or(Error(ErrorCode::SandboxExecFailed, "channel closed"));
  lk.unlock();
  if (done) done(closed);
}

void AgentChannel::writeNext() {
  std::string frame;
  std::deque<std::pair<std::string, ExecHandler<void>>> dropped;
  std::optional<Error> closed;
  {
    std::lock_guard lk(m_);
    if (writes_.empty()) {
      writing_ = false;
      return;
    }
    if (ended_) {
      writing_ = false;
      dropped.swap(writes_);
      closed = failure_.value_or(Error(ErrorCode::SandboxExecFailed, "channel closed"));
    } else {
      frame = std::move(writes_.front().first);  // the entry stays for its handler
    }
  }
  if (closed) {
    for (auto& [f, d] : dropped) {
      if (d) d(*closed);
    }
    return;
  }
  auto self = shared_from_this();
  stream_->asyncWriteStdin(std::move(frame), [self](Result<void> r) {
    ExecHandler<void> done;
    {
      std::lock_guard lk(self->m_);
      done = std::move(self->writes_.front().second);
      self->writes_.pop_front();
    }
    if (!r.ok()) self->fail(r.error());
    if (done) done(std::move(r));
    self->writeNext();
  });
}

std::size_t AgentChannel::queuedOutputBytes() const {
  std::vector<std::shared_ptr<CommandState>> live;
  {
    std::lock_guard lk(m_);
    for (const auto& [id, w] : commands_) {
      if (auto st = w.lock()) live.push_back(st);
    }
  }
  std::size_t total = 0;
  for (const auto& st : live) {
    std::lock_guard lk(st->m);
    total += st->queuedBytes;
  }
  return total;
}

void AgentChannel::forget(const std::string& id) {
  std::lock_guard lk(m_);
  commands_.erase(id);
}

Result<std::unique_ptr<ExecSession>> AgentChannel::startCommand(
    const std::vector<std::string>& argv, const ExecOptions& options) {
  if (argv.empty()) return Error(ErrorCode::ValidationError, "argv must not be empty");
  auto state = std::make_shared<CommandState>();
  state->id = newCommandId();
  state->timeout = options.timeout;
  {
    std::lock_guard lk(m_);
    // 0 only from an agent that never said one: then a frame at a time.
    state->stdinWindow = hello_.stdinWindow > 0 ? hello_.stdinWindow : kStdinChunk;
  }
  ag::StartCommand start;
  start.id = state->id;
  start.argv = argv;
  start.cwd = options.workingDir;
  for (const auto& [k, v] : options.env)
    start.env.push_back(k + "=" + v);
  start.timeoutMs = static_cast<std::uint32_t>(options.timeout.count());
  start.attachStdin = options.attachStdin;
  start.tty = options.tty;
  start.rows = static_cast<std::uint16_t>(options.ttyRows);
  start.cols = static_cast<std::uint16_t>(options.ttyColumns);
  state->sendHoldFn = [weak = weak_from_this(), id = state->id](bool hold) {
    if (auto ch = weak.lock()) ch->write(ag::encode(ag::HoldOutput{id, hold}), nullptr);
  };
  {
    std::lock_guard lk(m_);
    if (ended_) return failure_.value_or(Error(ErrorCode::SandboxExecFailed, "channel closed"));
    commands_[state->id] = state;
  }
  write(ag::encode(start), [state](Result<void> r) {
    if (!r.ok()) state->end(r.error(), -1, false);
  });
  return std::unique_ptr<ExecSession>(new ChannelExecSession(
      shared_from_this(), state, options.attachStdin || options.tty, options.tty));
}

namespace {
constexpr auto kAgentAnswerBound = std::chrono::seconds(30);
}  // namespace

Result<CommandStatus> AgentChannel::startDetached(const std::vector<std::string>& argv,
                                                  const ExecOptions& options) {
  if (argv.empty()) return Error(ErrorCode::ValidationError, "argv must not be empty");
  ag::StartCommand start;
  start.id = "c" + newCommandId().substr(1);
  start.argv = argv;
  start.cwd = options.workingDir;
  for (const auto& [k, v] : options.env)
    start.env.push_back(k + "=" + v);
  start.timeoutMs = static_cast<std::uint32_t>(options.timeout.count());
  {
    std::lock_guard lk(m_);
    starts_[start.id];
  }
  const std::string id = start.id;
  write(ag::encode(start), nullptr);
  std::unique_lock lk(m_);
  cv_.wait_for(lk, kAgentAnswerBound, [&] { return starts_[id].has_value() || ended_; });
  auto answer = std::move(starts_[id]);
  starts_.erase(id);
  if (!answer) {
    if (ended_) return failure_.value_or(channelLostError());
    return Error(ErrorCode::SandboxExecFailed, "the sandbox agent did not answer the start");
  }
  if (!answer->ok()) return answer->error();
  lk.unlock();
  CommandStatus st;
  st.id = id;
  st.argv = argv;
  st.startedAtMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return st;
}

Result<std::vector<CommandStatus>> AgentChannel::list() {
  std::uint64_t tag;
  {
    std::lock_guard lk(m_);
    tag = nextTag_++;
    lists_[tag];
  }
  write(ag::encode(ag::ListCommands{tag}), nullptr);
  std::unique_lock lk(m_);
  cv_.wait_for(lk, kAgentAnswerBound, [&] { return lists_[tag].has_value() || ended_; });
  auto reply = std::move(lists_[tag]);
  lists_.erase(tag);
  if (!reply) {
    if (ended_) return failure_.value_or(channelLostError());
    return Error(ErrorCode::SandboxExecFailed, "the sandbox agent did not answer the list");
  }
  std::vector<CommandStatus> out;
  for (const auto& c : reply->commands) {
    if (!c.id.empty() && c.id[0] == 'c') out.push_back(statusOf(c));  // durable ones only
  }
  return out;
}

Result<CommandOutput> AgentChannel::fetch(const std::string& id, std::uint64_t cursor,
                                          std::chrono::milliseconds wait) {
  if (!ag::validId(id)) {
    return Error(ErrorCode::NotFound, "no command '" + id + "' in this sandbox",
                 {{"reason", "commandNotFound"}, {"commandId", id}});
  }
  auto f = std::make_shared<Follower>();
  f->cursor = cursor;
  {
    std::lock_guard lk(m_);
    followers_.emplace(id, f);
  }
  write(ag::encode(ag::FetchOutput{id, cursor, wait.count() > 0}), nullptr);
  std::unique_lock lk(m_);
  cv_.wait_for(lk, kAgentAnswerBound, [&] { return f->end || f->error || ended_; });
  if (f->end && wait.count() > 0 && f->end->info.running && f->chunks.empty()) {
    cv_.wait_for(lk, wait, [&] { return !f->chunks.empty() || f->exit || f->error || ended_; });
  }
  eraseFollower(f);
  if (f->error) return *f->error;
  if (!f->end) {
    if (ended_) return failure_.value_or(channelLostError());
    return Error(ErrorCode::SandboxExecFailed, "the sandbox agent did not answer the fetch");
  }
  CommandOutput out;
  out.cursor = f->start;
  out.nextCursor = f->pos;
  out.chunks = std::move(f->chunks);
  out.status = followerStatus(*f);
  return out;
}

std::unique_ptr<CommandFollow> AgentChannel::follow(const std::string& id, std::uint64_t cursor,
                                                    CommandEvents events) {
  auto f = std::make_shared<Follower>();
  f->cursor = cursor;
  f->events = std::move(events);
  if (!ag::validId(id)) {
    f->error = Error(ErrorCode::NotFound, "no command '" + id + "' in this sandbox",
                     {{"reason", "commandNotFound"}, {"commandId", id}});
  } else {
    {
      std::lock_guard lk(m_);
      followers_.emplace(id, f);
    }
    // A failed write fails the channel, which ends every live follower.
    write(ag::encode(ag::FetchOutput{id, cursor, true}), nullptr);
  }
  pump(f);  // the channel may have ended before the follower was in its list
  return std::make_unique<FollowHandle>(weak_from_this(), f);
}

void AgentChannel::pump(const std::shared_ptr<Follower>& f) {
  std::lock_guard d(f->deliver);
  if (f->stopped) return;
  std::optional<std::pair<std::uint64_t, CommandStatus>> begin;
  std::vector<CommandChunk> chunks;
  std::optional<Result<CommandStatus>> end;
  {
    std::lock_guard lk(m_);
    if (f->finished) return;
    if (f->end) {
      if (!f->begun) {
        f->begun = true;
        begin.emplace(f->start, statusOf(f->end->info));
      }
      chunks.swap(f->chunks);
    }
    if (f->error) {
      end.emplace(*f->error);
    } else if (f->end && f->exit) {
      end.emplace(followerStatus(*f));
    } else if (ended_) {
      end.emplace(failure_.value_or(channelLostError()));
    }
    if (end) {
      f->finished = true;
      eraseFollower(f);
    }
  }
  if (begin && f->events->begin) f->events->begin(begin->first, begin->second);
  if (f->events->chunk) {
    for (auto& c : chunks)
      f->events->chunk(std::move(c));
  }
  if (end && f->events->end) f->events->end(std::move(*end));
}

void AgentChannel::eraseFollower(const std::shared_ptr<Follower>& f) {
  for (auto it = followers_.begin(); it != followers_.end(); ++it) {
    if (it->second == f) {
      followers_.erase(it);
      return;
    }
  }
}

void AgentChannel::dropFollower(const std::shared_ptr<Follower>& f) {
  std::lock_guard lk(m_);
  eraseFollower(f);
}

Result<CommandStatus> AgentChannel::kill(const std::string& id) {
  auto before = fetch(id, UINT64_MAX, std::chrono::milliseconds(0));
  if (!before.ok()) return before.takeError();
  if (!before->status.running) return before->status;
  write(ag::encode(ag::KillCommand{id, 9}), nullptr);
  // The Exit of a SIGKILLed command comes once its whole process tree is dead.
  for (int i = 0; i < 6; ++i) {
    auto now = fetch(id, UINT64_MAX, std::chrono::seconds(5));
    if (!now.ok()) return now.takeError();
    if (!now->status.running) return now->status;
  }
  return Error(ErrorCode::SandboxExecFailed, "command '" + id + "' did not end after SIGKILL");
}

void AgentChannel::close() {
  // The stream's cancel may run provider calls of its own (Docker kills the relay through
  // another exec): wait for it too, so that the provider can go once close() returns.
  auto cancelled = std::make_shared<std::promise<void>>();
  auto f = cancelled->get_future();
  stream_->asyncCancel([cancelled](Result<void>) { cancelled->set_value(); });
  f.wait_for(std::chrono::seconds(15));
  std::unique_lock lk(m_);
  cv_.wait_for(lk, std::chrono::seconds(15), [&] { return readDone_; });
}

}  // namespace agentpane::channel
