// SPDX-License-Identifier: BSD-3-Clause
// The echo service shared by goro_echo_server and goro_echo_client's
// --self mode: one goroutine accepts, one goroutine per connection echoes
// until the peer's end of stream.
#pragma once

#include <goro/goro.h>
#include <goro/net.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>

namespace echo {

// The service's state. The connection goroutines use it until they end,
// which may be after serve returns: it must outlive them (a static, or
// drain).
struct Stats {
  std::atomic<std::int64_t> nr_conns{0};
  std::atomic<std::int64_t> nr_bytes{0};
  goro::WaitGroup conns;  // open connections
};

// serve accepts on ln until it is closed. With drain, it then waits for
// every connection it started to end (their clients must hang up);
// without, connections still open are left to the process's exit.
inline void serve(goro::net::Listener& ln, Stats& stats, bool verbose, bool drain) {
  for (;;) {
    auto c = ln.accept();
    if (!c) {
      if (c.error() == goro::net::Error::closed) break;  // our shutdown
      // Out of descriptors, a reset while queued...: say so, back off, go on.
      std::fprintf(stderr, "accept: %s\n", c.error().message().c_str());
      goro::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    stats.nr_conns.fetch_add(1, std::memory_order_relaxed);
    if (verbose) std::fprintf(stderr, "conn from %s\n", c->remote_addr().c_str());
    stats.conns.add(1);
    goro::go([conn = std::move(*c), &stats]() mutable {
      char buf[16384];
      for (;;) {
        goro::net::IoResult r = conn.read(buf, sizeof buf);
        if (!r) break;  // end of stream, reset, or our shutdown
        if (!conn.write(buf, r.n)) break;
        stats.nr_bytes.fetch_add(static_cast<std::int64_t>(r.n), std::memory_order_relaxed);
      }
      (void)conn.close();
      stats.conns.done();
    });
  }
  if (drain) stats.conns.wait();
}

}  // namespace echo
