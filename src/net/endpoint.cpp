#include "net/endpoint.hpp"

#include "net/url.hpp"

namespace agentpane::net {

Endpoint Endpoint::unixSocket(std::string socketPath) {
  Endpoint e;
  e.kind = Kind::Unix;
  e.path = std::move(socketPath);
  return e;
}

Endpoint Endpoint::tcp(std::string host, std::uint16_t port) {
  Endpoint e;
  e.kind = Kind::Tcp;
  e.host = std::move(host);
  e.port = port;
  return e;
}

Endpoint Endpoint::tlsTcp(std::string host, std::uint16_t port, TlsOptions tls) {
  Endpoint e = tcp(std::move(host), port);
  e.kind = Kind::Tls;
  e.tls = std::move(tls);
  return e;
}

namespace {
std::string hostPort(const std::string& host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

Error invalid(std::string_view url, const std::string& why) {
  return Error(ErrorCode::ValidationError, "invalid endpoint '" + std::string(url) + "': " + why);
}
}  // namespace

std::string Endpoint::hostHeader() const {
  if (kind == Kind::Unix) return "localhost";
  return hostPort(host, port);
}

std::string Endpoint::describe() const {
  switch (kind) {
    case Kind::Unix:
      return "unix://" + path;
    case Kind::Tcp:
      return "tcp://" + hostPort(host, port);
    case Kind::Tls:
      return "https://" + hostPort(host, port);
  }
  return {};
}

Result<Endpoint> parseEndpoint(std::string_view url, std::uint16_t defaultPort) {
  auto parsed = parseUrl(url);
  if (!parsed.ok()) return invalid(url, parsed.error().message);
  const Url& u = parsed.value();
  if (u.scheme.empty()) return invalid(url, "missing scheme (unix://, tcp://, https://)");
  if (!u.hasAuthority) return invalid(url, "expected scheme://");

  if (u.scheme == "unix") {
    // unix:///var/run/docker.sock: an empty authority, then the socket path.
    if (!u.host.empty() || u.port || !u.userInfo.empty())
      return invalid(url, "a unix socket URL has no host: unix:///path");
    if (u.rawPath.empty() || u.rawPath == "/") return invalid(url, "empty socket path");
    if (u.query || u.fragment) return invalid(url, "queries are not supported");
    std::string path;
    for (const auto& seg : u.segments)
      path += "/" + seg;
    return Endpoint::unixSocket(std::move(path));
  }
  Endpoint::Kind kind;
  if (u.scheme == "tcp" || u.scheme == "http") {
    kind = Endpoint::Kind::Tcp;
  } else if (u.scheme == "https") {
    kind = Endpoint::Kind::Tls;
  } else {
    return invalid(url, "unsupported scheme '" + u.scheme + "'");
  }
  bool onlySlash = u.rawPath.empty() || u.rawPath == "/";
  if (!onlySlash || u.query || u.fragment || !u.userInfo.empty()) {
    return invalid(url, "paths, queries and credentials are not supported");
  }
  if (u.host.empty()) return invalid(url, "empty host");
  std::uint16_t port = u.port.value_or(defaultPort);
  if (u.port && *u.port == 0) return invalid(url, "bad port '0'");
  if (port == 0) {
    if (u.scheme == "http")
      port = 80;
    else if (u.scheme == "https")
      port = 443;
    else
      return invalid(url, "missing port");
  }
  Endpoint e = Endpoint::tcp(u.host, port);
  e.kind = kind;
  return e;
}

}  // namespace agentpane::net
