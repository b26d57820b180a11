#include "net/endpoint.hpp"

#include <charconv>

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
  auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return invalid(url, "missing scheme (unix://, tcp://, https://)");
  std::string_view scheme = url.substr(0, sep);
  std::string_view rest = url.substr(sep + 3);

  if (scheme == "unix") {
    if (rest.empty()) return invalid(url, "empty socket path");
    return Endpoint::unixSocket(std::string(rest));
  }
  Endpoint::Kind kind;
  if (scheme == "tcp" || scheme == "http") {
    kind = Endpoint::Kind::Tcp;
  } else if (scheme == "https") {
    kind = Endpoint::Kind::Tls;
  } else {
    return invalid(url, "unsupported scheme '" + std::string(scheme) + "'");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return invalid(url, "paths, queries and credentials are not supported");
  }
  std::string host;
  std::string_view portText;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return invalid(url, "unterminated [ in host");
    host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid(url, "junk after ]");
      portText = after.substr(1);
    }
  } else {
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = std::string(rest.substr(0, colon));
      portText = rest.substr(colon + 1);
    } else {
      host = std::string(rest);
    }
  }
  if (host.empty()) return invalid(url, "empty host");
  std::uint16_t port = defaultPort;
  if (!portText.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), value);
    if (ec != std::errc() || end != portText.data() + portText.size() || value == 0 ||
        value > 65535) {
      return invalid(url, "bad port '" + std::string(portText) + "'");
    }
    port = static_cast<std::uint16_t>(value);
  }
  if (port == 0) {
    if (scheme == "http")
      port = 80;
    else if (scheme == "https")
      port = 443;
    else
      return invalid(url, "missing port");
  }
  Endpoint e = Endpoint::tcp(std::move(host), port);
  e.kind = kind;
  return e;
}

}  // namespace agentpane::net
