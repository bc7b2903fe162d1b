// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Scheduler behaviour through the public API: Go's proc_test.go transcribed
// (TestGoroutineParallelism{,2}, TestPingPongHog, TestYieldProgress,
// TestNumGoroutine, TestStopTheWorldDeadlock), plus goro::run's contract.
//
// Our runtime has no timers yet, so where Go's tests time.Sleep to let other
// goroutines run, we sleep cooperatively: gosched until a deadline passes.
// Blocking the thread instead would hold the P and change what is tested.

#include <gtest/gtest.h>

#include <goro/goro.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "export_test.h"
#include "testutil.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using goro_test::ScopedMaxprocs;

// The calling G yields until `d` has passed, like time.Sleep but keeping the
// G runnable.
void sleep_cooperatively(Clock::duration d) {
  const auto deadline = Clock::now() + d;
  while (Clock::now() < deadline) goro::gosched();
}

// G exit happens some time after the G's last visible action, so the count
// of goroutines settles asynchronously. Yield until it reaches `want` or
// `timeout` passes; returns the last count seen.
int wait_for_num_goroutine(int want, Clock::duration timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  int n = goro::num_goroutine();
  while (n != want && Clock::now() < deadline) {
    goro::gosched();
    n = goro::num_goroutine();
  }
  return n;
}

// Yield until `flag` is set (or 5 s pass); returns it.
bool eventually_true(const std::atomic<bool>& flag) {
  const auto deadline = Clock::now() + 5s;
  while (!flag.load() && Clock::now() < deadline) goro::gosched();
  return flag.load();
}

// Every test ends by letting the goroutines it started exit, so their
// closures (and the channel handles they hold) are destroyed before run
// returns: abandoned Gs would otherwise show up as leaks under ASan.
void expect_only_main_left() {
  EXPECT_EQ(wait_for_num_goroutine(1), 1) << "goroutines started by the test did not exit";
}

// ---------------------------------------------------------------------------
// Parallelism

// The P goroutines advance a shared counter in strict round robin: G p may
// only move x from P*i+p to P*i+p+1. None of them ever blocks or reaches a
// safe point, so the test finishes only if all P goroutines are running at
// the same time, each on its own P and M.
//
// The wait loop yields the *thread* (not the goroutine: the G keeps its P
// and M, so what is tested is unchanged). With 4 Ps on a 2-CPU machine this
// turns each handoff from a wait for the kernel's time slice into a quick
// switch.
void spin_round_robin(std::atomic<std::uint32_t>& x, int nprocs, int slot) {
  for (int i = 0; i < 3; i++) {
    const auto expected = static_cast<std::uint32_t>(nprocs * i + slot);
    while (x.load() != expected) {
      std::this_thread::yield();
    }
    x.store(expected + 1);
  }
}

// TestGoroutineParallelism: as many spinning goroutines as Ps all run at
// once. A scheduler that does not start Ms for idle Ps hangs here.
TEST(GoroutineParallelism, AllPsRunAtOnce) {
  goro::run([] {
    constexpr int P = 4;  // more Ps than the 2 CPUs is fine: Ms are threads
    constexpr int kTries = 10;
    ScopedMaxprocs procs(P);
    for (int attempt = 0; attempt < kTries; attempt++) {
      goro::Chan<bool> done;
      std::atomic<std::uint32_t> x{0};
      for (int p = 0; p < P; p++) {
        goro::go([&x, done, p]() mutable {
          spin_round_robin(x, P, p);
          done.send(true);
        });
      }
      for (int p = 0; p < P; p++) done.recv();
    }
    expect_only_main_left();
  });
}

// TestGoroutineParallelism2: the same with the spinners spawned by other
// goroutines (nested go), with and without a prior round of load that
// leaves worker Ms parking just as the test starts.
void goroutine_parallelism2(bool load) {
  constexpr int P = 4;
  constexpr int kTries = 10;
  ScopedMaxprocs procs(P);
  for (int attempt = 0; attempt < kTries; attempt++) {
    if (load) {
      // P goroutines that all wait for each other: once released, their
      // Ms find nothing to do and start parking.
      // The spinners may still be reading the counter after main moves on,
      // so they share ownership of it.
      goro::Chan<bool> done;
      auto arrived = std::make_shared<std::atomic<std::uint32_t>>(0);
      for (int p = 0; p < P; p++) {
        goro::go([arrived, done]() mutable {
          if (arrived->fetch_add(1) + 1 == static_cast<std::uint32_t>(P)) {
            done.send(true);
            return;
          }
          while (arrived->load() != static_cast<std::uint32_t>(P)) {
            std::this_thread::yield();
          }
        });
      }
      done.recv();
    }
    goro::Chan<bool> done;
    std::atomic<std::uint32_t> x{0};
    for (int p = 0; p < P / 2; p++) {
      goro::go([&x, done, p] {
        for (int p2 = 0; p2 < 2; p2++) {
          goro::go([&x, done, p, p2]() mutable {
            spin_round_robin(x, P, p * 2 + p2);
            done.send(true);
          });
        }
      });
    }
    for (int p = 0; p < P; p++) done.recv();
  }
  expect_only_main_left();
}

TEST(GoroutineParallelism, NestedSpawnsAllRunAtOnce) {
  goro::run([] { goroutine_parallelism2(/*load=*/false); });
}

TEST(GoroutineParallelism, NestedSpawnsAllRunAtOnceAfterWorkersPark) {
  goro::run([] { goroutine_parallelism2(/*load=*/true); });
}

// ---------------------------------------------------------------------------
// Fairness

// Spins `n` iterations of work the compiler cannot fold away.
void burn(long n) {
  volatile long sink = 0;
  for (long i = 0; i < n; i++) sink = sink + 1;
}

// ThreadSanitizer makes every channel operation and goroutine switch
// far more expensive than the arithmetic in burn(), which skews work counts
// (not CPU shares) towards the hog pair.
#if defined(__SANITIZE_THREAD__)
constexpr bool kUnderTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kUnderTsan = true;
#else
constexpr bool kUnderTsan = false;
#endif
#else
constexpr bool kUnderTsan = false;
#endif

// TestPingPongHog: on one P, a "hog" pair of goroutines passes a token back
// and forth doing 1e6 units of work per turn, and a "light" pair does 1e3.
// Each pair's token handoff readies the partner into runnext, so a pair
// would keep the P forever if runnext chains did not share one time slice;
// sysmon preempts the chain after 10 ms (at its next channel operation) and
// the other pair gets its turn. Both pairs then get comparable CPU time, so
// their work counts are within a factor of 20 (Go's bound, issue 52207);
// without working preemption the gap is ~1000x.
//
// Work counts stand for CPU time only when a channel handoff costs about
// what it costs in Go. So we also measure the P's time directly: with one
// P only one player runs at a time, and the time from one player's token
// receipt to the next receipt by any player belongs to the first one's
// pair. Those shares must be within the same factor in every build; the
// count check (Go's) is made where instrumentation does not skew it (Go
// itself skips this test under -race, #38266).
TEST(Fairness, PingPongHogPairsShareTheP) {
  goro::run([] {
    ScopedMaxprocs procs(1);
    struct Ledger {
      std::atomic<long> count[2] = {0, 0};
      std::atomic<std::int64_t> p_time_ns[2] = {0, 0};
      // took_token's read-modify-write is one step under mu: a player can
      // be preempted inside it, and the other pair's player take a turn
      // meanwhile (two separate exchanges then booked negative times).
      goro::Mutex mu;
      int last_pair = -1;        // guarded by mu
      std::int64_t last_ns = 0;  // guarded by mu
      // Called by a player of `pair` as it receives the token.
      void took_token(int pair) {
        std::lock_guard<goro::Mutex> lk(mu);
        const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     Clock::now().time_since_epoch())
                                     .count();
        if (last_pair >= 0) p_time_ns[last_pair].fetch_add(now - last_ns);
        last_pair = pair;
        last_ns = now;
      }
    };
    auto ledger = std::make_shared<Ledger>();
    constexpr int kHog = 0;
    constexpr int kLight = 1;
    goro::Chan<bool> hog_chan;
    goro::Chan<bool> light_chan;

    // Wait for the token, work, pass the token on; exit when the channel
    // closes. Only the token holder sends, so nobody sends after the test
    // takes the token back and closes the channel.
    auto player = [](int pair, long limit, std::shared_ptr<Ledger> lg, goro::Chan<bool> wake) {
      while (wake.recv()) {
        lg->took_token(pair);
        burn(limit);
        lg->count[pair].fetch_add(limit, std::memory_order_relaxed);
        wake.send(true);
      }
    };
    for (int i = 0; i < 2; i++) goro::go([=] { player(kHog, 1'000'000, ledger, hog_chan); });
    for (int i = 0; i < 2; i++) goro::go([=] { player(kLight, 1'000, ledger, light_chan); });

    hog_chan.send(true);
    light_chan.send(true);
    sleep_cooperatively(100ms);
    hog_chan.recv();  // take each token out of play
    light_chan.recv();
    hog_chan.close();
    light_chan.close();

    constexpr long kFactor = 20;
    const long hog_ms = static_cast<long>(ledger->p_time_ns[kHog].load() / 1'000'000);
    const long light_ms = static_cast<long>(ledger->p_time_ns[kLight].load() / 1'000'000);
    // Under TSan the time split is not asserted either (Go skips this test
    // under -race, #38266): TSan slows the channel operations, the only
    // preemption points there (no async preemption), by orders of magnitude,
    // and the split came out 43 ms / 1591 ms in one of four CI runs. The
    // test still runs there, for its data races.
    if (!kUnderTsan) {
      EXPECT_TRUE(hog_ms / kFactor <= light_ms && light_ms / kFactor <= hog_ms)
          << "want the pairs' time on the P within a factor of " << kFactor << "; got hog "
          << hog_ms << " ms, light " << light_ms << " ms: a runnext pair kept the P beyond its "
          << "time slice";
    }

    const long hog = ledger->count[kHog].load();
    const long light = ledger->count[kLight].load();
    if (!kUnderTsan) {
      EXPECT_TRUE(hog / kFactor <= light && light / kFactor <= hog)
          << "want hog/light in [1/" << kFactor << ", " << kFactor << "]; got " << hog << "/"
          << light << " = " << static_cast<double>(hog) / static_cast<double>(light ? light : 1)
          << " (P time: hog " << hog_ms << " ms, light " << light_ms << " ms)";
    }
    expect_only_main_left();
  });
}

// TestYieldProgress: a goroutine that does nothing but gosched (checking a
// channel in between) must not keep the main goroutine from progressing,
// with one P (they take turns through the global queue) or several.
void yield_progress(int nprocs) {
  ScopedMaxprocs procs(nprocs);
  goro::Chan<bool> c;
  goro::Chan<bool> cack;
  goro::go([c, cack]() mutable {
    for (;;) {
      if (c.try_recv()) {
        cack.send(true);
        return;
      }
      goro::gosched();
    }
  });
  sleep_cooperatively(10ms);
  c.send(true);
  EXPECT_TRUE(cack.recv().has_value());
  expect_only_main_left();
}

TEST(Fairness, YieldingGoroutineLetsMainProgressOnOneP) {
  goro::run([] { yield_progress(1); });
}

TEST(Fairness, YieldingGoroutineLetsMainProgressOnTwoPs) {
  goro::run([] { yield_progress(2); });
}

// ---------------------------------------------------------------------------
// NumGoroutine

// TestNumGoroutine (in spirit: we have no stack dump to compare with): the
// main goroutine alone counts 1; N blocked goroutines count N more as soon
// as they are created; once they exit the count returns to 1.
TEST(NumGoroutine, CountsExactlyTheLiveGoroutines) {
  goro::run([] {
    EXPECT_EQ(goro::num_goroutine(), 1) << "main alone must count 1 (no system goroutines)";
    constexpr int N = 100;
    goro::Chan<int> block;
    goro::WaitGroup started;
    started.add(N);
    for (int i = 0; i < N; i++) {
      goro::go([block, &started]() mutable {
        started.done();
        block.recv();
      });
      EXPECT_EQ(goro::num_goroutine(), i + 2) << "a goroutine counts from the moment go returns";
    }
    started.wait();
    EXPECT_EQ(goro::num_goroutine(), N + 1) << "blocked goroutines still count";
    block.close();
    EXPECT_EQ(wait_for_num_goroutine(1), 1) << "exited goroutines must stop counting";
  });
}

TEST(NumGoroutine, ExitedSpawnersAreNotCounted) {
  goro::run([] {
    // A chain of goroutines, each starting the next and exiting.
    constexpr int kDepth = 1000;
    goro::Chan<bool> end;
    struct Chain {
      static void link(int left, goro::Chan<bool> end) {
        if (left == 0) {
          end.send(true);
          return;
        }
        goro::go([left, end] { link(left - 1, end); });
      }
    };
    goro::go([end] { Chain::link(kDepth, end); });
    end.recv();
    EXPECT_EQ(wait_for_num_goroutine(1), 1)
        << "after a chain of " << kDepth << " goroutines ends, only main remains";
  });
}

// ---------------------------------------------------------------------------
// maxprocs

TEST(Maxprocs, SetReturnsPreviousAndZeroQueries) {
  goro::run([] {
    const int initial = goro::maxprocs();
    EXPECT_GE(initial, 1);
    EXPECT_EQ(goro::maxprocs(0), initial) << "maxprocs(0) must only query";
    EXPECT_EQ(goro::maxprocs(3), initial) << "maxprocs(n) returns the previous value";
    EXPECT_EQ(goro::maxprocs(), 3);
    EXPECT_EQ(goro::testexport::sched_counters().gomaxprocs, 3)
        << "the scheduler must run with the Ps that maxprocs reports";
    EXPECT_EQ(goro::maxprocs(-1), 3) << "a negative n must only query, like Go's GOMAXPROCS";
    EXPECT_EQ(goro::maxprocs(initial), 3);
    EXPECT_EQ(goro::maxprocs(), initial);
  });
}

// The goroutine that calls maxprocs stops the world but is not itself
// preempted by it (Go's preemptone skips the caller's own M): afterwards it
// keeps its P, so on one P a goroutine it starts does not run until it
// blocks or yields.
//
// sysmon may legitimately preempt a G whose time slice is older than 10 ms
// (as Go's does); a round in which the resize itself took that long (slow
// sanitizer builds, a loaded machine) proves nothing and is repeated.
TEST(Maxprocs, CallerKeepsItsPAfterResize) {
  goro::run([] {
    const int initial = goro::maxprocs(2);
    int conclusive = 0;
    for (int round = 0; round < 20 && conclusive < 3; round++) {
      goro::maxprocs(2);
      goro::gosched();  // start a fresh time slice
      auto t0 = std::chrono::steady_clock::now();
      goro::maxprocs(1);
      std::atomic<bool> ran{false};
      goro::go([&ran] { ran.store(true); });
      const bool ran_early = ran.load();
      const int n = goro::num_goroutine();
      const bool fast = std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(5);
      if (fast) {
        conclusive++;
        EXPECT_FALSE(ran_early) << "the new goroutine ran right after maxprocs(2 -> 1): the caller "
                                   "lost its P at its first safe point after the resize";
        EXPECT_EQ(n, 2);
      }
      goro::gosched();  // now it runs
      EXPECT_TRUE(eventually_true(ran));
      expect_only_main_left();
    }
    EXPECT_GT(conclusive, 0) << "every round's resize took over 5 ms: nothing was shown";
    goro::maxprocs(initial);
  });
}

// A goroutine that starts its successor and exits, until told to stop
// (Go's perpetuumMobile): keeps newproc, runnext and G exit busy.
void perpetuum_mobile(goro::Chan<bool> stop) {
  if (stop.try_recv()) return;
  goro::go([stop] { perpetuum_mobile(stop); });
}

// TestStopTheWorldDeadlock: stopping the world over and over (in Go, GC
// and GOMAXPROCS; here maxprocs, both to the same value and to changing
// values) while goroutines are created and exit at full speed must neither
// deadlock nor lose track of the Ps.
TEST(Maxprocs, RepeatedResizeWhileGoroutinesSpawn) {
  goro::run([] {
    const int initial = goro::maxprocs(3);
    // 1000 rounds as in Go; each is a stop-the-world.
    constexpr int kRounds = 1000;
    goro::Chan<bool> compl_(2);
    goro::Chan<bool> stop;
    goro::go([compl_]() mutable {
      for (int i = 0; i < kRounds; i++) goro::maxprocs(3);
      compl_.send(true);
    });
    goro::go([compl_]() mutable {
      for (int i = 0; i < kRounds; i++) goro::maxprocs(1 + i % 4);
      compl_.send(true);
    });
    goro::go([stop] { perpetuum_mobile(stop); });
    compl_.recv();
    compl_.recv();
    stop.send(true);

    // Which resize came last is a race; what follows must not be.
    goro::maxprocs(4);
    EXPECT_EQ(goro::maxprocs(), 4);
    auto counters = goro::testexport::sched_counters();
    EXPECT_EQ(counters.gomaxprocs, 4) << "the scheduler's P count after the resizes";
    EXPECT_LE(counters.npidle, 3) << "main's P is running, so at most 3 of 4 Ps are idle";
    // And all 4 Ps really run goroutines at once.
    goro::Chan<bool> done;
    std::atomic<std::uint32_t> x{0};
    for (int p = 0; p < 4; p++) {
      goro::go([&x, done, p]() mutable {
        spin_round_robin(x, 4, p);
        done.send(true);
      });
    }
    for (int p = 0; p < 4; p++) done.recv();

    EXPECT_EQ(goro::maxprocs(initial), 4);
    EXPECT_EQ(goro::testexport::sched_counters().gomaxprocs, initial);
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// goro::run

TEST(Run, ReturnsMainsValue) {
  EXPECT_EQ(goro::run([] { return 42; }), 42);
  EXPECT_EQ(goro::run([] { return -3; }), -3);
}

TEST(Run, VoidMainReturnsZero) {
  bool ran = false;
  EXPECT_EQ(goro::run([&ran] { ran = true; }), 0);
  EXPECT_TRUE(ran) << "run must run main before returning";
}

TEST(Run, CanBeCalledRepeatedly) {
  for (int round = 0; round < 5; round++) {
    const int got = goro::run([round] {
      goro::Chan<int> c;
      goro::go([c, round]() mutable { c.send(round * 10); });
      return *c.recv() + 1;
    });
    EXPECT_EQ(got, round * 10 + 1) << "run number " << round;
  }
}

// The main goroutine returning ends the program's work: goroutines still
// runnable are abandoned, never resumed: not while run winds down, not by
// a later run. A later run starts with only its own main goroutine.
std::atomic<bool> g_abandoned_ran{false};

TEST(Run, GoroutinesLeftWhenMainReturnsAreAbandoned) {
  int saved_procs = 0;
  goro::run([&saved_procs] {
    // With one P, the new G can run only if main yields its P, and main
    // never does: it returns.
    saved_procs = goro::maxprocs(1);
    // Settle after the resize (Maxprocs.CallerKeepsItsPAfterResize is the
    // test for the caller's P right after it): a throwaway goroutine runs
    // and exits, so any pending reschedule of main has happened.
    goro::go([] {});
    ASSERT_EQ(wait_for_num_goroutine(1), 1);
    goro::go([] { g_abandoned_ran.store(true); });
    EXPECT_EQ(goro::num_goroutine(), 2) << "the new goroutine ran although main kept the only P";
  });
  EXPECT_FALSE(g_abandoned_ran.load())
      << "a goroutine left runnable when main returned was run before run returned";
  goro::run([saved_procs] {
    EXPECT_EQ(goro::num_goroutine(), 1) << "a new run starts with only its main goroutine";
    for (int i = 0; i < 100; i++) goro::gosched();
    sleep_cooperatively(5ms);
    goro::maxprocs(saved_procs);
  });
  EXPECT_FALSE(g_abandoned_ran.load()) << "an abandoned goroutine was resumed";
}

}  // namespace

// ---------------------------------------------------------------------------
// sched_latencies (Go's /sched/latencies:seconds)

// Goroutines created while the only P is busy wait runnable until it is
// free: the histogram counts (one in kSchedLatencyPeriod of) them, with
// waits of about as long as the P was busy. Nothing runs while main
// spins but main (GORO_MAXPROCS 1); sysmon may preempt it after 10 ms.
TEST(SchedLatencies, CountsTheWaitOfGoroutinesQueuedBehindABusyP) {
  goro::run([] {
    const int prev = goro::maxprocs(1);
    const goro::SchedLatencies base = goro::sched_latencies();
    constexpr int kGs = 4 * goro::kSchedLatencyPeriod;
    std::atomic<int> ran{0};
    goro::WaitGroup wg;
    wg.add(kGs);
    for (int i = 0; i < kGs; i++) {
      goro::go([&ran, &wg] {
        ran.fetch_add(1);
        wg.done();
      });
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(30)) {
    }
    wg.wait();
    const goro::SchedLatencies now = goro::sched_latencies();
    EXPECT_EQ(ran.load(), kGs);
    // Their first stints: at least kGs / period of them timed (plus any
    // other stint of main or the runtime's own goroutines).
    EXPECT_GE(now.total() - base.total(), static_cast<std::uint64_t>(kGs / goro::kSchedLatencyPeriod));
    EXPECT_GE(now.quantile_ns(1.0, &base), 8'000'000) << "the longest wait must reflect the busy P (>= 10 ms)";
    EXPECT_LE(now.quantile_ns(1.0, &base), 10'000'000'000LL);
    goro::maxprocs(prev);
  });
}

TEST(SchedLatencies, BucketsAreOrderedAndQuantilesOfNothingAreZero) {
  for (int b = 1; b < goro::kSchedLatencyBuckets; b++)
    EXPECT_LT(goro::sched_latency_bucket_lower(b - 1), goro::sched_latency_bucket_lower(b)) << "bucket " << b;
  goro::SchedLatencies none;
  EXPECT_EQ(none.total(), 0u);
  EXPECT_EQ(none.quantile_ns(0.99), 0);
}
