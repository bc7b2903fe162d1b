// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// lock_os_thread / unlock_os_thread: Go's TestLockOSThreadNesting,
// TestBlockLocked (proc_test.go) and TestLockOSThreadExit's expectation
// transcribed, plus the wiring contract goro.h states:
//   - a locked goroutine always runs on the same OS thread, whatever it
//     blocks on (gosched, channels, timers, system calls);
//   - no other goroutine runs on that thread while it is locked;
//   - lock/unlock nest (Go's lockedExt count); unlock when not locked is a
//     no-op;
//   - a goroutine that exits while locked takes its thread with it, and the
//     program goes on.
// Deadlocks with a locked goroutine (Go's TestLockedDeadlock{,2}) end the
// process and are in crash_blocking_test.cpp.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include "export_test.h"

namespace {

using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using goro_test::ScopedMaxprocs;


std::string counts_str(const goro::testexport::LockedCounts& c) {
  return "external=" + std::to_string(c.external) + " internal=" + std::to_string(c.internal) +
         " locked=" + (c.locked ? "true" : "false");
}

bool thread_exists(pid_t tid) {
  struct stat st;
  return stat(("/proc/self/task/" + std::to_string(tid)).c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------

// TestLockOSThreadNesting: each lock_os_thread adds one to the external
// count, each unlock_os_thread takes one off; the G stays wired until the
// count is back at zero.
TEST(LockOSThread, LockAndUnlockNest) {
  goro::run([] {
    goro::Chan<bool> done;
    goro::go([done]() mutable {
      using goro::testexport::locked_counts;
      auto c = locked_counts();
      EXPECT_TRUE(c.external == 0 && c.internal == 0 && !c.locked) << "fresh G: " << counts_str(c);
      goro::lock_os_thread();
      c = locked_counts();
      EXPECT_TRUE(c.external == 1 && c.internal == 0 && c.locked) << "after one lock: " << counts_str(c);
      goro::lock_os_thread();
      c = locked_counts();
      EXPECT_TRUE(c.external == 2 && c.internal == 0 && c.locked) << "after two locks: " << counts_str(c);
      goro::unlock_os_thread();
      c = locked_counts();
      EXPECT_TRUE(c.external == 1 && c.internal == 0 && c.locked)
          << "after two locks and one unlock (still wired): " << counts_str(c);
      goro::unlock_os_thread();
      c = locked_counts();
      EXPECT_TRUE(c.external == 0 && c.internal == 0 && !c.locked)
          << "after as many unlocks as locks: " << counts_str(c);
      done.send(true);
    });
    done.recv();
    expect_only_main_left();
  });
}

TEST(LockOSThread, UnlockWithoutLockIsANoOp) {
  goro::run([] {
    goro::unlock_os_thread();
    goro::unlock_os_thread();
    auto c = goro::testexport::locked_counts();
    EXPECT_TRUE(c.external == 0 && !c.locked) << counts_str(c);
    goro::lock_os_thread();
    c = goro::testexport::locked_counts();
    EXPECT_TRUE(c.external == 1 && c.locked) << "extra unlocks must not make the count negative: "
                                             << counts_str(c);
    goro::unlock_os_thread();
  });
}

// A locked goroutine comes back to its own thread after every way of
// giving up the P.
TEST(LockOSThread, LockedGoroutineAlwaysRunsOnItsThread) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    goro::Chan<int> c;
    goro::Chan<bool> done;
    std::atomic<int> moved{0};
    std::atomic<int> checks{0};
    goro::go([c, done]() mutable {
      for (int i = 0; i < 100; i++) c.send(i);
      done.send(true);
    });
    goro::go([c, done, &moved, &checks]() mutable {
      goro::lock_os_thread();
      const pid_t tid = gettid();
      goro::Chan<int> never;  // a select case that is never ready
      auto check = [&](const char*) {
        checks.fetch_add(1);
        if (gettid() != tid) moved.fetch_add(1);
      };
      for (int i = 0; i < 50; i++) {
        goro::gosched();
        check("gosched");
        c.recv();
        check("chan recv");
        goro::select(goro::on_recv(c), goro::on_recv(never));
        check("select");
        if (i % 10 == 0) {
          goro::sleep_for(1ms);
          check("sleep_for");
          goro::syscall([] { usleep(100); });
          check("syscall");
        }
      }
      goro::unlock_os_thread();
      done.send(true);
    });
    done.recv();
    done.recv();
    EXPECT_GT(checks.load(), 0);
    EXPECT_EQ(moved.load(), 0) << "a locked goroutine resumed on another thread " << moved.load()
                               << " times out of " << checks.load();
    expect_only_main_left();
  });
}

// While one goroutine is locked to a thread and keeps blocking (handing
// its P back each time), the other goroutines never run on that thread.
TEST(LockOSThread, NoOtherGoroutineRunsOnALockedThread) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    constexpr int kOthers = 8;
    std::atomic<pid_t> locked_tid{0};  // nonzero only while the locked G is locked
    std::atomic<bool> stop{false};
    std::atomic<int> intruders{0};
    std::atomic<int> samples{0};
    goro::WaitGroup wg;
    wg.add(kOthers + 1);
    goro::go([&] {
      goro::lock_os_thread();
      locked_tid.store(gettid());
      for (int i = 0; i < 40; i++) {
        if (i % 2) {
          goro::sleep_for(1ms);
        } else {
          goro::gosched();
        }
      }
      locked_tid.store(0);
      goro::unlock_os_thread();
      stop.store(true);
      wg.done();
    });
    for (int k = 0; k < kOthers; k++) {
      goro::go([&] {
        while (!stop.load()) {
          if (gettid() == locked_tid.load()) intruders.fetch_add(1);
          samples.fetch_add(1);
          goro::gosched();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_GT(samples.load(), 0);
    EXPECT_EQ(intruders.load(), 0) << "another goroutine ran on the locked goroutine's thread "
                                   << intruders.load() << " times (of " << samples.load()
                                   << " samples)";
    expect_only_main_left();
  });
}

// TestLockOSThreadExit: a goroutine that exits while locked ends its
// thread; the program goes on, with new goroutines and all its Ps.
TEST(LockOSThread, GoroutineExitingWhileLockedEndsItsThread) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    for (int nest : {1, 2}) {
      goro::Chan<pid_t> tid_chan(1);
      goro::go([tid_chan, nest]() mutable {
        for (int i = 0; i < nest; i++) goro::lock_os_thread();
        tid_chan.send(gettid());
        // Exits while locked.
      });
      const pid_t tid = *tid_chan.recv();
      EXPECT_TRUE(eventually([&] {
        goro::sleep_for(1ms);
        return !thread_exists(tid);
      })) << "thread " << tid << " of a goroutine that exited locked (nesting " << nest
          << ") is still alive";
      // The program goes on: goroutines run on both Ps.
      goro::WaitGroup wg;
      std::atomic<int> ran{0};
      wg.add(10);
      for (int i = 0; i < 10; i++) {
        goro::go([&] {
          ran.fetch_add(1);
          goro::gosched();
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(ran.load(), 10);
      EXPECT_EQ(goro::testexport::sched_counters().gomaxprocs, 2);
    }
    expect_only_main_left();
  });
}

// A goroutine that unlocks before exiting keeps its thread for reuse.
TEST(LockOSThread, GoroutineExitingUnlockedLeavesItsThreadAlive) {
  goro::run([] {
    goro::Chan<pid_t> tid_chan(1);
    goro::go([tid_chan]() mutable {
      goro::lock_os_thread();
      tid_chan.send(gettid());
      goro::unlock_os_thread();
    });
    const pid_t tid = *tid_chan.recv();
    expect_only_main_left();
    goro::sleep_for(20ms);
    EXPECT_TRUE(thread_exists(tid)) << "an unlocked goroutine's exit ended thread " << tid;
  });
}

// TestBlockLocked: a locked goroutine sends on an unbuffered channel to
// main N times; each send blocks until main receives.
TEST(LockOSThread, LockedGoroutineBlocksAndResumesOnChannel) {
  goro::run([] {
    constexpr int N = 10;
    goro::Chan<bool> c;
    goro::go([c]() mutable {
      goro::lock_os_thread();
      for (int i = 0; i < N; i++) c.send(true);
      goro::unlock_os_thread();
    });
    for (int i = 0; i < N; i++) {
      EXPECT_EQ(c.recv(), std::optional<bool>(true)) << "receive " << i;
    }
    expect_only_main_left();
  });
}

// The main goroutine can be locked too; it still talks to others.
TEST(LockOSThread, LockedMainGoroutineCommunicates) {
  goro::run([] {
    goro::lock_os_thread();
    const pid_t tid = gettid();
    goro::Chan<int> c;
    for (int i = 0; i < 20; i++) {
      goro::go([c, i]() mutable { c.send(i); });
      EXPECT_TRUE(c.recv().has_value());
      EXPECT_EQ(gettid(), tid) << "locked main moved threads";
    }
    goro::sleep_for(1ms);
    EXPECT_EQ(gettid(), tid) << "locked main moved threads across sleep_for";
    goro::unlock_os_thread();
    expect_only_main_left();
  });
}

}  // namespace
