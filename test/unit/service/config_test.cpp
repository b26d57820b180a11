#include <gtest/gtest.h>

#include <functional>

#include "service/validation.hpp"
#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

SandboxConfig named(const std::string& name) {
  SandboxConfig c;
  c.name = name;
  return c;
}

TEST_F(ServiceTest, DefaultConfigIsMadeOnceAtFirstStart) {
  auto configs = svc->listConfigs().value();
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_EQ(configs[0].name, "default");
  EXPECT_TRUE(configs[0].isDefault);
  EXPECT_EQ(configs[0].providerType, ProviderType::Docker);
  EXPECT_TRUE(validateConfig(configs[0]).ok());
  restart();
  EXPECT_EQ(svc->listConfigs().value().size(), 1u);
  EXPECT_EQ(svc->defaultConfig().value().id, configs[0].id);
}

TEST_F(ServiceTest, ConfigCrudAssignsIdsAndTimes) {
  auto c = svc->createConfig(named("big"));
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_EQ(c->id.rfind("cfg-", 0), 0u);
  EXPECT_EQ(c->createdAtUnix, nowSec());
  EXPECT_FALSE(c->isDefault);
  advance(std::chrono::seconds(100));
  SandboxConfig changed = c.value();
  changed.memoryMb = 8192;
  changed.createdAtUnix = 1;  // not changeable
  auto u = svc->updateConfig(changed);
  ASSERT_TRUE(u.ok()) << u.error().describe();
  EXPECT_EQ(u->memoryMb, 8192);
  EXPECT_EQ(u->createdAtUnix, c->createdAtUnix);
  EXPECT_EQ(u->updatedAtUnix, nowSec());
  EXPECT_EQ(svc->getConfig(c->id).value().memoryMb, 8192);
  ASSERT_TRUE(svc->deleteConfig(c->id).ok());
  EXPECT_EQ(svc->getConfig(c->id).error().code, ErrorCode::SandboxConfigNotFound);
  EXPECT_EQ(svc->deleteConfig(c->id).error().code, ErrorCode::SandboxConfigNotFound);
  SandboxConfig ghost = named("ghost");
  ghost.id = "cfg-nope";
  EXPECT_EQ(svc->updateConfig(ghost).error().code, ErrorCode::SandboxConfigNotFound);
}

TEST_F(ServiceTest, DuplicateConfigNameIs409) {
  ASSERT_TRUE(svc->createConfig(named("dup")).ok());
  auto again = svc->createConfig(named("dup"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::SandboxConfigNameConflict);
  EXPECT_EQ(errorInfo(again.error().code).httpStatus, 409);
  auto other = svc->createConfig(named("other")).value();
  other.name = "dup";
  EXPECT_EQ(svc->updateConfig(other).error().code, ErrorCode::SandboxConfigNameConflict);
}

TEST_F(ServiceTest, OnlyOneDefaultConfig) {
  auto first = svc->defaultConfig().value();
  SandboxConfig c = named("new default");
  c.isDefault = true;
  auto made = svc->createConfig(c).value();
  EXPECT_TRUE(made.isDefault);
  EXPECT_FALSE(svc->getConfig(first.id).value().isDefault);
  EXPECT_EQ(svc->defaultConfig().value().id, made.id);

  // The default cannot be unset or deleted directly.
  made.isDefault = false;
  auto unset = svc->updateConfig(made);
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(unset.error().details.at("field"), "isDefault");
  EXPECT_EQ(svc->deleteConfig(made.id).error().code, ErrorCode::SandboxConfigInUse);

  // Making the old one default again moves the flag.
  first.isDefault = true;
  ASSERT_TRUE(svc->updateConfig(first).ok());
  EXPECT_FALSE(svc->getConfig(made.id).value().isDefault);
  int defaults = 0;
  auto all = svc->listConfigs().value();
  for (const auto& cfg : all)
    defaults += cfg.isDefault ? 1 : 0;
  EXPECT_EQ(defaults, 1);
  EXPECT_TRUE(svc->deleteConfig(made.id).ok());
}

TEST_F(ServiceTest, DeletingAConfigInUseIs409) {
  auto cfg = svc->createConfig(named("used")).value();
  auto req = request();
  req.configId = cfg.id;
  auto sbx = createOk(req);
  auto del = svc->deleteConfig(cfg.id);
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code, ErrorCode::SandboxConfigInUse);
  EXPECT_EQ(errorInfo(del.error().code).httpStatus, 409);
  ASSERT_TRUE(svc->removeSandbox(sbx.info.id, "api").ok());
  EXPECT_TRUE(svc->deleteConfig(cfg.id).ok());
}

// --- every validation bound, just inside and just outside ----------------------------------

struct Case {
  std::string label;
  std::function<void(SandboxConfig&)> mutate;
  bool valid;
  std::string field;  // expected details["field"] when invalid
};

std::vector<Case> boundCases() {
  auto set = [](auto member, auto value) {
    return [member, value](SandboxConfig& c) { c.*member = value; };
  };
  using C = SandboxConfig;
  std::vector<Case> cases = {
      {"memory 511", set(&C::memoryMb, 511), false, "memoryMb"},
      {"memory 512", set(&C::memoryMb, 512), true, ""},
      {"memory 32768", set(&C::memoryMb, 32768), true, ""},
      {"memory 32769", set(&C::memoryMb, 32769), false, "memoryMb"},
      {"cpu 0.49", set(&C::cpu, 0.49), false, "cpu"},
      {"cpu 0.5", set(&C::cpu, 0.5), true, ""},
      {"cpu 16", set(&C::cpu, 16.0), true, ""},
      {"cpu 16.01", set(&C::cpu, 16.01), false, "cpu"},
      {"cpu NaN", set(&C::cpu, std::nan("")), false, "cpu"},
      {"pids 31", set(&C::pidsLimit, 31), false, "pidsLimit"},
      {"pids 32", set(&C::pidsLimit, 32), true, ""},
      {"pids 4096", set(&C::pidsLimit, 4096), true, ""},
      {"pids 4097", set(&C::pidsLimit, 4097), false, "pidsLimit"},
      {"timeout 0", set(&C::timeoutMinutes, 0), false, "timeoutMinutes"},
      {"timeout 1", set(&C::timeoutMinutes, 1), true, ""},
      {"timeout 1440", set(&C::timeoutMinutes, 1440), true, ""},
      {"timeout 1441", set(&C::timeoutMinutes, 1441), false, "timeoutMinutes"},
      {"name empty", set(&C::name, std::string()), false, "name"},
      {"name 64", set(&C::name, std::string(64, 'n')), true, ""},
      {"name 65", set(&C::name, std::string(65, 'n')), false, "name"},
      {"name chars", set(&C::name, std::string("My config_1.2-x")), true, ""},
      {"name slash", set(&C::name, std::string("a/b")), false, "name"},
      {"name quote", set(&C::name, std::string("a'b")), false, "name"},
      {"ns ok", set(&C::kubeNamespace, std::string("team-a1")), true, ""},
      {"ns 63", set(&C::kubeNamespace, std::string(63, 'a')), true, ""},
      {"ns 64", set(&C::kubeNamespace, std::string(64, 'a')), false, "kubeNamespace"},
      {"ns upper", set(&C::kubeNamespace, std::string("Team")), false, "kubeNamespace"},
      {"ns leading dash", set(&C::kubeNamespace, std::string("-a")), false, "kubeNamespace"},
      {"ns trailing dash", set(&C::kubeNamespace, std::string("a-")), false, "kubeNamespace"},
      {"ns dot", set(&C::kubeNamespace, std::string("a.b")), false, "kubeNamespace"},
      {"ns empty", set(&C::kubeNamespace, std::string()), false, "kubeNamespace"},
      {"image space", set(&C::image, std::string("a b")), false, "image"},
      {"image empty", set(&C::image, std::string()), false, "image"},
      {"volume emptyDir", set(&C::workspaceVolume, std::string("emptyDir")), true, ""},
      {"volume nfs", set(&C::workspaceVolume, std::string("nfs")), false, "workspaceVolume"},
      {"storage class ok", set(&C::storageClass, std::string("local-path")), true, ""},
      {"storage class bad", set(&C::storageClass, std::string("Local_Path")), false,
       "storageClass"},
      {"size 0", set(&C::workspaceSizeGi, 0), false, "workspaceSizeGi"},
      {"startup 9", set(&C::startupTimeoutSeconds, 9), false, "startupTimeoutSeconds"},
      {"startup 10", set(&C::startupTimeoutSeconds, 10), true, ""},
  };
  const std::vector<std::string> goodHosts = {"github.com",
                                              "github.com:443",
                                              "api.github.com.",
                                              "localhost",
                                              "10.0.0.0/8",
                                              "10.1.2.3",
                                              "10.1.2.3:8080",
                                              "0.0.0.0/0",
                                              "::1",
                                              "2001:db8::1",
                                              "2001:db8::/32",
                                              "[2001:db8::1]:443",
                                              "[2001:db8::/64]:22",
                                              "xn--bcher-kva.example",
                                              "a-b.c0"};
  const std::vector<std::string> badHosts = {"",
                                             "github.com:0",
                                             "github.com:65536",
                                             "github.com:",
                                             "github.com:http",
                                             "10.0.0.0/33",
                                             "10.0.0.1/-1",
                                             "300.1.1.1",
                                             "1.2.3",
                                             "a b",
                                             "http://x.com",
                                             "-bad.com",
                                             "bad-.com",
                                             "a..b",
                                             "*.github.com",
                                             "host/8",
                                             "[::1",
                                             "[::1]443",
                                             "[10.0.0.1]:80",
                                             "2001:db8::/129",
                                             std::string(64, 'a') + ".com",
                                             "a_b.com",
                                             "x;rm -rf /"};
  for (const auto& h : goodHosts) {
    cases.push_back({"egress " + h, [h](C& c) { c.allowedEgressHosts = {h}; }, true, ""});
  }
  for (const auto& h : badHosts) {
    cases.push_back({"egress '" + h + "'",
                     [h](C& c) {
                       c.allowedEgressHosts = {"ok.com", h};
                     },
                     false, "allowedEgressHosts"});
  }
  return cases;
}

TEST_F(ServiceTest, ConfigValidationBounds) {
  int i = 0;
  for (const auto& tc : boundCases()) {
    SandboxConfig c = named("bounds " + std::to_string(i++));
    tc.mutate(c);
    auto r = svc->createConfig(c);
    if (tc.valid) {
      EXPECT_TRUE(r.ok()) << tc.label << ": " << (r.ok() ? "" : r.error().describe());
    } else {
      ASSERT_FALSE(r.ok()) << tc.label;
      EXPECT_EQ(r.error().code, ErrorCode::ValidationError) << tc.label;
      EXPECT_EQ(r.error().details.count("field") ? r.error().details.at("field") : "", tc.field)
          << tc.label;
    }
  }
}

TEST_F(ServiceTest, UpdateIsValidatedToo) {
  auto c = svc->createConfig(named("v")).value();
  c.memoryMb = 100;
  auto r = svc->updateConfig(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().details.at("field"), "memoryMb");
  EXPECT_EQ(svc->getConfig(c.id).value().memoryMb, 2048);
}

TEST(Validation, HelpersAgreeWithTheirPatterns) {
  EXPECT_TRUE(isValidEnvKey("PATH"));
  EXPECT_TRUE(isValidEnvKey("_x1"));
  EXPECT_FALSE(isValidEnvKey("1X"));
  EXPECT_FALSE(isValidEnvKey("A-B"));
  EXPECT_FALSE(isValidEnvKey("A=B"));
  EXPECT_FALSE(isValidEnvKey(""));
  EXPECT_TRUE(isValidDns1123Subdomain("a.b-c.d"));
  EXPECT_FALSE(isValidDns1123Subdomain("a..b"));
  EXPECT_TRUE(isValidHostname("example.com"));
  EXPECT_FALSE(isValidHostname("1.2.3.4.5"));
}

}  // namespace
}  // namespace agentpane::fakes
