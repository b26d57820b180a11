#include "server/auth.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace agentpane::server {
namespace fs = std::filesystem;

namespace {

Error ioError(const std::string& what, const fs::path& p, int err) {
  return {ErrorCode::Internal, what + " " + p.string() + ": " + std::strerror(err)};
}

bool isHexToken(const std::string& s) {
  return s.size() >= 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::string randomHex(std::size_t n) {
  std::vector<unsigned char> bytes(n);
  if (RAND_bytes(bytes.data(), static_cast<int>(n)) != 1) {
    // Without a working CSPRNG there is no safe token; this is a start-up failure.
    throw std::runtime_error("RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

Result<std::string> loadOrCreateToken(const fs::path& home) {
  std::error_code ec;
  if (!fs::exists(home, ec)) {
    fs::create_directories(home.parent_path().empty() ? home : home.parent_path(), ec);
    if (::mkdir(home.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("cannot create", home, errno);
  }
  if (!fs::is_directory(home, ec)) {
    return Error(ErrorCode::Internal, "home " + home.string() + " is not a directory");
  }
  const fs::path tokenPath = home / "token";

  int fd = ::open(tokenPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string token = randomHex(32);
    std::string line = token + "\n";
    ssize_t written = ::write(fd, line.data(), line.size());
    int err = errno;
    ::close(fd);
    if (written != static_cast<ssize_t>(line.size())) {
      ::unlink(tokenPath.c_str());
      return ioError("cannot write", tokenPath, err);
    }
    return token;
  }
  if (errno != EEXIST) return ioError("cannot create", tokenPath, errno);

  struct stat st {};
  if (::stat(tokenPath.c_str(), &st) != 0) return ioError("cannot stat", tokenPath, errno);
  if ((st.st_mode & 077) != 0 && ::chmod(tokenPath.c_str(), 0600) != 0) {
    return ioError("cannot narrow the mode of", tokenPath, errno);
  }
  std::ifstream in(tokenPath);
  if (!in) return ioError("cannot read", tokenPath, errno);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (!isHexToken(token)) {
    return Error(ErrorCode::Internal, "token file " + tokenPath.string() +
                                          " does not hold a token (delete it to make a new one)");
  }
  return token;
}

Result<std::string> loadServerToken(const fs::path& home, const fs::path& tokenFile) {
  if (tokenFile.empty()) return loadOrCreateToken(home);
  std::ifstream in(tokenFile);
  if (!in) return ioError("cannot read", tokenFile, errno);
  std::string token;
  std::getline(in, token, '\0');
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (!isHexToken(token)) {
    return Error(ErrorCode::ValidationError,
                 "token file " + tokenFile.string() +
                     " (AGENTPANE_TOKEN_FILE) does not hold a token: at least 32 lower-case hex "
                     "digits, e.g. from `openssl rand -hex 32`");
  }
  return token;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string_view> bearerToken(std::string_view authorization) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() <= kPrefix.size()) return std::nullopt;
  // The scheme is case-insensitive (RFC 7235).
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char k = kPrefix[i];
    if (k >= 'A' && k <= 'Z') k = static_cast<char>(k - 'A' + 'a');
    if (c != k) return std::nullopt;
  }
  auto token = authorization.substr(kPrefix.size());
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ')
    token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

std::optional<std::string_view> cookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    auto part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    while (!part.empty() && part.front() == ' ')
      part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    if (part.substr(0, eq) == name) {
      auto value = part.substr(eq + 1);
      while (!value.empty() && value.back() == ' ')
        value.remove_suffix(1);
      return value;
    }
  }
  return std::nullopt;
}

bool originAllowed(std::string_view origin, std::string_view host) {
  if (origin.empty()) return true;
  if (host.empty()) return false;
  std::string own = "http://";
  own += host;
  return origin == own;
}

SessionStore::SessionStore(std::chrono::seconds ttl, Now now, std::size_t maxSessions)
    : ttl_(ttl), now_(std::move(now)), maxSessions_(maxSessions) {}

std::string SessionStore::create() {
  std::string id = randomHex(32);
  std::lock_guard lock(mu_);
  auto now = now_();
  pruneLocked(now);
  if (expiry_.size() >= maxSessions_) {
    // Bounded memory: the session closest to expiry makes room.
    auto oldest =
        std::min_element(expiry_.begin(), expiry_.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    expiry_.erase(oldest);
  }
  expiry_[id] = now + ttl_;
  return id;
}

bool SessionStore::valid(std::string_view id) {
  if (id.empty()) return false;
  std::lock_guard lock(mu_);
  auto it = expiry_.find(std::string(id));
  if (it == expiry_.end()) return false;
  if (it->second <= now_()) {
    expiry_.erase(it);
    return false;
  }
  return true;
}

void SessionStore::remove(std::string_view id) {
  std::lock_guard lock(mu_);
  expiry_.erase(std::string(id));
}

std::size_t SessionStore::size() {
  std::lock_guard lock(mu_);
  pruneLocked(now_());
  return expiry_.size();
}

void SessionStore::pruneLocked(Clock::time_point now) {
  for (auto it = expiry_.begin(); it != expiry_.end();) {
    it = it->second <= now ? expiry_.erase(it) : std::next(it);
  }
}

AuthFailureThrottle::AuthFailureThrottle(int perSecond, Now now)
    : perSecond_(perSecond), now_(std::move(now)) {}

std::optional<std::uint64_t> AuthFailureThrottle::admit() {
  std::lock_guard lk(mu_);
  const auto t = now_();
  if (t - windowStart_ >= std::chrono::seconds(1)) {
    windowStart_ = t;
    inWindow_ = 0;
  }
  if (inWindow_ >= perSecond_) {
    ++suppressed_;
    return std::nullopt;
  }
  ++inWindow_;
  return std::exchange(suppressed_, 0);
}

}  // namespace agentpane::server
