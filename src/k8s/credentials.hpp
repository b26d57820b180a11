// Credential sources other than exec plugins (exec_plugin.hpp): static token or client
// certificate, token and certificate files that are re-read (tokenFile, the in-cluster
// service-account token that rotates), and anonymous.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "k8s/rest_config.hpp"

namespace agentpane::k8s {

// Injected wall clock (expiry of exec credentials, re-read period of token files).
using WallClock = std::function<std::chrono::system_clock::time_point()>;
WallClock systemWallClock();

// Where a credential came from, for messages: "kubeconfig /a/b: users[1].user".
struct CredentialOrigin {
  std::string file;
  std::string field;
  [[nodiscard]] std::string describe() const;
};

// The parts of a kubeconfig user (or the in-cluster service account) that come from values
// or files. Inline values win over files: `token` beats `tokenFile`, `*-data` beats the file.
struct FileCredentialSpec {
  std::string
      kind;  // CredentialSource::kind(): "token", "token-file", "client-certificate", "in-cluster"
  std::string token;
  std::string tokenFile;  // absolute
  std::string certPem;
  std::string keyPem;
  std::string certFile;  // absolute
  std::string keyFile;
  CredentialOrigin origin;
  // Files are re-read when older than this (the service-account token rotates; client-go
  // re-reads about once a minute) and after invalidate().
  std::chrono::seconds rereadPeriod{60};
  WallClock clock;  // null: the system clock
};

// Tokens and certificates from values and files. Files are read on the first current(), again
// once rereadPeriod has passed, and after invalidate(). A file that cannot be read, or an
// empty token file, is K8sAuthFailed naming the file and the field.
// MUST be thread-safe (CredentialSource).
class FileCredentials final : public CredentialSource {
 public:
  explicit FileCredentials(FileCredentialSpec spec);

  // agentpane::k8s::CredentialSource
  Result<Credentials> current() override;
  // true when some part comes from a file (a rotated file may hold new credentials),
  // false for values only: retrying would send the same thing.
  bool invalidate() override;
  [[nodiscard]] std::string kind() const override { return spec_.kind; }

  // How many times the files were read (tests: the re-read period and invalidate()).
  [[nodiscard]] int reads() const;

 private:
  Result<Credentials> readLocked();
  [[nodiscard]] bool hasFiles() const;

  const FileCredentialSpec spec_;
  mutable std::mutex mu_;
  bool fresh_ = false;
  std::chrono::system_clock::time_point readAt_{};
  Credentials cached_;
  int reads_ = 0;
};

// No credentials at all (kind "none"); invalidate() is false.
std::shared_ptr<CredentialSource> anonymousCredentials();

// Reads a whole small file (credentials, certificates): at most maxBytes.
Result<std::string> readSmallFile(const std::string& path, std::size_t maxBytes = 1024 * 1024);

}  // namespace agentpane::k8s
