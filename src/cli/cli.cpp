#include "cli/cli.hpp"
#include "cli/output.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/api_client.hpp"
#include "cli/audit_commands.hpp"
#include "cli/command_commands.hpp"
#include "cli/commands.hpp"
#include "cli/egress_commands.hpp"
#include "cli/profile_commands.hpp"
#include "net/url.hpp"

namespace agentpane::cli {

using json = nlohmann::json;

namespace {

template <typename T>
int failIf(const Result<T>& r) {
  return r.ok() ? 0 : fail(r.error());
}

void printTable(const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i)
    width[i] = headers[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (const auto& r : rows)
    line(r);
}

// A create's phases on stderr as they happen (stdout keeps the id); --json stays quiet.
std::function<void(const json&)> phasePrinter(bool quiet) {
  return [quiet](const json& p) {
    if (quiet) return;
    std::fprintf(stderr, "[%5.1fs] %-10s %s\n", p.value("elapsedMs", 0) / 1000.0,
                 cell(p, "phase").c_str(), cell(p, "message").c_str());
    std::fflush(stderr);
  };
}

void printSandbox(const json& s) {
  for (const char* k : {"id", "status", "provider", "projectId", "agentId", "projectPath", "image",
                        "containerId", "podName", "podNamespace", "configId", "error"}) {
    if (s.contains(k) && !s[k].is_null() &&
        !(s[k].is_string() && s[k].get<std::string>().empty())) {
      std::cout << k << ": " << cell(s, k) << "\n";
    }
  }
}

// `agentpane k8s status` for people: one "key: value" line each.
void printK8sStatus(const json& s) {
  auto yes = [&](const char* k) { return s.value(k, false) ? "yes" : "no"; };
  json pods = s.value("pods", json::object());
  std::cout << "connected:        " << yes("connected") << "\n"
            << "context:          " << cell(s, "context") << "\n"
            << "server:           " << cell(s, "server") << "\n"
            << "version:          " << cell(s, "version") << "\n"
            << "credentials:      " << cell(s, "credentialType") << " (kubeconfig "
            << cell(s, "kubeconfigSource") << ")\n"
            << "namespace:        " << cell(s, "namespace")
            << (s.value("namespaceExists", false) ? "" : " (does not exist yet)") << "\n"
            << "sandbox pods:     " << cell(pods, "running") << " running / " << cell(pods, "total")
            << " total\n";
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"AgentPane Sandbox: isolated environments for AI coding agents"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "agentpane 0.1.0");

  // serve
  ServeArgs serveArgs;
  auto* serve = app.add_subcommand("serve", "Run the server (REST API, WebSockets, metrics)");
  serve->add_option("--listen", serveArgs.listen, "Address to listen on")->capture_default_str();
  serve->add_option("--home", serveArgs.home, "State directory (token, database)");
  serve
      ->add_option("--orphan-grace-seconds", serveArgs.orphanGraceSeconds,
                   "Age before an unowned labelled sandbox is removed")
      ->check(CLI::Range(1, 86400));
  serve->add_option("--reconcile-seconds", serveArgs.reconcileSeconds, "Reconcile period")
      ->check(CLI::Range(1, 86400));
  serve
      ->add_option("--warm-pool-limit", serveArgs.warmPoolLimit,
                   "Warm sandboxes of all profiles' pools together, at most (default 50; 0: none)")
      ->check(CLI::Range(0, 1000));
  serve->add_option(
      "--web-root", serveArgs.webRoot,
      "The built web page (default: AGENTPANE_WEB_ROOT, else web/dist by the binary)");
  serve->add_option("--project-root", serveArgs.projectRoots,
                    "Directory whose subdirectories may be projects (repeatable; default: "
                    "AGENTPANE_PROJECT_ROOTS, else $HOME and the temp directory)");
  serve
      ->add_option("--max-streams", serveArgs.maxStreams,
                   "Concurrent WebSocket streams (default: from the descriptor limit)")
      ->check(CLI::Range(1, 1 << 20));
  serve
      ->add_option("--max-execs", serveArgs.maxExecs,
                   "Concurrent buffered execs (POST …/exec) on the whole server")
      ->check(CLI::Range(1, 4096));

  // sandbox
  auto* sandbox = app.add_subcommand("sandbox", "Manage sandboxes");
  sandbox->require_subcommand(1);
  json createBody = json::object();
  std::string projectPath, projectId, agentId, provider, image, configId;
  int memoryMb = 0;
  double cpu = 0;
  std::vector<std::string> envs, egress;
  bool createJson = false;
  auto* create = sandbox->add_subcommand("create", "Create a sandbox for a project");
  create->add_option("--project-path", projectPath, "Project directory mounted at /workspace")
      ->required();
  create->add_option("--project-id", projectId);
  create->add_option("--agent-id", agentId);
  create->add_option("--provider", provider)->check(CLI::IsMember({"docker", "kubernetes"}));
  create->add_option("--image", image);
  create->add_option("--memory-mb", memoryMb);
  create->add_option("--cpu", cpu);
  create->add_option("--config", configId, "Sandbox config (profile) id");
  std::string profileRef;
  create->add_option("--profile", profileRef, "Profile (sandbox config) by name or id")
      ->excludes("--config");
  create->add_option("--env", envs, "K=V, repeatable");
  create->add_option("--allow-egress", egress, "HOST[:PORT], repeatable");
  create->add_flag("--json", createJson);

  bool lsJson = false, getJson = false;
  std::string sandboxId;
  auto* ls = sandbox->add_subcommand("ls", "List sandboxes");
  ls->add_flag("--json", lsJson);
  auto* get = sandbox->add_subcommand("get", "Show one sandbox");
  get->add_option("id", sandboxId)->required();
  get->add_flag("--json", getJson);
  auto* stop = sandbox->add_subcommand("stop", "Stop a sandbox");
  stop->add_option("id", sandboxId)->required();
  auto* start = sandbox->add_subcommand("start", "Start a stopped sandbox again");
  start->add_option("id", sandboxId)->required();
  auto* rm = sandbox->add_subcommand("rm", "Remove a sandbox (idempotent)");
  rm->add_option("id", sandboxId)->required();
  std::string migrateTo;
  bool migrateJson = false;
  auto* migrate = sandbox->add_subcommand(
      "migrate", "Move a sandbox to the other provider (the new one runs before the old goes)");
  migrate->add_option("id", sandboxId)->required();
  migrate->add_option("--to", migrateTo, "docker or kubernetes")
      ->required()
      ->check(CLI::IsMember({"docker", "kubernetes"}));
  migrate->add_flag("--json", migrateJson);
  EgressCommand egressCmd(*sandbox);

  // exec
  bool interactive = false, asRoot = false;
  int timeoutSeconds = 0;
  std::vector<std::string> command;
  auto* exec = app.add_subcommand(
      "exec", "Run a command in a sandbox: exec [-i] [--root] ID -- CMD [ARG...]");
  exec->add_flag("-i,--interactive", interactive, "Forward stdin (EOF included)");
  exec->add_flag("--root", asRoot, "Run as root (Docker only)");
  exec->add_option("--timeout", timeoutSeconds, "Seconds before the command is killed");
  exec->add_option("id", sandboxId)->required();
  exec->add_option("command", command)->required();
  CommandCommands commands(app, *exec);  // exec --detach, logs, ps

  // tmux
  auto* tmux = app.add_subcommand("tmux", "tmux sessions inside a sandbox");
  tmux->require_subcommand(1);
  std::string tmuxName, tmuxText;
  int lines = 100;
  bool tmuxJson = false;
  auto* tnew = tmux->add_subcommand("new", "tmux new ID NAME [-- CMD...]");
  tnew->add_option("id", sandboxId)->required();
  tnew->add_option("name", tmuxName)->required();
  tnew->add_option("command", command);
  auto* tls = tmux->add_subcommand("ls", "List sessions");
  tls->add_option("id", sandboxId)->required();
  tls->add_flag("--json", tmuxJson);
  auto* tsend = tmux->add_subcommand("send", "Send text literally, then Enter");
  tsend->add_option("id", sandboxId)->required();
  tsend->add_option("name", tmuxName)->required();
  tsend->add_option("text", tmuxText)->required();
  bool noEnter = false;
  tsend->add_flag("--no-enter", noEnter, "Do not press Enter after the text");
  auto* tcap = tmux->add_subcommand("capture", "Print the last lines of the pane");
  tcap->add_option("id", sandboxId)->required();
  tcap->add_option("name", tmuxName)->required();
  tcap->add_option("--lines", lines)->check(CLI::Range(1, 10000));
  auto* tkill = tmux->add_subcommand("kill", "Kill a session");
  tkill->add_option("id", sandboxId)->required();
  tkill->add_option("name", tmuxName)->required();

  // k8s, pool, manifests, doctor
  bool k8sJson = false, poolJson = false;
  auto* k8s = app.add_subcommand("k8s", "Kubernetes cluster information and pod checks");
  k8s->require_subcommand(1);
  auto* k8sStatus = k8s->add_subcommand("status", "Connection, version, namespace, pods");
  auto* k8sContexts = k8s->add_subcommand("contexts", "Contexts of the merged kubeconfig");
  auto* k8sNamespaces = k8s->add_subcommand("namespaces", "Namespaces visible to the credentials");
  for (auto* c : {k8sStatus, k8sContexts, k8sNamespaces})
    c->add_flag("--json", k8sJson);
  std::string checkPodFile;
  std::string checkPodLevel = "restricted";
  bool checkPodJson = false;
  auto* k8sCheckPod = k8s->add_subcommand(
      "check-pod", "Check a pod file (JSON or YAML) against a Pod Security level, locally");
  k8sCheckPod->add_option("file", checkPodFile, "Pod, or an object with a pod template; - is stdin")
      ->required();
  k8sCheckPod->add_option("--level", checkPodLevel, "baseline or restricted (default)")
      ->check(CLI::IsMember({"privileged", "baseline", "restricted"}));
  k8sCheckPod->add_flag("--json", checkPodJson);
  std::string k8sKubeconfig;
  k8sContexts->add_option("--kubeconfig", k8sKubeconfig,
                          "Read this one kubeconfig file instead of the merged set");
  auto* pool = app.add_subcommand("pool", "Warm pool");
  pool->require_subcommand(1);
  auto* poolStatus = pool->add_subcommand("status", "Warm pool state");
  poolStatus->add_flag("--json", poolJson);
  int prewarmCount = 0;
  std::string prewarmProfile;
  auto* prewarm = pool->add_subcommand(
      "prewarm", "Keep N sandboxes of a profile warm (its warmPoolMin; 0 empties the pool)");
  prewarm->add_option("n", prewarmCount)->required()->check(CLI::Range(0, 50));
  prewarm->add_option("--profile", prewarmProfile, "Profile name or id (default: the default)");
  ManifestArgs manifestArgs;
  auto* manifests = app.add_subcommand(
      "manifests", "Print the Kubernetes manifests of a deployment (namespace, RBAC, server)");
  manifests->add_option("--namespace", manifestArgs.namespaceName, "Sandbox and server namespace")
      ->capture_default_str();
  manifests->add_option("--image", manifestArgs.image, "The server's image")->capture_default_str();
  manifests
      ->add_option("--image-pull-policy", manifestArgs.imagePullPolicy, "The server image's policy")
      ->check(CLI::IsMember({"IfNotPresent", "Never", "Always"}))
      ->capture_default_str();
  manifests
      ->add_option("--sandbox-image-pull-policy", manifestArgs.sandboxImagePullPolicy,
                   "Pull policy of sandbox pods")
      ->check(CLI::IsMember({"IfNotPresent", "Never", "Always"}))
      ->capture_default_str();
  manifests
      ->add_option("--workspace", manifestArgs.workspace,
                   "Sandbox workspaces: emptyDir, or pvc (hostPath PersistentVolumes unless "
                   "--storage-class; those need cluster-wide volume verbs)")
      ->check(CLI::IsMember({"emptyDir", "pvc"}))
      ->capture_default_str();
  manifests->add_option("--storage-class", manifestArgs.storageClass,
                        "Storage class of pvc workspaces");
  manifests->add_option("--token-secret", manifestArgs.tokenSecret, "Secret holding the API token")
      ->capture_default_str();
  manifests->add_option("--port", manifestArgs.port, "The server's port")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  manifests->add_option("--apiserver-endpoint", manifestArgs.apiserverEndpoints,
                        "IP:PORT where pods reach the apiserver (repeatable; kubectl get "
                        "endpointslices -n default -l kubernetes.io/service-name=kubernetes): the "
                        "server's egress is then DNS and these alone");
  manifests->add_option("--out-dir", manifestArgs.outDir,
                        "Write one file per object here (the directory then holds exactly them)");
  manifests->add_flag("--json", manifestArgs.asJson, "A JSON List instead of YAML");
  auto* doctor = app.add_subcommand(
      "doctor", "Check the engine, image, database, token, server, cluster and its RBAC");
  ProfileCommands profiles(app);
  AuditCommands audit(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "error: VALIDATION_ERROR: %s\n", e.what());
    std::fprintf(stderr, "%s", app.help().c_str());
    return errorInfo(ErrorCode::ValidationError).cliExitCode;
  }

  if (serve->parsed()) return runServeCommand(serveArgs);
  if (doctor->parsed()) return runDoctor();
  if (k8sCheckPod->parsed()) return runCheckPod(checkPodFile, checkPodLevel, checkPodJson);
  if (audit.verifyParsed()) return audit.runVerify();
  if (manifests->parsed()) return runManifests(manifestArgs);

  auto client = ApiClient::fromEnvironment();
  if (!client.ok()) return fail(client.error());
  const ApiClient& api = client.value();
  const std::string sb = "/api/sandboxes/" + net::percentEncode(sandboxId);
  if (profiles.parsed()) return profiles.run(api);
  if (audit.listParsed()) return audit.runList(api);

  if (create->parsed()) {
    json body = {{"projectPath", projectPath}};
    if (!projectId.empty()) body["projectId"] = projectId;
    if (!agentId.empty()) body["agentId"] = agentId;
    if (!provider.empty()) body["provider"] = provider;
    if (!image.empty()) body["image"] = image;
    if (!configId.empty()) body["configId"] = configId;
    if (!profileRef.empty()) {
      auto profile = findProfile(api, profileRef);
      if (!profile.ok()) return fail(profile.error());
      body["configId"] = profile->value("id", "");
    }
    if (memoryMb) body["memoryMb"] = memoryMb;
    if (cpu > 0) body["cpu"] = cpu;
    if (!envs.empty()) {
      json env = json::object();
      for (const auto& kv : envs) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
          return fail(Error(ErrorCode::ValidationError, "--env takes K=V, got '" + kv + "'"));
        }
        env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      body["env"] = env;
    }
    if (!egress.empty()) body["allowEgress"] = egress;
    auto r = api.callStreamed("POST", "/api/sandboxes", body, phasePrinter(createJson));
    if (!r.ok()) return fail(r.error());
    const json& s = r->contains("sandbox") ? (*r)["sandbox"] : *r;
    if (r->contains("fallbackReason") && !(*r)["fallbackReason"].is_null()) {
      std::fprintf(stderr, "warning: fell back to docker: %s\n",
                   cell(*r, "fallbackReason").c_str());
    }
    if (createJson) {
      std::cout << s.dump(2) << "\n";
    } else {
      std::cout << cell(s, "id") << "\n";
    }
    warnAboutEgress(s);
    return 0;
  }
  if (ls->parsed()) {
    auto r = api.call("GET", "/api/sandboxes");
    if (!r.ok()) return fail(r.error());
    if (lsJson) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : *r) {
      rows.push_back({cell(s, "id"), cell(s, "status"), cell(s, "provider"), cell(s, "projectId"),
                      cell(s, "projectPath")});
    }
    printTable({"ID", "STATUS", "PROVIDER", "PROJECT", "PATH"}, rows);
    return 0;
  }
  if (get->parsed()) {
    auto r = api.call("GET", sb);
    if (!r.ok()) return fail(r.error());
    if (getJson) {
      std::cout << r->dump(2) << "\n";
    } else {
      printSandbox(*r);
    }
    return 0;
  }
  if (stop->parsed()) return failIf(api.call("POST", sb + "/stop"));
  if (start->parsed()) return failIf(api.call("POST", sb + "/start"));
  if (rm->parsed()) return failIf(api.call("DELETE", sb));
  if (migrate->parsed()) {
    auto r = api.callStreamed("POST", sb + "/migrate", json{{"to", migrateTo}},
                              phasePrinter(migrateJson));
    if (!r.ok()) return fail(r.error());
    for (const auto& w : r->value("warnings", json::array())) {
      std::fprintf(stderr, "warning: %s\n", w.is_string() ? w.get<std::string>().c_str() : "");
    }
    if (migrateJson) {
      std::cout << r->dump(2) << "\n";
    } else {
      std::cout << cell(*r, "id") << "\n";
    }
    return 0;
  }
  if (egressCmd.parsed()) return egressCmd.run(api);

  if (exec->parsed() && commands.detachParsed()) {
    return commands.runDetach(api, sandboxId, command, timeoutSeconds);
  }
  if (commands.logsParsed()) return commands.runLogs(api);
  if (commands.psParsed()) return commands.runPs(api);
  if (exec->parsed()) {
    ExecStreamRequest req{sandboxId, command, asRoot, timeoutSeconds, interactive};
    auto r = api.execStream(req);
    if (!r.ok()) return fail(r.error());
    return r.value();
  }

  if (tnew->parsed()) {
    json body = {{"name", tmuxName}};
    if (!command.empty()) body["command"] = command;
    return failIf(api.call("POST", sb + "/tmux", body));
  }
  if (tls->parsed()) {
    auto r = api.call("GET", sb + "/tmux");
    if (!r.ok()) return fail(r.error());
    if (tmuxJson) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : *r)
      rows.push_back({cell(s, "name"), cell(s, "windows"), cell(s, "attached")});
    printTable({"NAME", "WINDOWS", "ATTACHED"}, rows);
    return 0;
  }
  const std::string tm = sb + "/tmux/" + net::percentEncode(tmuxName);
  if (tsend->parsed())
    return failIf(api.call("POST", tm + "/keys", json{{"text", tmuxText}, {"enter", !noEnter}}));
  if (tcap->parsed()) {
    auto r = api.call("GET", tm + "/capture?lines=" + std::to_string(lines));
    if (!r.ok()) return fail(r.error());
    std::cout << (r->is_object() ? r->value("content", "") : r->get<std::string>());
    return 0;
  }
  if (tkill->parsed()) return failIf(api.call("DELETE", tm));

  // --json: the route's data on one line for programs; otherwise indented for people.
  auto printData = [&](const Result<json>& r, bool asJson) {
    if (!r.ok()) return fail(r.error());
    std::cout << (asJson ? r->dump() : r->dump(2)) << "\n";
    return 0;
  };
  if (k8sStatus->parsed() || k8sContexts->parsed() || k8sNamespaces->parsed()) {
    std::string path = k8sStatus->parsed()     ? "/api/sandbox/k8s/status"
                       : k8sContexts->parsed() ? "/api/sandbox/k8s/contexts"
                                               : "/api/sandbox/k8s/namespaces";
    if (k8sContexts->parsed() && !k8sKubeconfig.empty()) {
      std::error_code ec;
      auto abs = std::filesystem::absolute(k8sKubeconfig, ec);
      path += "?kubeconfigPath=" + net::percentEncode(ec ? k8sKubeconfig : abs.string());
    }
    auto r = api.call("GET", path);
    if (!r.ok() || k8sJson) return printData(r, true);
    if (k8sStatus->parsed()) {
      printK8sStatus(*r);
    } else if (k8sContexts->parsed()) {
      std::vector<std::vector<std::string>> rows;
      std::string current = cell(*r, "current");
      for (const auto& c : r->value("contexts", json::array())) {
        rows.push_back({cell(c, "name") == current ? "*" : "", cell(c, "name"), cell(c, "cluster"),
                        cell(c, "user"), cell(c, "namespace")});
      }
      printTable({"CURRENT", "NAME", "CLUSTER", "USER", "NAMESPACE"}, rows);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& n : r->value("namespaces", json::array()))
        rows.push_back({cell(n, "name"), cell(n, "phase")});
      printTable({"NAME", "STATUS"}, rows);
    }
    return 0;
  }
  // One row per pool; the JSON has the claim-latency histogram too.
  auto poolRow = [](const json& p) -> std::vector<std::string> {
    auto n = [&](const char* k) { return std::to_string(p.value(k, 0)); };
    return {
        cell(p, "profile"),
        cell(p, "provider") + (cell(p, "instance").empty() ? "" : " (" + cell(p, "instance") + ")"),
        n("warm"),
        n("starting"),
        n("claimed"),
        n("min") + ".." + n("max"),
        n("target"),
        n("hits"),
        n("misses"),
        p.value("available", true) ? cell(p, "lastError") : "unavailable: " + cell(p, "lastError")};
  };
  const std::vector<std::string> poolHeaders = {"PROFILE", "PROVIDER", "WARM",   "STARTING",
                                                "CLAIMED", "MIN..MAX", "TARGET", "HITS",
                                                "MISSES",  "NOTE"};
  if (poolStatus->parsed()) {
    auto r = api.call("GET", "/api/sandbox/pool");
    if (!r.ok() || poolJson) return printData(r, true);
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : r->value("pools", json::array()))
      rows.push_back(poolRow(p));
    if (rows.empty()) {
      std::cout << "no warm pools (agentpane pool prewarm N [--profile P] makes one)\n";
      return 0;
    }
    printTable(poolHeaders, rows);
    return 0;
  }
  if (prewarm->parsed()) {
    json body{{"count", prewarmCount}};
    if (!prewarmProfile.empty()) body["profile"] = prewarmProfile;
    auto r = api.call("POST", "/api/sandbox/pool/prewarm", body);
    if (!r.ok()) return fail(r.error());
    printTable(poolHeaders, {poolRow(*r)});
    return 0;
  }
  std::fprintf(stderr, "%s", app.help().c_str());
  return 2;
}

}  // namespace agentpane::cli
