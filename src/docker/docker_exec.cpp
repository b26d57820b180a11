// DockerProvider::openExec and the engine side of an exec session: exit codes from
// GET /exec/{id}/json, and killing a process tree the engine has no API for.
//
// The user: the one the container was created as (label docker_labels::kUidGid, the project
// directory's owner; sandbox_user.hpp), or root when asked.
//
// Killing: Docker cannot kill an exec; on timeout or cancel the process tree is killed by
// its environment marker (common/exec_marker.hpp), by an exec as the same user (with all
// capabilities dropped, root could not signal another uid's processes).

// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <thread>

#include "common/exec_marker.hpp"
#include "common/hash.hpp"
#include "docker/docker_provider.hpp"
#include "docker/exec_session.hpp"
#include "docker/sandbox_user.hpp"

namespace agentpane::docker {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

// POST /exec/{id}/resize, the size held to 1..1000 each way.
std::string resizeTarget(const std::string& execId, int rows, int cols) {
  return "/exec/" + execId + "/resize?h=" + std::to_string(std::clamp(rows, 1, 1000)) +
         "&w=" + std::to_string(std::clamp(cols, 1, 1000));
}

Error mapExecError(const Error& e, const std::string& id) {
  int status = httpStatus(e);
  if (status == 404)
    return Error(ErrorCode::SandboxNotFound, "sandbox '" + id + "' not found", {{"id", id}});
  if (status == 409) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox '" + id + "' is not running", {{"id", id}});
  }
  if (status == 400) {  // the engine refused the exec request itself (a bad user, workingDir)
    auto it = e.details.find("engineMessage");
    return Error(
        ErrorCode::ValidationError,
        "the Docker engine refused the exec: " + (it != e.details.end() ? it->second : e.message),
        e.details);
  }
  if (status != 0) return Error(ErrorCode::SandboxExecFailed, e.message, e.details);
  return e;
}

class DockerExecControl final : public ExecControl {
 public:
  DockerExecControl(std::shared_ptr<DockerClient> client, std::string container, std::string execId,
                    std::string marker, std::string user, std::chrono::milliseconds killTimeout)
      : client_(std::move(client)),
        container_(std::move(container)),
        execId_(std::move(execId)),
        marker_(std::move(marker)),
        user_(std::move(user)),
        killTimeout_(killTimeout) {}

  Result<int> exitCode() override {
    // The stream ends a moment before the engine records the exit: poll with backoff.
    auto delay = std::chrono::milliseconds(1);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto r = client_->call("GET", "/exec/" + execId_ + "/json");
      if (!r.ok()) return r.takeError();
      const json& j = r.value();
      bool running = j.value("Running", false);
      auto code = j.find("ExitCode");
      if (!running && code != j.end() && code->is_number_integer()) return code->get<int>();
      if (std::chrono::steady_clock::now() > give_up) {
        return Error(ErrorCode::SandboxExecFailed, "the engine did not report an exit code");
      }
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds(100));
    }
  }

  asio::awaitable<Result<int>> asyncExitCode() override {
    auto delay = std::chrono::milliseconds(1);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (;;) {
      auto op = client_->asyncCall("GET", "/exec/" + execId_ + "/json", std::nullopt,
                                   std::chrono::milliseconds(0));
      auto r = co_await std::move(op);
      if (!r.ok()) co_return r.takeError();
      const json& j = r.value();
      bool running = j.value("Running", false);
      auto code = j.find("ExitCode");
      if (!running && code != j.end() && code->is_number_integer()) co_return code->get<int>();
      if (std::chrono::steady_clock::now() > give_up) {
        co_return Error(ErrorCode::SandboxExecFailed, "the engine did not report an exit code");
      }
      timer.expires_after(delay);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      delay = std::min(delay * 2, std::chrono::milliseconds(100));
    }
  }

  asio::awaitable<void> asyncKillProcessTree() override {
    // GCC 12 destroys temporaries of a co_await expression twice: build, then await by name.
    auto create = client_->asyncCall("POST", "/containers/" + container_ + "/exec", killerBody(),
                                     killTimeout_);
    auto made = co_await std::move(create);
    if (!made.ok()) co_return;
    auto start = client_->asyncStartExec(made->value("Id", std::string()));
    auto started = co_await std::move(start);
    if (!started.ok()) co_return;
    auto stream = std::move(started.value());
    // Wait for the killer to finish (its stream ends), bounded.
    const auto deadline = net::Clock::now() + killTimeout_;
    std::string buf(4096, '\0');
    for (;;) {
      auto read = stream->asyncReadSome(buf.data(), buf.size(), deadline);
      auto n = co_await std::move(read);
      if (!n.ok() || n.value() == 0) break;
    }
    stream->close();
  }

  asio::awaitable<Result<void>> asyncResize(int rows, int cols) override {
    auto op = client_->asyncCall("POST", resizeTarget(execId_, rows, cols), std::nullopt,
                                 std::chrono::milliseconds(0));
    auto r = co_await std::move(op);
    if (!r.ok()) co_return r.takeError();
    co_return okResult();
  }

  json killerBody() const {
    return json{{"AttachStdin", false}, {"AttachStdout", true},
                {"AttachStderr", true}, {"Tty", false},
                {"User", user_},        {"Cmd", {"sh", "-c", kKillByMarkerScript, "sh", marker_}}};
  }

  void killProcessTree() override {
    json body = killerBody();
    auto made = client_->call("POST", "/containers/" + container_ + "/exec", &body, killTimeout_);
    if (!made.ok()) return;
    auto stream = client_->startExec(made->value("Id", std::string()));
    if (!stream.ok()) return;
    // Wait for the killer to finish (its stream ends), bounded.
    const auto deadline = net::Clock::now() + killTimeout_;
    std::string buf(4096, '\0');
    for (;;) {
      auto n = stream.value()->readSome(buf.data(), buf.size(), deadline);
      if (!n.ok() || n.value() == 0) break;
    }
  }

 private:
  std::shared_ptr<DockerClient> client_;
  std::string container_;
  std::string execId_;
  std::string marker_;
  std::string user_;
  std::chrono::milliseconds killTimeout_;
};

// The user a sandbox's non-root execs run as: its label, or 1000:1000 for a container made
// before the label existed (they were all created as 1000:1000).
Result<std::string> sandboxUserOf(const SandboxInfo& info) {
  auto it = info.labels.find(docker_labels::kUidGid);
  if (it == info.labels.end()) return SandboxUser{}.toString();
  auto user = parseSandboxUser(it->second);
  if (!user) {
    return Error(ErrorCode::SandboxExecFailed,
                 "sandbox '" + info.id + "' has an unreadable " +
                     std::string(docker_labels::kUidGid) + " label '" + it->second + "'",
                 {{"id", info.id}});
  }
  return user->toString();
}

}  // namespace

Result<std::unique_ptr<ExecSession>> DockerProvider::openExec(const SandboxRef& ref,
                                                              const std::vector<std::string>& argv,
                                                              const ExecOptions& options) {
  const std::string& id = ref.sandboxId;
  if (argv.empty()) return Error(ErrorCode::ValidationError, "argv must not be empty");
  // Only into this sandbox of this instance (labels checked), never a container that merely
  // has its name.
  auto info = resolve(ref);
  if (!info.ok()) return info.takeError();
  if (info->state != SandboxState::Running) {
    return Error(ErrorCode::SandboxNotRunning, "sandbox '" + id + "' is not running", {{"id", id}});
  }
  auto sandboxUser = sandboxUserOf(info.value());
  if (!sandboxUser.ok()) return sandboxUser.takeError();
  const std::string marker = randomHex(16);
  json env = json::array();
  for (const auto& [k, v] : options.env) {
    if (k.empty() || k.find('=') != std::string::npos || k == kExecMarkerVar) {
      return Error(ErrorCode::ValidationError, "invalid environment variable name '" + k + "'");
    }
    env.push_back(k + "=" + v);
  }
  env.push_back(std::string(kExecMarkerVar) + "=" + marker);
  const std::string user = options.root ? "0:0" : sandboxUser.value();
  json body = {{"AttachStdin", options.attachStdin},
               {"AttachStdout", true},
               {"AttachStderr", true},
               {"Tty", options.tty},
               {"Cmd", argv},
               {"User", user},
               {"Env", env}};
  if (!options.workingDir.empty()) body["WorkingDir"] = options.workingDir;

  const std::string container = info->containerId;
  auto made = client_->call("POST", "/containers/" + container + "/exec", &body);
  if (!made.ok()) return mapExecError(made.error(), id);
  std::string execId = made->value("Id", std::string());
  if (execId.empty()) return Error(ErrorCode::SandboxExecFailed, "the engine returned no exec id");

  auto stream = client_->startExec(execId, options.tty);
  if (!stream.ok()) return mapExecError(stream.error(), id);
  if (options.tty) {
    // The terminal's size; a failure leaves the engine's default, which still works.
    auto resized = client_->call("POST", resizeTarget(execId, options.ttyRows, options.ttyColumns));
    (void)resized;
  }
  auto control = std::make_unique<DockerExecControl>(client_, container, execId, marker, user,
                                                     opts_.killTimeout);
  return std::unique_ptr<ExecSession>(
      std::make_unique<DockerExecSession>(std::move(stream.value()), std::move(control),
                                          options.timeout, options.attachStdin, options.tty));
}

}  // namespace agentpane::docker
