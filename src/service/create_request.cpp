// Checks of a CreateSandboxRequest before anything is made: the project path, ids, resource
// overrides, environment and egress entries.
#include <filesystem>

#include "common/egress.hpp"
#include "common/hash.hpp"
#include "service/sandbox_service.hpp"
#include "service/service_impl.hpp"
#include "service/validation.hpp"

namespace agentpane {

Result<ValidatedCreate> validateCreateRequest(const CreateSandboxRequest& req,
                                              const PathPolicy& policy) {
  namespace fs = std::filesystem;
  ValidatedCreate v;
  // The policy resolves symlinks: what is checked is what the engine will mount.
  auto canon = policy.check(req.projectPath, "projectPath");
  if (!canon.ok()) return canon.takeError();
  std::error_code ec;
  if (!fs::is_directory(canon.value(), ec)) {
    return Error(ErrorCode::SandboxProjectPathInvalid,
                 "projectPath " + req.projectPath + " is not an existing directory",
                 {{"field", "projectPath"}});
  }
  v.projectPath = canon->string();
  if (req.projectId.empty()) {
    v.projectId = "p-" + sha256Hex(v.projectPath).substr(0, 12);
  } else {
    if (!isValidLabelValue(req.projectId)) {
      return validationError(
          "projectId",
          "projectId must be 1-63 letters, digits, '-', '_' or '.', starting and "
          "ending with a letter or digit");
    }
    v.projectId = req.projectId;
  }
  if (!isValidLabelValue(req.agentId)) {
    return validationError(
        "agentId",
        "agentId must be at most 63 letters, digits, '-', '_' or '.', starting and "
        "ending with a letter or digit");
  }
  if (req.configId && req.configId->empty())
    return validationError("configId", "configId is empty");
  if (req.image && !isValidImageRef(*req.image)) {
    return validationError("image", "image must be a non-empty image reference without spaces");
  }
  namespace L = config_limits;
  if (req.memoryMb && (*req.memoryMb < L::kMemoryMbMin || *req.memoryMb > L::kMemoryMbMax)) {
    return validationError("memoryMb", "memoryMb must be between 512 and 32768 MB");
  }
  if (req.cpu && !(*req.cpu >= L::kCpuMin && *req.cpu <= L::kCpuMax)) {
    return validationError("cpu", "cpu must be between 0.5 and 16 cores");
  }
  if (req.env.size() > 256) return validationError("env", "at most 256 environment variables");
  for (const auto& [k, val] : req.env) {
    if (!isValidEnvKey(k)) {
      return Error(ErrorCode::ValidationError,
                   "environment variable name '" + k + "' must match [A-Za-z_][A-Za-z0-9_]*",
                   {{"field", "env"}, {"key", k}});
    }
    if (val.find('\0') != std::string::npos || val.size() > 32768) {
      return Error(ErrorCode::ValidationError,
                   "environment variable " + k + " has an invalid value",
                   {{"field", "env"}, {"key", k}});
    }
  }
  if (auto parsed = egress::parseAllowlist(req.allowEgress, "allowEgress"); !parsed.ok()) {
    return parsed.takeError();
  }
  return v;
}

}  // namespace agentpane
