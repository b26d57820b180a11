// docs/openapi.yaml describes every route the router knows: a route added to routes.cpp
// without its description fails here. (scripts/api-fuzz.sh checks the descriptions against
// the running server.)
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/beast/http/verb.hpp>
#include <set>
#include <string>

#include "agentpane/errors.hpp"
#include "server/server_context.hpp"

namespace agentpane::server {
namespace {

// "/api/sandboxes/:id/tmux/:name" -> "/api/sandboxes/{id}/tmux/{name}"
std::string openapiPath(const std::string& label) {
  std::string out;
  std::size_t i = 0;
  while (i < label.size()) {
    if (label[i] == ':') {
      auto end = label.find('/', i);
      if (end == std::string::npos) end = label.size();
      out += "{" + label.substr(i + 1, end - i - 1) + "}";
      i = end;
    } else {
      out += label[i++];
    }
  }
  return out;
}

YAML::Node loadSpec() {
  return YAML::LoadFile(std::string(AP_SOURCE_DIR) + "/docs/openapi.yaml");
}

TEST(OpenApi, DescribesEveryRouteOfTheRouter) {
  auto spec = loadSpec();
  auto paths = spec["paths"];
  ASSERT_TRUE(paths.IsMap());
  std::set<std::string> routed;
  for (const auto& route : buildRoutes()) {
    std::string path = openapiPath(route.pattern.label());
    std::string method(boost::beast::http::to_string(route.method));
    for (auto& c : method)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    routed.insert(method + " " + path);
    ASSERT_TRUE(paths[path].IsMap()) << path << " is routed but not in docs/openapi.yaml";
    auto op = paths[path][method];
    ASSERT_TRUE(op.IsMap()) << method << " " << path << " is routed but not in docs/openapi.yaml";
    EXPECT_TRUE(op["responses"].IsMap()) << method << " " << path;
    if (route.ws) {
      EXPECT_TRUE(op["x-websocket"].as<bool>(false)) << path << " is a WebSocket route";
    }
    bool documentsAnError = false;
    for (const auto& r : op["responses"]) {
      documentsAnError = documentsAnError || r.first.as<std::string>()[0] >= '4';
    }
    EXPECT_TRUE(documentsAnError) << method << " " << path << " documents no error response";
  }
  // And nothing described that the router does not serve.
  for (const auto& p : paths) {
    for (const auto& m : p.second) {
      std::string key = m.first.as<std::string>() + " " + p.first.as<std::string>();
      EXPECT_TRUE(routed.count(key)) << key << " is in docs/openapi.yaml but not routed";
    }
  }
}

TEST(OpenApi, TheErrorEnvelopeListsEveryCode) {
  auto spec = loadSpec();
  auto codes =
      spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
  ASSERT_TRUE(codes.IsSequence());
  std::set<std::string> listed;
  for (const auto& c : codes)
    listed.insert(c.as<std::string>());
  for (int i = 0; i <= static_cast<int>(ErrorCode::WarmPoolPrewarmFailed); ++i) {
    auto name = std::string(errorName(static_cast<ErrorCode>(i)));
    EXPECT_TRUE(listed.count(name)) << name << " is missing from the Error schema's enum";
  }
}

}  // namespace
}  // namespace agentpane::server
