#include <gtest/gtest.h>

#include "unit/docker/frames.hpp"

#include <random>

#include "docker/multiplex.hpp"

namespace agentpane::docker {
namespace {

using agentpane::docker::testing::frame;

struct Collected {
  std::string out, err;
  std::string order;  // one letter per piece: o / e
};

void collect(const std::vector<MuxPiece>& pieces, Collected& c) {
  for (const auto& p : pieces) {
    EXPECT_FALSE(p.data.empty());
    if (p.stream == MuxStream::Stdout) {
      c.out.append(p.data);
      if (c.order.empty() || c.order.back() != 'o') c.order += 'o';
    } else if (p.stream == MuxStream::Stderr) {
      c.err.append(p.data);
      if (c.order.empty() || c.order.back() != 'e') c.order += 'e';
    }
  }
}

std::string sample() {
  std::string bin;
  for (int i = 0; i < 256; ++i)
    bin += static_cast<char>(i);
  return frame(1, "hello ") + frame(2, "warn\n") + frame(1, "") + frame(1, bin) +
         frame(2, std::string(1, '\0')) + frame(1, "end");
}

TEST(MultiplexParser, WholeFramesInOneFeed) {
  MultiplexParser p;
  std::vector<MuxPiece> pieces;
  std::string bytes = sample();
  ASSERT_TRUE(p.feed(bytes, pieces).ok());
  Collected c;
  collect(pieces, c);
  std::string bin;
  for (int i = 0; i < 256; ++i)
    bin += static_cast<char>(i);
  EXPECT_EQ(c.out, "hello " + bin + "end");
  EXPECT_EQ(c.err, std::string("warn\n") + '\0');
  EXPECT_EQ(c.order, "oeoeo");
  EXPECT_TRUE(p.atFrameBoundary());
}

TEST(MultiplexParser, SplitAtEveryBytePosition) {
  const std::string bytes = sample();
  MultiplexParser ref;
  std::vector<MuxPiece> refPieces;
  ASSERT_TRUE(ref.feed(bytes, refPieces).ok());
  Collected want;
  collect(refPieces, want);

  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    MultiplexParser p;
    Collected got;
    std::vector<MuxPiece> pieces;
    ASSERT_TRUE(p.feed(std::string_view(bytes).substr(0, cut), pieces).ok());
    collect(pieces, got);
    pieces.clear();
    ASSERT_TRUE(p.feed(std::string_view(bytes).substr(cut), pieces).ok());
    collect(pieces, got);
    EXPECT_EQ(got.out, want.out) << "cut at " << cut;
    EXPECT_EQ(got.err, want.err) << "cut at " << cut;
    EXPECT_EQ(got.order, want.order) << "cut at " << cut;
    EXPECT_TRUE(p.atFrameBoundary());
  }
}

TEST(MultiplexParser, OneByteAtATimeAndRandomSplits) {
  const std::string bytes = sample();
  MultiplexParser p;
  Collected got;
  for (char b : bytes) {
    std::vector<MuxPiece> pieces;
    ASSERT_TRUE(p.feed(std::string_view(&b, 1), pieces).ok());
    collect(pieces, got);
  }
  Collected want;
  MultiplexParser ref;
  std::vector<MuxPiece> refPieces;
  ASSERT_TRUE(ref.feed(bytes, refPieces).ok());
  collect(refPieces, want);
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.err, want.err);

  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    MultiplexParser q;
    Collected c;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
      n = std::min(n, bytes.size() - pos);
      std::vector<MuxPiece> pieces;
      ASSERT_TRUE(q.feed(std::string_view(bytes).substr(pos, n), pieces).ok());
      collect(pieces, c);
      pos += n;
    }
    EXPECT_EQ(c.out, want.out);
    EXPECT_EQ(c.err, want.err);
  }
}

TEST(MultiplexParser, LargePayloadIsNotBuffered) {
  // A 16 MiB frame fed in 64 KiB reads comes out as pieces the size of the reads.
  const std::size_t size = 16u << 20;
  std::string header = frame(1, "").substr(0, 8);
  header[4] = static_cast<char>(size >> 24);
  header[5] = static_cast<char>((size >> 16) & 0xFF);
  header[6] = 0;
  header[7] = 0;
  MultiplexParser p;
  std::vector<MuxPiece> pieces;
  ASSERT_TRUE(p.feed(header, pieces).ok());
  EXPECT_TRUE(pieces.empty());
  EXPECT_FALSE(p.atFrameBoundary());
  std::string chunk(64u << 10, 'z');
  std::size_t total = 0;
  for (std::size_t i = 0; i < size / chunk.size(); ++i) {
    pieces.clear();
    ASSERT_TRUE(p.feed(chunk, pieces).ok());
    ASSERT_EQ(pieces.size(), 1u);
    total += pieces[0].data.size();
  }
  EXPECT_EQ(total, size);
  EXPECT_TRUE(p.atFrameBoundary());
}

TEST(MultiplexParser, MalformedHeadersFailAndStayFailed) {
  for (std::string bad :
       {std::string("\x04\0\0\0\0\0\0\x01", 8), std::string("\x01\x01\0\0\0\0\0\x01", 8),
        std::string("\x01\0\0\x07\0\0\0\x01", 8), std::string("HTTP/1.1 200 OK\r\n")}) {
    MultiplexParser p;
    std::vector<MuxPiece> pieces;
    auto r = p.feed(bad, pieces);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::SandboxExecFailed);
    EXPECT_FALSE(p.feed(frame(1, "x"), pieces).ok());
  }
}

TEST(MultiplexParser, SystemAndStdinFramesAreReported) {
  MultiplexParser p;
  std::vector<MuxPiece> pieces;
  const std::string bytes = frame(3, "oci runtime error") + frame(0, "in");
  ASSERT_TRUE(p.feed(bytes, pieces).ok());
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].stream, MuxStream::System);
  EXPECT_EQ(pieces[0].data, "oci runtime error");
  EXPECT_EQ(pieces[1].stream, MuxStream::Stdin);
}

}  // namespace
}  // namespace agentpane::docker
