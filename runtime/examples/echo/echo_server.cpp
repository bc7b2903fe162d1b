// SPDX-License-Identifier: BSD-3-Clause
// goro_echo_server: a TCP or unix-socket echo server, one goroutine per
// connection, every blocking read and write parked in goro's netpoller.
//
// SIGINT/SIGTERM shut it down cleanly: the handler writes a byte to a
// goro::net::pipe (write(2) is async-signal-safe), a goroutine blocked on
// the other end wakes and closes the listener, the accept loop ends, the
// open connections are closed, and the totals are printed.
#include <getopt.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "echo.h"

namespace {

volatile std::sig_atomic_t stop_fd = -1;

void on_signal(int) {
  int fd = stop_fd;
  if (fd >= 0) {
    char b = 'q';
    (void)!::write(fd, &b, 1);
  }
}

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [-u] [-v] [ADDR]\n"
               "\n"
               "Echoes every connection back to its sender.\n"
               "\n"
               "  ADDR  where to listen (default 127.0.0.1:7007; port 0 picks one)\n"
               "  -u    ADDR is a unix socket path (or @name, abstract)\n"
               "  -v    log every connection\n"
               "  -h    this text\n"
               "\n"
               "The first line of output is \"listening on ADDR\" with the real address.\n",
               argv0);
}

}  // namespace

int main(int argc, char** argv) {
  const char* network = "tcp";
  bool verbose = false;
  int opt;
  while ((opt = getopt(argc, argv, "uvh")) != -1) {
    switch (opt) {
      case 'u':
        network = "unix";
        break;
      case 'v':
        verbose = true;
        break;
      default:
        usage(argv[0]);
        return opt == 'h' ? 0 : 2;
    }
  }
  std::string address = optind < argc ? argv[optind] : "127.0.0.1:7007";

  return goro::run([&]() -> int {
    auto ln = goro::net::listen(network, address);
    if (!ln) {
      std::fprintf(stderr, "listen %s %s: %s\n", network, address.c_str(), ln.error().message().c_str());
      return 1;
    }
    auto stop = goro::net::pipe();
    if (!stop) {
      std::fprintf(stderr, "pipe: %s\n", stop.error().message().c_str());
      return 1;
    }
    stop_fd = stop->writer.fd();
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::printf("listening on %s\n", ln->addr().c_str());
    std::fflush(stdout);

    // The shutdown goroutine may still be inside ln->close() when serve
    // returns: main waits for it before ln and stop die.
    goro::WaitGroup shutdown;
    shutdown.add(1);
    goro::go([&] {
      char b;
      (void)stop->reader.read(&b, 1);
      std::fprintf(stderr, "shutting down\n");
      (void)ln->close();
      shutdown.done();
    });

    static echo::Stats stats;  // outlives the connections serve leaves open
    echo::serve(*ln, stats, verbose, /*drain=*/false);
    shutdown.wait();
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    stop_fd = -1;
    std::printf("served %lld connections, echoed %lld bytes\n", static_cast<long long>(stats.nr_conns.load()),
                static_cast<long long>(stats.nr_bytes.load()));
    return 0;
  });
}
