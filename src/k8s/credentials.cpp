#include "k8s/credentials.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace agentpane::k8s {

namespace {

std::string trimSpace(std::string s) {
  auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && isSpace(s.back()))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && isSpace(s[i]))
    ++i;
  return s.substr(i);
}

class Anonymous final : public CredentialSource {
 public:
  Result<Credentials> current() override { return Credentials{}; }
  bool invalidate() override { return false; }
  [[nodiscard]] std::string kind() const override { return "none"; }
};

}  // namespace

WallClock systemWallClock() {
  return [] { return std::chrono::system_clock::now(); };
}

std::string CredentialOrigin::describe() const {
  if (field.empty()) return file;
  if (file.empty()) return field;
  return "kubeconfig " + file + ": " + field;
}

Result<std::string> readSmallFile(const std::string& path, std::size_t maxBytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(ErrorCode::NotFound, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > maxBytes) {
      return Error(ErrorCode::ValidationError,
                   path + " is larger than " + std::to_string(maxBytes) + " bytes");
    }
  }
  if (in.bad()) return Error(ErrorCode::NotFound, "cannot read " + path);
  return data;
}

FileCredentials::FileCredentials(FileCredentialSpec spec) : spec_(std::move(spec)) {}

bool FileCredentials::hasFiles() const {
  return (spec_.token.empty() && !spec_.tokenFile.empty()) ||
         (spec_.certPem.empty() && !spec_.certFile.empty()) ||
         (spec_.keyPem.empty() && !spec_.keyFile.empty());
}

Result<Credentials> FileCredentials::readLocked() {
  ++reads_;
  Credentials c;
  auto fail = [&](const std::string& field, const Error& e) {
    return Error(ErrorCode::K8sAuthFailed, spec_.origin.describe() + "." + field + ": " + e.message,
                 {{"file", spec_.origin.file}, {"field", spec_.origin.field + "." + field}});
  };
  if (!spec_.token.empty()) {
    c.bearerToken = spec_.token;
  } else if (!spec_.tokenFile.empty()) {
    auto t = readSmallFile(spec_.tokenFile);
    if (!t.ok()) return fail("tokenFile", t.error());
    c.bearerToken = trimSpace(std::move(t.value()));
    if (c.bearerToken.empty()) {
      return fail("tokenFile", Error(ErrorCode::K8sAuthFailed, spec_.tokenFile + " is empty"));
    }
  }
  if (!spec_.certPem.empty()) {
    c.certPem = spec_.certPem;
  } else if (!spec_.certFile.empty()) {
    auto t = readSmallFile(spec_.certFile);
    if (!t.ok()) return fail("client-certificate", t.error());
    c.certPem = std::move(t.value());
  }
  if (!spec_.keyPem.empty()) {
    c.keyPem = spec_.keyPem;
  } else if (!spec_.keyFile.empty()) {
    auto t = readSmallFile(spec_.keyFile);
    if (!t.ok()) return fail("client-key", t.error());
    c.keyPem = std::move(t.value());
  }
  return c;
}

Result<Credentials> FileCredentials::current() {
  std::lock_guard lock(mu_);
  auto now = spec_.clock ? spec_.clock() : std::chrono::system_clock::now();
  if (fresh_ && (!hasFiles() || now - readAt_ < spec_.rereadPeriod)) return cached_;
  auto c = readLocked();
  if (!c.ok()) {
    fresh_ = false;
    return c;
  }
  cached_ = std::move(c.value());
  readAt_ = now;
  fresh_ = true;
  return cached_;
}

bool FileCredentials::invalidate() {
  std::lock_guard lock(mu_);
  if (!hasFiles()) return false;
  fresh_ = false;
  return true;
}

int FileCredentials::reads() const {
  std::lock_guard lock(mu_);
  return reads_;
}

std::shared_ptr<CredentialSource> anonymousCredentials() {
  return std::make_shared<Anonymous>();
}

}  // namespace agentpane::k8s
