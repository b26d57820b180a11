// Small digests shared by every area (ids derived from paths, instance scopes).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace agentpane {

// Lower-case hex SHA-256 of data (64 characters).
std::string sha256Hex(std::string_view data);

// SHA-256 fed piece by piece (an exec's output as it streams past).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  // Lower-case hex of everything fed so far; the hasher can go on after it.
  std::string hex() const;

 private:
  void* ctx_;  // EVP_MD_CTX
};

// `bytes` random bytes (OpenSSL's generator) as lower-case hex: exec markers, ids.
std::string randomHex(std::size_t bytes);

}  // namespace agentpane
