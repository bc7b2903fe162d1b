// SPDX-License-Identifier: BSD-3-Clause
// goro::net: sockets, pipes and other file descriptors whose blocking
// operations park the goroutine, never the thread (Go's net and
// internal/poll packages, over the runtime's netpoller).
//
//   auto ln = goro::net::listen("tcp", "127.0.0.1:0");
//   if (!ln) { ... ln.error() ... }
//   goro::go([&] {
//     auto c = goro::net::dial("tcp", ln->addr());
//     (void)c->write("hello");
//   });
//   goro::net::Conn conn = std::move(ln->accept().value());
//   char buf[5];
//   goro::net::IoResult r = conn.read_full(buf, sizeof buf);
//
// Every operation that may wait (accept, dial, read, write) must be called
// from a goroutine, inside goro::run; it tries the non-blocking system call
// and, on EAGAIN, parks the goroutine in the netpoller until the descriptor
// is ready, a deadline passes, or the descriptor is closed.
//
// Errors are values, not exceptions:
//   - Operations that produce an object return Result<T>: the object, or a
//     std::error_code.
//   - read and write return IoResult {n, err}: like Go's (n, err), both may
//     be meaningful at once (a write can fail after writing n bytes).
//   - Closing a Conn, File or Listener wakes every goroutine blocked in it;
//     those operations, and any later one, fail with Error::closed (Go's
//     net.ErrClosed: "use of closed network connection").
//   - A read at end of stream fails with Error::eof (Go's io.EOF); read_full
//     cut short by the end of stream fails with Error::unexpected_eof.
//   - A passed deadline fails the operation with std::errc::timed_out
//     (ETIMEDOUT); the descriptor stays usable: move or clear the deadline
//     and retry.
//   - System call failures are std::system_category() errno values.
//   Compare with ==: `r.err == goro::net::Error::closed`,
//   `r.err == std::errc::timed_out`.
//
// Concurrency: one reader and one writer at a time per descriptor is the
// supported model (more are serialised, as in Go). close, deadlines and the
// address getters may be called from any goroutine at any time, including
// while another goroutine is blocked in read or write: the descriptor
// number is closed only once no operation uses it any more. Destroying a
// Conn closes it (RAII); it must not be destroyed while another goroutine
// is still calling it.
//
// Addresses are numeric: "127.0.0.1:8080", "[::1]:0", ":8080" (every
// interface when listening, the local host when dialling), "localhost:80"
// (127.0.0.1, or ::1 for tcp6). No DNS. Unix socket addresses are paths, or
// "@name" for Linux's abstract namespace.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "goro/goro.h"

namespace goro::net {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------
enum class Error {
  closed = 1,       // use of a closed Conn, File or Listener
  eof,              // end of stream
  unexpected_eof,   // read_full: end of stream after part of the data
  unknown_network,  // listen/dial: not tcp, tcp4, tcp6 or unix
  bad_address,      // unparsable, not numeric, or the wrong family
  no_deadline,      // deadlines on a descriptor the netpoller cannot watch
};

const std::error_category& net_category() noexcept;
inline std::error_code make_error_code(Error e) noexcept { return {static_cast<int>(e), net_category()}; }

}  // namespace goro::net

template <>
struct std::is_error_code_enum<goro::net::Error> : std::true_type {};

namespace goro::net {

// Result<T> is a T or the error that prevented it. value() (and * and ->)
// on an error panics with the error's message.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(std::error_code e) : err_(e) {}
  Result(Error e) : err_(make_error_code(e)) {}

  bool ok() const noexcept { return v_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const std::error_code& error() const noexcept { return err_; }

  T& value() & {
    check();
    return *v_;
  }
  T&& value() && {
    check();
    return std::move(*v_);
  }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }

 private:
  void check() const {
    if (!v_) fail(err_);
  }
  [[noreturn]] static void fail(const std::error_code& e);
  std::optional<T> v_;
  std::error_code err_;
};

// The outcome of a read or write: n bytes moved, then err (empty on success).
struct [[nodiscard]] IoResult {
  std::size_t n = 0;
  std::error_code err;
  bool ok() const noexcept { return !err; }
  explicit operator bool() const noexcept { return ok(); }
};

// A deadline of Clock::time_point{} means none.
inline constexpr Clock::time_point no_deadline{};

namespace detail {
struct NetFD;
struct Access;  // net.cpp's door to the private constructors
[[noreturn]] void result_fail(const std::error_code& e);
}  // namespace detail

template <typename T>
void Result<T>::fail(const std::error_code& e) {
  detail::result_fail(e);
}

// ---------------------------------------------------------------------------
// Stream: the I/O shared by Conn and File
// ---------------------------------------------------------------------------
class Stream {
 public:
  // read reads up to len bytes, waiting until at least one is available.
  // Fails with Error::eof at end of stream (never returns 0 bytes with no
  // error, except for len == 0).
  IoResult read(void* buf, std::size_t len);
  // read_full reads exactly len bytes (Go's io.ReadFull): Error::eof if the
  // stream ended before any, Error::unexpected_eof if it ended part way.
  IoResult read_full(void* buf, std::size_t len);
  // write writes all len bytes, waiting for room as often as needed (Go's
  // fd.Write); a failure returns how many bytes went out before it.
  // Sockets never raise SIGPIPE (MSG_NOSIGNAL): a closed peer is EPIPE.
  // A pipe whose reader is gone does raise SIGPIPE unless the program
  // ignores it.
  IoResult write(const void* buf, std::size_t len);
  IoResult write(std::string_view s) { return write(s.data(), s.size()); }

  // close closes the descriptor, waking any goroutine blocked in it with
  // Error::closed; it returns once the descriptor number is closed (or, for
  // a descriptor not in the netpoller, once its last operation ends). A
  // second close fails with Error::closed.
  std::error_code close();

  // Deadlines (Go's SetDeadline): an operation still waiting at time t
  // fails with std::errc::timed_out, and so does every later one until the
  // deadline moves. no_deadline clears it. A duration d means now + d.
  std::error_code set_deadline(Clock::time_point t);
  std::error_code set_read_deadline(Clock::time_point t);
  std::error_code set_write_deadline(Clock::time_point t);
  template <typename Rep, typename Period>
  std::error_code set_deadline(std::chrono::duration<Rep, Period> d) {
    return set_deadline(from_now(d));
  }
  template <typename Rep, typename Period>
  std::error_code set_read_deadline(std::chrono::duration<Rep, Period> d) {
    return set_read_deadline(from_now(d));
  }
  template <typename Rep, typename Period>
  std::error_code set_write_deadline(std::chrono::duration<Rep, Period> d) {
    return set_write_deadline(from_now(d));
  }

  // The system descriptor (-1 for an empty handle). Valid while not closed.
  int fd() const noexcept;
  // Whether this handle holds a descriptor (it may be closed already).
  bool valid() const noexcept { return fd_ != nullptr; }

 protected:
  Stream() = default;
  explicit Stream(std::shared_ptr<detail::NetFD> fd) : fd_(std::move(fd)) {}
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&& o) noexcept;
  ~Stream();

  template <typename Rep, typename Period>
  static Clock::time_point from_now(std::chrono::duration<Rep, Period> d) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(d);
  }

  // Shared with the goroutines inside an operation: they keep the
  // descriptor's state alive until they return, even if the handle dies.
  std::shared_ptr<detail::NetFD> fd_;
};

// A stream socket connection (TCP or unix).
class Conn : public Stream {
 public:
  Conn() = default;
  Conn(Conn&&) noexcept = default;
  Conn& operator=(Conn&&) noexcept = default;

  // "127.0.0.1:port", "[::1]:port", or a unix path ("" when unnamed).
  const std::string& local_addr() const;
  const std::string& remote_addr() const;
  // shutdown_write half-closes: the peer reads end of stream, we can
  // still read (Go's CloseWrite).
  std::error_code shutdown_write();

 private:
  friend struct detail::Access;
  explicit Conn(std::shared_ptr<detail::NetFD> fd) : Stream(std::move(fd)) {}
};

// Any other descriptor: pipes, eventfds, character devices, sockets made
// elsewhere. Descriptors epoll cannot watch (regular files) work too, in
// blocking mode: their operations block the thread inside a
// BlockingRegion, and deadlines fail with Error::no_deadline.
class File : public Stream {
 public:
  File() = default;
  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

 private:
  friend struct detail::Access;
  explicit File(std::shared_ptr<detail::NetFD> fd) : Stream(std::move(fd)) {}
};

// ---------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------
class Listener {
 public:
  Listener() = default;
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&& o) noexcept;
  ~Listener();

  // accept waits for the next connection. After close (from any
  // goroutine, also while accept waits) it fails with Error::closed.
  Result<Conn> accept();
  // close stops listening; a unix listener removes its socket file.
  std::error_code close();
  // The bound address, e.g. "127.0.0.1:41234" (the chosen port for :0).
  const std::string& addr() const;
  // The bound TCP port (-1 for unix sockets or an empty handle).
  int port() const;
  // A deadline for accept (Go's TCPListener.SetDeadline).
  std::error_code set_deadline(Clock::time_point t);
  template <typename Rep, typename Period>
  std::error_code set_deadline(std::chrono::duration<Rep, Period> d) {
    return set_deadline(Clock::now() + std::chrono::duration_cast<Clock::duration>(d));
  }
  int fd() const noexcept;

 private:
  friend struct detail::Access;
  explicit Listener(std::shared_ptr<detail::NetFD> fd) : fd_(std::move(fd)) {}
  std::shared_ptr<detail::NetFD> fd_;
};

// listen announces on a local address. network: "tcp" (IPv4 or IPv6 as
// the address says; ":port" listens on both when the host has IPv6),
// "tcp4", "tcp6" or "unix". The backlog is the system's maximum.
Result<Listener> listen(std::string_view network, std::string_view address);

// dial connects to address (a non-blocking connect, then a wait for the
// result). A timeout > 0 bounds the connect: past it, the dial fails with
// std::errc::timed_out. TCP connections have Nagle's algorithm off, as in Go.
Result<Conn> dial(std::string_view network, std::string_view address,
                  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero());

// wrap takes ownership of fd and makes it non-blocking (which affects
// every process sharing its open file description, as in Go's os.NewFile).
// On failure fd is left open and still belongs to the caller.
Result<File> wrap(int fd);

// pipe returns a connected pair: bytes written to writer are read from
// reader.
struct Pipe {
  File reader;
  File writer;
};
Result<Pipe> pipe();

}  // namespace goro::net
