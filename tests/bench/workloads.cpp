// goro_workloads NAME [ARGS]: the goro side of the Go comparison.
//
// Each workload is the same program as tests/bench/go/NAME.go, with the same
// parameters, and prints one line
//   RESULT name=<workload> ns=<total ns> n=<N> procs=<Ps> [...]
// that tests/bench/compare-go parses. Time is measured inside the main
// goroutine (runtime boot excluded), as the Go programs measure inside main.
//
// Workloads:
//   spawn    [N=1000000]          N goroutines each calling wg.done(); wait
//   pingpong [N=1000000]          N round trips over two unbuffered channels
//   prodcons [N=1000000]          N ints through a channel of capacity 100
//   yield    [N=1000000] [G=2]    G goroutines gosched() N/G times each
//   skynet   [N=1000000]          10-ary tree of goroutines with N leaves
//   park     [N=100000]           N goroutines parked on a channel: RSS per G
// The number of Ps comes from GORO_MAXPROCS (the runtime reads it).
#include <goro/goro.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using Clock = std::chrono::steady_clock;

long long since_ns(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
}

long arg_or(int argc, char** argv, int i, long dflt) {
  if (argc > i) return std::strtol(argv[i], nullptr, 10);
  return dflt;
}

// status_kb reads a "Field:   123 kB" line from /proc/self/status.
long status_kb(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  std::size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      v = std::strtol(line + len + 1, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return v;
}

int spawn(long n) {
  return goro::run([n] {
    goro::WaitGroup wg;
    auto t0 = Clock::now();
    wg.add(static_cast<int>(n));
    for (long i = 0; i < n; i++) goro::go([&wg] { wg.done(); });
    wg.wait();
    long long ns = since_ns(t0);
    std::printf("RESULT name=spawn ns=%lld n=%ld procs=%d\n", ns, n, goro::maxprocs());
    return 0;
  });
}

int pingpong(long n) {
  return goro::run([n] {
    goro::Chan<long> ping, pong;
    goro::Chan<bool> done;
    auto t0 = Clock::now();
    goro::go([ping, pong, done]() mutable {
      while (auto v = ping.recv()) pong.send(*v + 1);
      done.send(true);
    });
    long v = 0;
    for (long i = 0; i < n; i++) {
      ping.send(v);
      v = *pong.recv();
    }
    ping.close();
    done.recv();
    long long ns = since_ns(t0);
    if (v != n) {
      std::fprintf(stderr, "pingpong: got %ld want %ld\n", v, n);
      return 1;
    }
    std::printf("RESULT name=pingpong ns=%lld n=%ld procs=%d\n", ns, n, goro::maxprocs());
    return 0;
  });
}

int prodcons(long n) {
  return goro::run([n] {
    goro::Chan<long> c(100);
    goro::Chan<long long> res;
    auto t0 = Clock::now();
    goro::go([c, res]() mutable {
      long long s = 0;
      while (auto v = c.recv()) s += *v;
      res.send(s);
    });
    for (long i = 0; i < n; i++) c.send(i);
    c.close();
    long long s = *res.recv();
    long long ns = since_ns(t0);
    long long want = static_cast<long long>(n) * (n - 1) / 2;
    if (s != want) {
      std::fprintf(stderr, "prodcons: got %lld want %lld\n", s, want);
      return 1;
    }
    std::printf("RESULT name=prodcons ns=%lld n=%ld procs=%d\n", ns, n, goro::maxprocs());
    return 0;
  });
}

int yield(long n, long gs) {
  return goro::run([n, gs] {
    long per = n / gs;
    goro::WaitGroup wg;
    auto t0 = Clock::now();
    wg.add(static_cast<int>(gs));
    for (long g = 0; g < gs; g++) {
      goro::go([per, &wg] {
        for (long i = 0; i < per; i++) goro::gosched();
        wg.done();
      });
    }
    wg.wait();
    long long ns = since_ns(t0);
    std::printf("RESULT name=yield ns=%lld n=%ld gs=%ld procs=%d\n", ns, per * gs, gs, goro::maxprocs());
    return 0;
  });
}

void skynet_node(goro::Chan<long long> c, long long num, long long size, long long div) {
  if (size == 1) {
    c.send(num);
    return;
  }
  goro::Chan<long long> rc;
  long long sum = 0;
  for (long long i = 0; i < div; i++) {
    long long sub = num + i * (size / div);
    goro::go([rc, sub, size, div] { skynet_node(rc, sub, size / div, div); });
  }
  for (long long i = 0; i < div; i++) sum += *rc.recv();
  c.send(sum);
}

int skynet(long n) {
  return goro::run([n] {
    goro::Chan<long long> c;
    auto t0 = Clock::now();
    goro::go([c, n] { skynet_node(c, 0, n, 10); });
    long long s = *c.recv();
    long long ns = since_ns(t0);
    long long want = static_cast<long long>(n) * (n - 1) / 2;
    if (s != want) {
      std::fprintf(stderr, "skynet: got %lld want %lld\n", s, want);
      return 1;
    }
    std::printf("RESULT name=skynet ns=%lld n=%ld procs=%d\n", ns, n, goro::maxprocs());
    return 0;
  });
}

int park(long n) {
  return goro::run([n] {
    goro::Chan<int> c;
    goro::WaitGroup started, finished;
    long before = status_kb("VmRSS");
    auto t0 = Clock::now();
    started.add(static_cast<int>(n));
    finished.add(static_cast<int>(n));
    for (long i = 0; i < n; i++) {
      goro::go([c, &started, &finished]() mutable {
        started.done();
        c.recv();
        finished.done();
      });
    }
    started.wait();
    for (int i = 0; i < 100; i++) goro::gosched();
    long long ns = since_ns(t0);
    long after = status_kb("VmRSS");
    long hwm = status_kb("VmHWM");
    int alive = goro::num_goroutine();
    c.close();
    finished.wait();
    long delta = after - before;
    std::printf(
        "RESULT name=park ns=%lld n=%ld procs=%d rss_before_kb=%ld rss_kb=%ld hwm_kb=%ld alive=%d "
        "kb_per_g=%.3f\n",
        ns, n, goro::maxprocs(), before, delta, hwm, alive,
        static_cast<double>(delta) / static_cast<double>(n));
    return 0;
  });
}

void usage() {
  std::fprintf(stderr,
               "usage: goro_workloads NAME [ARGS]\n"
               "  spawn [N] | pingpong [N] | prodcons [N] | yield [N] [G] | skynet [N] | park [N]\n"
               "Ps: GORO_MAXPROCS=n\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  std::string_view w = argv[1];
  if (w == "spawn") return spawn(arg_or(argc, argv, 2, 1000000));
  if (w == "pingpong") return pingpong(arg_or(argc, argv, 2, 1000000));
  if (w == "prodcons") return prodcons(arg_or(argc, argv, 2, 1000000));
  if (w == "yield") return yield(arg_or(argc, argv, 2, 1000000), arg_or(argc, argv, 3, 2));
  if (w == "skynet") return skynet(arg_or(argc, argv, 2, 1000000));
  if (w == "park") return park(arg_or(argc, argv, 2, 100000));
  usage();
  return 2;
}
