#include "k8s/ws_tls_cache.hpp"

#include <list>
#include <mutex>
#include <string>
#include <utility>

#include "net/detail/connection.hpp"

namespace agentpane::k8s {

namespace {

constexpr std::size_t kCacheSize = 8;

std::string keyOf(const net::TlsOptions& t) {
  std::string k;
  for (const std::string* f :
       {&t.caFile, &t.certFile, &t.keyFile, &t.caPem, &t.certPem, &t.keyPem, &t.serverName}) {
    k += std::to_string(f->size());
    k += ':';
    k += *f;
  }
  k += t.verifyPeer ? '1' : '0';
  return k;
}

}  // namespace

Result<std::shared_ptr<boost::asio::ssl::context>> tlsContextFor(const net::TlsOptions& tls,
                                                                 const Credentials& creds) {
  net::TlsOptions t = tls;
  if (!creds.certPem.empty()) {
    t.certPem = creds.certPem;
    t.keyPem = creds.keyPem;
    t.certFile.clear();
    t.keyFile.clear();
  }
  static std::mutex mu;
  static std::list<std::pair<std::string, std::shared_ptr<boost::asio::ssl::context>>> cache;
  const std::string key = keyOf(t);
  {
    std::lock_guard lock(mu);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->first == key) {
        cache.splice(cache.begin(), cache, it);
        return cache.front().second;
      }
    }
  }
  auto ctx = net::detail::makeTlsContext(t);
  if (!ctx.ok()) return ctx.takeError();
  std::lock_guard lock(mu);
  cache.emplace_front(key, ctx.value());
  if (cache.size() > kCacheSize) cache.pop_back();
  return ctx.value();
}

}  // namespace agentpane::k8s
