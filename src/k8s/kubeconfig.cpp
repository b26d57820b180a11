#include "k8s/kubeconfig.hpp"

#include <algorithm>
#include <set>

#include "k8s/credentials.hpp"

namespace agentpane::k8s {

namespace {

constexpr std::size_t kMaxKubeconfigFile = 16 * 1024 * 1024;

Error invalid(const EntryOrigin& o, const std::string& field, const std::string& why) {
  std::string where = o.file.empty() ? "kubeconfig" : "kubeconfig " + o.file;
  return Error(ErrorCode::K8sKubeconfigInvalid, where + ": " + field + ": " + why,
               {{"file", o.file}, {"field", field}});
}

std::string joinFiles(const std::vector<std::string>& files) {
  if (files.empty()) return "(no file)";
  std::string out;
  for (const auto& f : files)
    out += (out.empty() ? "" : ":") + f;
  return out;
}

template <typename T>
const T* findByName(const std::vector<T>& v, std::string_view name) {
  for (const auto& e : v) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace

const KubeCluster* Kubeconfig::findCluster(std::string_view name) const {
  return findByName(clusters, name);
}
const KubeUser* Kubeconfig::findUser(std::string_view name) const {
  return findByName(users, name);
}
const KubeContext* Kubeconfig::findContext(std::string_view name) const {
  return findByName(contexts, name);
}

Result<Kubeconfig> loadKubeconfigFile(const std::string& path) {
  auto text = readSmallFile(path, kMaxKubeconfigFile);
  if (!text.ok()) {
    return Error(ErrorCode::K8sKubeconfigInvalid,
                 "kubeconfig " + path + ": " + text.error().message,
                 {{"file", path}, {"field", "(file)"}});
  }
  return parseKubeconfig(text.value(), path);
}

Kubeconfig mergeKubeconfigs(std::vector<Kubeconfig> configs) {
  Kubeconfig out;
  std::set<std::string> clusters;
  std::set<std::string> users;
  std::set<std::string> contexts;
  for (auto& c : configs) {
    out.files.insert(out.files.end(), c.files.begin(), c.files.end());
    if (out.currentContext.empty() && !c.currentContext.empty()) {
      out.currentContext = c.currentContext;
      out.currentContextFile = c.currentContextFile;
    }
    for (auto& e : c.clusters) {
      if (clusters.insert(e.name).second) out.clusters.push_back(std::move(e));
    }
    for (auto& e : c.users) {
      if (users.insert(e.name).second) out.users.push_back(std::move(e));
    }
    for (auto& e : c.contexts) {
      if (contexts.insert(e.name).second) out.contexts.push_back(std::move(e));
    }
  }
  return out;
}

ContextList listContexts(const Kubeconfig& config) {
  ContextList out;
  out.current = config.currentContext;
  for (const auto& c : config.contexts) {
    out.contexts.push_back({c.name, c.cluster, c.user, c.namespaceName});
  }
  std::sort(out.contexts.begin(), out.contexts.end(),
            [](const ContextInfo& a, const ContextInfo& b) { return a.name < b.name; });
  return out;
}

Result<std::pair<net::Endpoint, std::string>> parseServerUrl(std::string_view server) {
  bool https = server.rfind("https://", 0) == 0;
  bool http = server.rfind("http://", 0) == 0;
  if (!https && !http) {
    return Error(ErrorCode::ValidationError,
                 "'" + std::string(server) + "' is not an http:// or https:// URL");
  }
  std::size_t hostStart = https ? 8 : 7;
  std::size_t slash = server.find('/', hostStart);
  std::string base(server.substr(0, slash));
  std::string prefix = slash == std::string_view::npos ? "" : std::string(server.substr(slash));
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  if (prefix.find_first_of("?#") != std::string::npos) {
    return Error(ErrorCode::ValidationError,
                 "'" + std::string(server) + "' has a query or fragment");
  }
  auto ep = net::parseEndpoint(base, https ? 443 : 80);
  if (!ep.ok()) return ep.takeError();
  return std::make_pair(std::move(ep.value()), prefix);
}

Result<RestConfig> resolveContext(const Kubeconfig& config, std::string_view context,
                                  const ResolveOptions& options) {
  std::string name(context.empty() ? config.currentContext : context);
  std::string files = joinFiles(config.files);
  if (name.empty()) {
    return Error(ErrorCode::K8sContextNotFound,
                 "no context was given and kubeconfig " + files + " sets no current-context",
                 {{"file", files}});
  }
  const KubeContext* ctx = config.findContext(name);
  if (ctx == nullptr) {
    return Error(ErrorCode::K8sContextNotFound,
                 "context '" + name + "' is not defined in kubeconfig " + files,
                 {{"context", name}, {"file", files}});
  }
  std::string ctxAt = "contexts[" + std::to_string(ctx->origin.index) + "].context.";
  if (ctx->cluster.empty()) {
    return invalid(ctx->origin, ctxAt + "cluster", "context '" + name + "' names no cluster");
  }
  const KubeCluster* cl = config.findCluster(ctx->cluster);
  if (cl == nullptr) {
    auto e = invalid(ctx->origin, ctxAt + "cluster",
                     "cluster '" + ctx->cluster + "' of context '" + name +
                         "' is not defined in kubeconfig " + files);
    e.details["context"] = name;
    e.details["cluster"] = ctx->cluster;
    return e;
  }
  const KubeUser* user = nullptr;
  if (!ctx->user.empty()) {  // no user: anonymous, as client-go
    user = config.findUser(ctx->user);
    if (user == nullptr) {
      auto e = invalid(ctx->origin, ctxAt + "user",
                       "user '" + ctx->user + "' of context '" + name +
                           "' is not defined in kubeconfig " + files);
      e.details["context"] = name;
      e.details["user"] = ctx->user;
      return e;
    }
  }

  // The cluster: server URL and TLS.
  std::string clAt = "clusters[" + std::to_string(cl->origin.index) + "].cluster.";
  if (cl->server.empty()) return invalid(cl->origin, clAt + "server", "is missing");
  if (!cl->proxyUrl.empty()) {
    return invalid(cl->origin, clAt + "proxy-url", "is not supported by this client");
  }
  auto url = parseServerUrl(cl->server);
  if (!url.ok()) return invalid(cl->origin, clAt + "server", url.error().message);
  RestConfig rc;
  rc.server = cl->server;
  rc.endpoint = std::move(url.value().first);
  rc.pathPrefix = std::move(url.value().second);
  bool hasCa = !cl->certificateAuthority.empty() || !cl->certificateAuthorityData.empty();
  if (cl->insecureSkipTlsVerify && hasCa) {
    // client-go refuses this pair: it is never clear which one the user meant.
    return invalid(
        cl->origin, clAt + "insecure-skip-tls-verify",
        "cannot be true together with " + std::string(cl->certificateAuthorityData.empty()
                                                          ? "certificate-authority"
                                                          : "certificate-authority-data"));
  }
  std::string caPem = cl->certificateAuthorityData;
  if (caPem.empty() && !cl->certificateAuthority.empty()) {
    auto ca = readSmallFile(cl->certificateAuthority);
    if (!ca.ok()) return invalid(cl->origin, clAt + "certificate-authority", ca.error().message);
    caPem = ca.value();
  }
  if (rc.endpoint.kind == net::Endpoint::Kind::Tls) {
    if (!cl->certificateAuthorityData.empty()) {
      rc.endpoint.tls.caPem = cl->certificateAuthorityData;
    } else {
      rc.endpoint.tls.caFile = cl->certificateAuthority;
    }
    rc.endpoint.tls.serverName = cl->tlsServerName;
    rc.endpoint.tls.verifyPeer = !cl->insecureSkipTlsVerify;
  }

  rc.contextName = name;
  rc.clusterName = cl->name;
  rc.userName = ctx->user;
  rc.namespaceName = ctx->namespaceName;
  rc.sourceFile = config.files.empty() ? "" : config.files.front();
  rc.timeout = options.timeout;
  if (user == nullptr) {
    rc.credentials = anonymousCredentials();
    return rc;
  }

  // The user: static values and files first (client-go skips the exec plugin when a token
  // or a certificate is configured), then the plugin, else anonymous.
  std::string uAt = "users[" + std::to_string(user->origin.index) + "].user";
  if (user->hasAuthProvider) {
    return invalid(user->origin, uAt + ".auth-provider",
                   "legacy auth providers are not supported (use an exec plugin)");
  }
  if (user->hasBasicAuth) {
    return invalid(user->origin, uAt + ".username",
                   "basic authentication is not supported (use a token or a certificate)");
  }
  bool hasCert = !user->clientCertificate.empty() || !user->clientCertificateData.empty();
  bool hasKey = !user->clientKey.empty() || !user->clientKeyData.empty();
  if (hasCert != hasKey) {
    return invalid(user->origin, uAt + (hasCert ? ".client-key" : ".client-certificate"),
                   hasCert ? "is missing: client-certificate needs a key"
                           : "is missing: client-key needs a certificate");
  }
  bool hasToken = !user->token.empty() || !user->tokenFile.empty();
  if (hasToken || hasCert) {
    FileCredentialSpec spec;
    spec.kind = !user->token.empty()       ? "token"
                : !user->tokenFile.empty() ? "token-file"
                                           : "client-certificate";
    spec.token = user->token;
    spec.tokenFile = user->tokenFile;
    spec.certPem = user->clientCertificateData;
    spec.certFile = user->clientCertificate;
    spec.keyPem = user->clientKeyData;
    spec.keyFile = user->clientKey;
    spec.origin = {user->origin.file, uAt};
    spec.clock = options.exec.clock;
    auto source = std::make_shared<FileCredentials>(std::move(spec));
    // Read now: a path that does not work is a fault of the file, reported as such.
    auto first = source->current();
    if (!first.ok()) {
      Error e = first.takeError();
      e.code = ErrorCode::K8sKubeconfigInvalid;
      return e;
    }
    rc.credentials = std::move(source);
    return rc;
  }
  if (user->exec) {
    const KubeExec& x = *user->exec;
    if (options.refuseExecPlugins) {
      return invalid(user->origin, uAt + ".exec",
                     "exec credential plugins are refused in a kubeconfig given through the API "
                     "(the server would run '" +
                         x.command +
                         "' on its host); use a token or a client certificate, or start the "
                         "server with AGENTPANE_K8S_API_KUBECONFIG_EXEC=1 to allow them");
    }
    if (x.interactiveMode == "Always") {
      return invalid(user->origin, uAt + ".exec.interactiveMode",
                     "Always needs a terminal, and the server never has one");
    }
    ExecPluginSpec spec;
    spec.apiVersion = x.apiVersion;
    spec.command = x.command;
    spec.args = x.args;
    spec.env = x.env;
    spec.installHint = x.installHint;
    spec.origin = {user->origin.file, uAt + ".exec"};
    if (x.provideClusterInfo) {
      spec.cluster = ExecClusterInfo{cl->server, cl->tlsServerName, cl->insecureSkipTlsVerify,
                                     caPem, cl->execExtensionJson};
    }
    rc.credentials = std::make_shared<ExecPluginCredentials>(std::move(spec), options.exec);
    return rc;
  }
  rc.credentials = anonymousCredentials();
  return rc;
}

}  // namespace agentpane::k8s
