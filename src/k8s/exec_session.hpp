// Exec into a pod over WebSocket (client-go's tools/remotecommand): the ExecSession contract
// of include/agentpane/exec.hpp on the channels of v5.channel.k8s.io, falling back to
// v4.channel.k8s.io when the apiserver does not speak v5.
//
// How it runs: the WebSocket lives on an I/O thread (net::IoThread), where one coroutine
// reads whole messages until the close handshake and queues output; the blocking methods
// only wait on that queue. The queue is bounded (maxQueuedBytes): when the caller does not
// read, the coroutine stops reading the socket, so TCP flow control slows the process
// instead of memory growing. Control frames (pings every pingInterval of silence, pongs,
// close) are handled by the reading coroutine, so a quiet process does not look dead.
//
// What this layer does not do: ExecOptions' root, workingDir and env. Kubernetes exec has
// no such fields; the provider that knows the pod (its image, its user) turns them into argv
// or refuses them. This layer runs argv exactly as given (one `command=` per element).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "agentpane/result.hpp"
#include "k8s/channel.hpp"
#include "k8s/rest_config.hpp"
#include "net/io_thread.hpp"

namespace agentpane::k8s {

struct ExecSpec {
  std::string namespaceName;  // empty: the RestConfig's namespace, else "default"
  std::string pod;
  std::string container;  // empty: the pod's only container (the apiserver refuses otherwise)
  std::vector<std::string> argv;
  bool attachStdin = false;
  // Run under a pseudo-terminal of ttyRows x ttyColumns (sent on the resize channel before
  // the session is handed out): output then comes on stdout only, as the terminal wrote it.
  bool tty = false;
  std::uint16_t ttyRows = 24;
  std::uint16_t ttyColumns = 80;

  // 0 = none. On expiry the session reports ExecTimeout and closes the stream. The remote
  // process MUST die too, and Kubernetes has no API to kill an exec'd process: closing the
  // stream only gives it EOF on stdin (if attached) and a broken pipe on its next write, so a
  // quiet `sleep` would live on. Hence, with killInPod (default), argv is run under coreutils'
  // `timeout -s KILL <seconds>` in the container: it starts the command in its own process
  // group and SIGKILLs that group when the time is up, even when the client is gone. The
  // image MUST have `timeout` (the sandbox image has coreutils); a command that leaves the
  // process group (setsid) escapes it. Without killInPod, the remote process is not killed.
  std::chrono::milliseconds timeout{0};
  bool killInPod = true;

  // Offer v5 first then v4 (false: offer only v4, to exercise the fallback).
  bool offerV5 = true;
  // A bound on one WebSocket message (the kubelet sends output in pieces of 32 KiB or less;
  // anything larger than this fails the session rather than growing memory).
  std::size_t maxMessageBytes = 16u << 20;
  // Output read ahead of read() before the reading coroutine pauses.
  std::size_t maxQueuedBytes = 4u << 20;
  // A ping after this long without a message from the server; the stream fails after twice
  // this long without any (client-go pings every 5 s).
  std::chrono::milliseconds pingInterval{5000};
};

// The request target: [prefix]/api/v1/namespaces/{ns}/pods/{pod}/exec?command=…&… with
// every argv element percent-encoded as its own `command=`, stdout on, stderr on unless
// spec.tty (a terminal has one output), tty as spec.tty.
std::string execTarget(const RestConfig& cfg, const ExecSpec& spec,
                       const std::vector<std::string>& argv);

// The argv actually sent: spec.argv, or wrapped in `timeout -s KILL <s>` (see ExecSpec);
// under a terminal `timeout --foreground`, so that the command stays in the terminal's
// foreground process group (else it stops on its first terminal read; children of the
// command then escape the timeout).
std::vector<std::string> effectiveArgv(const ExecSpec& spec);

// Thread-safety as ExecSession says. Additionally:
//  - closeStdin() on v5 sends the close signal [255, 0]: the process reads EOF. On v4 there
//    is no way to send EOF: closeStdin() MUST then fail with ValidationError (details
//    reason "stdinEofUnsupported") and leave the stream as it was; a later call fails the
//    same way (idempotent). A caller that needs EOF on v4 can only cancel().
//  - cancel() closes the connection at once (no close handshake) and unblocks every call;
//    it kills the remote process only as far as the timeout wrapper or a closed stdin does
//    (see ExecSpec::timeout): Kubernetes gives no other way.
//  - read() returns output in arrival order; neighbouring pieces of one stream may be
//    merged into one chunk. It returns std::nullopt only after the server's close handshake,
//    so nothing sent before the status is ever lost.
//  - wait() gives the exit code of the Status on channel 3 (Success -> 0, NonZeroExitCode ->
//    its ExitCode cause; a process killed by signal N reports 128+N, as the runtime says).
//    A Failure that is not an exit code is its own error (exitCodeFromStatus): a container
//    that does not exist is K8sNotFound. A stream that ends without a Status is
//    SandboxExecFailed, never 0.
class K8sExecSession : public ExecSession {
 public:
  // The subprotocol the server chose.
  [[nodiscard]] virtual ChannelProtocol protocol() const = 0;
};

// Connects, authenticates and upgrades. Blocking: MUST NOT be called from an I/O thread
// (CredentialSource::current() may run a plugin). A 401 at the handshake invalidates the
// credentials and retries once when the source says a retry may help.
// Errors: a refused handshake maps the apiserver's Status as the REST client does
// (k8s/status.hpp: 401 K8sAuthFailed, 403 K8sForbidden, 404 K8sNotFound for a missing pod,
// ...), and a 400 naming the container is K8sNotFound with details reason
// "ContainerNotFound"; no connection K8sUnreachable (K8S_CLUSTER_UNREACHABLE); a 101 that
// chose neither channel protocol SandboxExecFailed.
Result<std::unique_ptr<K8sExecSession>> openExec(const std::shared_ptr<net::IoThread>& io,
                                                 const RestConfig& cfg, const ExecSpec& spec);

// How a refused upgrade (an HTTP status and its body, usually a metav1.Status) maps to an
// error. Pure; exposed for unit tests.
Error handshakeRefused(int httpStatus, std::string_view body, const std::string& what);

}  // namespace agentpane::k8s
