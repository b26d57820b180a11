#include "agent/protocol.hpp"

#include <type_traits>

namespace agentpane::agent {

namespace {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { be(v, 2); }
  void u32(std::uint32_t v) { be(v, 4); }
  void u64(std::uint64_t v) { be(v, 8); }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void strs(const std::vector<std::string>& v) {
    u32(static_cast<std::uint32_t>(v.size()));
    for (const auto& s : v)
      str(s);
  }

 private:
  void be(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

// Bounds-checked reads; the first failure sticks and every later read returns zero values.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(be(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(be(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(be(4)); }
  std::uint64_t u64() { return be(8); }
  std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
  bool flag() {
    auto v = u8();
    if (v > 1) bad_ = true;
    return v == 1;
  }
  std::string str() {
    std::uint32_t n = u32();
    if (bad_ || n > in_.size() - pos_) {
      bad_ = true;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<std::string> strs() {
    std::uint32_t n = u32();
    // Each string takes at least its 4-byte length: a count beyond that is a lie, refused
    // before anything is allocated for it.
    if (bad_ || n > (in_.size() - pos_) / 4) {
      bad_ = true;
      return {};
    }
    std::vector<std::string> v;
    v.reserve(n);
    for (std::uint32_t i = 0; i < n && !bad_; ++i)
      v.push_back(str());
    return v;
  }
  [[nodiscard]] bool ok() const { return !bad_; }
  [[nodiscard]] bool atEnd() const { return pos_ == in_.size(); }

 private:
  std::uint64_t be(std::size_t n) {
    if (bad_ || in_.size() - pos_ < n) {
      bad_ = true;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
      v = (v << 8) | static_cast<unsigned char>(in_[pos_ + i]);
    pos_ += n;
    return v;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool bad_ = false;
};

void putInfo(Writer& w, const CommandInfo& c) {
  w.str(c.id);
  w.strs(c.argv);
  w.u32(c.pid);
  w.u8(c.running ? 1 : 0);
  w.i32(c.exitCode);
  w.u8(static_cast<std::uint8_t>(c.reason));
  w.u64(c.firstCursor);
  w.u64(c.endCursor);
  w.u64(c.startedAtMs);
  w.u64(c.endedAtMs);
}

CommandInfo getInfo(Reader& r, bool& badReason) {
  CommandInfo c;
  c.id = r.str();
  c.argv = r.strs();
  c.pid = r.u32();
  c.running = r.flag();
  c.exitCode = r.i32();
  auto reason = r.u8();
  if (reason > static_cast<std::uint8_t>(ExitReason::Lost)) badReason = true;
  c.reason = static_cast<ExitReason>(reason);
  c.firstCursor = r.u64();
  c.endCursor = r.u64();
  c.startedAtMs = r.u64();
  c.endedAtMs = r.u64();
  return c;
}

template <typename T>
constexpr FrameType typeOf() {
  if constexpr (std::is_same_v<T, StartCommand>) return FrameType::Start;
  if constexpr (std::is_same_v<T, StdinData>) return FrameType::Stdin;
  if constexpr (std::is_same_v<T, CloseStdin>) return FrameType::CloseStdin;
  if constexpr (std::is_same_v<T, KillCommand>) return FrameType::Kill;
  if constexpr (std::is_same_v<T, FetchOutput>) return FrameType::Fetch;
  if constexpr (std::is_same_v<T, ListCommands>) return FrameType::List;
  if constexpr (std::is_same_v<T, ResizeTty>) return FrameType::Resize;
  if constexpr (std::is_same_v<T, Ping>) return FrameType::Ping;
  if constexpr (std::is_same_v<T, HoldOutput>) return FrameType::Hold;
  if constexpr (std::is_same_v<T, StdinAck>) return FrameType::StdinAck;
  if constexpr (std::is_same_v<T, Hello>) return FrameType::Hello;
  if constexpr (std::is_same_v<T, Started>) return FrameType::Started;
  if constexpr (std::is_same_v<T, Output>) return FrameType::Output;
  if constexpr (std::is_same_v<T, Exit>) return FrameType::Exit;
  if constexpr (std::is_same_v<T, ErrorReply>) return FrameType::Error;
  if constexpr (std::is_same_v<T, ListReply>) return FrameType::ListReply;
  if constexpr (std::is_same_v<T, FetchEnd>) return FrameType::FetchEnd;
  if constexpr (std::is_same_v<T, Pong>) return FrameType::Pong;
}

void putPayload(Writer& w, const StartCommand& m) {
  w.str(m.id);
  w.strs(m.argv);
  w.str(m.cwd);
  w.strs(m.env);
  w.str(m.user);
  w.u32(m.timeoutMs);
  w.u8(m.attachStdin ? 1 : 0);
  w.u8(m.tty ? 1 : 0);
  w.u16(m.rows);
  w.u16(m.cols);
}
void putPayload(Writer& w, const StdinData& m) {
  w.str(m.id);
  w.str(m.data);
}
void putPayload(Writer& w, const CloseStdin& m) {
  w.str(m.id);
}
void putPayload(Writer& w, const KillCommand& m) {
  w.str(m.id);
  w.u32(m.signal);
}
void putPayload(Writer& w, const FetchOutput& m) {
  w.str(m.id);
  w.u64(m.cursor);
  w.u8(m.follow ? 1 : 0);
}
void putPayload(Writer& w, const ListCommands& m) {
  w.u64(m.tag);
}
void putPayload(Writer& w, const ResizeTty& m) {
  w.str(m.id);
  w.u16(m.rows);
  w.u16(m.cols);
}
void putPayload(Writer& w, const HoldOutput& m) {
  w.str(m.id);
  w.u8(m.hold ? 1 : 0);
}
void putPayload(Writer& w, const StdinAck& m) {
  w.str(m.id);
  w.u64(m.consumed);
}
void putPayload(Writer& w, const Ping& m) {
  w.u64(m.tag);
}
void putPayload(Writer& w, const Hello& m) {
  w.u32(m.version);
  w.u32(m.pid);
  w.u32(m.uid);
  w.u64(m.bootId);
  w.u32(m.stdinWindow);
}
void putPayload(Writer& w, const Started& m) {
  w.str(m.id);
  w.u32(m.pid);
}
void putPayload(Writer& w, const Output& m) {
  w.str(m.id);
  w.u8(m.stream);
  w.u64(m.offset);
  w.str(m.data);
}
void putPayload(Writer& w, const Exit& m) {
  w.str(m.id);
  w.i32(m.code);
  w.u8(static_cast<std::uint8_t>(m.reason));
  w.u64(m.endCursor);
}
void putPayload(Writer& w, const ErrorReply& m) {
  w.str(m.id);
  w.str(m.code);
  w.str(m.message);
}
void putPayload(Writer& w, const ListReply& m) {
  w.u64(m.tag);
  w.u32(static_cast<std::uint32_t>(m.commands.size()));
  for (const auto& c : m.commands)
    putInfo(w, c);
}
void putPayload(Writer& w, const FetchEnd& m) {
  putInfo(w, m.info);
  w.u64(m.nextCursor);
}
void putPayload(Writer& w, const Pong& m) {
  w.u64(m.tag);
}

DecodeError malformed(std::string id, const char* what) {
  return DecodeError{kErrMalformed, std::string("malformed ") + what + " frame", std::move(id)};
}

}  // namespace

void encodeTo(std::string& out, const Message& message) {
  const std::size_t start = out.size();
  out.append(kHeaderBytes, '\0');
  Writer w(out);
  std::visit(
      [&](const auto& m) {
        w.u8(static_cast<std::uint8_t>(typeOf<std::decay_t<decltype(m)>>()));
        putPayload(w, m);
      },
      message);
  const std::size_t body = out.size() - start - kHeaderBytes;
  for (int i = 0; i < 4; ++i) {
    out[start + i] = static_cast<char>((body >> (8 * (3 - i))) & 0xff);
  }
}

std::string encode(const Message& message) {
  std::string out;
  encodeTo(out, message);
  return out;
}

bool validId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::variant<Message, DecodeError> decodeBody(std::string_view body) {
  if (body.empty()) return DecodeError{kErrFrameEmpty, "empty frame", {}};
  const auto type = static_cast<std::uint8_t>(body[0]);
  Reader r(body.substr(1));
  auto finish = [&](Message m, const std::string& id,
                    const char* what) -> std::variant<Message, DecodeError> {
    if (!r.ok() || !r.atEnd()) return malformed(id, what);
    return m;
  };
  switch (static_cast<FrameType>(type)) {
    case FrameType::Start: {
      StartCommand m;
      m.id = r.str();
      m.argv = r.strs();
      m.cwd = r.str();
      m.env = r.strs();
      m.user = r.str();
      m.timeoutMs = r.u32();
      m.attachStdin = r.flag();
      m.tty = r.flag();
      m.rows = r.u16();
      m.cols = r.u16();
      std::string id = m.id;
      return finish(std::move(m), id, "Start");
    }
    case FrameType::Stdin: {
      StdinData m;
      m.id = r.str();
      m.data = r.str();
      std::string id = m.id;
      return finish(std::move(m), id, "Stdin");
    }
    case FrameType::CloseStdin: {
      CloseStdin m{r.str()};
      std::string id = m.id;
      return finish(std::move(m), id, "CloseStdin");
    }
    case FrameType::Kill: {
      KillCommand m;
      m.id = r.str();
      m.signal = r.u32();
      std::string id = m.id;
      return finish(std::move(m), id, "Kill");
    }
    case FrameType::Fetch: {
      FetchOutput m;
      m.id = r.str();
      m.cursor = r.u64();
      m.follow = r.flag();
      std::string id = m.id;
      return finish(std::move(m), id, "Fetch");
    }
    case FrameType::List:
      return finish(ListCommands{r.u64()}, {}, "List");
    case FrameType::Resize: {
      ResizeTty m;
      m.id = r.str();
      m.rows = r.u16();
      m.cols = r.u16();
      std::string id = m.id;
      return finish(std::move(m), id, "Resize");
    }
    case FrameType::Ping:
      return finish(Ping{r.u64()}, {}, "Ping");
    case FrameType::Hold: {
      HoldOutput m;
      m.id = r.str();
      m.hold = r.flag();
      std::string id = m.id;
      return finish(std::move(m), id, "Hold");
    }
    case FrameType::Hello: {
      Hello m;
      m.version = r.u32();
      m.pid = r.u32();
      m.uid = r.u32();
      m.bootId = r.u64();
      // A Hello stays decodable across versions (the client reads its version, then copies
      // its own agent in): protocol 2 ends here, and later ones may add fields after ours.
      if (m.version >= 3) m.stdinWindow = r.u32();
      if (!r.ok()) return malformed({}, "Hello");
      return m;
    }
    case FrameType::Started: {
      Started m;
      m.id = r.str();
      m.pid = r.u32();
      std::string id = m.id;
      return finish(std::move(m), id, "Started");
    }
    case FrameType::Output: {
      Output m;
      m.id = r.str();
      m.stream = r.u8();
      m.offset = r.u64();
      m.data = r.str();
      std::string id = m.id;
      if (m.stream != 1 && m.stream != 2) return malformed(id, "Output");
      return finish(std::move(m), id, "Output");
    }
    case FrameType::Exit: {
      Exit m;
      m.id = r.str();
      m.code = r.i32();
      auto reason = r.u8();
      m.reason = static_cast<ExitReason>(reason);
      m.endCursor = r.u64();
      std::string id = m.id;
      if (reason > static_cast<std::uint8_t>(ExitReason::Lost)) return malformed(id, "Exit");
      return finish(std::move(m), id, "Exit");
    }
    case FrameType::Error: {
      ErrorReply m;
      m.id = r.str();
      m.code = r.str();
      m.message = r.str();
      std::string id = m.id;
      return finish(std::move(m), id, "Error");
    }
    case FrameType::ListReply: {
      ListReply m;
      m.tag = r.u64();
      std::uint32_t n = r.u32();
      bool badReason = false;
      // Every entry takes at least 50 bytes: refuse a count the body cannot hold.
      if (!r.ok() || n > body.size() / 50) return malformed({}, "ListReply");
      for (std::uint32_t i = 0; i < n && r.ok(); ++i)
        m.commands.push_back(getInfo(r, badReason));
      if (badReason) return malformed({}, "ListReply");
      return finish(std::move(m), {}, "ListReply");
    }
    case FrameType::FetchEnd: {
      FetchEnd m;
      bool badReason = false;
      m.info = getInfo(r, badReason);
      m.nextCursor = r.u64();
      std::string id = m.info.id;
      if (badReason) return malformed(id, "FetchEnd");
      return finish(std::move(m), id, "FetchEnd");
    }
    case FrameType::Pong:
      return finish(Pong{r.u64()}, {}, "Pong");
    case FrameType::StdinAck: {
      StdinAck m;
      m.id = r.str();
      m.consumed = r.u64();
      std::string id = m.id;
      return finish(std::move(m), id, "StdinAck");
    }
  }
  return DecodeError{kErrUnknownType, "unknown frame type " + std::to_string(type), {}};
}

void FrameDecoder::feed(std::string_view bytes) {
  if (skip_ > 0) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, bytes.size()));
    skip_ -= n;
    bytes.remove_prefix(n);
  }
  if (bytes.empty()) return;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (64u << 10) && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

std::optional<std::variant<Message, DecodeError>> FrameDecoder::next() {
  if (skip_ > 0 || buf_.size() - pos_ < kHeaderBytes) return std::nullopt;
  std::uint64_t len = 0;
  for (std::size_t i = 0; i < kHeaderBytes; ++i) {
    len = (len << 8) | static_cast<unsigned char>(buf_[pos_ + i]);
  }
  if (len > maxBody_) {
    pos_ += kHeaderBytes;
    const std::uint64_t have = buf_.size() - pos_;
    const std::uint64_t drop = std::min(have, len);
    pos_ += static_cast<std::size_t>(drop);
    skip_ = len - drop;
    return DecodeError{kErrFrameTooLarge,
                       "frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                           std::to_string(maxBody_),
                       {}};
  }
  if (buf_.size() - pos_ - kHeaderBytes < len) return std::nullopt;
  std::string_view body(buf_.data() + pos_ + kHeaderBytes, static_cast<std::size_t>(len));
  pos_ += kHeaderBytes + static_cast<std::size_t>(len);
  return decodeBody(body);
}

}  // namespace agentpane::agent
