// `agentpane serve`'s HTTP and WebSocket server (Boost.Beast, C++20 coroutines).
//
// Threads: one io_context for the network (1-2 threads, a strand per connection) and a
// separate worker pool for the blocking SandboxService calls, so that no SQLite or provider
// call ever runs on a network thread. WebSocket exec streams need no thread: they drive
// ExecSession's asynchronous form on the network threads. Buffered execs (POST …/exec) wait
// on a pool of their own so that they cannot starve short requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "agentpane/result.hpp"

namespace agentpane {
class SandboxService;
}
namespace agentpane::k8s {
class ClusterInfo;
}

namespace agentpane::server {

inline constexpr const char* kServerVersion = "0.1.0";

struct ServerOptions {
  std::string listen = "127.0.0.1:7300";  // "host:port", "[v6]:port"; port 0 = any free port
  std::filesystem::path home;             // token file lives here (created 0700)
  std::filesystem::path tokenFile;        // set: the token is read from it (loadServerToken)
  // The built web page (web/dist), served at `/`. Empty: no page. A directory without an
  // index.html: the server starts, logs why, and answers `/` with 503 and how to build it.
  std::filesystem::path webRoot;
  int networkThreads = 1;  // 1..2 is plenty
  int workerThreads = 4;   // blocking service calls
  // Create, start, stop and remove wait on engines and clusters (an image, a pod start):
  // they run on a pool of their own so that they never starve the workers. Wide: a claim
  // from the warm pool is over in milliseconds but needs a thread like a cold create that
  // waits seconds (with 8, the 9th of 20 parallel claims waited for a whole claim).
  int lifecycleThreads = 32;
  // Concurrent WebSocket exec/attach sessions; beyond it TOO_MANY_REQUESTS (429). A stream
  // costs no thread, only descriptors (the client's socket and the provider's): 0 derives
  // the bound from the descriptor limit (raised to its hard maximum at start).
  int maxStreams = 0;
  // Buffered execs (POST …/exec): at most this many at once on the server and per sandbox
  // (TOO_MANY_REQUESTS beyond), each stdout and stderr at most maxBufferedOutputBytes
  // (EXEC_OUTPUT_TOO_LARGE beyond: larger outputs belong on the stream).
  int maxBufferedExecs = 32;
  int maxBufferedExecsPerSandbox = 8;
  std::size_t maxBufferedOutputBytes = 16u << 20;

  std::uint64_t maxBodyBytes = 16u << 20;  // 413 beyond
  std::uint32_t maxHeaderBytes = 16u << 10;
  std::uint64_t maxWsMessageBytes = 1u << 20;      // client -> server frames
  std::chrono::seconds idleTimeout{60};            // keep-alive connection waiting for a request
  std::chrono::seconds ioTimeout{60};              // reading a body / writing a response
  std::chrono::seconds wsPingInterval{20};         // idle WebSocket: ping, close after 2x silence
  std::chrono::seconds wsStartTimeout{30};         // first message of an exec stream
  std::chrono::seconds sessionTtl{12 * 3600};      // browser sessions (POST /api/session)
  std::chrono::milliseconds shutdownGrace{10000};  // in-flight requests may finish within this
  std::chrono::seconds defaultExecTimeout{3600};   // POST exec without timeoutSeconds

  // The Kubernetes feature (ENABLE_K8S_SANDBOX). Off, and off in the default sandbox config
  // too: the cluster routes answer K8S_DISABLED. `cluster`: the routes' clients; null: one
  // over the process environment (kubeconfig discovery of SPEC).
  bool enableK8s = false;
  std::shared_ptr<k8s::ClusterInfo> cluster;
};

class Server {
 public:
  Server(SandboxService& service, ServerOptions options);
  ~Server();  // stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Creates the home directory and token, binds, and starts the threads. Errors: a bad
  // listen address (ValidationError), a port in use or an unusable home (Internal).
  Result<void> start();
  // The bound port (the real one when listening on port 0). 0 before start().
  [[nodiscard]] std::uint16_t port() const;
  // The bearer token (for tests and for `serve` to print where it lives).
  [[nodiscard]] const std::string& token() const;

  // Graceful: stop accepting, let in-flight requests finish (shutdownGrace), close
  // WebSockets with a close frame, then tear down. Idempotent; blocks; never call it from
  // a handler.
  void stop();

  // Blocks until SIGINT or SIGTERM (or stop() from another thread), then stops.
  void runUntilSignal();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentpane::server
