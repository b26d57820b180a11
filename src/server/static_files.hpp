// The web page's built assets (web/dist), served at `/` by the server.
//
// Loaded into memory once, at start, so that serving never touches the disk on a network
// thread. Hashed assets (Vite's `assets/<name>-<hash>.<ext>`) are immutable; index.html is
// revalidated on every load. Paths with no file extension fall back to index.html (the page
// routes on the client); a missing asset with an extension is a 404.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "server/api.hpp"

namespace agentpane::server {

class StaticFiles {
 public:
  // Reads every regular file under `root` (symlinks leaving it are skipped), at most
  // `maxTotalBytes` in all. An empty result (no index.html) means "not built".
  static StaticFiles load(const std::filesystem::path& root,
                          std::size_t maxTotalBytes = std::size_t{64} << 20);

  [[nodiscard]] bool available() const { return files_.count("index.html") != 0; }
  [[nodiscard]] std::size_t fileCount() const { return files_.size(); }
  [[nodiscard]] const std::string& problem() const { return problem_; }

  // The reply for a GET of `path` (already split and checked by parseTarget: no dot
  // segments), or nullopt when the path is not the page's (under /api, or /metrics).
  [[nodiscard]] std::optional<Reply> serve(std::string_view path) const;

  // "text/html; charset=utf-8" and so on, by extension.
  static std::string contentType(std::string_view name);

 private:
  struct File {
    std::string body;
    std::string contentType;
    bool immutable = false;
  };
  std::map<std::string, File, std::less<>> files_;  // relative path, '/'-separated
  std::string problem_;
};

}  // namespace agentpane::server
