// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// select: Go's select tests from chan_test.go (TestSelectFairness,
// TestNonblockSelectRace, TestSelfSelect, TestSelectStress,
// TestSelectDuplicateChannel, TestPseudoRandomSend) transcribed to
// goro::select, plus the select statement's contract as goro.h states it:
// a default case never blocks, a receive from a closed channel delivers an
// empty optional, the return value is the index of the case taken.
// Process-ending selects (send on a closed channel, select with no cases)
// are in crash_blocking_test.cpp.
//
// Go's select has nil channels, which are never ready; a Chan nobody else
// holds is never ready either, and stands in for nil where Go's tests
// switch a case off.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using goro_test::ScopedMaxprocs;

// Yield until pred() holds or `timeout` passes; returns pred().

// Goroutines hold channel handles; let them all exit before run returns.

// ---------------------------------------------------------------------------
// Go's tests

// TestSelectFairness: a select over four receive cases, two of them always
// ready, takes each ready case half of the time.
TEST(Select, ChoosesUniformlyAmongReadyCases) {
  goro::run([] {
    constexpr int kTrials = 10000;
    goro::Chan<std::uint8_t> c1(kTrials + 1);
    goro::Chan<std::uint8_t> c2(kTrials + 1);
    for (int i = 0; i < kTrials + 1; i++) {
      c1.send(1);
      c2.send(2);
    }
    goro::Chan<std::uint8_t> c3;  // never ready
    goro::Chan<std::uint8_t> c4;  // never ready
    goro::Chan<std::uint8_t> out;
    goro::Chan<bool> done;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([=, &wg]() mutable {
      for (;;) {
        std::uint8_t b = 0;
        auto take = [&b](std::optional<std::uint8_t> v) { b = v.value_or(0); };
        goro::select(goro::on_recv(c3, take), goro::on_recv(c4, take), goro::on_recv(c1, take),
                     goro::on_recv(c2, take));
        bool stop = false;
        goro::select(goro::on_send(out, b), goro::on_recv(done, [&stop] { stop = true; }));
        if (stop) break;
      }
      wg.done();
    });
    int cnt1 = 0;
    int cnt2 = 0;
    for (int i = 0; i < kTrials; i++) {
      auto b = out.recv();
      ASSERT_TRUE(b == 1 || b == 2) << "unexpected value " << int(b.value_or(0)) << " on out";
      (*b == 1 ? cnt1 : cnt2)++;
    }
    // With fair choice cnt1/kTrials is Binomial(n, 1/2)/n: sigma = 0.5/sqrt(n).
    const double r = double(cnt1) / kTrials;
    const double sigma = 0.5 / std::sqrt(double(kTrials));
    EXPECT_LE(std::abs(r - 0.5), 10 * sigma)
        << "unfair select: in " << kTrials << " trials, case c1 was taken " << cnt1
        << " times and case c2 " << cnt2 << " times";
    done.close();
    wg.wait();
    expect_only_main_left();
  });
}

// TestNonblockSelectRace: a non-blocking select sees the channels at one
// instant. c1 is full until after c2 has been filled, so at every instant
// one of them is ready and the default case must never be taken.
TEST(Select, NonBlockingSelectSeesASnapshot) {
  goro::run([] {
    constexpr int kIterations = 5000;
    goro::Chan<bool> done(1);
    for (int i = 0; i < kIterations; i++) {
      goro::Chan<int> c1(1);
      goro::Chan<int> c2(1);
      c1.send(1);
      goro::go([c1, c2, done]() mutable {
        int taken = goro::select(goro::on_recv(c1), goro::on_recv(c2), goro::on_default());
        done.send(taken != 2);
      });
      c2.send(1);
      goro::select(goro::on_recv(c1), goro::on_default());
      ASSERT_EQ(done.recv(), std::optional<bool>(true))
          << "iteration " << i << ": non-blocking select took default though a channel was ready";
    }
    expect_only_main_left();
  });
}

// TestSelfSelect: a goroutine whose select both sends and receives on the
// same unbuffered channel never hands its value to itself. Two goroutines,
// so that every select has a partner.
TEST(Select, SendAndReceiveOnOneChannelNeverPairsWithItself) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    for (int cap : {0, 10}) {
      goro::Chan<int> c(cap);
      std::atomic<int> self_receives{0};
      goro::WaitGroup wg;
      wg.add(2);
      for (int p = 0; p < 2; p++) {
        goro::go([c, p, cap, &self_receives, &wg]() mutable {
          auto check = [&](std::optional<int> v) {
            if (cap == 0 && v == p) self_receives.fetch_add(1);
          };
          for (int i = 0; i < 1000; i++) {
            // Both case orders, as Go's test does.
            if (p == 0 || i % 2 == 0) {
              goro::select(goro::on_send(c, p), goro::on_recv(c, check));
            } else {
              goro::select(goro::on_recv(c, check), goro::on_send(c, p));
            }
          }
          wg.done();
        });
      }
      wg.wait();
      EXPECT_EQ(self_receives.load(), 0)
          << "chan[" << cap << "]: a select received its own send " << self_receives.load()
          << " times";
    }
    expect_only_main_left();
  });
}

// TestSelectStress: plain senders and receivers on four channels (two
// unbuffered, two buffered) mixed with one goroutine that sends on all of
// them through a single select and one that receives likewise. Each channel
// carries exactly 2N values; the whole must not deadlock.
TEST(Select, StressOfSelectsAndPlainOpsDoesNotDeadlock) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int N = 3000;
    goro::Chan<int> c[4] = {goro::Chan<int>(0), goro::Chan<int>(0), goro::Chan<int>(2),
                            goro::Chan<int>(3)};
    goro::WaitGroup wg;
    wg.add(10);
    for (int k = 0; k < 4; k++) {
      goro::go([ch = c[k], &wg]() mutable {
        for (int i = 0; i < N; i++) ch.send(0);
        wg.done();
      });
      goro::go([ch = c[k], &wg]() mutable {
        for (int i = 0; i < N; i++) ch.recv();
        wg.done();
      });
    }
    // A case whose channel has carried its N values is switched off by
    // replacing the channel with one that is never ready (Go: nil).
    goro::go([c, &wg]() mutable {
      goro::Chan<int> off;
      goro::Chan<int> c1[4] = {c[0], c[1], c[2], c[3]};
      int n[4] = {0, 0, 0, 0};
      auto count = [&](int k) {
        return [&, k] {
          if (++n[k] == N) c1[k] = off;
        };
      };
      for (int i = 0; i < 4 * N; i++) {
        goro::select(goro::on_send(c1[3], 0, count(3)), goro::on_send(c1[2], 0, count(2)),
                     goro::on_send(c1[0], 0, count(0)), goro::on_send(c1[1], 0, count(1)));
      }
      wg.done();
    });
    goro::go([c, &wg]() mutable {
      goro::Chan<int> off;
      goro::Chan<int> c1[4] = {c[0], c[1], c[2], c[3]};
      int n[4] = {0, 0, 0, 0};
      auto count = [&](int k) {
        return [&, k] {
          if (++n[k] == N) c1[k] = off;
        };
      };
      for (int i = 0; i < 4 * N; i++) {
        goro::select(goro::on_recv(c1[0], count(0)), goro::on_recv(c1[1], count(1)),
                     goro::on_recv(c1[2], count(2)), goro::on_recv(c1[3], count(3)));
      }
      wg.done();
    });
    wg.wait();
    for (int k = 0; k < 4; k++) EXPECT_EQ(c[k].len(), 0u) << "chan " << k << " not drained";
    expect_only_main_left();
  });
}

// TestSelectDuplicateChannel: a select may list one channel twice (the G is
// queued on it twice). Waking it through a third channel must dequeue both
// entries, or the next receiver queued on that channel is lost.
TEST(Select, SameChannelInTwoCasesIsDequeuedCleanly) {
  goro::run([] {
    goro::Chan<int> c;
    goro::Chan<int> d;
    goro::Chan<int> e;
    // A: queued on c (twice) and d.
    goro::go([c, d, e]() mutable {
      goro::select(goro::on_recv(c), goro::on_recv(c), goro::on_recv(d));
      e.send(9);
    });
    goro::sleep_for(1ms);  // A queues on c first
    // B: queued on c after A.
    std::atomic<bool> b_received{false};
    goro::go([c, &b_received]() mutable {
      c.recv();
      b_received.store(true);
    });
    goro::sleep_for(1ms);  // B queues on c before we go on
    d.send(7);             // wakes A, which must dequeue itself from c twice
    EXPECT_EQ(e.recv(), std::optional<int>(9)) << "A did not finish after d woke it";
    c.send(8);  // must reach B, not a stale entry of A's
    EXPECT_TRUE(eventually([&] { return b_received.load(); }))
        << "the send on c did not reach B: A's second entry on c's receive queue was left behind";
    expect_only_main_left();
  });
}

// TestPseudoRandomSend: a select of two sends on one channel picks either
// at random; over 100 sends each value appears more than 10% of the time.
TEST(Select, ChoosesRandomlyAmongReadySends) {
  goro::run([] {
    constexpr int n = 100;
    for (int cap : {0, n}) {
      goro::Chan<int> c(cap);
      goro::Chan<std::vector<int>> result;
      goro::go([c, result]() mutable {
        std::vector<int> got;
        for (int i = 0; i < n; i++) {
          goro::gosched();
          got.push_back(c.recv().value_or(-1));
        }
        result.send(std::move(got));
      });
      for (int i = 0; i < n; i++) goro::select(goro::on_send(c, 1), goro::on_send(c, 0));
      std::vector<int> got = *result.recv();
      int n0 = 0;
      int n1 = 0;
      for (int v : got) (v == 0 ? n0 : n1)++;
      EXPECT_TRUE(n0 > n / 10 && n1 > n / 10)
          << "want pseudorandom, got " << n0 << " zeros and " << n1 << " ones (chan cap " << cap
          << ")";
    }
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// The select statement's contract (goro.h)

TEST(Select, DefaultCaseNeverBlocks) {
  goro::run([] {
    goro::Chan<int> empty;     // nobody sends
    goro::Chan<int> full(1);   // nobody receives
    full.send(0);
    goro::Chan<int> unbuffered;  // nobody receives
    for (int i = 0; i < 1000; i++) {
      bool defaulted = false;
      int taken = goro::select(goro::on_recv(empty), goro::on_send(full, 1), goro::on_send(unbuffered, 2),
                               goro::on_default([&] { defaulted = true; }));
      ASSERT_EQ(taken, 3) << "no case could proceed: select must return the default case's index";
      ASSERT_TRUE(defaulted) << "the default case's callback did not run";
    }
    EXPECT_EQ(full.len(), 1u) << "a send that was not chosen must not enter the buffer";
  });
}

TEST(Select, DefaultCaseIsNotTakenWhenACaseIsReady) {
  goro::run([] {
    goro::Chan<int> ready(1);
    for (int i = 0; i < 100; i++) {
      ready.send(i);
      std::optional<int> got;
      int taken = goro::select(goro::on_default(), goro::on_recv(ready, [&](std::optional<int> v) { got = v; }));
      ASSERT_EQ(taken, 1) << "a ready receive lost to the default case";
      ASSERT_EQ(got, std::optional<int>(i));
    }
  });
}

TEST(Select, ReceiveFromClosedChannelDeliversEmptyOptional) {
  goro::run([] {
    goro::Chan<int> never;
    goro::Chan<int> closed;
    closed.close();
    for (int i = 0; i < 100; i++) {
      bool called = false;
      std::optional<int> got = 42;
      int taken = goro::select(goro::on_recv(never),
                               goro::on_recv(closed, [&](std::optional<int> v) {
                                 called = true;
                                 got = v;
                               }));
      ASSERT_EQ(taken, 1) << "a closed channel is always ready to receive from";
      ASSERT_TRUE(called);
      ASSERT_EQ(got, std::nullopt) << "receive from a closed channel must deliver an empty optional";
    }
    // Buffered values come first, then the empty optional.
    goro::Chan<int> buffered(2);
    buffered.send(1);
    buffered.send(2);
    buffered.close();
    std::vector<std::optional<int>> got;
    for (int i = 0; i < 3; i++) {
      goro::select(goro::on_recv(buffered, [&](std::optional<int> v) { got.push_back(v); }));
    }
    EXPECT_EQ(got, (std::vector<std::optional<int>>{1, 2, std::nullopt}));
  });
}

TEST(Select, CloseWakesABlockedSelect) {
  goro::run([] {
    goro::Chan<int> a;
    goro::Chan<int> b;
    goro::Chan<int> result;
    goro::go([a, b, result]() mutable {
      bool empty = false;
      int taken = goro::select(goro::on_recv(a), goro::on_recv(b, [&](std::optional<int> v) { empty = !v; }));
      result.send(taken == 1 && empty ? 1 : 0);
    });
    goro::sleep_for(1ms);
    b.close();
    EXPECT_EQ(result.recv(), std::optional<int>(1))
        << "closing b must wake the select with b's case and an empty optional";
    expect_only_main_left();
  });
}

TEST(Select, BlockedSelectTakesTheCaseThatBecomesReady) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    goro::Chan<int> a;
    goro::Chan<int> b;
    goro::Chan<int> out;
    for (int i = 0; i < 200; i++) {
      goro::go([a, b, out]() mutable {
        int got = -1;
        int taken = goro::select(goro::on_recv(a), goro::on_recv(b, [&](std::optional<int> v) { got = *v; }),
                                 goro::on_send(out, -2));
        if (taken == 1) out.send(got);
      });
      if (i % 2 == 0) {
        b.send(i);
        EXPECT_EQ(out.recv(), std::optional<int>(i)) << "round " << i;
      } else {
        EXPECT_EQ(out.recv(), std::optional<int>(-2)) << "round " << i << ": the send case";
      }
    }
    expect_only_main_left();
  });
}

// Go's chan_test.go producer/consumer pattern (BenchmarkChanProdCons*) with
// every operation a select: producers select between sending and a quit
// channel, consumers between receiving and quit. Every value is received
// exactly once.
TEST(Select, ProducersAndConsumersThroughSelect) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int kProducers = 4;
    constexpr int kConsumers = 4;
    constexpr int kPerProducer = 2000;
    for (int cap : {0, 1, 100}) {
      goro::Chan<int> c(cap);
      goro::Chan<bool> quit;  // never closed before the end: a case never ready
      std::atomic<std::int64_t> sum{0};
      std::atomic<int> received{0};
      goro::WaitGroup producers;
      goro::WaitGroup consumers;
      producers.add(kProducers);
      consumers.add(kConsumers);
      for (int p = 0; p < kProducers; p++) {
        goro::go([c, quit, p, &producers]() mutable {
          for (int i = 0; i < kPerProducer; i++) {
            goro::select(goro::on_send(c, p * kPerProducer + i), goro::on_recv(quit));
          }
          producers.done();
        });
      }
      for (int k = 0; k < kConsumers; k++) {
        goro::go([c, quit, &sum, &received, &consumers]() mutable {
          for (bool open = true; open;) {
            goro::select(goro::on_recv(c,
                                       [&](std::optional<int> v) {
                                         if (!v) {
                                           open = false;
                                           return;
                                         }
                                         sum.fetch_add(*v);
                                         received.fetch_add(1);
                                       }),
                         goro::on_recv(quit, [&] { open = false; }));
          }
          consumers.done();
        });
      }
      producers.wait();
      c.close();
      consumers.wait();
      constexpr int kTotal = kProducers * kPerProducer;
      EXPECT_EQ(received.load(), kTotal) << "chan[" << cap << "]";
      EXPECT_EQ(sum.load(), std::int64_t(kTotal) * (kTotal - 1) / 2)
          << "chan[" << cap << "]: values lost or duplicated";
    }
    expect_only_main_left();
  });
}

// A select with more cases than the small-select paths hold (over 32: the
// lock order is sorted, not insertion-sorted), with channels repeated
// across cases and cases on nil channels among them: the case that becomes
// ready is taken with its value, every other case's waiter is dequeued,
// and the nil cases never matter.
TEST(Select, LargeSelectOverRepeatedAndNilChannels) {
  goro::run([] {
    constexpr int kCases = 48, kChans = 4;
    std::vector<goro::Chan<int>> ch(kChans);
    goro::Chan<int> nil;
    goro::Chan<int> gone = std::move(nil);
    for (int round = 0; round < 50; round++) {
      int vals[kCases] = {};
      goro::detail::SelectCase cases[kCases];
      for (int i = 0; i < kCases; i++) {
        goro::detail::hchan* c = i % 3 == 0 ? nil.raw() : ch[i % kChans].raw();  // NOLINT(bugprone-use-after-move)
        cases[i] = {c, &vals[i], false};
      }
      const int target = round % kChans;
      goro::Chan<int> sender = ch[target];
      goro::go([sender, round]() mutable { sender.send(1000 + round); });
      auto r = goro::detail::selectgo(cases, kCases, true);
      ASSERT_GE(r.index, 0);
      EXPECT_TRUE(r.recv_ok);
      EXPECT_EQ(cases[r.index].c, ch[target].raw()) << "round " << round;
      EXPECT_EQ(vals[r.index], 1000 + round);
      // No waiter of this select is left on any channel.
      for (auto& c : ch) EXPECT_FALSE(c.try_send(1)) << "a select waiter was left enqueued";
    }
    expect_only_main_left();
  });
}

}  // namespace
