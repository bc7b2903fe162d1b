// SPDX-License-Identifier: BSD-3-Clause
// goro_echo_client: C connections, each a goroutine sending N messages of
// S bytes and checking that every byte comes back (write, then read_full),
// with one summary line. Exit status 0 when everything was echoed intact,
// 1 otherwise.
//
// --self starts an echo server in the same process on a loopback port
// first (the smoke test ctest runs).
#include <getopt.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "echo.h"

namespace {

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [-c CONNS] [-n MSGS] [-s SIZE] [-u] [-t TIMEOUT_MS] ADDR\n"
               "       %s --self [-c CONNS] [-n MSGS] [-s SIZE]\n"
               "\n"
               "  -c CONNS       concurrent connections (default 16)\n"
               "  -n MSGS        messages per connection (default 1000)\n"
               "  -s SIZE        bytes per message (default 64)\n"
               "  -u             ADDR is a unix socket path\n"
               "  -t TIMEOUT_MS  fail a connection idle this long (default 10000)\n"
               "  --self         echo through an in-process server on 127.0.0.1:0\n",
               argv0, argv0);
}

// The byte at position i of message m on connection c: every message
// differs, so a crossed or stale echo is caught.
char payload(long c, long m, long i) { return static_cast<char>((c * 7919 + m * 131 + i) & 0xff); }

}  // namespace

int main(int argc, char** argv) {
  long nconns = 16, nmsgs = 1000, size = 64, timeout_ms = 10000;
  bool self = false;
  const char* network = "tcp";
  static const option longopts[] = {{"self", no_argument, nullptr, 'S'}, {"help", no_argument, nullptr, 'h'}, {}};
  int opt;
  while ((opt = getopt_long(argc, argv, "c:n:s:ut:h", longopts, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        nconns = std::atol(optarg);
        break;
      case 'n':
        nmsgs = std::atol(optarg);
        break;
      case 's':
        size = std::atol(optarg);
        break;
      case 'u':
        network = "unix";
        break;
      case 't':
        timeout_ms = std::atol(optarg);
        break;
      case 'S':
        self = true;
        break;
      default:
        usage(argv[0]);
        return opt == 'h' ? 0 : 2;
    }
  }
  if (nconns < 1 || nmsgs < 0 || size < 1 || (!self && optind >= argc)) {
    usage(argv[0]);
    return 2;
  }
  std::string address = self ? "" : argv[optind];

  // Many connections need many descriptors (two each with --self).
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }

  return goro::run([&]() -> int {
    goro::net::Listener ln;
    static echo::Stats server_stats;
    goro::WaitGroup server;
    if (self) {
      auto l = goro::net::listen("tcp", "127.0.0.1:0");
      if (!l) {
        std::fprintf(stderr, "listen: %s\n", l.error().message().c_str());
        return 1;
      }
      ln = std::move(*l);
      address = ln.addr();
      server.add(1);
      goro::go([&] {
        echo::serve(ln, server_stats, false, /*drain=*/true);
        server.done();
      });
    }

    std::atomic<long> nr_ok{0}, nr_failed{0};
    goro::WaitGroup clients;
    auto t0 = std::chrono::steady_clock::now();
    for (long c = 0; c < nconns; c++) {
      clients.add(1);
      goro::go([&, c] {
        auto fail = [&](const char* what, const std::error_code& e) {
          std::fprintf(stderr, "conn %ld: %s: %s\n", c, what, e.message().c_str());
          nr_failed.fetch_add(1);
          clients.done();
        };
        auto conn = goro::net::dial(network, address, std::chrono::milliseconds(timeout_ms));
        if (!conn) return fail("dial", conn.error());
        std::string out(static_cast<std::size_t>(size), '\0'), in(out);
        for (long m = 0; m < nmsgs; m++) {
          for (long i = 0; i < size; i++) out[static_cast<std::size_t>(i)] = payload(c, m, i);
          (void)conn->set_deadline(std::chrono::milliseconds(timeout_ms));
          if (auto w = conn->write(out); !w) return fail("write", w.err);
          if (auto r = conn->read_full(in.data(), in.size()); !r) return fail("read", r.err);
          if (in != out) {
            auto at = std::mismatch(in.begin(), in.end(), out.begin()).first - in.begin();
            std::fprintf(stderr, "conn %ld: message %ld came back different at byte %ld\n", c, m,
                         static_cast<long>(at));
            nr_failed.fetch_add(1);
            clients.done();
            return;
          }
        }
        nr_ok.fetch_add(1);
        clients.done();
      });
    }
    clients.wait();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (self) {
      (void)ln.close();
      server.wait();  // every client hung up: the server drains
    }
    long msgs = nr_ok.load() * nmsgs;
    std::printf("%s: %ld/%ld connections ok, %ld messages of %ld bytes in %.3f s (%.0f msg/s)\n",
                nr_failed.load() ? "FAIL" : "ok", nr_ok.load(), nconns, msgs, size, secs,
                secs > 0 ? static_cast<double>(msgs) / secs : 0.0);
    return nr_failed.load() ? 1 : 0;
  });
}
