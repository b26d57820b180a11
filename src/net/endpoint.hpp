// Where an HTTP server lives and how to reach it: a unix socket, plain TCP, or TCP with TLS.
// Shared by every client (Docker engine, Kubernetes API, the CLI talking to our server).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agentpane/result.hpp"

namespace agentpane::net {

// Client-side TLS material. Inline PEM (kubeconfig `*-data`) wins over the file form.
struct TlsOptions {
  std::string caFile;    // empty and no caPem: the system trust store
  std::string certFile;  // client certificate (mutual TLS), optional
  std::string keyFile;
  std::string caPem;
  std::string certPem;
  std::string keyPem;
  std::string serverName;  // SNI and the name verified; empty: the endpoint host
  bool verifyPeer = true;  // false only when explicitly asked (insecure-skip-tls-verify)
};

struct Endpoint {
  enum class Kind { Unix, Tcp, Tls };
  Kind kind = Kind::Unix;
  std::string path;  // Unix: socket path
  std::string host;  // Tcp/Tls: name or address (IPv6 without brackets)
  std::uint16_t port = 0;
  TlsOptions tls;  // Tls only

  static Endpoint unixSocket(std::string socketPath);
  static Endpoint tcp(std::string host, std::uint16_t port);
  static Endpoint tlsTcp(std::string host, std::uint16_t port, TlsOptions tls);

  // Value of the Host header: "localhost" for unix sockets (what docker sends), else host[:port].
  [[nodiscard]] std::string hostHeader() const;
  // For messages: unix:///var/run/docker.sock, tcp://h:2375, https://h:2376.
  [[nodiscard]] std::string describe() const;
};

// Parses unix:///path, tcp://host[:port], http://host[:port], https://host[:port] and
// [v6]:port forms. A missing port takes defaultPort (0 = a port is required). Paths,
// queries and credentials in the URL are refused (ValidationError), not ignored.
Result<Endpoint> parseEndpoint(std::string_view url, std::uint16_t defaultPort = 0);

}  // namespace agentpane::net
