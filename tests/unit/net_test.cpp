// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// goro::net: sockets and pipes whose blocking operations park the
// goroutine in the netpoller. Echo round trips over every network, many
// connections at once, deadlines, close racing a blocked operation, big
// writes against a slow reader, and the scheduler-level guarantees Go's
// net tests check: a goroutine blocked in the netpoller is not a deadlock
// (TestNetpollDeadlock), and readiness wakes a long-sleeping poller at once.
//
// Only loopback addresses (127.0.0.1, ::1) and unix sockets are used.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include <goro/net.h>
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using goro::Clock;
namespace net = goro::net;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int kSlowdown = 4;
#else
constexpr int kSlowdown = 1;
#endif
#else
constexpr int kSlowdown = 1;
#endif

// "Promptly": well under any poll timeout in play, generous for a loaded
// two-core machine (and scaled for sanitizer builds).
constexpr auto kPromptly = 100ms * kSlowdown;

std::error_code closed_error() { return net::make_error_code(net::Error::closed); }

char pattern_byte(std::size_t i) { return static_cast<char>((i * 131 + 7) & 0xff); }

std::string pattern(std::size_t n, std::size_t offset = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i++) s[i] = pattern_byte(i + offset);
  return s;
}

// serve_echo accepts until the listener is closed, echoing every connection
// in a goroutine of its own until the peer's end of stream. wg counts the
// server's goroutines.
void serve_echo(net::Listener& ln, goro::WaitGroup& wg) {
  wg.add(1);
  goro::go([&ln, &wg] {
    for (;;) {
      auto c = ln.accept();
      if (!c) {
        EXPECT_EQ(c.error(), closed_error()) << "accept failed: " << c.error().message();
        break;
      }
      wg.add(1);
      goro::go([conn = std::move(*c), &wg]() mutable {
        char buf[4096];
        for (;;) {
          net::IoResult r = conn.read(buf, sizeof buf);
          if (!r) {
            EXPECT_EQ(r.err, net::make_error_code(net::Error::eof)) << r.err.message();
            break;
          }
          net::IoResult w = conn.write(buf, r.n);
          if (!w) {
            ADD_FAILURE() << "echo write: " << w.err.message();
            break;
          }
        }
        wg.done();
      });
    }
    wg.done();
  });
}

// echo_once sends msg over conn and checks that the same bytes come back.
void echo_once(net::Conn& conn, const std::string& msg) {
  net::IoResult w = conn.write(msg);
  ASSERT_TRUE(w.ok()) << w.err.message();
  ASSERT_EQ(w.n, msg.size());
  std::string back(msg.size(), '\0');
  net::IoResult r = conn.read_full(back.data(), back.size());
  ASSERT_TRUE(r.ok()) << r.err.message();
  ASSERT_EQ(back, msg);
}

// round_trip: listen on (network, address), dial what the listener reports,
// echo a few messages, close everything, wait for the server to end.
void round_trip(const char* network, const char* address, const char* dial_network = nullptr) {
  goro::run([&] {
    auto ln = net::listen(network, address);
    ASSERT_TRUE(ln.ok()) << network << " " << address << ": " << ln.error().message();
    goro::WaitGroup wg;
    serve_echo(*ln, wg);
    auto c = net::dial(dial_network ? dial_network : network, ln->addr());
    ASSERT_TRUE(c.ok()) << "dial " << ln->addr() << ": " << c.error().message();
    EXPECT_EQ(c->remote_addr(), ln->addr());
    echo_once(*c, "hello, goro");
    echo_once(*c, pattern(100000));
    echo_once(*c, "x");
    EXPECT_FALSE(c->close());
    EXPECT_FALSE(ln->close());
    wg.wait();
  });
}

// ---------------------------------------------------------------------------
// Echo round trips

TEST(NetEcho, RoundTripOverTcp4) {
  goro::run([] {
    auto ln = net::listen("tcp4", "127.0.0.1:0");
    ASSERT_TRUE(ln.ok()) << ln.error().message();
    EXPECT_GT(ln->port(), 0) << "port 0 must be replaced by the chosen port";
    EXPECT_EQ(ln->addr(), "127.0.0.1:" + std::to_string(ln->port()));
    goro::WaitGroup wg;
    serve_echo(*ln, wg);
    auto c = net::dial("tcp4", ln->addr());
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->remote_addr(), ln->addr());
    EXPECT_EQ(c->local_addr().rfind("127.0.0.1:", 0), 0u) << c->local_addr();
    echo_once(*c, "hello over tcp4");
    echo_once(*c, pattern(1 << 20));
    c->close();
    ln->close();
    wg.wait();
  });
}

TEST(NetEcho, RoundTripOverTcpWithPlainTcpNetwork) { round_trip("tcp", "127.0.0.1:0"); }

TEST(NetEcho, RoundTripOverTcpToLocalhostName) {
  goro::run([] {
    auto ln = net::listen("tcp", "localhost:0");
    ASSERT_TRUE(ln.ok()) << ln.error().message();
    EXPECT_EQ(ln->addr().rfind("127.0.0.1:", 0), 0u) << "localhost means 127.0.0.1: " << ln->addr();
    goro::WaitGroup wg;
    serve_echo(*ln, wg);
    auto c = net::dial("tcp", "localhost:" + std::to_string(ln->port()));
    ASSERT_TRUE(c.ok()) << c.error().message();
    echo_once(*c, "by name");
    c->close();
    ln->close();
    wg.wait();
  });
}

// Whether this machine can bind ::1 (checked with plain sockets).
bool ipv6_loopback_available() {
  int s = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (s < 0) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(s);
  return ok;
}

TEST(NetEcho, RoundTripOverTcp6OrAClearErrorWithoutIPv6) {
  if (ipv6_loopback_available()) {
    round_trip("tcp6", "[::1]:0");
    goro::run([] {
      auto ln = net::listen("tcp6", "[::1]:0");
      ASSERT_TRUE(ln.ok()) << ln.error().message();
      EXPECT_EQ(ln->addr(), "[::1]:" + std::to_string(ln->port()));
    });
  } else {
    goro::run([] {
      auto ln = net::listen("tcp6", "[::1]:0");
      ASSERT_FALSE(ln.ok()) << "::1 is not bindable here, yet listen succeeded";
      EXPECT_TRUE(ln.error() == std::errc::address_not_available ||
                  ln.error() == std::errc::address_family_not_supported)
          << "unexpected error: " << ln.error().message();
    });
  }
}

TEST(NetEcho, DualStackListenerAcceptsBothFamilies) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback on this machine";
  goro::run([] {
    auto ln = net::listen("tcp", ":0");
    ASSERT_TRUE(ln.ok()) << ln.error().message();
    goro::WaitGroup wg;
    serve_echo(*ln, wg);
    std::string port = std::to_string(ln->port());
    for (std::string addr : {"127.0.0.1:" + port, "[::1]:" + port, ":" + port}) {
      auto c = net::dial("tcp", addr);
      ASSERT_TRUE(c.ok()) << addr << ": " << c.error().message();
      echo_once(*c, "via " + addr);
    }
    ln->close();
    wg.wait();
  });
}

std::string temp_socket_path() {
  char dir[] = "/tmp/goro_net_test.XXXXXX";
  if (!::mkdtemp(dir)) return "";
  return std::string(dir) + "/echo.sock";
}

TEST(NetEcho, RoundTripOverUnixSocketAndTheFileGoesAwayOnClose) {
  std::string path = temp_socket_path();
  ASSERT_FALSE(path.empty());
  round_trip("unix", path.c_str());
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "the listener's close must remove " << path;
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST(NetEcho, RoundTripOverAbstractUnixSocket) {
  std::string name = "@goro_net_test." + std::to_string(::getpid());
  round_trip("unix", name.c_str());
}

TEST(NetEcho, HundredConcurrentConnections) {
  constexpr int kConns = 100;
  constexpr int kMessages = 20;
  goro::run([] {
    auto ln = net::listen("tcp4", "127.0.0.1:0");
    ASSERT_TRUE(ln.ok()) << ln.error().message();
    goro::WaitGroup server;
    serve_echo(*ln, server);
    goro::WaitGroup clients;
    std::atomic<int> echoed{0};
    for (int i = 0; i < kConns; i++) {
      clients.add(1);
      goro::go([&, i] {
        auto c = net::dial("tcp4", ln->addr());
        if (!c) {
          ADD_FAILURE() << "dial " << i << ": " << c.error().message();
        } else {
          for (int m = 0; m < kMessages; m++) {
            std::string msg = pattern(1 + (i * 997 + m * 131) % 5000, i + m);
            echo_once(*c, msg);
            echoed.fetch_add(1);
          }
        }
        clients.done();
      });
    }
    clients.wait();
    EXPECT_EQ(echoed.load(), kConns * kMessages);
    ln->close();
    server.wait();
  });
}

// ---------------------------------------------------------------------------
// Deadlines

// A connected pair of TCP conns, accepted and dialled in this goroutine.
struct ConnPair {
  net::Conn client;
  net::Conn server;
};
ConnPair connected_pair() {
  auto ln = net::listen("tcp4", "127.0.0.1:0");
  if (!ln) ADD_FAILURE() << ln.error().message();
  auto c = net::dial("tcp4", ln->addr());
  if (!c) ADD_FAILURE() << c.error().message();
  auto s = ln->accept();
  if (!s) ADD_FAILURE() << s.error().message();
  return ConnPair{std::move(*c), std::move(*s)};
}

TEST(NetDeadline, ReadDeadlineExpiresWithTimeoutAndTheConnStaysUsable) {
  goro::run([] {
    ConnPair p = connected_pair();
    char buf[16];
    auto t0 = Clock::now();  // (before the deadline is set: it counts from then)
    ASSERT_FALSE(p.client.set_read_deadline(50ms));
    net::IoResult r = p.client.read(buf, sizeof buf);
    auto waited = Clock::now() - t0;
    EXPECT_EQ(r.err, std::errc::timed_out) << r.err.message();
    EXPECT_EQ(r.n, 0u);
    EXPECT_GE(waited, 50ms) << "the read gave up before its deadline";
    EXPECT_LT(waited, 50ms + kPromptly * 5) << "the deadline fired late";

    // Still expired: fails at once, without waiting.
    r = p.client.read(buf, sizeof buf);
    EXPECT_EQ(r.err, std::errc::timed_out);

    // Cleared: the same conn reads what arrives later.
    ASSERT_FALSE(p.client.set_read_deadline(net::no_deadline));
    // The writer may still be inside write() (its descriptor's locks) when
    // the bytes reach us: it is joined before p dies.
    goro_test::GoGroup writer;
    writer.go([&] {
      goro::sleep_for(20ms);
      (void)p.server.write("late");
    });
    r = p.client.read_full(buf, 4);
    ASSERT_TRUE(r.ok()) << r.err.message();
    EXPECT_EQ(std::string(buf, 4), "late");
  });
}

TEST(NetDeadline, DeadlineInThePastFailsImmediately) {
  goro::run([] {
    ConnPair p = connected_pair();
    ASSERT_FALSE(p.client.set_deadline(Clock::now() - 1s));
    char c;
    EXPECT_EQ(p.client.read(&c, 1).err, std::errc::timed_out);
    EXPECT_EQ(p.client.write("x").err, std::errc::timed_out);
  });
}

TEST(NetDeadline, ExtendingTheDeadlineOfABlockedReadLetsItWaitLonger) {
  goro::run([] {
    ConnPair p = connected_pair();
    // 10 ms to clear a 300 ms deadline: under TSan on a busy host the
    // clearing goroutine's 10 ms sleep overran a 40 ms deadline (about 1
    // run in 20 on a quiet host, every run at load 10).
    ASSERT_FALSE(p.client.set_read_deadline(300ms));
    goro_test::GoGroup clearer;  // joined before p dies, however the test ends
    clearer.go([&] {
      goro::sleep_for(10ms);
      (void)p.client.set_read_deadline(net::no_deadline);  // while the read waits
      goro::sleep_for(400ms);
      (void)p.server.write("y");
    });
    char c;
    net::IoResult r = p.client.read(&c, 1);
    ASSERT_TRUE(r.ok()) << "the cleared deadline still fired: " << r.err.message();
    EXPECT_EQ(c, 'y');
  });
}

TEST(NetDeadline, WriteDeadlineExpiresWhenThePeerDoesNotRead) {
  goro::run([] {
    ConnPair p = connected_pair();
    // Far more than both socket buffers hold while nobody reads.
    std::string big(16 << 20, 'w');
    ASSERT_FALSE(p.client.set_write_deadline(100ms));
    net::IoResult r = p.client.write(big);
    EXPECT_EQ(r.err, std::errc::timed_out) << r.err.message();
    EXPECT_GT(r.n, 0u) << "part of the data fits in the buffers and must be reported";
    EXPECT_LT(r.n, big.size());
  });
}

// ---------------------------------------------------------------------------
// Close against blocked operations

TEST(NetClose, ClosingTheListenerWakesABlockedAcceptWithClosed) {
  goro::run([] {
    auto ln = net::listen("tcp4", "127.0.0.1:0");
    ASSERT_TRUE(ln.ok()) << ln.error().message();
    goro::Chan<std::error_code> done(1);
    goro::go([&] {
      auto c = ln->accept();
      done.send(c ? std::error_code{} : c.error());
    });
    goro::sleep_for(50ms);  // let it block
    EXPECT_FALSE(done.try_recv().has_value()) << "accept returned with no connection";
    auto t0 = Clock::now();
    EXPECT_FALSE(ln->close());
    std::optional<std::error_code> err = done.recv();
    EXPECT_LT(Clock::now() - t0, kPromptly);
    EXPECT_EQ(*err, closed_error()) << err->message();
    EXPECT_EQ(ln->accept().error(), closed_error()) << "accept after close";
    EXPECT_EQ(ln->close(), closed_error()) << "second close";
    // The port is free again once close has returned.
    auto again = net::listen("tcp4", "127.0.0.1:" + std::to_string(ln->port()));
    EXPECT_TRUE(again.ok()) << again.error().message();
  });
}

TEST(NetClose, ClosingAConnWakesABlockedReaderWithClosed) {
  goro::run([] {
    ConnPair p = connected_pair();
    goro::Chan<net::IoResult> done(1);
    goro::go([&] {
      char buf[8];
      done.send(p.client.read(buf, sizeof buf));
    });
    goro::sleep_for(50ms);
    EXPECT_FALSE(p.client.close());
    std::optional<net::IoResult> r = done.recv();
    EXPECT_EQ(r->err, closed_error()) << r->err.message();
    EXPECT_EQ(p.client.write("x").err, closed_error()) << "write after close";
    // The peer sees the connection end.
    char c;
    EXPECT_EQ(p.server.read(&c, 1).err, net::make_error_code(net::Error::eof));
  });
}

TEST(NetClose, ClosingAConnWakesABlockedWriterWithClosed) {
  goro::run([] {
    ConnPair p = connected_pair();
    goro::Chan<net::IoResult> done(1);
    std::string big(16 << 20, 'z');  // more than the socket buffers hold
    goro::go([&] { done.send(p.client.write(big)); });
    goro::sleep_for(50ms);
    EXPECT_FALSE(p.client.close());
    std::optional<net::IoResult> r = done.recv();
    EXPECT_EQ(r->err, closed_error()) << r->err.message();
    EXPECT_GT(r->n, 0u);
  });
}

TEST(NetClose, QueuedReadersAllFailWithClosed) {
  // Two readers on one conn: the second waits for the first (one reader at
  // a time); close must release both.
  goro::run([] {
    ConnPair p = connected_pair();
    goro::Chan<std::error_code> done(2);
    for (int i = 0; i < 2; i++) {
      goro::go([&] {
        char c;
        done.send(p.client.read(&c, 1).err);
      });
    }
    goro::sleep_for(50ms);
    EXPECT_FALSE(p.client.close());
    EXPECT_EQ(*done.recv(), closed_error());
    EXPECT_EQ(*done.recv(), closed_error());
  });
}

TEST(NetClose, DestroyingAConnClosesItsDescriptor) {
  goro::run([] {
    int fd;
    {
      ConnPair p = connected_pair();
      fd = p.client.fd();
      ASSERT_GE(fcntl(fd, F_GETFD), 0);
    }
    // Nothing else opened a descriptor meanwhile in this goroutine; the
    // number is free (EBADF) unless another test thread reused it.
    int rc = fcntl(fd, F_GETFD);
    EXPECT_TRUE(rc < 0 && errno == EBADF) << "fd " << fd << " still open after the Conn died";
  });
}

TEST(NetConn, ShutdownWriteGivesThePeerEndOfStreamAndKeepsReading) {
  goro::run([] {
    ConnPair p = connected_pair();
    ASSERT_TRUE(p.client.write("req").ok());
    ASSERT_FALSE(p.client.shutdown_write());
    char buf[8];
    net::IoResult r = p.server.read_full(buf, 3);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(p.server.read(buf, sizeof buf).err, net::make_error_code(net::Error::eof));
    ASSERT_TRUE(p.server.write("resp").ok());
    r = p.client.read_full(buf, 4);
    ASSERT_TRUE(r.ok()) << r.err.message();
    EXPECT_EQ(std::string(buf, 4), "resp");
  });
}

TEST(NetConn, ReadFullCutShortIsUnexpectedEof) {
  goro::run([] {
    ConnPair p = connected_pair();
    ASSERT_TRUE(p.server.write("abc").ok());
    p.server.close();
    char buf[8];
    net::IoResult r = p.client.read_full(buf, sizeof buf);
    EXPECT_EQ(r.n, 3u);
    EXPECT_EQ(r.err, net::make_error_code(net::Error::unexpected_eof));
  });
}

// ---------------------------------------------------------------------------
// Big transfers

TEST(NetConn, LargeWriteWithASlowReaderCompletes) {
  static constexpr std::size_t kSize = 8 << 20;
  goro::run([] {
    ConnPair p = connected_pair();
    std::string data = pattern(kSize);
    goro::Chan<net::IoResult> wrote(1);
    goro::go([&] { wrote.send(p.client.write(data)); });
    std::string got;
    got.reserve(kSize);
    char buf[4096];
    int reads = 0;
    while (got.size() < kSize) {
      net::IoResult r = p.server.read(buf, sizeof buf);
      ASSERT_TRUE(r.ok()) << r.err.message() << " after " << got.size() << " bytes";
      got.append(buf, r.n);
      if (++reads % 64 == 0) goro::sleep_for(1ms);  // slow: the writer fills the buffers and waits
    }
    std::optional<net::IoResult> w = wrote.recv();
    EXPECT_TRUE(w->ok()) << w->err.message();
    EXPECT_EQ(w->n, kSize);
    EXPECT_TRUE(got == data) << "the bytes arrived altered or out of order";
  });
}

// ---------------------------------------------------------------------------
// Files and pipes

TEST(NetPipe, ReadWriteAcrossGoroutines) {
  static constexpr std::size_t kSize = 1 << 20;
  goro::run([] {
    auto p = net::pipe();
    ASSERT_TRUE(p.ok()) << p.error().message();
    goro::WaitGroup writer;
    writer.add(1);
    goro::go([&] {
      std::string data = pattern(kSize);
      for (std::size_t off = 0; off < kSize; off += 10000) {
        std::size_t n = std::min<std::size_t>(10000, kSize - off);
        net::IoResult w = p->writer.write(data.data() + off, n);
        if (!w) ADD_FAILURE() << w.err.message();
      }
      p->writer.close();
      writer.done();
    });
    std::string got;
    char buf[8192];
    for (;;) {
      net::IoResult r = p->reader.read(buf, sizeof buf);
      if (!r) {
        EXPECT_EQ(r.err, net::make_error_code(net::Error::eof)) << r.err.message();
        break;
      }
      got.append(buf, r.n);
    }
    EXPECT_EQ(got.size(), kSize);
    EXPECT_TRUE(got == pattern(kSize));
    // The end of stream proves the writer closed, but the writer must be
    // done with p before p dies (and TSan cannot see through the kernel).
    writer.wait();
  });
}

TEST(NetPipe, ClosingTheReaderWakesItsBlockedRead) {
  goro::run([] {
    auto p = net::pipe();
    ASSERT_TRUE(p.ok());
    goro::Chan<std::error_code> done(1);
    goro::go([&] {
      char c;
      done.send(p->reader.read(&c, 1).err);
    });
    goro::sleep_for(30ms);
    p->reader.close();
    EXPECT_EQ(*done.recv(), closed_error());
  });
}

TEST(NetFile, WrappedEventfdReadsAndWrites) {
  goro::run([] {
    int efd = ::eventfd(0, EFD_CLOEXEC);
    ASSERT_GE(efd, 0);
    auto f = net::wrap(efd);
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_NE(fcntl(efd, F_GETFL) & O_NONBLOCK, 0) << "wrap must make the fd non-blocking";
    goro_test::GoGroup writer;  // still inside write() when the read returns: joined before f dies
    writer.go([&] {
      goro::sleep_for(20ms);
      std::uint64_t one = 5;
      (void)f->write(&one, sizeof one);
    });
    std::uint64_t v = 0;
    net::IoResult r = f->read_full(&v, sizeof v);  // parks until the write
    ASSERT_TRUE(r.ok()) << r.err.message();
    EXPECT_EQ(v, 5u);
  });
}

TEST(NetFile, RegularFileWorksInBlockingModeWithoutDeadlines) {
  goro::run([] {
    char path[] = "/tmp/goro_net_file.XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::unlink(path);
    auto f = net::wrap(fd);
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_TRUE(f->write("contents").ok());
    ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
    char buf[8];
    net::IoResult r = f->read_full(buf, 8);
    ASSERT_TRUE(r.ok()) << r.err.message();
    EXPECT_EQ(std::string(buf, 8), "contents");
    EXPECT_EQ(f->read(buf, 1).err, net::make_error_code(net::Error::eof));
    EXPECT_EQ(f->set_deadline(1s), net::make_error_code(net::Error::no_deadline));
  });
}

// ---------------------------------------------------------------------------
// Errors from listen and dial

TEST(NetDial, RefusedConnectionIsAnError) {
  goro::run([] {
    std::string addr;
    {
      auto ln = net::listen("tcp4", "127.0.0.1:0");
      ASSERT_TRUE(ln.ok());
      addr = ln->addr();
    }  // closed: nobody listens there now
    auto c = net::dial("tcp4", addr, 2s);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error(), std::errc::connection_refused) << c.error().message();
  });
}

TEST(NetDial, BadNetworksAndAddressesAreRejected) {
  goro::run([] {
    EXPECT_EQ(net::listen("udp", "127.0.0.1:0").error(), net::make_error_code(net::Error::unknown_network));
    EXPECT_EQ(net::dial("ip", "127.0.0.1:1").error(), net::make_error_code(net::Error::unknown_network));
    auto bad = net::make_error_code(net::Error::bad_address);
    for (const char* a : {"127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x", "::1:80", "[::1:80", "example.com:80"}) {
      EXPECT_EQ(net::dial("tcp", a).error(), bad) << a;
    }
    EXPECT_EQ(net::listen("tcp4", "[::1]:0").error(), bad) << "an IPv6 address is not tcp4";
    EXPECT_EQ(net::listen("tcp6", "127.0.0.1:0").error(), bad) << "an IPv4 address is not tcp6";
    EXPECT_EQ(net::listen("unix", "").error(), bad);
    EXPECT_EQ(net::listen("unix", std::string(200, 'a')).error(), bad) << "too long for sun_path";
  });
}

TEST(NetResult, EmptyHandlesFailCleanly) {
  goro::run([] {
    net::Conn c;
    char b;
    EXPECT_EQ(c.read(&b, 1).err, std::errc::bad_file_descriptor);
    EXPECT_EQ(c.close(), std::errc::bad_file_descriptor);
    EXPECT_EQ(c.fd(), -1);
    net::Listener l;
    EXPECT_EQ(l.accept().error(), std::errc::bad_file_descriptor);
  });
}

// ---------------------------------------------------------------------------
// The scheduler and the netpoller

// Go's TestNetpollDeadlock: a goroutine blocked in the netpoller is waiting
// for the outside world, not deadlocked. Here every goroutine is blocked in
// accept and no timer is pending; a plain thread (not a goroutine) connects
// later. checkdead must not fire, and the accept must complete.
TEST(NetScheduler, BlockedAcceptWithNoTimersIsNotADeadlock) {
  goro::run([] {
    auto ln = net::listen("tcp4", "127.0.0.1:0");
    ASSERT_TRUE(ln.ok());
    int port = ln->port();
    std::thread outsider([port] {
      std::this_thread::sleep_for(100ms);
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<std::uint16_t>(port));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        (void)::write(s, "!", 1);
      }
      ::close(s);
    });
    auto c = ln->accept();
    ASSERT_TRUE(c.ok()) << c.error().message();
    char ch = 0;
    EXPECT_TRUE(c->read_full(&ch, 1).ok());
    EXPECT_EQ(ch, '!');
    outsider.join();
  });
}

// The in-process form of the same: main blocks in accept while a goroutine
// dials after a sleep.
TEST(NetScheduler, MainBlockedInAcceptWhileAGoroutineDialsLater) {
  goro::run([] {
    auto ln = net::listen("tcp4", "127.0.0.1:0");
    ASSERT_TRUE(ln.ok());
    goro::go([addr = ln->addr()] {
      goro::sleep_for(50ms);
      auto c = net::dial("tcp4", addr);
      if (!c) ADD_FAILURE() << c.error().message();
      else (void)c->write("hi");
    });
    auto c = ln->accept();
    ASSERT_TRUE(c.ok()) << c.error().message();
    char buf[2];
    ASSERT_TRUE(c->read_full(buf, 2).ok());
    EXPECT_EQ(std::string(buf, 2), "hi");
  });
}

// A poller sleeping toward a far timer (a goroutine in a select on a 10 s
// timer) must notice new readiness at once: a pipe write wakes the
// reader within kPromptly, and a nearer timer added meanwhile (our
// sleep_for) breaks the long poll instead of waiting 10 s.
TEST(NetScheduler, PipeWriteWakesTheReaderWhileThePollerSleepsTowardAFarTimer) {
  goro::run([] {
    auto p = net::pipe();
    ASSERT_TRUE(p.ok());
    goro::Chan<int> quit;
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
      goro::Timer far(10s);  // (a Timer, not after(): stopped, it frees its memory)
      int which = goro::select(goro::on_recv(far.chan()), goro::on_recv(quit));
      EXPECT_EQ(which, 1) << "the 10 s timer fired: the test took far too long";
      far.stop();
      wg.done();
    });
    std::atomic<std::int64_t> woke_ns{0};
    goro::go([&] {
      char c;
      EXPECT_TRUE(p->reader.read(&c, 1).ok());
      woke_ns.store(Clock::now().time_since_epoch().count());
      wg.done();
    });
    // Let every other M go idle into the poller (its sleep bounded by the
    // 10 s timer), then add a nearer timer of our own.
    auto t0 = Clock::now();
    goro::sleep_for(20ms);
    EXPECT_LT(Clock::now() - t0, 20ms + kPromptly) << "a new, nearer timer did not break the long poll";
    auto wrote = Clock::now();
    ASSERT_TRUE(p->writer.write("!").ok());
    while (woke_ns.load() == 0 && Clock::now() - wrote < 5s) goro::sleep_for(1ms);
    ASSERT_NE(woke_ns.load(), 0) << "the reader never woke";
    auto latency = Clock::time_point(Clock::duration(woke_ns.load())) - wrote;
    EXPECT_LT(latency, kPromptly) << "reader woke "
                                  << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count()
                                  << " ms after the write";
    quit.close();
    wg.wait();
  });
}

// The same with the write coming from outside the runtime while every
// goroutine is parked: only epoll can wake the poller.
TEST(NetScheduler, ExternalPipeWriteWakesAParkedReaderPromptly) {
  goro::run([] {
    auto p = net::pipe();
    ASSERT_TRUE(p.ok());
    goro::Chan<int> quit;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      goro::Timer far(10s);
      goro::select(goro::on_recv(far.chan()), goro::on_recv(quit));
      far.stop();
      wg.done();
    });
    std::atomic<std::int64_t> wrote_ns{0};
    int wfd = p->writer.fd();
    std::thread outsider([&] {
      std::this_thread::sleep_for(50ms);
      wrote_ns.store(Clock::now().time_since_epoch().count());
      (void)::write(wfd, "!", 1);
    });
    char c;
    ASSERT_TRUE(p->reader.read(&c, 1).ok());
    auto latency = Clock::now() - Clock::time_point(Clock::duration(wrote_ns.load()));
    outsider.join();
    EXPECT_LT(latency, kPromptly);
    quit.close();
    wg.wait();
  });
}

}  // namespace
