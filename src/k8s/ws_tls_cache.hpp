// One OpenSSL context per (TLS options, client certificate), shared by every exec session
// to the same cluster: building one parses the CA bundle and the key, which would otherwise
// be paid on each exec. An SSL_CTX is safe to share between threads once configured.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "agentpane/result.hpp"
#include "k8s/rest_config.hpp"
#include "net/endpoint.hpp"

namespace agentpane::k8s {

// The context for `tls` with the client certificate of `creds` (when it has one; it then
// replaces the endpoint's own certificate). Cached: the last few distinct ones are kept.
Result<std::shared_ptr<boost::asio::ssl::context>> tlsContextFor(const net::TlsOptions& tls,
                                                                 const Credentials& creds);

}  // namespace agentpane::k8s
