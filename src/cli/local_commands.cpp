// Commands that run in this process: `serve`, and `doctor`'s checks of what the server
// depends on (so that it can explain a server that will not start).
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cli/api_client.hpp"
#include "cli/commands.hpp"
#include "common/path_policy.hpp"
#include "k8s/cluster_info.hpp"
#include "k8s/k8s_provider.hpp"
#include "k8s/permissions.hpp"
#include "k8s/rest_client.hpp"
#include "server/serve_main.hpp"
#include "service/composition.hpp"
#include "service/sandbox_service.hpp"
#include "store/store.hpp"

namespace agentpane::cli {

namespace fs = std::filesystem;

int runServeCommand(const ServeArgs& args) {
  server::ServeOptions opts;
  opts.listen = args.listen;
  opts.home = args.home;
  if (args.orphanGraceSeconds > 0) opts.orphanGrace = std::chrono::seconds(args.orphanGraceSeconds);
  if (args.reconcileSeconds > 0) opts.reconcileEvery = std::chrono::seconds(args.reconcileSeconds);
  opts.projectRoots = args.projectRoots;
  opts.webRoot = args.webRoot;
  opts.maxStreams = args.maxStreams;
  if (args.maxExecs > 0) opts.maxExecs = args.maxExecs;
  if (args.warmPoolLimit >= 0) opts.warmPoolLimit = args.warmPoolLimit;
  return server::runServe(opts);
}

namespace {

struct Doctor {
  int problems = 0;
  void ok(const std::string& what, const std::string& detail) {
    std::printf("ok    %-9s %s\n", what.c_str(), detail.c_str());
  }
  void problem(const std::string& what, const std::string& detail, const std::string& fix) {
    ++problems;
    std::printf("FAIL  %-9s %s\n      fix: %s\n", what.c_str(), detail.c_str(), fix.c_str());
  }
  void warn(const std::string& what, const std::string& detail) {
    std::printf("warn  %-9s %s\n", what.c_str(), detail.c_str());
  }
};

// Every verb the server uses, asked of the cluster with SelfSubjectAccessReview for the
// provider's own credentials and namespace; each missing one is a problem of its own.
void checkPermissions(Doctor& d, k8s::K8sProvider& provider, const std::string& prefix = {}) {
  const std::string& ns = provider.namespaceName();
  k8s::PermissionOptions po;
  auto got = provider.client().get(k8s::resourcePath("v1", "namespaces", {}, ns));
  po.namespaceMissing = !got.ok() && got.error().code == ErrorCode::K8sNotFound;
  po.persistentVolumes = provider.persistentVolumes();
  const auto wanted = k8s::requiredPermissions(po);
  auto checks = k8s::checkPermissions(provider.client(), ns, wanted);
  if (!checks.ok()) {
    d.problem(
        "rbac",
        prefix + "cannot ask the cluster (SelfSubjectAccessReview): " + checks.error().describe(),
        "check the credentials of the kubeconfig");
    return;
  }
  int missing = 0;
  for (const auto& c : checks.value()) {
    if (c.allowed) continue;
    ++missing;
    d.problem("rbac",
              prefix + "missing: " + c.permission.describe() +
                  (c.permission.clusterScoped ? "" : " in namespace " + ns) + " (" +
                  c.permission.why + ")",
              "grant it to these credentials (Role/ClusterRole of scripts/cluster/rbac.yaml; "
              "docs/kubernetes-setup.md, RBAC)");
  }
  if (missing == 0) {
    d.ok("rbac", prefix + "all " + std::to_string(wanted.size()) +
                     " verbs the server uses are granted (SelfSubjectAccessReview; namespace " +
                     ns + ")");
  }
}

// The providers `serve` would build for this home (composition.hpp): the same engine and the
// same instance scope, so the counts are this server's sandboxes.
void checkProviders(Doctor& d, const fs::path& home) {
  auto providers = buildProviders(
      CompositionOptions{home, k8sEnabledByEnvironment(), kubernetesSettingsFromEnvironment()});
  if (!providers.ok()) {
    d.problem("engine", providers.error().message, "check DOCKER_HOST / DOCKER_CERT_PATH");
    return;
  }
  for (const auto& provider : providers.value()) {
    const bool isDocker = provider->type() == ProviderType::Docker;
    const std::string what = isDocker ? "engine" : "cluster";
    auto h = provider->healthCheck();
    if (!h.reachable) {
      std::string why = h.warnings.empty() ? "not reachable" : h.warnings.front();
      d.problem(what, why,
                isDocker ? "start Docker: sudo bash scripts/start-docker.sh (or systemctl start "
                           "docker)"
                         : "check the kubeconfig and that the cluster is up");
      continue;
    }
    d.ok(what, std::string(isDocker ? "Docker " : "Kubernetes ") + h.version + ", API " +
                   h.apiVersion + ", " + std::to_string(h.running) + " running / " +
                   std::to_string(h.total) + " sandboxes");
    bool imageMissing = false;
    for (const auto& w : h.warnings) {
      if (isDocker && w.find("image") != std::string::npos) {
        imageMissing = true;
        d.problem("image", w, "build it: bash scripts/build-sandbox-image.sh");
      } else {
        d.warn(what, w);
      }
    }
    if (isDocker && !imageMissing) d.ok("image", "agentpane/sandbox:latest present");
    if (auto* k = dynamic_cast<k8s::K8sProvider*>(provider.get())) checkPermissions(d, *k);
  }
}

void checkDatabase(Doctor& d, const fs::path& home) {
  auto path = home / "state.db";
  if (!fs::exists(path)) {
    d.warn("database", path.string() + " does not exist yet (`agentpane serve` creates it)");
    return;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    d.problem("database", std::string("cannot open ") + path.string() + ": " + sqlite3_errmsg(db),
              "check the file's permissions, or move it aside to start afresh");
    sqlite3_close(db);
    return;
  }
  auto scalar = [&](const char* sql) -> std::string {
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(st, 0);
      out = t ? reinterpret_cast<const char*>(t) : "";
    } else {
      out = std::string("error: ") + sqlite3_errmsg(db);
    }
    sqlite3_finalize(st);
    return out;
  };
  auto integrity = scalar("PRAGMA integrity_check");
  auto mode = scalar("PRAGMA journal_mode");
  auto version = scalar("SELECT MAX(version) FROM schema_migrations");
  sqlite3_close(db);
  if (integrity != "ok") {
    d.problem("database", "integrity check: " + integrity,
              "restore a backup or move the file aside");
    return;
  }
  int latest = Store::latestSchemaVersion();
  if (version.rfind("error", 0) == 0 || version.empty()) {
    d.problem("database", "no schema version (" + version + ")",
              "move " + path.string() + " aside");
    return;
  }
  if (std::stoi(version) > latest) {
    d.problem("database",
              "schema " + version + " is newer than this build (" + std::to_string(latest) + ")",
              "run the newer agentpane that wrote it");
    return;
  }
  d.ok("database", path.string() + " (schema " + version + ", " + mode + ", integrity ok)");
}

// The clusters the profiles name (a kubeconfig or a context of their own): each is made as
// `serve` makes it (composition.hpp, the same path rule and exec-plugin rule) and checked like
// the server's own: reachable, then every verb. Problems name the profiles.
void checkProfileClusters(Doctor& d, const fs::path& home) {
  const auto path = home / "state.db";
  if (!fs::exists(path)) return;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return;  // checkDatabase has said why
  }
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<std::string>> targets;
  sqlite3_stmt* st = nullptr;
  const char* sql =
      "SELECT name, kube_config_path, kube_context, kube_namespace FROM sandbox_configs "
      "WHERE kube_config_path != '' OR kube_context != '' ORDER BY name";
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK) {
    auto text = [&](int i) {
      const unsigned char* t = sqlite3_column_text(st, i);
      return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    };
    while (sqlite3_step(st) == SQLITE_ROW)
      targets[{text(1), text(2), text(3)}].push_back(text(0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  const CompositionOptions composition{home, true, kubernetesSettingsFromEnvironment()};
  const PathPolicy policy(PathPolicy::settingsFromEnvironment({}, home.string()));
  for (const auto& [key, names] : targets) {
    KubernetesTarget target{std::get<0>(key), std::get<1>(key), std::get<2>(key)};
    std::string who = "profile";
    who += names.size() == 1 ? " " : "s ";
    for (std::size_t i = 0; i < names.size(); ++i)
      who += (i ? ", " : "") + names[i];
    who += ": ";
    if (!target.kubeconfigPath.empty()) {
      auto allowed =
          policy.check(target.kubeconfigPath, "kubeConfigPath", ErrorCode::K8sKubeconfigInvalid);
      if (!allowed.ok()) {
        d.problem("cluster", who + allowed.error().describe(),
                  "put the kubeconfig inside a project root, or change the profile");
        continue;
      }
      target.kubeconfigPath = allowed->string();
    }
    auto provider = buildKubernetesProvider(composition, target, kubernetesInstanceName(target));
    if (!provider.ok()) {
      d.problem("cluster", who + provider.error().describe(),
                "fix the profile's kubeconfig or context (agentpane profile set)");
      continue;
    }
    auto h = (*provider)->healthCheck();
    if (!h.reachable) {
      d.problem("cluster", who + (h.warnings.empty() ? "not reachable" : h.warnings.front()),
                "check the profile's kubeconfig and that its cluster is up");
      continue;
    }
    d.ok("cluster", who + "Kubernetes " + h.version + ", " + std::to_string(h.running) +
                        " running / " + std::to_string(h.total) + " sandboxes");
    if (auto* k = dynamic_cast<k8s::K8sProvider*>(provider->get())) checkPermissions(d, *k, who);
  }
}

void checkToken(Doctor& d, const fs::path& home) {
  auto path = home / "token";
  struct stat st {};
  if (std::getenv("AGENTPANE_TOKEN")) {
    d.ok("token", "from AGENTPANE_TOKEN");
    return;
  }
  if (::stat(path.c_str(), &st) != 0) {
    d.problem("token", path.string() + " does not exist", "start the server once: agentpane serve");
    return;
  }
  if ((st.st_mode & 077) != 0) {
    d.problem("token", path.string() + " is readable by others", "chmod 600 " + path.string());
    return;
  }
  d.ok("token", path.string() + " (mode 0600)");
}

void checkServer(Doctor& d) {
  auto client = ApiClient::fromEnvironment();
  if (!client.ok()) {
    d.problem("server", client.error().describe(), "start it: agentpane serve");
    return;
  }
  auto r = client->call("GET", "/api/sandboxes");
  if (!r.ok()) {
    std::string fix =
        r.error().code == ErrorCode::Unauthorized
            ? "the token does not match this server: check AGENTPANE_HOME / AGENTPANE_TOKEN"
            : "start it: agentpane serve (or set AGENTPANE_URL)";
    d.problem("server", r.error().describe(), fix);
    return;
  }
  d.ok("server",
       client->endpoint().url() + " answers, " + std::to_string(r->size()) + " sandboxes");
}

// The cluster the kubeconfig discovery of SPEC finds: reachable, version, context and the
// kind of credentials. A problem only when the Kubernetes feature is on.
void checkCluster(Doctor& d) {
  k8s::ClusterInfo info{k8s::ClusterInfoOptions{}};
  auto s = info.status({});
  if (!s.ok()) {
    const Error& e = s.error();
    if (!k8sEnabledByEnvironment()) {
      d.warn("cluster", e.describe() + " (ENABLE_K8S_SANDBOX is off: Docker only)");
      return;
    }
    std::string fix =
        e.code == ErrorCode::K8sUnreachable ? "start the cluster or check the kubeconfig's server"
        : e.code == ErrorCode::K8sAuthFailed
            ? "the credentials were refused: log in again or fix the user in the kubeconfig"
            : "fix the kubeconfig (KUBECONFIG, K8S_KUBECONFIG or ~/.kube/config)";
    d.problem("cluster", e.describe(), fix);
    return;
  }
  const auto& c = s.value();
  d.ok("cluster", "reachable, Kubernetes " + c.version + ", context " +
                      (c.context.empty() ? std::string("(in-cluster)") : c.context) + " at " +
                      c.server + ", credentials " + c.credentialType + ", namespace " +
                      c.namespaceName + (c.namespaceExists ? "" : " (not created yet)"));
}

}  // namespace

int runDoctor() {
  Doctor d;
  fs::path home = defaultHome();
  checkProviders(d, home);
  checkDatabase(d, home);
  checkProfileClusters(d, home);
  checkToken(d, home);
  checkServer(d);
  checkCluster(d);
  if (d.problems == 0) {
    std::printf("\neverything looks fine\n");
    return 0;
  }
  std::printf("\n%d problem%s found\n", d.problems, d.problems == 1 ? "" : "s");
  return 1;
}

}  // namespace agentpane::cli
