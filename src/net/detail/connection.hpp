// Internal to ap_net: one connection over any of the three transports, and the helpers
// that let coroutine code treat them alike.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "net/byte_stream.hpp"
#include "net/endpoint.hpp"

namespace agentpane::net::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using error_code = boost::system::error_code;

using Executor = asio::any_io_executor;
using UnixStream = beast::basic_stream<asio::local::stream_protocol>;
using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using AnyStream = std::variant<UnixStream, TcpStream, TlsStream>;

struct Connection {
  template <typename S, typename... Args>
  explicit Connection(std::in_place_type_t<S> t, Args&&... args)
      : stream(t, std::forward<Args>(args)...) {}
  AnyStream stream;
  beast::flat_buffer buffer;  // bytes read past the HTTP header land here
};

// The socket under any stream (for close, half-close and deadlines).
template <typename F>
decltype(auto) withLowest(AnyStream& s, F&& f) {
  return std::visit([&](auto& st) -> decltype(auto) { return f(beast::get_lowest_layer(st)); }, s);
}

void setDeadline(AnyStream& s, Deadline d);  // kNoDeadline: never
void closeNow(AnyStream& s);
void shutdownSend(AnyStream& s, error_code& ec);

// Builds the TLS context for an endpoint (files or inline PEM). Errors are kConfig.
Result<std::shared_ptr<ssl::context>> makeTlsContext(const TlsOptions& tls);

// Connects (and handshakes) before the deadline, on the given strand.
asio::awaitable<Result<std::unique_ptr<Connection>>> connect(Executor strand, const Endpoint& ep,
                                                             ssl::context* tls, Deadline deadline);

// A kept-alive connection waiting for its next request, with the strand it was made on
// (its I/O objects are bound to that executor, so it is only ever used there).
struct IdleConnection {
  std::unique_ptr<Connection> conn;
  Executor ex;
  Clock::time_point since;
};

// Idle connections of one HttpClient. Thread-safe. Connections in it have no operation
// pending, so they may be destroyed (closed) from any thread.
class ConnectionPool {
 public:
  ConnectionPool(std::size_t maxIdle, std::chrono::milliseconds idleTimeout)
      : maxIdle_(maxIdle), idleTimeout_(idleTimeout) {}
  // The most recently used idle connection that has not aged out, if any.
  std::optional<IdleConnection> take();
  void put(IdleConnection c);

 private:
  std::mutex mu_;
  std::vector<IdleConnection> idle_;
  std::size_t maxIdle_;
  std::chrono::milliseconds idleTimeout_;
};

// False when the peer has closed an idle connection (or sent bytes nobody asked for): it
// cannot carry another request. Non-blocking; call on the connection's strand.
bool idleConnectionUsable(Connection& c);

// Maps an I/O error to a net error (timeout, closed, io...).
Error ioError(const error_code& ec, const std::string& what);

}  // namespace agentpane::net::detail
