// The thin Boost.Asio layer over ExecSession's asynchronous form (include/agentpane/exec.hpp),
// kept out of the contract so that the contract names no library type.
//
// For callers (the server's WebSocket exec and attach):
//   auto chunk = co_await execRead(*session);      // resumes on the caller's executor
// Every call completes on the executor of the awaiting coroutine (its strand), whatever
// thread the session's handler ran on. The caller keeps the session alive while awaiting.
//
// For implementations written as coroutines (Docker, Kubernetes):
//   void asyncRead(ExecHandler<std::optional<ExecChunk>> done) override {
//     completeWith(strand_, readOp(), std::move(done));
//   }
// runs the coroutine on the implementation's executor and hands its result to the handler
// (an escaping exception becomes an Internal error, so the handler is always called once).
//
// Header-only; for code that already depends on Boost.Asio.
#pragma once

// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "agentpane/exec.hpp"

namespace agentpane {

namespace exec_async_detail {

// Starts `start(handler)` and resumes the awaiting coroutine on its own executor with the
// result. The completion signature carries an optional so that Asio never needs a
// default-constructed Result.
template <typename T, typename Start>
boost::asio::awaitable<Result<T>> await(Start start) {
  namespace asio = boost::asio;
  auto initiate = [](auto handler, Start begin) {
    auto resumeOn = asio::get_associated_executor(handler);
    // std::function needs a copyable callable; the coroutine's handler is move-only.
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    begin(ExecHandler<T>([shared, resumeOn](Result<T> r) {
      asio::post(resumeOn, [shared, r = std::optional<Result<T>>(std::move(r))]() mutable {
        std::move (*shared)(std::move(r));
      });
    }));
  };
  std::optional<Result<T>> out =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::optional<Result<T>>)>(
          std::move(initiate), asio::use_awaitable, std::move(start));
  co_return std::move(*out);
}

inline Error escaped(const std::exception_ptr& e) {
  std::string what = "unexpected exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  return Error(ErrorCode::Internal, "exec operation failed: " + what);
}

}  // namespace exec_async_detail

// --- callers --------------------------------------------------------------------------------
// The session is taken by shared_ptr so that it outlives a handler that runs after the
// awaiting coroutine was destroyed (server shutdown).

inline boost::asio::awaitable<Result<std::optional<ExecChunk>>> execRead(
    std::shared_ptr<ExecSession> s) {
  return exec_async_detail::await<std::optional<ExecChunk>>(
      [s](ExecHandler<std::optional<ExecChunk>> h) { s->asyncRead(std::move(h)); });
}

inline boost::asio::awaitable<Result<void>> execWriteStdin(std::shared_ptr<ExecSession> s,
                                                           std::string data) {
  return exec_async_detail::await<void>([s, data = std::move(data)](ExecHandler<void> h) mutable {
    s->asyncWriteStdin(std::move(data), std::move(h));
  });
}

inline boost::asio::awaitable<Result<void>> execResize(std::shared_ptr<ExecSession> s, int rows,
                                                       int cols) {
  return exec_async_detail::await<void>(
      [s, rows, cols](ExecHandler<void> h) { s->asyncResize(rows, cols, std::move(h)); });
}

inline boost::asio::awaitable<Result<void>> execCloseStdin(std::shared_ptr<ExecSession> s) {
  return exec_async_detail::await<void>(
      [s](ExecHandler<void> h) { s->asyncCloseStdin(std::move(h)); });
}

inline boost::asio::awaitable<Result<int>> execWait(std::shared_ptr<ExecSession> s) {
  return exec_async_detail::await<int>([s](ExecHandler<int> h) { s->asyncWait(std::move(h)); });
}

inline boost::asio::awaitable<Result<void>> execCancel(std::shared_ptr<ExecSession> s) {
  return exec_async_detail::await<void>([s](ExecHandler<void> h) { s->asyncCancel(std::move(h)); });
}

// --- implementations ------------------------------------------------------------------------

// Runs `op` on `ex` and calls `done` with its result, exactly once.
template <typename T, typename Executor>
void completeWith(const Executor& ex, boost::asio::awaitable<Result<T>> op, ExecHandler<T> done) {
  namespace asio = boost::asio;
  struct Once {
    ExecHandler<T> done;
    bool called = false;
    void operator()(Result<T> r) {
      if (called) return;
      called = true;
      done(std::move(r));
    }
  };
  auto once = std::make_shared<Once>(Once{std::move(done)});
  // Asio's co_spawn would default-construct a Result on failure: report through `once`.
  asio::co_spawn(
      ex,
      [op = std::move(op), once]() mutable -> asio::awaitable<void> {
        auto r = co_await std::move(op);
        (*once)(std::move(r));
      },
      [once](const std::exception_ptr& e) {
        if (e) (*once)(exec_async_detail::escaped(e));
      });
}

}  // namespace agentpane
