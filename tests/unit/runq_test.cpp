// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// The P-local run queue and the steal order, tested directly through
// export_test.h, as Go tests runqput/runqget/runqsteal/randomOrder through its
// export_test.go (TestSchedLocalQueue, TestSchedLocalQueueSteal,
// TestSchedLocalQueueEmpty, TestStealOrder).
//
// The queue holds dummy Gs named by integers. Where Go races the owner
// against a goroutine on another thread, we race it against a std::thread:
// the queue's protocol is between threads, not goroutines.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "export_test.h"

namespace {

namespace tx = goro::testexport;

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

// The ring's capacity (Go's len(p.runq)).
constexpr int kRunqSize = 256;

struct QueueDeleter {
  void operator()(tx::LocalQueue* q) const { tx::free_local_queue(q); }
};
using Queue = std::unique_ptr<tx::LocalQueue, QueueDeleter>;
Queue make_queue() { return Queue(tx::new_local_queue()); }

// Spin until `pred` holds, yielding the CPU now and then so that the test
// still progresses when there are fewer cores than spinning threads.
template <typename Pred>
void spin_until(Pred pred) {
  for (unsigned n = 1; !pred(); n++) {
    if (n % 1024 == 0) std::this_thread::yield();
  }
}

// TestSchedLocalQueue: for every fill level the ring can hold, what goes in
// comes out in order and nothing else comes out.
TEST(SchedLocalQueue, IsFifoForEveryFillLevel) {
  Queue q = make_queue();
  ASSERT_TRUE(tx::runq_empty(q.get())) << "a new queue must be empty";
  for (int i = 0; i < kRunqSize; i++) {
    ASSERT_EQ(tx::runq_get(q.get()), -1) << "queue not empty at the start of iteration " << i;
    for (int j = 0; j < i; j++) tx::runq_put(q.get(), j, /*next=*/false);
    ASSERT_EQ(tx::runq_size(q.get()), static_cast<std::uint32_t>(i))
        << "runq_size after " << i << " puts";
    for (int j = 0; j < i; j++) {
      ASSERT_EQ(tx::runq_get(q.get()), j) << "bad element at iteration " << i << "/" << j;
    }
    ASSERT_EQ(tx::runq_get(q.get()), -1) << "queue not empty after draining at iteration " << i;
    ASSERT_TRUE(tx::runq_empty(q.get())) << "runq_empty false after draining at iteration " << i;
  }
  EXPECT_TRUE(tx::runq_overflow(q.get()).empty())
      << "at most 255 items never overflow a 256-slot ring";
}

// runnext is served before the ring, and a second runnext put kicks the
// previous runnext G to the tail of the ring (Go's runqput with next=true).
TEST(SchedLocalQueue, RunnextIsServedFirstAndKickedToTheTail) {
  Queue q = make_queue();
  for (int i = 0; i < kRunqSize - 1; i++) {
    for (int j = 0; j < i; j++) tx::runq_put(q.get(), j, false);
    tx::runq_put(q.get(), 1000, /*next=*/true);
    ASSERT_FALSE(tx::runq_empty(q.get())) << "runnext alone must make the queue non-empty";
    ASSERT_EQ(tx::runq_get(q.get()), 1000) << "runnext must come before the ring, iteration " << i;
    for (int j = 0; j < i; j++) ASSERT_EQ(tx::runq_get(q.get()), j) << "iteration " << i;
    ASSERT_EQ(tx::runq_get(q.get()), -1) << "iteration " << i;
  }

  tx::runq_put(q.get(), 1, false);
  tx::runq_put(q.get(), 2, true);
  tx::runq_put(q.get(), 3, true);  // kicks 2 to the tail, behind 1
  EXPECT_EQ(tx::runq_size(q.get()), 2u) << "ring holds 1 and the kicked 2; runnext holds 3";
  EXPECT_EQ(tx::runq_get(q.get()), 3) << "the newest runnext G runs first";
  EXPECT_EQ(tx::runq_get(q.get()), 1) << "then the ring in order";
  EXPECT_EQ(tx::runq_get(q.get()), 2) << "the kicked runnext G went to the tail";
  EXPECT_EQ(tx::runq_get(q.get()), -1);
}

// runqputslow: putting into a full ring moves the older half of the ring
// (128 Gs) plus the new G to the global queue, in order, in one batch.
TEST(SchedLocalQueue, OverflowMovesHalfTheRingPlusTheNewGToGlobal) {
  Queue q = make_queue();
  for (int j = 0; j < kRunqSize; j++) tx::runq_put(q.get(), j, false);
  ASSERT_TRUE(tx::runq_overflow(q.get()).empty()) << "256 Gs fit in the ring";
  tx::runq_put(q.get(), kRunqSize, false);

  std::vector<int> want;
  for (int j = 0; j < kRunqSize / 2; j++) want.push_back(j);
  want.push_back(kRunqSize);
  EXPECT_EQ(tx::runq_overflow(q.get()), want)
      << "overflow must be the first half of the ring, in order, then the new G";
  EXPECT_EQ(tx::runq_size(q.get()), static_cast<std::uint32_t>(kRunqSize / 2));
  for (int j = kRunqSize / 2; j < kRunqSize; j++) {
    ASSERT_EQ(tx::runq_get(q.get()), j) << "the newer half stays in the ring, in order";
  }
  EXPECT_EQ(tx::runq_get(q.get()), -1);
}

// TestSchedLocalQueueSteal: stealing from a ring of i Gs takes i/2 or
// i/2+1 of them (half, rounded up) and every G ends up in exactly one place.
TEST(SchedLocalQueue, StealTakesHalfAndLosesNothing) {
  Queue p1 = make_queue();
  Queue p2 = make_queue();
  for (int i = 0; i < kRunqSize; i++) {
    std::vector<int> seen(i, 0);
    for (int j = 0; j < i; j++) tx::runq_put(p1.get(), j, false);

    int reported = -1;
    int gp = tx::runq_steal(p2.get(), p1.get(), /*steal_runnext=*/true, &reported);
    int stolen = 0;
    if (gp != -1) {
      ASSERT_GE(gp, 0) << "iteration " << i;
      ASSERT_LT(gp, i) << "iteration " << i;
      seen[gp]++;
      stolen++;
    }
    for (int g; (g = tx::runq_get(p2.get())) != -1;) {
      ASSERT_LT(g, i) << "iteration " << i;
      seen[g]++;
      stolen++;
    }
    for (int g; (g = tx::runq_get(p1.get())) != -1;) {
      ASSERT_LT(g, i) << "iteration " << i;
      seen[g]++;
    }
    for (int j = 0; j < i; j++) {
      ASSERT_EQ(seen[j], 1) << "G " << j << " seen " << seen[j] << " times at iteration " << i
                            << ": a steal must neither lose nor duplicate Gs";
    }
    ASSERT_TRUE(stolen == i / 2 || stolen == i / 2 + 1)
        << "bad steal " << stolen << ", want " << i / 2 << " or " << i / 2 + 1 << ", iteration "
        << i;
    ASSERT_EQ(reported, stolen) << "stolen_count disagrees with what arrived, iteration " << i;
  }
}

// Stealing with steal_runnext takes the victim's runnext when its ring is
// empty; without it, runnext stays put.
TEST(SchedLocalQueue, StealTakesRunnextOnlyWhenAsked) {
  Queue victim = make_queue();
  Queue thief = make_queue();
  tx::runq_put(victim.get(), 7, /*next=*/true);

  int n = -1;
  EXPECT_EQ(tx::runq_steal(thief.get(), victim.get(), /*steal_runnext=*/false, &n), -1)
      << "runnext must not be stolen unless steal_runnext is set";
  EXPECT_EQ(n, 0);
  EXPECT_FALSE(tx::runq_empty(victim.get()));

  EXPECT_EQ(tx::runq_steal(thief.get(), victim.get(), /*steal_runnext=*/true, &n), 7)
      << "with steal_runnext, the victim's runnext G is handed back";
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(tx::runq_empty(victim.get()));
  EXPECT_TRUE(tx::runq_empty(thief.get())) << "the one stolen G is returned, not queued";
}

// TestSchedLocalQueueEmpty: runq_empty must never report a queue that always
// holds at least one G as empty, even while the owner's runnext put kicks
// the old runnext G into the ring and a get races with it. A spurious
// "empty" would let a P go idle with runnable work (underutilisation).
//
// Each iteration: the queue holds G0 (in runnext or the ring); owner and
// observer meet; the owner puts G1 (runnext or ring) and gets one G while
// the observer asks runq_empty. There are one or two Gs queued throughout.
TEST(SchedLocalQueue, EmptyIsNeverSpuriouslyTrue) {
  // Go runs 1e5 iterations. 2e4 hits every next0/next1 combination 5000x
  // in well under a second (a few under ASan); under TSan each rendezvous
  // costs ~2 ms on two cores, so there 2e3.
  constexpr int kIters = kUnderTsan ? 2000 : 20000;
  Queue q = make_queue();
  std::atomic<int> ready{0};
  std::atomic<int> started{0};  // iteration number (1-based) the owner has set up
  std::atomic<int> checked{0};  // iteration number the observer has finished
  std::atomic<int> spurious{0};
  std::atomic<int> first_bad{-1};

  std::thread observer([&] {
    for (int i = 0; i < kIters; i++) {
      spin_until([&] { return started.load() == i + 1; });
      ready.fetch_add(1);
      spin_until([&] { return ready.load() == 2; });
      if (tx::runq_empty(q.get())) {
        spurious.fetch_add(1);
        int none = -1;
        first_bad.compare_exchange_strong(none, i);
      }
      checked.store(i + 1);
    }
  });

  for (int i = 0; i < kIters; i++) {
    const bool next0 = (i & 1) == 0;
    const bool next1 = (i & 2) == 0;
    ready.store(0);
    tx::runq_put(q.get(), 0, next0);
    started.store(i + 1);
    ready.fetch_add(1);
    spin_until([&] { return ready.load() == 2; });
    tx::runq_put(q.get(), 1, next1);
    tx::runq_get(q.get());
    spin_until([&] { return checked.load() == i + 1; });
    tx::runq_get(q.get());
  }
  observer.join();

  EXPECT_EQ(spurious.load(), 0) << "runq_empty reported a non-empty queue as empty "
                                << spurious.load() << " times; first at iteration "
                                << first_bad.load() << " (next0=" << ((first_bad.load() & 1) == 0)
                                << " next1=" << ((first_bad.load() & 2) == 0) << ")";
  EXPECT_TRUE(tx::runq_empty(q.get())) << "every iteration takes out what it put in";
}

// TestStealOrder: for every P count, the stealing enumeration visits each P
// exactly once, whatever the seed.
TEST(StealOrder, VisitsEveryPExactlyOnce) {
  for (int nprocs = 1; nprocs <= 64; nprocs++) {
    // Seeds k*nprocs + k walk through every start position and (for an
    // enumeration that picks its stride from seed / nprocs, as Go's does)
    // every stride; a few large seeds cover the rest of the range.
    std::vector<std::uint32_t> seeds;
    for (std::uint32_t k = 0; k < 2u * static_cast<std::uint32_t>(nprocs); k++) {
      seeds.push_back(k * static_cast<std::uint32_t>(nprocs) + k);
    }
    for (std::uint32_t j = 1; j <= 32; j++) seeds.push_back(j * 0x9e3779b9u);
    for (std::uint32_t seed : seeds) {
      std::vector<int> order = tx::steal_order(nprocs, seed);
      ASSERT_EQ(order.size(), static_cast<std::size_t>(nprocs))
          << "nprocs=" << nprocs << " seed=" << seed << ": must visit exactly nprocs Ps";
      std::vector<bool> visited(nprocs, false);
      for (int p : order) {
        ASSERT_GE(p, 0) << "nprocs=" << nprocs << " seed=" << seed;
        ASSERT_LT(p, nprocs) << "nprocs=" << nprocs << " seed=" << seed;
        ASSERT_FALSE(visited[p]) << "nprocs=" << nprocs << " seed=" << seed << ": P " << p
                                 << " visited twice";
        visited[p] = true;
      }
    }
  }
}

// The point of a random order is that stealers spread out: across seeds,
// every P is somebody's first victim, and (from 3 Ps up, where more than one
// coprime stride exists) more than one stride is used.
TEST(StealOrder, SeedsSpreadStartsAndStrides) {
  for (int nprocs = 2; nprocs <= 64; nprocs++) {
    std::set<int> firsts;
    std::set<int> strides;
    for (std::uint32_t seed = 0; seed < 16u * static_cast<std::uint32_t>(nprocs); seed++) {
      std::vector<int> order = tx::steal_order(nprocs, seed);
      ASSERT_EQ(order.size(), static_cast<std::size_t>(nprocs));
      firsts.insert(order[0]);
      strides.insert((order[1] - order[0] + nprocs) % nprocs);
    }
    EXPECT_EQ(firsts.size(), static_cast<std::size_t>(nprocs))
        << "nprocs=" << nprocs << ": some P is never visited first";
    if (nprocs >= 3) {
      EXPECT_GE(strides.size(), 2u) << "nprocs=" << nprocs << ": only one stride ever used";
    }
  }
}

}  // namespace
