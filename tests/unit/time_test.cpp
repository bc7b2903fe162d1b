// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Timers: sleep_for, after and Timer, after Go's time/sleep_test.go
// (TestSleep, TestAfter, TestAfterStop, TestReset, TestTimerStopStress'
// expectations) and proc_test.go's TestTimerFairness{,2}: a timer fires
// even while other goroutines keep every P busy with channel traffic.
//
// Durations here are lower bounds, which the runtime must honour exactly,
// and generous upper bounds, which a loaded 2-core CI machine must still
// meet: the upper bounds catch a timer that never fires, not a slow one.
// That all goroutines asleep on timers is not a deadlock is checked in a
// child process, in crash_blocking_test.cpp.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace {

using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A timer must fire within this much of its due time even on a loaded
// machine; far beyond any sysmon or scheduling delay.
constexpr Clock::duration kLateness = 1s;



double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---------------------------------------------------------------------------
// sleep_for

TEST(Sleep, SleepsAtLeastTheDuration) {
  goro::run([] {
    for (auto d : {0ms, 1ms, 5ms, 20ms}) {
      const auto start = Clock::now();
      goro::sleep_for(d);
      const auto took = Clock::now() - start;
      EXPECT_GE(took, d) << "sleep_for(" << ms(d) << "ms) returned after " << ms(took) << "ms";
      EXPECT_LT(took, d + kLateness) << "sleep_for(" << ms(d) << "ms) took " << ms(took) << "ms";
    }
    // Negative durations return at once, like time.Sleep.
    const auto start = Clock::now();
    goro::sleep_for(-5ms);
    EXPECT_LT(Clock::now() - start, kLateness);
  });
}

TEST(Sleep, OutsideAGoroutineSleepsTheThread) {
  const auto start = Clock::now();
  goro::sleep_for(5ms);
  EXPECT_GE(Clock::now() - start, 5ms);
}

// A sleeping goroutine does not hold its P: with one P, another goroutine
// runs (and finishes) while the first sleeps.
TEST(Sleep, SleepingGoroutineFreesItsP) {
  goro::run([] {
    const int prev = goro::maxprocs(1);
    std::atomic<bool> sleeper_done{false};
    std::atomic<bool> other_ran_while_sleeping{false};
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
      goro::sleep_for(50ms);
      sleeper_done.store(true);
      wg.done();
    });
    goro::go([&] {
      goro::gosched();  // let the sleeper go to sleep
      other_ran_while_sleeping.store(!sleeper_done.load());
      wg.done();
    });
    wg.wait();
    goro::maxprocs(prev);
    EXPECT_TRUE(other_ran_while_sleeping.load())
        << "with one P, a goroutine could not run while another slept: sleep_for held the P";
    expect_only_main_left();
  });
}

// Many goroutines sleeping different durations all wake, each no earlier
// than its duration, and by and large in order of their durations.
TEST(Sleep, ManySleepersAllWakeRoughlyInOrder) {
  goro::run([] {
    constexpr int kSleepers = 100;
    constexpr int kGroups = 5;
    constexpr auto kStep = 20ms;  // group g sleeps g * kStep
    std::atomic<int> too_early{0};
    std::vector<Clock::duration> woke(kSleepers);
    goro::WaitGroup wg;
    wg.add(kSleepers);
    const auto start = Clock::now();
    for (int i = 0; i < kSleepers; i++) {
      goro::go([i, start, kStep, &woke, &too_early, &wg] {
        const auto d = (i % kGroups) * kStep;
        goro::sleep_for(d);
        woke[i] = Clock::now() - start;
        if (woke[i] < d) too_early.fetch_add(1);
        wg.done();
      });
    }
    wg.wait();  // all wake, or the test times out here
    EXPECT_EQ(too_early.load(), 0) << "sleepers woke before their duration had passed";
    // Mean wake time per group rises with the group's duration.
    double mean[kGroups] = {};
    for (int i = 0; i < kSleepers; i++) mean[i % kGroups] += ms(woke[i]) / (kSleepers / kGroups);
    for (int g = 1; g < kGroups; g++) {
      EXPECT_LT(mean[g - 1], mean[g]) << "sleepers of " << ms(g * kStep) << "ms woke on average at "
                                      << mean[g] << "ms, before those of " << ms((g - 1) * kStep)
                                      << "ms (" << mean[g - 1] << "ms)";
    }
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// after

TEST(After, DeliversTheTimeOnceTheDurationHasPassed) {
  goro::run([] {
    const auto start = Clock::now();
    auto c = goro::after(10ms);
    auto t = c.recv();
    const auto took = Clock::now() - start;
    ASSERT_TRUE(t.has_value()) << "after's channel was closed instead of receiving a time";
    EXPECT_GE(*t, start + 10ms) << "after(10ms) sent a time before 10ms had passed";
    EXPECT_GE(took, 10ms);
    EXPECT_LT(took, 10ms + kLateness);
    EXPECT_LE(*t, Clock::now());
    EXPECT_EQ(c.len(), 0u) << "after sends exactly one value";
    EXPECT_EQ(c.cap(), 1u) << "after's channel is buffered (cap 1), like Go's";
  });
}

TEST(After, InSelectActsAsATimeout) {
  goro::run([] {
    goro::Chan<int> never;
    const auto start = Clock::now();
    int taken = goro::select(goro::on_recv(never), goro::on_recv(goro::after(15ms)));
    const auto took = Clock::now() - start;
    EXPECT_EQ(taken, 1);
    EXPECT_GE(took, 15ms);
    EXPECT_LT(took, 15ms + kLateness);
  });
}

// TestTimerFairness: two goroutines keep a channel busy through selects,
// while main selects between that channel and a 20 ms timer; the timer
// case must still be chosen, soon after it fires.
TEST(After, TimerFiresWhileGoroutinesHammerAChannel) {
  goro::run([] {
    goro::Chan<bool> done;
    goro::Chan<bool> c;
    for (int i = 0; i < 2; i++) {
      goro::go([done, c]() mutable {
        for (bool stop = false; !stop;) {
          goro::select(goro::on_send(c, true), goro::on_recv(done, [&] { stop = true; }));
        }
      });
    }
    const auto start = Clock::now();
    auto timer = goro::after(20ms);
    for (bool fired = false; !fired;) {
      goro::select(goro::on_recv(c), goro::on_recv(timer, [&] { fired = true; }));
      ASSERT_LT(Clock::now() - start, 20ms + kLateness)
          << "the 20ms timer had not been chosen after " << ms(Clock::now() - start) << "ms";
    }
    done.close();
    expect_only_main_left();
  });
}

// TestTimerFairness2: the same with a system call in every round, and each
// hammering goroutine waiting for its own timer.
TEST(After, TimerFiresWhileGoroutinesHammerAChannelWithSyscalls) {
  goro::run([] {
    goro::Chan<bool> done;
    goro::Chan<bool> c;
    std::atomic<bool> too_late{false};
    for (int i = 0; i < 2; i++) {
      goro::go([done, c, &too_late]() mutable {
        const auto start = Clock::now();
        auto timer = goro::after(20ms);
        for (bool fired = false; !fired;) {
          goro::syscall([] { return ::syscall(SYS_getppid); });
          goro::select(goro::on_send(c, true), goro::on_recv(c), goro::on_recv(timer, [&] { fired = true; }));
          if (Clock::now() - start > 20ms + kLateness) too_late.store(true);
        }
        done.send(true);
      });
    }
    done.recv();
    done.recv();
    EXPECT_FALSE(too_late.load()) << "a 20ms timer was chosen more than " << ms(kLateness)
                                  << "ms late";
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// Timer

TEST(Timer, FiresOnceOnItsChannel) {
  goro::run([] {
    const auto start = Clock::now();
    goro::Timer t(5ms);
    auto v = t.chan().recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, start + 5ms);
    goro::sleep_for(10ms);
    EXPECT_FALSE(t.chan().try_recv().has_value()) << "a timer sends once";
  });
}

// TestAfterStop: stop before the timer fires returns true, and nothing
// arrives on its channel afterwards.
TEST(Timer, StopBeforeFiringReturnsTrueAndNothingArrives) {
  goro::run([] {
    // 200 ms: the stop must come before the timer is due even when a
    // loaded host stalls this thread under TSan (20 ms did not always).
    goro::Timer t(200ms);
    EXPECT_TRUE(t.stop()) << "stop of an active timer returns true";
    EXPECT_FALSE(t.stop()) << "stop of a stopped timer returns false";
    int taken = goro::select(goro::on_recv(t.chan()), goro::on_recv(goro::after(400ms)));
    EXPECT_EQ(taken, 1) << "a stopped timer sent on its channel";
    EXPECT_EQ(t.chan().len(), 0u);
  });
}

TEST(Timer, StopAfterFiringReturnsFalse) {
  goro::run([] {
    goro::Timer t(1ms);
    ASSERT_TRUE(t.chan().recv().has_value());
    EXPECT_FALSE(t.stop()) << "stop of an expired (and drained) timer returns false";

    // Expired but not drained: stop returns false and the value stays
    // buffered (Go 1.21's channel semantics).
    goro::Timer u(1ms);
    goro::sleep_for(20ms);
    EXPECT_FALSE(u.stop()) << "stop of an expired timer returns false";
    EXPECT_TRUE(u.chan().try_recv().has_value()) << "the value sent before stop is still there";
  });
}

// TestReset: reset of a stopped or expired timer re-arms it with the new
// duration and returns false.
TEST(Timer, ResetRearmsAStoppedOrExpiredTimer) {
  goro::run([] {
    goro::Timer t(1h);
    ASSERT_TRUE(t.stop());
    auto start = Clock::now();
    EXPECT_FALSE(t.reset(10ms)) << "reset of a stopped timer returns false";
    auto v = t.chan().recv();
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, start + 10ms) << "the reset timer fired before its new duration";
    EXPECT_LT(Clock::now() - start, 10ms + kLateness);

    start = Clock::now();
    EXPECT_FALSE(t.reset(10ms)) << "reset of an expired timer returns false";
    v = t.chan().recv();
    ASSERT_TRUE(v.has_value()) << "an expired timer fires again after reset";
    EXPECT_GE(*v, start + 10ms);
  });
}

// Stopping and resetting many timers from many goroutines at once (Go's
// TestTimerStopStress, TestReset's shape) loses and duplicates no sends.
TEST(Timer, ManyGoroutinesStopAndResetTheirTimers) {
  goro::run([] {
    constexpr int kGoroutines = 20;
    std::atomic<int> wrong{0};
    goro::WaitGroup wg;
    wg.add(kGoroutines);
    for (int i = 0; i < kGoroutines; i++) {
      goro::go([&] {
        for (int round = 0; round < 10; round++) {
          goro::Timer t(1h);
          if (!t.stop()) wrong.fetch_add(1);
          t.reset(1ms);
          if (!t.chan().recv().has_value()) wrong.fetch_add(1);
          if (t.stop()) wrong.fetch_add(1);
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(wrong.load(), 0) << "stop/reset results or sends were wrong";
    expect_only_main_left();
  });
}

// A Timer destroyed while still pending is removed from the timer heap: it
// never fires into freed memory (the ASan preset would catch that).
TEST(Timer, DestroyedWhilePendingNeverFires) {
  goro::run([] {
    for (int i = 0; i < 100; i++) {
      goro::Timer t(std::chrono::microseconds(i * 50));
    }
    goro::sleep_for(20ms);  // all of them would have fired by now
  });
}

// ---------------------------------------------------------------------------
// Durations too long to represent as a time: Go's when() saturates them to
// "never"; nanotime() + d must not overflow into the past and fire at once.

constexpr auto kForever = std::chrono::nanoseconds::max();
// Overflows nanotime() + d although d itself is representable.
constexpr auto kAlmostForever = std::chrono::nanoseconds::max() - std::chrono::nanoseconds(1000);

TEST(Sleep, HugeDurationsNeverWake) {
  goro::run([] {
    // The sleepers are abandoned, still asleep, when run returns: they own
    // what they touch.
    auto woke = std::make_shared<std::atomic<int>>(0);
    goro::go([woke] {
      goro::sleep_for(kForever);
      woke->fetch_add(1);
    });
    goro::go([woke] {
      goro::sleep_for(kAlmostForever);
      woke->fetch_add(1);
    });
    goro::go([woke] {
      goro::sleep_for(std::chrono::hours::max());  // saturated before the conversion
      woke->fetch_add(1);
    });
    goro::go([woke] {
      goro::sleep_for(std::chrono::duration<double>(1e300));
      woke->fetch_add(1);
    });
    goro::sleep_for(100ms);
    EXPECT_EQ(woke->load(), 0) << "a sleep of a huge duration returned";
  });
}

TEST(After, HugeDurationNeverFires) {
  goro::run([] {
    auto a = goro::after(kForever);
    auto b = goro::after(kAlmostForever);
    int taken = goro::select(goro::on_recv(a), goro::on_recv(b), goro::on_recv(goro::after(100ms)));
    EXPECT_EQ(taken, 2) << "after(huge) fired";
  });
}

TEST(Timer, HugeDurationNeverFiresAndStaysActive) {
  goro::run([] {
    goro::Timer t(kForever), u(kAlmostForever);
    goro::sleep_for(50ms);
    EXPECT_FALSE(t.chan().try_recv().has_value()) << "Timer(nanoseconds::max()) fired";
    EXPECT_FALSE(u.chan().try_recv().has_value()) << "Timer(max - 1us) fired";
    EXPECT_TRUE(t.stop()) << "a timer due never is still active";
    EXPECT_TRUE(u.stop()) << "a timer due never is still active";
    EXPECT_FALSE(t.reset(kForever));
    EXPECT_FALSE(u.reset(kAlmostForever));
    goro::sleep_for(50ms);
    EXPECT_FALSE(t.chan().try_recv().has_value()) << "reset(nanoseconds::max()) fired";
    EXPECT_FALSE(u.chan().try_recv().has_value()) << "reset(max - 1us) fired";
    EXPECT_TRUE(t.stop());
    EXPECT_TRUE(u.stop());
  });
}

}  // namespace
