#include "docker/docker_provider.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/egress.hpp"
#include "docker/container_info.hpp"
#include "docker/docker_host.hpp"
#include "docker/engine_json.hpp"
#include "docker/sandbox_user.hpp"

namespace agentpane::docker {

using nlohmann::json;

namespace {

// An image reference as docker accepts it; anything else never reaches a URL.
bool isValidImageRef(const std::string& image) {
  if (image.empty() || image.size() > 255) return false;
  return std::all_of(image.begin(), image.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':' || c == '@';
  });
}

bool isValidEnvKey(const std::string& k) {
  return !k.empty() && k.find('=') == std::string::npos && k.find('\0') == std::string::npos;
}

Error invalidId(const std::string& id) {
  return Error(ErrorCode::ValidationError, "invalid sandbox id '" + id + "'");
}

Error notFound(const std::string& id) {
  return Error(ErrorCode::SandboxNotFound, "sandbox '" + id + "' not found", {{"id", id}});
}

// A container id as the engine reports it: hex only, so it never changes a URL's meaning.
bool isValidContainerId(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool isOurs(const SandboxInfo& info) {
  auto it = info.labels.find(labels::kSandbox);
  return it != info.labels.end() && it->second == "true" && !info.id.empty();
}

std::int64_t nowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<DockerProvider>> DockerProvider::create(DockerProviderOptions opts) {
  net::Endpoint ep;
  if (opts.endpoint) {
    ep = *opts.endpoint;
  } else {
    auto fromEnv = dockerEndpointFromEnv();
    if (!fromEnv.ok()) return fromEnv.takeError();
    ep = fromEnv.value();
  }
  auto io = opts.io ? opts.io : net::IoThread::create(1, "ap-docker-io");
  DockerClientOptions co;
  co.endpoint = ep;
  co.callTimeout = opts.callTimeout;
  auto client = DockerClient::create(co, io);
  if (!client.ok()) return client.takeError();
  return std::unique_ptr<DockerProvider>(new DockerProvider(
      std::move(opts), std::move(io), std::shared_ptr<DockerClient>(std::move(client.value()))));
}

DockerProvider::DockerProvider(DockerProviderOptions opts, std::shared_ptr<net::IoThread> io,
                               std::shared_ptr<DockerClient> client)
    : opts_(std::move(opts)), io_(std::move(io)), client_(std::move(client)) {
  if (opts_.egressFirewall) firewall_ = std::make_unique<EgressFirewall>();
}

DockerProvider::~DockerProvider() = default;

std::vector<std::pair<std::string, std::string>> DockerProvider::scopeSelector() const {
  std::vector<std::pair<std::string, std::string>> sel{{labels::kSandbox, "true"}};
  for (const auto& kv : opts_.scopeLabels)
    sel.emplace_back(kv);
  return sel;
}

Result<void> DockerProvider::validateSpec(const SandboxSpec& spec) const {
  if (!isValidSandboxId(spec.id)) return invalidId(spec.id);
  if (!isValidImageRef(spec.image))
    return Error(ErrorCode::ValidationError, "invalid image '" + spec.image + "'");
  if (spec.memoryMb <= 0 || spec.cpu <= 0 || spec.pidsLimit <= 0) {
    return Error(ErrorCode::ValidationError, "memoryMb, cpu and pidsLimit must be positive");
  }
  for (const auto& [k, v] : spec.env) {
    if (!isValidEnvKey(k))
      return Error(ErrorCode::ValidationError, "invalid environment variable name '" + k + "'");
  }
  return {};
}

Result<SandboxInfo> DockerProvider::create(const SandboxSpec& spec, const CreateControl& control) {
  AP_TRY(validateSpec(spec));
  // Checked before the engine is touched: nothing to undo.
  struct stat st {};
  if (spec.projectPath.empty() || spec.projectPath.front() != '/' ||
      ::stat(spec.projectPath.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "project path '" + spec.projectPath + "' is not an existing absolute directory",
                 {{"projectPath", spec.projectPath}});
  }
  // The sandbox runs as the directory's owner, so that it can write the project and its
  // files belong to that owner on the host (root-owned: root without capabilities).
  const SandboxUser user = sandboxUserFor(st.st_uid, st.st_gid);
  return createContainer(spec, control, Workspace{spec.projectPath, user, false});
}

Result<SandboxInfo> DockerProvider::createContainer(const SandboxSpec& spec,
                                                    const CreateControl& control,
                                                    const Workspace& ws) {
  {
    std::lock_guard lock(creatingMu_);
    creating_.insert(spec.id);
  }
  struct Done {
    DockerProvider* p;
    const std::string& id;
    ~Done() {
      std::lock_guard lock(p->creatingMu_);
      p->creating_.erase(id);
    }
  } done{this, spec.id};
  const SandboxUser& user = ws.user;
  auto image = client_->call("GET", "/images/" + spec.image + "/json");
  if (!image.ok()) {
    if (httpStatus(image.error()) == 404) {
      return Error(ErrorCode::SandboxImageNotFound,
                   "image '" + spec.image + "' is not present on the engine",
                   {{"image", spec.image}});
    }
    return image.takeError();
  }
  control.progress("image", "image " + spec.image + " is present on the engine");
  if (control.cancelled()) return createCancelledError(spec.id);

  // Each sandbox that has a network has one of its own: no sandbox shares one with another.
  //  - an allowlist, or no network profile while the firewall is on: a bridge filtered by host
  //    rules (DNS and the allowlist only);
  //  - Bridge without an allowlist while the firewall is on: filtered too, open to everything
  //    but the always-blocked ranges (private, loopback, link-local, metadata), which the
  //    wide entry's sub-chain carves out;
  //  - Internal: an internal network (no route out); Bridge, firewall off: an unfiltered bridge;
  //  - no network profile, firewall off: none at all.
  // A warm sandbox has no egress until claimed: a filtered network with an empty allowlist
  // (DNS only) when the firewall is on, so that the claim can open it; else none at all.
  const bool open = !ws.warm && firewall_ && spec.network == NetworkMode::Bridge &&
                    spec.allowedEgressHosts.empty();
  const bool filtered = ws.warm ? firewall_ != nullptr
                                : !spec.allowedEgressHosts.empty() || open ||
                                      (firewall_ && spec.network == NetworkMode::None);
  if (filtered && !firewall_) {
    return Error(ErrorCode::ValidationError,
                 "this server does not enforce egress allowlists on Docker (it enforces them with "
                 "host iptables rules, which needs it to run as root)",
                 {{"field", "allowEgress"}, {"reason", "EGRESS_ENFORCEMENT_UNAVAILABLE"}});
  }
  std::string networkMode = "none";
  if (filtered || (!ws.warm && spec.network != NetworkMode::None)) {
    AP_TRY(makeSandboxNetwork(spec, !filtered && spec.network == NetworkMode::Internal, filtered));
    networkMode = networkName(spec.id);
  }
  std::optional<EgressStatus> egressStatus;
  if (filtered) {
    // The rules exist before the container runs (names follow once it can resolve them).
    auto first = applyFirewall(spec.id, effectiveAllowlist(spec.allowedEgressHosts, open), nullptr);
    if (!first.ok()) {
      auto rm = removeSandboxNetwork(spec.id);
      if (!rm.ok()) spdlog::warn("sandbox {}: {}", spec.id, rm.error().describe());
      return first.takeError();
    }
    egressStatus = std::move(first).value();
  }

  json lbls = sandboxLabels(spec, opts_.scopeLabels);
  lbls[docker_labels::kProjectPath] = spec.projectPath;
  lbls[docker_labels::kImage] = spec.image;
  lbls[docker_labels::kUidGid] = user.toString();
  if (networkMode != "none") lbls[docker_labels::kOwnNetwork] = networkMode;
  if (open) lbls[docker_labels::kEgressOpen] = "1";

  json env = json::array();
  for (const auto& [k, v] : spec.env)
    env.push_back(k + "=" + v);
  // A profile's own HOME wins; execs inherit the container's environment.
  const bool ownHome = std::any_of(spec.env.begin(), spec.env.end(),
                                   [](const auto& kv) { return kv.first == "HOME"; });
  if (auto home = homeFor(user); home && !ownHome) env.push_back("HOME=" + *home);

  json workspaceMount = {{"Type", "bind"}, {"Source", ws.source}, {"Target", "/workspace"}};
  // A warm sandbox's slot: a project bound onto it later on the host propagates in.
  if (ws.warm) workspaceMount["BindOptions"] = {{"Propagation", "rslave"}};

  const auto memory = static_cast<std::int64_t>(spec.memoryMb) * 1024 * 1024;
  json body = {
      {"Image", spec.image},
      {"Cmd", {"sleep", "infinity"}},
      {"User", user.toString()},
      {"WorkingDir", "/workspace"},
      {"Env", env},
      {"Labels", lbls},
      {"HostConfig",
       {{"Memory", memory},
        {"MemorySwap", memory},  // no swap beyond the limit
        {"NanoCpus", static_cast<std::int64_t>(spec.cpu * 1e9)},
        {"PidsLimit", spec.pidsLimit},
        {"CapDrop", {"ALL"}},
        {"SecurityOpt", {"no-new-privileges"}},
        // Mounts rather than Binds: a path with ':' or ',' cannot be misparsed.
        {"Mounts", {workspaceMount}},
        {"Init", true},
        {"NetworkMode", networkMode}}},
  };
  const std::string name = containerName(spec.id);
  auto made = client_->call("POST", "/containers/create?name=" + name, &body);
  if (!made.ok() && networkMode != "none") {
    auto rm = removeSandboxNetwork(spec.id);
    if (!rm.ok()) spdlog::warn("sandbox {}: {}", spec.id, rm.error().describe());
  }
  if (!made.ok()) {
    int status = httpStatus(made.error());
    if (status == 409) {
      return Error(ErrorCode::SandboxAlreadyExists, "sandbox '" + spec.id + "' already exists",
                   {{"id", spec.id}});
    }
    if (status == 404) {
      return Error(ErrorCode::SandboxImageNotFound, made.error().message, {{"image", spec.image}});
    }
    if (status == 400) {
      // The engine refused the request itself (more CPUs than the host has, a memory limit
      // below its minimum, ...): the caller's input, said in the engine's words.
      auto d = made.error().details;
      const std::string& msg = made.error().message;
      if (msg.find("CPU") != std::string::npos) d["field"] = "cpu";
      if (msg.find("emory") != std::string::npos) d["field"] = "memoryMb";
      auto engine = d.count("engineMessage") != 0 ? d["engineMessage"] : msg;
      return Error(ErrorCode::ValidationError, "the Docker engine refused the sandbox: " + engine,
                   d);
    }
    return Error(ErrorCode::SandboxCreateFailed, made.error().message, made.error().details);
  }

  auto fail = [&](const std::string& why) -> Error {
    auto removed = remove(SandboxRef{instance(), "", "", "", spec.id});  // leaves nothing behind
    auto d = std::map<std::string, std::string>{{"id", spec.id}};
    if (!removed.ok()) d["cleanup"] = removed.error().message;
    return Error(ErrorCode::SandboxCreateFailed, why, d);
  };
  control.progress("created", "container " + name + " created");
  if (control.cancelled()) {
    auto removed = remove(SandboxRef{instance(), "", "", "", spec.id});
    if (!removed.ok())
      spdlog::warn("sandbox {}: cancelled create: {}", spec.id, removed.error().describe());
    return createCancelledError(spec.id);
  }
  auto started = client_->call("POST", "/containers/" + name + "/start");
  if (!started.ok()) return fail("starting the container failed: " + started.error().message);
  control.progress("started", "container started");

  auto info = resolve(SandboxRef{instance(), "", "", "", spec.id});
  if (!info.ok()) return fail("inspecting the new container failed: " + info.error().message);
  if (info->state != SandboxState::Running) {
    return fail("the container is not running after start (" + info->stateDetail + ")");
  }
  if (filtered) {
    const SandboxRef running = sandboxRef(*info);
    auto eg = applyFirewall(spec.id, effectiveAllowlist(spec.allowedEgressHosts, open),
                            egress::hasHostNames(*egress::parseAllowlist(spec.allowedEgressHosts))
                                ? &running
                                : nullptr);
    if (!eg.ok()) return fail("applying the egress rules failed: " + eg.error().describe());
    egressStatus = std::move(eg).value();
  }
  info->egress = egressStatus;
  return info;
}

bool DockerProvider::inScope(const SandboxInfo& info) const {
  for (const auto& [k, v] : opts_.scopeLabels) {
    auto it = info.labels.find(k);
    if (it == info.labels.end() || it->second != v) return false;
  }
  return true;
}

Result<SandboxInfo> DockerProvider::resolve(const SandboxRef& ref) {
  if (!isValidSandboxId(ref.sandboxId)) return notFound(ref.sandboxId);
  if (!ref.uid.empty() && !isValidContainerId(ref.uid)) return notFound(ref.sandboxId);
  const std::string target = ref.uid.empty() ? containerName(ref.sandboxId) : ref.uid;
  auto r = client_->call("GET", "/containers/" + target + "/json");
  if (!r.ok()) {
    if (httpStatus(r.error()) == 404) return notFound(ref.sandboxId);
    return r.takeError();
  }
  SandboxInfo info = sandboxFromInspect(r.value());
  // A container that is not this sandbox of this instance (another server's, a stranger's
  // with our name) is not found: we never stop, exec in or remove it.
  if (!isOurs(info) || info.id != ref.sandboxId || !inScope(info)) return notFound(ref.sandboxId);
  info.instance = instance();
  markClaimed(info);
  return info;
}

Result<SandboxInfo> DockerProvider::get(const SandboxRef& ref) {
  return resolve(ref);
}

Result<std::vector<SandboxInfo>> DockerProvider::list(const ListFilter& filter) {
  auto sel = scopeSelector();
  if (filter.projectId) sel.emplace_back(labels::kProjectId, *filter.projectId);
  if (filter.agentId) sel.emplace_back(labels::kAgentId, *filter.agentId);
  for (const auto& kv : filter.labels)
    sel.emplace_back(kv);
  std::string path = "/containers/json?all=" + std::string(filter.includeStopped ? "1" : "0") +
                     "&filters=" + labelFilterQuery(sel);
  auto r = client_->call("GET", path);
  if (!r.ok()) return r.takeError();
  std::vector<SandboxInfo> out;
  if (!r->is_array()) return out;
  for (const auto& entry : r.value()) {
    SandboxInfo info = sandboxFromListEntry(entry);
    info.instance = instance();
    markClaimed(info);
    if (isOurs(info)) out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const SandboxInfo& a, const SandboxInfo& b) { return a.id < b.id; });
  return out;
}

Result<SandboxInfo> DockerProvider::start(const SandboxRef& ref) {
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  if (info->state == SandboxState::Running) return info;
  auto r = client_->call("POST", "/containers/" + info->containerId + "/start");
  if (!r.ok() && httpStatus(r.error()) != 304) {  // 304: started meanwhile
    if (httpStatus(r.error()) == 404) return notFound(ref.sandboxId);
    return Error(ErrorCode::SandboxNotRunning,
                 "sandbox '" + ref.sandboxId + "' cannot start: " + r.error().message,
                 {{"id", ref.sandboxId}});
  }
  auto after = resolve(ref);
  if (!after.ok()) return after.takeError();
  if (after->state != SandboxState::Running) {
    return Error(
        ErrorCode::SandboxNotRunning,
        "sandbox '" + ref.sandboxId + "' is not running after start (" + after->stateDetail + ")",
        {{"id", ref.sandboxId}});
  }
  return after;
}

Result<void> DockerProvider::stop(const SandboxRef& ref) {
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  auto timeout = std::chrono::seconds(opts_.stopTimeoutSeconds) + opts_.callTimeout;
  auto r = client_->call(
      "POST",
      "/containers/" + info->containerId + "/stop?t=" + std::to_string(opts_.stopTimeoutSeconds),
      nullptr, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  if (r.ok()) return {};
  int status = httpStatus(r.error());
  if (status == 304) return {};  // already stopped
  if (status == 404) return notFound(ref.sandboxId);
  return r.takeError();
}

Result<void> DockerProvider::remove(const SandboxRef& ref) {
  if (!isValidSandboxId(ref.sandboxId)) return invalidId(ref.sandboxId);
  auto info = resolve(ref);
  if (!info.ok()) {
    // Unknown, already gone, or not ours to touch: idempotent success (a slot left by a
    // container already gone is this instance's: released).
    if (info.error().code == ErrorCode::SandboxNotFound) return releaseSlot(ref.sandboxId);
    return info.takeError();
  }
  auto r = client_->call("DELETE", "/containers/" + info->containerId + "?force=1&v=1");
  const bool ownNetwork = info->labels.count(docker_labels::kOwnNetwork) != 0;
  if (r.ok() || httpStatus(r.error()) == 404) {
    if (ownNetwork) AP_TRY(removeSandboxNetwork(ref.sandboxId));
    return releaseSlot(ref.sandboxId);  // the container is gone: its slot can go
  }
  int status = httpStatus(r.error());
  if (status == 409 && r.error().message.find("already in progress") != std::string::npos)
    return {};
  return r.takeError();
}

Result<SandboxMetrics> DockerProvider::metrics(const SandboxRef& ref) {
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  if (info->state != SandboxState::Running) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox '" + ref.sandboxId + "' is not running",
                 {{"id", ref.sandboxId}});
  }
  const std::string& id = info->containerId;
  // stream=false waits for a second sample so that precpu_stats is filled (about 1 s).
  auto stats = client_->call("GET", "/containers/" + id + "/stats?stream=false");
  if (!stats.ok()) return stats.takeError();
  auto m = parseStats(stats->dump());
  if (!m.ok()) return m.takeError();
  auto raw = client_->call("GET", "/containers/" + id + "/json");
  std::string started = raw.ok() ? raw.value()["State"].value("StartedAt", std::string()) : "";
  if (auto t = parseRfc3339(started)) m->uptimeSeconds = std::max<std::int64_t>(0, nowUnix() - *t);
  return m;
}

HealthStatus DockerProvider::healthCheck() {
  HealthStatus h;
  auto v = client_->version();
  if (!v.ok()) {
    h.warnings.push_back(v.error().message);
    return h;
  }
  h.reachable = true;
  h.version = v->version;
  auto api = client_->apiVersion();
  if (api.ok())
    h.apiVersion = api->toString();
  else
    h.warnings.push_back(api.error().message);

  auto all = list(ListFilter{});
  if (all.ok()) {
    h.total = static_cast<int>(all->size());
    h.running = static_cast<int>(std::count_if(all->begin(), all->end(), [](const SandboxInfo& i) {
      return i.state == SandboxState::Running;
    }));
  } else {
    h.warnings.push_back("listing sandboxes failed: " + all.error().message);
  }
  if (!opts_.defaultImage.empty()) {
    auto image = client_->call("GET", "/images/" + opts_.defaultImage + "/json");
    if (!image.ok() && httpStatus(image.error()) == 404) {
      h.warnings.push_back("default image " + opts_.defaultImage +
                           " is missing: build it with `bash scripts/build-sandbox-image.sh`");
    }
  }
  auto info = client_->call("GET", "/info");
  if (info.ok() && info->contains("Warnings") && (*info)["Warnings"].is_array()) {
    for (const auto& w : (*info)["Warnings"]) {
      if (w.is_string()) h.warnings.push_back("engine: " + w.get<std::string>());
    }
  }
  return h;
}

Result<CleanupReport> DockerProvider::cleanup(const CleanupFilter& filter) {
  auto all = list(ListFilter{});
  if (!all.ok()) return all.takeError();
  std::set<std::string> known;
  if (filter.knownIds) known.insert(filter.knownIds->begin(), filter.knownIds->end());
  CleanupReport report;
  for (const auto& s : all.value()) {
    bool doomed = (filter.stopped && s.state == SandboxState::Stopped) ||
                  (filter.failed && s.state == SandboxState::Failed) ||
                  (filter.knownIds && known.count(s.id) == 0) ||
                  (filter.createdBeforeUnix && s.createdAtUnix < *filter.createdBeforeUnix);
    if (!doomed) continue;
    if (remove(sandboxRef(s)).ok())
      report.removedIds.push_back(s.id);
    else
      report.failedIds.push_back(s.id);
  }
  for (auto& id : sweepNetworks())
    report.removedIds.push_back(std::move(id));
  // Slots whose container no longer exists (a crash between removing it and its slot).
  if (opts_.warmSlots) {
    auto left = list(ListFilter{});
    if (left.ok()) {
      std::set<std::string> existing;
      for (const auto& s : left.value())
        existing.insert(s.id);
      sweepSlots(existing);
    }
  }
  return report;
}

Result<std::unique_ptr<EventStream>> DockerProvider::subscribeEvents() {
  return client_->events(labelFilterQuery(scopeSelector(), {"container"}));
}

}  // namespace agentpane::docker
