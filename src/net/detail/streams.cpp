#include "net/detail/streams.hpp"

#include <cstring>

#include "net/errors.hpp"

namespace agentpane::net::detail {

namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

namespace {

// Shared between an operation and its deadline timer: both run on the strand, and the
// timer's handler may run after the operation's coroutine has finished.
struct OpFlags {
  bool done = false;
  bool expired = false;
};

template <typename OnExpire>
void armDeadline(asio::steady_timer& timer, Deadline deadline,
                 const std::shared_ptr<OpFlags>& flags, OnExpire onExpire) {
  if (deadline == kNoDeadline) return;
  timer.expires_at(deadline);
  timer.async_wait([flags, onExpire](const error_code& ec) {
    if (ec || flags->done) return;
    flags->expired = true;
    onExpire();
  });
}

}  // namespace

void UpgradedStream::State::closeOnStrand() {
  if (closed) return;
  closed = true;
  closeNow(conn->stream);
}

UpgradedStream::UpgradedStream(std::shared_ptr<IoThread> io, Executor ex,
                               std::unique_ptr<Connection> conn, std::string leftover)
    : io_(std::move(io)), st_(std::make_shared<State>()), leftover_(std::move(leftover)) {
  st_->ex = std::move(ex);
  st_->conn = std::move(conn);
  setDeadline(st_->conn->stream, kNoDeadline);
}

UpgradedStream::~UpgradedStream() {
  close();
}

std::size_t UpgradedStream::takeLeftover(char* buf, std::size_t size) {
  if (leftoverPos_ >= leftover_.size()) return 0;
  std::size_t n = std::min(size, leftover_.size() - leftoverPos_);
  std::memcpy(buf, leftover_.data() + leftoverPos_, n);
  leftoverPos_ += n;
  return n;
}

asio::awaitable<Result<std::size_t>> UpgradedStream::readOnStrand(std::shared_ptr<State> st,
                                                                  char* buf, std::size_t size,
                                                                  Deadline deadline) {
  if (st->closed) co_return netError(kClosed, "read: stream closed");
  auto flags = std::make_shared<OpFlags>();
  asio::steady_timer timer(st->ex);
  armDeadline(timer, deadline, flags, [st] { st->closeOnStrand(); });
  error_code ec;
  std::size_t n = co_await std::visit(
      [&](auto& s) {
        return s.async_read_some(asio::buffer(buf, size), redirect_error(use_awaitable, ec));
      },
      st->conn->stream);
  flags->done = true;
  timer.cancel();
  if (flags->expired) co_return netError(kTimeout, "read: timed out");
  // A TLS peer that closes without close_notify ends the stream as well; protocols above
  // detect truncation themselves (frame boundaries).
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) co_return std::size_t{0};
  if (ec) co_return ioError(ec, "read");
  co_return n;
}

asio::awaitable<Result<void>> UpgradedStream::writeOnStrand(std::shared_ptr<State> st,
                                                            std::string_view data,
                                                            Deadline deadline) {
  if (st->closed) co_return netError(kClosed, "write: stream closed");
  if (st->writeShut) co_return netError(kClosed, "write: stream half-closed");
  auto flags = std::make_shared<OpFlags>();
  asio::steady_timer timer(st->ex);
  armDeadline(timer, deadline, flags, [st] { st->closeOnStrand(); });
  error_code ec;
  co_await std::visit(
      [&](auto& s) {
        return asio::async_write(s, asio::buffer(data.data(), data.size()),
                                 redirect_error(use_awaitable, ec));
      },
      st->conn->stream);
  flags->done = true;
  timer.cancel();
  if (flags->expired) co_return netError(kTimeout, "write: timed out");
  if (ec) co_return ioError(ec, "write");
  co_return Result<void>();
}

asio::awaitable<Result<void>> UpgradedStream::shutdownOnStrand(std::shared_ptr<State> st) {
  if (st->closed) co_return netError(kClosed, "shutdown: stream closed");
  if (st->writeShut) co_return Result<void>();
  st->writeShut = true;
  error_code ec;
  shutdownSend(st->conn->stream, ec);
  if (ec && ec != asio::error::not_connected) co_return ioError(ec, "shutdown");
  co_return Result<void>();
}

Result<std::size_t> UpgradedStream::readSome(char* buf, std::size_t size, Deadline deadline) {
  if (closed_) return netError(kClosed, "read: stream closed");
  if (size == 0) return std::size_t{0};
  if (std::size_t n = takeLeftover(buf, size); n > 0) return n;
  auto st = st_;
  return blockOn<std::size_t>(
      *io_, st->ex, [st, buf, size, deadline] { return readOnStrand(st, buf, size, deadline); });
}

Result<void> UpgradedStream::writeAll(std::string_view data, Deadline deadline) {
  if (closed_) return netError(kClosed, "write: stream closed");
  auto st = st_;
  auto r = blockOn<bool>(*io_, st->ex, [st, data, deadline]() -> asio::awaitable<Result<bool>> {
    auto op = writeOnStrand(st, data, deadline);
    auto w = co_await std::move(op);
    if (!w.ok()) co_return w.takeError();
    co_return true;
  });
  if (!r.ok()) return r.takeError();
  return {};
}

Result<void> UpgradedStream::shutdownWrite() {
  if (closed_) return netError(kClosed, "shutdown: stream closed");
  auto st = st_;
  auto r = blockOn<bool>(*io_, st->ex, [st]() -> asio::awaitable<Result<bool>> {
    auto op = shutdownOnStrand(st);
    auto w = co_await std::move(op);
    if (!w.ok()) co_return w.takeError();
    co_return true;
  });
  if (!r.ok()) return r.takeError();
  return {};
}

asio::awaitable<Result<std::size_t>> UpgradedStream::asyncReadSome(char* buf, std::size_t size,
                                                                   Deadline deadline) {
  if (closed_) co_return netError(kClosed, "read: stream closed");
  if (size == 0) co_return std::size_t{0};
  if (std::size_t n = takeLeftover(buf, size); n > 0) co_return n;
  // GCC 12: awaitables are built first, then awaited by name (see server/blocking.hpp).
  auto op = readOnStrand(st_, buf, size, deadline);
  co_return co_await std::move(op);
}

asio::awaitable<Result<void>> UpgradedStream::asyncWriteAll(std::string_view data,
                                                            Deadline deadline) {
  if (closed_) co_return netError(kClosed, "write: stream closed");
  auto op = writeOnStrand(st_, data, deadline);
  co_return co_await std::move(op);
}

asio::awaitable<Result<void>> UpgradedStream::asyncShutdownWrite() {
  if (closed_) co_return netError(kClosed, "shutdown: stream closed");
  auto op = shutdownOnStrand(st_);
  co_return co_await std::move(op);
}

void UpgradedStream::close() {
  if (closed_.exchange(true)) return;
  auto st = st_;
  asio::post(st->ex, [st] { st->closeOnStrand(); });
}

StreamedBody::StreamedBody(std::shared_ptr<IoThread> io, std::shared_ptr<State> st)
    : io_(std::move(io)), st_(std::move(st)) {}

StreamedBody::~StreamedBody() {
  close();
}

Result<std::optional<std::string>> StreamedBody::next(Deadline deadline) {
  using Out = std::optional<std::string>;
  if (closed_) return netError(kClosed, "body: stream closed");
  auto st = st_;
  return blockOn<Out>(*io_, st->ex, [st, deadline]() -> asio::awaitable<Result<Out>> {
    if (st->closed) co_return netError(kClosed, "body: stream closed");
    if (st->parser.is_done()) co_return Out{};
    setDeadline(st->conn->stream, deadline);
    std::string out(64u << 10, '\0');
    for (;;) {
      auto& body = st->parser.get().body();
      body.data = out.data();
      body.size = out.size();
      error_code ec;
      co_await std::visit(
          [&](auto& s) {
            return http::async_read_some(s, st->conn->buffer, st->parser,
                                         redirect_error(use_awaitable, ec));
          },
          st->conn->stream);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        st->closed = true;
        closeNow(st->conn->stream);
        co_return ioError(ec, "reading response body");
      }
      std::size_t got = out.size() - st->parser.get().body().size;
      if (got > 0) {
        out.resize(got);
        co_return Out(std::move(out));
      }
      if (st->parser.is_done()) co_return Out{};
    }
  });
}

void StreamedBody::close() {
  if (closed_.exchange(true)) return;
  auto st = st_;
  asio::post(st->ex, [st] {
    if (st->closed) return;
    st->closed = true;
    closeNow(st->conn->stream);
  });
}

}  // namespace agentpane::net::detail
