// Upstream's checks, one function each, in the words of k8s.io/pod-security-admission v0.30
// (policy/check_*.go). See pod_security.hpp.
#include "k8s/pod_security.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>
#include <utility>

namespace agentpane::k8s::pss {

namespace {

using nlohmann::json;

// A field that is absent or null is unset (as a nil pointer in Go).
const json* at(const json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

bool isTrue(const json* v) {
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

std::string strOf(const json* v) {
  if (v == nullptr) return {};
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

// Go's joinQuote: "a", "b".
std::string joinQuote(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ", ";
    out += quote(i);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

std::string pluralize(const char* one, const char* many, std::size_t n) {
  return n == 1 ? one : many;
}

std::vector<std::string> sorted(const std::set<std::string>& s) {
  return {s.begin(), s.end()};  // std::set<std::string> orders as Go's sets.String.List()
}

struct ContainerRef {
  const json* c;
  std::string path;  // spec.containers[0]
  std::string name;
};

struct Ctx {
  const PodView& pod;
  std::vector<ContainerRef> containers;
  bool windows = false;
  std::vector<Violation>* out = nullptr;
  std::string check;

  [[nodiscard]] const json* podSc() const { return at(pod.spec, "securityContext"); }
  [[nodiscard]] std::string podScPath() const { return pod.specPath + ".securityContext"; }
  void add(std::string field, std::string message) const {
    out->push_back({check, std::move(field), std::move(message)});
  }
};

const json* scOf(const ContainerRef& c) {
  return at(*c.c, "securityContext");
}

// "container "a"" / "containers "a", "b"".
std::string containersPhrase(const std::vector<std::string>& names) {
  return pluralize("container", "containers", names.size()) + " " + joinQuote(names);
}

using Outcome = std::optional<std::pair<std::string, std::string>>;  // reason, detail

// --- baseline ---------------------------------------------------------------------------------

bool allowedAppArmorType(const std::string& t) {
  return t == "RuntimeDefault" || t == "Localhost";
}

Outcome appArmorProfile(const Ctx& x) {
  std::vector<std::string> badSetters;
  std::set<std::string> badValues;
  auto typeOf = [](const json& profile) { return strOf(at(profile, "type")); };
  if (const json* sc = x.podSc()) {
    if (const json* p = at(*sc, "appArmorProfile"); p && !allowedAppArmorType(typeOf(*p))) {
      badSetters.emplace_back("pod");
      badValues.insert(typeOf(*p));
      x.add(x.podScPath() + ".appArmorProfile.type",
            "AppArmor profile type " + quote(typeOf(*p)) +
                " is not allowed: set RuntimeDefault or Localhost, or leave appArmorProfile unset");
    }
  }
  std::vector<std::string> badContainers;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    if (sc == nullptr) continue;
    if (const json* p = at(*sc, "appArmorProfile"); p && !allowedAppArmorType(typeOf(*p))) {
      badContainers.push_back(c.name);
      badValues.insert(typeOf(*p));
      x.add(c.path + ".securityContext.appArmorProfile.type",
            "AppArmor profile type " + quote(typeOf(*p)) +
                " is not allowed: set RuntimeDefault or Localhost, or leave appArmorProfile unset");
    }
  }
  if (!badContainers.empty()) badSetters.push_back(containersPhrase(badContainers));
  std::vector<std::string> forbiddenAnnotations;
  const std::string prefix = "container.apparmor.security.beta.kubernetes.io/";
  if (const json* ann = at(x.pod.metadata, "annotations"); ann && ann->is_object()) {
    for (const auto& [k, v] : ann->items()) {
      if (k.rfind(prefix, 0) != 0) continue;
      const std::string value = v.is_string() ? v.get<std::string>() : std::string();
      if (value.empty() || value == "runtime/default" || value.rfind("localhost/", 0) == 0)
        continue;
      // Go's %q; joinQuote then wraps it in quotes without escaping (as upstream does).
      forbiddenAnnotations.push_back(k + "=" + json(value).dump());
      x.add(x.pod.metadataPath + ".annotations[\"" + k + "\"]",
            "AppArmor profile " + quote(value) +
                " is not allowed: set runtime/default or localhost/<profile>, or remove the "
                "annotation");
    }
  }
  std::vector<std::string> badValueList = sorted(badValues);
  if (!forbiddenAnnotations.empty()) {
    std::sort(forbiddenAnnotations.begin(), forbiddenAnnotations.end());
    badValueList.insert(badValueList.end(), forbiddenAnnotations.begin(),
                        forbiddenAnnotations.end());
    badSetters.push_back(pluralize("annotation", "annotations", forbiddenAnnotations.size()));
  }
  if (badSetters.empty()) return std::nullopt;
  return std::make_pair(
      pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", badValueList.size()),
      join(badSetters, " and ") + " must not set AppArmor profile type to " +
          joinQuote(badValueList));
}

const std::set<std::string>& baselineCapabilities() {
  static const std::set<std::string> caps = {
      "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER",  "FSETID", "KILL",      "MKNOD",
      "NET_BIND_SERVICE", "SETFCAP", "SETGID",       "SETPCAP", "SETUID", "SYS_CHROOT"};
  return caps;
}

const json* capabilitiesOf(const ContainerRef& c) {
  const json* sc = scOf(c);
  return sc ? at(*sc, "capabilities") : nullptr;
}

std::vector<std::string> capList(const json* caps, const char* key) {
  std::vector<std::string> out;
  const json* l = caps ? at(*caps, key) : nullptr;
  if (l == nullptr || !l->is_array()) return out;
  for (const auto& v : *l)
    out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

Outcome capabilitiesBaseline(const Ctx& x) {
  std::vector<std::string> badContainers;
  std::set<std::string> nonDefault;
  for (const auto& c : x.containers) {
    std::vector<std::string> bad;
    for (const auto& cap : capList(capabilitiesOf(c), "add")) {
      if (!baselineCapabilities().count(cap)) {
        bad.push_back(cap);
        nonDefault.insert(cap);
      }
    }
    if (bad.empty()) continue;
    badContainers.push_back(c.name);
    x.add(c.path + ".securityContext.capabilities.add",
          "remove " + joinQuote(bad) +
              ": baseline allows adding only AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, "
              "KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT");
  }
  if (badContainers.empty()) return std::nullopt;
  return std::make_pair(std::string("non-default capabilities"),
                        containersPhrase(badContainers) + " must not include " +
                            joinQuote(sorted(nonDefault)) + " in securityContext.capabilities.add");
}

Outcome hostNamespaces(const Ctx& x) {
  std::vector<std::string> used;
  for (const char* f : {"hostNetwork", "hostPID", "hostIPC"}) {
    if (!isTrue(at(x.pod.spec, f))) continue;
    used.push_back(std::string(f) + "=true");
    x.add(x.pod.specPath + "." + f,
          std::string("sharing the host's namespace is not allowed: set ") + f +
              " to false or remove it");
  }
  if (used.empty()) return std::nullopt;
  return std::make_pair(std::string("host namespaces"), join(used, ", "));
}

std::vector<std::pair<std::size_t, const json*>> volumes(const PodView& pod) {
  std::vector<std::pair<std::size_t, const json*>> out;
  const json* v = at(pod.spec, "volumes");
  if (v == nullptr || !v->is_array()) return out;
  for (std::size_t i = 0; i < v->size(); ++i)
    out.emplace_back(i, &(*v)[i]);
  return out;
}

std::string volumeName(const json& v) {
  return strOf(at(v, "name"));
}

Outcome hostPathVolumes(const Ctx& x) {
  std::vector<std::string> bad;
  for (const auto& [i, v] : volumes(x.pod)) {
    if (at(*v, "hostPath") == nullptr) continue;
    bad.push_back(volumeName(*v));
    x.add(x.pod.specPath + ".volumes[" + std::to_string(i) + "].hostPath",
          "hostPath volumes are not allowed: use a persistentVolumeClaim (a PersistentVolume may "
          "be a hostPath one), emptyDir, configMap or secret instead");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(std::string("hostPath volumes"),
                        pluralize("volume", "volumes", bad.size()) + " " + joinQuote(bad));
}

Outcome hostPorts(const Ctx& x) {
  std::vector<std::string> badContainers;
  std::set<std::string> ports;
  for (const auto& c : x.containers) {
    const json* ps = at(*c.c, "ports");
    if (ps == nullptr || !ps->is_array()) continue;
    bool bad = false;
    for (std::size_t j = 0; j < ps->size(); ++j) {
      const json* hp = at((*ps)[j], "hostPort");
      if (hp == nullptr || (hp->is_number() && hp->get<double>() == 0)) continue;
      bad = true;
      ports.insert(hp->is_number_integer() ? std::to_string(hp->get<long long>()) : strOf(hp));
      x.add(c.path + ".ports[" + std::to_string(j) + "].hostPort",
            "host ports are not allowed: remove hostPort (expose the port with a Service)");
    }
    if (bad) badContainers.push_back(c.name);
  }
  if (badContainers.empty()) return std::nullopt;
  return std::make_pair(
      std::string("hostPort"),
      containersPhrase(badContainers) + " " + pluralize("uses", "use", badContainers.size()) + " " +
          pluralize("hostPort", "hostPorts", ports.size()) + " " + join(sorted(ports), ", "));
}

Outcome privileged(const Ctx& x) {
  std::vector<std::string> bad;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    if (sc == nullptr || !isTrue(at(*sc, "privileged"))) continue;
    bad.push_back(c.name);
    x.add(c.path + ".securityContext.privileged",
          "privileged containers are not allowed: set privileged to false or remove it");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(std::string("privileged"),
                        containersPhrase(bad) + " must not set securityContext.privileged=true");
}

Outcome procMount(const Ctx& x) {
  std::vector<std::string> bad;
  std::set<std::string> types;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    const json* pm = sc ? at(*sc, "procMount") : nullptr;
    if (pm == nullptr || strOf(pm) == "Default") continue;
    bad.push_back(c.name);
    types.insert(strOf(pm));
    x.add(c.path + ".securityContext.procMount",
          "procMount " + quote(strOf(pm)) + " is not allowed: set Default or remove it");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(std::string("procMount"),
                        containersPhrase(bad) + " must not set securityContext.procMount to " +
                            joinQuote(sorted(types)));
}

Outcome seLinuxOptions(const Ctx& x) {
  static const std::set<std::string> allowedTypes = {"", "container_t", "container_init_t",
                                                     "container_kvm_t"};
  std::vector<std::string> badSetters;
  std::set<std::string> badTypes;
  bool setUser = false;
  bool setRole = false;
  auto valid = [&](const json& o, const std::string& path) {
    bool ok = true;
    const std::string type = strOf(at(o, "type"));
    if (!allowedTypes.count(type)) {
      ok = false;
      badTypes.insert(type);
      x.add(path + ".type", "SELinux type " + quote(type) +
                                " is not allowed: use container_t, container_init_t or "
                                "container_kvm_t, or leave it unset");
    }
    if (!strOf(at(o, "user")).empty()) {
      ok = false;
      setUser = true;
      x.add(path + ".user", "a custom SELinux user is not allowed: remove it");
    }
    if (!strOf(at(o, "role")).empty()) {
      ok = false;
      setRole = true;
      x.add(path + ".role", "a custom SELinux role is not allowed: remove it");
    }
    return ok;
  };
  if (const json* sc = x.podSc()) {
    if (const json* o = at(*sc, "seLinuxOptions");
        o && !valid(*o, x.podScPath() + ".seLinuxOptions"))
      badSetters.emplace_back("pod");
  }
  std::vector<std::string> badContainers;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    const json* o = sc ? at(*sc, "seLinuxOptions") : nullptr;
    if (o && !valid(*o, c.path + ".securityContext.seLinuxOptions"))
      badContainers.push_back(c.name);
  }
  if (!badContainers.empty()) badSetters.push_back(containersPhrase(badContainers));
  if (badSetters.empty()) return std::nullopt;
  std::vector<std::string> badData;
  if (!badTypes.empty())
    badData.push_back(pluralize("type", "types", badTypes.size()) + " " +
                      joinQuote(sorted(badTypes)));
  if (setUser) badData.emplace_back("user may not be set");
  if (setRole) badData.emplace_back("role may not be set");
  return std::make_pair(
      std::string("seLinuxOptions"),
      join(badSetters, " and ") +
          " set forbidden securityContext.seLinuxOptions: " + join(badData, "; "));
}

bool validSeccomp(const std::string& t) {
  return t == "RuntimeDefault" || t == "Localhost";
}

std::string seccompType(const json& profile) {
  return strOf(at(profile, "type"));
}

const json* seccompOf(const json* sc) {
  return sc ? at(*sc, "seccompProfile") : nullptr;
}

// The baseline check and the explicit half of the restricted one.
struct SeccompScan {
  std::vector<std::string> badSetters;
  std::set<std::string> badValues;
  std::vector<const ContainerRef*> unset;  // containers without a profile of their own
  bool podValid = false;
};

SeccompScan scanSeccomp(const Ctx& x) {
  SeccompScan s;
  if (const json* p = seccompOf(x.podSc())) {
    if (!validSeccomp(seccompType(*p))) {
      s.badSetters.emplace_back("pod");
      s.badValues.insert(seccompType(*p));
      x.add(x.podScPath() + ".seccompProfile.type",
            "seccomp profile " + quote(seccompType(*p)) +
                " is not allowed: set RuntimeDefault or Localhost");
    } else {
      s.podValid = true;
    }
  }
  std::vector<std::string> badContainers;
  for (const auto& c : x.containers) {
    if (const json* p = seccompOf(scOf(c))) {
      if (!validSeccomp(seccompType(*p))) {
        badContainers.push_back(c.name);
        s.badValues.insert(seccompType(*p));
        x.add(c.path + ".securityContext.seccompProfile.type",
              "seccomp profile " + quote(seccompType(*p)) +
                  " is not allowed: set RuntimeDefault or Localhost");
      }
    } else {
      s.unset.push_back(&c);
    }
  }
  if (!badContainers.empty()) s.badSetters.push_back(containersPhrase(badContainers));
  return s;
}

Outcome seccompProfileBaseline(const Ctx& x) {
  SeccompScan s = scanSeccomp(x);
  if (s.badSetters.empty()) return std::nullopt;
  return std::make_pair(std::string("seccompProfile"),
                        join(s.badSetters, " and ") +
                            " must not set securityContext.seccompProfile.type to " +
                            joinQuote(sorted(s.badValues)));
}

Outcome sysctls(const Ctx& x) {
  static const std::set<std::string> safe = {"kernel.shm_rmid_forced",
                                             "net.ipv4.ip_local_port_range",
                                             "net.ipv4.tcp_syncookies",
                                             "net.ipv4.ping_group_range",
                                             "net.ipv4.ip_unprivileged_port_start",
                                             "net.ipv4.ip_local_reserved_ports",
                                             "net.ipv4.tcp_keepalive_time",
                                             "net.ipv4.tcp_fin_timeout",
                                             "net.ipv4.tcp_keepalive_intvl",
                                             "net.ipv4.tcp_keepalive_probes"};
  std::vector<std::string> bad;
  const json* sc = x.podSc();
  const json* list = sc ? at(*sc, "sysctls") : nullptr;
  if (list == nullptr || !list->is_array()) return std::nullopt;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string name = strOf(at((*list)[i], "name"));
    if (safe.count(name)) continue;
    bad.push_back(name);
    x.add(x.podScPath() + ".sysctls[" + std::to_string(i) + "].name",
          "sysctl " + quote(name) + " is not in the safe set: remove it (allowed: " +
              join({safe.begin(), safe.end()}, ", ") + ")");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(std::string("forbidden sysctls"), join(bad, ", "));
}

Outcome windowsHostProcess(const Ctx& x) {
  auto hostProcess = [](const json* sc) {
    const json* w = sc ? at(*sc, "windowsOptions") : nullptr;
    return w != nullptr && isTrue(at(*w, "hostProcess"));
  };
  std::vector<std::string> setters;
  if (hostProcess(x.podSc())) {
    setters.emplace_back("pod");
    x.add(x.podScPath() + ".windowsOptions.hostProcess",
          "Windows HostProcess pods are not allowed: set hostProcess to false or remove it");
  }
  std::vector<std::string> bad;
  for (const auto& c : x.containers) {
    if (!hostProcess(scOf(c))) continue;
    bad.push_back(c.name);
    x.add(c.path + ".securityContext.windowsOptions.hostProcess",
          "Windows HostProcess containers are not allowed: set hostProcess to false or remove it");
  }
  if (!bad.empty()) setters.push_back(containersPhrase(bad));
  if (setters.empty()) return std::nullopt;
  return std::make_pair(
      std::string("hostProcess"),
      join(setters, " and ") + " must not set securityContext.windowsOptions.hostProcess=true");
}

// --- restricted -------------------------------------------------------------------------------

Outcome allowPrivilegeEscalation(const Ctx& x) {
  if (x.windows) return std::nullopt;
  std::vector<std::string> bad;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    const json* ape = sc ? at(*sc, "allowPrivilegeEscalation") : nullptr;
    if (ape != nullptr && ape->is_boolean() && !ape->get<bool>()) continue;
    bad.push_back(c.name);
    x.add(c.path + ".securityContext.allowPrivilegeEscalation",
          ape == nullptr ? "must be set to false (unset means true)" : "must be false");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(
      std::string("allowPrivilegeEscalation != false"),
      containersPhrase(bad) + " must set securityContext.allowPrivilegeEscalation=false");
}

Outcome capabilitiesRestricted(const Ctx& x) {
  if (x.windows) return std::nullopt;
  std::vector<std::string> missingDrop;
  std::vector<std::string> addingForbidden;
  std::set<std::string> forbidden;
  for (const auto& c : x.containers) {
    const json* caps = capabilitiesOf(c);
    const auto drop = capList(caps, "drop");
    if (caps == nullptr || std::find(drop.begin(), drop.end(), "ALL") == drop.end()) {
      missingDrop.push_back(c.name);
      x.add(c.path + ".securityContext.capabilities.drop",
            "must include \"ALL\" (set capabilities.drop: [\"ALL\"])");
    }
    if (caps == nullptr) continue;
    std::vector<std::string> bad;
    for (const auto& cap : capList(caps, "add")) {
      if (cap == "NET_BIND_SERVICE") continue;
      bad.push_back(cap);
      forbidden.insert(cap);
    }
    if (bad.empty()) continue;
    addingForbidden.push_back(c.name);
    x.add(c.path + ".securityContext.capabilities.add",
          "remove " + joinQuote(bad) + ": restricted allows adding only NET_BIND_SERVICE");
  }
  std::vector<std::string> details;
  if (!missingDrop.empty())
    details.push_back(containersPhrase(missingDrop) +
                      " must set securityContext.capabilities.drop=[\"ALL\"]");
  if (!addingForbidden.empty())
    details.push_back(containersPhrase(addingForbidden) + " must not include " +
                      joinQuote(sorted(forbidden)) + " in securityContext.capabilities.add");
  if (details.empty()) return std::nullopt;
  return std::make_pair(std::string("unrestricted capabilities"), join(details, "; "));
}

Outcome restrictedVolumes(const Ctx& x) {
  static const char* const allowed[] = {"configMap", "csi",       "downwardAPI",
                                        "emptyDir",  "ephemeral", "persistentVolumeClaim",
                                        "projected", "secret"};
  // Upstream's order of the forbidden types (the first one set names the volume's type).
  static const char* const restricted[] = {"hostPath",
                                           "gcePersistentDisk",
                                           "awsElasticBlockStore",
                                           "gitRepo",
                                           "nfs",
                                           "iscsi",
                                           "glusterfs",
                                           "rbd",
                                           "flexVolume",
                                           "cinder",
                                           "cephfs",
                                           "flocker",
                                           "fc",
                                           "azureFile",
                                           "vsphereVolume",
                                           "quobyte",
                                           "azureDisk",
                                           "photonPersistentDisk",
                                           "portworxVolume",
                                           "scaleIO",
                                           "storageos"};
  std::vector<std::string> bad;
  std::set<std::string> types;
  for (const auto& [i, v] : volumes(x.pod)) {
    bool ok = false;
    for (const char* a : allowed)
      ok = ok || at(*v, a) != nullptr;
    if (ok) continue;
    std::string type = "unknown";
    for (const char* r : restricted) {
      if (at(*v, r) != nullptr) {
        type = r;
        break;
      }
    }
    bad.push_back(volumeName(*v));
    types.insert(type);
    x.add(x.pod.specPath + ".volumes[" + std::to_string(i) + "]" +
              (type == "unknown" ? std::string() : "." + type),
          "volume type " + quote(type) +
              " is not allowed: restricted allows only configMap, csi, downwardAPI, emptyDir, "
              "ephemeral, persistentVolumeClaim, projected and secret");
  }
  if (bad.empty()) return std::nullopt;
  return std::make_pair(
      std::string("restricted volume types"),
      pluralize("volume", "volumes", bad.size()) + " " + joinQuote(bad) + " " +
          pluralize("uses", "use", bad.size()) + " " +
          pluralize("restricted volume type", "restricted volume types", types.size()) + " " +
          joinQuote(sorted(types)));
}

Outcome runAsNonRoot(const Ctx& x) {
  std::vector<std::string> badSetters;
  bool podNonRoot = false;
  if (const json* sc = x.podSc()) {
    if (const json* v = at(*sc, "runAsNonRoot"); v && v->is_boolean()) {
      if (!v->get<bool>()) {
        badSetters.emplace_back("pod");
        x.add(x.podScPath() + ".runAsNonRoot", "must be true");
      } else {
        podNonRoot = true;
      }
    }
  }
  std::vector<std::string> explicitlyBad;
  std::vector<std::string> implicitlyBad;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    const json* v = sc ? at(*sc, "runAsNonRoot") : nullptr;
    if (v != nullptr && v->is_boolean()) {
      if (!v->get<bool>()) {
        explicitlyBad.push_back(c.name);
        x.add(c.path + ".securityContext.runAsNonRoot", "must be true");
      }
    } else if (!podNonRoot) {
      implicitlyBad.push_back(c.name);
      x.add(c.path + ".securityContext.runAsNonRoot",
            "must be true: set it here or set " + x.podScPath() + ".runAsNonRoot=true");
    }
  }
  if (!explicitlyBad.empty()) badSetters.push_back(containersPhrase(explicitlyBad));
  if (!badSetters.empty()) {
    return std::make_pair(
        std::string("runAsNonRoot != true"),
        join(badSetters, " and ") + " must not set securityContext.runAsNonRoot=false");
  }
  if (!implicitlyBad.empty()) {
    return std::make_pair(std::string("runAsNonRoot != true"),
                          "pod or " + containersPhrase(implicitlyBad) +
                              " must set securityContext.runAsNonRoot=true");
  }
  return std::nullopt;
}

bool isZero(const json* v) {
  return v != nullptr && v->is_number() && v->get<double>() == 0;
}

Outcome runAsUser(const Ctx& x) {
  std::vector<std::string> badSetters;
  if (const json* sc = x.podSc(); sc && isZero(at(*sc, "runAsUser"))) {
    badSetters.emplace_back("pod");
    x.add(x.podScPath() + ".runAsUser", "must not be 0: set a non-zero uid or remove it");
  }
  std::vector<std::string> bad;
  for (const auto& c : x.containers) {
    const json* sc = scOf(c);
    if (sc == nullptr || !isZero(at(*sc, "runAsUser"))) continue;
    bad.push_back(c.name);
    x.add(c.path + ".securityContext.runAsUser", "must not be 0: set a non-zero uid or remove it");
  }
  if (!bad.empty()) badSetters.push_back(containersPhrase(bad));
  if (badSetters.empty()) return std::nullopt;
  return std::make_pair(std::string("runAsUser=0"),
                        join(badSetters, " and ") + " must not set runAsUser=0");
}

Outcome seccompProfileRestricted(const Ctx& x) {
  if (x.windows) return std::nullopt;
  SeccompScan s = scanSeccomp(x);
  if (!s.badSetters.empty()) {
    return std::make_pair(std::string("seccompProfile"),
                          join(s.badSetters, " and ") +
                              " must not set securityContext.seccompProfile.type to " +
                              joinQuote(sorted(s.badValues)));
  }
  if (s.podValid || s.unset.empty()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto* c : s.unset) {
    names.push_back(c->name);
    x.add(c->path + ".securityContext.seccompProfile.type",
          "must be set to RuntimeDefault or Localhost: set it here or set " + x.podScPath() +
              ".seccompProfile.type");
  }
  return std::make_pair(std::string("seccompProfile"),
                        "pod or " + containersPhrase(names) +
                            " must set securityContext.seccompProfile.type to \"RuntimeDefault\" "
                            "or \"Localhost\"");
}

// What the apiserver does to a pod before admission (pkg/registry/core/pod/strategy.go,
// applyAppArmorVersionSkew, v1.30 with AppArmorFields on by default): a container's AppArmor
// field and its annotation are copied into each other when only one is set (the pod-level field
// standing in for a container's). It changes no verdict, only the wording upstream reports.
std::string annotationForField(const json& f) {
  const std::string t = strOf(at(f, "type"));
  if (t == "Unconfined") return "unconfined";
  if (t == "RuntimeDefault") return "runtime/default";
  if (t == "Localhost" && at(f, "localhostProfile"))
    return "localhost/" + strOf(at(f, "localhostProfile"));
  return {};
}

std::optional<json> fieldForAnnotation(const std::string& a) {
  if (a == "unconfined") return json{{"type", "Unconfined"}};
  if (a == "runtime/default") return json{{"type", "RuntimeDefault"}};
  const std::string prefix = "localhost/";
  if (a.rfind(prefix, 0) == 0 && a.size() > prefix.size()) {
    const std::string p = a.substr(prefix.size());
    // ValidateAppArmorProfileField: no padding, at most 4095 bytes.
    if (p.find_first_not_of(" \t\n\r\f\v") == 0 &&
        p.find_last_not_of(" \t\n\r\f\v") == p.size() - 1 && p.size() <= 4095)
      return json{{"type", "Localhost"}, {"localhostProfile", p}};
  }
  return std::nullopt;
}

PodView withAppArmorSkew(const PodView& in) {
  PodView pod = in;
  const json* os = at(pod.spec, "os");
  if (os != nullptr && strOf(at(*os, "name")) == "windows") return pod;
  const json* psc = at(pod.spec, "securityContext");
  const json* podProfile = psc ? at(*psc, "appArmorProfile") : nullptr;
  const std::string prefix = "container.apparmor.security.beta.kubernetes.io/";
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    if (!pod.spec.contains(list) || !pod.spec[list].is_array()) continue;
    for (auto& c : pod.spec[list]) {
      if (!c.is_object()) continue;
      const std::string key = prefix + strOf(at(c, "name"));
      const json* ann = at(pod.metadata, "annotations");
      const json* annotation = ann ? at(*ann, key) : nullptr;
      const json* sc = at(c, "securityContext");
      const json* profile = sc ? at(*sc, "appArmorProfile") : nullptr;
      if (annotation == nullptr) {
        std::string a;
        if (profile != nullptr) {
          a = annotationForField(*profile);
        } else if (podProfile != nullptr) {
          a = annotationForField(*podProfile);
        }
        if (!a.empty()) pod.metadata["annotations"][key] = a;
      } else if (profile == nullptr) {
        auto f = fieldForAnnotation(strOf(annotation));
        if (f && !(podProfile != nullptr && *podProfile == *f))
          c["securityContext"]["appArmorProfile"] = *f;
      }
    }
  }
  return pod;
}

struct CheckDef {
  const char* id;
  Level level;
  Outcome (*run)(const Ctx&);
  const char* overrides;  // the baseline check it replaces at restricted
};

// Upstream's order: baseline ids sorted, then restricted ids sorted.
const CheckDef kChecks[] = {
    {"appArmorProfile", Level::Baseline, appArmorProfile, nullptr},
    {"capabilities_baseline", Level::Baseline, capabilitiesBaseline, nullptr},
    {"hostNamespaces", Level::Baseline, hostNamespaces, nullptr},
    {"hostPathVolumes", Level::Baseline, hostPathVolumes, nullptr},
    {"hostPorts", Level::Baseline, hostPorts, nullptr},
    {"privileged", Level::Baseline, privileged, nullptr},
    {"procMount", Level::Baseline, procMount, nullptr},
    {"seLinuxOptions", Level::Baseline, seLinuxOptions, nullptr},
    {"seccompProfile_baseline", Level::Baseline, seccompProfileBaseline, nullptr},
    {"sysctls", Level::Baseline, sysctls, nullptr},
    {"windowsHostProcess", Level::Baseline, windowsHostProcess, nullptr},
    {"allowPrivilegeEscalation", Level::Restricted, allowPrivilegeEscalation, nullptr},
    {"capabilities_restricted", Level::Restricted, capabilitiesRestricted, "capabilities_baseline"},
    {"restrictedVolumes", Level::Restricted, restrictedVolumes, "hostPathVolumes"},
    {"runAsNonRoot", Level::Restricted, runAsNonRoot, nullptr},
    {"runAsUser", Level::Restricted, runAsUser, nullptr},
    {"seccompProfile_restricted", Level::Restricted, seccompProfileRestricted,
     "seccompProfile_baseline"},
};

std::vector<ContainerRef> containersOf(const PodView& pod) {
  std::vector<ContainerRef> out;
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    const json* l = at(pod.spec, list);
    if (l == nullptr || !l->is_array()) continue;
    for (std::size_t i = 0; i < l->size(); ++i) {
      const json& c = (*l)[i];
      if (!c.is_object()) continue;
      out.push_back(
          {&c, pod.specPath + "." + list + "[" + std::to_string(i) + "]", strOf(at(c, "name"))});
    }
  }
  return out;
}

// YAML → JSON with the typing of Kubernetes' YAML reader (YAML 1.1 booleans included).
json yamlToJson(const YAML::Node& n, int depth) {
  if (depth > 200) throw std::runtime_error("nested too deeply");
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n)
        o[kv.first.as<std::string>()] = yamlToJson(kv.second, depth + 1);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& v : n)
        a.push_back(yamlToJson(v, depth + 1));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      static const std::set<std::string> yes = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                                "True", "TRUE", "on",  "On",  "ON"};
      static const std::set<std::string> no = {"n",     "N",     "no",  "No",  "NO", "false",
                                               "False", "FALSE", "off", "Off", "OFF"};
      if (yes.count(s)) return true;
      if (no.count(s)) return false;
      if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
      json num = json::parse(s, nullptr, false);
      if (!num.is_discarded() && num.is_number()) return num;
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<Level> levelFromString(std::string_view s) {
  if (s == "privileged") return Level::Privileged;
  if (s == "baseline") return Level::Baseline;
  if (s == "restricted") return Level::Restricted;
  return std::nullopt;
}

std::string_view levelName(Level level) {
  switch (level) {
    case Level::Privileged:
      return "privileged";
    case Level::Baseline:
      return "baseline";
    case Level::Restricted:
      return "restricted";
  }
  return "restricted";
}

std::vector<std::string> Verdict::reasons() const {
  std::vector<std::string> out;
  out.reserve(failures.size());
  for (const auto& f : failures)
    out.push_back(f.reason);
  return out;
}

std::string Verdict::summary() const {
  std::string out;
  for (const auto& f : failures) {
    if (!out.empty()) out += ", ";
    out += f.reason;
    if (!f.detail.empty()) out += " (" + f.detail + ")";
  }
  return out;
}

Result<PodView> podFromObject(const json& object) {
  if (!object.is_object())
    return Error(ErrorCode::ValidationError, "the document is not an object");
  PodView v;
  v.kind = strOf(at(object, "kind"));
  if (const json* m = at(object, "metadata")) v.name = strOf(at(*m, "name"));
  auto fromTemplate = [&](const json* tmpl, const std::string& path) -> Result<PodView> {
    if (tmpl == nullptr || !tmpl->is_object()) {
      return Error(ErrorCode::ValidationError,
                   v.kind + " '" + v.name + "' has no pod template at " + path);
    }
    if (const json* m = at(*tmpl, "metadata")) v.metadata = *m;
    if (const json* s = at(*tmpl, "spec")) v.spec = *s;
    v.metadataPath = path + ".metadata";
    v.specPath = path + ".spec";
    return v;
  };
  if (v.kind == "Pod" || v.kind.empty()) {
    const json* spec = at(object, "spec");
    if (spec == nullptr || !spec->is_object())
      return Error(ErrorCode::ValidationError, "the pod has no spec");
    if (const json* m = at(object, "metadata")) v.metadata = *m;
    v.spec = *spec;
    v.kind = "Pod";
    return v;
  }
  if (v.kind == "PodTemplate") return fromTemplate(at(object, "template"), "template");
  static const std::set<std::string> withTemplate = {
      "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController", "Job"};
  const json* spec = at(object, "spec");
  if (withTemplate.count(v.kind))
    return fromTemplate(spec ? at(*spec, "template") : nullptr, "spec.template");
  if (v.kind == "CronJob") {
    const json* jt = spec ? at(*spec, "jobTemplate") : nullptr;
    const json* js = jt ? at(*jt, "spec") : nullptr;
    return fromTemplate(js ? at(*js, "template") : nullptr, "spec.jobTemplate.spec.template");
  }
  return Error(ErrorCode::ValidationError,
               "kind '" + v.kind +
                   "' has no pod: give a Pod, PodTemplate, Deployment, ReplicaSet, StatefulSet, "
                   "DaemonSet, ReplicationController, Job or CronJob");
}

Verdict checkPod(const PodView& pod, Level level) {
  Verdict v;
  v.level = level;
  if (level == Level::Privileged) return v;
  Ctx x{pod, containersOf(pod), false, &v.violations, {}};
  const json* os = at(pod.spec, "os");
  x.windows = os != nullptr && strOf(at(*os, "name")) == "windows";
  std::set<std::string> replaced;
  if (level == Level::Restricted) {
    for (const auto& c : kChecks)
      if (c.overrides != nullptr) replaced.insert(c.overrides);
  }
  for (const auto& c : kChecks) {
    if (c.level == Level::Restricted && level != Level::Restricted) continue;
    if (replaced.count(c.id)) continue;
    x.check = c.id;
    const std::size_t before = v.violations.size();
    auto outcome = c.run(x);
    if (c.run == appArmorProfile) {
      // Fields as the user wrote them; upstream's words from the pod as the apiserver sees it.
      const PodView skewed = withAppArmorSkew(pod);
      std::vector<Violation> scratch;
      Ctx y{skewed, containersOf(skewed), x.windows, &scratch, c.id};
      outcome = c.run(y);
    }
    if (outcome) {
      v.failures.push_back({c.id, std::move(outcome->first), std::move(outcome->second)});
    } else {
      v.violations.resize(before);  // nothing recorded by a check that passed
    }
  }
  return v;
}

Verdict checkPod(const json& pod, Level level) {
  PodView v;
  if (const json* m = at(pod, "metadata")) v.metadata = *m;
  if (const json* s = at(pod, "spec")) v.spec = *s;
  return checkPod(v, level);
}

Result<std::vector<json>> parseDocuments(std::string_view text) {
  std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return Error(ErrorCode::ValidationError, "malformed JSON");
    if (j.is_array()) return std::vector<json>(j.begin(), j.end());
    if (j.is_object() && strOf(at(j, "kind")) == "List" && at(j, "items") && j["items"].is_array())
      return std::vector<json>(j["items"].begin(), j["items"].end());
    return std::vector<json>{j};
  }
  try {
    std::vector<json> out;
    for (const auto& doc : YAML::LoadAll(std::string(text))) {
      if (doc.IsNull()) continue;
      json j = yamlToJson(doc, 0);
      if (j.is_object() && strOf(at(j, "kind")) == "List" && at(j, "items") &&
          j["items"].is_array()) {
        for (const auto& item : j["items"])
          out.push_back(item);
      } else {
        out.push_back(std::move(j));
      }
    }
    return out;
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::ValidationError,
                 "malformed YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return Error(ErrorCode::ValidationError, std::string("malformed YAML: ") + e.what());
  }
}

Error violationError(const Verdict& verdict, const std::string& namespaceName,
                     const std::string& podName) {
  std::string msg = "pod " + podName + " would violate PodSecurity \"" +
                    std::string(levelName(verdict.level)) + "\" of namespace " + namespaceName +
                    ":";
  std::string list;
  for (const auto& v : verdict.violations) {
    msg += "\n  " + v.field + ": " + v.message + " [" + v.check + "]";
    if (!list.empty()) list += "; ";
    list += v.field + ": " + v.message;
  }
  return Error(ErrorCode::K8sPodSecurityViolation, std::move(msg),
               {{"level", std::string(levelName(verdict.level))},
                {"namespace", namespaceName},
                {"pod", podName},
                {"reasons", verdict.summary()},
                {"violations", list}});
}

}  // namespace agentpane::k8s::pss
