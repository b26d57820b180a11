#include "service/model_json.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "common/base64.hpp"
#include "service/validation.hpp"

namespace agentpane {

using nlohmann::json;

namespace {

// --- typed readers: each refuses a wrong JSON type with an error naming the field ----------

Error typeError(const std::string& field, const char* what) {
  return validationError(field, "'" + field + "' must be " + what);
}

Result<void> read(const json& v, const std::string& f, std::string& out) {
  if (!v.is_string()) return typeError(f, "a string");
  out = v.get<std::string>();
  return {};
}

Result<void> read(const json& v, const std::string& f, bool& out) {
  if (!v.is_boolean()) return typeError(f, "true or false");
  out = v.get<bool>();
  return {};
}

Result<void> read(const json& v, const std::string& f, std::int64_t& out) {
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() >
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return typeError(f, "an integer in range");
    }
    out = static_cast<std::int64_t>(v.get<std::uint64_t>());
    return {};
  }
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
    return {};
  }
  // 2048.0 is an integer written by a language without integers (JavaScript).
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) {
      out = static_cast<std::int64_t>(d);
      return {};
    }
  }
  return typeError(f, "an integer");
}

Result<void> read(const json& v, const std::string& f, int& out) {
  std::int64_t n = 0;
  AP_TRY(read(v, f, n));
  if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
    return typeError(f, "an integer in range");
  }
  out = static_cast<int>(n);
  return {};
}

Result<void> read(const json& v, const std::string& f, double& out) {
  if (!v.is_number()) return typeError(f, "a number");
  out = v.get<double>();
  return {};
}

Result<void> read(const json& v, const std::string& f, std::vector<std::string>& out) {
  if (!v.is_array()) return typeError(f, "an array of strings");
  std::vector<std::string> items;
  for (const auto& e : v) {
    if (!e.is_string()) return typeError(f, "an array of strings");
    items.push_back(e.get<std::string>());
  }
  out = std::move(items);
  return {};
}

Result<void> read(const json& v, const std::string& f, ProviderType& out) {
  if (!v.is_string()) return typeError(f, "\"docker\" or \"kubernetes\"");
  auto p = providerTypeFromString(v.get<std::string>());
  if (!p) return typeError(f, "\"docker\" or \"kubernetes\"");
  out = *p;
  return {};
}

Result<void> read(const json& v, const std::string& f, NetworkMode& out) {
  if (!v.is_string()) return typeError(f, "\"none\", \"bridge\" or \"internal\"");
  auto m = networkModeFromString(v.get<std::string>());
  if (!m) return typeError(f, "\"none\", \"bridge\" or \"internal\"");
  out = *m;
  return {};
}

Result<void> readEnv(const json& v, const std::string& f,
                     std::vector<std::pair<std::string, std::string>>& out) {
  if (!v.is_object()) return typeError(f, "an object of strings");
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& [k, e] : v.items()) {
    if (!e.is_string()) return typeError(f + "." + k, "a string");
    items.emplace_back(k, e.get<std::string>());
  }
  out = std::move(items);
  return {};
}

template <typename T>
Result<void> readOpt(const json& v, const std::string& f, std::optional<T>& out) {
  if (v.is_null()) {
    out.reset();
    return {};
  }
  T t{};
  AP_TRY(read(v, f, t));
  out = std::move(t);
  return {};
}

// A table of field name -> setter, applied to every key of an object.
template <typename T>
using Setter = std::function<Result<void>(const json&, const std::string&, T&)>;

template <typename T>
Result<void> applyFields(const json& j, const std::map<std::string, Setter<T>>& fields, T& out,
                         bool nullIsAbsent, const std::set<std::string>& refused = {},
                         const char* refusedWhy = "") {
  if (!j.is_object()) return validationError("body", "expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (refused.count(key) != 0) return validationError(key, "'" + key + "' " + refusedWhy);
    auto it = fields.find(key);
    if (it == fields.end()) return validationError(key, "unknown field '" + key + "'");
    if (value.is_null()) {
      if (nullIsAbsent) continue;
      return validationError(key, "'" + key + "' must not be null");
    }
    AP_TRY(it->second(value, key, out));
  }
  return {};
}

// Builds a setter for a member.
template <typename T, typename M>
Setter<T> member(M T::*m) {
  return [m](const json& v, const std::string& f, T& obj) { return read(v, f, obj.*m); };
}

// --- SandboxConfig ---------------------------------------------------------------------

const std::map<std::string, Setter<SandboxConfig>>& configFields() {
  using C = SandboxConfig;
  static const std::map<std::string, Setter<C>> kFields = {
      {"id", member(&C::id)},
      {"name", member(&C::name)},
      {"description", member(&C::description)},
      {"providerType", member(&C::providerType)},
      {"image", member(&C::image)},
      {"memoryMb", member(&C::memoryMb)},
      {"cpu", member(&C::cpu)},
      {"pidsLimit", member(&C::pidsLimit)},
      {"timeoutMinutes", member(&C::timeoutMinutes)},
      {"isDefault", member(&C::isDefault)},
      {"wakeOnUse", member(&C::wakeOnUse)},
      {"network", member(&C::network)},
      {"allowFallback", member(&C::allowFallback)},
      {"enableK8s", member(&C::enableK8s)},
      {"kubeConfigPath", member(&C::kubeConfigPath)},
      {"kubeContext", member(&C::kubeContext)},
      {"kubeNamespace", member(&C::kubeNamespace)},
      {"networkPolicyEnabled", member(&C::networkPolicyEnabled)},
      {"allowedEgressHosts", member(&C::allowedEgressHosts)},
      {"workspaceVolume", member(&C::workspaceVolume)},
      {"storageClass", member(&C::storageClass)},
      {"workspaceSizeGi", member(&C::workspaceSizeGi)},
      {"startupTimeoutSeconds", member(&C::startupTimeoutSeconds)},
      {"allowRootExec", member(&C::allowRootExec)},
      {"warmPoolMin", member(&C::warmPoolMin)},
      {"warmPoolMax", member(&C::warmPoolMax)},
      {"warmPoolIdleTtlSeconds", member(&C::warmPoolIdleTtlSeconds)},
      {"createdAt", member(&C::createdAtUnix)},
      {"updatedAt", member(&C::updatedAtUnix)},
  };
  return kFields;
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

json toJson(const SandboxConfig& c) {
  return json{
      {"id", c.id},
      {"name", c.name},
      {"description", c.description},
      {"providerType", toString(c.providerType)},
      {"image", c.image},
      {"memoryMb", c.memoryMb},
      {"cpu", c.cpu},
      {"pidsLimit", c.pidsLimit},
      {"timeoutMinutes", c.timeoutMinutes},
      {"isDefault", c.isDefault},
      {"wakeOnUse", c.wakeOnUse},
      {"network", toString(c.network)},
      {"allowFallback", c.allowFallback},
      {"enableK8s", c.enableK8s},
      {"kubeConfigPath", c.kubeConfigPath},
      {"kubeContext", c.kubeContext},
      {"kubeNamespace", c.kubeNamespace},
      {"networkPolicyEnabled", c.networkPolicyEnabled},
      {"allowedEgressHosts", c.allowedEgressHosts},
      {"workspaceVolume", c.workspaceVolume},
      {"storageClass", c.storageClass},
      {"workspaceSizeGi", c.workspaceSizeGi},
      {"startupTimeoutSeconds", c.startupTimeoutSeconds},
      {"allowRootExec", c.allowRootExec},
      {"warmPoolMin", c.warmPoolMin},
      {"warmPoolMax", c.warmPoolMax},
      {"warmPoolIdleTtlSeconds", c.warmPoolIdleTtlSeconds},
      {"createdAt", c.createdAtUnix},
      {"updatedAt", c.updatedAtUnix},
  };
}

Result<SandboxConfig> configFromJson(const json& j) {
  SandboxConfig c;
  AP_TRY(applyFields(j, configFields(), c, /*nullIsAbsent=*/true));
  return c;
}

Result<SandboxConfig> configFromCreateJson(const json& j) {
  SandboxConfig c;
  AP_TRY(applyFields(j, configFields(), c, /*nullIsAbsent=*/true, {"id", "createdAt", "updatedAt"},
                     "is assigned by the server"));
  if (!j.contains("name") || j["name"].is_null())
    return validationError("name", "'name' is required");
  return c;
}

Result<SandboxConfig> applyConfigPatch(const SandboxConfig& base, const json& patch) {
  SandboxConfig c = base;
  AP_TRY(applyFields(patch, configFields(), c, /*nullIsAbsent=*/false,
                     {"id", "createdAt", "updatedAt"}, "cannot be changed"));
  return c;
}

// --- SandboxRecord --------------------------------------------------------------------------

json toJson(const SandboxRecord& r) {
  return json{
      {"id", r.info.id},
      {"status", r.status},
      {"provider", toString(r.info.provider)},
      {"providerInstance", r.info.instance},
      {"state", toString(r.info.state)},
      {"projectId", r.info.projectId},
      {"agentId", r.info.agentId},
      {"projectPath", r.info.projectPath},
      {"image", r.info.image},
      {"containerId", r.info.containerId},
      {"podName", r.info.podName},
      {"podNamespace", r.info.podNamespace},
      {"podUid", r.info.podUid},
      {"configId", r.configId},
      {"createdAt", r.createdAtUnix},
      {"lastActivityAt", r.lastActivityUnix},
      {"error", r.error},
      {"stopReason", r.stopReason},
      {"egress", egressJsonOf(r)},
      {"fromPool", r.fromPool},
  };
}

json toJson(const EgressStatus& st) {
  json hosts = json::array();
  for (const auto& h : st.hosts) {
    json o = {{"host", h.host}, {"addresses", h.addresses}};
    if (!h.error.empty()) o["error"] = h.error;
    hosts.push_back(o);
  }
  return {{"allowlist", st.allowlist},
          {"rules", st.rules},
          {"hosts", hosts},
          {"unresolved", st.unresolved},
          {"enforced", st.enforced}};
}

json egressJsonOf(const SandboxRecord& r) {
  json j = json::parse(r.egressJson.empty() ? "{}" : r.egressJson, nullptr, false);
  if (!j.is_object()) j = json::object();
  json out = j.value("status", json::object());
  if (!out.is_object()) out = json::object();
  out["allowlist"] = j.value("allowlist", json::array());
  if (!out.contains("unresolved")) out["unresolved"] = json::array();
  if (!out.contains("enforced")) out["enforced"] = false;
  return out;
}

namespace {

const std::map<std::string, Setter<SandboxRecord>>& recordFields() {
  using R = SandboxRecord;
  auto info = [](std::string SandboxInfo::*m) -> Setter<R> {
    return [m](const json& v, const std::string& f, R& r) { return read(v, f, r.info.*m); };
  };
  static const std::map<std::string, Setter<R>> kFields = {
      {"id", info(&SandboxInfo::id)},
      {"status", member(&R::status)},
      {"provider",
       [](const json& v, const std::string& f, R& r) { return read(v, f, r.info.provider); }},
      {"state",
       [](const json& v, const std::string& f, R& r) -> Result<void> {
         std::string s;
         AP_TRY(read(v, f, s));
         r.info.state = sandboxStateFromString(s);
         return {};
       }},
      {"projectId", info(&SandboxInfo::projectId)},
      {"agentId", info(&SandboxInfo::agentId)},
      {"projectPath", info(&SandboxInfo::projectPath)},
      {"image", info(&SandboxInfo::image)},
      {"containerId", info(&SandboxInfo::containerId)},
      {"podName", info(&SandboxInfo::podName)},
      {"podNamespace", info(&SandboxInfo::podNamespace)},
      {"podUid", info(&SandboxInfo::podUid)},
      {"configId", member(&R::configId)},
      {"createdAt",
       [](const json& v, const std::string& f, R& r) -> Result<void> {
         AP_TRY(read(v, f, r.createdAtUnix));
         r.info.createdAtUnix = r.createdAtUnix;
         return {};
       }},
      {"lastActivityAt", member(&R::lastActivityUnix)},
      {"error", member(&R::error)},
      {"providerInstance", info(&SandboxInfo::instance)},
      {"stopReason", member(&R::stopReason)},
      {"fromPool", member(&R::fromPool)},
      {"egress",
       [](const json& v, const std::string& f, R& r) -> Result<void> {
         if (!v.is_object()) return validationError(f, "'egress' must be an object");
         r.egressJson =
             json{{"allowlist", v.value("allowlist", json::array())}, {"status", v}}.dump();
         return {};
       }},
  };
  return kFields;
}

}  // namespace

Result<SandboxRecord> sandboxRecordFromJson(const json& j) {
  SandboxRecord r;
  AP_TRY(applyFields(j, recordFields(), r, /*nullIsAbsent=*/true));
  return r;
}

json toJson(const CreateSandboxOutcome& o) {
  json j = toJson(o.sandbox);
  if (o.fallbackReason) j["fallbackReason"] = *o.fallbackReason;
  if (o.migratedFrom) j["migratedFrom"] = *o.migratedFrom;
  if (!o.warnings.empty()) j["warnings"] = o.warnings;
  return j;
}

Result<CreateSandboxOutcome> createOutcomeFromJson(const json& j) {
  if (!j.is_object()) return validationError("body", "expected a JSON object");
  CreateSandboxOutcome o;
  json rest = j;
  if (rest.contains("fallbackReason")) {
    std::optional<std::string> reason;
    AP_TRY(readOpt(rest["fallbackReason"], "fallbackReason", reason));
    o.fallbackReason = reason;
    rest.erase("fallbackReason");
  }
  if (rest.contains("migratedFrom")) {
    std::optional<std::string> from;
    AP_TRY(readOpt(rest["migratedFrom"], "migratedFrom", from));
    o.migratedFrom = from;
    rest.erase("migratedFrom");
  }
  if (rest.contains("warnings")) {
    const json& w = rest["warnings"];
    if (!w.is_array()) return validationError("warnings", "'warnings' must be an array of strings");
    for (const auto& e : w) {
      if (!e.is_string())
        return validationError("warnings", "'warnings' must be an array of strings");
      o.warnings.push_back(e.get<std::string>());
    }
    rest.erase("warnings");
  }
  auto r = sandboxRecordFromJson(rest);
  if (!r.ok()) return r.takeError();
  o.sandbox = std::move(r).value();
  return o;
}

// --- CreateSandboxRequest -----------------------------------------------------------------

json toJson(const CreateSandboxRequest& r) {
  json j{{"projectPath", r.projectPath}};
  if (!r.projectId.empty()) j["projectId"] = r.projectId;
  if (!r.agentId.empty()) j["agentId"] = r.agentId;
  if (r.configId) j["configId"] = *r.configId;
  if (r.provider) j["provider"] = toString(*r.provider);
  if (r.image) j["image"] = *r.image;
  if (r.memoryMb) j["memoryMb"] = *r.memoryMb;
  if (r.cpu) j["cpu"] = *r.cpu;
  if (!r.env.empty()) {
    json env = json::object();
    for (const auto& [k, v] : r.env)
      env[k] = v;
    j["env"] = env;
  }
  if (!r.allowEgress.empty()) j["allowEgress"] = r.allowEgress;
  return j;
}

Result<CreateSandboxRequest> createSandboxRequestFromJson(const json& j) {
  using Q = CreateSandboxRequest;
  static const std::map<std::string, Setter<Q>> kFields = {
      {"projectPath", member(&Q::projectPath)},
      {"projectId", member(&Q::projectId)},
      {"agentId", member(&Q::agentId)},
      {"configId",
       [](const json& v, const std::string& f, Q& q) { return readOpt(v, f, q.configId); }},
      {"provider",
       [](const json& v, const std::string& f, Q& q) { return readOpt(v, f, q.provider); }},
      {"image", [](const json& v, const std::string& f, Q& q) { return readOpt(v, f, q.image); }},
      {"memoryMb",
       [](const json& v, const std::string& f, Q& q) { return readOpt(v, f, q.memoryMb); }},
      {"cpu", [](const json& v, const std::string& f, Q& q) { return readOpt(v, f, q.cpu); }},
      {"env", [](const json& v, const std::string& f, Q& q) { return readEnv(v, f, q.env); }},
      {"allowEgress", member(&Q::allowEgress)},
  };
  Q q;
  AP_TRY(applyFields(j, kFields, q, /*nullIsAbsent=*/true));
  if (q.projectPath.empty()) return validationError("projectPath", "'projectPath' is required");
  return q;
}

// --- Exec ---------------------------------------------------------------------------------

json toJson(const ExecResult& r, bool base64) {
  bool asBase64 = base64 || !isValidUtf8(r.stdoutData) || !isValidUtf8(r.stderrData);
  json j{{"exitCode", r.exitCode}};
  if (asBase64) {
    j["stdoutBase64"] = base64Encode(r.stdoutData);
    j["stderrBase64"] = base64Encode(r.stderrData);
  } else {
    j["stdout"] = r.stdoutData;
    j["stderr"] = r.stderrData;
  }
  return j;
}

Result<ExecResult> execResultFromJson(const json& j) {
  using E = ExecResult;
  auto b64 = [](std::string E::*m) -> Setter<E> {
    return [m](const json& v, const std::string& f, E& e) -> Result<void> {
      std::string text;
      AP_TRY(read(v, f, text));
      auto bytes = base64Decode(text);
      if (!bytes) return typeError(f, "base64");
      e.*m = std::move(*bytes);
      return {};
    };
  };
  static const std::map<std::string, Setter<E>> kFields = {
      {"exitCode", member(&E::exitCode)},    {"stdout", member(&E::stdoutData)},
      {"stderr", member(&E::stderrData)},    {"stdoutBase64", b64(&E::stdoutData)},
      {"stderrBase64", b64(&E::stderrData)},
  };
  E e;
  AP_TRY(applyFields(j, kFields, e, /*nullIsAbsent=*/true));
  if ((j.contains("stdout") && j.contains("stdoutBase64")) ||
      (j.contains("stderr") && j.contains("stderrBase64"))) {
    return validationError("stdoutBase64", "a stream is either text or base64, not both");
  }
  return e;
}

json toJson(const ExecApiRequest& r) {
  const auto& q = r.request;
  json j{{"argv", q.argv}};
  if (q.options.root) j["root"] = true;
  if (q.options.timeout.count() > 0) {
    j["timeoutSeconds"] = static_cast<double>(q.options.timeout.count()) / 1000.0;
  }
  if (q.options.workingDir != ExecOptions{}.workingDir) j["workingDir"] = q.options.workingDir;
  if (!q.options.env.empty()) {
    json env = json::object();
    for (const auto& [k, v] : q.options.env)
      env[k] = v;
    j["env"] = env;
  }
  if (q.stdinData) {
    if (isValidUtf8(*q.stdinData))
      j["stdin"] = *q.stdinData;
    else
      j["stdinBase64"] = base64Encode(*q.stdinData);
  }
  if (r.base64Output) j["base64"] = true;
  return j;
}

namespace {

// How a command runs, read the same way for the buffered exec and the stream's start
// message: one set of rules for both (issue 7 found two that differed).
constexpr double kMaxExecTimeoutSeconds = 7 * 24 * 3600.0;

const std::map<std::string, Setter<ExecOptions>>& execOptionFields() {
  using O = ExecOptions;
  static const std::map<std::string, Setter<O>> kFields = {
      {"root", member(&O::root)},
      {"timeoutSeconds",
       [](const json& v, const std::string& f, O& o) -> Result<void> {
         double s = 0;
         AP_TRY(read(v, f, s));
         if (!(s >= 0 && s <= kMaxExecTimeoutSeconds))
           return validationError(f, "'timeoutSeconds' must be 0..604800 (7 days)");
         o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
         return {};
       }},
      {"workingDir",
       [](const json& v, const std::string& f, O& o) -> Result<void> {
         AP_TRY(read(v, f, o.workingDir));
         if (o.workingDir.empty() || o.workingDir.front() != '/')
           return validationError(f, "'workingDir' must be an absolute path");
         return {};
       }},
      {"env",
       [](const json& v, const std::string& f, O& o) -> Result<void> {
         AP_TRY(readEnv(v, f, o.env));
         for (const auto& [k, val] : o.env) {
           if (!isValidEnvKey(k))
             return validationError(f, "environment variable name '" + k + "' is invalid");
         }
         return {};
       }},
  };
  return kFields;
}

// Adds the option fields to a request's table, reaching the options through `options`.
template <typename T>
void addExecOptionFields(std::map<std::string, Setter<T>>& fields, ExecOptions& (*options)(T&)) {
  for (const auto& [name, setter] : execOptionFields()) {
    fields[name] = [setter = setter, options](const json& v, const std::string& f, T& t) {
      return setter(v, f, options(t));
    };
  }
}

Result<void> checkArgv(const std::vector<std::string>& argv) {
  if (argv.empty()) return validationError("argv", "'argv' must be a non-empty array of strings");
  return {};
}

}  // namespace

Result<ExecApiRequest> execApiRequestFromJson(const json& j) {
  using A = ExecApiRequest;
  static const std::map<std::string, Setter<A>> kFields = [] {
    std::map<std::string, Setter<A>> f = {
        {"argv",
         [](const json& v, const std::string& n, A& a) { return read(v, n, a.request.argv); }},
        {"stdin",
         [](const json& v, const std::string& n, A& a) -> Result<void> {
           std::string s;
           AP_TRY(read(v, n, s));
           a.request.stdinData = std::move(s);
           return {};
         }},
        {"stdinBase64",
         [](const json& v, const std::string& n, A& a) -> Result<void> {
           std::string s;
           AP_TRY(read(v, n, s));
           auto bytes = base64Decode(s);
           if (!bytes) return typeError(n, "base64");
           a.request.stdinData = std::move(*bytes);
           return {};
         }},
        {"base64",
         [](const json& v, const std::string& n, A& a) { return read(v, n, a.base64Output); }},
    };
    addExecOptionFields<A>(f, [](A& a) -> ExecOptions& { return a.request.options; });
    return f;
  }();
  A a;
  AP_TRY(applyFields(j, kFields, a, /*nullIsAbsent=*/true));
  AP_TRY(checkArgv(a.request.argv));
  if (j.contains("stdin") && j.contains("stdinBase64") && !j["stdin"].is_null() &&
      !j["stdinBase64"].is_null()) {
    return validationError("stdinBase64", "give stdin or stdinBase64, not both");
  }
  if (a.request.stdinData) a.request.options.attachStdin = true;
  return a;
}

Result<ExecStreamStart> execStreamStartFromJson(const json& j) {
  using S = ExecStreamStart;
  static const std::map<std::string, Setter<S>> kFields = [] {
    std::map<std::string, Setter<S>> f = {
        {"argv", [](const json& v, const std::string& n, S& s) { return read(v, n, s.argv); }},
        {"stdin", [](const json& v, const std::string& n,
                     S& s) { return read(v, n, s.options.attachStdin); }},
    };
    addExecOptionFields<S>(f, [](S& s) -> ExecOptions& { return s.options; });
    return f;
  }();
  S s;
  s.options.attachStdin = true;  // a stream is interactive unless told otherwise
  AP_TRY(applyFields(j, kFields, s, /*nullIsAbsent=*/true));
  AP_TRY(checkArgv(s.argv));
  return s;
}

// --- Audit, tmux, events ------------------------------------------------------------------

json toJson(const AuditEntry& e) {
  json detail = json::parse(e.detail, nullptr, false);
  if (detail.is_discarded()) detail = e.detail;
  json out{{"id", e.id},       {"atMs", e.atUnixMs}, {"sandboxId", e.sandboxId},
           {"actor", e.actor}, {"action", e.action}, {"detail", detail},
           {"ok", e.ok}};
  if (e.ledgerSeq > 0) out["seq"] = e.ledgerSeq;
  return out;
}

Result<AuditEntry> auditEntryFromJson(const json& j) {
  using A = AuditEntry;
  static const std::map<std::string, Setter<A>> kFields = {
      {"id", member(&A::id)},
      {"atMs", member(&A::atUnixMs)},
      {"sandboxId", member(&A::sandboxId)},
      {"actor", member(&A::actor)},
      {"action", member(&A::action)},
      {"detail",
       [](const json& v, const std::string&, A& a) -> Result<void> {
         a.detail = v.is_string() ? v.get<std::string>() : v.dump();
         return {};
       }},
      {"ok", member(&A::ok)},
      {"seq", member(&A::ledgerSeq)},
  };
  A a;
  AP_TRY(applyFields(j, kFields, a, /*nullIsAbsent=*/true));
  return a;
}

json toJson(const TmuxSessionInfo& s) {
  return json{{"name", s.name},
              {"windows", s.windows},
              {"createdAt", s.createdUnix},
              {"attached", s.attached}};
}

Result<TmuxSessionInfo> tmuxSessionFromJson(const json& j) {
  using T = TmuxSessionInfo;
  static const std::map<std::string, Setter<T>> kFields = {
      {"name", member(&T::name)},
      {"windows", member(&T::windows)},
      {"createdAt", member(&T::createdUnix)},
      {"attached", member(&T::attached)},
  };
  T t;
  AP_TRY(applyFields(j, kFields, t, /*nullIsAbsent=*/true));
  return t;
}

json toJson(const SandboxEvent& e) {
  return json{
      {"type", e.type}, {"sandboxId", e.sandboxId}, {"detail", e.detail}, {"atMs", e.atUnixMs}};
}

// --- Warm pool ----------------------------------------------------------------------------

json toJson(const WarmPoolInfo& p) {
  json buckets = json::array();
  for (std::size_t i = 0; i < p.claimBuckets.size(); ++i) {
    json le = i < std::size(kClaimBucketsMs) ? json(kClaimBucketsMs[i]) : json("+Inf");
    buckets.push_back({{"leMs", le}, {"count", p.claimBuckets[i]}});
  }
  json j{{"profile", p.configName},
         {"profileId", p.configId},
         {"provider", p.provider},
         {"instance", p.instance},
         {"min", p.min},
         {"max", p.max},
         {"target", p.target},
         {"idleTtlSeconds", p.idleTtlSeconds},
         {"warm", p.warm},
         {"starting", p.starting},
         {"claimed", p.claimed},
         {"hits", p.hits},
         {"misses", p.misses},
         {"claimMs", {{"buckets", buckets}, {"sum", p.claimSumMs}}},
         {"available", p.available}};
  if (!p.lastError.empty()) j["lastError"] = p.lastError;
  return j;
}

Result<PrewarmRequest> prewarmRequestFromJson(const json& j) {
  for (const auto& [k, v] : j.items()) {
    if (k != "count" && k != "profile") {
      return Error(ErrorCode::ValidationError, "unknown field '" + k + "'", {{"field", k}});
    }
  }
  PrewarmRequest r;
  auto c = j.find("count");
  if (c == j.end() || !c->is_number_integer() || c->get<std::int64_t>() < 0 ||
      c->get<std::int64_t>() > config_limits::kWarmPoolMax) {
    return Error(ErrorCode::ValidationError,
                 "count must be an integer 0.." + std::to_string(config_limits::kWarmPoolMax),
                 {{"field", "count"}});
  }
  r.count = c->get<int>();
  if (auto p = j.find("profile"); p != j.end() && !p->is_null()) {
    if (!p->is_string() || p->get<std::string>().size() > 128) {
      return Error(ErrorCode::ValidationError, "profile must be a profile id or name",
                   {{"field", "profile"}});
    }
    r.profile = p->get<std::string>();
  }
  return r;
}

}  // namespace agentpane
