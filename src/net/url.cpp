#include "net/url.hpp"

#include <uriparser/Uri.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <string>

namespace agentpane::net {
namespace {

std::optional<std::string> text(const UriTextRangeA& r) {
  if (r.first == nullptr) return std::nullopt;
  return std::string(r.first, r.afterLast);
}

Error invalid(std::string_view url, const std::string& why) {
  std::string shown(url.substr(0, 200));
  return {ErrorCode::ValidationError, "invalid URL '" + shown + "': " + why};
}

bool isHex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

}  // namespace

Result<Url> parseUrl(std::string_view input) {
  UriUriA uri{};
  const char* errorPos = nullptr;
  const char* first = input.data();
  const char* last = input.data() + input.size();
  if (input.empty()) first = last = "";  // uriparser wants non-null pointers
  int rc = uriParseSingleUriExA(&uri, first, last, &errorPos);
  if (rc != URI_SUCCESS) {
    auto at = errorPos != nullptr ? static_cast<std::size_t>(errorPos - first) : 0;
    uriFreeUriMembersA(&uri);
    return invalid(input, "not a valid URI at offset " + std::to_string(at));
  }
  std::unique_ptr<UriUriA, void (*)(UriUriA*)> guard(&uri,
                                                     [](UriUriA* u) { uriFreeUriMembersA(u); });

  Url u;
  u.scheme = text(uri.scheme).value_or("");
  std::transform(u.scheme.begin(), u.scheme.end(), u.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  u.hasAuthority = uri.hostText.first != nullptr;
  u.userInfo = text(uri.userInfo).value_or("");
  u.host = text(uri.hostText).value_or("");
  u.hostIsIpv6 = uri.hostData.ip6 != nullptr;
  if (auto port = text(uri.portText)) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || ec != std::errc() || end != port->data() + port->size() || value > 65535) {
      return invalid(input, "bad port '" + *port + "'");
    }
    u.port = static_cast<std::uint16_t>(value);
  }
  u.absolutePath = uri.absolutePath == URI_TRUE || (u.hasAuthority && uri.pathHead != nullptr);
  if (u.absolutePath) u.rawPath = "/";
  for (const UriPathSegmentA* s = uri.pathHead; s != nullptr; s = s->next) {
    std::string raw = text(s->text).value_or("");
    if (s != uri.pathHead) u.rawPath += '/';
    u.rawPath += raw;
    auto decoded = percentDecode(raw);
    if (!decoded.ok()) return invalid(input, decoded.error().message);
    u.segments.push_back(std::move(decoded.value()));
  }
  u.query = text(uri.query);
  u.fragment = text(uri.fragment);
  return u;
}

Result<std::string> percentDecode(std::string_view s, bool plusIsSpace) {
  // uriparser's unescape leaves a malformed escape as it is; we refuse it instead, so a
  // "%zz" can never reach a handler as a literal.
  for (std::size_t i = s.find('%'); i != std::string_view::npos; i = s.find('%', i + 1)) {
    if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) {
      return Error(ErrorCode::ValidationError, "bad percent escape");
    }
  }
  // uriUnescapeInPlace works on a C string, so a decoded %00 would end it early: decode the
  // pieces between %00s and put the NULs back, for callers that refuse control bytes.
  std::string out;
  out.reserve(s.size());
  std::size_t from = 0;
  while (true) {
    std::size_t nul = s.find("%00", from);
    std::string piece(s.substr(from, nul == std::string_view::npos ? nul : nul - from));
    const char* end =
        uriUnescapeInPlaceExA(piece.data(), plusIsSpace ? URI_TRUE : URI_FALSE, URI_BR_DONT_TOUCH);
    out.append(piece.data(), static_cast<std::size_t>(end - piece.data()));
    if (nul == std::string_view::npos) break;
    out.push_back('\0');
    from = nul + 3;
  }
  return out;
}

Result<QueryParams> parseQuery(std::string_view raw) {
  QueryParams out;
  while (!raw.empty()) {
    auto amp = raw.find('&');
    auto pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = percentDecode(pair.substr(0, eq), true);
    if (!key.ok()) return key.takeError();
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = percentDecode(pair.substr(eq + 1), true);
      if (!v.ok()) return v.takeError();
      value = std::move(v.value());
    }
    out.emplace_back(std::move(key.value()), std::move(value));
  }
  return out;
}

std::string percentEncode(std::string_view s) {
  // uriEscapeEx keeps unreserved characters and encodes the rest (3 bytes at most per byte),
  // but stops at a NUL: encode the pieces between NULs.
  std::string out;
  out.reserve(s.size() * 3);
  std::size_t from = 0;
  while (true) {
    std::size_t nul = s.find('\0', from);
    std::string_view piece = s.substr(from, nul == std::string_view::npos ? nul : nul - from);
    std::string buf(piece.size() * 3 + 1, '\0');
    const char* end =
        uriEscapeExA(piece.data(), piece.data() + piece.size(), buf.data(), URI_FALSE, URI_FALSE);
    out.append(buf.data(), static_cast<std::size_t>(end - buf.data()));
    if (nul == std::string_view::npos) break;
    out += "%00";
    from = nul + 1;
  }
  return out;
}

std::string queryString(const QueryParams& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    out += out.empty() ? '?' : '&';
    out += percentEncode(k);
    out += '=';
    out += percentEncode(v);
  }
  return out;
}

}  // namespace agentpane::net
