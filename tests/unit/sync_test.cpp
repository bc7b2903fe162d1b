// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// WaitGroup and Mutex: the behaviour of Go's sync.WaitGroup and sync.Mutex
// that programs rely on, with goroutines parked (not threads blocked) while
// they wait. Misuse (negative counter, unlock of unlocked) ends the process
// and is tested through goro_testprog in crash_test.cpp.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

namespace {

using goro_test::sleep_cooperatively;
using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using goro_test::ScopedMaxprocs;


// ---------------------------------------------------------------------------
// WaitGroup

TEST(WaitGroup, WaitWithZeroCounterReturnsImmediately) {
  goro::run([] {
    goro::WaitGroup wg;
    wg.wait();
    wg.add(2);
    wg.add(-2);
    wg.wait();
  });
}

TEST(WaitGroup, WaitReturnsOnlyAfterEveryDone) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int N = 64;
    goro::WaitGroup wg;
    std::atomic<int> finished{0};
    wg.add(N);
    for (int i = 0; i < N; i++) {
      goro::go([&wg, &finished] {
        goro::gosched();
        finished.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(finished.load(), N) << "wait returned before every goroutine called done";
    expect_only_main_left();
  });
}

// Go's TestWaitGroup: two groups used alternately, many rounds; each
// round's waiters are released by that round's dones and no earlier.
TEST(WaitGroup, CanBeReusedRoundAfterRound) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int kRounds = 100;
    constexpr int N = 16;
    goro::WaitGroup wg1;
    goro::WaitGroup wg2;
    for (int round = 0; round < kRounds; round++) {
      // N goroutines each: wg1.done(), then wait on wg2.
      std::atomic<int> passed{0};
      wg1.add(N);
      wg2.add(1);
      for (int i = 0; i < N; i++) {
        goro::go([&wg1, &wg2, &passed] {
          wg1.done();
          wg2.wait();
          passed.fetch_add(1);
        });
      }
      wg1.wait();
      sleep_cooperatively(100us);
      ASSERT_EQ(passed.load(), 0) << "round " << round << ": wg2.wait returned with counter 1";
      wg2.done();
      ASSERT_TRUE(eventually([&] { return passed.load() == N; }))
          << "round " << round << ": only " << passed.load() << "/" << N
          << " waiters released by wg2.done";
      // Every waiter has returned from wait; let them exit before the next
      // round's wg1/wg2 reuse (and before `passed` leaves scope).
      ASSERT_TRUE(eventually([] { return goro::num_goroutine() == 1; })) << "round " << round;
    }
  });
}

TEST(WaitGroup, ReleasesEveryWaiter) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    constexpr int kWaiters = 32;
    goro::WaitGroup gate;
    goro::WaitGroup released;
    gate.add(1);
    released.add(kWaiters);
    for (int i = 0; i < kWaiters; i++) {
      goro::go([&gate, &released] {
        gate.wait();
        released.done();
      });
    }
    sleep_cooperatively(2ms);
    gate.done();
    released.wait();
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// Mutex

// 8 goroutines increment an unprotected-by-anything-else counter 10,000
// times each under the Mutex: no increment is lost. (Under TSan this also
// checks that unlock happens-before the next lock.)
TEST(Mutex, SerialisesIncrementsFromManyGoroutines) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int kGoroutines = 8;
    constexpr int kIncrements = 10000;
    goro::Mutex mu;
    long counter = 0;
    goro::WaitGroup wg;
    wg.add(kGoroutines);
    for (int g = 0; g < kGoroutines; g++) {
      goro::go([&] {
        for (int i = 0; i < kIncrements; i++) {
          std::lock_guard<goro::Mutex> lock(mu);
          counter++;
          if (i % 1000 == 0) goro::gosched();  // hold the lock across a reschedule
        }
        wg.done();
      });
    }
    wg.wait();
    {
      std::lock_guard<goro::Mutex> lock(mu);
      EXPECT_EQ(counter, static_cast<long>(kGoroutines) * kIncrements) << "increments were lost";
    }
    expect_only_main_left();
  });
}

TEST(Mutex, TryLockFailsWhileHeldAndSucceedsWhenFree) {
  goro::run([] {
    goro::Mutex mu;
    EXPECT_TRUE(mu.try_lock()) << "try_lock of a free mutex";
    EXPECT_FALSE(mu.try_lock()) << "try_lock of a held mutex (Go's Mutex is not reentrant)";

    goro::Chan<bool> result;
    goro::go([&mu, result]() mutable { result.send(mu.try_lock()); });
    EXPECT_EQ(result.recv(), std::optional<bool>(false)) << "another goroutine took a held mutex";

    mu.unlock();
    goro::go([&mu, result]() mutable {
      bool got = mu.try_lock();
      if (got) mu.unlock();
      result.send(got);
    });
    EXPECT_EQ(result.recv(), std::optional<bool>(true)) << "try_lock of a released mutex";
    expect_only_main_left();
  });
}

// A goroutine blocked in lock parks until the holder unlocks, and the holder
// may be a different goroutine from the one that unlocks (as in Go).
TEST(Mutex, LockBlocksUntilUnlock) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    goro::Mutex mu;
    mu.lock();
    std::atomic<bool> acquired{false};
    goro::Chan<bool> done;
    goro::go([&mu, &acquired, done]() mutable {
      mu.lock();
      acquired.store(true);
      mu.unlock();
      done.send(true);
    });
    sleep_cooperatively(5ms);
    EXPECT_FALSE(acquired.load()) << "lock returned while another goroutine held the mutex";
    goro::Chan<bool> unlocked;
    goro::go([&mu, unlocked]() mutable {
      mu.unlock();  // unlocking from another goroutine is allowed
      unlocked.send(true);
    });
    unlocked.recv();
    EXPECT_EQ(done.recv(), std::optional<bool>(true));
    EXPECT_TRUE(acquired.load());
    expect_only_main_left();
  });
}

// Many goroutines contending on one P and on several: the slow path (parking
// on the semaphore, starvation mode after 1 ms of waiting) makes progress.
TEST(Mutex, HeavyContentionMakesProgress) {
  for (int procs : {1, 4}) {
    goro::run([procs] {
      ScopedMaxprocs scoped(procs);
      constexpr int kGoroutines = 32;
      constexpr int kIncrements = 2000;
      goro::Mutex mu;
      long counter = 0;
      goro::WaitGroup wg;
      wg.add(kGoroutines);
      for (int g = 0; g < kGoroutines; g++) {
        goro::go([&] {
          for (int i = 0; i < kIncrements; i++) {
            mu.lock();
            counter++;
            if (i % 7 == 0) goro::gosched();
            mu.unlock();
          }
          wg.done();
        });
      }
      wg.wait();
      mu.lock();
      EXPECT_EQ(counter, static_cast<long>(kGoroutines) * kIncrements) << "maxprocs=" << procs;
      mu.unlock();
      expect_only_main_left();
    });
  }
}

}  // namespace
