// The framed protocol between the server's channel client (src/channel) and the in-sandbox
// agent (agentpane-agent). One definition, compiled into both; it depends on nothing but the
// standard library, so that the agent links statically and runs in any Linux image.
//
// A frame is a 4-byte big-endian body length, then the body: one type byte and the payload.
// Payload fields are big-endian integers, strings (u32 length + bytes, binary-safe) and
// string lists (u32 count + strings). A body is at most kMaxFrameBody bytes. Commands are
// named by an id the client chooses ([A-Za-z0-9_.-]{1,64}); output is addressed by a cursor:
// the byte offset in the command's combined stdout+stderr sequence.
//
// Client -> agent: Start, Stdin, CloseStdin, Kill, Fetch, List, Resize, Ping, Hold.
// Agent -> client: Hello (first, on every connection), Started, Output, Exit, Error,
// ListReply, FetchEnd, Pong, StdinAck.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace agentpane::agent {

// 2: Hold and StdinHold (per-command back-pressure of output and of stdin).
// 3: stdin by credit: Hello says the window, StdinAck returns it (StdinHold is gone: a hold
//    came back after the transport's buffers had carried far more than the limit).
inline constexpr std::uint32_t kProtocolVersion = 3;
inline constexpr std::size_t kHeaderBytes = 4;
inline constexpr std::size_t kMaxFrameBody = 1u << 20;
// The agent never puts more output than this into one Output frame.
inline constexpr std::size_t kMaxOutputChunk = 64u << 10;
inline constexpr std::size_t kMaxIdLength = 64;

enum class FrameType : std::uint8_t {
  Start = 0x01,
  Stdin = 0x02,
  CloseStdin = 0x03,
  Kill = 0x04,
  Fetch = 0x05,
  List = 0x06,
  Resize = 0x07,
  Ping = 0x08,
  Hold = 0x09,
  Hello = 0x81,
  Started = 0x82,
  Output = 0x83,
  Exit = 0x84,
  Error = 0x85,
  ListReply = 0x86,
  FetchEnd = 0x87,
  Pong = 0x88,
  StdinAck = 0x89,
};

// How a command ended.
enum class ExitReason : std::uint8_t {
  Exited = 0,    // code is the process's exit status
  Signaled = 1,  // killed by signal N: code is 128+N
  TimedOut = 2,  // the timeout killed its process group: code is 128+SIGKILL
  Killed = 3,    // a Kill frame ended it: code is 128+signal
  Lost = 4,      // the agent lost track of it (no exit status); code is -1
};

// --- client -> agent --------------------------------------------------------------------------
struct StartCommand {
  std::string id;
  std::vector<std::string> argv;  // executed directly (PATH searched), never through a shell
  std::string cwd;                // empty: the agent's own working directory
  std::vector<std::string> env;   // "K=V", laid over the agent's environment
  std::string user;               // empty: the agent's user; else a name or uid[:gid] (root only)
  std::uint32_t timeoutMs = 0;    // 0: none; on expiry the process group is killed
  bool attachStdin = false;       // false: stdin is /dev/null
  bool tty = false;               // a pseudo-terminal; output arrives as stream 1 only
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
  bool operator==(const StartCommand&) const = default;
};
struct StdinData {
  std::string id;
  std::string data;
  bool operator==(const StdinData&) const = default;
};
struct CloseStdin {
  std::string id;
  bool operator==(const CloseStdin&) const = default;
};
struct KillCommand {
  std::string id;
  std::uint32_t signal = 9;
  bool operator==(const KillCommand&) const = default;
};
// Replays retained output from `cursor` (Output frames), then FetchEnd. With follow, the
// connection then receives the command's live Output and its Exit.
struct FetchOutput {
  std::string id;
  std::uint64_t cursor = 0;
  bool follow = false;
  bool operator==(const FetchOutput&) const = default;
};
struct ListCommands {
  std::uint64_t tag = 0;
  bool operator==(const ListCommands&) const = default;
};
struct ResizeTty {
  std::string id;
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
  bool operator==(const ResizeTty&) const = default;
};
struct Ping {
  std::uint64_t tag = 0;
  bool operator==(const Ping&) const = default;
};
// Back-pressure for one command: while held, the agent does not read the command's stdout and
// stderr (the process blocks on a full pipe); released, it reads them again. A hold ends too
// when the connection that set it goes. Other commands are not affected.
struct HoldOutput {
  std::string id;
  bool hold = true;
  bool operator==(const HoldOutput&) const = default;
};

// --- agent -> client --------------------------------------------------------------------------
struct Hello {
  std::uint32_t version = kProtocolVersion;
  std::uint32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint64_t bootId = 0;  // differs for every agent process: a new one lost old commands
  // Stdin credit: per command, the client never has more than this many Stdin data bytes
  // sent and not yet acknowledged by a StdinAck. The agent refuses what goes past it.
  std::uint32_t stdinWindow = 0;
  bool operator==(const Hello&) const = default;
};
struct Started {
  std::string id;
  std::uint32_t pid = 0;
  bool operator==(const Started&) const = default;
};
struct Output {
  std::string id;
  std::uint8_t stream = 1;   // 1 stdout, 2 stderr
  std::uint64_t offset = 0;  // cursor of data's first byte
  std::string data;
  bool operator==(const Output&) const = default;
};
struct Exit {
  std::string id;
  std::int32_t code = -1;
  ExitReason reason = ExitReason::Exited;
  std::uint64_t endCursor = 0;  // all output lies below it
  bool operator==(const Exit&) const = default;
};
// A refused frame. `id` names the command when the frame named one; `code` is one of the
// kErr* words below.
struct ErrorReply {
  std::string id;
  std::string code;
  std::string message;
  bool operator==(const ErrorReply&) const = default;
};
struct CommandInfo {
  std::string id;
  std::vector<std::string> argv;
  std::uint32_t pid = 0;
  bool running = false;
  std::int32_t exitCode = -1;
  ExitReason reason = ExitReason::Exited;
  std::uint64_t firstCursor = 0;  // oldest output still retained
  std::uint64_t endCursor = 0;
  std::uint64_t startedAtMs = 0;  // Unix ms
  std::uint64_t endedAtMs = 0;    // 0 while running
  bool operator==(const CommandInfo&) const = default;
};
struct ListReply {
  std::uint64_t tag = 0;
  std::vector<CommandInfo> commands;
  bool operator==(const ListReply&) const = default;
};
struct FetchEnd {
  CommandInfo info;  // state at the end of the replay
  std::uint64_t nextCursor = 0;
  bool operator==(const FetchEnd&) const = default;
};
struct Pong {
  std::uint64_t tag = 0;
  bool operator==(const Pong&) const = default;
};
// Stdin credit for one command: `consumed` is the number of its Stdin data bytes that have
// left the agent's queue (written to the process, or dropped because its stdin is gone), in
// total since it started. The client may then send up to Hello::stdinWindow bytes past it. A
// process that reads nothing so holds only its own stdin: the agent never stops reading the
// connection, so the other commands' frames keep flowing whatever the transport buffers.
struct StdinAck {
  std::string id;
  std::uint64_t consumed = 0;
  bool operator==(const StdinAck&) const = default;
};

using Message = std::variant<StartCommand, StdinData, CloseStdin, KillCommand, FetchOutput,
                             ListCommands, ResizeTty, Ping, Hello, Started, Output, Exit,
                             ErrorReply, ListReply, FetchEnd, Pong, HoldOutput, StdinAck>;

// Error words of ErrorReply and of DecodeError.
inline constexpr const char* kErrFrameEmpty = "frameEmpty";
inline constexpr const char* kErrFrameTooLarge = "frameTooLarge";
inline constexpr const char* kErrUnknownType = "unknownType";
inline constexpr const char* kErrMalformed = "malformed";
inline constexpr const char* kErrUnexpected = "unexpectedFrame";  // a frame of the other side
inline constexpr const char* kErrBadId = "badId";
inline constexpr const char* kErrDuplicateId = "duplicateId";
inline constexpr const char* kErrUnknownId = "unknownId";
inline constexpr const char* kErrBadRequest = "badRequest";
inline constexpr const char* kErrUserNotAllowed = "userNotAllowed";
inline constexpr const char* kErrTooManyCommands = "tooManyCommands";
inline constexpr const char* kErrSpawnFailed = "spawnFailed";
inline constexpr const char* kErrNotRunning = "notRunning";
inline constexpr const char* kErrStdinOverflow = "stdinOverflow";  // past Hello::stdinWindow

// The whole frame (header included) of a message.
std::string encode(const Message& message);
// Appends the frame to `out` (no copy of the message's data beyond that).
void encodeTo(std::string& out, const Message& message);

// Whether `id` is a valid command id.
bool validId(std::string_view id);

struct DecodeError {
  std::string code;  // kErrFrameEmpty, kErrFrameTooLarge, kErrUnknownType, kErrMalformed
  std::string message;
  std::string id;  // the command id, when the malformed frame's first field was readable
};

// Parses one frame body (type byte + payload).
std::variant<Message, DecodeError> decodeBody(std::string_view body);

// Splits a byte stream into frames. Never throws and never fails for good: a frame that
// cannot be decoded yields a DecodeError and decoding goes on with the next frame. A length
// above the limit yields one frameTooLarge error and its body is skipped as it arrives,
// without being stored, so that the stream stays in step.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t maxBody = kMaxFrameBody) : maxBody_(maxBody) {}

  void feed(std::string_view bytes);
  // The next complete frame (or error), if any.
  std::optional<std::variant<Message, DecodeError>> next();
  // Bytes buffered and not yet returned.
  [[nodiscard]] std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::size_t maxBody_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::uint64_t skip_ = 0;  // body bytes of an oversized frame still to drop
};

}  // namespace agentpane::agent
