// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Preemption: a goroutine that never reaches a safe point must not starve
// the others (Go's TestPreemption / AsyncPreempt testprog, on our API).
//
// sysmon marks a G that has run 10 ms on one time slice; cooperative
// preemption acts at the next safe point, asynchronous preemption (SIGURG)
// interrupts loops with none. The asynchronous kind is off under TSan (it
// defers signals to its own safe points): there, these tests check that it
// is off and that cooperative preemption still works.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "goro/goro.h"
#include "runtime.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long tid() { return syscall(SYS_gettid); }

#if defined(GORO_TSAN)
constexpr bool kAsync = false;
#else
constexpr bool kAsync = true;
#endif

// A loop with no call into the runtime: only arithmetic and a relaxed load.
[[maybe_unused]] void spin_until(const std::atomic<bool>& stop, std::atomic<bool>& moved_thread) {
  long t0 = tid();
  unsigned long x = 1;
  for (unsigned long i = 0; !stop.load(std::memory_order_relaxed); i++) {
    x = x * 6364136223846793005ul + 1442695040888963407ul;
    if ((i & 0xfffff) == 0 && tid() != t0) moved_thread = true;
  }
  if (x == 42) std::printf(" ");  // keep x alive
}

TEST(Preemption, AsyncPreemptionIsOnExceptUnderTSan) {
  goro::run([] {
    EXPECT_EQ(goro::detail::async_preempt_enabled.load(), kAsync)
        << "asynchronous preemption should be " << (kAsync ? "on" : "off") << " in this build";
  });
}

// The two tests below need asynchronous preemption; they are not built under
// TSan, where AsyncPreemptionIsOnExceptUnderTSan checks that it is off.
#if !defined(GORO_TSAN)
TEST(Preemption, TightLoopDoesNotStarveMainOnOneP) {
  std::atomic<bool> stop{false};
  std::atomic<bool> moved{false};
  std::atomic<bool> main_progressed{false};
  // Watchdog: without preemption main never runs again; end the spinner
  // so the test fails instead of hanging.
  std::thread watchdog([&] {
    auto deadline = Clock::now() + 20s;
    while (!main_progressed && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    stop = true;
  });
  goro::run([&] {
    int prev = goro::maxprocs(1);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      spin_until(stop, moved);
      wg.done();
    });
    for (int i = 0; i < 5; i++) goro::gosched();  // each time, the spinner must be preempted
    main_progressed = !stop.load();
    stop = true;
    wg.wait();
    goro::maxprocs(prev);
  });
  watchdog.join();
  EXPECT_TRUE(main_progressed.load()) << "main never ran again while a goroutine spun on the only P";
  EXPECT_FALSE(moved.load()) << "a preempted goroutine resumed on another thread";
}

TEST(Preemption, SpinnersOnEveryPStillLetMainRun) {
  std::atomic<bool> stop{false};
  std::atomic<bool> moved{false};
  std::atomic<int> rounds{0};
  std::thread watchdog([&] {
    auto deadline = Clock::now() + 20s;
    while (rounds < 20 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    stop = true;
  });
  goro::run([&] {
    int prev = goro::maxprocs(2);
    goro::WaitGroup wg;
    for (int i = 0; i < 4; i++) {
      wg.add(1);
      goro::go([&] {
        spin_until(stop, moved);
        wg.done();
      });
    }
    while (!stop && rounds < 20) {
      goro::sleep_for(1ms);  // needs a P back each time
      rounds++;
    }
    stop = true;
    wg.wait();
    goro::maxprocs(prev);
  });
  watchdog.join();
  EXPECT_GE(rounds.load(), 20) << "main starved behind 4 spinning goroutines on 2 Ps";
  EXPECT_FALSE(moved.load()) << "a preempted goroutine resumed on another thread";
}

#endif  // !GORO_TSAN

TEST(Preemption, CooperativePreemptionAtSafePoints) {
  // A loop whose only runtime calls are non-blocking channel operations
  // (safe points) is preempted cooperatively, in every build.
  std::atomic<bool> stop{false};
  std::atomic<bool> main_progressed{false};
  std::thread watchdog([&] {
    auto deadline = Clock::now() + 20s;
    while (!main_progressed && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    stop = true;
  });
  goro::run([&] {
    int prev = goro::maxprocs(1);
    goro::Chan<int> c(1);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        c.try_send(1);
        c.try_recv();
      }
      wg.done();
    });
    for (int i = 0; i < 3; i++) goro::gosched();
    main_progressed = !stop.load();
    stop = true;
    wg.wait();
    goro::maxprocs(prev);
  });
  watchdog.join();
  EXPECT_TRUE(main_progressed.load()) << "main starved behind a goroutine looping over channel operations";
}

}  // namespace
