#include "k8s/manifests.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "common/egress.hpp"
#include "k8s/network_policy.hpp"

namespace agentpane::k8s {

using json = nlohmann::json;

namespace {

constexpr const char* kHomeDir = "/var/lib/agentpane";
constexpr const char* kTokenDir = "/etc/agentpane/token";
// The server has no project directories in a pod; sandboxes there get a scratch workspace
// (emptyDir). A project path must still name a directory under a project root: this one, an
// emptyDir of the server pod.
constexpr const char* kProjectsRoot = "/projects";
constexpr const char* kScratchProject = "/projects/scratch";

json commonLabels(const std::string& component) {
  return {{"app.kubernetes.io/name", "agentpane"},
          {"app.kubernetes.io/component", component},
          {"app.kubernetes.io/managed-by", "agentpane-manifests"}};
}

json meta(const std::string& name, const std::string& ns, const std::string& component) {
  json m = {{"name", name}, {"labels", commonLabels(component)}};
  if (!ns.empty()) m["namespace"] = ns;
  return m;
}

json envVar(const std::string& name, const std::string& value) {
  return {{"name", name}, {"value", value}};
}

json serverDeployment(const ManifestOptions& o) {
  const json selector = {{"app.kubernetes.io/name", "agentpane"},
                         {"app.kubernetes.io/component", "server"}};
  json env = json::array();
  env.push_back(envVar("AGENTPANE_HOME", kHomeDir));
  env.push_back(envVar("AGENTPANE_TOKEN_FILE", std::string(kTokenDir) + "/token"));
  env.push_back(envVar("AGENTPANE_PROJECT_ROOTS", kProjectsRoot));
  env.push_back(envVar("ENABLE_K8S_SANDBOX", "true"));
  env.push_back(envVar("AGENTPANE_K8S_NAMESPACE", o.namespaceName));
  env.push_back(envVar("AGENTPANE_K8S_WORKSPACE", o.workspace));
  if (!o.storageClass.empty()) env.push_back(envVar("AGENTPANE_K8S_STORAGE_CLASS", o.storageClass));
  env.push_back(envVar("AGENTPANE_K8S_IMAGE_PULL_POLICY", o.sandboxImagePullPolicy));
  // No Docker engine in a pod: the Docker provider reports itself unreachable.
  json container = {{"name", "server"},
                    {"image", o.image},
                    {"imagePullPolicy", o.imagePullPolicy},
                    {"command", {"/usr/local/bin/agentpane"}},
                    {"args", {"serve", "--listen", "0.0.0.0:" + std::to_string(o.port)}},
                    {"env", env},
                    {"ports", {{{"name", "http"}, {"containerPort", o.port}, {"protocol", "TCP"}}}},
                    {"readinessProbe",
                     {{"httpGet", {{"path", "/api/health"}, {"port", "http"}}},
                      {"periodSeconds", 5},
                      {"failureThreshold", 3}}},
                    {"livenessProbe",
                     {{"httpGet", {{"path", "/api/health"}, {"port", "http"}}},
                      {"periodSeconds", 20},
                      {"failureThreshold", 6}}},
                    {"resources",
                     {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}},
                      {"limits", {{"cpu", "2"}, {"memory", "1Gi"}}}}},
                    {"securityContext",
                     {{"allowPrivilegeEscalation", false},
                      {"readOnlyRootFilesystem", true},
                      {"runAsNonRoot", true},
                      {"capabilities", {{"drop", {"ALL"}}}}}},
                    {"volumeMounts",
                     {{{"name", "home"}, {"mountPath", kHomeDir}},
                      {{"name", "token"}, {"mountPath", kTokenDir}, {"readOnly", true}},
                      {{"name", "scratch"}, {"mountPath", kScratchProject}},
                      {{"name", "tmp"}, {"mountPath", "/tmp"}}}}};
  json pod = {
      {"metadata", {{"labels", commonLabels("server")}}},
      {"spec",
       {{"serviceAccountName", kServiceAccountName},
        // The ServiceAccount mounts no token by default (sandbox pods must never get one);
        // the server's own pod asks for it: its in-cluster credentials.
        {"automountServiceAccountToken", true},
        {"enableServiceLinks", false},
        {"terminationGracePeriodSeconds", 30},
        {"securityContext",
         {{"runAsNonRoot", true},
          {"runAsUser", 1000},
          {"runAsGroup", 1000},
          {"fsGroup", 1000},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
        {"containers", {container}},
        {"volumes",
         {{{"name", "home"}, {"emptyDir", json::object()}},
          {{"name", "token"}, {"secret", {{"secretName", o.tokenSecret}, {"defaultMode", 0400}}}},
          {{"name", "scratch"}, {"emptyDir", json::object()}},
          {{"name", "tmp"}, {"emptyDir", json::object()}}}}}}};
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", meta(kServerName, o.namespaceName, "server")},
          {"spec",
           {{"replicas", 1},
            // One server owns its sandboxes' state (its home): never two at once.
            {"strategy", {{"type", "Recreate"}}},
            {"selector", {{"matchLabels", selector}}},
            {"template", pod}}}};
}

// The apiserver endpoints as egress rules (TCP to each address and port), or the first bad one.
Result<json> apiserverRules(const std::vector<std::string>& endpoints) {
  auto entries = egress::parseAllowlist(endpoints, "apiserverEndpoint");
  if (!entries.ok()) return entries.takeError();
  json rules = json::array();
  for (const auto& e : *entries) {
    if (e.kind == egress::EntryKind::Host || e.ports.empty()) {
      return Error(ErrorCode::ValidationError,
                   "apiserver endpoint '" + e.text +
                       "' must be an address or CIDR with a port (IP:PORT, [IPv6]:PORT)",
                   {{"field", "apiserverEndpoint"}, {"value", e.text}});
    }
    json ports = json::array();
    for (auto p : e.ports)
      ports.push_back({{"protocol", "TCP"}, {"port", p}});
    rules.push_back(
        {{"to", json::array({{{"ipBlock", {{"cidr", e.network.cidr()}}}}})}, {"ports", ports}});
  }
  return rules;
}

// The server's own pod under the namespace's default deny: its port open to every client (the
// Service, the kubelet's probes). Egress: with the apiserver's endpoints given, the cluster
// DNS and those alone; without, any — a policy cannot name the apiserver portably (kube-proxy
// translates the kubernetes Service's ClusterIP before the policy sees it). Sandboxes stay
// denied either way.
json serverPolicy(const ManifestOptions& o) {
  json egressRules = json::array({json::object()});
  if (!o.apiserverEndpoints.empty()) {
    auto rules = apiserverRules(o.apiserverEndpoints);
    egressRules = json::array({dnsEgressRule()});
    if (rules.ok()) {  // checkManifestOptions refused the others
      for (auto& r : *rules)
        egressRules.push_back(std::move(r));
    }
  }
  return {
      {"apiVersion", "networking.k8s.io/v1"},
      {"kind", "NetworkPolicy"},
      {"metadata", meta(kServerName, o.namespaceName, "server")},
      {"spec",
       {{"podSelector",
         {{"matchLabels",
           {{"app.kubernetes.io/name", "agentpane"}, {"app.kubernetes.io/component", "server"}}}}},
        {"policyTypes", {"Ingress", "Egress"}},
        {"ingress", {{{"ports", {{{"protocol", "TCP"}, {"port", o.port}}}}}}},
        {"egress", egressRules}}}};
}

json serverService(const ManifestOptions& o) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", meta(kServerName, o.namespaceName, "server")},
      {"spec",
       {{"type", "ClusterIP"},
        {"selector",
         {{"app.kubernetes.io/name", "agentpane"}, {"app.kubernetes.io/component", "server"}}},
        {"ports",
         {{{"name", "http"}, {"port", o.port}, {"targetPort", "http"}, {"protocol", "TCP"}}}}}}};
}

}  // namespace

std::string clusterRoleName(const std::string& namespaceName) {
  return std::string(kServiceAccountName) + ":" + namespaceName;
}

json namespaceManifest(const std::string& namespaceName) {
  json labels = json::object();
  for (const char* mode : {"enforce", "warn", "audit"}) {
    labels[std::string("pod-security.kubernetes.io/") + mode] = "restricted";
    labels[std::string("pod-security.kubernetes.io/") + mode + "-version"] = "latest";
  }
  return {{"apiVersion", "v1"},
          {"kind", "Namespace"},
          {"metadata", {{"name", namespaceName}, {"labels", labels}}}};
}

json roleRules(const std::vector<Permission>& permissions, bool clusterScoped) {
  // (group, resource[/sub]) in first-seen order, each with its verbs in order.
  std::vector<std::pair<std::pair<std::string, std::string>, std::vector<std::string>>> rules;
  for (const auto& p : permissions) {
    if (p.clusterScoped != clusterScoped) continue;
    const std::string res = p.resource + (p.subresource.empty() ? "" : "/" + p.subresource);
    auto key = std::make_pair(p.group, res);
    auto it =
        std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return r.first == key; });
    if (it == rules.end()) {
      rules.push_back({key, {}});
      it = std::prev(rules.end());
    }
    if (std::find(it->second.begin(), it->second.end(), p.verb) == it->second.end())
      it->second.push_back(p.verb);
  }
  json out = json::array();
  for (const auto& [key, verbs] : rules)
    out.push_back({{"apiGroups", {key.first}}, {"resources", {key.second}}, {"verbs", verbs}});
  return out;
}

PermissionOptions permissionOptions(const ManifestOptions& options) {
  PermissionOptions po;
  po.persistentVolumes = options.workspace == "pvc" && options.storageClass.empty();
  return po;
}

std::vector<json> manifests(const ManifestOptions& o) {
  const std::string& ns = o.namespaceName;
  const auto perms = requiredPermissions(permissionOptions(o));
  const json subject = {
      {"kind", "ServiceAccount"}, {"name", kServiceAccountName}, {"namespace", ns}};
  std::vector<json> out;
  out.push_back(namespaceManifest(ns));
  out.back()["metadata"]["labels"].update(commonLabels("sandboxes"));
  out.push_back({{"apiVersion", "v1"},
                 {"kind", "ServiceAccount"},
                 {"metadata", meta(kServiceAccountName, ns, "server")},
                 {"automountServiceAccountToken", false}});
  out.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                 {"kind", "Role"},
                 {"metadata", meta(kServiceAccountName, ns, "server")},
                 {"rules", roleRules(perms, false)}});
  out.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                 {"kind", "RoleBinding"},
                 {"metadata", meta(kServiceAccountName, ns, "server")},
                 {"roleRef",
                  {{"apiGroup", "rbac.authorization.k8s.io"},
                   {"kind", "Role"},
                   {"name", kServiceAccountName}}},
                 {"subjects", {subject}}});
  out.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                 {"kind", "ClusterRole"},
                 {"metadata", meta(clusterRoleName(ns), "", "server")},
                 {"rules", roleRules(perms, true)}});
  out.push_back({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                 {"kind", "ClusterRoleBinding"},
                 {"metadata", meta(clusterRoleName(ns), "", "server")},
                 {"roleRef",
                  {{"apiGroup", "rbac.authorization.k8s.io"},
                   {"kind", "ClusterRole"},
                   {"name", clusterRoleName(ns)}}},
                 {"subjects", {subject}}});
  out.push_back({{"apiVersion", "v1"},
                 {"kind", "ResourceQuota"},
                 {"metadata", meta("agentpane", ns, "sandboxes")},
                 {"spec",
                  {{"hard",
                    {{"pods", std::to_string(o.maxPods)},
                     {"persistentvolumeclaims", std::to_string(o.maxPods)},
                     {"limits.cpu", o.quotaCpu},
                     {"limits.memory", o.quotaMemory}}}}}});
  out.push_back({{"apiVersion", "v1"},
                 {"kind", "LimitRange"},
                 {"metadata", meta("agentpane", ns, "sandboxes")},
                 {"spec",
                  {{"limits",
                    {{{"type", "Container"},
                      {"default", {{"cpu", o.defaultCpu}, {"memory", o.defaultMemory}}},
                      {"defaultRequest", {{"cpu", "100m"}, {"memory", "128Mi"}}},
                      {"max", {{"cpu", o.maxCpu}, {"memory", o.maxMemory}}}}}}}}});
  std::map<std::string, std::string> policyLabels;
  const json sandboxLabels = commonLabels("sandboxes");
  for (const auto& [k, v] : sandboxLabels.items())
    policyLabels[k] = v.get<std::string>();
  out.push_back(defaultDenyPolicy(ns, policyLabels));  // what the provider applies
  out.push_back(serverPolicy(o));
  out.push_back(serverDeployment(o));
  out.push_back(serverService(o));
  return out;
}

namespace {

// Would a YAML 1.1 reader (Kubernetes') take this plain scalar for something other than a
// string? Then it is quoted.
bool needsQuotes(const std::string& s) {
  if (s.empty()) return true;
  static const std::set<std::string> special = {
      "y",     "Y",   "yes", "Yes", "YES",  "true", "True", "TRUE",  "on",
      "On",    "ON",  "n",   "N",   "no",   "No",   "NO",   "false", "False",
      "FALSE", "off", "Off", "OFF", "null", "Null", "NULL", "~"};
  if (special.count(s)) return true;
  if (std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isdigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' ||
               c == 'x' || c == 'o' || c == '_' || c == ':';
      })) {
    return true;
  }
  return false;
}

void emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      if (j.empty()) out << YAML::Flow;  // "{}", as kubectl writes an empty emptyDir
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key << k << YAML::Value;
        emit(out, v);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& v : j)
        emit(out, v);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (needsQuotes(s)) out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      break;
    case json::value_t::null:
      out << YAML::Null;
      break;
    default:  // numbers
      out << j.dump();
      break;
  }
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string toYamlStream(const std::vector<json>& objects, const std::string& header) {
  std::string text;
  if (!header.empty()) {
    std::size_t start = 0;
    while (start <= header.size()) {
      auto end = header.find('\n', start);
      if (end == std::string::npos) end = header.size();
      text += "# " + header.substr(start, end - start) + "\n";
      start = end + 1;
    }
  }
  bool first = true;
  for (const auto& o : objects) {
    if (!first) text += "---\n";
    first = false;
    YAML::Emitter out;
    out.SetIndent(2);
    out.SetSeqFormat(YAML::Block);
    emit(out, o);
    text += out.c_str();
    text += "\n";
  }
  return text;
}

std::string manifestFileName(std::size_t index, const json& object) {
  char nn[8];
  std::snprintf(nn, sizeof nn, "%02zu", index);
  std::string name = object.value("metadata", json::object()).value("name", "");
  for (auto& c : name)
    if (c == ':') c = '-';
  return std::string(nn) + "-" + lower(object.value("kind", "")) + "-" + name + ".yaml";
}

Result<void> checkManifestOptions(const ManifestOptions& options) {
  if (options.apiserverEndpoints.empty()) return {};
  auto rules = apiserverRules(options.apiserverEndpoints);
  if (!rules.ok()) return rules.takeError();
  return {};
}

std::string manifestsHeader(const ManifestOptions& options) {
  const std::string& secret = options.tokenSecret;
  return "Generated by `agentpane manifests` (src/k8s/manifests.cpp): do not edit.\n"
         "The server reads its API token from the Secret " +
         secret + " (key \"token\"):\n  kubectl -n " + options.namespaceName +
         " create secret generic " + secret + " --from-literal=token=$(openssl rand -hex 32)";
}

std::vector<std::pair<std::string, std::string>> manifestFiles(const ManifestOptions& options) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto objects = manifests(options);
  const std::string header = manifestsHeader(options);
  for (std::size_t i = 0; i < objects.size(); ++i)
    out.emplace_back(manifestFileName(i, objects[i]), toYamlStream({objects[i]}, header));
  return out;
}

}  // namespace agentpane::k8s
