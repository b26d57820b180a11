// Exec credential plugins (client.authentication.k8s.io/v1 and v1beta1), as client-go's
// plugin/pkg/client/auth/exec: run the kubeconfig's command with its args and env, hand it
// KUBERNETES_EXEC_INFO, read an ExecCredential from its stdout, cache it until its
// expirationTimestamp, and run it again after invalidate() (a 401).
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "k8s/credentials.hpp"
#include "k8s/exec_plugin_process.hpp"

namespace agentpane::k8s {

inline constexpr std::string_view kExecApiV1 = "client.authentication.k8s.io/v1";
inline constexpr std::string_view kExecApiV1beta1 = "client.authentication.k8s.io/v1beta1";

// What spec.cluster tells a plugin when the kubeconfig sets provideClusterInfo.
struct ExecClusterInfo {
  std::string server;
  std::string tlsServerName;
  bool insecureSkipTlsVerify = false;
  std::string caPem;       // sent base64-encoded as certificate-authority-data
  std::string configJson;  // the cluster's client.authentication.k8s.io/exec extension, or ""
};

struct ExecPluginSpec {
  std::string apiVersion;  // kExecApiV1 or kExecApiV1beta1 (checked by the loader)
  std::string command;     // as resolved by the loader (relative with '/' → absolute)
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to (override) the host env
  std::string installHint;
  std::optional<ExecClusterInfo> cluster;  // set when provideClusterInfo is true
  CredentialOrigin origin;                 // "kubeconfig F: users[1].user.exec"
};

struct ExecPluginOptions {
  WallClock clock;  // null: the system clock
  std::chrono::milliseconds timeout{30000};
  std::size_t maxOutputBytes = 1024 * 1024;
  // null: the server's own environment. Tests pass a fixed one.
  std::function<std::vector<std::string>()> baseEnvironment;
};

// The ExecCredential a plugin printed, parsed and checked: the same apiVersion as asked, kind
// ExecCredential, and status with a token or a certificate and key (a key without a
// certificate, or the reverse, is an error). Pure; exposed for tests and fuzzing.
Result<Credentials> parseExecCredential(std::string_view json, std::string_view apiVersion);

// RFC 3339 ("2026-12-01T10:00:00Z", fractions and offsets allowed) to a time point.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

// The KUBERNETES_EXEC_INFO value for a spec.
std::string execInfoJson(const ExecPluginSpec& spec);

// MUST be thread-safe: one plugin run at a time; callers that arrive during a run wait for
// it and share its result. Failures (cannot start, non-zero exit, timeout, output too large,
// bad ExecCredential) are K8sAuthFailed with the command, the exit status, the start of its
// stderr and the install hint; a failure is not cached (the next current() runs it again).
class ExecPluginCredentials final : public CredentialSource {
 public:
  ExecPluginCredentials(ExecPluginSpec spec, ExecPluginOptions options);

  // agentpane::k8s::CredentialSource
  // Cached credentials while now < expirationTimestamp (forever without one), else a run.
  Result<Credentials> current() override;
  // Forgets the cache: the next current() runs the plugin once, however many invalidate()
  // calls came before it. Always true.
  bool invalidate() override;
  [[nodiscard]] std::string kind() const override { return "exec"; }

  [[nodiscard]] int runs() const;  // how many times the plugin was started

 private:
  Result<Credentials> runLocked();

  const ExecPluginSpec spec_;
  const ExecPluginOptions options_;
  mutable std::mutex mu_;
  std::optional<Credentials> cached_;
  int runs_ = 0;
};

}  // namespace agentpane::k8s
