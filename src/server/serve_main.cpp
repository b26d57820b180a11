#include "server/serve_main.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>

#include "audit/ledger.hpp"
#include "channel/channel_provider.hpp"
#include "net/endpoint.hpp"
#include "server/auth.hpp"
#include "server/server.hpp"
#include "service/composition.hpp"
#include "service/sandbox_service.hpp"
#include "store/store.hpp"

namespace agentpane::server {

namespace fs = std::filesystem;

namespace {

// What a client on this machine should dial: wildcard listen addresses become loopback.
std::string clientUrl(const std::string& listen, std::uint16_t port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return "http://" + host + ":" + std::to_string(port);
}

bool writeAddressFile(const fs::path& home, const std::string& url) {
  const fs::path tmp = home / "address.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << url << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  fs::rename(tmp, home / "address", ec);  // atomic: readers never see half a line
  return !ec;
}

}  // namespace

fs::path resolveHome(const fs::path& home) {
  if (!home.empty()) return home;
  if (const char* h = std::getenv("AGENTPANE_HOME"); h != nullptr && *h != '\0') return h;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return fs::path(h) / ".agentpane";
  return fs::path(".agentpane");
}

fs::path resolveWebRoot(const fs::path& webRoot) {
  if (!webRoot.empty()) return webRoot;
  if (const char* w = std::getenv("AGENTPANE_WEB_ROOT"); w != nullptr && *w != '\0') return w;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "web/dist";
  const fs::path dir = exe.parent_path();
  for (const fs::path& candidate : {dir.parent_path() / "web" / "dist", dir / "web"}) {
    if (fs::exists(candidate / "index.html", ec)) return candidate;
  }
  return dir.parent_path() / "web" / "dist";  // named in the warning when it is missing
}

fs::path ledgerDir(const fs::path& home) {
  return home / "audit";
}

int runServe(const ServeOptions& options) {
  // AGENTPANE_LOG_LEVEL: trace, debug, info (default), warn, error, critical or off. debug shows
  // each warm claim's steps with their times (docs/warm-pool.md).
  if (const char* l = std::getenv("AGENTPANE_LOG_LEVEL"); l != nullptr && *l != '\0') {
    const auto level = spdlog::level::from_str(l);
    if (level == spdlog::level::off && std::string_view(l) != "off") {
      spdlog::error(
          "AGENTPANE_LOG_LEVEL '{}' is not one of trace, debug, info, warn, error, "
          "critical, off",
          l);
      return 2;
    }
    spdlog::set_level(level);
  }
  const fs::path home = resolveHome(options.home);
  // The home directory (0700) and token come first: the database lives in the same place.
  // In a pod the token comes from a Secret (AGENTPANE_TOKEN_FILE); else from the home.
  fs::path tokenFile;
  if (const char* f = std::getenv("AGENTPANE_TOKEN_FILE"); f != nullptr && *f != '\0')
    tokenFile = f;
  auto token = loadServerToken(home, tokenFile);
  if (!token.ok()) {
    spdlog::error("cannot prepare {}: {}", home.string(), token.error().describe());
    return 1;
  }

  auto store = Store::open(home);
  if (!store.ok()) {
    spdlog::error("cannot open the state database in {}: {}", home.string(),
                  store.error().describe());
    return 1;
  }

  // The audit ledger: a server that cannot record what it does does not start.
  audit::LedgerOptions lo;
  lo.dir = ledgerDir(home);
  // Retention (docs/audit.md): files of AGENTPANE_AUDIT_FILE_MB (1..4096, default 16), the
  // newest AGENTPANE_AUDIT_KEEP_FILES of them kept (default 0: all). A bad value stops the
  // server.
  auto fromEnv = [](const char* name, long min, long max, const auto& apply) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return true;
    auto n = wholeNumberSetting(name, text, min, max);
    if (!n.ok()) {
      spdlog::error("{}", n.error().message);
      return false;
    }
    apply(n.value());
    return true;
  };
  if (!fromEnv("AGENTPANE_AUDIT_FILE_MB", 1, 4096,
               [&](long n) { lo.maxFileBytes = static_cast<std::uint64_t>(n) << 20; }) ||
      !fromEnv("AGENTPANE_AUDIT_KEEP_FILES", 0, 100000,
               [&](long n) { lo.keepFiles = static_cast<int>(n); })) {
    return 2;
  }
  auto ledger = audit::Ledger::open(lo, std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  if (!ledger.ok()) {
    spdlog::error("cannot open the audit ledger: {}", ledger.error().describe());
    return 1;
  }
  if (const auto& rec = ledger.value()->recovery()) {
    spdlog::warn("audit ledger: a torn last line of {} ({} bytes, a write cut short) was removed",
                 rec->file, rec->tornBytes);
  }
  spdlog::info("audit ledger {} (entry {})", lo.dir.string(), ledger.value()->lastSeq());

  ServiceOptions so;
  so.ledger = std::shared_ptr<audit::Ledger>(std::move(ledger).value());
  so.enableK8s = options.enableK8s || k8sEnabledByEnvironment();
  so.reconcileEvery = options.reconcileEvery;
  so.orphanGrace = options.orphanGrace;
  so.warmPoolLimit = options.warmPoolLimit;
  // How often allowlisted host names are resolved again (seconds; 0: never).
  if (const char* e = std::getenv("AGENTPANE_EGRESS_REFRESH_SECONDS"); e != nullptr && *e != '\0')
    so.egressRefreshEvery = std::chrono::seconds(std::clamp(std::atoi(e), 0, 86400));
  auto pathSettings = PathPolicy::settingsFromEnvironment(options.projectRoots, home.string());
  if (const char* dh = std::getenv("DOCKER_HOST"); dh != nullptr && *dh != '\0') {
    // A socket named by DOCKER_HOST outside /run is refused like the usual ones.
    if (auto ep = net::parseEndpoint(dh); ep.ok() && ep->kind == net::Endpoint::Kind::Unix)
      pathSettings.extraDenied.push_back(fs::path(ep->path).parent_path().string());
  }
  auto pathPolicy = std::make_shared<const PathPolicy>(pathSettings);
  for (const auto& dropped : pathPolicy->droppedRoots())
    spdlog::warn("project root {} is not an existing absolute directory: ignored", dropped);
  {
    std::string list;
    for (const auto& r : pathPolicy->roots())
      list += (list.empty() ? "" : ", ") + r.string();
    spdlog::info("project roots: {}", list.empty() ? "none (every project is refused)" : list);
  }
  so.pathPolicy = pathPolicy;

  // Which providers exist, and their instance scope, is decided in one place (composition.hpp)
  // that `doctor` shares.
  CompositionOptions composition{home, so.enableK8s, kubernetesSettingsFromEnvironment()};
  auto providers = buildProviders(composition);
  if (!providers.ok()) {
    spdlog::error("providers: {}", providers.error().describe());
    return 1;
  }
  // Commands run through the in-sandbox agent (src/channel) unless AGENTPANE_EXEC_CHANNEL=0;
  // the provider's own exec stays the fallback.
  const char* channelEnv = std::getenv("AGENTPANE_EXEC_CHANNEL");
  const bool useChannel = channelEnv == nullptr || std::string(channelEnv) != "0";
  channel::ChannelProviderOptions channelOptions;
  channelOptions.agentBinary = channel::defaultAgentBinary();
  // The cluster a profile names gets an instance of its own, made like the server's.
  so.kubernetesInstance = [composition, useChannel, channelOptions](
                              const KubernetesTarget& target,
                              const std::string& name) -> Result<std::shared_ptr<SandboxProvider>> {
    auto p = buildKubernetesProvider(composition, target, name);
    if (!p.ok() || !useChannel) return p;
    return std::shared_ptr<SandboxProvider>(
        std::make_shared<channel::ChannelProvider>(std::move(p).value(), channelOptions));
  };
  SandboxService service(*store.value(), so);
  spdlog::info("exec channel: {}", !useChannel ? "off (AGENTPANE_EXEC_CHANNEL=0)"
                                   : channelOptions.agentBinary.empty()
                                       ? "on (no agent binary to copy into images without one)"
                                       : "on (agent " + channelOptions.agentBinary + ")");
  for (auto& provider : providers.value()) {
    if (useChannel) provider = std::make_shared<channel::ChannelProvider>(provider, channelOptions);
    auto health = provider->healthCheck();
    if (!health.reachable) {
      spdlog::warn("the {} provider is not reachable now; its sandboxes cannot start until it is",
                   toString(provider->type()));
    } else {
      spdlog::info("{} {} (API {})", toString(provider->type()), health.version, health.apiVersion);
    }
    for (const auto& w : health.warnings)
      spdlog::warn("{}: {}", toString(provider->type()), w);
    service.registerProvider(provider);
  }

  if (auto r = service.reconcile(); !r.ok()) {
    spdlog::warn("initial reconcile failed: {}", r.error().describe());
  }
  service.startBackground();

  ServerOptions serverOptions;
  serverOptions.listen = options.listen;
  serverOptions.home = home;
  serverOptions.tokenFile = tokenFile;
  serverOptions.webRoot = resolveWebRoot(options.webRoot);
  serverOptions.networkThreads = options.networkThreads;
  serverOptions.workerThreads = options.workerThreads;
  serverOptions.shutdownGrace = options.shutdownGrace;
  serverOptions.enableK8s = so.enableK8s;
  serverOptions.maxStreams = options.maxStreams;
  serverOptions.maxBufferedExecs = options.maxExecs;
  Server server(service, serverOptions);
  if (auto r = server.start(); !r.ok()) {
    spdlog::error("{}", r.error().describe());
    service.stopBackground();
    return 1;
  }
  const std::string url = clientUrl(options.listen, server.port());
  if (!writeAddressFile(home, url)) spdlog::warn("cannot write {}", (home / "address").string());
  spdlog::info("serving on {} (token in {})", url,
               (tokenFile.empty() ? home / "token" : tokenFile).string());
  // The token rides in the fragment, which browsers never send: it reaches no access log.
  // A token from a Secret stays out of the log (pod logs are read more widely).
  if (tokenFile.empty()) spdlog::info("web page: {}/#token={}", url, token.value());

  server.runUntilSignal();
  service.stopBackground();
  std::error_code ec;
  fs::remove(home / "address", ec);
  spdlog::info("bye");
  return 0;
}

}  // namespace agentpane::server
