// The watch-event splitter: the same objects whatever the chunking — every split point of a
// stream (one cut, then two cuts), byte by byte — and its failures.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "k8s/watch_splitter.hpp"

namespace agentpane::k8s {
namespace {

// Events whose strings hold what could fool a splitter: braces, brackets, escaped quotes,
// backslashes before quotes, escaped unicode, nested arrays and objects.
const std::vector<std::string> kObjects = {
    R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"}}})",
    R"({"type":"MODIFIED","object":{"data":{"k":"} { ] [ \" }"}}})",
    R"({"type":"DELETED","object":{"s":"\\","t":"\\\"}","u":"\u007b"}})",
    R"({"type":"BOOKMARK","object":{"a":[[1,2],{"b":[{}]}],"e":{}}})",
    R"({})",
};

std::string stream() {
  std::string s;
  for (const auto& o : kObjects)
    s += o + "\n";
  return " \r\n" + s;  // leading whitespace too
}

std::vector<std::string> splitAt(const std::string& s, const std::vector<std::size_t>& cuts) {
  JsonObjectSplitter sp(1 << 20);
  std::vector<std::string> out;
  std::size_t prev = 0;
  for (std::size_t c : cuts) {
    EXPECT_TRUE(sp.feed(std::string_view(s).substr(prev, c - prev), out).ok());
    prev = c;
  }
  EXPECT_TRUE(sp.feed(std::string_view(s).substr(prev), out).ok());
  EXPECT_FALSE(sp.midObject());
  return out;
}

TEST(JsonObjectSplitter, SameObjectsAtEverySplitPoint) {
  const std::string s = stream();
  for (std::size_t i = 0; i <= s.size(); ++i)
    ASSERT_EQ(splitAt(s, {i}), kObjects) << "cut at " << i;
}

TEST(JsonObjectSplitter, SameObjectsAtEveryPairOfSplitPoints) {
  const std::string s = stream();
  for (std::size_t i = 0; i <= s.size(); ++i)
    for (std::size_t j = i; j <= s.size(); ++j)
      ASSERT_EQ(splitAt(s, {i, j}), kObjects) << "cuts at " << i << "," << j;
}

TEST(JsonObjectSplitter, ByteByByteAndEveryObjectParses) {
  const std::string s = stream();
  JsonObjectSplitter sp(1 << 20);
  std::vector<std::string> out;
  for (char c : s) {
    std::size_t before = out.size();
    ASSERT_TRUE(sp.feed(std::string_view(&c, 1), out).ok());
    // An object comes out exactly at its closing brace, never earlier.
    if (out.size() > before) {
      EXPECT_EQ(c, '}');
      EXPECT_FALSE(sp.midObject());
    }
  }
  ASSERT_EQ(out, kObjects);
  for (const auto& o : out)
    EXPECT_FALSE(nlohmann::json::parse(o, nullptr, false).is_discarded()) << o;
}

TEST(JsonObjectSplitter, ObjectsWithoutSeparatorsAndAPartialTail) {
  JsonObjectSplitter sp(1024);
  std::vector<std::string> out;
  ASSERT_TRUE(sp.feed(R"({"a":1}{"b":2}{"c":)", out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{R"({"a":1})", R"({"b":2})"}));
  EXPECT_TRUE(sp.midObject());
  ASSERT_TRUE(sp.feed("3}", out).ok());
  EXPECT_EQ(out.back(), R"({"c":3})");
}

TEST(JsonObjectSplitter, RefusesWhatIsNotAnObjectAndStaysFailed) {
  JsonObjectSplitter sp(1024);
  std::vector<std::string> out;
  auto r = sp.feed(R"({"a":1} x {"b":2})", out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(out.size(), 1u);  // what came before the garbage was delivered
  EXPECT_FALSE(sp.feed(R"({"c":3})", out).ok());
  sp.reset();
  EXPECT_TRUE(sp.feed(R"({"c":3})", out).ok());
  EXPECT_EQ(out.size(), 2u);
}

TEST(JsonObjectSplitter, RefusesABracketThatClosesTheWrongOpener) {
  // Found by fuzzing: "]" must not end an object that "{" opened.
  for (const char* bad : {R"({"a":[1}])", R"({"a":1])", R"({"a":{"b":[}]}})"}) {
    JsonObjectSplitter sp(1024);
    std::vector<std::string> out;
    auto r = sp.feed(bad, out);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
    EXPECT_TRUE(out.empty()) << bad;
  }
}

TEST(JsonObjectSplitter, BoundsTheSizeOfAnObjectAcrossChunks) {
  JsonObjectSplitter sp(64);
  std::vector<std::string> out;
  ASSERT_TRUE(sp.feed(R"({"k":")" + std::string(40, 'x'), out).ok());
  auto r = sp.feed(std::string(40, 'x') + "\"}", out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::PayloadTooLarge);
  EXPECT_TRUE(out.empty());
  // Exactly at the bound is fine.
  JsonObjectSplitter exact(10);
  ASSERT_TRUE(exact.feed(R"({"k":"xx"})", out).ok());
  EXPECT_EQ(out.size(), 1u);
}

}  // namespace
}  // namespace agentpane::k8s
