// POST /api/sandboxes (and POST /api/sandboxes/:id/migrate, a create too): the create, run on
// the lifecycle pool (it may wait minutes for a pod)
// with a stop source that the client leaving or the server stopping requests; the create
// then removes what it made (SandboxService::createSandbox).
//
// With `Accept: application/x-ndjson` the answer is a chunked stream of JSON lines, one per
// phase, then the outcome:
//   {"type":"progress","phase":"scheduled","message":"…","sandboxId":"sbx-…","elapsedMs":412}
//   {"type":"result","status":201,"ok":true,"data":{…}}   (or "ok":false,"error":{…})
// and, while nothing happens, {"type":"heartbeat"} every 2 s (clients skip what they do not
// know). The HTTP status is then 200, sent before the outcome is known; the result line
// carries the status the plain form would have had. Without that Accept: the one JSON
// envelope (201).
//
// A client that leaves is noticed by a watch on its idle socket (the plain form) or by the
// stream's writes failing (the streamed form, heartbeats included). The socket watch is not
// used while we write: with writes interleaved, it saw end-of-file on a healthy connection
// after which the writes failed (about 1 run in 20 of CreateStreamTest; not understood).
// GCC 12 misreads Asio's awaitable frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <deque>
#include <mutex>
#include <stop_token>

#include "server/exec_runner.hpp"
#include "server/server_context.hpp"
#include "service/model_json.hpp"
#include "service/sandbox_service.hpp"

namespace agentpane::server {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// What the pool thread hands the connection's strand: phases, then the outcome. The pool
// side pushes under the lock and then wakes the strand; the strand waits only right after
// a look under the lock that found nothing (no suspension in between), so no wake is lost.
struct CreateFeed : std::enable_shared_from_this<CreateFeed> {
  explicit CreateFeed(const asio::any_io_executor& ex) : strand(ex), wake(ex) {}

  void push(CreateProgress p) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(p));
    }
    notify();
  }
  void finish(Result<CreateSandboxOutcome> r) {
    {
      std::lock_guard lock(mu);
      result.emplace(std::move(r));
    }
    notify();
  }
  void notify() {
    asio::post(strand, [self = shared_from_this()] { self->wake.cancel(); });
  }

  asio::any_io_executor strand;
  asio::steady_timer wake;
  std::stop_source stop;
  std::mutex mu;
  std::deque<CreateProgress> events;
  std::optional<Result<CreateSandboxOutcome>> result;
};

constexpr const char* kActor = "api";
constexpr auto kHeartbeat = std::chrono::seconds(2);

bool wantsStream(const Request& req) {
  auto accept = req[http::field::accept];
  return accept.find("application/x-ndjson") != boost::beast::string_view::npos;
}

std::string line(const json& j) {
  return dumpJson(j) + "\n";
}

}  // namespace

asio::awaitable<Reply> runCreate(RequestContext& ctx, CreateSandboxRequest request) {
  auto run = runCreateLike(
      ctx, [request = std::move(request)](SandboxService& service, const CreateControl& control) {
        return service.createSandbox(request, kActor, control);
      });
  co_return co_await std::move(run);
}

asio::awaitable<Reply> runCreateLike(RequestContext& ctx, CreateWork work) {
  const bool stream = wantsStream(ctx.req) && ctx.socket != nullptr;
  const auto startedAt = Clock::now();
  auto ex = co_await asio::this_coro::executor;
  auto feed = std::make_shared<CreateFeed>(ex);
  // The server stopping cancels the create as the client leaving does.
  std::stop_callback onServerStop(ctx.server.stopAll.get_token(),
                                  [feed] { feed->stop.request_stop(); });

  SandboxService& service = ctx.server.service;
  asio::post(ctx.server.lifecyclePool, [feed, &service, work = std::move(work)] {
    CreateControl control;
    control.stop = feed->stop.get_token();
    control.onProgress = [feed](const CreateProgress& p) { feed->push(p); };
    Result<CreateSandboxOutcome> r = Error(ErrorCode::Internal, "create did not run");
    try {
      r = work(service, control);
    } catch (const std::exception& e) {
      r = Error(ErrorCode::Internal, std::string("create failed: ") + e.what());
    }
    feed->finish(std::move(r));
  });

  std::shared_ptr<ClientWatch> watch;
  if (ctx.socket != nullptr && !stream) {
    watch = std::make_shared<ClientWatch>(*ctx.socket);
    asio::co_spawn(
        ex,
        [watch, feed]() -> asio::awaitable<void> {
          auto w = watch->run();
          if (co_await std::move(w)) feed->stop.request_stop();  // the client is gone
        },
        asio::detached);
  }

  // The streamed form's header goes out at once: the client sees the create accepted.
  bool writable = stream;
  boost::system::error_code ec;
  if (stream) {
    http::response<http::empty_body> head{http::status::ok, ctx.req.version()};
    head.set(http::field::content_type, "application/x-ndjson");
    head.set(http::field::cache_control, "no-store");
    head.keep_alive(ctx.req.keep_alive());
    head.chunked(true);
    http::response_serializer<http::empty_body> sr{head};
    co_await http::async_write_header(*ctx.socket, sr,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      writable = false;
      feed->stop.request_stop();
    }
  }

  // Always waits for the outcome, also when the client left: the cancelled create is
  // cleaning up, and the server's stop waits for this connection.
  for (;;) {
    std::deque<CreateProgress> events;
    bool done = false;
    {
      std::lock_guard lock(feed->mu);
      events.swap(feed->events);
      done = feed->result.has_value();
    }
    for (const auto& p : events) {
      if (!writable) break;
      json j{{"type", "progress"},
             {"phase", p.phase},
             {"message", p.message},
             {"sandboxId", p.sandboxId},
             {"elapsedMs",
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - startedAt)
                  .count()}};
      std::string text = line(j);
      co_await asio::async_write(*ctx.socket, http::make_chunk(asio::buffer(text)),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        writable = false;
        feed->stop.request_stop();
      }
    }
    if (done) break;
    // The writes above suspended: what came meanwhile woke no one. Look again first.
    if (!events.empty()) continue;
    feed->wake.expires_after(stream ? kHeartbeat : std::chrono::hours(24 * 365));
    boost::system::error_code waited;
    co_await feed->wake.async_wait(asio::redirect_error(asio::use_awaitable, waited));
    if (!waited && writable) {  // the timer ran out: nothing happened for a while
      std::string text = line(json{{"type", "heartbeat"}});
      co_await asio::async_write(*ctx.socket, http::make_chunk(asio::buffer(text)),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        writable = false;
        feed->stop.request_stop();
      }
    }
  }
  if (watch) watch->stop();  // no write of ours is pending: its cancel touches only the watch

  Result<CreateSandboxOutcome> r = std::move(*feed->result);
  Reply plain = r.ok() ? okReply(toJson(r.value()), 201) : errorReply(r.error());
  if (!stream) co_return plain;

  Reply out;
  out.status = 200;
  out.streamed = false;
  if (writable) {
    json result = json::parse(plain.body, nullptr, false);
    if (!result.is_object()) result = json::object();
    result["type"] = "result";
    result["status"] = plain.status;
    std::string text = line(result);
    co_await asio::async_write(*ctx.socket, http::make_chunk(asio::buffer(text)),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      co_await asio::async_write(*ctx.socket, http::make_chunk_last(),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    out.streamed = !ec;
  }
  co_return out;
}

}  // namespace agentpane::server
