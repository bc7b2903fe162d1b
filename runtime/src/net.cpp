// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// goro::net: descriptors whose blocking operations park the goroutine.
// See goro/net.h for the API; this file is Go's internal/poll (fd_unix.go,
// fd_poll_runtime.go, fd_mutex.go) and the socket half of package net,
// rebuilt on the runtime's netpoller (netpoll.h).
//
// The shape of an operation
//
// Every descriptor is non-blocking and registered with epoll (edge
// triggered) through a PollDesc. A read is:
//
//   lock for reading           (one reader at a time; fails once closed)
//   netpoll_reset(pd, 'r')     fail fast on a closed pd or a passed deadline
//   loop: read(2)
//         EAGAIN -> netpoll_wait(pd, 'r'): park until epoll says readable
//         (0: try again; ETIMEDOUT: deadline; EBADF: closed under us)
//   unlock
//
// and a write is the same on the 'w' side, looping until every byte is out
// (a socket buffer takes what fits; the rest waits for EPOLLOUT).
//
// Closing while others are inside: the reference word
//
// Go's fdMutex packs a closed bit, a reference count and two
// reader/writer locks with their waiter counts into one word. We keep its
// first half, a word of `closed` (bit 0) and `references` (the rest), and
// use two goro::Mutexes for the reader and writer serialisation: a Mutex
// parks its waiters exactly as fdMutex's semaphores do, and checking the
// closed bit right after taking it gives the same "every queued operation
// fails with closed, one after the other" behaviour. Every operation holds
// a reference from start to end; close sets the closed bit (taking a
// reference of its own), wakes the parked operations with
// netpoll_unblock, and drops its reference. Whoever drops the last
// reference while the closed bit is set runs destroy: unregister from
// epoll, then close(2). So the descriptor number is never closed, and so
// never reused by another open, while an operation may still pass it to
// the kernel. close then waits (csema) for destroy, so that when it
// returns the number really is closed, as Go's FD.Close does.
//
// Memory: the NetFD lives in a shared_ptr; the handle (Conn, File,
// Listener) holds one and every operation copies it for its duration. A
// goroutine woken by close may still be unwinding (unlocking its Mutex,
// releasing csema) when the closer's handle is destroyed; its copy keeps
// the NetFD's memory valid until it is done.
//
// Descriptors epoll refuses (EPERM: regular files, some devices) are
// kept in blocking mode, as Go's os package does: their system calls run
// inside a BlockingRegion, so the thread blocks but the P moves on.
#include "goro/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstring>
#include <string>

#include "netpoll.h"
#include "runtime.h"

namespace goro::net {

namespace rt = goro::detail;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------
namespace {
class NetCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "goro.net"; }
  std::string message(int ev) const override {
    switch (static_cast<Error>(ev)) {
      case Error::closed:
        return "use of closed network connection";
      case Error::eof:
        return "EOF";
      case Error::unexpected_eof:
        return "unexpected EOF";
      case Error::unknown_network:
        return "unknown network";
      case Error::bad_address:
        return "invalid, non-numeric or unsuitable address";
      case Error::no_deadline:
        return "file type does not support deadline";
    }
    return "unknown goro.net error";
  }
};

std::error_code sys_err(int e) { return {e, std::system_category()}; }
std::error_code bad_handle() { return std::make_error_code(std::errc::bad_file_descriptor); }

// A netpoll_reset/netpoll_wait failure: EBADF means the PollDesc is
// closing (our close), ETIMEDOUT a deadline.
std::error_code poll_err(int e) {
  if (e == ETIMEDOUT) return std::make_error_code(std::errc::timed_out);
  return make_error_code(Error::closed);
}

void require_g(const char* op) {
  if (!rt::getg()) {
    goro::panic(std::string("goro::net: ") + op + " outside a goroutine (call it inside goro::run)");
  }
}

// Large transfers go in pieces of at most 1 GiB (Go's maxRW): some kernels
// and socket types misbehave on 2 GiB and more in one call.
constexpr std::size_t kMaxRW = std::size_t{1} << 30;
}  // namespace

const std::error_category& net_category() noexcept {
  static const NetCategory category;
  return category;
}

// ---------------------------------------------------------------------------
// NetFD: one descriptor and its poller state (Go's poll.FD and netFD)
// ---------------------------------------------------------------------------
namespace detail {

[[noreturn]] void result_fail(const std::error_code& e) {
  goro::panic("goro::net: value() of a failed Result: " + e.message());
}

struct NetFD {
  // Immutable after construction (read without the reference word).
  int sysfd = -1;
  rt::PollDesc* pd = nullptr;  // null: blocking mode (see the essay)
  bool is_socket = false;
  std::string laddr;
  std::string raddr;
  int port = -1;            // bound TCP port, for Listener::port
  std::string unlink_path;  // a unix listener's socket file, removed by destroy

  // The reference word: bit 0 closed, references in the rest.
  std::atomic<std::uint64_t> state{0};
  goro::Mutex rmu;  // one reader (or accept) at a time
  goro::Mutex wmu;  // one writer at a time
  std::uint32_t csema = 0;  // released by destroy; close waits on it
};

struct Access {
  static Conn conn(std::shared_ptr<NetFD> fd) { return Conn(std::move(fd)); }
  static File file(std::shared_ptr<NetFD> fd) { return File(std::move(fd)); }
  static Listener listener(std::shared_ptr<NetFD> fd) { return Listener(std::move(fd)); }
};

}  // namespace detail

using detail::NetFD;

namespace {
constexpr std::uint64_t kClosed = 1;
constexpr std::uint64_t kRef = 2;

// incref takes a reference unless the descriptor is closed.
bool incref(NetFD* fd) {
  std::uint64_t old = fd->state.load(std::memory_order_relaxed);
  do {
    if (old & kClosed) return false;
  } while (!fd->state.compare_exchange_weak(old, old + kRef, std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

// increfAndClose sets the closed bit and takes a reference; false if the
// bit was set already (a second close).
bool increfAndClose(NetFD* fd) {
  std::uint64_t old = fd->state.load(std::memory_order_relaxed);
  do {
    if (old & kClosed) return false;
  } while (!fd->state.compare_exchange_weak(old, (old + kRef) | kClosed, std::memory_order_acq_rel,
                                            std::memory_order_relaxed));
  return true;
}

// destroy runs exactly once, by whoever dropped the last reference after
// close: nothing can use sysfd any more.
void destroy(NetFD* fd) {
  // Unregister before closing: once closed, the number may be reused by
  // another open, whose registration must not collide with ours.
  if (fd->pd) rt::netpoll_close(fd->pd);
  ::close(fd->sysfd);  // on Linux the descriptor is gone even on EINTR
  if (!fd->unlink_path.empty()) ::unlink(fd->unlink_path.c_str());
  rt::semrelease(&fd->csema, false);
}

void decref(NetFD* fd) {
  std::uint64_t now = fd->state.fetch_sub(kRef, std::memory_order_acq_rel) - kRef;
  if (now == kClosed) destroy(fd);
}

std::error_code close_fd(NetFD* fd) {
  if (!increfAndClose(fd)) return make_error_code(Error::closed);
  // Wake every parked operation: they fail with EBADF -> Error::closed,
  // and so does any that gets as far as netpoll_reset/netpoll_wait later.
  if (fd->pd) rt::netpoll_unblock(fd->pd);
  // A blocking-mode operation may sit in the kernel indefinitely: do not
  // wait for it (nor outside a goroutine, where we cannot park).
  bool wait = fd->pd != nullptr && rt::getg() != nullptr;
  decref(fd);
  if (wait) rt::semacquire(&fd->csema, false);
  return {};
}

// OpGuard holds a reference, and the mode's Mutex if given, for one
// operation (Go's readLock/writeLock, or incref alone).
class OpGuard {
 public:
  OpGuard(NetFD* fd, goro::Mutex* mu) : fd_(fd), mu_(mu) {
    if (!incref(fd_)) {
      err_ = make_error_code(Error::closed);
      return;
    }
    if (mu_) {
      mu_->lock();
      // Closed while we queued behind another operation.
      if (fd_->state.load(std::memory_order_acquire) & kClosed) {
        mu_->unlock();
        decref(fd_);
        err_ = make_error_code(Error::closed);
      }
    }
  }
  ~OpGuard() {
    if (err_) return;
    if (mu_) mu_->unlock();
    decref(fd_);
  }
  OpGuard(const OpGuard&) = delete;
  OpGuard& operator=(const OpGuard&) = delete;
  const std::error_code& error() const { return err_; }

 private:
  NetFD* fd_;
  goro::Mutex* mu_;
  std::error_code err_;
};

// blocking_call runs a system call that may block the thread (blocking
// mode), inside a BlockingRegion; errno is captured inside the region.
template <typename F>
ssize_t blocking_call(F f, int* err) {
  goro::BlockingRegion region;
  ssize_t n = f();
  *err = errno;
  return n;
}

// wait_ready parks until mode is ready. 0 or the netpoll_wait error.
int wait_ready(NetFD* fd, char mode) {
  require_g(mode == 'r' ? "read/accept" : "write/dial");
  return rt::netpoll_wait(fd->pd, mode);
}

// prepare is Go's prepareRead/prepareWrite.
std::error_code prepare(NetFD* fd, char mode) {
  if (!fd->pd) return {};
  int e = rt::netpoll_reset(fd->pd, mode);
  return e ? poll_err(e) : std::error_code{};
}

// read_some reads once some data is there. The read lock is held.
IoResult read_some(NetFD* fd, char* p, std::size_t len) {
  len = std::min(len, kMaxRW);
  for (;;) {
    ssize_t n;
    int e = 0;
    if (fd->pd) {
      n = ::read(fd->sysfd, p, len);
      if (n < 0) e = errno;
    } else {
      n = blocking_call([&] { return ::read(fd->sysfd, p, len); }, &e);
    }
    if (n > 0) return {static_cast<std::size_t>(n), {}};
    if (n == 0) return {0, make_error_code(Error::eof)};
    if (e == EINTR) continue;
    if (e == EAGAIN && fd->pd) {
      if (int pe = wait_ready(fd, 'r')) return {0, poll_err(pe)};
      continue;
    }
    return {0, sys_err(e)};
  }
}

IoResult write_all(NetFD* fd, const char* p, std::size_t len) {
  std::size_t nn = 0;
  for (;;) {
    std::size_t chunk = std::min(len - nn, kMaxRW);
    ssize_t n;
    int e = 0;
    auto sys = [&] {
      // MSG_NOSIGNAL: a closed peer is EPIPE, not a process-killing SIGPIPE.
      return fd->is_socket ? ::send(fd->sysfd, p + nn, chunk, MSG_NOSIGNAL) : ::write(fd->sysfd, p + nn, chunk);
    };
    if (fd->pd) {
      n = sys();
      if (n < 0) e = errno;
    } else {
      n = blocking_call(sys, &e);
    }
    if (n > 0) {
      nn += static_cast<std::size_t>(n);
      if (nn == len) return {nn, {}};
      continue;  // a partial write: the next call most likely says EAGAIN
    }
    if (n == 0) return {nn, make_error_code(Error::unexpected_eof)};
    if (e == EINTR) continue;
    if (e == EAGAIN && fd->pd) {
      if (int pe = wait_ready(fd, 'w')) return {nn, poll_err(pe)};
      continue;
    }
    return {nn, sys_err(e)};
  }
}

// The runtime's deadline for t: nanotime-based, 0 none, -1 passed.
std::int64_t runtime_deadline(Clock::time_point t) {
  if (t == no_deadline) return 0;
  Clock::time_point now = Clock::now();
  if (t <= now) return -1;
  std::int64_t base = rt::nanotime();
  std::int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(t - now).count();
  if (left > INT64_MAX - base) return INT64_MAX;
  return base + left;
}

std::error_code set_deadline_mode(NetFD* fd, Clock::time_point t, char mode) {
  OpGuard g(fd, nullptr);
  if (g.error()) return g.error();
  if (!fd->pd) return make_error_code(Error::no_deadline);
  require_g("set_deadline");  // the deadline timer goes on the current P
  rt::netpoll_set_deadline(fd->pd, runtime_deadline(t), mode);
  return {};
}

// new_netfd wraps sysfd (non-blocking already). When epoll refuses it
// with EPERM and !require_poll, the NetFD is in blocking mode. On error
// sysfd is left open for the caller.
std::error_code new_netfd(int sysfd, bool is_socket, bool require_poll, std::shared_ptr<NetFD>* out) {
  auto fd = std::make_shared<NetFD>();
  fd->sysfd = sysfd;
  fd->is_socket = is_socket;
  int e = 0;
  fd->pd = rt::netpoll_open(sysfd, &e);
  if (!fd->pd && (require_poll || e != EPERM)) return sys_err(e);
  *out = std::move(fd);
  return {};
}
}  // namespace

// ---------------------------------------------------------------------------
// Stream, Conn, File
// ---------------------------------------------------------------------------
Stream::~Stream() {
  if (fd_) (void)close_fd(fd_.get());
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (fd_) (void)close_fd(fd_.get());
    fd_ = std::move(o.fd_);
  }
  return *this;
}

IoResult Stream::read(void* buf, std::size_t len) {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return {0, bad_handle()};
  OpGuard g(fd.get(), &fd->rmu);
  if (g.error()) return {0, g.error()};
  // A zero-byte read returns at once (after taking the lock, as Go's):
  // read(2) would say 0, which looks like end of stream.
  if (len == 0) return {};
  if (auto e = prepare(fd.get(), 'r')) return {0, e};
  return read_some(fd.get(), static_cast<char*>(buf), len);
}

IoResult Stream::read_full(void* buf, std::size_t len) {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return {0, bad_handle()};
  // The lock is held for the whole: no other reader's bytes interleave.
  OpGuard g(fd.get(), &fd->rmu);
  if (g.error()) return {0, g.error()};
  if (len == 0) return {};
  if (auto e = prepare(fd.get(), 'r')) return {0, e};
  std::size_t nn = 0;
  auto* p = static_cast<char*>(buf);
  while (nn < len) {
    IoResult r = read_some(fd.get(), p + nn, len - nn);
    nn += r.n;
    if (r.err) {
      if (r.err == Error::eof && nn > 0) r.err = make_error_code(Error::unexpected_eof);
      return {nn, r.err};
    }
  }
  return {nn, {}};
}

IoResult Stream::write(const void* buf, std::size_t len) {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return {0, bad_handle()};
  OpGuard g(fd.get(), &fd->wmu);
  if (g.error()) return {0, g.error()};
  if (len == 0) return {};
  if (auto e = prepare(fd.get(), 'w')) return {0, e};
  return write_all(fd.get(), static_cast<const char*>(buf), len);
}

std::error_code Stream::close() {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return bad_handle();
  return close_fd(fd.get());
}

std::error_code Stream::set_deadline(Clock::time_point t) {
  std::shared_ptr<NetFD> fd = fd_;
  return fd ? set_deadline_mode(fd.get(), t, 'b') : bad_handle();
}
std::error_code Stream::set_read_deadline(Clock::time_point t) {
  std::shared_ptr<NetFD> fd = fd_;
  return fd ? set_deadline_mode(fd.get(), t, 'r') : bad_handle();
}
std::error_code Stream::set_write_deadline(Clock::time_point t) {
  std::shared_ptr<NetFD> fd = fd_;
  return fd ? set_deadline_mode(fd.get(), t, 'w') : bad_handle();
}

int Stream::fd() const noexcept { return fd_ ? fd_->sysfd : -1; }

namespace {
const std::string& empty_string() {
  static const std::string empty;
  return empty;
}
}  // namespace

const std::string& Conn::local_addr() const { return fd_ ? fd_->laddr : empty_string(); }
const std::string& Conn::remote_addr() const { return fd_ ? fd_->raddr : empty_string(); }

std::error_code Conn::shutdown_write() {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return bad_handle();
  OpGuard g(fd.get(), nullptr);
  if (g.error()) return g.error();
  if (::shutdown(fd->sysfd, SHUT_WR) != 0) return sys_err(errno);
  return {};
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------
namespace {
enum class Network { tcp, tcp4, tcp6, unix_ };

bool parse_network(std::string_view s, Network* out) {
  if (s == "tcp") *out = Network::tcp;
  else if (s == "tcp4") *out = Network::tcp4;
  else if (s == "tcp6") *out = Network::tcp6;
  else if (s == "unix") *out = Network::unix_;
  else return false;
  return true;
}

struct Sockaddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&ss); }
};

void set_v4(Sockaddr* out, in_addr addr, std::uint16_t port) {
  auto* sin = reinterpret_cast<sockaddr_in*>(&out->ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr = addr;
  out->len = sizeof(sockaddr_in);
}

void set_v6(Sockaddr* out, const in6_addr& addr, std::uint16_t port) {
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  sin6->sin6_addr = addr;
  out->len = sizeof(sockaddr_in6);
}

// format_addr renders a socket address the way Go's Addr.String does.
//
// GCC 12 at -O3 (a Release build) reports a -Wrestrict overlap inside
// libstdc++'s inlined std::string concatenation below: a false positive of
// that compiler (GCC bug 105329), silenced here and only here.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
std::string format_addr(const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN];
  switch (ss.ss_family) {
    case AF_INET: {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
      constexpr socklen_t off = offsetof(sockaddr_un, sun_path);
      if (len <= off) return "";  // unnamed
      std::size_t n = len - off;
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);  // abstract
      return std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    default:
      return "";
  }
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic pop
#endif

int sockaddr_port(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return -1;
}

std::error_code unix_sockaddr(std::string_view path, Sockaddr* out) {
  auto* un = reinterpret_cast<sockaddr_un*>(&out->ss);
  un->sun_family = AF_UNIX;
  constexpr socklen_t off = offsetof(sockaddr_un, sun_path);
  if (path.empty() || path.size() >= sizeof un->sun_path) return make_error_code(Error::bad_address);
  if (path[0] == '@') {
    // Linux's abstract namespace: a leading NUL, the length says the rest.
    un->sun_path[0] = '\0';
    std::memcpy(un->sun_path + 1, path.data() + 1, path.size() - 1);
    out->len = static_cast<socklen_t>(off + path.size());
  } else {
    std::memcpy(un->sun_path, path.data(), path.size());
    un->sun_path[path.size()] = '\0';
    out->len = static_cast<socklen_t>(off + path.size() + 1);
  }
  return {};
}

// tcp_sockaddr parses "host:port" / "[v6]:port" for network. An empty host
// is the wildcard when listening (for plain "tcp", IPv6's, dual stack:
// *dualstack is set) and the local host when dialling.
std::error_code tcp_sockaddr(Network net, std::string_view address, bool listening, Sockaddr* out,
                             bool* dualstack) {
  const std::error_code bad = make_error_code(Error::bad_address);
  *dualstack = false;
  std::string_view host, port;
  if (!address.empty() && address[0] == '[') {
    std::size_t end = address.find(']');
    if (end == std::string_view::npos || end + 1 >= address.size() || address[end + 1] != ':') return bad;
    host = address.substr(1, end - 1);
    port = address.substr(end + 2);
    if (host.empty()) return bad;
  } else {
    std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad;  // missing port
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad;  // a v6 literal needs brackets
  }
  unsigned portnum = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), portnum);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || portnum > 65535) return bad;
  auto p16 = static_cast<std::uint16_t>(portnum);

  in_addr v4{};
  in6_addr v6{};
  if (host.empty()) {
    if (listening) {
      if (net == Network::tcp4) {
        v4.s_addr = htonl(INADDR_ANY);
        set_v4(out, v4, p16);
      } else {
        set_v6(out, in6addr_any, p16);
        *dualstack = net == Network::tcp;
      }
    } else if (net == Network::tcp6) {
      set_v6(out, in6addr_loopback, p16);
    } else {
      v4.s_addr = htonl(INADDR_LOOPBACK);
      set_v4(out, v4, p16);
    }
    return {};
  }
  if (host == "localhost") {
    if (net == Network::tcp6) {
      set_v6(out, in6addr_loopback, p16);
    } else {
      v4.s_addr = htonl(INADDR_LOOPBACK);
      set_v4(out, v4, p16);
    }
    return {};
  }
  std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    if (net == Network::tcp6) return bad;
    set_v4(out, v4, p16);
    return {};
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (net == Network::tcp4) return bad;
    set_v6(out, v6, p16);
    return {};
  }
  return bad;  // a name: we do not resolve
}

int new_socket(int family) { return ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

void set_nodelay(int s) {
  int one = 1;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void fill_addrs(NetFD* fd, bool local, bool remote) {
  Sockaddr sa;
  sa.len = sizeof sa.ss;
  if (local && ::getsockname(fd->sysfd, sa.sa(), &sa.len) == 0) {
    fd->laddr = format_addr(sa.ss, sa.len);
    fd->port = sockaddr_port(sa.ss);
  }
  sa.len = sizeof sa.ss;
  if (remote && ::getpeername(fd->sysfd, sa.sa(), &sa.len) == 0) fd->raddr = format_addr(sa.ss, sa.len);
}
}  // namespace

// ---------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------
Result<Listener> listen(std::string_view network, std::string_view address) {
  Network net;
  if (!parse_network(network, &net)) return Error::unknown_network;
  Sockaddr sa;
  bool dualstack = false;
  std::error_code err = net == Network::unix_ ? unix_sockaddr(address, &sa)
                                              : tcp_sockaddr(net, address, true, &sa, &dualstack);
  if (err) return err;
  int s = new_socket(sa.family());
  if (s < 0 && dualstack && errno == EAFNOSUPPORT) {
    // No IPv6 on this host: plain "tcp" falls back to IPv4's wildcard.
    in_addr any{};
    any.s_addr = htonl(INADDR_ANY);
    set_v4(&sa, any, static_cast<std::uint16_t>(sockaddr_port(sa.ss)));
    dualstack = false;
    s = new_socket(AF_INET);
  }
  if (s < 0) return sys_err(errno);
  auto fail = [s](int e) {
    ::close(s);
    return sys_err(e);
  };
  if (net != Network::unix_) {
    int one = 1;
    if (::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return fail(errno);
    if (sa.family() == AF_INET6) {
      int v6only = dualstack ? 0 : 1;
      if (::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0) return fail(errno);
    }
  }
  if (::bind(s, sa.sa(), sa.len) != 0) return fail(errno);
  if (::listen(s, SOMAXCONN) != 0) {
    int e = errno;
    if (net == Network::unix_ && address[0] != '@') ::unlink(std::string(address).c_str());
    return fail(e);
  }
  std::shared_ptr<NetFD> fd;
  if (auto e = new_netfd(s, true, true, &fd)) {
    if (net == Network::unix_ && address[0] != '@') ::unlink(std::string(address).c_str());
    ::close(s);
    return e;
  }
  fill_addrs(fd.get(), true, false);
  if (net == Network::unix_ && address[0] != '@') fd->unlink_path = std::string(address);
  return detail::Access::listener(std::move(fd));
}

Listener::~Listener() {
  if (fd_) (void)close_fd(fd_.get());
}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    if (fd_) (void)close_fd(fd_.get());
    fd_ = std::move(o.fd_);
  }
  return *this;
}

Result<Conn> Listener::accept() {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return bad_handle();
  OpGuard g(fd.get(), &fd->rmu);
  if (g.error()) return g.error();
  if (auto e = prepare(fd.get(), 'r')) return e;
  for (;;) {
    Sockaddr peer;
    peer.len = sizeof peer.ss;
    int s = ::accept4(fd->sysfd, peer.sa(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s >= 0) {
      std::shared_ptr<NetFD> cfd;
      if (auto e = new_netfd(s, true, true, &cfd)) {
        ::close(s);
        return e;
      }
      if (peer.family() == AF_INET || peer.family() == AF_INET6) set_nodelay(s);
      fill_addrs(cfd.get(), true, false);
      cfd->raddr = format_addr(peer.ss, peer.len);
      return detail::Access::conn(std::move(cfd));
    }
    int e = errno;
    // The connection was reset while queued: not the listener's problem.
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EAGAIN) {
      if (int pe = wait_ready(fd.get(), 'r')) return poll_err(pe);
      continue;
    }
    return sys_err(e);
  }
}

std::error_code Listener::close() {
  std::shared_ptr<NetFD> fd = fd_;
  if (!fd) return bad_handle();
  return close_fd(fd.get());
}

const std::string& Listener::addr() const { return fd_ ? fd_->laddr : empty_string(); }
int Listener::port() const { return fd_ ? fd_->port : -1; }
int Listener::fd() const noexcept { return fd_ ? fd_->sysfd : -1; }

std::error_code Listener::set_deadline(Clock::time_point t) {
  std::shared_ptr<NetFD> fd = fd_;
  return fd ? set_deadline_mode(fd.get(), t, 'b') : bad_handle();
}

// ---------------------------------------------------------------------------
// dial
// ---------------------------------------------------------------------------
Result<Conn> dial(std::string_view network, std::string_view address, std::chrono::nanoseconds timeout) {
  require_g("dial");
  Network net;
  if (!parse_network(network, &net)) return Error::unknown_network;
  Sockaddr sa;
  bool dualstack = false;
  std::error_code err = net == Network::unix_ ? unix_sockaddr(address, &sa)
                                              : tcp_sockaddr(net, address, false, &sa, &dualstack);
  if (err) return err;
  int s = new_socket(sa.family());
  if (s < 0) return sys_err(errno);
  int rc = ::connect(s, sa.sa(), sa.len);
  int e = rc == 0 ? 0 : errno;
  if (e == EISCONN) e = 0;
  // EINTR: the connect goes on asynchronously, like EINPROGRESS.
  if (e != 0 && e != EINPROGRESS && e != EALREADY && e != EINTR) {
    ::close(s);
    return sys_err(e);
  }
  std::shared_ptr<NetFD> fd;
  if (auto ne = new_netfd(s, true, true, &fd)) {
    ::close(s);
    return ne;
  }
  if (e != 0) {
    // Wait for writability, then ask the socket how the connect went
    // (Go's netFD.connect). A fresh PollDesc has no stale readiness, and
    // epoll reports a socket that became writable before it was added.
    if (timeout.count() > 0) {
      std::int64_t now = rt::nanotime();
      std::int64_t d = timeout.count() > INT64_MAX - now ? INT64_MAX : now + timeout.count();
      rt::netpoll_set_deadline(fd->pd, d, 'w');
    }
    for (;;) {
      if (int pe = rt::netpoll_wait(fd->pd, 'w')) {
        (void)close_fd(fd.get());
        return poll_err(pe);
      }
      int soerr = 0;
      socklen_t l = sizeof soerr;
      if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0) soerr = errno;
      if (soerr == EINPROGRESS || soerr == EALREADY || soerr == EINTR) continue;
      if (soerr == 0 || soerr == EISCONN) {
        // Writable and no error, but a spurious wake-up looks the same:
        // connected only if there is a peer.
        Sockaddr peer;
        peer.len = sizeof peer.ss;
        if (::getpeername(s, peer.sa(), &peer.len) == 0) break;
        continue;
      }
      (void)close_fd(fd.get());
      return sys_err(soerr);
    }
    if (timeout.count() > 0) rt::netpoll_set_deadline(fd->pd, 0, 'w');
  }
  if (sa.family() == AF_INET || sa.family() == AF_INET6) set_nodelay(s);
  fill_addrs(fd.get(), true, true);
  return detail::Access::conn(std::move(fd));
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------
Result<File> wrap(int sysfd) {
  int flags = ::fcntl(sysfd, F_GETFL);
  if (flags < 0) return sys_err(errno);
  struct stat st {};
  bool is_socket = ::fstat(sysfd, &st) == 0 && S_ISSOCK(st.st_mode);
  if (!(flags & O_NONBLOCK) && ::fcntl(sysfd, F_SETFL, flags | O_NONBLOCK) != 0) return sys_err(errno);
  std::shared_ptr<NetFD> fd;
  std::error_code e = new_netfd(sysfd, is_socket, false, &fd);
  // In blocking mode (or on failure), the descriptor gets its flags back.
  if ((e || !fd->pd) && !(flags & O_NONBLOCK)) ::fcntl(sysfd, F_SETFL, flags);
  if (e) return e;
  return detail::Access::file(std::move(fd));
}

Result<Pipe> pipe() {
  int p[2];
  if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return sys_err(errno);
  std::shared_ptr<NetFD> r, w;
  if (auto e = new_netfd(p[0], false, true, &r)) {
    ::close(p[0]);
    ::close(p[1]);
    return e;
  }
  if (auto e = new_netfd(p[1], false, true, &w)) {
    (void)close_fd(r.get());  // closes p[0]
    ::close(p[1]);
    return e;
  }
  return Pipe{detail::Access::file(std::move(r)), detail::Access::file(std::move(w))};
}

}  // namespace goro::net
