// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Channels: Go's TestChan (chan_test.go) transcribed, one property per test,
// each checked for every capacity 0..199 as Go does; then what Go cannot
// have: channels of move-only and non-trivially destructible element types,
// where a lost or doubled destructor is a leak or a double free (the debug
// preset runs these under ASan).
//
// Where Go's test time.Sleeps to give a goroutine the chance to do the wrong
// thing, we sleep cooperatively (gosched until a deadline): the runtime has
// no timers yet, and blocking the thread would hold the P.

#include <gtest/gtest.h>

#include <goro/goro.h>
#include "testutil.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using goro_test::sleep_cooperatively;
using goro_test::eventually;
using goro_test::expect_only_main_left;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Go's TestChan uses N = 200 capacities (20 in -short mode).
constexpr int kCaps = 200;

using goro_test::ScopedMaxprocs;


// Yield until pred() holds or `timeout` passes; returns pred().

// Goroutines hold channel handles in their closures; let them all exit
// before run returns so nothing is abandoned (and reported as a leak).

// ---------------------------------------------------------------------------
// TestChan, property by property

TEST(Chan, ReceiveFromEmptyBlocks) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      std::atomic<bool> recv1{false};
      std::atomic<bool> recv2{false};
      goro::go([c, &recv1]() mutable {
        c.recv();
        recv1.store(true);
      });
      goro::go([c, &recv2]() mutable {
        c.recv();
        recv2.store(true);
      });
      sleep_cooperatively(1ms);
      ASSERT_FALSE(recv1.load() || recv2.load()) << "chan[" << cap << "]: receive from empty chan";
      ASSERT_FALSE(c.try_recv().has_value())
          << "chan[" << cap << "]: non-blocking receive from empty chan succeeded";
      c.send(0);
      c.send(0);
      ASSERT_TRUE(eventually([&] { return recv1.load() && recv2.load(); }))
          << "chan[" << cap << "]: two sends did not wake the two blocked receivers";
    }
    expect_only_main_left();
  });
}

TEST(Chan, SendToFullBlocks) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      for (int i = 0; i < cap; i++) c.send(i);
      std::atomic<bool> sent{false};
      goro::go([c, &sent]() mutable {
        c.send(0);
        sent.store(true);
      });
      sleep_cooperatively(1ms);
      ASSERT_FALSE(sent.load()) << "chan[" << cap << "]: send to full chan";
      ASSERT_FALSE(c.try_send(0)) << "chan[" << cap << "]: non-blocking send to full chan succeeded";
      ASSERT_EQ(c.len(), static_cast<std::size_t>(cap))
          << "chan[" << cap << "]: a blocked sender's value is not in the buffer";
      ASSERT_EQ(c.recv(), std::optional<int>(0))
          << "chan[" << cap << "]: first value out";
      ASSERT_TRUE(eventually([&] { return sent.load(); }))
          << "chan[" << cap << "]: receive did not unblock the blocked sender";
      ASSERT_EQ(c.len(), static_cast<std::size_t>(cap))
          << "chan[" << cap << "]: the unblocked sender's value moves into the freed slot";
    }
    expect_only_main_left();
  });
}

TEST(Chan, ClosedChanYieldsBufferedValuesThenNothing) {
  goro::run([] {
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      for (int i = 0; i < cap; i++) c.send(i);
      c.close();
      for (int i = 0; i < cap; i++) {
        auto v = c.recv();
        ASSERT_TRUE(v.has_value()) << "chan[" << cap << "]: buffered value " << i
                                   << " lost by close";
        ASSERT_EQ(*v, i) << "chan[" << cap << "]: received " << *v << ", expected " << i;
      }
      ASSERT_EQ(c.recv(), std::nullopt) << "chan[" << cap << "]: closed and drained must be empty";
      ASSERT_EQ(c.recv(), std::nullopt) << "chan[" << cap << "]: ...and stay empty";
      ASSERT_EQ(c.try_recv(), std::nullopt) << "chan[" << cap << "]: try_recv on closed, drained";
      ASSERT_EQ(c.len(), 0u) << "chan[" << cap << "]";
    }
  });
}

TEST(Chan, CloseUnblocksReceive) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      goro::Chan<bool> done;
      goro::go([c, done]() mutable {
        auto v = c.recv();
        done.send(!v.has_value());
      });
      sleep_cooperatively(1ms);
      c.close();
      ASSERT_EQ(done.recv(), std::optional<bool>(true))
          << "chan[" << cap << "]: received a value from a closed empty chan";
    }
    expect_only_main_left();
  });
}

// Not in Go's TestChan, but what closechan is for: every receiver parked on
// the channel is released, not just the first.
TEST(Chan, CloseWakesEveryBlockedReceiver) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap : {0, 1, 8}) {
      constexpr int kReceivers = 20;
      goro::Chan<int> c(cap);
      goro::WaitGroup wg;
      std::atomic<int> empty_receipts{0};
      wg.add(kReceivers);
      for (int i = 0; i < kReceivers; i++) {
        goro::go([c, &wg, &empty_receipts]() mutable {
          if (!c.recv()) empty_receipts.fetch_add(1);
          wg.done();
        });
      }
      sleep_cooperatively(2ms);
      c.close();
      wg.wait();
      EXPECT_EQ(empty_receipts.load(), kReceivers) << "chan[" << cap << "]";
    }
    expect_only_main_left();
  });
}

// 100 integers sent by one goroutine arrive uncorrupted and in order, with
// blocking receives and with non-blocking ones polled in a gosched loop.
TEST(Chan, DeliversInFifoOrder) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      goro::go([c]() mutable {
        for (int i = 0; i < 100; i++) c.send(i);
      });
      for (int i = 0; i < 100; i++) {
        auto v = c.recv();
        ASSERT_EQ(v, std::optional<int>(i)) << "chan[" << cap << "]: blocking receive " << i;
      }

      goro::go([c]() mutable {
        for (int i = 0; i < 100; i++) c.send(i);
      });
      for (int i = 0; i < 100; i++) {
        std::optional<int> v;
        while (!(v = c.try_recv())) goro::gosched();
        ASSERT_EQ(*v, i) << "chan[" << cap << "]: non-blocking receive " << i;
      }
    }
    expect_only_main_left();
  });
}

// 4 producers each send 0..L-1 and 4 consumers each receive L values:
// every value arrives exactly 4 times.
TEST(Chan, ProducersAndConsumersLoseNothing) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int P = 4;
    constexpr int L = 1000;
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      for (int p = 0; p < P; p++) {
        goro::go([c]() mutable {
          for (int i = 0; i < L; i++) c.send(i);
        });
      }
      goro::Chan<std::vector<int>> done;
      for (int p = 0; p < P; p++) {
        goro::go([c, done]() mutable {
          std::vector<int> recv(L, 0);
          for (int i = 0; i < L; i++) {
            auto v = c.recv();
            if (v && *v >= 0 && *v < L) recv[*v]++;
          }
          done.send(std::move(recv));
        });
      }
      std::vector<int> recv(L, 0);
      for (int p = 0; p < P; p++) {
        auto part = done.recv();
        ASSERT_TRUE(part.has_value());
        ASSERT_EQ(part->size(), static_cast<std::size_t>(L));
        for (int k = 0; k < L; k++) recv[k] += (*part)[k];
      }
      for (int k = 0; k < L; k++) {
        ASSERT_EQ(recv[k], P) << "chan[" << cap << "]: value " << k << " received " << recv[k]
                              << " times, expected " << P;
      }
    }
    expect_only_main_left();
  });
}

TEST(Chan, LenAndCap) {
  goro::run([] {
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      ASSERT_EQ(c.len(), 0u) << "chan[" << cap << "]: bad len";
      ASSERT_EQ(c.cap(), static_cast<std::size_t>(cap)) << "chan[" << cap << "]: bad cap";
      for (int i = 0; i < cap; i++) c.send(i);
      ASSERT_EQ(c.len(), static_cast<std::size_t>(cap)) << "chan[" << cap << "]: bad len when full";
      ASSERT_EQ(c.cap(), static_cast<std::size_t>(cap)) << "chan[" << cap << "]: bad cap when full";
      if (cap > 0) {
        c.recv();
        ASSERT_EQ(c.len(), static_cast<std::size_t>(cap - 1)) << "chan[" << cap << "]";
      }
    }
  });
}

TEST(Chan, TrySendSucceedsExactlyWhileThereIsRoom) {
  goro::run([] {
    for (int cap = 0; cap < kCaps; cap++) {
      goro::Chan<int> c(cap);
      for (int i = 0; i < cap; i++) {
        ASSERT_TRUE(c.try_send(i)) << "chan[" << cap << "]: try_send " << i << " with room";
      }
      ASSERT_FALSE(c.try_send(-1)) << "chan[" << cap << "]: try_send with no room and no receiver";
      for (int i = 0; i < cap; i++) ASSERT_EQ(c.try_recv(), std::optional<int>(i));
      ASSERT_EQ(c.try_recv(), std::nullopt) << "chan[" << cap << "]: the failed try_send left "
                                               "something behind";
    }
  });
}

// A handle copy is the same channel (Go's channel values are references).
TEST(Chan, CopiesShareTheChannel) {
  goro::run([] {
    goro::Chan<int> a(1);
    goro::Chan<int> b = a;
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a == goro::Chan<int>(1));
    b.send(5);
    EXPECT_EQ(a.len(), 1u);
    EXPECT_EQ(a.recv(), std::optional<int>(5));
  });
}

// Go's TestMultiConsumer: a feeder, 23 workers ranging over a work channel
// (some yielding mid-stream to disturb the FIFO-ish order) and a results
// channel closed once every worker is done. Every item comes out once.
TEST(Chan, ManyWorkersRangingOverOneChannelLoseNothing) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    constexpr int kWorkers = 23;
    // Go sends 271828 items; 50000 keeps this well under a second under
    // the sanitizers and still cycles every worker thousands of times.
    constexpr int kItems = 50000;
    static constexpr int kPrimes[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
    constexpr int kNumPrimes = sizeof kPrimes / sizeof kPrimes[0];
    goro::Chan<int> work(kWorkers * 3);
    goro::Chan<int> results(kWorkers * 3);
    auto workers_done = std::make_shared<goro::WaitGroup>();
    for (int w = 0; w < kWorkers; w++) {
      workers_done->add(1);
      goro::go([work, results, workers_done, w]() mutable {
        while (auto v = work.recv()) {
          if (*v == kPrimes[w % kNumPrimes]) goro::gosched();
          results.send(*v);
        }
        workers_done->done();
      });
    }
    std::atomic<long> expect{0};
    goro::go([work, results, workers_done, &expect]() mutable {
      long sum = 0;
      for (int i = 0; i < kItems; i++) {
        const int v = kPrimes[i % kNumPrimes];
        sum += v;
        work.send(v);
      }
      expect.store(sum);
      work.close();          // no more work
      workers_done->wait();  // every worker has sent its last result
      results.close();       // so no more results can come
    });
    long n = 0;
    long sum = 0;
    while (auto v = results.recv()) {
      n++;
      sum += *v;
    }
    EXPECT_EQ(n, kItems) << "results lost or duplicated";
    EXPECT_EQ(sum, expect.load()) << "results corrupted";
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// Element types with ownership

// Counts live instances, moved-from ones included, so that every
// constructor must be matched by exactly one destructor.
struct Tracked {
  static inline std::atomic<int> live{0};
  int value = 0;
  explicit Tracked(int v) : value(v) { live.fetch_add(1); }
  Tracked(Tracked&& o) noexcept : value(o.value) {
    o.value = -1;
    live.fetch_add(1);
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() { live.fetch_sub(1); }
};

TEST(ChanOfMoveOnly, UniquePtrsArriveIntactThroughEveryPath) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    // cap 0: direct handoff between goroutines; 1 and 16: through the buffer.
    for (int cap : {0, 1, 16}) {
      goro::Chan<std::unique_ptr<int>> c(cap);
      goro::go([c]() mutable {
        for (int i = 0; i < 1000; i++) c.send(std::make_unique<int>(i));
        c.close();
      });
      int n = 0;
      while (auto p = c.recv()) {
        ASSERT_TRUE(*p) << "chan[" << cap << "]: received a null unique_ptr";
        ASSERT_EQ(**p, n) << "chan[" << cap << "]";
        n++;
      }
      EXPECT_EQ(n, 1000) << "chan[" << cap << "]";
    }
    expect_only_main_left();
  });
}

TEST(ChanOfMoveOnly, BufferedValuesAreDestroyedWithTheChannel) {
  goro::run([] {
    {
      goro::Chan<Tracked> c(8);
      for (int i = 0; i < 5; i++) c.send(Tracked(i));
      EXPECT_EQ(Tracked::live.load(), 5) << "the buffer holds exactly the 5 values sent";
      c.close();
      auto first = c.recv();
      ASSERT_TRUE(first.has_value());
      EXPECT_EQ(first->value, 0);
    }
    EXPECT_EQ(Tracked::live.load(), 0)
        << "dropping the last handle must destroy the values still buffered";

    {
      goro::Chan<std::unique_ptr<std::string>> c(4);
      for (int i = 0; i < 4; i++) c.send(std::make_unique<std::string>(100, 'x'));
    }  // leaked strings would be reported by ASan
  });
}

TEST(ChanOfMoveOnly, FailedTrySendOfATemporaryDestroysIt) {
  goro::run([] {
    goro::Chan<Tracked> unbuffered;
    EXPECT_FALSE(unbuffered.try_send(Tracked(1)));
    goro::Chan<Tracked> full(1);
    EXPECT_TRUE(full.try_send(Tracked(2)));
    EXPECT_FALSE(full.try_send(Tracked(3)));
    EXPECT_EQ(Tracked::live.load(), 1) << "only the buffered value may be alive";
    EXPECT_EQ(full.recv()->value, 2);
    EXPECT_EQ(Tracked::live.load(), 0);
  });
}

TEST(ChanOfMoveOnly, FailedTrySendGivesTheValueBack) {
  goro::run([] {
    goro::Chan<std::unique_ptr<std::string>> full(1);
    ASSERT_TRUE(full.try_send(std::make_unique<std::string>("first")));
    auto v = std::make_unique<std::string>("second");
    EXPECT_FALSE(full.try_send(std::move(v)));
    ASSERT_NE(v, nullptr) << "a failed try_send must leave the moved-in value with the caller";
    EXPECT_EQ(*v, "second");
    EXPECT_EQ(**full.recv(), "first");
    EXPECT_TRUE(full.try_send(std::move(v))) << "and the caller can send it later";
    EXPECT_EQ(v, nullptr);
    EXPECT_EQ(**full.recv(), "second");

    goro::Chan<std::string> strings(1);
    std::string s = "kept";
    EXPECT_TRUE(strings.try_send(s));
    EXPECT_FALSE(strings.try_send(s));
    EXPECT_EQ(s, "kept") << "an lvalue argument is copied, never moved from";
  });
}

TEST(Chan, TryRecvTellsWouldBlockFromClosed) {
  goro::run([] {
    for (int cap : {0, 2}) {
      goro::Chan<int> c(cap);
      bool closed = true;
      EXPECT_FALSE(c.try_recv(closed).has_value());
      EXPECT_FALSE(closed) << "chan[" << cap << "]: open and empty is 'would block'";
      if (cap > 0) {
        c.send(7);
        c.close();
        auto v = c.try_recv(closed);
        ASSERT_TRUE(v.has_value()) << "a closed channel still yields what it buffered";
        EXPECT_EQ(*v, 7);
        EXPECT_FALSE(closed);
      } else {
        c.close();
      }
      EXPECT_FALSE(c.try_recv(closed).has_value());
      EXPECT_TRUE(closed) << "chan[" << cap << "]: closed and drained";
    }
    goro::Chan<int> moved(1);
    goro::Chan<int> taker(std::move(moved));
    bool closed = true;
    EXPECT_FALSE(moved.try_recv(closed).has_value());
    EXPECT_FALSE(closed) << "a nil channel is never ready, and never closed";
  });
}

TEST(ChanOfMoveOnly, EveryValueDestroyedExactlyOnceAcrossGoroutines) {
  goro::run([] {
    ScopedMaxprocs procs(4);
    for (int cap : {0, 3, 64}) {
      goro::Chan<Tracked> c(cap);
      goro::WaitGroup wg;
      std::atomic<long> sum{0};
      for (int p = 0; p < 4; p++) {
        wg.add(1);
        goro::go([c, &wg]() mutable {
          for (int i = 0; i < 500; i++) c.send(Tracked(i));
          wg.done();
        });
      }
      goro::WaitGroup consumers;
      for (int p = 0; p < 4; p++) {
        consumers.add(1);
        goro::go([c, &consumers, &sum]() mutable {
          while (auto v = c.recv()) sum.fetch_add(v->value);
          consumers.done();
        });
      }
      wg.wait();
      c.close();
      consumers.wait();
      EXPECT_EQ(sum.load(), 4L * (499L * 500L / 2)) << "chan[" << cap << "]: values lost";
      ASSERT_TRUE(eventually([] { return goro::num_goroutine() == 1; }));
      EXPECT_EQ(Tracked::live.load(), 0)
          << "chan[" << cap << "]: constructions and destructions do not match";
    }
  });
}

TEST(ChanOfNonTrivial, StringsSurviveHandoffAndBuffering) {
  goro::run([] {
    ScopedMaxprocs procs(2);
    auto make = [](int i) {
      // Longer than any small-string buffer, so each value owns heap memory.
      return std::string(64 + i % 64, static_cast<char>('a' + i % 26)) + std::to_string(i);
    };
    for (int cap : {0, 1, 10}) {
      goro::Chan<std::string> c(cap);
      goro::go([c, make]() mutable {
        for (int i = 0; i < 1000; i++) c.send(make(i));
        c.close();
      });
      for (int i = 0; i < 1000; i++) {
        auto s = c.recv();
        ASSERT_TRUE(s.has_value()) << "chan[" << cap << "]: closed early at " << i;
        ASSERT_EQ(*s, make(i)) << "chan[" << cap << "]: corrupted string " << i;
      }
      EXPECT_EQ(c.recv(), std::nullopt);
    }
    // Left in the buffer when the channel dies: freed, not leaked.
    goro::Chan<std::string> left(3);
    left.send(make(1));
    left.send(make(2));
    expect_only_main_left();
  });
}

TEST(ChanOfNonTrivial, VectorsOfStringsRoundTrip) {
  goro::run([] {
    goro::Chan<std::vector<std::string>> c(2);
    std::vector<std::string> want{"alpha", std::string(200, 'b'), "", "gamma"};
    goro::Chan<bool> done;
    goro::go([c, done, want]() mutable {
      auto got = c.recv();
      done.send(got.has_value() && *got == want);
    });
    c.send(want);
    EXPECT_EQ(done.recv(), std::optional<bool>(true)) << "vector<string> changed in transit";
    expect_only_main_left();
  });
}

// ---------------------------------------------------------------------------
// A moved-from Chan is Go's nil channel (its blocking operations and close
// are checked in child processes, crash_test.cpp).

TEST(NilChan, NonBlockingOperationsFailAndLenCapAreZero) {
  goro::run([] {
    goro::Chan<int> c(3);
    goro::Chan<int> live = std::move(c);
    // NOLINTBEGIN(bugprone-use-after-move): the nil channel is the point
    EXPECT_FALSE(c.try_send(1));
    EXPECT_FALSE(c.try_recv().has_value());
    EXPECT_EQ(c.len(), 0u);
    EXPECT_EQ(c.cap(), 0u);
    // NOLINTEND(bugprone-use-after-move)
    EXPECT_TRUE(live.try_send(1)) << "the moved-to handle holds the channel";
    EXPECT_EQ(live.cap(), 3u);
  });
}

TEST(NilChan, NeverReadyInSelect) {
  goro::run([] {
    goro::Chan<int> n1, n2, ready(1);
    goro::Chan<int> k1 = std::move(n1), k2 = std::move(n2);
    // NOLINTBEGIN(bugprone-use-after-move)
    for (int i = 0; i < 100; i++) {
      EXPECT_EQ(goro::select(goro::on_recv(n1), goro::on_send(n2, 1), goro::on_default()), 2);
      ASSERT_TRUE(ready.try_send(i));
      EXPECT_EQ(goro::select(goro::on_recv(n1), goro::on_send(n2, 1), goro::on_recv(ready)), 2);
    }
    // More cases than the small-select path holds: the large path skips
    // them too.
    std::vector<goro::Chan<int>> nils(40);
    for (auto& n : nils) goro::Chan<int> gone = std::move(n);
    ASSERT_TRUE(ready.try_send(7));
    int got = -1;
    auto take = [&](std::optional<int> v) { got = v.value_or(-2); };
    int taken = goro::select(goro::on_recv(nils[0]), goro::on_recv(nils[1]), goro::on_recv(nils[2]),
                             goro::on_recv(nils[3]), goro::on_recv(nils[4]), goro::on_recv(nils[5]),
                             goro::on_recv(nils[6]), goro::on_recv(nils[7]), goro::on_recv(nils[8]),
                             goro::on_recv(nils[9]), goro::on_recv(nils[10]), goro::on_recv(nils[11]),
                             goro::on_recv(nils[12]), goro::on_recv(nils[13]), goro::on_recv(nils[14]),
                             goro::on_recv(nils[15]), goro::on_recv(nils[16]), goro::on_recv(nils[17]),
                             goro::on_recv(ready, take));
    EXPECT_EQ(taken, 18);
    EXPECT_EQ(got, 7);
    // NOLINTEND(bugprone-use-after-move)
  });
}

TEST(NilChan, SendAndRecvBlockForever) {
  goro::run([] {
    // The blocked goroutines are abandoned when run returns: they own
    // what they touch.
    auto returned = std::make_shared<std::atomic<int>>(0);
    auto started = std::make_shared<std::atomic<int>>(0);
    goro::go([returned, started] {
      goro::Chan<int> c;
      goro::Chan<int> k = std::move(c);
      started->fetch_add(1);
      c.recv();  // NOLINT(bugprone-use-after-move)
      returned->fetch_add(1);
    });
    goro::go([returned, started] {
      goro::Chan<int> c;
      goro::Chan<int> k = std::move(c);
      started->fetch_add(1);
      c.send(1);  // NOLINT(bugprone-use-after-move)
      returned->fetch_add(1);
    });
    ASSERT_TRUE(eventually([&] { return started->load() == 2; }));
    goro::sleep_for(50ms);
    EXPECT_EQ(returned->load(), 0) << "an operation on a nil channel returned";
    EXPECT_EQ(goro::num_goroutine(), 3) << "the blocked goroutines are still there, parked";
  });
}

}  // namespace
