// `agentpane k8s check-pod`: exit codes for allowed and refused pods, levels, workload
// templates, several documents, and files it cannot read.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agentpane/errors.hpp"
#include "cli/commands.hpp"

namespace agentpane::cli {
namespace {

namespace fs = std::filesystem;

class CheckPod : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("agentpane-check-pod-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

const char* kRestricted = R"(
apiVersion: v1
kind: Pod
metadata: {name: ok}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
)";

// Both codes exit 2: the code on stderr tells them apart.
const std::string kRefused = "2 K8S_POD_SECURITY_VIOLATION";
const std::string kInvalid = "2 VALIDATION_ERROR";

// "<exit code>" or "<exit code> <error code printed on stderr>".
std::string check(const std::string& file, const std::string& level, bool asJson = false) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  int rc = runCheckPod(file, level, asJson);
  (void)::testing::internal::GetCapturedStdout();
  std::string err = ::testing::internal::GetCapturedStderr();
  std::string out = std::to_string(rc);
  if (err.rfind("error: ", 0) == 0) out += " " + err.substr(7, err.find(':', 7) - 7);
  return out;
}

TEST_F(CheckPod, RestrictedPodPassesBothLevels) {
  auto f = write("ok.yaml", kRestricted);
  EXPECT_EQ(check(f, "restricted"), "0");
  EXPECT_EQ(check(f, "baseline", true), "0");
}

TEST_F(CheckPod, BaselinePodIsRefusedOnlyAtRestricted) {
  auto f = write("base.json", R"({"kind":"Pod","metadata":{"name":"b"},
    "spec":{"containers":[{"name":"c","image":"x"}]}})");
  EXPECT_EQ(check(f, "baseline"), "0");
  EXPECT_EQ(check(f, "restricted"), kRefused);
}

TEST_F(CheckPod, WorkloadTemplatesAndSeveralDocuments) {
  auto f = write("multi.yaml", std::string(kRestricted) + R"(
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec:
      hostPID: true
      containers: [{name: c, image: x}]
)");
  EXPECT_EQ(check(f, "baseline"), kRefused);
}

TEST_F(CheckPod, BadInputIsAValidationError) {
  EXPECT_EQ(check((dir_ / "missing.yaml").string(), "restricted"), kInvalid);
  EXPECT_EQ(check(write("bad.yaml", "a: [\n"), "restricted"), kInvalid);
  EXPECT_EQ(check(write("cm.yaml", "kind: ConfigMap\n"), "restricted"), kInvalid);
  EXPECT_EQ(check(write("ok.yaml", kRestricted), "strict"), kInvalid);
}

}  // namespace
}  // namespace agentpane::cli
