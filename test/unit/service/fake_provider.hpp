// FakeProvider: an in-memory SandboxProvider for hermetic tests (CRI's fake runtime).
// Include as "unit/service/fake_provider.hpp" (test/ is on the include path).
// Records every call, takes injected errors per method, emulates the tmux commands that
// TmuxController sends, and lets a test script any other exec. Thread-safe.
//
//   auto fake = std::make_shared<fakes::FakeProvider>(ProviderType::Docker);
//   fake->failNext("create", Error(ErrorCode::SandboxImageNotFound, "no image"));
//   fake->execHandler = [](auto& id, auto& argv, auto& opts) { return ExecResult{0, "hi\n", ""}; };
//   fake->seed(info);                // a sandbox that exists on the "engine" without a create
//   fake->callCount("remove");
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agentpane/provider.hpp"

namespace agentpane::fakes {

// A session that replays a finished ExecResult: stdout, then stderr, then the exit code.
class FakeExecSession : public ExecSession {
 public:
  explicit FakeExecSession(Result<ExecResult> result) : result_(std::move(result)) {
    if (result_.ok()) {
      if (!result_->stdoutData.empty())
        chunks_.push_back({ExecStream::Stdout, result_->stdoutData});
      if (!result_->stderrData.empty())
        chunks_.push_back({ExecStream::Stderr, result_->stderrData});
    }
  }

  // agentpane::ExecSession
  Result<void> writeStdin(std::string_view data) override {
    std::lock_guard lk(mu_);
    stdinData += data;
    return {};
  }
  Result<void> closeStdin() override {
    std::lock_guard lk(mu_);
    stdinClosed = true;
    return {};
  }
  Result<std::optional<ExecChunk>> read() override {
    std::lock_guard lk(mu_);
    if (!result_.ok()) return result_.error();
    if (cancelled_ || chunks_.empty()) return std::optional<ExecChunk>{};
    auto c = std::move(chunks_.front());
    chunks_.pop_front();
    return std::optional<ExecChunk>(std::move(c));
  }
  Result<int> wait() override {
    std::lock_guard lk(mu_);
    if (!result_.ok()) return result_.error();
    return cancelled_ ? 137 : result_->exitCode;
  }
  void cancel() override {
    std::lock_guard lk(mu_);
    cancelled_ = true;
  }
  // Nothing here ever waits: the asynchronous form completes before returning.
  void asyncWriteStdin(std::string data, ExecHandler<void> done) override {
    done(writeStdin(data));
  }
  void asyncCloseStdin(ExecHandler<void> done) override { done(closeStdin()); }
  void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override { done(read()); }
  void asyncWait(ExecHandler<int> done) override { done(wait()); }
  void asyncCancel(ExecHandler<void> done) override {
    cancel();
    done(Result<void>());
  }

  std::string stdinData;
  bool stdinClosed = false;

 private:
  std::mutex mu_;
  Result<ExecResult> result_;
  std::deque<ExecChunk> chunks_;
  bool cancelled_ = false;
};

class FakeProvider : public SandboxProvider {
 public:
  using ExecHandler = std::function<Result<ExecResult>(
      const std::string& id, const std::vector<std::string>& argv, const ExecOptions& options)>;

  explicit FakeProvider(ProviderType type = ProviderType::Docker) : type_(type) {}

  // --- knobs (set before use, or under your own synchronisation) ---------------------------
  bool reachable = true;                     // healthCheck().reachable
  std::chrono::milliseconds healthDelay{0};  // healthCheck() takes this long
  std::string instanceName;                  // instance(); empty: named like the type ("docker")
  std::vector<std::string> healthWarnings;
  // Answers exec for argv that is not tmux (default: exit 0, no output).
  ExecHandler execHandler;
  // Called inside create() before the sandbox exists (block here to hold a create open).
  std::function<void(const SandboxSpec&)> onCreate;
  // Runs next, with the caller's control: a test reports phases or waits for a cancel here.
  std::function<void(const SandboxSpec&, const CreateControl&)> onCreateWithControl;
  // createdAtUnix of sandboxes create() makes.
  std::function<std::int64_t()> now = [] { return std::int64_t{1'700'000'000}; };
  // State create() leaves the sandbox in.
  SandboxState createdState = SandboxState::Running;
  // Warm pool: off, warmSupported() says WarmPoolDisabled; on, createWarm() makes a sandbox as
  // create() does and claimWarm() binds it (the bound project is in info.projectPath and the
  // claim list). Called inside claimWarm() before it answers (block here to hold a claim).
  bool warmPool = false;
  std::function<void(const SandboxRef&, const WarmClaim&)> onClaim;
  // Called at the start of list(), outside the fake's lock (a request that finishes while
  // reconcile is listing).
  std::function<void()> onList;

  // --- injected errors ----------------------------------------------------------------------
  // The next `times` calls of `method` ("create", "get", "list", "start", "stop", "remove", "exec",
  // "openExec", "metrics", "cleanup") fail with `e`. times < 0: every call.
  // "exec" is the running of a command, whichever form runs it: exec(), or the session an
  // openExec() gives (an error that comes before a session exists, such as
  // SandboxProviderUnavailable, is then openExec's result; ExecTimeout is the session's).
  // "openExec" fails only openExec().
  void failNext(const std::string& method, Error e, int times = 1) {
    std::lock_guard lk(mu_);
    failures_[method] = {std::move(e), times};
  }
  void clearFailures() {
    std::lock_guard lk(mu_);
    failures_.clear();
  }

  // --- recorded calls ------------------------------------------------------------------------
  struct Call {
    std::string method;
    std::string id;
    std::vector<std::string> argv;  // exec / openExec
  };
  std::vector<Call> calls() const {
    std::lock_guard lk(mu_);
    return calls_;
  }
  int callCount(const std::string& method) const {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count_if(calls_.begin(), calls_.end(),
                                          [&](const Call& c) { return c.method == method; }));
  }
  int callCount(const std::string& method, const std::string& id) const {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count_if(calls_.begin(), calls_.end(), [&](const Call& c) {
      return c.method == method && c.id == id;
    }));
  }
  std::vector<SandboxSpec> createdSpecs() const {
    std::lock_guard lk(mu_);
    return specs_;
  }

  // --- engine-side state ---------------------------------------------------------------------
  // A sandbox that exists on the engine (for reconcile tests). Labels default to complete.
  void seed(SandboxInfo info) {
    std::lock_guard lk(mu_);
    info.provider = type_;
    info.instance = instance();
    sandboxes_[info.id] = std::move(info);
  }
  // Makes a sandbox disappear behind the service's back.
  void vanish(const std::string& id) {
    std::lock_guard lk(mu_);
    sandboxes_.erase(id);
  }
  void setState(const std::string& id, SandboxState s) {
    std::lock_guard lk(mu_);
    auto it = sandboxes_.find(id);
    if (it != sandboxes_.end()) it->second.state = s;
  }
  bool exists(const std::string& id) const {
    std::lock_guard lk(mu_);
    return sandboxes_.count(id) != 0;
  }
  std::optional<SandboxInfo> find(const std::string& id) const {
    std::lock_guard lk(mu_);
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return std::nullopt;
    return it->second;
  }
  std::size_t size() const {
    std::lock_guard lk(mu_);
    return sandboxes_.size();
  }
  // The fake tmux server of a sandbox: session name -> pane text.
  std::map<std::string, std::string> tmuxSessions(const std::string& id) const {
    std::lock_guard lk(mu_);
    std::map<std::string, std::string> out;
    auto it = tmux_.find(id);
    if (it != tmux_.end()) {
      for (const auto& [name, s] : it->second)
        out[name] = s.pane;
    }
    return out;
  }
  // Output (or input) in a session at `unix` (what tmux reports as session_activity).
  void setTmuxActivity(const std::string& id, const std::string& name, std::int64_t unix) {
    std::lock_guard lk(mu_);
    tmux_[id][name].activity = unix;
  }
  // Starts a session as if someone ran tmux by hand inside the sandbox.
  void addTmuxSession(const std::string& id, const std::string& name) {
    std::lock_guard lk(mu_);
    tmux_[id][name] = TmuxState{now(), {}};
  }

  static SandboxInfo makeInfo(const std::string& id, const std::string& projectId,
                              SandboxState state = SandboxState::Running,
                              std::int64_t createdAt = 0) {
    SandboxInfo i;
    i.id = id;
    i.projectId = projectId;
    i.state = state;
    i.containerId = "ctr-" + id;
    i.createdAtUnix = createdAt;
    i.labels = {{labels::kSandbox, "true"},
                {labels::kSandboxId, id},
                {labels::kProjectId, projectId},
                {labels::kManaged, "true"}};
    return i;
  }

  // agentpane::SandboxProvider
  [[nodiscard]] ProviderType type() const override { return type_; }
  [[nodiscard]] std::string instance() const override {
    return instanceName.empty() ? std::string(toString(type_)) : instanceName;
  }

  HealthStatus healthCheck() override {
    if (healthDelay.count() > 0) std::this_thread::sleep_for(healthDelay);
    std::lock_guard lk(mu_);
    calls_.push_back({"healthCheck", {}, {}});
    HealthStatus h;
    h.reachable = reachable;
    h.version = "fake-1";
    h.warnings = healthWarnings;
    for (const auto& [id, s] : sandboxes_) {
      ++h.total;
      if (s.state == SandboxState::Running) ++h.running;
    }
    return h;
  }

  Result<CleanupReport> cleanup(const CleanupFilter& filter) override {
    std::lock_guard lk(mu_);
    calls_.push_back({"cleanup", {}, {}});
    if (auto e = injected("cleanup")) return *e;
    CleanupReport report;
    for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
      const auto& s = it->second;
      bool drop = (filter.stopped && s.state == SandboxState::Stopped) ||
                  (filter.failed && s.state == SandboxState::Failed) ||
                  (filter.knownIds && std::find(filter.knownIds->begin(), filter.knownIds->end(),
                                                s.id) == filter.knownIds->end()) ||
                  (filter.createdBeforeUnix && s.createdAtUnix < *filter.createdBeforeUnix);
      if (drop) {
        report.removedIds.push_back(s.id);
        it = sandboxes_.erase(it);
      } else {
        ++it;
      }
    }
    return report;
  }

  // agentpane::SandboxLifecycle
  using SandboxLifecycle::create;
  Result<SandboxInfo> create(const SandboxSpec& spec, const CreateControl& control) override {
    std::function<void(const SandboxSpec&)> hook;
    std::function<void(const SandboxSpec&, const CreateControl&)> controlHook;
    {
      std::lock_guard lk(mu_);
      calls_.push_back({"create", spec.id, {}});
      specs_.push_back(spec);
      if (auto e = injected("create")) return *e;
      if (sandboxes_.count(spec.id) != 0) {
        return Error(ErrorCode::SandboxAlreadyExists, "sandbox " + spec.id + " already exists");
      }
      hook = onCreate;
      controlHook = onCreateWithControl;
    }
    if (hook) hook(spec);
    if (controlHook) controlHook(spec, control);
    if (control.cancelled()) return createCancelledError(spec.id);  // nothing kept
    control.progress("ready", "fake sandbox " + spec.id + " is ready");
    std::lock_guard lk(mu_);
    SandboxInfo info = makeInfo(spec.id, spec.projectId, createdState, now());
    info.provider = type_;
    info.instance = instance();
    info.agentId = spec.agentId;
    info.projectPath = spec.projectPath;
    info.image = spec.image;
    info.labels[labels::kAgentId] = spec.agentId;
    for (const auto& [k, v] : spec.extraLabels)
      info.labels[k] = v;
    if (type_ == ProviderType::Kubernetes) {
      info.containerId.clear();
      info.podName = "sbx-pod-" + spec.id;
      info.podNamespace = spec.kubernetes.kubeNamespace;
      info.podUid = "uid-" + spec.id;
    }
    sandboxes_[spec.id] = info;
    return info;
  }

  Result<void> warmSupported() override {
    if (!warmPool) return Error(ErrorCode::WarmPoolDisabled, "the fake keeps no warm sandboxes");
    return {};
  }
  Result<SandboxInfo> createWarm(const SandboxSpec& spec, const CreateControl& control) override {
    if (!warmPool) return Error(ErrorCode::WarmPoolDisabled, "the fake keeps no warm sandboxes");
    {
      std::lock_guard lk(mu_);
      calls_.push_back({"createWarm", spec.id, {}});
      if (auto e = injected("createWarm")) return *e;
    }
    return create(spec, control);
  }
  Result<SandboxInfo> claimWarm(const SandboxRef& ref, const WarmClaim& claim) override {
    std::function<void(const SandboxRef&, const WarmClaim&)> hook;
    {
      std::lock_guard lk(mu_);
      calls_.push_back({"claimWarm", ref.sandboxId, {}});
      if (auto e = injected("claimWarm")) return *e;
      hook = onClaim;
    }
    if (hook) hook(ref, claim);
    std::lock_guard lk(mu_);
    auto it = sandboxes_.find(ref.sandboxId);
    if (it == sandboxes_.end())
      return Error(ErrorCode::SandboxNotFound, "sandbox " + ref.sandboxId + " not found");
    if (it->second.labels[labels::kWarmPoolState] != "warm") {
      return Error(ErrorCode::Conflict, "sandbox " + ref.sandboxId + " is claimed already");
    }
    it->second.labels[labels::kWarmPoolState] = "allocated";
    it->second.projectId = claim.projectId;
    it->second.agentId = claim.agentId;
    it->second.projectPath = claim.projectPath;
    claims_.push_back(claim);
    return it->second;
  }
  std::vector<WarmClaim> claims() const {
    std::lock_guard lk(mu_);
    return claims_;
  }

  Result<SandboxInfo> get(const SandboxRef& ref) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"get", id, {}});
    if (auto e = injected("get")) return *e;
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end())
      return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
    return it->second;
  }

  Result<std::vector<SandboxInfo>> list(const ListFilter& filter) override {
    if (onList) onList();
    std::lock_guard lk(mu_);
    calls_.push_back({"list", {}, {}});
    if (auto e = injected("list")) return *e;
    std::vector<SandboxInfo> out;
    for (const auto& [id, s] : sandboxes_) {
      if (filter.projectId && s.projectId != *filter.projectId) continue;
      if (filter.agentId && s.agentId != *filter.agentId) continue;
      if (!filter.includeStopped && s.state != SandboxState::Running) continue;
      bool match = std::all_of(filter.labels.begin(), filter.labels.end(), [&](const auto& kv) {
        auto l = s.labels.find(kv.first);
        return l != s.labels.end() && l->second == kv.second;
      });
      if (match) out.push_back(s);
    }
    return out;
  }

  Result<SandboxInfo> start(const SandboxRef& ref) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"start", id, {}});
    if (auto e = injected("start")) return *e;
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end())
      return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
    it->second.state = SandboxState::Running;
    return it->second;
  }

  Result<void> stop(const SandboxRef& ref) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"stop", id, {}});
    if (auto e = injected("stop")) return *e;
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end())
      return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
    it->second.state = SandboxState::Stopped;
    tmux_.erase(id);  // stopping a container ends its processes
    return {};
  }

  Result<void> remove(const SandboxRef& ref) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"remove", id, {}});
    if (auto e = injected("remove")) return *e;
    sandboxes_.erase(id);
    tmux_.erase(id);
    return {};
  }

  // agentpane::SandboxExecutor
  Result<std::unique_ptr<ExecSession>> openExec(const SandboxRef& ref,
                                                const std::vector<std::string>& argv,
                                                const ExecOptions& options) override {
    auto r = run("openExec", ref.sandboxId, argv, options);
    if (r.ok()) {
      // A command runs either way (exec() or a session): an injected "exec" error is what
      // running it gives, also through a session, so the service and server may drive the
      // command in either form.
      std::lock_guard lk(mu_);
      if (auto e = injected("exec")) r = *e;
    }
    if (!r.ok() && isSetupError(r.error())) return r.takeError();
    return std::unique_ptr<ExecSession>(std::make_unique<FakeExecSession>(std::move(r)));
  }

  Result<ExecResult> exec(const SandboxRef& ref, const ExecRequest& req) override {
    return run("exec", ref.sandboxId, req.argv, req.options);
  }

  // agentpane::SandboxStats
  Result<SandboxMetrics> metrics(const SandboxRef& ref) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"metrics", id, {}});
    if (auto e = injected("metrics")) return *e;
    if (sandboxes_.count(id) == 0)
      return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
    SandboxMetrics m;
    m.cpuPercent = 1.5;
    m.memoryBytes = 64u << 20;
    return m;
  }

  // Records the allowlist it was given ("applyEgress"; argv = the allowlist). Names listed in
  // `unresolvable` are reported unresolved; `egressChanged` is what it says about the change.
  std::set<std::string> unresolvable;
  bool egressChanged = true;
  // What each listed name resolves to (a rule "<addr>/32" each).
  std::map<std::string, std::vector<std::string>> egressAddresses;
  Result<EgressStatus> applyEgress(const SandboxRef& ref,
                                   const std::vector<std::string>& allowlist) override {
    const std::string& id = ref.sandboxId;
    std::lock_guard lk(mu_);
    calls_.push_back({"applyEgress", id, allowlist});
    if (auto e = injected("applyEgress")) return *e;
    if (sandboxes_.count(id) == 0)
      return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
    EgressStatus st;
    st.allowlist = allowlist;
    st.enforced = true;
    st.changed = egressChanged;
    for (const auto& h : allowlist) {
      if (unresolvable.count(h)) st.unresolved.push_back(h);
      auto it = egressAddresses.find(h);
      if (it == egressAddresses.end()) continue;
      st.hosts.push_back({h, it->second, {}});
      for (const auto& a : it->second)
        st.rules.push_back(a + "/32 all ports");
    }
    return st;
  }

 private:
  struct TmuxState {
    std::int64_t created = 0;
    std::string pane;
    std::int64_t activity = 0;  // #{session_activity}
  };
  struct Failure {
    Error error;
    int times = 0;
  };

  // Errors that come before a session exists.
  static bool isSetupError(const Error& e) { return e.code != ErrorCode::ExecTimeout; }

  std::optional<Error> injected(const std::string& method) {
    auto it = failures_.find(method);
    if (it == failures_.end() || it->second.times == 0) return std::nullopt;
    if (it->second.times > 0) --it->second.times;
    return it->second.error;
  }

  Result<ExecResult> run(const char* method, const std::string& id,
                         const std::vector<std::string>& argv, const ExecOptions& options) {
    ExecHandler handler;
    {
      std::lock_guard lk(mu_);
      calls_.push_back({method, id, argv});
      if (auto e = injected(method)) return *e;
      if (argv.empty()) return Error(ErrorCode::ValidationError, "empty argv");
      auto it = sandboxes_.find(id);
      if (it == sandboxes_.end())
        return Error(ErrorCode::SandboxNotFound, "sandbox " + id + " not found");
      if (it->second.state != SandboxState::Running) {
        return Error(ErrorCode::SandboxNotRunning, "sandbox " + id + " is not running");
      }
      if (argv[0] == "tmux") return tmux(id, argv);
      handler = execHandler;
    }
    if (handler) return handler(id, argv, options);
    return ExecResult{0, "", ""};
  }

  static std::string stripTarget(std::string t) {
    if (!t.empty() && t.front() == '=') t.erase(0, 1);
    if (!t.empty() && t.back() == ':') t.pop_back();
    return t;
  }

  static std::string argAfter(const std::vector<std::string>& argv, const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it != argv.end() && it + 1 != argv.end() ? *(it + 1) : std::string();
  }

  // Caller holds mu_. Understands the commands TmuxController sends.
  ExecResult tmux(const std::string& id, const std::vector<std::string>& argv) {
    auto& sessions = tmux_[id];
    const std::string cmd = argv.size() > 1 ? argv[1] : "";
    if (cmd == "new-session") {
      auto name = argAfter(argv, "-s");
      if (sessions.count(name) != 0) return {1, "", "duplicate session: " + name + "\n"};
      sessions[name] = TmuxState{now(), {}};
      return {0, "", ""};
    }
    if (cmd == "list-sessions") {
      if (sessions.empty()) return {1, "", "no server running on /tmp/tmux-1000/default\n"};
      std::string out;
      for (const auto& [name, s] : sessions) {
        out += name + "\t1\t" + std::to_string(s.created) + "\t0\t" +
               std::to_string(std::max(s.created, s.activity)) + "\n";
      }
      return {0, out, ""};
    }
    auto name = stripTarget(argAfter(argv, "-t"));
    auto it = sessions.find(name);
    if (it == sessions.end()) return {1, "", "can't find session: " + name + "\n"};
    if (cmd == "kill-session") {
      sessions.erase(it);
      return {0, "", ""};
    }
    if (cmd == "send-keys") {
      if (std::find(argv.begin(), argv.end(), "-l") != argv.end())
        it->second.pane += argv.back();
      else if (argv.back() == "Enter")
        it->second.pane += "\n";
      return {0, "", ""};
    }
    if (cmd == "capture-pane") return {0, it->second.pane, ""};
    return {1, "", "unknown command: " + cmd + "\n"};
  }

  ProviderType type_;
  mutable std::mutex mu_;
  std::map<std::string, SandboxInfo> sandboxes_;
  std::map<std::string, std::map<std::string, TmuxState>> tmux_;
  std::map<std::string, Failure> failures_;
  std::vector<Call> calls_;
  std::vector<SandboxSpec> specs_;
  std::vector<WarmClaim> claims_;
};

}  // namespace agentpane::fakes
