// SPDX-License-Identifier: BSD-3-Clause
// goro_scx_service: the goro workloads of the EEVDF vs scx_goro comparison
// (vmtest/compare). Each command prints one line
//   RESULT name=<command> key=value ...
//
//   calibrate WORK_US
//       How many iterations of the per-request work loop take WORK_US
//       microseconds on this machine (minimum over many trials, so a
//       preempted trial does not count). vmtest/compare calibrates once per
//       VM boot and passes the count to every run, so both schedulers do
//       exactly the same work.
//
//   service [--conns C] [--seconds S] [--warmup-ms W] [--work-iters N]
//           [--size B] [--hist FILE] [--slow-ms N]
//       A request/response service on loopback TCP. The server is a child
//       process running goro (Ps: GORO_MAXPROCS, default the CPUs): one
//       goroutine per connection reads a B-byte request (default 64), runs
//       the work loop N iterations, and writes a B-byte response. The load
//       generator is this process: C plain threads (default 8), one blocking
//       connection each, closed loop (send, wait for the whole response,
//       send again) for W ms of warm-up (default 500, not recorded) and then
//       S seconds (default 5). With --interval-us I each connection is
//       paced instead: it sends a request every I microseconds (on a fixed
//       schedule, staggered across connections; a late request goes at
//       once, without catching up), so the offered load is C/I requests
//       per microsecond whatever the latency. Every request's latency (send to last
//       response byte) is recorded; the result line has requests/s and
//       p50/p90/p99/p99.9/max. --hist writes the latencies as a histogram,
//       one "latency_ns count" line per bucket (3 significant digits).
//       --slow-ms N prints, for up to 50 requests slower than N ms, where the
//       time went: until the server's goroutine had read the request, in
//       it, and back to the client thread (stderr; needs --size >= 40).
//
//       --goro-client 1: the load generator is a goro process too (one
//       goroutine per connection). The result line carries the server's
//       goroutine scheduling latency over the window (server_g_*: runnable
//       to running, goro::sched_latencies), and the client's (client_g_*).
//
//   fanout [--rate R] [--fan F] [--work-iters N] [--seconds S]
//       R requests/s (default 200), each fanning out to F goroutines
//       (default 8) of N work iterations and waiting for them all; latency
//       from each request's scheduled start; g_* = scheduling latency.
//
//   churn [--rate R] [--gs K] [--work-iters N] [--seconds S]
//       R requests/s, each starting K goroutines (default 32) that park
//       on a channel and are readied one by one, do N iterations, exit.
//
//   parallel [--gs G] [--iters N]
//       CPU-parallel job: G goroutines (default 4 x Ps) each run the work
//       loop N/G iterations (default N = 200M); wall time of the whole job.
#include <goro/goro.h>
#include <goro/net.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

long long ns_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

[[noreturn]] void die(const char* fmt, const char* what) {
  std::fprintf(stderr, "goro_scx_service: ");
  std::fprintf(stderr, fmt, what);
  std::fprintf(stderr, "\n");
  std::exit(1);
}

// Writes the sorted latencies as a histogram for the plots: buckets of 3
// significant digits, each line "lower-bound count".
void write_hist(const std::string& path, const std::vector<long long>& all) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) die("cannot write %s", path.c_str());
  std::fprintf(f, "# latency_ns count (buckets: 3 significant digits, value = bucket's lower bound)\n");
  std::size_t i = 0;
  while (i < all.size()) {
    long long v = all[i], scale = 1;
    while (v / scale >= 1000) scale *= 10;
    long long lo = v / scale * scale, hi = lo + scale;
    std::size_t j = i;
    while (j < all.size() && all[j] < hi) j++;
    std::fprintf(f, "%lld %zu\n", lo, j - i);
    i = j;
  }
  std::fclose(f);
}

// The per-request CPU work: a chain of dependent multiply/xor-shift steps
// the compiler can neither vectorise nor fold.
std::uint64_t work(std::uint64_t iters, std::uint64_t seed) {
  std::uint64_t x = seed | 1;
  for (std::uint64_t i = 0; i < iters; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    x ^= x >> 29;
  }
  return x;
}

// Simple "--name value" options after the command.
struct Opts {
  std::map<std::string, std::string> kv;
  long num(const char* name, long dflt) const {
    auto it = kv.find(name);
    if (it == kv.end()) return dflt;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end != '\0' || v < 0) die("bad value for --%s", name);
    return v;
  }
  std::string str(const char* name, const char* dflt) const {
    auto it = kv.find(name);
    return it == kv.end() ? dflt : it->second;
  }
};

Opts parse(int argc, char** argv, int from) {
  Opts o;
  for (int i = from; i < argc; i++) {
    std::string_view a = argv[i];
    if (a.substr(0, 2) != "--" || i + 1 >= argc) die("bad argument '%s' (options are --name value)", argv[i]);
    o.kv[std::string(a.substr(2))] = argv[++i];
  }
  return o;
}

long long pct(const std::vector<long long>& v, double p) {
  if (v.empty()) return 0;
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size()));
  if (i >= v.size()) i = v.size() - 1;
  return v[i];
}

// ---------------------------------------------------------------------------

int calibrate(long work_us) {
  constexpr std::uint64_t kIters = 200000;
  double best = 1e18;
  std::uint64_t sink = 0;
  for (int t = 0; t < 30; t++) {
    auto t0 = Clock::now();
    sink += work(kIters, static_cast<std::uint64_t>(t));
    double ns = static_cast<double>(ns_between(t0, Clock::now()));
    best = std::min(best, ns / static_cast<double>(kIters));
  }
  auto iters = static_cast<long long>(static_cast<double>(work_us) * 1000.0 / best);
  std::printf("RESULT name=calibrate work_us=%ld iters=%lld ns_per_iter=%.3f sink=%llu\n", work_us, iters, best,
              static_cast<unsigned long long>(sink & 1));
  return 0;
}

// ---------------------------------------------------------------------------
// service

// Where a request's latency went (--slow-ms): the client stamps the request
// at kClientAt, the server stamps when its G had read it (kGotAt) and when it
// wrote the answer (kSentAt); CLOCK_MONOTONIC is one clock for both processes.
constexpr std::size_t kClientAt = 16, kGotAt = 24, kSentAt = 32, kStampsEnd = 40;

long long mono_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// CPU time of this process so far (all threads), in seconds.
double process_cpu_s() {
  timespec ts;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Goroutine scheduling latency over an interval (goro::sched_latencies):
// "g_n=... g_p50_ns=... g_p99_ns=... g_max_ns=..." for the result line.
std::string glat_fields(const goro::SchedLatencies& base, const char* pre = "") {
  const goro::SchedLatencies now = goro::sched_latencies();
  const std::uint64_t n = now.total() - base.total();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%sg_n=%llu %sg_p50_ns=%lld %sg_p99_ns=%lld %sg_max_ns=%lld", pre,
                static_cast<unsigned long long>(n), pre,
                static_cast<long long>(now.quantile_ns(0.50, &base)), pre, static_cast<long long>(now.quantile_ns(0.99, &base)),
                pre, static_cast<long long>(now.quantile_ns(1.0, &base)));
  return buf;
}

// The server child: never returns. ctl: the parent writes 'm' when the
// measured window starts and 'r' when it ends; the server answers 'r' with
// its goroutine scheduling latency over the window, one line on report.
[[noreturn]] void serve(int port_pipe, int ctl, int report, long work_iters, long size) {
  int rc = goro::run([port_pipe, ctl, report, work_iters, size]() -> int {
    auto lr = goro::net::listen("tcp4", "127.0.0.1:0");
    if (!lr) die("listen: %s", lr.error().message().c_str());
    std::string addr = lr->addr();
    std::string port = addr.substr(addr.rfind(':') + 1) + "\n";
    if (::write(port_pipe, port.data(), port.size()) != static_cast<ssize_t>(port.size())) die("%s", "port pipe");
    ::close(port_pipe);
    goro::go([ctl, report] {
      auto f = goro::net::wrap(ctl);
      if (!f) return;
      goro::SchedLatencies base = goro::sched_latencies();
      char c;
      while (f->read_full(&c, 1)) {
        if (c == 'm') base = goro::sched_latencies();
        if (c == 'r') {
          std::string line = glat_fields(base, "server_") + "\n";
          (void)!::write(report, line.data(), line.size());
        }
      }
    });
    for (;;) {
      auto conn = lr->accept();
      if (!conn) die("accept: %s", conn.error().message().c_str());
      goro::go([cn = std::move(*conn), work_iters, size]() mutable {
        std::vector<char> buf(static_cast<std::size_t>(size));
        for (;;) {
          if (!cn.read_full(buf.data(), buf.size())) break;
          const long long got_at = mono_ns();
          std::uint64_t seed;
          std::memcpy(&seed, buf.data(), sizeof seed);
          std::uint64_t r = work(static_cast<std::uint64_t>(work_iters), seed);
          std::memcpy(buf.data() + sizeof seed, &r, sizeof r);
          // For --slow-ms: when the request reached this G, when the answer left.
          if (buf.size() >= kStampsEnd) {
            const long long sent_at = mono_ns();
            std::memcpy(buf.data() + kGotAt, &got_at, sizeof got_at);
            std::memcpy(buf.data() + kSentAt, &sent_at, sizeof sent_at);
          }
          if (!cn.write(buf.data(), buf.size())) break;
        }
        (void)cn.close();
      });
    }
  });
  std::_Exit(rc);
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

int service(const Opts& o) {
  long conns = o.num("conns", 8), seconds = o.num("seconds", 5), warmup_ms = o.num("warmup-ms", 500);
  long work_iters = o.num("work-iters", 20000), size = o.num("size", 64);
  long interval_us = o.num("interval-us", 0);
  long slow_ms = o.num("slow-ms", 0);
  const bool goro_client = o.num("goro-client", 0) != 0;
  std::string hist = o.str("hist", "");
  if (conns < 1 || seconds < 1 || size < 16) die("%s", "need --conns >= 1, --seconds >= 1, --size >= 16");

  int pp[2], cp[2], rp[2];
  if (::pipe(pp) != 0 || ::pipe(cp) != 0 || ::pipe(rp) != 0) die("%s", "pipe");
  pid_t child = ::fork();
  if (child < 0) die("%s", "fork");
  if (child == 0) {
    ::close(pp[0]);
    ::close(cp[1]);
    ::close(rp[0]);
    serve(pp[1], cp[0], rp[1], work_iters, size);
  }
  ::close(pp[1]);
  ::close(cp[0]);
  ::close(rp[1]);
  const int ctl = cp[1], report = rp[0];
  char pbuf[32] = {};
  std::size_t got = 0;
  while (got < sizeof pbuf - 1) {
    ssize_t r = ::read(pp[0], pbuf + got, sizeof pbuf - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
    if (std::memchr(pbuf, '\n', got)) break;
  }
  ::close(pp[0]);
  int port = std::atoi(pbuf);
  if (port <= 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    die("%s", "the server did not report its port");
  }

  std::atomic<int> phase{0};  // 0 warm-up, 1 measure, 2 stop
  std::atomic<bool> failed{false};
  std::vector<std::vector<long long>> lat(static_cast<std::size_t>(conns));
  std::atomic<int> slow_lines{0};
  // One connection's loop; wr/rd are the transport (a blocking socket, or a
  // goro connection when the client is goro too).
  auto client = [&](long i, auto&& wr, auto&& rd, auto&& sleep_until) {
    const auto interval = std::chrono::microseconds(interval_us);
    // Connections start spread over one interval.
    auto next = Clock::now() + interval * i / conns;
    std::vector<char> out(static_cast<std::size_t>(size)), in(static_cast<std::size_t>(size));
    std::vector<long long>& l = lat[static_cast<std::size_t>(i)];
    l.reserve(1 << 16);
    std::uint64_t seq = static_cast<std::uint64_t>(i) << 40;
    for (;;) {
      int ph = phase.load(std::memory_order_relaxed);
      if (ph == 2) break;
      if (interval_us > 0) {
        auto now = Clock::now();
        if (now < next) sleep_until(next);
        // A request that is late is sent at once; the schedule does not
        // try to catch up with a burst.
        next = std::max(next + interval, now);
      }
      seq++;
      std::memcpy(out.data(), &seq, sizeof seq);
      const long long c0 = mono_ns();
      if (out.size() >= kStampsEnd) std::memcpy(out.data() + kClientAt, &c0, sizeof c0);
      auto t0 = Clock::now();
      if (!wr(out.data(), out.size()) || !rd(in.data(), in.size())) {
        failed = true;
        return;
      }
      auto t1 = Clock::now();
      if (std::memcmp(in.data(), out.data(), sizeof seq) != 0) {
        failed = true;
        return;
      }
      if (ph == 1) l.push_back(ns_between(t0, t1));
      if (ph == 1 && slow_ms > 0 && in.size() >= kStampsEnd && ns_between(t0, t1) > slow_ms * 1000000LL &&
          slow_lines.fetch_add(1) < 50) {
        const long long c1 = mono_ns();
        long long got_at, sent_at;
        std::memcpy(&got_at, in.data() + kGotAt, sizeof got_at);
        std::memcpy(&sent_at, in.data() + kSentAt, sizeof sent_at);
        std::fprintf(stderr, "slow: conn %ld at %.1f ms (CLOCK_MONOTONIC): %.1f ms = %.1f to the server's G + %.1f in it + %.1f back\n", i,
                     static_cast<double>(c0) / 1e6, static_cast<double>(c1 - c0) / 1e6, static_cast<double>(got_at - c0) / 1e6,
                     static_cast<double>(sent_at - got_at) / 1e6, static_cast<double>(c1 - sent_at) / 1e6);
      }
    }
  };
  Clock::time_point m0, m1;
  std::string client_glat;
  auto measure = [&](auto&& sleep_for, auto&& at_start, auto&& at_end) {
    sleep_for(std::chrono::milliseconds(warmup_ms));
    phase = 1;
    (void)!::write(ctl, "m", 1);
    at_start();
    m0 = Clock::now();
    sleep_for(std::chrono::seconds(seconds));
    phase = 2;
    m1 = Clock::now();
    at_end();
  };
  if (!goro_client) {
    std::vector<int> fds;
    for (long i = 0; i < conns; i++) {
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<std::uint16_t>(port));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("connect: %s", std::strerror(errno));
      int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fds.push_back(s);
    }
    std::vector<std::thread> threads;
    for (long i = 0; i < conns; i++) {
      threads.emplace_back([i, &fds, &client] {
        int s = fds[static_cast<std::size_t>(i)];
        ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // pace without 50 us of timer slack
        client(
            i, [s](const char* p, std::size_t n) { return write_all(s, p, n); },
            [s](char* p, std::size_t n) { return read_all(s, p, n); },
            [](Clock::time_point t) { std::this_thread::sleep_until(t); });
      });
    }
    measure([](auto d) { std::this_thread::sleep_for(d); }, [] {}, [] {});
    for (auto& t : threads) t.join();
    for (int s : fds) ::close(s);
  } else {
    // The client is a goro process too: one goroutine per connection.
    int grc = goro::run([&]() -> int {
      const std::string addr = "127.0.0.1:" + std::to_string(port);
      goro::WaitGroup wg;
      std::vector<goro::net::Conn> cs;
      for (long i = 0; i < conns; i++) {
        auto c = goro::net::dial("tcp4", addr);
        if (!c) die("dial: %s", c.error().message().c_str());
        cs.push_back(std::move(*c));
      }
      goro::SchedLatencies base;
      wg.add(static_cast<int>(conns));
      for (long i = 0; i < conns; i++) {
        goro::go([i, &cs, &client, &wg] {
          goro::net::Conn& c = cs[static_cast<std::size_t>(i)];
          client(
              i, [&c](const char* p, std::size_t n) { return static_cast<bool>(c.write(p, n)); },
              [&c](char* p, std::size_t n) { return static_cast<bool>(c.read_full(p, n)); },
              [](Clock::time_point t) {
                auto now = Clock::now();
                if (t > now) goro::sleep_for(t - now);
              });
          wg.done();
        });
      }
      measure([](auto d) { goro::sleep_for(d); }, [&base] { base = goro::sched_latencies(); },
              [&base, &client_glat] { client_glat = glat_fields(base, "client_"); });
      wg.wait();
      for (auto& c : cs) (void)c.close();
      return 0;
    });
    if (grc != 0) die("%s", "the goro client failed");
  }
  // The server's goroutine scheduling latency over the window.
  std::string server_glat;
  if (::write(ctl, "r", 1) == 1) {
    char rb[256] = {};
    std::size_t rn = 0;
    while (rn < sizeof rb - 1) {
      ssize_t r = ::read(report, rb + rn, sizeof rb - 1 - rn);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      rn += static_cast<std::size_t>(r);
      if (std::memchr(rb, '\n', rn)) break;
    }
    server_glat = std::string(rb, rn);
    while (!server_glat.empty() && server_glat.back() == '\n') server_glat.pop_back();
  }
  ::close(ctl);
  ::close(report);
  ::kill(child, SIGKILL);
  int st = 0;
  ::waitpid(child, &st, 0);
  if (failed) die("%s", "a request failed (server died?)");

  std::vector<long long> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  // Requests that finished within the measured window (started after m0);
  // the window is m0..m1 plus at most one request per connection.
  double secs = static_cast<double>(ns_between(m0, m1)) / 1e9;
  double rps = static_cast<double>(all.size()) / secs;
  if (!hist.empty()) write_hist(hist, all);
  std::printf(
      "RESULT name=service rps=%.1f n=%zu secs=%.3f conns=%ld interval_us=%ld work_iters=%ld p50_ns=%lld p90_ns=%lld p99_ns=%lld "
      "p999_ns=%lld max_ns=%lld %s %s\n",
      rps, all.size(), secs, conns, interval_us, work_iters, pct(all, 0.50), pct(all, 0.90), pct(all, 0.99), pct(all, 0.999),
      all.empty() ? 0 : all.back(), server_glat.empty() ? "server_g_n=0" : server_glat.c_str(), client_glat.c_str());
  return all.empty() ? 1 : 0;
}

// ---------------------------------------------------------------------------

int parallel(const Opts& o) {
  long total = o.num("iters", 200000000);
  long gs_opt = o.num("gs", 0);
  return goro::run([total, gs_opt]() -> int {
    long gs = gs_opt > 0 ? gs_opt : 4L * goro::maxprocs();
    long per = total / gs;
    std::vector<std::uint64_t> res(static_cast<std::size_t>(gs));
    goro::WaitGroup wg;
    auto t0 = Clock::now();
    wg.add(static_cast<int>(gs));
    for (long g = 0; g < gs; g++) {
      goro::go([g, per, &res, &wg] {
        res[static_cast<std::size_t>(g)] = work(static_cast<std::uint64_t>(per), static_cast<std::uint64_t>(g));
        wg.done();
      });
    }
    wg.wait();
    long long ns = ns_between(t0, Clock::now());
    std::uint64_t x = 0;
    for (auto r : res) x ^= r;
    std::printf("RESULT name=parallel ns=%lld n=%ld gs=%ld procs=%d check=%llu\n", ns, per * gs, gs,
                goro::maxprocs(), static_cast<unsigned long long>(x & 0xff));
    return 0;
  });
}

// ---------------------------------------------------------------------------
// Paced goroutine-only jobs (fanout, churn): a pacer goroutine starts one
// request goroutine every 1/rate seconds on a fixed schedule; a request's
// latency runs from its scheduled start to its end, so a late pacer counts.

template <typename Req>
int paced_job(const char* name, const Opts& o, Req req) {
  long rate = o.num("rate", 200), seconds = o.num("seconds", 5), warmup_ms = o.num("warmup-ms", 500);
  std::string hist = o.str("hist", "");
  if (rate < 1 || seconds < 1) die("%s", "need --rate >= 1, --seconds >= 1");
  return goro::run([&]() -> int {
    const auto interval = std::chrono::nanoseconds(1000000000L / rate);
    const std::size_t cap = static_cast<std::size_t>(rate) * static_cast<std::size_t>(seconds + 2) + 64;
    std::vector<long long> lat(cap);
    std::atomic<std::size_t> nlat{0};
    std::atomic<int> inflight{0};
    goro::SchedLatencies base;
    double cpu0 = 0;
    auto start = Clock::now();
    auto m0 = start + std::chrono::milliseconds(warmup_ms), m1 = m0 + std::chrono::seconds(seconds);
    bool based = false;
    for (auto next = start; next < m1; next += interval) {
      auto now = Clock::now();
      if (next > now) goro::sleep_for(next - now);
      if (!based && next >= m0) {
        base = goro::sched_latencies();
        cpu0 = process_cpu_s();
        based = true;
      }
      const bool measured = next >= m0;
      inflight.fetch_add(1);
      goro::go([&, next, measured] {
        req();
        if (measured) {
          std::size_t k = nlat.fetch_add(1);
          if (k < cap) lat[k] = ns_between(next, Clock::now());
        }
        inflight.fetch_sub(1);
      });
    }
    std::string glat = glat_fields(base);
    const double cpu_s = process_cpu_s() - cpu0;
    while (inflight.load() > 0) goro::sleep_for(std::chrono::milliseconds(1));
    std::vector<long long> all(lat.begin(), lat.begin() + static_cast<long>(std::min(nlat.load(), cap)));
    std::sort(all.begin(), all.end());
    if (!hist.empty()) write_hist(hist, all);
    std::printf("RESULT name=%s rps=%.1f n=%zu rate=%ld procs=%d p50_ns=%lld p90_ns=%lld p99_ns=%lld p999_ns=%lld max_ns=%lld cpu_per_s=%.3f %s\n",
                name, static_cast<double>(all.size()) / static_cast<double>(seconds), all.size(), rate, goro::maxprocs(),
                pct(all, 0.50), pct(all, 0.90), pct(all, 0.99), pct(all, 0.999), all.empty() ? 0 : all.back(), cpu_s / static_cast<double>(seconds), glat.c_str());
    return all.empty() ? 1 : 0;
  });
}

// fanout: each request starts F goroutines of N work iterations and waits
// for all of them (a WaitGroup): a preempted P holder delays the request.
int fanout(const Opts& o) {
  const long fan = o.num("fan", 8), iters = o.num("work-iters", 20000);
  return paced_job("fanout", o, [fan, iters] {
    goro::WaitGroup wg;
    wg.add(static_cast<int>(fan));
    for (long k = 0; k < fan; k++) {
      goro::go([&wg, iters, k] {
        (void)work(static_cast<std::uint64_t>(iters), static_cast<std::uint64_t>(k));
        wg.done();
      });
    }
    wg.wait();
  });
}

// churn: each request starts K goroutines that park on a channel at once;
// the request wakes them one by one (a send each), each does N iterations
// of work and finishes. Many short goroutines spawning, parking and being
// readied: the run queues, the idle P/M lists and sched.lock are busy.
int churn(const Opts& o) {
  const long k = o.num("gs", 32), iters = o.num("work-iters", 1000);
  return paced_job("churn", o, [k, iters] {
    goro::Chan<int> ch;
    goro::WaitGroup wg;
    wg.add(static_cast<int>(k));
    for (long i = 0; i < k; i++) {
      goro::go([ch, &wg, iters]() mutable {
        auto v = ch.recv();
        (void)work(static_cast<std::uint64_t>(iters), static_cast<std::uint64_t>(v.value_or(0)));
        wg.done();
      });
    }
    for (long i = 0; i < k; i++) ch.send(static_cast<int>(i));
    wg.wait();
  });
}

void usage() {
  std::fprintf(stderr,
               "usage: goro_scx_service calibrate WORK_US\n"
               "       goro_scx_service service [--conns C] [--seconds S] [--warmup-ms W] [--work-iters N]\n"
               "                                [--interval-us I] [--size B] [--hist FILE] [--slow-ms N]\n"
               "       goro_scx_service parallel [--gs G] [--iters N]\n"
               "       goro_scx_service fanout [--rate R] [--fan F] [--work-iters N] [--seconds S] [--warmup-ms W] [--hist FILE]\n"
               "       goro_scx_service churn [--rate R] [--gs K] [--work-iters N] [--seconds S] [--warmup-ms W] [--hist FILE]\n"
               "Ps: GORO_MAXPROCS=n (default: the CPUs)\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  std::string_view cmd = argv[1];
  if (cmd == "calibrate") return calibrate(argc > 2 ? std::strtol(argv[2], nullptr, 10) : 30);
  if (cmd == "service") return service(parse(argc, argv, 2));
  if (cmd == "parallel") return parallel(parse(argc, argv, 2));
  if (cmd == "fanout") return fanout(parse(argc, argv, 2));
  if (cmd == "churn") return churn(parse(argc, argv, 2));
  usage();
  return 2;
}
