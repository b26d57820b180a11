// A connected two-way byte stream: what an HTTP Upgrade (Docker's hijacked exec, a raw
// tunnel) leaves us with. An interface so that protocol code above it (the Docker exec
// multiplexer) is tested against fakes that fail at any step.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <string_view>

#include "agentpane/result.hpp"

namespace agentpane::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

// Thread-safety: one thread MAY read while another writes; close() MAY be called from any
// thread and unblocks both. A deadline that expires tears the whole stream down (the error
// is Timeout); a stream is not reusable after any error.
class ByteStream {
 public:
  virtual ~ByteStream() = default;

  // Blocks until at least one byte is available; returns 0 at a clean end of stream.
  virtual Result<std::size_t> readSome(char* buf, std::size_t size,
                                       Deadline deadline = kNoDeadline) = 0;
  // Writes all of data or fails.
  virtual Result<void> writeAll(std::string_view data, Deadline deadline = kNoDeadline) = 0;
  // Half-close: the peer reads end-of-stream while we can still read its replies.
  // Idempotent. Over TLS this is a TCP-level FIN below the TLS layer (no close_notify),
  // as the docker CLI does, because a TLS shutdown would wait for the peer's reply.
  virtual Result<void> shutdownWrite() = 0;
  // Closes now; pending and later calls fail. Idempotent.
  virtual void close() = 0;

  // Coroutine forms of the three calls above, for code that runs on the I/O loop and must
  // not block it. They MUST be awaited from a coroutine running on executor() (the
  // stream's strand, which serialises them with close()); one read and one write MAY be
  // pending at once. Same results, deadlines and errors as the blocking forms.
  virtual boost::asio::any_io_executor executor() = 0;
  virtual boost::asio::awaitable<Result<std::size_t>> asyncReadSome(char* buf, std::size_t size,
                                                                    Deadline deadline) = 0;
  virtual boost::asio::awaitable<Result<void>> asyncWriteAll(std::string_view data,
                                                             Deadline deadline) = 0;
  virtual boost::asio::awaitable<Result<void>> asyncShutdownWrite() = 0;
};

}  // namespace agentpane::net
