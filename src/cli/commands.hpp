// Commands that run locally rather than through the API.
#pragma once

#include <string>
#include <vector>

namespace agentpane::cli {

struct ServeArgs {
  std::string listen = "127.0.0.1:7300";
  std::string home;            // empty: AGENTPANE_HOME or ~/.agentpane
  int orphanGraceSeconds = 0;  // 0: the service default
  int reconcileSeconds = 0;    // 0: the service default
  // --project-root (repeatable); empty: AGENTPANE_PROJECT_ROOTS, else $HOME and the temp dir.
  std::vector<std::string> projectRoots;
  int maxStreams = 0;      // 0: derived from the descriptor limit
  int maxExecs = 0;        // 0: the server default
  int warmPoolLimit = -1;  // -1: the service default
  std::string webRoot;     // --web-root; empty: AGENTPANE_WEB_ROOT, else web/dist by the binary
};

// `agentpane serve`: runs until SIGTERM/SIGINT.
int runServeCommand(const ServeArgs& args);

// `agentpane manifests`: the deployment's Kubernetes objects (k8s/manifests.hpp) as one YAML
// stream on stdout, a JSON List (--json), or one file per object in --out-dir (which then
// holds exactly them). Local: no server, no cluster.
struct ManifestArgs {
  std::string namespaceName = "agentpane-sandboxes";
  std::string image = "agentpane/server:latest";
  std::string imagePullPolicy = "IfNotPresent";
  std::string sandboxImagePullPolicy = "IfNotPresent";
  std::string workspace = "emptyDir";
  std::string storageClass;
  std::string tokenSecret = "agentpane-token";
  int port = 7300;
  std::vector<std::string> apiserverEndpoints;
  std::string outDir;
  bool asJson = false;
};
int runManifests(const ManifestArgs& args);

// `agentpane doctor`: checks the engine, the image, the database, the token and the
// server, and with the Kubernetes provider on, the cluster and every API verb the server uses
// (SelfSubjectAccessReview; each missing verb named); prints what to do about each problem.
// Exit 0 only when everything is fine.
int runDoctor();

// `agentpane k8s check-pod FILE`: prints each Pod Security violation of the pod (or pod
// template) in FILE (JSON or YAML, "-" for stdin) at `level`; exits non-zero (with
// K8S_POD_SECURITY_VIOLATION) when a pod would be refused. Local: no server, no cluster.
int runCheckPod(const std::string& file, const std::string& level, bool asJson);

}  // namespace agentpane::cli
