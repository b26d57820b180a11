#include "service/validation.hpp"

#include "common/egress.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "service/sandbox_service.hpp"

namespace agentpane {
namespace {

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool isAlnum(char c) {
  return isLowerAlnum(c) || (c >= 'A' && c <= 'Z');
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool hasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

}  // namespace

Error validationError(const std::string& field, const std::string& message) {
  return Error(ErrorCode::ValidationError, message, {{"field", field}});
}

bool isValidConfigName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return isAlnum(c) || c == ' ' || c == '_' || c == '.' || c == '-';
  });
}

bool isValidEnvKey(std::string_view key) {
  if (key.empty() || key.size() > 256) return false;
  if (isDigit(key.front())) return false;
  return std::all_of(key.begin(), key.end(), [](char c) { return isAlnum(c) || c == '_'; });
}

bool isValidDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isLowerAlnum(c) || c == '-'; });
}

bool isValidDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  for (;;) {
    auto dot = s.find('.', start);
    if (!isValidDns1123Label(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool isValidHostname(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);  // fully qualified form
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  std::string_view last;
  for (;;) {
    auto dot = s.find('.', start);
    auto label = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return isAlnum(c) || c == '-'; })) {
      return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // "300.1.1.1" is a broken address, not a host name.
  return !std::all_of(last.begin(), last.end(), isDigit);
}

bool isValidImageRef(std::string_view s) {
  if (s.empty() || s.size() > 512 || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

bool isValidEgressHost(std::string_view entry) {
  return egress::parseEntry(entry).ok();
}

Result<void> validateConfig(const SandboxConfig& c) {
  namespace L = config_limits;
  auto range = [](const std::string& field, auto v, auto lo, auto hi,
                  const char* unit) -> Result<void> {
    if (!(v >= lo && v <= hi)) {
      std::string lo_s = std::to_string(lo), hi_s = std::to_string(hi);
      if constexpr (std::is_floating_point_v<decltype(lo)>) {
        // "0.500000" reads badly in an error message.
        auto trim = [](std::string s) {
          while (!s.empty() && s.back() == '0')
            s.pop_back();
          if (!s.empty() && s.back() == '.') s.pop_back();
          return s;
        };
        lo_s = trim(lo_s);
        hi_s = trim(hi_s);
      }
      return validationError(field, field + " must be between " + lo_s + " and " + hi_s + unit);
    }
    return {};
  };
  if (!isValidConfigName(c.name)) {
    return validationError("name",
                           "name must be 1-64 characters of letters, digits, space, '_', '.', '-'");
  }
  if (c.description.size() > 1024 || hasControlChars(c.description)) {
    return validationError("description", "description must be at most 1024 printable characters");
  }
  if (!isValidImageRef(c.image)) {
    return validationError("image", "image must be a non-empty image reference without spaces");
  }
  AP_TRY(range("memoryMb", c.memoryMb, L::kMemoryMbMin, L::kMemoryMbMax, " MB"));
  if (!std::isfinite(c.cpu)) return validationError("cpu", "cpu must be a number");
  AP_TRY(range("cpu", c.cpu, L::kCpuMin, L::kCpuMax, " cores"));
  AP_TRY(range("pidsLimit", c.pidsLimit, L::kPidsMin, L::kPidsMax, ""));
  AP_TRY(range("timeoutMinutes", c.timeoutMinutes, L::kTimeoutMinutesMin, L::kTimeoutMinutesMax,
               " minutes"));
  if (c.kubeConfigPath.size() > 4096 || hasControlChars(c.kubeConfigPath)) {
    return validationError("kubeConfigPath", "kubeConfigPath must be a path");
  }
  if (c.kubeContext.size() > 253 || hasControlChars(c.kubeContext)) {
    return validationError("kubeContext", "kubeContext must be at most 253 printable characters");
  }
  if (!isValidDns1123Label(c.kubeNamespace)) {
    return validationError(
        "kubeNamespace",
        "kubeNamespace must be a DNS-1123 label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, max 63)");
  }
  if (c.allowedEgressHosts.size() > L::kMaxEgressHosts) {
    return validationError("allowedEgressHosts", "at most 256 allowed egress hosts");
  }
  if (auto parsed = egress::parseAllowlist(c.allowedEgressHosts, "allowedEgressHosts");
      !parsed.ok()) {
    return parsed.takeError();
  }

  if (c.workspaceVolume != "pvc" && c.workspaceVolume != "emptyDir" &&
      c.workspaceVolume != "hostPath") {
    return validationError("workspaceVolume", "workspaceVolume must be pvc, emptyDir or hostPath");
  }
  if (!c.storageClass.empty() && !isValidDns1123Subdomain(c.storageClass)) {
    return validationError("storageClass", "storageClass must be empty or a DNS-1123 subdomain");
  }
  AP_TRY(range("workspaceSizeGi", c.workspaceSizeGi, L::kWorkspaceSizeGiMin, L::kWorkspaceSizeGiMax,
               " Gi"));
  AP_TRY(range("startupTimeoutSeconds", c.startupTimeoutSeconds, L::kStartupTimeoutMin,
               L::kStartupTimeoutMax, " seconds"));
  AP_TRY(range("warmPoolMin", c.warmPoolMin, 0, L::kWarmPoolMax, " sandboxes"));
  AP_TRY(range("warmPoolMax", c.warmPoolMax, 0, L::kWarmPoolMax, " sandboxes"));
  if (c.warmPoolMax != 0 && c.warmPoolMax < c.warmPoolMin) {
    return validationError("warmPoolMax",
                           "warmPoolMax must be 0 (the same as warmPoolMin) or at "
                           "least warmPoolMin");
  }
  AP_TRY(range("warmPoolIdleTtlSeconds", c.warmPoolIdleTtlSeconds, L::kWarmPoolTtlMin,
               L::kWarmPoolTtlMax, " seconds"));
  return {};
}

}  // namespace agentpane
