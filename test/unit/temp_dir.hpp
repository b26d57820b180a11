// TempDir: a fresh directory under the system temp dir, removed with everything in it when
// the object goes. Shared by every test suite that needs scratch space.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace agentpane::testing {

class TempDir {
 public:
  // The canonical path, so that tests comparing paths with what the code resolved agree.
  explicit TempDir(const std::string& prefix = "ap-test-") {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            (prefix + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
    path_ = std::filesystem::canonical(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  // A fresh sub-directory (a project to mount).
  [[nodiscard]] std::string mkdir(const std::string& name) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p);
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace agentpane::testing
