// `agentpane manifests`: the Kubernetes objects of a deployment (k8s/manifests.hpp), printed as
// one YAML stream or written one file per object (k8s/manifests/ in the tree is this output
// with the defaults; test/unit/k8s/manifests_test.cpp holds it to that).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "k8s/manifests.hpp"

namespace agentpane::cli {

namespace fs = std::filesystem;

int runManifests(const ManifestArgs& args) {
  k8s::ManifestOptions o;
  o.namespaceName = args.namespaceName;
  o.image = args.image;
  o.imagePullPolicy = args.imagePullPolicy;
  o.sandboxImagePullPolicy = args.sandboxImagePullPolicy;
  o.workspace = args.workspace;
  o.storageClass = args.storageClass;
  o.tokenSecret = args.tokenSecret;
  o.port = args.port;
  o.apiserverEndpoints = args.apiserverEndpoints;
  if (auto ok = k8s::checkManifestOptions(o); !ok.ok()) return fail(ok.error());
  if (args.asJson) {
    nlohmann::json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", k8s::manifests(o)}};
    std::printf("%s\n", list.dump(2).c_str());
    return 0;
  }
  if (args.outDir.empty()) {
    std::fputs(k8s::toYamlStream(k8s::manifests(o), k8s::manifestsHeader(o)).c_str(), stdout);
    return 0;
  }
  // The directory becomes exactly this output: earlier generated files ("NN-….yaml") that
  // are no longer made are removed.
  std::error_code ec;
  fs::create_directories(args.outDir, ec);
  if (ec) {
    return fail(
        Error(ErrorCode::ValidationError, "cannot create " + args.outDir + ": " + ec.message()));
  }
  std::set<std::string> written;
  for (const auto& [name, text] : k8s::manifestFiles(o)) {
    std::ofstream out(fs::path(args.outDir) / name, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      return fail(Error(ErrorCode::Internal, "cannot write " + args.outDir + "/" + name));
    }
    written.insert(name);
  }
  static const std::regex generated(R"([0-9][0-9]-.*\.yaml)");
  for (const auto& e : fs::directory_iterator(args.outDir, ec)) {
    const std::string n = e.path().filename().string();
    if (std::regex_match(n, generated) && !written.count(n)) fs::remove(e.path(), ec);
  }
  std::printf("%zu manifests written to %s\n", written.size(), args.outDir.c_str());
  return 0;
}

}  // namespace agentpane::cli
