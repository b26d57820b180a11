// Internal to ap_net: the objects an HTTP exchange can leave behind — a raw upgraded
// connection (ByteStream) and a body read piece by piece (BodyStream).
#pragma once

#include <boost/beast/http.hpp>

#include <atomic>
#include <memory>
#include <string>

#include "net/detail/connection.hpp"
#include "net/http_client.hpp"
#include "net/io_thread.hpp"

namespace agentpane::net::detail {

// Every operation runs on the connection's strand; blocking callers wait for it. That is
// what makes a concurrent reader and writer safe even over TLS.
class UpgradedStream final : public ByteStream {
 public:
  UpgradedStream(std::shared_ptr<IoThread> io, Executor ex, std::unique_ptr<Connection> conn,
                 std::string leftover);
  ~UpgradedStream() override;

  // agentpane::net::ByteStream
  Result<std::size_t> readSome(char* buf, std::size_t size, Deadline deadline) override;
  Result<void> writeAll(std::string_view data, Deadline deadline) override;
  Result<void> shutdownWrite() override;
  void close() override;
  boost::asio::any_io_executor executor() override { return st_->ex; }
  asio::awaitable<Result<std::size_t>> asyncReadSome(char* buf, std::size_t size,
                                                     Deadline deadline) override;
  asio::awaitable<Result<void>> asyncWriteAll(std::string_view data, Deadline deadline) override;
  asio::awaitable<Result<void>> asyncShutdownWrite() override;

  struct State {
    Executor ex;
    std::unique_ptr<Connection> conn;
    bool closed = false;  // strand only
    bool writeShut = false;
    void closeOnStrand();
  };

 private:
  std::shared_ptr<IoThread> io_;
  std::shared_ptr<State> st_;
  // The coroutine bodies, run on the strand by both forms.
  static asio::awaitable<Result<std::size_t>> readOnStrand(std::shared_ptr<State> st, char* buf,
                                                           std::size_t size, Deadline deadline);
  static asio::awaitable<Result<void>> writeOnStrand(std::shared_ptr<State> st,
                                                     std::string_view data, Deadline deadline);
  static asio::awaitable<Result<void>> shutdownOnStrand(std::shared_ptr<State> st);
  // Serves bytes that arrived with the 101 header; 0 when none are left.
  std::size_t takeLeftover(char* buf, std::size_t size);

  std::string leftover_;  // reader only
  std::size_t leftoverPos_ = 0;
  std::atomic<bool> closed_{false};
};

class StreamedBody final : public BodyStream {
 public:
  struct State {
    Executor ex;
    std::unique_ptr<Connection> conn;
    boost::beast::http::response_parser<boost::beast::http::buffer_body> parser;
    bool closed = false;  // strand only
  };

  StreamedBody(std::shared_ptr<IoThread> io, std::shared_ptr<State> st);
  ~StreamedBody() override;

  // agentpane::net::BodyStream
  Result<std::optional<std::string>> next(Deadline deadline) override;
  void close() override;

 private:
  std::shared_ptr<IoThread> io_;
  std::shared_ptr<State> st_;
  std::atomic<bool> closed_{false};
};

}  // namespace agentpane::net::detail
