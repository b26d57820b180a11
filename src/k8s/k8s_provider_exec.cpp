// K8sProvider::openExec and metrics: what Kubernetes exec lacks (user, directory,
// environment, killing) made of arguments, never of a shell line built from user strings.
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <sstream>

#include "common/exec_forwarding.hpp"
#include "common/exec_marker.hpp"
#include "common/hash.hpp"
#include "k8s/exec_session.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/pod_metrics.hpp"

namespace agentpane::k8s {

namespace {

bool validEnvName(const std::string& k) {
  if (k.empty() || (std::isdigit(static_cast<unsigned char>(k[0])) != 0)) return false;
  for (char c : k)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_') return false;
  return true;
}

// The sandbox's session: the WebSocket exec, plus the kill that Kubernetes does not have.
// The kill is an exec of its own, opened by a blocking call (credentials may run a plugin):
// the asynchronous cancel runs it on the provider's kill pool, never on the I/O loop, and
// completes on the loop.
class SandboxExecSession final : public ForwardingExecSession {
 public:
  SandboxExecSession(std::unique_ptr<K8sExecSession> inner, std::shared_ptr<net::IoThread> io,
                     std::shared_ptr<boost::asio::thread_pool> killPool, RestConfig cfg,
                     ExecSpec killSpec)
      : ForwardingExecSession(std::move(inner)),
        io_(std::move(io)),
        killPool_(std::move(killPool)),
        cfg_(std::move(cfg)),
        killSpec_(std::move(killSpec)) {}
  ~SandboxExecSession() override {
    // A session dropped before its end (the client went away) leaves no process behind. The
    // owner may be a network thread: the kill runs on the kill pool, with copies of what it
    // needs, and nothing here waits for it.
    if (ended_.load() || killStarted_.exchange(true)) return;
    boost::asio::post(*killPool_,
                      [io = io_, cfg = cfg_, spec = killSpec_] { killByMarker(io, cfg, spec); });
  }
  SandboxExecSession(const SandboxExecSession&) = delete;
  SandboxExecSession& operator=(const SandboxExecSession&) = delete;

  Result<std::optional<ExecChunk>> read() override {
    auto r = inner_->read();
    noteEnd(r);
    return r;
  }
  void cancel() override {
    inner_->cancel();
    if (!ended_.load()) killTree();
  }

  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
    inner_->asyncRead([this, done = std::move(done)](Result<std::optional<ExecChunk>> r) {
      noteEnd(r);
      done(std::move(r));
    });
  }
  void asyncCancel(ExecHandler<void> done) override {
    inner_->asyncCancel([this, done = std::move(done)](const Result<void>&) mutable {
      // On the I/O loop: the stream is closed. A process that ended, or a kill already
      // started by an earlier cancel, needs no (more) waiting.
      if (ended_.load() || killStarted_.load()) return done(okResult());
      boost::asio::post(*killPool_, [this, done = std::move(done)]() mutable {
        killTree();
        boost::asio::post(io_->context(), [done = std::move(done)] { done(okResult()); });
      });
    });
  }

 private:
  void noteEnd(const Result<std::optional<ExecChunk>>& r) {
    if (r.ok() && !r->has_value()) ended_ = true;
    if (!r.ok() && r.error().code == ErrorCode::ExecTimeout) ended_ = true;  // killed in pod
  }

  // Blocks until the killer exec has ended (bounded by its own timeout). The first call
  // kills; later ones return at once.
  void killTree() {
    if (killStarted_.exchange(true)) return;
    killByMarker(io_, cfg_, killSpec_);
  }

  // Runs the kill exec to its end (bounded by its own timeout). Blocking.
  static void killByMarker(const std::shared_ptr<net::IoThread>& io, const RestConfig& cfg,
                           const ExecSpec& spec) {
    auto s = openExec(io, cfg, spec);
    if (!s.ok()) return;
    for (;;) {
      auto c = (*s)->read();
      if (!c.ok() || !c->has_value()) break;
    }
  }

  std::shared_ptr<net::IoThread> io_;
  std::shared_ptr<boost::asio::thread_pool> killPool_;
  RestConfig cfg_;
  ExecSpec killSpec_;
  std::atomic<bool> ended_{false};
  std::atomic<bool> killStarted_{false};
};

Error mapExecOpenError(Error e, const std::string& id) {
  if (e.code == ErrorCode::K8sNotFound) {
    return Error(ErrorCode::SandboxNotFound, "sandbox '" + id + "' not found", {{"id", id}});
  }
  // The pod exists but its container is not running (a 400 from the apiserver).
  if (e.code == ErrorCode::K8sApiError && e.details.count("code") && e.details["code"] == "400") {
    return Error(ErrorCode::SandboxNotRunning,
                 "sandbox '" + id + "' is not running (" + e.message + ")", {{"id", id}});
  }
  return e;
}

std::uint64_t parseU64(const std::string& s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Sets the terminal's size, then becomes the command: sh -c SCRIPT sh ROWS COLS ARGV...
// A missing stty leaves the size to the resize channel.
constexpr const char* kSetTtySizeScript =
    "stty rows \"$1\" cols \"$2\" 2>/dev/null; shift 2; exec \"$@\"";

// Reads the container's cgroup (v2, else v1); with $1 = cpu, its CPU counter twice, 200 ms
// apart, for a rate (not needed when the metrics API gave one). Fixed text: nothing of the
// caller's reaches it.
constexpr const char* kCgroupScript =
    "if [ -f /sys/fs/cgroup/memory.max ]; then c=/sys/fs/cgroup; "
    "cpu() { awk '/^usage_usec/ {print $2 * 1000}' $c/cpu.stat; }; "
    "echo mem=$(cat $c/memory.current); echo max=$(cat $c/memory.max); "
    "echo pids=$(cat $c/pids.current); "
    "else c=/sys/fs/cgroup; cpu() { cat $c/cpuacct/cpuacct.usage 2>/dev/null || "
    "cat $c/cpu,cpuacct/cpuacct.usage; }; "
    "echo mem=$(cat $c/memory/memory.usage_in_bytes); "
    "echo max=$(cat $c/memory/memory.limit_in_bytes); "
    "echo pids=$(cat $c/pids/pids.current); fi; "
    "if [ \"$1\" = cpu ]; then echo cpu0=$(cpu); sleep 0.2; echo cpu1=$(cpu); fi; "
    "echo net=$(awk 'NR > 2 && $1 != \"lo:\" {rx += $2; tx += $10} END {print rx, tx}' "
    "/proc/net/dev)";

}  // namespace

Result<std::unique_ptr<ExecSession>> K8sProvider::openExec(const SandboxRef& ref,
                                                           const std::vector<std::string>& argv,
                                                           const ExecOptions& options) {
  const std::string& id = ref.sandboxId;
  if (argv.empty()) return Error(ErrorCode::ValidationError, "argv must not be empty");
  if (options.root) {
    return Error(ErrorCode::ValidationError,
                 "root exec is not possible in a Kubernetes sandbox: its pod runs as a non-root "
                 "user under PodSecurity 'restricted'",
                 {{"id", id}, {"reason", "rootForbiddenByPodSecurity"}});
  }
  // env(1) takes a first word with '=' for an assignment: such a command cannot be named.
  if (argv[0].find('=') != std::string::npos) {
    return Error(ErrorCode::ValidationError,
                 "a command name containing '=' cannot be run in a Kubernetes sandbox",
                 {{"argv0", argv[0]}});
  }
  for (const auto& [k, v] : options.env) {
    if (!validEnvName(k) || k == kExecMarkerVar) {
      return Error(ErrorCode::ValidationError, "invalid environment variable name '" + k + "'");
    }
  }
  if (options.tty && (options.ttyRows < 1 || options.ttyColumns < 1)) {
    return Error(ErrorCode::ValidationError, "a terminal needs at least one row and one column");
  }
  auto info = requireRunning(ref);
  if (!info.ok()) return info.takeError();

  const std::string marker = randomHex(16);
  ExecSpec spec;
  spec.namespaceName = info->podNamespace;
  spec.pod = info->podName;
  spec.container = kSandboxContainer;
  spec.attachStdin = options.attachStdin;
  spec.tty = options.tty;
  spec.ttyRows = static_cast<std::uint16_t>(std::min(options.ttyRows, 1000));
  spec.ttyColumns = static_cast<std::uint16_t>(std::min(options.ttyColumns, 1000));
  spec.timeout = options.timeout;
  spec.argv = {"env"};
  if (!options.workingDir.empty()) {
    spec.argv.push_back("-C");
    spec.argv.push_back(options.workingDir);
  }
  spec.argv.push_back(std::string(kExecMarkerVar) + "=" + marker);
  for (const auto& [k, v] : options.env)
    spec.argv.push_back(k + "=" + v);
  if (options.tty) {
    // The kubelet applies the resize channel and copies stdin on separate goroutines, so a
    // command could read its terminal's size before the first resize lands (seen: 2 runs in
    // 30). Setting the size on the tty before the command starts makes it certain; the
    // script is constant and the numbers and argv are passed as arguments.
    spec.argv.insert(spec.argv.end(),
                     {"sh", "-c", kSetTtySizeScript, "sh", std::to_string(spec.ttyRows),
                      std::to_string(spec.ttyColumns)});
  }
  spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());

  ExecSpec killSpec;
  killSpec.namespaceName = spec.namespaceName;
  killSpec.pod = spec.pod;
  killSpec.container = spec.container;
  killSpec.argv = {"sh", "-c", kKillByMarkerScript, "sh", marker};
  killSpec.timeout = opts_.killTimeout;

  const RestConfig& cfg = client_->config();
  auto session = k8s::openExec(client_->io(), cfg, spec);
  if (!session.ok()) return mapExecOpenError(session.takeError(), id);
  return std::unique_ptr<ExecSession>(std::make_unique<SandboxExecSession>(
      std::move(session).value(), client_->io(), killPool_, cfg, std::move(killSpec)));
}

Result<SandboxMetrics> K8sProvider::metrics(const SandboxRef& ref) {
  auto info = requireRunning(ref);
  if (!info.ok()) return info.takeError();
  const auto usage = podUsage(info->podNamespace, info->podName);
  ExecRequest req;
  req.argv = {"sh", "-c", kCgroupScript, "sh", usage ? "no-cpu" : "cpu"};
  req.options.workingDir = "/";
  req.options.timeout = std::chrono::seconds(10);
  auto r = exec(ref, req);
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    return Error(ErrorCode::SandboxExecFailed,
                 "reading the sandbox's cgroup failed: " + r->stderrData.substr(0, 300));
  }
  std::map<std::string, std::string> kv;
  std::istringstream in(r->stdoutData);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  SandboxMetrics m;
  m.memoryBytes = parseU64(kv["mem"]);
  m.memoryLimitBytes = kv["max"] == "max" ? 0 : parseU64(kv["max"]);
  m.pids = parseU64(kv["pids"]);
  if (usage) {
    m.cpuPercent = usage->first;
    m.memoryBytes = usage->second;
  } else {
    const auto cpu0 = parseU64(kv["cpu0"]);
    const auto cpu1 = parseU64(kv["cpu1"]);
    if (cpu1 >= cpu0) m.cpuPercent = static_cast<double>(cpu1 - cpu0) / 0.2e9 * 100.0;
  }
  std::istringstream net(kv["net"]);
  net >> m.networkRxBytes >> m.networkTxBytes;
  if (info->createdAtUnix > 0) {
    m.uptimeSeconds =
        std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                          .count() -
                                      info->createdAtUnix);
  }
  if (kv["mem"].empty() || kv["pids"].empty()) {
    return Error(
        ErrorCode::SandboxExecFailed,
        "the sandbox's cgroup gave no memory or pids figures: " + r->stdoutData.substr(0, 300));
  }
  return m;
}

std::optional<std::pair<double, std::uint64_t>> K8sProvider::podUsage(const std::string& ns,
                                                                      const std::string& pod) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now().time_since_epoch().count();
  const auto missingAt = metricsApiMissingAt_.load();
  if (missingAt != 0 && now - missingAt < std::chrono::nanoseconds(std::chrono::minutes(1)).count())
    return std::nullopt;
  auto usage = metricsApiUsage(*client_, ns, pod, kSandboxContainer);
  if (!usage.ok()) {
    // No metrics-server (404/503), or credentials without `get pods.metrics.k8s.io` (403):
    // the cgroup's figures, and no asking again for a minute. A pod it has not scraped yet
    // (also 404) costs the same minute of cgroup figures, which are as good.
    metricsApiMissingAt_ = now;
    return std::nullopt;
  }
  return std::make_pair(usage->cpuPercent, usage->memoryBytes);
}

}  // namespace agentpane::k8s
