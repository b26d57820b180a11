#include <gtest/gtest.h>

#include <string>

#include "k8s/channel.hpp"

namespace agentpane::k8s {
namespace {

std::string msg(std::uint8_t channel, std::string_view payload = {}) {
  std::string m(1, static_cast<char>(channel));
  m.append(payload);
  return m;
}

std::string allBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i)
    s.push_back(static_cast<char>(i));
  return s;
}

const char* kExit42 =
    R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: )"
    R"(error executing command [sh -c exit 42], exit code 42","reason":"NonZeroExitCode",)"
    R"("details":{"causes":[{"reason":"ExitCode","message":"42"}]}})";

TEST(ChannelWriter, StdinIsChannelZeroThenTheBytesUnchanged) {
  const std::string bin = allBytes();
  const std::string m = encodeStdin(bin);
  ASSERT_EQ(m.size(), 257u);
  EXPECT_EQ(m[0], '\0');
  EXPECT_EQ(m.substr(1), bin);
  EXPECT_EQ(encodeStdin(""), std::string(1, '\0'));
}

TEST(ChannelWriter, CloseSignalIsTwoBytes) {
  const std::string m = encodeCloseSignal(kChannelStdin);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(m[0]), 255u);
  EXPECT_EQ(m[1], '\0');
}

TEST(ChannelWriter, ResizeIsJsonOnChannelFour) {
  EXPECT_EQ(encodeResize(80, 24), std::string("\x04") + R"({"Width":80,"Height":24})");
}

TEST(ChannelReader, OutputOnStdoutAndStderrKeepsEveryByte) {
  ChannelReader r(ChannelProtocol::V5);
  const std::string bin = allBytes();
  const std::string m1 = msg(1, bin);
  auto e = r.feed(m1);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, ChannelEvent::Kind::Output);
  EXPECT_EQ(e->stream, ExecStream::Stdout);
  EXPECT_EQ(e->data, bin);
  const std::string m2 = msg(2, "warn\n");
  e = r.feed(m2);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->stream, ExecStream::Stderr);
  EXPECT_EQ(e->data, "warn\n");
}

TEST(ChannelReader, LoneChannelByteIsAReadySignalOnEveryChannel) {
  for (std::uint8_t ch = 0; ch <= kChannelResize; ++ch) {
    ChannelReader r(ChannelProtocol::V4);
    auto e = r.feed(msg(ch));
    ASSERT_TRUE(e.ok()) << int(ch);
    EXPECT_EQ(e->kind, ChannelEvent::Kind::Ignored);
    EXPECT_FALSE(r.statusSeen());
  }
}

TEST(ChannelReader, CloseSignalOnV5ClosesTheStream) {
  ChannelReader r(ChannelProtocol::V5);
  auto e = r.feed(encodeCloseSignal(kChannelStderr));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, ChannelEvent::Kind::StreamClosed);
  EXPECT_EQ(e->stream, ExecStream::Stderr);
  e = r.feed(encodeCloseSignal(kChannelStdout));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->stream, ExecStream::Stdout);
  e = r.feed(encodeCloseSignal(kChannelStatus));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, ChannelEvent::Kind::Ignored);
}

TEST(ChannelReader, CloseSignalOnV4IsAProtocolError) {
  ChannelReader r(ChannelProtocol::V4);
  auto e = r.feed(encodeCloseSignal(kChannelStdout));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, ErrorCode::SandboxExecFailed);
  EXPECT_EQ(e.error().details.at("reason"), "protocol");
}

TEST(ChannelReader, MalformedMessagesFailAndStayFailed) {
  const std::string cases[] = {
      std::string(),                   // no channel byte
      msg(5, "x"),                     // unknown channel
      msg(200),                        // unknown channel, ready form
      msg(0, "echo"),                  // server never writes stdin
      msg(4, "{}"),                    // nor resize
      std::string("\xff", 1),          // close signal without its stream
      std::string("\xff\x01\x01", 3),  // close signal too long
      std::string("\xff\x09", 2),      // close of an unknown channel
  };
  for (const auto& c : cases) {
    ChannelReader r(ChannelProtocol::V5);
    auto e = r.feed(c);
    ASSERT_FALSE(e.ok()) << "case of " << c.size() << " bytes";
    EXPECT_EQ(e.error().details.at("reason"), "protocol");
    auto again = r.feed(msg(1, "x"));  // sticky
    ASSERT_FALSE(again.ok());
    EXPECT_FALSE(r.exitCode().ok());
  }
}

TEST(ChannelReader, StatusSplitAcrossMessagesIsReassembled) {
  ChannelReader r(ChannelProtocol::V5);
  const std::string status = kExit42;
  for (std::size_t cut = 0; cut <= status.size(); ++cut) {
    ChannelReader rr(ChannelProtocol::V5);
    if (cut > 0) ASSERT_TRUE(rr.feed(msg(3, status.substr(0, cut))).ok());
    if (cut < status.size()) ASSERT_TRUE(rr.feed(msg(3, status.substr(cut))).ok());
    auto code = rr.exitCode();
    ASSERT_TRUE(code.ok()) << cut << ": " << code.error().message;
    EXPECT_EQ(code.value(), 42);
  }
}

TEST(ChannelReader, NoStatusIsNotASuccess) {
  ChannelReader r(ChannelProtocol::V5);
  ASSERT_TRUE(r.feed(msg(1, "out")).ok());
  auto code = r.exitCode();
  ASSERT_FALSE(code.ok());
  EXPECT_EQ(code.error().code, ErrorCode::SandboxExecFailed);
}

TEST(ChannelReader, StatusIsBounded) {
  ChannelReader r(ChannelProtocol::V5);
  ASSERT_TRUE(r.feed(msg(3, std::string(ChannelReader::kMaxStatusBytes, ' '))).ok());
  EXPECT_FALSE(r.feed(msg(3, " ")).ok());
}

TEST(ExitCodeFromStatus, SuccessIsZero) {
  auto c = exitCodeFromStatus(R"({"metadata":{},"status":"Success"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value(), 0);
}

TEST(ExitCodeFromStatus, NonZeroExitCodeComesFromTheExitCodeCause) {
  auto c = exitCodeFromStatus(kExit42);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value(), 42);
  // The ExitCode cause is found among others, wherever it is.
  c = exitCodeFromStatus(
      R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[)"
      R"({"reason":"Other","message":"1"},{"reason":"ExitCode","message":"137"}]}})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value(), 137);
}

TEST(ExitCodeFromStatus, BadExitCodesAreProtocolErrors) {
  for (const char* m : {"-1", "256", "4x", "", " 1"}) {
    auto c = exitCodeFromStatus(std::string(R"({"status":"Failure","reason":"NonZeroExitCode",)") +
                                R"("details":{"causes":[{"reason":"ExitCode","message":")" + m +
                                R"("}]}})");
    ASSERT_FALSE(c.ok()) << m;
    EXPECT_EQ(c.error().details.at("reason"), "protocol");
  }
  auto c = exitCodeFromStatus(R"({"status":"Failure","reason":"NonZeroExitCode"})");
  ASSERT_FALSE(c.ok());
}

TEST(ExitCodeFromStatus, OtherFailuresAreErrorsOfTheirOwn) {
  auto c = exitCodeFromStatus(
      R"j({"status":"Failure","message":"container not found (\"nope\")","reason":"InternalError"})j");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::K8sNotFound);
  EXPECT_EQ(c.error().details.at("reason"), "ContainerNotFound");
  EXPECT_NE(c.error().message.find("nope"), std::string::npos);

  c = exitCodeFromStatus(
      R"({"status":"Failure","message":"error dialing backend","reason":"InternalError"})");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::K8sApiError);
  EXPECT_EQ(c.error().details.at("k8sReason"), "InternalError");
  EXPECT_NE(c.error().message.find("error dialing backend"), std::string::npos);
}

TEST(ExitCodeFromStatus, NotAStatusIsAProtocolError) {
  for (const char* j : {"", "[]", "{", R"({"status":"Maybe"})", "null", R"({"status":1})"}) {
    auto c = exitCodeFromStatus(j);
    ASSERT_FALSE(c.ok()) << j;
    EXPECT_EQ(c.error().details.at("reason"), "protocol") << j;
  }
}

// Every prefix of a message stream, fed whole-message by whole-message, either succeeds or
// fails cleanly; the order and content of output is preserved exactly.
TEST(ChannelReader, ByteByByteOutputMessages) {
  const std::string bin = allBytes();
  for (std::size_t n = 1; n <= bin.size(); ++n) {
    ChannelReader r(ChannelProtocol::V5);
    std::string out;
    for (std::size_t i = 0; i < bin.size(); i += n) {
      const std::string m = msg(1, bin.substr(i, n));
      auto e = r.feed(m);
      ASSERT_TRUE(e.ok());
      out.append(e->data);
    }
    ASSERT_EQ(out, bin) << n;
  }
}

}  // namespace
}  // namespace agentpane::k8s
