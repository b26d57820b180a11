// The WebSocket routes: streaming exec (stdin, EOF, exit, errors, client going away) and
// the polled tmux attach.
#include <gtest/gtest.h>

#include <thread>

#include "unit/server/fake_server_fixture.hpp"

namespace agentpane::testing {
namespace {

using nlohmann::json;

class WebSocketTest : public FakeServerTest {
 protected:
  void SetUp() override {
    FakeServerTest::SetUp();
    id = ts->createSandbox();
  }

  std::string execTarget() const { return "/api/sandboxes/" + id + "/exec/stream"; }

  // Splits what the server sent into stdout, stderr and the final control message.
  struct Transcript {
    std::string out, err;
    json last;  // the last text message
    int textMessages = 0;
  };
  static Transcript collect(const std::vector<WsClient::Message>& msgs) {
    Transcript t;
    for (const auto& m : msgs) {
      if (m.text) {
        t.last = json::parse(m.data);
        ++t.textMessages;
        continue;
      }
      EXPECT_FALSE(m.data.empty());
      if (m.data[0] == 1)
        t.out += m.data.substr(1);
      else if (m.data[0] == 2)
        t.err += m.data.substr(1);
      else
        ADD_FAILURE() << "unknown stream byte " << int(m.data[0]);
    }
    return t;
  }

  std::string id;
};

TEST_F(WebSocketTest, ExecStreamsStdinThroughToEof) {
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, json{{"argv", {"cat"}}}.dump()));
  ASSERT_TRUE(ws.write(false, "hello "));
  std::string binary("\x00\xff\x10world", 8);
  ASSERT_TRUE(ws.write(false, binary));
  ASSERT_TRUE(ws.write(true, R"({"type":"eof"})"));
  auto t = collect(ws.readAll());
  EXPECT_EQ(t.out, "hello " + binary);
  EXPECT_EQ(t.err, "");
  EXPECT_EQ(t.last, (json{{"type", "exit"}, {"exitCode", 0}}));
  EXPECT_TRUE(ws.closedNormally()) << ws.lastError.message();
  EXPECT_EQ(ws.closeCode(), 1000);
  EXPECT_EQ(fake->lastAttachStdin.load(), 1);
}

TEST_F(WebSocketTest, ExecSeparatesStreamsAndReportsTheExitCode) {
  fake->execHandler = [](auto&, auto&, auto&) {
    return Result<ExecResult>(ExecResult{7, "to out", "to err"});
  };
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, json{{"argv", {"sh", "-c", "x"}}, {"timeoutSeconds", 30}}.dump()));
  ASSERT_TRUE(ws.write(true, R"({"type":"eof"})"));
  auto t = collect(ws.readAll());
  EXPECT_EQ(t.out, "to out");
  EXPECT_EQ(t.err, "to err");
  EXPECT_EQ(t.last["type"], "exit");
  EXPECT_EQ(t.last["exitCode"], 7);
  EXPECT_TRUE(ws.closedNormally());
}

TEST_F(WebSocketTest, ExecErrorsArriveAsAnErrorMessageThenAClose) {
  struct Case {
    std::string first;
    bool text;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"not json", true, "VALIDATION_ERROR"},
      {R"({"argv":[]})", true, "VALIDATION_ERROR"},
      {R"({"argv":"ls"})", true, "VALIDATION_ERROR"},
      {R"({"argv":["ls"],"shell":true})", true, "VALIDATION_ERROR"},
      {R"({"argv":["ls"],"timeoutSeconds":"x"})", true, "VALIDATION_ERROR"},
      {"binary first", false, "VALIDATION_ERROR"},
  };
  for (const auto& c : cases) {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
    ASSERT_TRUE(ws.write(c.text, c.first));
    auto t = collect(ws.readAll());
    EXPECT_EQ(t.last["type"], "error") << c.first;
    EXPECT_EQ(t.last["code"], c.code) << c.first;
    EXPECT_TRUE(ws.closedNormally()) << c.first;
  }
  // Unknown sandbox, and a provider failure.
  {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect("/api/sandboxes/sbx-000000000000/exec/stream", ts->wsAuth()));
    ASSERT_TRUE(ws.write(true, R"({"argv":["ls"]})"));
    auto t = collect(ws.readAll());
    EXPECT_EQ(t.last["code"], "SANDBOX_NOT_FOUND");
  }
  {
    fake->failNext("openExec", Error(ErrorCode::SandboxProviderUnavailable, "engine down"));
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
    ASSERT_TRUE(ws.write(true, R"({"argv":["ls"]})"));
    auto t = collect(ws.readAll());
    EXPECT_EQ(t.last["code"], "SANDBOX_PROVIDER_UNAVAILABLE");
  }
  // A hostile id never upgrades.
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect("/api/sandboxes/a;id/exec/stream", ts->wsAuth()));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 400u);
  }
}

TEST_F(WebSocketTest, ExecTimeoutIsReported) {
  fake->failNext("openExec", Error(ErrorCode::ExecTimeout, "timed out after 1s"));
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, R"({"argv":["sleep","10"],"timeoutSeconds":1})"));
  auto t = collect(ws.readAll());
  EXPECT_EQ(t.last["type"], "error");
  EXPECT_EQ(t.last["code"], "EXEC_TIMEOUT");
}

TEST_F(WebSocketTest, UnknownControlMessageEndsTheCommand) {
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, R"({"argv":["block"]})"));
  ASSERT_TRUE(ws.write(true, R"({"type":"resize"})"));
  auto t = collect(ws.readAll());
  EXPECT_EQ(t.textMessages, 1);
  EXPECT_EQ(t.last["code"], "VALIDATION_ERROR");
  EXPECT_EQ(fake->cancels.load(), 1);
}

TEST_F(WebSocketTest, ClientGoingAwayCancelsTheCommand) {
  {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
    ASSERT_TRUE(ws.write(true, R"({"argv":["block"]})"));
    ws.close();
  }
  {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
    ASSERT_TRUE(ws.write(true, R"({"argv":["block"]})"));
    ws.drop();
  }
  for (int i = 0; i < 500 && fake->cancels.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(fake->cancels.load(), 2);
  // The server is still fine.
  EXPECT_EQ(ts->client().get("/api/health").status, 200);
}

TEST_F(WebSocketTest, ExecCountsInMetrics) {
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect(execTarget(), ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, R"({"argv":["cat"]})"));
  ASSERT_TRUE(ws.write(true, R"({"type":"eof"})"));
  ws.readAll();
  auto m = ts->client().get("/metrics");
  EXPECT_NE(m.body.find("agentpane_exec_total{provider=\"docker\",result=\"ok\"} 1"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("agentpane_http_requests_total{route=\"/api/sandboxes/:id/exec/"
                        "stream\",method=\"GET\",status=\"101\"} 1"),
            std::string::npos)
      << m.body;
}

TEST_F(WebSocketTest, TmuxAttachIsOneTerminalStreamPerViewer) {
  auto c = ts->client();
  ASSERT_EQ(c.post("/api/sandboxes/" + id + "/tmux", {{"name", "main"}}).status, 201);
  auto execs = [&] {
    return fake->callCount("exec") + fake->callCount("openExec") + fake->attaches.load();
  };
  const int before = execs();
  WsClient a(ts->port());
  WsClient b(ts->port());
  ASSERT_TRUE(
      a.connect("/api/sandboxes/" + id + "/tmux/main/attach?rows=30&cols=100", ts->wsAuth()));
  ASSERT_TRUE(b.connect("/api/sandboxes/" + id + "/tmux/main/attach", ts->wsAuth()));
  // Each viewer's keys reach its terminal (the fake terminal echoes them back).
  for (int i = 0; i < 20; ++i) {
    for (WsClient* v : {&a, &b}) {
      const std::string keys = "key" + std::to_string(i) + "\r";
      ASSERT_TRUE(v->write(i % 2 == 0, keys));
      auto echoed = v->read();
      ASSERT_TRUE(echoed.has_value());
      EXPECT_FALSE(echoed->text);
      EXPECT_EQ(echoed->data, keys);
    }
  }
  // Attaching took one look at the session and one stream per viewer; forty keystrokes and
  // the time they took cost no exec at all (no polling, no exec per key).
  EXPECT_EQ(fake->attaches.load(), 2);
  EXPECT_EQ(execs() - before, 2 + 2);
  // Keys are not audited one by one.
  AuditQuery q;
  q.sandboxId = id;
  auto audit = ts->service().audit(q);
  ASSERT_TRUE(audit.ok());
  for (const auto& e : audit.value())
    EXPECT_NE(e.action, "tmux.keys");
  // A viewer that leaves ends its own tmux client only.
  const int cancelsBefore = fake->cancels.load();
  a.close();
  auto still = b.write(false, "x");
  ASSERT_TRUE(still);
  auto echoed = b.read();
  ASSERT_TRUE(echoed.has_value());
  EXPECT_EQ(echoed->data, "x");
  for (int i = 0; i < 2000 && fake->cancels.load() == cancelsBefore; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(fake->cancels.load(), cancelsBefore + 1);
}

// With ?control=1 a text frame is a control message (a resize); binary frames stay keys; a bad
// message is an error frame and the stream goes on. Without it, text frames are keys.
TEST_F(WebSocketTest, TmuxAttachResizesOnAControlMessage) {
  auto c = ts->client();
  ASSERT_EQ(c.post("/api/sandboxes/" + id + "/tmux", {{"name", "main"}}).status, 201);
  WsClient ws(ts->port());
  ASSERT_TRUE(ws.connect("/api/sandboxes/" + id + "/tmux/main/attach?control=1", ts->wsAuth()));
  ASSERT_TRUE(ws.write(true, R"({"type":"resize","rows":40,"cols":120})"));
  auto m = ws.read();
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->text);
  EXPECT_EQ(m->data, "[size 40x120]");
  ASSERT_TRUE(ws.write(false, "ls\r"));
  m = ws.read();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data, "ls\r");
  for (const std::string& bad :
       {std::string("ls\r"), std::string(R"({"type":"resize","rows":0,"cols":80})"),
        std::string(R"({"type":"resize","rows":24,"cols":1001})"),
        std::string(R"({"type":"resize","rows":"24","cols":80})"),
        std::string(R"({"type":"resize","rows":24})"), std::string(R"({"type":"zoom"})")}) {
    ASSERT_TRUE(ws.write(true, bad));
    m = ws.read();
    ASSERT_TRUE(m.has_value()) << bad;
    ASSERT_TRUE(m->text) << bad << " -> " << m->data;
    auto err = json::parse(m->data);
    EXPECT_EQ(err["type"], "error") << bad;
    EXPECT_EQ(err["code"], "VALIDATION_ERROR") << bad;
  }
  // Still open: the next resize and keys go through.
  ASSERT_TRUE(ws.write(true, R"({"type":"resize","rows":10,"cols":20})"));
  m = ws.read();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data, "[size 10x20]");

  WsClient plain(ts->port());
  ASSERT_TRUE(plain.connect("/api/sandboxes/" + id + "/tmux/main/attach", ts->wsAuth()));
  const std::string typed = R"({"type":"resize","rows":40,"cols":120})";
  ASSERT_TRUE(plain.write(true, typed));
  m = plain.read();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data, typed) << "without control=1 a text frame is keys";
}

TEST_F(WebSocketTest, TmuxAttachRefusesBadInput) {
  {
    WsClient ws(ts->port());
    EXPECT_FALSE(ws.connect("/api/sandboxes/" + id + "/tmux/a;b/attach", ts->wsAuth()));
    EXPECT_EQ(ws.upgradeResponse.result_int(), 400u);
  }
  for (const std::string& query :
       {"?rows=0", "?cols=1001", "?rows=x", "?lines=20", "?control=yes"}) {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect("/api/sandboxes/" + id + "/tmux/main/attach" + query, ts->wsAuth()));
    auto msgs = ws.readAll();
    ASSERT_FALSE(msgs.empty()) << query;
    EXPECT_EQ(json::parse(msgs.back().data)["code"], "VALIDATION_ERROR") << query;
  }
  {
    WsClient ws(ts->port());
    ASSERT_TRUE(ws.connect("/api/sandboxes/" + id + "/tmux/nosuch/attach", ts->wsAuth()));
    auto msgs = ws.readAll();
    ASSERT_FALSE(msgs.empty());
    EXPECT_EQ(json::parse(msgs.back().data)["code"], "SANDBOX_TMUX_SESSION_NOT_FOUND");
  }
}

}  // namespace
}  // namespace agentpane::testing
