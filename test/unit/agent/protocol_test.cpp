// The frame codec shared by the agent and the server's channel: every message survives a
// round trip fed byte by byte; hostile input yields errors and decoding goes on.
#include <gtest/gtest.h>

#include "agent/protocol.hpp"

namespace agentpane::agent {
namespace {

std::vector<Message> samples() {
  CommandInfo info{"c-1", {"sh", "-c", "echo hi"}, 42, false, 3, ExitReason::Exited, 5, 99, 1000,
                   2000};
  return {
      StartCommand{"c-1",
                   {"echo", std::string("a\0b", 3)},
                   "/workspace",
                   {"A=1", "B="},
                   "1000:1000",
                   1500,
                   true,
                   true,
                   30,
                   100},
      StdinData{"c-1", std::string("\0\xff\n", 3)},
      CloseStdin{"c-1"},
      KillCommand{"c-1", 15},
      FetchOutput{"c-1", 1ull << 40, true},
      ListCommands{7},
      ResizeTty{"c-1", 50, 132},
      Ping{0xdeadbeefcafeULL},
      Hello{kProtocolVersion, 12, 1000, 0x0123456789abcdefULL, 4u << 20},
      Started{"c-1", 4242},
      Output{"c-1", 2, 12345, std::string(70000, 'x')},
      Exit{"c-1", 137, ExitReason::TimedOut, 88},
      ErrorReply{"c-1", kErrUnknownId, "no command"},
      ListReply{9, {info, info}},
      FetchEnd{info, 99},
      Pong{3},
      HoldOutput{"c-1", true},
      HoldOutput{"c-1", false},
      StdinAck{"c-1", 0},
      StdinAck{"c-1", (1ull << 40) + 7},
  };
}

std::vector<std::variant<Message, DecodeError>> decodeAll(FrameDecoder& d) {
  std::vector<std::variant<Message, DecodeError>> out;
  while (auto f = d.next())
    out.push_back(std::move(*f));
  return out;
}

TEST(AgentProtocol, EveryMessageRoundTripsByteByByte) {
  std::string stream;
  for (const auto& m : samples())
    encodeTo(stream, m);
  FrameDecoder d;
  std::vector<Message> got;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    for (auto& f : decodeAll(d)) {
      ASSERT_TRUE(std::holds_alternative<Message>(f)) << std::get<DecodeError>(f).message;
      got.push_back(std::get<Message>(f));
    }
  }
  EXPECT_EQ(got, samples());
  EXPECT_EQ(d.buffered(), 0u);
}

// An older agent's Hello (protocol 2 had no stdin window) still decodes, so that the client
// can read its version and copy its own agent in; a later one may carry more fields.
TEST(AgentProtocol, HelloOfAnotherVersionDecodes) {
  std::string v2 = encode(Hello{2, 12, 1000, 77, 0});
  v2.resize(v2.size() - 4);  // without the window
  v2[3] = static_cast<char>(v2[3] - 4);
  std::string v9 = encode(Hello{9, 12, 1000, 77, 5}) + "more";
  v9[3] = static_cast<char>(v9[3] + 4);
  FrameDecoder d;
  d.feed(v2 + v9);
  auto got = decodeAll(d);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<Message>(got[0]));
  EXPECT_EQ(std::get<Hello>(std::get<Message>(got[0])), (Hello{2, 12, 1000, 77, 0}));
  ASSERT_TRUE(std::holds_alternative<Message>(got[1]));
  EXPECT_EQ(std::get<Hello>(std::get<Message>(got[1])), (Hello{9, 12, 1000, 77, 5}));
}

TEST(AgentProtocol, HeaderIsBigEndianBodyLength) {
  std::string f = encode(Ping{1});
  ASSERT_EQ(f.size(), 4u + 1u + 8u);
  EXPECT_EQ(f.substr(0, 4), std::string("\0\0\0\x09", 4));
  EXPECT_EQ(static_cast<std::uint8_t>(f[4]), static_cast<std::uint8_t>(FrameType::Ping));
}

TEST(AgentProtocol, OversizedFrameIsSkippedAndDecodingGoesOn) {
  FrameDecoder d(1024);
  std::string header("\0\0\x10\0", 4);  // 4096 bytes
  d.feed(header);
  d.feed(std::string(1000, 'j'));
  auto first = decodeAll(d);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(std::get<DecodeError>(first[0]).code, kErrFrameTooLarge);
  // The rest of the oversized body arrives with a good frame behind it.
  d.feed(std::string(3096, 'k') + encode(Ping{5}));
  auto second = decodeAll(d);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(std::get<Message>(second[0]), Message(Ping{5}));
}

TEST(AgentProtocol, HugeLengthNeverAllocates) {
  FrameDecoder d;
  d.feed(std::string("\xff\xff\xff\xff", 4));
  auto r = decodeAll(d);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<DecodeError>(r[0]).code, kErrFrameTooLarge);
  d.feed(std::string(1 << 20, 'z'));
  EXPECT_EQ(d.buffered(), 0u);
  EXPECT_TRUE(decodeAll(d).empty());
}

TEST(AgentProtocol, BadFramesAreErrorsNamingTheCommand) {
  FrameDecoder d;
  d.feed(std::string("\0\0\0\0", 4));  // empty body
  std::string unknown("\0\0\0\x01\x7f", 5);
  d.feed(unknown);
  // A Kill frame cut short after its id.
  std::string kill = encode(KillCommand{"c-9", 9});
  std::string body = kill.substr(4, kill.size() - 4 - 2);
  std::string cut("\0\0\0", 3);
  cut.push_back(static_cast<char>(body.size()));
  d.feed(cut + body);
  // Trailing bytes after a complete Ping payload.
  std::string ping = encode(Ping{1}).substr(4) + "x";
  std::string trailing("\0\0\0", 3);
  trailing.push_back(static_cast<char>(ping.size()));
  d.feed(trailing + ping);
  // A string list whose count promises more strings than the body holds.
  std::string lie = std::string(1, static_cast<char>(FrameType::Start)) +
                    std::string("\0\0\0\x01", 4) + "a" + std::string("\x7f\xff\xff\xff", 4);
  std::string lieHeader("\0\0\0", 3);
  lieHeader.push_back(static_cast<char>(lie.size()));
  d.feed(lieHeader + lie);
  // A string longer than the body.
  std::string longStr =
      std::string(1, static_cast<char>(FrameType::CloseStdin)) + std::string("\0\0\x10\0", 4);
  std::string longHeader("\0\0\0", 3);
  longHeader.push_back(static_cast<char>(longStr.size()));
  d.feed(longHeader + longStr);
  d.feed(encode(Ping{2}));

  auto r = decodeAll(d);
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(std::get<DecodeError>(r[0]).code, kErrFrameEmpty);
  EXPECT_EQ(std::get<DecodeError>(r[1]).code, kErrUnknownType);
  EXPECT_EQ(std::get<DecodeError>(r[2]).code, kErrMalformed);
  EXPECT_EQ(std::get<DecodeError>(r[2]).id, "c-9");
  EXPECT_EQ(std::get<DecodeError>(r[3]).code, kErrMalformed);
  EXPECT_EQ(std::get<DecodeError>(r[4]).code, kErrMalformed);
  EXPECT_EQ(std::get<DecodeError>(r[5]).code, kErrMalformed);
  EXPECT_EQ(std::get<Message>(r[6]), Message(Ping{2}));
}

TEST(AgentProtocol, BadFlagsAndReasonsAreMalformed) {
  std::string f = encode(FetchOutput{"c", 0, true});
  f.back() = 2;  // follow flag must be 0 or 1
  FrameDecoder d;
  d.feed(f);
  auto r = decodeAll(d);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<DecodeError>(r[0]).code, kErrMalformed);

  std::string x = encode(Exit{"c", 0, ExitReason::Exited, 0});
  x[x.size() - 9] = 9;  // reason byte
  d.feed(x);
  r = decodeAll(d);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<DecodeError>(r[0]).code, kErrMalformed);
}

TEST(AgentProtocol, CommandIds) {
  EXPECT_TRUE(validId("c-1"));
  EXPECT_TRUE(validId("A_b.9"));
  EXPECT_TRUE(validId(std::string(64, 'a')));
  EXPECT_FALSE(validId(""));
  EXPECT_FALSE(validId(std::string(65, 'a')));
  EXPECT_FALSE(validId("a b"));
  EXPECT_FALSE(validId("a/b"));
  EXPECT_FALSE(validId(std::string("a\0", 2)));
}

}  // namespace
}  // namespace agentpane::agent
