// Who may call the server: the bearer token in the home directory, browser sessions made
// from it, and the same-origin rule for browsers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agentpane/result.hpp"

namespace agentpane::server {

// Creates `home` (0700) if missing and returns the token stored in `home/token`, creating it
// (32 random bytes as hex, mode 0600) on first start. A token file readable by others is
// narrowed to 0600.
Result<std::string> loadOrCreateToken(const std::filesystem::path& home);

// The server's token: from `tokenFile` when it is set (a mounted Kubernetes Secret; read as
// is, never created or re-moded; it MUST hold at least 32 lower-case hex digits), else
// loadOrCreateToken(home). serve takes tokenFile from AGENTPANE_TOKEN_FILE.
Result<std::string> loadServerToken(const std::filesystem::path& home,
                                    const std::filesystem::path& tokenFile);

// `n` random bytes from OpenSSL, hex encoded.
std::string randomHex(std::size_t n);

// Constant-time equality (CRYPTO_memcmp); length differences are not secret.
bool constantTimeEquals(std::string_view a, std::string_view b);

// "Bearer <token>" -> token; nullopt when the header is of another form.
std::optional<std::string_view> bearerToken(std::string_view authorization);

// The value of cookie `name` in a Cookie header.
std::optional<std::string_view> cookieValue(std::string_view cookieHeader, std::string_view name);

// A browser request is same-origin when its Origin is exactly "http://<Host>". Requests
// without an Origin (CLI, curl) pass.
bool originAllowed(std::string_view origin, std::string_view host);

inline constexpr const char* kSessionCookie = "agentpane_session";

// Browser sessions created by POST /api/session, kept in memory only (a restart logs the
// page out). Thread-safe.
class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit SessionStore(
      std::chrono::seconds ttl, Now now = [] { return Clock::now(); },
      std::size_t maxSessions = 1024);

  // A new session id valid for the ttl.
  std::string create();
  // True while `id` exists and has not expired.
  bool valid(std::string_view id);
  void remove(std::string_view id);
  std::size_t size();
  [[nodiscard]] std::chrono::seconds ttl() const { return ttl_; }

 private:
  void pruneLocked(Clock::time_point now);

  std::chrono::seconds ttl_;
  Now now_;
  std::size_t maxSessions_;
  std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> expiry_;
};

// How many auth failures reach the audit ledger: at most `perSecond` a second, so that a
// flood of wrong tokens cannot become a flood of synced writes. Thread-safe.
class AuthFailureThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit AuthFailureThrottle(
      int perSecond = 20, Now now = [] { return Clock::now(); });

  // nullopt: this failure is only counted. Otherwise it is recorded, and the value is the
  // number of failures counted (not recorded) since the last recorded one.
  std::optional<std::uint64_t> admit();

 private:
  int perSecond_;
  Now now_;
  std::mutex mu_;
  Clock::time_point windowStart_{};
  int inWindow_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace agentpane::server
