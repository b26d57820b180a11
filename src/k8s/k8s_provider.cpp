#include "k8s/k8s_provider.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "k8s/manifests.hpp"
#include "k8s/network_policy.hpp"
#include "k8s/object_fields.hpp"
#include "k8s/pod_security.hpp"
#include "k8s/watch.hpp"

namespace agentpane::k8s {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

bool isCode(const Error& e, ErrorCode c) {
  return e.code == c;
}

Error notFound(const std::string& id) {
  return Error(ErrorCode::SandboxNotFound, "sandbox '" + id + "' not found", {{"id", id}});
}

// Closes a watcher at a deadline, or once `stop` is requested, from a thread of its own:
// Watcher::next() blocks.
class CloseAtDeadline {
 public:
  CloseAtDeadline(Watcher& w, Clock::time_point deadline, std::stop_token stop = {})
      : thread_([this, &w, deadline, stop = std::move(stop)] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_until(lock, stop, deadline, [this] { return done_; })) {
            (stop.stop_requested() ? cancelled_ : expired_) = true;
            lock.unlock();
            w.close();
          }
        }) {}
  ~CloseAtDeadline() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  CloseAtDeadline(const CloseAtDeadline&) = delete;
  CloseAtDeadline& operator=(const CloseAtDeadline&) = delete;
  [[nodiscard]] bool expired() const { return expired_.load(); }
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool done_ = false;
  std::atomic<bool> expired_{false};
  std::atomic<bool> cancelled_{false};
  std::thread thread_;  // last: starts once the members it uses exist
};

// Reports a create's phases once each, from more than one thread, one call at a time.
class PhaseReporter {
 public:
  explicit PhaseReporter(const CreateControl& control) : control_(control) {}
  void report(const std::string& phase, const std::string& message) {
    std::lock_guard lock(mu_);
    if (!seen_.insert(phase).second) return;
    control_.progress(phase, message);
  }

 private:
  const CreateControl& control_;
  std::mutex mu_;
  std::set<std::string> seen_;
};

// While alive, turns the events of one pod (scheduled, pulling, pulled, created, started)
// into phases, from a watch on a thread of its own. Events are a bonus: credentials that
// may not read them only lose the detail.
class PodEventFeed {
 public:
  PodEventFeed(std::shared_ptr<RestClient> client, const std::string& ns, const std::string& pod,
               PhaseReporter& reporter)
      : watcher_(std::move(client), resourcePath("v1", "events", ns, {}),
                 [&] {
                   WatchOptions wo;
                   wo.selectors.fieldSelector =
                       "involvedObject.kind=Pod,involvedObject.name=" + pod;
                   return wo;
                 }()),
        reporter_(reporter),
        thread_([this] { run(); }) {}
  ~PodEventFeed() {
    watcher_.close();
    thread_.join();
  }
  PodEventFeed(const PodEventFeed&) = delete;
  PodEventFeed& operator=(const PodEventFeed&) = delete;

 private:
  void run() {
    static const std::map<std::string, std::string> kPhases = {{"Scheduled", "scheduled"},
                                                               {"Pulling", "pulling"},
                                                               {"Pulled", "pulled"},
                                                               {"Created", "created"},
                                                               {"Started", "started"}};
    auto deliver = [&](const json& e) {
      auto it = kPhases.find(e.value("reason", ""));
      if (it != kPhases.end()) reporter_.report(it->second, e.value("message", it->first));
    };
    for (;;) {
      auto ev = watcher_.next();
      if (!ev.ok()) {
        if (ev.error().code != ErrorCode::K8sForbidden)
          spdlog::debug("pod events: {}", ev.error().describe());
        return;  // closed, or not allowed
      }
      if (ev->type == WatchEvent::Type::Synced) {
        for (const auto& item : ev->items)
          deliver(item);
      } else if (ev->type == WatchEvent::Type::Added || ev->type == WatchEvent::Type::Modified) {
        deliver(ev->object);
      }
    }
  }

  Watcher watcher_;
  PhaseReporter& reporter_;
  std::thread thread_;  // last: starts once the members it uses exist
};

// While alive, touches an annotation of one object now and then:
// an update event for the controllers that watch it.
class Nudge {
 public:
  Nudge(std::shared_ptr<RestClient> client, std::string path)
      : client_(std::move(client)), path_(std::move(path)), thread_([this] { run(); }) {}
  ~Nudge() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Nudge(const Nudge&) = delete;
  Nudge& operator=(const Nudge&) = delete;

 private:
  void run() {
    std::unique_lock lock(mu_);
    // A bind that works takes about 100 ms: the first nudge after 300 ms, then every second.
    auto wait = std::chrono::milliseconds(300);
    for (int n = 1; !cv_.wait_for(lock, wait, [this] { return done_; }); ++n) {
      wait = std::chrono::seconds(1);
      lock.unlock();
      json patch = {{"metadata", {{"annotations", {{"agentpane.io/nudge", std::to_string(n)}}}}}};
      auto r = client_->patch(path_, patch, PatchType::Merge);
      if (!r.ok()) spdlog::debug("nudge {}: {}", path_, r.error().describe());
      lock.lock();
    }
  }

  std::shared_ptr<RestClient> client_;
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members it uses exist
};

// The object named `name` in a watch event (nullptr: this event does not carry it; for a
// Synced list without it, `gone` is set).
const json* eventObject(const WatchEvent& ev, const std::string& name, bool& gone) {
  gone = false;
  if (ev.type == WatchEvent::Type::Bookmark) return nullptr;
  if (ev.type == WatchEvent::Type::Synced) {
    for (const auto& item : ev.items)
      if (item.value("metadata", json::object()).value("name", "") == name) return &item;
    gone = true;
    return nullptr;
  }
  if (ev.type == WatchEvent::Type::Deleted) {
    gone = true;
    return nullptr;
  }
  return &ev.object;
}

// What a sandbox in a scope is made of, gathered from lists (cleanup, list).
struct Parts {
  const json* pod = nullptr;
  const json* claim = nullptr;
  const json* volume = nullptr;
};

}  // namespace

Result<std::unique_ptr<K8sProvider>> K8sProvider::create(K8sProviderOptions opts) {
  RestClientOptions ro;
  ro.io = opts.io;
  auto client = RestClient::create(opts.rest, ro);
  if (!client.ok()) return client.takeError();
  if (!opts.scopeLabels.count(labels::kInstance)) {
    // Every object must carry an instance scope (provider.hpp); without one given, the
    // provider's own name is the scope.
    opts.scopeLabels[labels::kInstance] = opts.instanceName;
  }
  return std::unique_ptr<K8sProvider>(new K8sProvider(std::move(opts), std::move(client).value()));
}

K8sProvider::K8sProvider(K8sProviderOptions opts, std::shared_ptr<RestClient> client)
    : opts_(std::move(opts)), client_(std::move(client)) {}

K8sProvider::~K8sProvider() = default;

std::string K8sProvider::nsOf(const SandboxRef& ref) const {
  return ref.scope.empty() ? opts_.namespaceName : ref.scope;
}

Result<void> K8sProvider::ensureNamespace() {
  // Checked once: a namespace that goes away later shows as a 404 of a create, which clears
  // this (create()).
  if (namespaceSeen_.load()) return {};
  auto r = checkNamespace();
  if (r.ok()) namespaceSeen_ = true;
  return r;
}

Result<void> K8sProvider::checkNamespace() {
  const std::string& ns = opts_.namespaceName;
  auto got = client_->get(resourcePath("v1", "namespaces", {}, ns));
  if (got.ok()) {
    const std::string level = labelOf(*got, "pod-security.kubernetes.io/enforce");
    // No label is privileged; a value PodSecurity cannot parse makes it enforce restricted.
    enforceLevel_ = static_cast<int>(pss::levelFromString(level).value_or(
        level.empty() ? pss::Level::Privileged : pss::Level::Restricted));
    if (level != "restricted") {
      spdlog::warn(
          "namespace {} enforces PodSecurity '{}', not 'restricted'; sandbox pods are "
          "restricted anyway, but other pods there may not be",
          ns, level.empty() ? "privileged (no label)" : level);
    }
    return {};
  }
  // Credentials limited to the namespace may not read Namespaces: the pod create will tell.
  if (isCode(got.error(), ErrorCode::K8sForbidden)) return {};
  if (!isCode(got.error(), ErrorCode::K8sNotFound)) return got.takeError();
  const std::string howTo =
      "create it with the restricted Pod Security level: kubectl create "
      "namespace " +
      ns + " && kubectl label namespace " + ns + " pod-security.kubernetes.io/enforce=restricted";
  if (!opts_.createNamespace) {
    return Error(ErrorCode::K8sNamespaceError, "namespace " + ns + " does not exist; " + howTo,
                 {{"namespace", ns}});
  }
  // The same object `agentpane manifests` prints.
  auto made = client_->create(resourcePath("v1", "namespaces"), namespaceManifest(ns));
  if (made.ok()) enforceLevel_ = static_cast<int>(pss::Level::Restricted);
  if (made.ok() || isCode(made.error(), ErrorCode::K8sConflict)) return {};
  return Error(ErrorCode::K8sNamespaceError,
               "namespace " + ns + " does not exist and cannot be created (" +
                   made.error().message + "); " + howTo,
               {{"namespace", ns}});
}

Result<json> K8sProvider::ownPod(const std::string& ns, const std::string& sandboxId) {
  auto got = client_->get(podPath(ns, podName(sandboxId)));
  if (!got.ok()) {
    if (isCode(got.error(), ErrorCode::K8sNotFound)) return notFound(sandboxId);
    return got.takeError();
  }
  if (!ownedBy(*got, sandboxId, opts_.scopeLabels)) return notFound(sandboxId);
  return got;
}

Result<json> K8sProvider::ownClaim(const std::string& ns, const std::string& sandboxId) {
  auto got = client_->get(claimPath(ns, claimName(sandboxId)));
  if (!got.ok()) {
    if (isCode(got.error(), ErrorCode::K8sNotFound)) return notFound(sandboxId);
    return got.takeError();
  }
  if (!ownedBy(*got, sandboxId, opts_.scopeLabels)) return notFound(sandboxId);
  // A claim being deleted (its pod was removed, a finalizer lets go soon) is a removed
  // sandbox, not a stopped one.
  if (got->contains(json::json_pointer("/metadata/deletionTimestamp"))) return notFound(sandboxId);
  return got;
}

Result<SandboxInfo> K8sProvider::resolve(const SandboxRef& ref) {
  if (!isValidSandboxId(ref.sandboxId)) return notFound(ref.sandboxId);
  const std::string ns = nsOf(ref);
  auto pod = ownPod(ns, ref.sandboxId);
  if (pod.ok()) return infoFromPod(*pod, instance());
  if (!isCode(pod.error(), ErrorCode::SandboxNotFound)) return pod.takeError();
  auto claim = ownClaim(ns, ref.sandboxId);
  if (!claim.ok()) return claim.takeError();
  return infoFromClaim(*claim, instance());
}

Result<SandboxInfo> K8sProvider::get(const SandboxRef& ref) {
  return resolve(ref);
}

Result<SandboxInfo> K8sProvider::requireRunning(const SandboxRef& ref) {
  auto info = resolve(ref);
  if (!info.ok()) return info;
  if (info->state != SandboxState::Running) {
    return Error(ErrorCode::SandboxNotRunning,
                 "sandbox '" + ref.sandboxId + "' is not running (" + info->stateDetail + ")",
                 {{"id", ref.sandboxId}});
  }
  return info;
}

Result<SandboxInfo> K8sProvider::create(const SandboxSpec& spec, const CreateControl& control) {
  auto made = createSandbox(spec, control, false);
  if (!made.ok() && made.error().code == ErrorCode::K8sNotFound) namespaceSeen_ = false;
  return made;
}

Result<SandboxInfo> K8sProvider::createSandbox(const SandboxSpec& spec,
                                               const CreateControl& control, bool warm) {
  if (!isValidSandboxId(spec.id)) {
    return Error(ErrorCode::ValidationError, "invalid sandbox id '" + spec.id + "'");
  }
  PodTemplateOptions t;
  t.namespaceName = opts_.namespaceName;
  t.scopeLabels = opts_.scopeLabels;
  t.imagePullPolicy = opts_.imagePullPolicy;
  t.cpuRequestPercent = opts_.cpuRequestPercent;
  t.workspace = opts_.workspace;
  t.storageClass = opts_.storageClass;
  t.workspaceSizeGi = spec.kubernetes.workspaceSizeGi > 0 ? spec.kubernetes.workspaceSizeGi : 10;
  // The profiles' built-in default ("pvc" without a storage class) means the server's
  // (AGENTPANE_K8S_WORKSPACE: emptyDir for the in-cluster Deployment), as for the namespace.
  const bool builtInWorkspace =
      spec.kubernetes.workspaceVolume == KubernetesOptions{}.workspaceVolume &&
      spec.kubernetes.storageClass.empty();
  if (auto w = workspaceKindFromString(spec.kubernetes.workspaceVolume);
      w && !spec.kubernetes.workspaceVolume.empty() && !builtInWorkspace) {
    t.workspace = *w;
  } else if (!w) {
    return Error(ErrorCode::ValidationError,
                 "workspaceVolume must be pvc, emptyDir or hostPath, not '" +
                     spec.kubernetes.workspaceVolume + "'");
  }
  if (!spec.kubernetes.storageClass.empty()) t.storageClass = spec.kubernetes.storageClass;
  if (t.workspace == WorkspaceKind::Claim && t.storageClass.empty() && !opts_.persistentVolumes) {
    return Error(ErrorCode::ValidationError,
                 "this server makes no PersistentVolumes (AGENTPANE_K8S_WORKSPACE is not pvc): a "
                 "pvc workspace needs a storage class (kubernetes.storageClass), or use emptyDir",
                 {{"field", "workspaceVolume"}});
  }
  // One namespace per provider instance: list, cleanup and reconcile look there only, so a
  // sandbox elsewhere would be lost to them. The built-in default means "the instance's".
  const std::string& wantNs = spec.kubernetes.kubeNamespace;
  if (!wantNs.empty() && wantNs != opts_.namespaceName &&
      wantNs != KubernetesOptions{}.kubeNamespace) {
    return Error(ErrorCode::ValidationError,
                 "the profile asks for namespace '" + wantNs +
                     "' but this server's Kubernetes "
                     "provider works in '" +
                     opts_.namespaceName +
                     "' (set AGENTPANE_K8S_NAMESPACE when starting the server)",
                 {{"field", "kubeNamespace"}});
  }

  if (warm) {
    // No project yet: the warm uid is the sandbox user, and the workspace is a slot that a
    // claim binds the project onto (an emptyDir workspace has none: it stays empty).
    AP_TRY(warmTemplate(spec, t));
  } else {
    // The project directory: it must exist on this host (which is the node of a local
    // cluster), and its owner becomes the sandbox user.
    struct stat st {};
    if (::stat(spec.projectPath.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Error(ErrorCode::SandboxProjectPathInvalid,
                   "project path '" + spec.projectPath + "' is not a directory",
                   {{"projectPath", spec.projectPath}});
    }
    if (t.workspace != WorkspaceKind::EmptyDir) {
      if (st.st_uid == 0) {
        return Error(ErrorCode::SandboxProjectPathInvalid,
                     "project directory '" + spec.projectPath +
                         "' is owned by root, and a pod under PodSecurity 'restricted' cannot "
                         "run as uid 0, so the sandbox could not write it; give the project to a "
                         "non-root user (e.g. chown -R 1000:1000 '" +
                         spec.projectPath + "'), or use the Docker provider",
                     {{"projectPath", spec.projectPath}, {"owner", "0"}});
      }
      t.uid = st.st_uid;
      t.gid = st.st_gid == 0 ? st.st_uid : st.st_gid;
    }
  }

  const auto t0 = Clock::now();
  // The profile's startup budget covers everything: volume, claim and pod.
  const auto deadline = t0 + (spec.kubernetes.startupTimeoutSeconds > 0
                                  ? std::chrono::seconds(spec.kubernetes.startupTimeoutSeconds)
                                  : opts_.startupTimeout);
  AP_TRY(ensureNamespace());
  const std::string& ns = opts_.namespaceName;
  // A stopped sandbox has a claim and no pod: it exists too.
  for (const auto& path : {podPath(ns, podName(spec.id)), claimPath(ns, claimName(spec.id))}) {
    auto got = client_->get(path);
    if (got.ok()) {
      return Error(ErrorCode::SandboxAlreadyExists, "sandbox '" + spec.id + "' already exists",
                   {{"id", spec.id}});
    }
    if (!isCode(got.error(), ErrorCode::K8sNotFound)) return got.takeError();
  }

  json pod = podManifest(spec, t);
  // Refused here, before anything is made, when the namespace's PodSecurity would refuse it.
  if (const int level = enforceLevel_.load(); level >= 0) {
    auto verdict = pss::checkPod(pod, static_cast<pss::Level>(level));
    if (!verdict.allowed()) return pss::violationError(verdict, ns, podName(spec.id));
  }
  auto fail = [&](Error e) -> Error {
    if (e.code == ErrorCode::SandboxCreateCancelled) e = createCancelledError(spec.id);
    auto removed = removeEverything(ns, spec.id, false);  // leaves nothing behind
    if (!removed.ok()) e.details["cleanup"] = removed.error().message;
    return e;
  };
  if (control.cancelled()) return createCancelledError(spec.id);
  // A warm sandbox's slot, before anything that mounts it; cleanup leaves it alone until the
  // sandbox's objects can be listed.
  std::optional<SlotInFlight> inFlight;
  if (!t.workspaceSlot.empty()) {
    inFlight.emplace(*this, spec.id);
    auto slot = opts_.warmSlots->make(spec.id, t.uid, t.gid);
    if (!slot.ok()) return fail(slot.takeError());
  }
  // Egress before the pod exists: the namespace's default deny, then the sandbox's policy
  // with its literal entries (names follow once the pod runs and can resolve them). A warm
  // sandbox may reach nothing until a claim gives it its allowlist.
  const bool policies = warm || spec.kubernetes.networkPolicyEnabled;
  const std::vector<std::string> allowlist =
      warm ? std::vector<std::string>{} : spec.allowedEgressHosts;
  if (policies) {
    AP_TRY(ensureDefaultDeny());
    auto first = applySandboxPolicy(ns, spec.id, allowlist, nullptr);
    if (!first.ok()) return fail(first.takeError());
    control.progress("egress", "network policy " + sandboxPolicyName(spec.id) + " applied");
  } else if (!spec.allowedEgressHosts.empty()) {
    spdlog::warn(
        "k8s: sandbox {}: networkPolicyEnabled is off: its egress allowlist is not "
        "enforced by this server",
        spec.id);
  }
  if (t.workspace == WorkspaceKind::Claim) {
    if (t.storageClass.empty()) {
      auto pv = client_->create(volumePath(), volumeManifest(spec, t));
      if (!pv.ok()) {
        if (isCode(pv.error(), ErrorCode::K8sConflict)) {
          return Error(ErrorCode::SandboxAlreadyExists,
                       "a workspace volume of sandbox '" + spec.id + "' already exists",
                       {{"id", spec.id}, {"volume", volumeName(ns, spec.id)}});
        }
        return pv.takeError();
      }
      // The volume controller binds a claim to its named volume at once only if the volume
      // is already in its cache; otherwise the claim waits for the periodic resync (15 s by
      // default). The controller marks a volume it has seen Available.
      control.progress("volume", "workspace volume " + volumeName(ns, spec.id) + " over " +
                                     (warm ? t.workspaceSlot : spec.projectPath) + " created");
      auto seen = waitPhase(volumePath(), *pv, {"Available", "Bound"}, deadline, control.stop);
      if (!seen.ok()) return fail(seen.takeError());
    }
    auto pvc = client_->create(claimPath(ns), claimManifest(spec, t, pod));
    if (!pvc.ok()) return fail(pvc.takeError());
    control.progress("claim", "workspace claim " + claimName(spec.id) + " created");
    // The scheduler refuses a pod whose claim is unbound and retries only with a backoff of
    // seconds: the pod goes in once the claim is bound. (A storage class may bind only for
    // a pod — WaitForFirstConsumer — so its claims are not waited for.)
    if (t.storageClass.empty()) {
      // The volume controller binds the pair on the claim's event; when that first try does
      // not finish (seen: the volume side bound, the claim left Pending), it tries again only
      // at its periodic resync, 15 s later. A changed annotation is an event: it retries now.
      Nudge nudge(client_, claimPath(ns, claimName(spec.id)));
      auto bound = waitPhase(claimPath(ns), *pvc, {"Bound"}, deadline, control.stop);
      if (!bound.ok()) return fail(bound.takeError());
      control.progress("bound", "workspace claim bound to its volume");
    }
  }
  if (control.cancelled()) return fail(createCancelledError(spec.id));
  json readyPod;
  auto ran = runPod(pod, spec.id, deadline, control, &readyPod);
  if (!ran.ok()) return fail(ran.takeError());
  std::string digest;
  if (policies) {
    const SandboxRef running = sandboxRef(*ran);
    auto eg = applySandboxPolicy(
        ns, spec.id, allowlist,
        egress::hasHostNames(*egress::parseAllowlist(allowlist)) ? &running : nullptr, nullptr,
        &digest);
    if (!eg.ok()) return fail(eg.takeError());
    ran->egress = std::move(eg).value();
  }
  if (warm) {
    std::lock_guard lock(warmMu_);
    warmSeen_[spec.id] = WarmSeen{std::move(readyPod), std::move(digest)};
  }
  spdlog::debug("k8s: sandbox {} ready in {} ms", spec.id,
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  return ran;
}

Result<SandboxInfo> K8sProvider::runPod(const json& pod, const std::string& sandboxId,
                                        Clock::time_point deadline, const CreateControl& control,
                                        json* readyPod) {
  const std::string ns = pod["metadata"].value("namespace", opts_.namespaceName);
  const std::string name = pod["metadata"].value("name", "");
  auto made = client_->create(podPath(ns), pod);
  if (!made.ok()) {
    if (isCode(made.error(), ErrorCode::K8sConflict)) {
      return Error(ErrorCode::SandboxAlreadyExists, "sandbox '" + sandboxId + "' already exists",
                   {{"id", sandboxId}});
    }
    return made.takeError();
  }
  json last = *made;
  PhaseReporter reporter(control);
  reporter.report("pod", "pod " + name + " created in namespace " + ns);
  std::optional<PodEventFeed> events;
  if (control.onProgress) events.emplace(client_, ns, name, reporter);
  auto verdict = watchObject(
      podPath(ns), *made, deadline,
      [&](const json* now) -> std::optional<Result<void>> {
        if (now == nullptr) {
          return Error(ErrorCode::K8sPodNotRunning, "pod " + name + " was deleted while starting",
                       {{"pod", name}});
        }
        last = *now;
        PodProgress p = podProgress(last);
        if (p.failure) return *p.failure;
        const json status = last.value("status", json::object());
        for (const auto& c : status.value("conditions", json::array())) {
          if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "True") {
            reporter.report(
                "scheduled",
                "scheduled on node " + last.value("spec", json::object()).value("nodeName", ""));
          }
        }
        for (const auto& cs : status.value("containerStatuses", json::array())) {
          if (cs.value("state", json::object()).contains("running"))
            reporter.report("started", "container " + cs.value("name", "") + " started");
        }
        if (p.ready) {
          reporter.report("ready", "pod " + name + " is ready");
          return okResult();
        }
        return std::nullopt;
      },
      [&](const json& at) {
        const std::string phase = at.value("status", json::object()).value("phase", "");
        std::string where = phase.empty() ? "not yet scheduled" : phase;
        for (const auto& c : at.value("status", json::object()).value("conditions", json::array()))
          if (c.value("status", "") == "False" && c.contains("message"))
            where +=
                "; " + c.value("type", std::string()) + ": " + c.value("message", std::string());
        return Error(ErrorCode::K8sPodStartupTimeout,
                     "pod " + name + " was not ready within the startup timeout (" + where + ")",
                     {{"pod", name}, {"namespace", ns}});
      },
      control.stop);
  if (!verdict.ok()) return verdict.takeError();
  if (readyPod) *readyPod = last;
  return infoFromPod(last, instance());
}

Result<void> K8sProvider::watchObject(
    const std::string& collection, const json& object, Clock::time_point deadline,
    const std::function<std::optional<Result<void>>(const json*)>& decide,
    const std::function<Error(const json&)>& timedOut, std::stop_token stop) {
  const std::string name = object["metadata"].value("name", "");
  json last = object;
  if (auto v = decide(&last)) return std::move(*v);
  if (stop.stop_requested()) return Error(ErrorCode::SandboxCreateCancelled, "cancelled");
  WatchOptions wo;
  wo.selectors.fieldSelector = "metadata.name=" + name;
  wo.resourceVersion = object["metadata"].value("resourceVersion", "");
  Watcher watcher(client_, collection, wo);
  CloseAtDeadline guard(watcher, deadline, stop);
  for (;;) {
    auto ev = watcher.next();
    if (!ev.ok()) {
      if (guard.cancelled()) return Error(ErrorCode::SandboxCreateCancelled, "cancelled");
      if (guard.expired()) return timedOut(last);
      return ev.takeError();
    }
    bool gone = false;
    const json* now = eventObject(*ev, name, gone);
    if (gone) now = nullptr;
    if (!gone && now == nullptr) continue;  // a bookmark
    if (now != nullptr) last = *now;
    if (auto v = decide(now)) return std::move(*v);
  }
}

Result<void> K8sProvider::waitPhase(const std::string& collection, const json& object,
                                    const std::set<std::string>& phases, Clock::time_point deadline,
                                    std::stop_token stop) {
  const std::string name = object["metadata"].value("name", "");
  const std::string kind = object.value("kind", std::string("object"));
  auto phaseOf = [](const json& o) { return o.value("status", json::object()).value("phase", ""); };
  return watchObject(
      collection, object, deadline,
      [&](const json* now) -> std::optional<Result<void>> {
        if (now == nullptr) {
          return Error(ErrorCode::K8sPodNotRunning, kind + " " + name + " was deleted",
                       {{"name", name}});
        }
        const std::string phase = phaseOf(*now);
        if (phases.count(phase)) return okResult();
        if (phase == "Lost" || phase == "Failed") {
          return Error(ErrorCode::K8sPodNotRunning, kind + " " + name + " is " + phase,
                       {{"name", name}});
        }
        return std::nullopt;
      },
      [&](const json& at) {
        const std::string phase = phaseOf(at);
        return Error(ErrorCode::K8sPodStartupTimeout,
                     kind + " " + name + " did not become " + *phases.begin() + " in time (phase " +
                         (phase.empty() ? "none" : phase) + ")",
                     {{"name", name}});
      },
      std::move(stop));
}

Result<void> K8sProvider::waitGone(const std::string& collection, const std::string& name,
                                   Clock::time_point deadline) {
  auto got = client_->get(collection + "/" + name);
  if (!got.ok()) {
    if (isCode(got.error(), ErrorCode::K8sNotFound)) return {};
    return got.takeError();
  }
  return watchObject(
      collection, *got, deadline,
      [](const json* now) -> std::optional<Result<void>> {
        if (now == nullptr) return okResult();
        return std::nullopt;
      },
      [&](const json&) {
        return Error(ErrorCode::Timeout, name + " was still being deleted after the stop timeout",
                     {{"name", name}});
      });
}

Result<void> K8sProvider::removeEverything(const std::string& ns, const std::string& sandboxId,
                                           bool podOnly) {
  {
    std::lock_guard lock(warmMu_);
    warmSeen_.erase(sandboxId);  // a pod made again is another version
  }
  const auto deadline = Clock::now() + opts_.stopTimeout;
  DeleteOptions del;
  del.gracePeriodSeconds = opts_.deleteGraceSeconds;
  auto pod = ownPod(ns, sandboxId);
  if (pod.ok()) {
    auto r = client_->remove(podPath(ns, podName(sandboxId)), del);
    if (!r.ok() && !isCode(r.error(), ErrorCode::K8sNotFound)) return r.takeError();
    AP_TRY(waitGone(podPath(ns), podName(sandboxId), deadline));
  } else if (!isCode(pod.error(), ErrorCode::SandboxNotFound)) {
    return pod.takeError();
  }
  if (podOnly) return {};
  AP_TRY(removeSandboxPolicy(ns, sandboxId));
  // The claim even while it is being deleted (ownClaim hides those): wait for it too.
  auto claim = client_->get(claimPath(ns, claimName(sandboxId)));
  if (claim.ok()) {
    if (ownedBy(*claim, sandboxId, opts_.scopeLabels)) {
      auto r = client_->remove(claimPath(ns, claimName(sandboxId)), {});
      if (!r.ok() && !isCode(r.error(), ErrorCode::K8sNotFound)) return r.takeError();
      // Gone, not merely deleting: a caller that lists right after sees nothing of it.
      AP_TRY(waitGone(claimPath(ns), claimName(sandboxId), deadline));
    }
  } else if (!isCode(claim.error(), ErrorCode::K8sNotFound)) {
    return claim.takeError();
  }
  if (opts_.persistentVolumes) {
    auto pv = client_->get(volumePath(volumeName(ns, sandboxId)));
    if (pv.ok()) {
      if (ownedBy(*pv, sandboxId, opts_.scopeLabels)) {
        auto r = client_->remove(volumePath(volumeName(ns, sandboxId)), {});
        if (!r.ok() && !isCode(r.error(), ErrorCode::K8sNotFound)) return r.takeError();
        AP_TRY(waitGone(volumePath(), volumeName(ns, sandboxId), deadline));
      }
    } else if (!isCode(pv.error(), ErrorCode::K8sNotFound)) {
      return pv.takeError();
    }
  }
  // Last, once nothing mounts it: a warm sandbox's slot (unmounts the project, never
  // deletes in it).
  return releaseSlot(sandboxId);
}

Result<std::vector<SandboxInfo>> K8sProvider::list(const ListFilter& filter) {
  std::map<std::string, std::string> extra = filter.labels;
  if (filter.projectId) extra[labels::kProjectId] = *filter.projectId;
  if (filter.agentId) extra[labels::kAgentId] = *filter.agentId;
  ListOptions lo;
  lo.labelSelector = scopeSelector(opts_.scopeLabels, extra);
  const std::string& ns = opts_.namespaceName;
  auto pods = client_->listAll(podPath(ns), lo);
  if (!pods.ok()) return pods.takeError();
  auto claims = client_->listAll(claimPath(ns), lo);
  if (!claims.ok()) return claims.takeError();
  std::vector<SandboxInfo> out;
  std::set<std::string> seen;
  for (const auto& pod : pods->value("items", json::array())) {
    SandboxInfo info = infoFromPod(pod, instance());
    if (info.id.empty()) continue;
    seen.insert(info.id);
    if (!filter.includeStopped && info.state != SandboxState::Running &&
        info.state != SandboxState::Creating) {
      continue;
    }
    out.push_back(std::move(info));
  }
  if (filter.includeStopped) {
    for (const auto& claim : claims->value("items", json::array())) {
      if (claim.contains(json::json_pointer("/metadata/deletionTimestamp"))) continue;
      SandboxInfo info = infoFromClaim(claim, instance());
      if (info.id.empty() || seen.count(info.id)) continue;
      seen.insert(info.id);
      out.push_back(std::move(info));
    }
    // A volume alone is what a create cut short (a server killed) left: listed as failed,
    // so that reconcile removes it like any orphan.
    json volumes = {{"items", json::array()}};
    if (opts_.persistentVolumes) {
      auto got = client_->listAll(volumePath(), lo);
      if (!got.ok()) return got.takeError();
      volumes = std::move(got).value();
    }
    for (const auto& v : volumes.value("items", json::array())) {
      if (v.contains(json::json_pointer("/metadata/deletionTimestamp"))) continue;
      const std::string id = labelOf(v, labels::kSandboxId);
      if (id.empty() || seen.count(id) ||
          v.value("metadata", json::object()).value("name", "") != volumeName(ns, id)) {
        continue;
      }
      SandboxInfo info = infoFromClaim(v, instance());
      info.state = SandboxState::Failed;
      info.stateDetail = "workspace volume without claim or pod (an interrupted create)";
      out.push_back(std::move(info));
    }
  }
  return out;
}

Result<SandboxInfo> K8sProvider::start(const SandboxRef& ref) {
  const std::string ns = nsOf(ref);
  auto pod = ownPod(ns, ref.sandboxId);
  if (pod.ok()) {
    SandboxInfo info = infoFromPod(*pod, instance());
    if (info.state == SandboxState::Running) return info;
    if (info.state == SandboxState::Creating) {
      return Error(ErrorCode::SandboxNotRunning,
                   "sandbox '" + ref.sandboxId + "' is still starting (" + info.stateDetail + ")",
                   {{"id", ref.sandboxId}});
    }
    // Failed, finished or terminating: make way for a new pod from the claim's template.
    AP_TRY(keepClaimedProject(ns, *pod));
    AP_TRY(removeEverything(ns, ref.sandboxId, true));
  } else if (!isCode(pod.error(), ErrorCode::SandboxNotFound)) {
    return pod.takeError();
  }
  auto claim = ownClaim(ns, ref.sandboxId);
  if (!claim.ok()) {
    if (pod.ok() && isCode(claim.error(), ErrorCode::SandboxNotFound)) {
      return Error(ErrorCode::SandboxNotRunning,
                   "sandbox '" + ref.sandboxId +
                       "' has no workspace claim to start from "
                       "(emptyDir and hostPath workspaces end with their pod)",
                   {{"id", ref.sandboxId}});
    }
    return claim.takeError();
  }
  const std::string text = claim->value("metadata", json::object())
                               .value("annotations", json::object())
                               .value(k8s_annotations::kPodTemplate, "");
  auto tmpl = json::parse(text, nullptr, false);
  if (tmpl.is_discarded() || !tmpl.is_object()) {
    return Error(ErrorCode::SandboxNotRunning,
                 "the workspace claim of sandbox '" + ref.sandboxId +
                     "' does not hold a pod template to start from",
                 {{"id", ref.sandboxId}});
  }
  // A warm sandbox's template says warm; started again, it may have been claimed: it never
  // goes back to the pool.
  if (tmpl.contains(json::json_pointer("/metadata/labels")) &&
      labelOf(tmpl, labels::kWarmPool) == "true") {
    tmpl["metadata"]["labels"][labels::kWarmPoolState] = "allocated";
    AP_TRY(rebindSlot(tmpl));
  }
  return runPod(tmpl, ref.sandboxId, Clock::now() + opts_.startupTimeout, CreateControl{});
}

Result<void> K8sProvider::stop(const SandboxRef& ref) {
  const std::string ns = nsOf(ref);
  auto pod = ownPod(ns, ref.sandboxId);
  if (!pod.ok()) {
    if (!isCode(pod.error(), ErrorCode::SandboxNotFound)) return pod.takeError();
    auto claim = ownClaim(ns, ref.sandboxId);  // stopped already?
    if (!claim.ok()) return claim.takeError();
    return {};
  }
  AP_TRY(keepClaimedProject(ns, *pod));
  return removeEverything(ns, ref.sandboxId, true);
}

Result<void> K8sProvider::remove(const SandboxRef& ref) {
  if (!isValidSandboxId(ref.sandboxId)) return {};
  return removeEverything(nsOf(ref), ref.sandboxId, false);
}

HealthStatus K8sProvider::healthCheck() {
  HealthStatus h;
  auto version = client_->get("/version");
  if (!version.ok()) {
    h.warnings.push_back(version.error().describe());
    return h;
  }
  h.reachable = true;
  h.version = version->value("gitVersion", "");
  h.apiVersion = "v1";
  ListOptions lo;
  lo.labelSelector = scopeSelector(opts_.scopeLabels);
  auto pods = client_->listAll(podPath(opts_.namespaceName), lo);
  if (!pods.ok()) {
    h.warnings.push_back("cannot list pods in " + opts_.namespaceName + ": " +
                         pods.error().describe());
    return h;
  }
  for (const auto& pod : pods->value("items", json::array())) {
    ++h.total;
    if (infoFromPod(pod, instance()).state == SandboxState::Running) ++h.running;
  }
  auto ns = client_->get(resourcePath("v1", "namespaces", {}, opts_.namespaceName));
  if (!ns.ok() && isCode(ns.error(), ErrorCode::K8sNotFound)) {
    h.warnings.push_back("namespace " + opts_.namespaceName +
                         " does not exist yet (made at the first create)");
  }
  return h;
}

Result<CleanupReport> K8sProvider::cleanup(const CleanupFilter& filter) {
  ListOptions lo;
  lo.labelSelector = scopeSelector(opts_.scopeLabels);
  const std::string& ns = opts_.namespaceName;
  auto pods = client_->listAll(podPath(ns), lo);
  if (!pods.ok()) return pods.takeError();
  auto claims = client_->listAll(claimPath(ns), lo);
  if (!claims.ok()) return claims.takeError();
  json volumes = {{"items", json::array()}};
  if (opts_.persistentVolumes) {
    auto got = client_->listAll(volumePath(), lo);
    if (!got.ok()) return got.takeError();
    volumes = std::move(got).value();
  }

  // Objects already being deleted are on their way out: not counted again.
  auto deleting = [](const json& o) {
    return o.contains(json::json_pointer("/metadata/deletionTimestamp"));
  };
  std::map<std::string, Parts> byId;
  for (const auto& p : pods->value("items", json::array()))
    if (!deleting(p)) byId[labelOf(p, labels::kSandboxId)].pod = &p;
  for (const auto& c : claims->value("items", json::array()))
    if (!deleting(c)) byId[labelOf(c, labels::kSandboxId)].claim = &c;
  for (const auto& v : volumes.value("items", json::array())) {
    if (deleting(v)) continue;
    // Only the volumes of this namespace's sandboxes.
    if (v.value("metadata", json::object()).value("name", "") !=
        volumeName(ns, labelOf(v, labels::kSandboxId))) {
      continue;
    }
    byId[labelOf(v, labels::kSandboxId)].volume = &v;
  }
  byId.erase("");

  std::optional<std::set<std::string>> known;
  if (filter.knownIds) known.emplace(filter.knownIds->begin(), filter.knownIds->end());
  CleanupReport report;
  for (const auto& [id, parts] : byId) {
    bool drop = false;
    if (known && !known->count(id)) drop = true;
    if (parts.pod != nullptr) {
      SandboxInfo info = infoFromPod(*parts.pod, instance());
      if (filter.failed && info.state == SandboxState::Failed) drop = true;
      if (filter.stopped && info.state == SandboxState::Stopped) drop = true;
      if (filter.createdBeforeUnix && info.state == SandboxState::Running &&
          info.createdAtUnix < *filter.createdBeforeUnix) {
        drop = true;
      }
    } else if (filter.stopped) {
      // A claim without its pod is a stopped sandbox; a volume alone, what a create that
      // died half-way left.
      drop = true;
    }
    if (!drop) continue;
    auto r = removeEverything(ns, id, false);
    (r.ok() ? report.removedIds : report.failedIds).push_back(id);
    if (!r.ok()) spdlog::warn("cleanup of sandbox {} failed: {}", id, r.error().describe());
  }
  sweepSlots();
  return report;
}

}  // namespace agentpane::k8s
