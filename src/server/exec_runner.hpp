// Exec plumbing shared by the WebSocket stream (ws_exec.cpp) and the buffered exec
// (POST /api/sandboxes/:id/exec): opening a session off the network threads, driving one to
// completion without a thread, the bounds on buffered execs, and noticing a client leave.
// Internal to src/server.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentpane/exec.hpp"
#include "server/server_context.hpp"

namespace agentpane::server {

// SandboxService::openExec on the worker pool. The session's last reference may drop on any
// thread; its destructor audits (SQLite) and may kill, so it always runs on the pool.
boost::asio::awaitable<Result<std::shared_ptr<ExecSession>>> openExecOnPool(
    ServerContext& server, std::string sandboxId, std::vector<std::string> argv,
    ExecOptions options);

// One of the buffered-exec slots (server-wide and per sandbox); given back on destruction.
class BufferedExecSlot {
 public:
  // TooManyRequests when either bound is reached.
  static Result<std::unique_ptr<BufferedExecSlot>> take(ServerContext& server,
                                                        const std::string& sandboxId);
  ~BufferedExecSlot();
  BufferedExecSlot(const BufferedExecSlot&) = delete;
  BufferedExecSlot& operator=(const BufferedExecSlot&) = delete;

 private:
  BufferedExecSlot(ServerContext& s, std::string id) : server_(s), id_(std::move(id)) {}
  ServerContext& server_;
  std::string id_;
};

// Drives a session to its end on the caller's executor: stdin written (then EOF) while the
// output is read, each stream capped at maxOutputBytes (ExecOutputTooLarge, process killed).
boost::asio::awaitable<Result<ExecResult>> runToCompletionAsync(
    std::shared_ptr<ExecSession> session, std::optional<std::string> stdinData,
    std::size_t maxOutputBytes);

// Completes once the client on `socket` has gone (closed or reset), or when stop() is called
// (the caller is done). A client that sends its next request early (pipelining) is not
// gone: the watch ends without a verdict. Runs on the socket's strand.
class ClientWatch {
 public:
  explicit ClientWatch(boost::asio::ip::tcp::socket& socket) : socket_(socket) {}
  // True when the client went away.
  boost::asio::awaitable<bool> run();
  void stop();

 private:
  boost::asio::ip::tcp::socket& socket_;
  bool stopped_ = false;
};

}  // namespace agentpane::server
