// JSON forms of the service's values (camelCase fields), for the server and the CLI.
//
// Parsing is strict: a field the type does not have is a ValidationError naming it
// (details["field"]), and so is a field of the wrong type. Parsers check types, not ranges:
// validateConfig() and the service check values. A JSON null counts as "absent" for
// optional fields, except in a PATCH where it is refused.
//
// Times: createdAt / updatedAt / lastActivityAt are Unix seconds; atMs is Unix milliseconds.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agentpane/exec.hpp"
#include "agentpane/result.hpp"
#include "agentpane/tmux.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane {

bool isValidUtf8(std::string_view s);

// --- SandboxConfig ------------------------------------------------------------------------
nlohmann::json toJson(const SandboxConfig& c);
// Every field accepted (reads what toJson wrote); missing fields keep SandboxConfig{} values.
Result<SandboxConfig> configFromJson(const nlohmann::json& j);
// A POST body: "name" required; id, createdAt and updatedAt are the server's and refused.
Result<SandboxConfig> configFromCreateJson(const nlohmann::json& j);
// A PATCH body applied to `base`: present fields replace; id, createdAt and updatedAt are
// not patchable (ValidationError naming them). The result is not range-checked here.
Result<SandboxConfig> applyConfigPatch(const SandboxConfig& base, const nlohmann::json& patch);

// --- SandboxRecord ------------------------------------------------------------------------
// {id, status, provider, state, projectId, agentId, projectPath, image, containerId, podName,
//  podNamespace, podUid, configId, createdAt, lastActivityAt, error}
nlohmann::json toJson(const SandboxRecord& r);
// A sandbox's "egress": {allowlist, rules, hosts:[{host, addresses, error?}], unresolved,
// enforced} — what its provider last enforced (unresolved names are listed, never dropped).
nlohmann::json toJson(const EgressStatus& st);
nlohmann::json egressJsonOf(const SandboxRecord& r);
Result<SandboxRecord> sandboxRecordFromJson(const nlohmann::json& j);
// The record, plus "fallbackReason" when the sandbox went to Docker instead of Kubernetes.
nlohmann::json toJson(const CreateSandboxOutcome& o);
Result<CreateSandboxOutcome> createOutcomeFromJson(const nlohmann::json& j);

// --- CreateSandboxRequest -----------------------------------------------------------------
// {projectPath (required), projectId, agentId, configId, provider, image, memoryMb, cpu,
//  env: {KEY: value}, allowEgress: [..]}
nlohmann::json toJson(const CreateSandboxRequest& r);
Result<CreateSandboxRequest> createSandboxRequestFromJson(const nlohmann::json& j);

// --- Exec ---------------------------------------------------------------------------------
// {exitCode, stdout, stderr}; when base64 is asked for, or either stream is not valid UTF-8,
// both streams are sent as {stdoutBase64, stderrBase64} instead (byte-exact).
nlohmann::json toJson(const ExecResult& r, bool base64 = false);
Result<ExecResult> execResultFromJson(const nlohmann::json& j);

// The body of POST /api/sandboxes/:id/exec:
// {argv (required, non-empty), root, timeoutSeconds, workingDir, env: {KEY: value},
//  stdin | stdinBase64, base64 (answer in base64)}
struct ExecApiRequest {
  ExecRequest request;
  bool base64Output = false;
};
nlohmann::json toJson(const ExecApiRequest& r);
Result<ExecApiRequest> execApiRequestFromJson(const nlohmann::json& j);

// The first message of GET /api/sandboxes/:id/exec/stream. The fields that say how the
// command runs (root, timeoutSeconds 0..7 days, workingDir absolute, env) are read by the
// same rules as the buffered exec's; only "stdin" differs: here a bool that attaches stdin
// (default true: a stream is interactive), there the bytes themselves.
struct ExecStreamStart {
  std::vector<std::string> argv;
  ExecOptions options;
};
Result<ExecStreamStart> execStreamStartFromJson(const nlohmann::json& j);

// --- Audit, tmux, events ------------------------------------------------------------------
// {id, atMs, sandboxId, actor, action, detail (the JSON detail, or a string), ok}
nlohmann::json toJson(const AuditEntry& e);
Result<AuditEntry> auditEntryFromJson(const nlohmann::json& j);

// {name, windows, createdAt, attached}
nlohmann::json toJson(const TmuxSessionInfo& s);
Result<TmuxSessionInfo> tmuxSessionFromJson(const nlohmann::json& j);

// {type, sandboxId, detail, atMs}
nlohmann::json toJson(const SandboxEvent& e);

// --- Warm pool ----------------------------------------------------------------------------
// {profile, profileId, provider, instance, min, max, target, idleTtlSeconds, warm, starting,
//  claimed, hits, misses, claimMs: {buckets: [{le, count}], sum}, available, lastError}
nlohmann::json toJson(const WarmPoolInfo& p);
// The body of POST /api/sandbox/pool/prewarm: {count (0..50, required), profile (id or name;
// default: the default profile)}.
struct PrewarmRequest {
  int count = 0;
  std::string profile;
};
Result<PrewarmRequest> prewarmRequestFromJson(const nlohmann::json& j);

}  // namespace agentpane
