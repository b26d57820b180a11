#include "k8s/watch_splitter.hpp"

namespace agentpane::k8s {

void JsonObjectSplitter::reset() {
  cur_.clear();
  closers_.clear();
  inString_ = false;
  escape_ = false;
  failed_ = false;
}

Result<void> JsonObjectSplitter::feed(std::string_view bytes, std::vector<std::string>& out) {
  if (failed_) return Error(ErrorCode::ValidationError, "watch stream: splitter failed earlier");
  std::size_t start = 0;  // where the part of `bytes` that belongs to cur_ begins
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (closers_.empty()) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
      if (c != '{') {
        failed_ = true;
        return Error(ErrorCode::ValidationError,
                     std::string("watch stream: expected a JSON object, got byte 0x") +
                         "0123456789abcdef"[(static_cast<unsigned char>(c) >> 4) & 0xf] +
                         "0123456789abcdef"[static_cast<unsigned char>(c) & 0xf]);
      }
      closers_.push_back('}');
      start = i;
      continue;
    }
    if (inString_) {
      if (escape_)
        escape_ = false;
      else if (c == '\\')
        escape_ = true;
      else if (c == '"')
        inString_ = false;
    } else if (c == '"') {
      inString_ = true;
    } else if (c == '{' || c == '[') {
      closers_.push_back(c == '{' ? '}' : ']');
    } else if (c == '}' || c == ']') {
      if (c != closers_.back()) {
        failed_ = true;
        return Error(ErrorCode::ValidationError, std::string("watch stream: '") + c +
                                                     "' closes a '" +
                                                     (closers_.back() == '}' ? '{' : '[') + "'");
      }
      closers_.pop_back();
      if (closers_.empty()) {
        if (cur_.size() + (i + 1 - start) > max_) {
          failed_ = true;
          return Error(ErrorCode::PayloadTooLarge,
                       "watch stream: an event exceeds " + std::to_string(max_) + " bytes");
        }
        cur_.append(bytes.substr(start, i + 1 - start));
        out.push_back(std::move(cur_));
        cur_.clear();
        continue;
      }
    }
  }
  if (!closers_.empty()) {
    if (cur_.size() + (bytes.size() - start) > max_) {
      failed_ = true;
      return Error(ErrorCode::PayloadTooLarge,
                   "watch stream: an event exceeds " + std::to_string(max_) + " bytes");
    }
    cur_.append(bytes.substr(start));
  }
  return {};
}

}  // namespace agentpane::k8s
