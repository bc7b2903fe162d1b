// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// RWMutex, Once and Cond: the expectations of Go's sync tests
// (rwmutex_test.go, once_test.go, cond_test.go) transcribed to goro, with
// goroutines parked (not threads blocked) while they wait. Misuse of an
// RWMutex ends the process with Go's message; those cases run as death
// tests (a fresh copy of this binary, outside any goro::run).

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Go's tests run at full size; under the sanitizers (10-50x slower here)
// the hammer and stealing loops run shorter.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kScale = 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int kScale = 4;
#else
constexpr int kScale = 1;
#endif
#else
constexpr int kScale = 1;
#endif

using goro_test::ScopedMaxprocs;


// A few hundred cycles of work inside a critical section (Go's `for i :=
// 0; i < 100; i++ {}`), opaque to the optimiser.
void busy() {
  for (int i = 0; i < 100; i++) __asm__ volatile("" ::: "memory");
}

// ---------------------------------------------------------------------------
// RWMutex (rwmutex_test.go)

static_assert(!std::is_copy_constructible_v<goro::RWMutex>, "an RWMutex must not be copied");

TEST(RWMutex, TryLockAndTryRLockFollowTheLockState) {
  goro::run([] {
    goro::RWMutex m;
    m.lock();
    EXPECT_FALSE(m.try_lock()) << "try_lock succeeded with the mutex locked";
    EXPECT_FALSE(m.try_lock_shared()) << "try_lock_shared succeeded with the mutex locked";
    m.unlock();

    EXPECT_TRUE(m.try_lock()) << "try_lock failed with the mutex unlocked";
    m.unlock();

    EXPECT_TRUE(m.try_rlock()) << "try_rlock failed with the mutex unlocked";
    EXPECT_TRUE(m.try_rlock()) << "try_rlock failed with the mutex read-locked";
    EXPECT_FALSE(m.try_lock()) << "try_lock succeeded with the mutex read-locked";
    m.runlock();
    m.runlock();
    EXPECT_TRUE(m.try_lock()) << "try_lock failed after the last reader left";
    m.unlock();
  });
}

// doTestParallelReaders: every reader takes the read lock and reports in;
// only once all of them hold it at the same time are they let go.
void parallel_readers(int numReaders, int procs) {
  ScopedMaxprocs p(procs);
  goro::RWMutex m;
  goro::Chan<bool> clocked, cunlock, cdone;
  for (int i = 0; i < numReaders; i++) {
    goro::go([&] {
      m.rlock();
      clocked.send(true);
      cunlock.recv();
      m.runlock();
      cdone.send(true);
    });
  }
  // Would deadlock (the runtime reports it) if readers excluded each other.
  for (int i = 0; i < numReaders; i++) clocked.recv();
  for (int i = 0; i < numReaders; i++) cunlock.send(true);
  for (int i = 0; i < numReaders; i++) cdone.recv();
}

TEST(RWMutex, ReadersHoldTheLockTogether) {
  goro::run([] {
    parallel_readers(1, 4);
    parallel_readers(3, 4);
    parallel_readers(4, 2);
    expect_only_main_left();
  });
}

// HammerRWMutex: readers add 1 to `activity`, writers add 10000, each while
// holding its lock. A reader must see 1..9999 (no writer inside), a writer
// exactly 10000 (nobody else inside).
void hammer(int procs, int numReaders, int iterations) {
  ScopedMaxprocs p(procs);
  goro::RWMutex rwm;
  std::atomic<std::int32_t> activity{0};
  std::atomic<int> badReader{0}, badWriter{0};
  goro::Chan<bool> cdone;
  auto reader = [&] {
    for (int i = 0; i < iterations; i++) {
      rwm.rlock();
      std::int32_t n = activity.fetch_add(1) + 1;
      if (n < 1 || n >= 10000) badReader.fetch_add(1);
      busy();
      activity.fetch_sub(1);
      rwm.runlock();
    }
    cdone.send(true);
  };
  auto writer = [&] {
    for (int i = 0; i < iterations; i++) {
      rwm.lock();
      std::int32_t n = activity.fetch_add(10000) + 10000;
      if (n != 10000) badWriter.fetch_add(1);
      busy();
      activity.fetch_sub(10000);
      rwm.unlock();
    }
    cdone.send(true);
  };
  goro::go(writer);
  int i = 0;
  for (; i < numReaders / 2; i++) goro::go(reader);
  goro::go(writer);
  for (; i < numReaders; i++) goro::go(reader);
  for (int j = 0; j < 2 + numReaders; j++) cdone.recv();
  EXPECT_EQ(badReader.load(), 0) << "a reader ran alongside a writer (procs=" << procs << " readers=" << numReaders << ")";
  EXPECT_EQ(badWriter.load(), 0) << "a writer ran alongside someone (procs=" << procs << " readers=" << numReaders << ")";
}

TEST(RWMutex, WritersExcludeReadersAndWriters) {
  goro::run([] {
    const int n = 1000 / kScale;
    const int configs[][2] = {{1, 1}, {1, 3}, {1, 10}, {4, 1}, {4, 3}, {4, 10}, {10, 1}, {10, 3}, {10, 10}, {10, 5}};
    for (const auto& c : configs) hammer(c[0], c[1], n);
    expect_only_main_left();
  });
}

TEST(RWMutex, RLockerReadLocksAndRespectsTheWriteLock) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::RWMutex wl;
    goro::RWMutex::RLocker rl = wl.rlocker();
    goro::Chan<bool> wlocked(1), rlocked(1);
    constexpr int n = 10;
    goro::go([&] {
      for (int i = 0; i < n; i++) {
        rl.lock();
        rl.lock();
        rlocked.send(true);
        wl.lock();
        wlocked.send(true);
      }
    });
    for (int i = 0; i < n; i++) {
      rlocked.recv();
      rl.unlock();
      EXPECT_FALSE(wlocked.try_recv().has_value()) << "rlocker() didn't read-lock it";
      rl.unlock();
      wlocked.recv();
      EXPECT_FALSE(rlocked.try_recv().has_value()) << "rlocker() didn't respect the write lock";
      wl.unlock();  // taken by the other goroutine: locks are not owned
    }
    expect_only_main_left();
  });
}

TEST(RWMutex, PendingWriterGoesBeforeLaterReaders) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::RWMutex rw;
    std::vector<char> order;  // appended under rw: one writer or one reader at a time
    goro::WaitGroup wg;
    rw.rlock();
    wg.add(2);
    goro::go([&] {
      rw.lock();
      order.push_back('W');
      for (int i = 0; i < 10; i++) goro::gosched();  // give a reader every chance to barge in
      rw.unlock();
      wg.done();
    });
    // The writer has announced itself once new readers are refused.
    ASSERT_TRUE(eventually([&] {
      if (!rw.try_rlock()) return true;
      rw.runlock();
      return false;
    })) << "the writer never became pending";
    goro::go([&] {
      rw.rlock();
      order.push_back('R');
      rw.runlock();
      wg.done();
    });
    goro::sleep_for(10ms);  // let the late reader park behind the writer
    EXPECT_TRUE(order.empty()) << "someone got in while the first reader still held the lock";
    rw.runlock();
    wg.wait();
    EXPECT_EQ(std::string(order.begin(), order.end()), "WR")
        << "a reader arriving after a pending writer must wait for that writer";
  });
}

TEST(RWMutex, WorksWithStdUniqueLockAndSharedLock) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::RWMutex rw;
    int value = 0;
    std::atomic<int> mismatches{0};
    goro::WaitGroup wg;
    constexpr int kWriters = 4, kReaders = 8, kIters = 200;
    wg.add(kWriters + kReaders);
    for (int w = 0; w < kWriters; w++) {
      goro::go([&] {
        for (int i = 0; i < kIters; i++) {
          std::unique_lock lk(rw);
          value += 2;
        }
        wg.done();
      });
    }
    for (int r = 0; r < kReaders; r++) {
      goro::go([&] {
        for (int i = 0; i < kIters; i++) {
          std::shared_lock lk(rw);
          if (value % 2 != 0) mismatches.fetch_add(1);
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(value, 2 * kWriters * kIters) << "writes under unique_lock were lost";
    EXPECT_EQ(mismatches.load(), 0);
  });
}

// Misuse: Go's fatal errors, exit status 2. Each runs in a re-executed copy
// of this binary, so the forked child does not inherit runtime threads.
class RWMutexDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(RWMutexDeathTest, RUnlockOfUnlockedIsFatal) {
  EXPECT_EXIT(
      {
        goro::RWMutex rw;
        rw.runlock();
      },
      ::testing::ExitedWithCode(2), "fatal error: sync: RUnlock of unlocked RWMutex");
}

TEST_F(RWMutexDeathTest, RUnlockOfWriteLockedIsFatal) {
  EXPECT_EXIT(
      {
        goro::RWMutex rw;
        rw.lock();
        rw.runlock();
      },
      ::testing::ExitedWithCode(2), "fatal error: sync: RUnlock of unlocked RWMutex");
}

TEST_F(RWMutexDeathTest, UnlockOfUnlockedIsFatal) {
  EXPECT_EXIT(
      {
        goro::RWMutex rw;
        rw.unlock();
      },
      ::testing::ExitedWithCode(2), "fatal error: sync: Unlock of unlocked RWMutex");
}

TEST_F(RWMutexDeathTest, UnlockOfReadLockedIsFatal) {
  EXPECT_EXIT(
      {
        goro::RWMutex rw;
        rw.rlock();
        rw.unlock();
      },
      ::testing::ExitedWithCode(2), "fatal error: sync: Unlock of unlocked RWMutex");
}

// ---------------------------------------------------------------------------
// Once (once_test.go)

static_assert(!std::is_copy_constructible_v<goro::Once>, "a Once must not be copied");

TEST(Once, RunsFOnceAndEveryCallerSeesItsEffect) {
  goro::run([] {
    ScopedMaxprocs p(4);
    int o = 0;  // plain: Once itself must order the increment before every read
    goro::Once once;
    goro::Chan<bool> c;
    std::atomic<int> sawWrong{0};
    constexpr int N = 10;
    for (int i = 0; i < N; i++) {
      goro::go([&] {
        once.call([&] {
          // Yield inside f: losers must still wait for f to return.
          for (int k = 0; k < 5; k++) goro::gosched();
          o++;
        });
        if (o != 1) sawWrong.fetch_add(1);
        c.send(true);
      });
    }
    for (int i = 0; i < N; i++) c.recv();
    EXPECT_EQ(o, 1) << "once failed outside run";
    EXPECT_EQ(sawWrong.load(), 0) << "a call() returned before f's effect was visible";
    EXPECT_TRUE(once.done());
  });
}

TEST(Once, DoneOnlyAfterTheFirstCall) {
  goro::run([] {
    goro::Once once;
    EXPECT_FALSE(once.done());
    int calls = 0;
    auto f = [&] { calls++; };
    once.call(f);  // an lvalue callable
    EXPECT_TRUE(once.done());
    once.call(f);
    once.call([&] { calls += 100; });
    EXPECT_EQ(calls, 1) << "f ran again on a done Once";
  });
}

// TestOncePanic: an f that exits abnormally still counts as done.
TEST(Once, ThrowingFStillCountsAsDone) {
  goro::run([] {
    goro::Once once;
    bool threw = false;
    try {
      once.call([] { throw std::runtime_error("failed"); });
    } catch (const std::runtime_error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    EXPECT_TRUE(once.done());
    bool ran = false;
    once.call([&] { ran = true; });
    EXPECT_FALSE(ran) << "once.call called f again after it threw";
  });
}

// ---------------------------------------------------------------------------
// Cond (cond_test.go)

static_assert(!std::is_copy_constructible_v<goro::Cond>, "a Cond must not be copied");

TEST(Cond, SignalWakesOneWaiterAtATime) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::Mutex m;
    goro::Cond c(m);
    int n = 2;
    goro::Chan<bool> running(n), awake(n);
    for (int i = 0; i < n; i++) {
      goro::go([&] {
        m.lock();
        running.send(true);
        c.wait();
        awake.send(true);
        m.unlock();
      });
    }
    for (int i = 0; i < n; i++) running.recv();  // wait for everyone to run
    while (n > 0) {
      EXPECT_FALSE(awake.try_recv().has_value()) << "goroutine not asleep";
      m.lock();
      c.signal();
      m.unlock();
      awake.recv();  // deadlocks (reported by the runtime) if nobody wakes
      EXPECT_FALSE(awake.try_recv().has_value()) << "too many goroutines awake";
      n--;
    }
    c.signal();  // no waiter left: a no-op
    expect_only_main_left();
  });
}

// Each signal wakes the oldest waiter: goroutine i, having waited before
// goroutine i+1 started, is the one woken.
TEST(Cond, SignalWakesWaitersInArrivalOrder) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::Mutex m;
    goro::Cond c(m);
    constexpr int n = 100;
    goro::Chan<bool> running(n);
    goro::Chan<int> awake(n);
    for (int i = 0; i < n; i++) {
      goro::go([&, i] {
        m.lock();
        running.send(true);
        c.wait();
        awake.send(i);
        m.unlock();
      });
      if (i > 0) {
        int a = *awake.recv();
        EXPECT_EQ(a, i - 1) << "wrong goroutine woke up";
      }
      running.recv();
      m.lock();
      c.signal();
      m.unlock();
    }
    EXPECT_EQ(*awake.recv(), n - 1) << "wrong goroutine woke up";
    expect_only_main_left();
  });
}

TEST(Cond, BroadcastWakesEveryWaiterExactlyOnce) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::Mutex m;
    goro::Cond c(m);
    constexpr int n = 200;
    const int rounds = kScale == 1 ? n : n / (2 * kScale);  // Go: n rounds, 40000 wake-ups
    goro::Chan<int> running(n), awake(n);
    bool exit = false;  // guarded by m
    for (int i = 0; i < n; i++) {
      goro::go([&, g = i] {
        m.lock();
        while (!exit) {
          running.send(g);
          c.wait();
          awake.send(g);
        }
        m.unlock();
      });
    }
    for (int round = 0; round < rounds; round++) {
      for (int i = 0; i < n; i++) running.recv();  // deadlocks unless n are running
      if (round == rounds - 1) {
        m.lock();
        exit = true;
        m.unlock();
      }
      EXPECT_FALSE(awake.try_recv().has_value()) << "goroutine not asleep";
      m.lock();
      c.broadcast();
      m.unlock();
      std::vector<bool> seen(n);
      for (int i = 0; i < n; i++) {
        int g = *awake.recv();
        EXPECT_FALSE(seen[g]) << "goroutine " << g << " woke up twice";
        seen[g] = true;
      }
    }
    expect_only_main_left();
    EXPECT_FALSE(running.try_recv().has_value()) << "goroutine did not exit";
    c.broadcast();
  });
}

// TestRace: three goroutines pass x from 1 to 2 to 3 under the Cond's lock;
// a waiter always observes the value its waker set.
TEST(Cond, WaiterSeesTheStateItsWakerSet) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::Mutex m;
    goro::Cond c(m);
    int x = 0;  // guarded by m
    std::atomic<int> wrong{0};
    goro::Chan<bool> done;
    goro::go([&] {
      m.lock();
      x = 1;
      c.wait();
      if (x != 2) wrong.fetch_add(1);
      x = 3;
      c.signal();
      m.unlock();
      done.send(true);
    });
    goro::go([&] {
      m.lock();
      for (;;) {
        if (x == 1) {
          x = 2;
          c.signal();
          break;
        }
        m.unlock();
        goro::gosched();
        m.lock();
      }
      m.unlock();
      done.send(true);
    });
    goro::go([&] {
      m.lock();
      for (;;) {
        if (x == 2) {
          c.wait();
          if (x != 3) wrong.fetch_add(1);
          break;
        }
        if (x == 3) break;
        m.unlock();
        goro::gosched();
        m.lock();
      }
      m.unlock();
      done.send(true);
    });
    for (int i = 0; i < 3; i++) done.recv();
    EXPECT_EQ(wrong.load(), 0) << "a waiter woke to a state its waker did not set";
  });
}

// TestCondSignalStealing: a waiter that arrives while a broadcast is in
// flight may or may not be woken by it, but the waiter that was already
// parked must be.
TEST(Cond, BroadcastIsNotStolenByALateWaiter) {
  goro::run([] {
    ScopedMaxprocs p(4);
    const int iters = 1000 / kScale;
    for (int it = 0; it < iters; it++) {
      goro::Mutex m;
      goro::Cond cond(m);
      goro::Chan<bool> ch;
      goro::WaitGroup wg;  // every goroutine is gone before m and cond are
      wg.add(3);
      goro::go([&] {
        m.lock();
        ch.send(true);
        cond.wait();
        m.unlock();
        ch.send(true);
        wg.done();
      });
      ch.recv();
      m.lock();
      m.unlock();
      // The first waiter is now inside cond.wait(): we synchronised with it
      // and then took and released the lock it held.
      bool done = false;  // guarded by m
      goro::go([&] {
        cond.broadcast();
        wg.done();
      });
      goro::go([&] {
        m.lock();
        while (!done) cond.wait();
        m.unlock();
        wg.done();
      });
      // A Timer, not after(): it is stopped and freed when the iteration
      // ends (an after() channel outlives run() if it has not fired).
      goro::Timer timeout(2s);
      if (goro::select(goro::on_recv(ch), goro::on_recv(timeout.chan())) != 0) {
        ADD_FAILURE() << "the first waiter didn't get the broadcast (iteration " << it << ")";
        m.lock();
        done = true;
        m.unlock();
        cond.broadcast();
        ch.recv();  // the first waiter's exit, once the broadcast above reaches it
        wg.wait();
        return;
      }
      // Release the second waiter in case it missed the broadcast.
      m.lock();
      done = true;
      m.unlock();
      cond.broadcast();
      wg.wait();
    }
  });
}

// A signal with nobody waiting is not remembered for a later waiter.
TEST(Cond, SignalWithNoWaiterIsNotSaved) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::Mutex m;
    goro::Cond c(m);
    c.signal();
    c.broadcast();
    std::atomic<bool> woke{false};
    goro::Chan<bool> running(1);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      m.lock();
      running.send(true);
      c.wait();
      woke.store(true);
      m.unlock();
      wg.done();
    });
    running.recv();
    m.lock();  // the waiter is parked in c.wait() once we get m
    m.unlock();
    goro::sleep_for(10ms);
    EXPECT_FALSE(woke.load()) << "an earlier signal woke a later waiter";
    c.signal();
    wg.wait();
    EXPECT_TRUE(woke.load());
  });
}

// A Cond over an RWMutex's read side: waiters hold read locks, and the
// writer changes the condition under the write lock.
TEST(Cond, WorksOverAnRLocker) {
  goro::run([] {
    ScopedMaxprocs p(4);
    goro::RWMutex rw;
    goro::RWMutex::RLocker rl = rw.rlocker();
    goro::Cond c(rl);
    bool ready = false;  // written under rw's write lock, read under its read lock
    constexpr int n = 8;
    goro::Chan<bool> running(n);
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; i++) {
      goro::go([&] {
        rl.lock();
        running.send(true);
        while (!ready) c.wait();
        rl.unlock();
        wg.done();
      });
    }
    for (int i = 0; i < n; i++) running.recv();
    rw.lock();  // every reader has released its read lock inside c.wait()
    ready = true;
    rw.unlock();
    c.broadcast();
    wg.wait();
  });
}

}  // namespace
