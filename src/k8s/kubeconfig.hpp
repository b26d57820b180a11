// kubeconfig files: parsing (yaml-cpp stays inside kubeconfig_parse.cpp), merging of a
// KUBECONFIG list, and turning one context into a RestConfig. Discovery (which files) is
// kubeconfig_loader.hpp. The rules are client-go's clientcmd rules, as ../shared/FACTS.md
// states them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentpane/result.hpp"
#include "k8s/exec_plugin.hpp"
#include "k8s/rest_config.hpp"

namespace agentpane::k8s {

// Where an entry was defined: errors about it name the file and the field, e.g.
// "kubeconfig /home/a/.kube/config: users[1].user.client-key: cannot read …".
struct EntryOrigin {
  std::string file;       // absolute path of the file ("" for text parsed without a file)
  std::size_t index = 0;  // position in that file's list
};

struct KubeCluster {
  std::string name;
  std::string server;
  std::string certificateAuthority;      // absolute (resolved against the defining file's dir)
  std::string certificateAuthorityData;  // decoded PEM; wins over the file
  std::string tlsServerName;
  bool insecureSkipTlsVerify = false;
  std::string proxyUrl;           // not supported: refused when the context is used
  std::string execExtensionJson;  // extensions[name=client.authentication.k8s.io/exec]
  EntryOrigin origin;
};

struct KubeExec {
  std::string apiVersion;
  std::string command;  // resolved when it contains '/'
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string interactiveMode;  // Never | IfAvailable | Always ("" for v1beta1 without it)
  bool provideClusterInfo = false;
  std::string installHint;
};

struct KubeUser {
  std::string name;
  std::string clientCertificate;      // absolute
  std::string clientCertificateData;  // decoded PEM; wins over the file
  std::string clientKey;              // absolute
  std::string clientKeyData;
  std::string token;      // wins over tokenFile
  std::string tokenFile;  // absolute
  std::optional<KubeExec> exec;
  bool hasBasicAuth = false;     // username/password: not supported, refused when used
  bool hasAuthProvider = false;  // legacy auth-provider: not supported, refused when used
  EntryOrigin origin;
};

struct KubeContext {
  std::string name;
  std::string cluster;
  std::string user;
  std::string namespaceName;
  EntryOrigin origin;
};

// One file, or several merged. Entries keep the order in which they were first defined.
struct Kubeconfig {
  std::vector<std::string> files;  // in precedence order
  std::string currentContext;
  std::string currentContextFile;  // the file that set current-context
  std::vector<KubeCluster> clusters;
  std::vector<KubeUser> users;
  std::vector<KubeContext> contexts;

  [[nodiscard]] const KubeCluster* findCluster(std::string_view name) const;
  [[nodiscard]] const KubeUser* findUser(std::string_view name) const;
  [[nodiscard]] const KubeContext* findContext(std::string_view name) const;
};

// Parses kubeconfig YAML (or JSON). Relative paths resolve against the directory of
// `file` (the current directory when it is empty). Malformed YAML, a wrong type, invalid
// base64 in a *-data field, a missing or duplicate name, or an exec block without command,
// with an unknown apiVersion, or (v1) without interactiveMode is K8sKubeconfigInvalid whose
// message and details name the file and the field (`users[1].user.client-key-data`) or the
// line. Unknown keys are ignored, as client-go does. MUST NOT throw. Pure.
Result<Kubeconfig> parseKubeconfig(std::string_view yaml, const std::string& file);

// Reads and parses one file (at most 16 MiB). A missing file is K8sKubeconfigInvalid.
Result<Kubeconfig> loadKubeconfigFile(const std::string& path);

// client-go's merge: the first file to define a name (cluster, user, context) wins and its
// entry is kept whole; current-context comes from the first file that sets it.
Kubeconfig mergeKubeconfigs(std::vector<Kubeconfig> inPrecedenceOrder);

struct ContextInfo {
  std::string name;
  std::string cluster;
  std::string user;
  std::string namespaceName;
};

struct ContextList {
  std::vector<ContextInfo> contexts;  // sorted by name
  std::string current;                // "" when none is set
};

ContextList listContexts(const Kubeconfig& config);

struct ResolveOptions {
  ExecPluginOptions exec;                    // clock, timeout, environment of exec plugins
  std::chrono::milliseconds timeout{10000};  // RestConfig::timeout
  // A user with an exec plugin is K8sKubeconfigInvalid instead: for kubeconfigs the API names
  // (a profile's kubeConfigPath, ?kubeconfigPath=), whose plugin command a token holder could
  // have written into a project folder.
  bool refuseExecPlugins = false;
};

// Builds the RestConfig of `context` ("" = current-context). A context that is not there is
// K8sContextNotFound naming it; a user or cluster it names that is not there is
// K8sContextNotFound naming the context and the missing name; an unusable entry (no server,
// unreadable CA or certificate, a CA together with insecure-skip-tls-verify, a certificate
// without its key, an unsupported auth method) is K8sKubeconfigInvalid naming the file and
// field. No plugin runs here: exec credentials run on first use.
Result<RestConfig> resolveContext(const Kubeconfig& config, std::string_view context,
                                  const ResolveOptions& options);

// An https://host:port[/prefix] server URL split into an Endpoint and a path prefix.
Result<std::pair<net::Endpoint, std::string>> parseServerUrl(std::string_view server);

}  // namespace agentpane::k8s
