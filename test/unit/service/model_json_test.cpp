#include "service/model_json.hpp"

#include <gtest/gtest.h>

#include "common/base64.hpp"

namespace agentpane {
namespace {

using nlohmann::json;

void expectFieldError(const Error& e, const std::string& field) {
  EXPECT_EQ(e.code, ErrorCode::ValidationError) << e.describe();
  ASSERT_TRUE(e.details.count("field")) << e.describe();
  EXPECT_EQ(e.details.at("field"), field) << e.describe();
}

template <typename T>
void expectFieldError(const Result<T>& r, const std::string& field) {
  ASSERT_FALSE(r.ok()) << "expected an error naming " << field;
  expectFieldError(r.error(), field);
}

SandboxConfig fullConfig() {
  SandboxConfig c;
  c.id = "cfg-1";
  c.name = "k8s";
  c.description = "d";
  c.providerType = ProviderType::Kubernetes;
  c.image = "img:1";
  c.memoryMb = 4096;
  c.cpu = 1.5;
  c.pidsLimit = 100;
  c.timeoutMinutes = 15;
  c.isDefault = true;
  c.network = NetworkMode::Internal;
  c.allowFallback = false;
  c.enableK8s = true;
  c.kubeConfigPath = "/kc";
  c.kubeContext = "ctx";
  c.kubeNamespace = "ns";
  c.networkPolicyEnabled = false;
  c.allowedEgressHosts = {"a.com", "10.0.0.0/8"};
  c.workspaceVolume = "emptyDir";
  c.storageClass = "sc";
  c.workspaceSizeGi = 5;
  c.startupTimeoutSeconds = 60;
  c.allowRootExec = true;
  c.createdAtUnix = 11;
  c.updatedAtUnix = 12;
  return c;
}

TEST(ConfigJson, RoundTripsEveryFieldInCamelCase) {
  json j = toJson(fullConfig());
  for (const char* key : {"id",
                          "name",
                          "description",
                          "providerType",
                          "image",
                          "memoryMb",
                          "cpu",
                          "pidsLimit",
                          "timeoutMinutes",
                          "isDefault",
                          "network",
                          "allowFallback",
                          "enableK8s",
                          "kubeConfigPath",
                          "kubeContext",
                          "kubeNamespace",
                          "networkPolicyEnabled",
                          "allowedEgressHosts",
                          "workspaceVolume",
                          "storageClass",
                          "workspaceSizeGi",
                          "startupTimeoutSeconds",
                          "allowRootExec",
                          "warmPoolMin",
                          "warmPoolMax",
                          "warmPoolIdleTtlSeconds",
                          "createdAt",
                          "updatedAt",
                          "wakeOnUse"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 29u);
  EXPECT_EQ(j["providerType"], "kubernetes");
  EXPECT_EQ(j["network"], "internal");
  auto back = configFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().describe();
  EXPECT_EQ(toJson(back.value()), j);
}

TEST(ConfigJson, UnknownFieldsAndWrongTypesNameTheField) {
  expectFieldError(configFromJson(json{{"name", "x"}, {"memoryMB", 512}}), "memoryMB");
  expectFieldError(configFromJson(json{{"memoryMb", "512"}}), "memoryMb");
  expectFieldError(configFromJson(json{{"memoryMb", 512.5}}), "memoryMb");
  expectFieldError(configFromJson(json{{"memoryMb", 1e12}}), "memoryMb");
  expectFieldError(configFromJson(json{{"cpu", "2"}}), "cpu");
  expectFieldError(configFromJson(json{{"isDefault", 1}}), "isDefault");
  expectFieldError(configFromJson(json{{"allowedEgressHosts", json{"a.com", 1}}}),
                   "allowedEgressHosts");
  expectFieldError(configFromJson(json{{"allowedEgressHosts", "a.com"}}), "allowedEgressHosts");
  expectFieldError(configFromJson(json{{"providerType", "vm"}}), "providerType");
  expectFieldError(configFromJson(json{{"network", "host"}}), "network");
  expectFieldError(configFromJson(json{{"name", json::object()}}), "name");
  EXPECT_EQ(configFromJson(json::array()).error().code, ErrorCode::ValidationError);
  // Integral floats (JavaScript numbers) are integers.
  auto ok = configFromJson(json{{"memoryMb", 1024.0}, {"cpu", 2}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->memoryMb, 1024);
  EXPECT_DOUBLE_EQ(ok->cpu, 2.0);
}

TEST(ConfigJson, CreateBodyNeedsANameAndRefusesServerFields) {
  auto c = configFromCreateJson(json{{"name", "n"}, {"memoryMb", 1024}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name, "n");
  EXPECT_EQ(c->memoryMb, 1024);
  EXPECT_EQ(c->cpu, SandboxConfig{}.cpu);  // defaults kept
  expectFieldError(configFromCreateJson(json{{"memoryMb", 1024}}), "name");
  expectFieldError(configFromCreateJson(json{{"name", "n"}, {"id", "cfg-x"}}), "id");
  expectFieldError(configFromCreateJson(json{{"name", "n"}, {"createdAt", 1}}), "createdAt");
}

TEST(ConfigJson, PatchReplacesPresentFieldsOnly) {
  SandboxConfig base = fullConfig();
  auto p = applyConfigPatch(
      base,
      json{{"memoryMb", 8192}, {"allowedEgressHosts", json::array()}, {"kubeNamespace", "other"}});
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ(p->memoryMb, 8192);
  EXPECT_TRUE(p->allowedEgressHosts.empty());
  EXPECT_EQ(p->kubeNamespace, "other");
  EXPECT_EQ(p->name, base.name);
  EXPECT_EQ(p->id, base.id);
  EXPECT_EQ(p->createdAtUnix, base.createdAtUnix);
  auto empty = applyConfigPatch(base, json::object());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(toJson(empty.value()), toJson(base));

  expectFieldError(applyConfigPatch(base, json{{"id", "cfg-2"}}), "id");
  expectFieldError(applyConfigPatch(base, json{{"createdAt", 5}}), "createdAt");
  expectFieldError(applyConfigPatch(base, json{{"updatedAt", 5}}), "updatedAt");
  expectFieldError(applyConfigPatch(base, json{{"bogus", 5}}), "bogus");
  expectFieldError(applyConfigPatch(base, json{{"cpu", nullptr}}), "cpu");
  expectFieldError(applyConfigPatch(base, json{{"pidsLimit", true}}), "pidsLimit");
  EXPECT_EQ(applyConfigPatch(base, json("x")).error().code, ErrorCode::ValidationError);
}

TEST(SandboxRecordJson, RoundTripsAndNamesEveryField) {
  SandboxRecord r;
  r.info.id = "sbx-1";
  r.info.provider = ProviderType::Kubernetes;
  r.info.state = SandboxState::Running;
  r.info.projectId = "p";
  r.info.agentId = "a";
  r.info.projectPath = "/w";
  r.info.image = "img";
  r.info.podName = "pod";
  r.info.podNamespace = "ns";
  r.info.podUid = "uid";
  r.configId = "cfg";
  r.status = "running";
  r.createdAtUnix = 5;
  r.lastActivityUnix = 6;
  r.info.instance = "kubernetes-a";
  r.stopReason = "idle";
  r.egressJson = json{
      {"allowlist", {"a.example.test:443"}},
      {"status",
       {{"allowlist", {"a.example.test:443"}},
        {"rules", {"192.0.2.1/32 ports 443"}},
        {"hosts", {{{"host", "a.example.test"}, {"addresses", {"192.0.2.1"}}}}},
        {"unresolved", json::array()},
        {"enforced",
         true}}}}.dump();
  json j = toJson(r);
  EXPECT_EQ(j["provider"], "kubernetes");
  EXPECT_EQ(j["providerInstance"], "kubernetes-a");
  EXPECT_EQ(j["stopReason"], "idle");
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["lastActivityAt"], 6);
  EXPECT_EQ(j["egress"]["allowlist"], json({"a.example.test:443"}));
  EXPECT_EQ(j["egress"]["enforced"], true);
  EXPECT_EQ(j["fromPool"], false);
  EXPECT_EQ(j.size(), 20u);
  auto back = sandboxRecordFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().describe();
  EXPECT_EQ(toJson(back.value()), j);
  expectFieldError(sandboxRecordFromJson(json{{"id", "x"}, {"extra", 1}}), "extra");

  CreateSandboxOutcome o{r, std::string("cluster down")};
  json oj = toJson(o);
  EXPECT_EQ(oj["fallbackReason"], "cluster down");
  auto ob = createOutcomeFromJson(oj);
  ASSERT_TRUE(ob.ok()) << ob.error().describe();
  EXPECT_EQ(ob->fallbackReason, std::optional<std::string>("cluster down"));
  EXPECT_FALSE(toJson(CreateSandboxOutcome{r, std::nullopt}).contains("fallbackReason"));
}

TEST(CreateRequestJson, StrictParse) {
  auto q = createSandboxRequestFromJson(json{{"projectPath", "/w"},
                                             {"provider", "kubernetes"},
                                             {"memoryMb", 1024},
                                             {"cpu", 1.5},
                                             {"env", {{"A", "1"}, {"B", "2"}}},
                                             {"allowEgress", {"github.com:443"}},
                                             {"configId", nullptr}});
  ASSERT_TRUE(q.ok()) << q.error().describe();
  EXPECT_EQ(q->provider, ProviderType::Kubernetes);
  EXPECT_EQ(q->memoryMb, 1024);
  EXPECT_FALSE(q->configId);
  EXPECT_EQ(q->env.size(), 2u);
  auto round = createSandboxRequestFromJson(toJson(q.value()));
  ASSERT_TRUE(round.ok());
  EXPECT_EQ(toJson(round.value()), toJson(q.value()));

  expectFieldError(createSandboxRequestFromJson(json::object()), "projectPath");
  expectFieldError(createSandboxRequestFromJson(json{{"projectPath", 5}}), "projectPath");
  expectFieldError(createSandboxRequestFromJson(json{{"projectPath", "/w"}, {"provider", "lxc"}}),
                   "provider");
  expectFieldError(createSandboxRequestFromJson(json{{"projectPath", "/w"}, {"env", {{"A", 1}}}}),
                   "env.A");
  expectFieldError(
      createSandboxRequestFromJson(json{{"projectPath", "/w"}, {"env", json::array()}}), "env");
  expectFieldError(createSandboxRequestFromJson(json{{"projectPath", "/w"}, {"memory", 1}}),
                   "memory");
  expectFieldError(createSandboxRequestFromJson(json{{"projectPath", "/w"}, {"cpu", "1"}}), "cpu");
}

TEST(ExecJson, TextWhenUtf8AndBase64Otherwise) {
  ExecResult text{0, "héllo\n", "warn"};
  json t = toJson(text);
  EXPECT_EQ(t["stdout"], "héllo\n");
  EXPECT_EQ(t["stderr"], "warn");
  EXPECT_FALSE(t.contains("stdoutBase64"));

  ExecResult binary{3, std::string("\x00\xff\xfe", 3), "ok"};
  json b = toJson(binary);
  EXPECT_FALSE(b.contains("stdout"));
  EXPECT_EQ(b["stdoutBase64"], "AP/+");
  EXPECT_EQ(b["stderrBase64"], "b2s=");
  EXPECT_EQ(b["exitCode"], 3);
  EXPECT_NO_THROW(b.dump());

  json forced = toJson(text, /*base64=*/true);
  EXPECT_TRUE(forced.contains("stdoutBase64"));

  auto backText = execResultFromJson(t);
  ASSERT_TRUE(backText.ok()) << backText.error().describe();
  EXPECT_EQ(backText->stdoutData, text.stdoutData);
  EXPECT_EQ(backText->stderrData, text.stderrData);
  auto backBinary = execResultFromJson(b);
  ASSERT_TRUE(backBinary.ok());
  EXPECT_EQ(backBinary->stdoutData, binary.stdoutData);
  EXPECT_EQ(backBinary->exitCode, 3);
  EXPECT_EQ(execResultFromJson(forced)->stdoutData, text.stdoutData);
  expectFieldError(execResultFromJson(json{{"stdoutBase64", "***"}}), "stdoutBase64");
  expectFieldError(execResultFromJson(json{{"stdout", "a"}, {"stdoutBase64", "YQ=="}}),
                   "stdoutBase64");
  expectFieldError(execResultFromJson(json{{"exitCode", "0"}}), "exitCode");
}

TEST(ExecJson, ApiRequest) {
  auto a = execApiRequestFromJson(json{{"argv", {"sh", "-c", "cat"}},
                                       {"root", true},
                                       {"timeoutSeconds", 2.5},
                                       {"env", {{"K", "v"}}},
                                       {"stdinBase64", "AP8="},
                                       {"base64", true}});
  ASSERT_TRUE(a.ok()) << a.error().describe();
  EXPECT_EQ(a->request.argv.size(), 3u);
  EXPECT_TRUE(a->request.options.root);
  EXPECT_EQ(a->request.options.timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(a->request.stdinData, std::optional<std::string>(std::string("\x00\xff", 2)));
  EXPECT_TRUE(a->request.options.attachStdin);
  EXPECT_TRUE(a->base64Output);
  auto round = execApiRequestFromJson(toJson(a.value()));
  ASSERT_TRUE(round.ok()) << round.error().describe();
  EXPECT_EQ(round->request.stdinData, a->request.stdinData);
  EXPECT_EQ(round->request.options.timeout, a->request.options.timeout);

  expectFieldError(execApiRequestFromJson(json{{"argv", json::array()}}), "argv");
  expectFieldError(execApiRequestFromJson(json::object()), "argv");
  expectFieldError(execApiRequestFromJson(json{{"argv", "ls"}}), "argv");
  expectFieldError(execApiRequestFromJson(json{{"argv", {"ls"}}, {"timeoutSeconds", -1}}),
                   "timeoutSeconds");
  expectFieldError(execApiRequestFromJson(json{{"argv", {"ls"}}, {"env", {{"1X", "v"}}}}), "env");
  expectFieldError(
      execApiRequestFromJson(json{{"argv", {"ls"}}, {"stdin", "a"}, {"stdinBase64", "YQ=="}}),
      "stdinBase64");
  expectFieldError(execApiRequestFromJson(json{{"argv", {"ls"}}, {"shell", true}}), "shell");
}

TEST(ExecJson, StreamStartSharesTheRulesOfTheBufferedExec) {
  auto s = execStreamStartFromJson(json{{"argv", {"cat"}}, {"timeoutSeconds", 30}});
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(s->options.attachStdin);  // a stream attaches stdin unless told not to
  EXPECT_EQ(s->options.timeout, std::chrono::seconds(30));
  EXPECT_EQ(s->options.workingDir, "/workspace");
  auto noStdin = execStreamStartFromJson(json{{"argv", {"cat"}}, {"stdin", false}});
  ASSERT_TRUE(noStdin.ok());
  EXPECT_FALSE(noStdin->options.attachStdin);
  // Every option is refused or accepted alike on both paths.
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"timeoutSeconds", 7 * 24 * 3600 + 1}}, "timeoutSeconds"},
      {{{"timeoutSeconds", -1}}, "timeoutSeconds"},
      {{{"workingDir", "relative/dir"}}, "workingDir"},
      {{{"workingDir", ""}}, "workingDir"},
      {{{"env", {{"1X", "v"}}}}, "env"},
      {{{"root", "yes"}}, "root"},
      {{{"shell", true}}, "shell"},
  };
  for (const auto& [extra, field] : cases) {
    json body = {{"argv", {"ls"}}};
    body.update(extra);
    expectFieldError(execApiRequestFromJson(body), field);
    expectFieldError(execStreamStartFromJson(body), field);
  }
  for (const json& extra : {json{{"timeoutSeconds", 7 * 24 * 3600}}, json{{"workingDir", "/tmp"}},
                            json{{"env", {{"K_1", "v"}}}}, json{{"root", true}}}) {
    json body = {{"argv", {"ls"}}};
    body.update(extra);
    EXPECT_TRUE(execApiRequestFromJson(body).ok()) << body.dump();
    EXPECT_TRUE(execStreamStartFromJson(body).ok()) << body.dump();
  }
  expectFieldError(execStreamStartFromJson(json{{"argv", json::array()}}), "argv");
  expectFieldError(execStreamStartFromJson(json{{"stdin", "data"}, {"argv", {"ls"}}}), "stdin");
}

TEST(AuditJson, DetailIsEmbeddedAsJson) {
  AuditEntry e{7, 1234, "sbx-1", "api", "exec", R"({"argv":["ls"],"exitCode":0})", true};
  json j = toJson(e);
  EXPECT_EQ(j["detail"]["argv"][0], "ls");
  EXPECT_EQ(j["atMs"], 1234);
  auto back = auditEntryFromJson(j);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(json::parse(back->detail), json::parse(e.detail));
  e.detail = "not json";
  EXPECT_EQ(toJson(e)["detail"], "not json");
  expectFieldError(auditEntryFromJson(json{{"ok", "yes"}}), "ok");
}

TEST(TmuxJson, RoundTrip) {
  TmuxSessionInfo s{"main", 2, 1700000000, true};
  json j = toJson(s);
  EXPECT_EQ(
      j, (json{{"name", "main"}, {"windows", 2}, {"createdAt", 1700000000}, {"attached", true}}));
  auto back = tmuxSessionFromJson(j);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->name, "main");
  EXPECT_EQ(back->createdUnix, 1700000000);
  expectFieldError(tmuxSessionFromJson(json{{"windows", "2"}}), "windows");
  EXPECT_EQ(toJson(SandboxEvent{"ready", "sbx-1", "", 5})["type"], "ready");
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(isValidUtf8("\xff"));
  EXPECT_FALSE(isValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_TRUE(isValidUtf8(std::string("a\0b", 3)));
}

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64Encode(plain), encoded);
    EXPECT_EQ(base64Decode(encoded), std::optional<std::string>(plain)) << encoded;
  }
}

TEST(Base64, EveryByteRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    auto part = all.substr(0, n);
    EXPECT_EQ(base64Decode(base64Encode(part)), std::optional<std::string>(part));
  }
  EXPECT_EQ(base64Decode(base64Encode(all)), std::optional<std::string>(all));
}

TEST(Base64, DecodeIsStrict) {
  for (const char* bad : {"Zg=", "Z", "Zg==Zg==", "Z===", "====", "Zh==", "Zm9=", "Zm9v\n", "Zm 9",
                          "@@@@", "Zg=a", "Z=g="}) {
    EXPECT_FALSE(base64Decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace agentpane
