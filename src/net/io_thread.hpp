// One io_context with the thread(s) that run it. Blocking client calls post their work
// here and wait for it, so that blocking callers (provider methods on worker threads) and
// asynchronous ones share one event loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agentpane/result.hpp"

namespace agentpane::net {

namespace asio = boost::asio;

class IoThread {
 public:
  // `name` (at most 15 bytes) names the threads for top -H, perf and gdb.
  static std::shared_ptr<IoThread> create(int threads = 1, std::string name = "ap-io");
  explicit IoThread(int threads, std::string name = "ap-io");
  ~IoThread();  // stops the loop and joins (detaches when run from the loop itself)
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  asio::io_context& context() { return ctx_; }
  // A new strand: each connection gets its own, so the loop may run on several threads.
  asio::strand<asio::io_context::executor_type> makeStrand() { return asio::make_strand(ctx_); }
  [[nodiscard]] bool inLoopThread() const;

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

// Runs the coroutine made by `make` on `ex` and blocks the calling thread until it is done.
// MUST NOT be called from the loop thread (it would wait for itself); that is refused with
// an Internal error instead of a deadlock.
template <typename T, typename Executor>
Result<T> blockOn(IoThread& io, const Executor& ex,
                  std::function<asio::awaitable<Result<T>>()> make) {
  if (io.inLoopThread()) {
    return Error(ErrorCode::Internal, "blocking network call made from the I/O thread");
  }
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  asio::co_spawn(
      ex,
      [promise, make = std::move(make)]() -> asio::awaitable<void> {
        promise->set_value(co_await make());
      },
      [promise](std::exception_ptr e) {
        if (!e) return;
        std::string what = "unexpected exception";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        try {
          promise->set_value(Error(ErrorCode::Internal, "network operation failed: " + what));
        } catch (const std::future_error&) {  // the value was already set
        }
      });
  return future.get();
}

}  // namespace agentpane::net
