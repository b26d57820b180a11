#include "net/detail/connection.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <string>

#include "net/errors.hpp"

namespace agentpane::net {

Error netError(std::string_view kind, std::string message) {
  ErrorCode code = ErrorCode::Internal;
  if (kind == kConnect || kind == kTls)
    code = ErrorCode::ServerUnreachable;
  else if (kind == kTimeout)
    code = ErrorCode::Timeout;
  else if (kind == kTooLarge)
    code = ErrorCode::PayloadTooLarge;
  else if (kind == kConfig)
    code = ErrorCode::ValidationError;
  return Error(code, std::move(message), {{"net", std::string(kind)}});
}

std::string netKind(const Error& e) {
  auto it = e.details.find("net");
  return it == e.details.end() ? std::string() : it->second;
}

}  // namespace agentpane::net

namespace agentpane::net::detail {

void setDeadline(AnyStream& s, Deadline d) {
  withLowest(s, [&](auto& low) {
    if (d == kNoDeadline)
      low.expires_never();
    else
      low.expires_at(d);
  });
}

void closeNow(AnyStream& s) {
  withLowest(s, [](auto& low) {
    error_code ignored;
    low.socket().shutdown(asio::socket_base::shutdown_both, ignored);
    low.socket().close(ignored);
  });
}

void shutdownSend(AnyStream& s, error_code& ec) {
  withLowest(s, [&](auto& low) { low.socket().shutdown(asio::socket_base::shutdown_send, ec); });
}

Error ioError(const error_code& ec, const std::string& what) {
  if (ec == beast::error::timeout) return netError(kTimeout, what + ": timed out");
  if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
    return netError(kClosed, what + ": connection closed");
  }
  if (ec == asio::error::connection_refused || ec == asio::error::not_found ||
      ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
      ec == boost::system::errc::no_such_file_or_directory ||
      ec == asio::error::network_unreachable || ec == asio::error::host_unreachable ||
      ec == asio::error::access_denied) {
    return netError(kConnect, what + ": " + ec.message());
  }
  return netError(kIo, what + ": " + ec.message());
}

namespace {

// TLS session resumption for clients: the last resumable session per server (host, port,
// server name), kept on the SSL_CTX (contexts are per TLS settings, client certificate
// included), offered on the next connection to that server. A new connection then skips the
// certificate exchange and its signature checks (TLS 1.3 PSK); a server that declines simply
// does a full handshake. Sessions arrive by callback (TLS 1.3 tickets come after the
// handshake).
struct SessionStore {
  std::mutex mu;
  std::map<std::string, SSL_SESSION*> byServer;
  ~SessionStore() {
    for (auto& [k, s] : byServer)
      SSL_SESSION_free(s);
  }
};

int sessionStoreIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<SessionStore*>(ptr);
      });
  return index;
}

int serverKeyIndex() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return index;
}

int onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* store =
      static_cast<SessionStore*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sessionStoreIndex()));
  auto* key = static_cast<std::string*>(SSL_get_ex_data(ssl, serverKeyIndex()));
  if (store == nullptr || key == nullptr || !SSL_SESSION_is_resumable(session)) return 0;
  // A copy: OpenSSL marks a connection's own session unresumable when that connection ends
  // without close_notify (as many servers end an exec stream); a TLS 1.3 ticket stays valid.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  std::lock_guard lock(store->mu);
  SSL_SESSION*& slot = store->byServer[*key];
  if (slot != nullptr) SSL_SESSION_free(slot);
  slot = copy;
  return 0;  // the connection keeps its own reference
}

void enableSessionCache(ssl::context& ctx) {
  SSL_CTX* c = ctx.native_handle();
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_ex_data(c, sessionStoreIndex(), new SessionStore());
  SSL_CTX_sess_set_new_cb(c, onNewSession);
}

// Offers the server's last session, and tags the connection so that its own new sessions are
// stored for that server.
bool offerSession(SSL* ssl, const std::string& serverKey, bool resume) {
  auto* store =
      static_cast<SessionStore*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sessionStoreIndex()));
  if (store == nullptr) return false;
  SSL_set_ex_data(ssl, serverKeyIndex(), new std::string(serverKey));
  std::lock_guard lock(store->mu);
  auto it = store->byServer.find(serverKey);
  if (!resume || it == store->byServer.end() || !SSL_SESSION_is_resumable(it->second)) return false;
  return SSL_set_session(ssl, it->second) == 1;  // takes its own reference
}

// A server that failed a resumed handshake gets full ones from now on.
void forgetSession(ssl::context& ctx, const std::string& serverKey) {
  auto* store =
      static_cast<SessionStore*>(SSL_CTX_get_ex_data(ctx.native_handle(), sessionStoreIndex()));
  if (store == nullptr) return;
  std::lock_guard lock(store->mu);
  auto it = store->byServer.find(serverKey);
  if (it == store->byServer.end()) return;
  SSL_SESSION_free(it->second);
  store->byServer.erase(it);
}

}  // namespace

Result<std::shared_ptr<ssl::context>> makeTlsContext(const TlsOptions& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  auto fail = [](const std::string& what, const error_code& e) {
    return netError(kConfig, "TLS setup: " + what + ": " + e.message());
  };
  if (!tls.caPem.empty()) {
    ctx->add_certificate_authority(asio::buffer(tls.caPem), ec);
    if (ec) return fail("CA data", ec);
  } else if (!tls.caFile.empty()) {
    ctx->load_verify_file(tls.caFile, ec);
    if (ec) return fail("CA file " + tls.caFile, ec);
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) return fail("system trust store", ec);
  }
  if (!tls.certPem.empty()) {
    ctx->use_certificate_chain(asio::buffer(tls.certPem), ec);
    if (ec) return fail("client certificate data", ec);
  } else if (!tls.certFile.empty()) {
    ctx->use_certificate_chain_file(tls.certFile, ec);
    if (ec) return fail("client certificate " + tls.certFile, ec);
  }
  if (!tls.keyPem.empty()) {
    ctx->use_private_key(asio::buffer(tls.keyPem), ssl::context::pem, ec);
    if (ec) return fail("client key data", ec);
  } else if (!tls.keyFile.empty()) {
    ctx->use_private_key_file(tls.keyFile, ssl::context::pem, ec);
    if (ec) return fail("client key " + tls.keyFile, ec);
  }
  ctx->set_verify_mode(tls.verifyPeer ? ssl::verify_peer : ssl::verify_none, ec);
  enableSessionCache(*ctx);
  return ctx;
}

std::optional<IdleConnection> ConnectionPool::take() {
  std::vector<IdleConnection> expired;  // closed outside the lock
  std::optional<IdleConnection> out;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    while (!idle_.empty()) {
      IdleConnection c = std::move(idle_.back());
      idle_.pop_back();
      if (now - c.since > idleTimeout_) {
        expired.push_back(std::move(c));
        continue;
      }
      out = std::move(c);
      break;
    }
  }
  return out;
}

void ConnectionPool::put(IdleConnection c) {
  std::optional<IdleConnection> dropped;
  std::lock_guard lock(mu_);
  if (idle_.size() >= maxIdle_) {
    dropped = std::move(idle_.front());  // the least recently used goes
    idle_.erase(idle_.begin());
  }
  idle_.push_back(std::move(c));
}

bool idleConnectionUsable(Connection& c) {
  if (c.buffer.size() != 0) return false;
  return withLowest(c.stream, [](auto& low) {
    if (!low.socket().is_open()) return false;
    char b = 0;
    const auto n = ::recv(low.socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    // EOF (0), stray bytes (>0, e.g. a TLS close_notify) or an error: not reusable.
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  });
}

namespace {

using asio::redirect_error;
using asio::use_awaitable;

Error connectError(const Endpoint& ep, const error_code& ec) {
  if (ec == beast::error::timeout) {
    return netError(kTimeout, "connecting to " + ep.describe() + ": timed out");
  }
  return netError(kConnect, "cannot connect to " + ep.describe() + ": " + ec.message());
}

asio::awaitable<Result<asio::ip::tcp::resolver::results_type>> resolve(Executor strand,
                                                                       const Endpoint& ep,
                                                                       Deadline deadline) {
  asio::ip::tcp::resolver resolver(strand);
  // The resolver has no timeout of its own: a timer cancels it.
  asio::steady_timer timer(strand);
  bool expired = false;
  if (deadline != kNoDeadline) {
    timer.expires_at(deadline);
    timer.async_wait([&](const error_code& e) {
      if (!e) {
        expired = true;
        resolver.cancel();
      }
    });
  }
  error_code ec;
  auto results = co_await resolver.async_resolve(ep.host, std::to_string(ep.port),
                                                 redirect_error(use_awaitable, ec));
  timer.cancel();
  if (expired) co_return netError(kTimeout, "resolving " + ep.host + ": timed out");
  if (ec) co_return netError(kConnect, "cannot resolve " + ep.host + ": " + ec.message());
  co_return results;
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<Connection>>> connect(Executor strand, const Endpoint& ep,
                                                             ssl::context* tls, Deadline deadline) {
  error_code ec;
  if (ep.kind == Endpoint::Kind::Unix) {
    auto conn = std::make_unique<Connection>(std::in_place_type<UnixStream>, strand);
    auto& s = std::get<UnixStream>(conn->stream);
    setDeadline(conn->stream, deadline);
    co_await s.async_connect(asio::local::stream_protocol::endpoint(ep.path),
                             redirect_error(use_awaitable, ec));
    if (ec) co_return connectError(ep, ec);
    co_return conn;
  }

  auto resolved = co_await resolve(strand, ep, deadline);
  if (!resolved.ok()) co_return resolved.takeError();

  if (ep.kind == Endpoint::Kind::Tcp) {
    auto conn = std::make_unique<Connection>(std::in_place_type<TcpStream>, strand);
    auto& s = std::get<TcpStream>(conn->stream);
    setDeadline(conn->stream, deadline);
    co_await s.async_connect(resolved.value(), redirect_error(use_awaitable, ec));
    if (ec) co_return connectError(ep, ec);
    s.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    co_return conn;
  }

  if (tls == nullptr) co_return netError(kConfig, "TLS endpoint without a TLS context");
  const std::string& name = ep.tls.serverName.empty() ? ep.host : ep.tls.serverName;
  const std::string serverKey = ep.host + '\n' + std::to_string(ep.port) + '\n' + name;
  // Resuming the last session first; a server that fails that (a misconfigured session
  // context) is asked once more with a full handshake.
  for (bool resume : {true, false}) {
    auto conn =
        std::make_unique<Connection>(std::in_place_type<TlsStream>, TcpStream(strand), *tls);
    auto& s = std::get<TlsStream>(conn->stream);
    setDeadline(conn->stream, deadline);
    co_await beast::get_lowest_layer(s).async_connect(resolved.value(),
                                                      redirect_error(use_awaitable, ec));
    if (ec) co_return connectError(ep, ec);
    beast::get_lowest_layer(s).socket().set_option(asio::ip::tcp::no_delay(true), ec);

    error_code addrEc;
    asio::ip::make_address(name, addrEc);
    // SNI is for names only (RFC 6066 forbids literal addresses).
    if (addrEc && !SSL_set_tlsext_host_name(s.native_handle(), name.c_str())) {
      co_return netError(kTls, "TLS: cannot set server name " + name);
    }
    if (ep.tls.verifyPeer) s.set_verify_callback(ssl::host_name_verification(name));
    const bool offered = offerSession(s.native_handle(), serverKey, resume);
    co_await s.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
    if (ec == beast::error::timeout) co_return connectError(ep, ec);
    if (ec && offered) {
      forgetSession(*tls, serverKey);
      continue;
    }
    if (ec)
      co_return netError(kTls, "TLS handshake with " + ep.describe() + " failed: " + ec.message());
    co_return conn;
  }
  co_return netError(kTls, "TLS handshake with " + ep.describe() + " failed");
}

}  // namespace agentpane::net::detail
