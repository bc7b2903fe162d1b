// SPDX-License-Identifier: BSD-3-Clause
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
// Issue 4:
//   select   [N=1000000] [K=2] [CAP=0]
//            K producer Gs, one per channel (capacity CAP), each send N/K
//            ints; one consumer selects over the K channels N/K*K times
//   selectu  [N=1000000] [K=2]   uncontended select: each of GOMAXPROCS Gs
//            owns K channels of capacity 1 and one token; it selects over
//            its K receives and passes the token on (channel i -> i+1)
//   chanpc   [N=1000000] [CAP=0] Go's BenchmarkChanProdCons: GOMAXPROCS
//            producers and GOMAXPROCS consumers on one channel of capacity
//            CAP; producers claim batches of 1000 sends from a shared count
//   sleep    [N=100000] [SEED=1] N Gs each sleep a pseudo-random 1..10 ms
//            (splitmix64 from SEED, same stream as go/sleep.go): total wall
//            time and overshoot (wake time - deadline) mean/p50/p99/max
//   wakesys  [N=2000] [DELAY_US=0]  Go's BenchmarkWakeupParallelSyscall: two
//            Gs alternate sender/receiver on unbuffered channels, sleeping
//            DELAY (receiver) and DELAY+5us (sender) in a blocking
//            nanosleep inside goro::syscall; ns per round
//   echo     [R=20000] [C=1] [SIZE=64] [LIMIT_MS=20000]  loopback TCP echo
//            server and load generator in one process: C client Gs, one
//            connection each to 127.0.0.1, R/C requests of SIZE bytes each,
//            one at a time; requests/s and latency p50/p99/max. A client
//            stops early after LIMIT_MS (n is then the requests done).
//            Built only when the runtime has goro/net.h and net.cpp.
// The number of Ps comes from GORO_MAXPROCS (the runtime reads it).
#include <goro/goro.h>
// GORO_BENCH_NET: set by CMake when the runtime library builds net.cpp.
#if defined(GORO_BENCH_NET) && __has_include(<goro/net.h>)
#include <goro/net.h>
#include <sys/resource.h>

#include <memory>
#define GORO_BENCH_HAVE_NET 1
#endif

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

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

// ---- select, producer/consumer, sleepers, syscall hand-off, TCP echo ------

int select_contended(long n, long k, long cap) {
  if (k != 2 && k != 4) {
    std::fprintf(stderr, "select: K must be 2 or 4\n");
    return 2;
  }
  return goro::run([n, k, cap] {
    long per = n / k;
    std::vector<goro::Chan<long>> cs;
    for (long i = 0; i < k; i++) cs.emplace_back(static_cast<std::size_t>(cap));
    auto t0 = Clock::now();
    for (long i = 0; i < k; i++) {
      goro::go([c = cs[i], per]() mutable {
        for (long j = 0; j < per; j++) c.send(j);
      });
    }
    long long s = 0;
    auto add = [&s](std::optional<long> v) { s += *v; };
    long total = per * k;
    if (k == 2) {
      for (long j = 0; j < total; j++) goro::select(goro::on_recv(cs[0], add), goro::on_recv(cs[1], add));
    } else {
      for (long j = 0; j < total; j++)
        goro::select(goro::on_recv(cs[0], add), goro::on_recv(cs[1], add), goro::on_recv(cs[2], add),
                     goro::on_recv(cs[3], add));
    }
    long long ns = since_ns(t0);
    long long want = static_cast<long long>(k) * per * (per - 1) / 2;
    if (s != want) {
      std::fprintf(stderr, "select: got %lld want %lld\n", s, want);
      return 1;
    }
    std::printf("RESULT name=select ns=%lld n=%ld k=%ld cap=%ld procs=%d\n", ns, total, k, cap, goro::maxprocs());
    return 0;
  });
}

int select_uncontended(long n, long k) {
  if (k != 2 && k != 4) {
    std::fprintf(stderr, "selectu: K must be 2 or 4\n");
    return 2;
  }
  return goro::run([n, k] {
    int procs = goro::maxprocs();
    long per = n / procs;
    goro::WaitGroup wg;
    auto t0 = Clock::now();
    wg.add(procs);
    for (int p = 0; p < procs; p++) {
      goro::go([per, k, &wg] {
        std::vector<goro::Chan<int>> cs;
        for (long i = 0; i < k; i++) cs.emplace_back(1);
        cs[0].send(0);
        for (long j = 0; j < per; j++) {
          if (k == 2) {
            goro::select(goro::on_recv(cs[0], [&] { cs[1].send(0); }), goro::on_recv(cs[1], [&] { cs[0].send(0); }));
          } else {
            goro::select(goro::on_recv(cs[0], [&] { cs[1].send(0); }), goro::on_recv(cs[1], [&] { cs[2].send(0); }),
                         goro::on_recv(cs[2], [&] { cs[3].send(0); }), goro::on_recv(cs[3], [&] { cs[0].send(0); }));
          }
        }
        wg.done();
      });
    }
    wg.wait();
    long long ns = since_ns(t0);
    std::printf("RESULT name=selectu ns=%lld n=%ld k=%ld procs=%d\n", ns, per * procs, k, procs);
    return 0;
  });
}

int chan_prod_cons(long n, long cap) {
  return goro::run([n, cap] {
    constexpr long kCallsPerSched = 1000;
    int procs = goro::maxprocs();
    std::atomic<long> batches{n / kCallsPerSched};
    goro::Chan<long> c(static_cast<std::size_t>(cap));
    goro::Chan<long> done(static_cast<std::size_t>(2 * procs));
    auto t0 = Clock::now();
    for (int p = 0; p < procs; p++) {
      goro::go([&batches, c, done]() mutable {
        long sent = 0;
        while (batches.fetch_sub(1, std::memory_order_relaxed) > 0) {
          for (long g = 0; g < kCallsPerSched; g++) c.send(1);
          sent += kCallsPerSched;
        }
        c.send(0);
        done.send(sent);
      });
      goro::go([c, done]() mutable {
        long got = 0;
        for (;;) {
          long v = *c.recv();
          if (v == 0) break;
          got += v;
        }
        done.send(-got);
      });
    }
    long sum = 0;
    for (int p = 0; p < 2 * procs; p++) sum += *done.recv();
    long long ns = since_ns(t0);
    long total = n / kCallsPerSched * kCallsPerSched;
    if (sum != 0) {
      std::fprintf(stderr, "chanpc: sent - received = %ld\n", sum);
      return 1;
    }
    std::printf("RESULT name=chanpc ns=%lld n=%ld cap=%ld procs=%d\n", ns, total, cap, procs);
    return 0;
  });
}

// splitmix64: the same generator in go/sleep.go, so both sides draw the
// same sleep durations.
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Percentile by nearest rank on a sorted vector.
long long pct(const std::vector<long long>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size()));
  if (i >= v.size()) i = v.size() - 1;
  return v[i];
}

int sleepers(long n, long seed) {
  // Durations 1 ms .. 10 ms inclusive, uniform over whole nanoseconds.
  std::vector<long long> dur(static_cast<std::size_t>(n));
  std::uint64_t st = static_cast<std::uint64_t>(seed);
  for (auto& d : dur) d = 1000000 + static_cast<long long>(splitmix64(st) % 9000001ULL);
  std::vector<long long> over(static_cast<std::size_t>(n));
  return goro::run([n, &dur, &over] {
    goro::WaitGroup wg;
    auto t0 = Clock::now();
    wg.add(static_cast<int>(n));
    for (long i = 0; i < n; i++) {
      goro::go([i, &dur, &over, &wg] {
        auto d = std::chrono::nanoseconds(dur[static_cast<std::size_t>(i)]);
        auto deadline = Clock::now() + d;
        goro::sleep_for(d);
        over[static_cast<std::size_t>(i)] =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - deadline).count();
        wg.done();
      });
    }
    wg.wait();
    long long ns = since_ns(t0);
    std::vector<long long> s = over;
    std::sort(s.begin(), s.end());
    long double sum = 0;
    for (long long v : s) sum += static_cast<long double>(v);
    std::printf(
        "RESULT name=sleep ns=%lld n=%ld procs=%d mean_over_ns=%.0Lf p50_over_ns=%lld p99_over_ns=%lld "
        "max_over_ns=%lld min_over_ns=%lld\n",
        ns, n, goro::maxprocs(), sum / static_cast<long double>(n), pct(s, 0.50), pct(s, 0.99), s.back(),
        s.front());
    return 0;
  });
}

// A blocking nanosleep system call, announced to the scheduler.
void sys_nanosleep(long long ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000LL);
  ts.tv_nsec = static_cast<long>(ns % 1000000000LL);
  goro::syscall([&ts] { return ::nanosleep(&ts, nullptr); });
}

int wakeup_syscall(long n, long delay_us) {
  return goro::run([n, delay_us] {
    const long long delay = delay_us * 1000LL;
    const long long wake_delay = 5000;  // as Go's benchmark: sender waits 5 us longer
    goro::Chan<int> ping, pong, start, done;
    goro::go([=]() mutable {
      start.recv();
      for (long i = 0; i < n; i++) {
        sys_nanosleep(delay + wake_delay);
        ping.send(0);
        sys_nanosleep(delay);
        pong.recv();
      }
      done.send(0);
    });
    goro::go([=]() mutable {
      for (long i = 0; i < n; i++) {
        sys_nanosleep(delay);
        ping.recv();
        sys_nanosleep(delay + wake_delay);
        pong.send(0);
      }
      done.send(0);
    });
    auto t0 = Clock::now();
    start.send(0);
    done.recv();
    done.recv();
    long long ns = since_ns(t0);
    std::printf("RESULT name=wakesys ns=%lld n=%ld delay_us=%ld procs=%d\n", ns, n, delay_us, goro::maxprocs());
    return 0;
  });
}

#if defined(GORO_BENCH_HAVE_NET)
int echo(long r, long c, long size, long limit_ms) {
  // 1,000 connections need 2,000+ descriptors; Go raises RLIMIT_NOFILE's
  // soft limit to the hard one at start, so do the same here.
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  return goro::run([r, c, size, limit_ms]() -> int {
    auto lr = goro::net::listen("tcp4", "127.0.0.1:0");
    if (!lr) {
      std::fprintf(stderr, "echo: listen: %s\n", lr.error().message().c_str());
      return 1;
    }
    // Shared with the accept loop, which may still be returning from a
    // closed accept when main ends.
    auto ln = std::make_shared<goro::net::Listener>(std::move(*lr));
    goro::go([lnp = ln] {
      for (;;) {
        auto conn = lnp->accept();
        if (!conn) return;
        goro::go([cn = std::move(*conn)]() mutable {
          std::vector<char> buf(4096);
          for (;;) {
            auto rr = cn.read(buf.data(), buf.size());
            if (rr.n > 0 && !cn.write(buf.data(), rr.n)) break;
            if (!rr) break;
          }
          (void)cn.close();
        });
      }
    });
    std::string addr = ln->addr();
    long per = r / c;
    std::vector<goro::net::Conn> conns;
    conns.reserve(static_cast<std::size_t>(c));
    for (long i = 0; i < c; i++) {
      auto d = goro::net::dial("tcp4", addr);
      if (!d) {
        std::fprintf(stderr, "echo: dial: %s\n", d.error().message().c_str());
        return 1;
      }
      conns.push_back(std::move(*d));
    }
    std::vector<std::vector<long long>> lat(static_cast<std::size_t>(c));
    goro::WaitGroup wg;
    goro::Chan<int> startc;
    const auto limit = std::chrono::milliseconds(limit_ms);
    wg.add(static_cast<int>(c));
    for (long i = 0; i < c; i++) {
      goro::go([i, per, size, limit, startc, &conns, &lat, &wg]() mutable {
        goro::net::Conn& conn = conns[static_cast<std::size_t>(i)];
        std::vector<char> out(static_cast<std::size_t>(size)), in(static_cast<std::size_t>(size));
        for (long j = 0; j < size; j++) out[static_cast<std::size_t>(j)] = static_cast<char>(i + j);
        std::vector<long long> l;
        l.reserve(static_cast<std::size_t>(per));
        startc.recv();
        auto t0 = Clock::now();
        for (long j = 0; j < per; j++) {
          auto t = Clock::now();
          if (t - t0 > limit) break;
          if (auto w = conn.write(out.data(), out.size()); !w) {
            std::fprintf(stderr, "echo: write: %s\n", w.err.message().c_str());
            std::exit(1);
          }
          if (auto rd = conn.read_full(in.data(), in.size()); !rd) {
            std::fprintf(stderr, "echo: read: %s\n", rd.err.message().c_str());
            std::exit(1);
          }
          l.push_back(since_ns(t));
        }
        if (in.front() != out.front() || in.back() != out.back()) {
          std::fprintf(stderr, "echo: wrong echo\n");
          std::exit(1);
        }
        lat[static_cast<std::size_t>(i)] = std::move(l);
        wg.done();
      });
    }
    auto t0 = Clock::now();
    startc.close();
    wg.wait();
    long long ns = since_ns(t0);
    for (auto& cn : conns) (void)cn.close();
    (void)ln->close();
    std::vector<long long> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    std::printf("RESULT name=echo ns=%lld n=%zu conns=%ld size=%ld procs=%d p50_ns=%lld p99_ns=%lld max_ns=%lld\n", ns,
                all.size(), c, size, goro::maxprocs(), pct(all, 0.50), pct(all, 0.99), pct(all, 1.0));
    return 0;
  });
}
#endif

void usage() {
  std::fprintf(stderr,
               "usage: goro_workloads NAME [ARGS]\n"
               "  spawn [N] | pingpong [N] | prodcons [N] | yield [N] [G] | skynet [N] | park [N]\n"
               "  select [N] [K] [CAP] | selectu [N] [K] | chanpc [N] [CAP] | sleep [N] [SEED]\n"
               "  wakesys [N] [DELAY_US] | echo [R] [C] [SIZE] [LIMIT_MS]\n"
               "Ps: GORO_MAXPROCS=n\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  std::string_view w = argv[1];
  if (w == "--list") {  // the workloads this binary has (for compare-go)
    std::printf("spawn pingpong prodcons yield skynet park select selectu chanpc sleep wakesys%s\n",
#if defined(GORO_BENCH_NET)
                " echo"
#else
                ""
#endif
    );
    return 0;
  }
  if (w == "spawn") return spawn(arg_or(argc, argv, 2, 1000000));
  if (w == "pingpong") return pingpong(arg_or(argc, argv, 2, 1000000));
  if (w == "prodcons") return prodcons(arg_or(argc, argv, 2, 1000000));
  if (w == "yield") return yield(arg_or(argc, argv, 2, 1000000), arg_or(argc, argv, 3, 2));
  if (w == "skynet") return skynet(arg_or(argc, argv, 2, 1000000));
  if (w == "park") return park(arg_or(argc, argv, 2, 100000));
  if (w == "select")
    return select_contended(arg_or(argc, argv, 2, 1000000), arg_or(argc, argv, 3, 2), arg_or(argc, argv, 4, 0));
  if (w == "selectu") return select_uncontended(arg_or(argc, argv, 2, 1000000), arg_or(argc, argv, 3, 2));
  if (w == "chanpc") return chan_prod_cons(arg_or(argc, argv, 2, 1000000), arg_or(argc, argv, 3, 0));
  if (w == "sleep") return sleepers(arg_or(argc, argv, 2, 100000), arg_or(argc, argv, 3, 1));
#if defined(GORO_BENCH_HAVE_NET)
  if (w == "echo")
    return echo(arg_or(argc, argv, 2, 20000), arg_or(argc, argv, 3, 1), arg_or(argc, argv, 4, 64),
                arg_or(argc, argv, 5, 20000));
#endif
  if (w == "wakesys") return wakeup_syscall(arg_or(argc, argv, 2, 2000), arg_or(argc, argv, 3, 0));
  usage();
  return 2;
}
