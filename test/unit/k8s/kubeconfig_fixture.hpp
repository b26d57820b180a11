// Shared by the kubeconfig tests: a temporary directory to write kubeconfig files, certificate
// files and plugin scripts into, an injected environment and an injected wall clock.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "k8s/kubeconfig_loader.hpp"

namespace agentpane::k8s::testing {

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ap-kubeconfig-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to dir/rel (directories created) and returns the absolute path.
  std::string write(const std::string& rel, const std::string& text, bool executable = false) {
    auto p = std::filesystem::path(dir_) / rel;
    std::filesystem::create_directories(p.parent_path());
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << text;
    }
    if (executable) ::chmod(p.c_str(), 0755);
    return p.string();
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  [[nodiscard]] std::string path(const std::string& rel) const {
    return (std::filesystem::path(dir_) / rel).string();
  }

  GetEnv env() {
    return [this](const char* name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      if (it == vars_.end() || it->second.empty()) return std::nullopt;
      return it->second;
    };
  }
  LoadingRules rules() {
    LoadingRules r;
    r.env = env();
    r.homeDir = path("home");
    r.serviceAccountDir = path("serviceaccount");
    return r;
  }
  ResolveOptions options() {
    ResolveOptions o;
    o.exec.clock = [this] {
      std::lock_guard lock(clockMu_);
      return now_;
    };
    o.exec.timeout = std::chrono::seconds(20);
    return o;
  }
  void advance(std::chrono::seconds s) {
    std::lock_guard lock(clockMu_);
    now_ += s;
  }

  std::string dir_;
  std::map<std::string, std::string> vars_;
  std::mutex clockMu_;
  // 2029-12-31T23:00:00Z
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::from_time_t(1893452400);
};

}  // namespace agentpane::k8s::testing
