// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// System calls: goro::syscall / BlockingRegion, Go's entersyscall and
// exitsyscall. Go's TestPreemptionAfterSyscall (proc_test.go) transcribed,
// plus the hand-off contract goro.h states:
//   - a goroutine blocked in a long call does not hold its P: sysmon retakes
//     it and the other goroutines run on, even with GORO_MAXPROCS=1;
//   - on return the goroutine gets a P back (its own, another idle one, or
//     it waits for one), so at most maxprocs goroutines ever run goro code;
//   - outside a goroutine a BlockingRegion does nothing.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "export_test.h"

namespace {

using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using goro_test::ScopedMaxprocs;


double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Busy-waits for `d` without calling into goro (no safe point).
void spin_for(Clock::duration d) {
  const auto deadline = Clock::now() + d;
  while (Clock::now() < deadline) {
  }
}

// A pipe whose ends are closed on scope exit.
struct Pipe {
  int rd = -1;
  int wr = -1;
  Pipe() {
    int fds[2];
    if (pipe(fds) == 0) {
      rd = fds[0];
      wr = fds[1];
    }
  }
  ~Pipe() {
    if (rd >= 0) close(rd);
    if (wr >= 0) close(wr);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

// ---------------------------------------------------------------------------
// Go's TestPreemptionAfterSyscall: 8 goroutines on 2 Ps loop over short
// system calls until told to stop. Telling them needs main to get a P
// between their calls; each round must end well within 5 s.

class PreemptionAfterSyscall : public ::testing::TestWithParam<int> {};

TEST_P(PreemptionAfterSyscall, GoroutinesInASyscallLoopCanBeStopped) {
  const auto syscall_duration = std::chrono::microseconds(GetParam());
  goro::run([syscall_duration] {
    ScopedMaxprocs procs(2);
    constexpr int kRounds = 3;
    constexpr int kGoroutines = 8;
    constexpr auto kMaxDuration = 5s;
    for (int round = 0; round < kRounds; round++) {
      goro::Chan<bool> c(kGoroutines);
      std::atomic<bool> stop{false};
      const auto start = Clock::now();
      for (int g = 0; g < kGoroutines; g++) {
        goro::go([c, &stop, syscall_duration]() mutable {
          c.send(true);
          while (!stop.load()) {
            goro::syscall([syscall_duration] { usleep(static_cast<useconds_t>(syscall_duration.count())); });
          }
          c.send(true);
        });
      }
      for (int g = 0; g < kGoroutines; g++) c.recv();  // all started
      stop.store(true);
      for (int g = 0; g < kGoroutines; g++) c.recv();  // all finished
      const auto took = Clock::now() - start;
      EXPECT_LT(took, kMaxDuration) << "round " << round << " with " << syscall_duration.count()
                                    << "µs system calls took " << ms(took) << "ms";
    }
    expect_only_main_left();
  });
}

INSTANTIATE_TEST_SUITE_P(Syscall, PreemptionAfterSyscall, ::testing::Values(10, 100, 1000),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return std::to_string(param.param) + "us";
                         });

// ---------------------------------------------------------------------------
// Hand-off

// With one P, a goroutine blocks in read() on a pipe that only main will
// write to. Main can run only if the P was handed off while the reader is
// blocked. (The read is a poll with a 5 s timeout, so a runtime that keeps
// the P fails the test instead of hanging it.)
TEST(Syscall, BlockedGoroutineHandsItsPToOthers) {
  goro::run([] {
    ScopedMaxprocs procs(1);
    Pipe p;
    ASSERT_GE(p.rd, 0) << "pipe";
    std::atomic<bool> in_call{false};
    std::atomic<int> read_result{-2};
    goro::Chan<bool> done;
    goro::go([&, done]() mutable {
      int n = goro::syscall([&] {
        in_call.store(true);
        pollfd pfd{p.rd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) != 1) return -1;  // timed out: nobody wrote
        char b;
        return static_cast<int>(read(p.rd, &b, 1));
      });
      read_result.store(n);
      done.send(true);
    });
    // Main is runnable on the one P; the reader went first or goes now.
    ASSERT_TRUE(eventually([&] { return in_call.load(); })) << "the reader never started";
    // Do some goroutine work of our own while the reader is blocked.
    goro::Chan<int> ping;
    goro::go([ping]() mutable {
      for (int i = 0; i < 100; i++) ping.send(i);
    });
    for (int i = 0; i < 100; i++) ping.recv();
    ASSERT_EQ(write(p.wr, "x", 1), 1);
    done.recv();
    EXPECT_EQ(read_result.load(), 1)
        << "the reader's poll timed out: with one P, main did not run while a goroutine was "
           "blocked in a system call (the P was not handed off)";
    expect_only_main_left();
  });
}

// With one P, a goroutine sleeps 200 ms in the kernel; others make progress
// (many channel round trips) while it is still in the call.
TEST(Syscall, OthersRunOnTheOnlyPDuringALongSyscall) {
  goro::run([] {
    ScopedMaxprocs procs(1);
    std::atomic<bool> in_call{false};
    std::atomic<bool> returned{false};
    goro::Chan<bool> done;
    goro::go([&, done]() mutable {
      goro::syscall([&] {
        in_call.store(true);
        usleep(200000);
      });
      returned.store(true);
      done.send(true);
    });
    ASSERT_TRUE(eventually([&] { return in_call.load(); })) << "the sleeper never started";
    const auto start = Clock::now();
    goro::Chan<int> ping;
    goro::Chan<int> pong;
    goro::go([ping, pong]() mutable {
      for (int i = 0; i < 200; i++) pong.send(*ping.recv() + 1);
    });
    int progress = 0;
    for (int i = 0; i < 200; i++) {
      ping.send(i);
      if (pong.recv() == i + 1) progress++;
    }
    const bool still_in_call = !returned.load();
    const auto took = Clock::now() - start;
    EXPECT_EQ(progress, 200);
    // Informative only when the machine was fast enough to finish 200 round
    // trips well within the 200 ms call.
    if (took < 150ms) {
      EXPECT_TRUE(still_in_call) << "200 round trips took " << ms(took)
                                 << "ms but only completed after the 200ms call returned";
    }
    done.recv();
    expect_only_main_left();
  });
}

// A goroutine whose P was retaken during its call gets a P back on return
// and runs goro code again; with one P and two such goroutines returning
// together, they take turns: never two running at once.
//
// Each goroutine spins 2 ms in a region after each return and records the
// region's span. Two spans of different goroutines that overlap in time
// mean two ran at once -- unless one of them was switched out meanwhile:
// sysmon may preempt a goroutine whose time slice passes 10 ms (as Go's
// would), and another then runs its own 2 ms region while the first is not
// running: a region switched out lasts at least 4 ms. A span of
// kConclusive or more proves nothing either way and is left out.
TEST(Syscall, ReturningGoroutinesGetAPBackOneAtATime) {
  goro::run([] {
    ScopedMaxprocs procs(1);
    constexpr int kGoroutines = 3;
    constexpr auto kConclusive = 3500us;
    struct Span {
      Clock::time_point t0, t1;
      int g;
    };
    goro::Mutex mu;
    std::vector<Span> spans;  // guarded by mu
    std::atomic<int> completed{0};
    goro::WaitGroup wg;
    wg.add(kGoroutines);
    for (int i = 0; i < kGoroutines; i++) {
      goro::go([&, i] {
        for (int round = 0; round < 3; round++) {
          goro::syscall([] { usleep(30000); });  // long enough to lose the P
          // Start a fresh time slice: coming back on the fast path keeps the
          // P's stale schedtick.
          goro::gosched();
          // Back in goro code: we hold a P. Nobody else may, meanwhile.
          const auto t0 = Clock::now();
          spin_for(2ms);
          const auto t1 = Clock::now();
          {
            std::lock_guard<goro::Mutex> lk(mu);
            spans.push_back(Span{t0, t1, i});
          }
          goro::Chan<int> c(1);  // and channel operations work
          c.send(round);
          if (c.recv() == round) completed.fetch_add(1);
          goro::gosched();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(completed.load(), kGoroutines * 3);
    int conclusive = 0, overlaps = 0;
    std::string pairs;
    for (std::size_t a = 0; a < spans.size(); a++) {
      if (spans[a].t1 - spans[a].t0 >= kConclusive) continue;
      conclusive++;
      for (std::size_t b = a + 1; b < spans.size(); b++) {
        if (spans[b].g == spans[a].g || spans[b].t1 - spans[b].t0 >= kConclusive) continue;
        if (spans[a].t0 < spans[b].t1 && spans[b].t0 < spans[a].t1) {
          overlaps++;
          pairs += " [G" + std::to_string(spans[a].g) + " " + std::to_string(ms(spans[a].t1 - spans[a].t0)) + "ms, G" +
                   std::to_string(spans[b].g) + " " + std::to_string(ms(spans[b].t1 - spans[b].t0)) + "ms, starts " +
                   std::to_string(ms(spans[b].t0 - spans[a].t0)) + "ms apart]";
        }
      }
    }
    EXPECT_EQ(overlaps, 0) << "with GORO_MAXPROCS=1, goroutines ran goro code at once after system calls ("
                           << overlaps << " overlapping pairs of 2 ms regions:" << pairs << ")";
    EXPECT_GT(conclusive, 0) << "every region took over " << ms(kConclusive) << "ms: nothing was shown";
    auto counters = goro::testexport::sched_counters();
    EXPECT_EQ(counters.gomaxprocs, 1) << "the P count changed";
    expect_only_main_left();
  });
}

// The P a syscall returns to is a real one: after many short and long calls
// on 2 Ps, every P is accounted for (idle or running), none lost.
TEST(Syscall, NoPIsLostAcrossManySyscalls) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    goro::WaitGroup wg;
    constexpr int kGoroutines = 6;
    wg.add(kGoroutines);
    for (int i = 0; i < kGoroutines; i++) {
      goro::go([i, &wg] {
        for (int k = 0; k < 30; k++) goro::syscall([i, k] { usleep(static_cast<useconds_t>((i + k) % 4 * 500)); });
        wg.done();
      });
    }
    wg.wait();
    ASSERT_EQ(goro::testexport::sched_counters().gomaxprocs, 2);
    // Main holds one P; the other must come back to the idle list. (A
    // spinning M may hold it for a moment, so once seen idle is enough.)
    bool seen_idle = false;
    EXPECT_TRUE(eventually([&seen_idle] {
      auto s = goro::testexport::sched_counters();
      if (s.npidle == s.gomaxprocs - 1) seen_idle = true;
      if (!seen_idle) goro::sleep_for(1ms);
      return seen_idle;
    })) << "npidle=" << goro::testexport::sched_counters().npidle
        << ": a P given away during a system call was not returned to the idle list";
    expect_only_main_left();
  });
}

TEST(Syscall, ReturnsTheFunctionsValue) {
  goro::run([] {
    EXPECT_EQ(goro::syscall([] { return 42; }), 42);
    std::string s = goro::syscall([] { return std::string("from the call"); });
    EXPECT_EQ(s, "from the call");
    int x = 0;
    int& r = goro::syscall([&x]() -> int& { return x; });
    EXPECT_EQ(&r, &x) << "a reference result is passed through";
    bool ran = false;
    goro::syscall([&] { ran = true; });
    EXPECT_TRUE(ran);
  });
}

TEST(Syscall, BlockingRegionOutsideAGoroutineIsANoOp) {
  {
    goro::BlockingRegion region;
    usleep(1000);
  }
  EXPECT_EQ(goro::syscall([] { return 7; }), 7);
  // And the runtime still works afterwards.
  EXPECT_EQ(goro::run([] {
              goro::BlockingRegion region;
              return 3;
            }),
            3);
  EXPECT_EQ(goro::syscall([] { return 8; }), 8);
}

}  // namespace
