// The service's side of egress: the allowlist a sandbox runs with is kept on its row,
// replaced at run time through its provider (audited), and its host names are re-resolved on
// schedule, the change audited only when addresses moved.
#include <nlohmann/json.hpp>

#include "service/model_json.hpp"
#include "unit/service/service_fixture.hpp"

namespace agentpane::fakes {
namespace {

using nlohmann::json;

TEST_F(ServiceTest, CreateKeepsTheAllowlistOnTheRow) {
  auto req = request();
  req.allowEgress = {"api.example.test:443", "10.1.2.3"};
  auto rec = createOk(req);
  auto got = svc->getSandbox(rec.info.id);
  ASSERT_TRUE(got.ok());
  json eg = egressJsonOf(*got);
  EXPECT_EQ(eg["allowlist"], json({"api.example.test:443", "10.1.2.3"}));
  // The fake provider reports no EgressStatus from create: then nothing is claimed enforced.
  EXPECT_EQ(eg["enforced"], false);
  auto created = auditOf(rec.info.id, "sandbox.create");
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(json::parse(created[0].detail)["egress"]["allowlist"],
            json({"api.example.test:443", "10.1.2.3"}));
}

TEST_F(ServiceTest, SetEgressReplacesTheListThroughTheProviderAndAudits) {
  auto rec = createOk();
  docker->unresolvable = {"gone.example.test"};
  auto r = svc->setEgress(rec.info.id, {"10.0.0.5:8080", "gone.example.test"}, "cli");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  auto calls = docker->calls();
  auto it = std::find_if(calls.begin(), calls.end(),
                         [](const auto& c) { return c.method == "applyEgress"; });
  ASSERT_NE(it, calls.end());
  EXPECT_EQ(it->argv, (std::vector<std::string>{"10.0.0.5:8080", "gone.example.test"}));
  json eg = egressJsonOf(*r);
  EXPECT_EQ(eg["allowlist"], json({"10.0.0.5:8080", "gone.example.test"}));
  EXPECT_EQ(eg["unresolved"], json({"gone.example.test"}));  // reported, not dropped
  EXPECT_EQ(eg["enforced"], true);
  auto audited = auditOf(rec.info.id, "sandbox.egress");
  ASSERT_EQ(audited.size(), 1u);
  EXPECT_TRUE(audited[0].ok);
  EXPECT_EQ(audited[0].actor, "cli");
  EXPECT_EQ(json::parse(audited[0].detail)["unresolved"], json({"gone.example.test"}));
}

TEST_F(ServiceTest, SetEgressRefusesABadEntryWithItsReasonAndTouchesNothing) {
  auto rec = createOk();
  auto r = svc->setEgress(rec.info.id, {"ok.example.test", "10.1.2.3/8"}, "cli");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::ValidationError);
  EXPECT_EQ(r.error().details.at("reason"), "EGRESS_CIDR_HOST_BITS");
  EXPECT_EQ(docker->callCount("applyEgress"), 0);
}

TEST_F(ServiceTest, SetEgressOfAStoppedOrUnknownSandboxFails) {
  EXPECT_EQ(svc->setEgress("sbx-nope", {}, "cli").error().code, ErrorCode::SandboxNotFound);
  auto rec = createOk();
  ASSERT_TRUE(svc->stopSandbox(rec.info.id, "cli").ok());
  EXPECT_EQ(svc->setEgress(rec.info.id, {"10.0.0.5"}, "cli").error().code,
            ErrorCode::SandboxNotRunning);
}

TEST_F(ServiceTest, SetEgressFailureIsAuditedAndKeepsTheOldList) {
  auto req = request();
  req.allowEgress = {"10.0.0.1"};
  auto rec = createOk(req);
  docker->failNext("applyEgress", Error(ErrorCode::SandboxProviderError, "iptables failed"));
  auto r = svc->setEgress(rec.info.id, {"10.0.0.2"}, "cli");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::SandboxProviderError);
  EXPECT_EQ(egressJsonOf(svc->getSandbox(rec.info.id).value())["allowlist"], json({"10.0.0.1"}));
  auto audited = auditOf(rec.info.id, "sandbox.egress");
  ASSERT_EQ(audited.size(), 1u);
  EXPECT_FALSE(audited[0].ok);
}

TEST_F(ServiceTest, RefreshReResolvesOnlyListsWithNamesAndAuditsOnlyChanges) {
  auto withName = createOk();
  auto other = request(mkdir("other"));
  auto literalOnly = createOk(other);
  docker->egressAddresses["svc.example.test:80"] = {"192.0.2.1"};
  ASSERT_TRUE(svc->setEgress(withName.info.id, {"svc.example.test:80"}, "cli").ok());
  ASSERT_TRUE(svc->setEgress(literalOnly.info.id, {"10.0.0.9"}, "cli").ok());
  const int before = docker->callCount("applyEgress");

  docker->egressChanged = false;  // the addresses did not move
  ASSERT_TRUE(svc->refreshEgress().ok());
  EXPECT_EQ(docker->callCount("applyEgress"), before + 1);  // the named list only
  EXPECT_TRUE(auditOf(withName.info.id, "egress.updated").empty());

  // Re-applied (a provider that forgot what it enforced) with the same addresses: no record.
  docker->egressChanged = true;
  ASSERT_TRUE(svc->refreshEgress().ok());
  EXPECT_TRUE(auditOf(withName.info.id, "egress.updated").empty());

  docker->egressAddresses["svc.example.test:80"] = {"192.0.2.2"};  // they moved
  ASSERT_TRUE(svc->refreshEgress().ok());
  auto updated = auditOf(withName.info.id, "egress.updated");
  ASSERT_EQ(updated.size(), 1u);
  EXPECT_EQ(updated[0].actor, "egress");
  const json detail = json::parse(updated[0].detail);
  EXPECT_EQ(detail["allowlist"], json({"svc.example.test:80"}));
  EXPECT_EQ(detail["before"], json({{"svc.example.test:80", {"192.0.2.1"}}}));
  EXPECT_EQ(detail["after"], json({{"svc.example.test:80", {"192.0.2.2"}}}));
  EXPECT_TRUE(auditOf(literalOnly.info.id, "egress.updated").empty());
}

}  // namespace
}  // namespace agentpane::fakes
