#include "server/static_files.hpp"

#include <fstream>
#include <iterator>
#include <system_error>

namespace agentpane::server {
namespace fs = std::filesystem;

namespace {

std::string_view extensionOf(std::string_view name) {
  auto slash = name.rfind('/');
  auto base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  return base.substr(dot + 1);
}

// The page itself may only talk to its own origin; xterm.js sets inline styles.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

}  // namespace

std::string StaticFiles::contentType(std::string_view name) {
  static const std::map<std::string_view, const char*, std::less<>> kTypes = {
      {"html", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"ico", "image/x-icon"},
      {"webp", "image/webp"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"txt", "text/plain; charset=utf-8"},
      {"webmanifest", "application/manifest+json"},
  };
  auto it = kTypes.find(extensionOf(name));
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

StaticFiles StaticFiles::load(const fs::path& root, std::size_t maxTotalBytes) {
  StaticFiles out;
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(root, ec);
  if (ec || !fs::is_directory(base, ec)) {
    out.problem_ = root.string() + " is not a directory";
    return out;
  }
  std::size_t total = 0;
  for (auto it = fs::recursive_directory_iterator(base, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const fs::path real = fs::canonical(it->path(), ec);
    if (ec) continue;
    auto rel = real.lexically_relative(base);
    if (rel.empty() || *rel.begin() == "..") continue;  // a link out of the root
    std::ifstream in(real, std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) continue;
    total += body.size();
    if (total > maxTotalBytes) {
      out.files_.clear();
      out.problem_ = root.string() + " holds more than " + std::to_string(maxTotalBytes) +
                     " bytes; not served";
      return out;
    }
    const std::string name = rel.generic_string();
    File f;
    f.contentType = contentType(name);
    f.immutable = name.rfind("assets/", 0) == 0;  // Vite names these by content hash
    f.body = std::move(body);
    out.files_.emplace(name, std::move(f));
  }
  if (!out.available() && out.problem_.empty()) out.problem_ = "no index.html in " + root.string();
  return out;
}

std::optional<Reply> StaticFiles::serve(std::string_view path) const {
  if (path == "/metrics" || path == "/api" || path.rfind("/api/", 0) == 0) return std::nullopt;
  std::string_view rel = path;
  while (!rel.empty() && rel.front() == '/')
    rel.remove_prefix(1);
  if (rel.empty()) rel = "index.html";

  const File* file = nullptr;
  if (auto it = files_.find(rel); it != files_.end()) {
    file = &it->second;
  } else if (extensionOf(rel).empty()) {
    if (auto idx = files_.find(std::string_view("index.html")); idx != files_.end())
      file = &idx->second;  // a route of the page itself
  }

  Reply r;
  if (file == nullptr) {
    if (!available()) {
      r.status = 503;
      r.contentType = "text/plain; charset=utf-8";
      r.body =
          "The web page is not built. Build it with `npm --prefix web ci && npm --prefix web run "
          "build` (the README's setup command does), then restart `agentpane serve`.\n";
      return r;
    }
    return errorReply(ErrorCode::NotFound, "no such file: " + std::string(rel.substr(0, 200)));
  }
  r.body = file->body;
  r.contentType = file->contentType;
  r.headers.emplace_back("Cache-Control",
                         file->immutable ? "public, max-age=31536000, immutable" : "no-cache");
  if (file->contentType.rfind("text/html", 0) == 0) {
    r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("X-Frame-Options", "DENY");
  }
  return r;
}

}  // namespace agentpane::server
