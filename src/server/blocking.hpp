// runBlocking(pool, fn): runs a blocking call (SQLite, provider) on a worker pool and resumes
// the awaiting coroutine on its own executor (the connection's strand).
//
// `co_await asio::post(pool, use_awaitable)` does not do this in Asio: post() hands the
// completion back to the handler's associated executor, so the coroutine would never leave
// the network thread. Here the work itself goes to the pool and only the result is posted
// back.
//
// GCC 12 (Debian 12's compiler) destroys non-trivial temporaries of a co_await expression
// twice. So never write `co_await runBlocking(pool, [s = std::string()] {...})`; build the
// awaitable first and await it by name:
//   auto call = runBlocking(pool, [id] { return service.getSandbox(id); });
//   auto r = co_await std::move(call);
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace agentpane::server {

template <typename F>
boost::asio::awaitable<std::invoke_result_t<F&>> runBlocking(boost::asio::thread_pool& pool, F fn) {
  namespace asio = boost::asio;
  using T = std::invoke_result_t<F&>;
  static_assert(!std::is_void_v<T>, "runBlocking needs a value (use Result<void>)");

  auto initiate = [&pool](auto handler, F work) {
    auto resumeOn = asio::get_associated_executor(handler);
    asio::post(pool, [handler = std::move(handler), work = std::move(work), resumeOn]() mutable {
      std::exception_ptr failure;
      std::optional<T> value;
      try {
        value.emplace(work());
      } catch (...) {
        failure = std::current_exception();
      }
      asio::post(resumeOn,
                 [handler = std::move(handler), failure, value = std::move(value)]() mutable {
                   std::move(handler)(failure, std::move(value));
                 });
    });
  };
  std::optional<T> out = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                                       void(std::exception_ptr, std::optional<T>)>(
      std::move(initiate), asio::use_awaitable, std::move(fn));
  co_return std::move(*out);
}

}  // namespace agentpane::server
