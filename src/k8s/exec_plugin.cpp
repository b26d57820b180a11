#include "k8s/exec_plugin.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>
#include <ctime>

#include "common/base64.hpp"
#include "common/time.hpp"

namespace agentpane::k8s {

namespace {

using Json = nlohmann::json;

Error badCredential(const std::string& why) {
  return Error(ErrorCode::K8sAuthFailed, "exec plugin printed an invalid ExecCredential: " + why);
}

std::optional<std::string> stringField(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string firstLine(const std::string& s, std::size_t max) {
  std::string out = s.substr(0, max);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view s) {
  auto t = agentpane::parseRfc3339(s);  // common/time.hpp
  if (!t.ok()) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: about 1678..2262. Credentials that far out
  // are "never" and "long ago"; computing them would overflow.
  constexpr std::int64_t k1900 = -2208988800, k2200 = 7258118400;
  if (t->unixSeconds >= k2200) return std::chrono::system_clock::time_point::max();
  if (t->unixSeconds < k1900) return std::chrono::system_clock::time_point::min();
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(t->unixSeconds) + std::chrono::nanoseconds(t->nanos)));
}

Result<Credentials> parseExecCredential(std::string_view text, std::string_view apiVersion) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return badCredential("stdout is not JSON");
  if (!j.is_object()) return badCredential("not a JSON object");
  auto api = stringField(j, "apiVersion");
  if (!api || *api != apiVersion) {
    return badCredential("apiVersion is '" + api.value_or("?") + "', expected '" +
                         std::string(apiVersion) + "'");
  }
  auto kind = stringField(j, "kind");
  if (!kind || *kind != "ExecCredential") return badCredential("kind is not ExecCredential");
  auto st = j.find("status");
  if (st == j.end() || !st->is_object()) return badCredential("no status");
  auto token = stringField(*st, "token");
  auto cert = stringField(*st, "clientCertificateData");
  auto key = stringField(*st, "clientKeyData");
  auto exp = stringField(*st, "expirationTimestamp");
  if (!token || !cert || !key || !exp) return badCredential("a status field is not a string");
  if (cert->empty() != key->empty()) {
    return badCredential(cert->empty() ? "clientKeyData without clientCertificateData"
                                       : "clientCertificateData without clientKeyData");
  }
  if (token->empty() && cert->empty()) {
    return badCredential("status has neither a token nor clientCertificateData/clientKeyData");
  }
  Credentials c;
  c.bearerToken = *token;
  c.certPem = *cert;
  c.keyPem = *key;
  if (!exp->empty()) {
    auto tp = parseRfc3339(*exp);
    if (!tp) return badCredential("expirationTimestamp '" + *exp + "' is not RFC 3339");
    c.expiry = *tp;
  }
  return c;
}

std::string execInfoJson(const ExecPluginSpec& spec) {
  Json specJson = {{"interactive", false}};
  if (spec.cluster) {
    const auto& c = *spec.cluster;
    Json cluster = {{"server", c.server}};
    if (!c.tlsServerName.empty()) cluster["tls-server-name"] = c.tlsServerName;
    if (c.insecureSkipTlsVerify) cluster["insecure-skip-tls-verify"] = true;
    if (!c.caPem.empty()) cluster["certificate-authority-data"] = base64Encode(c.caPem);
    if (!c.configJson.empty()) {
      Json cfg = Json::parse(c.configJson, nullptr, false);
      if (!cfg.is_discarded()) cluster["config"] = std::move(cfg);
    }
    specJson["cluster"] = std::move(cluster);
  }
  Json info = {{"apiVersion", spec.apiVersion}, {"kind", "ExecCredential"}, {"spec", specJson}};
  return info.dump();
}

ExecPluginCredentials::ExecPluginCredentials(ExecPluginSpec spec, ExecPluginOptions options)
    : spec_(std::move(spec)), options_(std::move(options)) {}

Result<Credentials> ExecPluginCredentials::current() {
  std::lock_guard lock(mu_);
  auto now = options_.clock ? options_.clock() : std::chrono::system_clock::now();
  if (cached_ && (!cached_->expiry || now < *cached_->expiry)) return *cached_;
  cached_.reset();
  auto c = runLocked();
  if (c.ok()) cached_ = c.value();
  return c;
}

bool ExecPluginCredentials::invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
  return true;
}

int ExecPluginCredentials::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

Result<Credentials> ExecPluginCredentials::runLocked() {
  ++runs_;
  ProcessSpec p;
  p.program = spec_.command;
  p.args = spec_.args;
  p.timeout = options_.timeout;
  p.maxStdout = options_.maxOutputBytes;
  std::vector<std::string> base =
      options_.baseEnvironment ? options_.baseEnvironment() : hostEnvironment();
  // The kubeconfig's env entries and KUBERNETES_EXEC_INFO replace host variables of the same
  // name; every other host variable is kept.
  std::vector<std::pair<std::string, std::string>> extra = spec_.env;
  extra.emplace_back("KUBERNETES_EXEC_INFO", execInfoJson(spec_));
  for (const auto& entry : base) {
    auto eq = entry.find('=');
    std::string name = entry.substr(0, eq);
    bool overridden = false;
    for (const auto& [k, v] : extra)
      overridden = overridden || k == name;
    if (!overridden) p.env.push_back(entry);
  }
  for (const auto& [k, v] : extra)
    p.env.push_back(k + "=" + v);

  std::string who = spec_.origin.describe() + ": exec plugin '" + spec_.command + "'";
  std::string hint = spec_.installHint.empty() ? "" : " (" + spec_.installHint + ")";
  std::map<std::string, std::string> details = {
      {"file", spec_.origin.file}, {"field", spec_.origin.field}, {"command", spec_.command}};
  auto outcome = runProcess(p);
  if (!outcome.ok()) {
    return Error(ErrorCode::K8sAuthFailed, who + ": " + outcome.error().message + hint, details);
  }
  const auto& o = outcome.value();
  if (o.timedOut) {
    return Error(ErrorCode::K8sAuthFailed,
                 who + " did not finish within " + std::to_string(options_.timeout.count()) +
                     " ms and was killed",
                 details);
  }
  if (o.outputTooLarge) {
    return Error(ErrorCode::K8sAuthFailed,
                 who + " printed more than " + std::to_string(options_.maxOutputBytes) +
                     " bytes and was killed",
                 details);
  }
  if (o.signal != 0 || o.exitCode != 0) {
    std::string status = o.signal != 0 ? "was killed by signal " + std::to_string(o.signal)
                                       : "exited with code " + std::to_string(o.exitCode);
    std::string err = firstLine(o.err, 512);
    return Error(ErrorCode::K8sAuthFailed,
                 who + " " + status + (err.empty() ? "" : ": " + err) + hint, details);
  }
  auto cred = parseExecCredential(o.out, spec_.apiVersion);
  if (!cred.ok()) {
    return Error(ErrorCode::K8sAuthFailed, who + ": " + cred.error().message, details);
  }
  return cred;
}

}  // namespace agentpane::k8s
