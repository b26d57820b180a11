// The provider contract suite (SPEC "Providers"): written once, run against every provider
// on its real backend. A provider's test binary includes this header in exactly one .cpp
// and defines makeHarness(); nothing else is provider-specific.
//
// Isolation: the harness gives each run a provider scoped to a unique label and a unique
// project id, so the suite sees, cleans up and checks for leaks only what it made itself,
// even on an engine other people use at the same time.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agentpane/provider.hpp"
#include "agentpane/tmux.hpp"

namespace agentpane::contract {

struct ProviderHarness {
  std::string name;  // "docker", "kubernetes"
  // A provider on the real backend, scoped to this run (sees only what this run made).
  std::function<std::unique_ptr<SandboxProvider>()> makeProvider;
  // A provider pointed at a backend that is not there.
  std::function<std::unique_ptr<SandboxProvider>()> makeUnreachableProvider;
  ErrorCode unreachableCode = ErrorCode::SandboxProviderUnavailable;
  std::string image;        // an image with sh, coreutils, procps and tmux; uid 1000 exists
  std::string runId;        // unique per run; used as project id
  bool rootAllowed = true;  // false: ExecOptions.root must be refused with ValidationError
  // The project directory is the same directory on this host (bind mount or hostPath PV).
  bool workspaceSharedWithHost = true;
  // What create() of an image the backend does not have fails with.
  ErrorCode unknownImageCode = ErrorCode::SandboxImageNotFound;
  // >= 0: project directories are given to this uid and gid (a sandbox runs as the
  // project's owner; Kubernetes refuses root-owned ones, Docker runs them as root).
  int projectOwner = -1;
};

// Defined by the provider's contract test file.
ProviderHarness makeHarness();

namespace detail {

inline ProviderHarness& harness() {
  static ProviderHarness h = makeHarness();
  return h;
}

inline std::string sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xF];
  }
  return out;
}

inline std::string tempProjectDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "agentpane-contract-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) return {};
  // The sandbox user (uid 1000) writes here.
  ::chmod(made, 0777);
  if (harness().projectOwner >= 0 && ::chown(made, static_cast<uid_t>(harness().projectOwner),
                                             static_cast<gid_t>(harness().projectOwner)) != 0) {
    return {};
  }
  return made;
}

inline std::string shortRandom() {
  std::random_device rd;
  std::uniform_int_distribution<int> d(0, 35);
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[d(rd)];
  return s;
}

inline SandboxSpec makeSpec(const std::string& id, const std::string& dir, int memoryMb) {
  SandboxSpec s;
  s.id = id;
  s.projectId = harness().runId;
  s.agentId = "contract";
  s.projectPath = dir;
  s.image = harness().image;
  s.memoryMb = memoryMb;
  s.cpu = 1.0;
  s.env = {{"CONTRACT_ENV", "from-spec"}};
  return s;
}

}  // namespace detail

class ProviderContract : public ::testing::Test {
 protected:
  static constexpr int kMemoryMb = 768;

  static void SetUpTestSuite() {
    auto& h = detail::harness();
    provider_ = h.makeProvider().release();
    projectDir_ = new std::string(detail::tempProjectDir());
    sharedId_ = new std::string("ct-" + h.runId + "-shared");
    auto made = provider_->create(spec(*sharedId_, *projectDir_));
    if (!made.ok()) {
      sharedError_ = new std::string(made.error().describe());
      sharedRef_ = new SandboxRef(nameOnly(*sharedId_));
    } else {
      sharedRef_ = new SandboxRef(sandboxRef(made.value()));
    }
  }

  static void TearDownTestSuite() {
    if (provider_ == nullptr) return;
    auto removed = provider_->remove(*sharedRef_);
    EXPECT_TRUE(removed.ok()) << removed.error().describe();
    // Nothing of this run may be left behind.
    ListFilter all;
    all.projectId = detail::harness().runId;
    auto left = provider_->list(all);
    EXPECT_TRUE(left.ok());
    if (left.ok()) {
      for (const auto& s : *left) {
        ADD_FAILURE() << "leaked sandbox " << s.id;
        (void)provider_->remove(sandboxRef(s));
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(*projectDir_, ec);
    delete provider_;
    provider_ = nullptr;
  }

  void SetUp() override {
    // A backend that cannot make the shared sandbox fails every test: never a skip.
    if (sharedError_ != nullptr) FAIL() << "shared sandbox could not be created: " << *sharedError_;
  }

  static SandboxSpec spec(const std::string& id, const std::string& dir) {
    return detail::makeSpec(id, dir, kMemoryMb);
  }

  static std::string freshId(const std::string& what) {
    return "ct-" + detail::harness().runId + "-" + what + "-" + detail::shortRandom();
  }

  static Result<ExecResult> run(const std::vector<std::string>& argv, ExecOptions opts = {},
                                std::optional<std::string> stdinData = std::nullopt) {
    ExecRequest req;
    req.argv = argv;
    req.options = std::move(opts);
    req.stdinData = std::move(stdinData);
    return provider_->exec(*sharedRef_, req);
  }

  static std::string sh(const std::string& script) {
    auto r = run({"sh", "-c", script});
    if (!r.ok()) return "ERROR " + r.error().describe();
    return r->stdoutData;
  }

  static SandboxProvider& provider() { return *provider_; }
  static const std::string& sharedId() { return *sharedId_; }
  static const SandboxRef& sharedRef() { return *sharedRef_; }
  // A ref that names only the id, as for a sandbox this run never made.
  static SandboxRef nameOnly(const std::string& id) {
    return SandboxRef{provider_->instance(), "", "", "", id};
  }
  static const std::string& projectDir() { return *projectDir_; }

 private:
  static inline SandboxProvider* provider_ = nullptr;
  static inline std::string* projectDir_ = nullptr;
  static inline std::string* sharedId_ = nullptr;
  static inline SandboxRef* sharedRef_ = nullptr;
  static inline std::string* sharedError_ = nullptr;
};

// ---- lifecycle ---------------------------------------------------------------------------

TEST_F(ProviderContract, CreateReturnsRunningLabelledSandboxThatListFinds) {
  auto got = provider().get(sharedRef());
  ASSERT_TRUE(got.ok()) << got.error().describe();
  EXPECT_EQ(got->state, SandboxState::Running);
  EXPECT_EQ(got->instance, provider().instance());
  EXPECT_EQ(got->id, sharedId());
  EXPECT_EQ(got->projectId, detail::harness().runId);
  EXPECT_EQ(got->agentId, "contract");
  EXPECT_EQ(got->labels.at(labels::kSandbox), "true");
  EXPECT_EQ(got->labels.at(labels::kManaged), "true");
  EXPECT_EQ(got->labels.at(labels::kSandboxId), sharedId());

  ListFilter f;
  f.projectId = detail::harness().runId;
  auto listed = provider().list(f);
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  bool found = false;
  for (const auto& s : *listed) {
    if (s.id != sharedId()) continue;
    found = true;
    EXPECT_EQ(s.projectPath, projectDir());  // rebuilt from the provider, not memory
    EXPECT_EQ(s.image, detail::harness().image);
    EXPECT_EQ(s.state, SandboxState::Running);
    EXPECT_EQ(s.instance, provider().instance());
  }
  EXPECT_TRUE(found);
  // Exec works as soon as create returned; env from the spec is there.
  EXPECT_EQ(sh("printf %s \"$CONTRACT_ENV\""), "from-spec");
}

TEST_F(ProviderContract, StopStartAndRemoveAreIdempotent) {
  std::string dir = detail::tempProjectDir();
  std::string id = freshId("life");
  auto made = provider().create(spec(id, dir));
  ASSERT_TRUE(made.ok()) << made.error().describe();
  const SandboxRef ref = sandboxRef(made.value());
  EXPECT_EQ(ref.instance, provider().instance());

  auto dup = provider().create(spec(id, dir));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::SandboxAlreadyExists) << dup.error().describe();

  ExecRequest write;
  write.argv = {"sh", "-c", "echo kept > /workspace/.contract-start && echo in-sandbox > /tmp/x"};
  auto wrote = provider().exec(ref, write);
  ASSERT_TRUE(wrote.ok() && wrote->exitCode == 0);

  ASSERT_TRUE(provider().stop(ref).ok());
  auto stopped = provider().get(ref);
  ASSERT_TRUE(stopped.ok()) << stopped.error().describe();
  EXPECT_EQ(stopped->state, SandboxState::Stopped) << stopped->stateDetail;
  EXPECT_TRUE(provider().stop(ref).ok());  // again

  ExecRequest req;
  req.argv = {"true"};
  auto onStopped = provider().exec(ref, req);
  ASSERT_FALSE(onStopped.ok());
  EXPECT_EQ(onStopped.error().code, ErrorCode::SandboxNotRunning) << onStopped.error().describe();

  // Start brings it back with its workspace; starting a running sandbox succeeds.
  auto started = provider().start(ref);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  EXPECT_EQ(started->state, SandboxState::Running);
  auto again1 = provider().start(ref);
  ASSERT_TRUE(again1.ok()) << again1.error().describe();
  ExecRequest read;
  read.argv = {"cat", "/workspace/.contract-start"};
  auto kept = provider().exec(ref, read);
  ASSERT_TRUE(kept.ok()) << kept.error().describe();
  EXPECT_EQ(kept->stdoutData, "kept\n");

  auto removed = provider().remove(ref);
  EXPECT_TRUE(removed.ok()) << removed.error().describe();
  auto again = provider().remove(ref);
  EXPECT_TRUE(again.ok()) << again.error().describe();
  auto gone = provider().get(ref);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::SandboxNotFound);
  auto startGone = provider().start(ref);
  ASSERT_FALSE(startGone.ok());
  EXPECT_EQ(startGone.error().code, ErrorCode::SandboxNotFound);
  std::filesystem::remove_all(dir);
}

TEST_F(ProviderContract, UnknownSandbox) {
  const SandboxRef id = nameOnly(freshId("nope"));
  EXPECT_TRUE(provider().remove(id).ok());
  auto got = provider().get(id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::SandboxNotFound);
  auto stop = provider().stop(id);
  ASSERT_FALSE(stop.ok());
  EXPECT_EQ(stop.error().code, ErrorCode::SandboxNotFound);
  ExecRequest req;
  req.argv = {"true"};
  auto ex = provider().exec(id, req);
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.error().code, ErrorCode::SandboxNotFound) << ex.error().describe();
}

TEST_F(ProviderContract, BadProjectPathIsRefusedAndLeavesNothing) {
  std::string id = freshId("path");
  auto missing = provider().create(spec(id, "/nonexistent/agentpane/" + detail::shortRandom()));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::SandboxProjectPathInvalid);

  std::string dir = detail::tempProjectDir();
  std::string file = dir + "/not-a-dir";
  std::ofstream(file) << "x";
  auto notDir = provider().create(spec(id, file));
  ASSERT_FALSE(notDir.ok());
  EXPECT_EQ(notDir.error().code, ErrorCode::SandboxProjectPathInvalid);
  auto got = provider().get(nameOnly(id));
  EXPECT_FALSE(got.ok());
  std::filesystem::remove_all(dir);
}

TEST_F(ProviderContract, UnknownImageIsRefusedAndLeavesNothing) {
  std::string dir = detail::tempProjectDir();
  std::string id = freshId("img");
  SandboxSpec s = spec(id, dir);
  s.image = "agentpane/no-such-image:" + detail::shortRandom();
  auto made = provider().create(s);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, detail::harness().unknownImageCode) << made.error().describe();
  auto got = provider().get(nameOnly(id));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::SandboxNotFound);
  std::filesystem::remove_all(dir);
}

TEST_F(ProviderContract, CleanupRemovesOrphansOnly) {
  std::string dir = detail::tempProjectDir();
  std::string orphan = freshId("orphan");
  auto made = provider().create(spec(orphan, dir));
  ASSERT_TRUE(made.ok()) << made.error().describe();

  // What a restarted server does: list, keep what it knows, remove the rest.
  auto listed = provider().list(ListFilter{});
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> known;
  for (const auto& s : *listed) {
    if (s.id != orphan) known.push_back(s.id);
  }
  CleanupFilter f;
  f.stopped = false;
  f.failed = false;
  f.knownIds = known;
  auto report = provider().cleanup(f);
  ASSERT_TRUE(report.ok()) << report.error().describe();
  EXPECT_EQ(report->removedIds, std::vector<std::string>{orphan});
  EXPECT_FALSE(provider().get(sandboxRef(made.value())).ok());
  EXPECT_TRUE(provider().get(sharedRef()).ok());
  std::filesystem::remove_all(dir);
}

// ---- exec ----------------------------------------------------------------------------------

TEST_F(ProviderContract, ExactExitCodes) {
  auto zero = run({"true"});
  ASSERT_TRUE(zero.ok()) << zero.error().describe();
  EXPECT_EQ(zero->exitCode, 0);
  auto answer = run({"sh", "-c", "exit 42"});
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->exitCode, 42);
  auto killed = run({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->exitCode, 137);
  // A command that cannot start is an exit code (126/127, as a shell says), not an error.
  auto missing = run({"/no/such/binary"});
  ASSERT_TRUE(missing.ok()) << missing.error().describe();
  EXPECT_TRUE(missing->exitCode == 126 || missing->exitCode == 127) << missing->exitCode;
}

TEST_F(ProviderContract, StdoutAndStderrStaySeparate) {
  auto r = run({"sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2; printf 'more out'"});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "out\nmore out");
  EXPECT_EQ(r->stderrData, "err\n");
}

TEST_F(ProviderContract, ArgvIsNotInterpretedByAShell) {
  auto r = run({"printf", "%s|%s|%s", "$(id)", "a;b", "`x` 'q' \"w\""});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->stdoutData, "$(id)|a;b|`x` 'q' \"w\"");
}

TEST_F(ProviderContract, SixtyFourMiBOfBinaryOutputArriveWhole) {
  // The sandbox digests what it sends; we digest what we got.
  auto r =
      run({"sh", "-c",
           "f=/tmp/blob.$$; head -c 67108864 /dev/urandom > $f && sha256sum < $f >&2 && cat $f; "
           "rm -f $f"});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->exitCode, 0);
  ASSERT_EQ(r->stdoutData.size(), 67108864u);
  ASSERT_GE(r->stderrData.size(), 64u);
  EXPECT_EQ(detail::sha256Hex(r->stdoutData), r->stderrData.substr(0, 64));
}

TEST_F(ProviderContract, StdinIsStreamedAndReachesEof) {
  std::string data(300000, '\0');
  std::mt19937 rng(42);
  for (auto& c : data)
    c = static_cast<char>(rng());
  auto counted = run({"wc", "-c"}, {}, data);
  ASSERT_TRUE(counted.ok()) << counted.error().describe();
  EXPECT_EQ(counted->stdoutData, "300000\n");

  // Echo through cat: both directions busy at once; bytes come back exactly.
  auto echoed = run({"cat"}, {}, data);
  ASSERT_TRUE(echoed.ok()) << echoed.error().describe();
  EXPECT_EQ(echoed->stdoutData.size(), data.size());
  EXPECT_TRUE(echoed->stdoutData == data);

  auto empty = run({"wc", "-c"}, {}, std::string());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->stdoutData, "0\n");

  // Streaming form: write in pieces, close, read.
  ExecOptions opts;
  opts.attachStdin = true;
  auto session = provider().openExec(sharedRef(), {"sh", "-c", "cat; echo done"}, opts);
  ASSERT_TRUE(session.ok()) << session.error().describe();
  ASSERT_TRUE((*session)->writeStdin("hello ").ok());
  ASSERT_TRUE((*session)->writeStdin("world\n").ok());
  ASSERT_TRUE((*session)->closeStdin().ok());
  ASSERT_TRUE((*session)->closeStdin().ok());  // idempotent
  std::string out;
  for (;;) {
    auto c = (*session)->read();
    ASSERT_TRUE(c.ok()) << c.error().describe();
    if (!*c) break;
    out += (*c)->data;
  }
  EXPECT_EQ(out, "hello world\ndone\n");
  auto code = (*session)->wait();
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST_F(ProviderContract, TimeoutKillsTheRemoteProcessTree) {
  ExecOptions opts;
  opts.timeout = std::chrono::milliseconds(1500);
  auto t0 = std::chrono::steady_clock::now();
  // A child in the background and one in the foreground: both must die.
  auto r = run({"sh", "-c", "sleep 3131 & sleep 3132; echo unreachable"}, opts);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ExecTimeout) << r.error().describe();
  EXPECT_LT(elapsed, std::chrono::seconds(15));
  std::string ps;
  for (int i = 0; i < 20; ++i) {
    ps = sh("ps -eo args");
    if (ps.find("sleep 313") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ps.find("sleep 3131"), std::string::npos) << ps;
  EXPECT_EQ(ps.find("sleep 3132"), std::string::npos) << ps;
}

TEST_F(ProviderContract, CancelUnblocksReadAndKills) {
  auto session = provider().openExec(sharedRef(), {"sleep", "3133"}, {});
  ASSERT_TRUE(session.ok()) << session.error().describe();
  std::thread canceler([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (*session)->cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto c = (*session)->read();
  canceler.join();
  EXPECT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  (*session)->cancel();  // idempotent
  std::string ps = sh("ps -eo args");
  EXPECT_EQ(ps.find("sleep 3133"), std::string::npos) << ps;
}

// A terminal (ExecOptions::tty, the attach of a tmux session): the command runs on a tty of
// the asked size, typed keys reach it, and what it writes (errors too) arrives as Stdout.
// It reads before it looks, so the size is in place whichever way the provider sets it.
TEST_F(ProviderContract, TerminalOfTheAskedSize) {
  ExecOptions opts;
  opts.tty = true;
  opts.ttyRows = 33;
  opts.ttyColumns = 111;
  opts.attachStdin = true;
  auto session = provider().openExec(
      sharedRef(),
      {"sh", "-c", "read l; stty size; [ -t 0 ] && echo isatty; echo \"got $l\"; echo oops >&2"},
      opts);
  ASSERT_TRUE(session.ok()) << session.error().describe();
  ASSERT_TRUE((*session)->writeStdin("typed\r").ok());
  std::string out;
  for (;;) {
    auto c = (*session)->read();
    ASSERT_TRUE(c.ok()) << c.error().describe() << "; so far: " << out;
    if (!*c) break;
    EXPECT_EQ((*c)->stream, ExecStream::Stdout);
    out += (*c)->data;
  }
  auto code = (*session)->wait();
  ASSERT_TRUE(code.ok()) << code.error().describe();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_NE(out.find("33 111"), std::string::npos) << out;
  EXPECT_NE(out.find("isatty"), std::string::npos) << out;
  EXPECT_NE(out.find("got typed"), std::string::npos) << out;
  EXPECT_NE(out.find("oops"), std::string::npos) << out;
}

// A terminal resized while its command runs (the attach's resize): the command sees the new
// size. A session without a terminal refuses a resize with ValidationError.
TEST_F(ProviderContract, TerminalResizedWhileItsCommandRuns) {
  ExecOptions opts;
  opts.tty = true;
  opts.ttyRows = 20;
  opts.ttyColumns = 60;
  opts.attachStdin = true;
  // Each line typed prints the terminal's size then.
  auto session = provider().openExec(
      sharedRef(), {"sh", "-c", "while read l; do echo \"S=$(stty size)=$l\"; done"}, opts);
  ASSERT_TRUE(session.ok()) << session.error().describe();
  auto& s = *session.value();
  std::string out;
  auto readUntil = [&](const std::string& what) {
    while (out.find(what) == std::string::npos) {
      auto c = s.read();
      if (!c.ok() || !*c) return false;
      out += (*c)->data;
    }
    return true;
  };
  ASSERT_TRUE(s.writeStdin("l0\r").ok());
  ASSERT_TRUE(readUntil("S=20 60=l0")) << out;
  auto resized = std::make_shared<std::promise<Result<void>>>();
  auto f = resized->get_future();
  s.asyncResize(31, 97, [resized](Result<void> r) { resized->set_value(std::move(r)); });
  auto r = f.get();
  ASSERT_TRUE(r.ok()) << r.error().describe();
  // The kubelet applies a resize and copies stdin on separate goroutines: a line typed right
  // after may still see the old size, never a third one. Within a few lines, the new one.
  bool seen = false;
  for (int i = 1; i <= 30 && !seen; ++i) {
    const std::string line = "l" + std::to_string(i);
    ASSERT_TRUE(s.writeStdin(line + "\r").ok());
    ASSERT_TRUE(readUntil("=" + line + "\r")) << out;
    seen = out.find("S=31 97=" + line) != std::string::npos;
    if (!seen) {
      EXPECT_NE(out.find("S=20 60=" + line), std::string::npos) << out;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(seen) << out;
  s.cancel();

  ExecOptions plain;
  auto noTty = provider().openExec(sharedRef(), {"true"}, plain);
  ASSERT_TRUE(noTty.ok()) << noTty.error().describe();
  auto refusedP = std::make_shared<std::promise<Result<void>>>();
  auto rf = refusedP->get_future();
  (*noTty)->asyncResize(10, 10, [refusedP](Result<void> x) { refusedP->set_value(std::move(x)); });
  auto refused = rf.get();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::ValidationError);
  (void)runToCompletion(**noTty, ExecRequest{});
}

// The asynchronous form (exec.hpp): driven here with plain handlers and promises, as the
// contract names no library; the server drives it through common/exec_async.hpp.
template <typename T, typename Start>
Result<T> awaitHandler(Start start) {
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto f = p->get_future();
  start(ExecHandler<T>([p](Result<T> r) { p->set_value(std::move(r)); }));
  return f.get();
}

TEST_F(ProviderContract, AsyncFormStreamsStdinOutputAndExitCode) {
  ExecOptions opts;
  opts.attachStdin = true;
  auto session = provider().openExec(sharedRef(), {"sh", "-c", "cat; echo err >&2; exit 3"}, opts);
  ASSERT_TRUE(session.ok()) << session.error().describe();
  auto& s = *session.value();
  // A read is pending while stdin is written: the two directions overlap.
  auto pending = std::make_shared<std::promise<Result<std::optional<ExecChunk>>>>();
  auto first = pending->get_future();
  s.asyncRead([pending](Result<std::optional<ExecChunk>> r) { pending->set_value(std::move(r)); });
  auto w = awaitHandler<void>([&](auto h) { s.asyncWriteStdin("hello async\n", std::move(h)); });
  ASSERT_TRUE(w.ok()) << w.error().describe();
  auto c = awaitHandler<void>([&](auto h) { s.asyncCloseStdin(std::move(h)); });
  ASSERT_TRUE(c.ok()) << c.error().describe();
  std::string out, err;
  auto chunk = first.get();
  for (;;) {
    ASSERT_TRUE(chunk.ok()) << chunk.error().describe();
    if (!*chunk) break;
    ((*chunk)->stream == ExecStream::Stdout ? out : err) += (*chunk)->data;
    chunk = awaitHandler<std::optional<ExecChunk>>([&](auto h) { s.asyncRead(std::move(h)); });
  }
  EXPECT_EQ(out, "hello async\n");
  EXPECT_EQ(err, "err\n");
  auto code = awaitHandler<int>([&](auto h) { s.asyncWait(std::move(h)); });
  ASSERT_TRUE(code.ok()) << code.error().describe();
  EXPECT_EQ(*code, 3);
}

TEST_F(ProviderContract, AsyncCancelFailsThePendingReadAndKills) {
  auto session = provider().openExec(sharedRef(), {"sleep", "3134"}, {});
  ASSERT_TRUE(session.ok()) << session.error().describe();
  auto& s = *session.value();
  auto pending = std::make_shared<std::promise<Result<std::optional<ExecChunk>>>>();
  auto read = pending->get_future();
  s.asyncRead([pending](Result<std::optional<ExecChunk>> r) { pending->set_value(std::move(r)); });
  EXPECT_EQ(read.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  auto canceled = awaitHandler<void>([&](auto h) { s.asyncCancel(std::move(h)); });
  EXPECT_TRUE(canceled.ok());
  auto r = read.get();
  EXPECT_FALSE(r.ok());
  // The kill has ended when asyncCancel completes: the process is gone now.
  std::string ps = sh("ps -eo args");
  EXPECT_EQ(ps.find("sleep 3134"), std::string::npos) << ps;
  auto again = awaitHandler<void>([&](auto h) { s.asyncCancel(std::move(h)); });
  EXPECT_TRUE(again.ok());
}

TEST_F(ProviderContract, SandboxUserByDefaultRootOnlyWhenAsked) {
  EXPECT_EQ(sh("id -u"), "1000\n");
  ExecOptions root;
  root.root = true;
  auto r = run({"id", "-u"}, root);
  if (detail::harness().rootAllowed) {
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->stdoutData, "0\n");
  } else {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
  }
  EXPECT_EQ(sh("pwd"), "/workspace\n");
}

TEST_F(ProviderContract, ConcurrentExecs) {
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([i, &good] {
      auto r = run({"sh", "-c", "echo $0; echo err$0 >&2; exit $0", std::to_string(i)});
      if (r.ok() && r->exitCode == i && r->stdoutData == std::to_string(i) + "\n" &&
          r->stderrData == "err" + std::to_string(i) + "\n") {
        ++good;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(good.load(), 8);
}

// ---- resources and workspace ---------------------------------------------------------------

TEST_F(ProviderContract, MemoryLimitIsVisibleInTheCgroup) {
  std::string v =
      sh("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat "
         "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  EXPECT_EQ(v, std::to_string(static_cast<long long>(kMemoryMb) * 1024 * 1024) + "\n");
  auto m = provider().metrics(sharedRef());
  ASSERT_TRUE(m.ok()) << m.error().describe();
  EXPECT_EQ(m->memoryLimitBytes, static_cast<std::uint64_t>(kMemoryMb) * 1024 * 1024);
  EXPECT_GT(m->memoryBytes, 0u);
  EXPECT_GE(m->pids, 1u);
  EXPECT_GE(m->uptimeSeconds, 0);
}

TEST_F(ProviderContract, WorkspaceIsTheProjectDirectory) {
  // A provider whose workspace is not the host directory (a remote cluster) checks the
  // round trip through the sandbox only; Docker on this host always shares it.
  if (!detail::harness().workspaceSharedWithHost) {
    EXPECT_EQ(sh("echo x > /workspace/probe && cat /workspace/probe"), "x\n");
    return;
  }
  std::string name = "from-sandbox-" + detail::shortRandom() + ".txt";
  EXPECT_EQ(sh("echo written-inside > /workspace/" + name + " && echo ok"), "ok\n");
  std::ifstream in(projectDir() + "/" + name);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), "written-inside\n");
  std::ofstream(projectDir() + "/from-host.txt") << "host";
  EXPECT_EQ(sh("cat /workspace/from-host.txt"), "host");
}

TEST_F(ProviderContract, HealthCheckCountsOurSandboxes) {
  auto h = provider().healthCheck();
  EXPECT_TRUE(h.reachable);
  EXPECT_FALSE(h.version.empty());
  EXPECT_FALSE(h.apiVersion.empty());
  EXPECT_GE(h.total, 1);
  EXPECT_GE(h.running, 1);
}

// ---- tmux ----------------------------------------------------------------------------------

TEST_F(ProviderContract, TmuxSessions) {
  TmuxController tmux(provider());
  const std::string name = "work_" + detail::shortRandom();
  auto made = tmux.create(sharedRef(), name);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  EXPECT_EQ(made->name, name);

  auto dup = tmux.create(sharedRef(), name);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::TmuxSessionExists);

  auto listed = tmux.list(sharedRef());
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  bool found = false;
  for (const auto& s : *listed)
    found = found || s.name == name;
  EXPECT_TRUE(found);

  ASSERT_TRUE(tmux.sendKeys(sharedRef(), name, "echo tmux-$((6*7)) 'a;b' $(echo sub)").ok());
  std::string screen;
  for (int i = 0; i < 50; ++i) {
    auto cap = tmux.capture(sharedRef(), name, 50);
    ASSERT_TRUE(cap.ok()) << cap.error().describe();
    screen = *cap;
    if (screen.find("tmux-42 a;b sub") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(screen.find("tmux-42 a;b sub"), std::string::npos) << screen;

  ASSERT_TRUE(tmux.kill(sharedRef(), name).ok());
  auto again = tmux.kill(sharedRef(), name);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::TmuxSessionNotFound);
  auto after = tmux.list(sharedRef());
  ASSERT_TRUE(after.ok());
  for (const auto& s : *after)
    EXPECT_NE(s.name, name);
}

TEST_F(ProviderContract, HostileTmuxNamesAreRefused) {
  TmuxController tmux(provider());
  for (const std::string& bad :
       std::vector<std::string>{"a;id", "$(id)", std::string(65, 'a'), "", "a b", "../x", "x\ny"}) {
    auto r = tmux.create(sharedRef(), bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::TmuxNameInvalid) << bad;
  }
}

// ---- backend down ----------------------------------------------------------------------------

TEST(ProviderContractUnreachable, FailsFastWithTheProviderCode) {
  auto& h = detail::harness();
  auto p = h.makeUnreachableProvider();
  ASSERT_NE(p, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  auto listed = p->list(ListFilter{});
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().code, h.unreachableCode) << listed.error().describe();
  std::string dir = detail::tempProjectDir();
  auto made = p->create(detail::makeSpec("ct-unreachable", dir, 256));
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, h.unreachableCode) << made.error().describe();
  ExecRequest req;
  req.argv = {"true"};
  auto ex = p->exec(SandboxRef{p->instance(), "", "", "", "ct-unreachable"}, req);
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.error().code, h.unreachableCode);
  auto health = p->healthCheck();
  EXPECT_FALSE(health.reachable);
  EXPECT_FALSE(health.warnings.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
}

}  // namespace agentpane::contract
