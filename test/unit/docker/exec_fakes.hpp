// Fakes under DockerExecSession: a byte stream scripted read by read (blocking and
// coroutine forms) and an ExecControl that counts kills. Shared by the blocking and the
// asynchronous session tests.
#pragma once

// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "docker/exec_session.hpp"
#include "net/errors.hpp"

namespace agentpane::docker::testing {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct FakeState {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> reads;  // what successive readSome calls return
  std::size_t next = 0;
  int failReadAt = -1;              // this readSome (0-based) fails
  int failWriteAt = -1;             // this writeAll fails
  bool blockAtEnd = false;          // after the scripted reads: block until close/deadline, not EOF
  bool eofAfterStdinClose = false;  // after the scripted reads: EOF once stdin is closed (cat)
  int readCalls = 0;
  int writeCalls = 0;
  std::string written;
  int shutdowns = 0;
  bool closed = false;
};

// Blocking calls wait on the condition variable; the coroutine forms wait on a timer of
// the rig's one-thread loop, which every state change cancels (a wake-up).
class FakeStream final : public net::ByteStream {
 public:
  FakeStream(std::shared_ptr<FakeState> st, asio::any_io_executor ex)
      : st_(std::move(st)), ex_(ex), wake_(std::make_shared<asio::steady_timer>(ex)) {}

  Result<std::size_t> readSome(char* buf, std::size_t size, net::Deadline deadline) override {
    std::unique_lock lock(st_->mu);
    int call = st_->readCalls++;
    if (st_->closed) return net::netError(net::kClosed, "closed");
    if (call == st_->failReadAt) return net::netError(net::kIo, "injected read failure");
    if (st_->next < st_->reads.size()) {
      std::string& r = st_->reads[st_->next];
      std::size_t n = std::min(size, r.size());
      std::memcpy(buf, r.data(), n);
      if (n == r.size())
        ++st_->next;
      else
        r.erase(0, n);
      return n;
    }
    if (st_->eofAfterStdinClose) {
      st_->cv.wait(lock, [&] { return st_->closed || st_->shutdowns > 0; });
      if (st_->closed) return net::netError(net::kClosed, "closed");
      return std::size_t{0};
    }
    if (!st_->blockAtEnd) return std::size_t{0};
    auto woke = [&] { return st_->closed; };
    if (deadline == net::kNoDeadline) {
      st_->cv.wait(lock, woke);
    } else if (!st_->cv.wait_until(lock, deadline, woke)) {
      st_->closed = true;
      return net::netError(net::kTimeout, "read timed out");
    }
    return net::netError(net::kClosed, "closed");
  }

  Result<void> writeAll(std::string_view data, net::Deadline) override {
    std::lock_guard lock(st_->mu);
    int call = st_->writeCalls++;
    if (st_->closed) return net::netError(net::kClosed, "closed");
    if (call == st_->failWriteAt) return net::netError(net::kIo, "injected write failure");
    st_->written.append(data);
    return {};
  }

  Result<void> shutdownWrite() override {
    std::lock_guard lock(st_->mu);
    ++st_->shutdowns;
    st_->cv.notify_all();
    wake();
    return {};
  }

  void close() override {
    std::lock_guard lock(st_->mu);
    st_->closed = true;
    st_->cv.notify_all();
    wake();
  }

  asio::any_io_executor executor() override { return ex_; }

  asio::awaitable<Result<std::size_t>> asyncReadSome(char* buf, std::size_t size,
                                                     net::Deadline deadline) override {
    bool counted = false;
    for (;;) {
      {
        std::unique_lock lock(st_->mu);
        int call = counted ? st_->readCalls - 1 : st_->readCalls++;
        counted = true;
        if (st_->closed) co_return net::netError(net::kClosed, "closed");
        if (call == st_->failReadAt) co_return net::netError(net::kIo, "injected read failure");
        if (st_->next < st_->reads.size()) {
          std::string& r = st_->reads[st_->next];
          std::size_t n = std::min(size, r.size());
          std::memcpy(buf, r.data(), n);
          if (n == r.size())
            ++st_->next;
          else
            r.erase(0, n);
          co_return n;
        }
        if (st_->eofAfterStdinClose && st_->shutdowns > 0) co_return std::size_t{0};
        if (!st_->eofAfterStdinClose && !st_->blockAtEnd) co_return std::size_t{0};
      }
      wake_->expires_at(deadline == net::kNoDeadline ? net::Deadline::max() : deadline);
      boost::system::error_code ec;
      co_await wake_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) {
        std::lock_guard lock(st_->mu);
        st_->closed = true;
        co_return net::netError(net::kTimeout, "read timed out");
      }
    }
  }

  asio::awaitable<Result<void>> asyncWriteAll(std::string_view data, net::Deadline d) override {
    co_return writeAll(data, d);
  }

  asio::awaitable<Result<void>> asyncShutdownWrite() override { co_return shutdownWrite(); }

 private:
  // Called with st_->mu held, from any thread: the timer is touched on the loop only.
  void wake() {
    asio::post(ex_, [w = wake_] { w->cancel(); });
  }

  std::shared_ptr<FakeState> st_;
  asio::any_io_executor ex_;
  std::shared_ptr<asio::steady_timer> wake_;
};

struct ControlState {
  std::atomic<int> kills{0};
  std::atomic<int> exitCalls{0};
  Result<int> exit = 0;
};

class FakeControl final : public ExecControl {
 public:
  explicit FakeControl(std::shared_ptr<ControlState> st) : st_(std::move(st)) {}
  Result<int> exitCode() override {
    ++st_->exitCalls;
    return st_->exit;
  }
  void killProcessTree() override { ++st_->kills; }
  asio::awaitable<Result<int>> asyncExitCode() override { co_return exitCode(); }
  asio::awaitable<void> asyncKillProcessTree() override {
    ++st_->kills;
    co_return;
  }

 private:
  std::shared_ptr<ControlState> st_;
};

// A session over fakes, with the one-thread loop its asynchronous form runs on.
struct Rig {
  asio::io_context loop;
  asio::executor_work_guard<asio::io_context::executor_type> work{loop.get_executor()};
  std::thread thread{[this] { loop.run(); }};
  std::shared_ptr<FakeState> stream = std::make_shared<FakeState>();
  std::shared_ptr<ControlState> control = std::make_shared<ControlState>();
  std::unique_ptr<DockerExecSession> make(std::chrono::milliseconds timeout = 0ms,
                                          bool stdin = false, bool tty = false) {
    return std::make_unique<DockerExecSession>(
        std::make_unique<FakeStream>(stream, asio::make_strand(loop)),
        std::make_unique<FakeControl>(control), timeout, stdin, tty);
  }
  ~Rig() {
    work.reset();
    thread.join();
  }
};

}  // namespace agentpane::docker::testing
