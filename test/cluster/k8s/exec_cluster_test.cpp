// Exec over WebSocket against the real test cluster's apiserver and kubelet, with the
// least-privilege ServiceAccount kubeconfig (it may create, get, delete and exec into pods
// in agentpane-sandboxes). One restricted pod of the sandbox image serves every test and
// is deleted at the end.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "cluster/k8s/exec_cluster_fixture.hpp"
#include "common/hash.hpp"
#include "k8s/exec_session.hpp"

namespace agentpane::k8s {
namespace {

using exectest::ClusterApi;

class ExecOnCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    api_ = ClusterApi::fromEnv().release();
    if (api_ == nullptr) return;
    pod_ = "agentpane-exec-test-" + exectest::runSuffix();
    podError_ = api_->createRunningPod(pod_);
  }
  static void TearDownTestSuite() {
    if (api_ != nullptr) api_->deletePod(pod_);
    delete api_;
    api_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(api_, nullptr) << "no usable cluster kubeconfig";
    ASSERT_EQ(podError_, "") << "the test pod did not start";
  }

  ExecSpec spec(std::vector<std::string> argv) {
    ExecSpec s;
    s.namespaceName = exectest::kNamespace;
    s.pod = pod_;
    s.argv = std::move(argv);
    return s;
  }

  Result<std::unique_ptr<K8sExecSession>> open(const ExecSpec& s) {
    return openExec(api_->io(), api_->config(), s);
  }

  Result<ExecResult> run(const ExecSpec& s, std::optional<std::string> stdinData = {}) {
    auto session = open(s);
    if (!session.ok()) return session.takeError();
    ExecRequest req;
    req.argv = s.argv;
    req.options.attachStdin = s.attachStdin;
    req.stdinData = std::move(stdinData);
    return runToCompletion(*session.value(), req);
  }

  static ClusterApi* api_;
  static std::string pod_;
  static std::string podError_;
};

ClusterApi* ExecOnCluster::api_ = nullptr;
std::string ExecOnCluster::pod_;
std::string ExecOnCluster::podError_;

TEST_F(ExecOnCluster, ExitCodesZeroFortyTwoAndKilledBySignal) {
  auto ok = run(spec({"true"}));
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  EXPECT_EQ(ok->exitCode, 0);

  auto code42 = run(spec({"sh", "-c", "exit 42"}));
  ASSERT_TRUE(code42.ok()) << code42.error().describe();
  EXPECT_EQ(code42->exitCode, 42);

  auto killed = run(spec({"sh", "-c", "kill -9 $$"}));
  ASSERT_TRUE(killed.ok()) << killed.error().describe();
  EXPECT_EQ(killed->exitCode, 137);
}

TEST_F(ExecOnCluster, NegotiatesV5) {
  auto s = open(spec({"true"}));
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(s.value()->protocol(), ChannelProtocol::V5);
}

TEST_F(ExecOnCluster, StdoutAndStderrStaySeparate) {
  auto r = run(spec({"sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2"}));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "out-1\nout-2\n");
  EXPECT_EQ(r->stderrData, "err-1\nerr-2\n");
  EXPECT_EQ(r->exitCode, 0);
}

TEST_F(ExecOnCluster, ArgvIsNotInterpretedByAShell) {
  auto r = run(spec({"printf", "%s|", "a b", "$HOME", "';&", ""}));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "a b|$HOME|';&||");
}

// 64 MiB of random bytes: the pod writes them to a file, prints the file's sha256 on stderr
// and the bytes on stdout; what we received must hash to the same value.
TEST_F(ExecOnCluster, SixtyFourMebibytesArriveIntact) {
  auto r = run(spec({"sh", "-c",
                     "head -c 67108864 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && "
                     "cat /tmp/blob; rc=$?; rm -f /tmp/blob; exit $rc"}));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0);
  ASSERT_EQ(r->stdoutData.size(), 67108864u);
  ASSERT_GE(r->stderrData.size(), 64u) << r->stderrData;
  EXPECT_EQ(sha256Hex(r->stdoutData), r->stderrData.substr(0, 64));
}

TEST_F(ExecOnCluster, StdinWithEof) {
  std::string data = "hello\n";
  data.push_back('\0');
  data += "binary\xff\x01 end";
  ExecSpec catSpec = spec({"cat"});
  catSpec.attachStdin = true;
  auto echoed = run(catSpec, data);
  ASSERT_TRUE(echoed.ok()) << echoed.error().describe();
  EXPECT_EQ(echoed->exitCode, 0);
  EXPECT_TRUE(echoed->stdoutData == data);

  ExecSpec wcSpec = spec({"wc", "-c"});
  wcSpec.attachStdin = true;
  auto counted = run(wcSpec, std::string(3u << 20, 'z'));  // several stdin messages
  ASSERT_TRUE(counted.ok()) << counted.error().describe();
  EXPECT_EQ(counted->stdoutData, std::to_string(3u << 20) + "\n");

  ExecSpec emptySpec = spec({"wc", "-c"});
  emptySpec.attachStdin = true;
  auto none = run(emptySpec, std::string());
  ASSERT_TRUE(none.ok()) << none.error().describe();
  EXPECT_EQ(none->stdoutData, "0\n");
}

TEST_F(ExecOnCluster, V4Fallback) {
  ExecSpec s = spec({"sh", "-c", "echo v4-out; echo v4-err >&2; exit 7"});
  s.offerV5 = false;
  auto session = open(s);
  ASSERT_TRUE(session.ok()) << session.error().describe();
  EXPECT_EQ(session.value()->protocol(), ChannelProtocol::V4);
  ExecRequest req;
  auto r = runToCompletion(*session.value(), req);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 7);
  EXPECT_EQ(r->stdoutData, "v4-out\n");
  EXPECT_EQ(r->stderrData, "v4-err\n");

  // Stdin still flows on v4; only its EOF cannot be sent.
  ExecSpec head = spec({"head", "-c", "5"});
  head.offerV5 = false;
  head.attachStdin = true;
  auto hs = open(head);
  ASSERT_TRUE(hs.ok()) << hs.error().describe();
  ASSERT_TRUE(hs.value()->writeStdin("abcdefgh").ok());
  auto eof = hs.value()->closeStdin();
  ASSERT_FALSE(eof.ok());
  EXPECT_EQ(eof.error().details.at("reason"), "stdinEofUnsupported");
  ExecRequest none;
  auto hr = runToCompletion(*hs.value(), none);
  ASSERT_TRUE(hr.ok()) << hr.error().describe();
  EXPECT_EQ(hr->stdoutData, "abcde");
}

TEST_F(ExecOnCluster, MissingContainerAndPodAreCodedErrors) {
  ExecSpec s = spec({"true"});
  s.container = "nope";
  auto r = run(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::K8sNotFound) << r.error().describe();
  EXPECT_NE(r.error().message.find("nope"), std::string::npos) << r.error().message;

  ExecSpec p = spec({"true"});
  p.pod = "agentpane-no-such-pod";
  auto rp = run(p);
  ASSERT_FALSE(rp.ok());
  EXPECT_EQ(rp.error().code, ErrorCode::K8sNotFound) << rp.error().describe();
}

// A quiet stream survives pings: with a 300 ms interval the stream fails after 600 ms
// without a pong, so a 3 s silence only passes if the apiserver answers our pings.
TEST_F(ExecOnCluster, QuietStreamStaysUpWithPings) {
  ExecSpec s = spec({"sh", "-c", "sleep 3; echo done"});
  s.pingInterval = std::chrono::milliseconds(300);
  auto r = run(s);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "done\n");
}

// On timeout the session reports ExecTimeout and the process is killed in the pod (by the
// `timeout -s KILL` wrapper): a later exec no longer finds it.
TEST_F(ExecOnCluster, TimeoutKillsTheRemoteProcess) {
  ExecSpec s = spec({"sleep", "3017"});
  s.timeout = std::chrono::milliseconds(1500);
  auto r = run(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout) << r.error().describe();

  // The in-pod kill happens at the wrapper's own 1.5 s, a moment after our deadline: look
  // a few times (each look is an exec), bounded.
  bool gone = false;
  std::string seen;
  for (int i = 0; i < 50 && !gone; ++i) {
    auto ps = run(spec({"sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"}));
    ASSERT_TRUE(ps.ok()) << ps.error().describe();
    seen = ps->stdoutData;
    gone = seen.find("sleep 3017") == std::string::npos;
  }
  EXPECT_TRUE(gone) << "still running: " << seen;
}

}  // namespace
}  // namespace agentpane::k8s
