// kubeconfig YAML → Kubeconfig. Every field is checked by hand (no node.as<T>() that throws
// deep inside) so that an error can name the exact field; yaml-cpp's own exceptions
// (malformed YAML) are caught at the boundary and carry the line.
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/base64.hpp"
#include "k8s/kubeconfig.hpp"

namespace agentpane::k8s {

namespace {

constexpr std::size_t kMaxKubeconfigBytes = 16 * 1024 * 1024;
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxJsonNodes = 10000;

Error invalid(const std::string& file, const std::string& field, const std::string& why) {
  std::string where = file.empty() ? "kubeconfig" : "kubeconfig " + file;
  return Error(ErrorCode::K8sKubeconfigInvalid, where + ": " + field + ": " + why,
               {{"file", file}, {"field", field}});
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {
    if (!file_.empty()) {
      dir_ = std::filesystem::path(file_).parent_path().string();
    } else {
      std::error_code ec;
      dir_ = std::filesystem::current_path(ec).string();
    }
  }

  Result<Kubeconfig> parse(const YAML::Node& root) {
    Kubeconfig out;
    if (!file_.empty()) out.files.push_back(file_);
    if (!root || root.IsNull()) return out;
    if (!root.IsMap()) return invalid(file_, "(top level)", "must be a mapping");
    auto cur = scalar(root, "current-context", "current-context");
    if (!cur.ok()) return cur.takeError();
    out.currentContext = cur.value();
    if (!out.currentContext.empty()) out.currentContextFile = file_;

    auto clusters = listOf(root, "clusters");
    if (!clusters.ok()) return clusters.takeError();
    for (std::size_t i = 0; i < clusters.value().size(); ++i) {
      auto c = cluster(clusters.value()[i], i);
      if (!c.ok()) return c.takeError();
      out.clusters.push_back(std::move(c.value()));
    }
    auto users = listOf(root, "users");
    if (!users.ok()) return users.takeError();
    for (std::size_t i = 0; i < users.value().size(); ++i) {
      auto u = user(users.value()[i], i);
      if (!u.ok()) return u.takeError();
      out.users.push_back(std::move(u.value()));
    }
    auto contexts = listOf(root, "contexts");
    if (!contexts.ok()) return contexts.takeError();
    for (std::size_t i = 0; i < contexts.value().size(); ++i) {
      auto c = context(contexts.value()[i], i);
      if (!c.ok()) return c.takeError();
      out.contexts.push_back(std::move(c.value()));
    }
    return out;
  }

 private:
  // A scalar child as a string; absent or null is "". A mapping or list is an error.
  Result<std::string> scalar(const YAML::Node& map, const char* key, const std::string& field) {
    YAML::Node n = map[key];
    if (!n || n.IsNull()) return std::string();
    if (!n.IsScalar()) return invalid(file_, field, "must be a string");
    return n.Scalar();
  }

  Result<bool> boolean(const YAML::Node& map, const char* key, const std::string& field) {
    auto s = scalar(map, key, field);
    if (!s.ok()) return s.takeError();
    std::string v = s.value();
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v.empty() || v == "false" || v == "no" || v == "off") return false;
    if (v == "true" || v == "yes" || v == "on") return true;
    return invalid(file_, field, "must be true or false, not '" + s.value() + "'");
  }

  // base64 of a *-data field; whitespace (line breaks of a wrapped value) is ignored.
  Result<std::string> data(const YAML::Node& map, const char* key, const std::string& field) {
    auto s = scalar(map, key, field);
    if (!s.ok()) return s.takeError();
    std::string compact;
    for (char c : s.value()) {
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') compact.push_back(c);
    }
    if (compact.empty()) return std::string();
    auto decoded = base64Decode(compact);
    if (!decoded) return invalid(file_, field, "is not valid base64");
    return std::move(*decoded);
  }

  Result<std::string> path(const YAML::Node& map, const char* key, const std::string& field) {
    auto s = scalar(map, key, field);
    if (!s.ok() || s.value().empty()) return s;
    return resolvePath(s.value());
  }

  std::string resolvePath(const std::string& p) const {
    std::filesystem::path fp(p);
    if (fp.is_absolute()) return fp.lexically_normal().string();
    return (std::filesystem::path(dir_) / fp).lexically_normal().string();
  }

  Result<std::vector<YAML::Node>> listOf(const YAML::Node& root, const char* key) {
    std::vector<YAML::Node> out;
    YAML::Node n = root[key];
    if (!n || n.IsNull()) return out;
    if (!n.IsSequence()) return invalid(file_, key, "must be a list");
    for (const auto& item : n)
      out.push_back(item);
    return out;
  }

  // The common shape {name: N, <body>: {...}}: the name (required, unique in the file) and
  // the body mapping (absent or null: empty).
  Result<std::pair<std::string, YAML::Node>> named(const YAML::Node& item, const std::string& list,
                                                   std::size_t i, const char* body,
                                                   std::set<std::string>& seen) {
    std::string at = list + "[" + std::to_string(i) + "]";
    if (!item.IsMap()) return invalid(file_, at, "must be a mapping");
    auto name = scalar(item, "name", at + ".name");
    if (!name.ok()) return name.takeError();
    if (name.value().empty()) return invalid(file_, at + ".name", "is missing");
    if (!seen.insert(name.value()).second) {
      return invalid(file_, at + ".name", "'" + name.value() + "' is defined twice in this file");
    }
    YAML::Node b = item[body];
    if (b && !b.IsNull() && !b.IsMap()) {
      return invalid(file_, at + "." + body, "must be a mapping");
    }
    return std::make_pair(name.value(), b && b.IsMap() ? b : YAML::Node(YAML::NodeType::Map));
  }

  Result<KubeCluster> cluster(const YAML::Node& item, std::size_t i) {
    auto nb = named(item, "clusters", i, "cluster", clusterNames_);
    if (!nb.ok()) return nb.takeError();
    const YAML::Node& b = nb.value().second;
    std::string at = "clusters[" + std::to_string(i) + "].cluster.";
    KubeCluster c;
    c.name = nb.value().first;
    c.origin = {file_, i};
    auto server = scalar(b, "server", at + "server");
    auto ca = path(b, "certificate-authority", at + "certificate-authority");
    auto caData = data(b, "certificate-authority-data", at + "certificate-authority-data");
    auto sni = scalar(b, "tls-server-name", at + "tls-server-name");
    auto insecure = boolean(b, "insecure-skip-tls-verify", at + "insecure-skip-tls-verify");
    auto proxy = scalar(b, "proxy-url", at + "proxy-url");
    for (auto* r : {&server, &ca, &caData, &sni, &proxy}) {
      if (!r->ok()) return r->takeError();
    }
    if (!insecure.ok()) return insecure.takeError();
    c.server = server.value();
    c.certificateAuthority = ca.value();
    c.certificateAuthorityData = caData.value();
    c.tlsServerName = sni.value();
    c.insecureSkipTlsVerify = insecure.value();
    c.proxyUrl = proxy.value();
    YAML::Node ext = b["extensions"];
    if (ext && ext.IsSequence()) {
      for (const auto& e : ext) {
        if (e.IsMap() && e["name"] && e["name"].IsScalar() &&
            e["name"].Scalar() == "client.authentication.k8s.io/exec" && e["extension"]) {
          std::size_t budget = kMaxJsonNodes;
          c.execExtensionJson = toJson(e["extension"], 0, budget).dump();
        }
      }
    }
    return c;
  }

  Result<KubeUser> user(const YAML::Node& item, std::size_t i) {
    auto nb = named(item, "users", i, "user", userNames_);
    if (!nb.ok()) return nb.takeError();
    const YAML::Node& b = nb.value().second;
    std::string at = "users[" + std::to_string(i) + "].user.";
    KubeUser u;
    u.name = nb.value().first;
    u.origin = {file_, i};
    auto cert = path(b, "client-certificate", at + "client-certificate");
    auto certData = data(b, "client-certificate-data", at + "client-certificate-data");
    auto key = path(b, "client-key", at + "client-key");
    auto keyData = data(b, "client-key-data", at + "client-key-data");
    auto token = scalar(b, "token", at + "token");
    auto tokenFile = path(b, "tokenFile", at + "tokenFile");
    for (auto* r : {&cert, &certData, &key, &keyData, &token, &tokenFile}) {
      if (!r->ok()) return r->takeError();
    }
    u.clientCertificate = cert.value();
    u.clientCertificateData = certData.value();
    u.clientKey = key.value();
    u.clientKeyData = keyData.value();
    u.token = token.value();
    u.tokenFile = tokenFile.value();
    u.hasBasicAuth =
        (b["username"] && !b["username"].IsNull()) || (b["password"] && !b["password"].IsNull());
    u.hasAuthProvider = b["auth-provider"] && !b["auth-provider"].IsNull();
    YAML::Node ex = b["exec"];
    if (ex && !ex.IsNull()) {
      auto e = exec(ex, at + "exec");
      if (!e.ok()) return e.takeError();
      u.exec = std::move(e.value());
    }
    return u;
  }

  Result<KubeExec> exec(const YAML::Node& n, const std::string& at) {
    if (!n.IsMap()) return invalid(file_, at, "must be a mapping");
    KubeExec e;
    auto api = scalar(n, "apiVersion", at + ".apiVersion");
    auto cmd = scalar(n, "command", at + ".command");
    auto mode = scalar(n, "interactiveMode", at + ".interactiveMode");
    auto hint = scalar(n, "installHint", at + ".installHint");
    for (auto* r : {&api, &cmd, &mode, &hint}) {
      if (!r->ok()) return r->takeError();
    }
    auto provide = boolean(n, "provideClusterInfo", at + ".provideClusterInfo");
    if (!provide.ok()) return provide.takeError();
    e.apiVersion = api.value();
    if (e.apiVersion != kExecApiV1 && e.apiVersion != kExecApiV1beta1) {
      return invalid(file_, at + ".apiVersion",
                     "'" + e.apiVersion + "' is not supported (use " + std::string(kExecApiV1) +
                         " or " + std::string(kExecApiV1beta1) + ")");
    }
    e.command = cmd.value();
    if (e.command.empty()) return invalid(file_, at + ".command", "is missing");
    if (e.command.find('/') != std::string::npos) e.command = resolvePath(e.command);
    e.interactiveMode = mode.value();
    if (e.interactiveMode.empty() && e.apiVersion == kExecApiV1) {
      return invalid(file_, at + ".interactiveMode", "is required by " + std::string(kExecApiV1));
    }
    if (!e.interactiveMode.empty() && e.interactiveMode != "Never" &&
        e.interactiveMode != "IfAvailable" && e.interactiveMode != "Always") {
      return invalid(file_, at + ".interactiveMode",
                     "'" + e.interactiveMode + "' is not Never, IfAvailable or Always");
    }
    e.provideClusterInfo = provide.value();
    e.installHint = hint.value();
    YAML::Node args = n["args"];
    if (args && !args.IsNull()) {
      if (!args.IsSequence()) return invalid(file_, at + ".args", "must be a list");
      std::size_t k = 0;
      for (const auto& a : args) {
        if (!a.IsScalar()) {
          return invalid(file_, at + ".args[" + std::to_string(k) + "]", "must be a string");
        }
        e.args.push_back(a.Scalar());
        ++k;
      }
    }
    YAML::Node env = n["env"];
    if (env && !env.IsNull()) {
      if (!env.IsSequence()) return invalid(file_, at + ".env", "must be a list");
      std::size_t k = 0;
      for (const auto& v : env) {
        std::string ef = at + ".env[" + std::to_string(k++) + "]";
        if (!v.IsMap()) return invalid(file_, ef, "must be a mapping with name and value");
        auto name = scalar(v, "name", ef + ".name");
        if (!name.ok()) return name.takeError();
        auto value = scalar(v, "value", ef + ".value");
        if (!value.ok()) return value.takeError();
        if (name.value().empty() || name.value().find('=') != std::string::npos) {
          return invalid(file_, ef + ".name", "is missing or contains '='");
        }
        e.env.emplace_back(name.value(), value.value());
      }
    }
    return e;
  }

  Result<KubeContext> context(const YAML::Node& item, std::size_t i) {
    auto nb = named(item, "contexts", i, "context", contextNames_);
    if (!nb.ok()) return nb.takeError();
    const YAML::Node& b = nb.value().second;
    std::string at = "contexts[" + std::to_string(i) + "].context.";
    KubeContext c;
    c.name = nb.value().first;
    c.origin = {file_, i};
    auto cluster = scalar(b, "cluster", at + "cluster");
    auto user = scalar(b, "user", at + "user");
    auto ns = scalar(b, "namespace", at + "namespace");
    for (auto* r : {&cluster, &user, &ns}) {
      if (!r->ok()) return r->takeError();
    }
    c.cluster = cluster.value();
    c.user = user.value();
    c.namespaceName = ns.value();
    return c;
  }

  // For the exec extension only: YAML → JSON with YAML's plain-scalar typing, bounded in
  // depth and size (aliases can make a small file a huge tree).
  static nlohmann::json toJson(const YAML::Node& n, int depth, std::size_t& budget) {
    if (depth > kMaxJsonDepth || budget == 0) return nullptr;
    --budget;
    if (n.IsMap()) {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) continue;
        o[kv.first.Scalar()] = toJson(kv.second, depth + 1, budget);
      }
      return o;
    }
    if (n.IsSequence()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& v : n)
        a.push_back(toJson(v, depth + 1, budget));
      return a;
    }
    if (!n.IsScalar()) return nullptr;
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;  // quoted
    if (s == "true") return true;
    if (s == "false") return false;
    if (s == "null" || s == "~") return nullptr;
    nlohmann::json num = nlohmann::json::parse(s, nullptr, false);
    if (!num.is_discarded() && num.is_number()) return num;
    return s;
  }

  std::string file_;
  std::string dir_;
  std::set<std::string> clusterNames_;
  std::set<std::string> userNames_;
  std::set<std::string> contextNames_;
};

}  // namespace

Result<Kubeconfig> parseKubeconfig(std::string_view yaml, const std::string& file) {
  if (yaml.size() > kMaxKubeconfigBytes) {
    return invalid(file, "(file)", "is larger than 16 MiB");
  }
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return Parser(file).parse(root);
  } catch (const YAML::Exception& e) {
    std::string where =
        "line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1);
    if (e.mark.is_null()) where = "(document)";
    return invalid(file, where, "malformed YAML: " + e.msg);
  } catch (const std::exception& e) {
    return invalid(file, "(document)", std::string("cannot be parsed: ") + e.what());
  }
}

}  // namespace agentpane::k8s
