// tmux over argv exec: names are validated before anything runs, and every tmux call is an
// argv vector, so no user string ever reaches a shell.
#include "agentpane/tmux.hpp"

#include <algorithm>
#include <charconv>

namespace agentpane {
namespace {

constexpr const char* kListFormat =
    "#{session_name}\t#{session_windows}\t#{session_created}\t#{session_attached}\t"
    "#{session_activity}";

// "=NAME" makes tmux match the session name exactly (plain names are prefix-matched).
std::string sessionTarget(const std::string& name) {
  return "=" + name;
}
// A pane target: the exact session, its current window and pane.
std::string paneTarget(const std::string& name) {
  return "=" + name + ":";
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

bool noServer(const std::string& err) {
  return contains(err, "no server running") || contains(err, "error connecting to") ||
         contains(err, "No such file or directory");
}

bool sessionMissing(const std::string& err) {
  return contains(err, "can't find session") || contains(err, "can't find pane") ||
         contains(err, "can't find window") || noServer(err);
}

Error tmuxError(const std::string& what, const ExecResult& r) {
  std::string msg = what + " failed (exit " + std::to_string(r.exitCode) + ")";
  if (!r.stderrData.empty()) msg += ": " + r.stderrData.substr(0, 512);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r'))
    msg.pop_back();
  return {ErrorCode::TmuxFailed, msg};
}

Result<ExecResult> runTmux(SandboxExecutor& exec, const SandboxRef& sandbox,
                           std::vector<std::string> args) {
  ExecRequest req;
  req.argv.reserve(args.size() + 1);
  req.argv.emplace_back("tmux");
  for (auto& a : args)
    req.argv.push_back(std::move(a));
  req.options.workingDir = "/workspace";
  req.options.timeout = std::chrono::seconds(30);
  req.maxOutputBytes = 16u << 20;
  return exec.exec(sandbox, req);
}

template <typename T>
bool parseNumber(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool isValidTmuxName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

Result<void> validateTmuxName(std::string_view name) {
  if (!isValidTmuxName(name)) {
    return Error(ErrorCode::TmuxNameInvalid, "tmux session names must match [A-Za-z0-9_-]{1,64}",
                 {{"field", "name"}});
  }
  return {};
}

namespace tmux_detail {

std::vector<TmuxSessionInfo> parseListSessions(std::string_view out) {
  std::vector<TmuxSessionInfo> sessions;
  while (!out.empty()) {
    auto nl = out.find('\n');
    std::string_view line = out.substr(0, nl);
    out = nl == std::string_view::npos ? std::string_view{} : out.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (;;) {
      auto tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    // Lines that are not ours (a foreign format, a warning) are skipped, not misread.
    // Four fields: a tmux (or a fake) that does not report activity.
    if ((fields.size() != 4 && fields.size() != 5) || !isValidTmuxName(fields[0])) continue;
    TmuxSessionInfo s;
    s.name = std::string(fields[0]);
    int attached = 0;
    if (!parseNumber(fields[1], s.windows) || !parseNumber(fields[2], s.createdUnix) ||
        !parseNumber(fields[3], attached)) {
      continue;
    }
    s.attached = attached > 0;
    if (fields.size() == 5 && !parseNumber(fields[4], s.activityUnix)) continue;
    sessions.push_back(std::move(s));
  }
  return sessions;
}

std::string lastLines(std::string_view text, int lines) {
  // Trailing blank lines are the unused bottom of the pane, not output.
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  if (text.empty()) return {};
  std::size_t pos = text.size();
  int seen = 0;
  while (pos > 0) {
    auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) return std::string(text) + "\n";
    if (++seen == lines) return std::string(text.substr(nl + 1)) + "\n";
    pos = nl;
  }
  return std::string(text) + "\n";
}

}  // namespace tmux_detail

Result<TmuxSessionInfo> TmuxController::create(const SandboxRef& sandbox, const std::string& name,
                                               const std::vector<std::string>& command) {
  AP_TRY(validateTmuxName(name));
  std::vector<std::string> args = {"new-session", "-d", "-s",  name, "-c",
                                   "/workspace",  "-x", "200", "-y", "50"};
  // Several arguments make tmux exec the command directly, without a shell; a single one
  // it would hand to `sh -c`. So a one-element command goes through env(1), which execs
  // it as it is: the argv is never interpreted, whatever its length.
  if (command.size() == 1) {
    args.emplace_back("env");
    args.emplace_back("--");
  }
  for (const auto& c : command)
    args.push_back(c);
  auto r = runTmux(exec_, sandbox, std::move(args));
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    if (contains(r->stderrData, "duplicate session")) {
      return Error(ErrorCode::TmuxSessionExists, "tmux session '" + name + "' already exists");
    }
    return tmuxError("tmux new-session", r.value());
  }
  auto all = list(sandbox);
  if (!all.ok()) return all.takeError();
  for (auto& s : all.value()) {
    if (s.name == name) return s;
  }
  // The command may have exited at once, taking the session with it.
  TmuxSessionInfo info;
  info.name = name;
  return info;
}

Result<std::vector<TmuxSessionInfo>> TmuxController::list(const SandboxRef& sandbox) {
  auto r = runTmux(exec_, sandbox, {"list-sessions", "-F", kListFormat});
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    if (noServer(r->stderrData)) return std::vector<TmuxSessionInfo>{};
    return tmuxError("tmux list-sessions", r.value());
  }
  return tmux_detail::parseListSessions(r->stdoutData);
}

Result<void> TmuxController::kill(const SandboxRef& sandbox, const std::string& name) {
  AP_TRY(validateTmuxName(name));
  auto r = runTmux(exec_, sandbox, {"kill-session", "-t", sessionTarget(name)});
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    if (sessionMissing(r->stderrData)) {
      return Error(ErrorCode::TmuxSessionNotFound, "no tmux session '" + name + "'");
    }
    return tmuxError("tmux kill-session", r.value());
  }
  return {};
}

Result<void> TmuxController::sendKeys(const SandboxRef& sandbox, const std::string& name,
                                      const std::string& text, bool enter) {
  AP_TRY(validateTmuxName(name));
  // Literal text and Enter are two calls: a text argument of exactly ";" would otherwise
  // be read by tmux as a command separator.
  if (!text.empty()) {
    auto r = runTmux(exec_, sandbox, {"send-keys", "-t", paneTarget(name), "-l", "--", text});
    if (!r.ok()) return r.takeError();
    if (r->exitCode != 0) {
      if (sessionMissing(r->stderrData)) {
        return Error(ErrorCode::TmuxSessionNotFound, "no tmux session '" + name + "'");
      }
      return tmuxError("tmux send-keys", r.value());
    }
  }
  if (enter) {
    auto r = runTmux(exec_, sandbox, {"send-keys", "-t", paneTarget(name), "Enter"});
    if (!r.ok()) return r.takeError();
    if (r->exitCode != 0) {
      if (sessionMissing(r->stderrData)) {
        return Error(ErrorCode::TmuxSessionNotFound, "no tmux session '" + name + "'");
      }
      return tmuxError("tmux send-keys", r.value());
    }
  }
  return {};
}

Result<std::string> TmuxController::capture(const SandboxRef& sandbox, const std::string& name,
                                            int lines) {
  AP_TRY(validateTmuxName(name));
  if (lines < 1 || lines > 10000) {
    return Error(ErrorCode::ValidationError, "lines must be between 1 and 10000",
                 {{"field", "lines"}});
  }
  auto r = runTmux(
      exec_, sandbox,
      {"capture-pane", "-p", "-J", "-t", paneTarget(name), "-S", "-" + std::to_string(lines)});
  if (!r.ok()) return r.takeError();
  if (r->exitCode != 0) {
    if (sessionMissing(r->stderrData)) {
      return Error(ErrorCode::TmuxSessionNotFound, "no tmux session '" + name + "'");
    }
    return tmuxError("tmux capture-pane", r.value());
  }
  return tmux_detail::lastLines(r->stdoutData, lines);
}

}  // namespace agentpane
